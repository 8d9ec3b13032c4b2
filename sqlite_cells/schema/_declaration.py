"""What the runtime knows of one database cell: its id, file, declared schema and source kind."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Final

from sqlite_cells.codec import (
    NotImplementedSource,
    ReadOnlySource,
    SchemaError,
    brief_repr,
    short_hash,
)
from sqlite_cells.runtime import InvalidArgument, checked_arguments, surrogate_at
from sqlite_cells.schema._migrate import MigrationConnection
from sqlite_cells.schema._schema import Schema

__all__ = ["MAX_VERSION", "Declaration", "SourceKind", "VmSource", "check_options", "db_file_name"]

Migrate = Callable[[MigrationConnection, int], object]  # what it returns is not used

MAX_VERSION: Final = 2**63 - 1  # the version is stored as a SQLite integer (64-bit signed)


def check_options(version: object, migrate: object) -> None:
    """Refuse a bad ``version=`` or ``migrate=`` of ``sqlite_database`` when it is declared
    (R14), not at its first write: :class:`SchemaError` (a ``ValueError``) saying what fits."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaError(
            f"version={brief_repr(version)} is a {type(version).__name__}; the version is an "
            f"integer from 1 to {MAX_VERSION}, such as version=2"
        )
    if not 1 <= version <= MAX_VERSION:
        raise SchemaError(
            f"version={brief_repr(version)} is out of range; the version is an integer from 1 to "
            f"{MAX_VERSION} (SQLite stores it as a 64-bit integer)"
        )
    if migrate is not None and not callable(migrate):
        raise SchemaError(
            f"migrate={brief_repr(migrate)} is not callable; pass a function "
            "migrate(conn, from_version) "
            "or None"
        )
    if migrate is not None and _never_runs(migrate):
        raise SchemaError(
            f"migrate={migrate!r} is an async or generator function: calling it runs none of "
            "its body, and the runtime calls it synchronously inside the commit; pass a plain "
            "function migrate(conn, from_version)"
        )


def _never_runs(migrate: object) -> bool:
    """Whether calling ``migrate`` only makes a coroutine or generator (functools.partial and
    objects whose ``__call__`` is such a function included)."""
    call = inspect.getattr_static(type(migrate), "__call__", None)
    return any(
        test(f)
        for f in (migrate, call)
        if f is not None
        for test in (
            inspect.iscoroutinefunction,
            inspect.isasyncgenfunction,
            inspect.isgeneratorfunction,
        )
    )


class SourceKind(enum.Enum):
    CELL = "cell"  # owned by the runtime: declared tables, migrated on first write
    DISK = "disk"  # an injected read-only file with its own schema (R60)
    VM = "vm"  # declared but not supported yet (R62)


@dataclass(frozen=True, slots=True)
class VmSource:
    """A database file inside a VM (R62): accepted, but every query and write fails with
    :class:`NotImplementedSource` for now."""

    vm: Any
    path: str

    def __post_init__(self) -> None:
        # Checked where the mistake is made, not at the first query. The path names a file
        # inside the VM, not on this host, so it is taken as text only.
        path = self.path
        if not isinstance(path, str):
            suggestion = f"; write str(path): {str(path)!r}" if isinstance(path, PurePath) else ""
            raise InvalidArgument(
                f"sc.VmSource(vm, path): path is {brief_repr(path)} (a {type(path).__name__}), "
                f"not a str; pass the file's path inside the VM as text, such as "
                f"sc.VmSource(vm, '/data/app.db'){suggestion}"
            )
        if not path:
            raise InvalidArgument(
                "sc.VmSource(vm, path): path is empty, which names no file; pass the "
                "file's path inside the VM, such as sc.VmSource(vm, '/data/app.db')"
            )
        if "\x00" in path:
            raise InvalidArgument(
                f"sc.VmSource(vm, path): path {path!r} holds a NUL character at position "
                f"{path.index(chr(0))}, which no file path can; remove it"
            )
        position = surrogate_at(path)
        if position is not None:
            raise InvalidArgument(
                f"sc.VmSource(vm, path): path {path!r} is not valid Unicode text (a lone "
                f"surrogate at position {position}), which no file name can hold as UTF-8; "
                "decode the text properly first"
            )


# Its __init__ is made by dataclass: a call with too few or too many arguments is our error too.
VmSource.__init__ = checked_arguments(VmSource.__init__)  # type: ignore[method-assign]


def db_file_name(db_id: str) -> str:
    """R2: ``cell-<hash of its id>.sqlite``."""
    return f"cell-{short_hash(db_id)}.sqlite"


@dataclass(frozen=True, slots=True)
class Declaration:
    db_id: str
    space_id: str
    path: Path
    schema: Schema | None
    version: int = 1
    migrate: Migrate | None = None
    kind: SourceKind = SourceKind.CELL
    # The name ``sqlite_database(name)`` was given outside a pattern (None otherwise, and for a
    # declaration rebuilt from a handle): recorded in the store at the first write (SPEC §6).
    # Not part of what a declaration is: the id derives from it (R1).
    name: str | None = field(default=None, compare=False)
    # Rebuilt from a committed handle value (a link to the handle reached it: a piece's database
    # input, a decoded link), not declared by this runtime: nothing says how it was declared.
    rebuilt: bool = field(default=False, compare=False)

    @property
    def table_names(self) -> frozenset[str] | None:
        """Declared table names (ASCII case folded, as SQLite compares names); None when the
        file's own schema applies."""
        return None if self.schema is None else self.schema.table_names

    def check_usable(self) -> None:
        if self.kind is SourceKind.VM:
            raise NotImplementedSource(
                f"database {self.db_id} lives in a VM: VM files are not supported yet; use "
                "space.sqlite_database() or register_disk_source() meanwhile"
            )

    def check_writable(self, doing: str = "write") -> None:
        """Raise unless the database may be written (``doing``: "drop" says what was refused
        for a drop)."""
        self.check_usable()
        if self.kind is SourceKind.DISK:
            instead = (
                "it is not the runtime's to drop: stop using the handle (the file stays where "
                "it is, the program's own)"
                if doing == "drop"
                else "write to a database declared with space.sqlite_database()"
            )
            raise ReadOnlySource(
                f"database {self.db_id} is an injected disk source ({self.path}) and is "
                f"read-only: {instead}"
            )

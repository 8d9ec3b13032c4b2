"""What the runtime knows of one database cell: its id, file, declared schema and source kind."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_cells.codec import NotImplementedSource, ReadOnlySource, short_hash
from sqlite_cells.schema._migrate import MigrationConnection
from sqlite_cells.schema._schema import Schema

__all__ = ["Declaration", "SourceKind", "VmSource", "db_file_name"]

Migrate = Callable[[MigrationConnection, int], None]


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

    @property
    def table_names(self) -> frozenset[str] | None:
        """Declared table names (lowercased); None when the file's own schema applies."""
        return None if self.schema is None else self.schema.table_names

    def columns_of(self, table: str) -> Sequence[str]:
        """Declared column order of ``table`` (for INSERT without a column list)."""
        declared = self.schema.table(table) if self.schema is not None else None
        if declared is None:
            raise LookupError(table)
        return declared.column_names

    def check_usable(self) -> None:
        if self.kind is SourceKind.VM:
            raise NotImplementedSource(
                f"database {self.db_id} lives in a VM: VM files are not supported yet; use "
                "space.sqlite_database() or register_disk_source() meanwhile"
            )

    def check_writable(self) -> None:
        self.check_usable()
        if self.kind is SourceKind.DISK:
            raise ReadOnlySource(
                f"database {self.db_id} is an injected disk source ({self.path}) and is "
                "read-only: write to a database declared with space.sqlite_database()"
            )

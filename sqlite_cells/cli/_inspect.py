"""Read-only inspection of a store, for ``sqlite-cells inspect`` and ``sqlite-cells query``.

Nothing here opens a runtime: each file is opened without ``SQLITE_OPEN_CREATE`` and with
``PRAGMA query_only`` (:func:`read_only`), each read is one read transaction, and no file or store
directory is ever created or left behind.

What a store holds, as this module reads it:

* ``space-*.sqlite``: one per space; ``_cf_meta`` key ``space_id`` names the space, ``_cf_cells``
  holds the cells (id, JSON value, rev = seq of the last write) and ``_cf_log`` the commits;
* database handle cells are the cells whose value is ``{"id": <the cell's own id>, "tables": {…},
  "rev": n}`` (R2); their files are ``cell-<hash of the id>.sqlite`` beside the space files, with
  the watermark (R70): the seq of the file's newest ``_cf_changes`` journal row, or
  ``_cf_watermark(id = 0, seq)`` when larger (``sqlite_cells.files.read_watermark``). A handle's
  ``rev`` column is the seq of the last commit that wrote the database, so it must equal the
  file's watermark.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import apsw

from sqlite_cells.codec import (
    DatabaseError,
    Quarantined,
    QueryError,
    QueryTimeout,
    SqliteCellsError,
    decode_value,
    derive_id,
)
from sqlite_cells.files import (
    DAMAGED_FILE,
    IN_USE_UNNAMED,
    SOURCE_OPEN,
    Action,
    DamagedSpace,
    HandleQuarantined,
    Outcome,
    SpaceFileDamaged,
    collect_garbage,
    damaged_spaces,
    database_seq,
    declaration_from_handle,
    foreign_owner,
    foreign_source,
    handle_shaped,
    handle_value,
    hot_journal_advice,
    io_failure,
    is_hot_journal,
    look_again,
    look_unlocked,
    open_unwritable,
    orphans,
    quick_check,
    read_watermark,
    rebuild_refusal,
    reconcile,
    recorded_pin,
    recorded_space_id,
    refused_writes,
    source_path,
    source_uri,
    space_damage,
    space_files,
    stands_instead,
    stored_json,
    strays,
    unopenable,
    unread_wal,
    unread_wal_advice,
)
from sqlite_cells.read import ReadPool, Rows, read_rows, stream_rows
from sqlite_cells.runtime import (
    DEFAULT_STORE,
    FORMAT_VERSION,
    STORE_ENV,
    busy_ms,
    check_cwd,
    describe,
    home_expanded,
    locale_decoded,
    odd_kind,
    out_of_files,
    shown_path,
    space_file_name,
    stored_format,
    surrogate_at,
    wait_for_locks,
)
from sqlite_cells.schema import Declaration, SourceKind, db_file_name, quote_ident
from sqlite_cells.sql import Mode, check_statement

__all__ = [
    "INDEX_REBUILD_ADVICE",
    "DamagedSpaceInfo",
    "DatabaseInfo",
    "InspectError",
    "NeedsRepair",
    "OrphanInfo",
    "QueryResult",
    "SpaceInfo",
    "StoreFormatError",
    "StoreInfo",
    "StoredTable",
    "StrayInfo",
    "TableInfo",
    "compare_unlocked",
    "damaged_file",
    "database_info",
    "default_store",
    "find_space",
    "inspect_store",
    "library_log_held",
    "moved_out_then_rebuilt",
    "name_text",
    "one_line",
    "orphan_advice",
    "query_store",
    "read_errors",
    "read_only",
    "refuse_newer_format",
    "row_count",
    "store_dir",
    "stored_tables",
    "table_names",
    "with_moved_source",
    "writes_refused_advice",
]

QUERY_TIMEOUT = 5.0


class InspectError(SqliteCellsError, LookupError):
    """The store, a space or a database asked for on the command line does not exist.
    ``kind`` is one of ``store-not-found``, ``space-not-found``, ``database-not-found``,
    ``unreadable``, ``locked`` (another connection kept a file locked for longer than the
    command waits), ``store-path`` (a store path that is not UTF-8 text), ``space-id-not-text``,
    ``store-format`` (:class:`StoreFormatError`)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class TableInfo:
    name: str
    rows: int | None  # None: SQLite cannot read it here (see row_count)
    declared: bool  # named in the handle's declared tables


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    id: str
    file: str  # the file name in the store; the absolute path of an injected file
    kind: str  # "cell" (owned by the runtime) or "disk" (an injected read-only file, R60)
    dropped: bool  # the handle says the database was dropped (its file is gone or going)
    exists: bool
    rev: int  # committed transactions that wrote it (the handle value's "rev")
    last_write_seq: int  # the seq of the last commit that wrote it (the handle cell's rev)
    watermark: int | None  # the file's watermark seq; None without a file or watermark
    declared_tables: tuple[str, ...]
    tables: tuple[TableInfo, ...]
    damage: str | None = None  # what SQLite's quick_check (or a read) found wrong in the file
    # Why the file could not be opened, when that says nothing of its rows (this user's
    # permissions, an I/O error, a process out of files): not damage, nothing to repair.
    unreadable: str | None = None
    # An injected file whose path now names another file than the one registered (R60): reads
    # refuse it, so it is not read here either.
    swapped: bool = False
    # Why the file is not the one its space wrote although their seqs agree (another store's
    # file of the same name, two files of one space swapped): what a runtime and ``check``
    # find under the same comparison, and quarantine (R71, R73).
    history: str | None = None
    # Why every write of it is refused although it is in sync with its space: another program
    # added what its declaration does not hold (``files.refused_writes``, what ``check`` says).
    writes_refused: str | None = None
    # With ``writes_refused``: why its space's log cannot rebuild its file (None: it can), so
    # that the advice says to move the file out for that rebuild only when it works.
    rebuild_refusal: str | None = None
    # What its space file's op index misses of the commits that wrote it (another program
    # changed the index): ``check`` finds it, and a runtime and ``query`` read the database
    # only once the index is rebuilt from the log (R71).
    index_incomplete: str | None = None
    # An injected file gone from its path that is registered again (same device and inode,
    # R60) at this path, with no cell of the store linking to this handle any more: the handle
    # is unused, nothing reads through it, so it is no finding (see :func:`with_moved_source`).
    moved_to: str | None = None

    @property
    def missing(self) -> bool:
        """The runtime wrote the database (its handle counts commits that did) but its file is
        gone: a runtime rebuilds it from the space's log before its next use (R71)."""
        return (
            self.kind == SourceKind.CELL.value
            and not self.exists
            and not self.dropped
            and self.rev > 0
        )

    @property
    def never_written(self) -> bool:
        """The runtime never wrote the database (its handle counts no commit that did: one
        dropped before its first write, whose drop wrote the handle)."""
        return self.kind == SourceKind.CELL.value and self.rev == 0

    @property
    def gone(self) -> bool:
        """An injected file (R60) no longer at its registered path: its queries fail until it
        is back (not one moved and registered again, whose handle nothing uses: ``moved_to``)."""
        return (
            self.kind == SourceKind.DISK.value
            and not self.exists
            and not self.dropped
            and self.moved_to is None
        )

    def source_finding(self, space: str) -> str | None:
        """What ``inspect`` finds of an injected file (R60) of space ``space`` that could not
        be read as the file registered — damaged, unreadable, gone or swapped — as
        :meth:`StoreInfo.findings` says it; None when it was read, or is no injected file."""
        if self.kind != SourceKind.DISK.value or self.dropped:
            return None
        if self.damage is not None:
            return _damaged_finding(space, self)
        if self.unreadable is not None:
            return _unreadable_finding(space, self)
        if self.gone:
            return _gone_finding(space, self)
        if self.swapped:
            return _swapped_finding(space, self)
        return None

    @property
    def in_sync(self) -> bool:
        """The file could be read whole and reflects exactly the space's last write to it
        (R70); for a dropped database, the last write before its drop (the drop writes
        nothing into the file), and one whose file is removed is in sync. Injected files are
        never written by the runtime and have no watermark: they count as in sync when they can
        be read."""
        if self.damage is not None or self.unreadable is not None or self.swapped:
            return False
        if self.history is not None or self.writes_refused is not None:
            return False
        if self.index_incomplete is not None:
            return False
        if self.kind == SourceKind.DISK.value:
            return self.exists
        if self.dropped and not self.exists:
            return True  # (its file removed by `gc --yes`): nothing left to disagree
        return self.exists and self.watermark == self.last_write_seq


@dataclass(frozen=True, slots=True)
class QuarantinedHandleInfo:
    """A database whose handle cell no runtime reads as a handle (R5): its queries and writes
    fail with ``HandleQuarantined``; nothing of it is read here."""

    id: str
    file: str  # its database file's name in the store (which may or may not exist)
    why: str

    def finding(self, space: str) -> str:
        return (
            f"database {self.id} of space {space!r} is quarantined: {self.why} (R5: written by "
            f"an older or foreign program); its file {self.file} is kept as it is: restore the "
            "handle value from a backup (a copy of the space file made before that value was "
            "written: `sqlite-cells check --repair` cannot rebuild it)"
        )


@dataclass(frozen=True, slots=True)
class SpaceInfo:
    id: str
    file: str
    cells: int
    last_seq: int
    databases: tuple[DatabaseInfo, ...]
    quarantined: tuple[QuarantinedHandleInfo, ...] = ()


def orphan_advice(name: str) -> str:
    """What to do about the orphaned database file ``name`` (``check`` and ``inspect``)."""
    return (
        "nothing was changed, and gc never removes it: if a space file of this store is "
        "reported as unreadable or damaged, it may be the one that names it: see to that "
        "file first; otherwise put back the space file that wrote it (from a backup), or move "
        f"{name} out of the store yourself"
    )


@dataclass(frozen=True, slots=True)
class OrphanInfo:
    """A database file that holds commits but that no readable space names
    (``sqlite_cells.files.orphans``, what ``check`` reports as orphaned)."""

    file: str
    watermark: int | None  # None: the file cannot be read as a database

    def finding(self) -> str:
        held = (
            "cannot be read as a database"
            if self.watermark is None
            else f"holds commits up to seq {self.watermark}"
        )
        return (
            f"orphaned database file {self.file}: it {held}, but no readable space of the "
            "store names it (the space file that wrote it is missing, was emptied or "
            f"replaced, or is damaged); {orphan_advice(self.file)}"
        )


# What each file SQLite writes beside a database file holds, said of one left without it.
_STRAY_KINDS = {
    "-wal": "a -wal (it may hold the last commits of that database: SQLite reads them only "
    "beside their own file, and deletes them when a new file of that name is made)",
    "-shm": "a -shm (SQLite's index of a -wal: it holds no rows)",
    "-journal": "a -journal (pages of that database file as they were before a write: they "
    "mean nothing without it)",
}


@dataclass(frozen=True, slots=True)
class StrayInfo:
    """A -wal, -shm or -journal with no database file beside it, which gc keeps
    (``sqlite_cells.files.Stray``)."""

    file: str
    suffix: str  # "-wal", "-shm" or "-journal"
    db_id: str | None  # the database a space names by its file, if any

    def finding(self) -> str:
        base = self.file.removesuffix(self.suffix)
        whose = f" (the file of database {self.db_id})" if self.db_id is not None else ""
        todo = (
            f"put it back as {base}, then run `sqlite-cells check`; otherwise move {self.file} "
            "out of the store yourself"
            if self.suffix == "-wal"
            else f"put it back as {base}; otherwise remove {self.file} yourself"
        )
        return (
            f"leftover file {self.file}: {_STRAY_KINDS[self.suffix]} with no database file "
            f"{base}{whose} beside it, which was removed or moved without it; nothing was "
            "changed, and gc never removes it: if you have that database file (moved away, or "
            f"in a backup), {todo}"
        )


@dataclass(frozen=True, slots=True)
class DamagedSpaceInfo:
    """A space file SQLite cannot read (``sqlite_cells.files.space_damage``), or cannot open
    for a reason that says nothing of its contents (``unreadable``: this user's permissions)."""

    file: str
    reason: str  # what SQLite said
    unreadable: bool
    advice: str  # what to do (``DamagedSpace.advice``)

    @classmethod
    def of(cls, damaged: DamagedSpace) -> DamagedSpaceInfo:
        return cls(damaged.path.name, damaged.reason, damaged.unreadable, damaged.advice)

    def finding(self) -> str:
        state = "cannot be opened" if self.unreadable else "is damaged"
        return f"space file {self.file} {state} ({self.reason}): {self.advice}"


def _damaged_finding(space: str, db: DatabaseInfo) -> str:
    return f"database {db.id} of space {space!r} is damaged ({db.damage}); " + (
        "it is another program's file (injected, R60), which no command repairs: "
        "restore it from that program or a backup, or register a readable copy"
        if db.kind == SourceKind.DISK.value
        else _REBUILDS
    )


def _unreadable_finding(space: str, db: DatabaseInfo) -> str:
    return (
        f"database {db.id} of space {space!r} cannot be read ({db.unreadable}); nothing was "
        "changed"
        + (
            ""  # an injected file's own words say what to do (R60)
            if db.kind == SourceKind.DISK.value
            else ": the file system refused a read or a write — a full disk, a file size "
            "limit, a failing device (SQLite writes a -shm beside a file it reads): free space "
            "or check the disk, then run the command again"
            if io_failure(db.unreadable or "")
            else ": let this user read and write the file (and its -wal and -shm), or free "
            "what stands in the way, then run the command again"
        )
    )


def _gone_finding(space: str, db: DatabaseInfo) -> str:
    instead = stands_instead(Path(db.file))
    if instead is not None:  # not gone: something else was put there (R60)
        return f"database {db.id} of space {space!r}: {instead}"
    return (
        f"database {db.id} of space {space!r}: the injected file {db.file} is gone (deleted or "
        "moved after it was registered): its queries fail until it is put back, or the file is "
        "registered again where it is now and every input linking to this handle is linked to "
        "it there (`sqlite-cells link`)"
    )


def with_moved_source(
    store: Path, db: DatabaseInfo, handles: list[tuple[str, dict[str, Any], Any]]
) -> DatabaseInfo:
    """``db``, an injected file gone from its path, with ``moved_to`` set when it was moved
    and registered again: another live handle of its space (among ``handles``) records the
    same file (its device and inode, R60), which is at that handle's path now, and no cell of
    any space of the store links to ``db`` any more (the inputs were linked again, as the
    finding of a gone file advises). A handle cannot be dropped (``ReadOnlySource``): listed as
    unused, it no longer makes every ``inspect`` a finding."""
    if db.kind != SourceKind.DISK.value or db.exists or db.dropped:
        return db
    pin = next((recorded_pin(h) for i, h, _ in handles if i == db.id), None)
    if pin is None:
        return db
    for other_id, other, _rev in handles:
        where = source_path(other)
        if other_id == db.id or where is None or other.get("dropped") is True:
            continue
        if recorded_pin(other) != pin or _pin_at(where) != pin:
            continue
        if _linked_anywhere(store, db.id):
            return db  # an input still reads through it: the finding stands
        return replace(db, moved_to=str(where))
    return db


def _pin_at(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def _linked_anywhere(store: Path, db_id: str) -> bool:
    """Whether a cell of a space of ``store`` other than the handle's own names ``db_id`` in
    its stored value (a link holds its target's id); True when a space file cannot be read
    (nothing is known of its links)."""
    needle = json.dumps(db_id).encode()
    for space_file in space_files(store):
        try:
            with read_only(space_file) as conn:
                row = conn.execute(
                    f"SELECT 1 FROM _cf_cells WHERE id != ? AND instr({as_bytes('value')}, ?) "
                    "LIMIT 1",
                    (db_id, needle),
                ).fetchone()
        except SqliteCellsError:
            return True
        if row is not None:
            return True
    return False


def _swapped_finding(space: str, db: DatabaseInfo) -> str:
    return (
        f"database {db.id} of space {space!r}: the path {db.file} now names another file than "
        "the one registered (swapped or replaced); reads refuse it (R60): register the file "
        "again (`sqlite-cells link`, or register_disk_source) if it is meant to be read"
    )


# What rebuilds a damaged or missing database file, and when (a compacted log may not hold it).
_REBUILDS = (
    "`sqlite-cells check --repair` rebuilds it from its space's log while the log holds its "
    "whole history (`sqlite-cells check` says whether it does)"
)


@dataclass(frozen=True, slots=True)
class StoreInfo:
    store: str
    spaces: tuple[SpaceInfo, ...]
    unreferenced_files: tuple[str, ...] = field(default=())  # cell-*.sqlite gc would remove
    orphaned_files: tuple[OrphanInfo, ...] = field(default=())
    damaged_space_files: tuple[DamagedSpaceInfo, ...] = field(default=())
    # Database files no space names that another connection held all through the look (a new
    # database's first write under way, R74): neither orphaned nor anything else, as yet.
    in_use_files: tuple[str, ...] = field(default=())
    # -wal, -shm and -journal files with no database file beside them that gc keeps.
    stray_files: tuple[StrayInfo, ...] = field(default=())

    def not_a_file(self, db: DatabaseInfo) -> bool:
        """Whether something that is not a regular file stands at ``db``'s path."""
        path = Path(self.store) / db.file
        return path.exists() and not path.is_file()

    def findings(self) -> list[str]:
        """What disagrees: each space file that cannot be read, each database file that is
        damaged or missing although its space wrote it, each whose watermark is not its
        space's last write, each orphaned one, and each -wal, -shm or -journal gc keeps that
        has no database file beside it."""
        damaged = [
            _damaged_finding(space.id, db)
            for space in self.spaces
            for db in space.databases
            if db.damage is not None and not db.dropped
        ]
        damaged += [
            _unreadable_finding(space.id, db)
            for space in self.spaces
            for db in space.databases
            if db.unreadable is not None and not db.dropped
        ]
        gone = [
            _gone_finding(space.id, db)
            for space in self.spaces
            for db in space.databases
            if db.gone
        ]
        behind_or_ahead = [
            f"database {db.id} of space {space.id!r}: "
            + (
                f"its file {db.file} holds no watermark, so no runtime wrote it (another "
                "program's file?) although its space last wrote the database at seq "
                f"{db.last_write_seq}; `sqlite-cells check` says whether it can be brought in "
                "line and what to do (R71)"
                if db.watermark is None
                else f"watermark {db.watermark} but the space last wrote it at seq "
                f"{db.last_write_seq}; "
                + (
                    "ahead by more than the one commit a crash leaves in flight, so no runtime "
                    "reconciles it: it is quarantined (R71); `sqlite-cells check` says why and "
                    "what to do"
                    if db.watermark > space.last_seq + 1
                    else "a runtime reconciles it before its next use (R71) when the space's "
                    "log still holds the commits that differ; `sqlite-cells check` says whether "
                    "it does"
                )
            )
            for space in self.spaces
            for db in space.databases
            if db.exists
            and db.damage is None
            and db.unreadable is None
            and not db.swapped
            and db.history is None
            and db.writes_refused is None
            and db.index_incomplete is None
            and not db.in_sync
            and not db.dropped
        ]
        missing = [
            f"database {db.id} of space {space.id!r}: its file {db.file} is missing, although "
            f"the space wrote it (last at seq {db.last_write_seq}); {_REBUILDS}"
            for space in self.spaces
            for db in space.databases
            if db.missing and not self.not_a_file(db)
        ]
        missing += [
            f"database {db.id} of space {space.id!r}: {db.file} is not a regular file (a "
            "directory or a named pipe stands where the database file belongs): move it out of "
            "the store, then `sqlite-cells check --repair` rebuilds the database from its "
            "space's log"
            for space in self.spaces
            for db in space.databases
            if db.missing and self.not_a_file(db)
        ]
        swapped = [
            _swapped_finding(space.id, db)
            for space in self.spaces
            for db in space.databases
            if db.swapped
        ]
        refused = [
            f"database {db.id} of space {space.id!r} ({db.file}): watermark {db.watermark}, "
            f"space seq {db.last_write_seq}: writes refused ({db.writes_refused}); "
            f"{writes_refused_advice(db.file, db.rebuild_refusal)}"
            for space in self.spaces
            for db in space.databases
            if db.writes_refused is not None
        ]
        index = [
            f"database {db.id} of space {space.id!r} ({db.file}): space file index incomplete "
            f"({db.index_incomplete}): {INDEX_REBUILD_ADVICE}"
            for space in self.spaces
            for db in space.databases
            if db.index_incomplete is not None
        ]
        quarantined = [q.finding(space.id) for space in self.spaces for q in space.quarantined]
        quarantined += [
            f"database {db.id} of space {space.id!r}: its file {db.file} has watermark "
            f"{db.watermark}, its space's last write to it, but is not the file its space wrote "
            f"({db.history}); a runtime quarantines it at its first use (R71, R73) and never "
            "serves its rows: `sqlite-cells check` says what to do"
            for space in self.spaces
            for db in space.databases
            if db.history is not None
        ]
        return (
            [d.finding() for d in self.damaged_space_files]
            + quarantined
            + damaged
            + missing
            + gone
            + swapped
            + refused
            + index
            + behind_or_ahead
            + [o.finding() for o in self.orphaned_files]
            + [f"database file {name}: {IN_USE_UNNAMED}" for name in self.in_use_files]
            + [stray.finding() for stray in self.stray_files]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "spaces": [
                {
                    "id": s.id,
                    "file": s.file,
                    "cells": s.cells,
                    "last_seq": s.last_seq,
                    "databases": [
                        {
                            "id": d.id,
                            "file": d.file,
                            "kind": d.kind,
                            "dropped": d.dropped,
                            "exists": d.exists,
                            # Not there though it should be: a database file its space
                            # wrote, or an injected file that is gone (the text says MISSING
                            # for both; "gone" tells the second apart).
                            "missing": d.missing or d.gone,
                            "gone": d.gone,
                            "moved_to": d.moved_to,
                            "rev": d.rev,
                            "last_write_seq": d.last_write_seq,
                            "watermark": d.watermark,
                            "in_sync": d.in_sync,
                            "damage": d.damage,
                            "unreadable": d.unreadable,
                            "swapped": d.swapped,
                            "history": d.history,
                            "writes_refused": d.writes_refused,
                            "index_incomplete": d.index_incomplete,
                            "declared_tables": list(d.declared_tables),
                            "tables": [
                                {"name": t.name, "rows": t.rows, "declared": t.declared}
                                for t in d.tables
                            ],
                        }
                        for d in s.databases
                    ],
                    "quarantined_handles": [
                        {"id": q.id, "file": q.file, "reason": q.why} for q in s.quarantined
                    ],
                }
                for s in self.spaces
            ],
            "unreferenced_files": list(self.unreferenced_files),
            "orphaned_files": [
                {"file": o.file, "watermark": o.watermark} for o in self.orphaned_files
            ],
            "damaged_space_files": [
                {"file": d.file, "reason": d.reason, "unreadable": d.unreadable}
                for d in self.damaged_space_files
            ],
            "in_use_files": list(self.in_use_files),
            "stray_files": [{"file": f.file, "db_id": f.db_id} for f in self.stray_files],
            "findings": self.findings(),
        }


@dataclass(frozen=True, slots=True)
class QueryResult:
    space: str
    db_id: str
    file: str
    seq: int  # the database's watermark, read in the same transaction as the rows
    rows: Rows
    columns: tuple[str, ...] = ()  # the statement's result columns (for a header without rows)
    # Read as they are taken (``query_store(..., stream=True)``): ``rows`` is empty, ``seq``
    # comes with each batch.
    batches: Generator[tuple[int, tuple[str, ...], Rows], None, None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "db_id": self.db_id,
            "file": self.file,
            "seq": self.seq,
            "rows": self.rows,
        }


def default_store() -> str:
    """The store a runtime would use without an argument (SPEC §2), not created here."""
    return os.environ.get(STORE_ENV) or DEFAULT_STORE


def _expanded(store: str | os.PathLike[str]) -> Path:
    """``store`` with a leading ``~`` expanded: :class:`InspectError` (``store-path``) when the
    system knows no such home directory."""
    try:
        path = home_expanded(os.fspath(store))
        check_cwd(path)  # (a relative path in a deleted current directory names no store)
    except SqliteCellsError as exc:
        raise InspectError("store-path", str(exc)) from None
    return path


def store_dir(store: str | os.PathLike[str]) -> Path:
    """The store directory ``store`` names, resolved, once it is known that the command can
    read it: :class:`InspectError` when it does not exist (``store-not-found``), when the
    system refuses its path (``store-path``: a name too long, a link loop, no permission on a
    directory above it) or when it cannot be listed or searched (``unreadable``). A store the
    command cannot list is never taken for an empty one."""
    path = _expanded(store)
    check_store_text(path)
    if not _store_exists(path):
        there = "" if not path.exists() else f" ({odd_kind(path) or 'a file'} stands there)"
        raise InspectError(
            "store-not-found",
            f"no store at {path}{there}: a store is a directory made by a runtime; pass its "
            f"path (or set ${STORE_ENV})",
        )
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop met while resolving
        raise InspectError("store-path", _refused_path(path, exc)) from exc
    check_store_text(resolved)  # a link may lead to a name that is not valid text
    _check_readable(resolved)
    return resolved


def _store_exists(path: Path) -> bool:
    """Whether ``path`` is a directory; False when nothing (or something else) is there. Raises
    :class:`InspectError` (``store-path``) when the system refuses to look (``path.is_dir()``
    raises a raw ``OSError`` for a name too long or a directory above it that may not be
    searched)."""
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise InspectError("store-path", _refused_path(path, exc)) from exc


def _refused_path(path: Path, exc: BaseException) -> str:
    what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        remedy = "give a shorter path (move the store, or use a symbolic link to it)"
    elif isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        remedy = (
            "you may not search a directory on the way to it: make the directories above the "
            "store searchable (chmod +x) for the user running sqlite-cells, or run it as their "
            "owner"
        )
    else:
        remedy = "check the path (and that its directories can be searched)"
    return f"the store path {shown_path(path)} cannot be looked up ({what}): {remedy}"


def _check_readable(root: Path) -> None:
    """Refuse a store directory the command cannot list (mode ``-wx``, ``000``: every listing
    would come back empty) or cannot search (mode ``rw-``: no file in it can be opened), naming
    it and what to do, before anything is read."""
    try:
        with os.scandir(root) as entries:
            next(entries, None)  # reading an entry is what a directory without `r` refuses
        os.stat(os.path.join(root, "."))  # a name looked up in it: what one without `x` refuses
    except OSError as exc:
        what = exc.strerror or str(exc)
        raise InspectError(
            "unreadable",
            f"the store directory {shown_path(root)} cannot be read ({what}): nothing in it "
            "can be listed or opened, so nothing was read. Make it readable and searchable "
            "by the user running sqlite-cells (as its owner: chmod u+rwx on the directory), "
            "or run sqlite-cells as a user who may read it",
        ) from exc


def check_store_text(path: Path) -> None:
    """SQLite opens files by their UTF-8 names: a store path holding a lone surrogate (a byte
    of the file system's name that is not UTF-8) can be read by no command."""
    position = surrogate_at(str(path))
    if position is not None:
        raise InspectError(
            "store-path",
            locale_decoded("the store path", str(path))
            or f"the store path {str(path)!r} is not valid Unicode text (a byte that is not UTF-8 "
            f"at position {position}): SQLite opens files by their UTF-8 names; rename the "
            "directory (or copy the store to a directory whose name is UTF-8 text)",
        )


class StoreFormatError(InspectError):
    """A space file of the store records a store format this version does not read: a newer
    one, or no version number at all (R73). ``kind`` is ``store-format``."""

    def __init__(self, message: str) -> None:
        super().__init__("store-format", message)


def refuse_newer_format(store: str | os.PathLike[str]) -> None:
    """Raise :class:`StoreFormatError` when a space file of ``store`` records a
    store format this version does not read, as opening it with the library would (R73): what
    this version would list, query, check or collect there could be wrong, and a repair or a
    ``gc`` could destroy what the newer format means. A store that does not exist and a space
    file that cannot be read are left to the command, which reports them as it always does."""
    root = _expanded(store)
    check_store_text(root)
    if not _store_exists(root):
        return
    root = store_dir(root)
    for path in space_files(root):
        try:
            with read_only(path) as conn:
                if "_cf_meta" not in table_names(conn):
                    continue
                try:
                    found = stored_format(conn, path)
                except DatabaseError as exc:
                    raise StoreFormatError(str(exc)) from None
        except StoreFormatError:
            raise
        except InspectError:
            continue
        if found is not None and found > FORMAT_VERSION:
            raise StoreFormatError(
                f"{path} is in store format {found}, but this sqlite-cells reads format "
                f"{FORMAT_VERSION}: a newer sqlite-cells wrote it; upgrade sqlite-cells "
                "(pip install -U sqlite-cells) to use this store (nothing was read or changed)",
            )


@contextmanager
def read_only(path: Path, *, source: bool = False) -> Iterator[apsw.Connection]:
    """A connection to the existing file ``path`` that cannot write (``query_only``), inside one
    read transaction. It is opened without ``SQLITE_OPEN_CREATE``, so a missing file is an error,
    never a new one. Where the file may be opened for writing, it is, because a connection opened
    ``SQLITE_OPEN_READONLY`` on a WAL file leaves the ``-wal``/``-shm`` companions it had to create
    behind (it may not remove them), while a writable one removes them when it is the last to
    close; a file that cannot be opened for writing is opened read-only.

    ``source``: ``path`` is another program's file injected as a source (R60). It is opened as
    the runtime's reads open it (``source_uri``): read-only, nothing created beside it, and a
    transaction its program left unfinished (a hot journal) never rolled back."""
    if source and unread_wal(path):  # read as it is, it would show older rows (R60)
        raise InspectError("unreadable", unread_wal_advice(path))
    try:
        if source:
            conn = apsw.Connection(source_uri(path), flags=SOURCE_OPEN)
        else:
            conn = open_unwritable(path)
    except apsw.Error as exc:
        raise InspectError("unreadable", describe(exc, str(path))) from exc
    try:
        with read_errors(path):
            wait_for_locks(conn, 5_000)
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
    finally:
        conn.close()


@contextmanager
def read_errors(path: Path) -> Iterator[None]:
    """SQLite's errors while reading ``path`` as :class:`InspectError`: a lock another
    connection kept too long (``locked``), else a file that cannot be read (``unreadable``).
    :func:`read_only` reads inside it; so does a reader that keeps its connection open past
    one ``with`` block (``Namer.value``)."""
    try:
        yield
    except (apsw.BusyError, apsw.LockedError) as exc:
        raise InspectError("locked", locked(path)) from exc
    except apsw.Error as exc:
        if is_hot_journal(exc):  # an injected file (R60): see read_only
            raise InspectError("unreadable", hot_journal_advice(path)) from exc
        raise InspectError("unreadable", _unreadable(path, exc)) from exc


def locked(path: Path | str) -> str:
    """What to say of a file another connection kept locked for longer than the command
    waits: no damage, only a wait."""
    return (
        f"{path} stayed locked by another connection (a program holding the store's files in "
        "an exclusive transaction) for as long as this command waits: nothing was read; try "
        "again once that connection lets go"
    )


def _source_locked(path: Path) -> str:
    """What to say of an injected file (R60) its own program kept locked (in the middle of a
    write) for longer than the command waits: nothing of it was read, nothing is wrong with it,
    and the store's own files are not what is held."""
    return (
        f"the injected file {path} stayed locked by another program (the one that writes it, "
        "in the middle of a write) for as long as this command waits: its tables and rows were "
        "not read; try again once that program lets go"
    )


def as_bytes(column: str) -> str:
    """``column`` selected so that a text value comes as its bytes: SQLite hands text that is
    not valid UTF-8 (another program wrote it) to Python as it is, and decoding it there fails
    for the whole statement. :func:`decoded` reads it back."""
    return f"iif(typeof({column}) = 'text', CAST({column} AS BLOB), {column})"


def decoded(data: Any) -> str | None:
    """The text a column selected with :func:`as_bytes` holds (any other value as ``str``);
    None when it is not valid UTF-8."""
    if type(data) is not bytes:
        return str(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def shown(data: Any) -> str:
    """``data`` (selected with :func:`as_bytes`) as text to show: text that is not valid UTF-8
    as the hex of its bytes, so that a row another program wrote is listed as what it is."""
    text = decoded(data)
    return text if text is not None else f"{_NOT_UTF8}{bytes(data).hex()}'>"


_NOT_UTF8 = "<not UTF-8 text: x'"


def name_text(data: Any) -> str:
    """A column's or index's name (selected with :func:`as_bytes`) for a line of text that
    lists several with their types: a plain identifier as it is, any other name (one holding a
    comma, a space, a quote, or an SQL keyword) double-quoted as SQL writes it, so that one name
    never reads as several. A name that is not UTF-8 is shown as :func:`shown` gives it —
    decided from its bytes, not from that text, which a real name may read like."""
    name = decoded(data)
    if name is None:
        return shown(data)
    if _PLAIN_NAME.fullmatch(name) and name.upper() not in apsw.keywords:
        return name
    return quote_ident(name)


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@contextmanager
def library_log_held() -> Iterator[None]:
    """The library's own log lines held back: the command prints each finding once, with what
    to do about it."""
    library_log = logging.getLogger("sqlite_cells")
    was_disabled = library_log.disabled
    library_log.disabled = True
    try:
        yield
    finally:
        library_log.disabled = was_disabled


@dataclass(frozen=True, slots=True)
class StoredTable:
    """A table of a file: its name as the file holds it (``raw``), and as text to show
    (``name``, :func:`shown`)."""

    raw: bytes
    name: str

    def reserved(self) -> bool:
        """Whether the name is SQLite's or the runtime's own (its prefix in any ASCII case)."""
        return self.raw.lower().startswith((b"_cf_", b"sqlite_"))


def stored_tables(conn: apsw.Connection, kind: str = "table") -> list[StoredTable]:
    """The tables of the file (``kind="view"``: its views), in name order. Another program may
    have named a table with text that is not valid UTF-8 (an injected file, R60): SQLite hands
    it over as it is, and decoding it failed for the whole listing; such a name is shown as its
    bytes, and kept as it is, to be bound where SQLite takes a name as a value
    (``pragma_table_info(?)``, :func:`row_count`)."""
    return [
        StoredTable(raw if type(raw) is bytes else str(raw).encode(), shown(raw))
        for (raw,) in conn.execute(
            f"SELECT {as_bytes('name')} FROM sqlite_schema WHERE type = ? ORDER BY name",
            (kind,),
        )
    ]


def table_names(conn: apsw.Connection) -> list[str]:
    return [table.name for table in stored_tables(conn)]


def row_count(conn: apsw.Connection, table: StoredTable) -> int | None:
    """The rows of ``table``; None for a table SQLite cannot read here (a virtual table of an
    injected file whose module — an extension of its program — is not loaded, R60): that is no
    damage, and the file's other tables are read. A name that is not UTF-8 cannot be written in
    a statement (SQL text is UTF-8), so that table's rows are counted as the cells of its
    b-tree (``dbstat``, which takes the name as a value): a rowid table's rows are its leaf
    cells, a WITHOUT ROWID table's are its leaf and interior cells."""
    text = decoded(table.raw)
    if text is not None:
        try:
            count = conn.execute(f"SELECT count(*) FROM {quote_ident(text)}").fetchone()
        except apsw.SQLError:
            return None
        return int(count[0]) if count else 0
    found = conn.execute(
        "SELECT wr FROM pragma_table_list(CAST(? AS TEXT))", (table.raw,)
    ).fetchone()
    pages = ("leaf", "internal") if found is not None and found[0] else ("leaf",)
    count = conn.execute(
        "SELECT coalesce(sum(ncell), 0) FROM dbstat WHERE name = CAST(? AS TEXT) "
        f"AND pagetype IN ({', '.join('?' * len(pages))})",
        (table.raw, *pages),
    ).fetchone()
    return int(count[0]) if count else 0


def database_info(store: Path, db_id: str, handle: dict[str, Any], last_write: int) -> DatabaseInfo:
    """What ``inspect`` finds of database ``db_id`` of the store ``store`` (its handle's value
    ``handle``, written last at seq ``last_write``): its file read whole, read-only, its
    tables and rows, and what keeps it from being read (damage, an unreadable, gone or swapped
    injected file), which does not stop the listing of the others."""
    source = source_path(handle)
    path = source if source is not None else store / db_file_name(db_id)
    declared = tuple(sorted(str(name) for name in handle["tables"]))
    watermark: int | None = None
    tables: list[TableInfo] = []
    exists = path.is_file()
    damage: str | None = None
    unreadable: str | None = None
    swapped = source is not None and exists and _swapped(path, handle)
    if exists and not swapped:
        try:
            with read_only(path, source=source is not None) as conn:
                if source is None and handle.get("dropped") is not True:
                    damage = quick_check(conn)
                stored = stored_tables(conn)
                if "_cf_watermark" in (table.name for table in stored):
                    watermark = read_watermark(conn)
                elif source is None and not stored:
                    # A file of no tables: one whose first write a crash kept out (the space
                    # committed it, the file not yet), which no commit reached: behind, as
                    # `check` and a runtime find it (R71), not another program's file.
                    watermark = 0
                lowered = {d.lower() for d in declared}
                for table in stored:
                    if table.reserved():
                        continue
                    rows = row_count(conn, table)
                    tables.append(TableInfo(table.name, rows, table.name.lower() in lowered))
        except InspectError as exc:  # the file cannot be read whole: say so, go on with the rest
            if exc.kind == "locked" and source is None:
                raise  # a lock is no damage: the command says so and to try again
            cause = exc.__cause__
            if exc.kind == "locked":  # another program's file, held by it: not the store's
                unreadable = _source_locked(path)
            elif source is not None and cause is not None and is_hot_journal(cause):
                unreadable = hot_journal_advice(path)  # no damage: its program rolls it back
            elif source is not None and cause is None:  # refused before SQLite read it
                unreadable = str(exc)
            elif damage is None and isinstance(cause, apsw.Error) and not unopenable(path, cause):
                unreadable = f"cannot open {path}: {cause}"
            else:
                if damage is None and source is not None:  # (the store's advice is not for it)
                    damage = f"cannot read {path}: {cause or exc}"
                damage = damage if damage is not None else str(exc)
    return DatabaseInfo(
        id=db_id,
        file=str(path) if source is not None else path.name,
        kind=SourceKind.DISK.value if source is not None else SourceKind.CELL.value,
        dropped=handle.get("dropped") is True,
        exists=exists,
        rev=int(handle["rev"]),
        last_write_seq=last_write,
        watermark=watermark,
        declared_tables=declared,
        tables=tuple(tables),
        damage=damage,
        unreadable=unreadable,
        swapped=swapped,
    )


def _swapped(path: Path, handle: dict[str, Any]) -> bool:
    """Whether the injected file at ``path`` is another file than the one its handle records
    as registered (R60); a handle without a pin (written before pins were recorded) cannot
    tell, and reads pin the file they first see."""
    pin = recorded_pin(handle)
    if pin is None:
        return False
    try:
        found = path.stat()
    except OSError:
        return False  # gone meanwhile: the read reports it
    return (found.st_dev, found.st_ino) != pin


def store_file_names(root: Path) -> frozenset[str]:
    """The names in the store folder (one listing, for :func:`classify_cell`)."""
    try:
        return frozenset(entry.name for entry in os.scandir(root))
    except OSError:
        return frozenset()


def classify_cell(
    cell_id: str | None, data: Any, rev: Any, files: frozenset[str], space_id: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """What a ``_cf_cells`` row is to the commands: ``(handle, None)`` for a database's handle
    a runtime reads; ``(None, why)`` for a database whose handle cell holds no handle a runtime
    reads (R5: quarantined, written by an older or foreign program) — its value has a handle's
    shape, its row's revision is not an integer, it names an injected file that is not its own
    (given the cell's ``space_id``, see ``files.foreign_source``), or its database's file
    stands in the store (``files``, see :func:`store_file_names`); ``(None, None)`` for every
    other cell."""
    if cell_id is None:
        return None, None
    stored = stored_json(data)
    handle = handle_value(cell_id, stored) if stored is not None else None
    if handle is not None:
        foreign = foreign_source(cell_id, space_id, handle)
        if foreign is not None:
            return None, foreign
        if type(rev) is int:
            return handle, None
        return None, (
            f"its handle cell's row has the revision {shown(rev)!r}, which is not an integer"
        )
    if (stored is not None and handle_shaped(cell_id, stored)) or db_file_name(cell_id) in files:
        return None, "its handle cell holds a value that is not a database handle"
    return None, None


def read_handles(
    conn: apsw.Connection, files: frozenset[str]
) -> tuple[list[tuple[str, dict[str, Any], int]], list[QuarantinedHandleInfo], int]:
    """The handles in the space file open on ``conn`` (id, value, its row's revision), the
    databases whose handle cell holds none, and how many cells it holds. A row another program
    wrote (no JSON, text that is not UTF-8, a revision that is not an integer) is no handle a
    runtime would use: it quarantines such a database (R5, :func:`classify_cell`)."""
    handles: list[tuple[str, dict[str, Any], int]] = []
    quarantined: list[QuarantinedHandleInfo] = []
    cells = 0
    space_id = recorded_space_id(conn)
    for raw_id, data, rev in conn.execute(
        f"SELECT {as_bytes('id')}, {as_bytes('value')}, rev FROM _cf_cells ORDER BY id"
    ):
        cells += 1
        cell_id = decoded(raw_id)
        handle, why = classify_cell(cell_id, data, rev, files, space_id)
        if handle is not None and cell_id is not None:
            handles.append((cell_id, handle, rev))
        elif why is not None and cell_id is not None:
            quarantined.append(QuarantinedHandleInfo(cell_id, db_file_name(cell_id), why))
    return handles, quarantined, cells


def _space(store: Path, path: Path, files: frozenset[str]) -> SpaceInfo:
    with read_only(path) as conn:
        names = set(table_names(conn))
        if not {"_cf_meta", "_cf_cells", "_cf_log"} <= names:
            raise InspectError("unreadable", f"{path} is not a space file (no _cf_ tables)")
        row = conn.execute(
            f"SELECT {as_bytes('value')} FROM _cf_meta WHERE key = 'space_id'"
        ).fetchone()
        space_id = shown(row[0]) if row else "?"
        handles, quarantined, cells = read_handles(conn, files)
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM _cf_log").fetchone()
        last_seq = int(last[0]) if last else 0
        # A handle's row was written last by the drop of its database, which writes nothing
        # into its file: the last write to the file is the commit before (R70), none (0) for
        # a database dropped before its first write (its handle counts no write).
        last_writes = [
            (db_id, h, _last_write_before_drop(conn, db_id, h) if _dropped(h) else rev)
            for db_id, h, rev in handles
        ]
    databases = tuple(
        _refused_writes(
            path, _same_history(path, _look_again(path, db) if _disagrees(db) else db), h
        )
        for db, h in (
            (with_moved_source(store, database_info(store, db_id, h, w), handles), h)
            for db_id, h, w in last_writes
        )
    )
    return SpaceInfo(space_id, path.name, cells, last_seq, databases, tuple(quarantined))


def _dropped(handle: dict[str, Any]) -> bool:
    return handle.get("dropped") is True


def _last_write_before_drop(conn: apsw.Connection, db_id: str, handle: dict[str, Any]) -> int:
    """The seq of the last commit that wrote the file of the dropped database ``db_id``; 0 when
    none did (dropped before its first write: its handle counts no write, R32)."""
    return database_seq(conn, db_id) if handle.get("rev") else 0


def _look_again(path: Path, db: DatabaseInfo) -> DatabaseInfo:
    """``db`` as its space file at ``path`` and its own file agree once a commit on its way
    between them has landed (``files.look_again``: read without any lock, R70)."""
    if db.watermark is None:
        return db

    def file_seq() -> int:
        with read_only(path.parent / db.file) as conn:
            return read_watermark(conn)

    def space_seq() -> int:
        with read_only(path) as conn:
            row = conn.execute("SELECT rev FROM _cf_cells WHERE id = ?", (db.id,)).fetchone()
        return row[0] if row is not None and type(row[0]) is int else db.last_write_seq

    watermark, last_write = look_again(
        db.last_write_seq, db.watermark, file_seq=file_seq, space_seq=space_seq
    )
    return replace(db, watermark=watermark, last_write_seq=last_write)


def _same_history(path: Path, db: DatabaseInfo) -> DatabaseInfo:
    """``db``, whose watermark is its space's last write to it, with ``history`` set when the
    file nevertheless holds another history: the comparison a runtime and ``check`` make
    before a first use (``files.look_unlocked``: the changesets of that commit in the file's
    journal and in the space's log), read without any lock and without writing; with
    ``index_incomplete`` set when that comparison finds the space file's op index missing a
    commit of the database (it is rebuilt before anything else is compared); with ``damage``
    set when that look finds the file damaged although its seqs agree (a declared table
    another program dropped), as ``check`` and a runtime's first use find it."""
    if not db.in_sync or db.kind != SourceKind.CELL.value or db.dropped:
        return db
    with read_errors(path):
        found = look_unlocked(path, db.id, path.parent / db.file, busy_ms=5_000)
    if found.action is Action.INDEX_INCOMPLETE:
        return replace(db, index_incomplete=found.detail)
    detail = found.detail or ""
    if found.action is Action.DAMAGED or (
        found.action is Action.QUARANTINED and detail.startswith(DAMAGED_FILE)
    ):
        return replace(db, damage=one_line(detail))
    if found.action is not Action.QUARANTINED:
        return db
    return replace(db, history=found.detail or "another history than its space's log")


def _refused_writes(path: Path, db: DatabaseInfo, handle: dict[str, Any]) -> DatabaseInfo:
    """``db``, in sync with its space (file ``path``), with ``writes_refused`` set when its
    file holds what its handle's declaration does not, in ways no write adds: what ``check``
    finds of it (``files.refused_writes``), read without writing."""
    if not db.in_sync or db.kind != SourceKind.CELL.value or db.dropped:
        return db
    with read_only(path.parent / db.file) as conn:
        why = refused_writes(conn, db.id, handle["tables"], path)
    if why is None:
        return db
    with read_only(path) as conn:
        refusal = rebuild_refusal(conn, db.id, db.last_write_seq)
    return replace(db, writes_refused=why, rebuild_refusal=refusal)


# What to do about a space file whose op index misses a commit of a database (``check`` and
# ``inspect``).
INDEX_REBUILD_ADVICE: Final = (
    "run `sqlite-cells check --repair` to rebuild the index from the space's log (which "
    "holds the commits), then compare the database with it"
)


def writes_refused_advice(name: str, refusal: str | None) -> str:
    """What to do about the database file ``name`` whose every write is refused although its
    rows agree with its space (``check`` and ``inspect``): ``refusal``, why its space's log
    cannot rebuild the file (None: it can, and moving the file out for that rebuild works)."""
    said = (
        "nothing was changed, and `--repair` does not change it: its rows agree with its "
        "space and are read, but another program changed the file (see why), and "
        "every write of it is refused. Drop or undo what it changed in a `migrate` (bump "
        "version=)"
    )
    if refusal is not None:
        return (
            f"{said}, or undo it with another tool; do not move {name} out of the store: its "
            f"space's log cannot rebuild it ({refusal})"
        )
    return f"{said}, or move {moved_out_then_rebuilt(name)}"


def moved_out_then_rebuilt(name: str) -> str:
    """The way out of a database file ``name`` that no repair brings in line where it stands,
    after "move": the file set aside, and the database rebuilt from its space's log."""
    return (
        f"{name} (and its -wal, if any) out of the store, keeping it, then run `sqlite-cells "
        "check --repair`, which rebuilds the database from its space's log"
    )


def _disagrees(db: DatabaseInfo) -> bool:
    return (
        db.exists
        and db.damage is None
        and db.unreadable is None
        and not db.dropped
        and not db.in_sync
    )


def inspect_store(store: str | os.PathLike[str]) -> StoreInfo:
    """Everything :class:`StoreInfo` lists about ``store``, read without writing anything.
    A space file that cannot be read for damage is listed as such, and the rest is read all
    the same. Raises :class:`InspectError` when the store does not exist or a file cannot be
    read for another reason."""
    root = store_dir(store)
    damaged = {d.path: d for d in damaged_spaces(root)}
    spaces: list[SpaceInfo] = []
    files = store_file_names(root)
    for path in space_files(root):
        if path in damaged:
            continue
        try:
            spaces.append(_space(root, path, files))
        except InspectError as exc:
            reason = space_damage(exc.__cause__) if exc.__cause__ is not None else None
            if reason is None:
                raise
            damaged[path] = DamagedSpace(path, reason)
    unreferenced = tuple(p.name for p in collect_garbage(root))  # what gc would remove
    busy: set[Path] = set()
    unnamed = orphans(root, busy)
    return StoreInfo(
        str(root),
        tuple(sorted(spaces, key=lambda s: s.id)),
        unreferenced,
        tuple(OrphanInfo(p.name, seq) for p, seq in unnamed if p not in busy),
        tuple(DamagedSpaceInfo.of(d) for _, d in sorted(damaged.items())),
        tuple(p.name for p, _ in unnamed if p in busy),
        tuple(StrayInfo(f.path.name, f.suffix, f.db_id) for f in strays(root)),
    )


def find_space(root: Path, space_id: str) -> Path:
    """The file of space ``space_id`` in the store ``root``. Raises :class:`InspectError` when
    no file records that space, or when the file that does, or the one named for it, is
    another space's file under another name (as ``check`` and a runtime refuse it: its rows
    are not the space's)."""
    unnamed: list[str] = []  # space files whose space id is not UTF-8 text
    unread: list[str] = []  # other spaces' files that cannot be read now (damaged, locked…)
    alike: list[str] = []  # spaces whose id is this one in another Unicode form
    own = root / space_file_name(space_id)
    # The file named for the space first: it is the space's unless it says otherwise, and
    # the other spaces' files are read only when it is not there — one of them that cannot be
    # read says nothing of this space (`cells` and `tables` list what they can read too).
    for path in sorted(space_files(root), key=lambda found: found != own):
        try:
            with read_only(path) as conn:
                if "_cf_meta" not in table_names(conn):
                    continue
                row = conn.execute(
                    f"SELECT {as_bytes('value')} FROM _cf_meta WHERE key = 'space_id'"
                ).fetchone()
                owner = foreign_owner(conn, path)
        except InspectError:
            if path == own:
                raise
            unread.append(path.name)
            continue
        recorded = decoded(row[0]) if row is not None else None
        if recorded is not None and recorded != space_id and _alike(recorded, space_id):
            alike.append(recorded)
        if row is not None and recorded is None:
            unnamed.append(path.name)
        elif owner is not None and (recorded == space_id or path.name == space_file_name(space_id)):
            raise InspectError("damaged", damaged_file(path, owner))
        elif recorded == space_id:
            return path
    path = own
    kind = odd_kind(path)
    if kind is not None:  # (left out of space_files: nothing of ours to read there)
        raise InspectError(
            "unreadable",
            f"cannot read {path}: {kind} stands where the space file of space {space_id!r} "
            "belongs; `sqlite-cells check` says what to do",
        )
    if path.is_file():
        # The space's own file did not say it is the space's: damage SQLite reads as rows of
        # NULLs (its space_id row among them) is said as damage, not as no such space.
        with read_only(path) as conn:
            problem = quick_check(conn)
        if problem is not None:
            raise InspectError(
                "damaged", damaged_file(path, problem, f", the space file of space {space_id!r}")
            )
    also = (
        f" ({', '.join(unnamed)} holds a space id that is not valid UTF-8 text in its "
        "_cf_meta row 'space_id', written by another program: restore that file from a "
        "backup, or move it out of the store)"
        if unnamed
        else ""
    )
    if unread:
        also += (
            f" ({', '.join(unread)} could not be read, and may be its file: `sqlite-cells "
            "check` says what is wrong with it and what to do)"
        )
    for other in sorted(alike):
        also += f" ({_spelled_apart('space', other, space_id)})"
    raise InspectError(
        "space-not-found",
        f"no space {space_id!r} in {root}: `sqlite-cells inspect` lists them{also}",
    )


def _alike(one: str, other: str) -> bool:
    """Whether two names are one text in two Unicode forms (composed and decomposed, or a
    compatibility character such as 'ﬁ') or in another case ('Demo', 'demo'): they name two
    entities (R1), and a name typed from memory or another program's listing is easily one for
    the other."""
    return _folded(one) == _folded(other)


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _spelled_apart(kind: str, held: str, given: str) -> str:
    if unicodedata.normalize("NFKC", held) != unicodedata.normalize("NFKC", given):
        how = "only by case" if held.casefold() == given.casefold() else "by case and code points"
        return (
            f"the store holds the {kind} {held!a}, which differs from {given!a} {how}; names "
            f"are compared as written, case too: give the {kind} as the store spells it"
        )
    return (
        f"the store holds the {kind} {held!a}, which is {given!a} written with other Unicode "
        f"code points; names are compared as written: give the {kind} as the store spells it"
    )


def query_store(
    store: str | os.PathLike[str],
    space_id: str,
    database: str,
    sql: str,
    params: tuple[Any, ...] | dict[str, Any] = (),
    *,
    timeout: float = QUERY_TIMEOUT,
    timeout_setting: str = "timeout",
    stream: bool = False,
) -> QueryResult:
    """Run one guarded read (R20–R24) on a database of ``space_id``. ``database`` is the name
    given to ``space.sqlite_database(name)`` at top level, or a raw ``of:…`` id (for databases
    of patterns and injected files). The statement passes the guard, then runs on a read-only
    connection under the read authorizer with the runtime's read path (timeout, length limit).
    Before that the database is compared with its space as a runtime's first look does (R71,
    :func:`_first_look`): one that disagrees is never read, and nothing is repaired here.

    ``params`` binds the statement's parameters (a tuple for ``?``, a dict for ``:name``);
    ``timeout`` is the read's deadline in seconds (R44); a read past it names it as
    ``timeout_setting`` (the command line's ``--timeout``).

    With ``stream``, a database cell's rows are not read here: the result's ``batches`` read
    them (``(seq, names, rows)`` per batch, in one read transaction) as they are taken, and an
    error of the read is raised there (an injected file is read whole all the same: its read
    may be made again when its program wrote it meanwhile, R60).

    Raises :class:`GuardViolation` for a refused statement, :class:`QueryError` when it fails,
    :class:`InspectError` when the store, the space or the database file does not exist,
    :class:`Quarantined` for a database a runtime could not repair and :class:`NeedsRepair`
    for one it would repair before reading it."""
    root = store_dir(store)
    check_statement(sql, Mode.READ)
    space_file = find_space(root, space_id)
    db_id = _database_id(space_file, space_id, database)
    with read_only(space_file) as conn:
        row = conn.execute(
            f"SELECT {as_bytes('value')}, rev FROM _cf_cells WHERE id = ?", (db_id,)
        ).fetchone()
    data = stored_json(row[0]) if row is not None else None
    handle = handle_value(db_id, data) if data is not None else None
    if row is not None and handle is None:
        if not _names_a_database(root, space_file, db_id, data):
            named = db_id if database == db_id else f"{database!r} ({db_id})"
            raise InspectError(
                "not-a-database",
                f"{named} names a cell of space {space_id!r}, not a database: "
                "`sqlite-cells cells` lists each cell with its kind; give a database's name "
                "or id",
            )
        # R5: a database's handle that does not decode, as a runtime refuses it.
        raise HandleQuarantined(db_id, _shown_value(data) if data is not None else row[0])
    if row is not None and type(row[1]) is not int:
        raise HandleQuarantined(
            db_id,
            row[1],
            why=f"its handle cell's row in {space_file} has the revision {row[1]!r}, which is "
            "not an integer (written by another program)",
        )
    if handle is not None and handle.get("dropped") is True:
        named = db_id if database == db_id else f"{database!r} ({db_id})"
        raise InspectError("database-not-found", f"database {named} was dropped: it has no rows")
    if handle is None:
        path = root / db_file_name(db_id)
        if path.exists():
            # Only a space's handle makes a file its database: a runtime reads no other.
            raise InspectError(
                "database-not-found",
                f"space {space_id!r} has no database {database!r} ({db_id}): the file "
                f"{path.name} exists, but no handle of this space names it (a database of "
                "another space, or an orphaned file); `sqlite-cells inspect` lists the "
                "databases of each space, and orphaned files",
            )
        alike = _database_alike(space_file, space_id, database)
        if alike:
            # Not "never written": the name the store holds was, and the one given names
            # another database (R1).
            raise InspectError(
                "database-not-found",
                f"no database {database!r} ({db_id}) in space {space_id!r}: {alike}",
            )
        raise InspectError("database-not-found", _never_written(database, db_id, space_id))
    # The declared tables apply (R41: declared but never materialized reads as empty), or
    # for an injected file its own tables, re-checked against the path rules (R60).
    decl = declaration_from_handle(handle, db_id, space_id, store=root, roots=None)
    if decl.kind is SourceKind.CELL:
        _first_look(space_file, db_id, database, decl.path, sql, timeout=timeout)
    if decl.kind is SourceKind.CELL and not decl.path.is_file():
        raise InspectError("database-not-found", _never_written(database, db_id, space_id))
    columns = _result_columns(decl, sql, params)
    _refuse_repeated_columns(db_id, sql, columns)
    pin = recorded_pin(handle)  # R60: the file the handle registered is the file read
    if not stream or decl.kind is not SourceKind.CELL:
        rows, seq = _read_whole(decl, pin, sql, params, timeout, timeout_setting)
        return QueryResult(
            space_id, db_id, decl.path.name, seq, rows, columns or (tuple(rows[0]) if rows else ())
        )
    batches = _read_streamed(decl, pin, sql, params, timeout, timeout_setting)
    return QueryResult(space_id, db_id, decl.path.name, 0, [], columns, batches)


def _one_reader(decl: Declaration, pin: Any, timeout_setting: str) -> ReadPool:
    """The pool of one reader a command's read runs on, holding the file's pin if it has one."""
    pool = ReadPool(1, timeout_setting=timeout_setting)
    if pin is not None:
        pool.pins.adopt(decl.db_id, pin)
    return pool


def _read_whole(
    decl: Declaration,
    pin: Any,
    sql: str,
    params: tuple[Any, ...] | dict[str, Any],
    timeout: float,
    timeout_setting: str,
) -> tuple[list[dict[str, Any]], int]:
    pool = _one_reader(decl, pin, timeout_setting)
    try:
        return read_rows(pool, decl, sql, params, timeout=timeout)
    finally:
        pool.close()


def _read_streamed(
    decl: Declaration,
    pin: Any,
    sql: str,
    params: tuple[Any, ...] | dict[str, Any],
    timeout: float,
    timeout_setting: str,
) -> Generator[tuple[int, tuple[str, ...], list[dict[str, Any]]], None, None]:
    pool = _one_reader(decl, pin, timeout_setting)
    batches = stream_rows(pool, decl, sql, params, timeout=timeout)
    try:
        yield from batches
    finally:
        batches.close()  # (the read ends before its connection is closed)
        pool.close()


def _names_a_database(root: Path, space_file: Path, db_id: str, data: bytes | None) -> bool:
    """Whether ``db_id``, whose cell holds no handle, is a database all the same (R5: its
    handle no longer decodes): its value has a handle's shape, a file stands at its database's
    path, or the space's log wrote it. Else it is an ordinary cell (a value, a piece, an
    input): no database at all, and nothing is quarantined."""
    if data is not None and handle_shaped(db_id, data):
        return True
    if (root / db_file_name(db_id)).exists():
        return True
    with read_only(space_file) as conn:
        return database_seq(conn, db_id) > 0


def _refuse_repeated_columns(db_id: str, sql: str, columns: tuple[str, ...]) -> None:
    """A row is shown as one value per column name, so of two result columns with one name
    (``SELECT m.id, n.id …``, ``SELECT ?, ?``) only the last would show, in every format:
    refused before the read, naming the columns, rather than printed without one of them."""
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        first = seen.setdefault(name, position)
        if first != position:
            raise QueryError(
                db_id,
                sql,
                f"result columns {first} and {position} are both named {name!r}, and a row "
                "shows one value per column name: give them distinct names with AS "
                "(SELECT m.id AS m_id, n.id AS n_id …)",
            )


def _result_columns(
    decl: Declaration, sql: str, params: tuple[Any, ...] | dict[str, Any]
) -> tuple[str, ...]:
    """The result columns of the (guarded) statement ``sql``, in order and with repeated names
    (which dict rows cannot tell), and the header of a result without rows: SQLite prepares it
    on a read-only connection to the file and names them, and an exec tracer stops it before
    its first step, so it never runs. () when it cannot be prepared there (a declared table the
    file does not hold yet, R41) or names a column with text that is not UTF-8."""
    names: list[str] = []
    if not decl.path.is_file():
        # Nothing there, or no regular file (an injected file's path may hold a directory or a
        # named pipe by now, whose open would wait for a writer): the read says what is there.
        return ()

    def prepared(cursor: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
        names.extend(column for column, _ in cursor.get_description())
        return False  # stop before the statement runs

    try:
        if decl.kind is SourceKind.CELL:
            conn = open_unwritable(decl.path)
        else:  # an injected file: opened so that nothing is created beside it (R60)
            conn = apsw.Connection(source_uri(decl.path), flags=SOURCE_OPEN)
    except apsw.Error:
        return ()
    try:
        cursor = conn.cursor()
        cursor.exec_trace = prepared
        cursor.execute(sql, params)
    except apsw.ExecTraceAbort:
        return tuple(names)
    except (apsw.Error, UnicodeDecodeError):
        # A column name that is not UTF-8 (another program wrote the file): the read reports
        # it as the library's reads do, naming the file and what to do.
        return ()
    finally:
        conn.close()
    return tuple(names)


def _database_alike(space_file: Path, space_id: str, database: str) -> str:
    """Why there is no database ``database`` when the space holds a top-level database whose
    name is ``database`` in another Unicode form or another case (:func:`_alike`): the clauses
    of :func:`_spelled_apart`, one for each such name, joined; "" when it holds none. The
    names are those the space records in ``_cf_names`` (from a database's first write on), and
    the Unicode forms of ``database`` itself (a store that recorded no names)."""
    forms = {unicodedata.normalize(form, database) for form in ("NFC", "NFD", "NFKC", "NFKD")}
    with read_only(space_file) as conn:
        candidates = forms | _recorded_databases(conn)
        found = [
            other
            for other in sorted(candidates - {database})
            if _alike(other, database)
            and conn.execute(
                "SELECT 1 FROM _cf_cells WHERE id = ?", (derive_id("sqlite", space_id, other),)
            ).fetchone()
        ]
    return "; ".join(_spelled_apart("database", other, database) for other in found)


def _recorded_databases(conn: apsw.Connection) -> set[str]:
    """The names of the top-level databases a space file records in ``_cf_names`` (none when
    another program's table stands there, or a name is not UTF-8)."""
    try:
        rows = conn.execute(
            f"SELECT {as_bytes('name')} FROM _cf_names WHERE kind = 'database'"
        ).fetchall()
    except apsw.SQLError:  # no such table (an older store), or another program's
        return set()
    return {name for (raw,) in rows if (name := decoded(raw)) is not None}


def _never_written(database: str, db_id: str, space_id: str) -> str:
    return (
        f"no file for database {database!r} ({db_id}) in space {space_id!r}: it was never "
        "written (its file is created by the first write), or the name is not a top-level "
        "database name; `sqlite-cells inspect` lists the databases by id"
    )


def _shown_value(data: bytes) -> Any:
    try:
        return decode_value(data)
    except SqliteCellsError:
        return data


class NeedsRepair(DatabaseError):
    """``query`` found a database that disagrees with its space in a way a runtime repairs
    before its first use (R71): behind its space (``kind`` ``behind``, or ``missing`` when its
    file is gone), ahead by the one commit a crash leaves in flight (``ahead``), with
    damaged pages (``damaged``), or its space file's index of commits missing its commits
    (``index``). ``query`` is a read and repairs nothing, so it reads nothing
    and says what to run; ``db_seq`` and ``space_seq`` are the watermark and the space's last
    write to the database."""

    def __init__(self, kind: str, db_id: str, db_seq: int, space_seq: int, message: str) -> None:
        self.kind = kind
        self.db_id = db_id
        self.db_seq = db_seq
        self.space_seq = space_seq
        super().__init__(message)


def damaged_file(path: Path, problem: str, what: str = "") -> str:
    """What to say of ``path`` (``what`` it is, if said) that SQLite finds damaged."""
    return (
        f"cannot read {path}{what}: the file is damaged ({problem}); `sqlite-cells check` says "
        "which files are damaged and what to do"
    )


def _unreadable(path: Path, exc: apsw.Error) -> str:
    """What to say of a file SQLite could open but not read: a file in WAL mode needs its
    ``-shm`` beside it, so a store on read-only media cannot be read in place. A file SQLite
    finds damaged (or no database at all) is said to be that: no permission would help."""
    if isinstance(exc, apsw.CorruptError | apsw.NotADBError):
        return damaged_file(path, str(exc))
    if advice := out_of_files(exc):
        return f"cannot read {path}: {exc}; {advice}"
    if isinstance(exc, apsw.SQLError) and str(exc).startswith(_SHAPE_CHANGED):
        # The commands' own statements name only what every file of the store holds.
        return (
            f"cannot read {path}: its tables are not as this program writes them ({exc}): "
            "another program changed them; `sqlite-cells check` says which files are damaged "
            "and what to do"
        )
    return (
        f"cannot read {path}: {exc}. Check that you may read and write the store's directory "
        "and files (SQLite reads a file in WAL mode through a -shm file beside it, which it "
        "creates unless no -wal or -shm is there); to read a store on read-only media whose "
        "files have a -wal or -shm beside them, copy it somewhere writable first"
    )


_SHAPE_CHANGED = ("no such column", "no such table")

_NOTHING_READ = (
    "Nothing was read (query never repairs): run `sqlite-cells check --repair`, then query again"
)


def _first_look(
    space_file: Path, db_id: str, database: str, path: Path, sql: str, *, timeout: float
) -> None:
    """Compare the database with its space as a runtime does before its first read (R71),
    without a lock and without writing (``files.reconcile`` without repair, which looks again
    for a commit on its way), with SQLite's integrity check on the file as ``check`` runs it.
    Returns when they agree (or the database was never written); otherwise raises what the
    library raises for a database it cannot repair (:class:`Quarantined`), or
    :class:`NeedsRepair` for one a runtime would repair first."""
    try:
        outcome = compare_unlocked(space_file, db_id, path, wait_ms=busy_ms(timeout))
    except (apsw.BusyError, apsw.LockedError) as exc:
        raise QueryTimeout(
            db_id,
            sql,
            f"waited {timeout}s for a lock another connection holds on {path} or its space "
            "file, to compare the database with its space before reading it (R71); nothing "
            "was read: try again once that connection lets go",
        ) from exc
    shown = f"{database!r} ({db_id})" if database != db_id else db_id
    if outcome.action is Action.IN_SYNC:
        return
    if outcome.action is Action.QUARANTINED:
        raise Quarantined(
            db_id,
            outcome.db_seq,
            outcome.space_seq,
            path=path,
            reason=outcome.detail,
            transient=outcome.transient,
        )
    if outcome.action is Action.BEHIND and not path.exists():
        raise NeedsRepair(
            "missing",
            db_id,
            0,
            outcome.space_seq,
            f"the file {path.name} of database {shown} is missing, although its space wrote it "
            f"(last at seq {outcome.space_seq}); a runtime rebuilds it from the space's log "
            f"before its first use, when the log holds its whole history (R71). {_NOTHING_READ}",
        )
    if outcome.action is Action.BEHIND:
        raise NeedsRepair(
            "behind",
            db_id,
            outcome.db_seq,
            outcome.space_seq,
            f"database {shown} is behind its space: its watermark is seq {outcome.db_seq} but "
            f"its space last wrote it at seq {outcome.space_seq} (a crash left it behind); a "
            f"runtime re-applies the missing commits before its first use (R71). {_NOTHING_READ}",
        )
    if outcome.action is Action.AHEAD:
        raise NeedsRepair(
            "ahead",
            db_id,
            outcome.db_seq,
            outcome.space_seq,
            f"database {shown} is ahead of its space: its watermark is seq {outcome.db_seq} but "
            f"its space last wrote it at seq {outcome.space_seq} (a crash left one commit in "
            f"flight); a runtime undoes that commit before its first use (R71). {_NOTHING_READ}",
        )
    if outcome.action is Action.INDEX_INCOMPLETE:
        raise NeedsRepair(
            "index",
            db_id,
            outcome.db_seq,
            outcome.space_seq,
            f"database {shown}: {outcome.detail}; a runtime rebuilds the index from the log "
            f"before the database's first use (R71). {_NOTHING_READ}",
        )
    raise NeedsRepair(
        "damaged",
        db_id,
        outcome.db_seq,
        outcome.space_seq,
        f"database {shown} is damaged ({one_line(outcome.detail)}): a runtime rebuilds it from "
        f"its space's log before its first use, when the log holds its whole history (R71). "
        f"{_NOTHING_READ}",
    )


def compare_unlocked(space_file: Path, db_id: str, path: Path, *, wait_ms: int) -> Outcome:
    """What ``check`` finds for the database ``db_id`` (file ``path``) against its space file
    (R71, SQLite's integrity check on the file included), without a lock and without writing.
    ``files.reconcile`` gets a connection of its own, outside any transaction, so that it owns
    its read transactions and can end them to look again (``files.look_again``, R70): a commit
    reaches the space file first and the database file a moment later, and one on its way
    between the two reads is no disagreement. (Given a connection already in a read
    transaction, it could only compare one snapshot of the space with a newer file.)

    A lock another connection holds for longer than ``wait_ms`` raises ``apsw.BusyError`` (or
    ``LockedError``): the caller says what it waited for. Any other error of SQLite's raises
    :class:`InspectError` (``unreadable``)."""
    try:
        conn = open_unwritable(space_file)
    except apsw.Error as exc:
        raise InspectError("unreadable", describe(exc, f"space file {space_file}")) from exc
    try:
        wait_for_locks(conn, wait_ms)
        with library_log_held():
            return reconcile(
                conn, db_id, path, repair=False, verify=True, busy_ms=wait_ms, quiet=True
            )
    except (apsw.BusyError, apsw.LockedError):
        raise
    except apsw.Error as exc:
        raise InspectError("unreadable", _unreadable(space_file, exc)) from exc
    except SpaceFileDamaged as exc:  # (its log, read to compare: the space file is damaged)
        raise InspectError("unreadable", _unreadable(space_file, exc.error)) from exc
    finally:
        conn.close()


def one_line(detail: str) -> str:
    """A finding's detail on one line, as a message quotes it (SQLite's integrity check reports
    one problem a line, under a heading of its own)."""
    detail = detail.removeprefix(f"{DAMAGED_FILE}: ").replace("*** in database main ***", "")
    lines = (line.strip() for line in detail.splitlines())
    return "; ".join(line for line in lines if line)


def _database_id(space_file: Path, space_id: str, database: str) -> str:
    """The id ``database`` names in the space: an ``of:…`` id as given (or, when the space holds
    no such cell, the database of that name, if any); a top-level database
    name (``space.sqlite_database(name)``) when the space holds that database; else the
    injected file (R60) whose file name, or absolute path, is ``database`` (the name ``inspect``
    and ``tables`` show for it)."""
    db_id = derive_id("sqlite", space_id, database)
    named_cell = derive_id("cell", space_id, database)  # (a cell's name given by mistake)
    is_cell = False
    with read_only(space_file) as conn:
        held = "SELECT 1 FROM _cf_cells WHERE id = ?"
        named = conn.execute(held, (db_id,)).fetchone() is not None
        # An id as given — unless the space holds none such but a database of that name.
        if database.startswith("of:") and (
            not named or conn.execute(held, (database,)).fetchone() is not None
        ):
            return database
        if named:
            return db_id
        sources: list[tuple[str, Path]] = []
        for raw_id, data in conn.execute(
            f"SELECT {as_bytes('id')}, {as_bytes('value')} FROM _cf_cells"
        ):
            cell_id, stored = decoded(raw_id), stored_json(data)
            is_cell = is_cell or cell_id == named_cell
            if cell_id is None or stored is None:
                continue  # a row another program wrote: no handle of an injected file
            handle = handle_value(cell_id, stored)
            where = source_path(handle) if handle is not None else None
            if where is not None and handle is not None and handle.get("dropped") is not True:
                sources.append((cell_id, where))
    matches = sorted(
        {cell_id for cell_id, where in sources if database in (where.name, str(where))}
    )
    if len(matches) > 1:
        raise InspectError(
            "ambiguous-database",
            f"{database!r} names {len(matches)} injected files of space {space_id!r} "
            f"({', '.join(matches)}): give the absolute path or the of:… id instead",
        )
    if matches:
        return matches[0]
    if is_cell:
        raise InspectError(
            "not-a-database",
            f"{database!r} names a cell of space {space_id!r} ({named_cell}), not a database: "
            "`sqlite-cells cells` lists each cell with its kind; give a database's name or id",
        )
    return db_id


def readable_watermark(path: Path | None) -> int | None:
    """The watermark ``path`` holds when it can be read (a damaged file's watermark table may
    be intact), else None."""
    if path is None or not path.is_file():
        return None
    try:
        with read_only(path) as conn:
            return read_watermark(conn)
    except SqliteCellsError:
        return None


def reported_watermark(o: Outcome) -> int | None:
    """The watermark to report: the file's own, read again where reconciling could not read it
    (a damaged file reports 0; a rebuilt one is read from the copy kept in quarantine)."""
    if o.action is Action.REBUILT:
        return readable_watermark(o.kept)
    if o.action is Action.UNREADABLE:
        return None  # (shown as "unreadable")
    if o.action is Action.DAMAGED or (o.action is Action.QUARANTINED and o.db_seq == 0):
        found = readable_watermark(o.path)
        return found if found is not None or o.action is Action.QUARANTINED else None
    return o.db_seq

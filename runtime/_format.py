"""The store format version (R73).

Each space file records the format it is written in as ``_cf_meta.format``. What the versions mean:

* **1** — every store written before the format was recorded: no ``format`` key, and the
  ``_cf_op_index`` table (which commits touched which database) may be missing or empty, so a
  database's watermark could not be matched with its space's log.
* **2** — ``format = 2`` and ``_cf_op_index`` holds one row per (op target, seq) of the log.
* **3** — this version: the log may be compacted. ``_cf_meta.compacted`` is the compaction point
  (records at or below it may be gone; every record above it is kept) and ``_cf_named`` lists each
  id that only compacted history named (an op target, or a cell written in a removed record whose
  row is not in ``_cf_cells``) with the newest removed seq that named it. A reader of format 2
  would take a compacted log for a whole one, so it is refused by the version check.
  ``_cf_names`` (the names of top-level cells and databases, for the store's tools) came later
  within format 3: additive, made by the first commit that records a name (never by an open),
  and read only where present, so the version did not change.

Opening a file of an older format upgrades it in place, inside the transaction that opens it (one
transaction per file), before anything reads it; nothing of the older store is quarantined or
hidden. A file of a newer format is refused with an error naming both versions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import apsw

from sqlite_cells.codec import DatabaseError, decode_record
from sqlite_cells.runtime._boundary import stored_json_column
from sqlite_cells.runtime._file_kind import quick_check

__all__ = [
    "FORMAT_VERSION",
    "NAMED_TABLE",
    "NAMES_TABLE",
    "ensure_format",
    "index_ops",
    "is_current_format",
    "op_targets_by_seq",
    "readable_format",
    "stored_format",
    "upgrade_space_file",
]

log = logging.getLogger("sqlite_cells.runtime")

FORMAT_VERSION = 3
_OLDEST = 1  # what a file without a recorded format is


def stored_format(conn: apsw.Connection, path: Path | None = None) -> int | None:
    """The format recorded in the space file behind ``conn`` (at ``path``, which an error
    names); None for a file that holds no commit yet and records none (a fresh file), 1 for an
    older file that records none."""
    # Text comes as its bytes: text that is not UTF-8 (another program wrote it) is refused as
    # any other value that is no version, not a raw UnicodeDecodeError from apsw.
    row = conn.execute(
        f"SELECT {stored_json_column('value')} FROM _cf_meta WHERE key = 'format'"
    ).fetchone()
    if row is not None:
        # Only a positive integer is a version: a real (2.5), text ('3'), zero or a negative
        # number is refused, never truncated, parsed or taken for an older format to upgrade.
        found = row[0]
        if type(found) is not int or found < _OLDEST:
            where = "the space file" if path is None else f"the space file {path}"
            raise DatabaseError(
                f"{where} records format {_shown(found)}, which is not a version number (this "
                f"sqlite-cells reads formats {_OLDEST} to {FORMAT_VERSION}): the file was not "
                "written by sqlite-cells; move it out of the store"
            )
        return found
    used = conn.execute("SELECT EXISTS (SELECT 1 FROM _cf_log)").fetchone()
    if not (used and used[0]):
        return None
    # A file with commits and no format row is an older one — or a damaged one, whose damaged
    # page SQLite may read as rows of NULLs, the format row among them: only a file SQLite finds
    # whole is taken for an older one (and upgraded, written into). Once per older file.
    problem = quick_check(conn, database="main")
    if problem is not None:
        raise apsw.CorruptError(
            f"it records no store format, and SQLite's integrity check finds it damaged: {problem}"
        )
    return _OLDEST


def _shown(found: object) -> str:
    """A stored format value for a message (text as text, bytes of text that is not UTF-8 as
    their hex)."""
    if isinstance(found, bytes):
        try:
            return repr(found.decode("utf-8"))
        except UnicodeDecodeError:
            return f"<text that is not valid UTF-8: x'{found.hex()}'>"
    return repr(found)


def is_current_format(conn: apsw.Connection) -> bool:
    """Whether the space file behind ``conn`` is in this version's format, or records none yet
    (a fresh file): its log and op index can be read as they are, with no upgrade first."""
    return stored_format(conn) in (None, FORMAT_VERSION)


def readable_format(conn: apsw.Connection, path: Path) -> int | None:
    """:func:`stored_format`, refusing a format newer than this version's with an error naming
    both (R73): what such a file holds, and which database files it names, may mean what this
    version cannot tell, so nothing reads it to act on the store (open, repair, collect)."""
    found = stored_format(conn, path)
    if found is not None and found > FORMAT_VERSION:
        raise DatabaseError(
            f"{path} is in store format {found}, but this sqlite-cells reads format "
            f"{FORMAT_VERSION}: upgrade sqlite-cells (pip install -U sqlite-cells) to open it"
        )
    return found


def ensure_format(conn: apsw.Connection, path: Path) -> None:
    """Record the current format in a fresh file, upgrade an older one, refuse a newer one.
    Runs inside the caller's write transaction on the space file (R73)."""
    found = readable_format(conn, path)
    if found == FORMAT_VERSION:
        return
    if found is not None:
        upgrade_space_file(conn, path)
        return
    conn.execute(
        "INSERT OR REPLACE INTO _cf_meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,)
    )


def upgrade_space_file(conn: apsw.Connection, path: Path) -> None:
    """Upgrade the space file behind ``conn`` from an older format to the current one, inside
    the caller's write transaction (R73). Nothing of the older file is removed."""
    found = stored_format(conn)
    if found is None or found >= FORMAT_VERSION:
        return
    if found < 2:
        _upgrade_1_to_2(conn)
    _upgrade_2_to_3(conn)
    conn.execute(
        "INSERT OR REPLACE INTO _cf_meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,)
    )
    log.warning("space file %s upgraded from store format %d to %d", path, found, FORMAT_VERSION)


def op_targets_by_seq(conn: apsw.Connection) -> list[tuple[str, int]]:
    """Every (op target, seq) of the log behind ``conn``, read from the records themselves (for
    files whose ``_cf_op_index`` cannot be trusted, and for read-only checks of older stores)."""
    found: list[tuple[str, int]] = []
    for seq, data in conn.execute(
        f"SELECT seq, {stored_json_column('record')} FROM _cf_log ORDER BY seq"
    ):
        record = decode_record(data, where=f"of seq {seq} in space file {conn.filename}")
        found.extend((target, int(seq)) for target in {op.target for op in record.ops})
    return found


def _upgrade_1_to_2(conn: apsw.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _cf_op_index (target TEXT NOT NULL, seq INTEGER NOT NULL, "
        "PRIMARY KEY (target, seq)) WITHOUT ROWID"
    )
    index_ops(conn)


def index_ops(conn: apsw.Connection) -> None:
    """Add to ``_cf_op_index`` every (op target, seq) the log behind ``conn`` records that it
    does not list: the upgrade of a format-1 file, and the repair of an index that lost rows
    (another program's change) which a check of a database found. Runs inside the caller's
    write transaction; one read of the whole log."""
    conn.executemany(
        "INSERT OR IGNORE INTO _cf_op_index (target, seq) VALUES (?, ?)", op_targets_by_seq(conn)
    )


NAMED_TABLE = (
    "CREATE TABLE IF NOT EXISTS _cf_named (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID"
)


# Each top-level cell's and database's name and kind ("cell", "database"), from its first write on.
# The names alone: a name and its kind derive the id (R1), which would double each row's size.
NAMES_TABLE = (
    "CREATE TABLE IF NOT EXISTS _cf_names "
    "(name TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (name, kind)) WITHOUT ROWID"
)


def _upgrade_2_to_3(conn: apsw.Connection) -> None:
    # Additive: a format-2 log was never compacted, so nothing is named only by lost history.
    conn.execute(NAMED_TABLE)

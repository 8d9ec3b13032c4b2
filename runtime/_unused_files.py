"""Removing a store file that holds nothing (a space or database file whose first commit was
refused, or that only an open created), safely against every other connection and process."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import apsw

from sqlite_cells.runtime._harden import harden

__all__ = ["has_moved", "is_blank", "remove_unused"]


def has_moved(conn: apsw.Connection, schema: str = "main") -> bool:
    """Whether the file ``conn`` has open as ``schema`` was unlinked or renamed since it was
    opened (SQLite's ``SQLITE_FCNTL_HAS_MOVED``; False when SQLite cannot tell)."""
    flag = ctypes.c_int(0)
    try:
        conn.filecontrol(schema, apsw.SQLITE_FCNTL_HAS_MOVED, ctypes.addressof(flag))
    except apsw.Error:
        return False
    return bool(flag.value)


def remove_unused(path: Path, holds_nothing: Callable[[apsw.Connection], bool]) -> bool:
    """Remove the SQLite file ``path`` (WAL mode or not) when no connection of any process has
    it open and ``holds_nothing(conn)`` — run on it under an exclusive lock — says it holds no
    committed data; True if it was removed. Anything else (the file in use, busy, not there,
    holding data, an I/O error) leaves it as it is and returns False; this never raises.

    Every connection to a WAL file holds a shared lock on it while open (idle too), so
    switching the file back to a rollback journal succeeds only when this is the only
    connection; SQLite removes the ``-wal`` and ``-shm`` as it switches. ``BEGIN EXCLUSIVE``
    then keeps every other connection out while the content is checked and the file unlinked.
    A connection opened on the file just before the unlink gets its lock only after it: SQLite
    refuses to write a moved file in rollback mode (``SQLITE_READONLY_DBMOVED``), and the
    runtime's openers check :func:`has_moved` and open the path again. A crash at any point
    leaves either the empty file (in rollback or WAL mode; the next writer sets WAL again) or
    no file."""
    try:
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE))
    except apsw.Error:
        return False
    try:
        conn.setbusytimeout(0)  # in use by anyone: leave it
        try:
            row = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        except (apsw.FullError, apsw.IOError):
            # Leaving WAL mode checkpoints, which a full disk (or a failing write) refuses.
            conn.close()
            return _remove_unused_wal(path, holds_nothing)
        if row is None or str(row[0]).lower() != "delete":
            return False
        # No journal file for the lock taken next: on a full disk (or a write that fails) a
        # journal cannot be made, and nothing is written here anyway. A file that became a WAL
        # file meanwhile is read as one: its journal mode then says "wal".
        conn.execute("PRAGMA journal_mode=MEMORY").fetchall()
        return _remove_locked(conn, path, "memory", holds_nothing)
    except (apsw.Error, OSError):
        return False
    finally:
        conn.close()


def _remove_unused_wal(path: Path, holds_nothing: Callable[[apsw.Connection], bool]) -> bool:
    """:func:`remove_unused` for a WAL file that cannot leave WAL mode (its checkpoint needs
    space the disk no longer has): in exclusive locking mode the first read takes an exclusive
    lock on the file, which SQLite grants only when no other connection has it open, and reads
    the -wal without the -shm. The -wal is kept on close (``SQLITE_FCNTL_PERSIST_WAL``): SQLite
    deletes it by name, and by then the name may be another file's."""
    try:
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE))
    except apsw.Error:
        return False
    try:
        conn.setbusytimeout(0)
        persist = ctypes.c_int(1)
        if not conn.filecontrol("main", apsw.SQLITE_FCNTL_PERSIST_WAL, ctypes.addressof(persist)):
            return False
        conn.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()
        return _remove_locked(conn, path, "wal", holds_nothing)
    except (apsw.Error, OSError):
        return False
    finally:
        conn.close()


def _remove_locked(
    conn: apsw.Connection,
    path: Path,
    mode: str,
    holds_nothing: Callable[[apsw.Connection], bool],
) -> bool:
    """Under ``BEGIN EXCLUSIVE`` on ``conn`` (its file ``path``): unlink the file and its
    ``-wal``/``-shm`` (gone with WAL mode, or a crash's leftovers) when its journal mode is
    still ``mode``, it is still the file at the path, and ``holds_nothing(conn)``."""
    conn.execute("BEGIN EXCLUSIVE")
    try:
        row = conn.execute("PRAGMA journal_mode").fetchone()
        if row is None or str(row[0]).lower() != mode or has_moved(conn):
            return False
        if not holds_nothing(conn):
            return False
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.unlink()
        return True
    finally:
        conn.execute("ROLLBACK")


def is_blank(conn: apsw.Connection) -> bool:
    """A file without any table (as created by an open, before anything was written)."""
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM sqlite_master)").fetchone()
    return row is not None and bool(row[0])

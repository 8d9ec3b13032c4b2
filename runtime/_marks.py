"""What a write connection's own last commit left, so that the next commit can skip reading back
what it already knows when nobody else wrote since (issue: fewer statements per commit).

SQLite keeps a *data version* per open file of a connection (``SQLITE_FCNTL_DATA_VERSION``,
``apsw.Connection.data_version``): it moves by one at every COMMIT the connection makes, and
again whenever the connection finds, on beginning a transaction, that another connection has
changed the file; it never goes back. Read right after a COMMIT — before any other statement of
the connection runs, so nothing else can have been seen — it is that commit's *mark*. Inside a
later transaction (begun after it), a file whose data version still equals its mark was written
by nobody since that commit: not another connection, not this one.

A data version belongs to the file's pager: ``forget`` must be called whenever a file is
attached to or detached from the connection (a new pager counts from the start again).

The connection's last appended log record is kept too (``appended``), so the hash of the
space's head (``record_hash`` of the record before a commit, which a database file's journal
records, R71) is known without reading the record back while that mark holds (``known_head``).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable

import apsw

__all__ = ["appended", "forget", "known_head", "mark", "record_hash", "unchanged_since"]

# connection -> (seq of its last commit, {database name: data version right after it})
_MARKS: weakref.WeakKeyDictionary[apsw.Connection, tuple[int, dict[str, int]]] = (
    weakref.WeakKeyDictionary()
)


def mark(conn: apsw.Connection, seq: int) -> None:
    """Called right after ``conn``'s COMMIT of commits up to ``seq`` succeeded, before anything
    else runs on ``conn``: remember the data version of each of its databases."""
    _MARKS[conn] = (
        seq,
        {name: conn.data_version(name) for name in conn.db_names() if name != "temp"},
    )


def unchanged_since(conn: apsw.Connection, seq: int, names: Iterable[str]) -> bool:
    """Inside a transaction of ``conn``: whether ``conn``'s last commit was ``seq`` and no file
    of ``names`` has changed since (by anyone). False whenever it cannot be told."""
    found = _MARKS.get(conn)
    if found is None or found[0] != seq:
        return False
    versions = found[1]
    try:
        for name in names:
            version = versions.get(name)
            if version is None or conn.data_version(name) != version:
                return False
    except apsw.Error:  # a database of that name is not attached
        return False
    return True


def forget(conn: apsw.Connection) -> None:
    """A file was attached to or detached from ``conn``: its marks no longer tell anything."""
    _MARKS.pop(conn, None)


# connection -> (seq, stored bytes) of the last log record it appended, committed or not
_APPENDED: weakref.WeakKeyDictionary[apsw.Connection, tuple[int, bytes]] = (
    weakref.WeakKeyDictionary()
)


def record_hash(data: bytes) -> int:
    """A 64-bit hash (BLAKE2b, as a signed SQLite integer) of a log record's stored bytes."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def appended(conn: apsw.Connection, seq: int, data: bytes) -> None:
    """``conn`` wrote ``data`` as the space's log record ``seq`` (in its open transaction)."""
    _APPENDED[conn] = (seq, data)


def known_head(conn: apsw.Connection, seq: int) -> int | None:
    """Inside a transaction of ``conn``: the ``record_hash`` of the space's log record ``seq``
    when ``conn`` appended it in its last commit and nobody wrote the space file since (see
    ``unchanged_since``); None when that cannot be told (then the record is read)."""
    found = _APPENDED.get(conn)
    if found is None or found[0] != seq or not unchanged_since(conn, seq, ("main",)):
        return None
    return record_hash(found[1])

"""What the write path keeps for a space's write connection (its gate, deadline, rowid: one
``WriteConn``) lives as long as that connection: a process that opens, writes and closes one
runtime after another (a notebook, a test suite, a server making one per job) keeps nothing of
the closed ones."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import apsw

import sqlite_cells as sc
from sqlite_cells.write._conn import WriteConn

MESSAGES = {"messages": sc.table(id="integer primary key", body="text not null")}
RUNTIMES = 30


def _write_and_close(store: Path) -> weakref.ref[apsw.Connection]:
    """Open a runtime on ``store``, commit a database write, close it; its write connection,
    held weakly."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES (?)", ["hi"])
        with space.file.write_connection() as conn:
            return weakref.ref(conn)


def _live_write_states() -> int:
    # Twice: a write connection let go by the first pass frees what the second collects.
    gc.collect()
    gc.collect()
    return sum(isinstance(o, WriteConn) for o in gc.get_objects())


def test_closed_runtimes_leave_no_write_state_behind(tmp_path: Path) -> None:
    before = _live_write_states()
    conns = [_write_and_close(tmp_path / f"store{i}") for i in range(RUNTIMES)]
    # At most as many as before: write states an earlier test left to a thread still ending
    # (a runtime closed under load) may be freed meanwhile; none of these runtimes' stays.
    assert _live_write_states() <= before
    assert [c for c in conns if c() is not None] == []


def test_a_runtime_writes_after_others_were_closed_and_released(tmp_path: Path) -> None:
    """A connection made after others were released (its id may be a freed one's) gets a write
    state of its own: last_insert_rowid() and the policy of its own statements only."""
    for i in range(3):
        _write_and_close(tmp_path / f"store{i}")
    _live_write_states()
    with sc.Runtime(tmp_path / "store0") as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES (?)", ["again"])
            db.exec("INSERT INTO messages (body) VALUES (last_insert_rowid())")
        rows = db.read("SELECT id, body FROM messages ORDER BY id")
    assert rows == [{"id": 1, "body": "hi"}, {"id": 2, "body": "again"}, {"id": 3, "body": "2"}]

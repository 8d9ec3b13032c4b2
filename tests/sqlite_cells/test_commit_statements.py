"""The commit's own statements run on one cursor the space file keeps (R32, R50): a commit leaves
no statement running on either file, and a commit that failed leaves that cursor usable."""

from __future__ import annotations

import time
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.runtime import current_transaction

INSERT = "INSERT INTO messages (body, ts) VALUES (?, ?)"


def _checkpoint_fully(path: Path) -> tuple[int, int, int]:
    """``wal_checkpoint(TRUNCATE)`` from a connection of its own: busy (1) while any other
    connection still reads or writes the file. The runtime's poller reads the space file now
    and then, so a busy result is tried again; a statement left running stays busy."""
    conn = apsw.Connection(str(path))
    try:
        for _ in range(100):
            row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert row is not None
            if row[0] == 0:
                break
            time.sleep(0.005)
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        conn.close()


def test_a_commit_leaves_no_statement_running(space: Space, db: sc.SqliteDb) -> None:
    for ts in range(3):
        with space.transact():
            db.exec(INSERT, ["hello", ts])
    # A statement left running would keep a read snapshot and stop the checkpoint.
    assert _checkpoint_fully(space.file.path) == (0, 0, 0)
    assert _checkpoint_fully(db.path) == (0, 0, 0)
    assert db.rev == 3


def test_a_failed_commit_leaves_the_commit_cursor_usable(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (id, body, ts) VALUES (1, 'a', 1)")
    before = space.file.seen_seq
    with pytest.raises(sc.ExecError) as caught, space.transact():
        db.exec("INSERT INTO messages (id, body, ts) VALUES (1, 'again', 2)")
    assert "UNIQUE" in str(caught.value)
    assert space.file.seen_seq == before  # nothing of it was committed
    with space.transact():
        db.exec(INSERT, ["b", 3])
    assert space.file.seen_seq == before + 1
    assert db.rev == 2
    assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")] == ["a", "b"]
    assert _checkpoint_fully(space.file.path) == (0, 0, 0)


def test_a_scope_that_raises_commits_nothing_and_leaves_no_transaction(
    space: Space, db: sc.SqliteDb
) -> None:
    with pytest.raises(ZeroDivisionError), space.transact():
        db.exec(INSERT, ["never", 1])
        raise ZeroDivisionError
    assert current_transaction() is None
    assert db.rev == 0
    with space.transact() as tx:
        db.exec(INSERT, ["kept", 2])
    assert tx.seq == space.file.seen_seq
    assert db.rev == 1

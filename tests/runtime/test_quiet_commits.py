"""A commit nobody watches does not wake the scheduler thread (the write path's CPU per commit);
one that someone watches is delivered as before."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime._space_file import _begin_space_write


def test_quiet_commits_do_not_wake_the_scheduler(rt: sc.Runtime, woken: list[int]) -> None:
    scheduler = rt.scheduler
    space = rt.space("demo")
    watched, quiet = space.cell("watched", default=0), space.cell("quiet", default=0)
    rt.settle()  # work queued while the runtime started is not a commit's
    for n in range(1, 4):
        with space.transact():
            quiet.set(n)
    rt.settle()
    assert woken == []
    assert scheduler.processed_seq(space.file) == 3  # taken in all the same
    seen: list[object] = []
    watched.observe().subscribe(seen.append)
    rt.settle()
    with space.transact():
        watched.set(1)
    with space.transact():
        quiet.set(4)
    rt.settle()
    assert seen == [0, 1]
    assert 4 in woken
    assert scheduler.processed_seq(space.file) == 5
    doubled = sc.derive(quiet, lambda v: v * 2)
    rt.settle()
    with space.transact():
        quiet.set(5)
    rt.settle()
    assert doubled.get() == 10


def test_an_interrupt_while_a_commit_takes_the_space_lock_is_raised_as_itself(
    tmp_path: Path,
) -> None:
    """Ctrl-C landing in the progress handler while a commit's first statement takes the space
    file's lock: SQLite's interrupt rolls the transaction back itself, so the commit must not
    roll back again (which replaced the KeyboardInterrupt with "no transaction is active")."""
    conn = apsw.Connection(str(tmp_path / "space.sqlite"))
    conn.execute("CREATE TABLE _cf_meta (key TEXT PRIMARY KEY, value)")
    conn.execute("INSERT INTO _cf_meta VALUES ('space_id', 'x')")

    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    running: list[str] = []

    def tracer(_cursor: apsw.Cursor, sql: str, _bindings: object) -> bool:
        running.append(sql)
        return True

    def interrupted() -> bool:
        if running and running[-1].startswith("UPDATE"):  # the lock-taking write, not BEGIN
            raise KeyboardInterrupt
        return False

    conn.exec_trace = tracer
    conn.set_progress_handler(interrupted, 1)
    with pytest.raises(KeyboardInterrupt):
        _begin_space_write(conn.cursor())
    assert running == ["BEGIN", "UPDATE main._cf_meta SET key = key WHERE 0"]
    assert conn.getautocommit()  # SQLite's interrupt ended the transaction itself
    conn.set_progress_handler(None)
    conn.exec_trace = None
    _begin_space_write(conn.cursor())  # the connection is usable
    conn.execute("ROLLBACK")
    conn.close()

"""Code that runs inside a commit (a ``migrate`` callback) cannot commit: to the same space the
commit it would wait for is its own, and two callbacks committing into each other's spaces
would wait for each other. It gets a clear error at once instead of waiting forever; the
callback may catch it, and the outer write goes on."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import TransactionError

from ..conftest import in_thread

V1 = {"t": sc.table(id="integer primary key", a="text")}
V2 = {"t": sc.table(id="integer primary key", a="text", b="text")}


def _first_write(space: Any) -> None:
    db = space.sqlite_database("db", tables=V1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES (?)", ["x"])


def _in_thread(body: Any) -> object:
    return in_thread(body, 20, "the commit inside migrate waited forever")


def test_a_commit_from_a_migrate_callback_is_refused_at_once(rt: sc.Runtime) -> None:
    space = rt.space("s")
    _first_write(space)
    other = space.cell("other", default=0)
    caught: list[BaseException] = []

    def migrate(conn: Any, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        try:
            with space.transact():
                other.set(5)
        except TransactionError as exc:
            caught.append(exc)

    db2 = space.sqlite_database("db", tables=V2, version=2, migrate=migrate)

    def write() -> str:
        with space.transact():
            db2.exec("INSERT INTO t (a, b) VALUES (?, ?)", ["y", "z"])
        return "done"

    assert _in_thread(write) == "done"
    assert len(caught) == 1 and isinstance(caught[0], sc.SqliteCellsError)
    assert "from inside a commit of the same space" in str(caught[0])
    assert other.get() == 0
    assert db2.read("SELECT a, b FROM t ORDER BY id") == [
        {"a": "x", "b": None},
        {"a": "y", "b": "z"},
    ]
    with space.transact():  # the space is usable afterwards
        other.set(6)
    assert other.get() == 6


def test_an_uncaught_one_fails_the_write_as_a_migration_error(rt: sc.Runtime) -> None:
    space = rt.space("s")
    _first_write(space)
    other = space.cell("other", default=0)

    def migrate(conn: Any, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        with space.transact():
            other.set(5)

    db2 = space.sqlite_database("db", tables=V2, version=2, migrate=migrate)

    def write() -> None:
        with space.transact():
            db2.exec("INSERT INTO t (a, b) VALUES (?, ?)", ["y", "z"])

    error = _in_thread(write)
    assert isinstance(error, sc.MigrationError)
    assert isinstance(error.__cause__, TransactionError)
    assert other.get() == 0
    assert db2.read("SELECT a FROM t") == [{"a": "x"}]


def test_a_commit_to_another_space_from_a_migrate_callback_is_refused_too(
    rt: sc.Runtime,
) -> None:
    """Two callbacks committing into each other's spaces would each wait for the write lock the
    other holds, for good: a commit from inside any commit is refused."""
    space, elsewhere = rt.space("s"), rt.space("elsewhere")
    _first_write(space)
    there = elsewhere.cell("there", default=0)

    def migrate(conn: Any, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        with elsewhere.transact():
            there.set(5)

    db2 = space.sqlite_database("db", tables=V2, version=2, migrate=migrate)

    def write() -> None:
        with space.transact():
            db2.exec("INSERT INTO t (a, b) VALUES (?, ?)", ["y", "z"])

    error = _in_thread(write)
    assert isinstance(error, sc.MigrationError)
    assert isinstance(error.__cause__, TransactionError)
    assert "from inside a commit of space 's'" in str(error.__cause__)
    assert there.get() == 0
    with elsewhere.transact():  # outside any commit it works
        there.set(6)
    assert there.get() == 6


@pytest.mark.parametrize("writes_db", [True, False], ids=["database-write", "cells-only"])
def test_a_commit_of_its_own_inside_a_handler_s_exclusive_try_leaves_its_commit_whole(
    rt: sc.Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture, writes_db: bool
) -> None:
    """A handler that keeps conflicting makes its last tries holding the space's write lock,
    inside one SQLite transaction. Registering a disk source there commits the handle in a
    commit of its own, which ends that transaction: the handler's own commit then begins
    another (it failed with "cannot rollback - no transaction is active" for a database
    write, and ran its statements outside any transaction for a cell write)."""
    source = tmp_path / "reference.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE ref (x)")
    conn.commit()
    conn.close()
    space = rt.space("demo")
    other = space.cell("other", default=0)
    mine = space.cell("mine", default=0)
    db = space.sqlite_database("db", tables=V1)
    attempts: list[int] = []

    def bump_other() -> None:
        with space.transact():
            other.set(other.get() + 1)

    @sc.handler
    def body() -> None:
        attempts.append(len(attempts) + 1)
        other.get()
        if len(attempts) <= 3:  # a commit in between: this try conflicts
            thread = threading.Thread(target=bump_other)
            thread.start()
            thread.join()
        else:  # the exclusive try: the source's handle is committed on its own here
            space.register_disk_source(str(source))
        mine.set(len(attempts))
        if writes_db:
            db.exec("INSERT INTO t (a) VALUES (?)", [str(len(attempts))])

    with caplog.at_level(logging.WARNING, logger="sqlite_cells"):
        seq = body()
    assert attempts == [1, 2, 3, 4]
    assert mine.get() == 4
    assert isinstance(seq, int) and space.file.seen_seq == seq
    assert db.read("SELECT a FROM t") == ([{"a": "4"}] if writes_db else [])
    assert not [r for r in caplog.records if "COMMIT" in r.getMessage()]

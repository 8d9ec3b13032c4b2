"""R41, R70, R71: a file another program made at the path of a database never written — tables, none
of the runtime's — is not the database's: its rows are in no commit of the space, so it is
neither read as the database nor taken over by its first write (a rebuild from the log would
drop them, and `check` called the file in sync). Moved away, the database reads and writes as
never written, in the same runtime."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import Action, check_store

TABLES = {"t": sc.table(id="integer primary key", a="text")}


def _foreign_rows(db: sc.SqliteDb) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute("SELECT id, a FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_file_another_program_made_at_a_databases_path_is_neither_read_nor_taken_over(
    rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    live = db.query("SELECT count(*) AS n FROM t")
    assert db.read("SELECT a FROM t") == []  # no file: the declared tables, empty
    conn = apsw.Connection(str(db.path))
    conn.setbusytimeout(10_000)  # (the live query's first read may be looking at the path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t (a) VALUES ('x')")
    conn.close()
    with pytest.raises(sc.QueryError, match="none of the runtime's") as refused:
        db.read("SELECT a FROM t")
    assert "move the file out of the store" in str(refused.value)
    with pytest.raises(sc.UnsupportedMigration, match="none of the runtime's"), space.transact():
        db.exec("INSERT INTO t (a) VALUES ('mine')")
    assert _foreign_rows(db) == [(1, "x")] and db.rev == 0  # neither written over nor adopted
    db.path.rename(db.path.with_name("kept-aside.sqlite"))
    assert db.read("SELECT a FROM t") == []
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('mine')")
    assert db.read("SELECT a FROM t") == [{"a": "mine"}]
    rt.settle()
    assert live.get().result == [{"n": 1}]


def test_a_file_with_no_table_at_a_databases_path_is_written_as_a_first_write(
    space: Space,
) -> None:
    """An empty file (a first write rolled back leaves one) is no other program's."""
    db = space.sqlite_database("d", tables=TABLES)
    apsw.Connection(str(db.path)).close()
    assert db.read("SELECT a FROM t") == []
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('mine')")
    assert db.read("SELECT a FROM t") == [{"a": "mine"}]


def test_a_foreign_file_put_at_a_written_databases_path_is_quarantined_not_replayed_into(
    store: Path,
) -> None:
    """R71: a written database's file replaced by another program's (its table, its own row,
    none of the runtime's tables) was taken as a file behind its space: the log was replayed
    into it, and its row served with the space's. It is quarantined as found, nothing written
    to it; moved out of the store, the database is rebuilt from its space's log."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('mine')")
        path = db.path
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        part.unlink(missing_ok=True)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (100, 'x')")
    conn.close()
    (outcome,) = check_store(store, repair=True)
    assert outcome.action is Action.QUARANTINED and "none of the runtime's" in outcome.detail
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("d", tables=TABLES)
        with pytest.raises(sc.Quarantined, match="not the one this space wrote"):
            db.read("SELECT a FROM t")
    assert _foreign_rows(db) == [(100, "x")]  # kept as found
    path.rename(path.with_name("kept-aside.sqlite"))
    (outcome,) = check_store(store, repair=True)
    assert outcome.action is Action.REPLAYED
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("d", tables=TABLES)
        assert db.read("SELECT a FROM t") == [{"a": "mine"}]

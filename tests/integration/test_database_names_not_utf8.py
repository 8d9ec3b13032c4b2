"""A database file of the store in whose schema another program wrote names that are not UTF-8
(SQLite takes any bytes as a name) never fails with a raw ``UnicodeDecodeError`` or an internal
error (SPEC Errors, §6): an undeclared object so named is left alone as any undeclared object
is, and a declared table holding such a column is refused by reads, writes and the command line
with an error that names the file and what to do."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli

TABLES = {"t": sc.table(a="INTEGER", b="TEXT")}


def _rename_in_schema(path: Path, name: str, new_name: bytes, sql: bytes) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_schema SET name = CAST(?1 AS TEXT), tbl_name = CAST(?1 AS TEXT), "
        "sql = CAST(?2 AS TEXT) WHERE name = ?3",
        (new_name, sql, name),
    )
    conn.execute("PRAGMA writable_schema = OFF")
    conn.close()


def _database_file(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES (1)")
        return db.path


def test_an_undeclared_table_named_with_bytes_is_left_alone(store: Path) -> None:
    path = _database_file(store)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t1 (a TEXT); INSERT INTO t1 VALUES ('z')")
    conn.close()
    _rename_in_schema(path, "t1", b"t\xff", b'CREATE TABLE "t\xff" (a TEXT)')
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        assert db.read("SELECT a FROM t") == [{"a": 1}]
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES (2)")
        assert db.read("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 2}]
    done = run_cli("tables", str(store))
    assert done.returncode == 0, done.stderr
    assert "<not UTF-8 text: x'74ff'>" in done.stdout
    done = run_cli("query", str(store), "s", "d", "SELECT a FROM t ORDER BY a")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:4] == ["a", "-", "1", "2"]


def test_a_declared_table_with_a_column_named_with_bytes_is_refused_naming_the_file(
    store: Path,
) -> None:
    path = _database_file(store)
    _rename_in_schema(path, "t", b"t", b'CREATE TABLE "t" (a INTEGER, "b\xff" TEXT)')
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with pytest.raises(sc.QueryError) as read:
            db.read("SELECT a FROM t")
        assert str(path) in str(read.value)
        assert "not valid UTF-8 text in its schema" in str(read.value)
        note = space.cell("note", default="before")
        with pytest.raises(sc.DatabaseError) as write, space.transact():
            note.set("after")
            db.exec("INSERT INTO t (a) VALUES (2)")
        assert str(path) in str(write.value)
        assert "rename that column or table with SQLite" in str(write.value)
        assert note.get() == "before"  # nothing committed
    for args in (("tables", str(store)), ("query", str(store), "s", "d", "SELECT a FROM t")):
        done = run_cli(*args)
        assert done.returncode == 1
        assert "internal error" not in done.stderr
        assert "not valid UTF-8 text in its schema" in done.stderr

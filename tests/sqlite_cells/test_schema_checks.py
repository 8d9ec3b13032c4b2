"""Schema checks that cannot be skipped, and a diff that compares what SQLite reports (R13, R14).

A runtime remembers the schemas it checked on a file only while the file's schema cookie and
stored version are what it checked; a re-declaration differing in what SQLite does with the
table (rowid alias, generated expressions, ON CONFLICT clauses, DEFERRABLE) is refused."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

V1 = {"t": sc.table(id="integer primary key", a="text")}
V2 = {"t": sc.table(id="integer primary key", a="text", b="text not null default 'q'")}


def _write(space: Space, db: sc.SqliteDb, sql: str, params: list[object] | None = None) -> None:
    with space.transact():
        db.exec(sql, params)


def _stored(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The file's schema objects and its stored version."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        objects = [tuple(r) for r in conn.execute("SELECT type, name, sql FROM sqlite_schema")]
        version = [
            tuple(r) for r in conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'")
        ]
        return objects, version
    finally:
        conn.close()


def _rows(path: Path) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in conn.execute("SELECT * FROM t ORDER BY rowid")]
    finally:
        conn.close()


# -- the memo of checked schemas follows the file (R13, R14) ----------------------------------


def test_same_runtime_lower_version_after_a_higher_one_is_refused(rt: sc.Runtime) -> None:
    space = rt.space("s")
    db = space.sqlite_database("db", tables=V1, version=1)
    _write(space, db, "INSERT INTO t (a) VALUES ('x')")
    db = space.sqlite_database("db", tables=V1, version=3)
    _write(space, db, "INSERT INTO t (a) VALUES ('y')")
    before = _stored(db.path), _rows(db.path)

    db = space.sqlite_database("db", tables=V1, version=1)
    with pytest.raises(sc.UnsupportedMigration) as caught:
        _write(space, db, "INSERT INTO t (a) VALUES ('z')")
    assert "the file is at version 3, newer than the declared version=1" in str(caught.value)
    assert (_stored(db.path), _rows(db.path)) == before


def test_a_file_migrated_by_another_runtime_is_checked_again(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        space_a = a.space("s")
        db_a = space_a.sqlite_database("db", tables=V1, version=1)
        _write(space_a, db_a, "INSERT INTO t (a) VALUES ('x')")

        space_b = b.space("s")
        db_b = space_b.sqlite_database("db", tables=V2, version=4, migrate=lambda c, v: None)
        _write(space_b, db_b, "INSERT INTO t (a, b) VALUES ('from b', 'b')")
        before = _stored(db_a.path), _rows(db_a.path)

        with pytest.raises(sc.UnsupportedMigration) as caught:
            _write(space_a, db_a, "INSERT INTO t (a) VALUES ('stale')")
        assert "the file is at version 4, newer than the declared version=1" in str(caught.value)
        assert (_stored(db_a.path), _rows(db_a.path)) == before


def test_a_column_added_by_another_runtime_at_the_same_version_is_refused(store: Path) -> None:
    """The stored version did not move, only the schema cookie did."""
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        space_a = a.space("s")
        db_a = space_a.sqlite_database("db", tables=V1)
        _write(space_a, db_a, "INSERT INTO t (a) VALUES ('x')")

        space_b = b.space("s")
        db_b = space_b.sqlite_database("db", tables=V2)
        _write(space_b, db_b, "INSERT INTO t (a) VALUES ('from b')")
        before = _rows(db_a.path)

        with pytest.raises(sc.UnsupportedMigration) as caught:
            _write(space_a, db_a, "INSERT INTO t (a) VALUES ('stale')")
        assert caught.value.differences == (
            "t.b: the stored column is not declared (dropping or renaming a column is not "
            "additive)",
        )
        assert _rows(db_a.path) == before

"""R13: a column ``ALTER TABLE`` cannot add is added by rebuilding the table, through the
runtime: the rows stay, live queries see the column, and a database file that lost the commit
that rebuilt it is replayed from its space's log (R71)."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

V1 = {"id": "integer primary key", "body": "text"}
V2 = {**V1, "loud": "text as (upper(body)) stored", "code": "text unique"}


def _db(rt: sc.Runtime, columns: dict[str, str]) -> sc.SqliteDb:
    return rt.space("s").sqlite_database("db", tables={"t": sc.table(columns)})


def test_rows_stay_and_live_queries_see_the_new_columns(store: Path) -> None:
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body) VALUES ('a'), ('b')")
    with sc.Runtime(store) as rt:
        db = _db(rt, V2)
        query = db.query("SELECT id, body, loud, code FROM t ORDER BY id")
        rt.settle()
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body, code) VALUES ('c', 'x')")
        rt.settle()
        assert query.get().result == [
            {"id": 1, "body": "a", "loud": "A", "code": None},
            {"id": 2, "body": "b", "loud": "B", "code": None},
            {"id": 3, "body": "c", "loud": "C", "code": "x"},
        ]
        try:
            with rt.space("s").transact():
                db.exec("INSERT INTO t (body, code) VALUES ('d', 'x')")
        except sc.ExecError as exc:
            assert "UNIQUE constraint failed" in str(exc)  # the constraint came with the column
        else:
            raise AssertionError("a duplicate code was stored")
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 3}]


def test_a_file_that_lost_the_rebuild_is_replayed(store: Path) -> None:
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body) VALUES ('a')")
        path = db.declaration.path
    kept = store.parent / "before.sqlite"
    shutil.copyfile(path, kept)  # closed: the file is whole, no -wal
    with sc.Runtime(store) as rt:
        db = _db(rt, V2)
        with rt.space("s").transact():
            db.exec("INSERT INTO t (body, code) VALUES ('b', 'x')")
    shutil.copyfile(kept, path)  # the database lost the commit that rebuilt its table
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with sc.Runtime(store) as rt:
        db = _db(rt, V2)
        rows = db.read("SELECT id, body, loud, code FROM t ORDER BY id")
        assert rows == [
            {"id": 1, "body": "a", "loud": "A", "code": None},
            {"id": 2, "body": "b", "loud": "B", "code": "x"},
        ]


def test_a_rebuild_keeps_the_writes_deadline(store: Path) -> None:
    """R44: the rows a rebuild copies and computes count against exec_timeout."""
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        with rt.space("s").transact():
            db.exec_many("INSERT INTO t (body) VALUES (?)", [[f"row {i}"] for i in range(20_000)])
    slow = "text as (replace(hex(zeroblob(4000)), '0', body)) stored"
    with sc.Runtime(store, exec_timeout=0.05) as rt:
        db = _db(rt, {**V1, "wide": slow})
        with (
            pytest.raises(sc.ExecTimeout, match=r"ran past exec_timeout=0\.05s"),
            rt.space("s").transact(),
        ):
            db.exec("INSERT INTO t (body) VALUES ('late')")
        assert db.rev == 1
    with sc.Runtime(store) as rt:
        db = _db(rt, V1)
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 20_000}]


def _with_a_gap(store: Path, columns: dict[str, str], key: str, gone: str) -> Path:
    """A table of ``columns`` whose rows, 'x', 'y', 'z' and 'w' in ``key``, lost ``gone``
    (rowids left: the others'); its file."""
    with sc.Runtime(store) as rt:
        db = _db(rt, columns)
        with rt.space("s").transact():
            db.exec(f"INSERT INTO t ({key}) VALUES ('x'), ('y'), ('z'), ('w')")
        with rt.space("s").transact():
            db.exec(f"DELETE FROM t WHERE {key} IN ({gone})")
        return Path(db.path)


def _rowids(path: Path, name: str = "_rowid_") -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in conn.execute(f"SELECT {name}, * FROM t ORDER BY {name}")]
    finally:
        conn.close()


@pytest.mark.parametrize("added", ["rowid", "_rowid_", "oid"])
def test_a_rebuild_adding_a_column_named_as_the_rowid_keeps_each_row_s_rowid(
    store: Path, added: str
) -> None:
    """R13, R14: a declared column named ``rowid`` (or ``_rowid_``, ``oid``) that SQLite's
    ``ADD COLUMN`` refuses is added by a rebuild as any other column: NULL in the rows there,
    and each row keeps its rowid (the changesets of a table without an INTEGER PRIMARY KEY name
    rows by rowid). The rows' rowids were written into the new column, and the rows renumbered."""
    plain = {"a": "text"}
    path = _with_a_gap(store, plain, "a", "'x', 'z'")
    assert _rowids(path) == [(2, "y"), (4, "w")]
    with sc.Runtime(store) as rt:
        db = _db(rt, {**plain, added: "integer unique"})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (a) VALUES ('v')")
        assert db.read(f"SELECT a, {added} AS n FROM t ORDER BY a") == [
            {"a": "v", "n": None},
            {"a": "w", "n": None},
            {"a": "y", "n": None},
        ]
    other = "oid" if added != "oid" else "rowid"  # the rowid under a name the table left
    assert _rowids(path, other) == [(2, "y", None), (4, "w", None), (5, "v", None)]


def test_a_rebuild_of_a_keyed_table_taking_the_last_rowid_name_writes_no_rowid_in_it(
    store: Path,
) -> None:
    """A table with a PRIMARY KEY (its changesets name rows by that key) may have columns of all
    three of SQLite's names for the rowid once one is added: the new column is NULL in the rows
    there, never given their old rowids."""
    keyed = {"k": "text primary key", "rowid": "text", "_rowid_": "text"}
    _with_a_gap(store, keyed, "k", "'x', 'z', 'w'")
    with sc.Runtime(store) as rt:
        db = _db(rt, {**keyed, "oid": "integer unique"})
        with rt.space("s").transact():
            db.exec("INSERT INTO t (k) VALUES ('v')")
        assert db.read("SELECT k, oid FROM t ORDER BY k") == [
            {"k": "v", "oid": None},
            {"k": "y", "oid": None},
        ]

"""R70 with R34 on wide tables: a table without a primary key has its bulk writes (42 rows or
more) captured by comparing its rows column by column. That comparison was one chain of ANDs and
ORs, which SQLite refuses past 1,000 levels: a 500-column table could never be bulk-updated and
the failure came as a commit error advising to check the disk. It uses row values now. SQLite's
own diff bounds the comparison at 996 columns: a bulk write to a wider such table is an
``ExecError`` that says so (its smaller writes, and a store that holds one, work as before)."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.write._capture import ROWID_TABLE_MAX_COLUMNS, SESSION_SAFE_CHANGES


def _done_by_sqlite(*statements: str) -> list[dict[str, object]]:
    """The rows of ``g`` (rowid as ``r``) after ``statements`` on a database of SQLite's own."""
    conn = apsw.Connection(":memory:")
    for sql in statements:
        conn.execute(sql)
    cursor = conn.execute("SELECT rowid AS r, a, b, s, v FROM g ORDER BY rowid")
    names = [d[0] for d in cursor.getdescription()]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _wide(columns: int) -> sc.Table:
    return sc.table({f"c{i}": "text" for i in range(columns)})


@pytest.mark.parametrize("columns", [500, ROWID_TABLE_MAX_COLUMNS])
def test_a_wide_table_without_a_key_takes_bulk_writes_and_replays_them(
    store: Path, columns: int
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": _wide(columns)})
        with space.transact():
            db.exec_many("INSERT INTO t (c0, c1) VALUES (?, ?)", [[str(i), "a"] for i in range(50)])
        path = db.path
    kept = store.parent / "kept.sqlite"
    shutil.copyfile(path, kept)
    last = f"c{columns - 1}"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": _wide(columns)})
        with space.transact():
            db.exec(f"UPDATE t SET c1 = 'A', {last} = 'z'")  # 50 rows: the exact capture
        with space.transact():
            db.exec("DELETE FROM t WHERE CAST(c0 AS integer) >= 45")
        expected = db.read(f"SELECT c0, c1, {last} FROM t ORDER BY rowid")
    assert len(expected) == 45
    assert expected[0] == {"c0": "0", "c1": "A", last: "z"}
    shutil.copyfile(kept, path)  # the two bulk commits are replayed from the log (R71)
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("d", tables={"t": _wide(columns)})
        assert db.read(f"SELECT c0, c1, {last} FROM t ORDER BY rowid") == expected


def test_a_bulk_write_to_a_table_without_a_key_too_wide_to_compare_is_an_exec_error(
    store: Path,
) -> None:
    columns = ROWID_TABLE_MAX_COLUMNS + 4
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": _wide(columns)})
        rows = [[str(i)] for i in range(SESSION_SAFE_CHANGES - 1)]
        with space.transact():
            db.exec_many("INSERT INTO t (c0) VALUES (?)", rows)  # one op: 41 rows, fine
        with space.transact():
            db.exec("UPDATE t SET c1 = 'a' WHERE rowid <= 3")  # a few rows, fine
        with pytest.raises(sc.ExecError) as caught, space.transact():
            db.exec("INSERT INTO t (c0) SELECT c0 FROM t")  # 41 rows, then 42
            db.exec("UPDATE t SET c1 = 'b'")  # 82 rows: compared
        assert type(caught.value) is sc.ExecError
        assert f"no primary key and {columns} columns" in str(caught.value)
        assert "change fewer rows per statement" in str(caught.value)
        counts = db.read("SELECT count(*) AS n, count(c1) AS a FROM t")
        assert counts == [{"n": 41, "a": 3}]  # the whole transaction rolled back
        fewer = "fewer parameter rows per exec_many call"
        with pytest.raises(sc.ExecError, match=fewer), space.transact():
            db.exec_many("INSERT INTO t (c0) VALUES (?)", [[str(i)] for i in range(45)])
        keyed = {"id": "integer primary key", **{f"c{i}": "text" for i in range(1998)}}
        wide = space.sqlite_database("k", tables={"t": sc.table(keyed)})  # 1,999 columns
        with space.transact():
            wide.exec_many("INSERT INTO t (c0) VALUES (?)", [[str(i)] for i in range(50)])
        with space.transact():
            wide.exec("UPDATE t SET c1997 = 'z'")  # a key: no comparison
        assert wide.read("SELECT count(*) AS n FROM t WHERE c1997 = 'z'") == [{"n": 50}]


def test_a_table_without_a_key_too_wide_for_its_rowid_is_an_exec_error_on_write(
    store: Path,
) -> None:
    """2,000 columns and no key: its changes would carry the rowid as a 2,001st column. The
    declaration stands (a store may hold one: its other tables are written as ever), and a
    write to it is an ``ExecError`` that says so."""
    tables = {"k": sc.table(id="integer primary key", v="text"), "w": _wide(2000)}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO k (v) VALUES ('x')")
        with pytest.raises(sc.ExecError) as caught, space.transact():
            db.exec("INSERT INTO k (v) VALUES ('y')")
            db.exec("INSERT INTO w (c0) VALUES ('z')")
        assert type(caught.value) is sc.ExecError
        assert "no primary key and 2000 columns" in str(caught.value)
        assert "declare the table with a primary key" in str(caught.value)
        assert db.read("SELECT v FROM k") == [{"v": "x"}]
        assert db.read("SELECT count(*) AS n FROM w") == [{"n": 0}]


def test_bulk_changes_of_a_keyless_table_with_generated_columns_are_recorded_and_replayed(
    store: Path,
) -> None:
    """R70, R34: SQLite's diff, which records a bulk write to a table without a primary key,
    fails on a table with generated columns once rows changed ("database schema has changed"):
    every such commit failed as "check the disk", retried in vain. Such a table's rows are
    compared in SQL instead; the changes are recorded exactly — a copy of the file from before
    them, put back, is brought to the same rows by replaying the log (R71)."""
    tables = {
        "g": sc.table(
            a="integer",
            b="text collate nocase",
            s="integer generated always as (a + 1) stored",
            v="integer generated always as (a * 2) virtual",
        )
    }
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec_many("INSERT INTO g (a, b) VALUES (?, 'x')", [[i] for i in range(60)])
        path = db.path
    kept = store.parent / "kept.sqlite"
    shutil.copyfile(path, kept)
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        c = space.cell("c", default=0)
        with space.transact():
            c.set(1)
            db.exec("UPDATE g SET a = a + 1 WHERE a % 3 = 0")  # 20 rows, then
            db.exec("UPDATE g SET b = 'X' WHERE a < 50")  # 'x' to 'X': equal under NOCASE
            db.exec("UPDATE g SET a = a * 10 WHERE a < 50")  # ≈ 50 rows changed
            db.exec("DELETE FROM g WHERE a >= 100")  # ≈ 45 rows gone
            db.exec("INSERT INTO g (a, b) SELECT a + 1000, b FROM g")
        assert c.get() == 1
        expected = db.read("SELECT rowid AS r, a, b, s, v FROM g ORDER BY rowid")
    assert expected == _done_by_sqlite(
        "CREATE TABLE g (a INTEGER, b TEXT COLLATE NOCASE, s INTEGER GENERATED ALWAYS AS (a + 1) "
        "STORED, v INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL)",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 59) "
        "INSERT INTO g (a, b) SELECT i, 'x' FROM n",
        "UPDATE g SET a = a + 1 WHERE a % 3 = 0",
        "UPDATE g SET b = 'X' WHERE a < 50",
        "UPDATE g SET a = a * 10 WHERE a < 50",
        "DELETE FROM g WHERE a >= 100",
        "INSERT INTO g (a, b) SELECT a + 1000, b FROM g",
    )
    shutil.copyfile(kept, path)  # the bulk commit is replayed from the log (R71)
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("d", tables=tables)
        assert db.read("SELECT rowid AS r, a, b, s, v FROM g ORDER BY rowid") == expected


@pytest.mark.parametrize("generated", [False, True])
@pytest.mark.parametrize("name", ["rowid", "OID"])
def test_bulk_writes_of_a_keyless_table_with_a_column_named_like_its_rowid_replay(
    store: Path, name: str, generated: bool
) -> None:
    """R70, R71: a table without a primary key may have a column named ``rowid`` or ``oid``
    (only ``_rowid_`` is kept for the rowid). The exact capture of its bulk writes named the
    rowid ``rowid`` and read that column instead: with a generated column a 50-row INSERT could
    not commit ("null value in PK", advice to check the disk), and without one the changes were
    recorded against the wrong rows, so a file one commit behind was quarantined instead of
    replayed."""
    columns = {name: "text", "v": "integer"}
    if generated:
        columns["w"] = "integer generated always as (v * 2) stored"
    tables = {"t": sc.table(columns)}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():  # the column left NULL: 51 rows, one deleted to leave a gap
            db.exec_many("INSERT INTO t (v) VALUES (?)", [[i] for i in range(51)])
        with space.transact():
            db.exec("DELETE FROM t WHERE v = 0")
        path = db.path
    kept = store.parent / "kept.sqlite"
    shutil.copyfile(path, kept)
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec(f"UPDATE t SET v = v + 100, \"{name}\" = 'r' || v")  # 50 rows: exact capture
        expected = db.read(f'SELECT _rowid_ AS r, "{name}" AS n, v FROM t ORDER BY _rowid_')
    assert [row["r"] for row in expected] == list(range(2, 52))
    assert expected[0] == {"r": 2, "n": "r1", "v": 101}
    shutil.copyfile(kept, path)  # the file one commit behind: the UPDATE is replayed (R71)
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("d", tables=tables)
        assert db.read(f'SELECT _rowid_ AS r, "{name}" AS n, v FROM t ORDER BY _rowid_') == expected

"""R70 with R34 on wide tables: a table without a primary key has its bulk writes (42 rows or
more) captured by comparing its rows column by column. That comparison was one chain of ANDs and
ORs, which SQLite refuses past 1,000 levels: a 500-column table could never be bulk-updated and
the failure came as a commit error advising to check the disk. It uses row values now, and
SQLite's own diff bounds such a table at 996 columns, which the declaration says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.schema._schema import ROWID_TABLE_MAX_COLUMNS


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


def test_a_table_without_a_key_wider_than_its_changes_can_be_compared_is_refused(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with pytest.raises(sc.SchemaError) as caught:
            space.sqlite_database("d", tables={"t": _wide(ROWID_TABLE_MAX_COLUMNS + 1)})
        assert "no PRIMARY KEY and 997 columns" in str(caught.value)
        assert "declare a primary key" in str(caught.value)
        keyed = {"id": "integer primary key", **{f"c{i}": "text" for i in range(1998)}}
        db = space.sqlite_database("k", tables={"t": sc.table(keyed)})  # 1,999 columns: fine
        with space.transact():
            db.exec_many("INSERT INTO t (c0) VALUES (?)", [[str(i)] for i in range(50)])
        with space.transact():
            db.exec("UPDATE t SET c1997 = 'z'")
        assert db.read("SELECT count(*) AS n FROM t WHERE c1997 = 'z'") == [{"n": 50}]

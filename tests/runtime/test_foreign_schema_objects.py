"""Schema objects another program added to a store file run nothing when the runtime writes or
reads it (R71, R73, Errors): a trigger on a space file's own tables never fires on a commit (it
could rewrite other cells, or make every commit fail), and every connection the runtime opens on
a store file has triggers off, ``trusted_schema`` off and SQLite's defensive mode on."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import harden


def _space_path(store: Path) -> Path:
    (path,) = store.glob("space-*.sqlite")
    return path


def _written(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(1)
            space.cell("other").set("kept")


def _add(store: Path, sql: str) -> None:
    """Add a schema object to the space file with plain apsw, as another program."""
    conn = apsw.Connection(str(_space_path(store)))
    try:
        conn.execute(sql)
    finally:
        conn.close()


@pytest.mark.parametrize("event", ["INSERT ON _cf_log", "UPDATE ON _cf_cells"])
def test_a_trigger_another_program_added_to_a_space_file_changes_no_cell(
    tmp_path: Path, event: str
) -> None:
    _written(tmp_path)
    _add(
        tmp_path,
        f"CREATE TRIGGER t AFTER {event} BEGIN "
        "UPDATE _cf_cells SET value = CAST('99' AS BLOB); END",
    )
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(2)
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("demo")
        assert space.cell("c").get() == 2
        assert space.cell("other").get() == "kept"


def test_a_trigger_that_raises_in_a_space_file_fails_no_commit(tmp_path: Path) -> None:
    _written(tmp_path)
    _add(tmp_path, "CREATE TRIGGER t AFTER INSERT ON _cf_log BEGIN SELECT RAISE(ABORT, 'x'); END")
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(3)
        assert space.cell("c").get() == 3
    with sc.Runtime(tmp_path) as rt:
        assert rt.space("demo").cell("c").get() == 3


def test_a_hardened_connection_runs_no_trigger_and_refuses_schema_edits(tmp_path: Path) -> None:
    conn = harden(apsw.Connection(str(tmp_path / "f.sqlite")))
    try:
        assert conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, -1) == 0
        assert conn.config(apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, -1) == 0
        assert conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, -1) == 1
        conn.execute("CREATE TABLE a (x); CREATE TABLE b (x)")
        conn.execute("CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); END")
        conn.execute("INSERT INTO a VALUES (1)")
        assert conn.execute("SELECT count(*) FROM b").fetchall() == [(0,)]
        conn.execute("PRAGMA writable_schema = ON")
        with pytest.raises(apsw.Error):
            conn.execute("UPDATE sqlite_schema SET sql = 'x' WHERE name = 'a'")
    finally:
        conn.close()


def test_a_view_in_place_of_a_space_files_table_is_refused_as_damage(tmp_path: Path) -> None:
    _written(tmp_path)
    _add(
        tmp_path,
        "DROP TABLE _cf_cells; CREATE VIEW _cf_cells AS SELECT 'x' AS id, X'31' AS value, 1 AS rev",
    )
    before = _space_path(tmp_path).read_bytes()
    with sc.Runtime(tmp_path) as rt, pytest.raises(sc.SqliteCellsError) as info:
        rt.space("demo")
    message = str(info.value)
    assert str(_space_path(tmp_path)) in message
    assert "_cf_cells is a view where every space file holds a table" in message
    assert "nothing was written" in message
    assert _space_path(tmp_path).read_bytes() == before

"""Schema objects another program added to a store file run nothing when the runtime writes or
reads it (R71, R73, Errors): a trigger on a space file's own tables never fires on a commit (it
could rewrite other cells, or make every commit fail), and every connection the runtime opens on
a store file has triggers off, ``trusted_schema`` off and SQLite's defensive mode on."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

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


_HARDENED = (
    (apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0),
    (apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0),
    (apsw.SQLITE_DBCONFIG_DEFENSIVE, 1),
)


def _hostile_file(path: Path) -> Path:
    """A WAL file another program wrote: a view calling a function that is not innocuous
    (``fts5()``, which runs only where the schema is trusted) and a trigger on its table."""
    conn = apsw.Connection(str(path))
    try:
        conn.execute(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x); CREATE TABLE seen (x);"
            "CREATE VIEW hostile AS SELECT fts5(NULL) AS x;"
            "CREATE TRIGGER fire AFTER INSERT ON t BEGIN INSERT INTO seen VALUES (1); END"
        ).fetchall()
    finally:
        conn.close()
    return path


def _hardened(conn: apsw.Connection) -> bool:
    return all(conn.config(option, -1) == value for option, value in _HARDENED)


@pytest.mark.parametrize("opener", ["open_unwritable", "open_as_is", "peek"])
def test_a_read_only_open_of_a_store_file_runs_no_view_function_or_trigger(
    tmp_path: Path, opener: str
) -> None:
    """The command line's reads (``open_unwritable``, ``open_as_is``) and the runtime's quick
    looks (``peek``) open store files another program may have written: hardened too."""
    from sqlite_cells.files import open_as_is, open_unwritable
    from sqlite_cells.files._layout import peek

    path = _hostile_file(tmp_path / "f.sqlite")
    if opener == "peek":
        looked: list[bool] = []

        def read(conn: apsw.Connection) -> None:
            looked.append(_hardened(conn))
            with pytest.raises(apsw.SQLError, match="unsafe use of fts5"):
                conn.execute("SELECT * FROM hostile").fetchall()

        peek(path, read)
        assert looked == [True]
        return
    conn = open_unwritable(path) if opener == "open_unwritable" else open_as_is(path)
    try:
        assert _hardened(conn)
        with pytest.raises(apsw.SQLError, match="unsafe use of fts5"):
            conn.execute("SELECT * FROM hostile").fetchall()
    finally:
        conn.close()


class _Seen(apsw.Connection):
    """An ``apsw.Connection`` that notes, as it closes, whether it was hardened."""

    closed: ClassVar[list[bool]] = []

    def close(self, force: bool = False) -> None:
        _Seen.closed.append(_hardened(self))
        super().close(force)


def test_the_connections_that_tidy_remove_or_look_at_a_store_file_are_hardened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a leftover ``-wal`` (``let_go``), removing a store file that holds nothing
    (``remove_unused``, gc's and a refused first commit's), putting a rebuilt file back in WAL
    mode, and a migration's count of the rows before it open their own connections: each runs
    with triggers off, ``trusted_schema`` off and defensive mode on."""
    from types import SimpleNamespace
    from typing import Any, cast

    from sqlite_cells.files._layout import let_go
    from sqlite_cells.files._reconcile import _switch_to_wal
    from sqlite_cells.runtime import file_identity, remove_unused
    from sqlite_cells.schema._migrate import _rows_before

    path = _hostile_file(tmp_path / "f.sqlite")
    holder = apsw.Connection(str(path))  # keeps the -wal there for let_go
    holder.execute("INSERT INTO seen VALUES (0)")
    monkeypatch.setattr(_Seen, "closed", [])
    monkeypatch.setattr(apsw, "Connection", _Seen)
    identity = file_identity(str(path))
    assert identity is not None
    let_go(path, identity)
    holder.close()
    assert len(_Seen.closed) == 1

    def holds_nothing(conn: apsw.Connection) -> bool:
        with pytest.raises(apsw.SQLError, match="unsafe use of fts5"):
            conn.execute("SELECT * FROM hostile").fetchall()
        return False  # kept

    assert not remove_unused(path, holds_nothing)
    _switch_to_wal(path)
    _rows_before(path, cast(Any, SimpleNamespace(tables=(("t", None),))))
    assert len(_Seen.closed) >= 4
    assert all(_Seen.closed), _Seen.closed
    assert path.exists()

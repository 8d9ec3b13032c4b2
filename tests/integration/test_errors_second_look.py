"""Errors, second look (SPEC §5 "Errors", R6, R5): text another program stored that is not UTF-8
— in a cell's value, a commit record, a database handle — is one row's error, named as such,
never a raw ``UnicodeDecodeError`` and never an error that stops every other row; values that are
not JSON are refused at ``set`` wherever they sit, recording nothing; stores on odd paths work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import StoredCellError
from tests.conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _space_path(store: Path) -> Path:
    (path,) = store.glob("space-*.sqlite")
    return path


def _foreign(store: Path, sql: str, *params: Any) -> None:
    """Run ``sql`` on the space file with plain apsw, as another program would."""
    conn = apsw.Connection(str(_space_path(store)))
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def _not_utf8_text(
    store: Path, table: str, column: str, key: str, key_value: Any, hexed: str
) -> None:
    _foreign(
        store,
        f"UPDATE {table} SET {column} = CAST(x'{hexed}' AS TEXT) WHERE {key} = ?",
        key_value,
    )


# -- text that is not UTF-8, written by another program ------------------------------------------


def test_a_cell_value_stored_as_text_not_utf8_names_the_cell(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        with space.transact():
            c.set({"a": "b"})
            space.cell("other").set("kept")
        cell_id = c.id
    # {"a":"b\xff"}
    _not_utf8_text(store, "_cf_cells", "value", "id", cell_id, "7b2261223a2262ff227d")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        for read in (lambda: space.cell("c").get(), lambda: space.cell("c").key("a").get()):
            with pytest.raises(StoredCellError) as info:
                read()
            assert info.value.cell_id == cell_id
            assert cell_id in str(info.value) and str(_space_path(store)) in str(info.value)
            assert "not JSON" in str(info.value) and "restore the space file" in str(info.value)
        assert space.cell("other").get() == "kept"
        with space.transact():  # writing the cell whole repairs it
            space.cell("c").set(1)
        assert space.cell("c").get() == 1


def test_a_runtime_behind_the_compacted_log_catches_up_past_a_cell_not_utf8(store: Path) -> None:
    with sc.Runtime(store) as a, sc.Runtime(store, poll_interval=3600) as b:
        space_a = a.space("demo")
        space_a.file.compact_keep, space_a.file.compact_every = 3, 4
        space_a.file.keep_per_target = 2
        with space_a.transact():
            space_a.cell("bad").set(0)
            space_a.cell("good").set(0)
        space_b = b.space("demo")
        space_b.file.wake = lambda: None  # behind until told to catch up
        assert (space_b.cell("bad").get(), space_b.cell("good").get()) == (0, 0)
        for i in range(1, 12):
            with space_a.transact():
                space_a.cell("bad").set(i)
                space_a.cell("good").set(i)
        _not_utf8_text(store, "_cf_cells", "value", "id", space_a.cell("bad").id, "22ff22")
        assert space_b.file.catch_up()  # past the compacted log, from the cells: all but one
        assert space_b.cell("good").get() == 11
        with pytest.raises(StoredCellError, match="not JSON"):
            space_b.cell("bad").get()


def test_a_commit_record_not_utf8_fails_the_commit_with_our_error(store: Path) -> None:
    with sc.Runtime(store) as a, sc.Runtime(store, poll_interval=3600) as b:
        space_a = a.space("demo")
        with space_a.transact():
            space_a.cell("x").set(0)
        space_b = b.space("demo")
        space_b.file.wake = lambda: None
        assert space_b.cell("x").get() == 0
        with space_a.transact():
            space_a.cell("x").set(1)
        _not_utf8_text(store, "_cf_log", "record", "seq", 2, "ff")
        refused = pytest.raises(sc.EncodingError, match="commit log cannot be read")
        with refused as info, space_b.transact():
            space_b.cell("x").set(5)
        assert "sqlite-cells check" in str(info.value)
        assert not isinstance(info.value, UnicodeError)
    with sc.Runtime(store) as rt:
        assert rt.space("demo").cell("x").get() == 1  # nothing of the refused commit


def test_a_handle_value_not_utf8_quarantines_its_database_in_library_and_commands(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
        db_id = db.id
    _not_utf8_text(store, "_cf_cells", "value", "id", db_id, "7bff7d")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        with pytest.raises(sc.Quarantined, match=db_id):
            db.read("SELECT * FROM t")
        with pytest.raises(sc.Quarantined), space.transact():
            db.exec("INSERT INTO t (v) VALUES ('b')")
    inspected = run_cli("inspect", str(store))
    assert inspected.returncode == 1, inspected.stderr  # a finding, as for check
    assert "space 'demo'" in inspected.stdout
    assert f"finding: database {db_id} of space 'demo' is quarantined" in inspected.stdout
    checked = run_cli("check", str(store))
    assert checked.returncode == 1, checked.stderr
    assert "quarantined" in checked.stdout and "not a database handle" in checked.stdout
    listed = run_cli("gc", str(store))
    assert listed.returncode == 0, listed.stderr
    assert "nothing to remove" in listed.stdout  # the file a handle named is never garbage


# -- values that are not JSON (R6), wherever they sit ---------------------------------------------


class _Str(str):
    pass


class _Int(int):
    pass


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ([{"a": float("nan")}], "at value[0]['a']: nan"),
        ({"a": [[float("inf")]]}, "at value['a'][0][0]: inf"),
        ({"k": [1, {b"x": 1}]}, "at value['k'][1]: dict keys must be str, not bytes"),
        ({"a": [1, 2**64]}, "at value['a'][1]: the integer 18446744073709551616"),
        ([-(2**63) - 1], "the integer -9223372036854775809"),
        ({(1, 2): 1}, "dict keys must be str, not tuple"),
        ({_Str("k"): 1}, "dict keys must be str, not _Str"),
        (_Str("x"), "cannot store a _Str"),
        ([_Int(3)], "at value[0]: cannot store a _Int"),
        ({"s": {1, 2}}, "at value['s']: cannot store a set"),
        ({"a": "x\ud800"}, "not valid Unicode text"),
        ({"\udc80": 1}, "not valid Unicode text"),
    ],
)
def test_a_value_not_json_at_any_depth_is_refused_at_set_and_records_nothing(
    rt: sc.Runtime, value: Any, shown: str
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact():
        c.set("before")
    seq = space.file.seen_seq
    with space.transact():
        with pytest.raises(sc.ValueEncodeError) as info:
            c.set(value)
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
        assert shown in str(info.value)
        assert c.get() == "before"  # the transaction is still usable and holds nothing of it
    assert space.file.seen_seq == seq  # nothing was committed
    assert c.get() == "before"


def test_nul_characters_are_text_and_read_back_exactly(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c")
    db = space.sqlite_database("x", tables=TABLES)
    with space.transact():
        c.set({"a\x00b": "c\x00d"})
        db.exec("INSERT INTO t (v) VALUES (?)", ["e\x00f"])
    assert c.get() == {"a\x00b": "c\x00d"}
    assert db.read("SELECT v FROM t") == [{"v": "e\x00f"}]


def test_a_lone_surrogate_in_a_statement_or_a_parameter_is_refused_at_the_call(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("x", tables=TABLES)
    with space.transact():
        with pytest.raises(sc.ExecError, match="lone surrogate"):
            db.exec("INSERT INTO t (v) VALUES (?)", ["\ud800"])
        with pytest.raises(sc.ExecError, match="row 1"):
            db.exec_many("INSERT INTO t (v) VALUES (?)", [["ok"], ["x\ud800"]])
        with pytest.raises(sc.GuardViolation, match="lone surrogate"):
            db.exec("INSERT INTO t (v) VALUES ('\ud800')")
        db.exec("INSERT INTO t (v) VALUES ('kept')")  # the transaction is still usable
    with pytest.raises(sc.QueryError, match="lone surrogate"):
        db.read("SELECT ? AS a", ["\ud800"])
    assert db.read("SELECT v FROM t") == [{"v": "kept"}]
    assert db.rev == 1


# -- stores on odd paths --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["with space", "ünï©ødé", "new\nline", "q?x#y%20", "file:x"])
def test_a_store_on_a_path_with_odd_characters_works_and_reopens(tmp_path: Path, name: str) -> None:
    store = tmp_path / name
    for expected in (1, 2):
        with sc.Runtime(store) as rt:
            space = rt.space("demo")
            c = space.cell("c", default=0)
            db = space.sqlite_database("x", tables=TABLES)
            with space.transact():
                c.set(c.get() + 1)
                db.exec("INSERT INTO t (v) VALUES ('a')")
            assert c.get() == expected
            assert db.read("SELECT count(*) AS n FROM t") == [{"n": expected}]
            assert db.path.parent == store.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing beside the store


def test_the_store_from_the_environment_empty_is_the_default_and_relative_is_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for env, expected in (("", ".sqlite-cells"), ("rel/store", "rel/store")):
        monkeypatch.setenv("SQLITE_CELLS_STORE", env)
        with sc.Runtime() as rt:
            space = rt.space("demo")
            with space.transact():
                space.cell("c").set(env)
        assert list((tmp_path / expected).glob("space-*.sqlite"))
    monkeypatch.chdir(tmp_path / "rel")  # the runtime keeps the directory it resolved at start
    monkeypatch.setenv("SQLITE_CELLS_STORE", "store")
    with sc.Runtime() as rt:
        assert rt.space("demo").cell("c").get() == "rel/store"


def test_a_store_path_that_is_a_file_or_under_one_is_our_error_naming_it(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for store in (a_file, a_file / "sub"):
        with pytest.raises(sc.SqliteCellsError) as info:
            sc.Runtime(store)
        assert isinstance(info.value, ValueError)
        assert str(a_file) in str(info.value)
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("damage", ["zeros", "text", "truncated-header", "truncated-mid-page"])
def test_a_damaged_space_file_is_our_error_naming_it_and_is_left_as_found(
    store: Path, damage: str
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            for i in range(50):
                space.cell(f"c{i}").set("x" * 200)
    path = _space_path(store)
    size = path.stat().st_size
    if damage == "zeros":
        path.write_bytes(bytes(size))
    elif damage == "text":
        path.write_bytes(b"not a database " * 1000)
    else:
        os.truncate(path, 100 if damage == "truncated-header" else 4096 + 1000)
    before = path.read_bytes()
    with sc.Runtime(store) as rt:
        with pytest.raises(sc.SqliteCellsError) as info:  # at the open, or at the first read
            rt.space("demo").cell("c0").get()
        assert str(path) in str(info.value)
        assert "restore it" in str(info.value) or "restore the space file" in str(info.value)

        def write() -> None:
            space = rt.space("demo")
            with space.transact():
                space.cell("c0").set(1)

        with pytest.raises(sc.SqliteCellsError):
            write()
    assert path.read_bytes() == before


# -- text that is not UTF-8 written by a statement ------------------------------------------------


def test_an_update_storing_text_not_utf8_still_re_runs_the_queries_it_changes(
    rt: sc.Runtime,
) -> None:
    """A database without link columns takes such text (decided at the top of decisions.md); a
    query reading a column the UPDATE changed re-runs all the same (R51)."""
    space = rt.space("demo")
    db = space.sqlite_database(
        "x", tables={"t": sc.table(id="integer primary key", n="integer", v="text")}
    )
    with space.transact():
        db.exec("INSERT INTO t (id, n, v) VALUES (1, 0, 'a')")
    counts = db.query("SELECT n FROM t")
    rt.settle()
    assert counts.get().result == [{"n": 0}]
    with space.transact():
        db.exec("UPDATE t SET n = 7, v = CAST(x'61ff' AS TEXT) WHERE id = 1")
    rt.settle()
    state = counts.get()
    assert (state.result, state.error, state.seq) == ([{"n": 7}], None, 2)
    with space.transact():  # and the text written back over it, old value not UTF-8 this time
        db.exec("UPDATE t SET n = 8, v = 'b' WHERE id = 1")
    rt.settle()
    assert counts.get().result == [{"n": 8}]
    assert db.read("SELECT v FROM t") == [{"v": "b"}]

"""Identity, files and handles, from the contract's words (SPEC §2, §3, R1–R5, R7).

Ids are derived from their cause and rebound by re-running a program (in another process too);
a database's file is named after its id beside its space's file; nothing points a database at a
cell or file of the caller's choosing; a default belongs to its id within one runtime; a handle
is written by its database alone; and no read creates a file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import short_hash
from sqlite_cells.runtime import InvalidArgument

TABLES = {
    "m": sc.table(id="integer primary key", who_cf_link=sc.cf_link(), body="text"),
}

PROGRAM = textwrap.dedent(
    """
    import json, sys
    import sqlite_cells as sc

    @sc.pattern
    def chat(me: sc.Cell):
        db = me.space.sqlite_database(tables={"m": sc.table(id="integer primary key")})
        named = me.space.cell("named")
        first = me.space.cell()
        second = me.space.cell()
        return {"db": db.id, "named": named.id, "first": first.id, "second": second.id}

    with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("demo")
        tables = {"m": sc.table(id="integer primary key")}
        odd = ["x", "a/b", "a:b", "a\\x00b", "é", "e\\u0301", "z" * 5000, "ﬁ"]
        me = space.cell("me")
        piece = space.run(chat, key="main", me=me)
        out = {
            "cells": [space.cell(name).id for name in odd],
            "key": me.key("a").key(0).link_str(),
            "db": space.sqlite_database("chat", tables=tables).id,
            "piece": piece.id,
            "inputs": {k: v.id for k, v in piece.inputs.items()},
            "outputs": piece.outputs,
            "db_path": str(space.sqlite_database("chat", tables=tables).path),
        }
        print(json.dumps(out, sort_keys=True))
    """
)


def _run_program(tmp_path: Path, store: Path) -> dict[str, object]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, str(script), str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]  # the program prints an object


def _files(store: Path) -> list[str]:
    return sorted(os.listdir(store))


# -- R1: ids derive from their cause ---------------------------------------------------------


def test_the_same_program_binds_the_same_ids_in_another_process(
    tmp_path: Path, store: Path
) -> None:
    first = _run_program(tmp_path, store)
    second = _run_program(tmp_path, store)
    assert first == second
    # Another store: the ids are the cause's, not the store's (only the file path differs).
    other = tmp_path / "other"
    other.mkdir()
    third = _run_program(tmp_path, other)
    assert {k: v for k, v in third.items() if k != "db_path"} == {
        k: v for k, v in first.items() if k != "db_path"
    }
    cells = first["cells"]
    assert isinstance(cells, list)
    assert len(set(cells)) == len(cells)  # NFC and NFD, "a/b" and "a:b" are different names
    assert all(re.fullmatch(r"of:[a-z2-7]+", str(i)) for i in cells)
    outputs = first["outputs"]
    assert isinstance(outputs, dict)
    assert len(set(outputs.values())) == 4  # named, first, second and the database differ


def test_ids_in_process_equal_those_of_a_fresh_runtime(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    names = ["x", unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é"), "a\x00b"]
    ids = [space.cell(n).id for n in names]
    db_id = space.sqlite_database("chat", tables=TABLES).id
    # A cell and a database of the same name in one space are different entities.
    assert space.cell("chat").id != db_id
    rt.close()
    with sc.Runtime(store) as again:
        space2 = again.space("demo")
        assert [space2.cell(n).id for n in names] == ids
        assert space2.sqlite_database("chat", tables=TABLES).id == db_id
    assert ids[1] != ids[2]


def test_the_same_name_in_two_spaces_names_two_cells(rt: sc.Runtime) -> None:
    a, b = rt.space("a").cell("n"), rt.space("b").cell("n")
    assert a.id != b.id
    assert a != b


@pytest.mark.parametrize("name", ["", "\ud800", "a\udfffb"])
def test_names_that_name_nothing_are_refused_and_create_nothing(
    rt: sc.Runtime, store: Path, name: str
) -> None:
    space = rt.space("demo")
    for call in (
        lambda: space.cell(name),
        lambda: rt.space(name),
        lambda: space.sqlite_database(name, tables=TABLES),
    ):
        with pytest.raises(sc.ValueEncodeError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert _files(store) == []


def test_a_very_long_name_is_an_ordinary_name(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("s" * 10_000)
    cell = space.cell("n" * 100_000, default=1)
    db = space.sqlite_database("d" * 100_000, tables=TABLES)
    with space.transact():
        cell.set(2)
        db.exec("INSERT INTO m (body) VALUES ('x')")
    assert len(db.path.name) == len("cell-.sqlite") + 32
    rt.close()
    with sc.Runtime(store) as again:
        space2 = again.space("s" * 10_000)
        assert space2.cell("n" * 100_000).get() == 2
        db2 = space2.sqlite_database("d" * 100_000, tables=TABLES)
        assert db2.read("SELECT body FROM m") == [{"body": "x"}]


# -- R2: a database's file and its handle --------------------------------------------------


def test_a_database_file_is_named_after_its_id_beside_its_space_file(
    rt: sc.Runtime, store: Path
) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    assert db.path.parent == store
    assert re.fullmatch(r"cell-[0-9a-f]{32}\.sqlite", db.path.name)
    assert not db.path.exists()  # nothing before the first write (R13)
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('hi')")
    spaces = [n for n in _files(store) if n.startswith("space-") and n.endswith(".sqlite")]
    assert len(spaces) == 1
    assert db.path.exists()
    # Two databases, two files; the name depends on the id alone.
    other = space.sqlite_database("other", tables=TABLES)
    assert other.path != db.path and other.path.parent == store


def test_the_handle_value_is_stored_whole(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    assert db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 0}
    assert db.rev == 0
    for n in range(2):
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES (?)", [str(n)])
    assert db.rev == 2
    space_file = next(store.glob("space-*.sqlite"))
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows = conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (db.id,)).fetchall()
    finally:
        conn.close()
    assert len(rows) == 1
    raw = rows[0][0]
    stored = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
    assert set(stored) == {"id", "tables", "rev"}
    assert stored["id"] == db.id and stored["rev"] == 2
    assert stored == db.get()
    assert set(stored["tables"]) == {"m"}


# -- R3: nothing points a database at a cell or a file of the caller's choosing ---------------


@sc.pattern
def uses_db(db: sc.SqliteDb) -> sc.SqliteDb:
    return db


def test_a_plain_cell_is_no_database_input(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    plain = space.cell("plain", default={"x": 1})
    with pytest.raises(TypeError):
        space.run(uses_db, key="k", db=plain)
    with pytest.raises(sc.SqliteCellsError):
        space.run(uses_db, key="k2", db=str(store / "elsewhere.sqlite"))
    assert _files(store) == []


def test_a_handle_shaped_default_does_not_make_a_plain_cell_a_database(
    rt: sc.Runtime, store: Path
) -> None:
    """R3: the only ways to a handle are sqlite_database and register_disk_source; a default
    is a value a cell reads until written (R4), not a handle the caller made."""
    space = rt.space("demo")
    tables = space.sqlite_database("chat", tables=TABLES).get()["tables"]
    plain_id = space.cell("plain").id
    with pytest.raises(TypeError) as info:
        space.cell("plain", default={"id": plain_id, "tables": tables, "rev": 0})
    assert isinstance(info.value, sc.SqliteCellsError)
    assert space.cell("plain").get() is None  # nothing was declared
    piece = space.run(uses_db, key="k")
    with pytest.raises(TypeError, match="holds no database handle"):
        piece.inputs["db"].link(space.cell("plain"))  # refused at the call
    with space.transact():
        piece.inputs["db"].set(space.cell("plain"))  # the same link, as the input's value
    db = piece.outputs
    with pytest.raises(sc.SqliteCellsError):
        db.read("SELECT * FROM m")
    with pytest.raises(sc.SqliteCellsError), space.transact():
        db.exec("INSERT INTO m (body) VALUES ('x')")
    assert not any(name.startswith("cell-") for name in _files(store))


def test_a_handle_shaped_value_of_another_cell_is_no_database(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    real = space.sqlite_database("chat", tables=TABLES)
    copy = space.cell("copy")
    with space.transact():
        copy.set(real.get())  # another id's handle: a plain value of this cell
    piece = space.run(uses_db, key="k")
    with pytest.raises(TypeError, match="holds no database handle"):
        piece.inputs["db"].link(copy)  # refused at the call
    with space.transact():
        piece.inputs["db"].set(copy)  # the same link, as the input's value
    with pytest.raises(sc.SqliteCellsError):
        piece.outputs.read("SELECT * FROM m")
    with pytest.raises(TypeError):
        space.run(uses_db, key="k2", db=copy)
    assert not real.path.exists()


def test_sqlite_database_takes_no_file_or_cell(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    for option in ({"path": str(store / "x.db")}, {"cell": space.cell("c")}, {"id": "of:x"}):
        with pytest.raises(TypeError):
            space.sqlite_database("chat", tables=TABLES, **option)  # type: ignore[call-arg]
    with pytest.raises(sc.SqliteCellsError):
        space.sqlite_database("chat", tables=TABLES, source="/tmp/x.db")  # type: ignore[arg-type]
    assert _files(store) == []


# -- R4: a default belongs to its id within a runtime ----------------------------------------


def test_every_cell_of_an_id_reads_the_latest_default(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default={"a": [10, 20]})
    by_link = rt.cell_from_link(c.link_str())
    decoded = sc.decode_cf_link(c.link_str(), rt)
    assert decoded is not None
    assert by_link.get() == decoded.get() == {"a": [10, 20]}
    assert c.key("a").key(1).get() == 20
    assert rt.cell_from_link(c.key("a").key(0).link()).get() == 10
    space.cell("c", default={"a": [1]})  # declared again: the newest wins for every Cell
    assert c.get() == by_link.get() == decoded.get() == {"a": [1]}
    assert c.key("a").key(1).get() is None
    space.cell("c")  # no default given: the id keeps the one declared last
    assert by_link.get() == {"a": [1]}


def test_a_default_given_with_a_path_is_refused_and_declares_nothing(rt: sc.Runtime) -> None:
    """R4: the default belongs to the id. ``Cell(space, id, path, default=…)`` declared its
    default as the whole cell's: the path read ``None``, the root read 5 and its other keys
    nothing. Refused, naming the path; the default declared before stays."""
    space = rt.space("demo")
    root = space.cell("x", default={"a": 1, "b": 2})
    with pytest.raises(InvalidArgument, match=r"belongs to a whole cell .*\('a',\)") as info:
        sc.Cell(space, root.id, ("a",), default=5)
    assert isinstance(info.value, ValueError) and isinstance(info.value, sc.SqliteCellsError)
    assert root.get() == {"a": 1, "b": 2} and root.key("b").get() == 2
    assert sc.Cell(space, root.id, ("a",)).get() == 1


def test_a_default_reaches_cells_read_back_from_values_and_rows(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    target = space.cell("target", default="dflt")
    holder = space.cell("holder")
    db = space.sqlite_database("chat", tables=TABLES)

    import msgspec

    class Typed(msgspec.Struct):
        who_cf_link: sc.Cell | None

    with space.transact():
        holder.set({"t": target})
        db.exec("INSERT INTO m (who_cf_link) VALUES (?)", [target])
    from_value = holder.get()["t"]
    assert isinstance(from_value, sc.Cell) and from_value.get() == "dflt"
    [row] = db.read("SELECT who_cf_link FROM m", row=Typed)
    assert row.who_cf_link is not None and row.who_cf_link.get() == "dflt"
    space.cell("target", default="newer")
    assert from_value.get() == row.who_cf_link.get() == "newer"
    with space.transact():
        target.set(None)  # written: the default no longer matters, even for None
    assert from_value.get() is None and row.who_cf_link.get() is None
    space.cell("target", default="ignored")
    assert target.get() is None


def test_links_carry_no_default(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=5)
    link = c.link_str()
    assert "5" not in link.replace(c.id, "")
    with sc.Runtime(store) as other:
        assert other.cell_from_link(link).get() is None
        got = sc.decode_cf_link(link, other)
        assert got is not None and got.get() is None
        assert other.space("demo").cell("c").get() is None
    assert c.get() == 5
    # Declaring None removes the default.
    space.cell("c", default=None)
    assert rt.cell_from_link(link).get() is None


def test_another_process_that_never_declared_the_default_reads_none(
    rt: sc.Runtime, store: Path, tmp_path: Path
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=5)
    with space.transact():
        space.cell("other").set(1)  # the space file exists
    script = tmp_path / "read.py"
    script.write_text(
        "import sys, sqlite_cells as sc\n"
        "with sc.Runtime(sys.argv[1]) as rt:\n"
        "    print(repr(rt.cell_from_link(sys.argv[2]).get()))\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script), str(store), c.link_str()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_a_default_that_is_not_json_is_refused_and_declares_nothing(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    space.cell("c", default=1)
    with pytest.raises(sc.ValueEncodeError):
        space.cell("c", default={1, 2})
    assert space.cell("c").get() == 1


def test_observers_see_the_default_then_the_first_write(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=[1])
    seen: list[object] = []
    c.observe().subscribe(seen.append)
    rt.settle()
    with space.transact():
        c.set([2])
    rt.settle()
    assert seen == [[1], [2]]


def test_observers_and_derived_cells_follow_a_default_declared_again(rt: sc.Runtime) -> None:
    """R4: every Cell of the id reads the newest default until the cell is written; what
    observes or derives from such a cell reads it too, and a late subscriber starts from it."""
    space = rt.space("demo")
    c = space.cell("c", default={"n": 1})
    doubled = sc.derive(c.key("n"), lambda v: v * 2)
    seen: list[object] = []
    c.observe().subscribe(seen.append)
    rt.settle()
    assert doubled.get() == 2
    space.cell("c", default={"n": 5})
    rt.settle()
    assert seen == [{"n": 1}, {"n": 5}]
    assert doubled.get() == 10
    late: list[object] = []
    rt.cell_from_link(c.link()).observe().subscribe(late.append)
    rt.settle()
    assert late == [{"n": 5}]
    with space.transact():
        c.set({"n": 7})
    space.cell("c", default={"n": 9})  # written: the default no longer matters
    rt.settle()
    assert seen == [{"n": 1}, {"n": 5}, {"n": 7}] and doubled.get() == 14


# -- R5: a handle is written by its database alone ------------------------------------------


def test_set_update_and_key_on_a_database_raise_type_error(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    with space.transact():
        for call in (lambda: db.set(1), lambda: db.update(lambda v: v), lambda: db.key("rev")):
            with pytest.raises(TypeError) as info:
                call()
            assert isinstance(info.value, sc.SqliteCellsError)
    with pytest.raises(TypeError):
        db.set(1)  # outside a transaction too: the handle is never writable
    assert _files(store) == []


def test_no_cell_of_a_handle_id_writes_it(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('a')")
    before = db.get()
    for cell in (rt.cell_from_link(db.link_str()), sc.decode_cf_link(db.link_str(), rt)):
        assert cell is not None
        with space.transact():
            with pytest.raises(TypeError):
                cell.set({**before, "rev": 9})
            with pytest.raises(TypeError):
                cell.key("rev").set(9)
            with pytest.raises(TypeError):
                cell.update(lambda v: v)
    assert db.get() == before
    rt.close()
    with sc.Runtime(store) as again:  # after a restart, before anything is declared
        cell = again.cell_from_link(db.link_str())
        with again.space("demo").transact(), pytest.raises(TypeError):
            cell.set(None)
        assert again.cell_from_link(db.link_str()).get() == before


def test_a_refused_handle_write_leaves_the_transaction_usable(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    other = space.cell("other")
    with space.transact():
        other.set(1)
        with pytest.raises(TypeError):
            rt.cell_from_link(db.link()).set({"id": db.id, "tables": {}, "rev": 3})
        db.exec("INSERT INTO m (body) VALUES ('x')")
    assert other.get() == 1 and db.rev == 1


def test_a_handle_that_does_not_decode_is_quarantined_never_none(
    rt: sc.Runtime, store: Path
) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('a')")
    rt.close()
    space_file = next(store.glob("space-*.sqlite"))
    for bad in ('{"id": "of:other", "tables": {}, "rev": 1}', "[1, 2]", '"text"', "{not json"):
        conn = apsw.Connection(str(space_file))
        conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (bad, db.id))
        conn.close()
        with sc.Runtime(store) as again:
            db2 = again.space("demo").sqlite_database("chat", tables=TABLES)
            with pytest.raises(sc.Quarantined):
                db2.read("SELECT * FROM m")
            with pytest.raises(sc.Quarantined):
                db2.get()
            with pytest.raises(sc.Quarantined), again.space("demo").transact():
                db2.exec("INSERT INTO m (body) VALUES ('b')")
            state = db2.query("SELECT * FROM m").get()
            again.settle()
            state = db2.query("SELECT * FROM m").get()
            assert isinstance(state.error, sc.Quarantined) or state.pending


def test_a_null_handle_does_not_let_gc_remove_the_file(rt: sc.Runtime, store: Path) -> None:
    """R5 and R74: only ``db.drop()`` lets ``gc`` remove a database that a handle named."""
    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('keep')")
    with pytest.raises(TypeError), space.transact():
        db.set(None)
    with pytest.raises(TypeError), space.transact():
        rt.cell_from_link(db.link()).set(None)
    assert space.gc() == []
    assert db.path.exists()
    assert db.read("SELECT body FROM m") == [{"body": "keep"}]


# -- R7: no read creates a file ---------------------------------------------------------------


def test_reads_of_a_space_the_store_does_not_hold_create_nothing(
    rt: sc.Runtime, store: Path
) -> None:
    link = '{"/":{"link@1":{"id":"of:abc","space":"nowhere","scope":"space"}}}'
    cell = rt.cell_from_link(link)
    assert isinstance(cell, sc.Cell) and cell.get() is None
    decoded = sc.decode_cf_link(link, rt)
    assert decoded is not None and decoded.key("a").get() is None
    space = rt.space("unheld")
    c = space.cell("c")
    assert c.get() is None
    seen: list[object] = []
    c.observe().subscribe(seen.append)
    doubled = sc.derive(c, lambda v: v)
    rt.settle()
    assert seen == [None] and doubled.get() is None
    db = space.sqlite_database("chat", tables=TABLES)
    assert db.read("SELECT * FROM m") == []
    assert db.get()["rev"] == 0 and db.rev == 0
    q = db.query("SELECT * FROM m")
    rt.settle()
    assert q.get().result == []
    with space.transact():
        assert c.get() is None  # a transaction that only reads writes nothing
    with pytest.raises(RuntimeError), space.transact():
        raise RuntimeError("abandoned")
    assert _files(store) == []
    with pytest.raises(sc.LinkDecodeError):
        rt.cell_from_link("garbage")
    with pytest.raises(sc.LinkDecodeError):
        rt.cell_from_link(b"\xff\xfe")
    assert _files(store) == []


def test_a_typed_row_naming_an_unheld_space_creates_nothing(rt: sc.Runtime, store: Path) -> None:
    import msgspec

    class Row(msgspec.Struct):
        who_cf_link: sc.Cell | None

    space = rt.space("demo")
    db = space.sqlite_database("chat", tables=TABLES)
    far = rt.cell_from_link('{"/":{"link@1":{"id":"of:abc","space":"far","scope":"space"}}}')
    with space.transact():
        db.exec("INSERT INTO m (who_cf_link) VALUES (?)", [far])
    before = _files(store)
    rt.close()
    with sc.Runtime(store) as again:
        db2 = again.space("demo").sqlite_database("chat", tables=TABLES)
        [row] = db2.read("SELECT who_cf_link FROM m", row=Row)
        assert row.who_cf_link is not None
        assert row.who_cf_link.space.id == "far" and row.who_cf_link.get() is None
        q = db2.query("SELECT who_cf_link FROM m", row=Row)
        again.settle()
        [live] = q.get().result
        assert live.who_cf_link.get() is None
    assert sorted(n for n in _files(store) if n.endswith(".sqlite")) == sorted(
        n for n in before if n.endswith(".sqlite")
    )
    far_file = f"space-{short_hash('far')}.sqlite"
    assert far_file not in _files(store)


def test_the_first_write_creates_the_space_file(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("demo")
    with space.transact():
        space.cell("c").set(1)
    assert [n for n in _files(store) if n.endswith(".sqlite")] == [
        n for n in _files(store) if n.startswith("space-") and n.endswith(".sqlite")
    ]
    assert len([n for n in _files(store) if n.endswith(".sqlite")]) == 1

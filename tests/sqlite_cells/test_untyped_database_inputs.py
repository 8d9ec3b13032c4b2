"""§2, R1: re-running a piece rebinds to the same cells and databases. A database given to a
pattern parameter not typed ``sc.SqliteDb`` (no annotation, or ``sc.Cell``) reached the body as
that database at the run that gave it; a run again without that input — the piece's input cell
keeps the link — gave the body the database's handle cell, a plain ``Cell`` with no ``read``,
``query`` or ``exec``, in the same runtime and after a restart. It gets the database again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw

import sqlite_cells as sc

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@sc.pattern
def reads(db, ref: sc.Cell, plain) -> Any:  # type: ignore[no-untyped-def]
    return (
        type(db).__name__,
        db.read("SELECT v FROM t"),
        ref.read("SELECT v FROM t"),
        plain if isinstance(plain, sc.Cell) else type(plain).__name__,
    )


def test_a_database_given_to_an_untyped_parameter_is_that_database_when_run_again(
    tmp_path: Path,
) -> None:
    source = tmp_path / "reference.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('ref')")
    conn.close()
    store = tmp_path / "store"
    expected = ("SqliteDb", [{"v": "a"}], [{"v": "ref"}])
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=TABLES)
        counter = space.cell("counter")
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
            counter.set(3)
        ref = space.register_disk_source(str(source))
        first = space.run(reads, key="k", db=db, ref=ref, plain=counter)
        assert first.outputs[:3] == expected
        again = space.run(reads, key="k")
        assert again.outputs[:3] == expected
        assert again.outputs[3] == counter  # a plain cell given stays that cell
    with sc.Runtime(store) as rt:  # a runtime that never declared the database
        space = rt.space("s")
        after = space.run(reads, key="k")
        assert after.outputs[:3] == expected
        assert isinstance(after.outputs[3], sc.Cell) and after.outputs[3].get() == 3


@sc.pattern
def holder(db: sc.SqliteDb) -> sc.SqliteDb:
    return db


@sc.pattern
def shows(db) -> sc.Query:  # type: ignore[no-untyped-def]
    return db.query("SELECT v FROM t")


def _shown(query: sc.Query) -> list[str]:
    state = query.get()
    assert state.error is None and state.result is not None, state
    return [row["v"] for row in state.result]


def test_another_pieces_database_input_given_untyped_is_followed_when_run_again(
    tmp_path: Path,
) -> None:
    """Given another piece's database input (``holder.outputs``, which follows what that input
    links to), an untyped parameter's body followed a relink of it; run again without it — in
    the same runtime or after a restart — the body got the database the input linked to at
    that moment, and a relink of the other input no longer reached the piece. It gets that
    input again, following it."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        a, b = (space.sqlite_database(name, tables=TABLES) for name in ("a", "b"))
        for name, db in (("a", a), ("b", b)):
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES (?)", [name])
        held = space.run(holder, key="h", db=a)
        first = space.run(shows, key="p", db=held.outputs)
        again = space.run(shows, key="p")
        assert rt.settle(timeout=10)
        assert _shown(first.outputs) == _shown(again.outputs) == ["a"]
        held.inputs["db"].link(b)
        assert rt.settle(timeout=10)
        assert _shown(first.outputs) == _shown(again.outputs) == ["b"]
    with sc.Runtime(tmp_path) as rt:  # a restart, the holder not run yet
        space = rt.space("s")
        after = space.run(shows, key="p")
        assert rt.settle(timeout=10)
        assert _shown(after.outputs) == ["b"]
        held = space.run(holder, key="h")
        held.inputs["db"].link(space.sqlite_database("a", tables=TABLES))
        assert rt.settle(timeout=10)
        assert _shown(after.outputs) == ["a"]


def test_a_link_to_a_database_given_to_an_untyped_parameter_is_that_database(
    tmp_path: Path,
) -> None:
    """A link given to ``space.run`` is the cell it names, treated as if that cell were given
    (decided); a link to a database (``db.link()``, its text read back with
    ``rt.cell_from_link``) gave an untyped parameter the database's handle cell, a plain
    ``Cell`` with no ``read``, where the database given — and the same piece run again without
    the input — gave the database. Also for a source's link."""
    source = tmp_path / "reference.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('ref')")
    conn.close()
    with sc.Runtime(tmp_path / "store") as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=TABLES)
        counter = space.cell("counter")
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
            counter.set(3)
        ref = space.register_disk_source(str(source))
        expected = ("SqliteDb", [{"v": "a"}], [{"v": "ref"}])
        given = {"db": db.link(), "ref": rt.cell_from_link(ref.link_str()), "plain": counter}
        first = space.run(reads, key="k", **given)
        assert first.outputs[:3] == expected
        assert first.outputs[3] == counter  # a plain cell given stays that cell
        assert space.run(reads, key="k").outputs[:3] == expected

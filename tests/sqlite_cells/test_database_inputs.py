"""What a pattern input typed ``sc.SqliteDb`` takes from ``space.run`` (R61, R3, Errors): a
database, a cell that holds a handle, or ``None`` / nothing (no database linked yet: its
queries are pending). Anything else is refused at the call, before anything is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

from .conftest import MESSAGES


@sc.pattern
def count(inp: sc.SqliteDb) -> Any:
    return inp.query("SELECT count(*) AS n FROM messages")


def _write_one(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")


def test_none_is_a_database_input_with_nothing_linked(rt: sc.Runtime, space: Space) -> None:
    """R61: None is "nothing linked": the queries wait, and linking a handle later runs them."""
    piece = space.run(count, key="k", inp=None)
    rt.settle()
    state = piece.outputs.get()
    assert (state.pending, state.result, state.error) == (True, None, None)
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    piece.inputs["inp"].link(db)
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]


def test_none_unlinks_what_the_input_was_linked_to(rt: sc.Runtime, space: Space) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    space.run(count, key="k", inp=db)
    piece = space.run(count, key="k", inp=None)
    rt.settle()
    assert piece.inputs["inp"].get() is None
    assert piece.outputs.get().pending is True


@pytest.mark.parametrize("value", [5, "/abs/path/reference.db", {"id": "of:x"}, [1]])
def test_a_plain_value_is_refused_and_records_nothing(
    rt: sc.Runtime, space: Space, store: Path, value: Any
) -> None:
    with pytest.raises(sc.SqliteCellsError) as info:
        space.run(count, key="k", inp=value)
    assert isinstance(info.value, TypeError)
    assert f"input 'inp' is typed sc.SqliteDb and takes a database, not {value!r}" in str(
        info.value
    )
    assert "nothing was recorded" in str(info.value)
    assert space.file.seen_seq == 0
    assert not list(store.glob("space-*"))


def test_a_cell_that_holds_no_handle_is_refused_and_records_nothing(
    rt: sc.Runtime, space: Space
) -> None:
    plain = space.cell("plain", default=3)
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    seq = space.file.seen_seq
    for cell in (plain, sc.Cell(space, db.id).key("rev")):
        with pytest.raises(sc.SqliteCellsError) as info:
            space.run(count, key="k", inp=cell)
        assert isinstance(info.value, TypeError)
        assert f"but cell {cell.id} in 'demo'" in str(info.value)
        assert "holds no database handle" in str(info.value)
    assert space.file.seen_seq == seq


def test_a_cell_that_holds_a_handle_gives_the_body_its_database(
    store: Path, rt: sc.Runtime, space: Space
) -> None:
    db = space.sqlite_database("chat", tables=MESSAGES)
    _write_one(space, db)
    piece = space.run(count, key="k", inp=rt.cell_from_link(db.link_str()))
    rt.settle()
    assert piece.outputs.get().result == [{"n": 1}]
    rt.close()
    with sc.Runtime(store) as again:  # nothing declared: the committed handle says it all
        demo = again.space("demo")
        piece = demo.run(count, key="k", inp=again.cell_from_link(db.link_str()))
        again.settle()
        assert piece.outputs.get().result == [{"n": 1}]


@sc.pattern
def optional_count(inp: sc.SqliteDb | None = None) -> Any:
    return None if inp is None else inp.query("SELECT count(*) AS n FROM messages")


@sc.pattern
def limited(limit: int = 5) -> Any:
    return limit if isinstance(limit, int) else limit.get()


def test_a_python_default_gives_way_to_an_input_linked_before_the_run(store: Path) -> None:
    """An input linked between runs (as ``sqlite-cells link`` does) is what the next run's body
    gets, even where the parameter has a Python default; a default stands in for nothing."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(optional_count, key="k")
        assert piece.outputs is None  # nothing linked yet: the default
        db = space.sqlite_database("chat", tables=MESSAGES)
        _write_one(space, db)
        piece.inputs["inp"].link(db)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(optional_count, key="k")
        rt.settle()
        assert piece.outputs is not None and piece.outputs.get().result == [{"n": 1}]


def test_a_python_default_gives_way_to_a_value_set_on_the_input(space: Space) -> None:
    assert space.run(limited, key="k").outputs == 5
    piece = space.run(limited, key="k")
    with space.transact():
        piece.inputs["limit"].set(7)
    assert space.run(limited, key="k").outputs == 7
    assert space.run(limited, key="k", limit=9).outputs == 9

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import sqlite_cells as sc


@sc.pattern
def counter_pattern(start: sc.Cell) -> dict[str, Any]:
    space = start.space
    count = space.cell("count", default=0)
    scratch = space.cell()  # unnamed: id from its position in the pattern
    return {"count": count, "scratch": scratch, "doubled": sc.derive(count, lambda v: v * 2)}


def test_same_key_binds_the_same_cells_across_restarts(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        start = space.cell("start", default=1)
        piece = space.run(counter_pattern, key="main", start=start)
        with space.transact():
            piece.outputs["count"].set(5)
        first_ids = (piece.id, piece.outputs["count"].id, piece.outputs["scratch"].id)
        assert piece.inputs["start"].get() == start  # the input cell holds a link to it
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        again = space.run(counter_pattern, key="main", start=space.cell("start"))
        assert (again.id, again.outputs["count"].id, again.outputs["scratch"].id) == first_ids
        assert again.outputs["count"].get() == 5
        assert again.outputs["doubled"].get() == 10
        assert space.file.seen_seq == 2  # re-running with the same inputs wrote nothing


def test_different_keys_make_different_pieces(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    start = space.cell("start")
    a = space.run(counter_pattern, key="a", start=start)
    b = space.run(counter_pattern, key="b", start=start)
    assert a.id != b.id
    assert a.outputs["count"].id != b.outputs["count"].id
    assert a.outputs["scratch"].id != a.outputs["count"].id


def test_plain_inputs_are_stored_in_input_cells(rt: sc.Runtime) -> None:
    space = rt.space("demo")

    @sc.pattern
    def greet(name: sc.Cell) -> Any:
        return sc.derive(name, lambda n: f"hi {n}")

    piece = space.run(greet, key="x", name="Ada")
    assert piece.inputs["name"].get() == "Ada"
    assert piece.outputs.get() == "hi Ada"


def test_a_refused_unnamed_builder_takes_no_position(rt: sc.Runtime) -> None:
    """R1: an unnamed cell or database inside a pattern takes the next position of its kind.
    One refused for a bad argument (a default that is not JSON, tables that do not declare)
    built nothing, and takes none: the next one's id is the one it has without the refused
    call (it took position 1, so removing the refused line later moved every id after it)."""
    from sqlite_cells.codec import derive_id

    @sc.pattern
    def body(x: sc.Cell) -> Any:
        space = x.space
        with contextlib.suppress(sc.ValueEncodeError):
            space.cell(default=float("nan"))
        with contextlib.suppress(sc.SchemaError):
            space.sqlite_database(tables={"_cf_no": sc.table(a="text")})
        return space.cell(), space.sqlite_database(tables={"t": sc.table(a="text")})

    space = rt.space("demo")
    piece = space.run(body, key="k", x=space.cell("x"))
    cell, db = piece.outputs
    assert cell.id == derive_id("cell", "piece", piece.id, "#", 0)
    assert db.id == derive_id("sqlite", "piece", piece.id, "#", 0)


@sc.pattern
def _echo(v: Any) -> Any:
    return v


def test_a_run_compares_its_inputs_with_what_is_committed_now(store: Path) -> None:
    """R1, R53: run(v=5) stores 5 when another runtime changed the input since this one last
    looked (its poller has not seen that commit yet); compared with the value this runtime had
    seen, 5 looked unchanged and the piece kept the other runtime's 7."""
    with sc.Runtime(store, poll_interval=60) as mine, sc.Runtime(store, poll_interval=60) as other:
        mine.space("demo").run(_echo, key="k", v=5)
        theirs = other.space("demo").run(_echo, key="k", v=5)
        with other.space("demo").transact():
            theirs.inputs["v"].set(7)
        again = mine.space("demo").run(_echo, key="k", v=5)
        assert again.inputs["v"].get() == 5
    with sc.Runtime(store) as fresh:
        assert fresh.space("demo").run(_echo, key="k").inputs["v"].get() == 5

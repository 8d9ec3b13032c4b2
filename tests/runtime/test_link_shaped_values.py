"""R6 through the runtime: every way a value is written for a cell refuses a dict the decoder
would read as a link, before anything is recorded; a Cell in a value is still stored as a link."""

from __future__ import annotations

from typing import Any

import pytest

import sqlite_cells as sc

SHAPED = {"/": {"link@1": {"id": "of:x"}}}


@sc.pattern
def echo(x: sc.Cell) -> dict[str, Any]:
    return {"x": x}


def test_r6_set_update_and_path_writes_refuse_a_link_shaped_dict(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default={})
    with space.transact():
        with pytest.raises(sc.ValueEncodeError, match=r"at value\['v'\].*Cell itself"):
            c.set({"v": SHAPED})
        with pytest.raises(sc.ValueEncodeError, match="another key"):
            c.update(lambda old: {**old, "v": SHAPED})
        with pytest.raises(sc.ValueEncodeError, match="the value: a dict whose only key"):
            c.key("/").set({"link@1": {"id": "of:x"}})  # the shape made by a path write
        c.key("n").set(1)  # the transaction goes on as if the refused writes never happened
    assert c.get() == {"n": 1}
    assert space.file.seen_seq == 1


def test_r6_a_link_shaped_pattern_input_is_refused_before_anything_is_written(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    with pytest.raises(sc.ValueEncodeError, match=r"at value\['v'\]"):
        space.run(echo, key="k", x={"v": SHAPED})
    assert space.file.seen_seq == 0


def test_r6_cells_in_values_are_still_links_and_near_misses_read_back(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    target = space.cell("target", default=3)
    c = space.cell("c")
    near = {"/": {"link@9": {}}, "also": {"/": "x"}}
    with space.transact():
        c.set({"t": target, "near": near})
    got = c.get()
    assert isinstance(got["t"], sc.Cell) and got["t"].id == target.id and got["t"].get() == 3
    assert got["near"] == near


def test_r6_a_link_shaped_default_is_refused_where_it_is_declared(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    with pytest.raises(sc.ValueEncodeError, match=r"at value\[0\]"):
        space.cell("c", default=[SHAPED])
    assert space.cell("c").get() is None

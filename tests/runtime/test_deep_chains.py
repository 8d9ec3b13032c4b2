"""R44 and §3 on a chain of derived cells thousands deep: each node made on the chain looked at
every node below it twice (whether an input reflects a commit not processed yet, and whether an
input is in flight), so the first settle grew with the square of the chain (3,200 cells: 11 s,
holding back every live query of the runtime). So did a chain built on a live query, whose
every node may wait for the query's run in flight: each node made looked down the chain to the
query (3,000 cells: 11 s); the first computations queued one after another share what the nodes
they looked at reflect. Counted, not timed: the looks per node made stay bounded, and the chain
still computes and re-runs right."""

from __future__ import annotations

from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime._scheduler import Node


def _looks(
    rt: sc.Runtime, length: int, monkeypatch: pytest.MonkeyPatch, root: str
) -> tuple[int, Any]:
    counted = [0]
    ahead, stale = Node.ahead, Node.stale

    def counted_ahead(self: Node) -> Any:
        counted[0] += 1
        return ahead(self)

    def counted_stale(self: Node) -> bool:
        counted[0] += 1
        return bool(stale.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Node, "ahead", counted_ahead)
    monkeypatch.setattr(Node, "stale", property(counted_stale))
    space = rt.space(f"s{length}")
    cell = space.cell("c", default=0)
    node: Any = cell
    if root == "query":
        db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
        query = db.query("SELECT count(*) AS n FROM t")
        rt.settle()
        node = sc.derive(query, lambda state: state.result[0]["n"] if state.result else 0)
        cell = db
    for _ in range(length):
        node = sc.derive(node, lambda v: v + 1)
    rt.settle()
    looks = counted[0]
    monkeypatch.undo()
    return looks, (cell, node)


@pytest.mark.parametrize("root", ["cell", "query"])
def test_a_deep_chain_is_made_with_looks_that_grow_with_its_length(
    rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch, root: str
) -> None:
    small, _ = _looks(rt, 200, monkeypatch, root)
    large, (source, last) = _looks(rt, 800, monkeypatch, root)
    assert large <= 4.5 * small, (small, large)  # 4x the chain (was ~16x the looks)
    assert last.get() == 800
    space = rt.space("s800")
    with space.transact():
        if root == "query":
            source.exec("INSERT INTO t (v) VALUES (1), (2), (3), (4), (5)")
        else:
            source.set(5)
    rt.settle()
    assert last.get() == 805

"""§6: the commands name the cells of pieces by the names the store mentions, at a cost that
grows with the store, not with its square (each name tried in each piece is a hash: a thousand
pieces took `inspect` and `cells` 47 s). Past a budget, a pattern's names are looked for in its
first pieces and the names found there in the rest: every piece's cells are still named."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
import sqlite_cells.cli._names as names
from sqlite_cells.cli import main


@sc.pattern
def counter(owner: sc.Cell) -> dict[str, Any]:
    count = owner.space.cell("count", default=0)

    @sc.handler
    def bump() -> None:
        count.set(count.get() + 1)

    return {"count": count, "bump": bump}


def _store(store: Path, pieces: int) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with space.transact():
            owners = [space.cell(f"u{i}") for i in range(pieces)]
            for i, owner in enumerate(owners):
                owner.set({"name": f"user {i}", "count": 0})  # the store mentions "count"
        for i, owner in enumerate(owners):
            space.run(counter, key=f"k{i}", owner=owner).outputs["bump"]()


def _cells(store: Path) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["cells", "--store", str(store), "--json"]) in (0, None)
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def test_every_pieces_cell_is_named_past_the_budget(tmp_path: Path) -> None:
    _store(tmp_path / "store", 300)  # 300 pieces × ~1,200 names × 2 kinds: past the budget
    rows = _cells(tmp_path / "store")
    kinds = Counter((row["kind"], row["name"]) for row in rows if row["value"] == 1)
    assert kinds == Counter({("cell", "count"): 300})


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many ids the commands derive (one item, counting)."""
    calls = [0]
    derive = names.derive_id

    def counted(*cause: str | int) -> str:
        calls[0] += 1
        return derive(*cause)

    monkeypatch.setattr(names, "derive_id", counted)
    return calls


def test_the_hashes_tried_grow_with_the_store(tmp_path: Path, hashes: list[int]) -> None:
    calls = hashes
    tried = []
    for pieces in (100, 400):
        _store(tmp_path / f"s{pieces}", pieces)
        calls[0] = 0
        _cells(tmp_path / f"s{pieces}")
        tried.append(calls[0])
    assert tried[1] <= 4.5 * tried[0], tried  # 4× the pieces (was ≈ 16× the hashes)


def _patterned(store: Path, pieces: int, patterns: int) -> None:
    """``pieces`` pieces over ``patterns`` patterns, each writing its "count"."""

    def make(j: int) -> Any:
        def body(owner: sc.Cell) -> dict[str, Any]:
            return {"count": owner.space.cell("count", default=0)}

        body.__qualname__ = body.__name__ = f"pattern{j}"
        return sc.pattern(body)

    made = [make(j) for j in range(patterns)]
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        owner = space.cell("owner")
        with space.transact():
            owner.set({"count": 0, "note": [f"n{i}" for i in range(pieces)]})
        with space.transact():
            for i in range(pieces):
                space.run(made[i % patterns], key=f"k{i}", owner=owner).outputs["count"].set(i)


def test_many_patterns_cost_no_more_than_the_budget(tmp_path: Path, hashes: list[int]) -> None:
    """Each pattern's first piece tried with every name would cost names × patterns hashes (2,000
    pieces of 2,000 patterns: `inspect` 209 s): the budget bounds the pieces sampled across all
    patterns, and the names found so far name the rest."""
    calls = hashes
    tried = []
    for patterns in (50, 200):
        _patterned(tmp_path / f"p{patterns}", patterns, patterns)
        calls[0] = 0
        rows = _cells(tmp_path / f"p{patterns}")
        tried.append(calls[0])
        counts = [row for row in rows if row["kind"] == "cell" and row["name"] == "count"]
        assert len(counts) == patterns  # every piece's "count" still named
    assert tried[1] <= 4.5 * tried[0], tried  # 4× the pieces and patterns (was ≈ 16×)

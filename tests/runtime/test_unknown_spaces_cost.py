"""R7, R53: a link to a space the store does not hold resolves to a cell of a space with no
file. The runtime keeps that space, and its poller looked for its file at every poll: after a
typed read of 20,000 rows each linking another such space, an idle runtime spent ≈ 60% of a
CPU on it for good. A space with no file is looked for only when the store folder may have
changed (a space file made there changes it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import Link, encode_link
from sqlite_cells.runtime import _runtime as runtime_module
from sqlite_cells.runtime._space_file import SpaceFile

GHOSTS = 2_000


def test_spaces_a_link_named_cost_no_look_each_until_the_store_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "_COARSE_CLOCK", 0.0)  # (no wait for a clock's tick)
    looks: list[str] = []
    real = SpaceFile.catch_up

    def counted(self: SpaceFile) -> bool:
        looks.append(self.space_id)
        return real(self)

    monkeypatch.setattr(SpaceFile, "catch_up", counted)
    with sc.Runtime(tmp_path, poll_interval=0.005) as rt:
        home = rt.space("home")
        with home.transact():
            home.cell("c").set(1)
        ghosts = [
            rt.cell_from_link(encode_link(Link(f"of:g{i}", f"ghost-{i}", "space", ())).decode())
            for i in range(GHOSTS)
        ]
        assert all(cell.get() is None for cell in ghosts[:10])
        rt.settle()
        time.sleep(0.1)  # polls that looked at every space once, then at those with a file
        looks.clear()
        time.sleep(0.3)
        assert 0 < len(looks) < GHOSTS and set(looks) == {"home"}
        # A ghost's file made by another runtime changes the folder: it is found and followed.
        with sc.Runtime(tmp_path) as other, other.space("ghost-7").transact():
            other.space("ghost-7").cell("x").set(42)
        rt.settle()
        assert rt.space("ghost-7").cell("x").get() == 42
    assert not list(tmp_path.glob("space-*.sqlite"))[2:]  # home's and ghost-7's only

"""The reactive API of SPEC §3 as a user meets it: ids from causes in patterns (R1), derived
cells at depth and width (R54), `settle` and a closed runtime (Errors), a notebook's loops."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

TABLES = {"t": sc.table(a="integer")}


def test_a_chain_of_a_thousand_derived_cells_has_no_recursion_limit(rt: sc.Runtime) -> None:
    # R54: the scheduler looks for a waiting dependency at any depth; that walk must not
    # recurse once per level (the default limit is about a thousand frames).
    space = rt.space("demo")
    root = space.cell("root", default=0)
    node: Any = root
    for _ in range(1_000):
        node = sc.derive(node, lambda v: v + 1)
    seen: list[int] = []
    node.observe().subscribe(seen.append)
    assert rt.settle(timeout=60)
    assert seen == [1_000]  # before get(), which would wait for a first value never computed
    assert node.get() == 1_000
    with space.transact():
        root.set(5)
    assert rt.settle(timeout=60)
    assert node.get() == 1_005
    assert seen == [1_000, 1_005]


def test_a_thousand_inputs_meet_in_one_derived_cell(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    cells = [space.cell(f"w{i}", default=i) for i in range(1_000)]
    calls: list[int] = []

    def total(*values: int) -> int:
        calls.append(1)
        return sum(values)

    summed = sc.lift(total)(*cells)
    assert summed.get() == sum(range(1_000))
    before = len(calls)
    with space.transact():
        for cell in cells[:10]:
            cell.set(cell.get() + 1)
    assert rt.settle(timeout=60)
    assert summed.get() == sum(range(1_000)) + 10
    assert len(calls) == before + 1  # once for the commit that wrote ten of its inputs (R54)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_notebook_cell_run_two_hundred_times_leaks_no_thread_or_file(rt: sc.Runtime) -> None:
    space = rt.space("demo")

    def notebook_cell(i: int) -> tuple[str, str, Any]:
        counter = space.cell("counter", default=0)
        db = space.sqlite_database("log", tables=TABLES)
        query = db.query("SELECT count(*) AS n FROM t")
        doubled = sc.derive(counter, lambda v: v * 2)
        subscriptions = [query.observe().subscribe(lambda v: None), doubled.observe().subscribe()]
        with space.transact():
            counter.set(i)
            db.exec("INSERT INTO t (a) VALUES (?)", [i])
        rt.settle()
        for subscription in subscriptions:
            subscription.dispose()
        return counter.id, db.id, query.get().result

    first = notebook_cell(0)
    rt.settle()
    gc.collect()
    # Threads of runtimes closed by earlier tests may still be ending: a leak is a thread
    # started here and still running, or more descriptors open than before.
    threads, fds = set(threading.enumerate()), _fds()
    for i in range(1, 201):
        ids = notebook_cell(i)
        assert ids[:2] == first[:2]  # same names, same ids (R1)
    rt.settle()
    gc.collect()
    assert ids[2] == [{"n": 201}]
    assert set(threading.enumerate()) - threads == set()
    assert _fds() <= fds


def test_a_disposed_subscriber_gets_nothing_more(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    cell = space.cell("c", default=0)
    doubled = sc.derive(cell, lambda v: v * 2)
    seen: list[tuple[str, int]] = []
    sub_cell = cell.observe().subscribe(lambda v: seen.append(("cell", v)))
    sub_derived = doubled.observe().subscribe(lambda v: seen.append(("derived", v)))
    rt.settle()
    with space.transact():
        cell.set(1)
    rt.settle()
    sub_cell.dispose()
    sub_derived.dispose()
    with space.transact():
        cell.set(2)
    rt.settle()
    assert sorted(seen) == [("cell", 0), ("cell", 1), ("derived", 0), ("derived", 2)]


def test_observing_a_cell_of_a_space_without_a_file_creates_none(store: Path) -> None:
    # R7: observing reads; the first value is the default, and the first write makes the file.
    with sc.Runtime(store) as rt:
        space = rt.space("fresh")
        cell = space.cell("c", default="hello")
        seen: list[str] = []
        cell.observe().subscribe(seen.append)
        rt.settle()
        assert seen == ["hello"]
        assert list(store.iterdir()) == []
        with space.transact():
            cell.set("world")
        rt.settle()
        assert seen == ["hello", "world"]


def test_a_derived_cell_over_two_spaces_follows_both(rt: sc.Runtime) -> None:
    here, there = rt.space("here"), rt.space("there")
    a, b = here.cell("a", default=1), there.cell("b", default=10)
    total = sc.lift(lambda x, y: x + y)(a, b)
    seen: list[int] = []
    total.observe().subscribe(seen.append)
    with here.transact():
        a.set(2)
    with there.transact():
        b.set(20)
    rt.settle()
    assert total.get() == 22
    assert seen == [11, 12, 22]

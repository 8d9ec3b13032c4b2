"""The reactive API of SPEC §3 as a user meets it: ids from causes in patterns (R1), derived
cells at depth and width (R54), `settle` and a closed runtime (Errors), a notebook's loops."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

TABLES = {"t": sc.table(a="integer")}


@sc.pattern
def child(seed: sc.Cell) -> dict[str, Any]:
    space = seed.space
    return {
        "count": space.cell("count", default=0),
        "scratch": space.cell(),
        "db": space.sqlite_database(tables=TABLES),
    }


@sc.pattern
def parent(seed: sc.Cell) -> dict[str, Any]:
    space = seed.space
    return {"child": space.run(child, key="main", seed=seed), "after": space.cell()}


def test_a_pattern_run_inside_another_gets_its_own_piece_in_each_parent(rt: sc.Runtime) -> None:
    # R1: a nested piece's cause is the piece that runs it, so two parents running a child
    # with one key each get their own child: its cells and database are not shared.
    space = rt.space("demo")
    seed = space.cell("seed", default=1)
    a = space.run(parent, key="a", seed=seed)
    b = space.run(parent, key="b", seed=seed)
    child_a, child_b = a.outputs["child"], b.outputs["child"]
    assert child_a.id != child_b.id
    for name in ("count", "scratch", "db"):
        assert child_a.outputs[name].id != child_b.outputs[name].id
    with space.transact():
        child_a.outputs["count"].set(5)
    assert child_b.outputs["count"].get() == 0
    # Outside any pattern the same child with the same key is a third piece.
    top = space.run(child, key="main", seed=seed)
    assert top.id not in (child_a.id, child_b.id)
    # And running a parent again binds its child again.
    assert space.run(parent, key="a", seed=seed).outputs["child"].id == child_a.id
    assert space.run(parent, key="a", seed=seed).outputs["child"].outputs["count"].get() == 5


_PROGRAM = """
import json, sys
import sqlite_cells as sc

TABLES = {"t": sc.table(a="integer")}

@sc.pattern
def inner(seed: sc.Cell):
    space = seed.space
    return [space.cell("x").id, space.cell().id, space.sqlite_database(tables=TABLES).id]

@sc.pattern
def outer(seed: sc.Cell, flag: sc.Cell):
    space = seed.space
    ids = [space.cell(f"item{i}").id for i in range(3)]
    ids += [space.cell().id for _ in range(2)]
    if flag.get():
        ids.append(space.cell("only-when-flagged").id)
    ids.append(space.sqlite_database(tables=TABLES).id)
    ids.append(space.sqlite_database("named", tables=TABLES).id)
    ids += space.run(inner, key="k", seed=seed).outputs
    return ids

with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    seed = space.cell("seed", default=0)
    out = {}
    for key in ("a", "b"):
        piece = space.run(outer, key=key, seed=seed, flag=True)
        out[key] = [piece.id, *piece.outputs]
    print(json.dumps(out))
"""


def test_a_program_binds_the_same_ids_in_a_fresh_process(store: Path) -> None:
    # R1: loops, conditionals, unnamed cells and databases, nested pieces, two keys.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run() -> dict[str, list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", _PROGRAM, str(store)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        result: dict[str, list[str]] = json.loads(done.stdout)
        return result

    first, second = run(), run()
    assert first == second
    assert len(set(first["a"]) | set(first["b"])) == len(first["a"]) + len(first["b"])


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


def test_settle_on_a_closed_runtime_is_a_closed_error(store: Path) -> None:
    runtime = sc.Runtime(store)
    runtime.space("demo").cell("c", default=1).get()
    runtime.close()
    with pytest.raises(sc.ClosedError):
        runtime.settle()
    with pytest.raises(sc.ClosedError):
        runtime.settle(timeout=1)

    async def settled() -> bool:
        return await runtime.settled()

    with pytest.raises(sc.ClosedError):
        asyncio.run(settled())


def test_derive_and_lift_on_a_closed_runtime_are_closed_errors(store: Path) -> None:
    """A derived cell made after close() would never be computed: it was returned "not
    computed yet" (for a written cell, or one observed before), its get() raising later; like
    every other call on a closed runtime, making it says so at once."""
    runtime = sc.Runtime(store)
    space = runtime.space("demo")
    c = space.cell("c", default=1)
    with space.transact():
        c.set(2)
    assert sc.derive(c, lambda v: v) is not None and runtime.settle(timeout=30)
    runtime.close()
    with pytest.raises(sc.ClosedError, match="closed"):
        sc.derive(c, lambda v: v * 2)
    with pytest.raises(sc.ClosedError, match="closed"):
        sc.lift(lambda a, b: a + b)(c, 1)


def test_settle_overtaken_by_close_is_a_closed_error(store: Path) -> None:
    runtime = sc.Runtime(store)
    space = runtime.space("demo")
    cell = space.cell("c", default=0)
    entered, release = threading.Event(), threading.Event()

    def slow(value: int) -> int:
        if value == 1:
            entered.set()
            release.wait(10)
        return value

    slowly = sc.derive(cell, slow)  # held: a derived cell nobody holds stops re-running
    with space.transact():
        cell.set(1)
    outcome: list[object] = []

    def settle() -> None:
        try:
            outcome.append(runtime.settle(timeout=30))
        except sc.ClosedError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=settle)
    assert entered.wait(10)  # the scheduler is busy: a settle now waits
    waiter.start()
    closer = threading.Thread(target=runtime.close)
    closer.start()
    while runtime.is_open:  # close() has begun before the busy work ends
        closer.join(0.001)
    release.set()
    closer.join(10)
    waiter.join(10)
    # Whether it was waiting or came after: nothing was delivered, and it says so.
    assert len(outcome) == 1
    assert isinstance(outcome[0], sc.ClosedError)
    del slowly


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
    for i in range(1, 20):  # the read pool opens its connections as reads overlap: warm it
        notebook_cell(i)
    rt.settle()
    gc.collect()
    # Threads of runtimes closed by earlier tests may still be ending: a leak is a thread
    # started here and still running, or descriptors that grow with the runs (one pooled
    # connection more — its file, -wal and -shm — is the pool's, not a leak of 200 runs).
    threads, fds = set(threading.enumerate()), _fds() + 3
    for i in range(20, 201):
        ids = notebook_cell(i)
        assert ids[:2] == first[:2]  # same names, same ids (R1)
    rt.settle()
    gc.collect()
    assert ids[2] == [{"n": 201}]
    for started in set(threading.enumerate()) - threads:
        started.join(5)  # a read's helper or a timer ends on its own; a leaked thread does not
    assert [t.name for t in set(threading.enumerate()) - threads] == []
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


def test_subscribers_of_two_runtimes_settling_each_other_do_not_wait_for_ever(
    tmp_path: Path,
) -> None:
    """A helper that settles every runtime, called from a subscriber of each of two runtimes:
    each scheduler thread waited for the other to settle, and neither ever delivered again
    (``settle()`` never returned, ``close()`` waited out its bound). The settle that would close
    the circle raises ``TransactionError`` in its subscriber (logged), and both go on."""
    a_rt, b_rt = sc.Runtime(tmp_path / "a"), sc.Runtime(tmp_path / "b")
    try:
        a = a_rt.space("s").cell("a", default=0)
        b = b_rt.space("s").cell("b", default=0)
        raised: list[type[BaseException]] = []

        def settle_all() -> None:
            try:
                a_rt.settle()
                b_rt.settle()
            except sc.SqliteCellsError as exc:
                raised.append(type(exc))
                raise

        got: list[tuple[str, int]] = []
        a.observe().subscribe(lambda v: (got.append(("a", v)), settle_all()))
        b.observe().subscribe(lambda v: (got.append(("b", v)), settle_all()))
        with a_rt.space("s").transact():
            a.set(1)
        with b_rt.space("s").transact():
            b.set(1)
        assert a_rt.settle(timeout=30) and b_rt.settle(timeout=30)
        assert ("a", 1) in got and ("b", 1) in got
        assert set(raised) <= {sc.TransactionError}
    finally:
        a_rt.close()
        b_rt.close()


def test_derived_cells_of_two_runtimes_reading_each_other_first_do_not_wait_for_ever(
    tmp_path: Path,
) -> None:
    """Each of two runtimes' derive functions reads the other runtime's derived cell before
    either has its first value: each scheduler thread waited in ``get()`` for the other, for
    ever (neither runtime delivered again, ``settle()`` never returned). The wait that closes
    the circle raises ``TransactionError``, both cells fail with it, and both runtimes go on."""
    a_rt, b_rt = sc.Runtime(tmp_path / "a"), sc.Runtime(tmp_path / "b")
    try:
        a = a_rt.space("s").cell("a", default=0)
        b = b_rt.space("s").cell("b", default=0)
        made, x_runs, y_runs = threading.Event(), threading.Event(), threading.Event()
        cells: dict[str, Any] = {}

        def from_y(v: int) -> int:
            if v:
                return v
            x_runs.set()  # both first computations run at once, each reading the other's cell
            assert made.wait(30) and y_runs.wait(30)
            return cells["y"].get()

        def from_x(v: int) -> int:
            if v:
                return v
            y_runs.set()
            assert made.wait(30) and x_runs.wait(30)
            return cells["x"].get()

        cells["x"] = x = sc.derive(a, from_y)
        cells["y"] = y = sc.derive(b, from_x)
        made.set()
        assert a_rt.settle(timeout=30) and b_rt.settle(timeout=30)
        for cell in (x, y):
            with pytest.raises(sc.TransactionError, match=r"get\(\) of a derived cell") as info:
                cell.get()
            assert "waits for its first value" in str(info.value)
        with a_rt.space("s").transact():
            a.set(2)
        with b_rt.space("s").transact():
            b.set(3)
        assert a_rt.settle(timeout=30) and b_rt.settle(timeout=30)
        assert (x.get(), y.get()) == (2, 3)
    finally:
        a_rt.close()
        b_rt.close()


def test_a_derive_function_meeting_another_runtime_closed_fails_and_ends_no_stream(
    tmp_path: Path,
) -> None:
    """A derive function reading a cell of another runtime that has been closed raises that
    runtime's ``ClosedError``: it was taken for this runtime closing, so the derived cell's
    subscribers were told the stream ended (``on_completed``, nothing logged) though the runtime
    runs on, and got nothing again. It is the computation's failure: ``on_error``, and a
    subscriber made after it recovers gets the values."""
    rt, other_rt = sc.Runtime(tmp_path / "a"), sc.Runtime(tmp_path / "b")
    try:
        space = rt.space("s")
        a = space.cell("a", default=1)
        lookup = {"cell": other_rt.space("s").cell("o", default=100)}
        total = sc.derive(a, lambda v: v + lookup["cell"].get())
        events: list[tuple[str, Any]] = []
        total.observe().subscribe(
            lambda v: events.append(("next", v)),
            lambda e: events.append(("error", e)),
            lambda: events.append(("completed", None)),
        )
        rt.settle()
        other_rt.close()
        with space.transact():
            a.set(2)
        rt.settle()
        assert [kind for kind, _ in events] == ["next", "error"]
        assert events[0][1] == 101
        assert isinstance(events[1][1], sc.ClosedError)
        with pytest.raises(sc.ClosedError):
            total.get()
        other_rt = sc.Runtime(tmp_path / "c")
        lookup["cell"] = other_rt.space("s").cell("o", default=1000)
        with space.transact():
            a.set(3)
        rt.settle()
        assert total.get() == 1003
        later: list[int] = []
        total.observe().subscribe(later.append)
        with space.transact():
            a.set(4)
        rt.settle()
        assert later == [1003, 1004]
    finally:
        rt.close()
        other_rt.close()

from __future__ import annotations

import threading
from typing import Any

import pytest

import sqlite_cells as sc


def test_observe_gives_the_current_value_then_each_change(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    rt.settle()
    assert seen == [0]
    for n in (1, 2, 2, 3):
        with space.transact():
            c.set(n)
    rt.settle()
    assert seen == [0, 1, 2, 3]  # writing the same value again notifies nobody


def test_path_observers_only_hear_about_their_path(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    doc = space.cell("doc", default={"a": 1, "b": 1})
    seen_a: list[Any] = []
    doc.key("a").observe().subscribe(seen_a.append)
    with space.transact():
        doc.key("b").set(2)
    with space.transact():
        doc.key("a").set(5)
    rt.settle()
    assert seen_a == [1, 5]


def test_diamond_updates_once_per_commit_and_never_glitches(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a = space.cell("a", default=1)
    runs: list[tuple[int, int]] = []
    b = sc.derive(a, lambda v: v * 10)
    c = sc.derive(a, lambda v: v + 1)

    def combine(x: int, y: int) -> tuple[int, int]:
        runs.append((x, y))
        return (x, y)

    d = sc.lift(combine)(b, c)
    assert d.get() == (10, 2)
    seen: list[Any] = []
    d.observe().subscribe(seen.append)
    for n in range(2, 6):
        with space.transact():
            a.set(n)
    rt.settle()
    # One run for the first value and exactly one per commit, each from a consistent state.
    assert runs == [(10, 2), (20, 3), (30, 4), (40, 5), (50, 6)]
    assert seen == [(10, 2), (20, 3), (30, 4), (40, 5), (50, 6)]


def test_derived_values_cut_off_when_unchanged(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a = space.cell("a", default=1)
    parity = sc.derive(a, lambda v: v % 2)
    downstream: list[int] = []
    sc.derive(parity, lambda p: downstream.append(p))
    for n in (3, 5, 6):
        with space.transact():
            a.set(n)
    rt.settle()
    assert downstream == [1, 0]  # 3 and 5 leave the parity at 1, so nothing below re-runs


def test_a_subscriber_never_sees_a_rolled_back_value(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    doubled = sc.derive(c, lambda v: v * 2)
    derived_seen: list[Any] = []
    doubled.observe().subscribe(derived_seen.append)
    with pytest.raises(RuntimeError), space.transact():
        c.set(99)
        raise RuntimeError("abort")
    with pytest.raises(sc.ConflictError), space.transact():
        c.get()
        t = threading.Thread(target=lambda: _set(space, c, 1))
        t.start()
        t.join()
        c.set(42)
    rt.settle()
    assert seen == [0, 1]
    assert derived_seen == [0, 2]


def _set(space: Any, c: sc.Cell, value: int) -> None:
    with space.transact():
        c.set(value)


def test_values_are_delivered_only_after_the_commit_is_durable(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    observed_durable: list[bool] = []

    def check(value: int) -> None:
        if value == 0:
            return
        # Another connection must already see the committed row when we are told.
        import apsw

        conn = apsw.Connection(str(space.file.path), flags=apsw.SQLITE_OPEN_READONLY)
        row = conn.execute("SELECT count(*) FROM _cf_log").fetchone()
        conn.close()
        observed_durable.append(row is not None and row[0] >= value)

    c.observe().subscribe(check)
    for n in (1, 2, 3):
        with space.transact():
            c.set(n)
    rt.settle()
    assert observed_durable == [True, True, True]


def test_a_failing_subscriber_does_not_stop_the_others(
    rt: sc.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[Any] = []

    def boom(_: Any) -> None:
        raise ValueError("subscriber bug")

    c.observe().subscribe(boom)
    c.observe().subscribe(seen.append)
    with space.transact():
        c.set(1)
    rt.settle()
    assert seen == [0, 1]
    assert "subscriber" in caplog.text and "ValueError" in caplog.text
    # The log names the function subscribed, not the observer reactivex wraps it in.
    assert "boom" in caplog.text and "AutoDetachObserver" not in caplog.text


def test_dispose_stops_delivery(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[Any] = []
    subscription = c.observe().subscribe(seen.append)
    rt.settle()
    subscription.dispose()
    with space.transact():
        c.set(1)
    rt.settle()
    assert seen == [0]


def test_lift_mixes_cells_and_constants_and_needs_one_reactive_input(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a = space.cell("a", default=2)
    total = sc.lift(lambda x, k: x * k)(a, 10)
    assert total.get() == 20
    with pytest.raises(sc.SqliteCellsError, match="at least one cell"):
        sc.lift(lambda x: x)(3)


async def _settled(rt: sc.Runtime) -> bool:
    return await rt.settled()


def test_settled_for_asyncio(rt: sc.Runtime) -> None:
    import asyncio

    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    with space.transact():
        c.set(7)
    assert asyncio.run(_settled(rt)) is True
    assert seen == [0, 7]


def test_changes_python_finds_equal_but_json_tells_apart_are_changes(rt: sc.Runtime) -> None:
    """``1`` and ``1.0`` inside a value, ``0.0`` and ``-0.0``: stored JSON tells them apart, so
    observers and derived cells are told (the same exactness as query rows, R42)."""
    space = rt.space("demo")
    c = space.cell("c", default=None)
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    derived: list[Any] = []
    echo = sc.derive(c, lambda v: derived.append(v) or v)
    for value in ([1], [1.0], 0.0, -0.0, -0.0):
        with space.transact():
            c.set(value)
        rt.settle()
    assert [repr(v) for v in seen] == ["None", "[1]", "[1.0]", "0.0", "-0.0"]
    assert [repr(v) for v in derived] == ["None", "[1]", "[1.0]", "0.0", "-0.0"]
    assert repr(echo.get()) == "-0.0"


def test_an_equal_dict_in_another_key_order_is_no_change(rt: sc.Runtime) -> None:
    """A JSON object has no order (a stored value keeps its keys sorted): a derived cell whose
    function returns an equal dict built in another key order — nested too, or beside a cell —
    tells its observers and the derived cells over it nothing, once per commit or not; a value
    that does change still reaches them, and so do ``1.0`` after ``1`` inside such a dict and
    dicts whose keys are not all str (compared in the order given)."""
    space = rt.space("demo")
    c, x = space.cell("c", default=0), space.cell("x")
    shapes = [
        {"a": 1, "b": {"y": [1], "z": x}},
        {"b": {"z": x, "y": [1]}, "a": 1},
        {"a": 1, "b": {"y": [1], "z": x}},
        {"b": {"z": x, "y": [1]}, "a": 1},
        {"b": {"z": x, "y": [1.0]}, "a": 1},
        {"a": 1, "b": {"y": [1.0], "z": x}},
        {1: "int key", "a": 2},
        {1: "int key", "a": 2},
        {1: "int key", "a": 2.0},
    ]
    echo = sc.derive(c, lambda n: shapes[n])
    seen: list[Any] = []
    echo.observe().subscribe(seen.append)
    runs: list[Any] = []
    over = sc.derive(echo, lambda v: runs.append(v) or len(v))
    rt.settle()
    for n in range(1, len(shapes)):
        with space.transact():
            c.set(n)
        rt.settle()
    assert seen == [shapes[0], shapes[4], shapes[6], shapes[8]]
    assert [repr(v["b"]["y"]) for v in seen[:2]] == ["[1]", "[1.0]"]
    assert repr(seen[3]["a"]) == "2.0"
    assert runs == seen and over.get() == 2


def test_values_holding_cells_are_told_apart_as_json_does(rt: sc.Runtime) -> None:
    """The same exactness for a value that also holds a ``Cell`` (stored as its link, R6): the
    cell is compared as what it names, the rest as JSON — ``1`` then ``1.0`` beside a cell is a
    change, and a cell naming another cell is one too."""
    space = rt.space("demo")
    c, x, y = space.cell("c", default=None), space.cell("x"), space.cell("y")
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    echo = sc.derive(c, lambda v: v)
    values = [{"at": x, "n": 1}, {"at": x, "n": 1.0}, {"at": x, "n": 1.0}, {"at": y, "n": 1.0}]
    for value in values:
        with space.transact():
            c.set(value)
        rt.settle()
    assert [repr(v["n"]) for v in seen[1:]] == ["1", "1.0", "1.0"]
    assert [v["at"] for v in seen[1:]] == [x, x, y]
    assert repr(echo.get()["n"]) == "1.0" and echo.get()["at"] == y


def test_settle_from_a_subscriber_or_a_derive_function_returns_at_once(rt: sc.Runtime) -> None:
    """Callbacks run on the scheduler thread: a settle() there cannot wait for that thread, so
    it returns True at once instead of deadlocking (docs/decisions.md)."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    answers: list[tuple[str, int, bool]] = []

    def doubled(v: int) -> int:
        answers.append(("derive", v, rt.settle(timeout=5)))
        return v * 2

    d = sc.derive(c, doubled)
    d.observe().subscribe(lambda v: answers.append(("subscriber", v, rt.settle(timeout=5))))
    assert rt.settle(timeout=10)
    with space.transact():
        c.set(1)
    assert rt.settle(timeout=10)
    assert answers == [
        ("derive", 0, True),
        ("subscriber", 0, True),
        ("derive", 1, True),
        ("subscriber", 2, True),
    ]
    assert d.get() == 2

"""A live query's typed rows are built on the query worker that read them, not on the scheduler
thread: building a large result holds back no other cell (R54), and a run whose rows take
longer than ``query_timeout`` to build ends as :class:`QueryTimeout` (R44)."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells.read import _workers as workers_module
from sqlite_cells.read._reader import StatementResult
from sqlite_cells.read._rows import _PART_ROWS, build_rows, row_decoder

TABLES = {"t": sc.table(id="integer primary key", v="integer")}
GATE = threading.Event()  # what a Gated row waits for while it is built


@dataclasses.dataclass
class Gated:
    v: int

    def __post_init__(self) -> None:
        if not GATE.wait(timeout=10):
            raise RuntimeError("nothing opened the gate: the cell that opens it never updated")


def _gated_list() -> list[int]:
    if not GATE.wait(timeout=10):
        raise RuntimeError("nothing opened the gate: the cell that opens it never updated")
    return []


class Defaulted(msgspec.Struct):
    """A row type whose own code is a field's default_factory (the column is not selected)."""

    v: int
    extra: list[int] = msgspec.field(default_factory=_gated_list)


class Shade(enum.Enum):
    """A field type whose own code is ``_missing_`` (every value but 1 goes through it)."""

    ONE = 1
    OTHER = 0

    @classmethod
    def _missing_(cls, value: object) -> Shade:
        if not GATE.wait(timeout=10):
            raise RuntimeError("nothing opened the gate: the cell that opens it never updated")
        return cls.OTHER


@dataclasses.dataclass
class Shaded:
    v: Shade


@pytest.fixture
def runtime(store: Path) -> Iterator[sc.Runtime]:
    GATE.clear()
    runtime = sc.Runtime(store, poll_interval=0.01, query_timeout=30)
    try:
        yield runtime
    finally:
        GATE.set()  # an abandoned worker may still be building
        runtime.close()


def test_building_rows_holds_back_no_other_cell(runtime: sc.Runtime) -> None:
    space = runtime.space("demo")
    db = space.sqlite_database("x", tables=TABLES)
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec("INSERT INTO t (id, v) VALUES (1, 1), (2, 2)")
    seen: list[Any] = []

    def told(value: Any) -> None:
        seen.append(value)
        if value == 1:
            GATE.set()  # only a scheduler free while the rows are built gets here

    sc.derive(counter, lambda n: n).observe().subscribe(told)
    runtime.settle()
    q = db.query("SELECT v FROM t ORDER BY id", row=Gated)
    with space.transact():
        counter.set(1)
    assert runtime.settle(timeout=20)
    assert 1 in seen
    assert q.get().error is None and q.get().result == [Gated(1), Gated(2)]


@pytest.mark.parametrize(
    ("row", "built"),
    [
        (Gated, Gated),
        (Defaulted, lambda v: Defaulted(v, [])),
        (Shaded, lambda v: Shaded(Shade.ONE if v == 1 else Shade.OTHER)),
    ],
    ids=["post_init", "default_factory", "enum_missing"],
)
def test_a_cheap_re_run_whose_row_type_runs_code_is_not_built_on_the_scheduler(
    runtime: sc.Runtime, row: type, built: Any
) -> None:
    """R44: a re-run cheap enough to read on the scheduler thread is built there too — unless
    its row type runs code of its own (a ``__post_init__``, a ``default_factory``, a field type
    of a class of its own such as an Enum with ``_missing_``), which only a worker's deadline
    bounds. Here the re-run's rows wait for a cell the scheduler must update first."""
    space = runtime.space("demo")
    db = space.sqlite_database("x", tables=TABLES)
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec("INSERT INTO t (id, v) VALUES (1, 1)")
    GATE.set()  # the first runs build at once: the query's read time is known, and short
    q = db.query("SELECT v FROM t", row=row)
    for n in range(2, 5):
        with space.transact():
            db.exec("UPDATE t SET v = ?", [n])
        assert runtime.settle(timeout=20)
    assert q.get().result == [built(4)]
    seen: list[Any] = []

    def told(value: Any) -> None:
        seen.append(value)
        if value == 1:
            GATE.set()  # only a scheduler free while the rows are built gets here

    sc.derive(counter, lambda n: n).observe().subscribe(told)
    assert runtime.settle(timeout=20)
    GATE.clear()
    started = time.monotonic()
    with space.transact():
        db.exec("UPDATE t SET v = 5")
    with space.transact():
        counter.set(1)
    assert runtime.settle(timeout=20)
    assert 1 in seen and time.monotonic() - started < 5
    assert q.get().error is None and q.get().result == [built(5)]


def test_rows_built_past_query_timeout_are_a_query_timeout(store: Path) -> None:
    GATE.clear()
    runtime = sc.Runtime(store, poll_interval=0.01, query_timeout=0.2)
    try:
        space = runtime.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, 1)")
        q = db.query("SELECT v FROM t", row=Gated)
        assert runtime.settle(timeout=20)
        error = q.get().error
        assert isinstance(error, sc.QueryTimeout) and q.get().result is None
        assert "building its rows (row=): select fewer rows" in str(error)
        GATE.set()
        untyped = db.query("SELECT v FROM t")
        assert runtime.settle(timeout=20)
        assert untyped.get().result == [{"v": 1}]
    finally:
        GATE.set()
        runtime.close()


class Part(msgspec.Struct):
    v: int


def test_a_large_result_is_built_in_parts_like_the_whole(runtime: sc.Runtime) -> None:
    decode = row_decoder(Part, runtime, db_id="db", sql="q")
    rows = [(i,) for i in range(2 * _PART_ROWS + 3)]
    result = StatementResult(("v",), rows)
    assert build_rows(decode, result) == [Part(i) for i in range(len(rows))]
    bad = StatementResult(("v",), [*rows, ("x",)])
    with pytest.raises(sc.QueryError) as caught:
        build_rows(decode, bad)
    assert "column 'v' does not fit field Part.v" in str(caught.value)


HELD = threading.Event()  # while set, a Held row waits for GATE (at most a few seconds)
BUILT: list[int] = []  # the ids of the Held rows built


class Held(msgspec.Struct):
    id: int

    def __post_init__(self) -> None:
        BUILT.append(self.id)
        if HELD.is_set():
            GATE.wait(timeout=4)


@pytest.fixture
def held() -> Iterator[None]:
    GATE.clear()
    HELD.set()
    BUILT.clear()
    try:
        yield
    finally:
        GATE.set()  # an abandoned worker may still be building


@contextlib.contextmanager
def _one_row(store: Path, **options: Any) -> Iterator[tuple[sc.Runtime, Any, sc.SqliteDb]]:
    """A runtime with ``options`` and a database whose table ``t`` holds the row (1, 1)."""
    runtime = sc.Runtime(store, poll_interval=0.01, **options)
    try:
        space = runtime.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, 1)")
        yield runtime, space, db
    finally:
        runtime.close()


def test_a_one_shot_read_building_rows_past_query_timeout_is_a_query_timeout(
    store: Path, held: None
) -> None:
    with _one_row(store, query_timeout=0.3) as (_runtime, _space, db):
        began = time.monotonic()
        with pytest.raises(sc.QueryTimeout) as caught:
            db.read("SELECT id FROM t", row=Held)
        assert time.monotonic() - began < 0.3 + 1.0  # by its deadline (+1 s), as db.query
        assert "building its rows (row=): select fewer rows" in str(caught.value)
        GATE.set()
        assert db.read("SELECT v FROM t") == [{"v": 1}]


def test_a_query_whose_rows_timed_out_reruns_only_for_what_it_reads(
    store: Path, held: None
) -> None:
    with _one_row(store, query_timeout=0.3) as (runtime, space, db):
        q = db.query("SELECT id FROM t", row=Held)
        assert runtime.settle(timeout=10)
        assert isinstance(q.get().error, sc.QueryTimeout) and BUILT == [1]
        with space.transact():
            db.exec("UPDATE t SET v = 2")  # a column it does not read
        assert runtime.settle(timeout=10)
        assert BUILT == [1]  # not run again (R51)


def test_rows_slow_to_build_hold_back_no_other_query_of_their_batch(
    store: Path, held: None
) -> None:
    HELD.clear()
    # One worker: both queries' re-runs go in one job. A function outside the short ones keeps
    # that job off the scheduler thread.
    with _one_row(store, query_timeout=2, query_workers=1) as (runtime, space, db):
        slow = db.query("SELECT id, length(v) AS n FROM t", row=Held)
        plain = db.query("SELECT v FROM t")
        assert runtime.settle(timeout=10)
        assert slow.get().result == [Held(1)] and plain.get().result == [{"v": 1}]
        HELD.set()
        began = time.monotonic()
        with space.transact():
            db.exec("UPDATE t SET v = 22")
        while plain.get().result != [{"v": 22}] and time.monotonic() - began < 5:
            time.sleep(0.005)
        assert time.monotonic() - began < 1.5  # not query_timeout (2 s) later (R44)
        GATE.set()
        assert runtime.settle(timeout=10)
        assert slow.get().result == [Held(1)]


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("its text cannot be read")

    __repr__ = __str__


@dataclasses.dataclass
class Refusing:
    id: int

    def __post_init__(self) -> None:
        raise _Unprintable


def test_a_row_type_raising_an_exception_that_cannot_be_printed_is_a_query_error(
    store: Path,
) -> None:
    """R43, Errors: the error saying a row type raised quoted the exception's text, and one
    whose ``__str__`` raises made ``db.read`` raise that RuntimeError (``db.query`` said
    QueryError). Both say QueryError, naming the exception by its type."""
    with _one_row(store) as (runtime, _space, db):
        with pytest.raises(sc.QueryError, match=r"raised _Unprintable \(its text could not be"):
            db.read("SELECT id FROM t", row=Refusing)
        q = db.query("SELECT id FROM t", row=Refusing)
        assert runtime.settle(timeout=10)
        assert isinstance(q.get().error, sc.QueryError)
        assert "_Unprintable (its text could not be read" in str(q.get().error)


SETTLES: list[tuple[sc.Runtime, list[bool]]] = []  # the runtime a Settling row settles, what it got


@dataclasses.dataclass
class Settling:
    """A row type whose own code settles its runtime (a helper shared with ordinary code)."""

    v: int

    def __post_init__(self) -> None:
        runtime, got = SETTLES[-1]
        got.append(runtime.settle())


def test_settle_called_while_rows_are_built_returns_at_once(store: Path) -> None:
    """A row type's ``__post_init__`` calling ``rt.settle()`` (no timeout) waited for its own
    query, whose rows it was building on a query worker, until ``query_timeout``: the query
    then failed with ``QueryTimeout`` advising to select fewer rows. As on the scheduler thread,
    ``settle()`` returns True at once while rows are built for this runtime's query, a live
    one's or a ``db.read``'s (here one made in a subscriber, on the scheduler thread)."""
    runtime = sc.Runtime(store, poll_interval=0.01, query_timeout=2)
    got: list[bool] = []
    SETTLES.append((runtime, got))
    try:
        space = runtime.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        counter = space.cell("counter", default=0)
        with space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, 1), (2, 2)")
        q = db.query("SELECT v FROM t ORDER BY id", row=Settling)
        assert runtime.settle(timeout=20)
        state = q.get()
        assert state.error is None and _values(state.result) == [1, 2]
        assert got == [True, True]
        read: list[Any] = []

        def reads(n: int) -> None:
            if n:
                read.append(db.read("SELECT v FROM t WHERE v = ?", [n], row=Settling))

        counter.observe().subscribe(reads)
        with space.transact():
            counter.set(2)
            db.exec("UPDATE t SET v = 3 WHERE id = 1")
        assert runtime.settle(timeout=20)
        assert [_values(rows) for rows in read] == [[2]]
        assert q.get().error is None and _values(q.get().result) == [3, 2]
        assert got == [True] * 5
    finally:
        SETTLES.pop()
        runtime.close()


def _values(rows: list[Settling] | None) -> list[int]:
    assert rows is not None and all(type(row) is Settling for row in rows)
    return [row.v for row in rows]


CLOSES: list[tuple[sc.Runtime, list[str], threading.Event]] = []  # what a Closing row closes


@dataclasses.dataclass
class Closing:
    """A row type whose own code closes its runtime (a helper shared with ordinary code)."""

    v: int

    def __post_init__(self) -> None:
        runtime, got, closed = CLOSES[-1]
        if not closed.is_set():
            runtime.close()
            got.append(threading.current_thread().name)
            closed.set()


def test_close_from_a_row_types_own_code_returns_without_waiting_for_its_read(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() on the worker building the rows gives that read up at once: it waited for the
    watchdog, which watched that very read until its deadline or ``CLOSE_WAIT`` (both made
    longer than the wait here)."""
    monkeypatch.setattr(workers_module, "CLOSE_WAIT", 120.0)
    got: list[str] = []
    closed = threading.Event()
    runtime = sc.Runtime(store, poll_interval=0.01, query_timeout=120)
    CLOSES.append((runtime, got, closed))
    try:
        space = runtime.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, 1)")
        db.query("SELECT v FROM t", row=Closing)
        assert closed.wait(timeout=60), "close() from a row type's __post_init__ did not return"
        assert got == ["sqlite-cells-query"]
        with pytest.raises(sc.ClosedError, match="is closed: open a new Runtime"):
            runtime.space("demo")
    finally:
        CLOSES.pop()
        runtime.close()
    with sc.Runtime(store) as again:
        space = again.space("demo")
        db = space.sqlite_database("x", tables=TABLES)
        assert db.rev == 1 and db.read("SELECT id, v FROM t") == [{"id": 1, "v": 1}]


def test_rows_built_past_query_timeout_keep_the_seq_they_were_read_at(store: Path) -> None:
    # The rows were read at commit 2 before their building ran long: the QueryTimeout state
    # says so (R42), as a row type raising or a statement timing out does, not the seq of the
    # rows before it.
    GATE.clear()
    HELD.clear()
    with _one_row(store, query_timeout=0.2) as (runtime, space, db):
        try:
            q = db.query("SELECT id FROM t", row=Held)
            assert runtime.settle(timeout=20)
            assert q.get() == sc.QueryState(False, [Held(1)], None, 1)
            HELD.set()
            with space.transact():
                db.exec("UPDATE t SET id = 2")
            assert runtime.settle(timeout=20)
            state = q.get()
            assert isinstance(state.error, sc.QueryTimeout) and state.result is None
            assert "building its rows (row=): select fewer rows" in str(state.error)
            assert state.seq == 2 == db.rev
        finally:
            HELD.clear()
            GATE.set()

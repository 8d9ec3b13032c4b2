"""Where live-query re-runs run (R44, R51): inline on the scheduler thread only when cheap and
made of short steps, otherwise as one job on a worker; an inline read that turns slow moves to a
worker instead of failing or holding the scheduler."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
import sqlite_cells.read._live as live_module
import sqlite_cells.read._workers as workers_module
from sqlite_cells._runtime import Space
from sqlite_cells.read._pool import ReadPool
from sqlite_cells.read._reader import (
    SHORT_FUNCTIONS,
    Statement,
    Tracker,
    read_batch,
    short_steps,
)
from sqlite_cells.read._same import DIGEST_ROWS
from sqlite_cells.sql import Gate, Mode, make_authorizer

from .conftest import MESSAGES

# Thousands of VM steps and no function outside SHORT_FUNCTIONS: inline-eligible, and long
# enough for a tiny deadline to interrupt it through the progress handler.
STEPS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
    "SELECT count(*) AS c, (SELECT count(*) FROM messages) AS m FROM n"
)
LOOP = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """(thread name, statement count) of every batch read, inline or on a worker."""
    seen: list[tuple[str, int]] = []
    real = workers_module.read_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, len(args[2]) - kwargs.get("start", 0)))
        return real(*args, **kwargs)

    monkeypatch.setattr(workers_module, "read_batch", spy)
    monkeypatch.setattr(live_module, "read_batch", spy)
    yield seen


def _insert(space: Space, db: sc.SqliteDb, body: str) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES (?)", [body])


def test_a_cheap_statement_of_short_steps_reruns_on_the_scheduler_thread(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 10.0)  # cheap, however loaded the machine
    q = db.query("SELECT count(*) AS n FROM messages")
    rt.settle()
    assert short_steps(db.declaration, ["SELECT count(*) AS n FROM messages"])
    threads.clear()
    _insert(space, db, "a")
    rt.settle()
    assert q.get().result == [{"n": 1}]
    assert threads == [("sqlite-cells-scheduler", 1)]


def test_the_reruns_after_a_large_write_run_on_a_worker(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R44: a statement cheap so far re-runs on the scheduler thread, where no deadline stops
    one long step. A write past ``GROWN_WRITE`` may have made values that a comparison or a
    ``max()`` of the statement now takes seconds over (40 MB of text: unrelated cells were
    delivered 3-6 s late, the query's timeout 4-7 s after it): the re-runs it causes go to a
    worker, whose deadline holds; the next ones run inline again if they stay cheap."""
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 10.0)  # cheap, however loaded the machine
    q = db.query(
        "SELECT max(body COLLATE NOCASE, body COLLATE NOCASE) = 'y' AS y "
        "FROM messages ORDER BY id DESC LIMIT 1"
    )
    _insert(space, db, "a")
    rt.settle()
    threads.clear()
    _insert(space, db, "b")
    rt.settle()
    assert threads == [("sqlite-cells-scheduler", 1)]  # cheap so far: inline
    threads.clear()
    _insert(space, db, "x" * (live_module.GROWN_WRITE + 1))
    rt.settle()
    assert [name.startswith("sqlite-cells-query") for name, _ in threads] == [True]
    assert q.get().result == [{"y": 0}]
    threads.clear()
    _insert(space, db, "y")
    rt.settle()
    assert threads == [("sqlite-cells-scheduler", 1)]
    assert q.get().result == [{"y": 1}]


def test_a_statement_calling_a_long_step_function_never_runs_inline(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 10.0)  # cheap enough: only instr stops it
    sql = "SELECT instr(body, 'x') AS at FROM messages ORDER BY id"
    q = db.query(sql)
    rt.settle()
    assert "instr" not in SHORT_FUNCTIONS and not short_steps(db.declaration, [sql])
    threads.clear()
    _insert(space, db, "axb")
    rt.settle()
    assert q.get().result == [{"at": 2}]
    assert [name for name, _ in threads] == ["sqlite-cells-query"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT max(body || body, body || 'x') AS longest FROM messages ORDER BY id",
        "SELECT max(body ->> '$') AS longest FROM messages ORDER BY id",
    ],
)
def test_a_statement_of_operators_that_copy_whole_values_never_runs_inline(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
    sql: str,
) -> None:
    """R44: ``||`` (and ``->``, ``->>``) copy a whole value in one step: a row of them on a large
    value runs long between two progress checks, and no interrupt lands inside a row of plain
    steps, so on the scheduler thread it held every other query and derived cell for seconds.
    Such a statement runs on a worker, whose read the watchdog can give up on."""
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 10.0)  # cheap enough: only the operator
    q = db.query(sql)
    rt.settle()
    assert not short_steps(db.declaration, [sql])
    threads.clear()
    _insert(space, db, '"axb"')
    rt.settle()
    assert q.get().error is None and len(q.get().result or []) == 1
    assert [name for name, _ in threads] == ["sqlite-cells-query"]


def test_a_statement_reading_a_virtual_generated_column_never_runs_inline(
    rt: sc.Runtime,
    space: Space,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R44: a VIRTUAL generated column's expression runs at each read, and SQLite's authorizer
    reports none of the functions it calls (it does for a STORED one): ``SELECT g FROM t`` with
    ``g`` a ``trim`` of two large values was taken for short steps, ran on the scheduler thread,
    and held every other query and derived cell for as long as the call."""
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 10.0)  # cheap enough: only the column
    db = space.sqlite_database(
        "generated",
        tables={"t": sc.table(id="integer primary key", a="text", g="text as (trim(a)) virtual")},
    )
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES (' x ')")
    assert db.read("SELECT a FROM t") == [{"a": " x "}]
    assert short_steps(db.declaration, ["SELECT a FROM t"])  # the column read decides
    q = db.query("SELECT g FROM t")
    rt.settle()
    assert not short_steps(db.declaration, ["SELECT g FROM t"])
    threads.clear()
    with space.transact():
        db.exec("UPDATE t SET a = ' y '")
    rt.settle()
    assert q.get().result == [{"g": "y"}]
    assert threads == [("sqlite-cells-query", 1)]


def test_an_inline_read_past_its_inline_deadline_moves_to_a_worker(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 10.0)  # inline whatever it costs
    q = db.query(STEPS)
    rt.settle()
    assert q.get().result == [{"c": 20000, "m": 0}]
    monkeypatch.setattr(live_module, "INLINE_TIMEOUT", 1e-9)  # interrupted at once inline
    threads.clear()
    _insert(space, db, "a")
    rt.settle()
    state = q.get()
    assert state.error is None and state.result == [{"c": 20000, "m": 1}]
    assert [name for name, _ in threads] == ["sqlite-cells-scheduler", "sqlite-cells-query"]
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 1e-6)  # under STEPS' read time
    threads.clear()
    _insert(space, db, "b")  # the worker's read time counts now: over budget, not inline
    rt.settle()
    assert q.get().result == [{"c": 20000, "m": 2}]
    assert [name for name, _ in threads] == ["sqlite-cells-query"]


def test_light_statements_rerun_as_one_job_in_one_read(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 0.0)  # never inline here
    monkeypatch.setattr(live_module, "SPLIT_COST", 10.0)  # light, however loaded the machine
    queries = [db.query("SELECT body FROM messages WHERE id > ?", [i]) for i in range(20)]
    rt.settle()
    threads.clear()
    _insert(space, db, "a")
    rt.settle()
    assert threads == [("sqlite-cells-query", 20)]  # not split over the two workers
    assert queries[0].get().result == [{"body": "a"}]
    assert all(q.get().result == [] for q in queries[1:])


def test_a_too_short_query_timeout_is_still_an_error_inline(store: Path) -> None:
    """With query_timeout under the inline deadline the inline read keeps query_timeout, and
    its timeout is the query's error (nothing else would run it longer)."""
    with sc.Runtime(store, query_timeout=1e-9) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        q = db.query(STEPS)
        rt.settle()
        assert isinstance(q.get().error, sc.QueryTimeout)


def test_the_gate_records_functions_and_refuses_nesting(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "g.db"))
    conn.execute("CREATE TABLE t (x)")
    gate = Gate().install(conn)
    policy = make_authorizer(Mode.READ, database="main", tables=["t"])
    reads: set[tuple[str, str]] = set()
    functions: set[str] = set()
    gate.enter(policy, reads, functions)
    try:
        assert gate.is_user
        with pytest.raises(RuntimeError):
            gate.enter(policy)
        conn.execute("SELECT upper(x), COUNT(*) FROM t", can_cache=False).fetchall()
    finally:
        gate.leave()
    assert not gate.is_user
    assert reads == {("t", "x")} and functions == {"upper", "count"}


def test_the_watchdog_interrupts_a_guarded_read_past_its_deadline(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    apsw.Connection(str(path)).execute("CREATE TABLE t (x)")
    pool = ReadPool(2)
    workers = workers_module.QueryWorkers(pool, count=1, timeout=5.0)
    failed: list[BaseException] = []
    try:
        with pool.connection(path) as pooled:
            tracker = Tracker(pooled=pooled, deadline=time.monotonic() - workers_module.GRACE)
            workers.guard(tracker)

            def run() -> None:
                try:
                    pooled.conn.execute(LOOP).fetchall()
                except apsw.InterruptError as exc:
                    failed.append(exc)

            reader = threading.Thread(target=run)
            reader.start()
            reader.join(20)  # a hang detector: the watchdog looks every 50 ms
            workers.unguard(tracker)
        assert not reader.is_alive() and len(failed) == 1
    finally:
        workers.close()
        pool.close()


def test_a_read_equal_to_the_rows_of_last_time_carries_those_rows(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    _insert(space, db, "a")
    decl = db.declaration
    same = Statement("SELECT body FROM messages ORDER BY id", ())
    other = Statement("SELECT id FROM messages ORDER BY id", ())
    last: list[Any] = [("a",)]
    stale: list[Any] = [(99,)]
    _, (kept, fresh, unknown) = read_batch(
        rt.read_pool,
        decl,
        [same, other, same],
        timeout=5.0,
        previous=[(last, None), (stale, None), None],
    )
    assert kept.rows is last
    assert fresh.rows == [(1,)] and fresh.rows is not stale
    assert unknown.rows == last and unknown.rows is not last
    # Each result carries its rows' digest; given with the rows next time, it decides alone.
    assert kept.digest == unknown.digest == msgspec.msgpack.encode([("a",)])
    assert fresh.digest == msgspec.msgpack.encode([(1,)])
    _, (again,) = read_batch(
        rt.read_pool, decl, [same], timeout=5.0, previous=[(last, kept.digest)]
    )
    assert again.rows is last and again.unchanged


def test_rows_python_finds_equal_are_not_kept_when_sqlite_values_differ(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """R42: 1 and 1.0, 0.0 and -0.0 are different rows (a reader sees them apart), by digest as
    by comparison; a result of more than DIGEST_ROWS rows has no digest and is compared."""
    decl = db.declaration
    cases = [("SELECT 1 AS v", [(1.0,)]), ("SELECT -0.0 AS v", [(0.0,)])]
    for sql, python_equal in cases:
        stmt = Statement(sql, ())
        _, (first,) = read_batch(rt.read_pool, decl, [stmt], timeout=5.0, previous=[None])
        assert first.rows == python_equal and first.digest is not None
        digest_of_other = msgspec.msgpack.encode(python_equal)
        for previous in [(python_equal, digest_of_other), (python_equal, None)]:
            _, (result,) = read_batch(rt.read_pool, decl, [stmt], timeout=5.0, previous=[previous])
            assert result.rows is not python_equal and not result.unchanged, (sql, previous)
    many = Statement(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        f"WHERE x < {DIGEST_ROWS + 1}) SELECT x FROM c",
        (),
    )
    _, (big,) = read_batch(rt.read_pool, decl, [many], timeout=5.0, previous=[None])
    assert big.digest is None and len(big.rows) == DIGEST_ROWS + 1
    last = [(x,) for x in range(1, DIGEST_ROWS + 2)]
    _, (same_big,) = read_batch(rt.read_pool, decl, [many], timeout=5.0, previous=[(last, None)])
    assert same_big.rows is last and same_big.unchanged


def test_a_batch_deadline_bounds_every_statement_of_the_batch(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """An inline batch holds the scheduler thread ``INLINE_TIMEOUT`` in all, not per statement:
    statements whose known costs were short may all have grown since (R44). Past the batch's
    ``until`` each statement ends as a timeout at once (the live path hands those to a worker),
    however long its own timeout."""
    _insert(space, db, "a")
    steps = [Statement(STEPS.replace("20000", str(20000 + k)), ()) for k in range(3)]
    _, results = read_batch(
        rt.read_pool, db.declaration, steps, timeout=60.0, tracker=Tracker(until=time.monotonic())
    )
    assert [type(r.error) for r in results] == [sc.QueryTimeout] * 3
    _, results = read_batch(rt.read_pool, db.declaration, steps, timeout=60.0)
    assert [r.rows for r in results] == [[(20000 + k, 1)] for k in range(3)]


def test_a_large_batch_of_cheap_statements_reruns_on_the_scheduler_thread(
    rt: sc.Runtime,
    space: Space,
    db: sc.SqliteDb,
    threads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hundreds of statements each of a few µs run where the commit is processed: handed to a
    worker and landed back, they cost about 40% more (bench/analysis.md). (The budget is
    widened: on a busy machine the measured costs of 200 reads can pass the usual 8 ms.)"""
    monkeypatch.setattr(live_module, "INLINE_BUDGET", 1.0)
    monkeypatch.setattr(live_module, "INLINE_TIMEOUT", 5.0)
    queries = [db.query("SELECT body FROM messages WHERE id > ?", [i]) for i in range(200)]
    rt.settle()
    _insert(space, db, "warm")  # every statement's cost is known after a run
    rt.settle()
    threads.clear()
    _insert(space, db, "a")
    rt.settle()
    assert queries[0].get().result == [{"body": "warm"}, {"body": "a"}]
    assert threads == [("sqlite-cells-scheduler", 200)]


def test_a_query_worker_is_not_starved_by_a_busy_main_thread(rt: sc.Runtime, space: Space) -> None:
    """A re-run of ≈ 7 million VM steps (≈ 50 ms) on a worker while the main thread runs Python
    without pause: each deadline check is a Python call that must take the GIL, which the busy
    thread hands over every 5 ms; one check every 1,000 steps kept it from landing in 5 s."""
    db = space.sqlite_database("chat", tables=MESSAGES)
    _insert(space, db, "a")
    busy = (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 400000) "
        "SELECT (SELECT count(*) FROM r) AS c, count(*) AS n FROM messages"
    )
    q = db.query(busy)
    assert rt.settle(30)
    _insert(space, db, "b")
    start = time.monotonic()
    landed = False
    while not landed and time.monotonic() - start < 4:  # Python without pause
        state = q.get()
        landed = state.result is not None and state.result[0]["n"] == 2
    assert landed, q.get()


def test_a_light_query_is_not_held_by_runaway_queries_of_its_database(tmp_path: Path) -> None:
    """R44: a runaway query never holds back other queries. A write re-runs every query of its
    database as one batch; with more runaway queries than workers the batch was split over
    the workers with the light query in a job beside a runaway one, and it was delivered only
    when that one timed out. Statements known to be light now go apart (inline when cheap)."""
    timeout = 2.0
    with sc.Runtime(tmp_path, query_timeout=timeout, query_workers=2) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", n="int")})
        with space.transact():
            db.exec_many("INSERT INTO t (n) VALUES (?)", [(i,) for i in range(2000)])
        runaways = [db.query(f"SELECT count(*) + {k} AS c FROM t a, t b, t c") for k in range(3)]
        light = db.query("SELECT count(*) AS c FROM t")
        assert rt.settle(timeout=30)
        assert all(isinstance(q.get().error, sc.QueryTimeout) for q in runaways)
        seen: list[tuple[float, Any]] = []
        light.observe().subscribe(lambda state: seen.append((time.monotonic(), state.result)))
        for n in (2001, 2002):
            with space.transact():
                db.exec("INSERT INTO t (n) VALUES (1)")
            committed = time.monotonic()
            deadline = committed + 3 * timeout
            while seen[-1][1] != [{"c": n}] and time.monotonic() < deadline:
                time.sleep(0.005)
            assert seen[-1][1] == [{"c": n}]
            # Well before the runaway ones give up (timeout): it waited for none of them.
            assert seen[-1][0] - committed < timeout / 2, seen[-1][0] - committed
            assert rt.settle(timeout=30)

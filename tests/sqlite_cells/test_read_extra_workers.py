"""A read arriving while every query worker is stuck in a long call gets an extra worker, so it
never waits for the stuck ones to time out (R44)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
import sqlite_cells.read._live as live_module
import sqlite_cells.read._reader as reader_module
import sqlite_cells.read._workers as workers_module
from sqlite_cells.read._pool import ReadPool
from sqlite_cells.read._reader import Statement, StatementResult
from sqlite_cells.read._workers import ReadJob

from .conftest import MESSAGES
from .test_read_limits import ONE_LONG_CALL

COUNT = "SELECT count(*) AS n FROM messages"


class Stuck:
    """Makes the worker that runs ``ONE_LONG_CALL`` stay in it until ``release`` is set (by
    default when its timeout is reported): the real call runs, then the worker keeps waiting as
    if the call went on, however fast this machine runs it, so the watchdog is what ends it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.events: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._running = 0
        self._idle = threading.Condition(self._lock)

    def note(self, what: str, detail: Any) -> None:
        with self._lock:
            self.events.append((what, detail))
        if what == "stuck":
            self.release.set()

    def read_batch(self, real: Any) -> Any:
        def wrapped(pool: Any, decl: Any, statements: Any, **kwargs: Any) -> Any:
            if statements[0].sql != ONE_LONG_CALL:
                return real(pool, decl, statements, **kwargs)
            with self._lock:
                self._running += 1
            self.started.set()
            try:
                return real(pool, decl, statements, **kwargs)
            finally:
                self.release.wait(30)  # a hang guard
                with self._lock:
                    self._running -= 1
                    self._idle.notify_all()

        return wrapped

    def wait_until_done(self) -> None:
        """Wait for the long calls to end, so that none burns CPU during later tests."""
        self.release.set()
        with self._lock:
            self._idle.wait_for(lambda: self._running == 0, 30)


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    hold = Stuck()
    real = workers_module.read_batch
    workers_module.read_batch = hold.read_batch(real)  # type: ignore[assignment]
    try:
        yield hold
    finally:
        hold.wait_until_done()
        workers_module.read_batch = real


def _stuck_read(db: sc.SqliteDb, stuck: Stuck) -> None:
    """Read ONE_LONG_CALL and note how it ended (an error, or rows)."""
    try:
        db.read(ONE_LONG_CALL)
    except sc.SqliteCellsError as exc:
        stuck.note("stuck", exc)
    else:
        stuck.note("stuck", "rows")


def test_a_read_does_not_wait_behind_a_stuck_read(store: Path, stuck: Stuck) -> None:
    # (2 s: room for the read to end first on a loaded host)
    with sc.Runtime(store, query_timeout=2.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)

        def slow_read() -> None:
            _stuck_read(db, stuck)

        background = threading.Thread(target=slow_read)
        background.start()
        assert stuck.started.wait(30)
        stuck.note("read", db.read(COUNT))
        background.join(30)
        assert [what for what, _ in stuck.events] == ["read", "stuck"]
        assert stuck.events[0][1] == [{"n": 0}]
        assert isinstance(stuck.events[1][1], sc.QueryTimeout)
        assert rt.query_workers.extras_started >= 1


def test_a_read_does_not_wait_behind_a_stuck_live_query(store: Path, stuck: Stuck) -> None:
    # (2 s: room for the read to end first on a loaded host)
    with sc.Runtime(store, query_timeout=2.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        q = db.query(ONE_LONG_CALL)

        def state(value: sc.QueryState[Any]) -> None:
            if value.error is not None or value.result is not None:
                stuck.note("stuck", value.error if value.error is not None else "rows")

        subscription = q.observe().subscribe(state)
        try:
            assert stuck.started.wait(30)
            stuck.note("read", db.read(COUNT))
            rt.settle(30)
        finally:
            subscription.dispose()
        assert [what for what, _ in stuck.events] == ["read", "stuck"]
        assert stuck.events[0][1] == [{"n": 0}]
        assert isinstance(stuck.events[1][1], sc.QueryTimeout)
        assert isinstance(q.get().error, sc.QueryTimeout)


def test_an_extra_worker_retires_once_idle(
    store: Path, stuck: Stuck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow read that ends in time leaves one worker too many: it exits after ``RETIRE``."""
    monkeypatch.setattr(workers_module, "RETIRE", 0.05)
    with sc.Runtime(store, query_timeout=60.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        workers = rt.query_workers
        box: list[Any] = []
        background = threading.Thread(target=lambda: box.append(db.read(ONE_LONG_CALL)))
        background.start()
        assert stuck.started.wait(30)
        assert db.read(COUNT) == [{"n": 0}]
        assert workers.extras_started == 1 and workers.running == 2
        stuck.release.set()
        background.join(30)
        assert box == [[{"found": 0}]]
        for _ in range(3000):  # a hang guard, not a time bound
            if workers.running == 1:
                break
            time.sleep(0.01)
        assert workers.running == 1
        assert db.read(COUNT) == [{"n": 0}]
        assert workers.extras_started == 1  # a worker kept up with that read: no new extra


def test_extra_workers_are_bounded(
    store: Path, stuck: Stuck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``MAX_EXTRA`` a read waits for the stuck ones (here: the first to be reported)."""
    monkeypatch.setattr(workers_module, "MAX_EXTRA", 1)
    with sc.Runtime(store, query_timeout=1.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        workers = rt.query_workers

        def slow_read() -> None:
            _stuck_read(db, stuck)

        first = threading.Thread(target=slow_read)
        first.start()
        assert stuck.started.wait(30)
        second = threading.Thread(target=slow_read)
        second.start()
        for _ in range(3000):  # the extra worker takes the second stuck read (a hang guard)
            if workers.extras_started == 1 and workers.running == 2:
                break
            time.sleep(0.01)
        stuck.note("read", db.read(COUNT))
        first.join(30)
        second.join(30)
        assert workers.extras_started == 1
        assert stuck.events[0][0] == "stuck" and isinstance(stuck.events[0][1], sc.QueryTimeout)
        assert ("read", [{"n": 0}]) in stuck.events


ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
)


def test_a_live_query_requested_with_endless_ones_does_not_wait_for_them(store: Path) -> None:
    """First runs requested together go out as one batch; the statement running long hands the
    ones behind it to another worker, so a trivial query's first rows arrive while the endless
    ones still run, long before their query_timeout (R44)."""
    with sc.Runtime(store, query_timeout=120.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        endless = [db.query(ENDLESS), db.query(ENDLESS.replace("count(*)", "count(*) + 1"))]
        quick = db.query(COUNT)
        got = threading.Event()

        def state(value: sc.QueryState[Any]) -> None:
            if value.result is not None or value.error is not None:
                got.set()

        subscription = quick.observe().subscribe(state)
        try:
            assert got.wait(60)  # a hang guard: without the hand-off this waits for 120 s
        finally:
            subscription.dispose()
        assert quick.get().result == [{"n": 0}]
        for query in endless:
            assert query.get().pending and query.get().error is None
        # Handed on either way: the batch's statements not begun went to another worker, or
        # (its first run requested in a round of its own, as on a loaded machine) the quick
        # query's job found the only worker busy and an extra one took it.
        workers = rt.query_workers
        assert workers.splits + workers.extras_started >= 1


def test_a_read_stuck_opening_its_file_times_out_by_its_deadline(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a connection can wait on a lock inside SQLite (a `randomblob` of many megabytes
    on another connection holds SQLite's random-number lock, which an open takes): the worker
    is then in no statement, and its read is still reported as ``QueryTimeout`` by its deadline
    (+1 s), the worker given up as one stuck in a statement is (R44). The open is held here by
    a stand-in for that lock, released when the test ends."""
    timeout = 0.3
    release = threading.Event()
    real = ReadPool._open_store_file
    held_path: list[Path] = []

    def opening(path: Path) -> Any:
        if held_path and path == held_path[0]:
            release.wait(30)  # a hang guard
        return real(path)

    monkeypatch.setattr(ReadPool, "_open_store_file", staticmethod(opening))
    try:
        with sc.Runtime(store, query_timeout=timeout, query_workers=1) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("chat", tables=MESSAGES)
            with space.transact():
                db.exec("INSERT INTO messages (body) VALUES ('x')")
            held_path.append(db.path)
            asked = time.monotonic()
            with pytest.raises(sc.QueryTimeout) as raised:
                db.read(COUNT)
            took = time.monotonic() - asked
            release.set()
            assert took <= timeout + 1.0
            assert "opening the database file" in str(raised.value)
            held_path.clear()
            assert db.read(COUNT) == [{"n": 1}]  # a worker took the stuck one's place
    finally:
        release.set()


def test_a_light_query_goes_after_runaway_ones_in_the_jobs_of_its_batch(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement read before a slow one of its job is delivered with it, up to
    query_timeout later; one after it is handed to another worker. A light query whose last
    read time came out above the light mark (a loaded machine) was batched with runaway ones
    and, placed first, reached its subscriber 1.99 s after the commit with query_timeout=2.
    Jobs now hold the statements never run or slowest first (R44)."""
    timeout = 2.0
    with sc.Runtime(store, query_timeout=timeout, query_workers=2) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec_many("INSERT INTO messages (body) VALUES (?)", [(str(i),) for i in range(2000)])
        runaway = "SELECT count(*) + {k} AS c FROM messages a, messages b, messages c"
        runaways = [db.query(runaway.format(k=k)) for k in range(3)]
        light_sql = "SELECT count(*) AS c FROM messages"
        light = db.query(light_sql)
        assert rt.settle(timeout=30)
        assert all(isinstance(q.get().error, sc.QueryTimeout) for q in runaways)
        hub = rt.live_queries
        jobs: list[list[str]] = []
        real_submit = rt.query_workers.submit

        def submit(job: ReadJob) -> None:
            jobs.append([stmt.sql for _, stmt in job.items])
            real_submit(job)

        monkeypatch.setattr(rt.query_workers, "submit", submit)
        seen: list[tuple[float, Any]] = []
        light.observe().subscribe(lambda state: seen.append((time.monotonic(), state.result)))
        for n in (2001, 2002):
            # Its last read time, as a loaded machine may measure it: above the light mark, so
            # it goes in one job with the runaway ones (which have no cost: they timed out).
            for key in list(hub._costs):
                if key[1] == light_sql:
                    hub._costs[key] = live_module.SPLIT_COST * 50
            jobs.clear()
            with space.transact():
                db.exec("INSERT INTO messages (body) VALUES ('x')")
            committed = time.monotonic()
            while seen[-1][1] != [{"c": n}] and time.monotonic() < committed + 3 * timeout:
                time.sleep(0.005)
            assert seen[-1][1] == [{"c": n}]
            assert seen[-1][0] - committed < timeout / 2, seen[-1][0] - committed
            first = next(job for job in jobs if light_sql in job)
            assert first[-1] == light_sql and len(first) > 1, first
            assert rt.settle(timeout=30)


def test_a_job_whose_results_its_worker_took_is_never_split(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a worker has taken its job's results (every statement read; none to build: each
    read the rows its query held), the watchdog hands nothing on: a split then read the
    statements again in a new job while the worker delivered them too, so each was delivered
    twice — a query's older rows could land after newer ones, and the second delivery of one
    unit of work stopped the scheduler. The worker is held between taking its results and
    delivering them (as a thread that loses the processor there is) longer than ``SLOW`` and
    a watchdog look."""
    real = workers_module.QueryWorkers._build_ahead

    def held_after_taking(self: Any, ahead: Any, pairs: Any, tracker: Any) -> Any:
        taken = real(self, ahead, pairs, tracker)
        time.sleep(workers_module.SLOW + 0.2)
        return taken

    monkeypatch.setattr(workers_module.QueryWorkers, "_build_ahead", held_after_taking)
    with sc.Runtime(store, query_timeout=30.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        workers = rt.query_workers
        delivered: list[Any] = []
        done = threading.Event()
        keys = ["first", "second", "third"]

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            delivered.extend(key for key, _ in results)
            if len(delivered) >= len(keys):
                done.set()

        items: list[tuple[Any, Statement]] = [
            (key, Statement(f"SELECT count(*) + {n} AS n FROM messages", ()))
            for n, key in enumerate(keys)
        ]
        held = {key: ([(n,)], None) for n, key in enumerate(keys)}  # the rows each reads
        job = ReadJob(db.declaration, items, deliver, None, held.get, lambda key, result: None)
        workers.submit(job)
        assert done.wait(30)  # a hang guard
        time.sleep(workers_module.SLOW + 0.3)  # a second delivery would have come by now
        assert sorted(delivered) == sorted(keys)
        assert workers.splits == 0


def test_a_batch_of_slowish_statements_reads_each_once(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statements each a little past ``SLOW``: each split hands on the statements not begun
    yet, never those read already (a version that handed those on too read a batch of 60 such
    statements up to 45 times each, and landed it at twice query_timeout). Each statement is
    held in its read (a stand-in for a statement of that length) and counted."""
    reads: dict[str, int] = {}
    real = reader_module._run_one

    def slowish(pooled: Any, plan: Any, stmt: Statement) -> Any:
        reads[stmt.sql] = reads.get(stmt.sql, 0) + 1
        time.sleep(workers_module.SLOW * 1.6)
        return real(pooled, plan, stmt)

    monkeypatch.setattr(reader_module, "_run_one", slowish)
    with sc.Runtime(store, query_timeout=30.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        delivered: list[Any] = []
        done = threading.Event()
        count = 16

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            assert all(result.error is None for _, result in results)
            delivered.extend(key for key, _ in results)
            if len(delivered) >= count:
                done.set()

        items: list[tuple[Any, Statement]] = [
            (n, Statement(f"SELECT count(*) + {n} AS n FROM messages", ())) for n in range(count)
        ]
        rt.query_workers.submit(ReadJob(db.declaration, items, deliver))
        assert done.wait(60)  # a hang guard
        time.sleep(0.3)  # a second delivery would have come by now
        assert sorted(delivered) == list(range(count))
        assert reads == {stmt.sql: 1 for _, stmt in items}


def test_a_statement_waiting_for_its_files_lock_does_not_split_its_job(
    store: Path, tmp_path: Path
) -> None:
    """A statement waiting for a lock another program holds on an injected file (rollback
    journal: a writer's exclusive lock keeps readers out) is no slow statement: the next one
    of its job waits for the same lock. Handing it on at each look made a chain of jobs that
    filled every worker, the extra ones included, each up to query_timeout, and a light query
    of another database waited behind them (R44)."""
    path = tmp_path / "source.db"
    setup = apsw.Connection(str(path))
    setup.execute("PRAGMA journal_mode=DELETE").fetchall()
    setup.execute("CREATE TABLE t (v); INSERT INTO t VALUES (1)")
    setup.close()
    with sc.Runtime(store, query_timeout=5.0, query_workers=1) as rt:
        source = rt.space("demo").register_disk_source(str(path))
        holder = apsw.Connection(str(path))
        holder.execute("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2)")
        delivered: list[tuple[Any, Any]] = []
        done = threading.Event()
        items: list[tuple[Any, Statement]] = [
            (n, Statement(f"SELECT sum(v) + {n} AS s FROM t", ())) for n in range(4)
        ]

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            delivered.extend((key, result.rows) for key, result in results)
            if len(delivered) >= len(items):
                done.set()

        workers = rt.query_workers
        try:
            workers.submit(ReadJob(source.declaration, items, deliver))
            time.sleep(0.5)  # ten looks of the watchdog while the first statement waits
            assert workers.splits == 0 and workers.extras_started == 0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert done.wait(30)  # a hang guard
        assert sorted(delivered) == [(n, [(1 + n,)]) for n in range(4)]


def _landed_after(space: Any, db: sc.SqliteDb, sql: str, query: Any, timeout: float) -> float:
    """Commit ``sql`` and wait (at most three times ``timeout``) for ``query`` to land that
    commit; returns the seconds it took."""
    with space.transact():
        db.exec(sql)
    committed = time.monotonic()
    while query.get().seq != db.rev and time.monotonic() < committed + 3 * timeout:
        time.sleep(0.005)
    assert query.get().seq == db.rev
    return time.monotonic() - committed


@dataclasses.dataclass
class _Count:
    c: int

    def __post_init__(self) -> None:  # code of its own: its query never runs inline
        self.c = int(self.c)


def test_a_query_that_ran_quick_once_and_then_times_out_costs_its_timeout(store: Path) -> None:
    """A query's cost was recorded only from results without error: one that was quick once
    and then ran away kept its small cost, so the jobs of its batch put it before a light query
    (lighter first is last), which was delivered with it at query_timeout after every commit
    (R44). A timed-out statement costs its whole query_timeout now, and goes first."""
    timeout = 2.0
    with sc.Runtime(store, query_timeout=timeout, query_workers=2) as rt:
        space = rt.space("demo")
        tables = {
            "big": sc.table(id="integer primary key", v="integer"),
            "cfg": sc.table(id="integer primary key", lim="integer"),
        }
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec_many("INSERT INTO big (v) VALUES (?)", [(i,) for i in range(40_000)])
            db.exec("INSERT INTO cfg (id, lim) VALUES (1, 2000)")
        light = db.query("SELECT count(*) AS c FROM big WHERE v % 7 = 3", react_on=db, row=_Count)
        bounded = (
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
            "WHERE n < (SELECT lim FROM cfg)) SELECT count(*) + {k} AS k FROM c"
        )
        runaways = [db.query(bounded.format(k=k), react_on=db) for k in range(2)]
        assert rt.settle(timeout=30)
        with space.transact():  # the bounded queries run away from here on
            db.exec("UPDATE cfg SET lim = 1000000000000")
        assert rt.settle(timeout=30)
        assert all(isinstance(q.get().error, sc.QueryTimeout) for q in runaways)
        costs = rt.live_queries._costs
        assert sorted(cost for key, cost in costs.items() if "RECURSIVE" in key[1]) == [
            timeout,
            timeout,
        ]
        for _ in range(2):
            took = _landed_after(space, db, "INSERT INTO big (v) VALUES (3)", light, timeout)
            assert took < timeout / 2
            assert light.get().result == db.read(
                "SELECT count(*) AS c FROM big WHERE v % 7 = 3", row=_Count
            )
            assert rt.settle(timeout=30)


@dataclasses.dataclass
class _SlowRow:
    id: int
    v: int

    def __post_init__(self) -> None:
        time.sleep(0.004)  # building 500 of them takes past query_timeout


def test_a_query_shares_no_read_with_one_whose_row_type_builds_slowly(store: Path) -> None:
    """Live queries of one SQL and parameters share one read, whose rows are built for every
    query before any lands: an untyped query beside a typed one whose ``__post_init__`` is slow
    waited for that building and, past query_timeout, got its timeout — after every commit,
    while a fresh read returned the rows (R44, R42). Queries whose rows run code of their own
    share reads only among themselves."""
    timeout = 1.0
    with sc.Runtime(store, query_timeout=timeout, query_workers=2) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", v="int")})
        with space.transact():
            db.exec_many("INSERT INTO t (id, v) VALUES (?, ?)", [(i, i) for i in range(500)])
        sql = "SELECT id, v FROM t ORDER BY id"
        plain = db.query(sql)
        typed = db.query(sql, row=_SlowRow)
        assert rt.settle(timeout=30)
        assert isinstance(typed.get().error, sc.QueryTimeout)
        for n in range(2):
            took = _landed_after(space, db, "UPDATE t SET v = v + 1 WHERE id = 0", plain, timeout)
            assert took < timeout / 2
            state = plain.get()
            assert state.error is None and state.seq == db.rev
            assert state.result == db.read(sql) and state.result[0] == {"id": 0, "v": n + 1}
            assert rt.settle(timeout=30)
        assert isinstance(typed.get().error, sc.QueryTimeout)


def test_a_statement_read_before_a_runaway_one_of_its_job_is_delivered_at_once(
    store: Path,
) -> None:
    """A light statement first in a job, a runaway one after it: the light one's result, read
    already, is handed on when the runaway one has run ``SLOW`` seconds, and delivered long
    before query_timeout (it was delivered with the runaway one, when that timed out: a light
    live query created before runaway ones had its first rows only then, R44). Each is
    delivered once, and the light one read once."""
    timeout = 3.0
    with sc.Runtime(store, query_timeout=timeout, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        asked = time.monotonic()
        landed: dict[str, list[tuple[float, StatementResult]]] = {}
        done = threading.Event()
        items: list[tuple[Any, Statement]] = [
            ("light", Statement(COUNT, ())),
            ("light too", Statement(COUNT.replace("count(*)", "count(*) + 1"), ())),
            ("runaway", Statement(ENDLESS, ())),
        ]

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            for key, result in results:
                landed.setdefault(key, []).append((time.monotonic() - asked, result))
            if sum(map(len, landed.values())) >= len(items):
                done.set()

        rt.query_workers.submit(ReadJob(db.declaration, items, deliver))
        assert done.wait(30)  # a hang guard
        time.sleep(0.3)  # a second delivery would have come by now
        assert sorted(landed) == ["light", "light too", "runaway"]
        assert all(len(deliveries) == 1 for deliveries in landed.values()), landed
        for key, n in (("light", 0), ("light too", 1)):
            ((after, result),) = landed[key]
            assert result.error is None and result.rows == [(n,)]
            assert after < timeout / 3, (key, after)
        ((after, result),) = landed["runaway"]
        assert isinstance(result.error, sc.QueryTimeout) and after >= timeout
        assert rt.query_workers.splits >= 1


def test_rows_slow_to_build_in_a_batch_are_each_read_and_built_once(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement of a job read, then each result's rows a little past ``SLOW`` to build:
    at each look the watchdog hands on the results built already (to be delivered) and those
    not built yet (to be built elsewhere) — read in the job's transaction, they are not read
    again. (Handed on as statements, 30 such results were read ≈ 460 times, the last landing
    seconds later.) Each is read once, built once and delivered once, with its watermark."""
    reads: dict[str, int] = {}
    real = reader_module._run_one

    def counted(pooled: Any, plan: Any, stmt: Statement) -> Any:
        reads[stmt.sql] = reads.get(stmt.sql, 0) + 1
        return real(pooled, plan, stmt)

    monkeypatch.setattr(reader_module, "_run_one", counted)
    with sc.Runtime(store, query_timeout=30.0, query_workers=1) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        count = 12
        built: dict[Any, int] = {}
        lock = threading.Lock()
        delivered: list[tuple[Any, int, Any]] = []
        done = threading.Event()

        def build(key: Any, result: StatementResult) -> None:
            with lock:
                built[key] = built.get(key, 0) + 1
            time.sleep(workers_module.SLOW * 1.6)

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            with lock:
                delivered.extend((key, seq, result.rows) for key, result in results)
                if len(delivered) >= count:
                    done.set()

        items: list[tuple[Any, Statement]] = [
            (n, Statement(f"SELECT count(*) + {n} AS n FROM messages", ())) for n in range(count)
        ]
        began = time.monotonic()
        rt.query_workers.submit(ReadJob(db.declaration, items, deliver, ahead=build))
        assert done.wait(60)  # a hang guard
        took = time.monotonic() - began
        time.sleep(0.3)  # a second delivery would have come by now
        assert sorted(delivered) == [(n, db.rev, [(1 + n,)]) for n in range(count)]
        assert reads == {stmt.sql: 1 for _, stmt in items}
        assert built == {n: 1 for n in range(count)}
        assert rt.query_workers.splits >= 1
        # Built one after another at worst (one worker, and extras only when all are slow).
        assert took < count * workers_module.SLOW * 1.6 + 5


def test_a_read_does_not_wait_behind_twelve_stuck_reads(store: Path, stuck: Stuck) -> None:
    """Twelve reads stuck in one long call each (R44: "never holds back other queries"):
    extra workers were bounded at 8 beyond ``query_workers``, so a trivial read waited for their
    deadlines. Up to 16 stuck calls are outlasted with the default two workers. (The timeout
    leaves a loaded host room to start the twelve and the read before the first deadline.)"""
    with sc.Runtime(store, query_timeout=3.0, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        readers = [threading.Thread(target=_stuck_read, args=(db, stuck)) for _ in range(12)]
        for reader in readers:
            reader.start()
        for _ in range(3000):  # every one in its long call (a hang guard)
            with stuck._lock:
                if stuck._running == 12:
                    break
            time.sleep(0.01)
        stuck.note("read", db.read(COUNT))
        for reader in readers:
            reader.join(30)
        assert stuck.events[0] == ("read", [{"n": 0}]), stuck.events[:2]
        assert len(stuck.events) == 13

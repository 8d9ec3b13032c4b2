"""Reads and reactivity under load, as the contract words them (R40–R44, R50–R54): many threads
committing at once, several runtimes on one store, subscribers that fail, write or settle."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

TABLES = {
    "events": sc.table(
        id="integer primary key",
        who="integer not null",
        n="integer not null",
        tag="text not null default 'ok' unique",
        note="text",
    ),
}


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def run_threads(count: int, body: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            body(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_concurrent_commits_show_each_committed_state_at_most_once_and_nothing_else(
    rt: sc.Runtime,
) -> None:
    """Many threads commit at once (grouped into shared SQLite transactions), some of them
    failing inside the group: each subscriber sees only states that committed, in seq order,
    each at most once, and a cell derived from the query and the threads' cells never mixes
    two commits (R50, R54)."""
    space = rt.space("demo")
    db = space.sqlite_database("log", tables=TABLES)
    threads, per_thread = 6, 12
    latest = [space.cell(f"latest-{i}", default=-1) for i in range(threads)]
    q = db.query("SELECT who, max(n) AS n, count(*) AS c FROM events GROUP BY who ORDER BY who")
    states: list[sc.QueryState[dict[str, Any]]] = []
    q.observe().subscribe(states.append)

    def pair(state: sc.QueryState[dict[str, Any]], *values: int) -> tuple[Any, ...]:
        rows = {r["who"]: r["n"] for r in state.result or []}
        return (state.seq, tuple(rows.get(i, -1) for i in range(threads)), values)

    derived = sc.lift(pair)(q, *latest)
    pairs: list[tuple[Any, ...]] = []
    derived.observe().subscribe(pairs.append)
    assert rt.settle(20)
    committed: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def body(who: int) -> None:
        for n in range(per_thread):
            if n % 5 == 4:  # a member that fails inside the group: its row must never show
                with pytest.raises(sc.ExecError), space.transact():
                    latest[who].set(1000 + n)
                    db.exec(
                        "INSERT INTO events (who, n, tag) VALUES (?, ?, 'dup')", [who, 1000 + n]
                    )
                    db.exec(
                        "INSERT INTO events (who, n, tag) VALUES (?, ?, 'dup')", [who, 1000 + n]
                    )
                continue
            with space.transact() as tx:
                latest[who].set(n)
                db.exec("INSERT INTO events (who, n, tag) VALUES (?, ?, ?)", [who, n, f"{who}-{n}"])
            assert tx.seq is not None
            with lock:
                committed[tx.seq] = (who, n)

    assert run_threads(threads, body) == []
    assert rt.settle(30)
    seqs = sorted(committed)
    # the rows as of each committed seq
    as_of: dict[int, tuple[int, ...]] = {}
    current = [-1] * threads
    for seq in seqs:
        who, n = committed[seq]
        current[who] = n
        as_of[seq] = tuple(current)
    shown = [s for s in states if not s.pending]
    assert shown and shown[-1].seq == seqs[-1]
    assert [s.seq for s in shown] == sorted({s.seq for s in shown})  # in order, at most once
    for state in shown:
        rows = tuple(
            {r["who"]: r["n"] for r in state.result or []}.get(i, -1) for i in range(threads)
        )
        assert all(n < 1000 for n in rows), state
        assert rows == as_of.get(state.seq, tuple([-1] * threads)), state
    for seq, rows, values in pairs:
        assert rows == values, (seq, rows, values)  # never the rows of one commit, cells of another
        assert all(v < 1000 for v in values)
    assert pairs[-1][2] == as_of[seqs[-1]]


def test_two_runtimes_in_one_process_writing_alternately_see_each_other(store: Path) -> None:
    """R53 in one process: each runtime's cells, reads and live queries follow the other's
    commits, though each runtime's own write connection saw no change in between."""
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        dbs = [rt.space("demo").sqlite_database("log", tables=TABLES) for rt in (a, b)]
        counters = [rt.space("demo").cell("count", default=0) for rt in (a, b)]
        queries = [db.query("SELECT count(*) AS c, max(n) AS n FROM events") for db in dbs]
        for step in range(10):
            i = step % 2
            space = (a, b)[i].space("demo")
            with space.transact() as tx:
                counters[i].set(counters[i].get() + 1)
                dbs[i].exec(
                    "INSERT INTO events (who, n, tag) VALUES (?, ?, ?)", [i, step, str(step)]
                )
            for rt, db, counter, q in zip((a, b), dbs, counters, queries, strict=True):
                assert db.read("SELECT count(*) AS c FROM events") == [{"c": step + 1}]
                want = step + 1
                assert wait_for(lambda c=counter, w=want: c.get() == w), (step, rt)
                assert wait_for(lambda q=q: q.get().seq == tx.seq)
                assert rt.settle(10)
                assert q.get().result == [{"c": step + 1, "n": step}]
                assert db.rev == step + 1


def test_two_runtimes_in_one_process_increment_one_cell_without_losing_any(store: Path) -> None:
    """Optimistic concurrency across two runtimes of one process: each reads what the other
    committed (or conflicts and retries), so no increment is lost (R53)."""
    with sc.Runtime(store, poll_interval=0.01) as a, sc.Runtime(store, poll_interval=0.01) as b:
        cells = [rt.space("demo").cell("count", default=0) for rt in (a, b)]

        @sc.handler
        def bump(*, counter: sc.Cell) -> None:
            counter.set(counter.get() + 1)

        def body(i: int) -> None:
            for _ in range(15):
                bump(counter=cells[i % 2])

        assert run_threads(4, body) == []
        assert wait_for(lambda: cells[0].get() == 60 and cells[1].get() == 60)


def test_a_subscriber_that_raises_stops_neither_the_query_nor_the_other_subscribers(
    rt: sc.Runtime,
) -> None:
    db = rt.space("demo").sqlite_database("log", tables=TABLES)
    q = db.query("SELECT count(*) AS c FROM events")
    good: list[Any] = []

    def bad(state: sc.QueryState[dict[str, Any]]) -> None:
        raise RuntimeError("subscriber failure")

    q.observe().subscribe(bad)
    q.observe().subscribe(good.append)
    assert rt.settle(10)
    for n in range(3):
        with rt.space("demo").transact():
            db.exec("INSERT INTO events (who, n, tag) VALUES (0, ?, ?)", [n, str(n)])
        assert rt.settle(10)
    assert [s.result for s in good if not s.pending][-1] == [{"c": 3}]
    assert q.get().error is None


def test_a_subscriber_that_writes_through_a_handler_is_heard_in_turn(rt: sc.Runtime) -> None:
    """A subscriber may commit (a handler inside it): its commit is a commit like any other,
    delivered to everybody, and settle waits for it."""
    space = rt.space("demo")
    db = space.sqlite_database("log", tables=TABLES)
    mirror = space.cell("mirror", default=-1)

    @sc.handler
    def copy(count: int, *, target: sc.Cell) -> None:
        target.set(count)

    def on_state(state: sc.QueryState[dict[str, Any]]) -> None:
        if state.result:
            copy(state.result[0]["c"], target=mirror)

    q = db.query("SELECT count(*) AS c FROM events")
    q.observe().subscribe(on_state)
    seen: list[int] = []
    mirror.observe().subscribe(seen.append)
    assert rt.settle(10)
    assert mirror.get() == 0
    for n in range(3):
        with space.transact():
            db.exec("INSERT INTO events (who, n, tag) VALUES (0, ?, ?)", [n, str(n)])
    assert wait_for(lambda: mirror.get() == 3)
    assert rt.settle(10)
    assert seen[-1] == 3 and seen == sorted(seen)


def test_a_subscriber_that_calls_settle_does_not_hang_the_runtime(rt: sc.Runtime) -> None:
    """settle() from inside a subscriber (on the thread that delivers) cannot wait for its own
    delivery; it returns, and delivery goes on."""
    space = rt.space("demo")
    counter = space.cell("count", default=0)
    results: list[Any] = []

    def on_value(value: int) -> None:
        try:
            results.append((value, rt.settle(5)))
        except Exception as exc:
            results.append((value, exc))

    counter.observe().subscribe(on_value)
    db = space.sqlite_database("log", tables=TABLES)
    q = db.query("SELECT count(*) AS c FROM events")
    q.observe().subscribe(lambda state: on_value(-1))
    assert rt.settle(10)
    started = time.monotonic()
    with space.transact():
        counter.set(1)
        db.exec("INSERT INTO events (who, n, tag) VALUES (0, 0, 'x')")
    assert rt.settle(10)
    assert wait_for(lambda: any(v == 1 for v, _ in results))
    assert time.monotonic() - started < 5, results  # no subscriber waited out its timeout
    with space.transact():
        counter.set(2)
    assert rt.settle(10)
    assert any(v == 2 for v, _ in results)


WRITER = """
import sys, threading
import sqlite_cells as sc

TABLES = {"events": sc.table(id="integer primary key", who="integer not null",
                             n="integer not null", tag="text not null default 'ok' unique",
                             note="text")}
with sc.Runtime(sys.argv[1], poll_interval=0.01) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("log", tables=TABLES)
    latest = [space.cell(f"latest-{i}", default=-1) for i in range(3)]
    def body(who):
        for n in range(int(sys.argv[2])):
            with space.transact():
                latest[who].set(n)
                db.exec("INSERT INTO events (who, n, tag) VALUES (?, ?, ?)", [who, n, f"{who}-{n}"])
    threads = [threading.Thread(target=body, args=(i,)) for i in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("done", flush=True)
"""


def test_another_process_s_grouped_commits_never_show_a_mix(store: Path) -> None:
    """R53 with R54: commits of another process, made by three threads at once, are caught up
    here; a cell derived from a query and the cells those commits wrote never pairs the rows of
    one commit with the cells of another, and ends on the last commit."""
    import os
    import subprocess
    import sys

    per_thread = 15
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("log", tables=TABLES)
        latest = [space.cell(f"latest-{i}", default=-1) for i in range(3)]
        q = db.query("SELECT who, max(n) AS n FROM events GROUP BY who ORDER BY who")

        def pair(state: sc.QueryState[dict[str, Any]], *values: int) -> tuple[Any, ...]:
            rows = {r["who"]: r["n"] for r in state.result or []}
            return (tuple(rows.get(i, -1) for i in range(3)), values)

        pairs: list[tuple[Any, ...]] = []
        sc.lift(pair)(q, *latest).observe().subscribe(pairs.append)
        states: list[sc.QueryState[dict[str, Any]]] = []
        q.observe().subscribe(states.append)
        assert rt.settle(20)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        done = subprocess.run(
            [sys.executable, "-c", WRITER, str(store), str(per_thread)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        final = (per_thread - 1,) * 3
        assert wait_for(lambda: bool(pairs) and pairs[-1] == (final, final)), pairs[-3:]
        assert rt.settle(20)
        assert [p for p in pairs if p[0] != p[1]] == []
        shown = [s.seq for s in states if not s.pending]
        assert shown == sorted(set(shown))


def test_close_while_threads_commit_and_queries_rerun_ends_every_caller(store: Path) -> None:
    """close() during a burst of commits and re-runs returns; each committer either committed
    or was told the runtime is closed, and a closed runtime says so."""
    rt = sc.Runtime(store, poll_interval=0.01)
    space = rt.space("demo")
    db = space.sqlite_database("log", tables=TABLES)
    spin = "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200000) "
    queries = [
        db.query(f"SELECT count(*) + {k} AS c, {spin}SELECT count(*) FROM r) AS s FROM events")
        for k in range(4)
    ]
    sc.lift(lambda *states: [s.seq for s in states])(*queries).observe().subscribe(lambda _: None)
    outcomes: list[Any] = []
    lock = threading.Lock()
    started = threading.Event()

    def body(who: int) -> None:
        for n in range(200):
            try:
                with space.transact() as tx:
                    db.exec(
                        "INSERT INTO events (who, n, tag) VALUES (?, ?, ?)", [who, n, f"{who}-{n}"]
                    )
                outcome: Any = tx.seq
            except sc.SqliteCellsError as exc:
                outcome = exc
            with lock:
                outcomes.append(outcome)
            started.set()
            if not isinstance(outcome, int):
                return

    threads = [threading.Thread(target=body, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    assert started.wait(20)
    rt.close()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    failures = [o for o in outcomes if not isinstance(o, int)]
    assert all(isinstance(o, sc.ClosedError) for o in failures), failures
    with pytest.raises(sc.ClosedError):
        db.read("SELECT 1 AS one")
    committed = sorted(o for o in outcomes if isinstance(o, int))
    with sc.Runtime(store) as again:
        again_db = again.space("demo").sqlite_database("log", tables=TABLES)
        assert again_db.read("SELECT count(*) AS c FROM events") == [{"c": len(committed)}]


def _endings_of_calls_a_close_overtakes(store: Path, reader: str, pause: float) -> list[str]:
    """Four threads call ``reader`` in a loop until it raises; the runtime closes meanwhile.
    Returns how each call ended."""
    rt = sc.Runtime(store, poll_interval=0.01)
    space = rt.space("demo")
    db = space.sqlite_database("log", tables=TABLES)
    with space.transact():
        space.cell("seed").set(1)
        db.exec("INSERT INTO events (who, n, tag) VALUES (0, 0, 'seed')")
    endings: list[BaseException] = []
    running = threading.Barrier(5)

    def body(who: int) -> None:
        running.wait()
        i = 0
        try:
            while True:
                i += 1
                if reader == "cell":
                    space.cell(f"never-{who}-{i}").get()  # a new id each time: not cached
                elif reader == "db-read":
                    db.read("SELECT count(*) AS c FROM events")
                else:
                    with space.transact():
                        space.cell(f"w-{who}").set(i)
                        db.exec(
                            "INSERT INTO events (who, n, tag) VALUES (?, ?, ?)",
                            [who, i, f"{who}-{i}"],
                        )
        except BaseException as exc:
            endings.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    running.wait()
    time.sleep(pause)
    rt.close()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return [f"{type(e).__name__}: {e}" for e in endings]


@pytest.mark.parametrize("reader", ["cell", "db-read", "commit"])
def test_every_call_a_close_overtakes_says_the_runtime_is_closed(
    tmp_path: Path, reader: str
) -> None:
    """Threads reading cells, reading a database and committing while another thread closes
    the runtime: each call either finishes or raises ClosedError — never a raw error of a
    connection closed under it. (Repeated: the close must land inside calls in flight.)"""
    for trial in range(12):
        store = tmp_path / f"store-{trial}"
        store.mkdir()
        endings = _endings_of_calls_a_close_overtakes(store, reader, 0.01 * (trial % 4))
        assert len(endings) == 4
        assert [e for e in endings if not e.startswith("ClosedError: ")] == [], trial


def test_a_read_running_when_the_runtime_closes_is_told_it_closed_not_timed_out(
    store: Path,
) -> None:
    """close() interrupts a read in flight (R44: it never holds close back); the read ran far
    less than query_timeout, so it ends with ClosedError, not QueryTimeout."""
    rt = sc.Runtime(store, query_timeout=60.0)
    db = rt.space("demo").sqlite_database("log", tables=TABLES)
    loop = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000000000) "
        "SELECT count(*) AS n FROM r"
    )
    endings: list[BaseException] = []

    def read() -> None:
        try:
            db.read(loop)
        except BaseException as exc:
            endings.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)  # running by now, or still queued: either way close() ends it
    rt.close()
    reader.join(30)  # a hang detector: the read would otherwise run ~minutes
    assert not reader.is_alive()
    assert [type(e) for e in endings] == [sc.ClosedError], endings


def test_a_read_in_one_long_call_when_the_runtime_closes_is_told_at_once(store: Path) -> None:
    """R44: one long function call (SQLite's `trim` of 20,000 characters by a 100,000-character
    set, ≈ 5 s) no interrupt stops: close() does not wait for it, and its caller was left
    waiting for it to end (or until its query_timeout). It is told the runtime closed, now."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("log", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO events (who, n, note) VALUES (1, 1, ?)", ["a" * 20_000])
    rt = sc.Runtime(store, query_timeout=20.0)
    db = rt.space("demo").sqlite_database("log", tables=TABLES)
    endings: list[tuple[float, BaseException]] = []

    def read() -> None:
        begun = time.monotonic()
        try:
            db.read(
                "SELECT length(trim(note, printf('%.*c', 100000, 'c') || 'a')) AS n FROM events"
            )
        except BaseException as exc:
            endings.append((time.monotonic() - begun, exc))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)  # in the call by now
    rt.close()
    reader.join(30)
    assert not reader.is_alive()
    assert [type(e) for _, e in endings] == [sc.ClosedError], endings
    assert endings[0][0] < 4.0, endings
    # The worker left behind finishes its call on its own: waited for here, so that no thread
    # of this runtime outlives the test.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(
        t.name.startswith("sqlite-cells-query") for t in threading.enumerate()
    ):
        time.sleep(0.1)


def test_a_cell_derived_from_a_slow_query_a_fast_query_and_a_cell_never_mixes_commits(
    rt: sc.Runtime,
) -> None:
    """R54: one commit writes a cell and rows read by two queries, one cheap and one slow; a
    cell derived from the three runs after both queries' runs for that commit landed, and
    never pairs one query's rows with the other's or with another commit's cell."""
    space = rt.space("demo")
    db = space.sqlite_database("log", tables=TABLES)
    count = space.cell("count", default=0)
    fast = db.query("SELECT count(*) AS c FROM events")
    spin = "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200000) "
    slow = db.query(f"SELECT max(n) AS m, {spin}SELECT count(*) FROM r) AS s FROM events")
    seen: list[tuple[int, Any, Any]] = []

    def three(c: int, f: sc.QueryState[dict[str, Any]], s: sc.QueryState[dict[str, Any]]) -> int:
        seen.append((c, f.result and f.result[0]["c"], s.result and s.result[0]["m"]))
        return c

    sc.lift(three)(count, fast, slow).observe().subscribe(lambda _value: None)
    assert rt.settle(20)

    @sc.handler
    def post(n: int) -> None:
        count.set(n)
        db.exec("INSERT INTO events (who, n, tag) VALUES (0, ?, ?)", [n, str(n)])

    for n in range(1, 21):
        post(n)
    assert rt.settle(30)
    settled = [(c, f, m) for c, f, m in seen if f is not None and m is not None]
    assert settled[-1] == (20, 20, 20)
    assert [t for t in settled if t[0] and not (t[0] == t[1] == t[2])] == []


ONE_COMMIT = """
import sys
import sqlite_cells as sc
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
    with space.transact():
        space.cell("n", default=0).set(1)
        db.exec("INSERT INTO t (v) VALUES (1)")
"""


def test_a_cell_derived_from_a_query_and_a_cell_newer_than_it_waits_for_that_commit(
    store: Path,
) -> None:
    """A derived cell made from a cell and a live query reads the cell's committed value from the
    file; when another process committed it (with rows the query reads) and the scheduler has
    not taken that commit in yet, the query's rows are still the older commit's. The first value
    paired the two — (1, 0) from commits 1 and 0 — where every commit keeps n == count(*) (R54).
    Now it waits for the scheduler to take that commit in, which re-runs the query."""
    with sc.Runtime(store, poll_interval=3600) as rt:  # another process's commit: only if woken
        space = rt.space("s")
        db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
        query = db.query("SELECT count(*) AS c FROM t")
        rt.settle()
        assert query.get().result == [{"c": 0}]
        done = subprocess.run(
            [sys.executable, "-c", ONE_COMMIT, str(store)], capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        pairs: list[tuple[int, int]] = []
        pair = sc.lift(lambda n, state: (n, state.result[0]["c"]))(space.cell("n"), query)
        pair.observe().subscribe(pairs.append)
        assert rt.settle(10)
        assert pairs == [(1, 1)], pairs

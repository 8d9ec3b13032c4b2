"""Threads, close and the runtime's lifecycle under load (§3, R30–R35, R40, R44, R50, R54,
Errors: ClosedError): many threads calling the runtime at once, and ``close()`` racing them.

Every wait is bounded: a hang fails the test (with every thread's stack dumped) instead of
holding up the suite."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

TABLES = {
    "rows": sc.table(
        id="integer primary key",
        who="integer not null",
        n="integer not null",
        tag="text not null unique",
    ),
}
LONG = 60.0  # a hang detector, never a speed bound


@pytest.fixture(autouse=True)
def hang_dump() -> Iterator[None]:
    """A test stuck past two minutes dumps every thread's stack to stderr."""
    faulthandler.dump_traceback_later(120, exit=False, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def runtime_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sqlite-cells")]


def store_fds(store: Path) -> list[str]:
    """The descriptors of this process open on a file inside ``store``."""
    found = []
    root = str(store.resolve())
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(root + os.sep):
            found.append(target)
    return found


def wait_for(predicate: Callable[[], bool], timeout: float = LONG) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def run_threads(count: int, body: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    lock = threading.Lock()

    def guarded(i: int) -> None:
        try:
            body(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LONG)
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        faulthandler.dump_traceback(file=sys.stderr)
    assert not stuck
    return errors


def assert_in_seq_order(seen: list[int]) -> None:
    """A subscriber's states: seqs strictly increasing (none twice, none out of order)."""
    assert seen == sorted(set(seen)), seen


# -- many threads, one runtime ------------------------------------------------------------------


def test_eight_threads_mixing_every_call_leave_each_commit_exactly_once(store: Path) -> None:
    """8 threads mix cell transactions, writes to one and to two databases of one space,
    reads, live queries made and dropped, subscriptions made and disposed, derived cells and
    settles. At the end each committed row and cell value is there exactly once, each live
    query's state equals a fresh read, and every subscriber saw seqs in order, none twice."""
    rt = sc.Runtime(store, poll_interval=0.01)
    try:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        b = space.sqlite_database("b", tables=TABLES)
        lock = threading.Lock()
        model: dict[str, set[str]] = {"a": set(), "b": set()}  # tags committed, per database
        cells: dict[str, int] = {}  # cell name -> last committed value
        last: dict[str, list[int]] = {"a": [0], "b": [0]}  # seqs of commits that wrote each
        seen: dict[str, list[int]] = {}
        subscriber_errors: list[BaseException] = []
        counter = space.cell("counter", default=0)
        doubled = sc.derive(counter, lambda v: v * 2)
        live_a = a.query("SELECT tag FROM rows ORDER BY tag")
        live_b = b.query("SELECT count(*) AS n FROM rows")

        def watch(name: str, q: Any) -> Any:
            seqs = seen.setdefault(name, [])

            def on_next(state: sc.QueryState[Any]) -> None:
                if not state.pending and state.seq is not None:
                    seqs.append(state.seq)

            return q.observe().subscribe(on_next, on_error=lambda e: subscriber_errors.append(e))

        watch("a", live_a)
        watch("b", live_b)

        @sc.handler
        def bump(*, counter: sc.Cell) -> None:
            counter.update(lambda v: v + 1)

        def body(who: int) -> None:
            for n in range(25):
                kind = (who + n) % 8
                tag = f"{who}-{n}"
                if kind == 0:
                    bump(counter=counter)  # retried on conflicts, at most 10 tries
                    with lock:
                        cells["counter"] = cells.get("counter", 0) + 1
                elif kind == 1:
                    with space.transact() as tx:
                        space.cell(f"c{who}").set(n)
                        a.exec("INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [who, n, tag])
                    with lock:
                        model["a"].add(tag)
                        last["a"].append(tx.seq)
                        cells[f"c{who}"] = n
                elif kind == 2:
                    with space.transact() as tx:
                        b.exec("INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [who, n, tag])
                    with lock:
                        model["b"].add(tag)
                        last["b"].append(tx.seq)
                elif kind == 3:
                    # A second database in one transaction is refused at the call; the first
                    # write stays and commits (R32, R33).
                    with space.transact() as tx:
                        a.exec("INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [who, n, tag])
                        with pytest.raises(sc.TooManyDatabases):
                            b.exec("INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [who, n, tag])
                    with lock:
                        model["a"].add(tag)
                        last["a"].append(tx.seq)
                elif kind == 4:
                    rows = a.read("SELECT count(*) AS n FROM rows")
                    assert isinstance(rows[0]["n"], int)
                elif kind == 5:
                    q = b.query("SELECT tag FROM rows WHERE who = ?", params=[who])
                    disposable = watch(f"q{who}-{n}", q)
                    rt.settle(timeout=LONG)
                    disposable.dispose()
                elif kind == 6:
                    d = sc.derive(counter, lambda v, k=n: (v, k))
                    got: list[Any] = []
                    disposable = d.observe().subscribe(got.append)
                    rt.settle(timeout=LONG)
                    assert got, "a derived cell delivers its first value by settle"
                    disposable.dispose()
                else:
                    assert rt.settle(timeout=LONG)

        assert run_threads(8, body) == []
        assert rt.settle(timeout=LONG)
        assert subscriber_errors == []
        for name, db in (("a", a), ("b", b)):
            tags = [r["tag"] for r in db.read("SELECT tag FROM rows")]
            assert sorted(tags) == sorted(model[name])  # each committed row once
        for name, value in cells.items():
            assert space.cell(name).get() == value
        assert doubled.get() == 2 * cells["counter"]
        assert live_a.get().result == a.read("SELECT tag FROM rows ORDER BY tag")
        assert live_b.get().result == b.read("SELECT count(*) AS n FROM rows")
        # Each live query reflects the last commit that wrote its database (R42).
        assert live_a.get().seq == max(last["a"])
        assert live_b.get().seq == max(last["b"])
        for seqs in seen.values():
            assert_in_seq_order(seqs)
    finally:
        rt.close()


# -- close() racing the calls of other threads ------------------------------------------------


def _calls(space: sc.Space, a: sc.SqliteDb, b: sc.SqliteDb, rt: sc.Runtime) -> dict[str, Any]:
    """One call of each kind, as a thread makes it; returns the seq of what it committed."""
    counter = space.cell("counter", default=0)

    @sc.handler
    def bump(*, counter: sc.Cell) -> None:
        counter.update(lambda v: v + 1)

    def cell_write(i: int) -> int | None:
        with space.transact() as tx:
            space.cell(f"w{i % 7}").set(i)
        return tx.seq

    def exec_one(i: int) -> int | None:
        with space.transact() as tx:
            space.cell("last").set(i)
            a.exec("INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [0, i, f"one-{i}"])
        return tx.seq

    def exec_two(i: int) -> int | None:
        db = a if i % 2 else b
        with space.transact() as tx:
            db.exec("INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [1, i, f"two-{i}"])
        return tx.seq

    def handler(i: int) -> int | None:
        seq: int | None = bump(counter=counter)
        return seq

    def read(i: int) -> None:
        a.read("SELECT count(*) AS n FROM rows")

    def cell_get(i: int) -> None:
        space.cell(f"never-{i}").get()

    def query(i: int) -> None:
        q = a.query("SELECT count(*) + ? AS n FROM rows", params=[i])
        q.get()

    def subscribe(i: int) -> None:
        counter.observe().subscribe(lambda _: None).dispose()

    def derive(i: int) -> None:
        sc.derive(counter, lambda v: v + i).get()

    def settle(i: int) -> None:
        rt.settle(timeout=LONG)

    def open_space(i: int) -> None:
        rt.space(f"s{i % 3}")

    return {
        "cell_write": cell_write,
        "exec_one": exec_one,
        "exec_two": exec_two,
        "handler": handler,
        "read": read,
        "cell_get": cell_get,
        "query": query,
        "subscribe": subscribe,
        "derive": derive,
        "settle": settle,
        "open_space": open_space,
    }


class _CompletedAfterClose(Exception):
    """A call made on a closed runtime returned without raising."""


CALLS = [
    "cell_write",
    "exec_one",
    "exec_two",
    "handler",
    "read",
    "cell_get",
    "query",
    "subscribe",
    "derive",
    "settle",
    "open_space",
]


def test_a_read_that_close_interrupted_as_its_statement_was_prepared_is_closed_error() -> None:
    """The race below, met once on a loaded host: close() interrupted a read as SQLite
    prepared one of its statements (reading the file's schema), where SQLite gives the plain
    error "interrupted" rather than its interrupt error; the read was a QueryError saying to
    correct the statement. Each way close() ends a read is a ClosedError, and nothing else."""
    from sqlite_cells.read._workers import closed_instead

    for cause in (
        apsw.InterruptError("interrupted"),
        apsw.SQLError("interrupted"),
        apsw.BusyError("database is locked"),
    ):
        error = sc.QueryError("db", "SELECT 1", f"{cause} (SQLite's …)")
        error.__cause__ = cause
        closed = closed_instead(error)
        assert isinstance(closed, sc.ClosedError) and closed.__cause__ is cause
        assert "the runtime was closed during this read" in str(closed)
    own = sc.QueryError("db", "SELECT x FROM t", "no such table: t")
    own.__cause__ = apsw.SQLError("no such table: t")
    assert closed_instead(own) is own


@pytest.mark.parametrize("call", CALLS)
def test_close_racing_each_call_ends_it_completed_or_closed_and_leaves_nothing_open(
    tmp_path: Path, call: str
) -> None:
    """Four threads repeat one call while the main thread closes the runtime: each call
    completes or raises ClosedError (never another error, never a hang). Once close() has
    returned no runtime thread is left and no file of the store is open, and a new runtime on
    the store sees every commit that returned."""
    for trial in range(6):
        _race_close(tmp_path, call, trial)


def _race_close(tmp_path: Path, call: str, trial: int) -> None:
    store = tmp_path / f"store-{trial}"
    store.mkdir()
    before = set(runtime_threads())
    rt = sc.Runtime(store, poll_interval=0.01)
    space = rt.space("demo")
    a = space.sqlite_database("a", tables=TABLES)
    b = space.sqlite_database("b", tables=TABLES)
    with space.transact():
        a.exec("INSERT INTO rows (who, n, tag) VALUES (9, 0, 'seed-a')")
    with space.transact():
        b.exec("INSERT INTO rows (who, n, tag) VALUES (9, 0, 'seed-b')")
    sc.derive(space.cell("counter", default=0), lambda v: v).observe().subscribe(lambda _: None)
    fn = _calls(space, a, b, rt)[call]
    committed: list[int] = []
    endings: list[BaseException] = []
    lock = threading.Lock()
    going = threading.Barrier(5)

    def body(who: int) -> None:
        going.wait()
        i = who * 100_000
        try:
            while True:
                i += 1
                was_open = rt.is_open
                seq = fn(i)
                if isinstance(seq, int):
                    with lock:
                        committed.append(seq)
                if not was_open:
                    # A call made after close() may complete (a late subscriber is told the
                    # stream ended at once); it must not raise anything but ClosedError.
                    raise _CompletedAfterClose
        except BaseException as exc:
            with lock:
                endings.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    going.wait()
    time.sleep(0.003 * (trial % 3))
    rt.close()
    for thread in threads:
        thread.join(LONG)
    if any(t.is_alive() for t in threads):
        faulthandler.dump_traceback(file=sys.stderr)
    assert not any(t.is_alive() for t in threads)
    wrong = [
        "".join(traceback.format_exception(e))
        for e in endings
        if not isinstance(e, sc.ClosedError | _CompletedAfterClose)
    ]
    assert wrong == [], f"trial {trial}:\n" + "\n".join(wrong)
    assert len(endings) == 4
    left = [t for t in runtime_threads() if t not in before and t.is_alive()]
    assert left == [], left
    assert store_fds(store) == []
    assert len(set(committed)) == len(committed)
    with sc.Runtime(store) as again:
        space2 = again.space("demo")
        head = space2.cell("counter").get()
        if call == "handler":
            assert head == len(committed)
        if committed:
            # Every seq that returned is durable: the space's log reaches past it.
            with space2.transact() as tx:
                space2.cell("probe-after").set(1)
            assert tx.seq is not None and tx.seq > max(committed)
        if call == "exec_one":
            rows = space2.sqlite_database("a", tables=TABLES).read(
                "SELECT count(*) AS n FROM rows WHERE who = 0"
            )
            assert rows == [{"n": len(committed)}]
        if call == "exec_two":
            n = sum(
                space2.sqlite_database(name, tables=TABLES).read(
                    "SELECT count(*) AS n FROM rows WHERE who = 1"
                )[0]["n"]
                for name in ("a", "b")
            )
            assert n == len(committed)


def test_close_from_two_threads_at_once_returns_in_each_only_once_closed(store: Path) -> None:
    """close() called by two threads at the same moment: neither returns before the runtime's
    threads are gone and its files closed."""
    for trial in range(10):
        where = store / f"s{trial}"
        where.mkdir()
        _close_twice(where)


def _close_twice(where: Path) -> None:
    before = set(runtime_threads())
    rt = sc.Runtime(where, poll_interval=0.01)
    space = rt.space("demo")
    db = space.sqlite_database("a", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO rows (who, n, tag) VALUES (1, 1, 'x')")
    db.query("SELECT count(*) AS n FROM rows").observe().subscribe(lambda _: None)
    assert rt.settle(timeout=LONG)
    going = threading.Barrier(2)
    after: list[tuple[list[threading.Thread], list[str]]] = []

    def closer(_: int) -> None:
        going.wait()
        rt.close()
        after.append(([t for t in runtime_threads() if t not in before], store_fds(where)))

    assert run_threads(2, closer) == []
    assert after == [([], []), ([], [])]


def test_close_from_a_subscriber_a_derive_function_or_a_transaction(store: Path) -> None:
    """close() called on the scheduler thread (from a subscriber, from a derive function) or
    inside a transaction returns; the transaction commits nothing and says the runtime is
    closed; afterwards no thread of the runtime is left and a new runtime sees every commit
    that returned."""
    before = set(runtime_threads())
    for where in ("subscriber", "derive", "transaction"):
        path = store / where
        path.mkdir()
        _close_from(path, where, before)


def _close_from(path: Path, where: str, before: set[threading.Thread]) -> None:
    rt = sc.Runtime(path, poll_interval=0.01)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    closed = threading.Event()

    def close_at(value: int) -> int:
        if value == 1:
            rt.close()
            closed.set()
        return value

    if where == "subscriber":
        c.observe().subscribe(close_at)
    elif where == "derive":
        sc.derive(c, close_at).observe().subscribe(lambda _: None)
    with space.transact() as tx:
        c.set(1)
    assert tx.seq == 1
    if where == "transaction":
        with pytest.raises(sc.ClosedError), space.transact():
            c.set(2)
            rt.close()
        closed.set()
    assert closed.wait(LONG)
    with pytest.raises(sc.ClosedError):
        rt.settle(timeout=LONG)
    assert wait_for(lambda: [t for t in runtime_threads() if t not in before] == [])
    assert store_fds(path) == []
    with sc.Runtime(path) as again:
        assert again.space("demo").cell("c").get() == 1


def test_subscribers_and_derive_functions_that_misbehave_do_not_stop_the_others(
    store: Path,
) -> None:
    """Subscribers that raise, block a while, settle, or commit a transaction of their own,
    and derive functions that raise: every other cell's subscribers still see each commit,
    and nothing deadlocks."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        c = space.cell("c", default=0)
        echo = space.cell("echo", default=0)
        seen: list[int] = []
        echoed: list[int] = []
        settles: list[bool] = []

        def raising(value: int) -> None:
            raise RuntimeError("a subscriber fails")

        def blocking(value: int) -> None:
            time.sleep(0.02)

        def settling(value: int) -> None:
            settles.append(rt.settle(timeout=LONG))

        def committing(value: int) -> None:
            if value:
                with space.transact():
                    echo.set(value)

        def bad_derive(value: int) -> int:
            if value % 2:
                raise ValueError("odd")
            return value

        for fn in (raising, blocking, settling, committing):
            c.observe().subscribe(fn)
        errors: list[BaseException] = []
        sc.derive(c, bad_derive).observe().subscribe(lambda _: None, on_error=errors.append)
        c.observe().subscribe(seen.append)
        echo.observe().subscribe(echoed.append)

        @sc.handler
        def bump(*, c: sc.Cell) -> None:
            c.update(lambda v: v + 1)

        assert run_threads(4, lambda _: [bump(c=c) for _ in range(10)]) == []
        assert rt.settle(timeout=LONG)
        assert c.get() == 40
        assert seen[0] == 0 and seen[-1] == 40 and seen == sorted(set(seen))
        assert echoed[-1] == 40 and echoed == sorted(set(echoed))
        assert all(settles)
        assert errors and all(isinstance(e, ValueError) for e in errors[:1])


def test_settle_with_a_timeout_while_writers_keep_committing_ends_in_bounded_time(
    store: Path,
) -> None:
    """settle(timeout=…) while four threads keep committing returns a bool (or raises our
    error) within a bound far above its timeout, every time."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("a", tables=TABLES)
        q = db.query("SELECT count(*) AS n FROM rows")
        q.observe().subscribe(lambda _: None)
        sc.derive(space.cell("c0", default=0), lambda v: v).observe().subscribe(lambda _: None)
        stop = threading.Event()

        def writer(who: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                with space.transact():
                    space.cell(f"c{who}").set(n)
                    db.exec(
                        "INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)", [who, n, f"{who}-{n}"]
                    )

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            for timeout in (0.0, 0.01, 0.05, 0.2):
                for _ in range(5):
                    began = time.monotonic()
                    result = rt.settle(timeout=timeout)
                    assert isinstance(result, bool)
                    assert time.monotonic() - began < timeout + 10  # a hang detector
        finally:
            stop.set()
            for thread in threads:
                thread.join(LONG)
        assert not any(t.is_alive() for t in threads)
        assert rt.settle(timeout=LONG) is True
        assert q.get().result == db.read("SELECT count(*) AS n FROM rows")


def test_two_hundred_short_lived_runtimes_leave_threads_and_descriptors_flat(
    store: Path,
) -> None:
    """Open, write, query, close 200 times: the process's threads and descriptors do not
    grow."""

    def cycle(i: int) -> None:
        with sc.Runtime(store, poll_interval=0.01) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("a", tables=TABLES)
            with space.transact():
                space.cell("n").set(i)
                db.exec("INSERT INTO rows (who, n, tag) VALUES (0, ?, ?)", [i, f"r{i}"])
            q = db.query("SELECT count(*) AS n FROM rows")
            assert rt.settle(timeout=LONG)
            assert q.get().result == [{"n": i + 1}]

    for i in range(5):
        cycle(i)
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(5, 200):
        cycle(i)
    assert wait_for(lambda: threading.active_count() <= threads)
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert store_fds(store) == []


def test_a_runtime_left_through_an_exception_is_closed(store: Path) -> None:
    """``with Runtime(...)`` left by an exception closes the runtime, lets the exception
    through, and keeps what committed before it."""
    before = set(runtime_threads())
    with pytest.raises(KeyError), sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(1)
        space.cell("c").observe().subscribe(lambda _: None)
        raise KeyError("the user's own")
    assert not rt.is_open
    assert [t for t in runtime_threads() if t not in before] == []
    assert store_fds(store) == []
    with sc.Runtime(store) as again:
        assert again.space("demo").cell("c").get() == 1


SPIN = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) AS n FROM r"


def test_a_read_past_query_timeout_holds_back_neither_other_threads_nor_close(
    store: Path,
) -> None:
    """A CPU-bound read past query_timeout is QueryTimeout by its deadline (+1 s) while four
    threads keep reading and writing, and they finish meanwhile; a close() during another
    such read returns within query_timeout + 1 s."""
    timeout = 0.5
    rt = sc.Runtime(store, poll_interval=0.01, query_timeout=timeout)
    try:
        space = rt.space("demo")
        db = space.sqlite_database("a", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO rows (who, n, tag) VALUES (0, 0, 'seed')")
        progress = [0] * 4
        stop = threading.Event()

        def other(who: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                if who % 2:
                    assert db.read("SELECT count(*) AS n FROM rows")[0]["n"] >= 1
                else:
                    with space.transact():
                        db.exec(
                            "INSERT INTO rows (who, n, tag) VALUES (?, ?, ?)",
                            [who, n, f"{who}-{n}"],
                        )
                progress[who] = n

        threads = [threading.Thread(target=other, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        with pytest.raises(sc.QueryTimeout):
            db.read(SPIN)
        assert time.monotonic() - began < timeout + 1.0 + 5  # generous: a loaded machine
        at_timeout = list(progress)
        assert all(n > 0 for n in at_timeout), at_timeout  # nobody waited behind it
        stop.set()
        for thread in threads:
            thread.join(LONG)
        assert not any(t.is_alive() for t in threads)

        ended: list[BaseException] = []

        def long_read() -> None:
            try:
                db.read(SPIN)
            except BaseException as exc:
                ended.append(exc)

        reader = threading.Thread(target=long_read)
        reader.start()
        assert wait_for(lambda: rt.query_workers.running >= 1 and bool(rt.query_workers._in_flight))
        began = time.monotonic()
        rt.close()
        assert time.monotonic() - began < timeout + 1.0 + 5
        reader.join(LONG)
        assert not reader.is_alive()
        assert len(ended) == 1 and isinstance(ended[0], sc.ClosedError | sc.QueryTimeout), ended
    finally:
        rt.close()


def test_closing_a_runtime_watching_a_source_leaves_no_thread(store: Path, tmp_path: Path) -> None:
    """A live query of a disk source starts the thread that watches the file (R60); close()
    returns only once it is gone."""
    import apsw

    path = tmp_path / "outside.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    conn.close()
    before = set(runtime_threads())
    rt = sc.Runtime(store, poll_interval=0.01)
    source = rt.space("demo").register_disk_source(str(path))
    q = source.query("SELECT x FROM t")
    assert rt.settle(timeout=LONG)
    assert q.get().result == [{"x": 1}]
    assert any(t.name == "sqlite-cells-sources" for t in runtime_threads())
    rt.close()
    assert [t for t in runtime_threads() if t not in before] == []
    assert store_fds(store) == []


def test_a_read_left_by_ctrl_c_stops_running(store: Path) -> None:
    """Ctrl-C (a notebook's interrupt) ended ``db.read`` for its caller, but its statement ran
    on in the query worker until ``query_timeout``: three interrupted reads kept two CPUs busy
    for the whole timeout. Nobody waits for it now, so it ends at the watchdog's next look."""
    import _thread

    with sc.Runtime(store, query_timeout=30) as rt:
        db = rt.space("demo").sqlite_database("d", tables={"t": sc.table(v="integer")})
        interrupter = threading.Timer(0.3, _thread.interrupt_main)
        interrupter.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                db.read(SPIN)
        finally:
            interrupter.cancel()
        assert wait_for(lambda: not rt.query_workers._in_flight, 10.0)  # not 30 s
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]

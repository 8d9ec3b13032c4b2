"""``rt.settle()`` waits for the re-runs caused by past commits, not for the store to fall quiet
(§3, R51, R53): while another thread or another process commits without a pause, it returns
once the commits made before the call have been re-run and delivered, and the commits made
after it are left to the next call.

The live query here takes a few milliseconds and the writer commits far faster than that, so
the scheduler always has newer work queued: a settle that waited for an idle scheduler ran into
its timeout (or returned only by the chance of an idle instant)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import Scheduler

TABLES = {"t": sc.table(id="integer primary key", v="integer not null")}
# A few milliseconds of SQLite's work per run; the row read is the one the writer updates.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
    "SELECT v, (SELECT count(*) FROM c) AS n FROM t"
)
SETTLE = 10.0  # a hang detector: a settle that works returns in well under a second


def _start(rt: sc.Runtime) -> tuple[sc.SqliteDb, sc.Query]:
    space = rt.space("s")
    db = space.sqlite_database("db", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (0)")
    query = db.query(SLOW)
    assert rt.settle(timeout=SETTLE)
    return db, query


@contextmanager
def _writing(db: sc.SqliteDb) -> Iterator[list[int]]:
    """A thread bumping the row in a loop while the block runs, well under way when it
    starts: the seqs its commits returned, in order."""

    @sc.handler
    def bump() -> None:
        db.exec("UPDATE t SET v = v + 1")

    stop = threading.Event()
    seqs: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            seqs.append(bump())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(seqs) < 50:
            time.sleep(0.01)
        yield seqs
    finally:
        stop.set()
        thread.join()


def test_settle_returns_while_another_thread_commits_without_pause(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        db, query = _start(rt)
        space = rt.space("s")
        with _writing(db) as seqs:
            for _ in range(3):
                before = seqs[-1]  # a commit that returned before the call
                assert rt.settle(timeout=SETTLE), "settle waited for commits made after it"
                state = query.get()
                assert state.error is None
                # Delivered: the rows reflect that commit (or a later one), and say so.
                assert state.seq >= before
                assert state.result is not None
                assert state.result[0]["v"] >= before - 1  # the insert was seq 1
                assert seqs[-1] > before  # the writer never paused
        assert space.cell("unused").get() is None  # the runtime is still usable


def test_a_cell_derived_from_a_query_follows_it_while_another_thread_commits(
    tmp_path: Path,
) -> None:
    """A derived cell whose one input is a live query computes from each run that lands, also
    when a newer commit already asked for the query's next run (R54: its inputs are all as of
    that run's commit). It was held back until a run landed with no commit behind it, which
    never came while the writer outran the query: the derived cell kept its first value for
    good and ``settle()`` ran into its timeout every time (§3)."""
    with sc.Runtime(tmp_path) as rt:
        db, query = _start(rt)
        doubled = sc.derive(query, lambda state: 2 * state.result[0]["v"])
        seen: list[int] = []
        doubled.observe().subscribe(seen.append)
        with _writing(db) as seqs:
            for _ in range(3):
                before = seqs[-1]
                assert rt.settle(timeout=SETTLE), "settle waited for commits made after it"
                state = query.get()
                assert state.result is not None and state.result[0]["v"] >= before - 1
                value = doubled.get()
                assert value >= 2 * (before - 1)  # as of a commit made before the call
                assert value % 2 == 0
                assert seqs[-1] > before  # the writer never paused
        assert rt.settle(timeout=SETTLE)
        assert doubled.get() == 2 * query.get().result[0]["v"]
        assert seen == sorted(seen) and len(set(seen)) == len(seen)  # each run once, in order


def test_settle_returns_while_another_process_commits_without_pause(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path, poll_interval=0.01) as rt:
        _db, query = _start(rt)
        first = query.get().seq
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    import sys, time
                    import sqlite_cells as sc
                    TABLES = {{"t": sc.table(id="integer primary key", v="integer not null")}}
                    with sc.Runtime({str(tmp_path)!r}) as rt:
                        space = rt.space("s")
                        db = space.sqlite_database("db", tables=TABLES)
                        end = time.monotonic() + 6
                        n = 0
                        while time.monotonic() < end:
                            with space.transact():
                                db.exec("UPDATE t SET v = v + 1")
                            n += 1
                            if n == 50:
                                print("writing", flush=True)
                    """
                ),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "writing\n"
            seen = first
            for _ in range(3):
                started = time.monotonic()
                assert rt.settle(timeout=SETTLE), "settle waited for commits made after it"
                assert time.monotonic() - started < SETTLE
                state = query.get()
                assert state.error is None
                assert state.seq >= seen  # never behind what an earlier settle delivered
                seen = state.seq
                assert child.poll() is None  # the other process was still writing
            assert seen > first  # its commits were taken in and re-run (R53)
        finally:
            child.wait(timeout=30)
            assert child.stdout is not None
            child.stdout.close()
        assert child.returncode == 0


def test_settle_delivers_a_query_whose_parameter_cell_keeps_changing(tmp_path: Path) -> None:
    """R51: a change of params given as cells re-runs the query; a run whose parameter changed
    while it was in flight is dropped (its rows would pair the old parameter with a newer
    file), and the run that replaces it delivers for both causes: a settle returns with rows
    for a parameter at least as new as the last commit before the call, never pending (it
    returned at once, pending on rows of a long-gone value)."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=TABLES)
        p = space.cell("p", default=0)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (0)")
        query = db.query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
            "SELECT ? AS p, (SELECT count(*) FROM c) AS n",
            params=[p],
        )
        assert rt.settle(timeout=SETTLE)

        @sc.handler
        def set_p(n: int) -> None:
            p.set(n)

        stop = threading.Event()
        last = [0]  # the newest parameter committed
        begun = [0]  # the newest parameter a commit was begun for

        def writer() -> None:
            # Commits faster than a run, then no more: every run while it writes is dropped,
            # and only the one after it can deliver (a parameter that changes for ever never
            # lets any run deliver: settle then waits, as the SPEC's words ask).
            for n in range(1, 401):
                if stop.is_set():
                    return
                begun[0] = n
                set_p(n)
                last[0] = n

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while last[0] < 20:
                time.sleep(0.01)
            before = last[0]
            assert thread.is_alive()  # settled while the parameter keeps changing
            assert rt.settle(timeout=120)
            state = query.get()
            assert state.error is None
            assert state.result is not None and state.result[0]["p"] >= before
            # Pending only for a commit made after settle returned: on a loaded host the
            # writer can fall behind a run, which then delivers, and write on after it.
            assert not state.pending or begun[0] > state.result[0]["p"]
        finally:
            stop.set()
            thread.join()


def test_work_that_ends_after_close_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """A read on a worker, or a flush of reads, still running when the runtime closes ends
    after ``close()`` cleared the scheduler's counts: it ends without an error (a raw
    ``KeyError`` was logged with its traceback), and nothing runs after close."""
    scheduler = Scheduler()
    ran: list[str] = []
    try:
        done = threading.Event()
        scheduler.submit(done.set)
        assert done.wait(10)
        units = [scheduler.begin_work() for _ in range(3)]
        scheduler.close()
        with caplog.at_level(logging.ERROR, logger="sqlite_cells"):
            scheduler.end_work(units[0])
            scheduler.finish_work(lambda: ran.append("after close"), units[1])
            scheduler.submit(lambda: ran.append("submitted after close"))
            scheduler.end_work(units[2])
        assert scheduler.settle(timeout=1)  # closed: nothing more to wait for
    finally:
        scheduler.close()
    assert ran == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_runtime_just_made_is_settled_at_once() -> None:
    """§3: `settle(timeout=0)` only checks. On a runtime just made it said "not settled": the
    live-query hub's commit hook was installed as work of the scheduler's, still queued."""
    for _ in range(20):
        with sc.Runtime.ephemeral() as rt:
            assert rt.settle(timeout=0) is True


def test_settle_on_two_threads_each_waits_for_what_another_runtime_committed_before_it(
    tmp_path: Path,
) -> None:
    """Two settles at once, after another runtime's commit (§3, R53): the first takes the
    commit in and is held while it tells the scheduler; the second, finding the commit taken
    in, still waits until it is told and re-run, then sees its value."""
    with sc.Runtime(tmp_path) as rt, sc.Runtime(tmp_path) as other:
        space = rt.space("s")
        doubled = sc.derive(space.cell("c", default=0), lambda v: v * 2)
        assert rt.settle(timeout=SETTLE) and doubled.get() == 0
        publish = space.file._publish
        publishing, go = threading.Event(), threading.Event()

        def held_publish(event: Any) -> None:
            publishing.set()
            go.wait(SETTLE)
            publish(event)

        space.file._publish = held_publish
        with other.space("s").transact():
            other.space("s").cell("c").set(1)
        first = threading.Thread(target=rt.settle, args=(SETTLE,))
        first.start()
        assert publishing.wait(SETTLE)
        seen: list[int] = []

        def second_settle() -> None:
            rt.settle(timeout=SETTLE)
            seen.append(doubled.get())

        second = threading.Thread(target=second_settle)
        second.start()
        second.join(0.5)  # (not a bound: a settle returning early did so by now)
        go.set()
        first.join()
        second.join()
        space.file._publish = publish
        assert seen == [2]

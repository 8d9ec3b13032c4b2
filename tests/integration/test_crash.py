"""Crashes and I/O errors with real processes and real files (R34, R70–R72).

Writers run in subprocesses forked by a ``crashkit serve`` fork server (so a kill costs a fork, not
an interpreter start-up) with an apsw VFS shim that counts, kills at, or fails one xWrite/xSync of
the space file or the database file during a chosen commit. After each crash the store is reopened
by a runtime in this process and checked: the files agree once reconciled, the counter equals the
row count, and no commit whose call returned was lost.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.read import _live as live_module

from ..conftest import threads_running

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _load_crashkit() -> Any:
    if "crashkit" in sys.modules:
        return sys.modules["crashkit"]
    spec = importlib.util.spec_from_file_location("crashkit", HERE / "crashkit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crashkit"] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


ck = _load_crashkit()

WARMUP = 3
# The children run alone on their store, so reconcile's 30 s busy timeout can only matter if the
# runtime waits on its own lock (it did: see the regression tests); shortened to fail fast then.
BUSY = ("--busy-timeout-ms", "100")
TARGET = WARMUP + 1  # the seq of the commit the faults hit


@pytest.fixture(scope="module")
def forks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = ck.ForkServer(tmp_path_factory.mktemp("forks") / "stderr.log")
    try:
        yield server
    finally:
        server.close()


def _count(forks: Any, store: Path, *extra: str) -> dict[str, dict[str, int]]:
    lines, code = forks.run("writer", str(store), "--count", "--warmup", str(WARMUP), *extra)
    assert code == 0, lines
    (counts,) = [line.split(" ", 1)[1] for line in lines if line.startswith("counts ")]
    found: dict[str, dict[str, int]] = ck.json.loads(counts)
    # Both files take part in the commit: the space's WAL (synchronous=FULL: synced) and the
    # database's WAL (synchronous=NORMAL: written, not synced at commit).
    assert found["space-wal"]["write"] > 0 and found["space-wal"]["sync"] > 0
    assert found["db-wal"]["write"] > 0
    return found


@pytest.fixture(scope="module")
def points(forks: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, int]]:
    """xWrite/xSync calls of the target commit, per file kind (the same in every fresh store)."""
    return _count(forks, tmp_path_factory.mktemp("count"))


def _fresh(tmp_path: Path, name: str) -> Path:
    store = tmp_path / name
    store.mkdir()
    return store


def _check_target_all_or_nothing(state: Any) -> bool:
    """The target commit exists in full (counter, row, log, watermark) or not at all; returns
    whether it exists."""
    assert state.rows == state.counter
    assert state.after.watermark == state.after.space_seq == state.after.log_seq == state.counter
    assert state.counter in (WARMUP, TARGET)
    assert state.ns == frozenset(range(1, state.counter + 1))
    return state.counter == TARGET


def test_kill_at_every_write_and_sync_of_a_commit(
    forks: Any, points: dict[str, dict[str, int]], tmp_path: Path
) -> None:
    _kill_sweep(forks, points, tmp_path)


def test_kill_at_every_write_and_sync_of_a_commit_and_the_compaction_after_it(
    forks: Any, tmp_path: Path
) -> None:
    """The log is compacted right after each commit (keeping 1 record, 2 per database): a kill
    in the commit or in the compaction still leaves a store that reconciles."""
    found = _count(forks, _fresh(tmp_path, "count"), "--compact", "1")
    _kill_sweep(forks, found, tmp_path, "--compact", "1")


def _kill_sweep(forks: Any, points: dict[str, dict[str, int]], tmp_path: Path, *extra: str) -> None:
    grid = [
        (kind, op, n, when)
        for kind, ops in sorted(points.items())
        for op in ck.OPS
        for n in range(1, ops[op] + 1)
        for when in ck.WHENS
    ]
    per_file: Counter[str] = Counter()
    diverged: Counter[str] = Counter()
    kept = 0
    for i, (kind, op, n, when) in enumerate(grid):
        store = _fresh(tmp_path, f"p{i}")
        lines, code = forks.run(
            "writer",
            str(store),
            "--warmup",
            str(WARMUP),
            "--kill",
            f"{kind}:{op}:{n}:{when}",
            *extra,
        )
        assert code == -9, (kind, op, n, when, lines)  # the point was reached
        assert ck.seqs_of(lines) == list(range(1, WARMUP + 1))
        state = ck.reopen(store)
        per_file[kind] += 1
        if state.before.diverged:
            diverged[kind] += 1
            # SQLite commits the space first: a crash can only leave the database behind.
            assert state.before.watermark < state.before.space_seq, state
            assert state.action == "replayed", state
        else:
            assert state.action == "in sync", state
        kept += _check_target_all_or_nothing(state)
    print(
        f"\nkill sweep: {len(grid)} points {dict(per_file)}, diverged and repaired "
        f"{sum(diverged.values())} {dict(diverged)}, target commit kept in {kept}"
    )
    # The points between the two files' commits leave the database behind its space.
    assert diverged["db-wal"] > 0
    assert 0 < kept < len(grid)


def test_random_kills_lose_nothing_that_returned(forks: Any, tmp_path: Path) -> None:
    stats = ck.kill_loop(forks, _fresh(tmp_path, "s"), 50, random.Random(20240501), ck.LoopStats())
    print(
        f"\nkill loop: {stats.loops} loops, {stats.commits_seen} commits returned, "
        f"{stats.diverged_before} diverged before reconcile, {stats.diverged_after} after"
    )
    assert stats.broken == []
    assert (stats.loops, stats.diverged_after) == (50, 0)
    assert stats.commits_seen > 0


def test_random_kills_with_the_log_compacted_lose_nothing(forks: Any, tmp_path: Path) -> None:
    stats = ck.kill_loop(
        forks,
        _fresh(tmp_path, "s"),
        25,
        random.Random(20261202),
        ck.LoopStats(),
        extra=("--compact", "2"),
    )
    assert stats.broken == []
    assert (stats.loops, stats.diverged_after) == (25, 0)
    assert stats.commits_seen > 0
    conn = apsw.Connection(str(next((tmp_path / "s").glob("space-*.sqlite"))))
    try:
        row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'compacted'").fetchone()
        assert row is not None and int(row[0]) > 0
    finally:
        conn.close()


@pytest.mark.slow
def test_many_random_kills(forks: Any, tmp_path: Path) -> None:
    stats = ck.kill_loop(forks, _fresh(tmp_path, "s"), 1000, random.Random(7), ck.LoopStats())
    print(f"\nkill loop: {stats}")
    assert stats.broken == []
    assert stats.diverged_after == 0 and stats.diverged_before > 0


def test_an_io_error_at_each_write_and_sync_of_a_commit(
    forks: Any, points: dict[str, dict[str, int]], tmp_path: Path
) -> None:
    grid = [
        (kind, op, n)
        for kind, ops in sorted(points.items())
        for op in ck.OPS
        for n in range(1, ops[op] + 1)
    ]
    endings: Counter[str] = Counter()
    lagging = 0
    for i, (kind, op, n) in enumerate(grid):
        store = _fresh(tmp_path, f"e{i}")
        lines, code = forks.run(
            *("writer", str(store), "--warmup", str(WARMUP), *BUSY),
            *("--ioerror", f"{kind}:{op}:{n}"),
        )
        assert code == 0, (kind, op, n, lines)
        failed = [line for line in lines if line.startswith("failed ")]
        # Any error raised by the commit derives from the common root (R34); a file that failed
        # the commit is a DatabaseError, as one that cannot be opened is.
        assert all(line == "failed DatabaseError root" for line in failed), (kind, op, n, failed)
        for line in lines:  # what the files said right after the failed commit, in the writer
            if line.startswith("state "):
                space_seq, watermark = map(int, line.split()[1:])
                lagging += space_seq != watermark
        state = ck.reopen(store)
        exists = _check_target_all_or_nothing(state)
        if not failed:
            assert ck.seqs_of(lines)[-1] == TARGET
            assert exists, (kind, op, n, state)
            endings["committed"] += 1
        elif exists:
            endings["raised, kept in the space, database repaired"] += 1
        else:
            endings["raised, rolled back"] += 1
    assert lagging == 0  # R71: reconciled at once after an error raised by COMMIT
    print(
        f"\nI/O-error grid: {len(grid)} cells: {dict(endings)}; files agreed right after each "
        "failed commit"
    )
    assert sum(endings.values()) == len(grid)
    assert endings["raised, rolled back"] > 0


# Regression: before 2df0756 ("Reconcile lets go of the attached file first") commit_failed's
# reconcile waited the busy timeout on the write connection's own lock and gave up (BusyError,
# logged and swallowed), and the next commit wrote past the missing seq, leaving a hole.
# Since then a COMMIT that fails after the space committed is repaired at once and returns.
def test_a_failed_commit_is_reconciled_at_once(forks: Any, tmp_path: Path) -> None:
    store = _fresh(tmp_path, "s")
    lines, code = forks.run(
        *("writer", str(store), "--warmup", str(WARMUP), *BUSY),
        *("--ioerror", "db-wal:write:1"),
    )
    # The space kept the commit, so the call returned its seq, with the file caught up.
    assert code == 0 and f"seq {TARGET}" in lines, lines
    state = ck.reopen(store)
    assert state.before.watermark == state.before.space_seq == TARGET


def test_a_commit_after_a_failed_commit_leaves_no_hole(forks: Any, tmp_path: Path) -> None:
    store = _fresh(tmp_path, "s")
    lines, code = forks.run(
        *("writer", str(store), "--warmup", str(WARMUP), "--commits", "2", *BUSY),
        *("--ioerror", "db-wal:write:1"),
    )
    assert code == 0 and f"seq {TARGET}" in lines, lines
    state = ck.reopen(store)
    assert state.counter == TARGET + 1  # the failed commit stayed in the space, and the next one
    assert state.ns == frozenset(range(1, TARGET + 2))  # with both rows: no hole at TARGET
    assert state.before.watermark == state.before.space_seq == TARGET + 1


# A call that raised left nothing behind; a commit that was kept returned its seq.
def test_a_commit_that_raised_is_not_kept(forks: Any, tmp_path: Path) -> None:
    store = _fresh(tmp_path, "s")
    lines, code = forks.run(
        *("writer", str(store), "--warmup", str(WARMUP), *BUSY),
        *("--ioerror", "db-wal:write:1"),
    )
    assert code == 0, lines
    raised = "failed DatabaseError root" in lines
    state = ck.reopen(store)
    assert (state.counter == WARMUP) == raised, (lines, state.counter)  # raised iff not kept


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The rest of a child's output, read through the same buffered pipes that readline() used
    (communicate() reads the raw pipes and would lose lines readline() had already buffered)."""
    assert proc.stdout is not None and proc.stderr is not None
    with proc:  # closes the pipes and waits for the child
        return proc.stdout.read(), proc.stderr.read()


def test_threads_and_processes_lose_no_update(store: Path) -> None:
    per_thread, per_process = 60, 60
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "crashkit.py"), "bump", str(store), str(per_process)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    rt, db, counter = ck.open_store(store)
    with rt:
        bodies = itertools.count()  # next() is atomic under the GIL
        step = ck.make_step(db, counter, lambda: next(bodies))
        for proc in procs:  # start together: the processes are past their imports
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        returned: list[int] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for k in range(per_thread):
                    returned.append(step(k))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        thread_bodies = next(bodies)
        outputs = [_finish(proc) for proc in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
        proc_bodies = proc_returns = 0
        for out, _ in outputs:
            words = out.split()
            proc_bodies += int(words[words.index("bodies") + 1])
            proc_returns += int(words[words.index("returns") + 1])
        total = 4 * per_thread + 2 * per_process
        assert len(returned) == 4 * per_thread and proc_returns == 2 * per_process
        assert len(set(returned)) == len(returned)  # every commit got its own seq
        rt.space(ck.SPACE).file.catch_up()
        assert counter.get() == total
        assert db.read("SELECT count(*) AS c FROM events") == [{"c": total}]
        conflicts = thread_bodies + proc_bodies - total
        print(
            f"\nlost-update test: {total} calls returned, bodies ran {thread_bodies} times in "
            f"threads and {proc_bodies} in processes: {conflicts} conflicts retried"
        )
        assert conflicts >= 0


def test_readers_never_see_busy_while_a_writer_commits(store: Path) -> None:
    commits = 150
    rt, db, counter = ck.open_store(store)
    with rt:
        step = ck.make_step(db, counter)
        step(0)  # the file exists from here on
        done = threading.Event()
        errors: list[BaseException] = []
        seen: list[list[int]] = [[] for _ in range(8)]

        def read(mine: list[int]) -> None:
            try:
                while not done.is_set():
                    (row,) = db.read("SELECT count(*) AS c FROM events")
                    mine.append(row["c"])
            except BaseException as exc:
                errors.append(exc)

        with threads_running(*(functools.partial(read, mine) for mine in seen), stop=done):
            for k in range(1, commits + 1):
                step(k)
        assert errors == [], [repr(e) for e in errors]
        assert not any(isinstance(e, apsw.BusyError) for e in errors)
        for mine in seen:  # each read is a fresh snapshot: counts never go back
            assert mine and mine == sorted(mine) and mine[-1] <= commits + 1
        assert db.read("SELECT count(*) AS c FROM events") == [{"c": commits + 1}]
        print(f"\nreaders: {sum(map(len, seen))} reads during {commits} commits, no error")


# R71, R72 while another runtime has the database in use: a process killed between the space's
# COMMIT and the file's left the file behind. This runtime saw the commit in the space and kept
# reading the file without it; its re-reads now end in a repair of the file.


def _kill_between_the_commits(forks: Any, store: Path, db: Any, *, live: bool = False) -> None:
    """Two commits of a writer process, then a third killed at its first write to the
    database file's WAL: the space holds seq 3, the file stops at 2. ``live``: a live query of
    the test's runtime re-runs on the space's commit as soon as it sees it, and may have
    repaired the file (to 3) by the time it is looked at here."""
    lines, code = forks.run(
        *("writer", str(store), "--warmup", "2", *BUSY),
        *("--kill", "db-wal:write:1:before"),
    )
    assert code != 0 and "seq 2" in lines and "seq 3" not in lines, lines
    state = ck.file_state(store, db.id)
    assert state.space_seq == 3 and state.watermark in ((2, 3) if live else (2,)), state


def _until(done: Any) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not done():
        time.sleep(0.01)


def test_a_live_query_of_a_file_left_behind_by_a_killed_writer_shows_its_commit(
    forks: Any, tmp_path: Path
) -> None:
    store = _fresh(tmp_path, "s")
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space(ck.SPACE).sqlite_database(ck.DB, tables=ck.TABLES)
        q = db.query("SELECT n FROM events ORDER BY id")
        rt.settle()
        assert q.get().result == []
        _kill_between_the_commits(forks, store, db, live=True)
        _until(lambda: q.get().seq == 3)
        assert q.get().result == [{"n": 1}, {"n": 2}, {"n": 3}] and q.get().seq == 3
        assert db.read("SELECT count(*) AS c FROM events") == [{"c": 3}]
    reopened = ck.reopen(store)
    assert reopened.before.watermark == reopened.before.space_seq == 3


def test_a_file_left_behind_is_read_again_when_no_back_off_timer_can_start(
    forks: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-read after a back-off of a query whose file lagged its space: when the back-off's
    timer thread cannot start, the query is read again at once. The timer's start raised on the
    scheduler thread and the re-read ``settle()`` waits for was never finished."""

    class NoThread(threading.Timer):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(live_module.threading, "Timer", NoThread)
    store = _fresh(tmp_path, "s")
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space(ck.SPACE).sqlite_database(ck.DB, tables=ck.TABLES)
        q = db.query("SELECT n FROM events ORDER BY id")
        rt.settle()
        _kill_between_the_commits(forks, store, db, live=True)
        _until(lambda: q.get().seq == 3)
        assert rt.settle(timeout=30)
        assert q.get().result == [{"n": 1}, {"n": 2}, {"n": 3}] and q.get().seq == 3


def test_a_read_of_a_file_left_behind_by_a_killed_writer_shows_its_commit(
    forks: Any, tmp_path: Path
) -> None:
    """The same for a one-shot read, once this runtime has seen the commit in its space."""
    store = _fresh(tmp_path, "s")
    with sc.Runtime(store, poll_interval=0.01) as rt:
        db = rt.space(ck.SPACE).sqlite_database(ck.DB, tables=ck.TABLES)
        assert db.read("SELECT n FROM events") == []
        _kill_between_the_commits(forks, store, db)
        _until(lambda: db.rev == 3)  # the space's commit, caught up
        rt.settle()  # and taken in by the scheduler
        assert db.read("SELECT n FROM events ORDER BY id") == [{"n": 1}, {"n": 2}, {"n": 3}]
    reopened = ck.reopen(store)
    assert reopened.before.watermark == reopened.before.space_seq == 3


SLOW_COUNT = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000000) "
    "SELECT (SELECT count(*) FROM c) AS k, (SELECT count(*) FROM events) AS rows"
)
# About a second on a quiet machine; runtimes running it give it far longer than the default
# query_timeout, which these tests are not about (a loaded machine takes several times longer).
SLOW_TIMEOUT = 120.0


def test_settle_waits_for_a_run_owed_to_a_commit_before_it(
    forks: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run a past commit is owed keeps ``settle()`` waiting until it delivers, also when the
    query's run in flight counts for a commit made after the call (§3, R53).

    A killed writer leaves the file behind its space: the query's run for that commit lands
    older than it and is read again after a back-off. ``settle()`` is called; then a commit of
    this runtime (which repairs the file first) re-runs the query, before the back-off ends.
    When it ends, the run it wants is owed to the killed writer's commit, and the run in flight
    counts for the newer one, which settle does not wait for. ``settle()`` returned right then,
    with rows from before the killed writer's commit (the owed run was noted, not counted). The
    back-off is lengthened so that the order is certain."""
    monkeypatch.setattr(live_module, "lag_delay", lambda attempt: 0.8)
    store = _fresh(tmp_path, "s")
    with sc.Runtime(store, poll_interval=0.01, query_timeout=SLOW_TIMEOUT) as rt:
        space = rt.space(ck.SPACE)
        db = space.sqlite_database(ck.DB, tables=ck.TABLES)
        q = db.query(SLOW_COUNT)
        rt.settle()
        assert q.get().result == [{"k": 6000000, "rows": 0}]
        node = q._node()

        @sc.handler  # (its first try finds the file behind and repairs it: the retry writes)
        def add(n: int) -> None:
            db.exec("INSERT INTO events (n) VALUES (?)", [n])

        _kill_between_the_commits(forks, store, db)  # the space holds seq 3, the file seq 2
        _until(lambda: getattr(node, "_reread", False))  # the run for seq 3 landed behind
        assert getattr(node, "_reread", False)
        settled: list[bool] = []
        waiter = threading.Thread(target=lambda: settled.append(rt.settle(timeout=30)))
        waiter.start()
        time.sleep(0.05)  # the call is made (its epoch noted) before the commit below
        add(4)
        waiter.join()
        assert settled == [True]
        state = q.get()
        assert state.error is None and state.seq >= 3, state
        assert state.result is not None and state.result[0]["rows"] >= 3, state


def test_a_run_that_lands_after_a_write_elsewhere_in_its_database_is_kept(
    tmp_path: Path,
) -> None:
    """A run in flight while another table of its database is written reads rows that the
    write did not change (R51): they are delivered, not read again as if the file had lagged
    behind its space (every run of a slow query was thrown away while a writer wrote other
    tables of the database, and after twelve in a row the file was checked against its
    space under its write lock)."""
    tables = {**ck.TABLES, "other": sc.table(id="integer primary key", v="integer")}
    with sc.Runtime(tmp_path, query_timeout=SLOW_TIMEOUT) as rt:
        space = rt.space(ck.SPACE)
        db = space.sqlite_database(ck.DB, tables=tables)
        q = db.query(SLOW_COUNT)
        rt.settle()
        node = q._node()
        hub = rt.live_queries
        before = hub.reads_started
        with space.transact():
            db.exec("INSERT INTO events (n) VALUES (1)")  # re-runs the query
        _until(lambda: getattr(node, "_running", False))
        time.sleep(0.1)  # its read has begun (it takes about a second)
        with space.transact():
            db.exec("INSERT INTO other (v) VALUES (1)")  # a table it does not read
        rt.settle()
        assert q.get().result == [{"k": 6000000, "rows": 1}]
        assert hub.reads_started - before == 1  # read once, not again

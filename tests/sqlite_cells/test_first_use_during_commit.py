"""A runtime's first use of a database while another thread's commit holds the space (R40, R44,
R71): the check of the file against its space looks without the space's write lock, so a long
commit to another database of the space never holds a first read back."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import read_watermark

from .conftest import undo_last_commits_in_file

T = {"t": sc.table(v="integer")}

# A legal write that keeps its commit (and the space's write lock) until exec_timeout ends it:
# it counts forever before inserting its one row.
ENDLESS_INSERT = (
    "INSERT INTO t (v) SELECT count(*) FROM "
    "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n)"
)
EXEC_TIMEOUT = 3.0


class LongCommit:
    """A commit of ``db`` in a thread of its own, running until exec_timeout ends it; entered,
    it has taken the space's write lock."""

    def __init__(self, space: Space, db: sc.SqliteDb) -> None:
        self.space = space
        self.db = db
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            with self.space.transact():
                self.db.exec(ENDLESS_INSERT)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> LongCommit:
        self.thread.start()
        lock = self.space.file._write_lock
        deadline = time.monotonic() + 2
        while lock.acquire(blocking=False):  # not the committer's yet
            lock.release()
            assert time.monotonic() < deadline, "the long commit never took the write lock"
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


def _written_earlier(store: Path, name: str) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database(name, tables=T)
        with space.transact():
            db.exec("INSERT INTO t VALUES (1)")


def _watermark(path: Path) -> int:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return read_watermark(conn)
    finally:
        conn.close()


def _one_commit_behind(store: Path, name: str) -> None:
    """A database of two commits whose file lost the second, as after a crash between the two
    files' commits: its first read repairs it under the space's write lock (R71)."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database(name, tables=T)
        for v in (1, 2):
            with space.transact():
                db.exec("INSERT INTO t VALUES (?)", [v])
        path = db.declaration.path
    undo_last_commits_in_file(path, keep_seq=_watermark(path) - 1)


def test_a_first_read_never_waits_for_another_databases_commit(store: Path) -> None:
    _written_earlier(store, "written")
    with sc.Runtime(store, exec_timeout=EXEC_TIMEOUT, query_timeout=1) as rt:
        space = rt.space("s")
        busy = space.sqlite_database("busy", tables=T)
        with space.transact():
            busy.exec("INSERT INTO t VALUES (1)")
        never = space.sqlite_database("never", tables=T)
        written = space.sqlite_database("written", tables=T)
        fresh = space.sqlite_database("fresh", tables=T)
        with LongCommit(space, busy) as commit:
            start = time.monotonic()
            assert never.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
            assert written.read("SELECT count(*) AS n FROM t") == [{"n": 1}]
            query = fresh.query("SELECT count(*) AS n FROM t")
            while query.get().pending and time.monotonic() - start < 2:
                time.sleep(0.01)
            state = query.get()
            took = time.monotonic() - start
            during = commit.running
        assert took < 1.0, f"the first reads waited {took:.2f} s for another database's commit"
        assert during  # all three were served while the commit held the space
        assert state.error is None and state.result == [{"n": 0}]
        assert isinstance(commit.error, sc.ExecTimeout)
        # The first look pinned the file written earlier, as the locked check does (R73).
        assert rt._pinned(written.declaration.path) is not None


def test_a_first_read_that_needs_a_repair_waits_for_a_commit_no_longer_than_its_timeout(
    store: Path,
) -> None:
    """A file behind its space is repaired under the space's write lock before rows are served
    (R71); a read waits for a commit holding that lock no longer than query_timeout (R44)."""
    _one_commit_behind(store, "behind")
    with sc.Runtime(store, exec_timeout=EXEC_TIMEOUT, query_timeout=1) as rt:
        space = rt.space("s")
        busy = space.sqlite_database("busy", tables=T)
        behind = space.sqlite_database("behind", tables=T)
        with LongCommit(space, busy) as commit:
            start = time.monotonic()
            with pytest.raises(sc.QueryTimeout, match="repaired under the space's write lock"):
                behind.read("SELECT v FROM t ORDER BY v")
            took = time.monotonic() - start
            during = commit.running
        assert 0.9 < took < 2.0, f"the read ended after {took:.2f} s (query_timeout=1)"
        assert during
        # Once the commit ended, the next read repairs the file and reads both rows.
        assert behind.read("SELECT v FROM t ORDER BY v") == [{"v": 1}, {"v": 2}]


def test_a_live_query_that_waited_for_a_commit_in_vain_reads_once_the_commit_ends(
    store: Path,
) -> None:
    """A live query of a file behind its space, made while a commit of another database holds
    the space's write lock: QueryTimeout by its deadline (R44), then — though that commit writes
    nothing (it ends by ExecTimeout) and nothing writes the query's database — the repaired rows
    within a poll interval of the lock's release (R42, R71). No run starts while the lock is
    held, and none once the rows are in."""
    _one_commit_behind(store, "behind")
    with sc.Runtime(store, exec_timeout=EXEC_TIMEOUT, query_timeout=1, poll_interval=0.05) as rt:
        space = rt.space("s")
        busy = space.sqlite_database("busy", tables=T)
        behind = space.sqlite_database("behind", tables=T)
        hub = rt.live_queries
        with LongCommit(space, busy) as commit:
            start = time.monotonic()
            query = behind.query("SELECT v FROM t ORDER BY v")
            while query.get().pending and time.monotonic() - start < 2.5:
                time.sleep(0.01)
            timed_out = query.get()
            took = time.monotonic() - start
            runs = hub.reads_started
            time.sleep(1.0)  # the commit still holds the lock: no run starts meanwhile
            runs_while_held = hub.reads_started
            during = commit.running
        ended = time.monotonic()
        assert isinstance(timed_out.error, sc.QueryTimeout), timed_out
        assert "repaired under the space's write lock" in str(timed_out.error)
        assert timed_out.result is None
        assert 0.9 < took < 2.0, f"the query showed its timeout after {took:.2f} s"
        assert during
        assert runs_while_held == runs
        assert isinstance(commit.error, sc.ExecTimeout)  # nothing was committed
        while query.get().result is None and time.monotonic() - ended < 2:
            time.sleep(0.005)
        waited = time.monotonic() - ended
        state = query.get()
        assert state.error is None and state.result == [{"v": 1}, {"v": 2}], state
        assert state.seq == _watermark(behind.declaration.path)
        assert waited < 0.5, f"the rows came {waited:.2f} s after the commit ended"
        assert hub.reads_started == runs + 1
        time.sleep(0.2)  # several poll intervals: the query runs no more
        assert hub.reads_started == runs + 1
    # The thread that looked for the lock ended with the runtime.
    assert not [t for t in threading.enumerate() if t.name == "sqlite-cells-lock-waits"]


def test_a_live_query_whose_file_needs_a_check_never_holds_the_scheduler(store: Path) -> None:
    """A cheap live query runs on the scheduler thread. Its file replaced by a copy one commit
    behind (as another process's `check --repair` replaces a file) must be repaired under the
    space's write lock before it is read (R71); a commit of another database held that lock, so
    the run waited there query_timeout — and no other query or cell of the runtime, of any
    space, was told of anything meanwhile (R44). The check now runs on a worker."""
    with sc.Runtime(store, exec_timeout=EXEC_TIMEOUT, query_timeout=1) as rt:
        space, other = rt.space("s"), rt.space("other")
        busy = space.sqlite_database("busy", tables=T)
        behind = space.sqlite_database("behind", tables=T)
        trigger, seen = other.cell("trigger", default=0), other.cell("seen", default=0)
        with space.transact():
            behind.exec("INSERT INTO t VALUES (1)")
        path = behind.declaration.path
        older = store / "older.sqlite"
        src, dst = apsw.Connection(str(path)), apsw.Connection(str(older))
        with dst.backup("main", src, "main") as copy:
            copy.step()
        src.close()
        dst.close()
        with space.transact():
            behind.exec("INSERT INTO t VALUES (2)")
        query = behind.query("SELECT v FROM t ORDER BY v", react_on=trigger)
        rt.settle()
        with other.transact():
            trigger.set(1)  # a second run: its cost is known now, so it may run inline
        rt.settle()
        assert query.get().result == [{"v": 1}, {"v": 2}]
        told: list[tuple[float, int]] = []
        seen.observe().subscribe(lambda v: told.append((time.monotonic(), v)))
        rt.settle()
        older.replace(path)  # the file at the path is one commit behind its space now
        with LongCommit(space, busy) as commit:
            with other.transact():
                trigger.set(2)  # the query runs again
            with other.transact():
                seen.set(1)
            set_at = time.monotonic()
            while not any(v == 1 for _, v in told) and time.monotonic() - set_at < 3:
                time.sleep(0.005)
            during = commit.running
        late = next(at for at, v in told if v == 1) - set_at
        assert during
        assert late < 0.5, f"a cell of another space was told {late:.2f} s after its commit"
        # The query itself waited for the lock on a worker, then reads the repaired rows.
        deadline = time.monotonic() + 3
        while query.get().result != [{"v": 1}, {"v": 2}] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert query.get().error is None and query.get().result == [{"v": 1}, {"v": 2}]


HOLD_THE_SPACE = """
import sys, time, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def _space_held(store: Path, seconds: float = 3) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the write lock of the store's one space file for ``seconds``;
    entered, it holds it. Left, the holder has let go and ended."""
    (space_file,) = store.glob("space-*.sqlite")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_SPACE, str(space_file), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_first_read_that_needs_a_repair_waits_for_another_process_no_longer_than_its_timeout(
    store: Path,
) -> None:
    """Another process's commit holds the space file's write lock (its statements may run for
    as long as its own exec_timeout): the repair a first read needs waited for it with the write
    connection's 30 s, past query_timeout (6 s against 1 s). Now the read's deadline bounds that
    wait too (R44), and the next read repairs once the lock is free (R71)."""
    _one_commit_behind(store, "behind")
    with sc.Runtime(store, query_timeout=1) as rt:
        space = rt.space("s")
        behind = space.sqlite_database("behind", tables=T)
        with _space_held(store) as holder:
            start = time.monotonic()
            with pytest.raises(sc.QueryTimeout, match="another connection holds"):
                behind.read("SELECT v FROM t ORDER BY v")
            took = time.monotonic() - start
            assert holder.poll() is None  # still holding
        assert 0.9 < took < 2.0, f"the read ended after {took:.2f} s (query_timeout=1)"
        assert behind.read("SELECT v FROM t ORDER BY v") == [{"v": 1}, {"v": 2}]


def test_opening_a_space_never_waits_for_another_process_s_commit(store: Path) -> None:
    """Opening a space ran its schema and format check in a write transaction, so a runtime
    started during another process's long commit waited for all of it (7 s) before its first
    read. A file already set up is now looked at by a read, which no writer holds back
    (R40, R44)."""
    _written_earlier(store, "written")
    with _space_held(store) as holder:
        start = time.monotonic()
        with sc.Runtime(store, query_timeout=1) as rt:
            written = rt.space("s").sqlite_database("written", tables=T)
            assert written.read("SELECT v FROM t") == [{"v": 1}]
            took = time.monotonic() - start
            assert holder.poll() is None  # still holding
    assert took < 1.0, f"the first read waited {took:.2f} s for another process's commit"


def test_a_live_query_that_waited_for_another_process_in_vain_reads_once_it_lets_go(
    store: Path,
) -> None:
    """The live twin of the test above: QueryTimeout by its deadline while another process
    holds the space file's lock (R44), then the repaired rows once it lets go, though nothing
    writes the query's database (R42, R71) — it kept its QueryTimeout for good."""
    _one_commit_behind(store, "behind")
    with sc.Runtime(store, query_timeout=1, poll_interval=0.05) as rt:
        behind = rt.space("s").sqlite_database("behind", tables=T)
        with _space_held(store):
            start = time.monotonic()
            query = behind.query("SELECT v FROM t ORDER BY v")
            while query.get().pending and time.monotonic() - start < 2.5:
                time.sleep(0.01)
            timed_out = query.get()
            took = time.monotonic() - start
        released = time.monotonic()
        assert isinstance(timed_out.error, sc.QueryTimeout), timed_out
        assert "another connection holds" in str(timed_out.error)
        assert 0.9 < took < 2.0, f"the query showed its timeout after {took:.2f} s"
        while query.get().result is None and time.monotonic() - released < 3:
            time.sleep(0.01)
        state = query.get()
        assert state.error is None and state.result == [{"v": 1}, {"v": 2}], state
        assert time.monotonic() - released < 2.0  # within a query_timeout and a look


def test_live_queries_read_in_one_batch_that_waited_in_vain_all_read_once_it_lets_go(
    store: Path,
) -> None:
    """Two live queries of the database read as one batch whose read fails as a whole by its
    deadline: each is told its own QueryTimeout (the batch's error said of each statement),
    then each reads the repaired rows once the lock is free. Saying a QueryTimeout of another
    statement raised TypeError inside the runtime: the other queries of the batch stayed
    pending for good, and ``settle()`` never returned."""
    _one_commit_behind(store, "behind")
    with sc.Runtime(store, query_timeout=0.5, poll_interval=0.05) as rt:
        behind = rt.space("s").sqlite_database("behind", tables=T)
        with _space_held(store, seconds=2):
            queries = [
                behind.query("SELECT v FROM t ORDER BY v"),
                behind.query("SELECT count(*) AS n FROM t"),
                behind.query("SELECT max(v) AS m FROM t"),
            ]
            start = time.monotonic()
            while any(q.get().pending for q in queries) and time.monotonic() - start < 5:
                time.sleep(0.01)
            during = [q.get() for q in queries]
        assert all(isinstance(state.error, sc.QueryTimeout) for state in during), during
        assert [state.error.sql for state in during if state.error is not None] == [
            q.sql for q in queries
        ]
        assert rt.settle(timeout=10)
        released = time.monotonic()
        while any(q.get().result is None for q in queries) and time.monotonic() - released < 5:
            time.sleep(0.01)
        assert [q.get().result for q in queries] == [
            [{"v": 1}, {"v": 2}],
            [{"n": 2}],
            [{"m": 2}],
        ]

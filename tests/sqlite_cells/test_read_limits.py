"""Limits on reads (R44): deadlines whatever a read does, and nothing held back by a stuck one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
import sqlite_cells.read._workers as workers_module

from .conftest import MESSAGES

# One SQL function call that runs for about a second or more: a single VM step, during which
# the progress handler never fires (only the watchdog can keep the deadline).
ONE_LONG_CALL = (
    "SELECT instr(printf('%.*c', 30000000, 'a'), printf('%.*c', 2000, 'a') || 'b') AS found"
)
LOOP = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"


def test_one_long_function_call_times_out_by_its_deadline(store: Path) -> None:
    with sc.Runtime(store, query_timeout=0.2, query_workers=1) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(sc.QueryTimeout) as info:
            db.read(ONE_LONG_CALL)
        assert info.value.db_id == db.id and "query_timeout" in str(info.value)
        q = db.query(ONE_LONG_CALL)
        rt.settle()
        assert isinstance(q.get().error, sc.QueryTimeout)
        # The stuck worker was replaced: other reads still run (one worker configured).
        assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]


def test_a_stuck_query_holds_back_neither_other_queries_nor_writes(store: Path) -> None:
    with sc.Runtime(store, query_timeout=0.2, query_workers=1) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        stuck = db.query(ONE_LONG_CALL)
        count = db.query("SELECT count(*) AS n FROM messages")
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('hi')")
        rt.settle()
        assert count.get().result == [{"n": 1}]
        assert isinstance(stuck.get().error, sc.QueryTimeout)


def test_close_never_waits_for_a_stuck_query(store: Path) -> None:
    rt = sc.Runtime(store, query_timeout=30.0)
    db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
    started = threading.Event()
    real = workers_module.read_batch

    def signalling(*args: object, **kwargs: object) -> object:
        started.set()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    workers_module.read_batch = signalling  # type: ignore[assignment]
    try:
        db.query(ONE_LONG_CALL)
        assert started.wait(30)
        closer = threading.Thread(target=rt.close)
        closer.start()
        closer.join(20)  # a hang detector, not a speed bound: the call itself runs ~1–2 s
        assert not closer.is_alive()
        assert not rt.is_open
    finally:
        workers_module.read_batch = real


def test_a_loop_of_steps_times_out_through_the_progress_handler(store: Path) -> None:
    with sc.Runtime(store, query_timeout=0.2) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(sc.QueryTimeout):
            db.read(LOOP)
        assert db.read("SELECT 1 AS one") == [{"one": 1}]


def test_a_lock_wait_counts_in_the_timeout(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    writer = apsw.Connection(str(path))  # rollback-journal mode: a writer blocks readers
    writer.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    with sc.Runtime(store, query_timeout=0.3) as rt:
        source = rt.space("demo").register_disk_source(str(path))
        assert source.read("SELECT x FROM t") == [{"x": 1}]
        writer.execute("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2)")
        try:
            with pytest.raises(sc.QueryTimeout) as info:
                source.read("SELECT x FROM t")
            assert "locked" in str(info.value)
            q = source.query("SELECT count(*) AS n FROM t")
            rt.settle()
            assert isinstance(q.get().error, sc.QueryTimeout)
        finally:
            writer.execute("ROLLBACK")
        assert source.read("SELECT x FROM t") == [{"x": 1}]
    writer.close()


def test_the_length_limit_applies_to_reads(store: Path) -> None:
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(sc.QueryError) as info:
            db.read("SELECT length(zeroblob(70000000)) AS n")
        assert "too big" in str(info.value)


def test_read_rows_without_workers_keeps_the_deadline_too(store: Path) -> None:
    """The command line reads through ``read_rows`` (no query workers): same deadline (R44)."""
    from sqlite_cells.read import ReadPool, read_rows

    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with rt.space("demo").transact() as tx:
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        pool = ReadPool(1)
        try:
            with pytest.raises(sc.QueryTimeout):
                read_rows(pool, db.declaration, ONE_LONG_CALL, (), timeout=0.2)
            rows, seq = read_rows(pool, db.declaration, "SELECT body FROM messages", (), timeout=1)
            assert rows == [{"body": "x"}] and seq == tx.seq
        finally:
            pool.close()


def _thread_cpu(thread: threading.Thread) -> float | None:
    """CPU seconds ``thread`` has used (Linux: its /proc task entry), or None once it is gone."""
    try:
        fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return None
    utime, stime = fields.split()[11:13]  # fields 14 and 15 of stat(5), in clock ticks
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_during_read_rows_stops_the_read_too(store: Path) -> None:
    """Ctrl-C while the command line waits for a read: the read is interrupted as well, instead
    of running on to its deadline behind a caller that has left."""
    from sqlite_cells.read import ReadPool, read_rows

    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with rt.space("demo").transact():
            db.exec("INSERT INTO messages (body) VALUES ('x')")
        pool = ReadPool(1)
        forever = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
        )
        timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,))
        earlier = set(threading.enumerate())
        try:
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                read_rows(pool, db.declaration, forever, (), timeout=60)
            # A read still running would burn a core: measure the CPU time of the read's own
            # helper thread for a second. (Not the process's: reads abandoned by earlier tests,
            # each in one long function call, may still be finishing on a loaded machine. Not
            # is_alive(): a join interrupted by Ctrl-C can leave it saying False.)
            if not Path("/proc/self/task").is_dir():
                pytest.skip("per-thread CPU time is read from /proc")
            helpers = [
                t
                for t in threading.enumerate()
                if t not in earlier and t.name == "sqlite-cells-read"
            ]
            before = [_thread_cpu(t) for t in helpers]
            time.sleep(1.0)
            spent = [
                end - start
                for start, end in zip(before, map(_thread_cpu, helpers), strict=True)
                if start is not None and end is not None
            ]
            assert all(seconds < 0.3 for seconds in spent), spent
        finally:
            timer.cancel()
            pool.close()


def test_a_full_pool_evicts_while_a_connection_of_the_oldest_file_is_out(store: Path) -> None:
    """R40: with ``read_pool_size=1``, taking the one idle connection of file a left an empty
    entry for a; giving back b's and then c's connection while a's was still out evicted from
    that empty entry ("IndexError: pop from empty list" as a QueryError of a valid read)."""
    from sqlite_cells.read import ReadPool

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        a, b, c = (space.sqlite_database(name, tables=MESSAGES) for name in "abc")
        for db in (a, b, c):
            with space.transact():
                db.exec("INSERT INTO messages (body) VALUES ('x')")
        pool = ReadPool(1)
        try:
            with pool.connection(a.path):
                pass  # a's connection is idle now
            with pool.connection(a.path) as held:
                for db in (b, c):
                    with pool.connection(db.path) as pooled:
                        assert pooled.conn.execute("SELECT count(*) FROM messages").fetchall() == [
                            (1,)
                        ]
                assert held.conn.execute("SELECT count(*) FROM messages").fetchall() == [(1,)]
            assert pool.open_connections == 1
        finally:
            pool.close()


# A read whose rows do not fit in memory, in a process whose address space is capped.
_OUT_OF_MEMORY = """
import resource, sys
cap = 1024 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import sqlite_cells as sc
with sc.Runtime(sys.argv[1]) as rt:
    db = rt.space("s").sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
    try:
        db.read(
            "WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < 60) "
            "SELECT zeroblob(40000000) AS z FROM c"
        )
    except sc.QueryError as exc:
        print(type(exc.__cause__).__name__, "|", exc)
"""


def test_rows_that_do_not_fit_in_memory_say_what_to_do(tmp_path: Path) -> None:
    """Errors: a read whose rows do not fit in memory (60 × 40 MB, under a 1 GB cap) failed
    with `QueryError: MemoryError:` and nothing more."""
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    cause, _, said = done.stdout.partition(" | ")
    assert cause == "MemoryError", done.stdout + done.stderr
    assert "its rows do not fit in this process's memory (MemoryError): read fewer rows" in said


_FEW_FILES = """
import resource, sys
import sqlite_cells as sc
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))  # macOS's default limit
with sc.Runtime(sys.argv[1]) as rt:  # read_pool_size=64, the default
    space = rt.space("s")
    tables = {"t": sc.table(id="integer primary key", x="text")}
    dbs = [space.sqlite_database(f"d{i}", tables=tables) for i in range(80)]
    for db in dbs[:70]:
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES ('a')")
    counts = [db.read("SELECT count(*) AS n FROM t")[0]["n"] for db in dbs[:70]]
    for db in dbs[70:]:  # first writes of other databases, after the reads
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES ('b')")
    print(sum(counts), sum(db.read("SELECT count(*) AS n FROM t")[0]["n"] for db in dbs))
"""


def test_idle_readers_leave_room_for_other_files_under_a_low_limit_of_open_files(
    tmp_path: Path,
) -> None:
    """Idle pooled readers (≈ 3 descriptors each) were kept up to ``read_pool_size``: under a
    limit of 256 open files, one-shot reads of 60-odd databases took every descriptor, and
    every later read and first write of another database failed, nothing held by the user
    (R40). The pool keeps no more idle readers than the limit leaves room for."""
    done = subprocess.run(
        [sys.executable, "-c", _FEW_FILES, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["70", "80"]

"""A process that may start no more threads (the system's limit on threads or processes) once
its runtime is made: what needed a new thread says so or does without it, and the runtime keeps
its promises once threads can be had again (Errors, R44).

The child processes below make every new thread impossible for a while: each thread's stack is
made 1 GiB, and the process's address space is capped a little above what it uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import apsw

NO_THREADS = r"""
import resource, threading

def no_more_threads():
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    threading.stack_size(1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (size + (400 << 20), resource.RLIM_INFINITY))
    try:
        threading.Thread(target=lambda: None).start()
    except RuntimeError:
        return
    raise AssertionError("a thread still starts")

def threads_again():
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    threading.stack_size(0)
"""


def run_child(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", NO_THREADS + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# One SQL function call that runs for seconds: a single VM step, which only the query watchdog
# can cut short (the progress handler never fires during it).
READS_WITHOUT_A_NEW_WORKER = r"""
import json, sys, time
import sqlite_cells as sc

LOOP = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
ONE_LONG_CALL = (
    "SELECT instr(printf('%.*c', 60000000, 'a'), printf('%.*c', 4000, 'a') || 'b') AS found"
)
out = {}
with sc.Runtime(sys.argv[1], query_workers=1, query_timeout=0.2) as rt:
    db = rt.space("demo").sqlite_database("x", tables={"t": sc.table(a="integer")})
    with rt.space("demo").transact():
        db.exec("INSERT INTO t (a) VALUES (1)")
    no_more_threads()
    # The loop holds the one worker: the watchdog finds the read behind it owed an extra worker,
    # which cannot start.
    endless, quick = db.query(LOOP), db.query("SELECT a FROM t")
    rt.settle()
    out["endless"] = type(endless.get().error).__name__
    out["quick"] = quick.get().result
    threads_again()
    try:
        db.read(ONE_LONG_CALL)
        out["long"] = "returned"
    except sc.SqliteCellsError as exc:
        out["long"] = type(exc).__name__
print(json.dumps(out))
"""


def test_a_worker_that_cannot_start_leaves_the_watchdog_keeping_deadlines(tmp_path: Path) -> None:
    out = run_child(READS_WITHOUT_A_NEW_WORKER, str(tmp_path / "store"))
    assert out == {"endless": "QueryTimeout", "quick": [{"a": 1}], "long": "QueryTimeout"}


SOURCE_WITHOUT_A_WATCHER = r"""
import json, sys, threading
import apsw
import sqlite_cells as sc

source = sys.argv[2]
out = {}
rt = sc.Runtime(sys.argv[1])
handle = rt.space("demo").register_disk_source(source)
no_more_threads()
q = handle.query("SELECT x FROM t ORDER BY x")
rt.settle()
out["without"] = [q.get().pending, q.get().result]
threads_again()
rt.settle()  # the watcher starts when settle() looks at the injected files
out["watcher"] = "sqlite-cells-sources" in [t.name for t in threading.enumerate()]
other = apsw.Connection(source)
other.execute("INSERT INTO t VALUES (3)")
other.close()
rt.settle()
out["changed"] = q.get().result
try:
    rt.close()
    out["closed"] = True
except Exception as exc:
    out["closed"] = repr(exc)
print(json.dumps(out))
"""


def test_a_source_query_runs_without_its_watcher_thread_and_the_runtime_closes(
    tmp_path: Path,
) -> None:
    source = tmp_path / "reference.db"
    conn = apsw.Connection(str(source))
    conn.execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2)")
    conn.close()
    out = run_child(SOURCE_WITHOUT_A_WATCHER, str(tmp_path / "store"), str(source))
    assert out == {
        "without": [False, [{"x": 1}, {"x": 2}]],
        "watcher": True,
        "changed": [{"x": 1}, {"x": 2}, {"x": 3}],
        "closed": True,
    }


LONG_WRITE_AND_COMMAND_READ = r"""
import contextlib, io, json, sys
import sqlite_cells as sc
from sqlite_cells.cli._cli import main

out = {}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("x", tables={"t": sc.table(a="integer", b="text")})
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES (1)")
    no_more_threads()
    # A statement this long is prepared on a thread of its own before it is recorded (R44).
    long = "INSERT INTO t (a, b) VALUES (2, '" + "x" * 20_000 + "')"
    with space.transact():
        try:
            db.exec(long)
        except sc.SqliteCellsError as exc:
            said = str(exc)
            out["long"] = [type(exc).__name__, "no more threads" in said, "nothing was" in said]
        db.exec("INSERT INTO t (a) VALUES (3)")  # the transaction is still usable
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out["query"] = main(["query", sys.argv[1], "demo", "x", "SELECT a FROM t"])
    out["said"] = err.getvalue()
    threads_again()
    out["rows"] = db.read("SELECT a FROM t ORDER BY a")
print(json.dumps(out))
"""


def test_a_long_write_or_a_command_read_without_a_thread_says_so(tmp_path: Path) -> None:
    out = run_child(LONG_WRITE_AND_COMMAND_READ, str(tmp_path / "store"))
    assert out["long"] == ["ExecError", True, True]
    assert out["rows"] == [{"a": 1}, {"a": 3}]
    assert out["query"] == 1
    said = str(out["said"])
    assert "QueryError" in said and "no more threads" in said and "internal error" not in said


# The body's first three tries each meet a commit another thread makes between their read and
# their commit; the fourth holds the space's write lock from a thread of its own (§3).
ASYNC_HANDLER_AFTER_CONFLICTS = r"""
import asyncio, json, queue, sys, threading
import sqlite_cells as sc

out = {}
rt = sc.Runtime(sys.argv[1])
space = rt.space("demo")
c, o = space.cell("c", default=0), space.cell("o", default=0)
asked, done = queue.Queue(), queue.Queue()

def writer():
    while asked.get():
        with space.transact():
            c.set(c.get() + 100)
        done.put(True)

threading.Thread(target=writer, daemon=True).start()
tries = []

@sc.handler
async def bump(*, cell, into):
    tries.append(1)
    value = cell.get()
    if len(tries) <= 3:
        asked.put(True)
        done.get()
        if len(tries) == 3:
            no_more_threads()
    into.set(value + 1)

async def main():
    try:
        await bump(cell=c, into=o)
        out["first"] = "committed"
    except sc.SqliteCellsError as exc:
        out["first"] = [type(exc).__name__, "no more threads" in str(exc)]
    out["o"] = o.get()
    threads_again()
    tries.extend([1] * 3)  # (no more conflicts made)
    out["again"] = await bump(cell=c, into=o) > 0
    out["after"] = [o.get(), c.get()]

asyncio.run(main())
asked.put(False)
rt.close()
print(json.dumps(out))
"""


def test_an_async_handler_that_cannot_start_its_lock_holder_says_so(tmp_path: Path) -> None:
    out = run_child(ASYNC_HANDLER_AFTER_CONFLICTS, str(tmp_path / "store"))
    assert out == {
        "first": ["SqliteCellsError", True],
        "o": 0,
        "again": True,
        "after": [301, 300],
    }


# The loop's executor has no thread yet when the handler commits: it queues the commit and
# fails to start a thread for it, and a thread it starts later would take the queued commit.
ASYNC_HANDLER_COMMIT_WITHOUT_A_THREAD = r"""
import asyncio, json, sys
import sqlite_cells as sc

out = {}
rt = sc.Runtime(sys.argv[1])
o = rt.space("demo").cell("o", default=0)

@sc.handler
async def put(*, value):
    o.set(value)

async def main():
    no_more_threads()
    try:
        await put(value=1)
        out["first"] = "committed"
    except sc.SqliteCellsError as exc:
        out["first"] = [type(exc).__name__, "nothing of this call was committed" in str(exc)]
    except BaseException as exc:
        out["first"] = ["not a SqliteCellsError", type(exc).__name__]
    threads_again()
    await asyncio.get_running_loop().run_in_executor(None, lambda: None)  # a thread starts
    rt.settle()
    out["later"] = o.get()
    out["again"] = await put(value=2) > 0
    out["after"] = o.get()

asyncio.run(main())
rt.close()
print(json.dumps(out))
"""


def test_an_async_handler_whose_commit_finds_no_thread_commits_nothing_later(
    tmp_path: Path,
) -> None:
    out = run_child(ASYNC_HANDLER_COMMIT_WITHOUT_A_THREAD, str(tmp_path / "store"))
    assert out == {
        "first": ["SqliteCellsError", True],
        "later": 0,
        "again": True,
        "after": 2,
    }


# settled() and the close of `async with` wait on a thread of the loop's executor, which has
# none yet and can start none.
ASYNC_WAITS_WITHOUT_A_THREAD = r"""
import asyncio, json, sys
import sqlite_cells as sc

out = {}

async def main():
    async with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("demo")
        o = space.cell("o", default=0)
        with space.transact():
            o.set(1)
        no_more_threads()
        try:
            out["settled"] = await rt.settled()
        except sc.SqliteCellsError as exc:
            out["settled"] = [type(exc).__name__, "nothing was waited for" in str(exc)]
        except BaseException as exc:
            out["settled"] = ["not a SqliteCellsError", type(exc).__name__]
    out["closed"] = not rt.is_open
    threads_again()

try:
    asyncio.run(main())
except BaseException as exc:
    out["raised"] = type(exc).__name__
print(json.dumps(out))
"""


def test_settled_and_an_async_with_close_without_a_thread(tmp_path: Path) -> None:
    out = run_child(ASYNC_WAITS_WITHOUT_A_THREAD, str(tmp_path / "store"))
    assert out == {"settled": ["SqliteCellsError", True], "closed": True}


# A call too long to calculate on the writing thread (a 3,000,000-character replace()) is handed
# to a helper thread, and the process has none yet and can start none.
LONG_CALL_WITHOUT_A_HELPER = r"""
import json, sys
import sqlite_cells as sc

LONG = "INSERT INTO t (v) VALUES (length(replace(printf('%.*c', 3000000, 'a'), 'a', 'bb')))"
out = {}
with sc.Runtime(sys.argv[1], exec_timeout=1) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("x", tables={"t": sc.table(v="integer")})
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (1)")
    no_more_threads()
    try:
        with space.transact():
            db.exec(LONG)
        out["long"] = "committed"
    except sc.SqliteCellsError as exc:
        out["long"] = [type(exc).__name__, "no more threads" in str(exc)]
    out["rows"] = db.read("SELECT v FROM t ORDER BY v")
    threads_again()
    with space.transact():
        db.exec(LONG)
    out["again"] = db.read("SELECT v FROM t ORDER BY v")
print(json.dumps(out))
"""


def test_a_long_call_that_finds_no_helper_thread_says_so_at_once(tmp_path: Path) -> None:
    out = run_child(LONG_CALL_WITHOUT_A_HELPER, str(tmp_path / "store"))
    assert out == {
        "long": ["ExecError", True],
        "rows": [{"v": 1}],
        "again": [{"v": 1}, {"v": 6000000}],
    }

"""Several runtimes on one store, in real subprocesses (R53)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


WATCHER = """
import sys, threading
import sqlite_cells as sc

with sc.Runtime(sys.argv[1], poll_interval=0.01) as rt:
    cell = rt.space("demo").cell("shared", default=0)
    done = threading.Event()
    def seen(value):
        print("saw", value, flush=True)
        if value == 42:
            done.set()
    cell.observe().subscribe(seen)
    rt.settle()
    print("ready", flush=True)
    if not done.wait(30):
        sys.exit("timed out waiting for the other process's commit")
"""


def test_a_process_sees_another_process_commit(store: Path) -> None:
    watcher = _spawn(WATCHER, str(store))
    assert watcher.stdout is not None
    lines = []
    for line in watcher.stdout:
        lines.append(line.strip())
        if line.strip() == "ready":
            break
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("shared").set(42)
    # Read on through the buffered pipe that the loop above used: communicate() reads the raw
    # pipe and would lose lines already buffered.
    assert watcher.stderr is not None
    with watcher:  # closes the pipes and waits for the child
        out, err = watcher.stdout.read(), watcher.stderr.read()
    lines.extend(out.split())
    assert watcher.returncode == 0, err
    assert lines[0] == "saw 0"
    assert "42" in lines


COUNTER = """
import sys
import sqlite_cells as sc

with sc.Runtime(sys.argv[1], poll_interval=0.01) as rt:
    cell = rt.space("demo").cell("counter", default=0)
    tries = 0

    @sc.handler
    def bump():
        global tries
        tries += 1
        cell.update(lambda v: v + 1)

    for _ in range(int(sys.argv[2])):
        bump()
    print(tries, flush=True)
"""


def test_three_processes_lose_no_increment(store: Path) -> None:
    per_process = 300
    procs = [_spawn(COUNTER, str(store), str(per_process)) for _ in range(3)]
    attempts = 0
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        attempts += int(out.strip())
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert space.cell("counter").get() == 3 * per_process
        assert space.file.seen_seq == 3 * per_process
    # Each retry is a conflict that was detected and re-run rather than lost.
    assert attempts >= 3 * per_process


INSERTER = """
import sys
import sqlite_cells as sc

with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", v="text")})
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('a')")
"""


def test_settle_waits_for_a_first_run_that_read_another_process_commit(store: Path) -> None:
    """R53 and `rt.settle()`: a query created after another process committed reads that
    commit at once; its result is held until this runtime has taken the commit in (R50), and
    settle waits for that, which it does now rather than at its next poll."""
    tables = {"t": sc.table(id="integer primary key", v="text")}
    with sc.Runtime(store, poll_interval=60) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("x").set(1)  # the space file is open here before the other commit
        db = space.sqlite_database("d", tables=tables)
        writer = _spawn(INSERTER, str(store))
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        query = db.query("SELECT v FROM t")
        assert rt.settle(timeout=20)
        state = query.get()
        assert (state.pending, state.result, state.error) == (False, [{"v": "a"}], None)

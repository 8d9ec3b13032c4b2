"""Reactivity across processes, from the contract's words (R50, R51, R53, R54): another
process's commits reach subscribers here within ``poll_interval`` plus the re-run time, what
it rolled back is never seen, column-level re-runs hold for its writes, and subscribers in
two processes can answer each other."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

from ..sqlite_cells.conftest import undo_last_commits_in_file

ROOT = Path(__file__).resolve().parents[2]

TABLES = {
    "items": sc.table(
        id="integer primary key",
        name="text not null default '' unique",
        price="integer not null default 0",
        note="text",
    ),
}

# The child's side: the same declaration, then commands read line by line from stdin, each
# answered on stdout with "ok …" or "err <type>".
CHILD = """
import json, sys, threading, time
import sqlite_cells as sc

TABLES = {"items": sc.table(id="integer primary key", name="text not null default '' unique",
                            price="integer not null default 0", note="text")}
with sc.Runtime(sys.argv[1], poll_interval=float(sys.argv[2])) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("shop", tables=TABLES)
    cell = space.cell("n", default=0)
    q = db.query("SELECT count(*) AS c FROM items")
    printing = threading.Lock()
    def tell(kind, value):
        with printing:  # subscribers and the main loop print from different threads
            print(json.dumps([kind, value, time.time()]), flush=True)
    cell.observe().subscribe(lambda v: tell("cell", v))
    q.observe().subscribe(lambda s: s.result is not None and tell("rows", s.result[0]["c"]))
    pong = space.cell("pong", default=0)
    @sc.handler
    def answer(n):
        pong.set(n)
    space.cell("ping", default=0).observe().subscribe(lambda v: v and answer(v))
    rt.settle()
    tell("ready", None)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd[0] == "set":
                with space.transact():
                    cell.set(cmd[1])
            elif cmd[0] == "exec":
                with space.transact():
                    db.exec(cmd[1], cmd[2])
            elif cmd[0] == "set+exec":
                with space.transact():
                    cell.set(cmd[1])
                    db.exec(cmd[2], cmd[3])
            elif cmd[0] == "settle":
                rt.settle(10)
            tell("ok", cmd[0])
        except sc.SqliteCellsError as exc:
            tell("err", type(exc).__name__)
"""


class Child:
    """A runtime in another process on the same store, driven line by line."""

    def __init__(self, store: Path, poll_interval: float) -> None:
        # stderr goes to a file: a pipe nobody reads could fill up and stall the child
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CHILD), str(store), str(poll_interval)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.events: list[tuple[str, Any, float]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.wait(lambda: any(e[0] == "ready" for e in self.events)), self.stderr()

    def _read(self) -> None:
        import json

        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, value, at = json.loads(line)
            with self._cond:
                self.events.append((kind, value, at))
                self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def send(self, *cmd: Any) -> tuple[str, Any]:
        import json

        assert self.proc.stdin is not None
        with self._cond:
            start = len(self.events)
        self.proc.stdin.write(json.dumps(list(cmd)) + "\n")
        self.proc.stdin.flush()
        assert self.wait(lambda: any(e[0] in ("ok", "err") for e in self.events[start:])), (
            self.stderr()
        )
        with self._cond:
            kind, value, _ = next(e for e in self.events[start:] if e[0] in ("ok", "err"))
        return kind, value

    def seen(self, kind: str) -> list[Any]:
        with self._cond:
            return [e[1] for e in self.events if e[0] == kind]

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        err = self.stderr()
        self._stderr.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err


@pytest.fixture
def child(store: Path) -> Iterator[Child]:
    runner = Child(store, 0.05)
    try:
        yield runner
    finally:
        runner.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_another_process_hears_each_commit_within_the_poll_interval_and_a_rerun(
    store: Path,
) -> None:
    """R53: with ``poll_interval=0.2`` in the other process, each commit made here reaches its
    cell and query subscribers well within the interval plus a re-run (bound: 0.2 s + 3 s)."""
    child = Child(store, 0.2)
    try:
        with sc.Runtime(store, poll_interval=0.01) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("shop", tables=TABLES)
            cell = space.cell("n", default=0)
            for n in range(1, 6):
                committed = time.time()
                with space.transact():
                    cell.set(n)
                    db.exec("INSERT INTO items (name) VALUES (?)", [f"x{n}"])
                assert child.wait(lambda n=n: n in child.seen("cell") and n in child.seen("rows"))
                with child._cond:
                    times = [
                        at for kind, v, at in child.events if kind in ("cell", "rows") and v == n
                    ]
                assert max(times) - committed < 3.2, (n, max(times) - committed)
            assert child.seen("cell") == [0, 1, 2, 3, 4, 5]
            assert child.seen("rows") == [0, 1, 2, 3, 4, 5]
    finally:
        child.close()


def test_a_commit_another_process_rolled_back_is_never_seen_here(store: Path, child: Child) -> None:
    """R50 across processes: the other process writes a cell and a row that breaks a
    constraint (ExecError there); nothing of it reaches subscribers here. Its next good
    commit does."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("shop", tables=TABLES)
        cell = space.cell("n", default=0)
        q = db.query("SELECT name FROM items ORDER BY id")
        cells: list[Any] = []
        states: list[Any] = []
        cell.observe().subscribe(cells.append)
        q.observe().subscribe(states.append)
        assert rt.settle(10)
        assert child.send("exec", "INSERT INTO items (name) VALUES ('apple')", []) == ("ok", "exec")
        assert child.send("set+exec", 666, "INSERT INTO items (name) VALUES ('apple')", []) == (
            "err",
            "ExecError",
        )
        assert child.send("set", 7) == ("ok", "set")
        assert wait_for(lambda: cells[-1:] == [7])
        assert rt.settle(10)
        assert 666 not in cells
        assert cells == [0, 7]
        assert [s.result for s in states if not s.pending] == [[], [{"name": "apple"}]]


def test_another_process_s_update_of_an_unread_column_reruns_nothing_here(
    store: Path, child: Child
) -> None:
    """R51 holds for commits of another process: the write set comes from the commit's own
    changeset. A query here whose seq stays put did not re-run (R42)."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("shop", tables=TABLES)
        assert child.send("exec", "INSERT INTO items (name, price) VALUES ('a', 1), ('b', 2)", [])
        assert rt.settle(10)
        by_price = db.query("SELECT name FROM items WHERE price > 1")
        ordered = db.query("SELECT id FROM items ORDER BY price DESC")
        count = db.query("SELECT count(*) AS c FROM items")
        every = db.query("SELECT id FROM items", react_on=db)
        assert rt.settle(10)
        seqs = [q.get().seq for q in (by_price, ordered, count, every)]
        assert child.send("exec", "UPDATE items SET note = 'x'", []) == ("ok", "exec")
        assert wait_for(lambda: db.rev == 2)
        assert rt.settle(10)
        assert [q.get().seq for q in (by_price, ordered, count)] == seqs[:3]
        assert every.get().seq == seqs[3] + 1
        assert child.send("exec", "UPDATE items SET price = 5 WHERE name = 'a'", []) == (
            "ok",
            "exec",
        )
        assert wait_for(lambda: db.rev == 3)
        assert rt.settle(10)
        assert by_price.get().result == [{"name": "a"}, {"name": "b"}]
        assert ordered.get().result == [{"id": 1}, {"id": 2}]
        assert by_price.get().seq == ordered.get().seq == every.get().seq == seqs[3] + 2
        assert count.get().seq == seqs[2]


def test_subscribers_in_two_processes_answer_each_other(store: Path, child: Child) -> None:
    """A subscriber of the other process commits in answer to each commit of this one (its
    ``ping`` subscriber runs a handler writing ``pong``): every ping gets its pong, heard
    here, in order."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        ping = space.cell("ping", default=0)
        pong = space.cell("pong", default=0)
        heard: list[int] = []
        pong.observe().subscribe(heard.append)
        for n in range(1, 8):
            with space.transact():
                ping.set(n)
            assert wait_for(lambda n=n: pong.get() == n), (n, heard)
        assert rt.settle(10)
        assert heard == sorted(set(heard)) and heard[-1] == 7


def test_one_commit_of_another_process_shows_here_all_at_once(store: Path, child: Child) -> None:
    """R54 with R53: a commit of the other process that writes a cell and rows reaches a cell
    derived here from both in one step: never the new cell with the old rows or the reverse."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("shop", tables=TABLES)
        cell = space.cell("n", default=0)
        q = db.query("SELECT count(*) AS c FROM items")
        pairs: list[tuple[int, Any]] = []

        def pair(v: int, st: sc.QueryState[Any]) -> tuple[int, Any]:
            value = (v, st.result[0]["c"] if st.result else None)
            pairs.append(value)
            return value

        sc.lift(pair)(cell, q).observe().subscribe(lambda _v: None)
        assert rt.settle(10)
        for n in range(1, 9):
            assert child.send("set+exec", n, "INSERT INTO items (name) VALUES (?)", [f"x{n}"]) == (
                "ok",
                "set+exec",
            )
        assert wait_for(lambda: bool(pairs) and pairs[-1] == (8, 8)), pairs[-3:]
        assert rt.settle(10)
        assert [p for p in pairs if p[1] is not None and p[0] != p[1]] == [], pairs


WRITE_ONE = """
import sys
import sqlite_cells as sc

TABLES = {"items": sc.table(id="integer primary key", name="text not null default '' unique",
                            price="integer not null default 0", note="text")}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    with space.transact() as tx:
        space.cell("n").set(2)
        space.sqlite_database("shop", tables=TABLES).exec("INSERT INTO items (name) VALUES ('b')")
    print(tx.seq)
"""


def test_a_derived_cell_waits_while_a_query_reads_again_a_file_behind_its_space(
    store: Path,
) -> None:
    """Another process's commit reaches the space file before the database file (SQLite
    commits them one after the other; a crash between the two leaves the file behind, R71).
    A query re-run then reads the file without the commit, and reads it again until the file
    has it (here: until the runtime repairs it). Meanwhile a cell derived from the query and
    from a cell that commit wrote waits: it never pairs the commit's cell with rows the file
    did not have yet (R54, R53)."""
    with sc.Runtime(store, poll_interval=3600) as rt:  # takes commits in at settle() only
        space = rt.space("demo")
        db = space.sqlite_database("shop", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO items (name) VALUES ('a')")
        q = db.query("SELECT count(*) AS c FROM items")
        pairs: list[tuple[int, Any]] = []

        def pair(v: int, st: sc.QueryState[Any]) -> tuple[int, Any]:
            value = (v, st.result[0]["c"] if st.result else None)
            pairs.append(value)
            return value

        sc.lift(pair)(space.cell("n", default=0), q).observe().subscribe(lambda _v: None)
        assert rt.settle(10)
        assert pairs[-1] == (0, 1)
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(WRITE_ONE), str(store)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        seq = int(done.stdout)
        undo_last_commits_in_file(db.path, seq - 1)  # as if the writer died between the files
        assert rt.settle(20)
        assert q.get().result == [{"c": 2}] and q.get().seq == seq
        assert pairs[-1] == (2, 2)
        assert [p for p in pairs if p[1] is not None and p not in ((0, 1), (2, 2))] == [], pairs

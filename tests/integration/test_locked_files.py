"""Locks and other processes' commits (R44, R70, R71). A database file another process holds
locked: reads and writes wait for the lock no longer than their timeouts, say so, and decide
nothing about the file; once the lock is let go everything works as before (the holder is a real
process with SQLite's exclusive locking mode). Other processes committing all the while: a
runtime's first use of a database never times out behind them, and `check`/`inspect`/`tables`
never report a commit that is on its way from the space file to the database file."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.cli._inspect import inspect_store
from sqlite_cells.files import Action, check_store

from ..conftest import run_cli

NOTES = {"notes": sc.table(id="integer primary key", body="text")}
INSERT = "INSERT INTO notes (body) VALUES (?)"
SELECT = "SELECT body FROM notes ORDER BY id"

HOLDER = """
import sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()
conn.execute("BEGIN EXCLUSIVE")
conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
"""


@pytest.fixture
def written(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("notes", tables=NOTES)
        with space.transact():
            db.exec(INSERT, ["first"])
        return db.path


def test_a_locked_database_file_times_out_reads_and_writes_and_is_left_as_it_is(
    store: Path, written: Path
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(written)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            _while_held(store, written, holder)
        finally:
            holder.kill()


def _while_held(store: Path, written: Path, holder: subprocess.Popen[str]) -> None:
    identity = written.stat().st_ino
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    with sc.Runtime(store, query_timeout=0.3, exec_timeout=0.3) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("notes", tables=NOTES)
        c = space.cell("c", default=0)
        # The first read checks the file against its space (R71): it cannot, for now.
        with pytest.raises(sc.QueryTimeout, match="for a lock that another connection holds"):
            db.read(SELECT)
        q = db.query(SELECT)
        rt.settle(timeout=30)
        assert isinstance(q.get().error, sc.QueryTimeout)
        waited = "for a lock that another connection holds"
        with pytest.raises(sc.ExecTimeout, match=waited), space.transact():
            c.set(1)
            db.exec(INSERT, ["second"])
        assert c.get() == 0 and space.file.seen_seq == 1
        # Waiting is not damage: the file was neither moved nor rebuilt.
        assert written.stat().st_ino == identity
        assert not (store / "quarantine").exists()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(30) == 0
        assert db.read(SELECT) == [{"body": "first"}]
        with space.transact():
            c.set(1)
            db.exec(INSERT, ["second"])
        rt.settle(timeout=30)
        assert q.get().error is None
        assert q.get().result == [{"body": "first"}, {"body": "second"}]
        assert c.get() == 1


WRITER = """
import sys, time
import sqlite_cells as sc
tables = {"notes": sc.table(id="integer primary key", body="text")}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("notes", tables=tables)
    c = space.cell("c", default=0)
    print("writing", flush=True)
    end = time.monotonic() + float(sys.argv[2])
    n = 0
    while time.monotonic() < end:
        with space.transact():
            db.exec("INSERT INTO notes (body) VALUES (?)", [str(n)])
            if n % 3 == 0:
                c.set(n)
        n += 1
"""


def _writing(store: Path, seconds: float) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(store), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    return writer


def test_first_uses_never_time_out_behind_other_processes_commits(
    store: Path, written: Path
) -> None:
    """Each commit holds the locks for a millisecond or so: a first read or write with short
    timeouts must not fail behind them (the first look at the file takes no lock)."""
    with _writing(store, 30) as writer:
        try:
            for n in range(60):
                with sc.Runtime(store, query_timeout=0.2, exec_timeout=0.2) as rt:
                    space = rt.space("demo")
                    db = space.sqlite_database("notes", tables=NOTES)
                    if n % 2:
                        assert db.read("SELECT count(*) AS n FROM notes")[0]["n"] >= 1
                    else:
                        with space.transact():
                            db.exec(INSERT, [f"first use {n}"])
        finally:
            writer.kill()


def test_check_and_inspect_never_report_a_commit_on_its_way(store: Path, written: Path) -> None:
    """A commit reaches the space file first and the database file a moment later; `check`
    (without --repair) and `inspect` read both without a lock while another process commits."""
    with _writing(store, 30) as writer:
        try:
            deadline = time.monotonic() + 4
            looks = 0
            while time.monotonic() < deadline:
                outcomes = check_store(store, repair=False, verify=False)
                assert [o.action for o in outcomes] == [Action.IN_SYNC], outcomes
                info = inspect_store(store)
                assert info.findings() == []
                looks += 1
            assert looks >= 5
        finally:
            writer.kill()
    assert not (store / "quarantine").exists()


def test_tables_never_leaves_out_a_database_for_a_commit_on_its_way(
    store: Path, written: Path
) -> None:
    """`tables` compares each database with its space before listing it (R71), reading both
    without a lock: a commit between its reads of the space and of the file is no disagreement
    (it left the database out as "quarantined" or "ahead" and exited 1 in most runs)."""
    with _writing(store, 30) as writer:
        try:
            for _ in range(10):
                done = run_cli("tables", "--store", str(store), "--json")
                assert done.returncode == 0, done.stderr
                assert done.stderr == ""
                listed = json.loads(done.stdout)
                assert [(r["space"], r["database"], r["table"]) for r in listed] == [
                    ("demo", "notes", "notes")
                ]
                assert listed[0]["rows"] >= 1
        finally:
            writer.kill()
    assert not (store / "quarantine").exists()


@pytest.fixture
def two_databases(store: Path) -> Iterator[tuple[sc.Runtime, sc.SqliteDb, sc.SqliteDb]]:
    """A runtime whose databases `a` and `b` are written and read, `a`'s reader let go (a pool
    of one), so another process may take `a`'s file in SQLite's exclusive locking mode."""
    with sc.Runtime(store, read_pool_size=1, query_timeout=0.3) as rt:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=NOTES)
        b = space.sqlite_database("b", tables=NOTES)
        for name, db in (("a", a), ("b", b)):
            with space.transact():
                db.exec(INSERT, [name])
            assert db.read(SELECT) == [{"body": name}]
        yield rt, a, b


@contextlib.contextmanager
def _held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the file at ``path`` locked until a line reaches its stdin."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            yield holder
        finally:
            holder.kill()


def _let_go(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(30) == 0


def test_a_read_of_a_file_another_process_holds_says_it_stayed_locked(
    two_databases: tuple[sc.Runtime, sc.SqliteDb, sc.SqliteDb],
) -> None:
    """The read waits for the lock up to its deadline and says so; it was reported as one long
    function call (the pool's look at the file after the read waited without a deadline), and
    its worker was given up, stuck in SQLite."""
    rt, a, _ = two_databases
    with _held(a.path) as holder:
        with pytest.raises(sc.QueryTimeout) as caught:
            a.read("SELECT count(*) AS n FROM notes")
        assert str(caught.value).startswith(
            f"database {a.id}: the file stayed locked by another connection past query_timeout "
            "(0.3s): try again when its writer is done"
        )
        assert "long step" not in str(caught.value)
        assert rt.query_workers.running == 2  # none given up
        # Many at once: one waits for the lock, the others for it in the queue; all say so.
        failed: list[BaseException] = []

        def read_a() -> None:
            try:
                a.read("SELECT count(*) AS n FROM notes")
            except sc.SqliteCellsError as exc:
                failed.append(exc)

        readers = [threading.Thread(target=read_a) for _ in range(6)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(30)
        assert len(failed) == 6
        for exc in failed:
            assert isinstance(exc, sc.QueryTimeout)
            assert "the file stayed locked by another connection past query_timeout" in str(exc)
        _let_go(holder)
    assert a.read(SELECT) == [{"body": "a"}]


def test_reads_of_a_locked_file_never_hold_back_reads_of_other_databases(
    store: Path, written: Path
) -> None:
    """A burst of reads of a file another process holds: one of them waits for the lock, the
    others wait in the queue, and a read of another database is taken at once — before any
    read of the locked file ends (they end only when the holder lets go, within a timeout
    far longer than the test). They filled every worker, extras too."""
    with sc.Runtime(store, read_pool_size=1, query_timeout=20) as rt:
        a, b = _notes_let_go(rt)
        ended: list[object] = []

        def read_a() -> None:
            try:
                ended.append(a.read(SELECT))
            except sc.SqliteCellsError as exc:
                ended.append(exc)

        with _held(a.path) as holder:
            began = time.monotonic()
            readers = [threading.Thread(target=read_a) for _ in range(24)]
            for reader in readers:
                reader.start()
            while not _waiting_for_a_lock(rt, began):
                time.sleep(0.01)
            assert b.read(SELECT) == [{"body": "b"}]
            assert ended == []
            _let_go(holder)
            for reader in readers:
                reader.join(60)
        assert ended == [[{"body": "first"}]] * 24


def _notes_let_go(rt: sc.Runtime) -> tuple[sc.SqliteDb, sc.SqliteDb]:
    """The written database `notes` and a second one `b`, both read, `notes`'s reader let go
    (a pool of one), so another process may take its file in SQLite's exclusive locking
    mode."""
    space = rt.space("demo")
    a = space.sqlite_database("notes", tables=NOTES)
    b = space.sqlite_database("b", tables=NOTES)
    with space.transact():
        b.exec(INSERT, ["b"])
    assert a.read(SELECT) == [{"body": "first"}]
    assert b.read(SELECT) == [{"body": "b"}]  # a's reader let go
    return a, b


def _waiting_for_a_lock(rt: sc.Runtime, since: float) -> bool:
    """Whether a read in flight on a worker of ``rt`` has waited for a lock since ``since``."""
    with rt.query_workers._lock:
        flights = list(rt.query_workers._in_flight.values())
    return any(
        flight.tracker.pooled is not None and flight.tracker.pooled.lock_waited_at > since
        for flight in flights
    )


def test_a_live_query_runs_again_once_another_process_lets_go_of_its_file(
    store: Path, written: Path
) -> None:
    """A live query that timed out waiting for a lock on its database's file shows the rows
    once the process holding it lets go, though that process rolled back and nothing else
    wrote to the database (no commit re-runs it); it stayed failed until the next write."""
    with sc.Runtime(store, read_pool_size=1, query_timeout=0.3, poll_interval=0.05) as rt:
        a, _ = _notes_let_go(rt)
        space = rt.space("demo")
        shown = threading.Event()
        with _held(a.path) as holder:
            query = a.query(SELECT)
            rt.settle(timeout=30)
            state = query.get()
            assert state.result is None and isinstance(state.error, sc.QueryTimeout)
            assert "the file stayed locked by another connection past query_timeout" in str(
                state.error
            )
            query.observe().subscribe(
                lambda state: shown.set() if state.result is not None else None
            )
            identity = a.path.stat().st_ino
            _let_go(holder)
        assert shown.wait(30)
        assert query.get().error is None
        assert query.get().result == [{"body": "first"}]
        assert space.file.seen_seq == 2  # nothing was written meanwhile
        assert a.path.stat().st_ino == identity
        assert not (store / "quarantine").exists()


def test_live_queries_of_a_locked_file_each_time_out_by_their_own_deadline(
    store: Path, written: Path
) -> None:
    """Live queries of a file another process holds, made one after another: one read waits
    for the lock, the others wait in the queue; each reports its timeout by its own deadline
    (R44). A queued live query had no deadline there: each waited for the one before it, the
    k-th reporting after about k timeouts."""
    with sc.Runtime(store, read_pool_size=1, query_timeout=1.0) as rt:
        a, _ = _notes_let_go(rt)
        made: dict[int, float] = {}
        failed: dict[int, float] = {}
        errors: list[BaseException] = []
        queries = []
        with _held(a.path):
            for k in range(5):
                made[k] = time.monotonic()
                query = a.query(f"SELECT body, {k} AS k FROM notes")

                def seen(state: sc.QueryState[Any], k: int = k) -> None:
                    if state.error is not None and k not in failed:
                        failed[k] = time.monotonic()
                        errors.append(state.error)

                query.observe().subscribe(seen)
                queries.append(query)
                time.sleep(0.3)
            for _ in range(1000):  # a hang guard, not a time bound
                if len(failed) == 5:
                    break
                time.sleep(0.01)
        assert sorted(failed) == [0, 1, 2, 3, 4]
        late = {k: round(failed[k] - made[k], 2) for k in failed}
        assert all(took < 2.0 for took in late.values()), late  # its deadline (+1 s)
        for error in errors:
            assert isinstance(error, sc.QueryTimeout)
            assert "the file stayed locked by another connection" in str(error)

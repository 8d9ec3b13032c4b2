"""§3 and Errors on the runtime's life: a ``close()`` that Ctrl-C interrupted is done by the next
call (it found the runtime closed and left its files open and an ephemeral store in place); a
runtime whose making fails part way, by Ctrl-C or for want of a thread, leaves no thread
running, and the want of a thread is a ``SqliteCellsError``; ``space.gc()`` on a closed runtime
is ``ClosedError`` (it removed files)."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.read import _workers


def _ours() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sqlite-cells")]


def _busy_runtime() -> sc.Runtime:
    """An ephemeral runtime whose scheduler thread is asleep in a subscriber for 1 s (a close
    waits for it there)."""
    rt = sc.Runtime.ephemeral()
    space = rt.space("s")
    cell = space.cell("c", default=0)
    cell.observe().subscribe(lambda v: time.sleep(1.0) if v == 2 else None)
    with space.transact():
        cell.set(2)
    time.sleep(0.1)  # the subscriber is asleep on the scheduler thread
    return rt


def test_a_close_interrupted_by_ctrl_c_is_done_by_the_next_one() -> None:
    rt = _busy_runtime()
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        rt.close()  # waits for the scheduler thread: interrupted there
    timer.join()
    assert rt.store.exists()  # not done yet
    rt.close()
    assert not rt.store.exists()  # the ephemeral store is gone: its files were closed
    time.sleep(1.2)  # the subscriber's sleep ends
    assert _ours() == []


@pytest.mark.parametrize("raised", [KeyboardInterrupt(), RuntimeError("can't start new thread")])
def test_a_runtime_whose_threads_cannot_all_start_leaves_none(
    store: Path, monkeypatch: pytest.MonkeyPatch, raised: BaseException
) -> None:
    spawn = _workers.QueryWorkers._spawn_locked
    started = [0]

    def failing(self: Any) -> None:
        started[0] += 1
        if started[0] == 3:
            raise raised
        spawn(self)

    monkeypatch.setattr(_workers.QueryWorkers, "_spawn_locked", failing)
    expected = KeyboardInterrupt if isinstance(raised, KeyboardInterrupt) else sc.SqliteCellsError
    with pytest.raises(expected) as caught:
        sc.Runtime(store, query_workers=4)
    if expected is sc.SqliteCellsError:
        assert "could not start its threads" in str(caught.value)
    time.sleep(0.2)
    assert _ours() == []


def test_gc_on_a_closed_runtime_is_closed_error_and_removes_nothing(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("s")
    with space.transact():
        space.cell("c").set(1)
    rt.close()
    stray = store / ("cell-" + "ab" * 16 + ".sqlite")
    stray.write_bytes(b"")
    with pytest.raises(sc.ClosedError):
        space.gc()
    assert stray.exists()


def test_a_close_waiting_for_an_interrupted_one_closes_the_runtime_itself() -> None:
    """Another thread's ``close()`` waits for the one under way; when that one is interrupted,
    the waiting call takes over, and returns with the runtime closed (it returned with the
    scheduler running and the store's files open)."""
    rt = _busy_runtime()
    seen: list[object] = []

    def other() -> None:
        time.sleep(0.1)
        rt.close()
        seen.append(rt.store.exists())

    closer = threading.Thread(target=other)
    closer.start()
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        rt.close()
    timer.join()
    closer.join(10)
    assert seen == [False]  # the other call closed it: the ephemeral store is gone
    assert _ours() == []


def _close_while_a_commit_waits_for(
    rt: sc.Runtime, space: Any, locked: Path, write: Callable[[], None]
) -> BaseException | None:
    """Another process holds the write lock of the file ``locked``; ``write`` is committed on a
    thread, and ``rt`` is closed once that commit waits for the lock (close() must return at
    once). What the commit raised (None: it committed)."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"con = sqlite3.connect({str(locked)!r}, isolation_level=None)\n"
            "con.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        outcome: list[BaseException | None] = []

        def commit() -> None:
            try:
                with space.transact():
                    write()
                outcome.append(None)
            except BaseException as exc:  # handed to the caller
                outcome.append(exc)

        waiting = threading.Thread(target=commit)
        waiting.start()
        deadline = time.monotonic() + 10
        while not space.file._leading and time.monotonic() < deadline:  # (committing)
            time.sleep(0.01)
        time.sleep(0.3)  # (in the wait for the lock by now)
        started = time.monotonic()
        rt.close()
        assert time.monotonic() - started < 5
        waiting.join(10)
        assert len(outcome) == 1, outcome
        return outcome[0]
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_close_ends_a_commit_waiting_for_another_process_s_lock(tmp_path: Path) -> None:
    """§3, R44: another process holds the space file's write lock; a commit waits for it (up to
    30 s), and ``close()`` waited as long — then the commit was made, after close() had begun.
    The wait is given up when close() begins: the commit is a ClosedError, nothing written,
    and close() returns at once."""
    rt = sc.Runtime(tmp_path)
    space = rt.space("s")
    cell = space.cell("c", default=0)
    with space.transact():
        cell.set(1)
    (space_file,) = tmp_path.glob("space-*.sqlite")
    raised = _close_while_a_commit_waits_for(rt, space, space_file, lambda: cell.set(2))
    assert isinstance(raised, sc.ClosedError), raised
    assert "waited for the space file's write lock" in str(raised)
    with sc.Runtime(tmp_path) as again:
        assert again.space("s").cell("c").get() == 1


def test_close_ends_a_commit_waiting_for_a_database_file_lock_as_closed(tmp_path: Path) -> None:
    """§3, R44: another process holds a database file's write lock; a commit writing that
    database waits for it (up to exec_timeout), and ``close()`` gives the wait up. The commit
    was told ExecTimeout ("waited exec_timeout=...s"), which it had not: it is a ClosedError,
    nothing written, and close() returns at once."""
    tables = {"t": sc.table(id="integer primary key", v="integer")}
    rt = sc.Runtime(tmp_path, exec_timeout=30)
    space = rt.space("s")
    db = space.sqlite_database("d", tables=tables)
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (1)")
    raised = _close_while_a_commit_waits_for(
        rt, space, db.path, lambda: db.exec("INSERT INTO t (v) VALUES (2)")
    )
    assert isinstance(raised, sc.ClosedError) and not isinstance(raised, sc.ExecTimeout), raised
    assert "closed while this transaction waited" in str(raised)
    with sc.Runtime(tmp_path) as again:
        db = again.space("s").sqlite_database("d", tables=tables)
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": 1}]


_TABLES = {"t": sc.table(id="integer primary key", v="integer")}


def _open_files() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _dropped_runtime() -> tuple[weakref.ref[sc.Runtime], Path]:
    """A runtime that read a cell and a database (its space file, a pooled reader and the
    query workers in use), then dropped unclosed: only a weak reference to it is returned.
    (It commits nothing: a commit wakes its poller, which holds it while it looks.)"""
    rt = sc.Runtime.ephemeral(poll_interval=3600)
    with sc.Runtime(rt.store) as writer:
        space = writer.space("s")
        db = space.sqlite_database("d", tables=_TABLES)
        with space.transact():
            space.cell("c").set(1)
            db.exec("INSERT INTO t (v) VALUES (1)")
    space = rt.space("s")
    assert space.cell("c").get() == 1
    assert space.sqlite_database("d", tables=_TABLES).read("SELECT v FROM t") == [{"v": 1}]
    return weakref.ref(rt), rt.store


def test_a_runtime_dropped_unclosed_is_closed_its_threads_and_files_too() -> None:
    """§3: a runtime nobody refers to any more (a notebook cell run again rebinding ``rt``)
    stayed for the life of the process — its threads held it (the poller ran one of its
    methods, the read pool another), so it was never collected: ~5 threads and its open files
    per runtime made. Now its threads hold it weakly: it is collected and closed as close()
    would, its threads end, its files close, and an ephemeral store is removed."""
    threads, files = set(threading.enumerate()), _open_files()
    held, store = _dropped_runtime()
    gc.collect()
    assert held() is None
    for thread in set(threading.enumerate()) - threads:
        thread.join()  # (the close runs on a thread of its own; each thread of it ends)
    assert _ours() == [t.name for t in threads if t.name.startswith("sqlite-cells")]
    assert _open_files() <= files
    assert not store.exists()


def test_a_dropped_runtime_with_a_subscriber_stays_and_delivers(tmp_path: Path) -> None:
    """§3: what the program still reacts with keeps its runtime: a subscriber's runtime is not
    collected with the variable that held it, and goes on delivering other runtimes' commits."""
    seen: list[object] = []

    def subscribed() -> weakref.ref[sc.Runtime]:
        rt = sc.Runtime(tmp_path)
        rt.space("s").cell("c", default=0).observe().subscribe(seen.append)
        rt.settle()
        return weakref.ref(rt)

    held = subscribed()
    gc.collect()
    rt = held()
    assert rt is not None and rt.is_open
    with sc.Runtime(tmp_path) as other:
        space = other.space("s")
        with space.transact():
            space.cell("c").set(5)
    rt.settle()
    assert seen == [0, 5]
    rt.close()


def _closed_while_armed(rt: sc.Runtime, write: Callable[[], None]) -> BaseException | None:
    """Commit ``write`` (in a ``transact()`` block of space "s") on a thread, close ``rt``
    once the write watchdog watches a statement of it (it runs), and return what the commit
    raised (None: it committed)."""
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            with rt.space("s").transact():
                write()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    writing = threading.Thread(target=commit)
    writing.start()
    watches = rt._sqlite_participant.watchdog._watches  # type: ignore[attr-defined]
    while not any(watch._token for watch in watches):  # (until the statement runs)
        assert writing.is_alive()
        time.sleep(0.01)
    rt.close()
    writing.join()
    (raised,) = outcome
    return raised


def test_close_stops_a_running_write_statement_as_closed(tmp_path: Path) -> None:
    """§3, R44: ``close()`` while a commit runs a long write statement waited for it as long as
    ``exec_timeout`` (30 s), and the commit was then told ExecTimeout, "ran past
    exec_timeout=…", which it had not. The write watchdog now stops the statements running when
    the runtime closes: the commit fails with ClosedError, nothing of it written (its cell
    write neither), and close() returns once it has rolled back."""
    rt = sc.Runtime(tmp_path, exec_timeout=120)
    space = rt.space("s")
    cell = space.cell("c", default=0)
    db = space.sqlite_database("d", tables=_TABLES)
    with space.transact():
        cell.set(1)
        db.exec("INSERT INTO t (v) VALUES (1)")
    endless = (
        "INSERT INTO t (v) WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r "
        "WHERE x < 1000000000000) SELECT x FROM r"
    )

    def write() -> None:
        cell.set(2)
        db.exec(endless)

    raised = _closed_while_armed(rt, write)
    assert isinstance(raised, sc.ClosedError) and not isinstance(raised, sc.ExecTimeout), raised
    assert "closed while this transaction ran the statement" in str(raised)
    assert "nothing of it was written" in str(raised)
    with sc.Runtime(tmp_path) as again:
        space = again.space("s")
        assert space.cell("c").get() == 1
        assert space.sqlite_database("d", tables=_TABLES).read("SELECT v FROM t") == [{"v": 1}]


def test_close_stops_a_running_additive_migration_as_closed(tmp_path: Path) -> None:
    """§3, R13, R44: as a running write statement (above), the additive migration of a first
    write under a new declaration — here a column whose CHECK SQLite verifies on every stored
    row — was told "adding the declared columns ran past exec_timeout=120s" when close()
    stopped it at once. It is a ClosedError now, nothing written, the old schema kept."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=_TABLES)
        with space.transact():
            db.exec(
                "INSERT INTO t (v) WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                "FROM r WHERE x < 2000) SELECT x FROM r"
            )
    slow_check = "check (length(replace(hex(zeroblob(3000000)), '0', 'ab')) > 0)"
    wider = {
        "t": sc.table(id="integer primary key", v="integer", w=f"integer default 0 {slow_check}")
    }
    rt = sc.Runtime(tmp_path, exec_timeout=120)
    space = rt.space("s")
    db = space.sqlite_database("d", tables=wider)

    def write() -> None:
        db.exec("INSERT INTO t (v) VALUES (0)")

    raised = _closed_while_armed(rt, write)
    assert isinstance(raised, sc.ClosedError) and not isinstance(raised, sc.ExecTimeout), raised
    assert "closed while this transaction ran the additive migration" in str(raised)
    with sc.Runtime(tmp_path) as again:
        db = again.space("s").sqlite_database("d", tables=_TABLES)
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 2000}]
        # (Read as declared before: the column w was never added to the file.)
        with contextlib.closing(sqlite3.connect(db.path)) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(t)")]
        assert columns == ["id", "v"]


def test_close_stops_a_running_migrate_callback_as_closed(tmp_path: Path) -> None:
    """§3, R14, R44: as a running write statement (above), a statement of a ``migrate``
    callback that ``close()`` stopped made the commit a MigrationError caused by an
    ExecTimeout, "the migration ran past exec_timeout=120s", a second after it began. It is a
    ClosedError now; nothing of the migration committed, and the next runtime migrates."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=_TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1)")
    endless = (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r "
        "WHERE x < 1000000000000) SELECT count(*) FROM r"
    )

    def slow(conn: Any, from_version: int) -> None:
        conn.execute(endless)

    rt = sc.Runtime(tmp_path, exec_timeout=120)
    space = rt.space("s")
    db = space.sqlite_database("d", tables=_TABLES, version=2, migrate=slow)

    def write() -> None:
        db.exec("INSERT INTO t (v) VALUES (2)")

    raised = _closed_while_armed(rt, write)
    assert isinstance(raised, sc.ClosedError), raised
    assert not isinstance(raised, sc.MigrationError), raised
    assert "closed while this transaction ran its migrate callback (to version 2)" in str(raised)
    migrated: list[int] = []
    with sc.Runtime(tmp_path) as again:
        space = again.space("s")
        db = space.sqlite_database(
            "d", tables=_TABLES, version=2, migrate=lambda conn, v: migrated.append(v)
        )
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (3)")
        assert migrated == [1]
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": 1}, {"v": 3}]

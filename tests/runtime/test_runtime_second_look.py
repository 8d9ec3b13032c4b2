"""The runtime's life cycle, second look (SPEC §3, R2, Errors): a derived cell of a cell that
cannot be read says so; `close()` from inside a transaction, a handler, or while a handler runs
in another thread commits nothing and says the runtime closed; an ephemeral store is removed on
close and on an error inside `with`; `settle(timeout=…)` and `settled()` from several tasks;
database files are named after their ids, beside their space's file."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import StoredCellError

TABLES = {"t": sc.table(id="integer primary key", v="text")}
ROOT = Path(__file__).resolve().parents[2]


def _stored_in_a_new_runtime(store: Path, name: str = "c") -> object:
    with sc.Runtime(store) as rt:
        return rt.space("demo").cell(name).get()


# -- a derived cell of a cell that cannot be read ------------------------------------------------


def test_a_derived_cell_of_a_cell_that_cannot_be_read_raises_its_error(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set([1])
        cell_id = space.cell("c").id
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))  # another program stores a value that is not JSON
    try:
        conn.execute("UPDATE _cf_cells SET value = x'5b22ff225d' WHERE id = ?", (cell_id,))
    finally:
        conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        doubled = sc.derive(c, lambda v: v * 2)
        summed = sc.lift(lambda a, b: [a, b])(c, 1)
        seen: list[object] = []
        doubled.observe().subscribe(seen.append, on_error=seen.append)
        for derived in (doubled, summed):
            with pytest.raises(StoredCellError, match=cell_id):  # never None taken for its value
                derived.get()
        rt.settle()  # (a subscriber is told on the scheduler's thread)
        assert len(seen) == 1 and isinstance(seen[0], StoredCellError)
        with space.transact():  # written whole again: the derived cells recover
            c.set([2])
        rt.settle()
        assert (doubled.get(), summed.get()) == ([2, 2], [[2], 1])
        later: list[object] = []  # (the first subscription ended with its on_error)
        doubled.observe().subscribe(later.append)
        rt.settle()
        assert later == [[2, 2]]


# -- close() in the middle of things -------------------------------------------------------------


def test_a_derived_cell_of_a_derived_cell_that_failed_fails_too_and_recovers(
    rt: sc.Runtime,
) -> None:
    """A derived cell whose input is a derived cell that fails at a commit: it failed with that
    error too (it kept a value computed from the input's value before that commit, and its
    subscribers heard nothing), and recovers with it."""
    space = rt.space("demo")
    a = space.cell("a", default=1)
    r = sc.derive(a, lambda v: 10 // (v - 2))  # fails when a == 2
    down = sc.derive(r, lambda v: ("from r", v))
    seen: list[Any] = []
    down.observe().subscribe(on_next=seen.append, on_error=lambda e: seen.append(type(e)))
    assert rt.settle(5)
    with space.transact():
        a.set(2)
    assert rt.settle(5)
    with pytest.raises(ZeroDivisionError):
        r.get()
    with pytest.raises(ZeroDivisionError):
        down.get()
    assert seen == [("from r", -10), ZeroDivisionError]
    with space.transact():
        a.set(7)
    assert rt.settle(5)
    assert down.get() == ("from r", 2)
    later: list[Any] = []
    down.observe().subscribe(later.append)
    assert rt.settle(5)
    assert later == [("from r", 2)]


def test_close_inside_a_transaction_commits_nothing_and_says_closed(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with pytest.raises(sc.ClosedError, match="closed"), space.transact():
        c.set(1)
        rt.close()
    assert not list(store.glob("space-*.sqlite"))  # nothing was committed, no file was made
    assert _stored_in_a_new_runtime(store) is None


def test_close_inside_a_handler_commits_nothing_and_is_not_retried(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    runs: list[int] = []

    @sc.handler
    def bump(*, counter: sc.Cell) -> None:
        runs.append(1)
        counter.set(counter.get() + 1)
        rt.close()

    with pytest.raises(sc.ClosedError):
        bump(counter=c)
    assert runs == [1]
    assert _stored_in_a_new_runtime(store) is None


def test_close_while_a_handler_runs_in_another_thread_neither_waits_nor_commits(
    store: Path,
) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    inside, go_on = threading.Event(), threading.Event()
    outcome: list[object] = []

    @sc.handler
    def slow(*, counter: sc.Cell) -> None:
        counter.set(counter.get() + 1)
        inside.set()
        assert go_on.wait(30)

    def run() -> None:
        try:
            outcome.append(slow(counter=c))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert inside.wait(30)
    rt.close()  # returns while the body still runs: close waits for no user code
    assert worker.is_alive()
    go_on.set()
    worker.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], sc.ClosedError)
    assert _stored_in_a_new_runtime(store) is None


def test_after_close_every_call_that_needs_the_store_says_closed(store: Path) -> None:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    never_read = space.cell("never")
    db = space.sqlite_database("x", tables=TABLES)
    with space.transact():
        c.set(1)
        db.exec("INSERT INTO t (v) VALUES ('a')")
    link = c.link_str()

    @sc.handler
    def bump(*, counter: sc.Cell) -> None:
        counter.set(2)

    @sc.pattern
    def nothing() -> None:
        return None

    space.run(nothing, key="ran")  # before: a run of the same key after close is no answer
    rt.close()
    rt.close()  # a second close is a no-op
    calls = {
        "rt.space": lambda: rt.space("other"),
        "rt.cell_from_link": lambda: rt.cell_from_link(link),
        "decode_cf_link": lambda: sc.decode_cf_link(link, rt),
        "a cell not read before": never_read.get,
        "space.run": lambda: space.run(nothing, key="k"),
        "space.run of a piece run before": lambda: space.run(nothing, key="ran"),
        "handler": lambda: bump(counter=c),
        "db.read": lambda: db.read("SELECT * FROM t"),
        "db.query": lambda: db.query("SELECT * FROM t"),
        "sqlite_query": lambda: sc.sqlite_query(db=db, sql="SELECT * FROM t"),
        "derive": lambda: sc.derive(c, lambda v: v).get(),
        "settle": lambda: rt.settle(timeout=1),
        # Writes: a transaction could not help, so the closed runtime is what is said.
        "set": lambda: c.set(2),
        "update": lambda: c.update(lambda v: v + 1),
        "set at a path": lambda: c.key("a").set(2),
        "db.exec": lambda: db.exec("INSERT INTO t (v) VALUES ('b')"),
        "db.exec_many": lambda: db.exec_many("INSERT INTO t (v) VALUES (?)", [["b"]]),
        "db.drop": db.drop,
    }
    for what, call in calls.items():
        with pytest.raises(sc.ClosedError, match="closed") as info:
            call()
        assert "open a new Runtime" in str(info.value), what
    assert _stored_in_a_new_runtime(store) == 1


def test_a_write_of_a_closed_runtime_inside_another_runtimes_transaction_says_closed(
    store: Path,
) -> None:
    # A notebook cell run again opens a new runtime on the store; a handler defined before
    # still holds the closed runtime's cells and database.
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    db = space.sqlite_database("x", tables=TABLES)
    with space.transact():
        c.set(1)
        db.exec("INSERT INTO t (v) VALUES ('a')")
    rt.close()
    with sc.Runtime(store) as rt2:
        fresh = rt2.space("demo").cell("c")
        calls = {
            "set": lambda: c.set(2),
            "update": lambda: c.update(lambda v: v + 1),
            "set at a path": lambda: c.key("a").set(2),
            "db.exec": lambda: db.exec("INSERT INTO t VALUES (?, ?)", [None, "b"]),
            "db.exec with columns": lambda: db.exec("INSERT INTO t (v) VALUES (?)", ["b"]),
            "db.exec_many": lambda: db.exec_many("INSERT INTO t VALUES (?, ?)", [[None, "b"]]),
            "db.drop": db.drop,
        }
        for what, call in calls.items():
            for bound in (False, True):
                with pytest.raises(sc.ClosedError) as info, rt2.space("demo").transact():
                    if bound:
                        fresh.update(lambda v: v + 1)
                    call()
                assert "is closed (its runtime was closed): open a new Runtime" in str(
                    info.value
                ), (what, bound)
        assert fresh.get() == 1  # nothing of the refused blocks committed
    assert _stored_in_a_new_runtime(store) == 1


# -- Runtime.ephemeral() -------------------------------------------------------------------------


def _fill(rt: sc.Runtime) -> Path:
    space = rt.space("demo")
    db = space.sqlite_database("x", tables=TABLES)
    with space.transact():
        space.cell("c").set(1)
        db.exec("INSERT INTO t (v) VALUES ('a')")
    assert db.path.exists()
    return db.path.parent


def test_an_ephemeral_store_is_removed_on_close_with_its_database_files() -> None:
    rt = sc.Runtime.ephemeral()
    directory = _fill(rt)
    rt.close()
    assert not directory.exists()


def test_an_ephemeral_store_is_removed_when_the_with_block_raises_and_the_error_passes() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), sc.Runtime.ephemeral() as rt:
        directory = _fill(rt)
        raise Boom
    assert not directory.exists()


_LEFT_OPEN = """
import sqlite_cells as sc
kept_open = sc.Runtime.ephemeral()
space = kept_open.space("demo")
db = space.sqlite_database("x", tables={"t": sc.table(v="text")})
with space.transact():
    space.cell("c").set(1)
    db.exec("INSERT INTO t (v) VALUES ('a')")
q = db.query("SELECT v FROM t")
kept_open.settle()
closed = sc.Runtime.ephemeral()
closed.close()
print(kept_open.store)
print(closed.store)
"""


def test_an_ephemeral_store_left_open_is_removed_when_the_process_exits(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LEFT_OPEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing said at exit
    kept_open, closed = (Path(line) for line in done.stdout.splitlines())
    assert kept_open.name.startswith("sqlite-cells-") and closed.name.startswith("sqlite-cells-")
    assert not kept_open.exists() and not closed.exists()


_IN_WORKERS = """
import multiprocessing, os, sys
import sqlite_cells as sc

def work(queue):
    rt = sc.Runtime.ephemeral()  # left open, as a worker's function may
    space = rt.space("s")
    with space.transact():
        space.cell("c").set(1)
    queue.put(str(rt.store))

if __name__ == "__main__":
    parents = sc.Runtime.ephemeral()  # a parent's own: its forked workers leave it alone
    for method in ("fork", "forkserver"):
        context = multiprocessing.get_context(method)
        queue = context.Queue()
        process = context.Process(target=work, args=(queue,))
        process.start()
        store = queue.get(timeout=60)
        process.join(60)
        print(method, process.exitcode, os.path.exists(store), parents.store.exists())
    parents.close()
"""


def test_an_ephemeral_store_left_open_in_a_multiprocessing_worker_is_removed_when_it_ends(
    tmp_path: Path,
) -> None:
    """A ``fork`` or ``forkserver`` worker ends with ``os._exit``, past ``atexit``: its
    ephemeral store left open stayed behind."""
    script = tmp_path / "program.py"
    script.write_text(_IN_WORKERS)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["fork 0 False True", "forkserver 0 False True"]


def test_an_ephemeral_runtime_whose_temporary_directory_is_gone_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    monkeypatch.setattr(tempfile, "tempdir", str(gone))  # (what $TMPDIR gave, removed since)
    with pytest.raises(sc.SqliteCellsError) as info:
        sc.Runtime.ephemeral()
    assert isinstance(info.value, ValueError)
    assert str(gone) in str(info.value) and "$TMPDIR" in str(info.value)
    assert not gone.exists()
    # No usable temporary directory at all (a read-only container): Python's own search fails
    # again when asked where it looked; said all the same.
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(gone)])
    with pytest.raises(sc.SqliteCellsError, match="no temporary directory") as info:
        sc.Runtime.ephemeral()
    assert isinstance(info.value, ValueError) and "$TMPDIR" in str(info.value)
    monkeypatch.setattr(tempfile, "tempdir", str(gone) + "\x00x")  # no path holds a NUL
    with pytest.raises(sc.SqliteCellsError, match="temporary directory") as info:
        sc.Runtime.ephemeral()
    assert isinstance(info.value, ValueError)


def test_two_ephemeral_runtimes_have_stores_of_their_own() -> None:
    with sc.Runtime.ephemeral() as a, sc.Runtime.ephemeral() as b:
        assert _fill(a) != _fill(b)
        assert a.space("demo").cell("c").get() == b.space("demo").cell("c").get() == 1


# -- settle ----------------------------------------------------------------------------------------


def test_settle_past_its_timeout_returns_false_then_true_once_delivered(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    release = threading.Event()
    seen: list[int] = []

    def slow(v: int) -> int:
        if v == 1:
            assert release.wait(30)
        return v

    derived = sc.derive(c, slow)
    derived.observe().subscribe(seen.append)
    assert rt.settle(timeout=30) is True
    with space.transact():
        c.set(1)
    assert rt.settle(timeout=0.05) is False  # the re-run is still going
    release.set()
    assert rt.settle(timeout=30) is True
    assert derived.get() == 1 and seen[-1] == 1


def test_settled_awaited_by_several_tasks_all_see_every_delivery(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    derived = sc.derive(c, lambda v: v + 1)

    async def main() -> list[bool]:
        with space.transact():
            c.set(41)
        return await asyncio.gather(*(rt.settled() for _ in range(5)))

    assert asyncio.run(main()) == [True] * 5
    assert derived.get() == 42


# -- R2: the database file's name and place ------------------------------------------------------


def test_each_database_file_is_named_after_its_id_beside_its_space_file(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        first = space.sqlite_database("one", tables=TABLES)
        second = space.sqlite_database("two", tables=TABLES)
        assert not first.path.exists()  # named before anything is written (R7)
        with space.transact():
            first.exec("INSERT INTO t (v) VALUES ('a')")
        with space.transact():
            second.exec("INSERT INTO t (v) VALUES ('b')")
        paths = (first.path, second.path)
        (space_file,) = store.glob("space-*.sqlite")
        for path in paths:
            assert re.fullmatch(r"cell-[0-9a-z]+\.sqlite", path.name), path.name
            assert path.parent == space_file.parent == store.resolve()
            assert path.is_file()
        assert first.path != second.path
        assert first.get()["id"] == first.id and first.get()["rev"] == 1
    with sc.Runtime(store) as rt:  # the same ids name the same files
        space = rt.space("demo")
        assert space.sqlite_database("one", tables=TABLES).path == paths[0]
        assert space.sqlite_database("two", tables=TABLES).path == paths[1]


# -- handlers ------------------------------------------------------------------------------------


def test_a_handler_returns_each_commits_seq_and_none_when_it_commits_nothing(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    runs: list[str] = []

    @sc.handler
    def bump(*, counter: sc.Cell) -> None:
        runs.append("bump")
        counter.update(lambda v: v + 1)

    @sc.handler
    def look(*, counter: sc.Cell) -> None:
        runs.append("look")
        counter.get()

    @sc.handler
    def fail(*, counter: sc.Cell) -> None:
        runs.append("fail")
        counter.set(100)
        raise KeyError("not a conflict")

    assert [bump(counter=c), bump(counter=c)] == [1, 2]
    assert look(counter=c) is None
    assert space.file.seen_seq == 2  # reading commits nothing and takes no seq
    with pytest.raises(KeyError):
        fail(counter=c)  # the body's own error passes as it is, tried once, nothing committed
    with space.transact():
        assert bump(counter=c) is None  # joins the open transaction, which commits it
        assert c.get() == 3
    assert space.file.seen_seq == 3 and c.get() == 3
    assert runs == ["bump", "bump", "look", "fail", "bump"]


def test_close_completes_a_subscription_whose_first_value_is_still_queued(store: Path) -> None:
    """`Runtime.close()` calls `on_completed` of every subscriber (§3). A subscription made
    while the scheduler thread was busy waits in its queue for its first value: closing then
    completed the others only, and this one either got its value after close began or nothing
    at all — and `Query.states()` waited for ever. Now it is completed, once, with no value."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("n", default=0)
        release = threading.Event()
        busy = sc.derive(c, lambda v: (v and release.wait(10), v)[1])
        events: list[str] = []
        busy.observe().subscribe(lambda v: None, on_completed=lambda: events.append("busy"))
        rt.settle(timeout=10)
        with space.transact():
            c.set(1)  # the derived cell's re-run now holds the scheduler thread
        time.sleep(0.05)
        c.observe().subscribe(
            lambda v: events.append(f"value {v}"), on_completed=lambda: events.append("done")
        )

        async def states() -> str:
            try:
                async for _ in space.sqlite_database("d", tables={}).query("VALUES (1)").states():
                    pass
            except sc.ClosedError:
                return "closed"
            return "ended"

        async def main() -> str:
            task = asyncio.create_task(states())
            await asyncio.sleep(0.05)  # subscribed, its first state queued
            threading.Timer(0.2, release.set).start()
            await asyncio.to_thread(rt.close)
            return await asyncio.wait_for(task, 10)

        assert asyncio.run(main()) == "closed"
    time.sleep(0.1)
    assert sorted(events) == ["busy", "done"], events

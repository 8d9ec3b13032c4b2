"""R44 for a write whose steps are each one long linear call (``randomblob`` of 60 MB): the
progress handler, called every 1,000 VM steps at loop points, never comes, so the write
watchdog (``write/_watchdog.py``) interrupts the statement ``GRACE`` past its deadline. The op
fails with ``ExecTimeout``, nothing is written, the space goes on committing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.write import _fold as fold_module
from sqlite_cells.write import _links as links_module
from sqlite_cells.write._watchdog import GRACE, IDLE_EXIT, LINGER, Watch, Watchdog

TABLES = {"t": sc.table(id="integer primary key", n="integer")}
TIMEOUT = 0.5
BLOB = "length(randomblob(60000000))"  # one VM step of ~0.2 s
# 20 rows of one such step: ~4 s, and ~200 VM steps, so the progress handler is never called.
ROWS = (
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20) "
    f"INSERT INTO t (n) SELECT {BLOB} FROM c"
)


@pytest.fixture
def rt(store: Path) -> Iterator[sc.Runtime]:
    with sc.Runtime(store, exec_timeout=TIMEOUT, poll_interval=0.01) as runtime:
        yield runtime


def _watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-cells-write-watchdog"]


def test_rows_of_one_long_call_time_out_by_the_deadline_and_let_the_space_go(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    other = space.cell("other", default=0)
    db = space.sqlite_database("d", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO t (n) VALUES (0)")
    waited: list[float] = []

    def cell_writer() -> None:
        time.sleep(0.2)  # the long write holds the space's lock by then
        began = time.monotonic()
        with space.transact():
            other.set(1)
        waited.append(time.monotonic() - began)

    writer = threading.Thread(target=cell_writer)
    writer.start()
    began = time.monotonic()
    with pytest.raises(sc.ExecTimeout) as info, space.transact():
        db.exec(ROWS)
    took = time.monotonic() - began
    writer.join(10)
    assert isinstance(info.value, sc.ExecError) and isinstance(info.value, TimeoutError)
    assert info.value.db_id == db.id and info.value.sql == ROWS
    assert "exec_timeout=0.5" in str(info.value)
    assert isinstance(info.value.__cause__, apsw.InterruptError)
    assert took < TIMEOUT + 1.0, took  # 3-4 s before the watchdog
    assert len(waited) == 1 and waited[0] < TIMEOUT + 1.0, waited
    assert other.get() == 1
    assert db.read("SELECT n FROM t") == [{"n": 0}] and db.rev == 1  # nothing written
    with space.transact():  # the next write of the space commits
        db.exec("INSERT INTO t (n) VALUES (?)", [2])
    assert db.read("SELECT n FROM t ORDER BY id") == [{"n": 0}, {"n": 2}] and db.rev == 2


def test_an_exec_many_of_long_rows_stops_at_the_row_after_the_interrupt(rt: sc.Runtime) -> None:
    """``exec_many`` starts its statement again for each row, and SQLite forgets an interrupt
    when a statement starts: rows that are each one long step ran to the last one (13–22 s
    under a 0.5 s exec_timeout, the space's write lock held). No row starts after the
    watchdog interrupted the statement."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    db = space.sqlite_database("d", tables=TABLES)
    began = time.monotonic()
    with pytest.raises(sc.ExecTimeout) as info, space.transact():
        c.set(1)
        db.exec_many(
            f"INSERT INTO t (n) VALUES ({BLOB.replace('60000000', '?')})", [[60_000_000]] * 40
        )
    took = time.monotonic() - began
    assert isinstance(info.value.__cause__, apsw.InterruptError)
    assert took < TIMEOUT + 1.0, took  # ≈ 8 s of rows
    assert c.get() == 0 and db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
    assert db.rev == 0


@pytest.mark.parametrize("form", ["SELECT", "VALUES"])
def test_one_row_of_many_long_calls_fails_and_the_next_commit_works(
    rt: sc.Runtime, form: str
) -> None:
    """SQLite looks for an interrupt at no point inside one row's expressions: this statement
    runs to its row's end (~1.5 s) and fails only then. In the VALUES form it even finishes
    without a loop point after the interrupt, so the interrupt is still pending when the
    statement returns: the op fails all the same, and the statements that roll it back and
    the next commits are not interrupted."""
    space = rt.space("demo")
    counter = space.cell("counter", default=0)
    db = space.sqlite_database("d", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO t (n) VALUES (0)")
    expr = " + ".join([BLOB] * 8)
    sql = (
        f"INSERT INTO t (n) SELECT {expr}"
        if form == "SELECT"
        else f"INSERT INTO t (n) VALUES ({expr})"
    )
    with pytest.raises(sc.ExecTimeout) as info, space.transact():
        counter.set(1)
        db.exec("INSERT INTO t (n) VALUES (1)")
        db.exec(sql)
    assert isinstance(info.value, sc.ExecError) and info.value.sql == sql
    assert isinstance(info.value.__cause__, apsw.InterruptError)
    assert counter.get() == 0 and db.read("SELECT n FROM t") == [{"n": 0}] and db.rev == 1
    for i in range(2, 5):
        with space.transact():
            counter.set(i)
            db.exec("INSERT INTO t (n) SELECT count(*) FROM t")  # a loop point: not interrupted
    assert counter.get() == 4 and db.rev == 4
    assert [r["n"] for r in db.read("SELECT n FROM t ORDER BY id")] == [0, 1, 2, 3]


def test_a_fast_write_loop_is_unaffected(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    for i in range(300):
        with space.transact():
            db.exec("INSERT INTO t (n) VALUES (?)", [i])
    assert db.rev == 300
    assert db.read("SELECT count(*) AS c, sum(n) AS s FROM t") == [{"c": 300, "s": 44850}]
    assert len(_watchdogs()) <= 1  # one thread for the runtime, not one per write


def test_the_watchdog_thread_ends_with_the_runtime(store: Path) -> None:
    before = set(_watchdogs())
    with sc.Runtime(store, exec_timeout=TIMEOUT) as runtime:
        space = runtime.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (n) VALUES (1)")
        assert len(set(_watchdogs()) - before) == 1
    assert set(_watchdogs()) - before == set()


def _spin(conn: apsw.Connection) -> None:
    """A statement that runs for seconds unless interrupted (bounded: a test that fails must
    not hang)."""
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 30000000) "
        "SELECT max(i) FROM c"
    )


def test_an_interrupt_only_ever_hits_the_armed_statement() -> None:
    conn = apsw.Connection(":memory:")
    dog, watch = Watchdog(), Watch()
    try:
        # Armed and overdue: the statement is interrupted about GRACE past its deadline.
        began = time.monotonic()
        token = watch.arm(conn, began + 0.2, dog)
        with pytest.raises(apsw.InterruptError):
            _spin(conn)
        assert watch.disarm(token) is True
        # (well before the statement's own end, seconds later; room for a loaded host)
        assert 0.2 + GRACE <= time.monotonic() - began < 0.2 + GRACE + 1.5
        # Disarmed at once, overdue: no interrupt comes after disarm, whatever runs next.
        token = watch.arm(conn, time.monotonic() - 10, dog)
        assert watch.disarm(token) is False
        time.sleep(3 * GRACE)
        assert conn.execute("SELECT count(*) FROM (VALUES (1), (2), (3))").get == 3
        # Not overdue: it runs to its end.
        token = watch.arm(conn, time.monotonic() + 60, dog)
        assert (
            conn.execute(
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000) "
                "SELECT max(i) FROM c"
            ).get
            == 300000
        )
        assert watch.disarm(token) is False
    finally:
        dog.close()
        conn.close()


def test_close_stops_a_statement_armed_an_instant_before_sqlite_starts_it() -> None:
    """close() interrupts the armed statements (the runtime closes: they fail, nothing of
    their commit written), and again while one stays armed: SQLite forgets an interrupt that
    comes while no statement of the connection is active, so one armed and not yet started
    when close() came ran on to its deadline (a commit's exec_timeout: close() waited 120 s
    for a migrate callback's statement)."""
    conn = apsw.Connection(":memory:")
    # The statement's own stop, far later: only seen if close() did not stop it.
    stopped_by_itself: list[bool] = []
    conn.set_progress_handler(lambda: stopped_by_itself.append(True) or True, 100_000_000)
    dog, watch = Watchdog(), Watch()
    token = watch.arm(conn, time.monotonic() + 600, dog)
    closer = threading.Thread(target=dog.close)
    try:
        closer.start()
        while not watch.fired:  # close() interrupted once: no statement was active
            time.sleep(0.001)
        with pytest.raises(apsw.InterruptError):
            _spin(conn)
        assert watch.disarm(token) is True
        assert stopped_by_itself == []
        closer.join()
        # Armed after close(): refused before it runs, nothing left armed.
        with pytest.raises(apsw.InterruptError, match="closed before the statement ran"):
            watch.arm(conn, time.monotonic() + 600, dog)
        assert conn.execute("SELECT 1").get == 1 and watch.stop() is False
    finally:
        closer.join()
        conn.close()


def test_the_idle_watchdog_sleeps_then_ends_and_an_arm_starts_it_again() -> None:
    conn = apsw.Connection(":memory:")
    dog, watch = Watchdog(), Watch()
    before = set(_watchdogs())
    try:
        watch.disarm(watch.arm(conn, time.monotonic() + 60, dog))
        assert len(set(_watchdogs()) - before) == 1 and not dog.sleeping
        time.sleep(LINGER + 0.3)
        assert dog.sleeping and len(set(_watchdogs()) - before) == 1  # asleep, not ended
        time.sleep(IDLE_EXIT + 0.3)
        assert set(_watchdogs()) - before == set()  # ended
        token = watch.arm(conn, time.monotonic() - 1, dog)  # overdue at once
        with pytest.raises(apsw.InterruptError):
            _spin(conn)
        assert watch.disarm(token) is True
    finally:
        dog.close()
        conn.close()
    assert set(_watchdogs()) - before == set()


@pytest.mark.parametrize("started", [True, False], ids=["after-start", "before-start"])
def test_a_ctrl_c_while_the_watchdog_starts_leaves_nothing_armed(
    store: Path, monkeypatch: pytest.MonkeyPatch, started: bool
) -> None:
    """A SIGINT delivered while a write starts the watchdog's thread (``Thread.start`` waits for
    it) raised out of ``arm`` with the statement armed and the write's deadline set: once past
    that deadline, unrelated cell commits failed as "interrupted" (the progress handler), and
    ``close()`` raised a raw ``RuntimeError`` (joining a thread that never started) or printed
    apsw's traceback (an interrupt of the closed connection). Nothing is left armed now."""
    start = threading.Thread.start
    fired: list[bool] = []

    def interrupted_start(thread: threading.Thread) -> None:
        if thread.name != "sqlite-cells-write-watchdog" or fired:
            start(thread)
            return
        fired.append(True)
        if started:
            start(thread)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    rt = sc.Runtime(store, exec_timeout=0.2)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    db = space.sqlite_database("d", tables=TABLES)
    with pytest.raises(KeyboardInterrupt), space.transact():
        c.set(1)
        db.exec("INSERT INTO t (n) VALUES (1)")
    assert fired == [True]
    assert (c.get(), db.rev, db.read("SELECT count(*) AS k FROM t")) == (0, 0, [{"k": 0}])
    time.sleep(0.2 + GRACE + 0.2)  # past the interrupted write's deadline
    for n in range(1, 101):
        with space.transact():
            c.set(n)
    with space.transact():
        db.exec("INSERT INTO t (n) VALUES (2)")
    assert (c.get(), db.read("SELECT n FROM t")) == (100, [{"n": 2}])
    rt.close()
    rt.close()
    assert not [t for t in _watchdogs() if t.is_alive()]


def test_a_link_check_past_the_deadline_is_an_exec_timeout_and_writes_nothing(
    rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R44: the links a write stores are checked after its statement, holding the space's
    write lock (400,000 links under exec_timeout=1 held it 2.4 s). The check looks at the op's
    deadline as it goes: past it, the write is an ExecTimeout and nothing is written. (The
    clock the check reads is moved past the deadline here: the check's own time depends on the
    machine.)"""
    space = rt.space("s")
    db = space.sqlite_database(
        "d", tables={"t": sc.table(id="integer primary key", l_cf_link=sc.cf_link())}
    )
    insert = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) "
        f"INSERT INTO t (l_cf_link) SELECT '{space.cell('a').link_str()}' FROM c"
    )

    class Late:
        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + 3600

    monkeypatch.setattr(links_module, "time", Late)
    with pytest.raises(sc.ExecTimeout, match="check of the links") as raised, space.transact():
        db.exec(insert)
    assert isinstance(raised.value, sc.ExecError) and f"exec_timeout={TIMEOUT}s" in str(
        raised.value
    )
    assert db.rev == 0 and db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
    monkeypatch.undo()
    with space.transact():
        db.exec(insert)
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 3000}]


def test_an_op_whose_changes_take_past_the_deadline_to_record_is_an_exec_timeout(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R44: the op, not only its statement, holds the space's write lock exec_timeout at most.
    An UPDATE of 400,000 rows ran in 0.24 s under exec_timeout=0.5, but SQLite's session
    extension then read every changed row into the changeset (one short statement per row,
    which no deadline interrupts), and the changeset was written twice more: the op committed
    after 1.3 s. Past its deadline once the changes are recorded, the op is an ExecTimeout and
    nothing is written. (The clock the op reads is moved past the deadline as the capture
    returns: how long a capture takes depends on the machine.)"""
    tables = {"t": sc.table(id="integer primary key", v="integer")}
    with sc.Runtime(store, exec_timeout=TIMEOUT) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1), (2)")
        late = [0.0]
        real_capture = fold_module.capture

        def slow_capture(*args: Any, **kwargs: Any) -> Any:
            changeset = real_capture(*args, **kwargs)
            late[0] = 3600.0  # as if building the changeset had taken an hour
            return changeset

        class Clock:
            @staticmethod
            def monotonic() -> float:
                return time.monotonic() + late[0]

        monkeypatch.setattr(fold_module, "capture", slow_capture)
        monkeypatch.setattr(fold_module, "time", Clock)
        with (
            pytest.raises(sc.ExecTimeout, match="recording its changes") as raised,
            space.transact(),
        ):
            db.exec("UPDATE t SET v = v + 1")
        assert f"exec_timeout={TIMEOUT}s" in str(raised.value)
        monkeypatch.undo()
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": 1}, {"v": 2}] and db.rev == 1
        with space.transact():
            db.exec("UPDATE t SET v = v + 1")
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": 2}, {"v": 3}] and db.rev == 2


def test_a_ctrl_c_right_after_the_gate_is_entered_leaves_it_open_for_the_next_write(
    rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGINT landing inside the write connection's gate.enter(), or right after it and before
    the statement's try begins, left the gate entered: every later db.exec of the space failed
    with "this connection is already running a user statement" until the runtime closed (seen
    with SIGINTs sent at random moments of a write loop). The gate is left whatever stops the
    statement now."""
    from sqlite_cells.sql._authorizer import Gate

    enter = Gate.enter
    fired: list[bool] = []

    def interrupted_enter(gate: Gate, *args: Any, **kwargs: Any) -> None:
        enter(gate, *args, **kwargs)
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(Gate, "enter", interrupted_enter)
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    with pytest.raises(KeyboardInterrupt), space.transact():
        db.exec("INSERT INTO t (n) VALUES (1)")
    assert fired == [True]
    for n in (2, 3):
        with space.transact():
            db.exec("INSERT INTO t (n) VALUES (?)", [n])
    assert db.read("SELECT n FROM t ORDER BY n") == [{"n": 2}, {"n": 3}]

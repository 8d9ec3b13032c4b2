"""Group commit: transactions of one space that wait while another commit runs are committed
together, in one SQLite transaction (one COMMIT, one fsync), each as its own commit."""

from __future__ import annotations

import _thread
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells import runtime
from sqlite_cells.codec import Op
from sqlite_cells.runtime import Space
from sqlite_cells.runtime import _group as group_module
from sqlite_cells.runtime import _space_file as space_file_module

from ..conftest import in_thread

Body = Callable[[], None]


def commit_queued(space: Space, bodies: list[Body]) -> tuple[list[Any], list[str]]:
    """Run each body in its own transaction on its own thread, all queued behind the space's
    write lock (in this order) before any commits; return each outcome (seq or exception) and
    the statements run on the write connection meanwhile."""
    outcomes: list[Any] = [None] * len(bodies)
    statements: list[str] = []

    def run(i: int, body: Body) -> None:
        try:
            with space.transact() as tx:
                body()
            outcomes[i] = tx.seq
        except Exception as exc:
            outcomes[i] = exc

    threads = []
    with space.file.write_connection() as conn:
        for i, body in enumerate(bodies):
            thread = threading.Thread(target=run, args=(i, body))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 10
            while len(space.file._waiting) < i + 1:  # wait until it is queued, in order
                assert time.monotonic() < deadline, "a committer never queued"
                time.sleep(0.001)

        def trace(_cursor: apsw.Cursor, sql: str, _bindings: object) -> bool:
            statements.append(sql)
            return True

        conn.exec_trace = trace
    for thread in threads:
        thread.join()
    with space.file.write_connection() as conn:
        conn.exec_trace = None
    return outcomes, statements


def test_waiting_commits_share_one_transaction(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    cells = [space.cell(f"c{i}", default=0) for i in range(5)]
    seen: list[object] = []
    cells[2].observe().subscribe(seen.append)
    rt.settle()
    bodies: list[Body] = [lambda c=c, i=i: c.set(i + 1) for i, c in enumerate(cells)]
    outcomes, statements = commit_queued(space, bodies)
    assert outcomes == [1, 2, 3, 4, 5]
    assert statements.count("COMMIT") == 1 and statements.count("BEGIN") == 1
    assert [c.get() for c in cells] == [1, 2, 3, 4, 5]
    rt.settle()
    assert seen == [0, 3]
    with space.file.write_connection() as conn:
        assert [s for (s,) in conn.execute("SELECT seq FROM _cf_log ORDER BY seq")] == [
            1,
            2,
            3,
            4,
            5,
        ]


def test_a_failing_member_fails_alone(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    x, y, z = space.cell("x", default=0), space.cell("y", default=0), space.cell("z", default=0)

    def read_x_write_y() -> None:
        y.set(x.get() + 1)  # read x at rev 0; the member before it writes x

    outcomes, statements = commit_queued(
        space, [lambda: x.set(10), read_x_write_y, lambda: z.set(2)]
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], sc.ConflictError)
    assert list(outcomes[1].cell_ids) == [x.id]
    assert (x.get(), y.get(), z.get()) == (10, 0, 2)
    assert statements.count("COMMIT") == 1


def test_handlers_still_retry_conflicts_under_load(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def bump() -> None:
        c.update(lambda v: v + 1)

    def work() -> None:
        for _ in range(25):
            bump()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get() == 100
    with space.file.write_connection() as conn:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM _cf_log ORDER BY seq")]
    assert seqs == list(range(1, 101))


class _HeldPrepare:
    """A participant whose ``prepare`` for target ``"held"`` waits until released: a commit
    that stays inside the space's write lock for as long as a test likes."""

    kind = "held"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def prepare(self, conn: apsw.Connection, ops: Any) -> None:
        if ops[0].target == "held":
            self.entered.set()
            assert self.release.wait(10)

    def cell_writes(self, conn: apsw.Connection, ops: Any, writes: Any) -> dict[str, bytes]:
        return {}

    def committed(self, ops: Any, seq: int) -> None:
        pass

    def apply(self, conn: apsw.Connection, op: Any, seq: int) -> Op:
        return Op(op.kind, op.target)

    def commit_failed(self, ops: Any, exc: BaseException) -> None:
        pass


def test_a_member_committed_by_another_goes_on_while_the_next_leader_commits(
    tmp_path: Path,
) -> None:
    """A transaction committed in another thread's batch returns at once: it does not wait
    behind the next leader's whole commit (here one that stays in ``prepare``)."""
    with runtime.Runtime(tmp_path) as rt:
        held = _HeldPrepare()
        rt.register_participant(held)
        space = rt.space("demo")
        a, b = space.cell("a", default=0), space.cell("b", default=0)

        # Queued in the order a, held, b. The first member's op has another target than the
        # held one, so the held commit cannot join the first batch (see take_batch): a and b
        # commit together, then the held commit leads a batch of its own.
        def write_a(tx: runtime.Transaction) -> None:
            a.set(1)
            tx.add_op(space.file, runtime.PendingOp("held", "free", None))

        def write_b(tx: runtime.Transaction) -> None:
            b.set(2)

        def write_held(tx: runtime.Transaction) -> None:
            tx.add_op(space.file, runtime.PendingOp("held", "held", None))

        done: dict[str, int | None] = {}

        def run(name: str, body: Callable[[runtime.Transaction], None]) -> None:
            with space.transact() as tx:
                body(tx)
            done[name] = tx.seq

        threads: dict[str, threading.Thread] = {}
        with space.file.write_connection():
            for name, body in (("a", write_a), ("held", write_held), ("b", write_b)):
                threads[name] = threading.Thread(target=run, args=(name, body))
                threads[name].start()
                deadline = time.monotonic() + 10
                while len(space.file._waiting) < len(threads):
                    assert time.monotonic() < deadline, "a committer never queued"
                    time.sleep(0.001)
        try:
            assert held.entered.wait(10)
            threads["b"].join(10)
            assert not threads["b"].is_alive()
            assert done == {"a": 1, "b": 2}
        finally:
            held.release.set()
            for thread in threads.values():
                thread.join(10)
        assert done == {"a": 1, "b": 2, "held": 3}
        assert (a.get(), b.get()) == (1, 2)


def test_a_commit_inside_an_exclusive_transaction_never_waits_for_a_queued_leader(
    rt: sc.Runtime,
) -> None:
    """A handler that keeps conflicting commits under the space's write lock (``exclusive``);
    another thread that queued meanwhile waits for that lock as the next leader. The commit
    inside must go ahead on its own, not wait for that leader (who waits for it)."""
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    seqs: dict[str, int | None] = {}

    def commit(name: str, cell: sc.Cell, value: int) -> None:
        with space.transact() as tx:
            cell.set(value)
        seqs[name] = tx.seq

    def inside() -> None:
        with space.file.exclusive():
            other = threading.Thread(target=commit, args=("other", b, 2), daemon=True)
            other.start()
            deadline = time.monotonic() + 10
            while len(space.file._waiting) < 1:
                assert time.monotonic() < deadline, "the other committer never queued"
                time.sleep(0.001)
            commit("inside", a, 1)
        other.join(10)

    thread = threading.Thread(target=inside, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the commit inside the exclusive transaction waited forever"
    assert seqs == {"inside": 1, "other": 2}
    assert (a.get(), b.get()) == (1, 2)


def test_transactions_queued_when_the_runtime_closes_get_closed_error(tmp_path: Path) -> None:
    """Committers waiting for the write lock when the runtime closes are told ``ClosedError``
    (no raw apsw error about a closed connection, no "try again")."""
    rt = sc.Runtime(tmp_path)
    space = rt.space("demo")
    cells = [space.cell(f"c{i}", default=0) for i in range(3)]
    with space.transact():
        cells[0].set(1)  # the file exists and is open
    outcomes: list[object] = [None] * len(cells)

    def run(i: int) -> None:
        try:
            with space.transact():
                cells[i].set(i + 10)
            outcomes[i] = "committed"
        except Exception as exc:
            outcomes[i] = exc

    threads = []
    with space.file.write_connection():
        for i in range(len(cells)):
            thread = threading.Thread(target=run, args=(i,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 10
            while len(space.file._waiting) < i + 1:
                assert time.monotonic() < deadline, "a committer never queued"
                time.sleep(0.001)
        rt.close()
    for thread in threads:
        thread.join(10)
    assert all(isinstance(o, sc.ClosedError) for o in outcomes), outcomes
    assert "was closed" in str(outcomes[0])
    with sc.Runtime(tmp_path) as again:
        assert [again.space("demo").cell(f"c{i}").get() for i in range(3)] == [1, None, None]


def test_a_handler_whose_exclusive_body_joins_another_handler_of_the_space_ends(
    rt: sc.Runtime,
) -> None:
    """A sync handler keeps conflicting because its body runs another handler (on a thread it
    joins) that writes the cell it read; from its 4th try its body holds the space's write lock
    (``exclusive``). The inner handler's commit must not wait for that lock for good: it gives
    up with ``ConflictError`` once the body has held the lock past the patience, and retries;
    after its tries it raises, the body goes on and its commit lands."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    inner_outcomes: list[object] = []

    @sc.handler
    def inner(value: int) -> None:
        c.set(value)

    def run_inner(value: int) -> None:
        try:
            inner_outcomes.append(inner(value))
        except Exception as exc:
            inner_outcomes.append(exc)

    @sc.handler
    def outer() -> None:
        seen = c.get()
        helper = threading.Thread(target=run_inner, args=(seen + 100,))
        helper.start()
        helper.join()
        c.set(seen + 1)

    result = in_thread(outer, 60, "a commit waited for good for the write lock a body held")
    # Three inner commits landed (each making the outer try conflict); the 4th inner call met
    # the lock held by the outer body and gave up after its tries.
    assert [type(o) for o in inner_outcomes] == [int, int, int, sc.ConflictError]
    assert "write lock" in str(inner_outcomes[3])
    assert result == 4 and c.get() == 301


def _hold_exclusive(space: Any, body: Callable[[], None]) -> threading.Thread:
    """A thread that runs ``body`` inside ``space.file.exclusive()`` (a sync handler's try
    that kept conflicting), started once it holds the write lock."""
    inside = threading.Event()

    def run() -> None:
        with space.file.exclusive():
            inside.set()
            body()

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(10)
    return thread


def test_a_blind_write_waits_out_a_body_busy_with_its_own_work(rt: sc.Runtime) -> None:
    """§2: a transaction conflicts when a cell it read changed. One that read nothing, behind
    a body that holds the write lock while it runs a slow call of its own (0.8 s, past the
    0.25 s after which a body found waiting on another thread is given up on), waits for it
    and commits (it raised ConflictError, and a plain transaction does not retry)."""
    space = rt.space("demo")
    holder = _hold_exclusive(space, lambda: time.sleep(0.8))
    began = time.monotonic()
    with space.transact():
        space.cell("other").set(123)
    waited = time.monotonic() - began
    holder.join(10)
    assert space.cell("other").get() == 123
    assert waited >= 0.5  # it did wait for the body (not a test of speed)


def _poll_a_queue(seconds: float) -> None:
    """A loop busy with queue calls of its own (seen in queue.py at many a look, never in one
    wait: each call a new one)."""
    box: queue.Queue[int] = queue.Queue()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        box.put(1)
        box.get_nowait()


@pytest.mark.parametrize("work", ["db.read", "polling a queue", "waiting on an event"])
def test_a_blind_write_waits_out_a_body_reading_or_polling(store: Path, work: str) -> None:
    """A body whose own work waits on threads that end by themselves — a `db.read` waiting for
    its query worker, a loop of queue calls, a wait on an event (of its own thread pool, say) —
    is not joining the committer's thread: the blind write waits and commits (each was taken
    for a wait on the committer and refused after 0.25 s). (The read takes about a second on a
    quiet machine: its query_timeout is far longer, as the test is not about it.)"""
    with sc.Runtime(store, poll_interval=0.01, query_timeout=120.0) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(x="integer")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        slow = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) "
            "SELECT count(*) AS n FROM c"
        )
        bodies = {
            "db.read": lambda: db.read(slow),
            "polling a queue": lambda: _poll_a_queue(0.8),
            "waiting on an event": lambda: threading.Event().wait(0.8),
        }
        body = bodies[work]
        holder = _hold_exclusive(space, body)
        with space.transact():
            space.cell("other").set(123)
        holder.join(120)
        assert space.cell("other").get() == 123


def test_a_commit_whose_thread_the_body_joins_gives_up(rt: sc.Runtime) -> None:
    """The other side: a body holding the write lock that joins the thread making this commit
    waits for this very commit: the committer gives up with ConflictError once the body has
    held the lock for the patience, writing nothing, and the body goes on."""
    space = rt.space("demo")
    outcome: list[object] = []

    def commit() -> None:
        try:
            with space.transact():
                space.cell("other").set(1)
            outcome.append("committed")
        except sc.SqliteCellsError as exc:
            outcome.append(exc)

    committer = threading.Thread(target=commit)

    def body() -> None:
        committer.start()
        committer.join(20)

    _hold_exclusive(space, body).join(30)
    (raised,) = outcome
    assert isinstance(raised, sc.ConflictError), raised
    assert "joins the thread making this commit" in str(raised)
    assert space.cell("other").get() is None


def test_committers_queued_behind_another_give_up_when_the_body_joins_them(
    rt: sc.Runtime,
) -> None:
    """Committers queue behind the one that waits for the write lock (group commit): a body
    that joins one of them was seen only when it joined that leading one, so the others —
    blind writers queued before it too — waited 30 s and then failed. Now the committer the
    body joins gives up, wherever it is in the queue, and the blind writers wait and commit."""
    space = rt.space("demo")
    release = threading.Event()
    outcome: dict[str, object] = {}

    def commit(name: str) -> None:
        try:
            with space.transact():
                space.cell(name).set(1)
            outcome[name] = "committed"
        except sc.SqliteCellsError as exc:
            outcome[name] = exc

    blind = [threading.Thread(target=commit, args=(f"b{i}",)) for i in range(3)]
    joined = [threading.Thread(target=commit, args=(f"j{i}",)) for i in range(2)]

    def body() -> None:
        release.wait(20)  # the blind writers queue first
        for thread in joined:
            thread.start()
        for thread in joined:
            thread.join(20)

    holder = _hold_exclusive(space, body)
    for thread in blind:
        thread.start()
    time.sleep(0.1)
    release.set()
    holder.join(30)
    for thread in blind:
        thread.join(30)
    assert all(isinstance(outcome[f"j{i}"], sc.ConflictError) for i in range(2)), outcome
    assert all(outcome[f"b{i}"] == "committed" for i in range(3)), outcome


def test_a_body_joining_the_first_commit_of_its_space_ends(rt: sc.Runtime) -> None:
    """The same wait in a space no commit has written yet: the inner commit gave up with its
    ConflictError, then waited for good for the write lock (held by the body joining it) to
    remove the file its failed first commit had made. It does not wait now: the body's block
    removes an unused file as it ends."""
    fresh, other = rt.space("s"), rt.space("t")
    spoiled = other.cell("c", default=0)
    with other.transact():
        spoiled.set(1)
    tries: list[int] = []
    inner: list[str] = []

    def spoil() -> None:
        with other.transact():
            spoiled.set(spoiled.get() + 1)

    def first_commit() -> None:
        try:
            with fresh.transact():
                fresh.cell("first").set(1)
            inner.append("ok")
        except sc.SqliteCellsError as exc:
            inner.append(type(exc).__name__)

    @sc.handler
    def body() -> None:
        tries.append(1)
        seen = spoiled.get()  # a read of another space, changed under the first three tries
        helper = threading.Thread(target=spoil if len(tries) <= 3 else first_commit)
        helper.start()
        helper.join()
        fresh.cell("out").set(seen)

    result = in_thread(body, 60, "a failed first commit waited for good for the write lock")
    assert result == 1 and len(tries) == 4 and inner == ["ConflictError"]
    assert fresh.cell("out").get() == 4 and fresh.cell("first").get() is None


def test_a_commit_waiting_out_another_runtime_s_write_lock_says_so(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another runtime holds the space's write lock (a handler's exclusive try) past SQLite's
    busy timeout (made 0.3 s here): the commit fails saying whose lock it waited for, with
    nothing written."""
    monkeypatch.setattr(space_file_module, "BUSY_TIMEOUT_MS", 300)
    with sc.Runtime(store) as holder, sc.Runtime(store) as waiter:
        held = holder.space("demo")
        with held.transact():
            held.cell("c").set(1)
        space = waiter.space("demo")
        with (
            held.file.exclusive(),
            pytest.raises(sc.SqliteCellsError) as caught,
            space.transact(),
        ):
            space.cell("c").set(2)
        assert type(caught.value) is sc.SqliteCellsError
        assert "write lock" in str(caught.value) and "another runtime or process" in str(
            caught.value
        )
        assert space.cell("c").get() == 1


def test_a_commit_interrupted_while_it_waits_is_never_committed_later(rt: sc.Runtime) -> None:
    """Ctrl-C (KeyboardInterrupt) reaches a commit while it waits for the space's write lock:
    the caller is told it was interrupted, and the transaction leaves the queue of waiting
    commits, so the next committer does not commit it behind the caller's back."""
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    held = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        with space.file.write_connection():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(10)

    def interrupt_once_queued() -> None:
        deadline = time.monotonic() + 10
        while not space.file._waiting and time.monotonic() < deadline:
            time.sleep(0.001)
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt_once_queued)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt), space.transact():
            a.set(1)
    finally:
        interrupter.join()
        release.set()
        holder.join()
    assert not space.file._waiting
    with space.transact() as tx:
        b.set(2)
    assert tx.seq == 1 and (a.get(), b.get()) == (0, 2)


def test_an_interrupt_reaching_a_commit_another_thread_has_taken_waits_for_its_outcome(
    rt: sc.Runtime,
) -> None:
    """Ctrl-C reaches a commit waiting for its turn after another thread, leading, has taken its
    transaction into its batch: the transaction commits with that batch all the same, so the
    caller is told of the interrupt only once that commit is decided and taken in. It was told
    at once: the write it was told was interrupted landed a moment later, behind its back (it
    read the value before it), and its next transaction failed with a ConflictError against it."""
    import signal
    import sys

    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    main = threading.get_ident()
    read, held = threading.Event(), threading.Event()
    sent: list[bool] = []

    def main_waits_for_the_outcome() -> bool:
        frame = sys._current_frames().get(main)
        while frame is not None:
            if frame.f_code.co_name == "_await_outcome":
                return True
            frame = frame.f_back
        return False

    def trace(_cursor: apsw.Cursor, _sql: str, _bindings: object) -> bool:
        if not sent:  # the leader's first statement: the batch (b's and a's) is taken
            sent.append(True)
            signal.pthread_kill(main, signal.SIGINT)
            deadline = time.monotonic() + 10
            while not (read.is_set() or main_waits_for_the_outcome()):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
        return True

    def hold_the_lock_until_both_queue() -> None:
        with space.file.write_connection() as conn:
            held.set()
            deadline = time.monotonic() + 10
            while len(space.file._waiting) < 2 and time.monotonic() < deadline:
                time.sleep(0.001)
            conn.exec_trace = trace

    def lead() -> None:
        with space.transact():
            b.set(1)

    holder = threading.Thread(target=hold_the_lock_until_both_queue)
    holder.start()
    held.wait(10)
    leader = threading.Thread(target=lead)
    leader.start()
    deadline = time.monotonic() + 10
    while not (space.file._leading and space.file._waiting) and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        with pytest.raises(KeyboardInterrupt), space.transact():
            a.set(1)
        seen = a.get()
        read.set()
    finally:
        read.set()
        holder.join()
        leader.join()
        space.file._writer.exec_trace = None
    assert sent == [True]
    assert (seen, a.get(), b.get()) == (1, 1, 1)
    with space.transact() as tx:  # no conflict with its own commit
        a.set(a.get() + 1)
    assert (tx.seq, a.get()) == (3, 2)


def test_a_first_commit_ended_by_ctrl_c_before_its_commit_leaves_no_space_file(
    rt: sc.Runtime, store: Path
) -> None:
    """R7: Ctrl-C reaching the first commit of a space as it begins its SQLite transaction rolls
    it back, and the space file that commit created goes with it, as after any failed first
    commit: it stayed behind, empty (no commit, no cell), listed by `inspect` as a space. The
    next commit creates it again and commits."""
    import signal
    import sys

    space = rt.space("demo")
    a = space.cell("a", default=0)
    source = space_file_module.__file__

    def hook(frame: Any, event: str, _arg: Any) -> None:
        if (
            event == "call"
            and frame.f_code.co_filename == source
            and frame.f_code.co_name == "_begin_space_write"
        ):
            sys.setprofile(None)
            signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

    sys.setprofile(hook)
    try:
        with pytest.raises(KeyboardInterrupt), space.transact():
            a.set(1)
    finally:
        sys.setprofile(None)
    assert a.get() == 0
    assert sorted(p.name for p in store.iterdir()) == []
    with space.transact() as tx:
        a.set(2)
    assert (tx.seq, a.get()) == (1, 2)
    assert [p.name for p in store.iterdir() if p.suffix == ".sqlite"] == [space.file.path.name]


def test_ctrl_c_ends_a_commit_waiting_for_another_programs_write_lock(rt: sc.Runtime) -> None:
    """§3 / decisions ("everything before COMMIT stays interruptible"): a commit waiting for
    the space file's write lock that another program holds is ended by Ctrl-C at once — SQLite's
    own busy timeout slept where Ctrl-C could not reach, up to 30 s — and nothing of it is
    written; the space is usable again once the other program lets go."""
    space = rt.space("demo")
    a = space.cell("a", default=0)
    with space.transact():
        a.set(1)
    holder = apsw.Connection(str(space.file.path))  # another program's connection, in effect
    holder.execute("BEGIN IMMEDIATE")
    interrupter = threading.Timer(0.3, _thread.interrupt_main)
    started = time.monotonic()
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt), space.transact():
            a.set(2)
        waited = time.monotonic() - started
    finally:
        interrupter.cancel()
        holder.execute("ROLLBACK")
        holder.close()
    assert waited < 10, f"Ctrl-C ended the wait only after {waited:.1f}s"
    assert a.get() == 1
    with space.transact() as tx:
        a.set(3)
    assert tx.seq == 2 and a.get() == 3


def test_an_interrupt_at_any_point_of_a_commit_leaves_no_ticket_nor_lock_behind(
    rt: sc.Runtime,
) -> None:
    """CPython runs a signal's handler where a Python function starts and after a call to C
    returns. Ctrl-C landing right after the commit queued its ticket (before the code that takes
    it back), or as a leader began its batch, left the ticket queued: the next, unrelated commit
    committed the interrupted transaction; landing right after the write lock was taken left it
    held by nobody, and every later commit waited for ever. A profile hook delivers SIGINT (to
    whatever handler is installed then, as the interpreter does) at each such point of
    ``runtime/_space_file.py`` in turn: after each, nothing is queued, nobody leads, and the
    next commit ends and commits only its own write."""
    import signal
    import sys

    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    source = space_file_module.__file__
    points = 0
    for k in range(1, 400):
        calls = [0]

        def hook(frame: Any, event: str, _arg: Any, k: int = k, calls: list[int] = calls) -> None:
            if event in ("call", "c_return") and frame.f_code.co_filename == source:
                calls[0] += 1
                if calls[0] == k:
                    sys.setprofile(None)
                    signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

        before = a.get()
        sys.setprofile(hook)
        try:
            with space.transact():
                a.set(before + 1)
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        if calls[0] < k:
            break  # every point was tried
        points += 1
        assert not space.file._waiting and not space.file._leading, k
        now = a.get()  # the interrupted write committed (the interrupt came after) or not
        assert now in (before, before + 1), k
        outcome = in_thread(lambda k=k: _set(space, b, k), 30, f"the commit after point {k} hung")
        assert outcome is None, (k, outcome)
        assert (a.get(), b.get()) == (now, k), k
    assert points >= 20


def _set(space: Space, cell: sc.Cell, value: int) -> None:
    with space.transact():
        cell.set(value)


def test_an_interrupt_as_a_leader_takes_its_batch_loses_no_other_commit(rt: sc.Runtime) -> None:
    """A Ctrl-C landing inside ``take_batch`` (after a ``popleft`` took another thread's ticket
    out of the queue, before the batch was returned) lost that ticket: nobody failed it, and
    its committer, leading next, took empty batches for ever holding the write lock — every
    later commit of the space waited. Taking the batch holds SIGINT back: the batch fails —
    the interrupt for the leader's own transaction, a ConflictError (run it again) for the
    other thread's, which was sent no interrupt — and the space commits again."""
    import signal
    import sys

    space = rt.space("demo")
    a, b, c = (space.cell(name, default=0) for name in "abc")
    held, queued = threading.Event(), threading.Event()

    def hold() -> None:  # any other holder of the write lock: the main thread leads, waiting
        with space.file.write_connection():
            held.set()
            queued.wait(10)
            time.sleep(0.1)

    outcome: list[BaseException | None] = []

    def other() -> None:  # queued behind the main thread's ticket
        try:
            with space.transact():
                b.set(1)
            outcome.append(None)
        except BaseException as exc:  # handed to the asserts
            outcome.append(exc)

    def hook(frame: Any, event: str, arg: Any) -> None:
        if (
            event == "c_return"
            and frame.f_code is group_module.take_batch.__code__
            and getattr(arg, "__name__", "") == "popleft"
            and not frame.f_locals["waiting"]
        ):
            sys.setprofile(None)
            signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    worker = threading.Thread(target=other, daemon=True)

    def queue_the_other() -> None:
        while len(space.file._waiting) < 1:
            time.sleep(0.001)
        worker.start()
        while len(space.file._waiting) < 2:
            time.sleep(0.001)
        queued.set()

    threading.Thread(target=queue_the_other, daemon=True).start()
    sys.setprofile(hook)
    try:
        with pytest.raises(KeyboardInterrupt), space.transact():
            a.set(1)
    finally:
        sys.setprofile(None)
        holder.join(10)
    worker.join(10)
    assert not worker.is_alive(), "the other commit never ended"
    assert len(outcome) == 1 and isinstance(outcome[0], sc.ConflictError), outcome
    assert "interrupted (Ctrl-C)" in str(outcome[0])
    assert not space.file._waiting and not space.file._leading
    assert (a.get(), b.get()) == (0, 0)  # the batch failed together
    with space.transact() as tx:
        c.set(1)
    assert tx.seq == 1 and c.get() == 1


def test_a_ctrl_c_of_the_leader_is_a_conflict_for_the_other_members(rt: sc.Runtime) -> None:
    """§3, Errors: worker threads call a handler in a loop while the main thread commits and is
    sent Ctrl-C again and again. A leader stopped by it failed its whole batch with the
    interrupt, raised in the workers — which were sent none (3 runs in 4 here; a worker's loop
    died of it, an event loop's ``asyncio.run`` too). The others' transactions get a
    ConflictError, which their handler runs again: no worker ever sees an error, and every
    increment acknowledged is in the cell."""
    import os
    import signal

    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def bump() -> None:
        c.update(lambda v: v + 1)

    stop = threading.Event()
    seen: list[str] = []
    done = [0] * 4

    def worker(n: int) -> None:
        while not stop.is_set():
            try:
                bump()
                done[n] += 1
            except BaseException as exc:  # (only the main thread is sent the signal)
                seen.append(type(exc).__name__)

    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
    for w in workers:
        w.start()
    mine = interrupts = 0
    try:
        for _ in range(40):
            threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGINT)).start()
            until = time.monotonic() + 0.05
            try:
                while time.monotonic() < until:
                    bump()
                    mine += 1
            except KeyboardInterrupt:
                interrupts += 1
        time.sleep(0.1)  # (a last timer's signal lands here, if any)
    except KeyboardInterrupt:
        interrupts += 1
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert interrupts > 0 and not seen, seen
    # (An interrupt may land after one of the main thread's commits, before it is counted.)
    assert mine + sum(done) <= c.get() <= mine + sum(done) + interrupts


def test_a_system_exit_that_lands_in_a_commit_which_stands_reaches_the_committer(
    rt: sc.Runtime,
) -> None:
    """A ``SystemExit`` (an app's ``signal.signal(SIGTERM, lambda *a: sys.exit(0))``) raised
    inside ``COMMIT`` after the space file committed: the commit stands and is taken in, and
    the SystemExit then stops the committer — it was swallowed ("kept" logged), and the app
    went on committing. SQLite's WAL hook, called once a file's commit is in its WAL, raises it
    there, deterministically."""
    space = rt.space("k")
    c = space.cell("c", default=0)
    _set(space, c, 1)
    armed = [True]

    def hook(_conn: apsw.Connection, name: str, _pages: int) -> int:
        if armed[0] and name == "main":
            armed[0] = False
            raise SystemExit(3)
        return apsw.SQLITE_OK

    with space.file.write_connection() as conn:
        conn.set_wal_hook(hook)
    try:
        with pytest.raises(SystemExit) as stopped, space.transact():
            c.set(2)
    finally:
        with space.file.write_connection() as conn:
            conn.set_wal_hook(None)
    assert stopped.value.code == 3 and not armed[0]
    assert c.get() == 2 and space.file.seen_seq == 2  # durable, and taken in
    _set(space, c, 3)  # the next commit follows it
    assert c.get() == 3 and space.file.seen_seq == 3

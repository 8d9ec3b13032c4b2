"""Transactions, handlers, settling and values as SPEC §3 and R6, R50, R53, R54 state them,
checked through the public API on real stores, threads and processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import _space_file as space_file_module

# -- settle: every re-run caused by past commits, whoever made them (§3, R53) -----------------


def test_settle_takes_in_a_commit_another_runtime_of_the_process_made(store: Path) -> None:
    # A poll interval no test waits for: only settle() can bring the other commits in.
    with sc.Runtime(store, poll_interval=60) as mine, sc.Runtime(store) as theirs:
        seen: list[Any] = []
        mine.space("demo").cell("c", default=0).observe().subscribe(seen.append)
        doubled = sc.derive(mine.space("demo").cell("c"), lambda v: v * 2)
        assert mine.settle(timeout=30) is True
        theirs_c = theirs.space("demo").cell("c", default=0)
        for n in (1, 2, 3):
            with theirs.space("demo").transact():
                theirs_c.set(n)
            assert mine.settle(timeout=30) is True
            assert seen[-1] == n and doubled.get() == 2 * n
            assert mine.space("demo").cell("c").get() == n
        assert seen == [0, 1, 2, 3]


def test_settle_takes_in_a_commit_another_process_made(store: Path) -> None:
    with sc.Runtime(store, poll_interval=60) as rt:
        c = rt.space("demo").cell("c", default=0)
        seen: list[Any] = []
        c.observe().subscribe(seen.append)
        rt.settle(timeout=30)
        script = textwrap.dedent(
            f"""
            import sqlite_cells as sc
            with sc.Runtime({str(store)!r}) as rt:
                space = rt.space("demo")
                with space.transact():
                    space.cell("c", default=0).set(41)
            """
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
        assert rt.settle(timeout=30) is True
        assert seen == [0, 41] and c.get() == 41


def test_settled_takes_in_another_runtimes_commit_without_blocking_the_loop(store: Path) -> None:
    with sc.Runtime(store, poll_interval=60) as mine, sc.Runtime(store) as theirs:
        c = mine.space("demo").cell("c", default=0)
        seen: list[Any] = []
        c.observe().subscribe(seen.append)
        mine.settle(timeout=30)
        with theirs.space("demo").transact():
            theirs.space("demo").cell("c").set(5)

        async def main() -> bool:
            return await mine.settled()

        assert asyncio.run(main()) is True
        assert seen == [0, 5]


# -- nesting, missing and crossing transactions (§3) ------------------------------------------


def test_a_nested_transact_joins_the_outer_one(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact() as outer:
        c.set(1)
        with space.transact() as inner:
            assert inner is outer
            assert c.get() == 1  # what the transaction sees
            c.update(lambda v: v + 1)
        assert c.get() == 2
    assert outer.seq == 1 and c.get() == 2  # one commit for both blocks


@pytest.mark.parametrize(
    "write",
    [
        lambda c: c.set(1),
        lambda c: c.update(lambda v: v + 1),  # NoTransaction before the function runs
        lambda c: c.key("a").set(1),
    ],
    ids=["set", "update", "key-set"],
)
def test_a_write_outside_a_transaction_is_no_transaction(rt: sc.Runtime, write: Any) -> None:
    c = rt.space("demo").cell("c", default={})
    with pytest.raises(sc.NoTransaction) as info:
        write(c)
    assert isinstance(info.value, sc.SqliteCellsError)
    assert "transact" in str(info.value)  # says what to do
    assert c.get() == {}


def test_a_second_space_refused_at_the_write_leaves_the_transaction_usable(
    rt: sc.Runtime,
) -> None:
    demo, other = rt.space("demo"), rt.space("other")
    c, o = demo.cell("c", default=0), other.cell("o", default=0)
    with demo.transact() as tx:
        c.set(1)
        with pytest.raises(sc.CrossSpaceWrite) as info:
            o.set(2)
        assert "'other'" in str(info.value) and "'demo'" in str(info.value)
        c.update(lambda v: v + 1)
    assert tx.seq == 1 and c.get() == 2 and o.get() == 0


# -- handlers (§3, Errors) --------------------------------------------------------------------


def _commit_elsewhere(space: Any, cell: sc.Cell, value: int) -> None:
    """Commit from a new thread (so no transaction of the caller's joins it)."""

    def run() -> None:
        with space.transact():
            cell.set(value)

    t = threading.Thread(target=run)
    t.start()
    t.join()


def test_a_handler_returns_its_commit_seq_and_retries_a_conflict(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[int] = []

    @sc.handler
    def add(n: int, *, counter: sc.Cell) -> None:
        value = counter.get()
        seen.append(value)
        if len(seen) == 1:
            _commit_elsewhere(space, counter, 100)
        counter.set(value + n)

    assert add(5, counter=c) == 2  # seq 1 is the interfering commit
    assert seen == [0, 100] and c.get() == 105


def test_an_async_handler_conflicting_every_time_tries_ten_times_in_all(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    tries: list[int] = []

    @sc.handler
    async def add() -> None:
        value = c.get()
        tries.append(value)
        _commit_elsewhere(space, c, value + 1000)
        c.set(value + 1)

    with pytest.raises(sc.ConflictError) as info:
        asyncio.run(add())
    assert len(tries) == 10
    assert c.id in info.value.cell_ids
    assert c.get() == 10_000  # only the interfering commits landed


def test_settle_in_a_try_holding_the_lock_lets_a_subscriber_s_commit_through(
    rt: sc.Runtime,
) -> None:
    """§3: a sync handler's tries after three conflicts hold the space's write lock. Its body's
    settle() waited for a subscriber that commits to the same space — and so waits for that
    lock — until both gave up after 30 s, and the subscriber's write was lost. The try now
    ends with a conflict as soon as the scheduler waits for the lock, and the next try
    settles: both writes are committed."""
    space = rt.space("demo")
    a, mirror, other = (space.cell(name, default=0) for name in ("a", "m", "o"))
    told: list[float] = []

    def copy(value: int) -> None:  # on the scheduler thread: a commit to the same space
        if value:
            time.sleep(0.5)  # the handler's next try (holding the lock) is in settle() by now
            sc.handler(lambda: mirror.set(value))()
            told.append(time.monotonic())

    a.observe().subscribe(copy)
    assert rt.settle(10)
    settles: list[float] = []
    runs = 0

    @sc.handler
    def body() -> None:
        nonlocal runs
        runs += 1
        seen = other.get()
        if runs <= 3:
            _conflict_this_try(runs, other, a)
        else:  # this try holds the lock
            began = time.monotonic()
            assert rt.settle(20)
            settles.append(time.monotonic() - began)
        other.set(seen + 1)

    started = time.monotonic()
    body()
    assert rt.settle(10)
    assert (a.get(), mirror.get()) == (1, 1)
    assert runs == 5 and len(settles) == 1 and settles[0] < 5
    assert time.monotonic() - started < 15 and len(told) == 1


def _conflict_this_try(runs: int, other: sc.Cell, a: sc.Cell) -> None:
    """Another thread commits ``other``, which this try read, so that it conflicts; in the third
    try it commits ``a`` too, which a subscriber copies next (the fourth try holds the lock)."""

    def bump() -> None:
        sc.handler(lambda: other.set(other.get() + 1))()
        if runs == 3:
            sc.handler(lambda: a.set(1))()

    thread = threading.Thread(target=bump)
    thread.start()
    thread.join()


def test_a_first_value_read_in_a_try_holding_the_lock_lets_a_subscriber_s_commit_through(
    rt: sc.Runtime,
) -> None:
    """§3: as for settle() above, a derived cell made in a try that holds the space's write
    lock and read with get() waited for its first value from the scheduler thread, busy in a
    subscriber whose commit waits for that lock: both waited out their patience (30 s), and the
    subscriber's write was lost with a ConflictError. The try now ends with a conflict as soon
    as the scheduler waits for the lock, and the next try reads the value: both writes land."""
    space = rt.space("demo")
    a, mirror, other, base = (space.cell(name, default=0) for name in ("a", "m", "o", "b"))
    failures: list[sc.ConflictError] = []

    def copy(value: int) -> None:  # on the scheduler thread: a commit to the same space
        if value:
            time.sleep(0.5)  # the handler's next try (holding the lock) is in get() by now
            try:
                sc.handler(lambda: mirror.set(value))()
            except sc.ConflictError as exc:
                failures.append(exc)

    a.observe().subscribe(copy)
    assert rt.settle(10)
    firsts: list[int] = []
    runs = 0

    @sc.handler
    def body() -> None:
        nonlocal runs
        runs += 1
        seen = other.get()
        if runs <= 3:
            _conflict_this_try(runs, other, a)
        else:  # this try holds the lock
            firsts.append(sc.derive(base, lambda v: v + 1).get())
        other.set(seen + 1)

    body()
    assert rt.settle(60)
    assert failures == []
    assert (a.get(), mirror.get(), other.get()) == (1, 1, 4)
    assert firsts == [1]


def test_more_than_ten_tries_is_refused_when_the_handler_is_made() -> None:
    with pytest.raises(ValueError) as info:
        sc.handler(tries=11)
    assert isinstance(info.value, sc.SqliteCellsError)
    assert "10" in str(info.value)


def test_threads_running_one_handler_lose_no_increment(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def bump() -> None:
        c.update(lambda v: v + 1)

    seqs: list[int | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            seq = bump()
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get() == 60
    assert sorted(s for s in seqs if s is not None) == list(range(1, 61))


def test_an_async_handler_commits_without_blocking_the_event_loop(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c", default=0)
        with space.transact():
            c.set(1)
        (space_file,) = [p for p in store.glob("*.sqlite") if not p.name.startswith("cell-")]
        # Another program holds the space file's write lock for a while.
        with subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import apsw, sys, time\n"
                f"c = apsw.Connection({str(space_file)!r})\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('held', flush=True)\n"
                "time.sleep(0.6)\n"
                "c.execute('COMMIT')\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"

            @sc.handler
            async def bump() -> None:
                c.update(lambda v: v + 1)

            async def main() -> tuple[int | None, int]:
                ticks = 0
                done = asyncio.Event()

                async def tick() -> None:
                    nonlocal ticks
                    while not done.is_set():
                        ticks += 1
                        await asyncio.sleep(0.01)

                ticker = asyncio.create_task(tick())
                seq = await bump()
                done.set()
                await ticker
                return seq, ticks

            seq, ticks = asyncio.run(main())
        assert seq == 2 and c.get() == 2
        assert ticks >= 10  # the loop kept running while the commit waited for the lock


# -- values (R6) -------------------------------------------------------------------------------

REFUSED = {
    "bytes": b"x",
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "set": {1},
    "int-over-64-bits": 2**63,
    "int-under-64-bits": -(2**63) - 1,
    "int-key": {1: "a"},
    "none-key": {None: "a"},
    "tuple-key": {(1,): "a"},
    "nested-bytes": {"a": [1, {"b": b"x"}]},
    "nested-nan": [float("nan")],
    "object": object(),
}


@pytest.mark.parametrize("value", list(REFUSED.values()), ids=list(REFUSED))
def test_a_value_that_is_not_json_is_refused_at_set_and_records_nothing(
    rt: sc.Runtime, value: Any
) -> None:
    space = rt.space("demo")
    c, other = space.cell("c", default="before"), space.cell("other", default=0)
    with space.transact() as tx:
        other.set(1)
        with pytest.raises(sc.ValueEncodeError) as info:
            c.set(value)
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
        assert isinstance(info.value, sc.SqliteCellsError)
        assert c.get() == "before"  # nothing recorded: the transaction still sees the old value
    assert tx.seq == 1  # and it still commits what it did record
    assert c.get() == "before" and other.get() == 1


def test_json_values_read_back_as_json(store: Path) -> None:
    value = {
        "t": (1, (2, "x")),
        "max": 2**63 - 1,
        "min": -(2**63),
        "f": 1.5,
        "b": True,
        "n": None,
        "s": "é\u2028",
    }
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(value)
    with sc.Runtime(store) as rt:
        assert rt.space("demo").cell("c").get() == {
            "t": [1, [2, "x"]],  # tuples read back as lists
            "max": 2**63 - 1,
            "min": -(2**63),
            "f": 1.5,
            "b": True,
            "n": None,
            "s": "é\u2028",
        }


def test_cells_inside_values_are_stored_as_links_and_read_back_as_cells(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        alice = space.cell("alice", default={"name": "Alice"})
        with space.transact():
            alice.set({"name": "Alice"})
            space.cell("c").set({"who": [alice, alice.key("name")]})
        link, key_link = alice.link_str(), alice.key("name").link_str()
    with sc.Runtime(store) as rt:
        who = rt.space("demo").cell("c").get()["who"]
        assert all(isinstance(x, sc.Cell) for x in who)
        assert [x.link_str() for x in who] == [link, key_link]
        assert who[0].get() == {"name": "Alice"} and who[1].get() == "Alice"


# -- reactivity after commits (R50, R54) -------------------------------------------------------


def test_subscribers_never_see_a_rolled_back_value(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[Any] = []
    c.observe().subscribe(seen.append)
    derived: list[Any] = []
    sc.derive(c, lambda v: v).observe().subscribe(derived.append)
    rt.settle()
    with pytest.raises(KeyError), space.transact():
        c.set(1)
        raise KeyError("the block fails")
    attempts: list[int] = []

    @sc.handler
    def add() -> None:
        value = c.get()
        attempts.append(value)
        c.set(value + 10)  # the first attempt's value is thrown away by its conflict
        if len(attempts) == 1:
            _commit_elsewhere(space, c, 100)

    assert add() == 2
    rt.settle()
    assert attempts == [0, 100]
    assert seen == [0, 100, 110] and derived == [0, 100, 110]


def test_a_subscriber_is_told_only_what_a_new_runtime_can_read(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c", default=0)
        rt.settle()
        durable: list[tuple[Any, Any]] = []

        def check(value: Any) -> None:
            with sc.Runtime(store) as fresh:
                durable.append((value, fresh.space("demo").cell("c").get()))

        c.observe().subscribe(check)
        rt.settle()
        for n in (1, 2):
            with space.transact():
                c.set(n)
            rt.settle()
        assert durable[-2:] == [(1, 1), (2, 2)]


def test_each_derived_cell_runs_once_per_commit_however_many_writes(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a, b = space.cell("a", default=1), space.cell("b", default=10)
    runs = {"left": 0, "right": 0, "both": 0}

    def counted(name: str, fn: Any) -> Any:
        def run(*args: Any) -> Any:
            runs[name] += 1
            return fn(*args)

        return run

    left = sc.derive(a, counted("left", lambda v: v + 1))
    right = sc.lift(counted("right", lambda x, y: x + y))(a, b)
    both = sc.lift(counted("both", lambda x, y: (x, y)))(left, right)
    seen: list[Any] = []
    both.observe().subscribe(seen.append)
    rt.settle()
    runs.update(left=0, right=0, both=0)
    with space.transact():
        a.set(2)
        b.set(20)
        a.update(lambda v: v + 1)
        b.update(lambda v: v + 1)
    rt.settle()
    assert runs == {"left": 1, "right": 1, "both": 1}
    assert seen == [(2, 11), (4, 24)]  # no glitch: never (4, 11) or (2, 24)


def test_the_transaction_a_user_holds_stores_nothing_unchecked(rt: sc.Runtime) -> None:
    """R5, R6: values reach a transaction through cells (`set`, `update`: encoded and checked)
    and database handles through `db.exec`/`db.drop`; the object `transact()` returns has no
    method that records encoded bytes under a cell id (a database handle's included)."""
    space = rt.space("demo")
    c = space.cell("c")
    with space.transact() as tx:
        assert isinstance(tx, sc.Transaction)
        assert not hasattr(tx, "write")
        c.set(1)
    assert sorted(n for n in dir(sc.Transaction) if not n.startswith("_")) == [
        "add_op",
        "bind",
        "first_op",
        "guards",
        "is_empty",
        "names",
        "ops",
        "reads",
        "record_read",
        "seq",
        "space",
        "state",
        "thread",
        "writes",
        "written",
    ]
    assert c.get() == 1


def test_what_a_transaction_holds_is_read_only(rt: sc.Runtime) -> None:
    """R5, R6: the reads, writes, ops, guards and names a user sees on the transaction are
    views: storing into them (raw bytes under a cell id, a handle's value, a read forgotten)
    raises a ``TypeError`` and records nothing, so nothing unchecked is ever committed."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
    with space.transact() as tx:
        c.set(1)
        assert tx.writes[c.id] == b"1"
        with pytest.raises(TypeError):
            tx.writes[c.id] = b"\xff not json"  # type: ignore[index]
        with pytest.raises(TypeError):
            tx.writes[db.id] = b'{"not": "a handle"}'  # type: ignore[index]
        with pytest.raises(TypeError):
            tx.names[c.id] = ("x", "cell")  # type: ignore[index]
        with pytest.raises(AttributeError):
            tx.writes = {c.id: b"2"}  # type: ignore[misc]
        with pytest.raises(AttributeError):
            tx.ops.append(None)  # type: ignore[attr-defined]
    assert tx.seq is not None
    assert c.get() == 1
    assert db.rev == 0 and db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
    with space.transact() as tx:
        c.get()
        with pytest.raises(AttributeError):
            tx.reads.clear()  # type: ignore[attr-defined]
        assert len(tx.reads) == 1


def test_a_handler_whose_body_raised_on_a_mixed_view_runs_again(rt: sc.Runtime) -> None:
    """§2: reads are checked at commit, so a body can meet cells of two commits (another
    commit lands between its reads) and raise on a state no commit had. Its error is then a
    conflict and the body runs again; an error on a view still current is the body's own."""
    space = rt.space("s")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    runs: list[tuple[int, int]] = []

    def other_commit() -> None:  # keeps a == b, in another thread (its own transaction)
        def bump() -> None:
            with space.transact():
                a.set(a.get() + 1)
                b.set(b.get() + 1)

        thread = threading.Thread(target=bump)
        thread.start()
        thread.join()

    @sc.handler
    def check() -> int:
        x = a.get()
        if not runs:
            other_commit()  # lands between the two reads, on the first run only
        y = b.get()
        runs.append((x, y))
        if x != y:
            raise AssertionError(f"a={x} b={y}: a state no commit had")
        space.cell("seen").set(x)

    assert isinstance(check(), int)  # committed (the seq)
    assert runs == [(0, 1), (1, 1)]  # ran again on the mixed view, then saw one state
    assert space.cell("seen").get() == 1

    @sc.handler
    def refuse() -> None:
        runs.append((a.get(), b.get()))
        raise KeyError("the body's own error")

    runs.clear()
    with pytest.raises(KeyError, match="the body's own error"):
        refuse()
    assert runs == [(1, 1)]  # what it read was current: raised as it is, run once

    @sc.handler(tries=2)
    def always_mixed() -> None:
        a.get()
        other_commit()
        b.get()
        runs.append((0, 0))
        raise ValueError("mixed again")

    runs.clear()
    with pytest.raises(sc.ConflictError) as info:
        always_mixed()
    assert len(runs) == 2  # both tries met a commit between their reads
    assert isinstance(info.value.__cause__, ValueError)
    assert a.get() == b.get() == 3


def test_an_async_handler_whose_body_raised_on_a_mixed_view_runs_again(
    rt: sc.Runtime,
) -> None:
    """The same for an async handler's body (§3)."""
    space = rt.space("s")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    runs: list[tuple[int, int]] = []

    @sc.handler
    async def check() -> None:
        x = a.get()
        if not runs:
            await asyncio.to_thread(_bump_both, space, a, b)
        y = b.get()
        runs.append((x, y))
        if x != y:
            raise AssertionError(f"a={x} b={y}")
        space.cell("seen").set(x)

    assert isinstance(asyncio.run(check()), int)  # committed (the seq)
    assert runs == [(0, 1), (1, 1)]
    assert space.cell("seen").get() == 1


def _bump_both(space: sc.Space, a: sc.Cell, b: sc.Cell) -> None:
    with space.transact():
        a.set(a.get() + 1)
        b.set(b.get() + 1)


def test_a_block_of_another_space_inside_a_transaction_says_what_it_is(rt: sc.Runtime) -> None:
    """§3 (one space per transaction): ``o.transact()`` inside ``s.transact()`` is refused, and
    the message says a transaction of ``o`` cannot be opened inside — not that a write to
    ``s`` was made (the block may only read); the outer transaction stays usable."""
    s, o = rt.space("s"), rt.space("o")
    c, x = s.cell("c", default=0), o.cell("x", default=5)
    with s.transact():
        with pytest.raises(sc.CrossSpaceWrite) as info, o.transact():
            x.get()
        c.set(x.get() + 1)
    message = str(info.value)
    assert "a transaction of space 'o' cannot be opened inside it" in message
    assert "writes space" not in message
    assert c.get() == 6


def _gathered(rt: sc.Runtime, failing_first: bool) -> tuple[Any, list[Any]]:
    """An outer async handler gathers five nested ones, each writing a cell and a row; part 2
    raises — after parts 0 and 1 wrote (``failing_first`` False), or before anything was
    written by another (True). Returns what the outer call gave (or raised) and what the parts
    returned."""
    space = rt.space("demo")
    db = space.sqlite_database("log", tables={"log": sc.table(tok="text not null")})
    c = space.cell("c", default=[])
    got: list[Any] = []

    @sc.handler
    async def part(i: int) -> None:
        if not (failing_first and i == 2):
            await asyncio.sleep(0.002 * i)
        db.exec("INSERT INTO log (tok) VALUES (?)", [f"p{i}"])
        c.update(lambda v: [*v, i])
        if i == 2:
            raise RuntimeError("part 2")

    @sc.handler
    async def whole() -> None:
        got[:] = await asyncio.gather(*(part(i) for i in range(5)), return_exceptions=True)

    async def main() -> Any:
        try:
            return await whole()
        except sc.SqliteCellsError as exc:
            return exc

    return asyncio.run(main()), got


def test_a_nested_handler_failing_among_gathered_ones_commits_nothing_or_only_its_own(
    rt: sc.Runtime,
) -> None:
    """A nested handler that raises writes nothing (§2: all or nothing; "A nested block that
    raises writes nothing"). Gathered with others in one transaction, what it wrote could be
    taken back only with what the others wrote since it began: the savepoint taken when it
    began silently erased parts 0 and 1 as well, and the outer handler committed parts 3 and 4
    alone. Now the outer call raises TransactionError and commits nothing; when no other task
    wrote since the failing one began, its own writes alone are taken back, as before."""
    outcome, parts = _gathered(rt, failing_first=False)
    assert [type(p).__name__ for p in parts] == ["NoneType"] * 2 + ["RuntimeError"] + [
        "NoneType"
    ] * 2
    assert isinstance(outcome, sc.TransactionError)
    assert "nothing of the transaction was committed" in str(outcome)
    space = rt.space("demo")
    db = space.sqlite_database("log", tables={"log": sc.table(tok="text not null")})
    assert space.cell("c", default=[]).get() == []
    assert db.read("SELECT tok FROM log") == [] and db.rev == 0


def test_a_nested_handler_failing_before_others_wrote_takes_back_its_own_writes(
    rt: sc.Runtime,
) -> None:
    outcome, parts = _gathered(rt, failing_first=True)
    assert isinstance(outcome, int)  # committed: the seq
    assert isinstance(parts[2], RuntimeError)
    space = rt.space("demo")
    db = space.sqlite_database("log", tables={"log": sc.table(tok="text not null")})
    assert sorted(space.cell("c", default=[]).get()) == [0, 1, 3, 4]
    assert sorted(r["tok"] for r in db.read("SELECT tok FROM log")) == ["p0", "p1", "p3", "p4"]


def test_a_gathered_handler_failing_without_writing_leaves_the_others_writes(
    rt: sc.Runtime,
) -> None:
    """A nested handler that raised having written nothing has nothing to take back: when
    another task of the transaction wrote while it ran, the outer handler's transaction was
    refused whole all the same ("what it wrote cannot be taken back"), though the caller
    caught the error (``return_exceptions=True``, or ``try``). Now the others' writes commit,
    as they would beside a nested handler that never ran."""
    space = rt.space("demo")
    db = space.sqlite_database("log", tables={"log": sc.table(tok="text not null")})
    a, b = space.cell("a", default=0), space.cell("b", default=0)

    @sc.handler
    async def writes(started: asyncio.Event, written: asyncio.Event) -> None:
        await started.wait()
        a.set(a.get() + 1)
        db.exec("INSERT INTO log (tok) VALUES ('a')")
        written.set()

    @sc.handler
    async def refuses(started: asyncio.Event, written: asyncio.Event) -> None:
        started.set()
        await written.wait()  # the other task writes while this handler runs
        raise ValueError("refused before writing anything")

    parts: list[Any] = []

    @sc.handler
    async def gathered() -> None:
        b.set(1)
        started, written = asyncio.Event(), asyncio.Event()
        parts[:] = await asyncio.gather(
            writes(started, written), refuses(started, written), return_exceptions=True
        )

    @sc.handler
    async def caught() -> None:
        b.set(2)
        started, written = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(writes(started, written))
        with pytest.raises(ValueError, match="refused before writing"):
            await refuses(started, written)
        await task

    assert isinstance(asyncio.run(gathered()), int)  # committed: the seq
    assert parts[0] is None and isinstance(parts[1], ValueError)
    assert (a.get(), b.get()) == (1, 1)
    assert [r["tok"] for r in db.read("SELECT tok FROM log")] == ["a"] and db.rev == 1
    assert isinstance(asyncio.run(caught()), int)
    assert (a.get(), b.get()) == (2, 2)
    assert [r["tok"] for r in db.read("SELECT tok FROM log")] == ["a", "a"] and db.rev == 2


def test_a_write_taken_back_from_a_gathered_handler_is_no_write_another_could_lose(
    rt: sc.Runtime,
) -> None:
    """Gathered handlers share one transaction, and a write of a cell another of them wrote
    after this one read it is refused (it would lose that write). A write the other handler
    made and then took back — it raised, its writes were taken back, its caller caught the
    error — still counted: the first handler's update was refused as "writing it now would
    lose that write", and nothing was committed. Now a taken-back write is no write: the
    update commits."""
    space = rt.space("demo")
    x = space.cell("x", default=0)
    parts: list[Any] = []

    @sc.handler
    async def bump(read: asyncio.Event, done: asyncio.Event) -> None:
        value = x.get()
        read.set()
        await done.wait()  # the other handler writes x, and raises, meanwhile
        x.set(value + 1)

    @sc.handler
    async def fails(read: asyncio.Event, done: asyncio.Event) -> None:
        await read.wait()
        x.set(100)
        done.set()
        raise ValueError("refused after writing x")

    @sc.handler
    async def both() -> None:
        read, done = asyncio.Event(), asyncio.Event()
        parts[:] = await asyncio.gather(bump(read, done), fails(read, done), return_exceptions=True)

    assert isinstance(asyncio.run(both()), int)  # committed: the seq
    assert parts[0] is None and isinstance(parts[1], ValueError)
    assert x.get() == 1


def test_gathered_handlers_that_would_lose_each_others_updates_are_refused(
    rt: sc.Runtime,
) -> None:
    """Handlers gathered inside a handler share its transaction, so a read, an await and a write
    of the same cell in each lost every update but one: five increments committed ``1`` and a
    seq, silently. The write of a cell another task of the transaction wrote after this task
    read it is now a TransactionError (nothing committed); reading and writing without an
    await in between (``update``) still adds up, and so do sequential nested handlers."""
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    async def bump(*, pause: bool) -> None:
        value = c.get()
        if pause:
            await asyncio.sleep(0.001)
        c.set(value + 1)

    @sc.handler
    async def bump_many(n: int, *, pause: bool) -> None:
        await asyncio.gather(*(bump(pause=pause) for _ in range(n)))

    @sc.handler
    async def bump_in_turn(n: int) -> None:
        for _ in range(n):
            await bump(pause=True)

    with pytest.raises(sc.TransactionError) as info:
        asyncio.run(bump_many(5, pause=True))
    assert f"cell {c.id} was written by another handler of this transaction" in str(info.value)
    assert not isinstance(info.value, sc.ConflictError)  # not retried: it would race again
    assert c.get() == 0
    assert isinstance(asyncio.run(bump_many(5, pause=False)), int)
    assert c.get() == 5
    assert isinstance(asyncio.run(bump_in_turn(3)), int)
    assert c.get() == 8

    # Not races: writes at paths of the cell (each made from the latest value), blind writes,
    # and a handler writing after one it awaited in a task of its own.
    d = space.cell("d", default={})

    @sc.handler
    async def fill(key: str) -> None:
        for i in range(3):
            d.key(key).set(i)
            c.set(-1)  # a blind write: nothing read, nothing lost
            await asyncio.sleep(0)

    @sc.handler
    async def fill_both() -> None:
        await asyncio.gather(fill("a"), fill("b"))

    @sc.handler
    async def after_waiting() -> None:
        value = c.get()
        await asyncio.wait_for(bump(pause=True), 5)
        c.set(value + 100)

    assert isinstance(asyncio.run(fill_both()), int)
    assert d.get() == {"a": 2, "b": 2} and c.get() == -1
    assert isinstance(asyncio.run(after_waiting()), int)
    assert c.get() == 99


@pytest.mark.parametrize("via", ["async handler", "sync handler", "transact block"])
def test_gathered_handlers_writing_what_they_read_through_a_nested_scope_lose_no_update(
    rt: sc.Runtime, via: str
) -> None:
    """The lost update of gathered handlers (each reads a cell, awaits, writes it back) was
    refused only when the handler that read the cell wrote it itself: writing it through a
    handler it awaits, a sync handler it calls or a ``transact()`` block — each a scope nested
    in it — five increments committed ``1`` and a seq, silently. A nested scope's write is its
    enclosing scope's write too: refused the same way, nothing committed. Sequential nested
    writes still add up."""
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    async def put_async(value: int) -> None:
        c.set(value)

    @sc.handler
    def put_sync(value: int) -> None:
        c.set(value)

    async def put(value: int) -> None:
        if via == "async handler":
            await put_async(value)
        elif via == "sync handler":
            put_sync(value)
        else:
            with space.transact():
                c.set(value)

    @sc.handler
    async def bump(*, pause: bool) -> None:
        value = c.get()
        if pause:
            await asyncio.sleep(0)  # the others read the same value meanwhile
        await put(value + 1)

    @sc.handler
    async def bump_many(n: int, *, pause: bool) -> None:
        await asyncio.gather(*(bump(pause=pause) for _ in range(n)))

    with pytest.raises(sc.TransactionError) as info:
        asyncio.run(bump_many(5, pause=True))
    assert f"cell {c.id} was written by another handler of this transaction" in str(info.value)
    assert c.get() == 0
    assert isinstance(asyncio.run(bump_many(5, pause=False)), int)
    assert c.get() == 5


def test_gathered_handlers_that_would_lose_each_others_updates_at_a_path_are_refused(
    rt: sc.Runtime,
) -> None:
    """Gathered handlers each reading a key of a cell, awaiting, and writing the key back lost
    every update but one: five increments committed ``1`` and a seq, silently, where the same
    pattern on the whole cell is refused (a write at a path was not checked at all). Reads and
    writes at paths now count as parts of the value: the write at a path another handler wrote
    (or a path inside or around it) after this one read there is refused the same way, nothing
    committed. Handlers reading and writing disjoint paths commit both; so does a handler
    writing a key after another wrote a different key of what it read. A whole-value write
    after reading one key, beside a write of another key, is refused as before."""
    space = rt.space("demo")
    c = space.cell("c", default={"n": 0, "m": 0, "deep": {"x": 0, "y": 0}})

    @sc.handler
    async def bump(*path: str) -> None:
        at = c
        for key in path:
            at = at.key(key)
        value = at.get()
        await asyncio.sleep(0)  # the others read meanwhile
        at.set(value + 1)

    @sc.handler
    async def gathered(*paths: tuple[str, ...]) -> None:
        await asyncio.gather(*(bump(*path) for path in paths))

    initial = c.get()
    for paths in (
        [("n",)] * 5,  # the same path
        [("deep", "x"), ("deep", "x")],  # the same path, deeper
    ):
        with pytest.raises(sc.TransactionError) as info:
            asyncio.run(gathered(*paths))
        message = str(info.value)
        assert f"cell {c.id} at path {list(paths[0])!r} was written by another handler" in message
        assert "writing it now would lose that write" in message
        assert not isinstance(info.value, sc.ConflictError)
        assert c.get() == initial

    # A path inside one another handler wrote after this one read it: that write (of the
    # whole "deep", made first) would be lost too.
    @sc.handler
    async def copy_deep() -> None:
        deep = c.key("deep").get()
        await asyncio.sleep(0)
        c.key("deep").set({**deep, "y": deep["y"] + 10})

    @sc.handler
    async def around() -> None:
        await asyncio.gather(copy_deep(), bump("deep", "x"))

    with pytest.raises(sc.TransactionError) as info:
        asyncio.run(around())
    assert f"cell {c.id} at path ['deep', 'x'] was written by another" in str(info.value)
    assert c.get() == initial

    # A path around one another handler wrote after this one read it (the key written first).
    @sc.handler
    async def around_last() -> None:
        await asyncio.gather(bump("deep", "x"), copy_deep())

    with pytest.raises(sc.TransactionError) as info:
        asyncio.run(around_last())
    assert f"cell {c.id} at path ['deep'] was written by another" in str(info.value)
    assert c.get() == initial

    # Disjoint paths lose nothing: both commit, in one commit (the first of the space).
    assert asyncio.run(gathered(("n",), ("m",), ("deep", "x"), ("deep", "y"))) == 1
    assert c.get() == {"n": 1, "m": 1, "deep": {"x": 1, "y": 1}}

    # Reading the whole value, then writing one key while another handler wrote another key.
    @sc.handler
    async def bump_n_from_whole() -> None:
        whole = c.get()
        await asyncio.sleep(0)
        c.key("n").set(whole["n"] + 1)

    @sc.handler
    async def beside() -> None:
        await asyncio.gather(bump_n_from_whole(), bump("m"))

    assert asyncio.run(beside()) == 2
    assert c.get() == {"n": 2, "m": 2, "deep": {"x": 1, "y": 1}}

    # The whole value written after reading one key, beside a handler writing another key: the
    # whole value holds that key too, and the write would lose it (refused as before).
    @sc.handler
    async def set_whole_from_m() -> None:
        m = c.key("m").get()
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # (the other handler writes meanwhile)
        c.set({"n": 0, "m": m + 1, "deep": {}})

    @sc.handler
    async def put_n() -> None:
        c.key("n").set(50)

    @sc.handler
    async def whole_beside() -> None:
        await asyncio.gather(set_whole_from_m(), put_n())

    with pytest.raises(sc.TransactionError) as info:
        asyncio.run(whole_beside())
    assert f"cell {c.id} was written by another handler" in str(info.value)
    assert c.get() == {"n": 2, "m": 2, "deep": {"x": 1, "y": 1}}


def test_a_task_writing_back_what_it_read_after_its_maker_wrote_it_is_refused(
    rt: sc.Runtime,
) -> None:
    """A nested handler run as a task of the handler that made it reads a cell and waits; its
    maker writes the cell meanwhile; the task writes back what it read. The maker's write was
    lost silently (``x`` committed 1, not 11): a write by an enclosing scope counted as code in
    sequence with the task, though they ran side by side. It is now refused as the same race
    between gathered handlers is, and nothing is committed; a maker writing after awaiting the
    task still commits."""
    space = rt.space("demo")
    x = space.cell("x", default=0)

    @sc.handler
    async def bump(read: asyncio.Event, written: asyncio.Event) -> None:
        value = x.get()
        read.set()
        await written.wait()  # its maker writes x meanwhile
        x.set(value + 1)

    @sc.handler
    async def maker(*, while_waiting: bool) -> None:
        read, written = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(bump(read, written))
        await read.wait()
        if while_waiting:
            x.set(x.get() + 10)
        written.set()
        await task
        if not while_waiting:
            x.set(x.get() + 10)  # after the task: in sequence

    with pytest.raises(sc.TransactionError) as info:
        asyncio.run(maker(while_waiting=True))
    assert f"cell {x.id} was written by another handler of this transaction" in str(info.value)
    assert x.get() == 0
    assert isinstance(asyncio.run(maker(while_waiting=False)), int)
    assert x.get() == 11


def _bump_in_another_thread(space: sc.Space, c: sc.Cell) -> None:
    """Commit ``c + 1`` in a thread of its own, and wait for it: a handler's try that read ``c``
    conflicts."""

    def bump() -> None:
        with space.transact():
            c.set(c.get() + 1)

    thread = threading.Thread(target=bump)
    thread.start()
    thread.join()


def test_a_handler_body_closing_the_runtime_under_the_write_lock_is_closed_error(
    store: Path,
) -> None:
    """Errors: after three conflicts a handler runs its body holding the space's write lock;
    a body that closed the runtime there (a shutdown path) got apsw's raw
    ``ConnectionClosedError`` as the block ended (its rollback ran on the closed connection).
    It is the ``ClosedError`` of the commit, and nothing of the try is written."""
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)

    tries: list[int] = []

    @sc.handler
    def step() -> None:
        tries.append(len(tries))
        value = c.get()
        if len(tries) <= 3:
            _bump_in_another_thread(space, c)  # a conflict: the next try holds the write lock
        else:
            rt.close()
        c.set(value + 100)

    with pytest.raises(sc.ClosedError) as info:
        step()
    assert "closed" in str(info.value)
    assert tries == [0, 1, 2, 3]
    with sc.Runtime(store) as again:
        assert again.space("demo").cell("c", default=0).get() == 3  # the three bumps only


def test_a_cell_read_twice_in_a_transaction_never_shows_two_values(rt: sc.Runtime) -> None:
    """§3: inside a transaction, ``get`` is what the transaction sees. Another commit changing a
    cell between two reads made the second read return the new value (the commit then
    conflicted); the second read is the ``ConflictError`` now, and a handler runs again."""
    space = rt.space("demo")
    c = space.cell("counter", default=0)
    other = sc.handler(lambda: c.set(99))
    with pytest.raises(sc.ConflictError) as raised, space.transact():
        first = c.get()
        writer = threading.Thread(target=other)
        writer.start()
        writer.join()
        c.get()
    assert first == 0 and raised.value.cell_ids == (c.id,)
    runs: list[int] = []
    seen: list[tuple[int, int]] = []

    @sc.handler
    def twice() -> None:
        runs.append(1)
        before = c.get()
        if len(runs) == 1:  # the first run only: another commit lands between its two reads
            thread = threading.Thread(target=sc.handler(lambda: c.set(before + 1)))
            thread.start()
            thread.join()
        seen.append((before, c.get()))

    assert twice() is None  # (it writes nothing: no commit)
    assert len(runs) == 2  # the first run was stopped at its second read, and run again
    assert seen == [(100, 100)]


def test_an_update_at_a_path_refused_by_a_commit_in_between_records_nothing(
    rt: sc.Runtime,
) -> None:
    """R32: an error raised at a call records nothing. A write at a path rebuilds the value
    from the newest commit; when another commit changed the cell after the transaction read it
    (here inside ``update``'s function), the write was recorded on that newer value before the
    ``ConflictError`` was raised, and ``update`` took its read back: a block that caught the
    error committed ``fn``'s result from the older value over the other writer's."""
    space = rt.space("demo")
    c = space.cell("c", default={"n": 0})
    other = sc.handler(lambda: c.key("n").set(5))

    def bump(value: int) -> int:
        writer = threading.Thread(target=other)
        writer.start()
        writer.join()
        return value + 1

    with space.transact() as tx:
        with pytest.raises(sc.ConflictError) as raised:
            c.key("n").update(bump)
        assert raised.value.cell_ids == (c.id,)
        assert dict(tx.writes) == {} and dict(tx.reads) == {}
    assert tx.seq is None
    assert c.get() == {"n": 5}  # the other writer's commit stands
    # A set at a path after a read: refused before its write is recorded too (the block's own
    # read then fails its commit, as it would have).
    with pytest.raises(sc.ConflictError), space.transact() as tx:
        seen = c.get()
        writer = threading.Thread(target=sc.handler(lambda: c.key("n").set(6)))
        writer.start()
        writer.join()
        with pytest.raises(sc.ConflictError):
            c.key("n").set(seen["n"] + 1)
        assert dict(tx.writes) == {}
    assert c.get() == {"n": 6}


def test_close_from_another_thread_leaves_a_handler_body_under_the_write_lock_to_its_end(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§3: close() waited for a handler body holding the space's write lock (its fourth try) as
    long as that body ran: Python code close() cannot stop. Past ``CLOSE_PATIENCE`` (none here)
    it returns, the space closed; the body's later writes are ``ClosedError``, its try writes
    nothing, and its block's end closes the space's files."""
    monkeypatch.setattr(space_file_module, "CLOSE_PATIENCE", 0.0)
    rt = sc.Runtime(store)
    space = rt.space("demo")
    c = space.cell("c", default=0)
    in_body, released = threading.Event(), threading.Event()
    tries: list[int] = []
    waited: list[bool] = []

    @sc.handler
    def step() -> None:
        tries.append(len(tries))
        value = c.get()
        if len(tries) <= 3:
            _bump_in_another_thread(space, c)  # a conflict: the next try holds the write lock
        else:
            in_body.set()
            waited.append(released.wait(timeout=30))  # set once close() has returned
        c.set(value + 100)

    outcome: list[BaseException | int | None] = []

    def call() -> None:
        try:
            outcome.append(step())
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert in_body.wait(timeout=30)
    rt.close()
    released.set()
    caller.join()
    assert waited == [True], "close() waited for the body holding the write lock"
    assert tries == [0, 1, 2, 3]
    [error] = outcome
    assert isinstance(error, sc.ClosedError)
    assert "space 'demo' is closed (its runtime was closed): open a new Runtime" in str(error)
    assert not list(store.glob("*-wal")), "the block's end left the space's files open"
    with sc.Runtime(store) as again:
        assert again.space("demo").cell("c", default=0).get() == 3  # the three bumps only

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import Space


def test_conflict_when_a_read_cell_changed(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with pytest.raises(sc.ConflictError) as info, space.transact():
        seen = c.get()
        other = threading.Thread(target=lambda: _bump(space, c))
        other.start()
        other.join()
        c.set(seen + 1)
    assert info.value.cell_ids == (c.id,) and info.value.space_id == "demo"
    assert c.get() == 1  # the other writer's value; ours was not written


def _bump(space: Space, c: sc.Cell) -> None:
    with space.transact():
        c.set(c.get() + 1)


def _write_both(space: Space, a: sc.Cell, b: sc.Cell, value: int) -> None:
    """Commit ``a`` and ``b`` set to ``value`` together, from another thread."""

    def write() -> None:
        with space.transact():
            a.set(value)
            b.set(value)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()


def test_a_transaction_that_only_reads_conflicts_too(rt: sc.Runtime) -> None:
    """§2: a transaction fails with a conflict when a cell it read changed since — one that
    wrote nothing too, or it would end having seen ``a`` before a commit and ``b`` after it."""
    space = rt.space("s")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    seen = []
    with pytest.raises(sc.ConflictError) as info, space.transact():
        seen.append(a.get())
        _write_both(space, a, b, 1)
        seen.append(b.get())
    assert seen == [0, 1]
    assert info.value.cell_ids == (a.id,)
    with space.transact() as tx:  # nothing changed meanwhile: it ends quietly, with no seq
        assert (a.get(), b.get()) == (1, 1)
    assert tx.seq is None


def test_a_handler_that_only_reads_is_retried_until_it_sees_one_state(rt: sc.Runtime) -> None:
    space = rt.space("s")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    seen: list[tuple[int, int]] = []

    @sc.handler
    def look() -> None:
        first = a.get()
        if not seen:
            _write_both(space, a, b, len(seen) + 1)
        seen.append((first, b.get()))

    assert look() is None
    assert seen == [(0, 1), (1, 1)]  # the mixed look was tried again


def test_an_async_handler_that_only_reads_is_retried_too(rt: sc.Runtime) -> None:
    space = rt.space("s")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    seen: list[tuple[int, int]] = []

    @sc.handler
    async def look() -> None:
        first = a.get()
        if not seen:
            _write_both(space, a, b, 1)
        seen.append((first, b.get()))

    assert asyncio.run(look()) is None
    assert seen == [(0, 1), (1, 1)]


def test_blind_writes_do_not_conflict(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact():
        c.set(10)
        t = threading.Thread(target=lambda: _bump(space, c))
        t.start()
        t.join()
    assert c.get() == 10


def test_handler_retries_on_conflict_and_returns_the_seq(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    attempts = []

    @sc.handler
    def bump(n: int, *, counter: sc.Cell) -> None:
        value = counter.get()
        attempts.append(value)
        if len(attempts) == 1:  # another writer sneaks in during the first try
            t = threading.Thread(target=lambda: _bump(space, counter))
            t.start()
            t.join()
        counter.set(value + n)

    seq = bump(5, counter=c)
    assert attempts == [0, 1]
    assert seq == 2 and c.get() == 6


@pytest.mark.parametrize("conflicts", [1, 3], ids=["optimistic", "under-the-write-lock"])
def test_a_retry_is_a_new_transaction_that_may_write_another_space(
    rt: sc.Runtime, conflicts: int
) -> None:
    """A sync handler's retry stayed bound to the space of its first try: a body that, on the
    fresh state, wrote another space failed with CrossSpaceWrite (a fresh call wrote it)."""
    a, b = rt.space("A"), rt.space("B")
    route, x, y = a.cell("route", default=0), a.cell("x", default=0), b.cell("y", default=0)
    seen: list[int] = []

    @sc.handler
    def move() -> None:
        r = route.get()
        seen.append(r)
        if len(seen) <= conflicts:  # another writer changes the route meanwhile
            t = threading.Thread(target=lambda: _bump(a, route))
            t.start()
            t.join()
        (x if r == 0 else y).set(len(seen))

    seq = move()
    assert seen == list(range(conflicts + 1))
    assert (x.get(), y.get()) == (0, conflicts + 1)
    assert seq == 1  # B's first commit


def _interfering_handler(space: Space, interfere_on: int, **options: int) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @sc.handler(**options)
    def body(counter: sc.Cell) -> None:
        calls.append(len(calls) + 1)
        value = counter.get()
        if len(calls) <= interfere_on:  # another writer commits between our read and our commit
            t = threading.Thread(target=lambda: _bump(space, counter))
            t.start()
            t.join()
        counter.set(value + 100)

    return body, calls


def test_handler_gives_up_after_its_tries(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    body, calls = _interfering_handler(space, interfere_on=99, tries=2)
    with pytest.raises(sc.ConflictError):
        body(c)
    assert calls == [1, 2]
    assert c.get() == 2  # only the interfering writes landed


def test_handler_escalates_to_the_write_lock_after_three_conflicts(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    body, calls = _interfering_handler(space, interfere_on=3)
    assert body(c) == 4
    assert calls == [1, 2, 3, 4]
    assert c.get() == 103


def test_a_handler_that_only_reads_escalates_to_the_write_lock_too(rt: sc.Runtime) -> None:
    """A body that reads a cell others keep writing, and writes nothing, holds the space's
    write lock after three conflicts as a writing one does: before, its transaction was bound
    to no space, so every try ran optimistically and the call gave up after all its tries."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    seen: list[int] = []
    refused: list[str] = []

    def interfere() -> None:
        try:
            _bump(space, c)
        except sc.ConflictError as error:  # the body held the lock, and joins this thread
            refused.append(error.space_id)

    @sc.handler
    def look() -> None:
        seen.append(c.get())
        t = threading.Thread(target=interfere)
        t.start()
        t.join()

    assert look() is None
    assert seen == [0, 1, 2, 3]  # three tries conflicted; the fourth held the write lock
    assert refused == ["demo"]
    assert c.get() == 3


def test_handler_that_writes_nothing_returns_none_and_nested_handler_joins(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def noop() -> None:
        c.get()

    @sc.handler
    def inner() -> None:
        c.update(lambda v: v + 1)

    @sc.handler
    def outer() -> None:
        assert inner() is None
        assert inner() is None

    assert noop() is None
    assert outer() == 1
    assert c.get() == 2


def test_seqs_are_contiguous(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def bump() -> None:
        c.update(lambda v: v + 1)

    seqs = [bump() for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    rows = space.file.write_connection
    with rows() as conn:
        assert [s for (s,) in conn.execute("SELECT seq FROM _cf_log ORDER BY seq")] == seqs


def test_threads_incrementing_one_counter_lose_no_update(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def bump() -> None:
        c.update(lambda v: v + 1)

    def work() -> None:
        for _ in range(50):
            bump()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get() == 200


def test_a_nested_block_that_raises_writes_nothing_though_the_outer_commits(
    rt: sc.Runtime,
) -> None:
    space = rt.space("s")
    c, d, e = space.cell("c", default=0), space.cell("d", default=0), space.cell("e", default=0)
    db = space.sqlite_database("t", tables={"t": sc.table(x="integer")})

    @sc.handler
    def failing() -> None:
        e.set(9)
        raise KeyError("inside")

    with space.transact():
        c.set(60)
        with pytest.raises(ValueError), space.transact():
            c.set(61)
            d.set(5)
            db.exec("INSERT INTO t (x) VALUES (1)")
            raise ValueError("inner")
        with pytest.raises(KeyError):
            failing()
        d.set(6)
    assert (c.get(), d.get(), e.get()) == (60, 6, 0)
    assert db.read("SELECT x FROM t") == [] and db.rev == 0


def test_update_of_a_cell_of_another_space_runs_no_function(rt: sc.Runtime) -> None:
    """§3: a write that cannot be recorded does not run the caller's code. ``update`` of a cell
    of another space than the one the transaction writes called ``fn`` (its side effects ran),
    then refused the write; it is ``CrossSpaceWrite`` before ``fn`` runs now, recording
    nothing, and the transaction goes on."""
    a, b = rt.space("a"), rt.space("b")
    x, y = a.cell("x", default=0), b.cell("y", default=0)
    ran: list[Any] = []
    with a.transact() as tx:
        x.set(1)
        with pytest.raises(sc.CrossSpaceWrite):
            y.update(lambda v: ran.append(v) or v + 1)
        assert ran == []
        assert list(tx.writes) == [x.id] and dict(tx.reads) == {}
    assert (x.get(), y.get()) == (1, 0)
    # A transaction not bound yet (a handler's) is bound by the update, as by set.
    assert sc.handler(lambda: y.update(lambda v: v + 1))() is not None
    assert y.get() == 1


def test_a_refused_update_keeps_the_read_its_function_wrote_from(rt: sc.Runtime) -> None:
    """R32, §2: ``update`` whose result is refused takes back the read it made (nothing
    recorded) — but ``fn`` had written another path of the same cell, a write made from that
    read. With the read gone, a commit of the cell in between was no conflict and the write
    put the older value of the rest back over it (a lost update). The read stays then."""
    space = rt.space("demo")
    c = space.cell("c", default={"a": 0, "b": 0})

    def fn(value: Any) -> Any:
        c.key("b").set(1)  # made from the value this update read
        return {1, 2}  # not JSON: the update is refused

    with pytest.raises(sc.ConflictError), space.transact() as tx:
        with pytest.raises(sc.ValueEncodeError):
            c.update(fn)
        assert (space.file, c.id) in tx.reads
        writer = threading.Thread(target=sc.handler(lambda: c.key("a").set(5)))
        writer.start()
        writer.join()
    assert c.get() == {"a": 5, "b": 0}  # the other writer's commit stands

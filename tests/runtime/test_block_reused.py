"""One ``space.transact()`` object entered more than once before it is left (SPEC §3: "nested
transact() joins the outer"; §2: a transaction commits all or nothing): inside itself it joins
the outer block, by two threads or asyncio tasks at once each has its own transaction; and a
nested block that raises takes back the space it bound the transaction to."""

from __future__ import annotations

import asyncio
import threading

import pytest

import sqlite_cells as sc


def test_a_block_entered_again_inside_itself_joins_and_commits_nothing_early(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    block = space.transact()
    with pytest.raises(RuntimeError, match="outer"), block as outer:
        with block as inner:
            assert inner is outer
            a.set(1)
        b.set(1)  # still in the outer block's transaction
        raise RuntimeError("the outer block fails: nothing of it commits")
    assert (a.get(), b.get()) == (0, 0)
    with block:  # the object is usable again once left
        with block:
            a.set(2)
        b.set(2)
    assert (a.get(), b.get()) == (2, 2)


def test_one_block_entered_by_two_threads_commits_both_transactions(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    block = space.transact()
    entered, first_left = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with block:
                b.set(1)
                entered.set()
                first_left.wait(10)
        except BaseException as exc:  # handed to the test below
            errors.append(exc)

    with block:
        a.set(1)
        thread = threading.Thread(target=second)
        thread.start()
        assert entered.wait(10)
    first_left.set()
    thread.join(10)
    assert errors == []
    assert (a.get(), b.get()) == (1, 1)


def test_one_block_entered_by_two_tasks_commits_both_transactions(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    block = space.transact()

    async def write(cell: sc.Cell, pause: float) -> None:
        with block:
            cell.set(1)
            await asyncio.sleep(pause)

    async def main() -> None:
        await asyncio.gather(write(a, 0.05), write(b, 0.0))

    asyncio.run(main())
    assert (a.get(), b.get()) == (1, 1)


def test_a_nested_block_of_another_space_that_raises_unbinds_the_transaction(
    rt: sc.Runtime,
) -> None:
    home, other = rt.space("home"), rt.space("other")
    c, o = home.cell("c", default=0), other.cell("o", default=0)

    @sc.handler
    def body() -> None:
        with pytest.raises(KeyError), other.transact():
            o.set(1)
            raise KeyError("the nested block fails: taken back, its space too")
        c.set(1)  # the transaction wrote nothing of "other": it may write "home"

    assert isinstance(body(), int)
    assert (c.get(), o.get()) == (1, 0)


def test_a_nested_block_that_wrote_nothing_leaves_a_handler_unbound(rt: sc.Runtime) -> None:
    """§3: a handler binds to the space of its first write. A ``space.transact()`` block nested
    in it that wrote nothing (a helper with nothing to write this time) binds it to no space:
    its first write, to another space, commits there; a nested block that wrote keeps it."""
    s, s2 = rt.space("s"), rt.space("s2")
    c, c2 = s.cell("c", default=0), s2.cell("c2", default=0)

    @sc.handler(tries=1)
    def elsewhere() -> None:
        with s.transact():
            pass
        c2.set(6)

    assert elsewhere() == 1 and c2.get() == 6

    @sc.handler(tries=1)
    def both() -> None:
        with s.transact():
            c.set(1)
        c2.set(7)

    with pytest.raises(sc.CrossSpaceWrite, match="belongs to space 's'"):
        both()
    assert (c.get(), c2.get()) == (0, 6)

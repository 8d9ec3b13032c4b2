"""A transaction belongs to the thread that began it (SPEC §3: "nested transact() joins the
outer"): a thread that inherits a copy of the context — ``asyncio.to_thread`` in an async
handler, ``contextvars.copy_context().run`` — is not nested in it, and behaves as a plain
``threading.Thread`` does."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime._tx import current_transaction


def _in_copied_context(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on another thread, in a copy of this thread's context."""
    context = contextvars.copy_context()
    found: list[Any] = []

    def run() -> None:
        try:
            found.append(context.run(fn))
        except BaseException as exc:  # handed back to the caller
            found.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def test_a_block_in_a_worker_thread_of_an_async_handler_is_its_own_transaction(
    rt: sc.Runtime,
) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    o = space.cell("o", default=0)
    seqs: list[int | None] = []

    def worker() -> None:
        with space.transact() as tx:
            o.set(100)
        seqs.append(tx.seq)

    @sc.handler
    async def handle(*, c: sc.Cell) -> None:
        c.set(1)
        await asyncio.to_thread(worker)
        raise RuntimeError("the handler's body fails after the worker's block committed")

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await handle(c=c)

    asyncio.run(main())
    assert seqs == [1]  # the worker's block committed on exit
    assert (o.get(), c.get()) == (100, 0)  # and only the handler's own write was discarded


def test_a_copied_context_on_another_thread_holds_no_transaction(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact():
        c.set(1)
        with pytest.raises(sc.NoTransaction):
            _in_copied_context(lambda: c.set(2))
        assert _in_copied_context(c.get) == 0  # what is committed, not this transaction's
        c.set(3)
    assert c.get() == 3


def _left_from_another_thread(block: Any) -> BaseException:
    """Leave ``block`` (an entered ``space.transact()``) on another thread; what it raised."""
    raised: list[BaseException] = []

    def leave() -> None:
        try:
            block.__exit__(None, None, None)
        except BaseException as exc:  # handed back to the caller
            raised.append(exc)

    thread = threading.Thread(target=leave)
    thread.start()
    thread.join()
    assert len(raised) == 1
    return raised[0]


def test_a_block_left_from_another_thread_is_rolled_back_and_says_so(rt: sc.Runtime) -> None:
    """Leaving a `with space.transact()` block from another thread (an ExitStack handed over)
    raised a raw ValueError and left the transaction open in the thread that entered it: every
    later write there joined it, and none was ever committed, without an error."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    block = space.transact()
    block.__enter__()
    c.set(1)
    error = _left_from_another_thread(block)
    assert type(error) is sc.TransactionError
    assert "left from another thread or asyncio task" in str(error)
    assert "rolled back" in str(error)
    block.__exit__(None, None, None)  # left again where it was entered: nothing more happens
    assert current_transaction() is None
    with pytest.raises(sc.NoTransaction):
        c.set(5)  # no transaction is open here now
    with space.transact() as tx:
        c.set(2)
    assert tx.seq == 1  # the first block committed nothing

    @sc.handler
    def bump() -> None:
        c.set(c.get() + 1)

    assert bump() == 2
    with sc.Runtime(rt.store) as other:
        assert other.space("demo").cell("c", default=0).get() == 3


def test_a_nested_block_left_from_another_task_takes_its_writes_back(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)

    async def main() -> None:
        with space.transact():
            a.set(1)
            inner = space.transact()
            inner.__enter__()
            b.set(1)

            async def leave() -> None:
                inner.__exit__(None, None, None)

            with pytest.raises(sc.TransactionError, match="taken back"):
                await asyncio.create_task(leave())

    asyncio.run(main())
    assert (a.get(), b.get()) == (1, 0)

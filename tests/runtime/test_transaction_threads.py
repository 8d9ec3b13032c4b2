"""A transaction belongs to the thread that began it (SPEC §3: "nested transact() joins the
outer"): a thread that inherits a copy of the context — ``asyncio.to_thread`` in an async
handler, ``contextvars.copy_context().run`` — is not nested in it, and behaves as a plain
``threading.Thread`` does."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import InvalidArgument, _tx
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
    # Its own exit, where it was entered, says so too (it returned as if the block had
    # committed), and ends it there.
    with pytest.raises(sc.TransactionError, match="left from another thread or asyncio task"):
        block.__exit__(None, None, None)
    block.__exit__(None, None, None)  # left twice where it was entered: nothing more happens
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


def test_a_wrong_exit_from_a_third_thread_takes_no_innocent_block(rt: sc.Runtime) -> None:
    """Two threads inside one ``transact()`` object, and a third that leaves it by mistake:
    the newest block (B's) is rolled back and B's own exit says so; A's block, which nobody
    touched, commits. Its entry was taken instead (B's exit took the only one left), so A's
    `with` ended normally having committed nothing, and B's said A's fate."""
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    block = space.transact()
    a_in, b_in, go_a, go_b = (threading.Event() for _ in range(4))
    outcome: dict[str, BaseException | None] = {}

    def run(name: str, cell: sc.Cell, inside: threading.Event, go: threading.Event) -> None:
        try:
            with block:
                cell.set(1)
                inside.set()
                go.wait(10)
            outcome[name] = None
        except BaseException as exc:  # handed to the asserts
            outcome[name] = exc

    ta = threading.Thread(target=run, args=("A", a, a_in, go_a))
    tb = threading.Thread(target=run, args=("B", b, b_in, go_b))
    ta.start()
    assert a_in.wait(10)
    tb.start()
    assert b_in.wait(10)
    error = _left_from_another_thread(block)
    assert type(error) is sc.TransactionError and "rolled back" in str(error)
    go_b.set()
    tb.join()
    go_a.set()
    ta.join()
    assert outcome["A"] is None
    assert type(outcome["B"]) is sc.TransactionError
    assert "had been left from another thread or asyncio task" in str(outcome["B"])
    assert (a.get(), b.get()) == (1, 0)


def test_a_block_left_by_another_thread_says_so_at_its_own_exit(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    block = space.transact()
    with pytest.raises(sc.TransactionError, match="had been left from another thread"), block:
        c.set(1)
        assert type(_left_from_another_thread(block)) is sc.TransactionError
    assert c.get() == 0 and current_transaction() is None
    with block:  # the object serves again
        c.set(2)
    assert c.get() == 2


@pytest.mark.parametrize("shape", ["handler", "block", "nested", "same object", "in handler"])
def test_an_interrupt_anywhere_in_entering_or_leaving_a_block_leaves_no_transaction_current(
    rt: sc.Runtime, shape: str
) -> None:
    """A Ctrl-C landing as a block was entered (after its transaction was made current) or left
    (before that was undone) left the transaction current for good: every later handler call
    and block in the thread joined it, and nothing was committed again. CPython runs a signal's
    handler where a Python function starts (and after a call): ``sys.settrace`` raises the
    interrupt there, at each such point of ``runtime/_tx.py`` in turn (``__exit__`` is C and
    has none). After each: no transaction current, no nested scope left open, the interrupted
    call committed at most its own write, and the next handler call commits."""
    space = rt.space("demo")
    c = space.cell("c", default=0)

    @sc.handler
    def step() -> None:
        c.set(c.get() + 1)

    @sc.handler
    def outer() -> None:
        step()

    def op() -> None:
        if shape == "handler":
            step()
        elif shape == "block":
            with space.transact():
                c.set(c.get() + 1)
        elif shape == "nested":
            with space.transact(), space.transact():
                c.set(c.get() + 1)
        elif shape == "same object":
            block = space.transact()
            with block, block:
                c.set(c.get() + 1)
        else:
            outer()

    def committed() -> int:
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(c.get()))
        thread.start()
        thread.join()
        return seen[0]

    source = _tx.__file__
    points = 0
    for k in range(1, 200):
        calls = [0]

        def tracer(frame: Any, event: str, _arg: Any, k: int = k, calls: list[int] = calls) -> Any:
            if event == "call" and frame.f_code.co_filename == source:
                calls[0] += 1
                if calls[0] == k:
                    raise KeyboardInterrupt
            return None

        before = committed()
        sys.settrace(tracer)
        try:
            op()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        if calls[0] < k:
            break  # every point was tried
        points += 1
        assert current_transaction() is None, k
        assert _tx._scopes.get() == (), k
        after = committed()
        assert after in (before, before + 1), k
        assert isinstance(step(), int) and committed() == after + 1, k
    assert points >= 10


def test_an_outer_block_does_not_commit_a_task_s_nested_block_half_done(rt: sc.Runtime) -> None:
    """A task made inside a block joins its transaction; the block ended while the task's own
    nested block (or handler) had written and not ended: those writes were committed, and
    then the nested block raised — "a nested block that raises writes nothing" broken. The
    outer block now commits nothing and says why; a task that joined and wrote nothing yet
    does not stop the commit."""
    space = rt.space("demo")
    c, d = space.cell("c", default=0), space.cell("d", default=0)

    @sc.handler
    async def half() -> None:
        c.set(2)
        await asyncio.sleep(0.05)
        raise ValueError("the handler fails after the block ended")

    async def nested() -> None:
        with space.transact():
            c.set(1)
            await asyncio.sleep(0.05)
            raise ValueError("the nested block fails after the block ended")

    async def main() -> list[BaseException]:
        errors: list[BaseException] = []
        for make in (nested, half):
            try:
                with space.transact():
                    d.set(1)
                    task = asyncio.create_task(make())
                    await asyncio.sleep(0.01)  # the task has written
            except sc.TransactionError as exc:
                errors.append(exc)
            with pytest.raises(ValueError, match="after the block ended"):
                await task
        return errors

    errors = asyncio.run(main())
    assert len(errors) == 2 and all(type(e) is sc.TransactionError for e in errors)
    assert all("had written and not ended" in str(e) for e in errors)
    assert (c.get(), d.get()) == (0, 0)


def test_blocks_left_out_of_order_say_so_and_commit_nothing(rt: sc.Runtime) -> None:
    """Errors: an outer block left before the block nested in it (``__exit__`` called by hand,
    as a notebook or an ExitStack used wrongly may) said that an asyncio task had written, and
    the inner block's exit then returned as if its writes had been committed. Each says what
    happened now; nothing is committed and no transaction stays current."""
    space = rt.space("demo")
    a, b = space.cell("a", default=0), space.cell("b", default=0)
    outer, inner = space.transact(), space.transact()
    outer.__enter__()
    b.set(1)
    inner.__enter__()
    a.set(11)
    with pytest.raises(sc.TransactionError, match="left before a block nested in it") as first:
        outer.__exit__(None, None, None)
    assert "asyncio" not in str(first.value)
    with pytest.raises(sc.TransactionError, match="rolled back before the block ended"):
        inner.__exit__(None, None, None)
    assert current_transaction() is None
    assert (a.get(), b.get()) == (0, 0)
    with space.transact():  # the space commits as before
        a.set(1)
    assert a.get() == 1


def test_a_transact_block_used_as_a_decorator_says_to_use_with(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    with pytest.raises(InvalidArgument, match="not a decorator") as raised:

        @space.transact()  # type: ignore[operator]
        def body() -> None:
            pass

    assert isinstance(raised.value, TypeError) and "@sc.handler" in str(raised.value)
    with pytest.raises(InvalidArgument, match="decorates a function"):
        sc.handler(space.transact())


def test_a_transact_block_used_with_async_with_says_to_use_with(rt: sc.Runtime) -> None:
    """``async with space.transact():`` raised Python's own TypeError (no asynchronous context
    manager protocol), not one of ours."""
    space = rt.space("demo")
    c = space.cell("c", default=0)

    async def body() -> None:
        async with space.transact():
            c.set(1)

    with pytest.raises(InvalidArgument, match="not an `async with` one") as raised:
        asyncio.run(body())
    assert isinstance(raised.value, TypeError) and "@sc.handler" in str(raised.value)
    assert c.get() == 0 and current_transaction() is None
    with space.transact():
        c.set(2)
    assert c.get() == 2


def test_a_nested_block_left_from_elsewhere_takes_back_what_it_writes_after(
    rt: sc.Runtime,
) -> None:
    """A nested block left by mistake from another thread had its writes taken back then, but
    what it wrote after went into the outer transaction and was committed, while its own exit
    said its writes were taken back. Its own exit takes those back too."""
    space = rt.space("demo")
    a, b, d = (space.cell(name, default=0) for name in "abd")
    nested = space.transact()
    with space.transact():
        d.set(1)
        with pytest.raises(sc.TransactionError, match="had been left from another thread"):  # noqa: SIM117
            with nested:
                a.set(1)
                assert type(_left_from_another_thread(nested)) is sc.TransactionError
                b.set(2)  # after the wrong exit: still this block's write
        assert (a.get(), b.get(), d.get()) == (0, 0, 1)  # what the outer block sees now
    assert (a.get(), b.get(), d.get()) == (0, 0, 1)


def test_threads_sharing_one_block_object_each_commit_their_own(rt: sc.Runtime) -> None:
    """One ``transact()`` object entered by eight threads at once, each its own transaction:
    the list of its entries was read and changed without a lock, so some exits raised a raw
    ``IndexError`` (or could end another thread's entry)."""
    space = rt.space("demo")
    threads = 8
    cells = [space.cell(f"t{k}", default=0) for k in range(threads)]
    shared = space.transact()
    done = [0] * threads
    errors: list[BaseException] = []

    def work(k: int) -> None:
        for _ in range(150):
            try:
                with shared:
                    cells[k].set(cells[k].get() + 1)
                done[k] += 1
            except BaseException as exc:  # handed to the asserts
                errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert [c.get() for c in cells] == done == [150] * threads
    assert shared._entries == []

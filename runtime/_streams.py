"""How a node's values leave the scheduler thread: as a reactivex observable (``observe()``) and
as an asyncio iterator (``Query.states()``, ``Query.first()``).

Values are computed and delivered on the scheduler thread. A plain subscriber is called there
(decisions.md); asyncio code is not: its futures and queues may be touched only on their own
loop, and a value set from another thread neither is safe nor wakes the loop. So what is meant
for an event loop is handed to it with ``loop.call_soon_threadsafe``, in order. An event loop
that runs on the scheduler thread itself (in a subscriber) would wait in vain for what that
thread delivers: it gets the current value only, and a wait for a later one is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from sqlite_cells.codec import ClosedError, TransactionError, brief_repr
from sqlite_cells.runtime._boundary import InvalidArgument

if TYPE_CHECKING:
    from reactivex import Observable, abc

    from sqlite_cells.runtime._cell import Cell, Reactive
    from sqlite_cells.runtime._scheduler import Node, Subscription

__all__ = ["AWAKE_EVERY", "NodeValues", "awake", "node_values", "observe_node"]

# How often the event loop wakes while a task awaits what another thread ends (a commit, a
# settle, a node's next value): a notebook kernel notes its interrupt where nothing wakes the
# loop (``loop.call_soon`` from its SIGINT handler), so a loop woken by nothing else took the
# interrupt only once that work ended — never, for a value that never comes.
AWAKE_EVERY: Final = 0.1


@contextlib.contextmanager
def awake() -> Iterator[None]:
    """Wake the running event loop every :data:`AWAKE_EVERY` seconds while inside, so that a
    cancellation noted without a wake-up (a kernel's interrupt) reaches the waiting task."""
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal timer
        timer = loop.call_later(AWAKE_EVERY, tick)

    tick()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


def observe_node(owner: Cell | Reactive) -> Observable[Any]:
    """The stream of the values of ``owner``'s node. The observable holds ``owner``, not only
    its node: a node lives as long as the object it was made for (``own``), so one
    subscribed to later must still be in the graph. reactivex is imported here, at the first
    ``observe()``: a program that never asks for an observable (the command) never loads it.

    Subscribed with a reactivex asyncio scheduler (as ``await observable`` and
    ``ops.to_future`` do), each notification is handed to that scheduler's loop; otherwise it is
    delivered on the scheduler thread."""
    import reactivex
    from reactivex.disposable import Disposable

    owner._scheduler().check_forked()  # (at the call, as every other call refuses there)

    def on_subscribe(
        observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        _refuse_not_callable(observer)
        _refuse_async(observer)
        loop = _loop_of(scheduler)
        node = _node_unless_closed(owner)
        if node is None:  # the stream has ended: a subscription that does nothing
            ends = observer.on_completed
            owner._scheduler().ended(
                ends if loop is None else _OnLoop(loop, threading.Event()).handing_completion(ends)
            )
            return Disposable()
        if loop is not None and node.scheduler.settles_at_once and _runs_here(loop):
            return _current_only(node, observer, loop)
        if loop is None:
            subscription = node.scheduler.subscribe(
                node, observer.on_next, observer.on_error, observer.on_completed
            )
            return Disposable(subscription.dispose)
        disposed = threading.Event()
        on_loop = _OnLoop(loop, disposed)
        subscription = node.scheduler.subscribe(
            node,
            on_loop.handing(observer.on_next),
            on_loop.handing(observer.on_error),
            on_loop.handing_completion(observer.on_completed),
        )

        def dispose() -> None:
            disposed.set()  # what is already on its way to the loop is dropped there
            subscription.dispose()

        return Disposable(dispose)

    return reactivex.create(on_subscribe)


def _refuse_not_callable(observer: abc.ObserverBase[Any]) -> None:
    """Refuse a subscriber that cannot be called (``subscribe("x")``): accepted, it failed at
    each delivery, on the scheduler thread, where only the log said so. reactivex keeps what
    ``subscribe`` was given under these names (``None`` given: its own default, callable). A
    non-callable ``on_error`` could not be told of the refusal (reactivex hands an error raised
    at subscription to it): it is replaced by one that raises, so ``subscribe`` raises it."""
    for name in ("_on_next", "_on_error", "_on_completed"):
        fn = getattr(observer, name, None)
        if fn is None or callable(fn):
            continue
        if not callable(getattr(observer, "_on_error", None)):
            observer._on_error = _raise  # type: ignore[attr-defined]  # (reactivex's own field)
        raise InvalidArgument(
            f"observe().subscribe() takes functions: {name[1:]} is {brief_repr(fn)}, which "
            "cannot be called; give a function of one argument, e.g. subscribe(print) or "
            "subscribe(lambda value: ...), or an observer with on_next, on_error and "
            "on_completed methods"
        )


def _raise(error: Exception) -> None:
    raise error


def _refuse_async(observer: abc.ObserverBase[Any]) -> None:
    """Refuse an ``async def`` subscriber: it is called where nothing awaits it (the scheduler
    thread, or a loop's callback), so each value would make a coroutine that never runs, said
    only by Python's "never awaited" warning. The functions given to ``subscribe`` (or an
    observer's methods) are kept by reactivex's observer under these names."""
    for name in ("_on_next", "_on_error", "_on_completed"):
        fn = getattr(observer, name, None)
        if callable(fn) and (
            inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__)  # an object with async __call__
        ):
            raise InvalidArgument(
                f"observe().subscribe() takes plain functions, not the async function "
                f"{brief_repr(fn)}: a subscriber is called where nothing awaits it, so its body "
                "would never run; subscribe a plain def that hands each value to the loop "
                "(asyncio.run_coroutine_threadsafe(fn(value), loop)), or, for a query, iterate "
                "`async for state in q.states()`"
            )


def _node_unless_closed(owner: Cell | Reactive) -> Node | None:
    """``owner``'s node, or None once the runtime is closed: a cell's node made then would read
    the closed space file (a ``ClosedError``), where a cell observed before the close is told
    the stream ended — one end of the stream for every cell, key path, derived cell and
    query (decisions.md, "After close: a late subscriber is told the stream ended")."""
    scheduler = owner._scheduler()
    if scheduler.closed:
        return None
    try:
        return owner._node()
    except ClosedError:
        if scheduler.closed:  # (closed meanwhile)
            return None
        raise


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs on this thread
        return False


def _current_only(
    node: Node, observer: abc.ObserverBase[Any], loop: asyncio.AbstractEventLoop
) -> abc.DisposableBase:
    """A subscription made on the scheduler thread for an event loop that runs on it (``await
    c.observe().pipe(ops.first())`` in a subscriber): the loop blocks the thread that would
    deliver, so a value delivered later would be waited for in vain, and the runtime with it.
    It gets the current value at once, then ``on_error`` (:class:`TransactionError`) for any
    later one, so that an await ends either way (``ops.first()`` has left by then: the error is
    not delivered)."""
    from reactivex.disposable import Disposable

    disposed = threading.Event()
    on_loop = _OnLoop(loop, disposed)
    what, waited = "observe() subscribed from an event loop", "a further value"
    try:
        value = _value_here(node, what, waited)
    except Exception as exc:  # (the node's own error as it came, or the wait refused)
        on_loop.handing(observer.on_error)(exc)
    else:
        on_loop.handing(observer.on_next)(value)
        on_loop.handing(observer.on_error)(_cannot_wait(what, waited))
    return Disposable(disposed.set)


def _loop_of(scheduler: abc.SchedulerBase | None) -> asyncio.AbstractEventLoop | None:
    """The event loop of a reactivex asyncio scheduler (``AsyncIOThreadSafeScheduler`` is one
    too), None for any other scheduler or none."""
    if scheduler is None:
        return None
    from reactivex.scheduler.eventloop import AsyncIOScheduler

    if not isinstance(scheduler, AsyncIOScheduler):
        return None
    loop: asyncio.AbstractEventLoop = scheduler._loop
    return loop


class _OnLoop:
    """Hands calls to ``loop``, in the order they are made, until ``disposed`` is set. A loop
    that has closed has nobody left to tell: the call is dropped, quietly (the scheduler thread
    would otherwise log it as a subscriber's failure)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, disposed: threading.Event) -> None:
        self._loop = loop
        self._disposed = disposed

    def _hand(self, call: Callable[[], None]) -> None:
        def run() -> None:
            if not self._disposed.is_set():
                call()

        with contextlib.suppress(RuntimeError):  # "Event loop is closed"
            self._loop.call_soon_threadsafe(run)

    def handing(self, deliver: Callable[[Any], None]) -> Callable[[Any], None]:
        return lambda value: self._hand(lambda: deliver(value))

    def handing_completion(self, deliver: Callable[[], None]) -> Callable[[], None]:
        return lambda: self._hand(deliver)


def node_values(owner: Cell | Reactive, what: str, waited: str) -> NodeValues:
    """The current value of ``owner``'s node, then each change, on the running event loop.

    The stream's end is raised, never waited out: ``on_error``'s error as it came, and the
    runtime closing (or closed at the call, when the subscription completes at once) as a
    ``ClosedError`` naming ``what`` — a loop waiting for a next value would otherwise wait for
    ever. Leaving the loop unsubscribes: see :class:`NodeValues`.

    On the scheduler thread (a subscriber or derive function that runs an event loop), or where
    the scheduler waits for the caller (see ``Scheduler.building``), nothing is delivered while
    the caller waits: only the current value is yielded, and asking for another (``waited``,
    what the caller would wait for) raises :class:`TransactionError` at once, as
    ``rt.settled()`` returns at once there, instead of stopping the runtime's deliveries."""
    return NodeValues(owner, what, waited)


class NodeValues(AsyncIterator[Any]):
    """The async iterator :func:`node_values` returns. It subscribes at its first ``__anext__``
    and lets go of the subscription when it ends (its error, the runtime closing, a cancelled
    wait: it yields nothing more after), at ``aclose()``, and when it is dropped — an ``async
    for`` left by ``break`` or ``return`` closes nothing, and an async generator left so kept
    its subscription until the loop's shutdown closed it: never, on a loop run by hand.

    Dropped, it is let go by a finalizer, which may run where the scheduler thread holds its
    lock: the subscription is handed over as an orphan (:meth:`Scheduler.orphan`), which never
    waits for that lock. The subscriber's callbacks hold the queue, never this object, so that
    the subscription does not keep it alive."""

    def __init__(self, owner: Cell | Reactive, what: str, waited: str) -> None:
        self._owner = owner
        self._what = what
        self._waited = waited
        self._queue: asyncio.Queue[tuple[bool, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop _queue is fed on
        self._here = False  # on the scheduler thread: the current value was yielded
        self._ended = False
        self._end: weakref.finalize[[threading.Event, Subscription], NodeValues] | None = None

    def __aiter__(self) -> NodeValues:
        return self

    async def __anext__(self) -> Any:
        if self._ended:
            raise StopAsyncIteration
        self._follow_loop()  # (raised before the try: the other loop's stream goes on)
        try:
            return await self._next()
        except BaseException:
            self._close()  # (as a generator that raised: it is over)
            raise

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        self._ended = True
        if self._end is not None:
            self._end()  # (once: a finalizer called again does nothing)

    def _follow_loop(self) -> None:
        """Awaited on another event loop than the one its values were handed to: when that
        loop no longer runs (``asyncio.run`` called again, a loop run by hand and left), the
        values handed there are never delivered, so the subscription is let go and made anew
        on this loop — its current value comes next, then each change, as from a new stream.
        While that loop runs (in another thread) the stream is its own: ``TransactionError``
        (asyncio's queue said only that it "is bound to a different event loop")."""
        if self._loop is None or self._loop is asyncio.get_running_loop():
            return
        if self._loop.is_running():
            raise TransactionError(
                f"{self._what} is awaited on an event loop other than the one running in "
                "another thread, where it was first awaited and its values are handed: one "
                "stream goes to one loop; call it again on this loop for a stream of its own"
            )
        if self._end is not None:
            self._end()
        self._queue = self._loop = self._end = None

    async def _next(self) -> Any:
        queue = self._queue
        if queue is None:
            if self._here:
                raise _cannot_wait(self._what, self._waited)
            node = self._owner._node()
            if node.scheduler.settles_at_once:
                if node.scheduler.closed:
                    raise _closed(self._what)
                self._here = True
                return _value_here(node, self._what, self._waited)
            queue = self._queue = asyncio.Queue()
            disposed = threading.Event()
            self._loop = asyncio.get_running_loop()
            on_loop = _OnLoop(self._loop, disposed)
            subscription = node.scheduler.subscribe(
                node,
                on_loop.handing(lambda value: queue.put_nowait((True, value))),
                on_loop.handing(lambda error: queue.put_nowait((False, error))),
                on_loop.handing_completion(lambda: queue.put_nowait((False, None))),
            )
            self._end = weakref.finalize(self, _let_go, disposed, subscription)
            self._end.atexit = False  # at exit there is nothing left to release
        with awake():  # (a kernel's interrupt of the wait lands at once)
            is_value, item = await queue.get()
        if is_value:
            return item
        if item is None:
            raise _closed(self._what)
        raise item


def _let_go(disposed: threading.Event, subscription: Subscription) -> None:
    """End a :class:`NodeValues`' subscription, from any thread, never waiting for the
    scheduler's lock (a finalizer may run where its thread holds it)."""
    disposed.set()  # what is already on its way to the loop is dropped there
    subscription.node.scheduler.orphan(subscription)


def _closed(what: str) -> ClosedError:
    return ClosedError(
        f"{what}: the runtime is closed, so no further value comes; open a new Runtime to read "
        "it again"
    )


def _value_here(node: Node, what: str, waited: str) -> Any:
    """(Where the scheduler cannot deliver while the caller waits: see :func:`node_values`.)
    The node's current value — computed inline on the scheduler thread, as ``get()`` does
    there — or the error its computation raised."""
    if not (node.scheduler.on_thread or node.ready.is_set()):
        raise _cannot_wait(what, waited)
    value = node.current()
    if node.error is not None:
        raise node.error
    return value


def _cannot_wait(what: str, waited: str) -> TransactionError:
    return TransactionError(
        f"{what} cannot wait for {waited} here: it runs on the runtime's scheduler thread (in a "
        "subscriber, or a derive or lift function), which delivers nothing while it waits, so "
        "the wait would never end; read the current value there (.get()), or await it outside "
        "subscribers and derived functions"
    )

"""How a node's values leave the scheduler thread: as a reactivex observable (``observe()``) and
as an asyncio iterator (``Query.states()``, ``Query.first()``).

Values are computed and delivered on the scheduler thread. A plain subscriber is called there
(decisions.md); asyncio code is not: its queues may be touched only on their own loop, and a
value put from another thread neither is safe nor wakes the loop. So what is meant for an
event loop is handed to it with ``loop.call_soon_threadsafe``, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlite_cells.codec import ClosedError

if TYPE_CHECKING:
    from reactivex import Observable, abc

    from sqlite_cells.runtime._cell import Cell, Reactive

__all__ = ["node_values", "observe_node"]


def observe_node(owner: Cell | Reactive) -> Observable[Any]:
    """The stream of the values of ``owner``'s node. The observable holds ``owner``, not only
    its node: a node lives as long as the object it was made for (``own``), so one
    subscribed to later must still be in the graph. reactivex is imported here, at the first
    ``observe()``: a program that never asks for an observable (the command) never loads it."""
    import reactivex
    from reactivex.disposable import Disposable

    def on_subscribe(
        observer: abc.ObserverBase[Any], _scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        node = owner._node()
        subscription = node.scheduler.subscribe(
            node, observer.on_next, observer.on_error, observer.on_completed
        )
        return Disposable(subscription.dispose)

    return reactivex.create(on_subscribe)


async def node_values(owner: Cell | Reactive, what: str) -> AsyncIterator[Any]:
    """The current value of ``owner``'s node, then each change, on the running event loop.

    The stream's end is raised, never waited out: ``on_error``'s error as it came, and the
    runtime closing (or closed at the call, when the subscription completes at once) as a
    ``ClosedError`` naming ``what`` — a loop waiting for a next value would otherwise wait for
    ever. Leaving the loop unsubscribes."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()

    def put(item: tuple[bool, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    node = owner._node()
    subscription = node.scheduler.subscribe(
        node,
        lambda value: put((True, value)),
        lambda error: put((False, error)),
        lambda: put((False, None)),
    )
    try:
        while True:
            is_value, item = await queue.get()
            if is_value:
                yield item
            elif item is None:
                raise ClosedError(
                    f"{what}: the runtime is closed, so no further value comes; "
                    "open a new Runtime to read it again"
                )
            else:
                raise item
    finally:
        subscription.dispose()

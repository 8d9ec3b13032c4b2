"""Turns: one async handler at a time retries its body and commit in a space (SPEC §3).

An async handler cannot hold the space's write lock across its body's awaits (the lock belongs
to a thread, and other code on the same event loop may need it meanwhile), so its tries are
optimistic. Many tasks bumping one cell all read the same revision, and each round only one of
them commits: without more, most of them would run out of tries. A handler that keeps
conflicting therefore waits for its *turn* in the space — first come, first served, across event
loops and threads — and keeps it until its call ends, so the handlers that retry no longer
collide with each other. Waiting never blocks a loop, and it is bounded: a body that itself
awaits another handler's call (which may be waiting for the same turn) cannot deadlock; after
``patience`` seconds the waiter goes on optimistically, as before.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

__all__ = ["Turns"]


class Turns:
    """A first-come-first-served turn that tasks on any event loop wait for without blocking."""

    def __init__(self) -> None:
        # _lock guards _held, _holder (the loop the turn's holder runs on) and _waiting (each
        # waiter's loop and the future it awaits).
        self._lock = threading.Lock()
        self._held = False
        self._holder: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def take(self, patience: float) -> bool:
        """Wait for the turn, at most ``patience`` seconds: True once it is the caller's (who
        must then ``give_back()``), False when the wait ran out. Cancelled while waiting, the
        caller holds nothing (a turn handed over meanwhile is passed on)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._held or (self._holder is not None and self._holder.is_closed()):
                # Free, or held by a task of a loop closed with it pending: that task never
                # ends its turn (and when its coroutine is collected, its give_back is not
                # the turn's any more).
                self._held, self._holder = True, loop
                return True
            granted: asyncio.Future[None] = loop.create_future()
            self._waiting.append((loop, granted))
        try:
            await asyncio.wait_for(asyncio.shield(granted), patience)
        except BaseException as exc:
            with self._lock:
                try:
                    self._waiting.remove((loop, granted))
                except ValueError:
                    handed = True  # handed over while the wait ended: the turn is ours
                else:
                    handed = False
            if handed and isinstance(exc, TimeoutError):
                return True
            if handed:
                self.give_back()
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True

    def give_back(self) -> None:
        """End the caller's turn: the next waiter (on whatever loop) gets it. A call from
        outside the holder's loop (a coroutine of a closed loop, collected) gives back nothing:
        the turn was taken from it."""
        try:
            mine: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            mine = None
        with self._lock:
            if mine is not self._holder:
                return
            while self._waiting:
                loop, granted = self._waiting.popleft()
                try:
                    loop.call_soon_threadsafe(_grant, granted)
                except RuntimeError:
                    continue  # its loop is closed: nobody waits there any more
                self._holder = loop
                return  # handed over: still held
            self._held, self._holder = False, None


def _grant(granted: asyncio.Future[None]) -> None:
    if not granted.done():
        granted.set_result(None)

"""The space's write lock held for one try of an async handler (SPEC §3: handlers try at most
10 times in all).

A sync handler that keeps conflicting runs its body holding the space's write lock
(``SpaceFile.exclusive``), so no writer of any process can make it conflict again. An async body
runs on the event loop and awaits, and the lock belongs to a thread: a :class:`LockHolder` is a
thread of its own that takes the lock (and SQLite's write lock), tells the loop, waits for the
body's transaction and commits it inside the lock, where it cannot conflict. Waiting is bounded:
a body that does not ask within ``patience`` seconds (it awaits something slow, or another
handler's commit that waits for this very lock) has the lock let go, and its commit then goes
the optimistic way (the turns of ``_turns`` keep the async handlers of one process from
colliding meanwhile). Nor does a holder keep the lock from a commit made on its own loop's
thread (sync code on the loop): that commit blocks the loop, so the body cannot ask; the holder
lets go at once and no other holder of that loop takes the lock until the commit is done (see
``SpaceFile.exclusive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from typing import TYPE_CHECKING, Any

from sqlite_cells.codec import SqliteCellsError

if TYPE_CHECKING:
    from sqlite_cells.runtime._space_file import SpaceFile
    from sqlite_cells.runtime._tx import Transaction

__all__ = ["LockHolder", "settle_future"]


class LockHolder:
    """A thread holding ``space``'s write lock until it has committed one transaction, was let
    go, or ``patience`` seconds passed without a transaction to commit."""

    def __init__(self, space: SpaceFile, patience: float) -> None:
        self._space = space
        self._patience = patience
        self._loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()  # the thread running _loop (we are on it)
        # _lock guards _job and _gone; _asked is set once either is.
        self._lock = threading.Lock()
        self._asked = threading.Event()
        self._job: tuple[Transaction, contextvars.Context, asyncio.Future[int]] | None = None
        self._gone = False  # the lock was let go (or never taken): nothing more is committed
        self._entered: asyncio.Future[None] = self._loop.create_future()
        holder = threading.Thread(target=self._hold, name="sqlite-cells-lock-holder", daemon=True)
        try:
            holder.start()
        except RuntimeError as exc:  # (the system's limit on threads or processes)
            raise SqliteCellsError(
                f"space {space.space_id!r}: an async handler that kept conflicting tries again "
                "holding the space's write lock, from a thread of its own, and this process may "
                f"start no more threads ({exc}); nothing of this try was committed: close "
                "runtimes no longer used or raise the limit on threads, then call it again"
            ) from exc

    async def held(self) -> None:
        """Return once the lock is held (the space caught up with every commit); raise what
        taking it raised (a closed runtime, a lock wait that ran out). Cancelled, the lock is
        let go as soon as it is taken."""
        try:
            await asyncio.shield(self._entered)
        except BaseException:
            self.let_go()
            self._entered.add_done_callback(_retrieved)  # nobody awaits it any more
            raise

    def commit(self, tx: Transaction) -> asyncio.Future[int] | None:
        """Have ``tx`` committed inside the lock: the future of its seq, or None when the lock
        is no longer held (or ``tx`` writes another space), and the caller commits it itself."""
        if tx.space is not self._space:
            self.let_go()
            return None
        future: asyncio.Future[int] = self._loop.create_future()
        with self._lock:
            if not self._gone:
                self._job = (tx, contextvars.copy_context(), future)
            self._asked.set()
            return None if self._gone else future

    def let_go(self) -> None:
        """Release the lock without committing (at once if held, else as soon as it is taken)."""
        with self._lock:
            if self._job is None:
                self._gone = True
            self._asked.set()

    def _hold(self) -> None:
        try:
            with self._space.exclusive(holder=self):
                self._tell(self._entered, None)
                self._asked.wait(self._patience)
                with self._lock:
                    job, self._gone = self._job, True
                if job is not None:
                    tx, context, future = job
                    try:
                        seq = context.run(self._space.commit, tx)
                    except BaseException as exc:
                        self._tell(future, exc)
                    else:
                        self._tell(future, seq)
        except BaseException as exc:
            with self._lock:
                self._gone = True
            self._tell(self._entered, exc)

    def _tell(self, future: asyncio.Future[Any], outcome: object) -> None:
        """Settle ``future`` on its loop with a result, or an exception when ``outcome`` is one
        (a loop closed meanwhile has nobody left to tell)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(functools.partial(settle_future, future, outcome))


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def settle_future(future: asyncio.Future[Any], outcome: object) -> None:
    """Give ``future`` ``outcome`` (an exception is raised by it), unless it is done already (its
    awaiter gave up). Called on the future's loop."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)

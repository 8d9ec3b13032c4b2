"""A backstop for a write's deadline (R44): the user statement SQLite's own checks cannot see.

The write connection's progress handler holds ``exec_timeout``; SQLite calls it only where a
statement loops (a jump back, a next row), and only every 1,000 VM steps. A statement whose
steps are each one long *linear* call (``randomblob``, ``zeroblob``, ``printf``, ``upper``,
``hex``, ``||`` of large values; the quadratic builtins are kept under the deadline by
:mod:`sqlite_cells.write._calls`) reaches 1,000 steps after many seconds, or never: 20 rows of
``length(randomblob(60000000))`` under ``exec_timeout=0.5`` ran 3.2 s and committed, and the
space's write lock was held all along.

So a watchdog thread (one per runtime) looks at the armed user statements every ``TICK``: one
still running ``GRACE`` past its deadline gets ``interrupt()`` on its connection, which SQLite
checks at every loop point (not only every 1,000 steps), and the statement's ``run_user``
reports it as ``apsw.InterruptError`` (the error of the progress handler's interrupt, which the
fold turns into ``ExecTimeout`` and a rollback) even when the statement finished meanwhile.
SQLite checks for an interrupt at no point *inside* one row's expressions: a statement of one
row holding many long calls still runs to that row's end, and only then fails (so it is never
written past its deadline, but it keeps the lock that long).

Safety: an interrupt must only ever stop the statement it was meant for, never the runtime's
own statements of the commit (capture, the journal, ``COMMIT``, ``ROLLBACK``). Each
:class:`Watch` has a lock; arming gives the statement a token, and the watchdog checks the
token and calls ``interrupt()`` under that lock, while ``disarm`` clears the token under it,
right after the statement returns. So no interrupt is called once ``disarm`` returned, and one
that was called (``fired``) makes ``run_user`` fail the op. SQLite forgets a pending interrupt
when a statement starts while no other one is active on the connection; the commit path leaves
none active across a user statement (each of its cursors is run to its end or dropped), so the
statements that roll a timed-out op back start clean.

Cost: arming and disarming are a few attribute assignments under an uncontended lock. The
thread never wakes per op: it ticks while a statement was armed in the last ``LINGER``, then
sleeps on its condition (an arm wakes it only then) and ends after ``IDLE_EXIT`` more; the next
arm starts it again. ``close()`` ends it; a forked child forgets the parent's (its thread does
not exist there) and starts its own if it ever writes.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Final

import apsw

__all__ = ["GRACE", "IDLE_EXIT", "LINGER", "STOP_WAIT", "TICK", "Watch", "Watchdog"]

GRACE: Final = 0.1  # past a statement's deadline before it is interrupted (the handler is first)
TICK: Final = 0.05  # between two looks while statements are being armed
LINGER: Final = 1.0  # ticks go on this long after the last arm
IDLE_EXIT: Final = 2.0  # then the thread sleeps this long, and ends if nothing was armed
STOP_WAIT: Final = 2.0  # close() interrupts the armed statements again for this long at most


class Watch:
    """The watchdog's view of one write connection: the user statement running on it, if any.
    Used by that connection's writer (under its space's write lock) and by the watchdog."""

    # The connection is held only while a statement is armed: the write path's state of a
    # connection never keeps it alive (see write/_conn.py).
    __slots__ = (
        "__weakref__",
        "_conn",
        "_deadline",
        "_fired",
        "_lock",
        "_serial",
        "_token",
        "_used",
        "dog",
    )

    def __init__(self) -> None:
        # _lock guards _token (the armed statement's, 0: none), _conn, _deadline, _fired (the
        # watchdog interrupted the armed statement) and _used (armed since the last look).
        self._lock = threading.Lock()
        self._token = 0
        self._serial = 0  # the last token given
        self._conn: apsw.Connection | None = None
        self._deadline = 0.0
        self._fired = False
        self._used = False
        self.dog: Watchdog | None = None  # the watchdog this watch is known to

    def arm(self, conn: apsw.Connection, deadline: float, dog: Watchdog) -> int:
        """A user statement starts on ``conn``, due by ``deadline`` (``time.monotonic()``);
        the token to :meth:`disarm` it with."""
        if self.dog is not dog:
            dog.add(self)
        with self._lock:
            token = self._token = self._serial = self._serial + 1
            self._conn, self._deadline, self._fired, self._used = conn, deadline, False, True
        # Looked at once armed: a close() that began before this reads True here, and one that
        # began after finds the statement armed and stops it (see Watchdog.close).
        if dog.closed:
            self.disarm(token)
            raise apsw.InterruptError("the runtime was closed before the statement ran")
        if dog.sleeping:
            try:
                dog.wake()
            except BaseException:  # a KeyboardInterrupt in the thread's start: nothing armed
                self.disarm(token)
                raise
        return token

    def disarm(self, token: int) -> bool:
        """The statement armed with ``token`` returned: no interrupt comes after this. Whether
        the watchdog interrupted it."""
        with self._lock:
            fired = self._fired and self._token == token
            self._token, self._conn, self._fired = 0, None, False
        return fired

    @property
    def fired(self) -> bool:
        """Whether the watchdog has interrupted the armed statement (read without the lock: a
        flag that only the watchdog sets while armed)."""
        return self._fired

    def look(self, now: float) -> bool:
        """One look of the watchdog: interrupt the armed statement if it is ``GRACE`` past its
        deadline — at every look until it is disarmed: an interrupt that comes before SQLite
        has started the statement (armed already overdue) is a no-op, and the next one stops
        it. Whether a statement is armed or was since the last look."""
        with self._lock:
            used, self._used = self._used, False
            if not self._token:
                return used
            if now > self._deadline + GRACE:
                self._interrupt()
            return True

    def stop(self) -> bool:
        """The runtime closes: interrupt the armed statement now, whatever its deadline (its
        op fails, and its transaction rolls back), so that close() does not wait for it as
        long as ``exec_timeout``. Whether a statement is armed (an interrupt that came before
        SQLite started it was a no-op: see :meth:`look`)."""
        with self._lock:
            return bool(self._token) and self._interrupt()

    def _interrupt(self) -> bool:
        """Interrupt the armed statement (called with the lock held, a token set); False when
        its connection is closed: no statement of it runs any more."""
        assert self._conn is not None  # set with the token
        try:
            self._conn.interrupt()
        except apsw.Error:
            self._token, self._conn = 0, None
            return False
        self._fired = True
        return True

    def _forked(self) -> None:
        self._lock = threading.Lock()  # the parent's holder is no thread here
        self._token, self._conn, self._fired, self._used = 0, None, False, False


class Watchdog:
    """The thread that interrupts the armed statements of its :class:`Watch` es past their
    deadline (see the module doc). Made idle; its thread starts at the first arm."""

    def __init__(self) -> None:
        # _lock guards _watches, _thread, _closed and sleeping; _wake signals the thread on it.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._closed = False
        # True while no thread looks (none yet, or it sleeps): an arm then wakes it. Read
        # without the lock by arm(), which looks again under it (see wake()).
        self.sleeping = True
        _DOGS.add(self)

    def add(self, watch: Watch) -> None:
        with self._lock:
            self._watches.add(watch)
            watch.dog = self

    def wake(self) -> None:
        """A statement was armed while the thread slept (or was none): let it look."""
        with self._lock:
            if self._closed or not self.sleeping:
                return
            self.sleeping = False
            if self._thread is not None:
                self._wake.notify()
                return
            thread = threading.Thread(
                target=self._run, name="sqlite-cells-write-watchdog", daemon=True
            )
            self._thread = thread
        try:
            thread.start()
        except BaseException as exc:
            # No thread to be had (RuntimeError): the progress handler alone holds the deadline.
            # A KeyboardInterrupt in start() may come before the thread ran or after: either
            # way none is ours now (one that runs sees it is replaced, and ends), and close()
            # joins no thread that never started.
            with self._lock:
                if self._thread is thread:
                    self._thread, self.sleeping = None, True
            if not isinstance(exc, RuntimeError):
                raise

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (read without the lock: set once, never cleared)."""
        return self._closed

    def close(self) -> None:
        """End the thread, and stop the statements armed now (see :meth:`Watch.stop`): the
        runtime closes, and its close waits for the commits under way."""
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
            watches = list(self._watches)
        # Each TICK while one stays armed: a statement armed an instant before SQLite starts
        # it misses the first interrupt (SQLite forgets one that comes while no statement of
        # the connection is active). One that does not stop within STOP_WAIT (one long call
        # of a row) is left to its deadline, as before.
        until = time.monotonic() + STOP_WAIT
        while [watch for watch in watches if watch.stop()] and time.monotonic() < until:
            time.sleep(TICK)
        if thread is not None and thread is not threading.current_thread() and thread.ident:
            thread.join(2 * TICK)  # (only a thread that started: ident is set then)

    def _look(self) -> bool:
        with self._lock:
            watches = list(self._watches)
        now = time.monotonic()
        busy = False
        for watch in watches:
            busy = watch.look(now) or busy
        return busy

    def _run(self) -> None:
        me = threading.current_thread()
        last_busy = time.monotonic()
        while True:
            if self._look():
                last_busy = time.monotonic()
            with self._lock:
                if self._thread is not me:
                    return  # forked away, or replaced
                if self._closed and not any(w._token for w in self._watches):
                    self._thread, self.sleeping = None, True
                    return
                if time.monotonic() - last_busy <= LINGER or self._closed:
                    self._wake.wait(TICK)  # close() cuts it short
                    continue
                self.sleeping = True
            # An arm that read ``sleeping`` before it was set is seen by this look.
            if self._look():
                with self._lock:
                    self.sleeping = False
                last_busy = time.monotonic()
                continue
            with self._lock:
                if self.sleeping and not self._closed:
                    self._wake.wait(IDLE_EXIT)
                if self.sleeping:  # nothing was armed meanwhile (wake() clears it)
                    self._thread = None
                    return
            last_busy = time.monotonic()


_DOGS: weakref.WeakSet[Watchdog] = weakref.WeakSet()


def _forked() -> None:
    """In a forked child no watchdog thread runs: each starts its own at its next arm."""
    for dog in list(_DOGS):
        dog._lock = threading.Lock()
        dog._wake = threading.Condition(dog._lock)
        dog._thread, dog.sleeping = None, True
        for watch in list(dog._watches):
            watch._forked()


os.register_at_fork(after_in_child=_forked)

"""How long a connection waits for a lock another connection holds, and how it waits.

SQLite's own busy timeout sleeps inside SQLite, where a Ctrl-C cannot reach the program until
the wait is over. :func:`wait_for_locks` waits instead in short sleeps of the interpreter, so a
Ctrl-C ends the wait at once (``KeyboardInterrupt`` out of the statement that waited), and
within the limits :func:`lock_waits` sets for the code it runs: a longest single wait and a
deadline; once one wait has run out, the others in the same body give up at once (a command
waits for a lock once, not once per file it reads). The command line sets them for each
command (a query's ``--timeout`` is its deadline, R44). A runtime's write connection waits
through :func:`set_lock_wait`: in sleeps a Ctrl-C ends too, for as long as the library's
timeouts say, or, opened inside :func:`lock_waits` (the command line's ``link`` and ``demo``),
as the command's other connections do."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import apsw

_STEP = 0.01  # seconds between two tries while another connection holds the lock

# Set in the context an async handler's commit runs in (a worker thread, which no Ctrl-C
# reaches): once the awaiting task is cancelled (a notebook's interrupt, ``task.cancel()``), a
# wait for another program's lock in that commit ends at once, as a Ctrl-C ends a sync one —
# but not a wait made for other callers' transactions too (see ``lock_waits_abandonable``).
_ABANDONED: ContextVar[threading.Event | None] = ContextVar("lock_waits_abandoned", default=None)


def abandon_lock_waits_on(event: threading.Event) -> None:
    """In the current context, the waits of :class:`_Waiter` end once ``event`` is set (the
    statement that waited fails as busy: nothing of a commit not begun is written)."""
    _ABANDONED.set(event)


def lock_waits_abandoned() -> bool:
    """Whether the caller of the current context gave up (the event of
    :func:`abandon_lock_waits_on` is set), whether or not its waits end for it (see
    :func:`lock_waits_abandonable`)."""
    abandoned = _ABANDONED.get()
    return abandoned is not None and abandoned.is_set()


# False while a thread waits on behalf of other callers too (a group commit's leader writing
# their transactions with its own): its own caller's giving up must not end those waits.
_ABANDONABLE: ContextVar[bool] = ContextVar("lock_waits_abandonable", default=True)


class lock_waits_abandonable:
    """In the body, the waits of :class:`_Waiter` end when the context's caller gives up (see
    :func:`abandon_lock_waits_on`) only if ``abandonable``. A class, not a generator context
    manager: it is entered twice per commit."""

    __slots__ = ("_abandonable", "_token")

    def __init__(self, *, abandonable: bool) -> None:
        self._abandonable = abandonable

    def __enter__(self) -> None:
        self._token = _ABANDONABLE.set(self._abandonable)

    def __exit__(self, *_exc: object) -> None:
        _ABANDONABLE.reset(self._token)


class _Limits:
    """The longest single wait in seconds and a ``time.monotonic()`` deadline (None: no
    limit); the deadline moves to now when a wait runs out."""

    def __init__(self, longest: float | None, deadline: float | None) -> None:
        self.longest = longest
        self.deadline = deadline


_LIMITS: ContextVar[_Limits | None] = ContextVar("lock_wait_limits", default=None)


@contextmanager
def lock_waits(longest: float | None = None, deadline: float | None = None) -> Iterator[None]:
    """Connections set up by :func:`wait_for_locks` in the body wait ``longest`` seconds at
    most for one lock, and never past ``deadline`` (a ``time.monotonic()`` value)."""
    token = _LIMITS.set(_Limits(longest, deadline))
    try:
        yield
    finally:
        _LIMITS.reset(token)


def wait_for_locks(conn: apsw.Connection, ms: int) -> None:
    """Let ``conn`` wait up to ``ms`` milliseconds for a lock (less within :func:`lock_waits`),
    then answer busy; a Ctrl-C while it waits is raised at once."""
    limits = _LIMITS.get() or _Limits(None, None)
    wait = ms / 1000 if limits.longest is None else min(ms / 1000, limits.longest)
    started = time.monotonic()

    def busy(count: int) -> bool:
        nonlocal started
        now = time.monotonic()
        if count == 0:
            started = now
        end = started + wait if limits.deadline is None else min(started + wait, limits.deadline)
        if now >= end:
            if limits.longest is not None:
                limits.deadline = now
            return False
        time.sleep(min(_STEP, end - now))
        return True

    conn.setbusyhandler(busy)


# SQLite's own busy timeout sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 ms, then 100 ms at a
# time (sqliteDefaultBusyCallback); _Waiter sleeps the same, so that only Ctrl-C changes.
_DELAYS = (0.001, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.025, 0.025, 0.050, 0.050, 0.100)
_TOTALS = tuple(sum(_DELAYS[:i]) for i in range(len(_DELAYS)))


class _Waiter:
    """A connection's busy handler outside :func:`lock_waits`: SQLite's busy timeout of
    ``wait`` seconds, step for step, but sleeping in the interpreter, so that a Ctrl-C (a
    notebook's interrupt) ends the wait at once, as the command line's waits end (SQLite's own
    sleeps where a Ctrl-C cannot reach the program: a commit waiting for another program's
    write lock ignored it for up to 30 s). One per connection, its wait changed in place: a
    commit changes it several times."""

    __slots__ = ("__weakref__", "given_up", "wait")

    def __init__(self) -> None:
        self.wait = 0.0
        self.given_up = False  # its connection is being closed: no wait goes on (give_up)

    def __call__(self, count: int) -> bool:
        if self.given_up or (_ABANDONABLE.get() and lock_waits_abandoned()):
            return False
        if count < len(_DELAYS):
            delay, prior = _DELAYS[count], _TOTALS[count]
        else:
            delay = _DELAYS[-1]
            prior = _TOTALS[-1] + delay * (count - len(_DELAYS) + 1)
        if prior + delay > self.wait:
            delay = self.wait - prior
            if delay <= 0:
                return False
        time.sleep(delay)
        return True


_WAITERS: weakref.WeakKeyDictionary[apsw.Connection, _Waiter] = weakref.WeakKeyDictionary()


def give_up_lock_waits(conn: apsw.Connection) -> None:
    """``conn`` is about to be closed: a wait for a lock in its busy handler (see
    :func:`set_lock_wait`) ends now, and none begins after (the statement waiting fails as
    busy), so that closing does not wait as long as another program holds the lock."""
    waiter = _WAITERS.get(conn)
    if waiter is None:
        waiter = _WAITERS[conn] = _Waiter()
        conn.setbusyhandler(waiter)
    waiter.given_up = True


def lock_waits_given_up(conn: apsw.Connection) -> bool:
    """Whether :func:`give_up_lock_waits` was called for ``conn``: a wait for a lock that ended
    busy ended because the connection is being closed, not because the lock stayed held."""
    waiter = _WAITERS.get(conn)
    return waiter is not None and waiter.given_up


def set_lock_wait(conn: apsw.Connection, ms: int) -> None:
    """Let ``conn`` wait up to ``ms`` milliseconds for a lock, in sleeps a Ctrl-C ends (see
    :class:`_Waiter`); inside :func:`lock_waits`, as :func:`wait_for_locks` does, within its
    limits (a command that opens a runtime, ``link`` or ``demo``, waits for the space's write
    lock as its other waits do)."""
    if _LIMITS.get() is not None:
        wait_for_locks(conn, ms)
        return
    waiter = _WAITERS.get(conn)
    if waiter is None:
        waiter = _WAITERS[conn] = _Waiter()
    waiter.wait = ms / 1000
    conn.setbusyhandler(waiter)  # (again: another wait may have been set on conn meanwhile)

"""Whether a thread is waiting on another thread: what tells a body that holds the space's write
lock and may wait for the very committer behind it (a deadlock to break) from one that is busy
and will let go by itself (a wait to sit out)."""

from __future__ import annotations

import concurrent.futures._base as _futures
import queue
import sys
import threading

__all__ = ["waiting_at"]

# Where Python's own thread synchronization waits in Python code: joining a thread, a
# Condition, Event, Semaphore or Barrier, a queue, a future's result.
_WAITING_FILES = frozenset({threading.__file__, queue.__file__, _futures.__file__})


# The package's own code waiting on a thread of its own that ends by itself (a read waiting for
# its query worker, which ``query_timeout`` bounds): such a wait is work, not a wait on a caller.
_OWN_WORK = "sqlite_cells.read."


def waiting_at(ident: int | None) -> object | None:
    """Where the thread ``ident`` is stopped in Python's thread synchronization now — other
    than a read of this package waiting for its worker — or None when it is not. A thread that
    is unknown or gone is "waiting" (nothing is known to end by itself). A thread running its
    own code — computing, sleeping, waiting for the network or a file — is not: it goes on
    without any other thread of this process. A wait on a bare lock's ``acquire`` from its own
    code is not told apart from running it (the call is in C): that is what the long patience
    bounds. Two looks that return the same place saw one wait that had not ended in between; a
    loop polling a queue or an ``Event`` is seen in such calls now and then, each time in a new
    call (see the caller)."""
    if ident is None:
        return _GONE
    frame = sys._current_frames().get(ident)
    if frame is None:
        return _GONE
    if frame.f_code.co_filename not in _WAITING_FILES:
        return None
    innermost = frame
    while frame is not None and frame.f_code.co_filename in _WAITING_FILES:
        frame = frame.f_back
    if frame is not None and str(frame.f_globals.get("__name__", "")).startswith(_OWN_WORK):
        return None
    return (innermost, innermost.f_lasti)


_GONE: object = object()

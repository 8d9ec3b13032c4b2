"""Whether a thread is waiting on another thread: what tells a body that holds the space's write
lock and may wait for the very committer behind it (a deadlock to break) from one that is busy
and will let go by itself (a wait to sit out)."""

from __future__ import annotations

import concurrent.futures._base as _futures
import queue
import sys
import threading

__all__ = ["waits_on_threads"]

# Where Python's own thread synchronization waits in Python code: joining a thread, a
# Condition, Event, Semaphore or Barrier, a queue, a future's result.
_WAITING_FILES = frozenset({threading.__file__, queue.__file__, _futures.__file__})


def waits_on_threads(ident: int | None) -> bool:
    """Whether the thread ``ident`` is stopped in Python's thread synchronization now (or is
    unknown or gone: then nothing is known to end by itself). A thread running its own code —
    computing, sleeping, waiting for the network or a file — is not: it goes on without any
    other thread of this process. A wait on a bare lock's ``acquire`` from its own code is not
    told apart from running it (the call is in C): that is what the long patience bounds."""
    if ident is None:
        return True
    frame = sys._current_frames().get(ident)
    return frame is None or frame.f_code.co_filename in _WAITING_FILES

"""Whether a body that holds the space's write lock waits for the very committer behind it: it
joins that committer's thread, directly or through threads it joins in turn (a deadlock to
break), as opposed to a body busy with anything else — its own work, its own threads, a read —
which lets go by itself (a wait to sit out). Only ``Thread.join`` names the thread waited for;
a wait on a queue, an event or a future names none, and is sat out like work."""

from __future__ import annotations

import sys
import threading
from collections.abc import Collection
from types import FrameType

__all__ = ["joining"]

_THREADING = threading.__file__
_JOIN = threading.Thread.join.__code__
_DEPTH = 8  # threads joining threads, followed this far


def joining(holder: int | None, waiters: Collection[int]) -> int | None:
    """Which of the threads ``waiters`` the thread ``holder`` waits for in ``Thread.join`` —
    directly, or joining a thread that joins it (and so on) — or None. A body joining in a
    loop with a timeout is found joining the same thread at each look."""
    if holder is None:
        return None
    frames = sys._current_frames()
    ident: int | None = holder
    for _ in range(_DEPTH):
        frame = frames.get(ident) if ident is not None else None
        if frame is None:
            return None
        joined = _joined(frame)
        if joined is None:
            return None
        if joined.ident in waiters:
            return joined.ident
        ident = joined.ident
    return None


def _joined(frame: FrameType) -> threading.Thread | None:
    """The thread a thread stopped at ``frame`` (its innermost) is joining, if it is."""
    found: FrameType | None = frame
    while found is not None and found.f_code.co_filename == _THREADING:
        if found.f_code is _JOIN:
            joined = found.f_locals.get("self")
            return joined if isinstance(joined, threading.Thread) else None
        found = found.f_back
    return None

"""Stack room for the cleanup after a failed commit, however deep the committer's stack is.

A commit made from deep in its caller's stack (a recursive function, a pattern running patterns
thousands of levels deep) can meet Python's recursion limit anywhere, and the cleanup after the
error can meet it too: rolling back calls into SQLite, which calls back into Python. A rollback
that ran out of stack left the space's write connection inside its SQLite transaction, holding
the space file's write lock (another process waited 30 s, then failed; this runtime's next
commit failed with "cannot start a transaction within a transaction"). So the cleanup runs
inside ``with STACK_ROOM:``, which raises the recursion limit by a fixed margin for its
duration. The limit is one for the whole interpreter: the raise is counted, so that blocks of
several threads overlapping restore it once, when the last one ends.

Entering the block takes one Python frame and, inside it, C calls only: called from a frame
with two levels of room left, it always succeeds (``SpaceFile.commit`` is such a frame once it
holds the write lock)."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Final

__all__ = ["ROOM", "STACK_ROOM"]

# Frames the cleanup may use past the limit: a rollback, failing the waiting committers and a
# log line take well under a hundred.
ROOM: Final = 200


class _StackRoom:
    __slots__ = ("_lock", "_raised", "_users")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._raised = False

    def __enter__(self) -> None:
        with self._lock:
            if not self._raised:
                sys.setrecursionlimit(sys.getrecursionlimit() + ROOM)
                self._raised = True
            self._users += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        with self._lock:
            self._users -= 1
            if self._users:
                return
            try:
                # Relative to the limit now: a limit the program set meanwhile is kept.
                sys.setrecursionlimit(max(sys.getrecursionlimit() - ROOM, 1))
            except RecursionError:
                # Entered at the very limit, this frame is too deep for the lower limit: it
                # stays raised until the next block ends (the error in flight is kept).
                return
            self._raised = False


STACK_ROOM: Final = _StackRoom()

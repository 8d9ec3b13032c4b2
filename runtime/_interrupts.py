"""Holding back Ctrl-C (SIGINT, a notebook kernel's interrupt) while a commit runs.

Python raises ``KeyboardInterrupt`` at any bytecode of the main thread. Landing between
SQLite's ``COMMIT`` and the bookkeeping after it, it left a durable commit that this runtime had
not taken in (its next transaction conflicted with its own commit) or it was swallowed by the
code that keeps a commit whose ``COMMIT`` raised after the space file had committed. So the
commit's critical section (from ``COMMIT`` until the commit is taken in) runs with SIGINT held
back, and the interrupt is delivered (the previous handler called) as soon as the section ends:
the commit has then either happened, and is recorded as such, or not at all. What comes before
``COMMIT`` (lock waits, the statements) stays interruptible: an interrupt there rolls back."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["interrupts_held"]

# The C module under ``signal``: the same functions without the wrapper's enum conversions,
# which cost ≈ 2 µs per call (a commit makes three).
try:
    _signals: Any = importlib.import_module("_signal")
except ImportError:  # an interpreter without it
    _signals = signal
_SIGINT = int(signal.SIGINT)
# The main thread by its ident: ``threading.current_thread()`` is a Python call on every commit.
# In a child forked from another thread, that thread is the child's main thread.
_MAIN_IDENT = threading.main_thread().ident


def _forked() -> None:
    global _MAIN_IDENT
    _MAIN_IDENT = threading.get_ident()


os.register_at_fork(after_in_child=_forked)
_NOTHING_HELD = contextlib.nullcontext()


def interrupts_held(
    when: Callable[[], bool] | None = None,
) -> contextlib.AbstractContextManager[object]:
    """A block that runs with SIGINT held back, then delivers one that arrived meanwhile. Only
    the main thread receives signals (and may install handlers); elsewhere, or when SIGINT is
    not handled by Python code, the block runs as it is. ``when``: held back only while it
    says so (asked as the signal arrives); otherwise delivered at once."""
    if threading.get_ident() != _MAIN_IDENT:
        return _NOTHING_HELD
    previous = _signals.getsignal(_SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL, or installed outside Python
        return _NOTHING_HELD
    return _Held(previous, when)


class _Held:
    """The handler installed while a block runs: it notes the interrupt, and the block's end
    puts ``previous`` back and calls it with what was noted."""

    __slots__ = ("_frame", "_previous", "_received", "_when")

    def __init__(self, previous: Any, when: Callable[[], bool] | None = None) -> None:
        self._previous = previous
        self._when = when
        self._received = False
        self._frame: FrameType | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self._when is not None and not self._when():
            self._previous(signum, frame)  # not held back yet: as if the block had not begun
            return
        self._received = True
        self._frame = frame

    def __enter__(self) -> None:
        _signals.signal(_SIGINT, self)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _signals.signal(_SIGINT, self._previous)
        if self._received:
            self._previous(_SIGINT, self._frame)

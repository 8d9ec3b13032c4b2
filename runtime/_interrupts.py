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

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["interrupts_held"]


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the block with SIGINT held back, then deliver one that arrived meanwhile. Only the
    main thread receives signals (and may install handlers); elsewhere, or when SIGINT is not
    handled by Python code, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL, or installed outside Python
        yield
        return
    received: list[FrameType | None] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(frame)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            previous(signal.SIGINT, received[0])

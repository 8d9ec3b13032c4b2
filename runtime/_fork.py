"""Which process opened an object: a runtime's connections and threads are its process's.

A child forked from a process with a runtime open (``multiprocessing`` with the ``fork`` start
method, ``os.fork``) inherits the runtime's objects but none of its threads, and the SQLite
connections it inherits share the parent's open files: using them there would hang (no
scheduler thread) or corrupt the files (SQLite's own rule: a connection never crosses a fork).
:func:`generation` changes in each forked child; an object records it when made, and one made
in another generation refuses to be used (``ClosedError``) and, closed, touches nothing.
"""

from __future__ import annotations

import os

__all__ = ["FORKED_ADVICE", "generation"]

FORKED_ADVICE = (
    "it was opened by the process this one was forked from, whose connections and threads it "
    "uses: open the store from a process started afresh (multiprocessing's 'spawn' start "
    "method), or close the runtime before forking — a new Runtime here cannot open the files "
    "that process has open"
)

_generation = 0


def generation() -> int:
    """This process's generation: 0 in the process that imported the runtime, one more in
    each fork."""
    return _generation


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)

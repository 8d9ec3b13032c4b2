"""Runnable example apps: ``python -m examples.<name> [STORE]`` from the repository root.

Each module has a ``main(store=None)`` that the test suite calls; without a store it runs on a
temporary one (``sc.Runtime.ephemeral()``) that is removed when it ends.

Run as a program (``python -m`` sets ``sys.argv[0]`` to ``-m`` while it imports this package),
an example stopped with Ctrl-C says ``interrupted`` instead of printing Python's traceback, at
any instant, its imports included; the exit status is still the interrupt's (130 in a shell).
An error of the library's own (a store path that cannot be used, say) is printed as its one
line, ``error: <kind>: <message>``, with exit status 1, as the ``sqlite-cells`` command does.
An example whose output's reader went away (``python -m examples.chat | head -3``) stops
quietly, with exit status 1, as the ``sqlite-cells`` command does.
Imported (by the tests, or a notebook), the package changes nothing.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType


def _quiet_interrupt(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
    elif issubclass(kind, BrokenPipeError):
        # Nothing to say: the reader is gone. Standard output now goes to the null device, so
        # that the interpreter's last flush of it, as the program ends, does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    elif _ours(kind):
        print(f"error: {kind.__name__}: {error}", file=sys.stderr)
        sys.stderr.flush()
        # The exit status of an uncaught exception is 1: the hook runs as the program ends.
    else:
        sys.__excepthook__(kind, error, traceback)


def _ours(kind: type[BaseException]) -> bool:
    """Whether ``kind`` is one of the library's errors (imported only if the library is)."""
    library = sys.modules.get("sqlite_cells")
    return library is not None and issubclass(kind, library.SqliteCellsError)


if sys.argv[:1] == ["-m"]:
    sys.excepthook = _quiet_interrupt

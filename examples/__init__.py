"""Runnable example apps: ``python -m examples.<name> [STORE]`` from the repository root.

Each module has a ``main(store=None)`` that the test suite calls; without a store it runs on a
temporary one (``sc.Runtime.ephemeral()``) that is removed when it ends.

Run as a program (``python -m`` sets ``sys.argv[0]`` to ``-m`` while it imports this package),
an example stopped with Ctrl-C says ``interrupted`` instead of printing Python's traceback, at
any instant, its imports included; the exit status is still the interrupt's (130 in a shell).
An error of the library's own (a store path that cannot be used, say) is printed as its one
line, ``error: <kind>: <message>``, with exit status 1, as the ``sqlite-cells`` command does.
An example whose output's reader went away (``python -m examples.chat | head -3``) stops
quietly, with exit status 1, as the ``sqlite-cells`` command does; one whose output cannot be
written (``> /dev/full``, a full disk, an I/O error) says so in one line, the command's
``the output could not be written (…)``, with exit status 1 — whether a write fails while it
runs or the last flush of its buffered output, as the program ends.
Imported (by the tests, or a notebook), the package changes nothing.
"""

from __future__ import annotations

import atexit
import os
import sys
from types import TracebackType


def _quiet_interrupt(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
    elif issubclass(kind, BrokenPipeError):
        _stop_output()  # nothing to say: the reader is gone
    elif isinstance(error, OSError) and error.filename is None:
        # The library never lets an OS error out (it raises its own, naming the path), and the
        # only file an example writes itself is its standard output (the web example says its
        # socket's errors itself): a write of the output failed.
        from sqlite_cells.cli import output_failure

        print(f"error: {output_failure(error)}", file=sys.stderr)
        sys.stderr.flush()
        _stop_output()
    elif _ours(kind):
        print(f"error: {kind.__name__}: {error}", file=sys.stderr)
        sys.stderr.flush()
        # The exit status of an uncaught exception is 1: the hook runs as the program ends.
    else:
        sys.__excepthook__(kind, error, traceback)


def _stop_output() -> None:
    """Point standard output at the null device, so that the interpreter's last flush of it,
    as the program ends, does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _flush_output() -> None:
    """The last flush of standard output, as the program ends (the first exit handler
    registered, so the last to run), said as a failed write is: left to the interpreter, a
    failure there printed "Exception ignored" and the error, with exit status 120."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        _quiet_interrupt(type(exc), exc, exc.__traceback__)
        sys.stderr.flush()
        os._exit(1)  # the status of an uncaught error; the exit handlers have all run
    except ValueError:  # a closed stream: nothing more to say
        pass


def store_argument(name: str, doc: str | None) -> str | None:
    """The STORE given to an example run as ``python -m examples.<name> [STORE]``, or None.
    ``--help`` prints its usage and ``doc``; an option it does not know or a second word is bad
    usage (exit status 2, said in one line by argparse), as the ``sqlite-cells`` command says
    it — taken as a store's path, ``--help`` made a store of that name and ran the example."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"python -m examples.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "store",
        nargs="?",
        metavar="STORE",
        help="the store's directory (without it, a temporary store removed at the end)",
    )
    store: str | None = parser.parse_args().store
    return store


def _ours(kind: type[BaseException]) -> bool:
    """Whether ``kind`` is one of the library's errors (imported only if the library is)."""
    library = sys.modules.get("sqlite_cells")
    return library is not None and issubclass(kind, library.SqliteCellsError)


if sys.argv[:1] == ["-m"]:
    sys.excepthook = _quiet_interrupt
    atexit.register(_flush_output)

"""How the ``sqlite-cells`` process runs its command and ends (and ``python -m sqlite_cells``).

The console script starts in :mod:`sqlite_cells.cli._start`, which takes Ctrl-C before it
imports this module; the command's modules are imported here with Ctrl-C still held back, so
a Ctrl-C that arrives while the command is importing them ends it like any other Ctrl-C: the
message ``interrupted`` and exit status 130, no traceback (SPEC §6).

The process ends here, once the command has returned and its output is flushed, without the
interpreter's shutdown: that shutdown (a tenth of a second with the modules the command
imports) first puts Ctrl-C back to the system's default, so a Ctrl-C during it ended the
process by the signal itself (status -2 to a parent, not 130). Nothing of the command is left
to it: a runtime is closed before its command returns, the threads still running are daemon
threads of the read path, and every commit is one SQLite transaction, whole on disk or not at
all. A Ctrl-C from the command's return on ends the process at once with 130."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, NoReturn

from sqlite_cells.cli._status import FINDING, INTERRUPTED, output_failure


def _interrupted_while_exiting(signum: int, frame: FrameType | None) -> NoReturn:
    os.write(2, b"sqlite-cells: interrupted\n")
    os._exit(INTERRUPTED)


def _end(code: int) -> NoReturn:
    """End the process with ``code`` (see the module docstring)."""
    with contextlib.suppress(ValueError):  # not the main thread: Ctrl-C is not ours to take
        signal.signal(signal.SIGINT, _interrupted_while_exiting)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away before the last of the output (`… --json | head -c1`): the
        # status a command gets when that happens while it writes (see the command's main), in
        # every format, however much of the output the pipe had taken in by then.
        stop_output()
        code = code or FINDING
    except OSError as exc:  # a full disk, an I/O error: the output is not whole
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"sqlite-cells: {output_failure(exc)}\n")
        code = code or FINDING
    except ValueError:  # a closed stream: nothing more to say
        pass
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    for thread in threading.enumerate():
        if not thread.daemon and thread is not threading.current_thread():
            thread.join()  # what the interpreter's shutdown would wait for
    os._exit(code)


def stop_output() -> None:
    """The reader of standard output went away (`sqlite-cells cells | head`): point it at the
    null device, so that no later write or flush fails again, and stop quietly, as other tools
    do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# What :mod:`sqlite_cells.cli._start` took when the process started: the Ctrl-C noted since, and
# the handler to give back once the command's modules are imported.
Held = tuple[list[int], Any]


def _imported_command(held: Held | None) -> Callable[[Sequence[str] | None], int] | None:
    """The command's ``main``, imported with Ctrl-C held back: None if Ctrl-C came meanwhile
    (or since ``held`` was taken, at the process's start).

    A ``KeyboardInterrupt`` raised in the middle of an import can do worse than a traceback:
    raised while msgspec builds a decoder's type information at import time, it has crashed
    the interpreter (a segmentation fault, status -11). So a Ctrl-C during the imports is only
    noted, and answered once they are done."""
    noted: list[int] = []
    previous: Any = None
    if held is not None:
        noted, previous = held
    # Started with Ctrl-C ignored (a background job, nohup), the command keeps ignoring it.
    elif signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        try:
            previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
        except ValueError:  # not the main thread: Ctrl-C is not ours to take
            previous = None
    try:
        from sqlite_cells.cli._cli import main as command
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return None if noted else command


def _run(argv: Sequence[str] | None, held: Held | None = None) -> int:
    try:
        run = _imported_command(held)
        if run is None:
            raise KeyboardInterrupt
        return run(argv)
    except KeyboardInterrupt:
        # Between the imports and the command's own handling of Ctrl-C (or after it): nothing
        # has been written yet, or the write was rolled back whole.
        sys.stderr.write("sqlite-cells: interrupted\n")
        return INTERRUPTED


def _prepare_output() -> bool:
    """Standard output (and error) as the command writes them: a character the output's
    encoding cannot hold (``PYTHONIOENCODING=ascii``, a C locale) is written as its escape
    (``\\xeb``), never an error; a stream the caller closed (``>&-``, Python's ``None``) is the
    null device. True when standard output was closed: the command's output cannot be read,
    which is status 1, as for a reader that went away."""
    closed = sys.stdout is None
    if closed:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - open until the process ends
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError):
                stream.reconfigure(errors="backslashreplace")
    return closed


def main(argv: Sequence[str] | None = None, *, held: Held | None = None) -> int:
    """Run the command and end the process with its exit status: this is the process's entry
    point, never to be called by a program that means to go on. ``held``: what
    :mod:`sqlite_cells.cli._start` took of Ctrl-C at the process's start."""
    try:
        closed = _prepare_output()
        try:
            code = _run(argv, held)
        except KeyboardInterrupt:  # a second Ctrl-C while the first was being reported
            code = INTERRUPTED
        except SystemExit as exc:  # argparse: bad usage (2), --help and --version (0)
            if exc.code is not None and not isinstance(exc.code, int):
                raise
            code = exc.code or 0
        _end(code or FINDING if closed else code)
    except KeyboardInterrupt:
        # Ctrl-C after the command gave Python's handling of it back and before _end took it
        # (a few bytecodes): answered as _end would have.
        _interrupted_while_exiting(signal.SIGINT, None)

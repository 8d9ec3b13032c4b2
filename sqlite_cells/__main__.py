"""``python -m sqlite_cells``: the ``sqlite-cells`` command, started as the console script starts
it (:mod:`sqlite_cells.cli._start`). SPEC §6: a Ctrl-C exits 130, never with a traceback. So
Ctrl-C is taken first — noted, not raised — while ``_start`` is imported (by name: the command
sits above the package's own modules, which import none of it), and handed over to it. Handing
over through ``runpy.run_module("sqlite_cells.cli")`` left a few milliseconds of the project's
own code in which a Ctrl-C was still Python's: a traceback, and the process killed by the
signal. What is left is the interpreter's start-up and the package's ``__init__``."""

if __name__ == "__main__":
    import _signal  # type: ignore[import-not-found]  # (`signal` imports enum: see _start)

    noted: list[int] = []
    previous = _signal.getsignal(_signal.SIGINT)
    if previous != _signal.SIG_IGN:  # (started with Ctrl-C ignored: it stays ignored)
        _signal.signal(_signal.SIGINT, lambda signum, frame: noted.append(signum))
    start = __import__("sqlite_cells.cli._start", fromlist=["main"])
    if previous != _signal.SIG_IGN:
        start.take_over(noted, previous)

    import sys

    sys.exit(start.main())

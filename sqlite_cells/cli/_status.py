"""The command's exit statuses, and what it says when its own output cannot be written: one
place, light enough for :mod:`sqlite_cells.cli._entry`."""

import errno

__all__ = ["FINDING", "INTERRUPTED", "OK", "USAGE", "output_failure"]

OK = 0  # done, and nothing to report
FINDING = 1  # an error, or a check that found something
USAGE = 2  # the command line itself is wrong (as argparse)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


def output_failure(exc: OSError, done: str | None = None) -> str:
    """The one message for standard output that could not be written (a full disk, an I/O
    error; a reader that went away is quiet instead): the output's failure, never the store's.
    ``done``: what the command did all the same (it is then not to be run again for it)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        remedy = "free space on its disk, or send it elsewhere"
    else:
        remedy = "check the device it goes to, or send it elsewhere"
    then = f"; {done}" if done else ", and run the command again"
    return f"the output could not be written ({exc.strerror or exc}): {remedy}{then}"

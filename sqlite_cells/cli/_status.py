"""The command's exit statuses: one place, light enough for :mod:`sqlite_cells.cli._entry`."""

__all__ = ["FINDING", "INTERRUPTED", "OK", "USAGE"]

OK = 0  # done, and nothing to report
FINDING = 1  # an error, or a check that found something
USAGE = 2  # the command line itself is wrong (as argparse)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

"""Where the ``sqlite-cells`` console script starts (and ``python -m sqlite_cells``).

Importing this module costs next to nothing (the package and ``sqlite_cells.cli`` import their
names on first use), so a Ctrl-C that arrives while the command is still importing its modules
ends it like any other Ctrl-C: the message ``interrupted`` and exit status 130, no traceback
(SPEC §6)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sqlite_cells.cli._status import INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from sqlite_cells.cli._cli import main as run

        return run(argv)
    except KeyboardInterrupt:
        # Between the imports and the command's own handling of Ctrl-C (or after it): nothing
        # has been written yet, or the write was rolled back whole.
        sys.stderr.write("sqlite-cells: interrupted\n")
        return INTERRUPTED

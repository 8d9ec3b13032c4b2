"""``python -m sqlite_cells.cli``: the ``sqlite-cells`` command, started the way the console
script starts it (:mod:`sqlite_cells.cli._start`, which takes Ctrl-C before the imports)."""

import sys

from sqlite_cells.cli._start import main

if __name__ == "__main__":
    sys.exit(main())

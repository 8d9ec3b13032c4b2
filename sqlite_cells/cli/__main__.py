"""``python -m sqlite_cells.cli``: the ``sqlite-cells`` command, started the way the console
script starts it (:mod:`sqlite_cells.cli._entry`, which handles a Ctrl-C during the imports)."""

import sys

from sqlite_cells.cli._entry import main

if __name__ == "__main__":
    sys.exit(main())

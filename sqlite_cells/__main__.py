"""``python -m sqlite_cells``: the ``sqlite-cells`` command. It runs ``python -m
sqlite_cells.cli`` (the command sits above the package's own modules, so this module hands over
by name rather than importing it), which starts it the way the console script does."""

import runpy

if __name__ == "__main__":
    runpy.run_module("sqlite_cells.cli", run_name="__main__", alter_sys=True)

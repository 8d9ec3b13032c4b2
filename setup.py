"""The project's two compiled modules, ``runtime/_locks.c`` (see ``runtime/_file_locks.py``)
and ``runtime/_leaving.c`` (see ``runtime/_tx.py``); everything else about the distribution is
in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("sqlite_cells.runtime._locks", ["runtime/_locks.c"]),
        Extension("sqlite_cells.runtime._leaving", ["runtime/_leaving.c"]),
    ]
)

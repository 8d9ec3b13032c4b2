"""The project's four compiled modules, ``runtime/_locks.c`` (see ``runtime/_file_locks.py``),
``runtime/_leaving.c`` (see ``runtime/_tx.py``), ``sqlite_cells/read/_changescan.c`` (see
``read/_changes.py``) and ``sqlite_cells/sql/_tokenloop.c`` (see ``sql/_lexer.py``); everything
else about the distribution is in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("sqlite_cells.runtime._locks", ["runtime/_locks.c"]),
        Extension("sqlite_cells.runtime._leaving", ["runtime/_leaving.c"]),
        Extension("sqlite_cells.read._changescan", ["sqlite_cells/read/_changescan.c"]),
        Extension("sqlite_cells.sql._tokenloop", ["sqlite_cells/sql/_tokenloop.c"]),
    ]
)

"""The project's one compiled module, ``runtime/_locks.c`` (see ``runtime/_file_locks.py``);
everything else about the distribution is in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sqlite_cells.runtime._locks", ["runtime/_locks.c"])])

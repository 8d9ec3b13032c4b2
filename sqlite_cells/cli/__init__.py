"""The ``sqlite-cells`` command: commands, inspection and the demo.

Its names are imported on first use, like the package's (see ``sqlite_cells/__init__.py``): the
console script starts in :mod:`sqlite_cells.cli._entry`, which must be able to take charge of
Ctrl-C before anything heavy is imported.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing takes ≈ 9 ms, during which a Ctrl-C of
# the command would still be Python's (a traceback); type checkers read this name as true. For
# the same reason importlib is imported when a name is first used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from sqlite_cells.cli._cli import main as main
    from sqlite_cells.cli._demo import ChatRun as ChatRun
    from sqlite_cells.cli._demo import run_chat as run_chat
    from sqlite_cells.cli._status import output_failure as output_failure

_WHERE = {
    "ChatRun": "sqlite_cells.cli._demo",
    "main": "sqlite_cells.cli._cli",
    "output_failure": "sqlite_cells.cli._status",
    "run_chat": "sqlite_cells.cli._demo",
}

__all__ = ["ChatRun", "main", "output_failure", "run_chat"]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sqlite_cells.cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the module's dunders, as the package's (``sqlite_cells.__dir__``)."""
    return sorted({*(n for n in globals() if n.startswith("__") and n.endswith("__")), *__all__})

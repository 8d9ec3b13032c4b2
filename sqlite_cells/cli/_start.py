"""The first module of the ``sqlite-cells`` process: what the console script (and ``python -m
sqlite_cells.cli``) imports, and nothing else should.

Importing it takes charge of Ctrl-C at once, before the command's modules are imported: a
Ctrl-C from here on is noted, not raised, and answered once the imports are done (130 and
``interrupted``, SPEC §6; see :func:`sqlite_cells.cli._entry.main`). What runs before this
module's first line is the interpreter's start-up and the two package ``__init__`` modules,
which import nothing that takes time (≈ 0.3 ms). Taking Ctrl-C is a side effect of the import
on purpose: no program imports this module, tests included; they use ``_entry``.
"""

from __future__ import annotations

# The interpreter's own C module, loaded before any Python code runs: `signal` would first
# import enum, functools and collections (≈ 4 ms, with Ctrl-C still Python's).
import _signal  # type: ignore[import-not-found]  # not in typeshed; the API is `signal`'s

_noted: list[int] = []


def _note(signum: int, frame: object) -> None:
    _noted.append(signum)


# Started with Ctrl-C ignored (a background job, nohup), the command keeps ignoring it. The
# console script imports this module in the main thread.
_held = None
if _signal.getsignal(_signal.SIGINT) != _signal.SIG_IGN:
    _held = (_noted, _signal.signal(_signal.SIGINT, _note))

from sqlite_cells.cli._entry import main as _main  # noqa: E402 - after Ctrl-C is taken


def take_over(noted: list[int], previous: object) -> None:
    """``python -m sqlite_cells`` took Ctrl-C before importing this module (its own noting
    handler, ``previous`` before it; ``noted``: what came meanwhile): this module's hold
    restores ``previous`` in the end, not that handler, and answers what it noted."""
    global _held
    if _held is not None:
        _noted.extend(noted)
        _held = (_noted, previous)


def main() -> int:
    """The console script's entry point (see :func:`sqlite_cells.cli._entry.main`)."""
    return _main(held=_held)

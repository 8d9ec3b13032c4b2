"""Database files that a read or a write found damaged (R71, Errors).

R71's check at a database's first use reads its watermark and journal, not every page (SQLite's
integrity check is left to ``sqlite-cells check``), so corrupt pages of a user's table are first
met by a query or a write, as SQLite's ``CorruptError`` (or ``NotADBError``). The read and write
paths then say which file and what to do (:func:`damage_advice`) and note the file here; a runtime
checks a noted file again, with SQLite's integrity check, before its next use of it — reconcile
rebuilds it from its space's log when the log holds its whole history (the damaged file is kept
in the quarantine directory), else quarantines it — so no further write lands in it.

Notes are counted per path, process-wide: each runtime compares the count with the one it last
checked the file at, so every runtime of the process that uses the file checks it again.
"""

from __future__ import annotations

import threading
from pathlib import Path

import apsw

from sqlite_cells.runtime import quick_check

__all__ = [
    "damage_advice",
    "damage_noted",
    "is_damage",
    "note_damage",
    "quick_check",
    "source_damage_advice",
]

# path -> how many times a read or a write found the file damaged. Guarded by _lock for writes;
# a read is a single lookup (on every use of a database: kept that cheap).
_NOTED: dict[Path, int] = {}
_lock = threading.Lock()


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite finding a file damaged: corrupt pages, or not a database."""
    return isinstance(exc, apsw.CorruptError | apsw.NotADBError)


def note_damage(path: Path) -> None:
    """A read or a write found the database file ``path`` damaged."""
    with _lock:
        _NOTED[path] = _NOTED.get(path, 0) + 1


def damage_noted(path: Path) -> int:
    """How many times a read or a write of this process found ``path`` damaged (0: never)."""
    return _NOTED.get(path, 0)


def damage_advice(path: Path, exc: BaseException | str) -> str:
    """What a read or a write that met ``exc`` on ``path`` (SQLite's error, or what the
    runtime found wrong, said as text) tells its caller."""
    found = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return (
        f"the database file {path} is damaged ({found}): this runtime "
        "checks the file again before its next use and rebuilds it from "
        "its space's log, keeping the damaged copy, when the log holds its whole history (else "
        "the database is quarantined); `sqlite-cells check --repair` on the store does the same"
    )


def source_damage_advice(path: Path, exc: BaseException) -> str:
    """What a read that met ``exc`` on the injected file ``path`` (R60) tells its caller: the
    runtime never writes a source, so it neither repairs it nor notes it."""
    return (
        f"the source file {path} is damaged ({type(exc).__name__}: {exc}): sqlite-cells never "
        "writes a registered source, so it does not repair it; restore the file from a good "
        "copy (or repair it with SQLite's own tools, e.g. `sqlite3 FILE .recover`), then read "
        "again"
    )

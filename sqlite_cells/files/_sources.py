"""Injected sources (R60): an existing SQLite file handed to patterns by an operator, read-only.

The path rules are checked on resolved paths, so ``..``, symlinks into the store and look-alike
names are judged by where the file really is. Each refusal is a :class:`DiskSourceError` whose
``rule`` names the rule broken:

* ``absolute`` — the path must be absolute;
* ``exists`` — it must exist;
* ``regular-file`` — after resolving links it must be a regular file (not a directory, a fifo, a
  device, a ``/proc`` entry);
* ``outside-store`` — it must not lie inside the store directory (the runtime's own files);
* ``under-roots`` — it must lie under one of ``disk_source_roots`` when that is set;
* ``sqlite-file`` — it must be an SQLite database that opens read-only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import apsw

from sqlite_cells.codec import DiskSourceError, derive_id

__all__ = ["disk_source_id", "validate_disk_source"]

_HEADER = b"SQLite format 3\x00"


def disk_source_id(space_id: str, resolved: Path) -> str:
    """The handle id of an injected file: derived from (space, resolved path), so registering
    the same file twice gives the same handle."""
    return derive_id("disk", space_id, str(resolved))


def validate_disk_source(
    path: str | os.PathLike[str], *, store: Path, roots: Sequence[str | os.PathLike[str]] | None
) -> Path:
    """Check ``path`` against the rules of R60 and return it resolved."""
    given = os.fspath(path)
    if not isinstance(given, str) or not os.path.isabs(given):
        raise DiskSourceError(
            "absolute", str(given), "give an absolute path (a relative one depends on the cwd)"
        )
    candidate = Path(given)
    try:
        resolved = candidate.resolve(strict=True)
        mode = resolved.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DiskSourceError("exists", given, "no such file: check the path") from None
    except (OSError, RuntimeError) as exc:  # loops of links, permissions
        raise DiskSourceError("exists", given, f"cannot be resolved: {exc}") from exc
    if not stat.S_ISREG(mode) or resolved.is_relative_to("/proc"):
        raise DiskSourceError(
            "regular-file",
            given,
            f"{resolved} is not a regular file: register the database file itself",
        )
    if resolved.is_relative_to(store.resolve()):
        raise DiskSourceError(
            "outside-store",
            given,
            f"{resolved} lies inside the store {store}: the store's files belong to the runtime",
        )
    if roots is not None:
        allowed = [Path(r).resolve() for r in roots]
        if not any(resolved.is_relative_to(root) for root in allowed):
            shown = ", ".join(map(str, allowed))
            raise DiskSourceError(
                "under-roots",
                given,
                f"{resolved} is not under any of disk_source_roots ({shown}): move it there or "
                "widen the roots",
            )
    _check_sqlite(given, resolved)
    return resolved


def _check_sqlite(given: str, resolved: Path) -> None:
    try:
        with resolved.open("rb") as handle:
            header = handle.read(len(_HEADER))
    except OSError as exc:
        raise DiskSourceError("sqlite-file", given, f"cannot be read: {exc}") from exc
    if header != _HEADER:
        raise DiskSourceError(
            "sqlite-file", given, f"{resolved} is not an SQLite database (wrong header)"
        )
    try:
        conn = apsw.Connection(str(resolved), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        finally:
            conn.close()
    except apsw.Error as exc:
        raise DiskSourceError("sqlite-file", given, f"SQLite cannot read it: {exc}") from exc

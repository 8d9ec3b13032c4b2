"""The ``-wal`` and ``-shm`` that an SQLite file moved under this runtime leaves at its path.

A space or database file deleted or replaced while a runtime has it open is detected at the next
commit (R73). SQLite keeps the ``-wal`` and ``-shm`` of a file it sees moved when its
connections close (it neither copies the ``-wal`` into the file nor removes it), so they stay at
the path — and the next connection to open the path reads that ``-wal`` as the new file's: the
pages of another file written over a restored backup, or over a fresh file, corrupt it. Once
the runtime lets go of a moved file, the companions it opened with it are moved aside into the
store's quarantine folder (kept, never removed: the ``-wal`` holds that file's last commits),
with a note saying why. Companions that are not the ones opened (another program's, made after
the move) are left alone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["COMPANION_SUFFIXES", "QUARANTINE_DIR", "companion_identities", "set_aside"]

log = logging.getLogger("sqlite_cells.runtime")

QUARANTINE_DIR: Final = "quarantine"  # beside the space files: copies kept, files set aside
COMPANION_SUFFIXES: Final = ("-wal", "-shm")

Identity = tuple[int, int]  # (st_dev, st_ino)


def companion_identities(path: str) -> dict[str, Identity | None]:
    """The device and inode of each companion of ``path`` now (None where there is none)."""
    return {f"{path}{suffix}": _identity(f"{path}{suffix}") for suffix in COMPANION_SUFFIXES}


def set_aside(
    path: str, old: Identity, opened: Mapping[str, Identity | None], what: str
) -> list[Path]:
    """Move the companions of ``path`` that are still the ones ``opened`` recorded (companion
    path -> identity) into the quarantine folder beside ``path``, now that the file ``old``
    they belong to is no longer the one at ``path`` (``what`` says what happened); returns
    where they went. A byte-for-byte copy of ``old`` put at the path keeps them: the -wal's
    frames are that very file's next pages. Never raises: a companion that cannot be moved
    (a read-only store) is logged and left."""
    if _same_bytes(path, old):
        return []
    moved: list[Path] = []
    for companion, identity in opened.items():
        if identity is None or _identity(companion) != identity:
            continue
        try:
            folder = Path(path).parent / QUARANTINE_DIR
            folder.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            target = folder / f"{os.path.basename(companion)}.{stamp}.moved"
            n = 0
            while target.exists():
                n += 1
                target = folder / f"{os.path.basename(companion)}.{stamp}.moved.{n}"
            os.rename(companion, target)
            target.with_name(target.name + ".txt").write_text(
                f"{os.path.basename(companion)}: set aside at {stamp} UTC because {what} while "
                "a runtime had it open. It belongs to that file, not to the one now at its "
                "path, which would read it as its own.\n"
            )
        except OSError as exc:
            log.warning("could not set aside %s (%s): %r", companion, what, exc)
            continue
        moved.append(target)
    if moved:
        log.warning(
            "%s %s: its %s set aside in %s", path, what, ", ".join(p.name for p in moved),
            moved[0].parent,
        )  # fmt: skip
    return moved


def _same_bytes(path: str, old: Identity) -> bool:
    """Whether the file at ``path`` holds the same bytes as the file ``old``, which this
    process still has open (read again through ``/proc/self/fd``, where the system has it;
    False where it cannot tell)."""
    try:
        held = next(
            f"/proc/self/fd/{fd}"
            for fd in os.listdir("/proc/self/fd")
            if _identity(f"/proc/self/fd/{fd}") == old
        )
        with open(held, "rb") as before, open(path, "rb") as now:
            if os.fstat(before.fileno()).st_size != os.fstat(now.fileno()).st_size:
                return False
            while True:
                chunk = before.read(_CHUNK)
                if chunk != now.read(_CHUNK):
                    return False
                if not chunk:
                    return True
    except (OSError, StopIteration):
        return False


_CHUNK: Final = 1 << 20


def _identity(path: str) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)

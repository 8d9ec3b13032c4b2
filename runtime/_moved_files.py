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

import fcntl
import logging
import os
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from sqlite_cells.runtime._file_kind import file_identity
from sqlite_cells.runtime._file_locks import hold_locks

__all__ = ["QUARANTINE_DIR", "set_aside", "wal_state"]

log = logging.getLogger("sqlite_cells.runtime")

QUARANTINE_DIR: Final = "quarantine"  # beside the space files: copies kept, files set aside

Identity = tuple[int, int]  # (st_dev, st_ino)


def wal_state(path: str) -> tuple[int, int] | None:
    """The size and modification time (ns) of the ``-wal`` of ``path`` now (None: none): taken
    after each commit of this runtime, so that a ``-wal`` another connection wrote since is
    told from one that holds this runtime's frames alone."""
    try:
        st = os.stat(f"{path}-wal")
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def set_aside(
    path: str,
    old: Identity,
    opened: Mapping[str, Identity | None],
    written: tuple[int, int] | None,
    kind: str,
) -> list[Path]:
    """Move the companions of ``path`` that are still the ones ``opened`` recorded (companion
    path -> identity) into the quarantine folder beside ``path``, now that the file ``old``
    they belong to is no longer the one at ``path`` (``kind``: what file it is); returns
    where they went — only when nothing but a wrong read can come of them: the ``-wal`` is as
    this runtime's last commit left it (``written``, see :func:`wal_state`; another connection
    that wrote it since took it as the new file's, and its commits are there) and
    :func:`_stale_beside` says so. Never raises: a companion that cannot be moved (a read-only
    store, something else where the quarantine folder belongs) is logged and left."""
    if wal_state(path) != written or not _stale_beside(path, old):
        return []
    what = f"the {kind} was replaced by another file"  # (with nothing there, they stay)
    moved: list[Path] = []
    for companion, identity in opened.items():
        if identity is None or file_identity(companion) != identity:
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


def _stale_beside(path: str, old: Identity) -> bool:
    """Whether the companions at ``path`` can only be read wrongly: another file than ``old``
    stands there, holding pages (SQLite itself drops a ``-wal`` beside an empty file), with
    other bytes than ``old`` (a byte copy of it keeps them: its ``-wal``'s frames are its next
    pages), and no connection of any process has it open — one that has may be writing that
    ``-wal`` for it now (SQLite takes the companions at the path as the file's). A path with
    nothing at it keeps them: the file may be put back. Where this process cannot tell who
    has a file open (no open file description locks, see ``_file_locks``) nothing is moved,
    as SQLite moves nothing."""
    now = file_identity(path)
    if now is None or now == old or not hold_locks():
        return False
    try:
        if os.stat(path).st_size == 0:
            return False
    except OSError:
        return False
    return not _in_use(path) and not _same_bytes(path, old)


def _in_use(path: str) -> bool:
    """Whether a connection of any process (this one included) has the SQLite file ``path``
    open: every connection to a file in WAL mode holds a shared lock on it while open, and an
    open file description lock conflicts with this process's own (see ``_file_locks``). Closing
    the descriptor opened here drops no lock of SQLite's, which are held on descriptions of
    their own. True when it cannot tell."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _SHARED_FIRST, _SHARED_SIZE, 0)
        found = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
        return bool(struct.unpack(_FLOCK, found)[0] != fcntl.F_UNLCK)
    except OSError:
        return True
    finally:
        os.close(fd)


# struct flock (Linux): l_type, l_whence, l_start, l_len, l_pid (0 for an open file
# description lock); and the bytes SQLite's unix VFS read-locks for a SHARED lock.
_FLOCK: Final = "hhqqi4x"
_SHARED_FIRST: Final = 0x40000000 + 2  # PENDING_BYTE + 2
_SHARED_SIZE: Final = 510


def _same_bytes(path: str, old: Identity) -> bool:
    """Whether the file at ``path`` holds the same bytes as the file ``old``, which this
    process still has open (read again through ``/proc/self/fd``, where the system has it;
    False where it cannot tell)."""
    try:
        held = next(
            f"/proc/self/fd/{fd}"
            for fd in os.listdir("/proc/self/fd")
            if file_identity(f"/proc/self/fd/{fd}") == old
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

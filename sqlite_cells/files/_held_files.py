"""Reading a file SQLite may have open in this process, without undoing its locks.

SQLite locks a database file and its ``-shm`` with POSIX advisory locks, and a process loses
*all* its POSIX locks on a file as soon as it closes *any* descriptor of that file. A plain
``open``/``read``/``close`` of a database or its ``-shm`` — to read a header, to copy the file —
therefore silently drops the locks of every connection of this process to it (the runtime's own
and those of a program's own code, a notebook's ``sqlite3`` connection included). Another
process then takes the file for unused: its first connection resets the ``-shm`` (truncating a
file this process has mapped: the next access is a bus error) or writes while this process is
mid-transaction. SQLite keeps its own descriptors open for that reason; this module does the
same for the runtime's reads of such files.

A file is opened once per process (by device and inode) and its descriptor is kept; reads use
``pread`` on it. A descriptor is closed only once its file is unlinked (``st_nlink == 0``),
checked whenever another file is opened: no new connection can reach such a file by its name,
and the descriptor would otherwise keep the unlinked file's space allocated — except a file
:func:`hold_open` holds (an injected source's pinned file, R60): while its descriptor is open its
inode stays allocated, so the file system cannot give its number to a file made later, which a
pin of (device, inode) would take for the file registered.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

__all__ = ["copy_file", "hold_open", "let_go_of", "read_head", "release_hold"]

_CHUNK = 1 << 20
_lock = threading.Lock()
_held: dict[tuple[int, int], int] = {}
_kept: dict[tuple[int, int], int] = {}  # (device, inode) -> how many holds keep it open


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes (fewer when the file is shorter) of the regular file at
    ``path``, or ``OSError``. Never blocks: a named pipe swapped in at the path is refused, not
    opened for reading (that open would wait for a writer)."""
    with _lock:
        return os.pread(_descriptor(path), size, 0)


def copy_file(path: Path, dest: Path) -> None:
    """Copy the regular file at ``path`` to ``dest`` (created, or overwritten) byte for byte."""
    with _lock:
        fd = _descriptor(path)  # first: a file that cannot be read leaves no copy behind
        with open(dest, "wb") as out:
            offset = 0
            while chunk := os.pread(fd, _CHUNK, offset):
                out.write(chunk)
                offset += len(chunk)


def hold_open(path: Path, identity: tuple[int, int]) -> bool:
    """Hold the file at ``path`` open while ``identity`` (its device and inode) is pinned, until
    :func:`release_hold`; whether a hold was taken: none when the path names another file by
    now (its pin refuses it), and then none may be given back (it would be another's)."""
    with _lock:
        try:
            found = os.fstat(_descriptor(path))
        except OSError:
            return False
        if (found.st_dev, found.st_ino) != identity:
            return False
        _kept[identity] = _kept.get(identity, 0) + 1
        return True


def release_hold(identity: tuple[int, int]) -> None:
    """One hold of ``identity`` that :func:`hold_open` took is given back: its descriptor is
    closed now if its file is unlinked and no hold keeps it, else once it is."""
    with _lock:
        left = _kept.pop(identity, 0) - 1
        if left > 0:
            _kept[identity] = left
        else:
            _close_unlinked()


def let_go_of(identity: tuple[int, int], header: bytes) -> None:
    """Close the kept descriptor of the file ``identity`` (its device and inode) when that file
    is not empty and does not begin with ``header`` (SQLite's), and no hold keeps it: no
    connection of SQLite locks such a file, so closing it drops no lock. Without it, each file
    a registration refused for its header kept a descriptor for the life of the process."""
    with _lock:
        fd = _held.get(identity)
        if fd is None or identity in _kept:
            return
        try:
            start = os.pread(fd, len(header), 0)
        except OSError:
            return
        if start not in (b"", header):
            del _held[identity]
            os.close(fd)


def _descriptor(path: Path) -> int:
    """The kept descriptor of the file at ``path``, opened now if needed. Called, and the
    descriptor used, under ``_lock``: no other thread closes it meanwhile."""
    found = os.stat(path)
    if not stat.S_ISREG(found.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = _held.get((found.st_dev, found.st_ino))
    if fd is not None:
        return fd
    _close_unlinked()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode):
        os.close(fd)  # never a file SQLite locks (swapped in since the stat)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    key = (opened.st_dev, opened.st_ino)
    if key in _held:
        # The path named another file at the stat, and this one is held already: a second
        # descriptor of it is kept too (closing it would drop the locks).
        key = (opened.st_dev, -fd - 1)
    _held[key] = fd
    return fd


def _close_unlinked() -> None:
    for key, fd in list(_held.items()):
        if key in _kept:
            continue
        try:
            gone = os.fstat(fd).st_nlink == 0
        except OSError:
            gone = True
        if gone:
            del _held[key]
            os.close(fd)

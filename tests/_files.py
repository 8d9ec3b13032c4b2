"""Reading, writing and copying the bytes of an SQLite file this process may have open.

A process loses all its POSIX locks on a file when it closes any descriptor of that file, and
SQLite locks a database file and its ``-shm`` that way. A plain ``open``/``close`` (``read_bytes``,
``write_bytes``, ``shutil.copyfile``) of such a file while a runtime or connection of the test
process has it open drops that connection's locks: another process (the command line, a writer
the test started) then takes the file for unused, resets the ``-shm`` this process has mapped (a
bus error at its next access) or writes under its transaction.

So these functions keep every descriptor they open until :func:`release`, which the test run
calls once the tests of a module and their fixtures are done (every runtime of theirs closed).
A ``-wal`` or ``-journal`` file (never locked), or a file nothing in this process has open, can
be read and written plainly.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import apsw

__all__ = ["checkpointed", "copy_file", "read_bytes", "release", "write_at", "write_bytes"]

_CHUNK = 1 << 20
_lock = threading.Lock()
_held: dict[tuple[int, int, bool], int] = {}
_extra: list[int] = []


def read_bytes(path: Path | str) -> bytes:
    """The whole content of the file at ``path``."""
    fd = _descriptor(Path(path), writable=False)
    parts = []
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def write_bytes(path: Path | str, data: bytes) -> None:
    """Make ``data`` the whole content of the file at ``path`` (created when missing), as
    ``Path.write_bytes`` does."""
    fd = _descriptor(Path(path), writable=True)
    os.ftruncate(fd, 0)
    _write(fd, 0, data)


def write_at(path: Path | str, offset: int, data: bytes) -> None:
    """Overwrite the bytes of the file at ``path`` from ``offset`` on with ``data``."""
    _write(_descriptor(Path(path), writable=True), offset, data)


def copy_file(source: Path | str, dest: Path | str) -> None:
    """Copy the bytes of the file at ``source`` to ``dest`` (created, or overwritten), as
    ``shutil.copyfile`` does."""
    write_bytes(dest, read_bytes(source))


def release() -> None:
    """Close every descriptor kept: only once nothing in this process has their files open."""
    with _lock:
        fds = [*_held.values(), *_extra]
        _held.clear()
        _extra.clear()
    for fd in fds:
        os.close(fd)


def _write(fd: int, offset: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _descriptor(path: Path, *, writable: bool) -> int:
    with _lock:
        try:
            found = os.stat(path)
        except FileNotFoundError:
            pass
        else:
            fd = _held.get((found.st_dev, found.st_ino, writable))
            if fd is not None:
                return fd
        flags = (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY
        fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
        opened = os.fstat(fd)
        key = (opened.st_dev, opened.st_ino, writable)
        if key in _held:
            _extra.append(fd)  # another file at the stat: this descriptor is kept too, not closed
        else:
            _held[key] = fd
        return fd


def checkpointed(path: Path) -> None:
    """Fold the file's -wal into it and remove its -wal and -shm, so it stands alone: for a
    file no runtime has open."""
    conn = apsw.Connection(str(path))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

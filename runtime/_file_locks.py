"""SQLite's file locks in this process are held as open file description locks (Linux).

POSIX record locks, which SQLite's unix VFS takes on a database file and its ``-shm``, belong to
the process: a close of *any* descriptor of the file drops them all, and they never conflict
with the same process's other locks. Another SQLite library in the process — Python's
``sqlite3`` module reading ``db.path`` in a notebook, next to apsw's copy — therefore took a
file the runtime had open for unused: its first connection reset the ``-shm`` the runtime had
mapped (the process died of a bus error), and its close dropped the runtime's locks and could
checkpoint and delete the ``-wal`` under the runtime's connections.

:func:`hold_locks` (run once, when this package is imported, before any connection is opened)
gives SQLite's unix VFS an ``fcntl`` and a ``close`` of ours (``runtime/_locks.c``) that take
each lock as an open file description lock on one description per file: a close of another
descriptor leaves it, and it conflicts with every other lock, a classic lock of this same
process included — another library's connection in this process then waits, or is refused
with "database is locked", as a connection of another process would be. It applies to every
apsw connection of the process. A close still drops the other library's own (classic) locks on
the file, so a descriptor of a file this process holds such a lock on is parked instead of
closed, and handed back when SQLite opens that file again (an ``open`` of ours too). Where such
locks do not exist (not Linux, or a kernel older
than 3.15: checked on a scratch file first), SQLite's own calls stay; a file system that refuses
them for one file (``EINVAL``) gets SQLite's own lock for that call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import apsw

from sqlite_cells.runtime._locks import files_known, last_opened, set_reading_sources, system_calls
from sqlite_cells.runtime._locks import forbid_companions as _forbid_companions

__all__ = [
    "forbid_companions",
    "hold_locks",
    "locks_held",
    "opened_file",
    "reading_sources",
    "use_held_locks",
]

_NAMES = ("fcntl", "close", "open")
_installed = False


def hold_locks() -> bool:
    """Install the system calls (once per process); whether locks are held this way."""
    global _installed
    if not _installed:
        _installed = use_held_locks(True)
    return _installed


def use_held_locks(held: bool) -> bool:
    """Give SQLite's unix VFS our ``fcntl``, ``close`` and ``open`` (``held``), or its own back (to
    measure what ours cost: a file's locks must not be taken both ways while it is open).
    Whether ours are in use afterwards (False where open file description locks do not
    exist)."""
    calls = system_calls()
    if calls is None:
        return False
    # A VFS over "unix" reaches the unix VFS's system call table (shared by its variants).
    vfs = apsw.VFS("sqlite-cells-locks", base="unix")
    try:
        for name in _NAMES:
            if not vfs.xSetSystemCall(name, calls[name] if held else 0):
                raise RuntimeError(f"SQLite's unix VFS has no system call {name!r}")
    finally:
        vfs.unregister()
    return held


def forbid_companions(identity: tuple[int, int]) -> None:
    """Inside :func:`reading_sources`, SQLite opens the ``-wal`` and ``-shm`` of the file
    ``identity`` (device, inode) only if they are there, never creates them: an injected source
    (R60), which a read-only connection in WAL mode would give them when its program removed
    them after the reader looked for them (the read then fails with ``apsw.CantOpenError``, and
    is made again). Where SQLite's own system calls stay (see :func:`hold_locks`), nothing
    changes."""
    _forbid_companions(*identity)


@contextmanager
def reading_sources() -> Iterator[None]:
    """A block of this thread that reads sources (see :func:`forbid_companions`): the source's
    own program may be in this process, and its connections, on other threads or outside such
    a block, create its ``-wal`` and ``-shm`` as SQLite does."""
    was = set_reading_sources(True)
    try:
        yield
    finally:
        set_reading_sources(was)


def opened_file() -> tuple[int, int] | None:
    """The device and inode of the last database file SQLite opened on this thread since the
    last call (not a ``-wal``, ``-shm`` or ``-journal``): the file a connection opened, where a
    look at its path before and after could be fooled by a swap at that moment (R60). None when
    no file was opened, or where SQLite's own system calls stay (see :func:`hold_locks`)."""
    return last_opened()


def locks_held() -> tuple[int, int]:
    """(files whose locks are held through a kept description, SQLite descriptors known)."""
    return files_known()

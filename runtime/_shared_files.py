"""The ``-wal`` and ``-shm`` SQLite makes beside a store file this user may read but not write,
in a folder it may write (another user's store in a shared folder): SQLite gives them the file's
permissions, but they belong to this user, so the file's owner — whose SQLite must write them —
could not write its own store any more ("attempt to write a readonly database"), and a
read-only connection may not remove them. They are made writable by every user instead."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import apsw

__all__ = ["share_companions"]

_COMPANIONS = ("-wal", "-shm")


def share_companions(path: str | Path, conn: apsw.Connection, schema: str = "main") -> None:
    """After ``conn`` opened (or attached as ``schema``) the store file ``path``: if this user
    may not write it, have SQLite make its companions now (one read, started and ended: a WAL
    file's are made at the first read) and give every user write access to those this user
    owns. Nothing is done for a file this user may write. A failing read is left for the
    caller's own read to meet."""
    name = str(path)
    if os.access(name, os.W_OK):
        return
    with contextlib.suppress(apsw.Error):
        conn.execute(f'SELECT count(*) FROM "{schema}".sqlite_schema').fetchall()
    me = os.geteuid()
    for suffix in _COMPANIONS:
        companion = name + suffix
        with contextlib.suppress(OSError):
            found = os.lstat(companion)
            ours = stat.S_ISREG(found.st_mode) and found.st_uid == me
            if ours and found.st_mode & 0o666 != 0o666:
                os.chmod(companion, 0o666)

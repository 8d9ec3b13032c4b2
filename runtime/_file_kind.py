"""What stands at a store file's path, looked at before SQLite opens it (Errors, R73).

SQLite opens whatever it finds at a path. A named pipe blocks its open (read-only) or its first
read (read-write) for ever, where neither a timeout nor Ctrl-C reaches; a socket or a device is
no database either. A directory at a file's ``-wal`` or ``-shm`` path makes SQLite answer
"attempt to write a readonly database", which names no file and points at permissions. So the
path and its two companions are looked at (one ``stat`` each, links resolved, which never blocks)
right before SQLite is given the path, and anything there that is not a regular file is an error
naming it and saying to move it away.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import apsw

from sqlite_cells.codec import DatabaseError
from sqlite_cells.runtime._fork import generation
from sqlite_cells.runtime._locks import inherited_file

__all__ = [
    "check_companions",
    "check_file_kinds",
    "check_not_dangling",
    "check_not_inherited",
    "dangling_link",
    "file_identity",
    "file_state",
    "odd_kind",
    "quick_check",
    "stands_at",
]

_COMPANIONS = (
    ("-wal", "write-ahead log"),
    ("-shm", "shared-memory index"),
)


def odd_kind(path: str | Path) -> str | None:
    """What stands at ``path`` when it is something other than a regular file ("a directory",
    "a named pipe", …); None for a regular file, nothing at all, or a path that cannot be looked
    at (SQLite then says what is wrong with it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        # A symbolic link that leads back to itself is something, not nothing: a missing
        # file would read as a database never written (R41).
        return "a symbolic link that loops" if exc.errno == errno.ELOOP else None
    except ValueError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a file of another kind"


def stands_at(path: Path) -> bool:
    """Whether anything stands at ``path``: a file, or something :func:`odd_kind` names (a
    symbolic link that loops too, which ``Path.exists`` takes for nothing). A dangling link is
    nothing."""
    return path.exists() or odd_kind(path) is not None


def check_file_kinds(path: Path, what: str) -> None:
    """Raise :class:`~sqlite_cells.codec.DatabaseError` if something other than a regular file
    stands at ``path`` (the ``what``: "space file", "database file", …) or at its ``-wal`` or
    ``-shm`` path, naming the path, what stands there, and what to do; or if the file is one
    SQLite had open in the process this one was forked from (:func:`check_not_inherited`)."""
    check_not_inherited(path, what)
    kind = odd_kind(path)
    if kind is not None:
        raise DatabaseError(
            f"{what} {path} is {kind}, not a regular file: SQLite cannot use it as a database "
            "(and a named pipe would block it for ever); move it out of the store, and put "
            "the file back if you have it"
        )
    check_companions(path, what)


def check_not_dangling(path: Path, what: str) -> None:
    """Raise :class:`~sqlite_cells.codec.DatabaseError` if a symbolic link to nothing stands
    at ``path``, which the runtime is about to create (the ``what``): SQLite would create the
    file at the link's target — wherever it points, outside the store too — and the rows would
    live there. (For a read, such a link is still nothing: a file never written, R41.) The
    message is :func:`dangling_link`'s."""
    found = dangling_link(path, what)
    if found is not None:
        raise DatabaseError(found)


def dangling_link(path: Path, what: str) -> str | None:
    """What to say of a symbolic link to nothing at ``path`` (the ``what``: "database file",
    …), which no repair or write may create the file through (see :func:`check_not_dangling`);
    None when no such link stands there."""
    try:
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return None
        target = os.readlink(path)
    except (OSError, ValueError):
        return None  # (nothing there, or nothing to say of it)
    try:
        os.stat(path)
        return None  # a link to a file: the file is opened where it is
    except FileNotFoundError:
        pass  # a link leading nowhere (one that loops is an odd kind, see odd_kind)
    except (OSError, ValueError):
        return None
    return (
        f"{what} {path} is a symbolic link to {target!r}, where nothing is: SQLite would create "
        f"the {what} there, not in the store; remove the link (or put back the file it "
        "pointed to) and try again"
    )


def check_companions(path: Path, what: str) -> None:
    """Raise :class:`~sqlite_cells.codec.DatabaseError` if something other than a regular file
    stands at the ``-wal`` or ``-shm`` path of ``path`` (the ``what``), naming it."""
    for suffix, role in _COMPANIONS:
        companion = f"{path}{suffix}"
        kind = odd_kind(companion)
        if kind is not None:
            raise DatabaseError(
                f"{companion} is {kind}, where SQLite keeps the {role} of the {what} {path} "
                f"(a regular file it creates itself): remove {companion} (it holds nothing of "
                "the store) and try again"
            )


def check_not_inherited(path: Path, what: str) -> None:
    """In a forked child: raise :class:`~sqlite_cells.codec.DatabaseError` if SQLite had the
    file at ``path`` open in the process this one was forked from. SQLite's record of that
    file — which locks it holds, through which descriptors — was copied into this process,
    and the descriptors share that process's open file descriptions: a connection opened to
    the file here takes the parent's own locks, excludes none of its writers, and commits of
    both processes were lost (R72)."""
    if generation() == 0:
        return
    try:
        found = os.stat(path)
    except OSError:
        return  # (nothing there: nothing inherited)
    if inherited_file(found.st_dev, found.st_ino):
        raise DatabaseError(
            f"{what} {path} is open in the process this one was forked from, and SQLite's "
            "record of it was copied into this one: a connection to it here would not be "
            "locked against that process's (commits of both would be lost); use the store "
            "from a process started afresh (multiprocessing's 'spawn' start method), or close "
            "the store's runtime before forking"
        )


def file_state(path: str) -> tuple[tuple[int, int] | None, int]:
    """The device and inode of the file at ``path`` (None when nothing is there) and its size:
    a file that has held pages and holds none was emptied under whoever saw it (R73)."""
    try:
        st = os.stat(path)
    except OSError:
        return None, 0
    return (st.st_dev, st.st_ino), st.st_size


def file_identity(path: str) -> tuple[int, int] | None:
    """The device and inode of the file at ``path``; None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def quick_check(conn: apsw.Connection, *, full: bool = False, database: str = "") -> str | None:
    """What SQLite's ``PRAGMA quick_check`` finds wrong in the file open on ``conn`` (None when
    nothing), its first three lines: it reads every page once, about what counting the rows
    costs, and finds pages SQLite otherwise reads without an error (rows of NULLs where the
    runtime wrote values, offsets out of range). ``full``: SQLite's ``integrity_check``, which
    also compares every index with its table (a row whose indexed value changed in the
    table's page alone is found by one and not by the other), at the cost of a lookup per
    indexed value. ``database``: that database of the connection alone (its schema name,
    trusted), else every one attached."""
    try:
        pragma = "integrity_check" if full else "quick_check"
        if database:
            pragma = f"{database}.{pragma}"
        problems = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    except (apsw.CorruptError, apsw.NotADBError) as exc:
        return str(exc)
    if problems == ["ok"]:
        return None
    lines = (line.strip() for problem in problems for line in problem.splitlines())
    # (SQLite says a problem once per row it meets it in: each is said once here.)
    shown = dict.fromkeys(line for line in lines if line and line != "*** in database main ***")
    kept = list(shown)[:3]
    return "; ".join(kept) or "; ".join(problems[:3])

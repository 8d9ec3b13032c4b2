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
* ``sqlite-file`` — it must be an SQLite database that opens read-only;
* ``hard-link`` — it must not be another name (a hard link) of a file of the store;
* ``pinned`` — (later, when a connection is opened) the path must still name the file that was
  registered: its device and inode are pinned at registration (:func:`check_pinned`).

Reading a source never creates a file beside it (:func:`source_uri`): a rollback-journal file is
opened ``mode=ro`` (a read-only connection never creates a journal); a WAL file whose ``-wal`` and
``-shm`` exist (its writer's) is opened ``mode=ro`` too; a WAL file without them is opened
``immutable=1`` (no ``-shm`` of ours), and its connections are replaced when its content changes.
"""

from __future__ import annotations

import os
import stat
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import apsw

from sqlite_cells.codec import DiskSourceError, derive_id

__all__ = [
    "READ_ONLY_URI",
    "check_pinned",
    "content_signature",
    "disk_source_id",
    "source_uri",
    "validate_disk_source",
]

_HEADER = b"SQLite format 3\x00"
READ_ONLY_URI = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
_WAL_FORMAT = 2  # header bytes 18 and 19 (read and write format versions) in WAL mode

# _pins_lock guards _pins: resolved path -> (st_dev, st_ino) of the file registered there (R60).
_pins_lock = threading.Lock()
_pins: dict[Path, tuple[int, int]] = {}


def disk_source_id(space_id: str, resolved: Path) -> str:
    """The handle id of an injected file: derived from (space, resolved path), so registering
    the same file twice gives the same handle."""
    return derive_id("disk", space_id, str(resolved))


def validate_disk_source(
    path: str | os.PathLike[str], *, store: Path, roots: Sequence[str | os.PathLike[str]] | None
) -> Path:
    """Check ``path`` against the rules of R60 and return it resolved."""
    given = os.fspath(path) if isinstance(path, str | os.PathLike) else path
    if not isinstance(given, str) or not os.path.isabs(given):
        raise DiskSourceError(
            "absolute",
            str(given),
            "give an absolute path as a string or a Path (a relative one depends on the cwd)",
        )
    if "\0" in given:
        shown = given.replace("\0", "\\0")
        raise DiskSourceError("exists", shown, "a path cannot hold a NUL character")
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
            shown = ", ".join(map(str, allowed)) or "empty: no disk source is allowed"
            raise DiskSourceError(
                "under-roots",
                given,
                f"{resolved} is not under any of disk_source_roots ({shown}): move it there or "
                "widen the roots",
            )
    _check_sqlite(given, resolved)
    identity = _identity(given, resolved)
    _check_not_linked_into(store, identity, given, resolved)
    with _pins_lock:
        _pins[resolved] = identity
    return resolved


def _identity(given: str, resolved: Path) -> tuple[int, int]:
    try:
        found = resolved.stat()
    except OSError as exc:
        raise DiskSourceError("exists", given, f"cannot be read: {exc}") from exc
    return (found.st_dev, found.st_ino)


def _check_not_linked_into(
    store: Path, identity: tuple[int, int], given: str, resolved: Path
) -> None:
    """Refuse a hard link to a file of the store: it would let a source read (and pin) the
    runtime's own files under a name outside the store."""
    try:
        if resolved.stat().st_nlink < 2 or not store.is_dir():
            return
        for root, _dirs, names in os.walk(store):
            for name in names:
                found = os.stat(os.path.join(root, name), follow_symlinks=False)
                if (found.st_dev, found.st_ino) == identity:
                    raise DiskSourceError(
                        "hard-link",
                        given,
                        f"{resolved} is a hard link to {os.path.join(root, name)}, a file of the "
                        "store: register a copy of the data instead",
                    )
    except OSError as exc:
        raise DiskSourceError("exists", given, f"cannot be checked: {exc}") from exc


def check_pinned(path: Path) -> None:
    """Raise :class:`DiskSourceError` (rule ``pinned``) when ``path`` no longer names the file
    registered there (R60): checked whenever a connection to a source is opened. A path that
    was never pinned in this process (a handle rebuilt after a restart) is pinned now."""
    try:
        found = os.stat(path)
    except OSError as exc:
        raise DiskSourceError("exists", str(path), f"is gone or unreadable: {exc}") from exc
    identity = (found.st_dev, found.st_ino)
    with _pins_lock:
        pinned = _pins.setdefault(path, identity)
    if pinned != identity or not stat.S_ISREG(found.st_mode):
        raise DiskSourceError(
            "pinned",
            str(path),
            "the path now names another file than the one registered (swapped, replaced or "
            "turned into a link): register the new file explicitly if it is meant to be read",
        )


def source_uri(path: Path) -> str:
    """The read-only URI a connection to the source at ``path`` opens (see the module
    docstring): nothing of ours is ever created beside the file."""
    base = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return base  # the open fails and says why
    wal = len(header) == 20 and header[18] == _WAL_FORMAT
    if wal and not (_sibling(path, "-wal").exists() and _sibling(path, "-shm").exists()):
        return base + "&immutable=1"
    return base


def content_signature(path: Path) -> tuple[object, ...] | None:
    """What changes whenever another program commits to the file at ``path``: its identity,
    size and mtime, SQLite's file change counter (header bytes 24–27, bumped by each commit in
    rollback-journal mode) and the size and mtime of its ``-wal``. None when it is unreadable.
    Read with a plain ``open``: no lock is taken and nothing is created."""
    try:
        found = os.stat(path)
        with path.open("rb") as handle:
            counter = handle.read(28)[24:]
    except OSError:
        return None
    try:
        wal = os.stat(_sibling(path, "-wal"))
        wal_state: tuple[int, int] | None = (wal.st_size, wal.st_mtime_ns)
    except OSError:
        wal_state = None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, counter, wal_state)


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


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
        conn = apsw.Connection(source_uri(resolved), flags=READ_ONLY_URI)
        try:
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        finally:
            conn.close()
    except apsw.Error as exc:
        raise DiskSourceError("sqlite-file", given, f"SQLite cannot read it: {exc}") from exc

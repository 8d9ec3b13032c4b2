"""Injected sources (R60): an existing SQLite file handed to patterns by an operator, read-only.

The path rules are checked on resolved paths, so ``..``, symlinks into the store and look-alike
names are judged by where the file really is. Each refusal is a :class:`DiskSourceError` whose
``rule`` names the rule broken:

* ``path`` — it must be a path: a ``str`` or an ``os.PathLike`` that gives one (not ``bytes``:
  SQLite opens files by their text names);
* ``absolute`` — the path must be absolute;
* ``exists`` — it must exist;
* ``outside-store`` — it must not lie inside the store directory (the runtime's own files);
* ``under-roots`` — it must lie under one of ``disk_source_roots`` when that is set;
* ``regular-file`` — after resolving links it must be a regular file (not a directory, a fifo, a
  device, a ``/proc`` entry); checked after the two rules on where it lies;
* ``sqlite-file`` — it must be an SQLite database that opens read-only;
* ``hard-link`` — it must not be another name (a hard link) of a file of the store;
* ``pinned`` — (later, when a read starts or a connection is opened) the path must still name
  the file that was registered: its device and inode are pinned at registration
  (:func:`register_disk_file`), recorded in the handle's value (:func:`encode_pin`) and taken
  from that value by each runtime that resolves the handle (:meth:`Pins.adopt`);
  :meth:`Pins.check` compares them. A pin belongs to a handle, not to a path: two spaces that
  registered one path at different times each read the file they registered.

Reading a source never creates a file beside it (:func:`source_uri`): a rollback-journal file is
opened ``mode=ro`` (a read-only connection never creates a journal); a WAL file whose ``-wal`` and
``-shm`` exist (its writer's) is opened ``mode=ro`` too; a WAL file without them is opened
``immutable=1`` (no ``-shm`` of ours), and its connections are replaced when its content changes.
An ``immutable`` connection does not read the ``-wal``: a WAL file whose ``-wal`` holds commits
but which has no ``-shm`` (copied without it, or its ``-shm`` removed) cannot be read as SQLite
would read it without creating that ``-shm`` (:func:`unread_wal`), and its reads fail instead.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
import urllib.parse
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import apsw

from sqlite_cells.codec import DiskSourceError, brief_repr, derive_id
from sqlite_cells.files._held_files import let_go_of, read_head
from sqlite_cells.runtime import (
    LONGEST_SQLITE_PATH,
    forbid_companions,
    locale_decoded,
    odd_kind,
    opened_file,
    out_of_files,
    path_text,
    reading_sources,
    surrogate_at,
)

__all__ = [
    "READ_ONLY_URI",
    "SOURCE_OPEN",
    "SQLITE_HEADER",
    "Pin",
    "Pins",
    "changed_while_read",
    "check_place",
    "companions_gone",
    "content_signature",
    "decode_pin",
    "disk_source_id",
    "encode_pin",
    "hot_journal_advice",
    "immutable_uri",
    "is_hot_journal",
    "register_disk_file",
    "source_opening",
    "source_uri",
    "stands_instead",
    "store_pins",
    "unread_wal",
    "unread_wal_advice",
    "validate_disk_source",
    "wal_companions_present",
]

SQLITE_HEADER = b"SQLite format 3\x00"  # what every SQLite database file begins with
READ_ONLY_URI = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
# A source's connections: no symbolic link anywhere in the path (its path is resolved at
# registration), so a link swapped in later — into the store, say — is not followed (R60).
SOURCE_OPEN = READ_ONLY_URI | apsw.SQLITE_OPEN_NOFOLLOW
_WAL_FORMAT = 2  # header bytes 18 and 19 (read and write format versions) in WAL mode
_WAL_HEADER = 32  # a -wal's header; its salts are bytes 16-23, a frame header's are 8-15
_IMMUTABLE = "&immutable=1"
# The last wal-index seen built for each WAL source, with the -wal's (size, mtime) then.
_INDEXES: dict[str, tuple[tuple[int, int] | None, bytes]] = {}
_NOT_BUILT: Final = b""


def _wal_commits(header: bytes) -> bytes:
    """What the wal-index header at the top of a -shm says of the -wal's commits — its last
    frame, the database's size in pages, the last frame's checksum and the salts (bytes 16–39 of
    the 48-byte header) — or :data:`_NOT_BUILT` when it is not built (``isInit``, byte 12, is
    0: the first connection to open the file has cleared it, or a read-only one keeps its own).
    Its change counter and checksum are left out: rebuilding the same wal-index counts one
    change more, which is no commit."""
    if len(header) < 48 or header[12] == 0:
        return _NOT_BUILT
    return header[16:40]


Pin = tuple[int, int]  # (st_dev, st_ino) of the file registered at a path


def disk_source_id(space_id: str, resolved: Path) -> str:
    """The handle id of an injected file: derived from (space, resolved path), so registering
    the same file twice gives the same handle."""
    return derive_id("disk", space_id, str(resolved))


def validate_disk_source(
    path: str | os.PathLike[str], *, store: Path, roots: Sequence[str | os.PathLike[str]] | None
) -> Path:
    """Check ``path`` against the rules of R60 and return it resolved. Nothing is pinned: a
    handle resolved again keeps the pin its value records (:meth:`Pins.adopt`)."""
    return _validated(path, store=store, roots=roots)[0]


def register_disk_file(
    path: str | os.PathLike[str], *, store: Path, roots: Sequence[str | os.PathLike[str]] | None
) -> tuple[Path, Pin]:
    """:func:`validate_disk_source` and the pin of the file found. Nothing is pinned yet: an
    explicit registration says "the file there now is the one I mean", and the caller records
    the pin in the handle's value first, then makes it the runtime's pin of the handle
    (:meth:`Pins.adopt`), so a registration that fails on the way changes no pin."""
    return _validated(path, store=store, roots=roots)


class Pins:
    """The pins of the injected files a process reads, by handle id (R60): set by a
    registration or taken from a handle's stored value — the latest registration's word,
    whichever process wrote it. A handle, not a path: two spaces may each have registered a
    path, one before and one after the file there was replaced, and each reads the file it
    registered (a pin per path let the later registration make the other space read the new
    file). One per store for the whole process (:func:`store_pins`), so that a runtime reads at
    once the file another runtime of the process registered again under the same handle. A
    read check costs a stat and a dict lookup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _pins
        self._pins: dict[str, Pin] = {}

    def adopt(self, db_id: str, pin: Pin) -> Pin | None:
        """``pin`` becomes the pin of handle ``db_id``; returns the one it had (None: none)."""
        with self._lock:
            before = self._pins.get(db_id)
            self._pins[db_id] = pin
        if before != pin:
            forbid_companions(pin)
        return before

    def check(self, db_id: str, path: Path, opened: Pin | None = None) -> Pin:
        """Raise :class:`DiskSourceError` (rule ``pinned``) when ``path`` no longer names the
        file handle ``db_id`` registered there, or when the file a connection just ``opened``
        (see ``opened_file``) is another: checked when a read of a source starts and whenever
        a connection to it is opened. A handle with no pin yet — its value was written before
        pins were recorded (R73) — is pinned now, at its first read. Returns the pin: the file
        that is read."""
        try:
            found = os.stat(path)
        except OSError as exc:
            raise DiskSourceError("exists", str(path), f"is gone or unreadable: {exc}") from exc
        identity = (found.st_dev, found.st_ino)
        with self._lock:
            pinned = self._pins.get(db_id)
            if pinned is None:
                pinned = self._pins[db_id] = identity
                forbid_companions(identity)  # (once per pin: this runs at every read's start)
        if pinned != identity or not stat.S_ISREG(found.st_mode) or opened not in (None, pinned):
            raise DiskSourceError(
                "pinned",
                str(path),
                "the path now names another file than the one registered (swapped, replaced or "
                "turned into a link): register the new file explicitly (register_disk_source, "
                "or `sqlite-cells link` again) if it is meant to be read",
            )
        return identity


# The pins of each store opened in this process (by its real path), kept while a runtime (or
# a command) of that store holds them. By store: two stores each with a space of one name
# give a path they both register one handle id (derived from the space and the path), and
# each reads the file it registered.
_STORE_PINS: weakref.WeakValueDictionary[str, Pins] = weakref.WeakValueDictionary()
_STORE_PINS_LOCK = threading.Lock()


def store_pins(store: Path) -> Pins:
    """The pins of the injected files the runtimes of this process on ``store`` read (one
    object for them all: see :class:`Pins`)."""
    key = os.path.realpath(store)
    with _STORE_PINS_LOCK:
        pins = _STORE_PINS.get(key)
        if pins is None:
            pins = _STORE_PINS[key] = Pins()
    return pins


def encode_pin(pin: Pin) -> list[str]:
    """The pin as stored in a handle value: decimal strings, since a device or inode number may
    exceed the 64-bit signed integers a cell value holds (R6), on overlay or network file
    systems for instance."""
    return [str(pin[0]), str(pin[1])]


def decode_pin(stored: object, path: Path) -> Pin:
    """The pin :func:`encode_pin` stored; anything else is refused (rule ``pinned``): a pin
    that cannot be read cannot vouch for the file."""
    if (
        isinstance(stored, list)
        and len(stored) == 2
        and all(isinstance(part, str) and part.isascii() and part.isdigit() for part in stored)
    ):
        return (int(stored[0]), int(stored[1]))
    shown = repr(stored)
    raise DiskSourceError(
        "pinned",
        str(path),
        f"the handle records the pin {shown[:60]}, which is not a [device, inode] pair (written "
        "by a foreign program): register the file again to record what it is",
    )


def _refuse_surrogates(given: str, name: str) -> None:
    """SQLite opens files by their UTF-8 names: a name holding a byte that is not UTF-8 (a lone
    surrogate once decoded) can name no file it opens (rule ``exists``)."""
    position = surrogate_at(name)
    if position is not None:
        decoded = locale_decoded("the name", name)
        raise DiskSourceError(
            "exists",
            given,
            f"{'' if name == given else 'leads to a name that '}cannot be opened: {decoded}"
            if decoded
            else f"{'' if name == given else 'leads to a name that '}is not valid Unicode text (a "
            f"lone surrogate at position {position}): SQLite opens files by their UTF-8 names; "
            "rename the file",
        )


def _validated(
    path: str | os.PathLike[str], *, store: Path, roots: Sequence[str | os.PathLike[str]] | None
) -> tuple[Path, Pin]:
    given = path_text(path)
    if given is None:
        # (``bytes`` too: SQLite opens files by their text names)
        if isinstance(path, os.PathLike):
            what = f"a {type(path).__name__} whose __fspath__() gives no text path"
        else:
            what = "None" if path is None else f"a value of type {type(path).__name__}"
        raise DiskSourceError(
            "path",
            brief_repr(path),
            f"{what} is not a path: give an absolute path as a str or a Path",
        )
    if not os.path.isabs(given):
        raise DiskSourceError(
            "absolute",
            given,
            "give an absolute path as a string or a Path (a relative one depends on the cwd)",
        )
    if "\0" in given:
        shown = given.replace("\0", "\\0")
        raise DiskSourceError("exists", shown, "a path cannot hold a NUL character")
    _refuse_surrogates(given, given)
    candidate = Path(given)
    try:
        os.stat(given)  # as the system reads the text: "file.db/" names no file (Path drops the /)
        resolved = candidate.resolve(strict=True)
        # Not followed: a link there now was swapped in since the path was resolved.
        first = os.stat(resolved, follow_symlinks=False)
        mode = first.st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DiskSourceError("exists", given, "no such file: check the path") from None
    except (OSError, RuntimeError) as exc:  # loops of links, permissions
        raise DiskSourceError("exists", given, f"cannot be resolved: {exc}") from exc
    _refuse_surrogates(given, str(resolved))  # a link may lead to such a name
    # Where it lies is judged before what it is: a path outside the store's reach or the
    # roots is refused for that, whatever stands there (the fix is to move it, not to
    # register another kind of file at the same place).
    check_place(given, resolved, store=store, roots=roots)
    if not stat.S_ISREG(mode) or resolved.is_relative_to("/proc"):
        raise DiskSourceError(
            "regular-file",
            given,
            f"{resolved} is not a regular file: register the database file itself",
        )
    _check_length(given, resolved)
    # The pin is the file found first, and every check below is of that file: a path swapped
    # meanwhile (a link into the store, another file) is refused, never pinned.
    identity = (first.st_dev, first.st_ino)
    _check_sqlite(given, resolved, identity)
    _check_not_linked_into(store, identity, first.st_nlink, given, resolved)
    try:
        last = os.stat(resolved, follow_symlinks=False)
    except OSError:
        last = None
    if last is None or (last.st_dev, last.st_ino) != identity or not stat.S_ISREG(last.st_mode):
        raise _replaced_meanwhile(given, resolved)
    return resolved, identity


def check_place(
    given: str, resolved: Path, *, store: Path, roots: Sequence[str | os.PathLike[str]] | None
) -> None:
    """The rules of R60 on where a source lies, for its ``resolved`` path: outside the store,
    and under one of ``roots`` when they are set (``DiskSourceError``, rule ``outside-store``
    or ``under-roots``)."""
    if resolved.is_relative_to(store.resolve()) or _under_folder(resolved, store):
        raise DiskSourceError(
            "outside-store",
            given,
            f"{resolved} lies inside the store {store}: the store's files belong to the runtime",
        )
    if roots is not None:
        allowed: list[Path] = []
        said: list[str] = []
        for root in roots:
            try:
                allowed.append(Path(root).resolve())
                said.append(str(allowed[-1]))
            except (OSError, RuntimeError) as exc:  # a loop of links: a root that allows nothing
                said.append(f"{path_text(root)}, which cannot be resolved: {exc}")
        if not any(resolved.is_relative_to(root) for root in allowed):
            shown = ", ".join(said) or "empty: no disk source is allowed"
            raise DiskSourceError(
                "under-roots",
                given,
                f"{resolved} is not under any of disk_source_roots ({shown}): move it there or "
                "widen the roots",
            )


def _under_folder(path: Path, folder: Path) -> bool:
    """Whether one of the folders ``path`` lies in is ``folder`` itself (its device and inode),
    whatever it is called there: the same folder seen under another path (a bind mount, a
    container's volume) names none of its files by the path's text."""
    try:
        found = os.stat(folder)
    except OSError:
        return False
    for parent in path.parents:
        try:
            here = os.stat(parent)
        except OSError:
            continue
        if (here.st_dev, here.st_ino) == (found.st_dev, found.st_ino):
            return True
    return False


def _replaced_meanwhile(given: str, resolved: Path) -> DiskSourceError:
    return DiskSourceError(
        "pinned",
        given,
        f"{resolved} was replaced while it was being registered (another file, or a link, took "
        "its place): register it again once it stays put",
    )


def _check_not_linked_into(
    store: Path, identity: Pin, links: int, given: str, resolved: Path
) -> None:
    """Refuse a hard link to a file of the store (``identity``, with ``links`` names): it would
    let a source read (and pin) the runtime's own files under a name outside the store."""
    try:
        if links < 2 or not store.is_dir():
            return
        for root, _dirs, names in os.walk(store):
            for name in names:
                try:
                    found = os.stat(os.path.join(root, name), follow_symlinks=False)
                except FileNotFoundError:
                    # Removed since it was listed (a runtime's -wal or -shm, a file gc
                    # removed): no longer a file of the store, so no name of the file given.
                    continue
                if (found.st_dev, found.st_ino) == identity:
                    raise DiskSourceError(
                        "hard-link",
                        given,
                        f"{resolved} is a hard link to {os.path.join(root, name)}, a file of the "
                        "store: register a copy of the data instead",
                    )
    except OSError as exc:
        raise DiskSourceError("exists", given, f"cannot be checked: {exc}") from exc


def source_opening(path: Path) -> tuple[str, tuple[object, ...] | None]:
    """:func:`source_uri` and, when that URI opens the file ``immutable``, the file's
    :func:`content_signature` taken just before: such a connection reads the file as it was
    then (SQLite assumes an immutable file never changes, and does not read a ``-wal``), so it
    may serve a read only while the signature is still the file's. None for a connection
    that sees other programs' commits by itself (``mode=ro``)."""
    frozen = content_signature(path)
    uri = source_uri(path)
    return uri, (frozen if uri.endswith(_IMMUTABLE) else None)


def stands_instead(path: Path) -> str | None:
    """Why the injected file registered at ``path`` is not read when something that is no
    regular file (a directory, a named pipe, a device) stands at its path now, and what to do;
    None when a file, or nothing, is there (R60). Said alike by reads and the commands."""
    kind = odd_kind(path)
    if kind is None:
        return None
    return (
        f"{kind} now stands at {path}, where the injected file was registered, and is not read: "
        "put the database file back there, or register the file meant (register_disk_source, "
        "or `sqlite-cells link` again)"
    )


def immutable_uri(path: Path) -> str:
    """The URI of a read-only connection to ``path`` that takes no lock and creates nothing
    beside the file (SQLite's ``immutable``): it reads the file as it is."""
    return "file:" + urllib.parse.quote(str(path)) + "?mode=ro" + _IMMUTABLE


def source_uri(path: Path) -> str:
    """The read-only URI a connection to the source at ``path`` opens (see the module
    docstring): nothing of ours is ever created beside the file."""
    if in_wal_mode(path) and not wal_companions_present(path):
        return immutable_uri(path)
    return "file:" + urllib.parse.quote(str(path)) + "?mode=ro"


def wal_companions_present(path: Path) -> bool:
    """Whether the ``-wal`` and ``-shm`` of the file at ``path`` are there: a WAL file is read
    ``mode=ro`` only then (SQLite would create them otherwise)."""
    return _sibling(path, "-wal").exists() and _sibling(path, "-shm").exists()


# Tries of a read whose -wal and -shm its program removed as the read began (see
# companions_gone).
_COMPANION_TRIES: Final = 4


def companions_gone(path: Path) -> bool:
    """After an ``apsw.CantOpenError`` on a connection opened ``mode=ro`` beside the ``-wal`` and
    ``-shm`` of the WAL file at ``path``: whether they are gone now — its program closed the file
    (and removed them) after they were looked for, and SQLite, which may not create them
    (:func:`sqlite_cells.runtime.forbid_companions`), could not open them. The file is read
    again, then ``immutable`` (:func:`source_uri`)."""
    return in_wal_mode(path) and not wal_companions_present(path)


def in_wal_mode(path: Path) -> bool:
    """Whether the file at ``path`` is an SQLite database in WAL mode, by its header (read
    without a lock: nothing waits for another program's). False when it cannot be read (the
    open that follows says why)."""
    try:
        header = read_head(path, 20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == _WAL_FORMAT


def unread_wal_advice(path: Path) -> str:
    """What a read of the source at ``path`` that :func:`unread_wal` refuses tells its caller."""
    return (
        f"the injected file {path} is in WAL mode and its -wal holds commits, but it has no "
        "-shm: SQLite reads that -wal only through a -shm it would create beside the file, "
        "which is never done to another program's file (R60), and without it the rows read "
        "would be older ones. Let the file's own program (or the sqlite3 shell) open and close "
        "it once, which moves the -wal into the file, or register a copy made with sqlite3's "
        ".backup"
    )


# Pauses before looking again at a -wal without its -shm (seconds): ≈ 60 ms in all.
_WAL_LOOKS: Final = (0.002, 0.008, 0.05)


def unread_wal(path: Path) -> bool:
    """Whether the source at ``path`` is in WAL mode with commits in its ``-wal`` and no
    ``-shm``: SQLite reads such a ``-wal`` only through a ``-shm`` it would create beside the
    file (R60 forbids it), or not at all (``immutable``), which would serve older rows. A
    ``-wal`` holds a commit when its first frame carries the salts of its header (a ``-wal``
    reset by a checkpoint does not). Read with :func:`read_head`: no lock, nothing created,
    no lock of this process dropped.

    The program that last closes the file, having moved its ``-wal`` into it, removes the
    ``-shm`` first and the ``-wal`` a moment later: seen in between, the file is looked at
    again (:data:`_WAL_LOOKS`) before it is said to be so."""
    for pause in (*_WAL_LOOKS, None):
        if not _unread_wal_now(path):
            return False
        if pause is not None:
            time.sleep(pause)
    return True


def _unread_wal_now(path: Path) -> bool:
    if _sibling(path, "-shm").exists():
        return False
    try:
        if os.stat(_sibling(path, "-wal")).st_size <= _WAL_HEADER:
            return False
        header = read_head(path, 20)
        wal = read_head(_sibling(path, "-wal"), _WAL_HEADER + 24)
    except OSError:
        return False  # no -wal (or it went away): the file alone holds the rows
    if len(header) < 20 or header[18] != _WAL_FORMAT or len(wal) < _WAL_HEADER + 24:
        return False
    return wal[16:24] == wal[_WAL_HEADER + 8 : _WAL_HEADER + 16]


# Seconds a file-system clock may take to tick (see content_signature): FAT 2 s, ext2 and
# ext3 1 s, where a time stamp holds whole seconds; where it holds fractions of one (ext4, XFS,
# Btrfs, tmpfs), the kernel's coarse clock, 1 to 10 ms.
_COARSE_CLOCK = 2.0
_FINE_CLOCK = 0.05


def content_signature(path: Path) -> tuple[object, ...] | None:
    """What changes whenever another program commits to the file at ``path``: its identity,
    size and mtime, SQLite's file change counter (header bytes 24–27, bumped by each commit in
    rollback-journal mode), the size and mtime of its ``-wal`` and the wal-index header at the
    top of its ``-shm`` (each WAL commit changes its last frame and checksums). Sizes and mtimes
    alone miss a WAL commit: after a checkpoint the writer starts its ``-wal`` over from the
    top, so the file keeps its size, and a file system's clock may be coarser than two commits.
    None when nothing stands at the path or the file is unreadable. Something that is no
    regular file (a directory, a named pipe) is never opened: its signature is its kind and
    identity, so one put in the place of another, or of the file, is a change (R60: its
    queries say what stands there now). Read with :func:`read_head`: no lock is taken or
    dropped, nothing is created, nothing blocks."""
    try:
        found = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link that loops: something, not nothing
            return ("not a file", "loop", None, None, None)
        return None  # gone, or its folder unreadable
    if not stat.S_ISREG(found.st_mode):
        return ("not a file", stat.S_IFMT(found.st_mode), found.st_dev, found.st_ino, None)
    try:
        head = read_head(path, 28)
    except OSError:
        return None  # unreadable, or replaced by no regular file meanwhile (never opened)
    counter = head[24:]
    # A WAL file changed within a tick of a coarse file-system clock: a commit that its
    # program's close checkpoints into the file (its -wal and -shm gone again) may follow within
    # the same tick and keep size, mtime and change counter as they were (a WAL commit does not
    # bump the counter; a rollback-journal commit does). Until the tick is surely past, the
    # signature equals no other (a look sees a change: reads open the file afresh).
    # The tick is judged by the time stamp itself: one of whole seconds may come from a clock
    # of seconds. A time stamp in the future (a clock ahead, a copy from another machine) is
    # recent only within a tick: further ahead, it tells nothing, and would keep every look a
    # change for as long as it stays ahead.
    wal_mode = head[18:20] == b"\x02\x02"
    tick = _COARSE_CLOCK if found.st_mtime_ns % 1_000_000_000 == 0 else _FINE_CLOCK
    age = time.time() - found.st_mtime
    recent = object() if wal_mode and -tick < age < tick else None
    try:
        wal = os.stat(_sibling(path, "-wal"))
        wal_state: tuple[int, int] | None = (wal.st_size, wal.st_mtime_ns)
    except OSError:
        wal_state = None
    try:
        wal_index: bytes | None = _wal_commits(read_head(_sibling(path, "-shm"), 48))
    except OSError:
        wal_index = None  # no -shm: no writer has the file open in WAL mode
    if wal_index is None:
        _INDEXES.pop(str(path), None)
    elif wal_index == _NOT_BUILT:
        # A read of ours that opened the file first set its wal-index aside (a read-only
        # connection builds its own): as long as the -wal is the same, what it said last holds.
        known = _INDEXES.get(str(path))
        wal_index = known[1] if known is not None and known[0] == wal_state else None
    else:
        if len(_INDEXES) >= 256:
            _INDEXES.clear()
        _INDEXES[str(path)] = (wal_state, wal_index)
    return (
        found.st_dev,
        found.st_ino,
        found.st_size,
        found.st_mtime_ns,
        counter,
        wal_state,
        wal_index,
        recent,
    )


def changed_while_read(path: Path, frozen: tuple[object, ...]) -> bool:
    """Whether the source at ``path``, read through a connection opened ``immutable`` with the
    :func:`content_signature` ``frozen``, was written since that signature was taken (its
    recency mark aside) — an ``immutable`` connection takes no lock, so the program closing the
    file may move its ``-wal`` into it under a read, whose rows are then of no one commit (R40,
    R60). The file's modification time tells a write apart to the nanosecond on file systems
    with multigrain timestamps (Linux ext4, XFS, Btrfs, tmpfs since 6.13: the signature read
    the time, so the next write is dated anew); where the clock is coarser, a write within the
    same tick as one made just before the signature was taken may go unseen."""
    now = content_signature(path)
    return now is None or now[:-1] != frozen[:-1]


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def is_hot_journal(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite refusing to read a file whose rollback journal is hot: a
    write to it was interrupted, and only a connection that may write rolls it back."""
    return (
        isinstance(exc, apsw.ReadOnlyError)
        and getattr(exc, "extendedresult", None) == apsw.SQLITE_READONLY_ROLLBACK
    )


def hot_journal_advice(path: Path) -> str:
    """What a read of the source at ``path`` that met a hot journal (:func:`is_hot_journal`)
    tells its caller: sqlite-cells never writes a source, so the rollback is left to its own
    program."""
    return (
        f"the source file {path} has a hot journal ({_sibling(path, '-journal').name}): a write "
        "to it was interrupted and SQLite must roll it back before the file can be read, which "
        "sqlite-cells never does to a registered source; let the program that writes it (or "
        "the sqlite3 shell) open it once, then read again"
    )


def _check_length(given: str, resolved: Path) -> None:
    """Refuse a file whose resolved path is longer than SQLite opens (rule ``sqlite-file``):
    its own error says only that it cannot open the file."""
    size = len(os.fsencode(resolved))
    if size > LONGEST_SQLITE_PATH:
        raise DiskSourceError(
            "sqlite-file",
            given,
            f"its path{'' if str(resolved) == given else ' (resolved)'} is {size:,} bytes "
            f"long, and SQLite opens no file whose path is over {LONGEST_SQLITE_PATH} bytes: move "
            "the file (or copy it) to a shorter path and register that",
        )


def _check_sqlite(given: str, resolved: Path, identity: Pin) -> None:
    try:
        header = read_head(resolved, len(SQLITE_HEADER))
    except OSError as exc:
        said = _out_of_files(exc) or f"cannot be read: {exc}"
        raise DiskSourceError("sqlite-file", given, said) from exc
    # An empty file is SQLite's empty database (a program may create it and write it later).
    if header not in (SQLITE_HEADER, b""):
        let_go_of(identity, SQLITE_HEADER)  # refused: nothing reads it again
        raise DiskSourceError(
            "sqlite-file", given, f"{resolved} is not an SQLite database (wrong header)"
        )
    forbid_companions(identity)  # from its first connection on
    try:
        for tries_left in reversed(range(_COMPANION_TRIES)):
            opened_file()  # (what an earlier open of this thread left)
            conn = apsw.Connection(source_uri(resolved), flags=SOURCE_OPEN)
            if opened_file() not in (None, identity):
                conn.close()
                raise _replaced_meanwhile(given, resolved)
            try:
                with reading_sources():
                    conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
                break
            except apsw.CantOpenError:
                if not tries_left or not companions_gone(resolved):
                    raise
            finally:
                conn.close()
    except apsw.BusyError:
        # The program that writes the file holds a lock on it: SQLite took the file for a
        # database (it asked for the lock), and a busy file is the ordinary state of a live
        # source. Its reads wait for the lock within query_timeout (R44); registration does
        # not wait, and never refuses a database for being written.
        return
    except apsw.Error as exc:
        if is_hot_journal(exc):
            raise DiskSourceError("sqlite-file", given, hot_journal_advice(resolved)) from exc
        said = _out_of_files(exc) or f"SQLite cannot read it: {exc}"
        raise DiskSourceError("sqlite-file", given, said) from exc


def _out_of_files(exc: BaseException) -> str:
    """Why a file could not be opened when it was the process's open files (what to do
    included), else ``""``."""
    advice = out_of_files(exc)
    return f"cannot be opened now: {advice}" if advice else ""

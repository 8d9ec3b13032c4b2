"""How a database file meets the space's write connection, and what a ``sqlite`` op records.

The ``sqlite`` commit participant attaches the database file to the space's write connection as
``_cf_db`` (outside a transaction: SQLite cannot attach inside one); at most one file is attached
at a time. Only this module attaches and detaches, so the attached file is known without asking
SQLite on every commit. A ``sqlite`` op's body in the commit record is an :class:`OpBody`: the
statement and the session changeset of its effect (R70).
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import apsw
import msgspec

from sqlite_cells.codec import Op, SqliteCellsError, StoreChanged, UnreadableRecord, stored_json
from sqlite_cells.files._sources import READ_ONLY_URI, immutable_uri, in_wal_mode
from sqlite_cells.runtime import (
    check_companions,
    check_file_kinds,
    check_not_dangling,
    file_state,
    forget_marks,
    harden,
    has_moved,
    interrupts_held,
    remove_unused,
    set_aside,
    wal_state,
)
from sqlite_cells.runtime import file_identity as identity_now
from sqlite_cells.sql import DATABASE_ALIAS

__all__ = [
    "ALIAS",
    "CHECKED_AGAIN",
    "DROP_KIND",
    "KIND",
    "Identity",
    "OpBody",
    "Pinned",
    "attach",
    "attached",
    "decode_op_body",
    "detach",
    "encode_op_body",
    "file_identity",
    "let_go",
    "may_write",
    "note_committed",
    "on_read_only_file_system",
    "open_as_is",
    "open_unwritable",
    "peek",
    "pin",
    "pinned",
    "pinned_files",
    "read_as_is",
    "remove_unused_database",
    "roll_back_interrupted",
    "set_aside_moved",
    "stored_json",
    "unpin",
]

T = TypeVar("T")

KIND = "sqlite"
DROP_KIND = "sqlite-drop"  # the op of db.drop(): no change to the file's rows
# The suffix of the file `check --repair` rebuilds a damaged database file in, beside it, before
# it takes the file's place (one left behind by a repair stopped before its end is gc's).
REBUILD = ".rebuild"
ALIAS = DATABASE_ALIAS  # the name the guard knows as a database (R21)


class OpBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """A ``sqlite`` op: the statement and its parameters (bytes appear base64-encoded); once the
    changeset of its effect is known the parameters are left out (it says exactly what the
    statement did, and the record is fsynced on every commit).

    ``version`` is the declared version the op was written at (the file's stored version once
    its commit ran) and ``from_version`` the stored version its commit found on the file before
    bringing it to the declaration (None: the file had none yet). A replay needs the file at
    ``from_version``: a step from there to ``version`` made in the same commit was additive
    (R13) and replays; one the file lacks before ``from_version`` was made outside the log (a
    ``migrate`` callback, R14) and cannot be replayed (R71). Both None in older records.

    ``schema``: the commit changed the file's schema (an additive migration or a ``migrate``
    callback ran), which changes what queries return beyond the changeset's rows (R51).
    ``unseen``: the op deleted or changed a row whose primary key is NULL, of which SQLite's
    session records nothing, so its changeset does not show all it did (R51). ``cookie``: the
    file's schema cookie when the commit ran, which names the changeset's columns — a file
    whose schema changed since without a commit saying so (a ``migrate`` whose write then
    failed may have rebuilt a table in another column order) is not read by the shape it has
    now (R51). Fields
    at their default are left out of the record, and a record without one (an older one, R73)
    reads as the default."""

    sql: str
    rows: list[list[object] | dict[str, object]]
    many: bool
    changeset: bytes | None = None
    version: int | None = None
    from_version: int | None = None
    schema: bool = False
    unseen: bool = False
    cookie: int | None = None


def encode_op_body(body: OpBody) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(body))


def decode_op_body(op: Op) -> OpBody:
    """The body of a ``sqlite`` op; :class:`UnreadableRecord` when it is not one (another
    program wrote the record: a changeset that is not base64, a body that is not an object)."""
    try:
        return msgspec.json.decode(op.body, type=OpBody)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UnreadableRecord(
            f"its op on {op.target} has no readable body: {str(exc) or type(exc).__name__}", None
        ) from exc


Identity = tuple[int, int]  # (st_dev, st_ino)

# conn -> path of the file attached as _cf_db.
_ATTACHED: weakref.WeakKeyDictionary[apsw.Connection, str] = weakref.WeakKeyDictionary()
# conn -> {path: identity} of every database file it has attached, pinned at its first attach.
_PINS: weakref.WeakKeyDictionary[apsw.Connection, dict[str, Identity]] = weakref.WeakKeyDictionary()
# conn -> {path: {companion path: identity}} of the -wal and -shm of each file it attached,
# recorded once each exists (SQLite makes the -wal at the first write); and path -> the -wal as
# this process's last commit to that file left it (see note_committed): with the pin, what
# ``set_aside`` needs to tell a moved file's companions from the file now at its path's.
_COMPANIONS: weakref.WeakKeyDictionary[apsw.Connection, dict[str, dict[str, Identity | None]]] = (
    weakref.WeakKeyDictionary()
)
_WAL_AFTER: dict[str, tuple[int, int] | None] = {}
# conn -> the paths of the pinned files it has seen holding pages (see attach).
_PAGED: weakref.WeakKeyDictionary[apsw.Connection, set[str]] = weakref.WeakKeyDictionary()
# conn -> {path: identity} of the files its attach created (see remove_unused_database).
_MADE: weakref.WeakKeyDictionary[apsw.Connection, dict[str, Identity]] = weakref.WeakKeyDictionary()


def attached(conn: apsw.Connection) -> str | None:
    """The path of the database file attached to ``conn`` as ``_cf_db``, if any."""
    return _ATTACHED.get(conn)


def attach(conn: apsw.Connection, path: Path) -> bool:
    """Attach ``path`` as ``_cf_db`` (outside a transaction), replacing what was attached;
    True if attaching created the file (see :func:`remove_unused_database`).

    Each file's device and inode are pinned when this connection first attaches it: if the file
    at ``path`` is another one when it is to be written again (deleted or replaced meanwhile,
    attached or not), it is let go and :class:`StoreChanged` is raised, so no commit is
    acknowledged into a file that is no longer the one at its path (R73). :func:`unpin` forgets
    a pin (after the runtime itself rebuilt the file). A file unlinked while it was being
    attached (another runtime removing the file its refused first write created) is let go and
    the path attached again."""
    key = str(path)
    now, size = file_state(key)
    pins = _PINS.get(conn)
    if pins is None:  # (set once: a pin made off the write lock never loses one made under it)
        pins = _PINS.setdefault(conn, {})
    pinned = pins.get(key)
    current = _ATTACHED.get(conn)  # looked up once: this runs on every commit
    _refuse_changed(conn, key, now, size, pinned, current)
    if current == key:
        _check_wal(conn, key)
        _note_companions(conn, key)
        return False
    check_file_kinds(path, "database file")  # a named pipe would block SQLite for ever
    if now is None:
        check_not_dangling(path, "database file")  # (attaching creates it)
    detach(conn)
    for attempt in range(1, _ATTACH_TRIES + 1):
        before = now
        try:
            _attach_once(conn, key)
            now, size = file_state(key)  # a new file exists once SQLite set its journal mode
            if not has_moved(conn, ALIAS):  # looked at after the stat: ``now`` is the file open
                break
        except apsw.ReadOnlyError:  # SQLite refuses to write a moved file
            if not has_moved(conn, ALIAS):
                raise
        except apsw.IOError:
            # SQLite met a file (or its -wal/-shm) removed while it was opening it: another
            # runtime removing the blank file its refused first write created. A real I/O
            # error repeats and is raised after the last try.
            if attempt == _ATTACH_TRIES:
                raise
        detach(conn)
        time.sleep(0.001 * attempt)
        now = identity_now(key)
    else:
        raise StoreChanged(
            key,
            "this database file was removed or replaced each time it was attached; nothing "
            "was committed: try again",
        )
    if pinned is None and now is not None:
        pins[key] = now
    if size and now is not None and now == pins.get(key):
        # Its pages as attached (a new file holds its header once switched to WAL): emptied
        # later, even with no commit of this runtime between, it was emptied under it (R73).
        _note_paged(conn, key)
    # Recorded anew at each attach: while the file was not attached here, its last connection
    # to close removed its -wal and -shm, and SQLite makes new ones (other files by then).
    _forget_companions(conn, key)
    _note_companions(conn, key)
    if before is None and now is not None:
        made = _MADE.get(conn)
        if made is None:
            made = _MADE[conn] = {}
        made[key] = now
        return True
    return False


_ATTACH_TRIES = 5


def check_pinned(conn: apsw.Connection, path: Path) -> None:
    """R73: raise :class:`StoreChanged` when the file at ``path`` is not the one ``conn``
    pinned (deleted, replaced or emptied since), as :func:`attach` does — for a write that
    opens the file by its path before it attaches it (a ``migrate``)."""
    key = str(path)
    pins = _PINS.get(conn)
    pinned = None if pins is None else pins.get(key)
    if pinned is not None:
        now, size = file_state(key)
        _refuse_changed(conn, key, now, size, pinned, _ATTACHED.get(conn))


def _refuse_changed(
    conn: apsw.Connection,
    key: str,
    now: Identity | None,
    size: int,
    pinned: Identity | None,
    current: str | None,
) -> None:
    """What :func:`attach` checks first: the file at ``key`` (``now``, ``size``) is still the
    one ``conn`` pinned, if any; else it is let go and :class:`StoreChanged` is raised."""
    if now is not None and pinned == now:
        # A file that held pages never goes back to none (a WAL file is empty only until its
        # first checkpoint): one empty now was emptied under this runtime (R73).
        paged = _PAGED.get(conn)
        if size:
            _note_paged(conn, key)
        elif paged is not None and key in paged:
            if current == key:
                detach(conn)
            paged.discard(key)
            raise StoreChanged(
                key,
                "this database file was emptied (truncated to no bytes) while the runtime had "
                f"it open; nothing was committed: {CHECKED_AGAIN}",
            )
    if pinned is not None and now != pinned:
        companions = _COMPANIONS.get(conn, {}).pop(key, None)
        if companions is not None:  # (while attached: the moved file is still open to compare)
            set_aside(key, pinned, companions, _WAL_AFTER.get(key), "database file")
        if current == key:
            detach(conn)
        raise StoreChanged(
            key,
            "this database file was deleted or replaced while the runtime had it open; "
            f"nothing was committed: {CHECKED_AGAIN}",
        )


def _check_wal(conn: apsw.Connection, key: str) -> None:
    """The attached file ``key``'s -wal is still the one SQLite writes (R73): one deleted or
    replaced under the runtime would take the commit into a file no longer at its path (and
    every new reader of the file would fail on the -shm that still counts its frames). Then
    the file is let go — SQLite, closing it, writes what that -wal holds into the file — and
    :class:`StoreChanged` is raised."""
    recorded = _COMPANIONS.get(conn, {}).get(key)
    wal = f"{key}-wal"
    before = recorded.get(wal) if recorded is not None else None
    if before is None or identity_now(wal) == before:
        return
    detach(conn)
    raise StoreChanged(
        wal,
        "the -wal of this database file was deleted or replaced while the runtime had it "
        "open; nothing was committed (never remove the -wal or -shm files of a store in "
        f"use): {CHECKED_AGAIN}",
    )


def _note_companions(conn: apsw.Connection, key: str) -> None:
    """Record the -wal and -shm of the attached file ``key`` not recorded yet; once both are
    known, one dictionary look-up per commit."""
    known = _COMPANIONS.get(conn)
    if known is None:
        known = _COMPANIONS.setdefault(conn, {})
    recorded = known.get(key)
    if recorded is None:
        known[key] = {c: identity_now(c) for c in (f"{key}-wal", f"{key}-shm")}
    elif None in recorded.values():
        for companion, identity in recorded.items():
            if identity is None:
                recorded[companion] = identity_now(companion)


def note_committed(path: Path) -> None:
    """A commit of this process to the database file ``path`` is durable: its -wal as it left
    it (see ``set_aside``: a -wal written since by another connection is that one's)."""
    _WAL_AFTER[str(path)] = wal_state(str(path))


def _forget_companions(conn: apsw.Connection, key: str) -> None:
    known = _COMPANIONS.get(conn)
    if known is not None:
        known.pop(key, None)


# What a StoreChanged for a database file replaced under a running runtime tells its caller.
CHECKED_AGAIN = (
    "the next use of the database checks the file now at the path against its space again, "
    "as a new runtime does (a file rebuilt from the space's log is in sync and used; a file "
    "with another history is quarantined, its rows untouched): read or run the transaction "
    "again"
)


def _attach_once(conn: apsw.Connection, key: str) -> None:
    forget_marks(conn)  # the file's pager is new: see runtime._marks
    # What is attached and what the connection says is attached change together: a Ctrl-C
    # between the two left a file attached that no one knew of, and every later ATTACH failed
    # ("database _cf_db is already in use") until the runtime closed.
    with interrupts_held():
        conn.execute(f"ATTACH DATABASE ? AS {ALIAS}", (key,))
        _ATTACHED[conn] = key
    _set_wal(conn)
    conn.execute(f"PRAGMA {ALIAS}.synchronous=NORMAL")
    # A read opens the WAL, and from then on this connection holds a shared lock on the file
    # (a fresh file's switch to WAL alone does not): a file in use is never removed.
    conn.execute(f"SELECT 1 FROM {ALIAS}.sqlite_master LIMIT 1").fetchall()


_WAL_WAIT = 30.0  # seconds a fresh file's switch to WAL is retried while another holds it


def _set_wal(conn: apsw.Connection) -> None:
    """Put the attached file in WAL mode. On a fresh file another process may be switching
    its journal mode at the same moment (or removing it, :func:`remove_unused_database`), and
    SQLite then answers busy without calling the busy handler: retried, in short sleeps."""
    deadline = time.monotonic() + _WAL_WAIT
    while True:
        try:
            conn.execute(f"PRAGMA {ALIAS}.journal_mode=WAL").fetchall()
            return
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def remove_unused_database(conn: apsw.Connection, path: Path) -> bool:
    """Remove the database file ``path`` (and its ``-wal``/``-shm``) if it is the file that
    ``conn``'s :func:`attach` created, holds nothing — no table, so no commit ever wrote it —
    and no connection of any process has it open, detaching it from ``conn`` first (outside a
    transaction) and forgetting its pin; True if removed. For a file that a refused first write
    created (R7, "a bad input never leaves partial state behind"); see
    :func:`sqlite_cells.runtime.remove_unused` for how it is made safe.

    Only that file (its identity when it was created), and never an empty (0-byte) one: two
    runtimes that attached a new file at the same moment both count it as created, and once
    one of them removed it the path may hold a file a third runtime has just created and not
    yet set up (nor locked). Removing that one would leave the third runtime writing a file
    after it was unlinked — and SQLite, finding a 0-byte database file, deletes the ``-wal`` at
    its path as a leftover, which by then may be the live WAL of the next file there."""
    made = _MADE.get(conn, {}).get(str(path))
    if attached(conn) == str(path):
        detach(conn)
    if made is None:
        return False  # not created by this connection's attach: not its to remove
    # Under the space's write lock: every other runtime opens a database file for crash
    # reconciliation, or writes it, only while holding that lock, so none is in the middle of
    # opening this one while it is removed (see remove_unused for the openers outside it).
    # Once the lock is taken, a Ctrl-C waits for the end: one landing between the file's
    # removal and forgetting its pin left the pin of a file no longer there, and the next
    # write of the database said the file was "deleted or replaced while the runtime had it
    # open"; one landing after BEGIN left the space's transaction open.
    begun = False
    with interrupts_held(when=lambda: begun):
        try:
            conn.execute("BEGIN IMMEDIATE")  # (may wait for the lock: interruptible)
        except apsw.Error:
            return False
        begun = True
        try:
            removed = remove_unused(path, lambda used: _holds_nothing(used, made))
        finally:
            conn.execute("ROLLBACK")
        if removed:
            unpin(conn, path)
            _MADE[conn].pop(str(path), None)
    return removed


def _holds_nothing(conn: apsw.Connection, made: Identity) -> bool:
    """Asked by ``remove_unused`` under its exclusive lock, once it saw that the file it has
    open is still the one at the path: is that file the one created (``made``), set up, and
    without any table?"""
    try:
        st = os.stat(conn.db_filename("main"))
    except OSError:
        return False
    if (st.st_dev, st.st_ino) != made:
        return False  # another runtime's file now: not this one's to remove
    # A 0-byte file is one whose creator has not set it up yet (attach writes its header
    # before it returns): an inode number can be reused at once, so the identity alone does
    # not tell it from the file that was removed.
    if st.st_size == 0:
        return False
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM sqlite_master)").fetchone()
    return row is not None and bool(row[0])


def pin(conn: apsw.Connection, path: Path) -> None:
    """Pin the identity of the file now at ``path`` for ``conn`` (it was just checked against
    its space): deleted, replaced or emptied from now on, it is :class:`StoreChanged` at the
    next commit that would write it (R73), even if ``conn`` never attached it before."""
    key = str(path)
    now, size = file_state(key)
    pins = _PINS.get(conn)
    if pins is None:  # (set once: a pin made off the write lock never loses one made under it)
        pins = _PINS.setdefault(conn, {})
    if now is None:
        pins.pop(key, None)
    else:
        pins[key] = now
        if size:
            _note_paged(conn, key)
    _forget_companions(conn, key)  # (recorded again at the next attach)


def _note_paged(conn: apsw.Connection, key: str) -> None:
    """The file ``key`` pinned for ``conn`` holds pages: one that holds none later was emptied
    under the runtime (see :func:`attach`: a file that held pages never goes back to none)."""
    paged = _PAGED.get(conn)
    if paged is None:
        paged = _PAGED.setdefault(conn, set())
    paged.add(key)


def pinned(conn: apsw.Connection, path: Path) -> Identity | None:
    """The identity pinned for ``path`` on ``conn`` (see :func:`attach` and :func:`pin`), if
    any: the file a commit through ``conn`` may write, which a read checks too."""
    pins = _PINS.get(conn)
    return None if pins is None else pins.get(str(path))


def file_identity(path: Path) -> Identity | None:
    """The (device, inode) of the file now at ``path`` (links resolved), None if there is none."""
    return identity_now(str(path))


def unpin(conn: apsw.Connection, path: Path) -> None:
    """Forget the identity pinned for ``path`` (the runtime rebuilt or replaced the file)."""
    pins = _PINS.get(conn)
    if pins is not None:
        pins.pop(str(path), None)
    paged = _PAGED.get(conn)
    if paged is not None:  # (the next file there starts empty: a new one)
        paged.discard(str(path))
    _forget_companions(conn, str(path))


def detach(conn: apsw.Connection) -> None:
    """Let go of the attached database file, if any (outside a transaction)."""
    key = _ATTACHED.get(conn)
    if key is not None:
        forget_marks(conn)
        with interrupts_held():  # (see _attach_once)
            conn.execute(f"DETACH DATABASE {ALIAS}")
            del _ATTACHED[conn]
        # Its pages as this connection leaves it (a commit checkpointed, or the last one to
        # close it did): found empty when next attached, it was emptied meanwhile (see attach).
        now, size = file_state(key)
        if size and now is not None and now == _PINS.get(conn, {}).get(key):
            _note_paged(conn, key)


@dataclass(frozen=True, slots=True)
class Pinned:
    """A database file a write connection attached: its path, the file it was (``identity``)
    and the ``-wal``/``-shm`` recorded with it (see :func:`set_aside_moved`)."""

    path: str
    identity: Identity
    companions: dict[str, Identity | None]


def pinned_files(conn: apsw.Connection) -> list[Pinned]:
    """The database files ``conn`` attached, with their companions as recorded (taken before
    the connection closes: the records go with it)."""
    companions = _COMPANIONS.get(conn, {})
    return [
        Pinned(key, identity, dict(companions.get(key) or {}))
        for key, identity in _PINS.get(conn, {}).items()
    ]


def set_aside_moved(pinned: Pinned) -> None:
    """Once the connection that attached ``pinned`` is closed: if another file stands at its
    path now (a backup restored under the running runtime, which no commit of it met since),
    set aside the ``-wal``/``-shm`` the replaced file left there, which SQLite would apply to
    the file now at the path as its own (``set_aside`` moves them only when nothing but a wrong
    read can come of them)."""
    if pinned.companions and identity_now(pinned.path) not in (None, pinned.identity):
        set_aside(
            pinned.path,
            pinned.identity,
            pinned.companions,
            _WAL_AFTER.get(pinned.path),
            "database file",
        )


def let_go(path: Path, identity: Identity) -> None:
    """Open the store file ``path`` for writing and close it at once: when that is the last
    connection to it, SQLite copies its ``-wal`` into it and removes its ``-wal`` and ``-shm``,
    which a read-only connection closing last cannot do. Only while the file at ``path`` is
    still the one of ``identity`` (the one this process opened: a file put back at the path
    meanwhile is not to meet the -wal of the one it replaced, see ``set_aside``). Nothing is
    created (a missing file stays missing), and nothing is waited for: a file in use
    elsewhere, locked, or not writable here is left as it is."""
    if not os.path.exists(f"{path}-wal") or file_identity(path) != identity:
        return  # nothing left beside it, or another file now
    if not os.access(path, os.W_OK):
        return  # opened read-only, it could not: it would only make a -wal again
    with contextlib.suppress(apsw.Error, OSError):
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE))
        try:
            conn.execute("PRAGMA schema_version").fetchall()  # a read opens the -wal
        finally:
            conn.close()


def open_unwritable(path: Path, what: str = "store file") -> apsw.Connection:
    """A connection to the existing file ``path`` that writes nothing (``query_only``) and
    creates nothing: opened without ``SQLITE_OPEN_CREATE``, and writable where it may be,
    because a connection opened ``SQLITE_OPEN_READONLY`` on a WAL file leaves the ``-wal`` and
    ``-shm`` companions it had to create behind, while a writable one removes them when it is
    the last to close. A file that cannot be opened for writing is opened read-only.
    A ``-wal`` that holds frames when it is opened (a writer was killed, or is running) is left
    as found: the last connection to close would copy it into the file and remove it, so this
    one does not checkpoint on close. Hardened (``harden``): the file may be another program's,
    and its schema runs nothing through this connection. Raises ``apsw.Error`` (the callers
    translate it), and :class:`~sqlite_cells.codec.DatabaseError` naming a directory (or other
    odd file) standing at its ``-wal`` or ``-shm`` path (``what`` names the file), which SQLite
    would only report as "unable to open"."""
    check_companions(path, what)
    try:
        wal_frames = os.path.getsize(f"{path}-wal") > 0
    except OSError:
        wal_frames = False
    if read_as_is(path):
        return open_as_is(path)
    try:
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE))
    except apsw.CantOpenError:
        return harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY))
    if wal_frames:
        conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
    conn.execute("PRAGMA query_only = 1")
    return conn


def read_as_is(path: Path) -> bool:
    """Whether the store file ``path`` is to be read as it is (``immutable``): a WAL file with
    no ``-wal`` and no ``-shm`` beside it (so it holds every commit) in a folder this user may
    not write (read-only media, a folder at 555). SQLite reads a WAL file through a ``-shm``
    (and a ``-wal``) it creates beside it, and there it cannot: the read failed. Only there:
    a file read as it is takes no lock, and a writer that can write the folder could checkpoint
    into it mid-read (a torn read, reported as damage)."""
    if os.path.lexists(f"{path}-wal") or os.path.lexists(f"{path}-shm"):
        return False
    if os.access(path.parent, os.W_OK | os.X_OK):
        return False
    return in_wal_mode(path)


def may_write(path: Path) -> bool:
    """Whether this user may write the store file ``path`` (an absent one: create it) and its
    folder, where SQLite makes its ``-wal``/``-journal``: what a repair of it needs."""
    folder = os.access(path.parent, os.W_OK | os.X_OK)
    return folder and (not os.path.lexists(path) or os.access(path, os.W_OK))


def on_read_only_file_system(path: Path) -> bool:
    """Whether the store file ``path`` (an absent one: its folder) lies on a file system mounted
    read-only, where no user may write it (EROFS): :func:`may_write` is False there for every
    user, and no permission would help."""
    try:
        found = os.statvfs(path if os.path.lexists(path) else path.parent)
    except (OSError, ValueError):  # gone meanwhile, a name the system refuses
        return False
    return bool(found.f_flag & os.ST_RDONLY)


def open_as_is(path: Path) -> apsw.Connection:
    """A read-only connection to ``path`` that takes no lock and creates nothing (see
    :func:`read_as_is`): for one read, never kept open for the next (a writer may come).
    Hardened, as every connection to a store file is."""
    return harden(apsw.Connection(immutable_uri(path), flags=READ_ONLY_URI))


def peek(path: Path, read: Callable[[apsw.Connection], T]) -> T | None:
    """``read`` on a read-only connection of its own to the database file at ``path``, which
    waits for no lock (a caller that must not wait: the scheduler thread, a resolution on the
    read path); None when the file cannot be opened or read at once, or ``read`` finds it
    damaged (a ``SqliteCellsError``). Something other than a regular file at the path or at
    its ``-wal``/``-shm`` (a named pipe would block SQLite's open for ever) is never opened:
    None too, and whoever opens the file for real says what stands there."""
    try:
        check_file_kinds(path, "database file")
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY))
    except (apsw.Error, SqliteCellsError):
        return None
    try:
        conn.setbusytimeout(0)
        return read(conn)
    except (apsw.Error, SqliteCellsError):
        return None
    finally:
        conn.close()


def roll_back_interrupted(path: Path, timeout: float) -> None:
    """Have SQLite roll back the hot journal of the store file ``path``: a writer was killed in
    a commit to the file while it was still in rollback mode (its first, which puts it in WAL
    mode), and no read-only connection may undo that commit (``SQLITE_READONLY_ROLLBACK``).
    What SQLite does on the first read of any connection that may write the file: the file is
    back as its last finished commit left it, and nothing else is written. Whether the file
    then agrees with its space is for the read to find (R71). A lock another connection holds
    is waited for ``timeout`` seconds at most (``apsw.BusyError`` then); raises ``apsw.Error``
    (the callers translate it): a file this process may not write stays as it is."""
    conn = open_unwritable(path)
    try:
        conn.setbusytimeout(max(1, int(timeout * 1000)))
        conn.execute("PRAGMA main.schema_version").fetchall()
    finally:
        conn.close()

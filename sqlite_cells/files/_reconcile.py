"""Crash reconciliation (R70–R72): make a database file agree with its space's log.

In WAL mode SQLite commits the space file and the attached database file one after the other, so
a crash, or an I/O error during ``COMMIT``, can leave the database behind its space. The database
file's watermark (the seq of the last commit that wrote it) is compared with the space's log under
an immediate transaction on the space (so two processes never repair at once, and no commit lands
meanwhile):

* equal — nothing to do;
* behind — the changesets of the missing commits are re-applied from the space's log, in seq order,
  unless one of them was written on the file at a version it lacks, or at an older one than
  the file's (a ``migrate`` step made outside the log, R14: see :func:`_version_after`):
  quarantined;
* ahead by the one commit a crash can leave in flight (its seq is the space's next one) — that
  commit's changesets, from the file's own journal, are inverted and applied, after a copy of the
  file is kept in ``<store>/quarantine/``;
* further ahead (the space file was lost, emptied or restored from an old copy) — quarantined,
  never inverted;
* damaged (not a database, corrupt pages: ``verify`` runs SQLite's ``quick_check``) — reported;
  with ``repair``, rebuilt from the log (the damaged file is moved to ``<store>/quarantine/``);
  quarantined, with or without ``repair``, when the log cannot rebuild it (see
  :func:`_rebuild_refusal`);
* anything else (a changeset that does not apply, one that is missing) — quarantined: the outcome
  says so and nothing is changed.

A quarantined outcome also says whether the log could rebuild the file from nothing
(``Outcome.rebuild_refusal``), so that no advice sends the user to a rebuild that would fail.

Without ``repair`` nothing is written and no file is created (``sqlite-cells check``).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import errno
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import apsw
import msgspec

from sqlite_cells.codec import (
    CommitRecord,
    DatabaseError,
    Op,
    SchemaError,
    SqliteCellsError,
    UnsupportedMigration,
    decode_record,
)
from sqlite_cells.files._changesets import Inexact, apply_exactly
from sqlite_cells.files._damage import is_damage, quick_check
from sqlite_cells.files._held_files import copy_file
from sqlite_cells.files._layout import (
    DROP_KIND,
    KIND,
    REBUILD,
    decode_op_body,
    open_unwritable,
    peek,
    read_as_is,
    stored_json,
)
from sqlite_cells.files._watermark import read_watermark, set_watermark
from sqlite_cells.runtime import (
    BUSY_TIMEOUT_MS,
    QUARANTINE_DIR,
    SpaceFile,
    check_companions,
    check_not_dangling,
    describe,
    file_state,
    harden,
    index_ops,
    is_current_format,
    last_seq,
    log_head,
    odd_kind,
    op_targets_by_seq,
    out_of_files,
    stored_int,
    stored_json_column,
    wait_for_locks,
)
from sqlite_cells.schema import (
    CfLink,
    DamagedVersion,
    Schema,
    SchemaTextError,
    add_missing,
    cf_link,
    declare_tables,
    declared_report,
    diff_of,
    ensure_runtime_tables,
    made_elsewhere,
    meta_text,
    store_owner,
    store_version,
    stored_owner,
    stored_version,
    table,
)
from sqlite_cells.sql import fold_ascii

__all__ = [
    "COPY_FAILED",
    "COPY_FOLDER",
    "DAMAGED_FILE",
    "DISK_REFUSED",
    "INDEX_PAST_LOG",
    "NO_FILE",
    "OTHER_HISTORY",
    "QUARANTINE_DIR",
    "TABLES_DIFFER",
    "Action",
    "Outcome",
    "SpaceFileDamaged",
    "UnreadableFile",
    "database_seq",
    "look_unlocked",
    "migrated_past_log",
    "orphan_outcome",
    "owned_elsewhere",
    "rebuild_refusal",
    "reconcile",
    "recorded_version",
    "remove_database_files",
    "schema_from_json",
    "table_differences",
    "unopenable",
    "unreadable_outcome",
]

log = logging.getLogger("sqlite_cells")

# Why a file is not its database's (another program's or another store's file at the path): the
# start of a quarantine's detail, which ``check`` answers with a remedy that works.
TABLES_DIFFER: Final = "the file's tables differ from the declared ones"
OTHER_HISTORY: Final = "the file at this path is not the one this space wrote"
# Why a repair stopped, said of a full disk, a file size limit or a failing device (SQLite's
# FullError or IOError): the start of a transient quarantine's detail. Nothing of the file was
# changed, and the same repair works once the disk takes the write.
DISK_REFUSED: Final = "the disk refused a write"
# The start of the detail of a database whose file is missing, and of one whose file is damaged
# (not a database, corrupt pages).
NO_FILE: Final = "no file"
DAMAGED_FILE: Final = "damaged file"
# The start of why a replay stopped at an op index row past the log's end (another program's
# row): the space file is what is wrong, not the database file.
INDEX_PAST_LOG: Final = "the space file's op index lists commit"
# Said of a missing or damaged file before why the space's log cannot rebuild it.
CANNOT_REBUILD: Final = "its space's log cannot rebuild it"
# Why a repair that removes rows stopped before it kept its copy (R71): the store's quarantine
# folder cannot be made (a file or a symbolic link stands at its path), said in the detail.
COPY_FOLDER: Final = "the runtime keeps there a copy of each file before a repair that removes rows"
# Why a repair that removes rows stopped: the copy it keeps first could not be written into the
# quarantine folder (a full disk, or a folder this user may not write), said in the detail.
COPY_FAILED: Final = "a repair that removes rows keeps that copy first (R71), and stops without it"


class Action(enum.Enum):
    IN_SYNC = "in sync"
    REPLAYED = "replayed"  # behind: missing commits re-applied
    INVERTED = "inverted"  # ahead by the commit in flight: undone
    REBUILT = "rebuilt"  # damaged: rebuilt from the space's log
    BEHIND = "behind"  # found behind, not repaired (check without --repair)
    AHEAD = "ahead"  # found ahead, not repaired
    DAMAGED = "damaged"  # found damaged, not repaired
    QUARANTINED = "quarantined"
    ORPHANED = "orphaned"  # holds commits, but no space of the store names it: kept as found
    SPACE_DAMAGED = "damaged space file"  # a space file SQLite cannot read: reported, kept
    # A space file SQLite cannot open for a reason that says nothing of its contents (as
    # UNREADABLE): reported, nothing of it read; gc removes nothing it may name.
    SPACE_UNREADABLE = "unreadable space file"
    # A space file another program held in a transaction all through the wait (its log cannot
    # be read, or written for a repair): the check of that space stops, nothing more of it is
    # decided or changed; the other spaces are checked all the same.
    SPACE_LOCKED = "locked space file"
    # A database file SQLite cannot open for a reason that says nothing of its rows (this
    # user's permissions, an I/O error, a process out of file descriptors): reported by
    # ``check`` and the command line, nothing decided.
    UNREADABLE = "unreadable"
    # In sync, but the file holds what its declaration does not, in ways no write adds (a
    # table or trigger another program added): its rows are read, and every write is refused
    # (``UnsupportedMigration``, R13). Reported by ``check``, nothing changed.
    WRITES_REFUSED = "writes refused"
    # Another connection held the database file's lock all through the wait (``check``: a
    # program in a transaction on it): nothing of it was decided or changed; the other
    # databases are checked all the same.
    LOCKED = "locked"
    # The space file's index of which commits wrote each database does not list a commit its
    # log records for this one (another program changed it): nothing else is decided until a
    # repair rebuilds the index from the log.
    INDEX_INCOMPLETE = "space file index incomplete"


@dataclass(frozen=True, slots=True)
class Outcome:
    db_id: str
    path: Path
    db_seq: int  # the watermark found in the file
    space_seq: int  # the last seq of the space's log that wrote the database
    action: Action
    commits: int = 0  # commits whose changesets were applied
    detail: str = ""
    kept: Path | None = None  # the copy kept before a repair that removed rows
    # Quarantined for a want of room or an I/O error on the way (a full disk): the next use
    # compares and repairs again, rather than keeping the database quarantined for good.
    transient: bool = False
    # Why the space's log cannot rebuild the file from nothing (R71: its history compacted
    # away, or crossing a migrate step the log does not hold), told of a quarantined database
    # and said in its detail too; empty when it can, or when nothing was told.
    rebuild_refusal: str = ""

    @property
    def diverged(self) -> bool:
        return self.db_seq != self.space_seq or self.action in (Action.DAMAGED, Action.REBUILT)

    @property
    def agrees(self) -> bool:
        """True when the file now agrees with its space."""
        return self.action in (Action.IN_SYNC, Action.REPLAYED, Action.INVERTED, Action.REBUILT)


class _NoCopyFolder(DatabaseError):
    """The quarantine folder cannot be made (a file stands at its path): see keep_copy."""


class _CopyFailed(DatabaseError):
    """The copy a repair keeps first could not be written into the quarantine folder (a full
    disk, a file size limit): see keep_copy. The message names the file copied and the copy."""

    def __init__(self, source: Path, dest: Path, exc: OSError) -> None:
        what = exc.strerror or str(exc)
        head = (
            f"{DISK_REFUSED} ({what}: a full disk or a file size limit) while {source} was "
            f"copied to {dest}"
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
            else f"{source} could not be copied to {dest} ({what})"
        )
        super().__init__(
            f"{head}: {COPY_FAILED}; nothing of the file was changed, and the next use tries the "
            "repair again"
        )


# Errors that say nothing of the file's rows: the same repair may work at its next try.
_TRANSIENT: Final = (
    apsw.FullError,
    apsw.IOError,
    apsw.BusyError,
    apsw.LockedError,
    _NoCopyFolder,
    _CopyFailed,
)


class _Irreparable(Exception):
    pass


class UnreadableFile(DatabaseError):
    """A database file SQLite could not open, for a reason that says nothing of its rows (see
    ``Action.UNREADABLE``): the message names the file and what to do, the cause is SQLite's
    error. Nothing was decided about the database."""

    def __init__(self, db_id: str, path: Path, error: apsw.Error) -> None:
        super().__init__(describe(error, f"database {db_id} ({path})"))
        self.path = path


class SpaceFileDamaged(DatabaseError):
    """SQLite found damage in the space file while reading its log to compare a database with
    it: the space file is what is damaged (the message names it and what to do), not the
    database file, which nothing was decided about."""

    def __init__(self, space_conn: apsw.Connection, error: apsw.Error) -> None:
        super().__init__(describe(error, f"space file {space_conn.filename}"))
        self.error = error


class _Damaged(Exception):
    pass


def _why(exc: BaseException) -> str:
    """What ``exc`` found, for a quarantine's detail: SQLite's errors keep their class name
    (``FullError: …``), this module's own say only what they found."""
    if isinstance(exc, (apsw.BusyError, apsw.LockedError)):
        return (
            f"{type(exc).__name__}: {exc} — another connection holds the file (another runtime "
            "or program has it open); the next use tries the repair again"
        )
    if isinstance(exc, apsw.FullError):
        return (
            f"{DISK_REFUSED}: it is full ({exc}); nothing of the file was changed, and the "
            "next use tries the repair again"
        )
    if isinstance(exc, apsw.IOError):
        return (
            f"{DISK_REFUSED} or a read ({exc}: a full disk, a file size limit or a failing "
            "device); nothing of the file was changed, and the next use tries the repair again"
        )
    own = (_Irreparable, _Damaged, _NoCopyFolder, _CopyFailed)
    return str(exc) if isinstance(exc, own) else f"{type(exc).__name__}: {exc}"


def database_seq(space_conn: apsw.Connection, db_id: str) -> int:
    """The last seq of the space's log that wrote ``db_id``: from the op index, or (a store of an
    older format whose index cannot be trusted, read without upgrading it; R73) from the log.
    A ``db.drop()`` names the database but writes nothing into its file: the seq of the last
    commit before it that did (a file compared with its space after another runtime dropped
    it is in step, not a commit behind to replay)."""
    if is_current_format(space_conn):
        last = SpaceFile.last_seq_for(space_conn, db_id)  # (a value no seq is: an error)
        if not last or not _dropped_at(space_conn, db_id, last):
            return last
        row = space_conn.execute(_BEFORE_SQL, (db_id, last)).fetchone()
        before = row[0] if row is not None else None
        if before is None:
            # Compaction keeps only the drop of a dropped database: ``_cf_named`` holds the
            # newest seq it removed, the last write before the drop.
            row = space_conn.execute(_COMPACTED_SQL, (db_id, last)).fetchone()
            before = row[0] if row is not None else None
    else:
        seqs = sorted(
            (seq for target, seq in op_targets_by_seq(space_conn) if target == db_id),
            reverse=True,
        )
        if not seqs:
            return 0
        last = seqs[0]
        if not _dropped_at(space_conn, db_id, last):
            return last
        before = seqs[1] if len(seqs) > 1 else None
    # Nothing writes a database after its drop: the commit before it is its last write.
    return before if isinstance(before, int) and before > 0 else last


# The last seq before another whose ops name a target.
_BEFORE_SQL = "SELECT max(seq) FROM _cf_op_index WHERE target = ? AND seq < ?"
# The newest seq compaction removed of a target's records, when it is before another.
_COMPACTED_SQL = "SELECT seq FROM _cf_named WHERE id = ? AND seq < ?"


def _dropped_at(space_conn: apsw.Connection, db_id: str, seq: int) -> bool:
    """Whether the commit ``seq`` dropped ``db_id`` and wrote nothing into its file (False when
    its record cannot be read: it is then taken as a write, as before)."""
    row = space_conn.execute(
        f"SELECT {stored_json_column('record')} FROM _cf_log WHERE seq = ?", (seq,)
    ).fetchone()
    if row is None or not isinstance(row[0], bytes):
        return False
    try:
        record = decode_record(row[0], where=f"of seq {seq}")
    except (SqliteCellsError, msgspec.DecodeError):
        return False
    kinds = {op.kind for op in record.ops if op.target == db_id}
    return kinds == {DROP_KIND}


def unreadable_outcome(db_id: str, path: Path, space_seq: int, error: UnreadableFile) -> Outcome:
    """What ``check`` reports for a database whose file SQLite could not open for a reason that
    says nothing of its rows (``reconcile`` raised ``error``): nothing decided."""
    return Outcome(db_id, path, 0, space_seq, Action.UNREADABLE, detail=str(error))


def _stands_there(kind: str) -> str:
    """A quarantine's detail for ``kind`` (what :func:`odd_kind` says) at a database's path."""
    return f"{kind} stands where the database file belongs: move it"


def orphan_outcome(db_id: str, path: Path, space_id: str) -> Outcome:
    """The outcome for a database of space ``space_id`` whose space file does not exist:
    nothing to compare if the database has no file (or a file no commit reached); else the
    space was lost — or the file is another space's database of the same id: quarantined."""
    if _absent(path):
        return Outcome(db_id, path, 0, 0, Action.IN_SYNC)
    kind = odd_kind(path)
    if kind is not None:  # (never opened: SQLite would say "disk I/O error" of a directory)
        return _quarantine(db_id, path, 0, 0, _stands_there(kind))
    try:
        conn = _open(path, writable=False)
        try:
            db_seq = read_watermark(conn)
            owner = stored_owner(conn)
        finally:
            conn.close()
    except (apsw.Error, _Damaged) as exc:
        if isinstance(exc, _Damaged) or is_damage(exc):
            # Told as a damaged file of a space with a file is (see _damaged); no log holds
            # a commit of it to rebuild it from.
            said = (
                f"{DAMAGED_FILE}: {exc}; {CANNOT_REBUILD}: its space has no file (nothing was "
                "ever committed there); the damaged file is kept as found: move it out of the "
                "store and the database reads as declared, with no rows"
            )
            return _quarantine(db_id, path, 0, 0, said)
        return _quarantine(db_id, path, 0, 0, _why(exc))
    if db_seq == 0:
        return Outcome(db_id, path, 0, 0, Action.IN_SYNC)
    problem = _owner_problem(owner, space_id)
    if problem is not None:
        return _quarantine(db_id, path, db_seq, 0, problem)
    return _quarantine(
        db_id, path, db_seq, 0, "its space's file is missing: the database is ahead of a lost space"
    )


def reconcile(
    space_conn: apsw.Connection,
    db_id: str,
    path: Path,
    *,
    repair: bool = True,
    verify: bool = False,
    busy_ms: int = BUSY_TIMEOUT_MS,
    quiet: bool = False,
) -> Outcome:
    """Compare the database ``db_id`` (file ``path``) with the space behind ``space_conn`` and,
    with ``repair``, bring it in line (see the module docstring). ``verify`` runs SQLite's
    integrity check on the file first. ``quiet`` logs no finding (a first look whose findings
    are looked at again, under the lock, before anything is decided). The caller holds the
    space's in-process write lock; if ``space_conn`` is not already in a transaction one is
    opened (and released) here. A lock
    another connection holds on the database file is waited for ``busy_ms`` at most, then
    ``apsw.BusyError`` is raised and nothing is decided. A file SQLite cannot open for a reason
    that says nothing of its rows is :class:`UnreadableFile`, naming it (nothing decided)."""
    token = _QUIET.set(quiet)
    try:
        for delay in (*_OPEN_AGAIN, None):
            try:
                return _reconcile(space_conn, db_id, path, repair, verify, busy_ms)
            except _OpenFailed as failed:
                if delay is None:
                    raise UnreadableFile(db_id, path, failed.error) from failed.error
                # Another process may be removing or creating the file just now (a refused
                # first write's empty file goes): looked at again, from its existence on.
                time.sleep(delay)
        raise AssertionError("unreachable")
    finally:
        _QUIET.reset(token)


def look_unlocked(
    space_path: Path, db_id: str, path: Path, *, verify: bool = False, busy_ms: int
) -> Outcome:
    """:func:`reconcile` without ``repair``, through a connection of its own to the space file
    ``space_path`` that writes nothing: a runtime's first look at a database, which needs none
    of its space's locks, in-process or SQLite's (see :func:`look_again`). A commit another
    thread is making meanwhile on the space's write connection, to this database or another,
    never holds it back (R40, R44). Logs no finding: whatever is not in sync is looked at again
    under the space's write lock before anything is decided. A lock held elsewhere on either
    file is waited for ``busy_ms`` at most (``apsw.BusyError`` then: nothing is decided)."""
    space_conn = open_unwritable(space_path, "space file")
    try:
        wait_for_locks(space_conn, busy_ms)
        return reconcile(
            space_conn, db_id, path, repair=False, verify=verify, busy_ms=busy_ms, quiet=True
        )
    finally:
        space_conn.close()


# Pauses before looking again at a database file SQLite could not open for a reason that says
# nothing of the file (I/O, a full disk, permissions): ≈ 75 ms in all, then the error is raised.
_OPEN_AGAIN: Final = (0.005, 0.01, 0.02, 0.04)


class _OpenFailed(Exception):
    """SQLite could not open the file, and not because of the file's contents."""

    def __init__(self, error: apsw.Error) -> None:
        super().__init__(str(error))
        self.error = error


_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("reconcile_quiet", default=False)


def _reconcile(
    space_conn: apsw.Connection, db_id: str, path: Path, repair: bool, verify: bool, busy_ms: int
) -> Outcome:
    owns_txn = space_conn.getautocommit()
    if owns_txn:
        space_conn.execute("BEGIN IMMEDIATE" if repair else "BEGIN")
    try:
        missed = _index_misses(space_conn, db_id)
        if missed and not repair:
            return _index_incomplete(db_id, path, missed, busy_ms)
        if missed:
            _rebuild_index(space_conn, db_id, missed)
            if owns_txn:  # kept, whatever the comparison finds (the space is only read below)
                space_conn.execute("COMMIT")
                space_conn.execute("BEGIN IMMEDIATE")
        outcome = _compare(space_conn, db_id, path, repair, verify, busy_ms, owns_txn)
        outcome = _told_rebuild(space_conn, outcome)
        if missed:
            said = f"{INDEX_MISSED.format(seq=missed)}; it was rebuilt from the log"
            outcome = replace(
                outcome, detail=f"{said}; {outcome.detail}" if outcome.detail else said
            )
        return outcome
    finally:
        if owns_txn and not space_conn.getautocommit():
            space_conn.execute("ROLLBACK")  # the space was only read


# What a check says of a space file whose op index does not list a commit that wrote the
# database (see _index_misses).
INDEX_MISSED: Final = (
    "the space file's index of the commits that wrote each database lacks seq {seq}, a write "
    "of this database that its log records: another program changed the index"
)


def _index_misses(space_conn: apsw.Connection, db_id: str) -> int:
    """The seq of the last commit that wrote the database ``db_id`` when the space file's op
    index (``_cf_op_index``, which the comparison reads the space's last write of it from,
    and a replay its commits) does not list it, else 0 (R71). Another program emptying the
    index must not make the runtime invert, or quarantine, a file its log says is in step, nor
    serve a database its log holds commits of as empty. Cheap enough for each check: the
    handle cell's revision is the seq of the last commit that wrote it — each write and drop of
    a database writes its handle, with an op on it, which the index lists; only when the index
    lists nothing that recent is that one record read, to see that it does name the database
    (a handle some other program wrote without an op is no gap in the index)."""
    if not is_current_format(space_conn):
        return 0  # an older format's index is not read (see database_seq)
    row = space_conn.execute("SELECT rev FROM main._cf_cells WHERE id = ?", (db_id,)).fetchone()
    rev = row[0] if row is not None and type(row[0]) is int else 0
    if rev <= SpaceFile.last_seq_for(space_conn, db_id):
        return 0
    try:
        record = _logged(space_conn, rev)
    except (SqliteCellsError, msgspec.DecodeError):
        return 0  # a record that cannot be read: the comparison says so
    return rev if record is not None and any(op.target == db_id for op in record.ops) else 0


def _rebuild_index(space_conn: apsw.Connection, db_id: str, missed: int) -> None:
    """Add to the space file's op index what its log records and it does not list (inside the
    space's write transaction), before the database ``db_id`` is compared with its space."""
    index_ops(space_conn)
    log.warning(
        "space file %s: %s; rebuilt from its log before database %s was compared with it",
        space_conn.filename,
        INDEX_MISSED.format(seq=missed),
        db_id,
    )


def _index_incomplete(db_id: str, path: Path, missed: int, busy_ms: int) -> Outcome:
    """What a look that writes nothing finds when the op index misses a commit of ``db_id``
    (``missed``): the index is to be rebuilt before anything else is decided."""
    db_seq = 0
    with contextlib.suppress(apsw.Error, _Damaged, SqliteCellsError):
        conn = _open(path, writable=False, busy_ms=busy_ms)
        try:
            db_seq = read_watermark(conn)
        finally:
            conn.close()
    return Outcome(
        db_id, path, db_seq, missed, Action.INDEX_INCOMPLETE, detail=INDEX_MISSED.format(seq=missed)
    )


def _compare(
    space_conn: apsw.Connection,
    db_id: str,
    path: Path,
    repair: bool,
    verify: bool,
    busy_ms: int,
    owns_txn: bool,
) -> Outcome:
    """:func:`_reconcile` inside the space's transaction (``owns_txn``: its own)."""
    space_seq = database_seq(space_conn, db_id)
    created = False  # the repair creates the file it rebuilds (see below)
    if _absent(path):
        created = repair
        if space_seq == 0:
            return Outcome(db_id, path, 0, 0, Action.IN_SYNC)
        # Whether the log can rebuild it, told before a repair creates the file: one it
        # cannot rebuild is quarantined with nothing created (R7: a read creates no file).
        refusal = _rebuild_refusal(space_conn, db_id, space_seq)
        if refusal is not None:
            said = f"{NO_FILE}; {CANNOT_REBUILD}: {refusal}; nothing was created"
            return _unrebuildable(db_id, path, space_seq, said, refusal)
        if not repair:
            return Outcome(db_id, path, 0, space_seq, Action.BEHIND, detail=NO_FILE)
    try:
        conn = _open(path, writable=repair, busy_ms=busy_ms)
    except (apsw.BusyError, apsw.LockedError):
        raise  # a lock held elsewhere is not damage: nothing is decided (the caller retries)
    except _Damaged as exc:
        return _damaged(space_conn, db_id, path, space_seq, exc, repair=repair)
    except apsw.Error as exc:
        if not unopenable(path, exc):
            # a full disk, an I/O error, a permission: not damage, nothing decided
            raise _OpenFailed(exc) from exc
        return _damaged(space_conn, db_id, path, space_seq, exc, repair=repair)
    try:
        if verify:
            _verify(conn)
        outcome = _reconcile_file(
            space_conn, conn, db_id, path, space_seq, repair, look_again=owns_txn, trial=verify
        )
    except _Damaged as exc:
        conn.close()
        return _damaged(space_conn, db_id, path, space_seq, exc, repair=repair)
    finally:
        conn.close()
    if created and outcome.action is Action.QUARANTINED and _empty(path):
        # The rebuild it was opened for failed and was rolled back: the file it created is
        # not left in the store (a bad input leaves nothing behind; "left as found").
        remove_database_files(path)
    return outcome


def _rebuild_refusal(space_conn: apsw.Connection, db_id: str, space_seq: int) -> str | None:
    """Why the space's log cannot rebuild the file of ``db_id`` from nothing, up to its last
    write ``space_seq`` (None when it can): the log no longer holds the database's whole
    history (compacted), or that history crosses a ``migrate`` step, which is in the file and
    not in the log (R14, see :func:`_version_after`). The one judgement for a missing file, a
    damaged one and the advice given for any quarantined one, with or without ``repair``."""
    try:
        _check_history(space_conn, db_id, 0)
        _check_versions(space_conn, db_id, 0, space_seq, None, rebuilt=True)
    except (_Irreparable, msgspec.DecodeError) as exc:
        return str(exc)
    return None


def rebuild_refusal(space_conn: apsw.Connection, db_id: str, space_seq: int) -> str | None:
    """:func:`_rebuild_refusal` for the advice given about a file no repair changes (its writes
    refused): None as well when the log cannot be read for it (the advice then leaves the
    rebuild as it is)."""
    try:
        return _rebuild_refusal(space_conn, db_id, space_seq)
    except (apsw.Error, SqliteCellsError):
        return None


def _unrebuildable(db_id: str, path: Path, space_seq: int, detail: str, refusal: str) -> Outcome:
    """The quarantine of a database whose file (missing or damaged) its log cannot rebuild."""
    found = _quarantine(db_id, path, 0, space_seq, detail)
    return replace(found, rebuild_refusal=refusal)


def _told_rebuild(space_conn: apsw.Connection, outcome: Outcome) -> Outcome:
    """``outcome``, when it is a lasting quarantine, with whether the log could rebuild the
    file from nothing (:func:`_rebuild_refusal`), said in its detail too: the way out of a file
    no repair brings in line where it stands is that rebuild, unless the log cannot make it. A
    log that cannot be read for it leaves that untold."""
    if (
        outcome.action is not Action.QUARANTINED
        or outcome.transient
        or outcome.rebuild_refusal
        or not outcome.space_seq
    ):
        return outcome
    try:
        refusal = _rebuild_refusal(space_conn, outcome.db_id, outcome.space_seq)
    except (apsw.Error, SqliteCellsError):
        return outcome
    if refusal is None:
        return outcome
    if refusal in outcome.detail:
        # A replay from seq 0 (a file holding no commit) stopped where a rebuild would: its
        # reason is the detail already, said once.
        said = f"{outcome.detail}; for that reason its space's log cannot rebuild the file either"
    else:
        said = f"{outcome.detail}; nor can its space's log rebuild the file from nothing: {refusal}"
    return replace(outcome, detail=said, rebuild_refusal=refusal)


def _open(path: Path, *, writable: bool, busy_ms: int = BUSY_TIMEOUT_MS) -> apsw.Connection:
    # A directory at the -wal or -shm path is not the file's damage: named, nothing decided.
    # A file this user may not write is opened as `check` opens it (see read_as_is): a repair
    # that must write it fails then, naming it.
    if not writable or read_as_is(path):
        conn = open_unwritable(path, "database file")  # (it looks at them itself)
    else:
        check_not_dangling(path, "database file")  # (a repair creates a missing file)
        check_companions(path, "database file")
        conn = apsw.Connection(
            str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        )
    harden(conn)
    wait_for_locks(conn, busy_ms)
    try:
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    except (apsw.NotADBError, apsw.CorruptError) as exc:
        conn.close()
        raise _Damaged(str(exc)) from exc
    return conn


def _space_damaged(space_conn: apsw.Connection) -> bool:
    """Whether SQLite's finding of damage came from the space file (its log, read to compare),
    not from the database file: then the space file is what is damaged, and the error names it
    (:class:`SpaceFileDamaged`) — the database file is not found damaged, and no rebuild from
    a log that cannot be read would help."""
    return quick_check(space_conn) is not None


def _absent(path: Path) -> bool:
    """Nothing at ``path``: a symbolic link that loops is something (``Path.exists`` says
    False for it), never a database that has no file yet (R41)."""
    return not path.exists() and odd_kind(path) is None


def unopenable(path: Path, exc: apsw.Error) -> bool:
    """Whether SQLite's refusal (``exc``) to open ``path`` is the file's own doing — not a
    regular file, or one whose contents SQLite cannot open: damage — rather than a full disk,
    an I/O error, this user's permissions or a process out of file descriptors, which say
    nothing of its rows."""
    if odd_kind(path) is not None:
        return True
    if isinstance(exc, _TRANSIENT) or out_of_files(exc):
        return False
    # (Its -wal or -shm this user may not open is a permission too, not the file's damage.)
    companions = (f"{path}{suffix}" for suffix in ("-wal", "-shm"))
    return os.access(path, os.R_OK | os.W_OK) and all(
        os.access(c, os.R_OK | os.W_OK) for c in companions if os.path.lexists(c)
    )


def _verify(conn: apsw.Connection) -> None:
    problem = quick_check(conn, full=True)  # R71: `check` runs SQLite's integrity check
    if problem is not None:
        raise _Damaged(problem)


def _reconcile_file(
    space_conn: apsw.Connection,
    conn: apsw.Connection,
    db_id: str,
    path: Path,
    space_seq: int,
    repair: bool,
    *,
    look_again: bool = False,
    trial: bool = False,
) -> Outcome:
    """See :func:`reconcile`. ``trial``: a file found behind, without ``repair``, has the
    replay a repair would make tried on a copy (:func:`_try_replay`), so that what is reported
    is what the repair would do."""
    kept: Path | None = None
    detail = ""
    copies: list[Path] = []  # a copy a replay that removes rows took before it began
    # A lock held elsewhere (BusyError) is not damage: it reaches the caller, nothing is decided.
    conn.execute("BEGIN IMMEDIATE" if repair else "BEGIN")
    try:
        db_seq = read_watermark(conn)
        # A version that is not an integer is damage too (only the runtime writes it): the
        # file is rebuilt from the log, or quarantined, as one with corrupt pages is.
        _file_version(conn, db_id)
        if not repair and look_again and db_seq != space_seq:
            db_seq, space_seq = _second_look(space_conn, conn, db_id, space_seq, db_seq)
    except (apsw.NotADBError, apsw.CorruptError) as exc:
        _rollback(conn)
        if _space_damaged(space_conn):
            raise SpaceFileDamaged(space_conn, exc) from exc
        raise _Damaged(str(exc)) from exc
    except DamagedVersion as exc:
        _rollback(conn)
        raise _Damaged(exc.problem) from exc
    except BaseException:
        _rollback(conn)
        raise
    try:
        _check_owner(space_conn, conn)
        # Tables, none of the runtime's: another program's file put at this path, its rows no
        # commit of the space — never replayed into, never served (R71). (One whose tables
        # differ from the declared ones is told so below, as a replay meets them.)
        if (
            space_seq > 0
            and made_elsewhere(conn)
            and not diff_of(conn, "main", _handle_schema(space_conn, db_id))[1]
        ):
            raise _Irreparable(
                f"{OTHER_HISTORY}: it holds the declared tables but none of the runtime's "
                "(another program's file put there?), and its rows are in no commit of the "
                "space"
            )
        if db_seq == space_seq:
            _check_same_history(space_conn, conn, db_id, db_seq)
            if db_seq > 0:
                _check_tables_kept(space_conn, conn, db_id)
            action, commits = Action.IN_SYNC, 0
        elif db_seq > space_seq:
            in_flight = _in_flight(space_conn, conn, db_id, db_seq, space_seq)
            if not repair:
                # What the repair would find once the commit is undone: undoing changes rows,
                # never tables, so the file as it is lacks the same ones (§6: `check` says what
                # `check --repair` does — a rebuild or a quarantine, not "undo the commit").
                try:
                    _check_undone(space_conn, conn, db_id, db_seq, space_seq)
                except _Damaged:
                    _rollback(conn)
                    raise
                action, commits = Action.AHEAD, 0
            else:
                kept = keep_copy(path, f"ahead-{db_seq}-of-{space_seq}")
                commits = _invert(conn, in_flight)
                try:
                    _check_undone(space_conn, conn, db_id, db_seq, space_seq)
                except _Damaged:
                    # Nothing of the file is changed here: it goes the way of a damaged file
                    # (rebuilt from the log, which keeps its own copy first, or quarantined).
                    _rollback(conn)
                    _drop_copies([kept])
                    raise
                action = Action.INVERTED
        elif not repair and not is_current_format(space_conn):
            # R73: the log of an older format is read once the space file is upgraded, which
            # a look that writes nothing cannot do: behind, as told, with what a repair does.
            action, commits, detail = Action.BEHIND, 0, _OLDER_FORMAT_BEHIND
        elif not repair:
            # What a repair would find (R71): the commits to replay, and the versions they need.
            _check_same_history(space_conn, conn, db_id, db_seq)
            _check_history(space_conn, db_id, db_seq)
            _check_versions(space_conn, db_id, db_seq, space_seq, _file_version(conn, db_id))
            differences = diff_of(conn, "main", _handle_schema(space_conn, db_id))[1]
            if differences:  # the replay would stop at its first step (add_missing)
                raise _Irreparable(f"{TABLES_DIFFER}: {differences}")
            if trial:
                _try_replay(space_conn, conn, db_id, db_seq, space_seq)
            action, commits = Action.BEHIND, 0
        else:
            # Replaying onto another history would serve a mix of two stores' rows.
            _check_same_history(space_conn, conn, db_id, db_seq)
            commits = _replay(
                space_conn,
                conn,
                db_id,
                db_seq,
                space_seq,
                before_removing=lambda: copies.append(
                    keep_copy(path, f"behind-{db_seq}-of-{space_seq}")
                ),
            )
            kept = copies[0] if copies else None
            action = Action.REPLAYED
        if action in (Action.REPLAYED, Action.INVERTED):
            set_watermark(conn, space_seq)
        conn.execute("COMMIT")
    except (apsw.NotADBError, apsw.CorruptError) as exc:
        _rollback(conn)
        _drop_copies(copies)
        if _space_damaged(space_conn):
            raise SpaceFileDamaged(space_conn, exc) from exc
        raise _Damaged(str(exc)) from exc
    except (_Irreparable, apsw.Error, msgspec.DecodeError, SqliteCellsError) as exc:
        _rollback(conn)
        _drop_copies(copies)  # nothing was removed: each try would leave one more
        found = _quarantine(db_id, path, db_seq, space_seq, _why(exc))
        if isinstance(exc, _TRANSIENT) or out_of_files(exc):
            found = replace(found, transient=True)
        return found
    if action is not Action.IN_SYNC and not _QUIET.get():
        log.warning(
            "database %s %s: watermark seq %d, space seq %d, %s%s",
            db_id,
            action.value,
            db_seq,
            space_seq,
            f"{commits} changeset(s) applied" if repair else "not repaired",
            f"; a copy of the file before the repair is kept at {kept}" if kept else "",
        )
    return Outcome(db_id, path, db_seq, space_seq, action, commits, detail, kept)


# What a look that writes nothing says of a file behind a space file of an older store format.
_OLDER_FORMAT_BEHIND: Final = (
    "the space file is of an older store format, whose log is read once it is upgraded: "
    "`sqlite-cells check --repair`, or a runtime opening the store, upgrades it in place and "
    "then re-applies the commits the file misses, if the log holds them"
)


_SECOND_LOOKS = (0.0, 0.002, 0.02, 0.1)  # seconds to wait before each look


def look_again(
    before: int, db_seq: int, *, file_seq: Callable[[], int], space_seq: Callable[[], int]
) -> tuple[int, int]:
    """(watermark, space seq) to compare when a database file and its space were read without
    any lock (``check``, ``inspect``, a runtime's first look): the space's last write to the
    database (``before``), then the file's watermark (``db_seq``), while other runtimes may
    commit. A commit reaches the space file first and the database file a moment later, so a
    watermark between ``before`` and the space as read just after it (``space_seq()``) is no
    disagreement: it is returned as in sync. A watermark behind ``before`` may be a commit
    still on its way to the file: the file (``file_seq()``) and then the space are read again,
    a few times, before it is reported. Past the space as read after it, the file really holds
    a commit its space never recorded."""
    for delay in _SECOND_LOOKS:
        if delay:
            time.sleep(delay)
            db_seq = file_seq()
        after = space_seq()
        if before <= db_seq <= after:
            return db_seq, db_seq
        if db_seq > after:
            return db_seq, after
        before = after  # read before the next look at the file
    return db_seq, before


def _second_look(
    space_conn: apsw.Connection, conn: apsw.Connection, db_id: str, before: int, db_seq: int
) -> tuple[int, int]:
    """:func:`look_again` on the read transactions the caller owns (each ended and begun
    again for a new look)."""

    def file_seq() -> int:
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        return read_watermark(conn)

    def space_seq() -> int:
        space_conn.execute("COMMIT")
        space_conn.execute("BEGIN")
        return database_seq(space_conn, db_id)

    return look_again(before, db_seq, file_seq=file_seq, space_seq=space_seq)


def owned_elsewhere(path: Path, space_id: str) -> bool:
    """Whether the database file at ``path`` records that another space's commits wrote it
    (see ``schema.stored_owner`` and :func:`_check_owner`). Read without waiting for any lock
    (it may run on the scheduler thread): a file that cannot be read at once says nothing."""
    owner = peek(path, stored_owner)
    return owner is not None and owner != space_id


def _check_owner(space_conn: apsw.Connection, conn: apsw.Connection) -> None:
    """``_Irreparable`` when the file records that another space's commits wrote it: one
    database id declared in two spaces names one file (a pattern builds its databases by the
    piece's id and the builder's name or position, whatever space it builds them in), and the
    other space's commits are neither behind this one's nor in flight — undone as this space's
    commit in flight, they were that space's rows lost."""
    owner = stored_owner(conn)
    if owner is None:
        return
    problem = _owner_problem(owner, recorded_space_id(space_conn))
    if problem is not None:
        raise _Irreparable(problem)


def _keep_owner(space_conn: apsw.Connection, conn: apsw.Connection, db_id: str) -> None:
    """Record in a file replayed from ``space_conn``'s log (rebuilt, or brought up to date)
    that it is that space's database, as its first write does (kept if recorded): a file rebuilt
    without it could be taken by another space declaring the same database id for its own, and
    have this space's rows undone as that space's commit in flight (see :func:`_check_owner`)."""
    space_id = recorded_space_id(space_conn)
    if space_id is not None:
        store_owner(conn, "main", space_id, db_id)


def recorded_space_id(space_conn: apsw.Connection) -> str | None:
    """The id the space file records (None: none, or no ``_cf_meta``: nothing known of it)."""
    try:
        return meta_text(space_conn, "_cf_meta", "space_id")
    except apsw.SQLError:
        return None


def _owner_problem(owner: str | None, space_id: str | None) -> str | None:
    """What is wrong with a file that records ``owner`` as its space, for a database of space
    ``space_id`` (None: nothing, or nothing known)."""
    if owner is None or space_id is None or owner == space_id:
        return None
    return (
        f"{OTHER_HISTORY}: it holds the commits of space {owner!r} — either the file of one "
        f"of that space's databases was put at this path (move it out of the store, and "
        "`sqlite-cells check --repair` rebuilds this database from its space's log), or one "
        f"database id is declared in spaces {owner!r} and {space_id!r} (one name, or one "
        "builder position in a pattern: give the database of one of them another name, "
        "sqlite_database(name=...)); it is kept as found"
    )


def _check_tables_kept(space_conn: apsw.Connection, conn: apsw.Connection, db_id: str) -> None:
    """``_Damaged`` when the file lacks a table its space's last write to it declared: that
    write made every table of its declaration in the file (R13), and a migrate that drops one
    writes a declaration without it; so another program dropped it, and the file would read as
    in sync and empty, and its next write make the table anew (R71: rebuilt from the log,
    a copy kept)."""
    missing = _missing_tables(space_conn, conn, db_id)
    if missing:
        raise _Damaged(
            f"the file lacks the table(s) {missing} that its space's last write to it declared "
            "and made (dropped by another program?)"
        )


def _check_undone(
    space_conn: apsw.Connection, conn: apsw.Connection, db_id: str, db_seq: int, space_seq: int
) -> None:
    """``_Damaged`` when the file, its commit in flight (``db_seq``) just undone, lacks a table
    of the declaration its space's last write to it (``space_seq``) recorded: a ``migrate`` of a
    newer declaration renamed or dropped it before that commit (R14: it commits in the file on
    its own), and undoing the commit's changesets leaves the migration. Such a file is what
    :func:`_check_tables_kept` calls damaged, so the repair goes on as for one (R71) rather
    than saying "inverted" of a file the next check finds damaged. (The columns a migration
    added are no such difference: see "Left: undoing the commit in flight keeps the columns it
    added".)"""
    missing = _missing_tables(space_conn, conn, db_id)
    if not missing:
        return
    found = _file_version(conn, db_id)
    recorded = recorded_version(space_conn, db_id)
    at = "" if found is None else f" at version {found}"
    was = "" if recorded is None else f", at version {recorded}"
    raise _Damaged(
        f"once the commit in flight (seq {db_seq}) is undone, the file{at} lacks the table(s) "
        f"{missing} that its space's last write to it (seq {space_seq}{was}) declared: a "
        "migration (a migrate= step) made before that commit renamed or dropped them, and "
        "undoing the commit does not undo it; rebuilt from the log, the file is at the "
        "recorded version and the newer declaration's next write migrates it again; if the "
        f"log cannot rebuild it, restore the space file from a backup made after commit {db_seq}"
    )


def _missing_tables(space_conn: apsw.Connection, conn: apsw.Connection, db_id: str) -> list[str]:
    """The tables of the declaration the space's last write to ``db_id`` recorded that the file
    behind ``conn`` lacks (none when there is no handle to compare with: said where it
    matters)."""
    try:
        declared = _handle_schema(space_conn, db_id)
    except _Irreparable:
        return []
    # As bytes: a name another program wrote that is not UTF-8 is no declared table's anyway.
    held = {
        fold_ascii(bytes(name).decode("utf-8", "replace"))
        for (name,) in conn.execute(
            "SELECT CAST(name AS BLOB) FROM sqlite_schema WHERE type = 'table'"
        )
    }
    return [name for name, _ in declared.tables if fold_ascii(name) not in held]


def _check_same_history(
    space_conn: apsw.Connection, conn: apsw.Connection, db_id: str, seq: int
) -> None:
    """``_Irreparable`` when the file's journal and the space's log both hold the changesets of
    commit ``seq`` (the newest to write the database) and they differ: the file at the path is
    not the one its space wrote (another store's database of the same name put in its place,
    R73), even though their watermarks agree, or the file's is behind (a replay would add this
    space's commits to another history). When either side no longer keeps them (pruned,
    compacted, an older format) nothing can be told, and nothing is decided here."""
    if seq == 0 or not is_current_format(space_conn):
        return
    try:
        kept = [
            bytes(row[0])
            for row in conn.execute(
                "SELECT CAST(changeset AS BLOB) FROM _cf_changes WHERE seq = ? ORDER BY rowid",
                (seq,),
            )
        ]
    except apsw.SQLError:  # a file of the format before the journal
        return
    logged = [
        decode_op_body(op).changeset
        for _, op in SpaceFile.ops_for(space_conn, db_id, seq - 1, seq)
        if op.kind == KIND
    ]
    if not logged and _logged_without(space_conn, db_id, seq):
        # A commit writes the watermark of the one database it wrote (R70): a file whose
        # watermark names a commit that wrote another database is another database's file (two
        # files of one space swapped), whatever its journal still keeps.
        raise _Irreparable(
            f"the file's watermark is commit {seq}, and the space's log holds commit {seq} "
            f"with no write to this database: {OTHER_HISTORY} (another database's file put in "
            "its place?); it is kept as found"
        )
    if not kept or not logged or any(changeset is None for changeset in logged):
        return
    if kept != logged:
        raise _Irreparable(
            f"the file's changes of commit {seq} are not the ones its space logged: "
            f"{OTHER_HISTORY} (another store's database put in its place?); it is kept as found"
        )


def _check_not_a_sibling(
    space_conn: apsw.Connection,
    db_id: str,
    rows: list[tuple[int, bytes, int | None]],
    space_last: int,
) -> None:
    """``_Irreparable`` when the file's journal rows past its space's last write to it (``rows``,
    newest first) hold, for a commit the space's log still holds, exactly the changesets the log
    recorded for *another* database of the space: the file is that database's (two files of one
    space swapped), not one a crash left ahead — its space's file lost nothing, and the advice
    to restore it would be wrong."""
    for seq in sorted({row_seq for row_seq, _, _ in rows if row_seq <= space_last}, reverse=True):
        kept = [changeset for row_seq, changeset, _ in reversed(rows) if row_seq == seq]
        owner = _logged_for(space_conn, seq, kept)
        if owner is not None and owner != db_id:
            raise _Irreparable(
                f"the file holds commit {seq} as the space's log recorded it for database "
                f"{owner}: {OTHER_HISTORY} (that database's file put in its place?); it is "
                "kept as found"
            )


def _logged_for(space_conn: apsw.Connection, seq: int, changesets: list[bytes]) -> str | None:
    """The database whose ops of commit ``seq`` the space's log recorded with exactly
    ``changesets`` (None: no such database, or the record is gone)."""
    record = _logged(space_conn, seq)
    logged: dict[str, list[bytes | None]] = {}
    for op in record.ops if record is not None else ():
        if op.kind == KIND:
            logged.setdefault(op.target, []).append(decode_op_body(op).changeset)
    return next((target for target, kept in logged.items() if kept == changesets), None)


def _logged_without(space_conn: apsw.Connection, db_id: str, seq: int) -> bool:
    """Whether the space's log still holds the record of commit ``seq`` and it has no op on
    ``db_id`` (False when the record is gone: compacted, or never made there)."""
    record = _logged(space_conn, seq)
    return record is not None and not any(op.target == db_id for op in record.ops)


def _logged(space_conn: apsw.Connection, seq: int) -> CommitRecord | None:
    """The record of commit ``seq`` in the space's log (None: gone, or never made there)."""
    row = space_conn.execute(
        f"SELECT {stored_json_column('record')} FROM _cf_log WHERE seq = ?", (seq,)
    ).fetchone()
    if row is None:
        return None
    return decode_record(row[0], where=f"of seq {seq} in space file {space_conn.filename}")


def _rollback(conn: apsw.Connection) -> None:
    if not conn.getautocommit():
        conn.execute("ROLLBACK")


def _quarantine(db_id: str, path: Path, db_seq: int, space_seq: int, detail: str) -> Outcome:
    if not _QUIET.get():
        _log_quarantine(db_id, path, db_seq, space_seq, detail)
    return Outcome(db_id, path, db_seq, space_seq, Action.QUARANTINED, 0, detail)


def _log_quarantine(db_id: str, path: Path, db_seq: int, space_seq: int, detail: str) -> None:
    log.error(
        "database %s (%s) quarantined: watermark seq %d, space seq %d: %s",
        db_id,
        path,
        db_seq,
        space_seq,
        detail,
    )


def _in_flight(
    space_conn: apsw.Connection, conn: apsw.Connection, db_id: str, db_seq: int, space_seq: int
) -> list[bytes]:
    """The changesets of the one commit a crash can leave in flight, which the file holds and
    its space does not: ``_Irreparable`` (the file is quarantined, never inverted) unless all
    of this holds:

    * the file's journal past the space's last write to it (``space_seq``) holds exactly one
      seq, the watermark, and that seq is at most the space's next one (a commit that did not
      write this database may have taken it since);
    * the file's watermark before that commit is ``space_seq``, and its journal rows of
      ``space_seq`` are the changesets the log recorded for it (while both still keep them):
      the file is this database's, as its last durable commit left it (another database's
      file copied to its path has another history);
    * when its journal rows record the space's head (``log_head`` of the seq before, see the
      journal's ``head`` column), the space's log still holds that very record: after a crash
      it is the durable commit the one in flight followed; in a space file lost, emptied or
      restored from an old copy it is gone or was made again by another commit. Rows written
      before the column existed record none, and only the other conditions are checked."""
    # Another history first: a file of another store is ahead of this space by what it holds,
    # which says nothing of this space's file (its commit ``space_seq`` differs here).
    _check_same_history(space_conn, conn, db_id, space_seq)
    space_last = last_seq(space_conn)
    rows = _journal_past(conn, space_seq)
    _check_not_a_sibling(space_conn, db_id, rows, space_last)
    one_commit = {seq for seq, _, _ in rows} == {db_seq}
    if not one_commit or db_seq > space_last + 1:
        raise _Irreparable(
            f"the file is at seq {db_seq} but its space's log ends at seq {space_last} (last "
            f"write to this database: {space_seq}); a crash leaves at most the one commit in "
            "flight, so the space file lost durable commits (lost, emptied or restored from an "
            "old copy): the database is quarantined, not inverted; restore the space file"
        )
    before = _watermark_before(conn, db_seq)
    if before != space_seq:
        raise _Irreparable(
            f"the file is at seq {db_seq}, and before that commit it was at seq {before}, but "
            f"its space's last write to this database is seq {space_seq}: the file is not this "
            "database's as its last durable commit left it (another database's file copied to "
            "its path, or a space restored from an old copy), so its newest commit is not the "
            "one a crash left in flight; it is kept as found: restore the right file (or the "
            "space file) from a backup"
        )
    heads = {head for _, _, head in rows if head is not None}
    if heads:
        found = log_head(space_conn, db_seq - 1) or 0
        if heads != {found}:
            now = "holds another commit in its place" if found else "no longer holds it"
            raise _Irreparable(
                f"the file's commit {db_seq} followed the space's commit {db_seq - 1}, but the "
                f"space's log {now}: the space file was restored from an old copy, or lost, "
                "and its seqs were taken again by other commits, so the file's commit is not "
                "the one a crash left in flight; it is kept as found: restore the space file "
                "from a backup made after the commit"
            )
    return [changeset for _, changeset, _ in rows]


def _journal_past(conn: apsw.Connection, seq: int) -> list[tuple[int, bytes, int | None]]:
    """The file's journal rows past ``seq`` (seq, changeset, head), newest first; the head is
    None in rows written before the column existed, and in a file that has no such column yet
    (read as it is by a check that does not repair)."""
    order = "WHERE seq > ? ORDER BY seq DESC, rowid DESC"
    # A changeset another program stored as text (UTF-8 or not) is read as its bytes, which no
    # changeset applies as: damage said as such, not a raw TypeError or UnicodeDecodeError.
    changeset = "CAST(changeset AS BLOB)"
    try:
        found = conn.execute(f"SELECT seq, {changeset}, head FROM _cf_changes {order}", (seq,))
    except apsw.SQLError:
        found = conn.execute(f"SELECT seq, {changeset}, NULL FROM _cf_changes {order}", (seq,))
    return [
        (int(row_seq), bytes(changeset), head if isinstance(head, int) else None)
        for row_seq, changeset, head in found
    ]


def _watermark_before(conn: apsw.Connection, seq: int) -> int:
    """The watermark the file had before its commit ``seq``: the seq of its newest journal row
    below ``seq``, or the watermark row's when that is larger and below ``seq`` (as
    ``read_watermark`` reads it; files of an earlier format set that row in each commit too)."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT iif(seq < ?1, seq, 0) FROM _cf_watermark WHERE id = 0), 0), "
        "coalesce((SELECT seq FROM _cf_changes WHERE seq < ?1 ORDER BY rowid DESC LIMIT 1), 0))",
        (seq,),
    ).fetchone()
    found = row[0] if row is not None else 0
    return found if isinstance(found, int) else 0


_CONFLICTS: Final = {
    apsw.SQLITE_CHANGESET_DATA: "the row holds other values than the change expects",
    apsw.SQLITE_CHANGESET_NOTFOUND: "the row is not there",
    apsw.SQLITE_CHANGESET_CONFLICT: "a row with that key is there already",
    apsw.SQLITE_CHANGESET_CONSTRAINT: "a constraint fails",
    apsw.SQLITE_CHANGESET_FOREIGN_KEY: "a foreign key fails",
}


def _abort(reason: int, change: apsw.TableChange) -> int:
    why = _CONFLICTS.get(reason, f"conflict {reason}")
    article = "an" if change.op in ("INSERT", "UPDATE") else "a"  # (a DELETE)
    raise _Irreparable(
        f"a changeset does not apply ({article} {change.op} in table {change.name}: {why})"
    )


def _apply(
    conn: apsw.Connection, changeset: bytes, *, invert: bool = False, seq: int | None = None
) -> None:
    """Apply a commit's changeset (its inverse with ``invert``) exactly (R70): see
    :mod:`sqlite_cells.files._changesets`."""
    try:
        apply_exactly(conn, changeset, conflict=_abort, invert=invert)
    except Inexact as exc:
        raise _Irreparable(
            f"commit {seq}'s changeset cannot be applied exactly ({exc})"
            if seq is not None
            else f"the changeset of the commit in flight cannot be undone exactly ({exc})"
        ) from exc


# The largest file whose replay ``check`` tries on a copy in memory (see _try_replay).
_TRIAL_BYTES: Final = 256 * 1024 * 1024


def _try_replay(
    space_conn: apsw.Connection, conn: apsw.Connection, db_id: str, after: int, upto: int
) -> None:
    """The replay a repair would make (:func:`_replay`), applied to a copy of the file behind
    ``conn`` in memory and dropped: ``_Irreparable`` (or SQLite's error) when a changeset would
    not apply — another program changed a row a missing commit updates — so that ``check``
    reports what ``check --repair`` and a runtime would find, and writes nothing. A file over
    :data:`_TRIAL_BYTES` is not copied: its other checks stand."""
    pages = conn.execute("PRAGMA main.page_count").fetchall()[0][0]
    size = conn.execute("PRAGMA main.page_size").fetchall()[0][0]
    if int(str(pages)) * int(str(size)) > _TRIAL_BYTES:
        return
    image = bytearray(conn.serialize("main") or b"")
    if len(image) >= 20:
        # A WAL file's header says so (bytes 18 and 19: 2); a copy in memory has no -wal and
        # SQLite refuses to write it unless it reads as a rollback-journal file (1).
        image[18:20] = b"\x01\x01"
    copy = apsw.Connection(":memory:")
    try:
        if image:  # (an empty file is an empty database, as the copy is already)
            copy.deserialize("main", bytes(image))
        # In a transaction, as a repair's replay is: a step that finds none open takes it that
        # SQLite ended the caller's (a table rebuild is then not tried).
        copy.execute("BEGIN")
        _replay(space_conn, copy, db_id, after, upto)
    finally:
        copy.close()


def _replay(
    space_conn: apsw.Connection,
    conn: apsw.Connection,
    db_id: str,
    after: int,
    upto: int,
    *,
    before_removing: Callable[[], object] | None = None,
) -> int:
    """Apply the commits to ``db_id`` in (``after``, ``upto``] as their runtimes made them: each
    commit first made the additive diff of the declaration its handle write records (R13: a
    table created with that declaration's column order, missing columns appended in it), then
    wrote its rows. Changesets name columns by position, so creating a table the file lacks in
    the order declared *now* would put their values in other columns (a column declared since
    between two others stands last in the file, but in the middle of a table created anew).
    ``before_removing`` is called before anything is applied when the commits delete rows (R71:
    a repair that removes rows keeps a copy of the file first)."""
    current = _handle_schema(space_conn, db_id)
    found = _file_version(conn, db_id)
    records = _records_for(space_conn, db_id, after, upto)
    ops = [(r.seq, op) for r in records for op in r.ops if op.target == db_id]
    if before_removing is not None and _deletes_rows(op for _seq, op in ops if op.kind == KIND):
        before_removing()
    # Before anything is written; from nothing (a file rebuilt, or made for a lost one), the
    # version the replay reached is no file's to report.
    version = _version_after(ops, found, rebuilt=after == 0 and found is None)
    ensure_runtime_tables(conn, "main")
    _keep_owner(space_conn, conn, db_id)
    applied: set[int] = set()
    made: bytes | None = None  # the tables (JSON) of the declaration last made
    for record in records:
        written = _written_tables(record, db_id)
        if made is None and written is None:  # (no handle write: as declared before)
            _add_missing(conn, current, db_id)
            made = b""
        elif written is not None and written != made:  # (each commit writes its handle)
            _add_missing(conn, _schema_of(written, db_id), db_id)
            made = written
        for op in record.ops:
            if op.target != db_id or op.kind != KIND:  # (a drop changes no row of the file)
                continue
            changeset = decode_op_body(op).changeset
            if changeset is None:
                raise _Irreparable(f"commit {record.seq} kept no changeset to replay")
            _apply(conn, changeset, seq=record.seq)
            conn.execute(
                "INSERT INTO _cf_changes (seq, changeset, head) VALUES (?, ?, ?)",
                (record.seq, changeset, log_head(space_conn, record.seq - 1) or 0),
            )
            applied.add(record.seq)
    _add_missing(conn, current, db_id)  # declared since the last of them
    if version is not None and (found is None or version > found):
        # As the replayed commits left it: a migrate must not run again over their rows.
        store_version(conn, "main", version)
    return len(applied)


def _drop_copies(copies: list[Path]) -> None:
    """Remove the copies a repair took before it failed (rolled back: the file is as copied)."""
    for copy in copies:
        for part in (copy, Path(f"{copy}-wal"), Path(f"{copy}.txt")):
            part.unlink(missing_ok=True)


def _deletes_rows(ops: Iterable[Op]) -> bool:
    """Whether the changesets of ``ops`` delete a row (an op without one is refused later)."""
    for op in ops:
        changeset = decode_op_body(op).changeset
        if changeset and any(c.op == "DELETE" for c in apsw.Changeset.iter(changeset)):
            return True
    return False


def _add_missing(conn: apsw.Connection, schema: Schema, db_id: str) -> None:
    try:
        add_missing(conn, "main", schema, db_id)
    except UnsupportedMigration as exc:
        differences = list(exc.differences)
        raise _Irreparable(f"{TABLES_DIFFER}: {differences}") from exc


class _Handle(msgspec.Struct):
    """The part of a handle cell's value a replay reads: its declared tables, as stored."""

    tables: msgspec.Raw = msgspec.Raw(b"null")


_handle_decoder = msgspec.json.Decoder(_Handle)


def _written_tables(record: CommitRecord, db_id: str) -> bytes | None:
    """The declared tables (JSON) that ``record``'s commit wrote into the handle cell of
    ``db_id`` (a commit that writes a database writes its handle), or None when it wrote none.
    Compared as stored: most commits repeat the declaration before them, which is then not
    decoded or diffed again (a replay of 500 commits of 40 tables did so 500 times: 11 s)."""
    for write in record.writes:
        if write.id == db_id:
            try:
                return bytes(_handle_decoder.decode(write.value).tables)
            except msgspec.DecodeError as exc:
                raise _Irreparable(
                    f"commit {record.seq} wrote the handle cell of {db_id} with no handle value"
                ) from exc
    return None


def _file_version(conn: apsw.Connection, db_id: str) -> int | None:
    """The version stored in the database file (None: none, or no ``_cf_meta`` yet); one that
    is not an integer is :class:`DamagedVersion`."""
    try:
        return stored_version(conn, "main", db_id)
    except apsw.SQLError:  # no _cf_meta: a file no commit wrote
        return None


def _check_versions(
    space_conn: apsw.Connection,
    db_id: str,
    after: int,
    upto: int,
    found: int | None,
    *,
    rebuilt: bool = False,
) -> None:
    """``_Irreparable`` when replaying the commits to ``db_id`` in (``after``, ``upto``] onto a
    file at version ``found`` would cross a version step the file lacks (see
    :func:`_version_after`; ``rebuilt``: there is no file, the replay would make it); nothing
    is told for a space file of an older format."""
    if is_current_format(space_conn):
        _version_after(SpaceFile.ops_for(space_conn, db_id, after, upto), found, rebuilt=rebuilt)


def _version_after(
    ops: list[tuple[int, Op]], found: int | None, *, rebuilt: bool = False
) -> int | None:
    """The version a file at version ``found`` (None: none) is at once ``ops`` are replayed
    onto it (None: not known); ``_Irreparable`` when one of them was written on the file at a
    version it does not reach.

    Each op records the version its commit found on the file and the one it left (see
    :class:`OpBody`). A step made inside a commit was the additive diff (R13), which the
    replay makes too. A step made before a commit was a ``migrate`` callback (R14), run on
    its own connection: it is durable in the file but not in the log, so a file that lost it
    (restored from an older copy) would get the later changesets on pre-migration rows and
    run ``migrate`` again at its next write. Such a file is quarantined (R71), not replayed;
    so is a file at a newer version than an op it lacks was written at (a ``migrate`` that
    committed in the file while it was behind its space: the op's values belong in the old
    tables). Ops of older records say neither: nothing is known across them. ``rebuilt``: the replay
    starts from nothing (a file rebuilt from the log), so the refusal speaks of no file's
    version, only of where the replay stops (the caller says which file is missing or
    damaged)."""
    current, known = found, True
    for seq, op in ops:
        if op.kind != KIND:
            continue
        body = decode_op_body(op)
        if body.version is None:
            known = False
            continue
        needed = body.from_version
        if known and needed is not None and (current is None or current < needed):
            at = "no version" if current is None else f"version {current}"
            if rebuilt:  # (the caller says of which file: missing, or damaged)
                raise _Irreparable(
                    f"the space's commit {seq} was written on the file at version {needed}, "
                    f"after a migration (a migrate= step) that the log does not hold, and a "
                    f"replay of the log stops at {at}: only a copy of the file made at version "
                    f"{needed} or later can take its place"
                )
            raise _Irreparable(
                f"the file is at {at}, but the space's commit {seq} was written on it at "
                f"version {needed}: the file lacks a migration (a migrate= step) made before "
                "that commit, which the space's log does not hold and a replay cannot make "
                "(the file was restored from a copy older than the migration?); it is kept "
                f"as found: restore the file from a copy made at version {needed} or later"
            )
        if known and needed is not None and current is not None and needed < current:
            # The file's version rose after this commit was written, outside the log: a
            # migration committed in the file while it still lacked this commit (R14, R72).
            raise _Irreparable(
                f"the file is at version {current}, but the space's commit {seq}, which it "
                f"lacks, was written on it at version {needed}: a migration (a migrate= step) "
                "committed in the file before that commit reached it, and a replay cannot put "
                "that commit into the migrated tables (the file is this database's; rebuilt "
                "from the log, it is at the older version, and its next write migrates it)"
            )
        if not known or current is None or body.version > current:
            current = body.version
        known = True
    return current if known else None


def migrated_past_log(space_conn: apsw.Connection, conn: apsw.Connection, db_id: str) -> bool:
    """Whether the database file open as ``conn`` is at a newer version than the declaration
    its space's last write to ``db_id`` recorded: a ``migrate`` ran on it since (R14: it
    commits in the file on its own, and stays though the write it ran for failed), so what it
    holds beyond the recorded declaration is the newer declaration's, which its next write
    brings — not another program's doing. False when either version is not known."""
    found = _file_version(conn, db_id)
    if found is None:
        return False
    recorded = recorded_version(space_conn, db_id)
    return recorded is not None and found > recorded


def recorded_version(space_conn: apsw.Connection, db_id: str) -> int | None:
    """The declared version the space's last write to ``db_id`` recorded (R14): the version
    of the declaration whose tables its handle holds. None when not known (no write, a store
    of an older format, or records written before ops kept their version)."""
    seq = database_seq(space_conn, db_id)
    if not seq or not is_current_format(space_conn):
        return None
    records = SpaceFile.records_for(space_conn, db_id, seq - 1, seq)
    versions = [
        decode_op_body(op).version
        for record in records
        for op in record.ops
        if op.target == db_id and op.kind == KIND
    ]
    return versions[-1] if versions else None


def _records_for(
    space_conn: apsw.Connection, db_id: str, after: int, upto: int
) -> list[CommitRecord]:
    if is_current_format(space_conn):
        _check_history(space_conn, db_id, after)
        return SpaceFile.records_for(space_conn, db_id, after, upto)
    raise _Irreparable(
        "the space file is of an older store format: open the store with a runtime (or run "
        "`sqlite-cells check --repair`) to upgrade it first"
    )


# What to do about a seq of ``_cf_named`` that is not an integer: the seq before a target's
# oldest commit the op index lists is at least the newest compaction removed (the index loses
# the rows of the records compaction removes), so it claims no history the log does not hold.
NAMED_SEQ_REMEDY: Final = (
    "with another tool, give it the seq before the oldest commit the op index lists for it "
    "(`UPDATE _cf_named SET seq = coalesce((SELECT min(seq) - 1 FROM _cf_op_index WHERE "
    "target = _cf_named.id), (SELECT max(seq) FROM _cf_log)) WHERE typeof(seq) <> 'integer'`: "
    "it records up to which seq compaction removed the commits that wrote it), then run "
    "`sqlite-cells check`"
)


def _compacted_seq(space_conn: apsw.Connection, db_id: str, value: object) -> int:
    """The seq of ``db_id``'s ``_cf_named`` row, read as ``value``; anything but an integer
    there is an :class:`EncodingError` naming the row, the space file and what to do."""
    return stored_int(
        value,
        f"the seq up to which the log was compacted for {db_id} (its _cf_named row)",
        remedy=NAMED_SEQ_REMEDY,
        file=space_conn.filename,
    )


def _check_history(space_conn: apsw.Connection, db_id: str, after: int) -> None:
    """``_Irreparable`` unless the log still holds every commit to ``db_id`` after seq
    ``after``: compaction may have removed older ones (``_cf_named`` says up to which seq), and a
    record listed in the op index must still be in the log."""
    known = space_conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_cf_named'").fetchone()
    row = (
        space_conn.execute("SELECT seq FROM _cf_named WHERE id = ?", (db_id,)).fetchone()
        if known is not None
        else None
    )
    if row is not None and _compacted_seq(space_conn, db_id, row[0]) > after:
        raise _Irreparable(
            f"the space's log was compacted: its commits to this database up to seq {row[0]} "
            f"are gone, so it no longer holds the database's history after seq {after} to "
            "replay (a database file is only rebuilt while the log holds its whole history); "
            "restore the file from a backup"
        )
    missing = space_conn.execute(
        "SELECT min(i.seq) FROM _cf_op_index i LEFT JOIN _cf_log l ON l.seq = i.seq "
        "WHERE i.target = ? AND i.seq > ? AND l.seq IS NULL",
        (db_id, after),
    ).fetchone()
    if missing is not None and missing[0] is not None and missing[0] > last_seq(space_conn):
        # Past the log's end: no commit had that seq (compaction keeps the newest record), so
        # the row is another program's, and the file is not what is wrong.
        raise _Irreparable(
            f"{INDEX_PAST_LOG} {missing[0]} as one that wrote this "
            f"database, past the log's last seq {last_seq(space_conn)}: no commit had that "
            "seq (another program wrote the row), and the file is not what is wrong; delete "
            "the row with another tool (`DELETE FROM _cf_op_index WHERE seq > (SELECT "
            "max(seq) FROM _cf_log)`), then run `sqlite-cells check`"
        )
    if missing is not None and missing[0] is not None:
        raise _Irreparable(
            f"the space's log no longer holds commit {missing[0]}, which wrote this database: "
            "its history cannot be replayed; restore the file from a backup"
        )


def _invert(conn: apsw.Connection, changesets: list[bytes]) -> int:
    for changeset in changesets:
        _apply(conn, changeset, invert=True)
    return 1  # its journal rows go when the watermark is set back (set_watermark)


def _damaged(
    space_conn: apsw.Connection,
    db_id: str,
    path: Path,
    space_seq: int,
    exc: BaseException,
    *,
    repair: bool,
) -> Outcome:
    """A file that is not a database or has corrupt pages: quarantined when the log cannot
    rebuild it (:func:`_rebuild_refusal`), else reported; with ``repair``, rebuilt from the log
    into a new file (the damaged file is moved to the quarantine directory)."""
    detail = f"{DAMAGED_FILE}: {exc}"
    kind = odd_kind(path)
    if kind is not None:  # (never copied or replaced: a named pipe would block the copy)
        return _quarantine(db_id, path, 0, space_seq, _stands_there(kind))
    # Told before anything is written, and alike with or without ``repair``: `check` says
    # what `check --repair` would do.
    try:
        refusal = _rebuild_refusal(space_conn, db_id, space_seq)
    except (apsw.Error, SqliteCellsError):
        refusal = None  # (the log cannot be read for it: the rebuild says what it meets)
    if refusal is not None:
        said = f"{detail}; {CANNOT_REBUILD}: {refusal}; the damaged file is kept as found"
        return _unrebuildable(db_id, path, space_seq, said, refusal)
    if not repair:
        if not _QUIET.get():
            log.error("database %s (%s) is damaged: %s", db_id, path, exc)
        return Outcome(db_id, path, 0, space_seq, Action.DAMAGED, 0, detail)
    fresh = path.with_name(path.name + REBUILD)
    remove_database_files(fresh)
    try:
        conn = _open(fresh, writable=True)
    except BaseException as why:
        return _not_rebuilt(why, fresh, db_id, path, space_seq, detail)
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
            commits = _replay(space_conn, conn, db_id, 0, space_seq)
            set_watermark(conn, space_seq)
            conn.execute("COMMIT")
            # A read transaction holds the new file until it stands at the path: `gc` lists an
            # unfinished rebuild's file, and removes one only when no connection has it open.
            # (In rollback mode: a WAL file's -wal and -shm would be left under its old name.)
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        except BaseException as why:
            conn.close()
            return _not_rebuilt(why, fresh, db_id, path, space_seq, detail)
        try:
            kept = keep_copy(path, "damaged")
        except BaseException:
            conn.close()
            # The damaged file stays as it was, and nothing is left beside it.
            remove_database_files(fresh)
            raise
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(fresh, path)
    finally:
        conn.close()  # (again: a no-op once closed)
    _switch_to_wal(path)
    log.warning(
        "database %s was damaged (%s): rebuilt from its space's log (%d commits); the damaged "
        "file is kept at %s",
        db_id,
        exc,
        commits,
        kept,
    )
    return Outcome(db_id, path, 0, space_seq, Action.REBUILT, commits, detail, kept)


def _not_rebuilt(
    why: BaseException, fresh: Path, db_id: str, path: Path, space_seq: int, detail: str
) -> Outcome:
    """A rebuild into ``fresh`` that ``why`` stopped: nothing of it is left in the store (a
    Ctrl-C too), and the damaged file is quarantined, or ``why`` raised when it is not a
    finding about the file or the log."""
    remove_database_files(fresh)
    if not isinstance(
        why, (_Irreparable, _Damaged, apsw.Error, msgspec.DecodeError, SqliteCellsError)
    ):
        raise why
    return _quarantine(db_id, path, 0, space_seq, f"{detail}; not rebuilt from the log: {why}")


def _switch_to_wal(path: Path) -> None:
    """Put a rebuilt file in WAL mode, as the runtime keeps its database files; a file another
    connection uses already is left to the next writer, which switches it as it attaches."""
    with contextlib.suppress(apsw.Error):
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE))
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
        finally:
            conn.close()


def _empty(path: Path) -> bool:
    """Whether a file at ``path`` holds no byte (a database SQLite created and wrote nothing
    to, or a transaction rolled back)."""
    identity, size = file_state(str(path))
    return identity is not None and size == 0


def remove_database_files(path: Path) -> bool:
    """Delete a database file and its -wal, -shm and -journal; True if the file existed. The
    file goes last: a removal cut short (a kill) leaves the file itself, which the next gc
    lists, or the next repair meets, with what is left beside it, not a -wal without it (which
    gc lists as a stray, ``_handles.Stray``)."""
    existed = path.exists()
    for suffix in ("-wal", "-shm", "-journal", ""):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


def keep_copy(path: Path, why: str) -> Path:
    """Copy ``path`` (and its -wal) into ``<store>/quarantine/`` before a repair changes it, with
    a note saying why; returns the copy's path. The caller holds the file's write lock."""
    folder = path.parent / QUARANTINE_DIR
    if folder.is_symlink():
        # The copy would be written wherever it points, outside the store (a link planted
        # there by another program): the store's own folder or none.
        raise _NoCopyFolder(
            f"{folder} is a symbolic link: {COPY_FOLDER} (R71), inside the store, never where a "
            "link points; move it out of the store, then use the database again"
        )
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    base = folder / f"{path.name}.{stamp}.{why}"
    n = 0
    try:
        folder.mkdir(exist_ok=True)
        while Path(f"{base}.{n}").exists():
            n += 1
    except FileExistsError:
        raise _NoCopyFolder(
            f"{folder} is not a directory: {COPY_FOLDER} (R71); move it out of the store, then "
            "use the database again"
        ) from None
    except OSError as exc:
        # The folder cannot be made or searched (this user's permissions): the folder is
        # named, not the database file, whose own permissions are not in question.
        raise _CopyFailed(path, folder, exc) from exc
    copy = Path(f"{base}.{n}")
    made = [copy, Path(f"{copy}-wal"), Path(f"{copy}.txt")]
    wal = Path(f"{path}-wal")
    making = (path, copy)  # (the file being copied, where to): named if the copy fails
    try:
        if path.exists():
            copy_file(path, copy)  # never a plain open and close: they drop the caller's lock
        making = (wal, made[1])
        if wal.exists():
            copy_file(wal, made[1])
        making = (path, made[2])
        made[2].write_text(
            f"{path.name}: copy kept before a repair ({why}) at {stamp} UTC.\n"
            "To look at it, copy it (with its -wal) elsewhere and open it with sqlite3.\n"
        )
    except BaseException as exc:
        # A copy cut short (a full disk) is no copy: none is left looking like one, and the
        # repair, which needs it, does not go on (its error says what stopped the copy).
        for part in made:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _CopyFailed(*making, exc) from exc
        raise
    return copy


def _handle_schema(space_conn: apsw.Connection, db_id: str) -> Schema:
    row = space_conn.execute(
        f"SELECT {stored_json_column('value')} FROM _cf_cells WHERE id = ?", (db_id,)
    ).fetchone()
    if row is None:
        raise _Irreparable(f"the space holds no handle for {db_id}")
    stored = stored_json(row[0])
    if stored is None:
        raise _Irreparable(f"the handle cell of {db_id} holds no JSON (written by another program)")
    try:
        tables = bytes(_handle_decoder.decode(stored).tables)
    except msgspec.DecodeError:
        tables = b"null"
    return _schema_of(tables, db_id)


def _schema_of(tables: bytes, db_id: str) -> Schema:
    """The declaration of a handle cell's ``tables`` (JSON, as stored)."""
    try:
        value = msgspec.json.decode(tables)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise _Irreparable(f"the handle cell of {db_id} holds no handle value")
    try:
        return schema_from_json(value)
    except SchemaError as exc:
        raise _Irreparable(f"the handle cell of {db_id} declares no tables: {exc}") from exc


def table_differences(conn: apsw.Connection, tables: dict[str, Any]) -> list[str]:
    """How the tables of the file behind ``conn`` differ from ``tables`` (as a handle cell's
    value declares them) in ways no repair adds: a file with any is not its database's file.
    Read only."""
    try:
        return diff_of(conn, "main", schema_from_json(tables))[1]
    except (SchemaError, SchemaTextError) as exc:
        return [str(exc)]


def declares_alike(tables: Any, schema: Schema) -> bool:
    """Whether the ``tables`` of a handle's value declare what ``schema`` declares, as SQLite
    reports both: another spelling of a type, another case of a name or a type, another order
    of the columns is no difference (R13 compares schemas by what SQLite reports; SQLite's
    names are ASCII case-insensitive)."""
    if tables == schema.to_json():
        return True
    try:
        recorded = declared_report(schema_from_json(_names_folded(tables)))
        return recorded == _folded_report(schema)
    except (SqliteCellsError, AttributeError, KeyError, TypeError, ValueError):
        return False


@functools.lru_cache(maxsize=64)
def _folded_report(schema: Schema) -> object:
    """What SQLite reports for ``schema`` with its names in one case (a declaration is built
    and checked once, not at every commit that compares it)."""
    return declared_report(schema_from_json(_names_folded(schema.to_json())))


def _names_folded(tables: Any) -> dict[str, Any]:
    """The ``tables`` of a handle's value with every table, column and index name in one case."""
    return {
        fold_ascii(name): {
            "columns": [{**c, "name": fold_ascii(c["name"])} for c in spec["columns"]],
            "indexes": {
                fold_ascii(index): [fold_ascii(column) for column in columns]
                for index, columns in (spec.get("indexes") or {}).items()
            },
        }
        for name, spec in tables.items()
    }


def schema_from_json(tables: dict[str, Any]) -> Schema:
    """Rebuild a declared schema from the ``tables`` of a handle cell's value; ``SchemaError``
    when they do not decode as a declaration (R10–R12), whatever is wrong with them."""
    try:
        declared = {}
        for name, spec in tables.items():
            columns: dict[str, str | CfLink] = {
                c["name"]: cf_link() if c["link"] else c["spec"] for c in spec["columns"]
            }
            declared[name] = table(columns, indexes=spec.get("indexes") or None)
        return declare_tables(declared, recorded=True)
    except SchemaError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise SchemaError(f"the tables {tables!r:.80} are not a declaration ({exc!r})") from exc

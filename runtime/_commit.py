"""The statements of one commit, on the space's write connection inside its transaction: read
validation, the cell writes (the transaction's and its participants') and the names of the cells
first written, the participants' ops and the commit record (R34).
:mod:`sqlite_cells.runtime._space_file` decides when they run."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

import apsw
import msgspec

from sqlite_cells.codec import (
    CellWrite,
    ClosedError,
    CommitRecord,
    DatabaseError,
    EncodingError,
    ExecError,
    SqliteCellsError,
    ValueEncodeError,
    encode_record,
)
from sqlite_cells.runtime._boundary import out_of_files, stored_json_column
from sqlite_cells.runtime._format import NAMES_TABLE
from sqlite_cells.runtime._group import Groups, Ticket
from sqlite_cells.runtime._marks import appended
from sqlite_cells.runtime._tx import LENGTH_LIMIT, conflict, over_length_limit

if TYPE_CHECKING:
    from sqlite_cells.runtime._participants import CommitParticipant
    from sqlite_cells.runtime._tx import Transaction

__all__ = ["TOO_BIG_ADVICE", "RecordTooBig", "commit_error", "holds", "write_member"]

_SAVEPOINT = "SAVEPOINT _cf_member"
_ROLLBACK_TO = "ROLLBACK TO _cf_member"
_RELEASE = "RELEASE _cf_member"


def write_member(
    conn: apsw.Connection,
    cursor: apsw.Cursor,
    ticket: Ticket,
    seq: int,
    *,
    space: object,
    space_id: str,
    participant: Callable[[str], CommitParticipant],
    grouped: bool,
    check_committed: Callable[[str, str, bytes], None] | None = None,
) -> CommitRecord | None:
    """Write ``ticket``'s transaction as commit ``seq``. When ``grouped`` it runs in a savepoint
    and its own error fails the ticket alone (rolled back to the savepoint; None is returned);
    otherwise the error is raised. ``cursor`` (of ``conn``) runs the statements here that run
    to their end in one step (the cell writes, the record). ``check_committed`` judges again
    the writes the transaction guards (see :func:`_judge_again`)."""
    tx = ticket.tx
    if grouped:
        cursor.execute(_SAVEPOINT)
    try:
        if seq > _LARGEST_SEQ:
            raise _no_seq_left(conn, space_id)
        _validate(conn, tx, space, space_id)
        if tx.guards and check_committed is not None:
            _judge_again(cursor, tx, seq, space_id, check_committed)
        writes = _cell_writes(conn, tx, ticket.groups)
        _write_cells(cursor, writes, seq)
        if tx.names:  # only a commit that writes a cell this runtime has not named yet has any
            _record_names(cursor, tx.names, writes)
        groups = ticket.groups
        if len(groups) == 1:  # one kind of op: its participant is known already
            one = groups[0][0]
            kept = [one.apply(conn, op, seq) for op in tx.ops]
        else:
            kept = [participant(op.kind).apply(conn, op, seq) for op in tx.ops]
        record = CommitRecord(
            seq=seq,
            writes=tuple(CellWrite(k, msgspec.Raw(v)) for k, v in writes.items()),
            ops=tuple(kept),
        )
        _append(cursor, record)
    except Exception as exc:
        if not grouped:
            raise
        if not conn.getautocommit():  # else the error ended the whole transaction
            cursor.execute(_ROLLBACK_TO)
            cursor.execute(_RELEASE)
        ticket.fail(commit_error(exc, space_id, conn))
        return None
    if grouped:
        cursor.execute(_RELEASE)
    return record


# The largest integer SQLite stores: a log whose newest seq is this one (another program wrote
# it) leaves no seq for a next commit.
_LARGEST_SEQ: Final = 2**63 - 1


def _no_seq_left(conn: apsw.Connection, space_id: str) -> DatabaseError:
    """The error of a commit that would follow seq ``_LARGEST_SEQ`` (nothing is written)."""
    return DatabaseError(
        f"space {space_id!r}: the log of the space file {conn.db_filename('main')} ends at seq "
        f"{_LARGEST_SEQ}, the largest integer SQLite stores, so no commit can follow it; nothing "
        "of this one is visible: sqlite-cells never numbers commits so high (another program "
        "wrote the log, which `sqlite-cells check` does not look at): with another tool, give "
        "that row back the seq its record holds (`UPDATE _cf_log SET seq = "
        f"json_extract(CAST(record AS TEXT), '$[0]') WHERE seq = {_LARGEST_SEQ}`), or restore "
        "the space file from a backup"
    )


def commit_error(
    exc: BaseException, space_id: str, conn: apsw.Connection | None = None
) -> BaseException:
    """An SQLite error at commit as the error a caller gets (no raw apsw error reaches one);
    ``conn`` is the connection that committed, if known (to name a read-only file)."""
    error: SqliteCellsError
    if isinstance(exc, apsw.ReadOnlyError):
        files = _open_files(conn, read_only=True)
        error = DatabaseError(
            f"space {space_id!r}: the commit could not write "
            + (", ".join(files) if files else "the space file or the database file it writes")
            + f" ({exc}): it is read-only (its permissions, or a read-only mount); make it "
            "writable, then try again. Nothing of the commit is visible"
        )
    elif isinstance(exc, apsw.ConnectionClosedError):
        # Code the commit runs (a migrate callback, a participant) closed the runtime.
        error = ClosedError(
            f"space {space_id!r}: the runtime was closed while the commit ran; nothing of it "
            "is visible: do not close the runtime from code a commit runs (such as migrate)"
        )
    elif isinstance(exc, apsw.BusyError):
        # The busy timeout ran out: another runtime or process held the write lock all along.
        error = SqliteCellsError(
            f"space {space_id!r}: the commit waited for the write lock of the space file (or "
            "of the database file it writes), which another runtime or process held all along "
            f"({exc}); nothing of it is visible: try again "
            "once that writer is done (a handler that keeps conflicting holds the lock while "
            "its body runs, so that body must not wait for a commit to the same space)"
        )
    elif advice := out_of_files(exc):
        error = DatabaseError(
            f"space {space_id!r}: the commit could not open a file it writes ({exc}); nothing "
            f"of it is visible: {advice}"
        )
    elif isinstance(exc, apsw.CantOpenError):
        files = _open_files(conn)
        where = f"the store directory {os.path.dirname(files[0])}" if files else "the store"
        error = DatabaseError(
            f"space {space_id!r}: the commit could not open a file it writes ({exc}); nothing "
            f"of it is visible: make sure {where} exists and this process may create and "
            "write files in it (its permissions, a read-only mount), then try again"
        )
    elif isinstance(exc, (apsw.CorruptError, apsw.NotADBError)):
        # (A database file's damage met by its op is the op's ExecError: this is the space's.)
        error = DatabaseError(
            f"space {space_id!r}: the commit found {_files_said(conn, 'the space file')} "
            f"damaged ({exc}); nothing of it is visible, and commits to this space will "
            "keep failing: close the runtime, run `sqlite-cells check` on the store, and "
            "restore the space file from a backup"
        )
    elif isinstance(exc, apsw.FullError | apsw.IOError):
        # The file system refused a write of the space file, the database file or SQLite's
        # temporary files: trying again helps only once there is room.
        error = DatabaseError(
            f"space {space_id!r}: the commit failed writing "
            f"{_files_said(conn, 'the space file or the database file it writes')} ({exc}): "
            "the file system refused a write (a full disk, a limit on the size of "
            "files, a failing disk); nothing of it is visible: free space or check the disk, "
            "then try again"
        )
    elif isinstance(exc, MemoryError | apsw.NoMemError):
        # SQLite's or Python's: the commit's values and changes are held in memory until it ends.
        error = DatabaseError(
            f"space {space_id!r}: the commit ran out of memory ({type(exc).__name__}"
            f"{': ' + str(exc) if str(exc) else ''}); nothing of it is visible: this process may "
            "use no more memory for it (its values and changes are held in memory until it "
            "ends): write less per transaction (smaller values, fewer rows), free memory, or "
            "raise the process's memory limit, then try again"
        )
    elif isinstance(exc, apsw.Error):
        # (Another SQLite error of a file the commit writes: DatabaseError, as when it cannot
        # be opened.)
        error = DatabaseError(
            f"space {space_id!r}: the commit failed in SQLite ({exc}); nothing of it is "
            "visible: try again, and check the disk if it keeps failing"
        )
    elif isinstance(exc, UnicodeError):  # text another program stored, read at commit
        error = EncodingError(
            f"space {space_id!r}: the commit met stored text that is not valid UTF-8 ({exc}); "
            "nothing of it is visible: another program wrote the row; run `sqlite-cells check` "
            "and restore the space file from a backup"
        )
    else:
        return exc
    error.__cause__ = exc
    return error


def holds(conn: apsw.Connection, seq: int) -> bool:
    """Whether the space's log holds ``seq`` (after a COMMIT that raised)."""
    try:
        return conn.execute("SELECT 1 FROM _cf_log WHERE seq = ?", (seq,)).fetchone() is not None
    except apsw.Error:
        return False


def _validate(conn: apsw.Connection, tx: Transaction, space: object, space_id: str) -> None:
    changed = []
    for (read_space, cell_id), rev in tx.reads.items():
        if read_space is not space:
            continue  # checked before the commit began (validate_elsewhere)
        row = conn.execute("SELECT rev FROM _cf_cells WHERE id = ?", (cell_id,)).fetchone()
        if (0 if row is None else int(row[0])) != rev:
            changed.append((read_space, cell_id))
    if changed:
        raise conflict(changed[0][0], [cell_id for _, cell_id in changed])


# A guarded cell's committed value, when a commit after the guard's seq wrote it.
_WRITTEN_SINCE = f"SELECT {stored_json_column('value')} FROM _cf_cells WHERE id = ? AND rev > ?"


def _judge_again(
    cursor: apsw.Cursor,
    tx: Transaction,
    seq: int,
    space_id: str,
    check: Callable[[str, str, bytes], None],
) -> None:
    """R5: a write judged on this runtime's view of its cell (``tx.guards``) is judged again on
    the value committed now, when a commit after that view wrote the cell: another runtime or
    process may have made it a database handle meanwhile (its first ``db.exec``), which no
    ``set`` may overwrite. Nothing to read when nobody committed since (``seq`` is the next)."""
    for cell_id, seen in tx.guards.items():
        if seen >= seq - 1 or cell_id not in tx.writes:
            continue
        for (data,) in cursor.execute(_WRITTEN_SINCE, (cell_id, seen)).fetchall():
            if type(data) is bytes:  # (else not as this library writes it: left to its readers)
                check(space_id, cell_id, data)


def _cell_writes(conn: apsw.Connection, tx: Transaction, groups: Groups) -> Mapping[str, bytes]:
    """The transaction's cell writes and those its participants make at commit."""
    writes: Mapping[str, bytes] = tx.writes
    for participant, ops in groups:
        extra = participant.cell_writes(conn, ops, writes)
        if extra:
            for cell_id, data in extra.items():
                too_long = over_length_limit(cell_id, data)
                if too_long is not None:
                    raise too_long
            writes = {**writes, **extra}
    return writes


_UPSERT_CELL = (
    "INSERT INTO _cf_cells (id, value, rev) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET value = excluded.value, rev = excluded.rev"
)


def _write_cells(cursor: apsw.Cursor, writes: Mapping[str, bytes], seq: int) -> None:
    if len(writes) == 1:  # the usual case (a handle's rev bump): execute costs less
        for cell_id, data in writes.items():
            cursor.execute(_UPSERT_CELL, (cell_id, data, seq))
        return
    cursor.executemany(_UPSERT_CELL, [(cell_id, data, seq) for cell_id, data in writes.items()])


# A cell's name is recorded once, without its id: the id derives from the name and kind (R1).
_RECORD_NAME = "INSERT OR IGNORE INTO _cf_names (name, kind) VALUES (?, ?)"


def _record_names(
    cursor: apsw.Cursor, names: Mapping[str, tuple[str, str]], writes: Mapping[str, bytes]
) -> None:
    """Record in ``_cf_names`` the name (and kind) of each cell this commit writes that the
    transaction names, so that the store's tools can show it (SPEC §6): ids are one-way hashes
    of names (R1). A name whose cell the commit does not write is left for a later write; a
    name already recorded stays as it is (``OR IGNORE``: the id derives from it)."""
    rows = [(name, kind) for cell_id, (name, kind) in names.items() if cell_id in writes]
    if not rows:
        return
    try:
        # Made by the first commit that records a name, never by an open: an older command
        # line lists a store whose table has rows, but fails on an empty one.
        cursor.execute(NAMES_TABLE)
        if len(rows) == 1:
            cursor.execute(_RECORD_NAME, rows[0])
        else:
            cursor.executemany(_RECORD_NAME, rows)
    except apsw.SQLError:
        # Another program's ``_cf_names`` (without a ``kind`` column, a view, an index of that
        # name): SQLite refuses the statement as it prepares it, which leaves the transaction
        # as it was. A name helps the tools and is no part of the commit: it commits without.
        pass


class RecordTooBig(ExecError, ValueEncodeError):
    """A commit whose writes to a database add up to a record over SQLite's length limit (or
    one write whose changes alone are over it): an ``ExecError`` as one write too big is (R34),
    and a ``ValueEncodeError`` as values too big for the record are.  Not exported by name:
    callers catch either."""


# What to do about changes too big to record in one commit (RecordTooBig's advice).
TOO_BIG_ADVICE: Final = (
    "write fewer rows per transaction, and keep a value over ≈ 20 MB in smaller pieces (rows "
    "of parts); a row holding more than that is deleted or replaced in steps: set its large "
    "columns to NULL, one per transaction, then delete or rewrite it"
)


# What SQLite's record of a ``_cf_log`` row adds to the commit record's bytes, at most: its header
# (size, the seq's and the blob's serial types) and the seq (the rowid, stored in the record
# as NULL). A single cell write within ``ROW_SLACK`` of the limit fits with its JSON framing.
_LOG_ROW_HEADER: Final = 16


def _append(cursor: apsw.Cursor, record: CommitRecord) -> None:
    data = encode_record(record)
    if len(data) + _LOG_ROW_HEADER > LENGTH_LIMIT:  # (SQLite's limit caps the whole row)
        too_big = (
            f"the commit record of seq {record.seq} is {len(data)} bytes, over SQLite's length "
            f"limit of {LENGTH_LIMIT} bytes"
        )
        if record.ops:  # a database's changes are in it: the writes' error, as for one write
            raise RecordTooBig(
                record.ops[0].target,
                "",
                f"the changes of this transaction's writes are too big to record in one commit "
                f"({too_big}; the record keeps every value the writes changed — an UPDATE's old "
                "and new values, a DELETE's old ones — base64-encoded, ≈ 4/3 of their size, so "
                f"one commit changes at most ≈ 48 MB of values): {TOO_BIG_ADVICE}",
            )
        raise ValueEncodeError(f"{too_big}: write fewer or smaller values per transaction")
    cursor.execute("INSERT INTO _cf_log (seq, record) VALUES (?, ?)", (record.seq, data))
    appended(cursor.connection, record.seq, data)
    if len(record.ops) == 1:
        cursor.execute(_INDEX_OP, (record.ops[0].target, record.seq))
    elif record.ops:
        cursor.executemany(
            _INDEX_OP, [(target, record.seq) for target in {op.target for op in record.ops}]
        )


_INDEX_OP = "INSERT OR IGNORE INTO _cf_op_index (target, seq) VALUES (?, ?)"


def _files_said(conn: apsw.Connection | None, otherwise: str) -> str:
    """The files open on ``conn``, for a message ("a or b"), or ``otherwise`` when not known."""
    files = _open_files(conn)
    return " or ".join(files) if files else otherwise


def _open_files(conn: apsw.Connection | None, *, read_only: bool = False) -> list[str]:
    """The files open on ``conn`` (the space file first; none when it is not known), or those
    SQLite opened read-only (it falls back to that when the file's permissions refuse
    writing)."""
    found: list[str] = []
    if conn is None:
        return found
    try:
        names = conn.db_names()
    except apsw.Error:  # a closed connection: nothing more to tell
        return found
    for name in names:
        try:
            if not read_only or conn.readonly(name):
                filename = conn.db_filename(name)
                if filename:  # ("temp" has none)
                    found.append(filename)
        except apsw.Error:  # ("temp" is named before it is opened)
            continue
    return found

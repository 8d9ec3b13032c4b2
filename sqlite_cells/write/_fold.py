"""The write fold: ``db.exec`` ops applied inside the space's commit (R31–R36, R44, R70).

A ``db.exec`` records a :class:`~sqlite_cells.runtime.PendingOp` whose payload is an
:class:`ExecRequest` (the declaration it was made against, the statement, the bound rows); that one
declaration is what prepare, apply and committed all use, so a database re-declared while a
write is pending is migrated to the schema the write was checked against, and only that schema is
remembered as ensured. The ``sqlite`` commit participant, for one commit:

1. ``prepare`` (before ``BEGIN``): reconcile the database if this runtime has not yet (R71);
   attach the file as ``_cf_db`` (at most one file attached, kept until another is written; a
   file deleted or replaced while attached is :class:`StoreChanged`, R73).
2. ``cell_writes``: first a pending ``migrate``, on a connection of its own, its statements
   under one deadline of ``exec_timeout`` (R14, R44, see ``schema._migrate``) — inside the
   commit's transaction, once its reads are validated and its handle is found not dropped, so
   a transaction refused for either migrates nothing, nor one whose file is behind its space
   (see ``_migrate``); then the handle's
   ``rev`` + 1, read from the committed handle inside the commit's transaction, so
   transactions that only write a database never conflict (R32); the file must hold the last
   commit that row names (R71, see ``_check_caught_up``).
3. ``apply`` for each op: the additive schema diff (R13) unless this runtime already checked
   the declared schema on the file *as it is now*, the columns an INSERT without a column list
   fills, as the call mapped them (R31), the statement under the write policy with a session
   capturing its changeset (R70), the deadline of ``exec_timeout`` (R44), the link columns'
   new values (R31), no row left with a NULL primary key, which the changeset cannot record
   (R51, R70, see ``_keys``), the watermark. The op's body says whether the commit changed the
   file's schema (the diff added something, or ``cell_writes`` ran ``migrate``): what every
   query of the database returns may have changed then, beyond the changeset's rows (R51).

What this runtime checked is remembered per (file, schema, version) together with the file's
:data:`FileState` read inside the commit's transaction: SQLite's schema cookie of the attached
file and its stored version. Another runtime (or process) that migrates the file, adds a column
or stores another version moves one of them, and the next write checks again, in its own write
transaction, so nothing can change the file between the check and the write. Reading the state
costs two cached statements per commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import msgspec

from sqlite_cells.codec import (
    ClosedError,
    ConflictError,
    DatabaseError,
    ExecError,
    ExecTimeout,
    LinkEncodeError,
    MigrationError,
    Op,
    SqliteCellsError,
    StoreChanged,
    TransactionError,
    UnsupportedMigration,
    brief_repr,
    encode_plain,
)
from sqlite_cells.files import (
    ALIAS,
    DROP_KIND,
    KIND,
    DatabaseDropped,
    OpBody,
    attach,
    attached,
    check_foreign_source,
    check_pinned,
    damage_advice,
    declares_alike,
    decode_handle,
    dropped_in,
    encode_op_body,
    is_damage,
    is_dropped,
    note_committed,
    note_damage,
    read_watermark,
    remember_handle,
    remove_unused_database,
    stored_json,
)
from sqlite_cells.runtime import (
    BUSY_TIMEOUT_MS,
    TOO_BIG_ADVICE,
    PendingOp,
    RecordTooBig,
    SpaceFile,
    Transaction,
    busy_ms,
    interrupts_held,
    lock_waits_given_up,
    log_head,
    set_lock_wait,
    stored_json_column,
    unchanged_since,
    waited_for_lock,
)
from sqlite_cells.schema import (
    DamagedVersion,
    Declaration,
    Migrate,
    create_meta_table,
    diff_of,
    ensure_schema,
    migrate_file,
    stored_version,
    version_sql,
)
from sqlite_cells.sql import (
    Authorizer,
    Bound,
    Mode,
    make_authorizer,
    sqlite_refusal,
    sqlite_words,
    write_hint,
)
from sqlite_cells.write._calls import LONG_CALLS, NoHelperFree, NoHelperThread, override_long_calls
from sqlite_cells.write._capture import (
    ROWID_TABLE_MAX_COLUMNS,
    SESSION_SAFE_CHANGES,
    SQLITE_MAX_COLUMNS,
    TooWideToCompare,
    capture,
    has_rowid_tables,
)
from sqlite_cells.write._conn import write_conn
from sqlite_cells.write._keys import NullKeys, before_write, check_null_keys, nullable_keys
from sqlite_cells.write._links import Fills, LinkColumns, check_fills, check_links, link_columns
from sqlite_cells.write._watchdog import Watch, Watchdog

__all__ = ["DEFAULT_EXEC_TIMEOUT", "ExecRequest", "SqliteParticipant", "written_database"]

DEFAULT_EXEC_TIMEOUT = 5.0
JOURNAL_KEEP = 256  # changesets each database file keeps of its own newest commits
JOURNAL_PRUNE_EVERY = 64  # seqs between prunings of that journal

EnsureKey = tuple[Path, str, int]  # (file, schema fingerprint, version)
# What an ensured schema's tables need checked at each write, read from the file with it: their
# link columns (R31) and the probes of their primary keys that may hold NULL (see _keys).
# What a database's writes check, read once per ensured schema: its link columns, the keys that
# may hold NULL, and whether a table is captured by rowid (see write/_capture.py, R70).
Checks = tuple[LinkColumns, NullKeys, bool]
# (schema cookie, stored version) of the attached file: what a check of a schema holds for.
FileState = tuple[int, object]
_COOKIE_SQL = f"PRAGMA {ALIAS}.schema_version"
_VERSION_SQL = version_sql(ALIAS)
_HANDLE_ROW_SQL = f"SELECT {stored_json_column('value')}, rev FROM main._cf_cells WHERE id = ?"
_BOTH_FILES = ("main", ALIAS)
# A write of nothing: its statement takes the attached database file's write lock (R44, see
# FoldParticipant._take_file_lock).
_TAKE_FILE_LOCK = f"UPDATE {ALIAS}._cf_meta SET key = key WHERE 0"

# The functions a write runs in Python (write/_calls.py), as a refusal names them.
_LONG_CALL_NAMES = (
    ", ".join(f"{name}()" for name in sorted({name for name, _ in LONG_CALLS}))
    + " and the json functions given several paths"
)


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """The payload of a ``sqlite`` op: what ``db.exec``/``exec_many`` checked at the call."""

    decl: Declaration
    sql: str
    rows: list[Bound]
    many: bool
    # For INSERT without a column list: each table's columns the call mapped the parameters to
    # (R31), checked against the file's at commit (``check_fills``).
    fills: Fills = ()


def _too_wide(db_id: str, request: ExecRequest, exc: TooWideToCompare) -> ExecError:
    """The changes of ``request`` on a table without a primary key could not be recorded
    (R70): what it did, why, and what to do instead."""
    where = f"table {exc.table!r}, which has no primary key and {exc.columns} columns"
    if not exc.bulk:
        why = (
            f"{where}: its changes are recorded with the rowid as one column more, past "
            f"SQLite's limit of {SQLITE_MAX_COLUMNS}; nothing was written: declare the table with "
            "a primary key"
        )
    else:
        fewer = (
            "fewer parameter rows per exec_many call"
            if request.many
            else "fewer rows per statement"
        )
        why = (
            f"it changed {SESSION_SAFE_CHANGES} rows or more of {where}: such a write is "
            "recorded by comparing the table's rows, which SQLite does for at most "
            f"{ROWID_TABLE_MAX_COLUMNS} columns (R70); nothing was written: change {fewer} "
            f"(at most {SESSION_SAFE_CHANGES - 1}), or declare the table with a primary key"
        )
    return ExecError(db_id, request.sql, why)


def _too_big(db_id: str, sql: str, exc: apsw.Error) -> ExecError:
    """A write whose changes are too big to record: the changeset (kept in the commit record and
    the file's journal, R70) is one value, under SQLite's length limit like any other (R44) —
    the error and advice of a commit record too big (``RecordTooBig``)."""
    return RecordTooBig(
        db_id,
        sql,
        f"the changes of this write are too big to record in one commit (SQLite said {exc}: "
        "a commit's changes are kept as one value, under SQLite's length limit, with an "
        f"UPDATE's old and new values both): {TOO_BIG_ADVICE}",
        sqlite_error=str(exc),
        sqlite_code=getattr(exc, "extendedresult", None),
    )


def _damaged(decl: Declaration, sql: str, exc: apsw.Error | DamagedVersion) -> ExecError:
    """A write that found its database file damaged (by SQLite, or a stored version that is
    not an integer): noted, so the runtime checks the file again before its next use (R71);
    the commit is rolled back."""
    note_damage(decl.path)
    found = exc.problem if isinstance(exc, DamagedVersion) else exc
    by_sqlite = isinstance(exc, apsw.Error)
    return ExecError(
        decl.db_id,
        sql,
        f"nothing was written: {damage_advice(decl.path, found)}",
        sqlite_error=str(exc) if by_sqlite else None,
        sqlite_code=getattr(exc, "extendedresult", None),
    )


def _at_row(conn: apsw.Connection, request: ExecRequest) -> str:
    """Where an ``exec_many`` failed as it ran (R36, Errors): ``"row 2 (counting from 0): "``,
    as its refusals at the call say; nothing for an ``exec`` (one row) or a statement that
    failed before SQLite ran a row of it."""
    row = write_conn(conn).row_at if request.many else None
    return "" if row is None else f"row {row} (counting from 0): "


def written_database(tx: Transaction) -> str | None:
    """The id of the database ``tx`` writes (an exec or a drop), if any (R33, R35)."""
    op = tx.first_op((KIND, DROP_KIND))
    return None if op is None else op.target


def _fits(conn: apsw.Connection, latest: Declaration) -> bool:
    """Whether the attached file can take a write under ``latest`` (this runtime's newest
    declaration of it): a ``migrate`` for a version bump, or no difference but additive ones
    (R13, R14). Read only, in the commit's transaction."""
    assert latest.schema is not None  # only runtime-owned databases are written
    try:
        stored = stored_version(conn, ALIAS, latest.db_id)
        if stored is not None and latest.version < stored:
            return False  # refused as newer (R14)
        if stored is not None and latest.version > stored and latest.migrate is not None:
            return True  # the migrate may bring the file to it
        return not diff_of(conn, ALIAS, latest.schema)[1]
    except (SqliteCellsError, apsw.Error):
        return True  # the write run again meets this failure itself, and says it


def _request(op: PendingOp) -> ExecRequest:
    payload = op.payload
    if not isinstance(payload, ExecRequest):
        raise SqliteCellsError(
            f"a {KIND} op on {op.target} carries no request: record it with db.exec"
        )
    return payload


def _op_body(
    request: ExecRequest,
    changeset: bytes,
    found: int | None,
    reshaped: bool,
    unseen: bool,
    cookie: int,
) -> msgspec.Raw:
    # The changeset says exactly what the statement did, so the parameters are not kept (the
    # record is fsynced on every commit); `rows` stays in the format for older records.
    version = request.decl.version
    return encode_op_body(
        OpBody(
            request.sql,
            [],
            request.many,
            changeset,
            version,
            found,
            schema=reshaped,
            unseen=unseen,
            cookie=cookie,
        )
    )


class _MigrationWatch:
    """The runtime's write watchdog over a migration's statements (``schema.StatementWatch``):
    one that SQLite's own checks let run past ``exec_timeout`` is interrupted, as a
    ``db.exec`` statement is (R44)."""

    __slots__ = ("_dog", "_watch")

    def __init__(self, dog: Watchdog) -> None:
        self._dog = dog
        self._watch = Watch()

    def arm(self, conn: apsw.Connection, deadline: float) -> int:
        return self._watch.arm(conn, deadline, self._dog)

    def disarm(self, token: int) -> bool:
        return self._watch.disarm(token)


class SqliteParticipant:
    """Applies ``sqlite`` ops; see the module docstring. ``ready`` reconciles a database before
    its first use by this runtime, ``repair`` at once after ``COMMIT`` raised (R71)."""

    kind = KIND

    def __init__(
        self,
        *,
        ready: Callable[[Declaration, float], None],
        repair: Callable[[Declaration], object],
        exec_timeout: float = DEFAULT_EXEC_TIMEOUT,
        written: Callable[[Path], None] = lambda _path: None,
        behind: Callable[[Declaration], None] = lambda _decl: None,
        changed: Callable[[Declaration], None] = lambda _decl: None,
        latest: Callable[[Declaration], Declaration] = lambda decl: decl,
        migrated: Callable[[Declaration], None] = lambda _decl: None,
    ) -> None:
        if not exec_timeout > 0:
            raise ValueError(f"exec_timeout must be positive, not {exec_timeout}")
        self._ready = ready
        self._repair = repair
        self._behind = behind  # told of a file found behind its space: reconcile it again
        # told of a file found replaced at its path (StoreChanged): check the new one again
        self._changed = changed
        self._written = written  # told of each file a commit wrote, once durable
        # The declaration the runtime holds now for a database (see apply: a write recorded
        # under one it has replaced since).
        self._latest = latest
        # told of a database whose `migrate` committed in its file while the space's commit
        # that ran it failed: the file's rows may have changed with no commit to say so
        self._migrated_alone = migrated
        self.exec_timeout = exec_timeout
        self._lock_wait_ms = busy_ms(exec_timeout)
        # _lock guards _ensured (schemas known to be in place, and the file's state they were
        # checked at), _checked (the state each apply of the running commit found or left) and
        # _checks (what their writes check).
        self._lock = threading.Lock()
        self._ensured: dict[EnsureKey, FileState] = {}
        self._checked: dict[EnsureKey, FileState] = {}
        self._checks: dict[EnsureKey, Checks] = {}
        # Files this participant's attach created whose first commit has not succeeded yet (a
        # commit that fails removes its file again: see rolled_back). Guarded by _lock.
        self._created: set[Path] = set()
        # Files a `migrate` ran on (on its own connection, see _migrate) whose next commit has
        # not succeeded yet: that commit's op says it changed the schema. Guarded by _lock.
        self._migrated: set[Path] = set()
        # The ops the last `migrate` of each file ran for, and the version it migrated to: an
        # error of one of them says that migration stays (R14). Guarded by _lock.
        self._migrated_for: dict[Path, tuple[Sequence[PendingOp], int]] = {}
        # What the last successful commit of each database (by id) wrote, which a later
        # commit need not read back while neither file changed since (_unchanged). Staged by
        # cell_writes and apply (one entry per database per running commit), kept by
        # committed. Guarded by _lock.
        self._last: dict[str, _Written] = {}
        self._staged: dict[str, _Written] = {}
        # Database files whose lock another connection held all through a member's wait in the
        # batch being committed (see _take_file_lock): the batch's later members writing them
        # try the lock once, without waiting. Emptied by rolled_back, which runs after the
        # batch for that member (it failed). Guarded by _lock.
        self._held_elsewhere: set[Path] = set()
        # Interrupts a user statement its progress handler lets run past its deadline (R44).
        self.watchdog = Watchdog()

    def close(self) -> None:
        """The runtime closes: its watchdog's thread ends."""
        self.watchdog.close()

    # -- before BEGIN --------------------------------------------------------------------------

    def prepare(self, conn: apsw.Connection, ops: Sequence[PendingOp]) -> None:
        decls = _declarations(ops)
        paths = {decl.path for decl in decls} if len(decls) > 1 else {decls[0].path}
        if len(paths) != 1:
            raise SqliteCellsError(f"one commit may write one database, not {len(paths)}")
        try:
            for decl in decls:
                if self._waited_in_vain(decl.path):  # by an earlier member's reconcile
                    raise self._not_waited_again(decl.db_id, _request(ops[0]).sql)
                # Reconcile waits for the database file's lock exec_timeout at most itself (and
                # for the space's lock as long as any commit of the space may take).
                self._ready(decl, self.exec_timeout)
                if self._migration(decl) is None:
                    continue
                # R73: the file at the path must be the one this runtime checked (as the attach
                # below finds for any write) before reconcile looks again, which would accept
                # a copy put there (its history is the space's), and before `migrate` opens
                # the file by its path.
                self._check_same_file(conn, decls, decl.path)
                # R14, R71: `migrate` commits in the file before the space's commit (see
                # _migrate), so the file is compared with its space again first, whenever this
                # runtime last did: another process killed between its two COMMITs leaves the
                # file a commit behind, and that commit, replayed after the migration, would
                # meet the new tables (its values put by position into reordered columns, a
                # dropped column made again). `_migrate` looks once more, under the locks: a
                # commit may land between this look and the space's lock.
                self._behind(decl)
                self._ready(decl, self.exec_timeout)
            write_conn(conn)  # its gate is installed outside any transaction, once
            path = paths.pop()
            set_lock_wait(conn, self._lock_wait_ms)  # R44, see _lock_timeout
            try:
                if attached(conn) == str(path):  # the usual case: only checked (R73)
                    attach(conn, path)
                else:
                    self._attach(conn, path)
            except StoreChanged as exc:
                self._store_changed(conn, decls, exc)
                raise
        except DatabaseDropped as exc:
            # (Found by the check of its file against its space: this commit's own message.)
            raise _dropped_since(decls[0]) from exc
        except (apsw.CorruptError, apsw.NotADBError) as exc:  # met by the ATTACH
            raise _damaged(decls[0], _request(ops[0]).sql, exc) from exc
        except (apsw.BusyError, DatabaseError) as exc:
            timeout = self._lock_timeout(
                conn, exc, decls[0].db_id, _request(ops[0]).sql, held=decls[0].path
            )
            if timeout is None:
                raise
            raise timeout from exc
        finally:
            set_lock_wait(conn, BUSY_TIMEOUT_MS)

    def _attach(self, conn: apsw.Connection, path: Path) -> None:
        """Attach ``path`` in place of the file attached before, noting it in ``_created`` if
        attaching created it. Ctrl-C waits until both are done: one landing while a new file
        was set up (its switch to WAL) left it attached half set up, and blank — 0 bytes,
        which ``remove_unused_database`` never removes — and one landing before it was noted
        kept ``rolled_back`` from removing it: the interrupted first write left a database
        file that no handle names (R7)."""
        with interrupts_held():
            if attach(conn, path):
                with self._lock:
                    self._created.add(path)

    def _check_same_file(self, conn: apsw.Connection, decls: list[Declaration], path: Path) -> None:
        try:
            check_pinned(conn, path)
        except StoreChanged as exc:
            self._store_changed(conn, decls, exc)
            raise

    def _store_changed(
        self, conn: apsw.Connection, decls: list[Declaration], exc: StoreChanged
    ) -> None:
        """R73: the file at the path is not the one this runtime checked; this commit commits
        nothing, and the file now at the path is checked against its space at the database's
        next use. A database another process dropped meanwhile (its file then removed by `gc`,
        R74) is :class:`DatabaseDropped`, as a commit that finds it dropped says: the handle
        is read from the space file now (this runtime may not have caught up with the drop)."""
        with self._lock:
            self._ensured.clear()
            self._last.clear()
        for decl in decls:
            self._changed(decl)
        for decl in decls:
            if dropped_in(conn, decl.db_id):
                raise _dropped_since(decl) from exc

    def _lock_timeout(
        self,
        conn: apsw.Connection,
        exc: apsw.BusyError | DatabaseError,
        db_id: str,
        sql: str,
        *,
        tried_once: bool = False,
        held: Path | None = None,
    ) -> ExecTimeout | ClosedError | None:
        """While the database file is opened and written (``prepare``, ``apply``), a lock
        another connection holds on it is waited for ``exec_timeout`` at most: the busy
        timeout of the write connection is that long meanwhile (R44: the space's write lock is
        held no longer). The :class:`ExecTimeout` to raise for ``exc`` when it is such a lock
        (reconcile reports one as a ``DatabaseError`` caused by ``apsw.BusyError``), else None;
        a :class:`ClosedError` when the wait ended because the runtime is being closed
        (``close()`` gives up the waits of its write connection). ``tried_once``: the lock was
        tried without waiting, an earlier member of the same group commit having waited for it
        in vain (see ``_take_file_lock``). ``held``: the file whose lock that was, noted for the
        batch's later members when the answer is an ``ExecTimeout``."""
        if not waited_for_lock(exc) or isinstance(exc, ExecError):
            return None
        if lock_waits_given_up(conn):
            return ClosedError(
                f"database {db_id}: the runtime was closed while this transaction waited for "
                "a lock that another connection holds on the database file; nothing of it was "
                "written: open a new Runtime"
            )
        if held is not None:
            with self._lock:
                self._held_elsewhere.add(held)
        if tried_once:
            return self._not_waited_again(db_id, sql)
        return ExecTimeout(
            db_id,
            sql,
            f"waited exec_timeout={self.exec_timeout}s for a lock that another connection holds "
            "on the database file; nothing was written: try again once it lets go",
        )

    def _waited_in_vain(self, path: Path) -> bool:
        """Whether a member of the batch being committed waited for ``path``'s lock in vain."""
        with self._lock:
            return path in self._held_elsewhere

    def _not_waited_again(self, db_id: str, sql: str) -> ExecTimeout:
        """The :class:`ExecTimeout` of a member of a group commit that did not wait for the
        database file's lock, an earlier member having waited for it in vain (R44, see
        ``_take_file_lock``)."""
        return ExecTimeout(
            db_id,
            sql,
            "another connection holds the lock of the database file, which a transaction "
            f"committed just before this one (in the same group) waited exec_timeout="
            f"{self.exec_timeout}s for in vain, so this one did not wait again; nothing was "
            "written: try again once it lets go",
        )

    # -- inside the commit's transaction -------------------------------------------------------

    def cell_writes(
        self, conn: apsw.Connection, ops: Sequence[PendingOp], writes: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        """R32: the handle's ``rev`` incremented by exactly 1, taken at commit."""
        decl = _request(ops[-1]).decl
        self._migrate(conn, ops, writes)
        self._take_file_lock(conn, decl, _request(ops[0]).sql)
        write_conn(conn).begin_transaction()  # its ops come next (last_insert_rowid() is 0)
        data = writes.get(decl.db_id)
        last_write: int | None = 0
        last = self._unchanged(conn, decl) if data is None else None
        if last is not None:  # the handle as that commit wrote it; the file holds that commit
            data = last.handle
            last_write = None  # (and nobody wrote either file since: in step, nothing to read)
        elif data is None:
            row = conn.execute(_HANDLE_ROW_SQL, (decl.db_id,)).fetchone()
            # A value that is not JSON bytes or text is refused below, never "no handle" (R5).
            data = (stored_json(row[0]) or b"") if row is not None else None
            if row is not None and type(row[1]) is int:
                last_write = row[1]  # the seq of the last commit that wrote the database
        handle: dict[str, Any] = {"id": decl.db_id, "rev": 0}
        pending = decl.db_id in writes
        if data is not None:
            handle = decode_handle(decl.db_id, data)  # else HandleQuarantined: nothing written
            # (a value naming an injected file is not this database's: never carried on, R5)
            check_foreign_source(decl.db_id, decl.space_id, handle)
        if is_dropped(handle) and not pending:
            raise _dropped_since(decl)
        self._check_caught_up(conn, decl, last_write)
        assert decl.schema is not None
        tables = decl.schema.to_json()
        # The tables its space last recorded are not the ones written now: the file's schema
        # changed since its last recorded write — a `migrate` whose own write then failed, or
        # whose process stopped, in any runtime (R14) — or changes in this commit. Either way
        # rows changed that no changeset holds: every query of the database re-runs (R51, R53).
        redeclared = (
            last is None
            and handle["rev"] > 0
            and not declares_alike(handle.get("tables"), decl.schema)
        )
        bumped = {**handle, "tables": tables, "rev": int(handle["rev"]) + 1}
        # Strict JSON as it is: a decoded handle, the schema's own JSON and an int.
        data = encode_plain(bumped)
        remember_handle(decl.db_id, data, bumped)
        with self._lock:
            self._staged[decl.db_id] = _Written(
                0, data, _ensure_key(decl), last is not None, redeclared=redeclared
            )
        return {decl.db_id: data}

    def _migration(self, decl: Declaration) -> Migrate | None:
        """The ``migrate`` a write under ``decl`` runs first: none once this runtime checked
        its schema in the file (R14)."""
        if decl.migrate is None or self._is_ensured(_ensure_key(decl)):
            return None
        return decl.migrate

    def _migrate(
        self, conn: apsw.Connection, ops: Sequence[PendingOp], writes: Mapping[str, bytes]
    ) -> None:
        """R14: run the ``migrate`` the commit's declarations call for, each on a connection of
        its own (it commits in the file on its own, before the space's commit), inside the
        commit's transaction before that touches the database file. By then the transaction's
        reads were validated, so a transaction that conflicts migrates nothing; and the space's
        write lock is held, so the handle read here is the committed one, and stays so: a
        database dropped since the write was recorded, by any process, is refused before its
        file is migrated (R74: a dropped database's file keeps its rows until gc). The file
        was attached by ``prepare``, which found it the one this runtime checked (R73); it is
        looked at again here, under the lock, before ``migrate`` opens it by its path."""
        pending = [
            (decl, migrate)
            for decl in _declarations(ops)
            if (migrate := self._migration(decl)) is not None
        ]
        if not pending:
            return
        decl = pending[0][0]
        sql = _request(ops[0]).sql
        if decl.db_id in self._staged:
            self._migrated_by_earlier_member(conn, [d for d, _ in pending])
            return
        row = conn.execute(_HANDLE_ROW_SQL, (decl.db_id,)).fetchone()
        data = (stored_json(row[0]) or b"") if row is not None else None
        # (As cell_writes: a handle this transaction writes itself is no drop made since.)
        dropped = data is not None and is_dropped(decode_handle(decl.db_id, data))
        if dropped and decl.db_id not in writes:
            raise _dropped_since(decl)
        # R73: `prepare` found the file the one this runtime checked before the space's lock
        # was taken; it may have been replaced while the commit waited for the lock, and
        # `migrate` opens it by its path: looked at again, under the lock.
        self._check_same_file(conn, [d for d, _ in pending], decl.path)
        # R71, R72: the seq of the space's last commit of the database, which the file must
        # hold before it migrates. `prepare` reconciled the file before the space's lock was
        # taken: a process killed between its two COMMITs since then left the file behind, and
        # the commit it lacks, recorded under the old tables, could not be replayed once the
        # migration committed. Compared on the migration's own connection, under the file's
        # lock (read here on `conn`, the attached file would keep this snapshot, and the
        # commit's write to it would fail).
        space_last = row[1] if row is not None and type(row[1]) is int else 0

        def in_step(migration: apsw.Connection, decl: Declaration = decl) -> None:
            self._check_in_step(conn, decl, space_last, read_watermark(migration))

        for decl, migrate in pending:
            assert decl.schema is not None  # only runtime-owned databases are written
            if self._waited_in_vain(decl.path):  # (its connection would wait again)
                raise self._not_waited_again(decl.db_id, sql)
            try:
                ran = migrate_file(
                    decl.path,
                    decl.schema,
                    db_id=decl.db_id,
                    version=decl.version,
                    migrate=migrate,
                    # R44: its statements share one deadline, long calls included.
                    exec_timeout=self.exec_timeout,
                    long_calls=override_long_calls,
                    watch=_MigrationWatch(self.watchdog),
                    in_step=in_step,
                )
            except DamagedVersion as exc:
                raise _damaged(decl, sql, exc) from exc
            except DatabaseError as exc:
                stopped = isinstance(exc, MigrationError) and isinstance(exc.__cause__, ExecTimeout)
                if stopped and self.watchdog.closed:
                    # (its statement stopped by close(), not by its deadline)
                    raise self._closed_during(
                        decl, f"its migrate callback (to version {decl.version})"
                    ) from exc
                timeout = self._lock_timeout(conn, exc, decl.db_id, sql, held=decl.path)
                if timeout is None:
                    raise
                raise timeout from exc
            if ran:
                with self._lock:
                    self._migrated.add(decl.path)
                    self._migrated_for[decl.path] = (ops, decl.version)

    def _migrated_by_earlier_member(self, conn: apsw.Connection, decls: list[Declaration]) -> None:
        """A member of this group commit before this one wrote the database: this connection
        holds the file's write lock, which a migration's connection would wait for. The file
        that member left at a declared version needs no migration; else this transaction is
        refused as a conflict, and runs again alone (a handler does)."""
        state = _file_state(conn)
        stored = None if state is None else state[1]
        if type(stored) is int and all(stored >= decl.version for decl in decls):
            return
        raise ConflictError(
            decls[0].space_id,
            (),
            reason=(
                f"database {decls[0].db_id} needs its migration to version "
                f"{max(d.version for d in decls)} while a transaction committed together with "
                "this one writes it under its older declaration; nothing was written"
            ),
        )

    def _take_file_lock(self, conn: apsw.Connection, decl: Declaration, sql: str) -> None:
        """The commit's first statement on the database file takes its write lock, waited for
        ``exec_timeout`` at most (R44; the space file's lock alone was taken at BEGIN). First,
        because SQLite waits for no lock once a transaction has read the file: a write after a
        read would fail at once. Its data version is current from here on (``_unchanged``).
        The members of a group commit that write one database each take its lock in turn: once
        one of them waited ``exec_timeout`` for it in vain, the others try it without waiting,
        so the batch holds the space's write lock ``exec_timeout`` at most for that file, not
        once per member (R44: every other writer of the space waits behind it)."""
        waited = self._waited_in_vain(decl.path)
        set_lock_wait(conn, 0 if waited else self._lock_wait_ms)
        try:
            _write_nothing(conn)
        except apsw.BusyError as exc:
            timeout = self._lock_timeout(
                conn, exc, decl.db_id, sql, tried_once=waited, held=decl.path
            )
            assert timeout is not None
            raise timeout from exc
        finally:
            set_lock_wait(conn, BUSY_TIMEOUT_MS)

    def _unchanged(self, conn: apsw.Connection, decl: Declaration) -> _Written | None:
        """Inside the commit's transaction, before it writes ``decl``'s database: what this
        participant's last commit of it (under the same schema key) wrote, if that was the
        connection's last commit and neither file changed since, so both hold what it left.
        None once a member of this transaction has staged a write of it (SQLite's data version
        moves only at COMMIT), or after one that failed (until the next commit of it succeeds)."""
        with self._lock:
            last = self._last.get(decl.db_id)
            if last is None or decl.db_id in self._staged:
                return None
        if last.key == _ensure_key(decl) and unchanged_since(conn, last.seq, _BOTH_FILES):
            return last
        return None

    def apply(self, conn: apsw.Connection, op: PendingOp, seq: int) -> Op:
        try:
            return self._apply(conn, op, seq)
        except ExecError as exc:
            version = self._migrated_before(op)
            if version is None:
                raise
            # R14: the `migrate` that ran for this write committed in the file before it, and
            # stays though the transaction is rolled back: the error says so.
            raise exc.after_migration(version) from exc.__cause__
        except LinkEncodeError as exc:  # (what the write would store in a link column, R31)
            version = self._migrated_before(op)
            if version is None:
                raise
            again = type(exc)(
                f"{exc}, except the migration of this database to version {version}, which "
                "committed on its own before the write and stays"
            )
            again.db_id, again.sql = exc.db_id, exc.sql
            raise again from exc.__cause__

    def _migrated_before(self, op: PendingOp) -> int | None:
        """The version a ``migrate`` brought the file to for this op's transaction (it committed
        in the file before the write), None when none ran for it."""
        if not self._migrated_for:
            return None
        with self._lock:
            ran = self._migrated_for.get(_request(op).decl.path)
        if ran is None or not any(o is op for o in ran[0]):
            return None
        return ran[1]

    def _apply(self, conn: apsw.Connection, op: PendingOp, seq: int) -> Op:
        request = _request(op)
        decl = request.decl
        with self._lock:
            staged = self._staged.get(decl.db_id)
            # The member's first op on the file may trust what cell_writes found unchanged.
            unchanged = staged is not None and staged.seq == 0 and staged.unchanged
            redeclared = staged is not None and staged.redeclared
            if staged is not None:
                staged.seq = seq
        set_lock_wait(conn, self._lock_wait_ms)  # R44, see _lock_timeout
        try:
            try:
                ensured = self._ensure(conn, decl, unchanged=unchanged)
            except DamagedVersion as exc:
                raise _damaged(decl, request.sql, exc) from exc
            except UnsupportedMigration as exc:
                latest = self._latest(decl)
                # Declared again the same (a pattern run again: its `migrate` may be a new
                # function object each time) is no newer declaration.
                if latest.schema == decl.schema and latest.version == decl.version:
                    raise
                # The new declaration does not fit the file either: run again, the write would
                # be refused all the same. The refusal of the declaration it was recorded
                # under says what is wrong now, rather than a conflict no retry resolves.
                if not _fits(conn, latest):
                    raise
                # Recorded under a declaration this runtime has replaced since, which the file
                # does not fit (another commit put the new declaration's tables in it, or the
                # older one never fitted), while the new one does: run again (a handler does),
                # it records under the new declaration and commits (R13, §3).
                raise ConflictError(
                    decl.space_id,
                    (),
                    reason=(
                        f"database {decl.db_id} was declared anew in this runtime after this "
                        "write was recorded under its older declaration, which the file's "
                        "tables do not fit, while the new declaration does; nothing was written"
                    ),
                ) from exc
            (links, keys, by_rowid), found, reshaped, cookie = ensured
            reshaped = reshaped or redeclared
            if not reshaped and self._migrated:
                with self._lock:
                    reshaped = decl.path in self._migrated
            if request.fills:
                assert decl.schema is not None  # only runtime-owned databases are written
                check_fills(
                    conn, ALIAS, decl.schema, request.fills, db_id=decl.db_id, sql=request.sql
                )
            before = before_write(conn, keys) if keys else None
            state = write_conn(conn)
            # One deadline for the transaction's ops, which capture may run twice (_capture).
            deadline = self._deadline(staged)
            try:
                changeset = capture(
                    conn,
                    ALIAS,
                    lambda: self._run(conn, request, deadline),
                    _user_table,
                    by_rowid=by_rowid,
                )
            except (apsw.TooBigError, apsw.NoMemError) as exc:
                raise _too_big(decl.db_id, request.sql, exc) from exc
            except TooWideToCompare as exc:
                raise _too_wide(decl.db_id, request, exc) from exc
            state.end_op()
            self._check_deadline(deadline, decl, request)
            if links:
                check_links(
                    changeset,
                    links,
                    db_id=decl.db_id,
                    sql=request.sql,
                    deadline=deadline,
                    timeout=self.exec_timeout,
                )
            unseen = before is not None and check_null_keys(
                conn, keys, before, links, db_id=decl.db_id, sql=request.sql
            )  # rows the changeset cannot show (R51, R70)
            try:
                # also the file's watermark
                self._journal(conn, seq, changeset, self._head(conn, staged, seq))
            except apsw.TooBigError as exc:
                raise _too_big(decl.db_id, request.sql, exc) from exc
            self._check_deadline(deadline, decl, request)
        except (apsw.CorruptError, apsw.NotADBError) as exc:  # its schema, its journal
            raise _damaged(decl, request.sql, exc) from exc
        except (apsw.BusyError, DatabaseError) as exc:
            timeout = self._lock_timeout(conn, exc, decl.db_id, request.sql)
            if timeout is None:
                raise
            raise timeout from exc
        finally:
            set_lock_wait(conn, BUSY_TIMEOUT_MS)
        return Op(op.kind, op.target, _op_body(request, changeset, found, reshaped, unseen, cookie))

    def _deadline(self, staged: _Written | None) -> float:
        """R44: the writes of one transaction hold the space's write lock ``exec_timeout`` at
        most, together: its first op starts the deadline the others share (kept with what the
        transaction stages), as the rows of one ``exec_many`` share one (each op its own let a
        transaction of many short statements hold every other writer of the space for their
        sum)."""
        deadline = time.monotonic() + self.exec_timeout
        if staged is None:
            return deadline
        with self._lock:
            if staged.deadline is None:
                staged.deadline = deadline
            return staged.deadline

    def _check_deadline(self, deadline: float, decl: Declaration, request: ExecRequest) -> None:
        """R44: the op, not only its statement, holds the space's write lock ``exec_timeout`` at
        most. What follows the statement — SQLite's session extension reading every row it
        changed into the changeset (R70), the journal row — runs in steps no deadline
        interrupts (a changeset is built by one short statement per row); an op past its
        deadline once they are done fails, and the transaction rolls back, instead of
        committing (writing its changeset twice more, into the log and the journal) long after
        ``exec_timeout``."""
        if time.monotonic() > deadline:
            raise ExecTimeout(
                decl.db_id,
                request.sql,
                f"recording its changes (one entry per row changed) took it past "
                f"exec_timeout={self.exec_timeout}s; nothing was written: change fewer rows per "
                "transaction, or give the runtime a longer exec_timeout",
            )

    def _run(self, conn: apsw.Connection, request: ExecRequest, deadline: float) -> None:
        decl = request.decl
        try:
            write_conn(conn).run_user(
                conn,
                _write_policy(decl.table_names),
                request.sql,
                request.rows,
                many=request.many,
                timeout=max(0.0, deadline - time.monotonic()),
                watchdog=self.watchdog,
            )
        except apsw.BusyError:
            raise  # a lock held elsewhere: _lock_waits says so
        except NoHelperThread as exc:
            raise ExecError(
                decl.db_id,
                request.sql,
                f"its call of {exc.function}() is calculated on a helper thread, to keep "
                f"exec_timeout, and this process may start no more threads ({exc.reason}: the "
                "system's limit on threads or processes); nothing was written: close runtimes "
                "no longer used or raise the limit, then try again",
            ) from exc
        except NoHelperFree as exc:
            raise ExecTimeout(
                decl.db_id,
                request.sql,
                f"its call of {exc.function}() waited exec_timeout={self.exec_timeout}s for a "
                f"helper thread and never ran: every helper ({exc.running} busy) is still "
                "calculating a long call of an earlier write, given up on at its own deadline "
                "(it finishes in the background); nothing was written: try again once they "
                "are done",
            ) from exc
        except apsw.InterruptError as exc:
            if self.watchdog.closed:  # (stopped by close(), not by its deadline)
                raise self._closed_during(decl, f"the statement {brief_repr(request.sql)}") from exc
            raise ExecTimeout(
                decl.db_id,
                request.sql,
                f"the statement ran past exec_timeout={self.exec_timeout}s (the budget of "
                "all the writes of its transaction) and was interrupted",
            ) from exc
        except apsw.Error as exc:
            if is_damage(exc):
                raise _damaged(decl, request.sql, exc) from exc
            hint = write_hint(exc, request.sql)
            if isinstance(exc, apsw.FullError | apsw.IOError):
                hint = f": the statement writes the database file {decl.path}"  # where (Errors)
            raise ExecError(
                decl.db_id,
                request.sql,
                _at_row(conn, request) + sqlite_refusal(exc, hint, sql=request.sql),
                sqlite_error=sqlite_words(exc),
                sqlite_code=getattr(exc, "extendedresult", None),
            ) from exc
        except UnicodeDecodeError as exc:
            # Stored text that is not UTF-8 reached a function the write connection runs in
            # Python to keep exec_timeout (write/_calls.py): it cannot cross into Python.
            shown = exc.object[exc.start : exc.start + 8]
            raise ExecError(
                decl.db_id,
                request.sql,
                f"{_at_row(conn, request)}a text value that is not valid UTF-8 ({shown!r}…) was "
                f"given to one of {_LONG_CALL_NAMES}, which writes run in the runtime to "
                "keep exec_timeout (R44) and which take valid UTF-8 text only; nothing was "
                "written: give the function the value as a blob (CAST(col AS BLOB)), or "
                "store such values as blobs, or as valid UTF-8 text",
            ) from exc
        except (OverflowError, UnicodeError) as exc:  # a parameter SQLite cannot bind
            said = f"{_at_row(conn, request)}{type(exc).__name__}: {exc}"
            raise ExecError(decl.db_id, request.sql, said) from exc

    def _ensure(
        self, conn: apsw.Connection, decl: Declaration, *, unchanged: bool = False
    ) -> tuple[Checks, int | None, bool, int]:
        """Bring the attached file to ``decl``'s schema (additively, R13) unless this runtime
        already checked it on the file as it is now (same schema cookie and stored version,
        read in this transaction); return what its writes check, the version the file was at
        before (None: it had none), which the op records for a replay (R71), whether the
        file's schema changed (not when the runtime's first write created its tables: a file
        that did not exist read as the declared tables already, R41), and the file's schema
        cookie now, which the op records to name its changeset's columns (R51).
        ``unchanged``: the file is as this participant's last commit of it left it (see
        _unchanged)."""
        assert decl.schema is not None  # only runtime-owned databases are written
        key = _ensure_key(decl)
        with self._lock:
            checked = self._ensured.get(key)
            checks = self._checks.get(key)
        if checked is None:
            state = None
        elif unchanged:
            state = checked  # as the commit that checked it left the file
        else:
            state = _file_state(conn)
        found: int | None = decl.version  # as checked: the version is part of the state
        reshaped = False
        if state is None or state != checked:
            before = state if state is not None else _file_state(conn)
            found = self._additive(conn, decl)
            state = _file_state(conn)
            assert state is not None  # ensure_schema made _cf_meta
            reshaped = before is not None and before[0] != state[0]
            checks = None  # the file may have changed: read its tables again
        if checks is None:
            tables = [name for name, _ in decl.schema.tables]
            checks = (
                link_columns(conn, ALIAS, tables),
                nullable_keys(conn, ALIAS, tables),
                has_rowid_tables(conn, ALIAS, tables),
            )
            with self._lock:
                if len(self._checks) >= 256:
                    self._checks.clear()
                self._checks[key] = checks
        with self._lock:
            self._checked[key] = state
        return checks, found, reshaped, state[0]

    def _check_caught_up(
        self, conn: apsw.Connection, decl: Declaration, space_last: int | None
    ) -> None:
        """R71, R72: the file must hold every commit its space made to it. Inside this
        transaction no other writer is between its two COMMITs (it would still hold the
        space's lock), so a file behind its space here was left so by a process killed between
        them, while this runtime had already reconciled the file. Writing now would stamp a
        watermark over the lost commit: instead the runtime reconciles the file again before
        its next use, and this commit is refused as a conflict, which a handler runs again.
        ``space_last``: the seq of the last commit that wrote the database, as its handle's row
        says before this commit writes it; None when this connection's own last commit wrote
        both files and nobody wrote either since (see ``_unchanged``)."""
        if space_last is None:
            return
        self._check_in_step(conn, decl, space_last, read_watermark(conn, ALIAS))

    def _check_in_step(
        self, conn: apsw.Connection, decl: Declaration, space_last: int, file_seq: int
    ) -> None:
        """R71: the file's watermark ``file_seq`` against ``space_last`` (see
        ``_check_caught_up``); ``conn`` is the commit's connection, which reads the space's log
        when the two differ."""
        if space_last == file_seq:
            return
        # The handle's row is the cheap sign; the log's op index (what reconcile goes by)
        # decides: a handle row ahead of the log is no commit the file lacks.
        space_last = SpaceFile.last_seq_for(conn, decl.db_id)
        if space_last != file_seq:
            # Behind: see above. Ahead: the file holds commits its space never made — another
            # file put at its path while it was not attached here (R73: its inode number may
            # be the old one's), or a process killed between the two files' commits. Written
            # into, the commit would be acknowledged into rows that are not this database's.
            self._behind(decl)
            raise DatabaseOutOfStep(decl.space_id, decl.db_id, file_seq, space_last)

    def _additive(self, conn: apsw.Connection, decl: Declaration) -> int | None:
        """``ensure_schema`` under the write's deadline (R44): a table it rebuilds (R13) is
        copied row by row, and a declared expression runs for each row."""
        assert decl.schema is not None  # only runtime-owned databases are written
        state = write_conn(conn)
        deadline = time.monotonic() + self.exec_timeout
        # Also watched from the watchdog's thread, by the connection's own watch (as a user
        # statement is): an ALTER TABLE makes SQLite parse the whole schema again, which takes
        # no progress-handler step (a thousand columns added to wide tables held the write lock
        # 19 s under exec_timeout=1). Set inside the try: a Ctrl-C on the way leaves neither
        # the deadline nor the watch armed over the commits that follow.
        watch = state.watch
        token = 0
        try:
            state.deadline = deadline
            token = watch.arm(conn, deadline, self.watchdog)
            found = ensure_schema(
                conn,
                ALIAS,
                decl.schema,
                db_id=decl.db_id,
                version=decl.version,
                owner=decl.space_id,
            )
        except apsw.InterruptError as exc:
            raise self._additive_timeout(decl) from exc
        finally:
            state.deadline = None
            fired = watch.disarm(token)
        if fired or time.monotonic() > deadline:  # (interrupted after its last step)
            raise self._additive_timeout(decl)
        return found

    def _closed_during(self, decl: Declaration, what: str) -> ClosedError:
        """The error of a commit whose ``what`` the watchdog stopped as the runtime closed
        (see ``Watchdog.close``), not at its deadline."""
        return ClosedError(
            f"database {decl.db_id}: the runtime was closed while this transaction ran {what}; "
            "nothing of it was written: open a new Runtime"
        )

    def _additive_timeout(self, decl: Declaration) -> ExecTimeout | ClosedError:
        if self.watchdog.closed:  # (stopped by close(), not by its deadline)
            return self._closed_during(decl, "the additive migration of the declared schema")
        return ExecTimeout(
            decl.db_id,
            "(the additive migration of the declared schema)",
            f"adding the declared columns ran past exec_timeout={self.exec_timeout}s and was "
            "interrupted; nothing was written: raise exec_timeout for this first write, or "
            "bump version= with a migrate that rebuilds the table",
        )

    def _is_ensured(self, key: EnsureKey) -> bool:
        with self._lock:
            return key in self._ensured

    def _head(self, conn: apsw.Connection, staged: _Written | None, seq: int) -> int:
        """The space's head as commit ``seq`` finds it: the hash of its log record ``seq - 1``
        (``log_head``; 0 when the log holds none), read once per commit of the database. Its
        journal rows record it: reconcile inverts the commit only while the space still holds
        that very record, so a space restored from an older copy, whose seqs were taken again
        by other commits, is not taken for a crash (R71)."""
        with self._lock:
            if staged is not None and staged.head is not None:
                return staged.head
        head = log_head(conn, seq - 1) or 0
        if staged is not None:
            with self._lock:
                staged.head = head
        return head

    @staticmethod
    def _journal(conn: apsw.Connection, seq: int, changeset: bytes, head: int) -> None:
        """Keep the changeset in the file itself too: if the space ever loses commits the file
        already has, these are what gets inverted (R71). The newest row's seq is the file's
        watermark (one row per op, not a watermark update too); the pruning keeps the newest
        ``JOURNAL_KEEP`` seqs, so never that row. It runs every ``JOURNAL_PRUNE_EVERY`` seqs of
        the space and every ``JOURNAL_PRUNE_EVERY`` rows of the journal (its rowids count them):
        a database written only at seqs that are no multiple of it is pruned too. ``head``: see
        ``_head``."""
        conn.execute(
            f"INSERT INTO {ALIAS}._cf_changes (seq, changeset, head) VALUES (?, ?, ?)",
            (seq, changeset, head),
        )
        if seq % JOURNAL_PRUNE_EVERY == 0 or conn.last_insert_rowid() % JOURNAL_PRUNE_EVERY == 0:
            conn.execute(
                f"DELETE FROM {ALIAS}._cf_changes WHERE seq < (SELECT min(seq) FROM (SELECT "
                f"DISTINCT seq FROM {ALIAS}._cf_changes ORDER BY seq DESC LIMIT ?))",
                (JOURNAL_KEEP,),
            )

    # -- after COMMIT --------------------------------------------------------------------------

    def committed(self, ops: Sequence[PendingOp], seq: int) -> None:
        if len(ops) == 1:  # the usual case: no set to build
            decl = _request(ops[0]).decl
            self._written(decl.path)
            note_committed(decl.path)
            key = _ensure_key(decl)
            with self._lock:
                self._remember(key)
                self._keep(decl.db_id, seq)
                if self._created:
                    self._created.discard(key[0])
                if self._migrated:
                    self._migrated.discard(key[0])
            return
        keys = {_ensure_key(_request(op).decl) for op in ops}
        for path, _fingerprint, _version in keys:
            self._written(path)
            note_committed(path)
        with self._lock:
            for key in keys:
                self._remember(key)
            for db_id in {_request(op).decl.db_id for op in ops}:
                self._keep(db_id, seq)
            self._created.difference_update(key[0] for key in keys)
            self._migrated.difference_update(key[0] for key in keys)

    def _remember(self, key: EnsureKey) -> None:
        """Under ``_lock``: ``key`` was checked in the commit that just succeeded, at the state
        its apply recorded."""
        state = self._checked.pop(key, None)
        if state is None:
            return
        if len(self._ensured) >= 1024 and key not in self._ensured:
            self._ensured.clear()
        self._ensured[key] = state

    def _keep(self, db_id: str, seq: int) -> None:
        """Under ``_lock``: commit ``seq`` of ``db_id`` succeeded; keep what it staged. (In a
        group commit a later member may have staged after it: that one is kept at its turn.)"""
        self._last.pop(db_id, None)
        staged = self._staged.get(db_id)
        if staged is None or staged.seq > seq:
            return
        del self._staged[db_id]
        if staged.seq == seq:
            if len(self._last) >= 1024:
                self._last.clear()
            self._last[db_id] = staged

    def rolled_back(self, conn: apsw.Connection, ops: Sequence[PendingOp]) -> None:
        """The commit of ``ops`` failed and wrote nothing: a database file its ``prepare``
        created is removed again (detached first), unless another commit wrote it or another
        connection has it open meanwhile, so a refused first write — or one refused because the
        database was dropped — leaves no file behind (R7, "a bad input never leaves partial
        state behind"). Called outside any transaction; must not raise."""
        migrated: dict[str, Declaration] = {}
        with self._lock:
            for op in ops:  # what their applies checked was rolled back with them
                if isinstance(op.payload, ExecRequest):
                    decl = op.payload.decl
                    self._checked.pop(_ensure_key(decl), None)
                    self._staged.pop(decl.db_id, None)
                    self._held_elsewhere.discard(decl.path)  # (the batch is over)
                    if decl.path in self._migrated:
                        migrated[decl.db_id] = decl
            created = self._created
            paths = {_request(op).decl.path for op in ops} & created if created else set()
        for decl in migrated.values():
            self._migrated_alone(decl)
        for path in paths:
            if remove_unused_database(conn, path):
                with self._lock:
                    self._created.discard(path)

    def commit_failed(self, ops: Sequence[PendingOp], exc: BaseException) -> None:
        """``COMMIT`` raised: the files may disagree now, so reconcile at once (R71)."""
        with self._lock:
            self._ensured.clear()
            self._checked.clear()
            self._checks.clear()
            self._last.clear()
        for decl in {_request(op).decl for op in ops}:
            self._repair(decl)


@dataclass(slots=True)
class _Written:
    """What a commit wrote of one database: its seq (0 until ``apply`` knows it), the handle
    value, the key its schema was ensured under; whether ``cell_writes`` found both files
    as the participant's previous commit of it left them; the head its journal rows record
    (None until ``apply`` reads it, see ``_head``); whether the tables the handle recorded
    before differ from the ones it records now (its ops are then whole-database writes); and
    the deadline its ops share (None until the first runs, see ``_deadline``)."""

    seq: int
    handle: bytes
    key: EnsureKey
    unchanged: bool
    head: int | None = None
    redeclared: bool = False
    deadline: float | None = None


class DatabaseOutOfStep(ConflictError):
    """A write found its database file behind or ahead of its space (see
    ``_check_caught_up``): nothing was written; the file is compared with its space again
    before its next use (R71), so running the transaction again succeeds when the file can be
    repaired (``@sc.handler`` does), and fails as ``Quarantined`` when it cannot."""

    def __init__(self, space_id: str, db_id: str, file_seq: int, space_seq: int) -> None:
        if file_seq < space_seq:
            why = "a process was killed between the two files' commits"
            then = "the file is repaired before its next use"
        else:
            why = (
                "the file at its path was replaced while the runtime did not have it open, or "
                "a process was killed between the two files' commits"
            )
            then = (
                "the file is compared with its space before its next use (a commit left in "
                "flight is undone; a file that is not this database's is quarantined, a copy "
                "kept)"
            )
        TransactionError.__init__(
            self,
            f"database {db_id}: its file holds commits up to seq {file_seq} but its space last "
            f"wrote it at seq {space_seq} ({why}); nothing was written, and {then}: run the "
            "transaction again (@sc.handler does so for you)",
        )
        self.space_id = space_id
        self.cell_ids = (db_id,)


def _declarations(ops: Sequence[PendingOp]) -> list[Declaration]:
    """The declarations ``ops`` were recorded under, each once (by identity: hashing a
    declaration hashes its whole schema, on every commit)."""
    if len(ops) == 1:  # the usual case: no dict to build
        return [_request(ops[0]).decl]
    return list({id(d): d for d in (_request(op).decl for op in ops)}.values())


def _dropped_since(decl: Declaration) -> DatabaseDropped:
    return DatabaseDropped(
        f"database {decl.db_id} was dropped by a commit made after this write was "
        "recorded; nothing was written: declare a new database (another name)"
    )


def _user_table(name: str) -> bool:
    return not name.startswith("_cf_")


_POLICIES: dict[frozenset[str] | None, Authorizer] = {}


def _write_policy(tables: frozenset[str] | None) -> Authorizer:
    """The write policy for ``tables`` (made once per table set; policies hold no state)."""
    found = _POLICIES.get(tables)
    if found is None:
        found = make_authorizer(Mode.WRITE, database=ALIAS, tables=tables)
        if len(_POLICIES) < 1024:
            _POLICIES[tables] = found
    return found


def _ensure_key(decl: Declaration) -> EnsureKey:
    assert decl.schema is not None
    return (decl.path, decl.schema.fingerprint, decl.version)


def _write_nothing(conn: apsw.Connection) -> None:
    """A write that changes nothing in the attached file, so that it takes the file's write
    lock (see ``_take_file_lock``). On a file without ``_cf_meta`` as far as this connection
    knows — a blank file, made by this commit's attach or by another runtime that may be writing
    it right now — the table's creation is that write, undone at once in a savepoint, so the
    file still reads as never written (``_file_state``)."""
    try:
        conn.execute(_TAKE_FILE_LOCK)
    except apsw.SQLError:
        conn.execute("SAVEPOINT _cf_take_lock")
        try:
            create_meta_table(conn, ALIAS)
        finally:
            # An I/O error (a full disk) rolls back SQLite's whole transaction, its savepoints
            # with it: the error raised says why; undoing a savepoint that is gone would put
            # "no such savepoint" in its place.
            if not conn.getautocommit():
                conn.execute("ROLLBACK TO _cf_take_lock")
                conn.execute("RELEASE _cf_take_lock")


def _file_state(conn: apsw.Connection) -> FileState | None:
    """The attached file's schema cookie and stored version, read in the open transaction;
    None when it has no ``_cf_meta`` table (a file never written by the runtime)."""
    cookie = conn.execute(_COOKIE_SQL).fetchall()[0][0]
    try:
        rows = conn.execute(_VERSION_SQL).fetchall()
    except apsw.SQLError:
        return None
    return (int(str(cookie)), rows[0][0] if rows else None)

"""The write fold: ``db.exec`` ops applied inside the space's commit (R32–R34).

The ``sqlite`` commit participant attaches the database file to the space's write connection as
``_cf_db`` (before ``BEGIN``; at most one file attached, kept until another is written), creates or
migrates it on the first write of each declared schema, runs the statements under the write
authorizer, and writes the file's watermark (the commit's seq) in the same transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import apsw
import msgspec

from sqlite_cells.codec import ExecError, Op, SqliteCellsError
from sqlite_cells.files import ALIAS, KIND, OpBody, attach, encode_op_body
from sqlite_cells.runtime import Transaction
from sqlite_cells.schema import Declaration, ensure_schema
from sqlite_cells.sql import Authorizer, Bound, Mode, make_authorizer

__all__ = ["REQUESTS", "ExecRequest", "SqliteParticipant"]

REQUESTS = "sqlite.requests"  # tx.extras key: {id(op): ExecRequest} of the transaction
JOURNAL_KEEP = 256  # changesets each database file keeps of its own newest commits
JOURNAL_PRUNE_EVERY = 64  # seqs between prunings of that journal


@dataclass(frozen=True, slots=True)
class ExecRequest:
    decl: Declaration
    sql: str
    rows: list[Bound]
    many: bool


def _op_body(request: ExecRequest, changeset: bytes | None) -> msgspec.Raw:
    rows: list[list[object] | dict[str, object]] = (
        []
        if changeset is not None
        else [dict(r) if isinstance(r, dict) else list(r) for r in request.rows]
    )
    return encode_op_body(OpBody(request.sql, rows, request.many, changeset))


class SqliteParticipant:
    """Applies ``sqlite`` ops; see the module docstring. ``lookup`` finds a declaration by id."""

    kind = KIND

    def __init__(
        self,
        lookup: Callable[[str], Declaration],
        *,
        ready: Callable[[Declaration], None],
        repair: Callable[[Declaration], object],
    ) -> None:
        self._lookup = lookup
        self._ready = ready
        self._repair = repair
        self.capture_changesets = True  # switched off only to measure its cost
        # _lock guards _ensured: (file, schema fingerprint, version) known to be in place.
        self._lock = threading.Lock()
        self._ensured: set[tuple[Path, str, int]] = set()

    def prepare(self, conn: apsw.Connection, ops: Sequence[Op]) -> None:
        paths = {self._lookup(op.target).path for op in ops}
        if len(paths) != 1:
            raise SqliteCellsError(f"one commit may write one database, not {len(paths)}")
        for db_id in {op.target for op in ops}:
            self._ready(self._lookup(db_id))
        (path,) = paths
        attach(conn, path)

    def apply(self, conn: apsw.Connection, op: Op, seq: int, tx: Transaction) -> Op:
        request: ExecRequest = tx.extras[REQUESTS][id(op)]
        decl = request.decl
        assert decl.schema is not None  # only runtime-owned databases are written
        key = _ensure_key(decl)
        with self._lock:
            ensured = key in self._ensured
        if not ensured:
            ensure_schema(
                conn,
                ALIAS,
                decl.schema,
                db_id=decl.db_id,
                version=decl.version,
                migrate=decl.migrate,
            )
        session = _capture(conn) if self.capture_changesets else None
        conn.authorizer = _write_authorizer(decl.table_names, session is not None)
        try:
            # Statements may come from apsw's cache: setting the authorizer (just above) empties
            # it, so each user statement is prepared, and authorized, under this authorizer —
            # once per op, not once per row (tests/sqlite_cells/test_writes.py checks the apsw
            # behaviour this relies on).
            cursor = conn.cursor()
            if request.many:
                cursor.executemany(request.sql, request.rows)
            else:
                cursor.execute(request.sql, request.rows[0])
        except apsw.Error as exc:
            raise ExecError(decl.db_id, request.sql, f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.authorizer = None
            changeset = session.changeset() if session is not None else None
            if session is not None:
                session.close()
        conn.execute(f"UPDATE {ALIAS}._cf_watermark SET seq = ? WHERE id = 0", (seq,))
        if changeset is not None:
            self._journal(conn, seq, changeset)
        return Op(op.kind, op.target, _op_body(request, changeset))

    @staticmethod
    def _journal(conn: apsw.Connection, seq: int, changeset: bytes) -> None:
        """Keep the changeset in the file itself too: if the space ever loses commits the file
        already has, these are what gets inverted (R71). Only the newest are kept."""
        conn.execute(
            f"INSERT INTO {ALIAS}._cf_changes (seq, changeset) VALUES (?, ?)", (seq, changeset)
        )
        if seq % JOURNAL_PRUNE_EVERY == 0:
            conn.execute(
                f"DELETE FROM {ALIAS}._cf_changes WHERE seq < (SELECT min(seq) FROM (SELECT "
                f"DISTINCT seq FROM {ALIAS}._cf_changes ORDER BY seq DESC LIMIT ?))",
                (JOURNAL_KEEP,),
            )

    def committed(self, ops: Sequence[Op], seq: int) -> None:
        keys = set()
        for op in ops:
            decl = self._lookup(op.target)
            if decl.schema is not None:
                keys.add(_ensure_key(decl))
        with self._lock:
            self._ensured |= keys

    def commit_failed(self, ops: Sequence[Op], exc: BaseException) -> None:
        """``COMMIT`` raised: the files may disagree now, so reconcile at once (R71)."""
        with self._lock:
            self._ensured.clear()
        for db_id in {op.target for op in ops}:
            self._repair(self._lookup(db_id))


def _capture(conn: apsw.Connection) -> apsw.Session:
    """A session recording changes to the database cell's own tables (rowid tables included)."""
    session = apsw.Session(conn, ALIAS)
    session.config(apsw.SQLITE_SESSION_OBJCONFIG_ROWID, 1)
    session.table_filter(lambda name: not name.startswith("_cf_"))
    session.attach()
    return session


_AUTHORIZERS: dict[tuple[frozenset[str] | None, bool], Authorizer] = {}


def _write_authorizer(tables: frozenset[str] | None, capturing: bool) -> Authorizer:
    """The write authorizer for ``tables`` (made once per table set; they hold no state)."""
    key = (tables, capturing)
    found = _AUTHORIZERS.get(key)
    if found is None:
        found = make_authorizer(Mode.WRITE, database=ALIAS, tables=tables)
        if capturing:
            found = _with_session_metadata(found)
        if len(_AUTHORIZERS) < 1024:
            _AUTHORIZERS[key] = found
    return found


def _with_session_metadata(inner: Authorizer) -> Authorizer:
    """The session extension reads ``PRAGMA table_xinfo`` of each table it first sees changed,
    from inside the user's statement; that read of metadata is allowed (the guard has already
    refused any PRAGMA written by the user)."""

    def authorize(
        action: int, a: str | None, b: str | None, database: str | None, trigger: str | None
    ) -> int:
        if action == apsw.SQLITE_PRAGMA and a in _SESSION_PRAGMAS and database == ALIAS:
            return apsw.SQLITE_OK
        return inner(action, a, b, database, trigger)

    return authorize


_SESSION_PRAGMAS = frozenset({"table_info", "table_xinfo"})


def _ensure_key(decl: Declaration) -> tuple[Path, str, int]:
    assert decl.schema is not None
    return (decl.path, decl.schema.fingerprint, decl.version)

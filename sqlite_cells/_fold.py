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

from codec import ExecError, Op, SqliteCellsError
from runtime import Transaction
from sqlite_cells._authorizer import make_authorizer
from sqlite_cells._binding import Bound
from sqlite_cells._declaration import Declaration
from sqlite_cells._guard import Mode
from sqlite_cells._migrate import ensure_schema

__all__ = ["ALIAS", "KIND", "ExecRequest", "SqliteParticipant", "encode_op_body"]

KIND = "sqlite"
ALIAS = "_cf_db"
REQUESTS = "sqlite.requests"  # tx.extras key: {id(op): ExecRequest} of the transaction


@dataclass(frozen=True, slots=True)
class ExecRequest:
    decl: Declaration
    sql: str
    rows: list[Bound]
    many: bool


class _OpBody(msgspec.Struct, frozen=True):
    sql: str
    rows: list[list[object] | dict[str, object]]
    many: bool


def encode_op_body(request: ExecRequest) -> msgspec.Raw:
    """The op as kept in the commit record (bytes parameters appear base64-encoded)."""
    rows: list[list[object] | dict[str, object]] = [
        dict(r) if isinstance(r, dict) else list(r) for r in request.rows
    ]
    return msgspec.Raw(msgspec.json.encode(_OpBody(request.sql, rows, request.many)))


class SqliteParticipant:
    """Applies ``sqlite`` ops; see the module docstring. ``lookup`` finds a declaration by id."""

    kind = KIND

    def __init__(self, lookup: Callable[[str], Declaration]) -> None:
        self._lookup = lookup
        # _lock guards _ensured: (file, schema fingerprint, version) known to be in place.
        self._lock = threading.Lock()
        self._ensured: set[tuple[Path, str, int]] = set()

    def prepare(self, conn: apsw.Connection, ops: Sequence[Op]) -> None:
        paths = {self._lookup(op.target).path for op in ops}
        if len(paths) != 1:
            raise SqliteCellsError(f"one commit may write one database, not {len(paths)}")
        (path,) = paths
        if _attached(conn) == str(path):
            return
        if _attached(conn) is not None:
            conn.execute(f"DETACH DATABASE {ALIAS}")
        conn.execute(f"ATTACH DATABASE ? AS {ALIAS}", (str(path),))
        conn.execute(f"PRAGMA {ALIAS}.journal_mode=WAL")
        conn.execute(f"PRAGMA {ALIAS}.synchronous=NORMAL")

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
        conn.authorizer = make_authorizer(Mode.WRITE, database=ALIAS, tables=decl.table_names)
        try:
            cursor = conn.cursor()
            if request.many:
                cursor.executemany(request.sql, request.rows, can_cache=False)
            else:
                cursor.execute(request.sql, request.rows[0], can_cache=False)
        except apsw.Error as exc:
            raise ExecError(decl.db_id, request.sql, f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.authorizer = None
        conn.execute(f"UPDATE {ALIAS}._cf_watermark SET seq = ? WHERE id = 0", (seq,))
        return op

    def committed(self, ops: Sequence[Op], seq: int) -> None:
        keys = set()
        for op in ops:
            decl = self._lookup(op.target)
            if decl.schema is not None:
                keys.add(_ensure_key(decl))
        with self._lock:
            self._ensured |= keys

    def commit_failed(self, ops: Sequence[Op], exc: BaseException) -> None:
        # Crash reconciliation (R71) hooks in here; until then a failed COMMIT leaves the next
        # write to re-check the schema.
        with self._lock:
            self._ensured.clear()


def _ensure_key(decl: Declaration) -> tuple[Path, str, int]:
    assert decl.schema is not None
    return (decl.path, decl.schema.fingerprint, decl.version)


def _attached(conn: apsw.Connection) -> str | None:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == ALIAS:
            return str(file)
    return None

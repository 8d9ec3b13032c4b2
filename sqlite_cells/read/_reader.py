"""One guarded read of a database: rows and the watermark, in one read transaction (R40–R44).

A database reads as its declared schema even before it has a file (R41): a missing file is read
as the declared tables with no rows (in a scratch in-memory database, never creating the file);
declared tables that the file does not have yet are shadowed by empty temporary tables for the
duration of the read. An undeclared table is a :class:`QueryError`, written or not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import apsw

from sqlite_cells.codec import QueryError, QueryTimeout
from sqlite_cells.read._pool import ReadPool
from sqlite_cells.schema import Declaration, Schema, SourceKind, create_table_sql, quote_ident
from sqlite_cells.sql import Authorizer, Bound, Mode, make_authorizer

__all__ = ["Rows", "read_rows"]

Rows = list[dict[str, Any]]
_PROGRESS_STEPS = 1000


def read_rows(
    pool: ReadPool, decl: Declaration, sql: str, params: Bound, *, timeout: float
) -> tuple[Rows, int]:
    """Run the (already guarded) read ``sql`` and return its rows as dicts and the watermark seq
    read in the same transaction. Raises :class:`QueryError` / :class:`QueryTimeout`."""
    decl.check_usable()
    if decl.kind is SourceKind.DISK and not decl.path.is_file():
        pool.discard(decl.path)  # an open connection would still read the unlinked file
        raise QueryError(
            decl.db_id,
            sql,
            f"the injected file {decl.path} is gone (deleted or moved after it was registered)",
        )
    try:
        try:
            with pool.connection(decl.path) as conn:
                return _read_file(conn, decl, sql, params, timeout)
        except FileNotFoundError:
            if decl.schema is None:
                raise QueryError(
                    decl.db_id,
                    sql,
                    f"the file {decl.path} is gone (deleted or moved after it was registered)",
                ) from None
            with _scratch(decl.schema) as conn:
                return _run(conn, decl, sql, params, timeout, authorizer=None), 0
    except apsw.InterruptError as exc:
        raise QueryTimeout(
            decl.db_id, sql, f"interrupted after {timeout}s (query_timeout): narrow the query"
        ) from exc
    except apsw.AuthError as exc:
        raise QueryError(
            decl.db_id,
            sql,
            f"not authorized ({exc}): queries may read only the database's declared tables",
        ) from exc
    except apsw.SQLError as exc:
        hint = (
            ": queries may read only the database's declared tables"
            if "no such table" in str(exc)
            else ""
        )
        raise QueryError(decl.db_id, sql, f"SQLError: {exc}{hint}") from exc
    except apsw.Error as exc:
        raise QueryError(decl.db_id, sql, f"{type(exc).__name__}: {exc}") from exc


def _read_file(
    conn: apsw.Connection, decl: Declaration, sql: str, params: Bound, timeout: float
) -> tuple[Rows, int]:
    conn.execute("BEGIN")
    try:
        seq = _watermark(conn)
        try:
            rows = _run(conn, decl, sql, params, timeout, authorizer=None)
        except apsw.SQLError as exc:
            # Only a file written under an older declaration lacks declared tables: look for
            # them when SQLite says a table is missing, not on every read.
            missing = _missing_tables(conn, decl) if "no such table" in str(exc) else []
            if not missing:
                raise
            with _shadows(conn, decl.schema, missing):
                authorizer = _allowing_temp(_read_authorizer(decl), frozenset(missing))
                rows = _run(conn, decl, sql, params, timeout, authorizer=authorizer)
    finally:
        conn.execute("COMMIT")
    return rows, seq


def _watermark(conn: apsw.Connection) -> int:
    """The seq of the last commit that wrote the file (0 for a file the runtime never wrote)."""
    try:
        row = conn.execute("SELECT seq FROM _cf_watermark WHERE id = 0").fetchone()
    except apsw.SQLError:
        return 0
    return int(row[0]) if row else 0


def _missing_tables(conn: apsw.Connection, decl: Declaration) -> list[str]:
    present = {
        name.lower()
        for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    return sorted((decl.table_names or frozenset()) - present)


_READ_AUTHORIZERS: dict[frozenset[str] | None, Authorizer] = {}


def _read_authorizer(decl: Declaration) -> Authorizer:
    """The read authorizer for the declaration's tables (made once per table set)."""
    found = _READ_AUTHORIZERS.get(decl.table_names)
    if found is None:
        found = make_authorizer(Mode.READ, database="main", tables=decl.table_names)
        if len(_READ_AUTHORIZERS) < 1024:
            _READ_AUTHORIZERS[decl.table_names] = found
    return found


def _run(
    conn: apsw.Connection,
    decl: Declaration,
    sql: str,
    params: Bound,
    timeout: float,
    *,
    authorizer: Authorizer | None,
) -> Rows:
    deadline = time.monotonic() + timeout
    conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS, id=_run)
    if authorizer is None:
        authorizer = _read_authorizer(decl)
    conn.authorizer = authorizer
    try:
        cursor = conn.cursor()
        cursor.execute(sql, params, can_cache=False)
        try:
            names = [name for name, _ in cursor.get_description()]
        except apsw.ExecutionCompleteError:
            return []
        return [dict(zip(names, row, strict=True)) for row in cursor]
    finally:
        conn.authorizer = None
        conn.set_progress_handler(None, id=_run)


@contextmanager
def _shadows(conn: apsw.Connection, schema: Schema | None, names: list[str]) -> Iterator[None]:
    """Empty temporary stand-ins for declared tables the file does not have yet (R41)."""
    if not names or schema is None:
        yield
        return
    created = []
    try:
        for name, table in schema.tables:
            if name.lower() in names:
                conn.execute(create_table_sql("temp", name, table))
                created.append(name)
        yield
    finally:
        for name in created:
            conn.execute(f"DROP TABLE temp.{quote_ident(name)}")


def _allowing_temp(inner: Authorizer, names: frozenset[str]) -> Authorizer:
    def authorize(
        action: int, a: str | None, b: str | None, database: str | None, trigger: str | None
    ) -> int:
        if action == apsw.SQLITE_READ and database == "temp" and (a or "").lower() in names:
            return apsw.SQLITE_OK
        return inner(action, a, b, database, trigger)

    return authorize


_scratch_lock = threading.Lock()  # guards _scratch_conns
_scratch_conns: dict[str, tuple[threading.Lock, apsw.Connection]] = {}
_SCRATCH_LIMIT = 64


@contextmanager
def _scratch(schema: Schema) -> Iterator[apsw.Connection]:
    """An in-memory database with the declared tables and no rows, one per schema, kept."""
    with _scratch_lock:
        held = _scratch_conns.get(schema.fingerprint)
        if held is None:
            if len(_scratch_conns) >= _SCRATCH_LIMIT:
                _scratch_conns.pop(next(iter(_scratch_conns)))
            conn = apsw.Connection(":memory:")
            for name, table in schema.tables:
                conn.execute(create_table_sql("main", name, table))
            held = _scratch_conns[schema.fingerprint] = (threading.Lock(), conn)
    lock, conn = held
    with lock:
        yield conn

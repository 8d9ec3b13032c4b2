"""Rows whose primary key is NULL are refused at commit (R51, R70, R71, R31).

SQLite lets the PRIMARY KEY of a rowid table hold NULL unless it is the INTEGER PRIMARY KEY
(the rowid's alias) or declared NOT NULL: ``k TEXT PRIMARY KEY``, ``k INT PRIMARY KEY``,
``k INTEGER PRIMARY KEY DESC``, a composite key. The session extension records no change to a
row whose key holds NULL (it could not name the row when the changeset is applied), so such a
row would be missing from the commit's changeset, which is what live queries react to (R51),
what replays a database behind its space (R70) and what undoes one ahead of it (R71), and what
the link and UTF-8 checks read (R31). A write that leaves such a row is refused instead.

How it is checked, per op, for each table of the declaration whose key is nullable (none for
most schemas: they pay nothing):

* before the statement, one probe on the key's own index (``WHERE k IS NULL LIMIT 1``); the
  usual answer is "none";
* after it, the same probe: a NULL-key row now is one the op left, and the op is refused.

NULL-key rows already in the file (written before this check existed, or by another program) are
kept and never block a write that leaves them as they are. When the first probe finds some, all
of them are read (their rowid and values) before and after the statement, and the op is refused
only if a NULL-key row after it is not one of those before: a new one, or one it changed without
giving it a key. Deleting them, or giving them a key, is allowed: that is how they are fixed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import apsw

from sqlite_cells.codec import ExecError
from sqlite_cells.schema import null_key_condition, nullable_key_columns, quote_ident
from sqlite_cells.sql import fold_ascii
from sqlite_cells.write._links import LinkColumns, check_row_links

__all__ = ["KeyProbe", "NullKeys", "before_write", "check_null_keys", "nullable_keys"]

_ROWID_NAMES = ("rowid", "_rowid_", "oid")

# What a probe found before the statement: None when the table had no NULL-key row, else the
# fingerprints of those it had (how many of each).
Before = Counter[tuple[object, ...]] | None


@dataclass(frozen=True, slots=True)
class KeyProbe:
    """The statements that find the NULL-key rows of one table whose key is nullable."""

    table: str  # as the file names it
    columns: tuple[str, ...]  # its key columns that may hold NULL
    exists_sql: str  # one row if any key column is NULL (a probe of the key's index)
    fingerprints_sql: str  # (rowid, then each column's type and exact value) of those rows
    rows_sql: str  # the columns of those rows, in table_info order (for the R31 checks)
    by_rowid_sql: str | None  # the columns of one of them, by its rowid (if a name reaches it)


NullKeys = tuple[KeyProbe, ...]


def nullable_keys(conn: apsw.Connection, database: str, tables: Iterable[str]) -> NullKeys:
    """A probe for each of ``tables`` (as ``database`` holds them) whose primary key may hold
    NULL: a rowid table whose key has an index of its own (so it is not the rowid's alias) and
    a key column not declared NOT NULL. WITHOUT ROWID tables refuse NULL keys themselves (their
    key columns are reported NOT NULL). Read once per ensured schema, with the link columns."""
    db = quote_ident(database)
    found: list[KeyProbe] = []
    for table in tables:
        nullable, stored = nullable_key_columns(conn, db, table)
        if nullable:
            found.append(_probe(db, table, nullable, stored))
    return tuple(found)


def _probe(db: str, table: str, nullable: Sequence[str], stored: Sequence[str]) -> KeyProbe:
    source = f"{db}.{quote_ident(table)}"
    # The first key column is the index's leading one: its probe is a seek. A later column of a
    # composite key has no index of its own, and its probe is a scan of the key's index.
    where = null_key_condition(nullable)
    folded = {fold_ascii(column) for column in stored}
    rowid = next((n for n in _ROWID_NAMES if n not in folded), None)
    # Text is compared as its bytes (text that is not UTF-8 cannot be read as a str), with its
    # type, so that nothing but the same row with the same values counts as unchanged.
    values = ", ".join(
        f"typeof({q}), iif(typeof({q}) = 'text', CAST({q} AS BLOB), {q})"
        for q in map(quote_ident, stored)
    )
    lead = f"{rowid}, " if rowid is not None else ""
    columns = ", ".join(map(quote_ident, stored))
    return KeyProbe(
        table=table,
        columns=tuple(nullable),
        exists_sql=f"SELECT 1 FROM {source} WHERE {where} LIMIT 1",
        fingerprints_sql=f"SELECT {lead}{values} FROM {source} WHERE {where}",
        rows_sql=f"SELECT {lead}{columns} FROM {source} WHERE {where}",
        by_rowid_sql=None
        if rowid is None
        else f"SELECT {lead}{columns} FROM {source} WHERE {rowid} = ?",
    )


def before_write(conn: apsw.Connection, probes: NullKeys) -> list[Before]:
    """What each probe finds before the op's statement runs (see :data:`Before`)."""
    return [_fingerprints(conn, probe) for probe in probes]


def _fingerprints(conn: apsw.Connection, probe: KeyProbe) -> Before:
    if not conn.execute(probe.exists_sql).fetchall():
        return None
    return Counter(map(tuple, conn.execute(probe.fingerprints_sql).fetchall()))


def check_null_keys(
    conn: apsw.Connection,
    probes: NullKeys,
    before: Sequence[Before],
    links: LinkColumns,
    *,
    db_id: str,
    sql: str,
) -> bool:
    """Raise if the op left a NULL-key row that was not there, as it is, before it: a
    :class:`LinkEncodeError` (or an :class:`ExecError` for text that is not UTF-8) when such a
    row breaks R31 — the check the changeset cannot make for it — else an :class:`ExecError`
    saying to give the key a value. Returns whether the op deleted or changed a NULL-key row
    that was there: a change its changeset does not show (R51: what reads the database must
    re-run)."""
    unseen = False
    for probe, had in zip(probes, before, strict=True):
        now = _fingerprints(conn, probe)
        if had is not None and had - (now or Counter()):
            unseen = True
        if now is None:
            continue
        left = now if had is None else now - had
        if not left:
            continue
        try:
            rows = _rows(conn, probe, left, had)
        except UnicodeDecodeError as exc:
            raise ExecError(
                db_id,
                sql,
                f"it would store text that is not valid UTF-8 ({exc}) in table {probe.table}, "
                "which no read could return; store bytes as a BLOB instead",
            ) from exc
        check_row_links(rows, probe.table, links, db_id=db_id, sql=sql)
        keys = ", ".join(f"{probe.table}.{column}" for column in probe.columns)
        raise ExecError(
            db_id,
            sql,
            f"it would leave {left.total()} row(s) whose primary key ({keys}) is NULL, and "
            "SQLite records no change to such a row: live queries would not see it, and a "
            "database restored from its space would not have it (R51, R70); give the key a "
            "value, or declare it NOT NULL (a version= bump whose migrate rebuilds the table)",
        )
    return unseen


def _rows(
    conn: apsw.Connection, probe: KeyProbe, left: Counter[tuple[object, ...]], had: Before
) -> list[tuple[object, ...]]:
    """The rows ``left`` fingerprints: by their rowids when the table had NULL-key rows before
    (their text may not even be readable), else all of its NULL-key rows."""
    if had is None or probe.by_rowid_sql is None:
        return [tuple(row) for row in conn.execute(probe.rows_sql).fetchall()]
    return [
        tuple(row)
        for fingerprint in left
        for row in conn.execute(probe.by_rowid_sql, (fingerprint[0],)).fetchall()
    ]

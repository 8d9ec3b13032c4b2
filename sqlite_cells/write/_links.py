"""R31 at commit: what a commit stores in a ``*_cf_link`` column is NULL or a well-formed link,
in the canonical form the codec writes (R30), so that equal links are equal text; and the
columns an ``INSERT INTO t VALUES (…)`` without a column list fills are the ones its parameters
were mapped to at the call.

The call-time checks (a ``Cell`` bound to a link column becomes its link string, anything else
bound there is refused) cannot see values that SQL itself produces — a literal,
``coalesce(?, NULL)``, ``? || ''``, ``INSERT … SELECT``, a CTE, an UPDATE expression. So the
new values of each change in the op's session changeset are checked before ``COMMIT``; one bad
value fails the commit with :class:`LinkEncodeError` and nothing is written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence

import apsw

from sqlite_cells.codec import ExecError, ExecTimeout, LinkEncodeError, link_text_problem
from sqlite_cells.schema import Schema, fill_orders, quote_ident
from sqlite_cells.sql import fold_ascii, is_link_column

__all__ = [
    "Fills",
    "LinkColumns",
    "check_fills",
    "check_links",
    "check_row_links",
    "link_columns",
]

# (table, the columns an INSERT without a column list fills, in order) for each such table of
# a statement, as its call found them
Fills = tuple[tuple[str, tuple[str, ...]], ...]

# table name (ASCII-folded, as SQLite compares names) -> (its column count, (column index,
# column name) of its link columns)
LinkColumns = Mapping[str, tuple[int, tuple[tuple[int, str], ...]]]


def link_columns(conn: apsw.Connection, database: str, tables: Iterable[str]) -> LinkColumns:
    """The ``*_cf_link`` columns of ``tables`` as the file holds them (read once per ensured
    schema; the changeset gives values by column position). Column positions are those of
    ``PRAGMA table_info``; a session records a table without a primary key with its rowid as
    an extra first column, which :func:`check_links` tells by the count."""
    db = quote_ident(database)
    found: dict[str, tuple[int, tuple[tuple[int, str], ...]]] = {}
    for table in tables:
        rows = conn.execute(f"PRAGMA {db}.table_info({quote_ident(table)})").fetchall()
        names = [str(row[1]) for row in rows]
        links = tuple((i, name) for i, name in enumerate(names) if is_link_column(name))
        if links:
            found[fold_ascii(table)] = (len(names), links)
    return found


def check_links(
    changeset: bytes,
    columns: LinkColumns,
    *,
    db_id: str,
    sql: str,
    deadline: float = math.inf,
    timeout: float = math.inf,
) -> None:
    """Raise :class:`LinkEncodeError` if a change of ``changeset`` stores anything but NULL or a
    well-formed link in a link column (R31) — text that is not UTF-8 included — and
    :class:`ExecError` if it stores such text in another column (no read could return it).
    Past ``deadline`` (``time.monotonic()``; the op's ``exec_timeout`` of ``timeout`` seconds),
    :class:`ExecTimeout`: the check runs holding the space's write lock (R44)."""
    try:
        _check_changes(changeset, columns, db_id, sql, deadline, timeout)
    except UnicodeDecodeError as exc:
        # apsw decodes a change's values all at once: which column holds the text is read
        # from the changeset's own bytes.
        for table, column, raw in _undecodable_texts(changeset, columns):
            _check_link(raw, table=table, column=column, db_id=db_id, sql=sql)
        raise ExecError(
            db_id,
            sql,
            f"it would store text that is not valid UTF-8 ({exc}), which no read could return; "
            "store bytes as a BLOB instead",
        ) from exc


# Changes checked between two looks at the op's deadline.
_CHANGES_PER_LOOK = 1024


def _check_changes(
    changeset: bytes, columns: LinkColumns, db_id: str, sql: str, deadline: float, timeout: float
) -> None:
    for count, change in enumerate(apsw.Changeset.iter(changeset), 1):
        if not count % _CHANGES_PER_LOOK and time.monotonic() > deadline:
            raise ExecTimeout(
                db_id,
                sql,
                f"the check of the links it stores ran past exec_timeout={timeout}s ({count:,} "
                "changes checked), holding the space's write lock: nothing was written; write "
                "fewer rows per transaction, or give the runtime a longer exec_timeout",
            )
        described = columns.get(fold_ascii(change.name))
        new = change.new
        if described is None or new is None:
            continue  # a DELETE, or a table without link columns
        width, links = described
        shift = len(new) - width  # 1 when the session added the rowid as column 0
        for index, name in links:
            at = index + shift
            value = new[at] if 0 <= at < len(new) else None
            if value is None or value is apsw.no_change:
                continue
            _check_link(value, table=change.name, column=name, db_id=db_id, sql=sql)


def check_row_links(
    rows: Iterable[Sequence[object]], table: str, columns: LinkColumns, *, db_id: str, sql: str
) -> None:
    """:func:`check_links` for rows of ``table`` read from the file rather than from a
    changeset: each row is its columns in ``PRAGMA table_info`` order, after its rowid or not
    (told by the count, as for a changeset)."""
    described = columns.get(fold_ascii(table))
    if described is None:
        return  # a table without link columns
    width, links = described
    for row in rows:
        shift = len(row) - width
        for index, name in links:
            value = row[index + shift]
            if value is not None:
                _check_link(value, table=table, column=name, db_id=db_id, sql=sql)


def _check_link(value: object, *, table: str, column: str, db_id: str, sql: str) -> None:
    if isinstance(value, str):
        # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, which the rule refuses.
        problem = link_text_problem(value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, _Text):
        problem = "text that is not a link (not UTF-8)"
        value = bytes(value)
    else:
        problem = f"a {type(value).__name__}"
    if problem:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        error = LinkEncodeError(
            f"database {db_id}: {sql!r} would store {problem} ({shown}) in link column "
            f"{table}.{column}; a link column holds NULL or a link: bind a Cell (or None) "
            "there; nothing was written"
        )
        error.db_id, error.sql = db_id, sql
        raise error


def check_fills(
    conn: apsw.Connection, database: str, schema: Schema, fills: Fills, *, db_id: str, sql: str
) -> None:
    """Raise :class:`LinkEncodeError` unless the link columns of each table of ``fills`` are
    where the call found them among the columns ``INSERT INTO t VALUES (…)`` fills.

    The call mapped each parameter to a column by its position among the columns the file was
    to fill once migrated (R31: a ``Cell`` there only where a link column is, nothing else
    there). Between the call and this commit another runtime or process may have migrated the
    file to another declaration, or a ``migrate`` may have rebuilt the table: the columns are
    read again here, on the migrated file, and if a link column moved the call's checks no
    longer hold and nothing is written."""
    now = fill_orders(conn, database, schema, [table for table, _ in fills])
    for table, expected in fills:
        actual = now.get(fold_ascii(table), ())
        if list(map(is_link_column, actual)) != list(map(is_link_column, expected)):
            error = LinkEncodeError(
                f"database {db_id}: {sql!r} fills the columns ({', '.join(actual)}) of table "
                f"{table} now, but its parameters were mapped to ({', '.join(expected)}) when "
                "db.exec was called: the file was migrated since (by this write's own migrate, "
                "or by another runtime or process); nothing was written: run the transaction "
                f"again, or list the columns (INSERT INTO {table} (…) VALUES …)"
            )
            error.db_id, error.sql = db_id, sql
            raise error


class _Text(bytes):
    """The bytes of a text value of a changeset that are not UTF-8 (told apart from a BLOB)."""


def _undecodable_texts(changeset: bytes, columns: LinkColumns) -> Iterable[tuple[str, str, _Text]]:
    """(table, link column, bytes) of each new text value in a link column of ``changeset``
    that is not UTF-8, read from the changeset's own format (SQLite's session extension: per
    table a header ``T``, its column count, primary-key flags and name; per change its
    operation, the indirect flag and the old and/or new values, each a type byte and its
    bytes). Anything it does not recognise ends the reading: the caller's ExecError stands."""
    at, end = 0, len(changeset)
    links: dict[int, str] = {}
    count = 0
    table = ""
    try:
        while at < end:
            marker = changeset[at]
            if marker == 0x54:  # "T": a table's header
                count, at = _varint(changeset, at + 1)
                at += count  # the primary-key flags
                name_end = changeset.index(0, at)
                table = changeset[at:name_end].decode("utf-8", "replace")
                at = name_end + 1
                described = columns.get(fold_ascii(table))
                shift = count - described[0] if described is not None else 0
                links = {i + shift: name for i, name in described[1]} if described else {}
                continue
            operation = marker
            at += 2  # the operation and the indirect flag
            if operation in (_UPDATE, _DELETE):
                at = _skip_record(changeset, at, count)
            if operation in (_UPDATE, _INSERT):
                for column in range(count):
                    kind = changeset[at]
                    at += 1
                    if kind in (_TEXT, _BLOB):
                        size, at = _varint(changeset, at)
                        raw = changeset[at : at + size]
                        at += size
                        if kind == _TEXT and column in links and not _is_utf8(raw):
                            yield table, links[column], _Text(raw)
                    elif kind in (_INTEGER, _REAL):
                        at += 8
            elif operation != _DELETE:
                return
    except (IndexError, ValueError):
        return


_INSERT, _UPDATE, _DELETE = apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE
_INTEGER, _REAL, _TEXT, _BLOB = 1, 2, 3, 4  # value type bytes (0: absent, 5: NULL)


def _skip_record(data: bytes, at: int, count: int) -> int:
    for _column in range(count):
        kind = data[at]
        at += 1
        if kind in (_TEXT, _BLOB):
            size, at = _varint(data, at)
            at += size
        elif kind in (_INTEGER, _REAL):
            at += 8
    return at


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's variable-length integer at ``at``: the value and the offset after it."""
    value = 0
    for i in range(9):
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise ValueError("varint")  # not reached


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

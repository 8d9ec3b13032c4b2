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

from collections.abc import Iterable, Mapping, Sequence

import apsw

from sqlite_cells.codec import ExecError, LinkEncodeError, link_text_problem
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


def check_links(changeset: bytes, columns: LinkColumns, *, db_id: str, sql: str) -> None:
    """Raise :class:`LinkEncodeError` if a change of ``changeset`` stores anything but NULL or a
    well-formed link in a link column (R31), and :class:`ExecError` if it stores text that is
    not UTF-8 (such a row could not be read back)."""
    try:
        _check_changes(changeset, columns, db_id=db_id, sql=sql)
    except UnicodeDecodeError as exc:
        raise ExecError(
            db_id,
            sql,
            f"it would store text that is not valid UTF-8 ({exc}), which no read could return; "
            "store bytes as a BLOB instead",
        ) from exc


def _check_changes(changeset: bytes, columns: LinkColumns, *, db_id: str, sql: str) -> None:
    for change in apsw.Changeset.iter(changeset):
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
    else:
        problem = f"a {type(value).__name__}"
    if problem:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise LinkEncodeError(
            f"database {db_id}: {sql!r} would store {problem} ({shown}) in link column "
            f"{table}.{column}; a link column holds NULL or a link: bind a Cell (or None) "
            "there; nothing was written"
        )


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
            raise LinkEncodeError(
                f"database {db_id}: {sql!r} fills the columns ({', '.join(actual)}) of table "
                f"{table} now, but its parameters were mapped to ({', '.join(expected)}) when "
                "db.exec was called: the file was migrated since (by this write's own migrate, "
                "or by another runtime or process); nothing was written: run the transaction "
                f"again, or list the columns (INSERT INTO {table} (…) VALUES …)"
            )

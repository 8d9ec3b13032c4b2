"""VIRTUAL generated columns whose value a row cannot compute (R13, R14, R44).

SQLite stores no value for a VIRTUAL generated column: it computes the column's expression each
time a statement reads the row. An expression may fail for some rows — a value over the length
limit (``zeroblob(70000000)``), an integer overflow (``abs(…)`` of the smallest integer),
malformed JSON (``json(a)``) — and such a row makes every read that reaches it fail: ``SELECT
*``, any statement naming the column, live queries.

A write never leaves such a row: SQLite computes every generated column of each row an INSERT,
UPDATE, upsert, REPLACE or foreign key action writes, and a failing value fails that statement
(an ``ExecError``, R34). ``ALTER TABLE … ADD COLUMN`` does not: it adds a VIRTUAL column to the
rows already there without computing it, and nothing checks a ``migrate`` callback's rows. So
the migration computes the columns itself (:mod:`sqlite_cells.schema._migrate`): each column
the additive diff adds, for every row of its table, and after a ``migrate`` callback every such
column of the declared tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import apsw

from sqlite_cells.schema._schema import quote_ident
from sqlite_cells.schema._schema_diff import rows_of

__all__ = ["uncomputable", "virtual_columns_of"]

_VIRTUAL: Final = 2  # PRAGMA table_xinfo "hidden" of a VIRTUAL generated column


def virtual_columns_of(conn: apsw.Connection, database: str, table: str) -> tuple[str, ...]:
    """The VIRTUAL generated columns of ``table`` as ``database`` holds them, in column order."""
    return tuple(
        str(name)
        for name, hidden in rows_of(
            conn, "SELECT name, hidden FROM pragma_table_xinfo(?, ?)", (table, database)
        )
        if hidden == _VIRTUAL
    )


def _computes_sql(source: str, columns: Sequence[str]) -> str:
    """A statement that computes ``columns`` for every row of ``source`` and returns nothing:
    ``typeof()`` of a generated column evaluates its expression."""
    forced = " OR ".join(f"typeof({quote_ident(c)}) IS NULL" for c in columns)
    return f"SELECT 1 FROM {source} WHERE {forced}"


def uncomputable(
    conn: apsw.Connection, source: str, columns: Sequence[str]
) -> list[tuple[str, apsw.Error]]:
    """Each of ``columns`` that some row of ``source`` (``database.table``, quoted) cannot
    compute, with SQLite's error; ``[]`` when every row computes every one. One pass over the
    rows for all the columns; only when it fails, one more pass per column to name which. A
    deadline's interrupt (``apsw.InterruptError``) goes on up."""
    found = _refusal(conn, _computes_sql(source, columns))
    if found is None:
        return []
    if len(columns) == 1:
        return [(columns[0], found)]
    failed = []
    for column in columns:
        one = _refusal(conn, _computes_sql(source, [column]))
        if one is not None:
            failed.append((column, one))
    return failed or [(columns[0], found)]


def _refusal(conn: apsw.Connection, sql: str) -> apsw.Error | None:
    try:
        conn.execute(sql).fetchall()
    except apsw.InterruptError:
        raise
    except apsw.Error as exc:
        return exc
    return None

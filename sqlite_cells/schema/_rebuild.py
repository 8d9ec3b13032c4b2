"""Adding a column that ``ALTER TABLE … ADD COLUMN`` cannot add, by rebuilding its table (R13).

SQLite's ``ADD COLUMN`` refuses a UNIQUE or a STORED generated column, although each is
additive: every row stays, with the new column's constant default or computed value. Such a
column is added by rebuilding the table, the way SQLite's documentation describes for schema
changes ``ALTER TABLE`` cannot make, in the caller's transaction. (A column whose default is not
a constant, ``CURRENT_TIMESTAMP`` or ``(expr)``, is not: the rows' values would be the rebuild's,
and a replay that rebuilds the table again would give them other ones than the log's changesets
were taken on, R70.)

1. copy every row with its rowid (the changesets of a table without an INTEGER PRIMARY KEY
   name rows by rowid) into ``_cf_rebuild``, a table of untyped columns (no affinity: the
   values stay as stored), leaving generated columns to be computed again;
2. drop the table (its indexes go with it; the caller's diff creates the declared ones again)
   and create it under its own name with the file's columns first, in the file's order, then
   the missing declared ones in declared order: a column keeps its position (and its name as
   the file spells it, whatever letter case the declaration uses), so the changesets
   already in the space's log and the file's journal (which record values by position) still
   apply; the foreign keys of other tables name the table, and so the new one; a CHECK or a
   generated column that names its column by the table (``t.a``) reads as it did (a table
   built under another name and renamed would not even be created);
3. copy the rows back and drop ``_cf_rebuild``; an AUTOINCREMENT counter never goes back.

Only a table the schema diff found otherwise equal to its declaration is rebuilt, so it is a
plain rowid table with the declared columns and indexes and nothing else of the file refers to
it but foreign keys, which name it. With foreign keys enforced
the drop would act on child rows, so the rebuild is refused then (the ``ADD COLUMN``'s own
refusal stands).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final

import apsw

from sqlite_cells.schema._schema import (
    Column,
    Table,
    create_table_sql,
    default_expression,
    quote_ident,
)
from sqlite_cells.schema._schema_diff import rows_of
from sqlite_cells.sql import fold_ascii

__all__ = ["rebuild_adding"]

_TEMP: Final = "_cf_rebuild"
_ROWID_NAMES: Final = ("rowid", "_rowid_", "oid")  # SQLite's names of a table's rowid
# A default SQLite fills in as it is: a number, a string or blob literal, NULL, TRUE or FALSE.
_CONSTANT: Final = re.compile(
    r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?0[xX][0-9a-fA-F]+|'([^']|'')*'"
    r"|[xX]'[0-9a-fA-F]*'|(?i:null|true|false)"
)


def rebuild_adding(conn: apsw.Connection, database: str, name: str, declared: Table) -> None:
    """Rebuild the table ``name`` of ``database`` so that it has every column of ``declared``
    (see the module docstring). Raises ``apsw.Error`` when SQLite refuses a step, and
    ``apsw.ConstraintError`` itself when foreign keys are enforced; the caller rolls back."""
    if rows_of(conn, "PRAGMA foreign_keys")[0][0]:
        raise apsw.ConstraintError("foreign keys are enforced: the table cannot be rebuilt")
    db = quote_ident(database)
    stored = rows_of(
        conn,
        "SELECT x.name, x.hidden, l.name FROM pragma_table_list(?) AS l, "
        "pragma_table_xinfo(l.name, l.schema) AS x WHERE l.schema = ?",
        (name, database),
    )
    table = quote_ident(str(stored[0][2]))  # the name as the file spells it
    have = [str(column) for column, _, _ in stored]
    known = {fold_ascii(column) for column in have}
    # Each stored column keeps its name as the file spells it (the declaration may spell it in
    # other letter case, which SQLite takes as the same name): rows read back keyed as before.
    columns = [_as_stored(declared.column(column), column) for column in have]
    columns += [c for c in declared.columns if fold_ascii(c.name) not in known]
    if any(c is None for c in columns):
        raise apsw.SQLError(f"{name}: the file has a column that is not declared")
    # The rowid is read from the old table, and written to the new one, under a name no column
    # of that table has taken: a column added by this rebuild may take one (a declared column
    # named ``rowid`` would otherwise be given the old rowids, and the rows new ones). With all
    # three names taken the rows get new rowids: only a table with a PRIMARY KEY may have such
    # columns (``schema``), and its changesets name its rows by that key.
    now = known | {fold_ascii(c.name) for c in declared.columns}
    source = next((n for n in _ROWID_NAMES if n not in known), None)
    target = next((n for n in _ROWID_NAMES if n not in now), None)
    plain = [quote_ident(str(c)) for c, hidden, _ in stored if not hidden]
    rowid = (source, target) if source is not None and target is not None else None
    read = ", ".join([rowid[0], *plain] if rowid else plain)
    written = ", ".join([rowid[1], *plain] if rowid else plain)
    held = ", ".join(f"c{i}" for i in range((rowid is not None) + len(plain)))
    temp = f"{db}.{quote_ident(_TEMP)}"
    spelled = str(stored[0][2])
    counter = _counter(conn, database, spelled)
    conn.execute(f"CREATE TABLE {temp} ({held})")
    conn.execute(f"INSERT INTO {temp} ({held}) SELECT {read} FROM {db}.{table}")
    conn.execute(f"DROP TABLE {db}.{table}")
    conn.execute(
        create_table_sql(database, spelled, Table(tuple(c for c in columns if c), declared.indexes))
    )
    for column, default in rows_of(
        conn, "SELECT name, dflt_value FROM pragma_table_xinfo(?, ?)", (spelled, database)
    ):
        new = fold_ascii(str(column)) not in known
        if new and default is not None and not _is_constant(str(default)):
            # Evaluated for each row copied: a replay that rebuilt the table again would give
            # the rows other values than the log's changesets were taken on (R70).
            raise apsw.ConstraintError(f"the default of {column} is not a constant")
    conn.execute(f"INSERT INTO {db}.{table} ({written}) SELECT {held} FROM {temp}")
    conn.execute(f"DROP TABLE {temp}")
    if counter is not None:
        # (Dropping the table dropped its counter; the copy made one, unless there were no
        # rows.)
        conn.execute(f"DELETE FROM {db}.sqlite_sequence WHERE name = ?", (spelled,))
        conn.execute(
            f"INSERT INTO {db}.sqlite_sequence (name, seq) VALUES (?, ?)", (spelled, counter)
        )


def _is_constant(default: str) -> bool:
    """Whether ``ALTER TABLE … ADD COLUMN`` takes ``default`` (a column's default as SQLite
    reports it) as a constant, as it would for the column without the UNIQUE or STORED that
    made the rebuild needed: a literal (:data:`_CONSTANT`), else what SQLite itself says of
    the default as an expression (:func:`default_expression`: a word or quoted name standing
    alone is its text, ``default "x"``; a sign spaced from its number, ``- 1``, is constant;
    ``CURRENT_TIMESTAMP`` or a function call is not), asked of a scratch table with a row, as
    ``ADD COLUMN`` refuses a non-constant default only for a table with rows."""
    if _CONSTANT.fullmatch(default):
        return True
    scratch = apsw.Connection(":memory:")
    try:
        # (The default is one expression, from a CREATE TABLE checked as one statement; no
        # file can be attached to the scratch connection all the same.)
        scratch.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)
        scratch.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        scratch.execute(f"ALTER TABLE t ADD COLUMN c DEFAULT ({default_expression(default)})")
    except apsw.Error:
        return False
    finally:
        scratch.close()
    return True


def _as_stored(column: Column | None, name: str) -> Column | None:
    """The declared ``column`` under the name the file gives it."""
    return None if column is None else replace(column, name=name)


def _counter(conn: apsw.Connection, database: str, table: str) -> int | None:
    """The AUTOINCREMENT counter of ``table`` (None without one)."""
    exists = rows_of(
        conn,
        f"SELECT 1 FROM {quote_ident(database)}.sqlite_schema WHERE name = 'sqlite_sequence'",
    )
    if not exists:
        return None
    found = rows_of(
        conn,
        f"SELECT seq FROM {quote_ident(database)}.sqlite_sequence WHERE name = ?",
        (table,),
    )
    return int(str(found[0][0])) if found else None

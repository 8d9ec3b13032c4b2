"""The changeset of one op (R70): what a statement did to the database cell's tables.

A session records the op's effect on every table, tables without an explicit primary key by their
rowid (``SQLITE_SESSION_OBJCONFIG_ROWID``). SQLite's session module (3.54) files the changes of
such a table in a hash table that it rehashes by another hash than the one it looks rows up by:
once a table has 128 changed rows the hash grows, and from then on a row it had seen is not found
again. An UPDATE then leaves a stray INSERT of a row that was there all along (one per growth,
even when the UPDATE changed nothing), and a row changed twice in one op leaves two records. A
replay of such a changeset fails ("a row with that key is there already") and its inversion
deletes rows that were never inserted.

So an op that changed at least :data:`SESSION_SAFE_CHANGES` rows and wrote a table captured by
rowid is taken again, exactly: rolled back to a savepoint taken before it, the rows of those
tables copied aside, the statement run again, and those tables' records made by SQLite's diff of
the copy against the tables (which compares rows, not the session's hash); the other tables'
records come from the session. The diff compares each column with ``IS NOT`` under its
collation, so it misses a value changed to one SQLite finds equal (``'a'`` to ``'A'`` under
NOCASE, ``1`` to ``1.0``): such rows get their UPDATEs from a comparison of types and bytes
(:func:`_equal_but_changed`). The statement runs twice then (its first run is rolled back and
never seen), so it costs a copy of the tables it wrote; smaller ops, and ops on tables with a
primary key, run once as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import apsw

from sqlite_cells.files import same_value
from sqlite_cells.runtime import interrupts_held
from sqlite_cells.schema import quote_ident as quote_name

__all__ = [
    "ROWID_TABLE_MAX_COLUMNS",
    "SESSION_SAFE_CHANGES",
    "SQLITE_MAX_COLUMNS",
    "TooWideToCompare",
    "capture",
    "has_rowid_tables",
]

# A row change makes at most three session entries (an UPDATE that moves a rowid and replaces a
# conflicting row); below 128 entries a table's hash never grows past its first size.
SESSION_SAFE_CHANGES = 42
# The widest table whose rows SQLite's diff can compare (``sqlite3session_diff`` selects two
# values a column and the rowid, within 2,000 result columns).
ROWID_TABLE_MAX_COLUMNS = 996
SQLITE_MAX_COLUMNS = 2000  # SQLite's limit on a table's columns, as apsw builds it
_SAVEPOINT = "_cf_op"
# The rowid of a table without a primary key, as the statements here name it: ``_rowid_``, the
# one of SQLite's three names such a table's columns may not take (``schema`` refuses it), where
# a column named ``rowid`` or ``oid`` would be read instead. (SQLite's session names it so too.)
_ROWID = "_rowid_"
_COPY = "_cf_rows_before_{}"


class TooWideToCompare(Exception):
    """The changes of an op on a table without a primary key cannot be taken: it changed
    :data:`SESSION_SAFE_CHANGES` rows or more of one wider than :data:`ROWID_TABLE_MAX_COLUMNS`
    (``bulk``), or the table has so many columns that its rowid as one more is past SQLite's
    limit (any change at all)."""

    def __init__(self, table: str, columns: int, *, bulk: bool) -> None:
        super().__init__(table, columns, bulk)
        self.table = table
        self.columns = columns
        self.bulk = bulk


def capture(
    conn: apsw.Connection,
    schema: str,
    run: Callable[[], None],
    accept: Callable[[str], bool],
    *,
    by_rowid: bool,
) -> bytes:
    """Run ``run`` (the op's statement, on ``schema`` of ``conn``) and return the changeset of
    its effect on the tables ``accept`` takes. ``by_rowid``: the database has a table without
    an explicit primary key (see :func:`has_rowid_tables`); without one the op runs once, with
    no savepoint. Raises what ``run`` raises."""
    if not by_rowid:
        return _session_run(conn, schema, run, accept)
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        before = conn.total_changes()
        changeset = _session_run(conn, schema, run, accept)
        if conn.total_changes() - before >= SESSION_SAFE_CHANGES:
            widths = _rowid_tables(conn, schema, changeset)
            for table, width in widths.items():
                if width > ROWID_TABLE_MAX_COLUMNS:
                    raise TooWideToCompare(table, width, bulk=True)
            tables = list(widths)
            if tables:
                changeset = _exact(conn, schema, run, accept, tables)
    except BaseException:
        if not conn.getautocommit():  # some errors end the whole transaction (R34 rolls back)
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
        raise
    conn.execute(f"RELEASE {_SAVEPOINT}")
    return changeset


def has_rowid_tables(conn: apsw.Connection, schema: str, tables: Iterable[str]) -> bool:
    """Whether one of ``tables`` (as ``schema`` holds them) has no explicit primary key: its
    changes are captured by rowid. (A WITHOUT ROWID table always has one.)"""
    return any(
        not any(row[5] for row in conn.execute(f"PRAGMA {schema}.table_info({quote_name(t)})"))
        for t in tables
    )


def _session(conn: apsw.Connection, schema: str, accept: Callable[[str], bool]) -> apsw.Session:
    session = apsw.Session(conn, schema)
    session.config(apsw.SQLITE_SESSION_OBJCONFIG_ROWID, 1)
    session.table_filter(accept)
    return session


def _session_run(
    conn: apsw.Connection, schema: str, run: Callable[[], None], accept: Callable[[str], bool]
) -> bytes:
    session = _session(conn, schema, accept)
    try:
        session.attach()
        run()
        try:
            return session.changeset()
        except apsw.SQLError:
            # The statement ran (its own errors are raised by ``run``): the session could not
            # give its changes, which it records for a table without a primary key with the
            # rowid as one column more than the table has.
            widest = _widest_keyless(conn, schema, accept)
            if widest is not None and widest[1] >= SQLITE_MAX_COLUMNS:
                raise TooWideToCompare(*widest, bulk=False) from None
            raise
    finally:
        # Closing the session calls back into Python (the connection's authorizer): a Ctrl-C
        # landing there could not be raised (SQLite's cleanup ignores it, printed as ignored),
        # so it is held back and delivered once the session is closed.
        with interrupts_held():
            session.close()


def _widest_keyless(
    conn: apsw.Connection, schema: str, accept: Callable[[str], bool]
) -> tuple[str, int] | None:
    """The widest table without a primary key that ``accept`` takes, and its width."""
    found: tuple[str, int] | None = None
    names = conn.execute(f"SELECT name FROM {schema}.sqlite_schema WHERE type = 'table'").fetchall()
    for (name,) in names:
        if not accept(str(name)):
            continue
        info = conn.execute(f"PRAGMA {schema}.table_xinfo({quote_name(str(name))})").fetchall()
        if not any(row[5] for row in info) and (found is None or len(info) > found[1]):
            found = (str(name), len(info))
    return found


def _columns(conn: apsw.Connection, schema: str, table: str) -> list[str]:
    return [
        str(row[1])
        for row in conn.execute(f"PRAGMA {schema}.table_info({quote_name(table)})").fetchall()
    ]


def _has_generated(conn: apsw.Connection, schema: str, table: str) -> bool:
    """Whether ``table`` has a generated column (``table_xinfo``'s hidden 2 or 3)."""
    rows = conn.execute(f"PRAGMA {schema}.table_xinfo({quote_name(table)})").fetchall()
    return any(row[6] in (2, 3) for row in rows)


def _rowid_tables(conn: apsw.Connection, schema: str, changeset: bytes) -> dict[str, int]:
    """The tables ``changeset`` records by rowid (one column more than the table has), with
    their widths."""
    widths: dict[str, int] = {}
    for change in apsw.Changeset.iter(changeset):
        widths.setdefault(change.name, change.column_count)
    found = {}
    for name, width in widths.items():
        columns = len(_columns(conn, schema, name))
        if width == columns + 1:
            found[name] = columns
    return found


def _exact(
    conn: apsw.Connection,
    schema: str,
    run: Callable[[], None],
    accept: Callable[[str], bool],
    tables: list[str],
) -> bytes:
    conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
    copies: list[tuple[str, str, list[str]]] = []  # (table, its copy, its columns)
    try:
        for i, table in enumerate(tables):
            columns = _columns(conn, schema, table)
            names = ", ".join(quote_name(c) for c in columns)
            copy = _COPY.format(i)
            conn.execute(f"CREATE TEMP TABLE {copy} ({names})")
            conn.execute(
                f"INSERT INTO temp.{copy} ({_ROWID}, {names}) "
                f"SELECT {_ROWID}, {names} FROM {schema}.{quote_name(table)}"
            )
            copies.append((table, copy, columns))
        others = _session_run(conn, schema, run, lambda name: accept(name) and name not in tables)
        builder = apsw.ChangesetBuilder()  # type: ignore[no-untyped-call]  # apsw's stub has no annotation for it
        builder.add(others)
        for table, copy, columns in copies:
            # SQLite's diff compares a table with the table of the same name in another schema;
            # the copy takes that name only now, after the statement ran on the real one.
            conn.execute(f"ALTER TABLE temp.{copy} RENAME TO {quote_name(table)}")
            if _has_generated(conn, schema, table):
                # SQLite's diff fails on generated columns ("database schema has changed"):
                # the rows are compared here instead, every change made by hand.
                builder.add(_compared(conn, schema, table, columns, every=True))
            else:
                diff = _session(conn, schema, table.__eq__)
                try:
                    diff.diff("temp", table)
                    builder.add(diff.changeset())
                finally:
                    diff.close()
                builder.add(_compared(conn, schema, table, columns, every=False))
            conn.execute(f"DROP TABLE temp.{quote_name(table)}")
        return builder.output()
    finally:
        for table, copy, _ in copies:
            conn.execute(f"DROP TABLE IF EXISTS temp.{copy}")
            if _is_temp(conn, table):
                conn.execute(f"DROP TABLE temp.{quote_name(table)}")


def _compared(
    conn: apsw.Connection, schema: str, table: str, columns: list[str], *, every: bool
) -> bytes:
    """The changes of ``table`` made by comparing its rows with ``temp.<table>``, the copy of
    them before the op (``columns`` are the table's, generated ones aside), as the session
    records them: by rowid (first, as the key), an UPDATE with the old and new values of the
    columns that changed. With ``every``, all of them: rows deleted, inserted and changed.
    Without, only the UPDATEs SQLite's diff leaves out: it compares each column with ``IS NOT``
    under the column's collation, so a value changed to one SQLite finds equal (``'a'`` to
    ``'A'`` under NOCASE, ``'a'`` to ``'a '`` under RTRIM, ``1`` to ``1.0`` in a column without
    affinity) is no change to it; rows whose every column is equal so but one differs in type
    or bytes."""
    name = quote_name(table)
    old = [f"c.{quote_name(c)}" for c in columns]
    new = [f"m.{quote_name(c)}" for c in columns]
    # Row values, not chains of AND and OR: a chain's expression tree is as deep as the table is
    # wide, and SQLite refuses one deeper than 1,000 (a table of 500 columns could not be
    # written). The table's column first: its collation decides, as in the diff.
    equal = f"({', '.join(new)}) IS ({', '.join(old)})"
    same_types = (
        f"({', '.join(f'typeof({n})' for n in new)}) IS ({', '.join(f'typeof({o})' for o in old)})"
    )
    same_bytes = f"({', '.join(f'{n} COLLATE BINARY' for n in new)}) IS ({', '.join(old)})"
    changed = f"NOT ({same_types} AND {same_bytes})"
    rows = conn.execute(
        f"SELECT c.{_ROWID}, {', '.join(old)}, {', '.join(new)} FROM temp.{name} AS c "
        f"JOIN {schema}.{name} AS m ON m.{_ROWID} = c.{_ROWID} "
        f"WHERE {changed if every else f'{equal} AND {changed}'}"
    ).fetchall()
    gone: list[tuple[object, ...]] = []
    new_rows: list[tuple[object, ...]] = []
    if every:
        gone = conn.execute(
            f"SELECT c.{_ROWID}, {', '.join(old)} FROM temp.{name} AS c "
            f"WHERE NOT EXISTS (SELECT 1 FROM {schema}.{name} AS m WHERE m.{_ROWID} = c.{_ROWID})"
        ).fetchall()
        new_rows = conn.execute(
            f"SELECT m.{_ROWID}, {', '.join(new)} FROM {schema}.{name} AS m "
            f"WHERE NOT EXISTS (SELECT 1 FROM temp.{name} AS c WHERE c.{_ROWID} = m.{_ROWID})"
        ).fetchall()
    if not (rows or gone or new_rows):  # the usual case without ``every``
        return b""
    builder = apsw.ChangesetBuilder()  # type: ignore[no-untyped-call]  # (as above)
    try:
        builder.schema(conn, schema)
        width = len(columns)
        for row in gone:
            builder.add_delete(table, False, tuple(row))
        for row in new_rows:
            builder.add_insert(table, False, tuple(row))
        for row in rows:
            before, after = row[1 : 1 + width], row[1 + width :]
            differs = [not same_value(b, a) for b, a in zip(before, after, strict=True)]
            builder.add_update(
                table,
                False,
                (
                    row[0],
                    *(b if d else apsw.no_change for b, d in zip(before, differs, strict=True)),
                ),
                (
                    apsw.no_change,
                    *(a if d else apsw.no_change for a, d in zip(after, differs, strict=True)),
                ),
            )
        return builder.output()
    finally:
        builder.close()


def _is_temp(conn: apsw.Connection, table: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM temp.sqlite_schema WHERE type = 'table' AND name = ?", (table,)
        ).fetchall()
    )

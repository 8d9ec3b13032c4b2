"""A database file's watermark: the seq of the last commit that wrote it (R70).

A commit writes one kind of row to the file for it: its journal row(s) in ``_cf_changes``
(``seq``, changeset). The watermark is the seq of the newest journal row (by rowid: rows are
inserted in seq order, and the table has no index on ``seq``, which would cost every write), or
``_cf_watermark.seq`` when that is larger or the journal is empty: files written when every
commit also updated ``_cf_watermark``, fresh files, files a repair set. Whatever sets the
watermark outside a commit goes through :func:`set_watermark`, which keeps the two in step.
"""

from __future__ import annotations

import apsw

from sqlite_cells.schema import quote_ident

__all__ = ["WATERMARK_SQL", "read_watermark", "set_watermark", "watermark_sql"]


def watermark_sql(database: str | None = None) -> str:
    """The one statement reading the watermark of the file (attached as ``database``, or the
    connection's own schema search when ``None``): one row, one integer."""
    db = f"{quote_ident(database)}." if database else ""
    # max() of two values is NULL when either is NULL: an empty journal counts as 0, and so does
    # a watermark row another program deleted (the journal still says what the file holds). A
    # seq that is not an integer (another program's write) counts as 0 too: SQLite orders any
    # text above every number, so max() would pick it and hide the journal.
    return (
        f"SELECT max(coalesce((SELECT iif(typeof(seq) = 'integer', seq, 0) "
        f"FROM {db}_cf_watermark WHERE id = 0), 0), "
        f"coalesce((SELECT iif(typeof(seq) = 'integer', seq, 0) "
        f"FROM {db}_cf_changes ORDER BY rowid DESC LIMIT 1), 0))"
    )


WATERMARK_SQL = watermark_sql()


def _bare_sql(database: str | None) -> str:
    """A file of the format before the journal (R73): the watermark table alone says it."""
    db = f"{quote_ident(database)}." if database else ""
    return f"SELECT seq FROM {db}_cf_watermark WHERE id = 0"


_BARE_MAIN = _bare_sql(None)
_ATTACHED: dict[str, tuple[str, str]] = {}  # database -> its two statements, made once


def read_watermark(cursor: apsw.Connection | apsw.Cursor, database: str | None = None) -> int:
    """The watermark of the connection's main file (or of the file attached as ``database``);
    0 for a file the runtime never wrote."""
    if database is None:
        full, bare = WATERMARK_SQL, _BARE_MAIN
    else:
        found = _ATTACHED.get(database)
        if found is None:
            found = _ATTACHED[database] = (watermark_sql(database), _bare_sql(database))
        full, bare = found
    # fetchall: the statement runs to its end, so the cursor holds nothing active (a later
    # DROP of a shadow table would find its table locked).
    try:
        rows = cursor.execute(full).fetchall()
    except apsw.SQLError:
        try:
            rows = cursor.execute(bare).fetchall()
        except apsw.SQLError:
            return 0
    seq = rows[0][0] if rows else 0
    return seq if isinstance(seq, int) else 0


def set_watermark(conn: apsw.Connection, seq: int) -> None:
    """Set the main file's watermark to ``seq`` outside a commit (a repair): the watermark row
    says it, and journal rows past it, which would otherwise say more, go. Within the caller's
    transaction; the journal table exists (the runtime tables were ensured)."""
    conn.execute("DELETE FROM _cf_changes WHERE seq > ?", (seq,))
    conn.execute("INSERT OR REPLACE INTO _cf_watermark (id, seq) VALUES (0, ?)", (seq,))

"""Which primary key columns of a table may hold NULL (R51, R70, R14).

SQLite lets the PRIMARY KEY of a rowid table hold NULL unless it is the INTEGER PRIMARY KEY (the
rowid's alias) or declared NOT NULL; the session extension records no change to a row whose key
holds NULL. Writes refuse to leave such a row (``sqlite_cells.write._keys``), and so does a
migration (``sqlite_cells.schema._migrate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import apsw

from sqlite_cells.schema._schema import quote_ident

__all__ = ["null_key_condition", "nullable_key_columns"]


def nullable_key_columns(
    conn: apsw.Connection, database: str, table: str
) -> tuple[tuple[str, ...], list[str]]:
    """The key columns of ``table`` (in ``database``, quoted) that may hold NULL, in the key's
    order — none for a table without a key, one keyed by the rowid's alias, or a WITHOUT ROWID
    table (its key columns are reported NOT NULL) — and the names of all its columns."""
    quoted = quote_ident(table)
    indexes = conn.execute(f"PRAGMA {database}.index_list({quoted})").fetchall()
    if not any(str(row[3]) == "pk" for row in indexes):
        return (), []  # no key, or the rowid's alias
    info = conn.execute(f"PRAGMA {database}.table_info({quoted})").fetchall()
    stored = [str(row[1]) for row in info]
    # (position in the key, name) of the key's columns without NOT NULL, in the key's order
    keyed = sorted((int(str(row[5])), str(row[1])) for row in info if row[5] and not row[3])
    return tuple(name for _, name in keyed), stored


def null_key_condition(columns: Sequence[str]) -> str:
    """The ``WHERE`` condition of the rows whose key holds NULL in one of ``columns``."""
    return " OR ".join(f"{quote_ident(column)} IS NULL" for column in columns)

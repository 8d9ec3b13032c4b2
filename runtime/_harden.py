"""What every connection the runtime opens on a store file is set to before it runs anything:
the file may have been written by another program, and its schema must not run code of its own
when the runtime writes or reads it (R71, R73, Errors)."""

from __future__ import annotations

import apsw

__all__ = ["harden"]


def harden(conn: apsw.Connection) -> apsw.Connection:
    """Set ``conn`` so that a schema another program put in its files runs nothing: no trigger
    fires (the runtime creates none, and a declaration holds none: one another program added to
    a space or database file would otherwise fire on the runtime's own writes — its log, its
    cells, a replayed changeset — and change what was written without a word), a view or a
    column's default calls only SQLite's innocuous functions (``trusted_schema`` off), and
    SQLite's defensive mode refuses what would corrupt a file on purpose (``writable_schema``
    edits, writes to a virtual table's shadow tables). Returns ``conn``."""
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    conn.config(apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0)
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    return conn

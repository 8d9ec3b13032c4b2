"""R*Tree tables of an injected file, connected by the runtime before a user statement reads them
(R23, R60).

When SQLite first meets an R*Tree (or Geopoly, built on it) virtual table on a connection, the
module connects it and prepares every statement it will ever run on its shadow tables
(``<name>_node``, ``<name>_rowid``, ``<name>_parent``): the ``SELECT``\\ s it reads them with, and
the ``INSERT OR REPLACE``, ``DELETE`` and ``UPDATE`` it would write them with. Those prepares
happen inside the prepare of the statement that names the table, and the read authorizer, which
sees only actions, denies the writes among them: ``SELECT * FROM r`` was "not authorized",
although nothing writes (the connection is read-only and the statement is a read).

So a read of an injected file that the authorizer refused connects the file's R*Tree tables
outside the user state (the runtime's own statement, :func:`connect_rtrees`) and is run once
more. A connected table stays connected, its statements prepared, until the file's schema
changes or the connection closes; the user statement then prepares without the module's writes
and is authorized as any read. The authorizer itself is unchanged: a user statement that writes
a shadow table (or any table) of the file is still denied, and the connection is read-only.
When the module re-prepares one of its statements later (after the gate expired them) it is one
it runs, which is a read here, and is authorized as one. Only tables of the R*Tree modules
(``rtree``, ``rtree_i32``, ``geopoly``) with the three shadow tables of one are connected: no
other module gets the runtime's authority.
"""

from __future__ import annotations

import contextlib
from typing import Final

import apsw

from sqlite_cells.schema import quote_ident
from sqlite_cells.sql import WORD, scan_sql

__all__ = ["connect_rtrees"]

_MODULES: Final = frozenset({"RTREE", "RTREE_I32", "GEOPOLY"})


def _rtree_module(sql: object) -> bool:
    """Whether ``CREATE VIRTUAL TABLE … USING <module>`` names one of the R*Tree modules: a
    file may give any virtual table the three shadow tables' names, and only these modules are
    connected outside the user state."""
    if not isinstance(sql, str):
        return False
    tokens = scan_sql(sql).tokens
    for i, (kind, key, _start, _end) in enumerate(tokens[:-1]):
        if kind == WORD and key == "USING":
            following = tokens[i + 1]
            return following[0] == WORD and following[1] in _MODULES
    return False


# The virtual tables of ``main`` that have the shadow tables of an R*Tree (rtree, rtree_i32 and
# geopoly all make these three, named after the table as SQLite stores its name). Reading
# sqlite_schema also checks the connection's copy of the schema against the file's cookie, so
# the tables are connected on the schema the user statement is prepared on.
_RTREES_SQL: Final = """
SELECT v.name, v.sql FROM main.sqlite_schema AS v
WHERE v.type = 'table' AND v.sql LIKE 'CREATE VIRTUAL TABLE%'
  AND (SELECT count(*) FROM main.sqlite_schema AS s
       WHERE s.type = 'table' AND s.name IN (v.name || '_node', v.name || '_rowid',
                                             v.name || '_parent')) = 3
"""


def connect_rtrees(conn: apsw.Connection) -> bool:
    """Connect every R*Tree table of ``conn``'s ``main`` database (its module prepares its
    statements now); call it outside the gate's user state. Returns whether there was one: a
    refused read is worth running again only then. A table whose module fails to connect (a
    damaged file) is left alone: the user statement reports it when it is run again."""
    names = [str(name) for name, sql in conn.execute(_RTREES_SQL).fetchall() if _rtree_module(sql)]
    for name in names:
        with contextlib.suppress(apsw.Error):
            conn.execute(f"SELECT 1 FROM main.{quote_ident(name)} WHERE 0", can_cache=False)
    return bool(names)

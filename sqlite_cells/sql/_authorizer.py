"""The SQLite authorizer user statements run under: defense in depth behind the guard (R23).

:func:`make_authorizer` builds the callback for ``apsw.Connection.authorizer``.  SQLite consults
it while it *prepares* a statement (and again whenever it re-prepares one, e.g. after a schema
change); an action it denies makes the prepare fail — ``apsw.AuthError`` ("not authorized"), or
``apsw.SQLError`` ("not authorized to use function: …") for a function — so nothing of a denied
statement runs.  Setting ``Connection.authorizer`` expires the statements
apsw has cached, so a statement prepared earlier without it is prepared again under it.

What it allows (everything else is ``SQLITE_DENY``):

* ``SQLITE_SELECT`` and ``SQLITE_RECURSIVE`` (recursive CTEs);
* ``SQLITE_FUNCTION`` except ``load_extension``, ``readfile``, ``writefile``, ``edit``,
  ``fts3_tokenizer``, any ``pragma_*`` function, any ``_cf_*`` function (*decision*: the
  runtime's own SQL functions are not for user statements; the write connection allows the
  ``_cf_json_*`` ones to a statement the runtime itself rewrote to call them,
  ``write._conn``) and any ``sqlite_*`` function but
  ``sqlite_version``, ``sqlite_source_id``, ``sqlite_compileoption_used`` and
  ``sqlite_compileoption_get`` (``sqlite_log`` writes to the application's log);
* ``SQLITE_READ`` of a column of an allowed table in ``database``;
* in :attr:`Mode.WRITE` also ``SQLITE_INSERT``, ``SQLITE_UPDATE`` and ``SQLITE_DELETE`` on an
  allowed table in ``database``;
* in :attr:`Mode.READ` of an injected file (``tables`` None) also ``PRAGMA data_version`` of
  ``database``, which FTS5 asks for while it runs a ``MATCH`` (a read-only counter).

An *allowed table* is one of ``tables`` (compared case-insensitively, ASCII only, as SQLite
does), or, when ``tables`` is None (injected read-only files with their own schema), any table
whose name does not start with ``_cf_``, ``sqlite_`` or ``pragma_`` and is not one of SQLite's
eponymous virtual tables (``dbstat``, ``fts3tokenize``, ``carray``; R13).

Shapes of callback that need care, all observed with SQLite 3.54:

* Columns read through a CTE, a subquery or a view come with no ``SQLITE_READ`` of their own:
  only the underlying tables' columns are checked (with the view in the fifth argument).
* A table of which no column is read (``count(*)``, the target of ``UPDATE … FROM``) gets a
  ``SQLITE_READ`` with an empty column name and *no database name*.  Such a read reveals at most
  a row count; it is allowed when the table name is allowed.  On the write connection an allowed
  name could then resolve to a ``main`` table of the same name; the runtime's own tables all
  start with ``_cf_``, which is never allowed.  A read of a database cell's file then looks at
  the statement's program for a stored table the declaration does not have (R41,
  ``read._reader``); a write cannot meet one (its additive diff refuses such a file).
* ``json_each``, ``json_tree``, ``jsonb_each`` and ``jsonb_tree`` are eponymous virtual tables
  read as tables of ``main``; they hold no data, so their reads are allowed in any database.
  ``dbstat`` and ``pragma_*`` look at other schemas and are never allowed.
* Reads of ``sqlite_master`` during schema loading happen with the authorizer switched off by
  SQLite itself, so denying ``sqlite_*`` tables never breaks ordinary statements.
* A virtual table's module prepares its own statements when it connects, inside the prepare
  of the user statement that first names the table on a connection, and they are judged as the
  user statement's actions: an R*Tree's include writes to its shadow tables, so the reader
  connects an injected file's R*Tree tables outside the user state first (``read._vtabs``).

What it cannot do on its own (the guard covers these, R20–R24): it sees actions, not statements,
so it cannot tell one statement from two harmless ones, cannot refuse RETURNING (an INSERT with
RETURNING is an INSERT plus column reads), never sees ``REINDEX table`` (that reaches no
callback; a bare ``REINDEX`` is denied as ``SQLITE_REINDEX``), lets ``EXPLAIN`` of an allowed
statement through, and cannot tell ``main.messages`` from ``messages`` on a connection where
``main`` is the database cell's file.  Install it only while user statements are prepared: the
runtime's own statements (transactions, ATTACH, its ``_cf_`` tables) are denied too.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Final

import apsw

from sqlite_cells.sql._guard import Mode
from sqlite_cells.sql._names import (
    DATALESS_TABLES,
    fold_ascii,
    is_forbidden_function,
    is_reserved_table,
)

__all__ = [
    "REWRITTEN_PREPARE_FLAGS",
    "USER_PREPARE_FLAGS",
    "Authorizer",
    "Gate",
    "ReadSet",
    "make_authorizer",
]

Authorizer = Callable[[int, str | None, str | None, str | None, str | None], int]

_OK: Final = apsw.SQLITE_OK
_DENY: Final = apsw.SQLITE_DENY
_SELECT: Final = apsw.SQLITE_SELECT
_RECURSIVE: Final = apsw.SQLITE_RECURSIVE
_READ: Final = apsw.SQLITE_READ
_FUNCTION: Final = apsw.SQLITE_FUNCTION
_INSERT: Final = apsw.SQLITE_INSERT
_UPDATE: Final = apsw.SQLITE_UPDATE
_DELETE: Final = apsw.SQLITE_DELETE
_PRAGMA: Final = apsw.SQLITE_PRAGMA


def make_authorizer(mode: Mode, *, database: str, tables: Collection[str] | None) -> Authorizer:
    """Build the authorizer for user statements of ``mode`` on the database cell ``database``.

    ``database`` is the schema name under which the database cell's file is visible: "main" on
    read connections, "_cf_db" on the write connection.  ``tables`` are the declared table
    names the statement may touch, or None for any table not reserved to SQLite or the runtime.
    Raises ``ValueError`` when ``tables`` names a reserved table (``_cf_…``, ``sqlite_…``,
    ``pragma_…``, ``dbstat``) and ``TypeError`` for a ``mode`` that is not a :class:`Mode`.
    """
    if not isinstance(mode, Mode):
        raise TypeError(f"mode must be a Mode, not {type(mode).__name__}")
    schema = fold_ascii(database)
    allowed: frozenset[str] | None = None
    if tables is not None:
        if isinstance(tables, str):
            raise TypeError("tables must be a collection of table names, not a str")
        allowed = frozenset(fold_ascii(name) for name in tables)
        reserved = sorted(name for name in allowed if is_reserved_table(name))
        if reserved:
            raise ValueError(
                f"tables {reserved} are reserved to SQLite or the runtime: a user statement may "
                "never touch them; declare tables with other names"
            )
    write = mode is Mode.WRITE
    own_schema_reads = allowed is None and not write  # an injected file read as it is (R60)

    def table_allowed(table: str) -> bool:
        name = fold_ascii(table)
        if allowed is not None:
            return name in allowed
        return not is_reserved_table(name)

    def authorize(
        action: int,
        arg1: str | None,
        arg2: str | None,
        db_name: str | None,
        trigger_or_view: str | None,
    ) -> int:
        if action == _READ:
            if arg1 is None:
                return _DENY
            if fold_ascii(arg1) in DATALESS_TABLES:
                return _OK
            if db_name is None:
                # Only the empty-column read of count(*) and UPDATE … FROM comes without a
                # database; it reveals a row count at most. Its table may be a CTE (whose name
                # cannot be known here), so any name not reserved to SQLite or the runtime is
                # allowed: the space file holds only reserved tables.
                return _OK if arg2 == "" and not is_reserved_table(arg1) else _DENY
            if fold_ascii(db_name) != schema:
                return _DENY
            return _OK if table_allowed(arg1) else _DENY
        if action in (_SELECT, _RECURSIVE):
            return _OK
        if action == _FUNCTION:
            return _DENY if arg2 is None or is_forbidden_function(arg2) else _OK
        if write and action in (_INSERT, _UPDATE, _DELETE):
            if arg1 is None or db_name is None or fold_ascii(db_name) != schema:
                return _DENY
            return _OK if table_allowed(arg1) else _DENY
        if action == _PRAGMA and own_schema_reads and arg1 == "data_version" and arg2 is None:
            # An FTS5 table of an injected file asks for its file's data_version while a MATCH
            # runs: a read-only counter (a user's own PRAGMA never gets here: the guard).
            return _OK if db_name is not None and fold_ascii(db_name) == schema else _DENY
        return _DENY

    return authorize


# User statements are prepared with these flags and the runtime's own without: apsw's statement
# cache keys on the flags too, so a user statement can never be served a statement the runtime
# prepared (and the gate allowed) under the same text. PERSISTENT is only a planner hint.
USER_PREPARE_FLAGS: Final = apsw.SQLITE_PREPARE_PERSISTENT
# A user statement the runtime rewrote (a write's JSON call of many paths, which then calls the
# ``_cf_json_*`` functions, allowed for it alone): NORMALIZE is a no-op flag, here so that the
# cache never hands a rewritten statement's preparation to a user text that is the same.
REWRITTEN_PREPARE_FLAGS: Final = USER_PREPARE_FLAGS | apsw.SQLITE_PREPARE_NORMALIZE

ReadSet = set[tuple[str, str]]  # (table, column) pairs, ASCII-folded; column "" = no column named


class Gate:
    """The one authorizer a connection has for its lifetime (R23).

    Assigning ``Connection.authorizer`` expires every statement the connection has prepared, so
    a connection gets a gate once (:meth:`install`) and the gate switches what it allows by
    state: outside :meth:`user` it allows everything (the runtime's own statements); inside, each
    action is judged by the user-facing ``policy`` (from :func:`make_authorizer`). A user
    statement is authorized when SQLite prepares it, so it must be prepared (or first stepped)
    inside :meth:`user`, with ``prepare_flags=USER_PREPARE_FLAGS`` so that apsw's statement
    cache never hands it a statement the runtime prepared. With ``record``, the ``SQLITE_READ``
    actions the policy allowed are added to it as (table, column) pairs: the query's read set
    (R51); with ``functions``, the (ASCII-folded) names of the SQL functions it calls.

    SQLite authorizes a statement once, when it prepares it, and apsw's cache hands the same
    prepared statement to the next user statement of the same text.  So when :meth:`user` is
    given a policy other than the one before (another mode, another set of tables), the gate
    re-installs itself, which expires every prepared statement: each is prepared, and
    authorized, again under the new policy before it runs.  Callers keep one policy object per
    (mode, tables), so this happens only when the policy really changes.

    A gate belongs to one connection, and so to the one thread using it at a time. It refers to
    that connection weakly: the connection refers to its gate (its authorizer), and whoever keeps
    state per connection in a weak-keyed map (:mod:`sqlite_cells.write._conn`) keeps the gate as
    part of the value, which must not keep the key alive.
    """

    __slots__ = ("_conn", "_functions", "_last", "_policy", "_record")

    def __init__(self) -> None:
        self._conn: weakref.ref[apsw.Connection] | None = None
        self._last: Authorizer | None = None  # the policy of the previous user statement
        self._policy: Authorizer | None = None
        self._record: ReadSet | None = None
        self._functions: set[str] | None = None

    def install(self, conn: apsw.Connection) -> Gate:
        self._conn = weakref.ref(conn)
        conn.authorizer = self
        return self

    def __call__(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        db_name: str | None,
        trigger_or_view: str | None,
    ) -> int:
        policy = self._policy
        if policy is None:
            return _OK
        verdict = policy(action, arg1, arg2, db_name, trigger_or_view)
        record = self._record
        if record is not None and action == _READ and verdict == _OK and arg1 is not None:
            record.add((fold_ascii(arg1), fold_ascii(arg2 or "")))
        functions = self._functions
        if functions is not None and action == _FUNCTION and verdict == _OK and arg2 is not None:
            functions.add(fold_ascii(arg2))
        return verdict

    @property
    def is_user(self) -> bool:
        return self._policy is not None

    def enter(
        self, policy: Authorizer, record: ReadSet | None = None, functions: set[str] | None = None
    ) -> None:
        """Judge every action by ``policy`` until :meth:`leave` (not re-entrant). The plain pair
        is for hot paths (one user statement after another); :meth:`user` wraps it as a block."""
        if self._policy is not None:
            raise RuntimeError("this connection is already running a user statement")
        if policy is not self._last and self._last is not None and self._conn is not None:
            conn = self._conn()
            if conn is not None:
                conn.authorizer = self  # expires what the previous policy authorized
        self._last = policy
        self._policy = policy
        self._record = record
        self._functions = functions

    def leave(self) -> None:
        self._policy = None
        self._record = None
        self._functions = None

    @contextmanager
    def user(self, policy: Authorizer, *, record: ReadSet | None = None) -> Iterator[None]:
        """Judge every action by ``policy`` for the duration (not re-entrant)."""
        self.enter(policy, record)
        try:
            yield
        finally:
            self.leave()

"""Create and migrate a database file to its declared schema (R13, R14).

Two entry points:

* :func:`ensure_schema` runs inside the space's commit, on the file attached to the write
  connection, on the first write for each distinct declared schema (reads never run DDL):

  1. ``SAVEPOINT``; everything below is rolled back to it if anything raises, then re-raised.
  2. Create the runtime tables ``_cf_meta``, ``_cf_watermark`` (row ``(0, 0)``) and
     ``_cf_changes`` if missing.
  3. Read the stored version. Newer than the declared one → :class:`UnsupportedMigration`.
  4. Compare declared and stored schema; any non-additive difference → ``UnsupportedMigration``
     listing every one. Otherwise create missing tables, ``ADD COLUMN`` missing columns, create
     missing indexes. A UNIQUE or STORED generated column, which ``ADD COLUMN`` cannot add, is
     added by rebuilding its table, rows kept (:mod:`sqlite_cells.schema._rebuild`); an
     ``ALTER`` SQLite refuses otherwise (a default that is not a constant) is a difference, and
     so is a VIRTUAL generated column that a row already in its table cannot compute (SQLite
     adds it without computing it; :mod:`sqlite_cells.schema._generated`).
  5. Store the declared version; ``RELEASE``.

* :func:`migrate_file` runs a ``migrate`` callback (R14) *before* the space's commit writes the
  file (inside that commit's transaction, before it takes the file's lock: see
  ``write._fold``), on a connection opened on the database file alone (nothing attached, so no
  name the callback writes, in any quoting, can reach the space's tables), in one transaction
  of that file: ``migrate(conn, stored_version)`` under the migration authorizer, then steps
  4–5, then the check that the file holds exactly the declared tables and indexes plus the
  runtime's own
  (else :class:`MigrationError`), then the check that every declared link column holds NULL or
  a well-formed link (R31; else :class:`MigrationError` caused by a ``LinkEncodeError``), then
  the check that every row computes every VIRTUAL generated column (R44; else
  :class:`MigrationError`, see :mod:`sqlite_cells.schema._generated`). A
  crash leaves the old version and schema, or the new ones. It is never called for a file that
  does not exist, nor when the stored version is not older.
  If the space's commit then fails, the file stays migrated with no rows of that commit written:
  the migration is its own durable step, like a schema change made before the write.

  Limits (R44): the statements the callback runs share one budget of ``exec_timeout`` seconds,
  counted from the moment ``migrate`` is called. A statement still running at its end is
  interrupted by the progress handler (or, for one long call of a builtin such as ``trim`` or
  ``replace``, by the overrides the caller installs through ``long_calls``), and a statement
  started after it is not run: either raises :class:`ExecTimeout` inside the callback, and the
  migration fails (:class:`MigrationError`, the ``ExecTimeout`` as its cause) even if the
  callback catches it. Python code of the callback that runs no statement cannot be
  interrupted, but a callback that returns past the deadline fails the migration the same way
  (:class:`MigrationError` caused by an ``ExecTimeout``), nothing of it committed. Waiting for
  another connection's lock on the file is bounded by ``exec_timeout`` too (SQLite's busy
  timeout); the runtime's own statements after the callback (the additive diff, the checks) are
  not.

Step 4's comparison (by what SQLite reports, and what it cannot compare) is described in
:mod:`sqlite_cells.schema._schema_diff`.
"""

from __future__ import annotations

import contextlib
import math
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

import apsw

from sqlite_cells.codec import (
    ClosedError,
    DatabaseError,
    ExecTimeout,
    LinkEncodeError,
    MigrationError,
    SchemaError,
    SqliteCellsError,
    UnsupportedMigration,
    brief_repr,
    link_text_problem,
)
from sqlite_cells.runtime import (
    LENGTH_LIMIT,
    Cell,
    InvalidArgument,
    busy_ms,
    exception_text,
    harden,
    plain_text,
    stored_json_column,
    surrogate_at,
)
from sqlite_cells.schema._generated import uncomputable, virtual_columns_of
from sqlite_cells.schema._null_keys import null_key_condition, nullable_key_columns
from sqlite_cells.schema._rebuild import rebuild_adding
from sqlite_cells.schema._schema import Schema, quote_ident
from sqlite_cells.schema._schema_diff import (
    RUNTIME_TABLES,
    MigrationPlan,
    Step,
    diff_of,
    plan_migration,
    rows_of,
)
from sqlite_cells.sql import (
    OP,
    REWRITTEN_JSON_FUNCTIONS,
    USER_PREPARE_FLAGS,
    WORD,
    Gate,
    Word,
    fold_ascii,
    is_params_list,
    scan_sql,
    split_json_calls,
    sqlite_refusal,
    unquote,
)

__all__ = [
    "Budget",
    "DamagedVersion",
    "MigrationConnection",
    "MigrationPlan",
    "ensure_runtime_tables",
    "ensure_schema",
    "meta_text",
    "migrate_file",
    "plan_migration",
    "store_version",
    "stored_id",
    "stored_owner",
    "stored_version",
    "version_sql",
    "write_refusal",
]

_SAVEPOINT: Final = "_cf_ensure_schema"
_TRIAL: Final = "_cf_trial_additions"  # see _name_refused_additions and add_missing

_IN_TRANSACTION: Final = "migrate runs inside the runtime's transaction; raise to abort it"
_ATTACH: Final = "ATTACH/DETACH would change the files the connection sees"
_REFUSED: Final = {
    **dict.fromkeys(
        ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"), _IN_TRANSACTION
    ),
    **dict.fromkeys(("ATTACH", "DETACH"), _ATTACH),
    "VACUUM": "VACUUM cannot run inside a transaction",
    "PRAGMA": "PRAGMAs change how the file or connection behaves; migrations do not run them",
}
_DDL: Final = frozenset({"CREATE", "DROP", "ALTER"})

# Authorizer actions a migration may take (each further judged by the names it touches).
_NAMED: Final = {
    apsw.SQLITE_CREATE_TABLE: (0,),
    apsw.SQLITE_CREATE_INDEX: (0, 1),
    apsw.SQLITE_DROP_TABLE: (0,),
    apsw.SQLITE_DROP_INDEX: (0, 1),
    apsw.SQLITE_ALTER_TABLE: (1,),
}
# SQLITE_REINDEX is what a CREATE INDEX reports as it fills the new index; a REINDEX statement
# never reaches the authorizer, and is judged by its text (_reindex_refusal).
_ALWAYS: Final = frozenset({apsw.SQLITE_SELECT, apsw.SQLITE_RECURSIVE, apsw.SQLITE_REINDEX})
_WRITES: Final = frozenset({apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE})
_FORBIDDEN_FUNCTIONS: Final = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
)
# SQLite creates this table itself, inside the CREATE TABLE of the file's first AUTOINCREMENT
# table: an SQLITE_CREATE_TABLE of it, in "main", right after the one of the table declared.
_SEQUENCE: Final = "sqlite_sequence"
_TEMP_SCHEMA: Final = frozenset({"sqlite_temp_master", "sqlite_temp_schema"})
_PROGRESS_STEPS: Final = 1000  # VM steps between deadline checks, as on the write connection


# Dropping these is allowed whatever their names (none is the runtime's): another program's
# views, triggers and virtual tables, which no declaration can hold.
_DROPPED_FOREIGN: Final = frozenset(
    {apsw.SQLITE_DROP_VIEW, apsw.SQLITE_DROP_TRIGGER, apsw.SQLITE_DROP_VTABLE}
)


def _foreign_cf(name: str | None) -> bool:
    """Whether ``name`` is a ``_cf_…`` table or index that is not the runtime's own (another
    program's, which the diff refuses and only a migrate can drop)."""
    if name is None:
        return False
    folded = fold_ascii(name)
    return folded.startswith("_cf_") and folded not in RUNTIME_TABLES


def _reserved(name: str | None) -> bool:
    return name is not None and fold_ascii(name).startswith(("_cf_", "sqlite_"))


def _is_autoindex(index: str | None, table: str | None) -> bool:
    """Whether ``index`` is the name SQLite gives its own index of a PRIMARY KEY or UNIQUE
    constraint of ``table`` (``sqlite_autoindex_<table>_<n>``), for a table of the callback's."""
    if index is None or table is None or _reserved(table):
        return False
    prefix = f"sqlite_autoindex_{table}_"
    return index.startswith(prefix) and index[len(prefix) :].isdigit()


def _own_check(action: int, a: str | None, b: str | None, database: str | None) -> bool:
    """The check SQLite itself runs inside ``ALTER TABLE … ADD COLUMN`` of a column with a
    CHECK constraint or a NOT NULL generated column: a read of ``pragma_quick_check`` of the
    table (an ADD COLUMN holds no subquery, so no such read in it is the caller's). It only
    reads, and without it that ALTER could not run in a migration at all."""
    if database != "main":
        return False
    if action == apsw.SQLITE_READ:
        return a is not None and fold_ascii(a) == "pragma_quick_check"
    return action == apsw.SQLITE_PRAGMA and a is not None and fold_ascii(a) == "quick_check"


class _MigrationPolicy:
    """The authorizer of a ``migrate`` callback's statements (R14): creating triggers, views
    or virtual tables, temp objects (anything in database ``temp`` but the reads and rewrites
    of its schema table an ALTER TABLE makes), ATTACH/DETACH, PRAGMAs, transaction control and
    ANALYZE are denied; so is any use of the runtime's tables (``_cf_*``) and any write to
    SQLite's own (``sqlite_*``) except the bookkeeping SQLite itself does for CREATE/DROP/ALTER.

    Dropping what another program left in the file is allowed — a view, a trigger, a virtual
    table, a table or index named ``_cf_…`` that is not the runtime's own — as the refusal of
    such a file advises: none can be declared, so a migrate that drops it is the way to go on
    writing the database."""

    __slots__ = ("altering", "created", "ddl", "dropping")

    def __init__(self) -> None:
        self.ddl = False  # the statement being prepared is CREATE/DROP/ALTER
        self.altering = False  # it is ALTER TABLE
        self.created = False  # it created a table of the callback's (so it is CREATE TABLE)
        self.dropping: str | None = None  # the foreign _cf_ table it drops (folded)

    def start(self, first: str) -> None:
        """Before each statement: ``first`` is its first keyword."""
        self.ddl, self.created, self.dropping = first in _DDL, False, None
        self.altering = first == "ALTER"

    def __call__(
        self, action: int, a: str | None, b: str | None, database: str | None, src: str | None
    ) -> int:
        ok, deny = apsw.SQLITE_OK, apsw.SQLITE_DENY
        if database is not None and fold_ascii(database) == "temp":
            # No temp object, however it is named: CREATE TABLE temp.x is SQLITE_CREATE_TABLE
            # of database "temp", not SQLITE_CREATE_TEMP_TABLE. An ALTER TABLE reads (and
            # rewrites) temp's schema table itself, for temp triggers: that one stays allowed.
            schema_table = a is not None and fold_ascii(a) in _TEMP_SCHEMA
            if not (schema_table and action in (apsw.SQLITE_READ, apsw.SQLITE_UPDATE)):
                return deny
        if action in _ALWAYS:
            return ok
        if action == apsw.SQLITE_CREATE_TABLE:
            if not _reserved(a):
                self.created = True
                return ok
            # SQLite's own sqlite_sequence, made for the first AUTOINCREMENT table (R14 "DDL
            # included"); SQLite itself refuses a CREATE TABLE that names it.
            implicit = self.created and a == _SEQUENCE and b is None and database == "main"
            return ok if implicit and src is None else deny
        if action == apsw.SQLITE_CREATE_INDEX and self.created and _is_autoindex(a, b):
            # SQLite's own index for a PRIMARY KEY that is not the rowid, or a UNIQUE, made
            # inside the CREATE TABLE of the callback's table (R14 "DDL included").
            return ok if database == "main" and src is None else deny
        if action in _DROPPED_FOREIGN:
            return ok if database == "main" else deny
        if action in (apsw.SQLITE_DROP_TABLE, apsw.SQLITE_DROP_INDEX) and _foreign_cf(a):
            if action == apsw.SQLITE_DROP_TABLE:
                self.dropping = fold_ascii(a or "")  # SQLite deletes its rows as it drops it
            return ok if database == "main" else deny
        if action in _NAMED:
            names = (a, b)
            return deny if any(_reserved(names[i]) for i in _NAMED[action]) else ok
        if self.altering and _own_check(action, a, b, database):
            return ok
        if action == apsw.SQLITE_READ:
            name = None if a is None else fold_ascii(a)
            if name is None or name.startswith(("_cf_", "pragma_")) or name == "dbstat":
                return deny
            return ok
        if action in _WRITES:
            if action == apsw.SQLITE_DELETE and a is not None and fold_ascii(a) == self.dropping:
                return ok
            if a is None or fold_ascii(a).startswith("_cf_"):
                return deny
            return ok if self.ddl or not _reserved(a) else deny
        if action == apsw.SQLITE_FUNCTION:
            name = fold_ascii(b or "")
            if name in REWRITTEN_JSON_FUNCTIONS:  # a JSON call of many paths, rewritten (R44)
                return ok
            return deny if name in _FORBIDDEN_FUNCTIONS or name.startswith("_cf_") else ok
        return deny


class MigrationConnection:
    """The connection handed to ``migrate(conn, from_version)`` (R14): unguarded statements,
    DDL included, on a connection opened on the database file alone, inside the migration's
    transaction, under the migration authorizer (:class:`_MigrationPolicy`).

    Refused with :class:`MigrationError` before SQLite sees them: empty text (nothing but
    ``;``, whitespace and comments), a NUL character or a lone surrogate anywhere in the text,
    several statements at once, transaction control, ATTACH/DETACH, VACUUM, PRAGMA, a REINDEX
    that does not name one table or index of the callback's (:func:`_reindex_refusal`), an
    ``ALTER TABLE … RENAME TO`` a ``_cf_…`` name (:func:`_alter_refusal`), and
    every statement after one that ended the migration's transaction (``INSERT OR ROLLBACK``,
    an interrupt). What the authorizer denies, parameters SQLite cannot bind, and any other SQLite
    error, is a :class:`MigrationError` too (with the original error as its cause). A statement
    that runs past the migration's deadline, or starts after it, raises :class:`ExecTimeout`
    (R44; see the module docstring). ``sql`` that is not a ``str``, or ``params`` that are
    neither a sequence nor a mapping, is an :class:`InvalidArgument`. It is closed when
    ``migrate`` returns; using it later raises :class:`ClosedError`.
    """

    __slots__ = ("_budget", "_closed", "_conn", "_db_id", "_gate", "_policy", "timed_out")

    def __init__(
        self, conn: apsw.Connection, gate: Gate, db_id: str, budget: Budget | None = None
    ) -> None:
        self._conn, self._gate, self._db_id, self._closed = conn, gate, db_id, False
        self._policy = _MigrationPolicy()
        self._budget = budget if budget is not None else Budget(None)
        self.timed_out: ExecTimeout | None = None  # the first statement the deadline stopped

    def execute(
        self, sql: str, params: Sequence[object] | Mapping[str, object] = ()
    ) -> list[tuple[object, ...]]:
        """Run one statement on the database file and return all its rows."""
        if self._closed:
            raise ClosedError(
                f"database {self._db_id}: the migration connection was used after migrate() "
                f"returned; run every migration statement inside migrate()"
            )
        # Its text is what SQLite runs and what is judged: a str subclass's own __eq__,
        # __hash__ or __getitem__ would let the checks below read another statement.
        sql = plain_text(sql)
        first = self._check(sql)
        bindings = self._bindings(sql, params)
        budget = self._budget
        if budget.limit is not None and time.monotonic() >= budget.limit:
            raise self._timeout(sql, "it was started after the migration's deadline had passed")
        try:
            if self._conn.getautocommit():
                raise self._refuse(
                    sql,
                    "an earlier statement's failure rolled the migration's transaction back "
                    "(INSERT OR ROLLBACK, an interrupted write); nothing was written: raise, and "
                    "the next write runs migrate again",
                )
            self._policy.start(first)
            with self._gate.user(self._policy):
                cursor: apsw.Cursor | None = None
                limit, watch = budget.limit, budget.watch
                token = 0
                try:
                    # Set inside the try: a Ctrl-C on the way leaves no deadline or watch armed.
                    budget.deadline = limit
                    token = watch.arm(self._conn, limit) if watch and limit is not None else 0
                    # R44: a JSON call of many paths is computed by the long-call functions.
                    run = split_json_calls(sql) if budget.long_calls else sql
                    cursor = self._conn.execute(run, bindings, prepare_flags=USER_PREPARE_FLAGS)
                    rows = [tuple(row) for row in cursor]
                except BaseException:
                    if cursor is not None:  # stopped between two rows: reset it
                        with contextlib.suppress(apsw.Error):
                            cursor.close(True)
                    raise
                finally:
                    budget.deadline = None
                    fired = watch.disarm(token) if watch and limit is not None else False
                # Ended past the deadline (interrupted after its last loop point, or between
                # two checks): it fails as it would have failed a moment earlier, and the
                # migration commits nothing (R44).
                if fired or (limit is not None and time.monotonic() > limit):
                    raise self._timeout(sql, "it ran past the deadline")
                return rows
        except apsw.InterruptError as exc:
            if budget.limit is None:
                raise self._refuse(sql, f"SQLite said {sqlite_refusal(exc)}") from exc
            raise self._timeout(sql, "it was interrupted") from exc
        except apsw.ThreadingViolationError as exc:
            raise self._refuse(
                sql,
                f"the connection is running another statement, in another thread ({exc}); run "
                "migrate's statements one at a time",
            ) from exc
        except apsw.AuthError as exc:
            raise self._refuse(
                sql,
                f"SQLite said {sqlite_refusal(exc)}: migrate may not create triggers, views, "
                "virtual or temp objects, call PRAGMAs or their table functions, or change the "
                "runtime's or SQLite's own tables (R14); do the change with plain DDL and DML on "
                "the database's tables",
            ) from exc
        except apsw.Error as exc:
            raise self._refuse(sql, f"SQLite said {sqlite_refusal(exc)}") from exc
        except SqliteCellsError:
            raise
        except UnicodeDecodeError as exc:
            raise self._refuse(
                sql,
                f"its result holds text that is not valid UTF-8 ({exc.reason} at byte "
                f"{exc.start}); select such a column as CAST(column AS BLOB) to read its bytes",
            ) from exc
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            # apsw binding a value: an unsupported type, an integer over 64 bits, a named
            # parameter missing from the mapping.
            raise self._refuse(
                sql,
                f"its parameters cannot be bound ({type(exc).__name__}: {exc}); pass None, "
                "int, float, str or bytes, one for each parameter",
            ) from exc

    def close(self) -> None:
        self._closed = True

    def _refuse(self, sql: str, why: str) -> MigrationError:
        return MigrationError(self._db_id, f"migrate statement {sql!r} refused: {why}")

    def _timeout(self, sql: str, why: str) -> ExecTimeout:
        exc = ExecTimeout(
            self._db_id,
            sql,
            f"the migration ran past exec_timeout={self._budget.seconds}s (the budget of all "
            f"the statements migrate runs, R44): {why}",
        )
        if self.timed_out is None:
            self.timed_out = exc
        return exc

    def _bindings(self, sql: str, params: object) -> tuple[object, ...] | dict[str, object]:
        if isinstance(params, Mapping):
            named = dict(params)
            bindings: tuple[object, ...] | dict[str, object] = named
            values: Iterable[tuple[object, object]] = named.items()
        elif is_params_list(params):
            bindings = tuple(params)
            values = enumerate(bindings, 1)
        else:
            raise InvalidArgument(
                f"database {self._db_id}: migrate statement {sql!r}: params={brief_repr(params)} "
                f"is of type {type(params).__name__}; pass a list or tuple of values, or a dict of "
                "named values"
            )
        for key, value in values:
            position = surrogate_at(value) if isinstance(value, str) else None
            if position is not None:
                raise self._refuse(
                    sql,
                    f"parameter {brief_repr(key)} is text with a lone surrogate at position "
                    f"{position}, which UTF-8 cannot encode; decode the text properly first",
                )
            if isinstance(value, Cell):
                # apsw's own refusal named only the type and advised plain values, with no word
                # of how a migration stores a link: its text, which db.exec binds for a Cell.
                raise self._refuse(
                    sql,
                    f"parameter {brief_repr(key)} is a Cell ({brief_repr(value.id)}), which a "
                    "migrate statement does not bind: to store a link to it in a *_cf_link column, "
                    "bind its link text, cell.link_str(); to store its value, bind "
                    "cell.get() (None, int, float, str or bytes)",
                )
            if isinstance(value, float) and math.isnan(value):
                # SQLite binds a NaN as NULL: refused, as db.exec refuses it (R6).
                raise self._refuse(
                    sql,
                    f"parameter {brief_repr(key)} is NaN, which SQLite would store as NULL; pass "
                    "None for NULL, or a number",
                )
        return bindings

    def _check(self, sql: str) -> str:
        """The statement's first keyword, after the lexical refusals."""
        if not isinstance(sql, str):
            raise InvalidArgument(
                f"database {self._db_id}: migrate statement {sql!r} is of type "
                f"{type(sql).__name__}, not str; pass the SQL text as a str"
            )
        if "\x00" in sql:
            raise self._refuse(
                sql,
                f"it holds a NUL character at position {sql.index(chr(0))}, where SQLite would "
                "stop reading; remove it",
            )
        position = surrogate_at(sql)
        if position is not None:
            raise self._refuse(
                sql,
                f"it holds a lone surrogate at position {position}, which UTF-8 cannot encode; "
                "decode the text properly first",
            )
        scanned = scan_sql(sql)
        problem = scanned.problem
        if problem is not None and problem[0] == "syntax" and sql[problem[1]] == "\ufeff":
            # SQLite skips it as a space before a word: the words judged below would not be
            # the ones it runs ("\ufeffREINDEX _cf_meta").
            raise self._refuse(
                sql,
                f"it holds a byte-order mark (U+FEFF) at position {problem[1]}, which SQLite "
                "skips as a space before a word; remove it",
            )
        words = scanned.words()
        if all(w.kind == OP and w.text == ";" for w in words):
            raise self._refuse(
                sql, "it is empty (only ';', whitespace or comments); pass one statement"
            )
        for i, tok in enumerate(words):
            # apsw.complete is sqlite3_complete: it knows a ';' inside CREATE TRIGGER … END.
            if tok.kind == OP and tok.text == ";" and apsw.complete(sql[: tok.start + 1]):
                if any(w.text != ";" for w in words[i + 1 :]):
                    raise self._refuse(sql, "it holds several statements; run one per call")
                break
        first = words[0].text.upper() if words[0].kind == WORD else words[0].text
        if first in _REFUSED:
            raise self._refuse(sql, _REFUSED[first])
        if first == "REINDEX":
            why = _reindex_refusal([w.text for w in words[1:] if w.text != ";"])
            if why:
                raise self._refuse(sql, why)
        if first == "ALTER":
            why = _alter_refusal([w for w in words[1:] if w.text != ";"])
            if why:
                raise self._refuse(sql, why)
        return first


_COLLATIONS: Final = frozenset({"binary", "nocase", "rtrim"})


def _alter_refusal(words: list[Word]) -> str | None:
    """Why an ``ALTER TABLE`` of ``words`` (the tokens after the keyword) is refused, or None.
    The authorizer is told the table a ``RENAME TO`` renames, never its new name, so the text
    is judged: a table the migration itself renames to a ``_cf_…`` name could never be declared
    (R12), nor the file match its declaration after ``migrate`` (R14). SQLite itself refuses a
    ``sqlite_…`` one."""
    if len(words) < 4 or words[0].text.upper() != "TABLE":
        return None
    rest = words[4:] if words[2].text == "." and len(words) > 4 else words[2:]
    if len(rest) != 3 or rest[0].text.upper() != "RENAME" or rest[1].text.upper() != "TO":
        return None
    if not fold_ascii(rest[2].name).startswith("_cf_"):
        return None
    return (
        f"it renames a table to {rest[2].text}, and names starting with _cf_ are kept for the "
        "runtime's own tables (R12): no declaration can hold it, so the migration could not "
        "succeed; the statement was not run: rename the table to another name"
    )


def _reindex_refusal(target: list[str]) -> str | None:
    """Why a ``REINDEX`` of ``target`` (the tokens after the keyword) is refused, or None.
    SQLite does not ask the authorizer about REINDEX, so its text is judged: it must name one
    table or index of the callback's, never the runtime's (R14)."""
    if not target:
        return (
            "REINDEX without a name rebuilds every index, the runtime's own tables' too; name "
            "a table or index of the database"
        )
    if len(target) == 3 and target[1] == ".":
        if fold_ascii(unquote(target[0])) != "main":
            return "REINDEX names an object of another schema; name a table or index of main"
        name = fold_ascii(unquote(target[2]))
    else:
        name = fold_ascii(unquote(target[0]))
        if len(target) == 1 and name in _COLLATIONS:
            return (
                f"REINDEX {target[0]} rebuilds every index using that collation, the runtime's "
                "own tables' too; name a table or index of the database (main.name for a "
                "table named like a collation)"
            )
    if name.startswith(("_cf_", "sqlite_autoindex__cf_")):
        return "the runtime's own tables (_cf_*) and their indexes are not for migrations"
    return None


class DamagedVersion(DatabaseError):
    """A database file whose ``_cf_meta.version`` holds something other than an integer: only
    the runtime writes it, and only integers, so the file is damaged (R71) — no declaration or
    migration changes that. ``problem`` says what was found, for a caller that says the rest
    (a check reports the file damaged and rebuilds it from its space's log; a write notes the
    damage). Private: callers catch ``DatabaseError``."""

    def __init__(self, db_id: str, path: str, problem: str) -> None:
        super().__init__(
            f"database {db_id}: the file {path} is damaged: {problem} (sqlite-cells writes "
            "only integers there): `sqlite-cells check --repair` on the store rebuilds it from "
            "its space's log, keeping the damaged copy, when the log holds its whole history"
        )
        self.db_id = db_id
        self.path = path
        self.problem = problem


def version_sql(database: str) -> str:
    """SQL reading the version stored in ``database``'s ``_cf_meta`` (R14), text as its bytes:
    text that is not UTF-8 (another program wrote it) is no version, not a raw
    ``UnicodeDecodeError`` from apsw."""
    return (
        f"SELECT {stored_json_column('value')} FROM {quote_ident(database)}._cf_meta "
        "WHERE key = 'version'"
    )


def stored_version(conn: apsw.Connection, database: str, db_id: str) -> int | None:
    """The version stored in the file's ``_cf_meta`` (None: none yet); a value that is not an
    integer is :class:`DamagedVersion` (the file is damaged). A file without ``_cf_meta`` is
    SQLite's error (``apsw.SQLError``), for the caller to say."""
    rows = rows_of(conn, version_sql(database))
    if rows and not isinstance(rows[0][0], int):
        problem = f"its _cf_meta.version holds {_shown_value(rows[0][0])}, not an integer"
        raise DamagedVersion(db_id, conn.db_filename(database), problem)
    return rows[0][0] if rows else None  # type: ignore[return-value]


def _shown_value(found: object) -> str:
    """A stored value for a message: text as text, text that is not UTF-8 as its hex."""
    if isinstance(found, bytes):
        try:
            return brief_repr(found.decode("utf-8"))
        except UnicodeDecodeError:
            return f"text that is not valid UTF-8 (x'{found[:32].hex()}')"
    return brief_repr(found)


def create_meta_table(conn: apsw.Connection, database: str) -> None:
    """The runtime's ``_cf_meta`` table in ``database``, if it is not there yet. A commit to a
    file without it also runs this (and undoes it) first, to take the file's write lock before
    anything reads the file (see ``write/_fold.py``, ``_take_file_lock``)."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {quote_ident(database)}._cf_meta(key TEXT PRIMARY KEY, value)"
    )


def ensure_runtime_tables(conn: apsw.Connection, database: str) -> None:
    # IF NOT EXISTS, not a look-up first: another connection may have created them since this
    # connection last loaded the schema, and only a prepared statement re-reads it.
    db = quote_ident(database)
    create_meta_table(conn, database)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {db}._cf_watermark(id INTEGER PRIMARY KEY CHECK (id = 0), "
        "seq INTEGER NOT NULL)"
    )
    conn.execute(f"INSERT OR IGNORE INTO {db}._cf_watermark(id, seq) VALUES (0, 0)")
    # The file's own journal of recent changesets, to undo commits its space lost (R71). No
    # index: it holds only the newest commits, and an index would cost every write ~15%.
    # ``head``: the hash of the space's log record before the row's commit (see
    # ``log_head``), which tells a commit left in flight from a space restored from an older
    # copy; NULL in rows written before the column was added (an additive step of its own).
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {db}._cf_changes("
        "seq INTEGER NOT NULL, changeset BLOB NOT NULL, head INTEGER)"
    )
    has_head = conn.execute(
        "SELECT 1 FROM pragma_table_info('_cf_changes', ?) WHERE name = 'head'", (database,)
    ).fetchall()
    if not has_head:
        conn.execute(f"ALTER TABLE {db}._cf_changes ADD COLUMN head INTEGER")


# What migrate returns is not used; it is looked at only to refuse a coroutine (or generator)
# whose body never ran.
Migrate = Callable[[MigrationConnection, int], object]


class Budget:
    """The deadline of a migration's statements (``time.monotonic()``): ``limit`` for all of
    them, ``deadline`` the one in force, set only while a statement of the callback runs (what
    the progress handler and the long-call overrides read; None: no deadline). ``long_calls``:
    whether those overrides, and the functions computing JSON calls of many paths, are on the
    connection."""

    __slots__ = ("deadline", "limit", "long_calls", "seconds", "watch")

    def __init__(self, seconds: float | None, watch: StatementWatch | None = None) -> None:
        self.seconds = seconds
        self.long_calls = False
        self.limit: float | None = None
        self.deadline: float | None = None
        # Interrupts a statement that SQLite's own checks let run past the deadline (a row of
        # long calls reaches no progress-handler step for seconds): the runtime's write watchdog.
        self.watch = watch

    def start(self) -> None:
        if self.seconds is not None:
            self.limit = time.monotonic() + self.seconds

    def passed(self) -> bool:
        deadline = self.deadline
        return deadline is not None and time.monotonic() > deadline


LongCalls = Callable[[apsw.Connection, Budget], None]


class StatementWatch(Protocol):
    """Watches one statement's deadline from another thread: ``arm`` as it starts (a token),
    ``disarm`` as it returns (whether it was interrupted for running past the deadline)."""

    def arm(self, conn: apsw.Connection, deadline: float) -> int: ...
    def disarm(self, token: int) -> bool: ...


def _check_version(version: object, db_id: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**63:
        raise SchemaError(
            f"database {db_id}: version={version!r} must be an integer from 0 to 2**63 - 1"
        )


def ensure_schema(
    conn: apsw.Connection,
    database: str,
    schema: Schema,
    *,
    db_id: str,
    version: int,
    owner: str | None = None,
) -> int | None:
    """Bring the file visible as ``database`` to ``schema`` at ``version``, additively (R13);
    return the version the file was at before (None: it had none). A file that had none (its
    first write) also records ``owner``, the id of the space whose database it is (see
    :func:`stored_owner`).

    Runs inside the caller's open transaction (it only uses a SAVEPOINT); the steps are in the
    module docstring. Raises :class:`UnsupportedMigration` (every non-additive difference, or a
    stored version newer than ``version``); then, and on any other error, nothing it did
    remains. A ``migrate`` callback is never run here: see :func:`migrate_file`.
    """
    _check_version(version, db_id)
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        _refuse_foreign(conn, database, db_id)
        ensure_runtime_tables(conn, database)
        stored = stored_version(conn, database, db_id)
        _refuse_newer(stored, version, db_id)
        try:
            add_missing(conn, database, schema, db_id)
        except UnsupportedMigration as exc:
            raise _without_migrate(exc, stored, version) from None
        if stored != version:
            store_version(conn, database, version)
        if stored is None and owner is not None:
            store_owner(conn, database, owner, db_id)
    except BaseException:
        # If SQLite already rolled the whole transaction back, the savepoint is gone too.
        with contextlib.suppress(apsw.Error):
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}; RELEASE {_SAVEPOINT}")
        raise
    conn.execute(f"RELEASE {_SAVEPOINT}")
    return stored


def write_refusal(
    conn: apsw.Connection, database: str, schema: Schema, *, db_id: str, version: int
) -> UnsupportedMigration | None:
    """The :class:`UnsupportedMigration` :func:`ensure_schema` would raise bringing the file
    visible as ``database`` to ``schema`` at ``version``, found without writing anything (its
    steps in its order: a file another program made, a stored version newer than ``version``,
    the differences no write adds); None when none is found (a refusal only SQLite's own
    ``ALTER TABLE`` finds is left to the write). Read only."""
    db = quote_ident(database)
    stored = None
    try:
        _refuse_foreign(conn, database, db_id)
        if conn.execute(f"SELECT 1 FROM {db}.sqlite_schema WHERE name = '_cf_meta'").fetchone():
            stored = stored_version(conn, database, db_id)
            _refuse_newer(stored, version, db_id)
    except UnsupportedMigration as exc:
        return exc
    differences = diff_of(conn, database, schema)[1]
    if not differences:
        return None
    return _without_migrate(UnsupportedMigration(db_id, differences), stored, version)


def _without_migrate(
    exc: UnsupportedMigration, stored: int | None, version: int
) -> UnsupportedMigration:
    """``exc`` (differences no write adds) for a write at ``version`` over a file at
    ``stored``: a declared version newer than the file's means ``version=`` was bumped without
    a ``migrate`` (one given runs first, and stores the version: :func:`migrate_file`), so the
    advice asks for the ``migrate`` alone (R14)."""
    if stored is None or stored >= version:
        return exc
    return UnsupportedMigration(exc.db_id, exc.differences, bumped=(stored, version))


def _refuse_foreign(conn: apsw.Connection, database: str, db_id: str) -> None:
    """Refuse a file another program made (:func:`made_elsewhere`): no write adopts it."""
    if made_elsewhere(conn, database):
        raise UnsupportedMigration(
            db_id, [foreign_file(conn.db_filename(database))], advice=_FOREIGN_ADVICE
        )


def _refuse_newer(stored: int | None, version: int, db_id: str) -> None:
    if stored is not None and stored > version:
        newer = (
            f"the file is at version {stored}, newer than the declared version={version}: it "
            "was written by a newer declaration"
        )
        advice = (
            f"Run the code that declares version={stored} (or a later one), not an older "
            "one: a file is never migrated back"
        )
        raise UnsupportedMigration(db_id, [newer], advice=advice)


_NOT_CONSTANT: Final = "non-constant default"  # SQLite's words when ADD COLUMN refuses one


def add_missing(conn: apsw.Connection, database: str, schema: Schema, db_id: str) -> None:
    """Create the tables, columns and indexes of ``schema`` the file visible as ``database``
    lacks, in the caller's transaction; :class:`UnsupportedMigration` lists every difference
    that is not additive (nothing of it remains then)."""
    statements, diffs = diff_of(conn, database, schema)
    if diffs:
        _name_refused_additions(conn, statements, diffs)
        raise UnsupportedMigration(db_id, diffs)
    tables = dict(schema.tables)
    # The VIRTUAL generated columns each table that gains columns has before: a new one is
    # computed for every row below.
    virtual = {
        name: virtual_columns_of(conn, database, name)
        for name in {step.adds_to for step in statements if step.adds_to is not None}
    }
    rebuilt: set[str] = set()
    for step in statements:
        if step.adds_to in rebuilt:
            continue  # the rebuild added this column with the one SQLite refused
        exc = _refusal(conn, step)
        if exc is None:
            continue
        outright = _refused_outright(step, exc)
        if outright is not None:
            diffs.append(outright)
            continue
        # A UNIQUE or STORED generated column: ADD COLUMN refuses it, a rebuild of the table
        # adds it with every row kept.
        assert step.adds_to is not None  # (else refused outright)
        # A rebuild refused halfway leaves nothing: the steps after it (other columns, other
        # tables) meet the table as it was, and are refused, if they are, in their own words.
        conn.execute(f"SAVEPOINT {_TRIAL}")
        try:
            rebuild_adding(conn, database, step.adds_to, tables[step.adds_to])
        except apsw.InterruptError:
            raise  # the caller's deadline (R44): not a difference of the schemas
        except apsw.Error as again:
            if conn.getautocommit():
                raise  # SQLite ended the caller's transaction (see _refusal)
            conn.execute(f"ROLLBACK TO {_TRIAL}; RELEASE {_TRIAL}")
            diffs.append(
                f"{step.subject}: SQLite refused {step.sql!r} ({exc}) and the rebuild of "
                f"the table that would add it ({again})"
            )
            continue
        conn.execute(f"RELEASE {_TRIAL}")
        rebuilt.add(step.adds_to)
    if rebuilt and not diffs:
        # The rebuilt tables' declared indexes went with the old tables: create them again.
        statements, diffs = diff_of(conn, database, schema)
        for step in statements:
            exc = _refusal(conn, step)
            if exc is not None:
                diffs.append(f"{step.subject}: SQLite refused {step.sql!r}: {exc}")
    for name, before in virtual.items():
        if name not in rebuilt:  # (a rebuild computed them as it copied the rows)
            diffs += _uncomputable_rows(conn, database, name, before)
    if diffs:
        raise UnsupportedMigration(db_id, diffs)


def _uncomputable_rows(
    conn: apsw.Connection, database: str, table: str, before: Sequence[str]
) -> list[str]:
    """The differences of the VIRTUAL generated columns the migration added to ``table`` (those
    not in ``before``) that a row already there cannot compute: SQLite adds one without
    computing it, and from then on every read of such a row would fail (R44; see
    :mod:`sqlite_cells.schema._generated`). Each new column is computed for every row, once."""
    had = {fold_ascii(column) for column in before}
    added = [c for c in virtual_columns_of(conn, database, table) if fold_ascii(c) not in had]
    if not added:
        return []
    source = f"{quote_ident(database)}.{quote_ident(table)}"
    return [
        f"{table}.{column}: its generated value cannot be computed for a row already in the "
        f"table (SQLite said {exc}), and a VIRTUAL generated column is computed at every read, "
        "so no read could return that row; declare an expression every row can compute, or "
        "bump version= with a migrate that changes those rows first"
        for column, exc in uncomputable(conn, source, added)
    ]


def _name_refused_additions(
    conn: apsw.Connection, statements: list[Step], diffs: list[str]
) -> None:
    """Add to ``diffs`` the additions SQLite refuses outright (a column whose default is not a
    constant, an index the rows break), so that one refusal names every difference (R13)
    instead of one round at a time: each is tried under a savepoint rolled back at once. An
    addition that would need a rebuild of its table is not tried (that costs a copy of the
    table at every refused write); nor is a subject already named."""
    named = {d.partition(": ")[0] for d in diffs}
    conn.execute(f"SAVEPOINT {_TRIAL}")
    try:
        for step in statements:
            if step.subject in named:
                continue
            exc = _refusal(conn, step)
            outright = _refused_outright(step, exc) if exc is not None else None
            if outright is not None:
                diffs.append(outright)
    finally:
        with contextlib.suppress(apsw.Error):  # (gone if SQLite rolled the transaction back)
            conn.execute(f"ROLLBACK TO {_TRIAL}; RELEASE {_TRIAL}")


def _refusal(conn: apsw.Connection, step: Step) -> apsw.Error | None:
    """Run ``step``; SQLite's refusal of it, or None when it ran. The caller's deadline (R44)
    is not a difference of the schemas: it goes on up, as does an error after which SQLite
    ended the caller's transaction (the next step would run outside it, on the file itself)."""
    try:
        conn.execute(step.sql)
    except apsw.InterruptError:
        raise
    except apsw.Error as exc:
        if conn.getautocommit():
            raise
        return exc
    return None


def _refused_outright(step: Step, exc: apsw.Error) -> str | None:
    """The difference SQLite's refusal ``exc`` of ``step`` names when no rebuild of the table
    adds it (None: a rebuild may): an index, or a column whose default SQLite would evaluate
    for each row (random(), CURRENT_TIMESTAMP) — a replay that rebuilt the table again would
    give the rows other values than the log's changesets were taken on (R70)."""
    if step.adds_to is None or _NOT_CONSTANT in str(exc):
        return f"{step.subject}: SQLite refused {step.sql!r}: {exc}"
    return None


def store_owner(conn: apsw.Connection, database: str, owner: str, db_id: str) -> None:
    """Record in the file's ``_cf_meta`` the space whose database it is and the database's id
    (each kept if recorded): a file whose space file lost the commit that named it still says
    whose it is (see :func:`stored_id`)."""
    conn.execute(
        f"INSERT OR IGNORE INTO {quote_ident(database)}._cf_meta(key, value) "
        "VALUES ('space', ?1), ('id', ?2)",
        (owner, db_id),
    )


def made_elsewhere(conn: apsw.Connection | apsw.Cursor, database: str = "main") -> bool:
    """Whether the file visible as ``database`` holds tables but none of the runtime's: the
    runtime makes its tables in the same transaction as a database's first tables (a file of
    any format has one of them), so such a file was made by another program (or left by one)
    at the database's path — its rows are in no commit of the space (R70), and the file is
    neither read as the database nor taken over by its first write. A file with no table at
    all (a first write rolled back) is not."""
    db = quote_ident(database)
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {db}.sqlite_schema WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'), "
        f"EXISTS (SELECT 1 FROM {db}.sqlite_schema WHERE type = 'table' "
        "AND name IN ('_cf_meta', '_cf_watermark', '_cf_changes'))"
    ).fetchall()[0]
    return bool(row[0]) and not row[1]


def foreign_file(path: object) -> str:
    """What a use of a database whose file another program made says (see
    :func:`made_elsewhere`)."""
    return (
        f"the file {path} holds tables but none of the runtime's (_cf_meta…): another "
        "program's file stands where this database's file belongs, and its rows are in no "
        "commit of the space, so they are neither read nor written over; " + _FOREIGN_ADVICE
    )


_FOREIGN_ADVICE: Final = (
    "move the file out of the store (the database then starts empty), or read it as an "
    "injected file with space.register_disk_source(path)"
)


def stored_owner(conn: apsw.Connection, database: str = "main") -> str | None:
    """The space whose database the file is, as its first write recorded it; None when it
    records none (written before files did, or never written). Two spaces may declare one
    database id — a pattern builds its databases by the piece's id and the builder's name or
    position, whatever space it builds them in — and the id names the file (R2): this tells
    whose commits the file holds."""
    meta = f"{quote_ident(database)}._cf_meta"
    try:
        return meta_text(conn, meta, "space")
    except apsw.SQLError:  # no _cf_meta: never written by the runtime
        return None


def stored_id(conn: apsw.Connection, database: str = "main") -> str | None:
    """The id of the database whose file this is, as its first write (or a rebuild) recorded
    it; None when it records none (written before files did, or never written)."""
    meta = f"{quote_ident(database)}._cf_meta"
    try:
        return meta_text(conn, meta, "id")
    except apsw.SQLError:  # no _cf_meta: never written by the runtime
        return None


def meta_text(conn: apsw.Connection, table: str, key: str) -> str | None:
    """The text ``table`` (a ``_cf_meta``, of a database or a space file) holds under ``key``;
    None when it holds none, or none that is UTF-8 (another program's)."""
    row = conn.execute(
        f"SELECT CAST(value AS BLOB) FROM {table} WHERE key = ? AND typeof(value) = 'text'",
        (key,),
    ).fetchone()
    if row is None or not isinstance(row[0], bytes):
        return None
    try:
        return row[0].decode()
    except UnicodeDecodeError:
        return None


def store_version(conn: apsw.Connection, database: str, version: int) -> None:
    """Store ``version`` in the file's ``_cf_meta``, inside the caller's transaction."""
    upsert = "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    meta = f"{quote_ident(database)}._cf_meta"
    conn.execute(f"INSERT INTO {meta}(key, value) VALUES ('version', ?) {upsert}", (version,))


def migrate_file(
    path: Path,
    schema: Schema,
    *,
    db_id: str,
    version: int,
    migrate: Migrate,
    exec_timeout: float | None = None,
    long_calls: LongCalls | None = None,
    watch: StatementWatch | None = None,
    in_step: Callable[[apsw.Connection], None] | None = None,
) -> bool:
    """Run ``migrate`` on the database file at ``path`` if its stored version is older than
    ``version`` (R14); return whether it ran. See the module docstring for what is checked.

    ``in_step(conn)``, if given, is called first in the migration's transaction, once its
    connection holds the file's write lock (so no other writer can change the file until the
    migration ends): it checks that the file holds every commit its space made to it, and
    raises if not; what it raises is raised as it is, nothing migrated.

    ``exec_timeout`` (seconds; None: no limit) bounds the callback's statements together and
    the wait for the file's lock; ``long_calls(conn, budget)``, if given, is called once on the
    new connection to keep one long call of a builtin function under ``budget.deadline`` too;
    ``watch``, if given, interrupts a statement SQLite's own checks let run past the deadline.

    Raises :class:`MigrationError` (``migrate`` raised — the original is ``__cause__`` —, a
    statement was refused or ran past the deadline — an :class:`ExecTimeout` is the cause —,
    ``migrate`` returned a coroutine, or afterwards the file still differs from the declaration,
    holds tables or indexes it does not declare, or holds in a link column anything but NULL or
    a well-formed link) or :class:`UnsupportedMigration` (the stored
    version is newer); in every failing case nothing of the migration is committed.
    """
    _check_version(version, db_id)
    if not path.exists():
        return False  # a new file: created at the declared schema by the first write
    try:
        conn = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE))
    except apsw.Error as exc:
        raise MigrationError(
            db_id, f"cannot open {path} to migrate it: {sqlite_refusal(exc)}; nothing was written"
        ) from exc
    try:
        conn.setbusytimeout(busy_ms(exec_timeout))
        conn.limit(apsw.SQLITE_LIMIT_LENGTH, LENGTH_LIMIT)  # R44, as everywhere
        gate = Gate().install(conn)
        budget = Budget(exec_timeout, watch)
        if exec_timeout is not None:
            conn.set_progress_handler(budget.passed, _PROGRESS_STEPS)
            if long_calls is not None:
                long_calls(conn, budget)
                budget.long_calls = True
        conn.execute("BEGIN IMMEDIATE")
        try:
            if in_step is not None:
                in_step(conn)
            ran = _migrate_in_transaction(conn, gate, budget, schema, db_id, version, migrate, path)
        except BaseException:
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT" if ran else "ROLLBACK")
        return ran
    except apsw.Error as exc:
        # (A full disk or an I/O error meets the migration's own writes and its COMMIT: say
        # what to do, as for a statement SQLite refuses.)
        raise MigrationError(
            db_id, f"migrating {path} failed in SQLite: {sqlite_refusal(exc)}; nothing was written"
        ) from exc
    finally:
        conn.close()


def _failed_in(call: str, db_id: str, exc: BaseException) -> MigrationError:
    """The error of a migration whose callback ``call`` raised ``exc``. The refusal of one of
    its statements by the connection the runtime gave it is already a ``MigrationError`` of
    this database: said once, with the call, not wrapped in a second naming the database
    again."""
    own = f"database {db_id}: "
    text = str(exc) if isinstance(exc, MigrationError) and exc.db_id == db_id else ""
    if text.startswith(own):
        said = text[len(own) :]
        if not said.endswith("nothing was written"):
            said += "; nothing was written"
        return MigrationError(db_id, f"{call}: {said}")
    return MigrationError(db_id, f"{call} raised {exception_text(exc)}; nothing was written")


def _migrate_in_transaction(
    conn: apsw.Connection, gate: Gate, budget: Budget, schema: Schema, db_id: str,
    version: int, migrate: Migrate, path: Path,
) -> bool:  # fmt: skip
    known = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_cf_meta'").fetchone()
    stored = stored_version(conn, "main", db_id) if known else None
    if stored is None or stored >= version:
        _refuse_newer(stored, version, db_id)
        return False
    handle = MigrationConnection(conn, gate, db_id, budget)
    call = f"migrate(conn, from_version={stored})"
    changes = conn.total_changes()  # (a callback that changed no row left no NULL key)
    budget.start()
    try:
        result = migrate(handle, stored)
    except (KeyboardInterrupt, SystemExit):
        raise  # the user stopping the program: it goes on stopping it
    except BaseException as exc:
        # Any other: a library's own BaseException, a GeneratorExit, an exception whose text
        # cannot be read or printed (R34).
        raise _failed_in(call, db_id, exc) from exc
    finally:
        handle.close()
    _refuse_unrun(result, call, db_id)
    if handle.timed_out is not None:
        # The callback caught it and went on; the migration still fails (R44).
        raise MigrationError(
            db_id,
            f"{call} ran a statement past exec_timeout ({handle.timed_out}); nothing was "
            "written: make the migration faster, or raise exec_timeout",
        ) from handle.timed_out
    _refuse_late(budget, call, db_id)
    if conn.getautocommit():
        raise MigrationError(
            db_id,
            f"{call} returned after a statement's failure rolled the migration's transaction "
            "back (INSERT OR ROLLBACK, an interrupted write); nothing was written",
        )
    ensure_runtime_tables(conn, "main")
    try:
        add_missing(conn, "main", schema, db_id)
    except UnsupportedMigration as exc:
        # With a migrate callback, a file that still differs is the migration's failure (R14).
        raise MigrationError(
            db_id,
            f"after migrate(conn, from_version={stored}) the file still differs from the "
            f"declaration: {'; '.join(exc.differences)}; nothing was written: migrate must "
            "leave the file as declared (the runtime only adds what is missing)",
        ) from exc
    _check_exact(conn, schema, db_id)
    _check_link_values(conn, schema, db_id, call)
    _check_virtual_values(conn, schema, db_id, call)
    if conn.total_changes() != changes:
        _check_null_keys(conn, path, schema, db_id, call)
    store_version(conn, "main", version)
    return True


def _refuse_late(budget: Budget, call: str, db_id: str) -> None:
    """R44: ``migrate`` returned past its deadline, its statements all in time (Python code
    that runs no statement cannot be interrupted, and it runs with the space's write lock held,
    see ``write._fold``): the migration fails as a statement past the deadline fails it, and
    nothing of it commits."""
    limit, seconds = budget.limit, budget.seconds
    now = time.monotonic()
    if limit is None or seconds is None or now <= limit:
        return
    late = ExecTimeout(
        db_id,
        "(the migrate callback)",
        f"migrate returned {now - limit + seconds:.2f}s after it was called, past "
        f"exec_timeout={seconds}s (the budget of the whole migration, R44)",
    )
    raise MigrationError(
        db_id,
        f"{call} returned past exec_timeout={seconds}s, after {now - limit + seconds:.2f}s: its "
        "Python code cannot be interrupted, and it holds the space's write lock while it runs; "
        "nothing was written: make the migration faster (do its work in SQL statements), or "
        "raise exec_timeout",
    ) from late


def _refuse_unrun(result: object, call: str, db_id: str) -> None:
    """``migrate`` returned a coroutine (``async def``) or a generator: its body never ran.
    Judged by the result's type alone: whatever the result's own ``__class__`` or ``__repr__``
    do, nothing of it runs here (its code raising would reach the writer raw)."""
    kind = type(result)
    if issubclass(kind, _UNRUN):
        close = getattr(kind, "close", None)  # a coroutine or generator: no "never awaited"
        if callable(close):
            close(result)
        raise MigrationError(
            db_id,
            f"{call} returned {kind.__name__} {brief_repr(result)} instead of running: "
            "migrate must be a plain function (not async def, not a generator); nothing was "
            "written",
        )


# What a migrate of ``async def``, or one that yields, returns without running its body.
_UNRUN: Final = (Awaitable, types.GeneratorType, types.AsyncGeneratorType)


def _check_exact(conn: apsw.Connection, schema: Schema, db_id: str) -> None:
    """After ``migrate``: the file holds exactly the declared tables and indexes, plus the
    runtime's own tables (R14)."""
    tables = {fold_ascii(name) for name, _ in schema.tables} | RUNTIME_TABLES
    indexes = {fold_ascii(name) for _, t in schema.tables for name, _ in t.indexes}
    extra = []
    for kind, name in conn.execute(
        "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite^_%' ESCAPE '^' "
        "ORDER BY type, name"
    ):
        wanted = tables if kind == "table" else indexes if kind == "index" else set()
        if fold_ascii(str(name)) not in wanted:
            extra.append(f"{kind} {name}")
    if extra:
        raise MigrationError(
            db_id,
            f"after migrate the file holds {', '.join(extra)}, which the declaration does not "
            "have; nothing was written: declare it, or drop it in migrate",
        )


def _check_link_values(conn: apsw.Connection, schema: Schema, db_id: str, call: str) -> None:
    """After ``migrate``: every link column of the declaration holds NULL or a well-formed link
    in its canonical form (R31, by the rule the commit applies to what a write stores), else
    :class:`MigrationError` caused by a :class:`LinkEncodeError` naming the table, the column
    and the first bad value.

    The callback's statements are not captured by a session, and a rename or an added column
    with a default puts values there without any row being written: the columns are read in
    full. Migrations are rare; the scan reads each link value once (no index is used)."""
    for name, table in schema.tables:
        for column in table.columns:
            if column.is_link:
                _check_link_column(conn, name, column.name, db_id, call)


def _check_virtual_values(conn: apsw.Connection, schema: Schema, db_id: str, call: str) -> None:
    """After ``migrate``: every row computes every VIRTUAL generated column of the declared
    tables, else :class:`MigrationError` naming each column that a row cannot compute (R44: no
    read could return that row; see :mod:`sqlite_cells.schema._generated`). The callback may
    have added such a column, or changed the rows one is computed from: the tables that have
    one are read in full, once. Migrations are rare."""
    failed = []
    for name, _ in schema.tables:
        columns = virtual_columns_of(conn, "main", name)
        if columns:
            source = f"main.{quote_ident(name)}"
            failed += [(name, column, exc) for column, exc in uncomputable(conn, source, columns)]
    if failed:
        listed = "; ".join(f"{t}.{c} (SQLite said {exc})" for t, c, exc in failed)
        raise MigrationError(
            db_id,
            f"after {call} a row cannot compute the VIRTUAL generated column {listed}; such a "
            "column is computed at every read, so no read could return that row; nothing was "
            "written: migrate must leave rows every generated column can be computed for",
        )


def _null_key_rows(conn: apsw.Connection, schema: Schema) -> dict[str, tuple[tuple[str, ...], int]]:
    """For each declared table the file holds whose primary key may hold NULL: those key
    columns, and how many rows hold NULL in one of them."""
    found = {}
    for name, _ in schema.tables:
        columns, _ = nullable_key_columns(conn, "main", name)
        if columns:
            sql = (
                f"SELECT count(*) FROM main.{quote_ident(name)} WHERE {null_key_condition(columns)}"
            )
            found[name] = (columns, int(str(conn.execute(sql).fetchall()[0][0])))
    return found


def _check_null_keys(
    conn: apsw.Connection, path: Path, schema: Schema, db_id: str, call: str
) -> None:
    """After a ``migrate`` that changed rows: it left no more rows whose primary key holds NULL
    than the table had, else :class:`MigrationError` naming the table and its key. A write
    refuses to leave such a row (SQLite's session records no change to it: R51, R70), so every
    later write touching it would fail; rows the file already held are kept, as writes keep
    them. What the table held is read, only when it holds such rows now, on a connection of
    its own, which sees the file as it was before the migration's transaction (WAL)."""
    now = {name: found for name, found in _null_key_rows(conn, schema).items() if found[1]}
    if not now:
        return
    before = _rows_before(path, schema)
    for name, (columns, count) in now.items():
        had = before.get(name, (columns, 0))[1]
        if count > had:
            keys = ", ".join(f"{name}.{column}" for column in columns)
            raise MigrationError(
                db_id,
                f"after {call} table {name} holds {count - had} more row(s) whose primary key "
                f"({keys}) is NULL; SQLite records no change to such a row, so no write could "
                "touch it (R51, R70); nothing was written: give each row a key, or declare the "
                "key NOT NULL",
            )


def _rows_before(path: Path, schema: Schema) -> dict[str, tuple[tuple[str, ...], int]]:
    """:func:`_null_key_rows` of the file as its last commit left it (the migration's own
    transaction is not committed yet); a file that cannot be read so counts none."""
    try:
        reader = harden(apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY))
    except apsw.Error:
        return {}
    try:
        return _null_key_rows(reader, schema)
    except apsw.Error:
        return {}
    finally:
        reader.close()


def _check_link_column(
    conn: apsw.Connection, table: str, column: str, db_id: str, call: str
) -> None:
    col, tab = quote_ident(column), quote_ident(table)
    # Text as its bytes: text that is not UTF-8 is a bad value to report, not a decode error.
    text = f"SELECT CAST({col} AS BLOB) FROM main.{tab} WHERE typeof({col}) = 'text'"
    for (data,) in conn.execute(text):
        problem = link_text_problem(data)
        if problem:
            try:
                shown = repr(data.decode())
            except UnicodeDecodeError:
                shown = f"{data!r}, not UTF-8"
            raise _bad_link(table, column, problem, shown, db_id, call)
    other = (
        f"SELECT typeof({col}), {col} FROM main.{tab} "
        f"WHERE typeof({col}) NOT IN ('text', 'null') LIMIT 1"
    )
    for kind, value in conn.execute(other):
        raise _bad_link(table, column, f"a value of type {kind}", repr(value), db_id, call)


def _bad_link(
    table: str, column: str, problem: str, shown: str, db_id: str, call: str
) -> MigrationError:
    if len(shown) > 80:
        shown = shown[:77] + "..."
    cause = LinkEncodeError(
        f"database {db_id}: link column {table}.{column} holds {problem} ({shown}); a link "
        "column holds NULL or a link"
    )
    exc = MigrationError(
        db_id,
        f"after {call} link column {table}.{column} holds {problem} ({shown}); nothing was "
        "written: migrate must leave NULL or a link (the text a bound Cell stores) in every "
        "link column (R31)",
    )
    exc.__cause__ = cause
    return exc

"""The statement guard: every SQL statement from user code passes here before SQLite sees it.

Contract (SPEC R20–R24)
-----------------------
:func:`check_statement` returns a :class:`CheckedStatement` for exactly one allowed statement and
raises :class:`~codec._errors.GuardViolation` otherwise.  ``GuardViolation.kind`` is one of:

``empty``
    No statement at all: empty text, whitespace, comments, or only ``;``.
``multiple-statements``
    A ``;`` followed by anything but whitespace, comments and byte-order marks (U+FEFF, a space
    to SQLite where a token starts): ``SELECT 1;``, ``SELECT 1; --`` and ``SELECT 1;\ufeff``
    are fine, ``SELECT 1;;`` is not.  The offset is the start of the first token after the
    first ``;``.  (Text SQLite cannot read *before* the first ``;`` fails the first statement, so
    nothing would run: that is a ``syntax`` problem, below.  So is an unterminated ``/*``
    comment or a NUL that follows the ``;`` before any token: SQLite reads no second statement
    there.)
``not-read-only`` / ``not-a-write`` for what is not a statement
    R22's "anything else", so the kind stays in R24's closed list: SQLite cannot tokenize the text
    (an unterminated string literal, quoted identifier or ``/*`` comment, a malformed blob or
    number, a character SQLite rejects), the text holds a NUL (even inside a literal or a
    comment: SQLite would stop reading there, and apsw refuses it) or a lone surrogate (it cannot
    be encoded), or sqlglot's tokenizer splits it differently from SQLite (below); and a
    statement that does not start with a statement keyword (``SELEC * FROM t``, ``(SELECT 1)``, a
    malformed WITH clause, a WITH followed by anything but SELECT, VALUES, INSERT, REPLACE,
    UPDATE, DELETE or a verb of the next two kinds, whose kind it then is, met at WITH).
    Inside the front end and this module such a problem is ``syntax``;
    :func:`check_statement` raises it as the mode's ``not-read-only`` or ``not-a-write``, with
    the message that says ``syntax error: …``, what is wrong and what to do.  The offset is where
    the problem starts; a rule broken before it decides instead (below).
``forbidden-statement``
    The statement starts with ATTACH, DETACH, PRAGMA, VACUUM, REINDEX, ANALYZE or transaction
    control (BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT, RELEASE).
``ddl``
    The statement starts with CREATE, DROP or ALTER (so ``CREATE TEMP TABLE`` is ``ddl``).
``not-read-only``
    :attr:`Mode.READ` allows only SELECT, VALUES and WITH … SELECT.
``not-a-write``
    :attr:`Mode.WRITE` allows only INSERT, REPLACE, UPDATE and DELETE, optionally after a
    ``WITH [RECURSIVE]`` list (``INSERT OR …``, ``UPDATE OR …`` and upserts included).
``temp-object``
    A ``TEMP`` or ``TEMPORARY`` keyword after ``CREATE``: the one place SQLite reads it as making a
    temporary object (a statement starting with CREATE is ``ddl`` first, so this is met only in a
    statement that is already malformed).  Anywhere else ``temp`` is a name, as in SQLite: a column,
    an alias or a table called temp is ordinary SQL; ``temp.x`` is ``schema-qualified``.
``schema-qualified``
    ``db.name`` where db is ``main``, ``temp`` or ``_cf_db`` (the runtime ATTACHes the database
    file under that alias), in any quoting and case; and every three-part name ``a.b.c``. Another
    ``_cf_`` word before a dot names no database: it is a ``reserved-name``.
    ``table.column`` stays legal (but an alias called main or temp cannot qualify a column).
    The offset is the start of the first name.
``reserved-name``
    A name (unquoted, quoted with ``"…"``, ``[…]`` or backticks, or a string literal SQLite reads
    as a name) starting with ``_cf_`` or ``sqlite_``, case-insensitively.  *Decision:* the
    functions ``sqlite_version()``, ``sqlite_source_id()``, ``sqlite_compileoption_used()``
    and ``sqlite_compileoption_get()`` are allowed when the name is directly followed by ``(``
    (``sqlite_log()`` is not: it writes to the application's log); every other ``sqlite_`` name
    (``sqlite_master``, ``sqlite_schema``, ``sqlite_temp_master``, ``sqlite_sequence``,
    ``sqlite_stat1``, ``sqlite_offset()``, …) and every ``_cf_`` name, called or not, is refused.
``forbidden-function``
    ``load_extension``, ``readfile``, ``writefile``, ``edit`` or ``fts3_tokenizer`` directly
    followed by ``(`` (a table of that name after ``INTO``, or a CTE's name before its column
    list, ``WITH edit(a) AS (…)``, is not a call), and so are the row
    counts ``changes`` and ``total_changes`` (*decision*: they count the runtime's own statements
    on the connection too; ``last_insert_rowid()`` stays allowed); and every name starting
    with ``pragma_`` or equal to ``dbstat``, in any quoting, called or not: SQLite lets eponymous
    virtual tables be read without parentheses, and both look beyond the database cell's own
    tables.  (``dbstat`` is a *decision* beyond the SPEC's list.)
``returning``
    A RETURNING keyword (a quoted ``"returning"`` is a name).  In :attr:`Mode.READ` too, where
    SQLite reads no statement with one (an unquoted RETURNING is never a name): refused here, as
    R23 asks of what the authorizer cannot see, rather than left to SQLite's syntax error.

``empty`` and ``multiple-statements`` are decided first, then the statement kind at the
statement's first keyword (for WITH too: the main statement's verb after the CTE list decides
the kind, and the verdict is met at WITH, before any rule broken inside the list), then the
remaining rules in one pass over
the tokens: the leftmost token that breaks a rule decides, and at one token the order above
(schema-qualified, temp-object, forbidden-function, reserved-name, returning) decides (R24).

Text SQLite cannot read (a ``syntax`` problem at offset P, raised as the mode's
``not-read-only``/``not-a-write``) is met where it stands: the statement kind and
the rules are applied to the part before P (:meth:`Statement.readable
<sqlite_cells.sql._statement.Statement.readable>`), and ``syntax`` at P is the verdict only when
that part breaks none (``PRAGMA table_info('t`` is ``forbidden-statement`` at 0,
``SELECT * FROM main.t WHERE a = "x`` is ``schema-qualified``).  That part is judged as SQLite
reads it, whatever follows P: a rule that needs a token beyond P does not apply (``main.'x`` has
no name after the dot; ``WITH edit(a, 'x`` may still be a CTE's column list, not a call; the main
verb of a WITH whose list P cuts is unknown, so only WITH itself is judged), and a last token
that SQLite reads together with the character at P (``sqlite_master\xa0``) is left out.  A
``;`` after P cannot be seen, so there is no ``multiple-statements`` there.  Text that tokenizes
never takes this path.

What is a name
--------------
Text inside string literals, quoted identifiers and comments never triggers a keyword rule.  A
string literal is a name where SQLite reads one as a name (R24) and data everywhere else: the
front end (:class:`~sqlite_cells.sql._statement.Statement.string_names`) finds those positions —
after FROM (not ``IS [NOT] DISTINCT FROM``), JOIN, INTO, UPDATE, ``UPDATE OR <action>``, TABLE,
IN (not ``IN (``) and ``INDEXED BY``, as an item of a FROM list or of a parenthesised FROM item
(``FROM ('sqlite_master')``, ``FROM (messages, 'sqlite_master')``), before or after a ``.``,
and when a ``(`` follows it (a called table-valued function, ``'pragma_table_list'('x')``); and
where it names something that is no table: an alias (``AS 'x'``, ``SELECT body 'x'``, ``FROM t
'x'``, ``CASE … END 'x'``), a CTE (``WITH 'c' AS``, its column list), a window (``WINDOW 'w'
AS``, ``OVER 'w'``, ``OVER ('w' …)``), a type (``CAST(x AS 'T')``) or a collation (``COLLATE
'c'``).  After ``=``, ``LIKE``, ``THEN``, a call's ``(`` or a list's ``,`` it is data.
Parameters (``?``, ``?NNN``, ``:name``, ``@name``, ``$name``) are never names, so ``:temp`` or
``@sqlite_x`` are fine.  Names are compared with ASCII case folding only, as SQLite does.

One tokenizer
-------------
The rules read the :class:`~sqlite_cells.sql._statement.Statement` that
:func:`~sqlite_cells.sql._statement.scan_sql` makes from sqlglot's SQLite tokenizer, checked
there against what SQLite's own tokenizer would do; where the two differ the scan records a
``syntax`` problem (see that module).  Deliberately refused although SQLite would accept them:
Tcl-style parameter suffixes (``$a(x)``; ``$a::b`` is fine), ``#`` parameters, an unterminated
``/*`` comment at the end, and text sqlglot reads as a literal with a prefix (``N'…'``).

Offsets
-------
``GuardViolation.offset`` is the index in ``sql`` of the first character of the offending token:
the opening quote or bracket for quoted identifiers and string literals.

Caching
-------
Verdicts are cached per ``(sql, mode)`` in a bounded LRU cache (``functools.lru_cache`` on a
module-level function; statements longer than :data:`CACHE_MAX_SQL_LENGTH` are not cached), and
both modes share the one cached scan of the text.  A cached rejection raises a new, equal
:class:`GuardViolation`.  The guard keeps no other state and is thread-safe (each thread has its
own sqlglot tokenizer).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass, field
from typing import Final, NoReturn

from sqlite_cells.codec import GuardViolation, StatementError
from sqlite_cells.runtime import plain_text
from sqlite_cells.sql._kinds import OP, QUOTED, STRING, WORD, Tok, matching
from sqlite_cells.sql._names import (
    ALLOWED_SQLITE_FUNCTIONS,
    DATABASE_NAMES,
    DDL_VERBS,
    FORBIDDEN_FUNCTIONS,
    FORBIDDEN_VERBS,
    READ_VERBS,
    RESERVED_PREFIXES,
    ROW_COUNT_FUNCTIONS,
    SCHEMA_READERS,
    TRANSACTION_VERBS,
    VIRTUAL_PREFIX,
    WRITE_VERBS,
)
from sqlite_cells.sql._positions import may_name_a_cte
from sqlite_cells.sql._statement import (
    CACHE_MAX_ENTRIES,
    CACHE_MAX_SQL_LENGTH,
    Statement,
    clear_scan_cache,
    scan_sql,
)

__all__ = [
    "CACHE_MAX_ENTRIES",
    "CACHE_MAX_SQL_LENGTH",
    "MAX_STATEMENT_LENGTH",
    "CheckedStatement",
    "Mode",
    "check_statement",
]


class Mode(enum.Enum):
    """What a statement is for: a query (READ) or a write inside a transaction (WRITE)."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class CheckedStatement:
    """A statement the guard accepted: exactly one statement of an allowed kind for ``mode``.

    ``verb`` is the main statement's verb after any WITH clause: "SELECT" or "VALUES" in READ
    mode, "INSERT", "REPLACE", "UPDATE" or "DELETE" in WRITE mode.  ``statement`` is the scan
    every other reader of the text shares.
    """

    sql: str
    mode: Mode
    verb: str
    statement: Statement | None = field(default=None, compare=False, repr=False)


# How much of a statement from user code the guard reads (characters, each string literal,
# quoted name and comment counting as one). Reading costs ≈ 1.5–3 µs a token (most of it the
# tokenizer, in C, which nothing interrupts), before any deadline can run: a list of a million
# values held a read or write seconds past its timeout (R44), and so did a text of a million
# short literals or comments. A long literal or comment is one token: cheap. Long lists of
# values go in as one parameter (a JSON array, json_each(?)).
MAX_STATEMENT_LENGTH: Final = 500_000
# The pieces that count as one character each: string literals, quoted names and comments.
# One left open runs to the end of the text (``open``; the guard stops there at once, as an
# unterminated piece): matched so, a text of many unclosed openers is read once, not once from
# each of them (a text of half a million `[` took minutes, holding the interpreter).
_PIECES: Final = re.compile(
    r"(?P<closed>'[^']*(?:''[^']*)*'|\"[^\"]*(?:\"\"[^\"]*)*\"|`[^`]*(?:``[^`]*)*`|\[[^\]]*\]"
    r"|/\*[^*]*\*+(?:[^/*][^*]*\*+)*/|--[^\n]*)"
    r"|(?P<open>['\"`\[][\s\S]*|/\*[\s\S]*)",
)


def _too_long(sql: str) -> int:
    """How many characters of ``sql`` the guard would read as tokens (a literal, quoted name or
    comment counting as one), when over the limit (0 when not). One linear pass in C."""
    if len(sql) <= MAX_STATEMENT_LENGTH:
        return 0
    counted = len(_PIECES.sub("\x00", sql))
    return counted if counted > MAX_STATEMENT_LENGTH else 0


class StatementTooLong(StatementError):
    """A statement longer than :data:`MAX_STATEMENT_LENGTH` (private: callers catch
    ``ValueError``, ``StatementError`` or ``SqliteCellsError``)."""


class NotAStatement(StatementError, TypeError):
    """A statement given as something other than a ``str`` (private: callers catch
    ``TypeError``, ``StatementError`` or ``SqliteCellsError``)."""


def check_statement(sql: str, mode: Mode) -> CheckedStatement:
    """Check one statement from user code for ``mode`` (R20–R24); see the module docstring.

    Raises :class:`GuardViolation` (a ``ValueError``) for a refused statement and ``TypeError``
    when ``sql`` is not a ``str`` or ``mode`` not a :class:`Mode`.
    """
    if type(sql) is not str:
        if not isinstance(sql, str):
            raise NotAStatement(
                f"sql must be a str, not {type(sql).__name__}: pass the statement's text"
            )
        sql = plain_text(sql)  # its text, which SQLite runs; never what __str__ says
    if not isinstance(mode, Mode):
        raise TypeError(f"mode must be a Mode, not {type(mode).__name__}")
    if counted := _too_long(sql):
        raise StatementTooLong(
            f"the statement has {counted:,} characters outside its string literals and "
            f"comments (each of those counting as one); the statement guard reads at most "
            f"{MAX_STATEMENT_LENGTH:,} (R44: "
            "reading more would run past any timeout): pass long lists of values as one "
            "parameter, e.g. `x IN (SELECT value FROM json_each(?))` with a JSON array, or "
            "split a write into several (exec_many takes many rows of parameters); nothing "
            "was run"
        )
    verdict = _verdict(sql, mode) if len(sql) <= CACHE_MAX_SQL_LENGTH else _judge(sql, mode)
    if isinstance(verdict, CheckedStatement):
        return verdict
    kind, offset, message = verdict
    if kind == _SYNTAX:
        kind = _ANYTHING_ELSE[mode]
    raise GuardViolation(kind, sql, offset, message)


_SYNTAX: Final = "syntax"
# R22's "anything else" per mode: text that is no statement at all gets it too, so a caller only
# ever sees R24's kinds; the message keeps the "syntax error: …" detail.
_ANYTHING_ELSE: Final = {Mode.READ: "not-read-only", Mode.WRITE: "not-a-write"}


def clear_cache() -> None:
    """Forget every cached verdict and scan (for tests and benchmarks)."""
    _verdict.cache_clear()
    clear_scan_cache()


@functools.lru_cache(maxsize=CACHE_MAX_ENTRIES)
def _verdict(sql: str, mode: Mode) -> CheckedStatement | tuple[str, int, str]:
    return _judge(sql, mode)


def _judge(sql: str, mode: Mode) -> CheckedStatement | tuple[str, int, str]:
    """The accepted statement, or (kind, offset, message) of the refusal."""
    try:
        return _check(scan_sql(sql), mode)
    except _Refusal as refusal:
        return refusal.verdict


class _Refusal(Exception):
    def __init__(self, kind: str, offset: int, message: str) -> None:
        self.verdict = (kind, offset, message)


def refuse(kind: str, sql: str, offset: int, message: str) -> NoReturn:
    raise _Refusal(kind, offset, message)


def snippet(sql: str, start: int, end: int) -> str:
    text = sql[start:end]
    return text if len(text) <= 60 else text[:57] + "..."


# --- The rules --------------------------------------------------------------------------------

_READ_VERBS: Final = READ_VERBS
_WRITE_VERBS: Final = WRITE_VERBS
# Words SQLite accepts as the first word of a statement: anything else is a syntax error.
_STATEMENT_WORDS: Final = (
    _READ_VERBS | _WRITE_VERBS | FORBIDDEN_VERBS | DDL_VERBS | {"WITH", "EXPLAIN"}
)
# The guard's tokens carry names upper-cased (ASCII): the same facts, in upper case.
_ROW_COUNT_CALLS: Final = frozenset(name.upper() for name in ROW_COUNT_FUNCTIONS)
_FORBIDDEN_CALLS: Final = frozenset(name.upper() for name in FORBIDDEN_FUNCTIONS) | _ROW_COUNT_CALLS
_ALLOWED_SQLITE_CALLS: Final = frozenset(name.upper() for name in ALLOWED_SQLITE_FUNCTIONS)
_DATABASE_NAMES: Final = frozenset(name.upper() for name in DATABASE_NAMES)
_PREFIXES: Final = tuple(prefix.upper() for prefix in (*RESERVED_PREFIXES, VIRTUAL_PREFIX))
_REFUSED_TABLES: Final = frozenset(name.upper() for name in SCHEMA_READERS)
_SPECIAL: Final = (*_PREFIXES, *sorted(_REFUSED_TABLES))
# Words the rule pass looks at more closely.
_NOTABLE_WORDS: Final = frozenset({"TEMP", "TEMPORARY", "RETURNING"})
_NAME_KINDS: Final = (WORD, QUOTED, STRING)
_LOOK_AT: Final = _NOTABLE_WORDS | _FORBIDDEN_CALLS


def _check(statement: Statement, mode: Mode) -> CheckedStatement:
    sql = statement.sql
    if statement.problem is not None:
        kind, offset, message = statement.problem
        readable = statement.readable()  # None unless kind is "syntax"
        if readable is not None and readable.body:
            # R24: a rule broken before the text SQLite cannot read is met first.
            _statement_kind(readable, mode, whole=False)
            _scan_rules(readable, mode, whole=False)
        refuse(kind, sql, offset, message)
    verb = _statement_kind(statement, mode)
    _scan_rules(statement, mode)
    return CheckedStatement(sql, mode, verb, statement)


def _statement_kind(statement: Statement, mode: Mode, *, whole: bool = True) -> str:
    """The allowlist of statement kinds, decided at the first keyword and the main verb.

    Not ``whole``: ``statement`` is the part SQLite reads before a ``syntax`` problem
    (:meth:`Statement.readable`).  When that part ends inside the WITH list, the main verb is
    not known: only the first keyword decides, and "" is returned.
    """
    sql, tokens = statement.sql, statement.tokens
    kind, key, start, end = tokens[0]
    if kind != WORD or key not in _STATEMENT_WORDS:
        refuse(
            "syntax",
            sql,
            start,
            f"syntax error: {snippet(sql, start, end)!r} does not start an SQL statement; "
            "check the spelling (SELECT, VALUES, WITH, INSERT, REPLACE, UPDATE, DELETE)",
        )
    if key in FORBIDDEN_VERBS or key in DDL_VERBS:
        _refuse_verb(sql, key, start)
    index = statement.verb_index
    if index >= statement.body and not whole:
        return ""  # the text SQLite cannot read starts before the main verb
    if index >= statement.body or not statement.verb_shaped:
        if index < statement.body:
            kind, key, start, _end = tokens[index]
            if kind == WORD and (key in FORBIDDEN_VERBS or key in DDL_VERBS):
                _refuse_verb(sql, key, start)  # rejected everywhere (R21), a CTE body included
        offset = tokens[index][2] if index < statement.body else len(sql)
        _refuse_syntax_at(
            statement,
            mode,
            offset,
            "syntax error: a malformed WITH clause; write WITH name AS (SELECT …) followed by "
            "the statement",
        )
    verb, offset = statement.verb, tokens[index][2]
    if index and (verb in FORBIDDEN_VERBS or verb in DDL_VERBS):
        # A statement SQLite refuses after a WITH list, but rejected everywhere all the same
        # (R21): its verb decides the kind, met at WITH, the statement's first keyword (R24).
        _refuse_verb(sql, verb, tokens[0][2])
    if index and verb not in _READ_VERBS and verb not in _WRITE_VERBS:
        _refuse_syntax_at(
            statement,
            mode,
            offset,
            f"syntax error: {snippet(sql, offset, tokens[index][3])!r} cannot follow a WITH "
            "clause; write SELECT, VALUES, INSERT, REPLACE, UPDATE or DELETE",
        )
    # R24: a statement-kind verdict is met at the statement's first keyword — WITH, for a
    # statement that starts with one — so no rule broken inside the WITH list comes first.
    first = tokens[0][2]
    if mode is Mode.READ:
        if verb not in _READ_VERBS:
            refuse(
                "not-read-only",
                sql,
                first,
                f"a read must be SELECT, VALUES or WITH … SELECT, found {verb}: "
                + _elsewhere(verb, "send writes with db.exec(...) inside a transaction"),
            )
    elif verb not in _WRITE_VERBS:
        refuse(
            "not-a-write",
            sql,
            first,
            "a write must be INSERT, REPLACE, UPDATE or DELETE (optionally after WITH), "
            f"found {verb}: " + _elsewhere(verb, "send queries with db.read(...) or db.query(...)"),
        )
    return verb


def _refuse_syntax_at(statement: Statement, mode: Mode, offset: int, message: str) -> NoReturn:
    """Refuse the statement as SQLite cannot read it from ``offset`` on (a WITH list that is
    malformed or followed by no statement): a rule broken before that is met first (R24), as
    for text that does not tokenize."""
    before = statement.before(offset)
    if before.body:
        _scan_rules(before, mode, whole=False)
    refuse("syntax", statement.sql, offset, message)


def _elsewhere(verb: str, advice: str) -> str:
    """What to do with a statement of ``verb`` the call does not take: ``advice`` (the other
    call) for a statement of the other kind; nothing runs ``EXPLAIN`` or other statements."""
    if verb in _READ_VERBS or verb in _WRITE_VERBS:
        return advice
    if verb == "EXPLAIN":
        return "EXPLAIN is not run; run the statement itself (its plan is SQLite's to choose)"
    return "only reads (db.read, db.query) and writes (db.exec) are run"


def _refuse_verb(sql: str, key: str, start: int) -> NoReturn:
    """``forbidden-statement`` or ``ddl`` for the statement's first keyword ``key``."""
    if key in DDL_VERBS:
        refuse(
            "ddl",
            sql,
            start,
            f"{key} is not allowed: declare tables and indexes in the database cell's schema "
            "and let the runtime migrate it",
        )
    if key in TRANSACTION_VERBS:
        why = "the runtime runs every statement inside its own transaction"
    elif key in ("ATTACH", "DETACH"):
        why = "a database cell only sees its own tables"
    elif key == "PRAGMA":
        why = "connection and file settings belong to the runtime"
    else:
        why = "the runtime maintains the database files"
    refuse("forbidden-statement", sql, start, f"{key} statements are not allowed: {why}")


def _scan_rules(statement: Statement, mode: Mode, *, whole: bool = True) -> None:
    """The token rules in one left-to-right pass; the leftmost token that breaks one decides.

    At one token the rules apply in the order schema-qualified, temp-object,
    forbidden-function, reserved-name, returning.  Not ``whole``: ``statement`` is the part
    SQLite reads before a ``syntax`` problem, and a rule that needs tokens beyond it does not
    apply (:func:`_names_a_cte`).
    """
    entries, count = statement.tokens, statement.body
    string_names = statement.string_names
    write = mode is Mode.WRITE
    previous: Tok = (-1, "", 0, 0)
    last = count - 1
    # Without a ".", a word can only break a rule by what it is (a notable keyword, a forbidden
    # call, a reserved prefix): the others need not look at their neighbours.
    plain_words = not statement.has_dot
    look_at, special = _LOOK_AT, _SPECIAL
    for i in range(count):
        entry = entries[i]
        kind, key = entry[0], entry[1]
        if kind == OP or (
            plain_words and kind == WORD and key not in look_at and not key.startswith(special)
        ):
            previous = entry
            continue
        following = entries[i + 1][1] if i < last and entries[i + 1][0] == OP else ""
        if kind == WORD:
            if (
                key not in _NOTABLE_WORDS
                and following not in (".", "(")
                and not key.startswith(special)
            ):
                previous = entry  # the common case: a plain name or keyword
                continue
        elif kind != QUOTED and (kind != STRING or i not in string_names):
            previous = entry
            continue
        _check_name(statement, i, following, previous, write, whole)
        previous = entry


def _check_name(
    statement: Statement, i: int, following: str, previous: Tok, write: bool, whole: bool
) -> None:
    """The rules for the word, quoted identifier or string-literal name at ``i``, in order."""
    sql, entries, count = statement.sql, statement.tokens, statement.body
    entry = entries[i]
    kind, key, start, end = entry
    notable = kind == WORD and key in _NOTABLE_WORDS
    if following == "." and (
        key in _DATABASE_NAMES or (i + 3 < count and entries[i + 3][1] == ".")
    ):
        _check_qualified(sql, entries, i, count)
    if notable:
        _check_temp(entry, previous, sql)
    if key in _REFUSED_TABLES:
        _refuse_pragma_function(sql, start, end)
    # A name with "(" after it is a call, but not after INTO or AS: there it is a table, an
    # alias (INSERT INTO t AS x (a)) or a type's name (CAST(b AS x(10))), whatever follows.
    called = (
        following == "("
        and kind != STRING
        and (previous[0] != WORD or previous[1] not in _NAMED_BEFORE_PARENTHESIS)
    )
    if called and key in _FORBIDDEN_CALLS and not _names_a_cte(entries, i + 1, count, whole):
        if key in _ROW_COUNT_CALLS:
            why = (
                "it counts the rows of the runtime's connection, not of your statements; "
                "count them with a query (SELECT count(*) …) before or after the write"
            )
        else:
            why = "it reaches outside the database cell"
        refuse(
            "forbidden-function", sql, start, f"function {sql[start:end]}() is not allowed: {why}"
        )
    if key.startswith(_PREFIXES):
        if key.startswith(_PREFIXES[-1]):  # pragma_
            _refuse_pragma_function(sql, start, end)
        if not (called and key in _ALLOWED_SQLITE_CALLS):
            refuse(
                "reserved-name",
                sql,
                start,
                f"reserved name {sql[start:end]!r}: names starting with sqlite_ or _cf_ "
                "belong to SQLite and the runtime; rename your table, column or alias",
            )
    if notable and key == "RETURNING":
        if write:
            why = (
                "a write returns no rows; read the data with a query after the transaction commits"
            )
        else:
            why = "a query reads rows with SELECT; RETURNING belongs to writes, which return none"
        refuse("returning", sql, start, f"RETURNING is not allowed: {why}")


_NAMED_BEFORE_PARENTHESIS: Final = frozenset({"INTO", "AS"})


def _names_a_cte(entries: tuple[Tok, ...], opening: int, count: int, whole: bool) -> bool:
    """Whether the parenthesis group opening at ``opening`` is a CTE's column list (``WITH
    name(a, b) AS (…)``): its ``)`` is followed by ``AS [[NOT] MATERIALIZED] (``. After a call,
    ``AS`` names an alias (``materialized`` may be one), which no ``(`` follows.

    Not ``whole`` (the tokens stop where SQLite can read no further): when they stop before
    that shape is complete or broken, the group counts as a column list if the name stands
    where a CTE's name can (:func:`~sqlite_cells.sql._positions.may_name_a_cte`), so
    ``WITH edit(a, 'x`` is not a call.
    """
    closing = matching(entries, opening, 1)  # (that group alone: there may be thousands)
    if closing >= 0:
        found = _is_cte_body_next(entries, closing + 1, count, whole)
        if found is not None:
            return found
    elif whole:
        return False
    return may_name_a_cte(entries, opening - 1)


_CTE_BODY_OPENERS: Final = (["AS"], ["AS", "MATERIALIZED"], ["AS", "NOT", "MATERIALIZED"])
_CTE_BODY_STARTS: Final[tuple[list[str], ...]] = ([], ["AS"], ["AS", "NOT"], *_CTE_BODY_OPENERS)


def _is_cte_body_next(entries: tuple[Tok, ...], i: int, count: int, whole: bool) -> bool | None:
    """Whether ``AS [[NOT] MATERIALIZED] (`` starts at ``i``; None when not ``whole`` and the
    tokens stop inside what could still be that."""
    words: list[str] = []
    j = i
    while j < count and entries[j][0] == WORD and len(words) < 3:
        words.append(entries[j][1])
        j += 1
    if j == count and not whole and words in _CTE_BODY_STARTS:
        return None
    return j < count and entries[j][:2] == (OP, "(") and words in _CTE_BODY_OPENERS


def _check_temp(entry: Tok, previous: Tok, sql: str) -> None:
    _kind, key, start, _end = entry
    if (key == "TEMP" or key == "TEMPORARY") and previous[0] == WORD and previous[1] == "CREATE":
        refuse(
            "temp-object",
            sql,
            start,
            f"CREATE {key}: temporary tables, views and triggers are not allowed (the database "
            "owns its DDL)",
        )


def _refuse_pragma_function(sql: str, start: int, end: int) -> NoReturn:
    refuse(
        "forbidden-function",
        sql,
        start,
        f"{sql[start:end]} is not allowed: pragma functions and dbstat look beyond the database "
        "cell's own tables",
    )


def _check_qualified(sql: str, entries: tuple[Tok, ...], i: int, count: int) -> None:
    """The name at ``i`` is followed by a dot: refuse database names and three-part names."""
    if i + 2 >= count or entries[i + 2][0] not in _NAME_KINDS:
        return
    _kind, key, start, _end = entries[i]
    if key in _DATABASE_NAMES:
        refuse(
            "schema-qualified",
            sql,
            start,
            f"schema-qualified name {snippet(sql, start, entries[i + 2][3])!r}: refer to tables "
            "unqualified; a database cell only sees its own tables",
        )
    if (
        i + 4 < count
        and entries[i + 3][1] == "."
        and entries[i + 3][0] == OP
        and entries[i + 4][0] in _NAME_KINDS
    ):
        refuse(
            "schema-qualified",
            sql,
            start,
            f"three-part name {snippet(sql, start, entries[i + 4][3])!r}: a database cell only "
            "sees its own tables; qualify columns as table.column at most",
        )

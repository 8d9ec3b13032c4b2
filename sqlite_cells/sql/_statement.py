"""The SQL front end: one scan of a statement into one immutable :class:`Statement`.

Every reader of user SQL — the guard (R20–R24), parameter mapping (R31), the schema code — reads
the :class:`Statement` that :func:`scan_sql` returns, so the same text is tokenized once, by
sqlglot's SQLite tokenizer (its "command" capture switched off: it would turn everything after a
leading REPLACE into one opaque string), and cached per text in a bounded LRU cache.

SQLite's tokens from sqlglot's
------------------------------
sqlglot is not SQLite: :mod:`sqlite_cells.sql._lexer` checks, on the one token list, that SQLite
would split the text the same way and says where it would not.  The scan adds the checks on the
whole text: NUL anywhere (SQLite stops reading there) and text that cannot be encoded (lone
surrogates) are ``syntax`` too (a kind of this package only: the guard raises it as the mode's
``not-read-only`` or ``not-a-write``, R22).

What a Statement holds
----------------------
``tokens``: SQLite's tokens as ``(kind, key, start, end)`` tuples — ``key`` is the text
upper-cased (ASCII letters only, as SQLite folds) for words and operators, the unescaped text
upper-cased for quoted identifiers and string literals, the text for parameters.  ``body`` is the
number of tokens before the first ``;``; ``has_dot`` says whether a ``.`` operator appears
(a qualified name).  ``problem`` is the first of ``empty``, ``multiple-statements`` and
``syntax`` that applies, as ``(kind, offset, message)``; for ``syntax``,
:meth:`Statement.readable` is the part before it, which the guard judges first (R24).  ``verb``
is the main statement's verb after any WITH list.  ``string_names`` are the indexes of string
literals SQLite reads as names (R24); :meth:`Statement.tables` and :meth:`Statement.functions`
are the names it resolves as tables and the names it calls, with their offsets
(:mod:`sqlite_cells.sql._positions`; worked out on demand — the guard only needs
``string_names``, and most string literals are plain data that skip that pass).  ``params``
are the parameter occurrences with SQLite's numbers, and for an INSERT, REPLACE or UPDATE
``targets`` says which column each occurrence is bound to, for a read which link column each
is compared with (:mod:`sqlite_cells.sql._targets`, worked out during the scan so that
sqlglot's tokens, needed for the rare parse, are never kept).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from sqlite_cells.runtime import plain_text
from sqlite_cells.sql._kinds import (
    BLOB,
    NUMBER,
    OP,
    PARAM,
    QUOTED,
    STRING,
    WORD,
    Param,
    Target,
    Tok,
)
from sqlite_cells.sql._lexer import (
    BOM,
    Lexer,
    is_idchar,
    skip_gap,
    sqlglot_tokens,
    syntax_message,
    unescape,
    unquote,
)
from sqlite_cells.sql._names import READ_VERBS, fold_ascii, upper_ascii
from sqlite_cells.sql._positions import find_names, may_be_names
from sqlite_cells.sql._targets import Draft, find_targets

__all__ = [
    "BLOB",
    "CACHE_MAX_ENTRIES",
    "CACHE_MAX_SQL_LENGTH",
    "NUMBER",
    "OP",
    "PARAM",
    "QUOTED",
    "STRING",
    "WORD",
    "JoinsByName",
    "Param",
    "Statement",
    "Word",
    "clear_scan_cache",
    "first_keyword",
    "reads_nothing_after",
    "resolves_by_replace",
    "scan_sql",
    "unquote",
]

Problem = tuple[str, int, str]  # (kind, offset, message); the guard maps "syntax" to R22's kinds

CACHE_MAX_ENTRIES: Final = 4096
CACHE_MAX_SQL_LENGTH: Final = 10_000
_MAX_VARIABLE: Final = 32766  # SQLITE_MAX_VARIABLE_NUMBER's default


class Word(NamedTuple):
    """A token for the schema code: its kind, source text, start, and the name it stands for
    (unquoted) when it is a word, a quoted identifier or a string literal."""

    kind: int
    text: str
    start: int
    name: str


class JoinsByName(NamedTuple):
    """See :meth:`Statement.joins_by_name`: the tables a statement names (ASCII-folded), those
    it names more than once (a table joined to itself shares every column with itself), the key
    columns its text tells (what its ``USING`` clauses list; with a ``NATURAL`` join, every
    name it spells), and whether it has a ``NATURAL`` join (whose keys the file tells too)."""

    tables: frozenset[str]
    repeated: frozenset[str]
    using: frozenset[str]
    natural: bool


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Statement:
    """One scanned statement (see the module docstring); built only by :func:`scan_sql`."""

    sql: str
    tokens: tuple[Tok, ...]
    body: int
    problem: Problem | None
    has_comment: bool
    has_dot: bool
    verb: str
    verb_index: int
    verb_shaped: bool
    string_names: frozenset[int]
    params: tuple[Param, ...]
    param_count: int
    param_names: tuple[tuple[str, int], ...]
    targets: tuple[Target, ...]

    def tables(self) -> tuple[tuple[str, int], ...]:
        """The names SQLite resolves as tables (string literals in name positions included),
        ASCII-folded, with their offsets."""
        return find_names(self.sql, self.tokens, self.body)[1]

    def joins_by_name(self) -> JoinsByName | None:
        """What a statement that joins by column name — ``USING (…)`` or a ``NATURAL`` join —
        needs added to its read set, else None. SQLite matches such a join's columns without
        telling the authorizer it reads them (``SELECT b FROM t JOIN u USING (a)`` reports
        ``t.b`` alone), so the caller adds each key column to each table the statement names
        (a table without that column is never written there): the columns a ``USING`` lists,
        and for a ``NATURAL`` join the columns its tables share (which only the file knows) and
        every name the statement spells (a subquery's ``AS c`` or a CTE's column list can make
        a key of any of them)."""
        tokens, body = self.tokens, self.body
        using: set[str] = set()
        natural = False
        for i in range(body):
            kind, key = tokens[i][0], tokens[i][1]
            if kind != WORD or key not in _JOINS_BY_NAME:
                continue
            if key == "NATURAL":
                natural = True
                continue
            j = i + 2 if i + 1 < body and tokens[i + 1][1] == "(" else body
            while j < body and tokens[j][0] in (WORD, QUOTED):
                using.add(fold_ascii(unquote(self.sql[tokens[j][2] : tokens[j][3]])))
                if j + 1 >= body or tokens[j + 1][1] != ",":
                    break
                j += 2
        if not using and not natural:
            return None
        named = [name for name, _offset in self.tables()]
        tables = frozenset(named)
        repeated = frozenset(name for name in tables if named.count(name) > 1)
        if natural:
            using.update(
                fold_ascii(unquote(self.sql[start:end]))
                for kind, _key, start, end in tokens[:body]
                if kind in (WORD, QUOTED)
            )
        return JoinsByName(tables, repeated, frozenset(using), natural)

    def functions(self) -> tuple[tuple[str, int], ...]:
        """The names SQLite calls as functions (table-valued functions included), ASCII-folded,
        with their offsets."""
        return find_names(self.sql, self.tokens, self.body)[2]

    def readable(self) -> Statement | None:
        """The part of the statement SQLite reads before its ``syntax`` problem, as a statement
        of its own for the guard's rules (R24: the first rule met left to right decides), or
        None when :attr:`problem` is not ``syntax``.

        Its tokens are those that end at or before the problem's offset P and belong to the
        first statement; the last one is left out when it touches P with identifier characters
        on both sides (``sqlite_master\xa0``: SQLite reads one token there, not the one the
        guard has).  So the last token is never followed by a ``(`` or ``.`` it could be read
        with.  ``verb_index`` is ``body`` when the main verb is not among the tokens (P falls
        inside the WITH list).  Parameters and targets are left out: the rules do not read them.
        Worked out on demand, only for refused text: the scan of text that tokenizes pays
        nothing for it.
        """
        problem = self.problem
        if problem is None or problem[0] != "syntax":
            return None
        return self.before(problem[1])

    def before(self, offset: int) -> Statement:
        """The part of the statement before ``offset``, as :meth:`readable` tells it."""
        sql, tokens = self.sql, self.tokens
        count = 0
        limit = min(self.body, len(tokens))
        while count < limit and tokens[count][3] <= offset:
            count += 1
        if (
            count
            and tokens[count - 1][3] == offset
            and offset < len(sql)
            and is_idchar(sql[offset])
            and is_idchar(sql[offset - 1])
        ):
            count -= 1
        prefix = tokens[:count]
        verb_index, verb_shaped = _main_verb(prefix, count)
        verb = prefix[verb_index][1] if verb_index < count and prefix[verb_index][0] == WORD else ""
        strings = [i for i, token in enumerate(prefix) if token[0] == STRING]
        string_names = _NO_STRINGS
        if may_be_names(prefix, count, strings):
            string_names = find_names(sql, prefix, count)[0]
        return dataclasses.replace(
            self,
            tokens=prefix,
            body=count,
            problem=None,
            has_dot=any(token[0] == OP and token[1] == "." for token in prefix),
            verb=verb,
            verb_index=verb_index,
            verb_shaped=verb_shaped,
            string_names=string_names,
            params=(),
            param_count=0,
            param_names=(),
            targets=(),
        )

    def words(self) -> list[Word]:
        """Every token as a :class:`Word` (for code that is not on a hot path).  When sqlglot
        could not tokenize the whole text, what it left is one last :data:`OP` word holding that
        text verbatim, so two texts that differ there never read as the same words."""
        sql = self.sql
        out = []
        covered = 0
        for kind, _key, start, end in self.tokens:
            text = sql[start:end]
            name = unescape(text) if kind in (QUOTED, STRING) else text
            out.append(Word(kind, text, start, name))
            covered = end
        rest = sql[covered:]
        if self.problem is not None and self.problem[0] == "syntax" and rest.strip():
            out.append(Word(OP, rest, covered, rest))
        return out


def scan_sql(sql: str) -> Statement:
    """The :class:`Statement` of ``sql``, scanned once per text (bounded LRU cache).  A text
    longer than :data:`CACHE_MAX_SQL_LENGTH` is not kept: it is scanned again unless its
    :class:`Statement` is still held somewhere (a caller holding the guard's verdict while it
    maps the parameters, say).  Never raises for any ``str``; a ``str`` subclass is read as
    its text (its own ``__eq__`` or ``__hash__`` would find another text's scan)."""
    sql = plain_text(sql)
    if len(sql) > CACHE_MAX_SQL_LENGTH:
        statement = _held_scans.get(sql)
        if statement is None:
            statement = _held_scans[sql] = _scan(sql)
        return statement
    return _scan_cached(sql)


# Long texts' scans, for as long as something else holds them (a scan of a megabyte statement
# holds tens of megabytes of tokens: kept no longer than its call needs it).
_held_scans: weakref.WeakValueDictionary[str, Statement] = weakref.WeakValueDictionary()


@functools.lru_cache(maxsize=CACHE_MAX_ENTRIES)
def _scan_cached(sql: str) -> Statement:
    return _scan(sql)


def clear_scan_cache() -> None:
    """Forget every cached scan (for tests and benchmarks)."""
    _scan_cached.cache_clear()
    _held_scans.clear()


def _scan(sql: str) -> Statement:
    if not isinstance(sql, str):
        raise TypeError(f"sql must be a str, not {type(sql).__name__}")
    raw, failed = sqlglot_tokens(sql)
    builder = Lexer(sql, raw)
    builder.build(failed)
    tokens = builder.tokens
    end = _statement_end(tokens, builder.semicolon)
    bad = builder.problem
    if end >= 0 and tokens[end][3] <= bad and reads_nothing_after(sql, tokens[end][3]):
        # Only byte-order marks (sqlglot's words, SQLite's spaces) and what SQLite skips
        # follow the statement's ";": one statement, as apsw runs it.
        del tokens[end + 1 :]
        bad = -1
    problem = _problem(sql, tokens, bad, end)
    body = builder.semicolon if builder.semicolon >= 0 else len(tokens)
    verb_index, verb_shaped = _main_verb(tokens, body)
    verb = ""
    if verb_index < body and tokens[verb_index][0] == WORD:
        verb = tokens[verb_index][1]
    string_names = _NO_STRINGS
    if may_be_names(tokens, body, builder.strings):
        string_names = find_names(sql, tokens, body)[0]
    params, count, names = _number_params(tokens, builder.params_raw)
    if problem is None:
        problem = _unnumbered(tokens, params)
    targets: tuple[Target, ...] = ()
    if params and verb in _MAPPED_VERBS and problem is None:
        draft = Draft(sql, tokens, body, params, builder.params_raw, verb, verb_index, raw)
        targets = find_targets(draft)
    return Statement(
        sql=sql,
        tokens=tuple(tokens),
        body=body,
        problem=problem,
        has_comment=builder.comment,
        has_dot=builder.dot,
        verb=verb,
        verb_index=verb_index,
        verb_shaped=verb_shaped,
        string_names=string_names,
        params=tuple(params),
        param_count=count,
        param_names=names,
        targets=targets,
    )


_JOINS_BY_NAME: Final = frozenset({"NATURAL", "USING"})
# The statements whose parameters have targets: the writes that bind columns, and the reads
# (which may compare a parameter with a link column).
_MAPPED_VERBS: Final = frozenset({"INSERT", "REPLACE", "UPDATE"}) | READ_VERBS


_NO_STRINGS: Final[frozenset[int]] = frozenset()
_SKIPPED_AFTER_SEMICOLON: Final = " \t\n\r"  # what apsw skips before the next statement
_MULTIPLE_MESSAGE: Final = (
    "more than one statement (a second one starts here, after ';'): pass one statement per call"
)
_EMPTY_MESSAGE: Final = "no statement (only whitespace, comments or ';'): pass one SQL statement"


def _statement_end(tokens: list[Tok], first_semicolon: int) -> int:
    """The ``;`` that ends the first statement: the first one, except in ``CREATE [TEMP]
    TRIGGER … BEGIN …; END``, whose body's ``;`` belong to it (SQLite reads the whole trigger
    as one statement, so it is DDL, not several statements: R24)."""
    if first_semicolon < 0 or not tokens or tokens[0][1] != "CREATE" or tokens[0][0] != WORD:
        return first_semicolon
    words = [t[1] for t in tokens[1:4] if t[0] == WORD]
    if "TRIGGER" not in words:
        return first_semicolon
    ends = [i for i, t in enumerate(tokens) if t[0] == WORD and t[1] == "END"]
    if not ends or ends[-1] < first_semicolon:
        return first_semicolon
    after = [
        i for i in range(ends[-1] + 1, len(tokens)) if tokens[i][0] == OP and tokens[i][1] == ";"
    ]
    return after[0] if after else -1


def reads_nothing_after(sql: str, start: int) -> bool:
    """Whether SQLite reads no statement in ``sql[start:]``, the text after a statement's ``;``.

    apsw skips spaces, tabs, newlines and carriage returns there and prepares the rest, where
    SQLite's tokenizer skips whitespace runs (one starts with space, tab, newline, form feed or
    carriage return and may go on with ``\\v``), comments, and a U+FEFF that starts a token (a
    space to it).  An unterminated ``/*`` comment is refused as anywhere else (not read here).
    """
    i, size = start, len(sql)
    while i < size and sql[i] in _SKIPPED_AFTER_SEMICOLON:
        i += 1
    return _first_token(sql, i) == size


def _first_token(sql: str, start: int) -> int:
    """Where SQLite's tokenizer meets the first token of ``sql[start:]`` (skipping whitespace,
    comments and a U+FEFF that starts a token), ``len(sql)`` when there is none, or -1 inside
    an unterminated ``/*`` comment."""
    i, size = start, len(sql)
    while True:
        i, _ = skip_gap(sql, i, size, True)
        if i < 0:
            return size
        if sql[i] != BOM:  # (a space to SQLite where a token starts; the gap's own end here)
            return -1 if sql.startswith("/*", i) else i
        i += 1


def first_keyword(sql: str) -> str:
    """The first word SQLite reads in ``sql``, upper-cased (ASCII), or "" when its first token
    is not a bare word (a quote, a parenthesis, nothing). What the runtime checks a statement's
    kind by where it runs a text the guard may not have seen (R23: ``REINDEX table`` reaches no
    authorizer callback)."""
    i = _first_token(sql, 0)
    if i < 0:
        return ""
    end = i
    while end < len(sql) and is_idchar(sql[end]):  # (the word SQLite reads, as the lexer does)
        end += 1
    return upper_ascii(sql[i:end])


def _problem(sql: str, tokens: list[Tok], bad: int, first_semicolon: int) -> Problem | None:
    """empty, then multiple-statements, then syntax (R24; ``syntax`` is raised as R22's kinds)."""
    if bad < 0 and all(t[0] == OP and t[1] == ";" for t in tokens) and "\x00" not in sql:
        return ("empty", 0, _EMPTY_MESSAGE)
    if "\x00" in sql:  # SQLite stops reading there, even inside a literal or a comment
        nul = sql.index("\x00")
        bad = nul if bad < 0 else min(bad, nul)
    semicolon = tokens[first_semicolon][3] if first_semicolon >= 0 else -1
    if semicolon >= 0 and bad < 0:
        # apsw skips spaces, tabs, newlines and carriage returns after a ";" and prepares the
        # rest, where a \v it reaches first is no longer part of a whitespace run: SQLite reads
        # it as a second statement.  A \v further on (in a comment, after a form feed) is
        # whitespace or comment text to SQLite, as anywhere else.
        rest = semicolon
        while rest < len(sql) and sql[rest] in _SKIPPED_AFTER_SEMICOLON:
            rest += 1
        if sql.startswith("\v", rest):
            bad = rest
    # Text SQLite cannot read before the first ";" fails the first statement: nothing runs.
    if (
        semicolon >= 0
        and not 0 <= bad < semicolon
        and not _ends_unread(sql, tokens, first_semicolon, bad)
    ):
        after = tokens[first_semicolon + 1][2] if first_semicolon + 1 < len(tokens) else -1
        if bad >= semicolon and (after < 0 or bad < after):
            after = bad
        if after >= 0:
            return ("multiple-statements", after, _MULTIPLE_MESSAGE)
    if not sql.isascii():
        try:
            sql.encode("utf-8")
        except UnicodeEncodeError as exc:
            if bad < 0 or exc.start < bad:  # the first problem, as the guard reads left to right
                return (
                    "syntax",
                    exc.start,
                    "syntax error: lone surrogate character; the statement cannot be encoded as "
                    "UTF-8",
                )
    if bad >= 0:
        return ("syntax", bad, syntax_message(sql, bad))
    return None


def _ends_unread(sql: str, tokens: list[Tok], first_semicolon: int, bad: int) -> bool:
    """Whether no second statement starts after the first ``;`` before text SQLite does not
    read as one: an unterminated ``/*`` comment (SQLite reads it to the end of the text) or a
    NUL (SQLite stops reading there).  Then the refusal is ``syntax``, as it is for the same
    text before the ``;``, not ``multiple-statements``."""
    if bad < 0 or not (sql[bad] == "\x00" or sql.startswith("/*", bad)):
        return False
    following = first_semicolon + 1
    return following == len(tokens) or tokens[following][2] >= bad


_CTE_BODY_STARTS: Final = frozenset({"SELECT", "VALUES", "WITH", "("})


def _main_verb(tokens: Sequence[Tok], count: int) -> tuple[int, bool]:
    """Where the main statement's verb is: 0, or after ``WITH [RECURSIVE]`` and the CTE list.

    For WITH, returns ``(index, True)`` for the token after a CTE list of the shape
    ``name [(cols)] AS [NOT] [MATERIALIZED] (…) [, …]``, and ``(index, False)`` for the token
    where that shape breaks (``count`` if the text ends first).
    """
    if count == 0 or tokens[0][0] != WORD or tokens[0][1] != "WITH":
        return 0, True
    i = 1
    if i < count and tokens[i][1] == "RECURSIVE" and tokens[i][0] == WORD:
        i += 1
    while True:
        if i >= count or tokens[i][0] not in (WORD, QUOTED, STRING):
            return i, False
        i += 1
        if i < count and tokens[i][1] == "(" and tokens[i][0] == OP:
            i = _after_parens(tokens, i, count)
        if i >= count or tokens[i][1] != "AS" or tokens[i][0] != WORD:
            return i, False
        i += 1
        if i < count and tokens[i][1] == "NOT" and tokens[i][0] == WORD:
            i += 1
            if i >= count or tokens[i][1] != "MATERIALIZED" or tokens[i][0] != WORD:
                return i, False
            i += 1
        elif i < count and tokens[i][1] == "MATERIALIZED" and tokens[i][0] == WORD:
            i += 1
        if i >= count or tokens[i][1] != "(" or tokens[i][0] != OP:
            return i, False
        # A CTE's body is a query (SELECT, VALUES or WITH …): anything else — ATTACH, PRAGMA, a
        # DDL or DML verb — breaks the shape there, so the guard judges that very token.
        body = i + 1
        if body < count and tokens[body][1] not in _CTE_BODY_STARTS:
            return body, False
        i = _after_parens(tokens, i, count)
        if i < count and tokens[i][1] == "," and tokens[i][0] == OP:
            i += 1
            continue
        return i, True


def _after_parens(tokens: Sequence[Tok], i: int, count: int) -> int:
    """Index just after the parenthesis group opening at ``i`` (``count`` if unbalanced)."""
    depth = 0
    for j in range(i, count):
        kind, key, _start, _end = tokens[j]
        if kind == OP:
            if key == "(":
                depth += 1
            elif key == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
    return count


# --- parameters (R31) --------------------------------------------------------------------------


def _unnumbered(tokens: list[Tok], params: list[Param]) -> tuple[str, int, str] | None:
    """A ``?NNN`` outside SQLite's numbers (``?0``, ``?40000``): SQLite refuses the statement
    when it prepares it, so the front end says so at the call, where the parameter is."""
    for index, slot in params:
        if slot == 0:
            _kind, text, start, _end = tokens[index]
            return (
                "syntax",
                start,
                f"parameter {text}: SQLite numbers parameters ?1 to ?{_MAX_VARIABLE}; use ? or a "
                "number in that range",
            )
    return None


def _number_params(
    tokens: list[Tok], params_raw: list[tuple[int, int, int]]
) -> tuple[list[Param], int, tuple[tuple[str, int], ...]]:
    """SQLite's numbering: ``?`` takes the next number, ``?NNN`` takes NNN, a named parameter
    takes the next number on its first use and keeps it (``:a`` and ``$a`` are two names)."""
    count = 0
    by_name: dict[str, int] = {}
    names: list[tuple[str, int]] = []
    params: list[Param] = []
    for index, _raw_first, _raw_last in params_raw:
        text = tokens[index][1]
        if text == "?":
            count += 1
            slot = count
        elif text[0] == "?":
            number = int(text[1:]) if text[1:].isdigit() and text[1:].isascii() else 0
            slot = number if 1 <= number <= _MAX_VARIABLE else 0
            count = max(count, slot)
        elif text in by_name:
            slot = by_name[text]
        else:
            count += 1
            slot = by_name[text] = count
            names.append((text[1:], slot))
        params.append((index, slot))
    return params, count, tuple(names)


def resolves_by_replace(create_sql: str) -> bool:
    """Whether a table's ``CREATE TABLE`` text has a constraint resolving conflicts by REPLACE
    (the words ``CONFLICT REPLACE`` in a row; text in quotes does not count). Such a table
    deletes a row that an INSERT or UPDATE meets without a word: a plain INSERT may replace a
    row (moving it), and a changeset applied to it may delete a row it holds for later."""
    tokens = scan_sql(create_sql).tokens
    return any(
        first[0] == WORD and first[1] == "CONFLICT" and second[0] == WORD and second[1] == "REPLACE"
        for first, second in itertools.pairwise(tokens)
    )

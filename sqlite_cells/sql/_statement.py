"""The SQL front end: one scan of a statement into one immutable :class:`Statement`.

Every reader of user SQL — the guard (R20–R24), parameter mapping (R31), the schema code — reads
the :class:`Statement` that :func:`scan_sql` returns, so the same text is tokenized once, by
sqlglot's SQLite tokenizer (its "command" capture switched off: it would turn everything after a
leading REPLACE into one opaque string), and cached per text in a bounded LRU cache.

SQLite's tokens from sqlglot's
------------------------------
sqlglot is not SQLite, so the scan checks, on the one token list, that SQLite would split the
text the same way, and records a ``syntax`` problem where it would not (or where SQLite cannot
read the text at all).  The checks are local, one per place where the two differ:

* between two tokens there may only be what SQLite skips: runs of its whitespace (a run starts
  with space, tab, newline, form feed or carriage return and may go on with ``\\v``), ``--``
  comments up to a newline or the end, and closed ``/* … */`` comments.  sqlglot also skips
  ``\\xa0``, ``\\u2028`` and ``{# … #}``, where SQLite sees identifier or illegal characters;
* a string literal, quoted identifier or blob must have SQLite's extent (the quote characters at
  both ends); ``N'…'`` and other prefixed literals of sqlglot are refused;
* two tokens that touch with identifier characters on both sides are one token to SQLite: only
  the splits of numbers (``1_000``, ``.5``) and parameters (``?1``, ``:name``, ``@name``,
  ``$a::b``) are put back together, anything else is refused;
* operators SQLite does not have (``{``, ``^``, ``::``, ``#``, ``<=>``, …) are refused, and so
  are parameters SQLite reads differently: a Tcl-style suffix (``$a(x)``), ``#`` parameters,
  a lone ``$``, ``:`` or ``@``;
* NUL anywhere (SQLite stops reading there), text that cannot be encoded (lone surrogates), an
  unterminated literal or comment, a malformed number or blob.

What a Statement holds
----------------------
``tokens``: SQLite's tokens as ``(kind, key, start, end)`` tuples — ``key`` is the text
upper-cased (ASCII letters only, as SQLite folds) for words and operators, the unescaped text
upper-cased for quoted identifiers and string literals, the text for parameters.  ``body`` is the
number of tokens before the first ``;``; ``has_dot`` says whether a ``.`` operator appears
(a qualified name).  ``problem`` is the first of ``empty``,
``multiple-statements`` and ``syntax`` that applies, as ``(kind, offset, message)``.  ``verb`` is
the main statement's verb after any WITH list.  ``string_names`` are the indexes of string
literals SQLite reads as names (R24); :meth:`Statement.tables` and :meth:`Statement.functions`
are the names it resolves as tables and the names it calls, with their offsets (worked out on
demand by the same pass; the guard only needs ``string_names``, found in that pass only when the
statement holds a string literal).  ``params`` are the parameter occurrences
with SQLite's numbers, and for an INSERT, REPLACE or UPDATE ``targets`` says which column each
occurrence is bound to (:mod:`sqlite_cells.sql._targets`, worked out during the scan so that
sqlglot's tokens, needed for the rare parse, are never kept).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, NamedTuple

from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token as RawToken
from sqlglot.tokenizer_core import TokenType

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
from sqlite_cells.sql._names import fold_ascii, upper_ascii
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
    "Param",
    "Statement",
    "Word",
    "clear_scan_cache",
    "scan_sql",
    "unquote",
]

Problem = tuple[str, int, str]  # (GuardViolation kind, offset, message)

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


@dataclass(frozen=True, slots=True)
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
        return _names(self.sql, self.tokens, self.body)[1]

    def functions(self) -> tuple[tuple[str, int], ...]:
        """The names SQLite calls as functions (table-valued functions included), ASCII-folded,
        with their offsets."""
        return _names(self.sql, self.tokens, self.body)[2]

    def words(self) -> list[Word]:
        """Every token as a :class:`Word` (for code that is not on a hot path)."""
        sql = self.sql
        out = []
        for kind, _key, start, end in self.tokens:
            text = sql[start:end]
            name = _unescape(text) if kind in (QUOTED, STRING) else text
            out.append(Word(kind, text, start, name))
        return out


def unquote(text: str) -> str:
    """The name a bare or quoted identifier (or a string literal used as a name) stands for."""
    return _unescape(text) if text[:1] in _QUOTES else text


# --- the tokenizer ---------------------------------------------------------------------------


class _Tokenizer(SQLite.Tokenizer):
    # With command capture on, sqlglot turns everything after a leading REPLACE (or EXPLAIN,
    # VACUUM, …) into one STRING token and nothing could see inside it.
    COMMANDS: ClassVar[set[TokenType]] = set()


_DIALECT: Final = SQLite()
_LOCAL = threading.local()  # a tokenizer keeps per-call state in itself: one per thread


def _raw_tokens(sql: str) -> tuple[list[RawToken], bool]:
    """sqlglot's tokens, and whether it failed (then the tokens it made before failing)."""
    tokenizer = getattr(_LOCAL, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _LOCAL.tokenizer = _Tokenizer(dialect=_DIALECT)
    try:
        tokens: list[RawToken] = tokenizer.tokenize(sql)
    except TokenError:
        return list(tokenizer.tokens), True
    return tokens, False


def scan_sql(sql: str) -> Statement:
    """The :class:`Statement` of ``sql``, scanned once per text (bounded LRU cache; texts longer
    than :data:`CACHE_MAX_SQL_LENGTH` are scanned on each call).  Never raises for any ``str``."""
    if len(sql) > CACHE_MAX_SQL_LENGTH:
        return _scan(sql)
    return _scan_cached(sql)


@functools.lru_cache(maxsize=CACHE_MAX_ENTRIES)
def _scan_cached(sql: str) -> Statement:
    return _scan(sql)


def clear_scan_cache() -> None:
    """Forget every cached scan (for tests and benchmarks)."""
    _scan_cached.cache_clear()


_QUOTES: Final = frozenset("'\"`[")
_CLOSING: Final = {"'": "'", '"': '"', "`": "`", "[": "]"}
_SPACE: Final = " \t\n\f\r"
# What SQLite skips between tokens; _skip_gap says where a gap stops matching and why.
_GAP: Final = re.compile(r"(?:[ \t\n\f\r][ \t\n\v\f\r]*+|--[^\n]*+|/\*.*?\*/)*+", re.DOTALL)
# SQLite's operators (sqlglot splits "<<" and ">>" into two tokens; both are operators).
_OPERATORS: Final = frozenset(
    "( ) , ; . + - * / % = == < <= > >= <> != << >> & | || ~ -> ->>".split()  # noqa: SIM905 - one line reads as the list it is
)
_NUMBER_RE: Final = re.compile(
    r"(?:0[xX][0-9A-Fa-f][0-9A-Fa-f_]*|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)"
    r"(?:[eE][+-]?[0-9][0-9_]*)?)"
)
_HEX_RE: Final = re.compile(r"[xX]'(?:[0-9A-Fa-f]{2})*'")
_LITERAL_TYPES: Final = frozenset({TokenType.STRING, TokenType.IDENTIFIER, TokenType.HEX_STRING})
_ASCII_LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS: Final = frozenset("0123456789")
_WORD_START: Final = frozenset(_ASCII_LETTERS + "_")
_IDCHARS: Final = frozenset(_ASCII_LETTERS + "0123456789_$")  # and every non-ASCII character
_OPERATOR_CHARS: Final = frozenset("(),;.+-*/%=<>!&|~")
_PLAIN_OPERATORS: Final = frozenset("(),+-*/%=<>&|~")  # each one an operator alone


def _unescape(text: str) -> str:
    opener = text[0]
    if opener == "[":
        return text[1:-1]
    return text[1:-1].replace(opener + opener, opener)


def _is_idchar(char: str) -> bool:
    # SQLite's IdChar(): ASCII letters and digits, "_", "$" and every non-ASCII character.
    return char.isalnum() or char in "_$" if char.isascii() else True


def _skip_gap(sql: str, start: int, end: int, at_end: bool) -> tuple[int, bool]:
    """Check that ``sql[start:end]`` holds only what SQLite skips between tokens.

    Returns the offset of the first character SQLite would read differently (-1 if none) and
    whether the gap holds a comment.
    """
    comment = False
    i = start
    while i < end:
        char = sql[i]
        if char in _SPACE:
            i += 1
            while i < end and sql[i] in " \t\n\v\f\r":
                i += 1
        elif sql.startswith("--", i):
            comment = True
            newline = sql.find("\n", i, end)
            if newline < 0:
                if not at_end:
                    return i, comment
                i = end
            else:
                i = newline
        elif sql.startswith("/*", i):
            comment = True
            close = sql.find("*/", i + 2, end)
            if close < 0:
                return i, comment
            i = close + 2
        else:
            return i, comment
    return -1, comment


def _syntax_message(sql: str, offset: int) -> str:
    """Say what SQLite cannot read at ``offset``."""
    rest = sql[offset : offset + 2]
    char = rest[:1]
    if char == "'":
        return "syntax error: unterminated string literal; close it with '"
    if char in ('"', "`"):
        return f"syntax error: unterminated quoted identifier; close it with {char}"
    if char == "[":
        return "syntax error: unterminated quoted identifier; close it with ]"
    if rest == "/*":
        return "syntax error: unterminated /* comment; close it with */"
    if rest in ("x'", "X'"):
        return "syntax error: malformed blob literal; write x'…' with an even number of hex digits"
    if char in ("$", "@", ":", "?"):
        return (
            f"syntax error: unsupported parameter {_snippet(sql, offset, offset + 20)!r}; name "
            "parameters ?NNN, :name, @name or $name, without a Tcl-style (…) suffix"
        )
    if char == "#":
        return "syntax error: '#' parameters are not supported; use ?NNN, :name, @name or $name"
    if char.isdigit() or char == ".":
        return "syntax error: malformed number; separate it from the following name with a space"
    if char == "\x00":
        return "syntax error: NUL character; remove it from the statement"
    return (
        f"syntax error: SQLite cannot read {char!r} here (or reads it differently from the "
        "guard); remove it, add a space, or put it in a string"
    )


def _snippet(sql: str, start: int, end: int) -> str:
    text = sql[start:end]
    return text if len(text) <= 60 else text[:57] + "..."


class _Builder:
    """Turns sqlglot's tokens into SQLite's, one at a time (see the module docstring)."""

    __slots__ = (
        "comment",
        "dot",
        "params_raw",
        "problem",
        "raw",
        "semicolon",
        "sql",
        "strings",
        "tokens",
    )

    def __init__(self, sql: str, raw: list[RawToken]) -> None:
        self.sql = sql
        self.raw = raw
        self.tokens: list[Tok] = []
        self.params_raw: list[tuple[int, int, int]] = []  # (token index, raw first, raw last)
        self.problem = -1  # offset of the first syntax problem
        self.comment = False
        self.strings: list[int] = []  # indexes of the string literals
        self.semicolon = -1  # index of the first ";" token
        self.dot = False  # whether a "." operator was seen

    def fail(self, offset: int) -> None:
        if self.problem < 0 or offset < self.problem:
            self.problem = offset

    def gap(self, start: int, end: int, at_end: bool) -> None:
        sql = self.sql
        if end <= start or (end - start == 1 and sql[start] == " "):
            return
        # Most gaps are whitespace and closed comments: one regex match says so.
        if _GAP.match(sql, start, end).end() == end:  # type: ignore[union-attr]
            text = sql[start:end]
            dashes = "--" in text
            if not dashes or at_end or text.rfind("\n") > text.rfind("--"):
                self.comment = self.comment or dashes or "/*" in text
                return
        bad, comment = _skip_gap(sql, start, end, at_end)
        self.comment = self.comment or comment
        if bad >= 0:
            self.fail(bad)

    def build(self, failed: bool) -> None:
        """One pass over sqlglot's tokens.  The common tokens (ASCII words, operators, string
        literals, numbers) are handled inline; anything else goes to the methods below."""
        sql, raw = self.sql, self.raw
        count = len(raw)
        tokens = self.tokens
        append = tokens.append
        word_start, operator_chars, operators = _WORD_START, _OPERATOR_CHARS, _OPERATORS
        idchars, plain, digits = _IDCHARS, _PLAIN_OPERATORS, _DIGITS
        position = 0
        r = 0
        while r < count:
            token = raw[r]
            start = token.start
            end = token.end + 1
            first = sql[start]
            if start != position:
                if start != position + 1 or sql[position] != " ":
                    if start < position:  # never expected: sqlglot went back
                        self.fail(start)
                        break
                    self.gap(position, start, False)
            elif r and (first in idchars or first >= "\x80") and tokens:
                before = sql[start - 1]
                if before in idchars or before >= "\x80":
                    r = self.joined(r)
                    position = tokens[-1][3]
                    continue
            if first in word_start:
                text = sql[start:end]
                if text.isascii() and text.isidentifier():
                    append((WORD, text.upper(), start, end))
                elif token.token_type in _LITERAL_TYPES:
                    self.literal(token, first, start, end)  # x'…'
                else:
                    self.word(start, end)
            elif first in plain and end == start + 1:
                append((OP, first, start, end))  # ( ) , = * + - / % < > & | ~
            elif first in operator_chars:
                if first == "." and end < len(sql) and sql[end].isdigit() and r + 1 < count:
                    # ".5": sqlglot splits what SQLite reads as one number.
                    r += 1
                    end = raw[r].end + 1
                    self.number(start, end)
                else:
                    text = first if end == start + 1 else sql[start:end]
                    if text not in operators:
                        self.fail(start)
                    elif first == ";" and self.semicolon < 0:
                        self.semicolon = len(tokens)
                    elif first == ".":
                        self.dot = True
                    append((OP, text, start, end))
            elif first == "?" and (r + 1 == count or raw[r + 1].start != end):
                # A bare "?" (the common parameter): nothing of it can be split differently.
                self.params_raw.append((len(tokens), r, r))
                append((PARAM, "?", start, end))
            elif first in digits and (text := sql[start:end]).isdigit() and text.isascii():
                append((NUMBER, "", start, end))
            elif first == "'" or first in _QUOTES or token.token_type in _LITERAL_TYPES:
                self.literal(token, first, start, end)
            elif first in _DIGITS:
                self.number(start, end)
            elif first == "?" or first == ":" or first == "@" or first == "$":
                r = self.parameter(r)
                position = tokens[-1][3]
                continue
            elif first >= "\x80":
                self.word(start, end)
            else:
                self.fail(start)
                append((OP, sql[start:end], start, end))
            position = end
            r += 1
        if failed:
            bad, comment = _skip_gap(sql, position, len(sql), True)
            self.comment = self.comment or comment
            self.fail(bad if bad >= 0 else position)
        else:
            self.gap(position, len(sql), True)

    def literal(self, token: RawToken, first: str, start: int, end: int) -> None:
        sql = self.sql
        text = sql[start:end]
        if first in _QUOTES:
            closing = _CLOSING[first]
            inner = text[1:-1]
            if (
                len(text) < 2
                or text[-1] != closing
                or closing in (inner if first == "[" else inner.replace(closing * 2, ""))
            ):
                self.fail(start)  # sqlglot's extent is not SQLite's ("[a]]b]")
                return
            kind = STRING if first == "'" else QUOTED
            if kind == STRING:
                self.strings.append(len(self.tokens))
            self.tokens.append((kind, upper_ascii(_unescape(text)), start, end))
        elif token.token_type is TokenType.HEX_STRING and first in "xX":
            if _HEX_RE.fullmatch(text) is None:
                self.fail(start)
            self.tokens.append((BLOB, "", start, end))
        elif token.token_type is TokenType.HEX_STRING and first == "0":
            self.number(start, end)
        else:  # N'…', 0x1g, …: sqlglot reads a literal where SQLite does not
            self.fail(start)
            self.tokens.append((WORD, upper_ascii(text), start, end))

    def number(self, start: int, end: int) -> None:
        if _NUMBER_RE.fullmatch(self.sql, start, end) is None:
            self.fail(start)
        self.tokens.append((NUMBER, "", start, end))

    def word(self, start: int, end: int) -> None:
        sql = self.sql
        text = sql[start:end]
        if all(map(_is_idchar, text)) if not text.isascii() else text.isidentifier():
            self.tokens.append((WORD, upper_ascii(text), start, end))
            return
        if any(quote in text for quote in _QUOTES):
            # A literal with a prefix (N'…'): SQLite reads a name, then a literal.
            self.fail(start)
            self.tokens.append((WORD, upper_ascii(text), start, end))
            return
        # A keyword sqlglot reads across whitespace ("ORDER BY", "GROUP\tBY"): SQLite's words.
        i = start
        while i < end:
            j = i
            while j < end and _is_idchar(sql[j]):
                j += 1
            if j == i:
                self.fail(i)
                return
            self.tokens.append((WORD, upper_ascii(sql[i:j]), i, j))
            k = j
            while k < end and not _is_idchar(sql[k]):
                k += 1
            if k > j:
                self.gap(j, k, False)
            i = k

    def joined(self, r: int) -> int:
        """Raw token ``r`` touches the previous token with identifier characters on both sides:
        SQLite reads one token.  Numbers ("1_000") are put back together; anything else is a
        problem.  Returns the next raw index."""
        kind, _key, start, _end = self.tokens[-1]
        token = self.raw[r]
        end = token.end + 1
        if kind == NUMBER:
            self.tokens.pop()
            self.number(start, end)
        elif kind == PARAM:  # "?1abc": SQLite's ?NNN stops at the first non-digit
            self.fail(token.start)
            self.tokens.append((WORD, upper_ascii(self.sql[token.start : end]), token.start, end))
        else:
            self.fail(token.start)
            self.tokens.append((WORD, upper_ascii(self.sql[token.start : end]), token.start, end))
        return r + 1

    def parameter(self, r: int) -> int:
        """A parameter starting at raw token ``r``; returns the next raw index."""
        sql, raw = self.sql, self.raw
        count = len(raw)
        token = raw[r]
        start = token.start
        end = token.end + 1
        text = sql[start:end]
        last = r
        if text == "?":
            if r + 1 < count and raw[r + 1].start == end and sql[end].isdigit():
                follower = raw[r + 1]
                last = r + 1
                end = follower.end + 1
                if not sql[start + 1 : end].isdigit() or not sql[start + 1 : end].isascii():
                    self.fail(start)
        elif text in (":", "@") or text.startswith("$"):
            # sqlglot: ":" VAR, "@" VAR, "$a" as one VAR; "::" joins Tcl-style name parts.
            while last + 1 < count and raw[last + 1].start == end:
                follower = raw[last + 1]
                piece = sql[follower.start : follower.end + 1]
                if piece != "::" and not all(map(_is_idchar, piece)):
                    break
                last += 1
                end = follower.end + 1
            name = sql[start + 1 : end].replace("::", "")
            if not name or sql[end - 1] == ":":
                self.fail(start)
            elif end < len(sql) and sql[end] == "(":
                # Tcl-style $a(…): SQLite reads one token up to ")" or whitespace, so nothing
                # sqlglot found in there (a ";" included) is a token of its own.
                self.fail(start)
                while end < len(sql) and not sql[end].isspace() and sql[end] != ")":
                    end += 1
                end += end < len(sql) and sql[end] == ")"
                while last + 1 < count and raw[last + 1].start < end:
                    last += 1
        else:  # "?x", "@@": nothing SQLite reads as one parameter
            self.fail(start)
        self.params_raw.append((len(self.tokens), r, last))
        self.tokens.append((PARAM, sql[start:end], start, end))
        return last + 1


def _scan(sql: str) -> Statement:
    if not isinstance(sql, str):
        raise TypeError(f"sql must be a str, not {type(sql).__name__}")
    raw, failed = _raw_tokens(sql)
    builder = _Builder(sql, raw)
    builder.build(failed)
    tokens = builder.tokens
    problem = _problem(sql, tokens, builder.problem, builder.semicolon)
    body = builder.semicolon if builder.semicolon >= 0 else len(tokens)
    verb_index, verb_shaped = _main_verb(tokens, body)
    verb = ""
    if verb_index < body and tokens[verb_index][0] == WORD:
        verb = tokens[verb_index][1]
    string_names = _NO_STRINGS
    if _may_be_names(tokens, body, builder.strings):
        string_names = _names(sql, tokens, body)[0]
    params, count, names = _number_params(tokens, builder.params_raw)
    targets: tuple[Target, ...] = ()
    if params and verb in _WRITE_VERBS and problem is None:
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


_WRITE_VERBS: Final = frozenset({"INSERT", "REPLACE", "UPDATE"})


_NO_STRINGS: Final[frozenset[int]] = frozenset()
_MULTIPLE_MESSAGE: Final = (
    "more than one statement (a second one starts here, after ';'): pass one statement per call"
)
_EMPTY_MESSAGE: Final = "no statement (only whitespace, comments or ';'): pass one SQL statement"


def _problem(sql: str, tokens: list[Tok], bad: int, first_semicolon: int) -> Problem | None:
    """empty, then multiple-statements, then syntax (R24 and the added ``syntax`` kind)."""
    if bad < 0 and all(t[0] == OP and t[1] == ";" for t in tokens) and "\x00" not in sql:
        return ("empty", 0, _EMPTY_MESSAGE)
    if "\x00" in sql:  # SQLite stops reading there, even inside a literal or a comment
        nul = sql.index("\x00")
        bad = nul if bad < 0 else min(bad, nul)
    semicolon = tokens[first_semicolon][3] if first_semicolon >= 0 else -1
    if semicolon >= 0 and bad < 0 and "\v" in sql[semicolon:]:
        # apsw skips the whitespace after a ";" and prepares the rest, where a \v it reaches
        # first is no longer part of a whitespace run: SQLite reads it as a second statement.
        bad = sql.index("\v", semicolon)
    # Text SQLite cannot read before the first ";" fails the first statement: nothing runs.
    if semicolon >= 0 and not 0 <= bad < semicolon:
        after = tokens[first_semicolon + 1][2] if first_semicolon + 1 < len(tokens) else -1
        if bad >= semicolon and (after < 0 or bad < after):
            after = bad
        if after >= 0:
            return ("multiple-statements", after, _MULTIPLE_MESSAGE)
    if not sql.isascii():
        try:
            sql.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                "syntax",
                exc.start,
                "syntax error: lone surrogate character; the statement cannot be encoded as UTF-8",
            )
    if bad >= 0:
        return ("syntax", bad, _syntax_message(sql, bad))
    return None


def _main_verb(tokens: list[Tok], count: int) -> tuple[int, bool]:
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
        i = _after_parens(tokens, i, count)
        if i < count and tokens[i][1] == "," and tokens[i][0] == OP:
            i += 1
            continue
        return i, True


def _after_parens(tokens: list[Tok], i: int, count: int) -> int:
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


# --- names by position (R24) -----------------------------------------------------------------

# What stands after these words is a table (a string literal included); after IN only when it is
# not a "(" (then it is a list or a subquery).
_TABLE_SOURCES: Final = frozenset({"FROM", "JOIN", "IN"})
_TABLE_TARGETS: Final = frozenset({"INTO", "UPDATE", "TABLE"})
# These words end a FROM list at their parenthesis depth (ON and USING do not: "a JOIN b ON x, c").
_FROM_ENDERS: Final = frozenset(
    {"WHERE", "GROUP", "ORDER", "HAVING", "WINDOW", "LIMIT", "UNION", "INTERSECT", "EXCEPT"}
    | {"SET", "SELECT", "VALUES", "RETURNING", "DO"}
)
# Keywords that may stand where a table could, or before "(", and are neither tables nor calls.
_NOT_NAMES: Final = frozenset(
    {"SELECT", "VALUES", "WITH", "OR", "IN", "EXISTS", "AS", "OVER", "FILTER", "USING", "ON"}
    | {"AND", "NOT", "WHERE", "FROM", "JOIN", "BY", "SET", "INTO", "TABLE", "KEY", "CONFLICT"}
    | {"CHECK", "DEFAULT", "WINDOW", "THEN", "WHEN", "ELSE", "CASE", "IS", "LIKE", "GLOB"}
    | {"BETWEEN", "MATCH", "REGEXP", "DO", "UPDATE", "RETURNING", "LIMIT", "OFFSET", "HAVING"}
    | {"CAST", "RAISE", "ALL", "DISTINCT", "END"}
)
# Table positions: a table read (it may be a called table-valued function), a write target, an
# index (INDEXED BY).
_SOURCE, _TARGET, _INDEX = 1, 2, 3


def _names(
    sql: str, tokens: Sequence[Tok], count: int
) -> tuple[frozenset[int], tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """String literals SQLite reads as names, names it resolves as tables, names it calls.

    A token stands in a *table position* after FROM (not ``IS [NOT] DISTINCT FROM``), JOIN, IN
    (not ``IN (``), INTO, UPDATE, ``UPDATE OR <action>``, TABLE and ``INDEXED BY``, after a ``,``
    of a FROM list, after a ``(`` that itself stands in a table position (a parenthesised FROM
    item), and after the ``.`` of a qualified name in a table position.  A string literal is a
    name there, before or after a ``.``, and when a ``(`` follows it (only a table-valued
    function can be a called string).
    """
    strings: list[int] = []
    tables: list[tuple[str, int]] = []
    functions: list[tuple[str, int]] = []
    in_from = [False]  # per parenthesis depth: inside a FROM list?
    position = 0  # the table position of the current token, 0 for none
    last = 0  # the table position of the previous name
    positions, from_enders, not_names = _POSITIONS, _FROM_ENDERS, _NOT_NAMES
    for i in range(count):
        kind, key, start, end = tokens[i]
        if kind == OP:
            if key == "(":
                paren = position == _SOURCE and tokens[i - 1][1] != "IN"
                in_from.append(paren)
                position = _SOURCE if paren else 0
            elif key == ")":
                if len(in_from) > 1:
                    in_from.pop()
                position = 0
            elif key == ",":
                position = _SOURCE if in_from[-1] else 0
            else:
                position = last if key == "." else 0
            last = 0
            continue
        if kind > STRING:  # numbers, parameters, blobs
            position = last = 0
            continue
        following = tokens[i + 1][1] if i + 1 < count and tokens[i + 1][0] == OP else ""
        if kind == WORD and not position and following != "(":
            # The common case: a keyword or a column name.
            last = 0
            position = positions.get(key, 0)
            if position or key == "BY" or (i >= 2 and tokens[i - 1][1] == "OR"):
                position = _position_after(tokens, i, key)
            if key in from_enders:
                in_from[-1] = False
            elif position == _SOURCE and key != "IN":
                in_from[-1] = True
            continue
        if kind == STRING:
            after_dot = i > 0 and tokens[i - 1][1] == "." and tokens[i - 1][0] == OP
            if position or after_dot or following == "." or following == "(":
                strings.append(i)
            else:
                position = last = 0
                continue
        keyword = kind == WORD and key in not_names
        if position and not keyword and following != ".":
            name = fold_ascii(unquote(sql[start:end]))
            if position != _INDEX:
                tables.append((name, start))
            if position == _SOURCE and following == "(":
                functions.append((name, start))  # a table-valued function
        elif not keyword and following == "(" and kind == WORD:
            functions.append((fold_ascii(sql[start:end]), start))
        last = position
        position = 0
        if kind == WORD:
            position = _position_after(tokens, i, key)
            if key in from_enders:
                in_from[-1] = False
            elif position == _SOURCE and key != "IN":
                in_from[-1] = True
    return frozenset(strings), tuple(tables), tuple(functions)


_POSITIONS: Final = {"FROM": _SOURCE, "JOIN": _SOURCE, "IN": _SOURCE}
_POSITIONS.update(dict.fromkeys(("INTO", "UPDATE", "TABLE"), _TARGET))


# What may stand just before a string literal that SQLite reads as a name.
_BEFORE_NAMES: Final = frozenset({"FROM", "JOIN", "IN", "INTO", "UPDATE", "TABLE", "BY"})
_NEXT_TO_NAMES: Final = frozenset({",", "(", "."})


def _may_be_names(tokens: Sequence[Tok], count: int, strings: list[int]) -> bool:
    """Whether any string literal stands where :func:`_names` could find a name: after a word
    that introduces a table (or an ``UPDATE OR <action>``), after ``,``, ``(`` or ``.``, or
    before ``.`` or ``(``.  Most literals are plain data (``body LIKE 'x%'``) and skip the pass."""
    for i in strings:
        if i >= count:
            break
        previous = tokens[i - 1][1] if i else ""
        following = tokens[i + 1][1] if i + 1 < count else ""
        if (
            previous in _BEFORE_NAMES
            or previous in _NEXT_TO_NAMES
            or following == "."
            or following == "("
            or (i >= 2 and tokens[i - 2][1] == "OR")
        ):
            return True
    return False


def _position_after(tokens: Sequence[Tok], i: int, key: str) -> int:
    """The table position of the token after the word at ``i`` (0 for none)."""
    if key in _TABLE_SOURCES:
        if key == "FROM" and i and tokens[i - 1][1] == "DISTINCT":
            return 0  # "a IS [NOT] DISTINCT FROM b" compares with a value
        return _SOURCE
    if key in _TABLE_TARGETS:
        return _TARGET
    if key == "BY":
        return _INDEX if i and tokens[i - 1][1] == "INDEXED" else 0
    if key == "OR" and i and tokens[i - 1][1] == "UPDATE":
        return 0
    # "UPDATE OR IGNORE t": the action word is followed by the table.
    return _TARGET if i >= 2 and tokens[i - 1][1] == "OR" and tokens[i - 2][1] == "UPDATE" else 0


# --- parameters (R31) --------------------------------------------------------------------------


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

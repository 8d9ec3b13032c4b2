"""SQLite's tokens from sqlglot's: the one tokenization of a statement, checked against SQLite.

:class:`Lexer` walks sqlglot's SQLite tokens (its "command" capture switched off: it would turn
everything after a leading REPLACE into one opaque string) and turns them into SQLite's tokens,
``(kind, key, start, end)`` tuples (:mod:`sqlite_cells.sql._kinds`).  sqlglot is not SQLite, so
it also checks, on that one token list, that SQLite would split the text the same way, and
records the offset of the first place where it would not (or where SQLite cannot read the text
at all): the front end reports it as ``syntax``.  The pass itself is C (``_tokenloop.c``: it
runs for every token of every new statement): it makes the common tokens and hands every other
token, and every gap it cannot read whole, to the methods here.  The checks are local, one per
place where the two differ:

* between two tokens there may only be what SQLite skips: runs of its whitespace (a run starts
  with space, tab, newline, form feed or carriage return and may go on with ``\\v``), ``--``
  comments up to a newline or the end, and closed ``/* … */`` comments.  sqlglot also skips
  ``\\xa0``, ``\\u2028`` and ``{# … #}``, where SQLite sees identifier or illegal characters;
* a string literal, quoted identifier or blob must have SQLite's extent (the quote characters at
  both ends, no closing character inside: sqlglot reads ``[a]]b]`` as one name); ``N'…'`` and
  other prefixed literals of sqlglot are refused;
* two tokens that touch with identifier characters on both sides are one token to SQLite: only
  the splits of numbers (``1_000``, ``.5``) and parameters (``?1``, ``:name``, ``@name``,
  ``$a::b``) are put back together, anything else is refused;
* operators SQLite does not have (``{``, ``^``, ``::``, ``#``, ``<=>``, …) are refused, and so
  are parameters SQLite reads differently: a Tcl-style suffix (``$a(x)``: SQLite reads one token
  up to the ``)``, whatever sqlglot found inside), ``#`` parameters, a lone ``$``, ``:`` or ``@``;
* an unterminated literal or comment, a malformed number or blob.

Each thread has its own sqlglot tokenizer (a tokenizer keeps per-call state in itself).
"""

from __future__ import annotations

import re
import threading
from typing import ClassVar, Final

from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token as RawToken
from sqlglot.tokenizer_core import TokenType

from sqlite_cells.sql._kinds import BLOB, NUMBER, PARAM, QUOTED, STRING, WORD, Tok
from sqlite_cells.sql._names import upper_ascii
from sqlite_cells.sql._tokenloop import build as _pass

__all__ = [
    "BOM",
    "Lexer",
    "RawToken",
    "is_idchar",
    "skip_gap",
    "sqlglot_tokens",
    "syntax_message",
    "unescape",
    "unquote",
]


class _Tokenizer(SQLite.Tokenizer):
    # With command capture on, sqlglot turns everything after a leading REPLACE (or EXPLAIN,
    # VACUUM, …) into one STRING token and nothing could see inside it.
    COMMANDS: ClassVar[set[TokenType]] = set()


_DIALECT: Final = SQLite()
_LOCAL = threading.local()  # a tokenizer keeps per-call state in itself: one per thread


def sqlglot_tokens(sql: str) -> tuple[list[RawToken], bool]:
    """sqlglot's tokens, and whether it failed (then the tokens it made before failing)."""
    tokenizer = getattr(_LOCAL, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _LOCAL.tokenizer = _Tokenizer(dialect=_DIALECT)
    try:
        tokens: list[RawToken] = tokenizer.tokenize(sql)
    except TokenError:
        return list(tokenizer.tokens), True
    return tokens, False


_QUOTES: Final = frozenset("'\"`[")
_CLOSING: Final = {"'": "'", '"': '"', "`": "`", "[": "]"}
_SPACE: Final = " \t\n\f\r"
# What SQLite skips between tokens; skip_gap says where a gap stops matching and why.
_GAP: Final = re.compile(r"(?:[ \t\n\f\r][ \t\n\v\f\r]*+|--[^\n]*+|/\*.*?\*/)*+", re.DOTALL)
# SQLite's operators (sqlglot splits "<<" and ">>" into two tokens; both are operators).
_OPERATORS: Final = frozenset(
    "( ) , ; . + - * / % = == < <= > >= <> != << >> & | || ~ -> ->>".split()  # noqa: SIM905 - one line reads as the list it is
)
# SQLite's numbers: a "_" digit separator stands between two digits (hex digits in a hex
# number) or SQLite refuses the number ("1_", "1__0", "1._5" are unrecognized tokens).
_DIGITS: Final = r"[0-9]+(?:_[0-9]+)*"
_NUMBER_RE: Final = re.compile(
    rf"(?:0[xX][0-9A-Fa-f]+(?:_[0-9A-Fa-f]+)*"
    rf"|(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?)"
)
_HEX_RE: Final = re.compile(r"[xX]'(?:[0-9A-Fa-f]{2})*'")
_LITERAL_TYPES: Final = frozenset({TokenType.STRING, TokenType.IDENTIFIER, TokenType.HEX_STRING})
BOM: Final = "\ufeff"  # a space to SQLite at the start of a token, a letter inside one


def unescape(text: str) -> str:
    opener = text[0]
    if opener == "[":
        return text[1:-1]
    return text[1:-1].replace(opener + opener, opener)


def is_idchar(char: str) -> bool:
    # SQLite's IdChar(): ASCII letters and digits, "_", "$" and every non-ASCII character.
    return char.isalnum() or char in "_$" if char.isascii() else True


def skip_gap(sql: str, start: int, end: int, at_end: bool) -> tuple[int, bool]:
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


def syntax_message(sql: str, offset: int) -> str:
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
        return (
            "syntax error: malformed number; put a '_' digit separator only between two digits, "
            "and a space between a number and the name after it"
        )
    if char == BOM:
        return (
            "syntax error: a byte-order mark (U+FEFF), which SQLite skips as a space before a "
            "word and reads as a letter inside one; remove it"
        )
    if char == "\x00":
        return "syntax error: NUL character; remove it from the statement"
    return (
        f"syntax error: SQLite cannot read {char!r} here (or reads it differently from the "
        "guard); remove it, add a space, or put it in a string"
    )


def _snippet(sql: str, start: int, end: int) -> str:
    text = sql[start:end]
    return text if len(text) <= 60 else text[:57] + "..."


class Lexer:
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
        bad, comment = skip_gap(sql, start, end, at_end)
        self.comment = self.comment or comment
        if bad >= 0:
            self.fail(bad)

    def build(self, failed: bool) -> None:
        """One pass over sqlglot's tokens, in C (``_tokenloop.c``: it runs for every token of
        every new statement).  The common tokens (ASCII words, operators, bare ``?``, plain
        numbers) are made there; every other token is handed to the methods below, and the
        text after the last one to :meth:`finish`."""
        _pass(self, failed, _OPERATORS, _LITERAL_TYPES)

    def finish(self, position: int, failed: bool) -> None:
        """Check the text after the last token (where sqlglot stopped, if it ``failed``)."""
        sql = self.sql
        if failed:
            bad, comment = skip_gap(sql, position, len(sql), True)
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
            self.tokens.append((kind, upper_ascii(unescape(text)), start, end))
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
        sql = self.sql
        if _NUMBER_RE.fullmatch(sql, start, end) is None:
            self.fail(start)
        elif sql[end - 1] == "." and end < len(sql) and is_idchar(sql[end]):
            # SQLite reads a number and the identifier characters touching it as one token it
            # cannot read ("1.x", "1.FROM"); sqlglot splits them after the ".", where no
            # identifier character touches another, so joined() never sees them.
            self.fail(start)
        self.tokens.append((NUMBER, "", start, end))

    def word(self, start: int, end: int) -> None:
        sql = self.sql
        text = sql[start:end]
        if text[0] == BOM:
            # SQLite skips a U+FEFF that starts a token as a space (and reads one inside a
            # word as a letter): "\ufeffsqlite_master" is sqlite_master to it.
            self.fail(start)
        if all(map(is_idchar, text)) if not text.isascii() else text.isidentifier():
            self.tokens.append((WORD, upper_ascii(text), start, end))
            return
        if text.isascii() and "  " not in text:
            # The common multi-word keyword ("ORDER BY", "GROUP BY"): words split by one space.
            parts = text.split(" ")
            if all(part.isidentifier() for part in parts):
                i = start
                for part in parts:
                    j = i + len(part)
                    self.tokens.append((WORD, part.upper(), i, j))
                    i = j + 1
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
            while j < end and is_idchar(sql[j]):
                j += 1
            if j == i or sql[i] == BOM:
                self.fail(i)
                return
            self.tokens.append((WORD, upper_ascii(sql[i:j]), i, j))
            k = j
            while k < end and not is_idchar(sql[k]):
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
                if piece != "::" and not all(map(is_idchar, piece)):
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


def unquote(text: str) -> str:
    """The name a bare or quoted identifier (or a string literal used as a name) stands for."""
    return unescape(text) if text[:1] in _QUOTES else text

"""How the guard splits a statement: SQLite's view and sqlglot's view, aligned into entries.

:func:`tokenize` turns the text into the entries the rules in :mod:`sqlite_cells.sql._guard` read,
and refuses ``empty``, ``multiple-statements`` and ``syntax`` (see that module's docstring).

Why two views
-------------
The guard tokenizes with sqlglot's SQLite dialect (its "command" capture switched off: it would
turn everything after a leading REPLACE into one opaque string).  sqlglot is not SQLite, though:
it reads ``\\xa0`` and ``\\u2028`` as whitespace where SQLite sees identifier characters, treats
``{# … #}`` as a comment where SQLite sees an illegal character, and splits a Tcl-style parameter
such as ``$a('x)`` where SQLite reads one token — enough to hide a second statement inside what
sqlglot calls a string literal.  So a small scanner that follows SQLite's own tokenizer
(``tokenize.c``) splits the text too — its split decides ``empty`` and ``multiple-statements`` —
and a statement passes only if both agree: every string literal, quoted identifier and blob has
the same extent in both, sqlglot skips exactly what SQLite skips (whitespace and comments), and a
token of one is a token of the other, a run of the other's tokens (``ORDER BY`` is one sqlglot
keyword), or — for numbers, parameters and operators only — split into several (``?1`` is ``?``
and ``1`` for sqlglot).  Any disagreement is refused as ``syntax``.  The rules then read one entry
per agreed token: words and operators as written (upper-cased), and sqlglot's unescaped text of
quoted identifiers and string literals.  Deliberately refused although SQLite would accept them:
Tcl-style parameter suffixes (``$a(x)``; ``$a::b`` is fine), ``#`` parameters, an unterminated
``/*`` comment at the end, and text sqlglot reads as a literal with a prefix (``N'…'``).

Each thread has its own sqlglot tokenizer (a tokenizer keeps per-call state in itself).
"""

from __future__ import annotations

import re
import threading
from typing import ClassVar, Final, NoReturn

from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

from sqlite_cells.codec import GuardViolation


def snippet(sql: str, start: int, end: int) -> str:
    text = sql[start:end]
    return text if len(text) <= 60 else text[:57] + "..."


def refuse(kind: str, sql: str, offset: int, message: str) -> NoReturn:
    raise GuardViolation(kind, sql, offset, message)


# --- SQLite's view: a scanner that follows tokenize.c ------------------------------------------

# Kinds of token.  _END and _BAD only come out of the scanner: the end of the text, and text
# SQLite cannot read.
WORD, QUOTED, STRING, _BLOB, _NUMBER, _PARAM, OP, _SEMICOLON, _END, _BAD = range(10)

# SQLite's IdChar(): ASCII letters and digits, "_", "$" and every byte >= 0x80 of the UTF-8 text,
# i.e. every non-ASCII character (lone surrogates cannot be encoded at all).
_IDCHAR = "0-9A-Za-z_$\u0080-\ud7ff\ue000-\U0010ffff"
_IDSTART = "A-Za-z_\u0080-\ud7ff\ue000-\U0010ffff"
_EXPONENT = "(?:[eE][+-]?[0-9][0-9_]*)?"
_LEXER: Final = re.compile(
    # Whitespace and comments between tokens.  A whitespace run starts with one of SQLite's
    # CC_SPACE characters and may then include \v, as in tokenize.c.
    r"(?:[ \t\n\f\r][ \t\n\v\f\r]*+|--[^\n]*+|/\*.*?\*/)*+"
    r"(?:"
    rf"((?![xX]')[{_IDSTART}][{_IDCHAR}]*+)"  # 1: word
    r"|(->>|->|==|<=|<>|<<|>=|>>|!=|\|\||/(?!\*)|[-()+*%=<>|,&~]|\.(?![0-9]))"  # 2: operator
    r"|(;)"  # 3
    r"|('(?:[^']|'')*+')"  # 4: string literal
    r"|((?>0[xX][0-9A-Fa-f][0-9A-Fa-f_]*"  # 5: number
    rf"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*){_EXPONENT})(?![{_IDCHAR}]))"
    r"|(\"(?:[^\"]|\"\")*+\"|`(?:[^`]|``)*+`|\[[^\]]*+\])"  # 6: quoted identifier
    rf"|(\?[0-9]*+|[$@:](?>(?:::)*[{_IDCHAR}](?:[{_IDCHAR}]|::)*)(?!\())"  # 7: parameter
    r"|([xX]'(?:[0-9A-Fa-f]{2})*')"  # 8: blob
    r"|([xX]'|/\*)"  # 9: malformed blob, unterminated comment
    r"|(\Z)"  # 10: end of text
    r"|(.)"  # 11: anything else
    r")",
    re.DOTALL,
)
# The kind of token each group of _LEXER yields (group 0 never matches alone).
# fmt: off
_KIND_BY_GROUP: Final = (
    _BAD, WORD, OP, _SEMICOLON, STRING, _NUMBER, QUOTED, _PARAM, _BLOB, _BAD, _END, _BAD,
)
# fmt: on
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _syntax_message(sql: str, offset: int) -> str:
    """Say what SQLite cannot read at ``offset``."""
    rest = sql[offset : offset + 2]
    char = rest[:1]
    if char == "'":
        return "unterminated string literal: close it with '"
    if char in ('"', "`"):
        return f"unterminated quoted identifier: close it with {char}"
    if char == "[":
        return "unterminated quoted identifier: close it with ]"
    if rest == "/*":
        return "unterminated /* comment: close it with */"
    if rest in ("x'", "X'"):
        return "malformed blob literal: write x'…' with an even number of hex digits"
    if char in ("$", "@", ":"):
        return (
            f"unsupported parameter {snippet(sql, offset, offset + 20)!r}: name parameters "
            "?NNN, :name, @name or $name, without a Tcl-style (…) suffix"
        )
    if char == "#":
        return "'#' parameters are not supported: use ?NNN, :name, @name or $name"
    if char.isdigit() or char == ".":
        return "malformed number: separate it from the following name with a space"
    if char == "\x00":
        return "NUL character: remove it from the statement"
    return f"SQLite cannot read the character {char!r} here: remove it or put it in a string"


# --- sqlglot's view --------------------------------------------------------------------------


class _GuardTokenizer(SQLite.Tokenizer):
    # With command capture on, sqlglot turns everything after a leading REPLACE (or EXPLAIN,
    # VACUUM, …) into one STRING token and the rules could not see it.
    COMMANDS: ClassVar[set[TokenType]] = set()


_DIALECT: Final = SQLite()
_LOCAL = threading.local()  # a tokenizer keeps per-call state in itself: one per thread

# sqlglot token types whose text is opaque to the rules (literals and quoted identifiers).
_OPAQUE: Final[frozenset[TokenType]] = frozenset(
    {TokenType.STRING, TokenType.IDENTIFIER}
    | {token_type for _, token_type in _GuardTokenizer._FORMAT_STRINGS.values()}
)
_KEYWORDS: Final[frozenset[str]] = frozenset(_GuardTokenizer.KEYWORDS)
_HEX_STRING: Final = TokenType.HEX_STRING
_SQLGLOT_TYPE_OF: Final = {
    QUOTED: TokenType.IDENTIFIER,
    STRING: TokenType.STRING,
    _BLOB: TokenType.HEX_STRING,
}


def _sqlglot_tokens(sql: str) -> list[Token]:
    tokenizer = getattr(_LOCAL, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _LOCAL.tokenizer = _GuardTokenizer(dialect=_DIALECT)
    tokens: list[Token] = tokenizer.tokenize(sql)
    return tokens


# What the rules read, one entry per SQLite token: (kind, key, start, end).  key is the text
# upper-cased (ASCII only) for words, the text for operators, the unescaped text upper-cased for
# quoted identifiers and string literals, and "" otherwise.
Entry = tuple[int, str, int, int]

_UPPER: Final = {code: code - 32 for code in range(ord("a"), ord("z") + 1)}


def _upper(text: str) -> str:
    # SQLite folds ASCII only: "ſqlite_master" is not sqlite_master, whatever str.upper() says.
    return text.upper() if text.isascii() else text.translate(_UPPER)


_MULTIPLE_MESSAGE: Final = (
    "more than one statement (a second one starts here, after ';'): pass one statement per call"
)
_EMPTY_MESSAGE: Final = "no statement (only whitespace, comments or ';'): pass one SQL statement"


def tokenize(sql: str) -> list[Entry]:
    """The rules' entries; refuses ``empty``, ``multiple-statements`` and ``syntax``.

    SQLite's scanner drives the loop and sqlglot's tokens are matched against its tokens as it
    goes.  Each SQLite token must be one sqlglot token; or a run of them, for numbers, parameters
    and operators only and with no literal among them (".5", "?1", ":name", "<<"); or lie in a
    run of SQLite words and operators that one sqlglot keyword covers ("ORDER BY").  A
    disagreement is only reported once the whole text has been scanned, because empty and
    multiple-statements are decided first.
    """
    try:
        gl: list[Token] = _sqlglot_tokens(sql)
        sqlglot_failed = False
    except TokenError:
        gl = []
        sqlglot_failed = True
    mismatch = 0 if sqlglot_failed else -1  # where the two views first disagree
    # Offsets of the upper-cased text must be those of the text: fold ASCII letters only.
    folded = sql.upper() if sql.isascii() else sql.translate(_UPPER)
    opaque = _OPAQUE
    hex_string = _HEX_STRING
    kinds = _KIND_BY_GROUP
    entries: list[Entry] = []
    append = entries.append
    n_gl = len(gl)
    gi = 0
    cover_end = -1  # > 0 while one sqlglot keyword covers several SQLite tokens
    count = 0  # SQLite tokens
    semicolons = 0
    after_semicolon = -1  # start of the first token after the first ";"
    bad = -1
    unusual = sqlglot_failed  # a ";" was seen, or the views disagree, or a keyword covers tokens
    for count, match in enumerate(_LEXER.finditer(sql)):  # noqa: B007 - count is used below
        group = match.lastindex or 0
        kind = kinds[group]
        start, end = match.span(group)
        if kind >= _SEMICOLON:
            if kind >= _END:
                if kind == _BAD:
                    bad = start
                    if semicolons:
                        offset = after_semicolon if after_semicolon >= 0 else bad
                        refuse("multiple-statements", sql, offset, _MULTIPLE_MESSAGE)
                break
            semicolons += 1
            unusual = True
        if unusual:
            if semicolons and (semicolons > 1 or kind != _SEMICOLON):
                # Only more ";" may follow a ";" (and even those are refused below).
                if after_semicolon < 0:
                    after_semicolon = start
                if kind != _SEMICOLON:
                    refuse("multiple-statements", sql, after_semicolon, _MULTIPLE_MESSAGE)
            if mismatch >= 0:
                continue
            if cover_end > 0:
                if (kind != WORD and kind != OP) or end > cover_end:
                    mismatch = start
                    unusual = True
                else:
                    if end == cover_end:
                        cover_end = -1
                        unusual = semicolons > 0
                    append((kind, folded[start:end], start, end))
                continue
        if gi >= n_gl:
            mismatch = start
            unusual = True
            continue
        token = gl[gi]
        gi += 1
        g_end = token.end + 1
        if token.start != start:
            mismatch = min(token.start, start)
            unusual = True
        elif g_end == end:
            g_type = token.token_type
            if kind in (WORD, OP, _SEMICOLON):
                if g_type in opaque:
                    mismatch = start
                    unusual = True
                else:
                    append((kind, folded[start:end], start, end))
            elif kind in (_NUMBER, _PARAM):
                if g_type in opaque and g_type is not hex_string:
                    mismatch = start
                    unusual = True
                else:
                    append((kind, "", start, end))
            elif g_type is _SQLGLOT_TYPE_OF[kind]:
                append((kind, "" if kind == _BLOB else _upper(token.text), start, end))
            else:
                mismatch = start
                unusual = True
        elif g_end < end:
            # sqlglot splits this token: fine for numbers (".5", "1_000"), parameters ("?1",
            # ":name") and operators ("<<"), as long as no piece is a literal.
            if kind != _NUMBER and kind != _PARAM and kind != OP:
                mismatch = g_end
                unusual = True
                continue
            g_type = token.token_type
            while g_type not in opaque and g_end < end and gi < n_gl:
                token = gl[gi]
                gi += 1
                if token.start != g_end:
                    break
                g_end = token.end + 1
                g_type = token.token_type
            if g_end != end or g_type in opaque:
                mismatch = min(g_end, end)
                unusual = True
            else:
                append((kind, folded[start:end] if kind == OP else "", start, end))
        # One sqlglot keyword covers several SQLite words and operators ("ORDER BY").
        elif (
            token.token_type in opaque
            or (kind != WORD and kind != OP)
            or _upper(token.text) not in _KEYWORDS
        ):
            mismatch = end
            unusual = True
        else:
            cover_end = g_end
            unusual = True
            append((kind, folded[start:end], start, end))

    if bad < 0 and count == semicolons:
        refuse("empty", sql, 0, _EMPTY_MESSAGE)
    if after_semicolon >= 0:
        refuse("multiple-statements", sql, after_semicolon, _MULTIPLE_MESSAGE)
    if bad >= 0:
        refuse("syntax", sql, bad, _syntax_message(sql, bad))
    if "\x00" in sql:  # inside a literal or a comment: SQLite would stop reading there
        refuse("syntax", sql, sql.index("\x00"), "NUL character: remove it from the statement")
    if not sql.isascii() and (surrogate := _SURROGATE.search(sql)) is not None:
        refuse(
            "syntax",
            sql,
            surrogate.start(),
            "lone surrogate character: the statement cannot be encoded as UTF-8",
        )
    if sqlglot_failed:
        refuse("syntax", sql, 0, "the statement cannot be tokenized: check quotes and comments")
    if mismatch < 0 and (cover_end > 0 or gi < n_gl):
        mismatch = gl[gi].start if gi < n_gl else len(sql)
    if mismatch >= 0:
        refuse(
            "syntax",
            sql,
            mismatch,
            f"ambiguous text {snippet(sql, mismatch, mismatch + 20)!r}: SQLite may split it "
            "differently from the guard; add a space, quote the name or drop the unusual character",
        )
    if semicolons:
        entries.pop()
    return entries

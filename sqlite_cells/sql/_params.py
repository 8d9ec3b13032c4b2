"""Which column each bound parameter of a write statement targets (R31).

``db.exec(sql, params)`` encodes a cell bound to a ``*_cf_link`` column as a link string and
refuses a cell bound anywhere else; to do so it must know, per parameter, the column it is bound
to. :func:`map_params` answers that.

How it works, and why it is split in two:

* **Numbering is lexical.** SQLite numbers parameters while *tokenizing* (``?`` takes the next
  number, ``?NNN`` takes NNN, a ``:name``/``@name``/``$name`` takes the next number on first use
  and keeps it). :func:`scan_sql` is a small re-implementation of SQLite's tokenizer, so the count
  and the numbering are SQLite's, including cases sqlglot cannot parse at all: sqlglot's SQLite
  dialect rejects ``?NNN`` and ``:1``, and reads ``$name`` as a column.
* **Targets are syntactic.** Every parameter is replaced by a unique ``:_cfpK`` placeholder, then
  the statement is parsed with ``sqlglot.parse_one(…, read="sqlite")`` and each placeholder that
  is the *whole* value of a column (a ``VALUES`` cell, a select-list item of ``INSERT … SELECT``,
  the right side of ``SET col = …`` in ``UPDATE`` or an upsert) gets that column. Anything else
  (``WHERE``, ``RETURNING``, CTEs, ``SET a = ? || 'x'``) targets no column: ``None``.

Decisions:

* ``INSERT INTO t VALUES (…)`` without a column list: positions are resolved through the optional
  ``columns_of(table)`` callback, which must return the columns a ``VALUES`` row fills, in the
  *stored* order (``PRAGMA table_info``, generated columns excluded). Without it, or when it raises
  ``LookupError``, those parameters target ``None`` (a cell bound there is then refused).
* A slot used several times (``?1`` twice, ``:x`` twice, or ``:x`` and ``?1`` naming the same
  number) targets a column only when every use targets that same column; otherwise ``None``.
* ``REPLACE INTO`` and ``UPDATE OR <action>``, which sqlglot does not parse, are rewritten to
  forms it does before parsing. A statement sqlglot still cannot parse maps every parameter to
  ``None``; the count stays exact because it is lexical.
* Only the first 32766 numbers exist in SQLite; a ``?0`` or a larger number makes SQLite refuse
  the statement when it is prepared, so such uses are ignored here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import sqlglot
import sqlglot.errors
from sqlglot import exp

__all__ = ["ParamTargets", "Token", "map_params", "scan_sql", "unquote"]

# Token kinds of scan_sql.
WS: Final = "ws"
COMMENT: Final = "comment"
STRING: Final = "string"
IDENT: Final = "ident"  # a bare word: identifier or keyword
QUOTED: Final = "quoted"  # "x", `x` or [x]
NUMBER: Final = "number"
VARIABLE: Final = "variable"
PUNCT: Final = "punct"

_MAX_VARIABLE: Final = 32766  # SQLITE_MAX_VARIABLE_NUMBER's default
_CACHE_SIZE: Final = 512
_PLACEHOLDER: Final = "_cfp"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    start: int


def _is_id_char(c: str) -> bool:
    # SQLite's IdChar(): ASCII letters and digits, '_', '$' and every byte >= 0x80.
    return c.isalnum() or c in "_$" if c.isascii() else True


def _quoted_end(sql: str, i: int, close: str, doubled: bool) -> int:
    """Index just past the literal opened at ``i`` (to the end of text when unterminated)."""
    n = len(sql)
    j = i + 1
    while j < n:
        if sql[j] == close:
            if doubled and j + 1 < n and sql[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _variable_end(sql: str, i: int) -> int:
    """End of a ``:@$#`` variable, following SQLite's tokenizer (TCL ``::`` and ``(…)`` forms)."""
    n, j, chars = len(sql), i + 1, 0
    while j < n:
        c = sql[j]
        if _is_id_char(c):
            chars += 1
            j += 1
        elif c == "(" and chars > 0:
            while j < n and not sql[j].isspace() and sql[j] != ")":
                j += 1
            return j + 1 if j < n and sql[j] == ")" else j
        elif c == ":" and j + 1 < n and sql[j + 1] == ":":
            j += 2
        else:
            break
    return j if chars > 0 else i + 1


def _iter_tokens(sql: str) -> Iterator[Token]:
    n, i = len(sql), 0
    while i < n:
        c = sql[i]
        kind = PUNCT
        if c in " \t\n\f\r":
            j = i + 1
            while j < n and sql[j] in " \t\n\f\r":
                j += 1
            kind = WS
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            j, kind = (n if nl < 0 else nl), COMMENT
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            j, kind = (n if close < 0 else close + 2), COMMENT
        elif c == "'":
            j, kind = _quoted_end(sql, i, "'", True), STRING
        elif c in '"`':
            j, kind = _quoted_end(sql, i, c, True), QUOTED
        elif c == "[":
            j, kind = _quoted_end(sql, i, "]", False), QUOTED
        elif c == "?":
            j = i + 1
            while j < n and sql[j].isdigit() and sql[j].isascii():
                j += 1
            kind = VARIABLE
        elif c in ":@$#":
            j = _variable_end(sql, i)
            kind = VARIABLE if j > i + 1 else PUNCT
        elif c.isdigit() and c.isascii():
            j = i + 1
            while j < n and (_is_id_char(sql[j]) or sql[j] == "."):
                j += 1
            kind = NUMBER
        elif _is_id_char(c):
            j = i + 1
            while j < n and _is_id_char(sql[j]):
                j += 1
            kind = IDENT
        else:
            j = i + 1
        yield Token(kind, sql[i:j], i)
        i = j


def scan_sql(sql: str) -> list[Token]:
    """Split ``sql`` into tokens the way SQLite's tokenizer does (strings, quoted names, comments,
    parameters, words, single-character punctuation). Concatenating the texts gives ``sql``."""
    return list(_iter_tokens(sql))


def unquote(token: Token) -> str:
    """The name a bare or quoted identifier token stands for."""
    if token.kind != QUOTED:
        return token.text
    text = token.text
    if text[0] == "[":
        return text[1:-1] if text.endswith("]") else text[1:]
    q = text[0]
    body = text[1:-1] if len(text) > 1 and text.endswith(q) else text[1:]
    return body.replace(q + q, q)


@dataclass(frozen=True, slots=True)
class ParamTargets:
    """Target column (lowercased) of each parameter of one statement, ``None`` for no column.

    ``positional[i]`` describes SQLite's parameter number ``i + 1``; it has ``count`` entries and
    covers named parameters too (they also have numbers). ``named`` maps a ``:name``, ``@name`` or
    ``$name`` parameter, without its prefix, to its target. ``count`` equals SQLite's
    ``sqlite3_bind_parameter_count``.
    """

    positional: tuple[str | None, ...]
    named: Mapping[str, str | None]
    count: int


# A target is a column name, None, or (table, position) for INSERT without a column list.
_Target = str | tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class _Analysis:
    count: int
    slots: tuple[int, ...]  # per occurrence: its 1-based SQLite number (0: out of range)
    targets: tuple[_Target, ...]  # per occurrence
    names: tuple[tuple[str, int], ...]  # (name without prefix, number)


_cache: dict[str, _Analysis] = {}


def map_params(sql: str, columns_of: Callable[[str], Sequence[str]] | None = None) -> ParamTargets:
    """The target column of every parameter of ``sql`` (R31); see the module docstring.

    ``columns_of(table)`` resolves ``INSERT INTO table VALUES (…)`` without a column list. The
    analysis is cached per ``sql`` text (bounded), so ``columns_of`` is called on every call.
    """
    analysis = _cache.get(sql)
    if analysis is None:
        analysis = _analyze(sql)
        if len(_cache) >= _CACHE_SIZE:  # drop the oldest; pop() tolerates a racing thread
            _cache.pop(next(iter(_cache), ""), None)
        _cache[sql] = analysis
    merged: dict[int, set[str | None]] = {}
    for slot, target in zip(analysis.slots, analysis.targets, strict=True):
        if slot:
            merged.setdefault(slot, set()).add(_resolve(target, columns_of))
    by_slot = {slot: (next(iter(ts)) if len(ts) == 1 else None) for slot, ts in merged.items()}
    positional = tuple(by_slot.get(i) for i in range(1, analysis.count + 1))
    named: dict[str, str | None] = {}
    for name, slot in analysis.names:
        # ":a" and "$a" are two slots sharing one unprefixed name: agree or None.
        target = by_slot.get(slot)
        named[name] = target if named.get(name, target) == target else None
    return ParamTargets(positional, MappingProxyType(named), analysis.count)


def _resolve(target: _Target, columns_of: Callable[[str], Sequence[str]] | None) -> str | None:
    if not isinstance(target, tuple):
        return target
    if columns_of is None:
        return None
    table, position = target
    try:
        columns = columns_of(table)
    except LookupError:
        return None
    return columns[position].lower() if position < len(columns) else None


def _analyze(sql: str) -> _Analysis:
    tokens = scan_sql(sql)
    count, by_name = 0, dict[str, int]()
    slots: list[int] = []
    names: list[tuple[str, int]] = []
    parts: list[str] = []  # the text handed to sqlglot
    for tok in tokens:
        if tok.kind != VARIABLE:
            parts.append(" " if tok.kind == COMMENT else tok.text)
            continue
        if tok.text == "?":
            count += 1
            slot = count
        elif tok.text[0] == "?":
            number = int(tok.text[1:])
            slot = number if 1 <= number <= _MAX_VARIABLE else 0
            count = max(count, slot)
        elif tok.text in by_name:
            slot = by_name[tok.text]
        else:
            count += 1
            slot = by_name[tok.text] = count
            names.append((tok.text[1:], slot))
        parts.append(f" :{_PLACEHOLDER}{len(slots)} ")
        slots.append(slot)
    targets: list[_Target] = [None] * len(slots)
    words = [t for t in tokens if t.kind not in (WS, COMMENT)]
    head = {w.text.upper() for w in words if w.kind == IDENT}
    if slots and head & {"INSERT", "REPLACE", "UPDATE"}:
        _assign_targets(_rewrite_for_sqlglot(tokens, parts), targets)
    return _Analysis(count, tuple(slots), tuple(targets), tuple(names))


def _rewrite_for_sqlglot(tokens: list[Token], parts: list[str]) -> str:
    """Rewrite SQLite forms sqlglot cannot parse into equivalent ones (same parameters)."""
    significant = [i for i, t in enumerate(tokens) if t.kind not in (WS, COMMENT)]
    depth = 0
    for pos, i in enumerate(significant):
        word = tokens[i].text.upper() if tokens[i].kind == IDENT else tokens[i].text
        depth += (word == "(") - (word == ")")
        prev = tokens[significant[pos - 1]].text.upper() if pos else ""
        following = [tokens[k].text.upper() for k in significant[pos + 1 : pos + 3]]
        if depth or prev == ".":
            continue
        if word == "REPLACE" and prev != "OR" and following[:1] == ["INTO"]:
            parts[i] = "INSERT OR REPLACE"  # REPLACE INTO t … ≡ INSERT OR REPLACE INTO t …
        elif word == "UPDATE" and following[:1] == ["OR"] and len(following) == 2:
            # UPDATE OR IGNORE t … : the conflict action does not change what is bound where.
            parts[significant[pos + 1]] = parts[significant[pos + 2]] = " "
    return "".join(parts)


def _assign_targets(text: str, targets: list[_Target]) -> None:
    try:
        statement = sqlglot.parse_one(text, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return  # unparseable: every parameter keeps the target None (see module docstring)
    if isinstance(statement, exp.Insert):
        _assign_insert(statement, targets)
        conflict = statement.args.get("conflict")
        if isinstance(conflict, exp.OnConflict):
            _assign_set(conflict.expressions, targets)
    elif isinstance(statement, exp.Update):
        _assign_set(statement.expressions, targets)


def _occurrence(node: exp.Expression) -> int | None:
    """The occurrence number when ``node`` is exactly one parameter (parentheses allowed)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Alias):
        node = node.this
    if isinstance(node, exp.Placeholder) and isinstance(node.this, str):
        name = node.this
        if name.startswith(_PLACEHOLDER) and name[len(_PLACEHOLDER) :].isdigit():
            return int(name[len(_PLACEHOLDER) :])
    return None


def _bind_row(
    values: Sequence[exp.Expression], column_at: Callable[[int], _Target], out: list[_Target]
) -> None:
    for position, value in enumerate(values):
        k = _occurrence(value)
        if k is not None:
            out[k] = column_at(position)


def _listed(names: Sequence[str]) -> Callable[[int], _Target]:
    return lambda position: names[position] if position < len(names) else None


def _unlisted(table: str, position: int) -> _Target:
    return (table, position)


def _assign_insert(insert: exp.Insert, out: list[_Target]) -> None:
    into = insert.this
    column_at: Callable[[int], _Target]
    if isinstance(into, exp.Schema):
        column_at = _listed([ident.name.lower() for ident in into.expressions])
    elif isinstance(into, exp.Table):  # no column list: resolved later through columns_of
        column_at = functools.partial(_unlisted, into.name)
    else:
        return
    _assign_source(insert.expression, column_at, out)


def _assign_source(source: object, column_at: Callable[[int], _Target], out: list[_Target]) -> None:
    if isinstance(source, exp.Values):
        for row in source.expressions:
            if isinstance(row, exp.Tuple):
                _bind_row(row.expressions, column_at, out)
    elif isinstance(source, exp.Select):
        _bind_row(source.expressions, column_at, out)
    elif isinstance(source, exp.SetOperation):  # INSERT … SELECT … UNION ALL SELECT …
        _assign_source(source.this, column_at, out)
        _assign_source(source.expression, column_at, out)


def _assign_set(assignments: Sequence[exp.Expression], out: list[_Target]) -> None:
    """``SET col = ?`` and ``SET (a, b) = (?, ?)`` / ``= (SELECT ?, ?)``."""
    for eq in assignments:
        if not isinstance(eq, exp.EQ):
            continue
        left, right = eq.this, eq.expression
        if isinstance(left, exp.Column):
            _bind_row([right], _listed([left.name.lower()]), out)
        elif isinstance(left, exp.Tuple):
            names = _listed([c.name.lower() for c in left.expressions])
            if isinstance(right, exp.Tuple):
                _bind_row(right.expressions, names, out)
            elif isinstance(right, exp.Subquery) and isinstance(right.this, exp.Select):
                _bind_row(right.this.expressions, names, out)

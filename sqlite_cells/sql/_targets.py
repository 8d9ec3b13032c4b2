"""Which column each parameter of a statement is bound to (R31), found once per text.

A parameter that is the *whole* value of a column — a ``VALUES`` cell, a select-list item of
``INSERT … SELECT``, the right side of ``SET col = …`` in ``UPDATE`` or an upsert, in optional
parentheses — targets that column; anything else (``WHERE``, ``RETURNING``, CTEs,
``SET a = ? || 'x'``) targets no column.  The front end calls :func:`find_targets` while it
scans an INSERT, REPLACE, UPDATE or read that has parameters, so the answer is part of the cached
:class:`~sqlite_cells.sql._statement.Statement` and nothing is tokenized or parsed again:

* the two common shapes, ``INSERT [OR …] INTO t [(cols)] VALUES (…), …`` and
  ``UPDATE [OR …] t SET col = …, … [WHERE …]``, are read straight from the tokens;
* anything else is parsed once by sqlglot's parser from sqlglot's own tokens, rewritten into
  forms it reads: each parameter as a unique ``:_cfpK`` placeholder, ``REPLACE INTO`` as
  ``INSERT OR REPLACE INTO``, ``UPDATE OR <action>`` as ``UPDATE`` (the action does not change
  what is bound where).  One it cannot parse is given to it again with what it misreads
  spelled as it reads it: words SQLite also takes as names (a column named ``like``, ``outer``,
  ``rollback``) where they stand as names, a string literal as a SET's column, digits with
  separators (``1_000``) as one number.  A statement it still cannot parse maps every parameter
  to None, and so does one nested deeper than the parser can follow (it runs out of Python
  stack: ``RecursionError``);
* an INSERT with a chain of upsert clauses (``ON CONFLICT … ON CONFLICT …``, SQLite ≥ 3.35),
  which the parser does not read (it fails on the whole), is parsed again once per clause: the
  INSERT before the first clause followed by that clause alone.  Each clause's
  ``DO UPDATE SET col = ?`` targets ``col``; its conflict target and its WHERE target no column.

A read (``SELECT``, ``VALUES``, ``WITH … SELECT``) binds no column, but a parameter it compares
with a ``*_cf_link`` column — the whole other side of ``=``, ``==`` or ``IS``, or an item of
``IN (…)``, in optional parentheses, the column qualified or not, none of them negated —
targets that column: a cell bound there stands for its value, which must be a link to match
anything (R31, R51). A negated comparison (``!=``, ``IS NOT``, ``NOT IN``) holds for every
linked row whatever the value, and targets nothing. Only a read that names a link column is
parsed (sqlglot's parser, as above); comparisons with other columns target no column.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Final, NamedTuple

import sqlglot.errors
from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.tokenizer_core import Token as RawToken
from sqlglot.tokenizer_core import TokenType

from sqlite_cells.sql._kinds import OP, PARAM, QUOTED, STRING, WORD, Param, Target, Tok
from sqlite_cells.sql._names import (
    LINK_SUFFIX,
    READ_VERBS,
    fold_ascii,
    is_link_column,
    upper_ascii,
)

__all__ = ["Draft", "find_targets"]

_PLACEHOLDER: Final = "_cfp"
_Target = Target


class Draft(NamedTuple):
    """What :func:`find_targets` reads of a statement being scanned."""

    sql: str
    tokens: list[Tok]
    body: int  # tokens before the first ";"
    params: list[Param]
    params_raw: list[tuple[int, int, int]]  # per occurrence: token, first and last sqlglot token
    verb: str
    verb_index: int
    raw: list[RawToken]


def find_targets(draft: Draft) -> tuple[Target, ...]:
    """The target of each parameter occurrence of ``draft`` (see the module docstring)."""
    targets: list[Target] = [None] * len(draft.params)
    if draft.verb in READ_VERBS:
        if _names_a_link_column(draft):
            _assign_targets(draft, targets)
    elif not _read_simple(draft, targets):
        targets = [None] * len(draft.params)
        _assign_targets(draft, targets)
    return tuple(targets)


_LINK_KEY: Final = upper_ascii(LINK_SUFFIX)


def _names_a_link_column(draft: Draft) -> bool:
    """Whether a name among the statement's tokens ends in ``_cf_link`` (a read that names
    none compares nothing with a link column: it is not parsed)."""
    return any(
        kind in (WORD, QUOTED) and key.endswith(_LINK_KEY)
        for kind, key, _start, _end in draft.tokens[: draft.body]
    )


def _raw_index(raw: list[RawToken], start: int) -> int:
    """Index of the first sqlglot token at or after ``start`` (-1 if none)."""
    return next((i for i, token in enumerate(raw) if token.start >= start), -1)


def _unquote(text: str) -> str:
    opener = text[0]
    if opener == "[":
        return text[1:-1]
    if opener in "'\"`":
        return text[1:-1].replace(opener + opener, opener)
    return text


# --- the two common shapes, from the tokens -----------------------------------------------------


def _read_simple(statement: Draft, out: list[_Target]) -> bool:
    """Fill ``out`` for ``INSERT … VALUES`` and ``UPDATE … SET`` without anything unusual;
    False (and ``out`` untouched or partly filled) when the statement needs the parser."""
    if statement.verb_index != 0:
        return False
    tokens, count = statement.tokens, statement.body
    occurrence = {index: k for k, (index, _slot) in enumerate(statement.params)}
    i = 1
    if i + 1 < count and tokens[i][1] == "OR" and tokens[i][0] == WORD:
        i += 2  # INSERT OR IGNORE / UPDATE OR REPLACE: the action changes nothing bound
    if statement.verb == "UPDATE":
        return _read_update(statement, i, occurrence, out)
    if i >= count or tokens[i][1] != "INTO" or tokens[i][0] != WORD:
        return False
    i += 1
    if i + 1 >= count or tokens[i][0] not in (WORD, QUOTED, STRING):
        return False
    table = _unquote(statement.sql[tokens[i][2] : tokens[i][3]])
    i += 1
    column_at: Callable[[int], _Target]
    if tokens[i][1] == "(":
        names, i = _name_list(statement, i + 1)
        if names is None:
            return False
        column_at = _listed(names)
    else:
        column_at = functools.partial(_unlisted, table)
    if i >= count or tokens[i][1] != "VALUES" or tokens[i][0] != WORD:
        return False
    i += 1
    while True:
        if i >= count or tokens[i][1] != "(" or tokens[i][0] != OP:
            return False
        position = 0
        i += 1
        while True:
            if i + 1 < count and tokens[i + 1][1] in _ENDS_VALUE and tokens[i + 1][0] == OP:
                end = i + 1  # a one-token value: the common case
            else:
                end = _value_end(tokens, i, count)
                if end >= count or tokens[end][0] != OP:
                    return False
            k = _whole_param(tokens, i, end, occurrence)
            if k is not None:
                out[k] = column_at(position)
            position += 1
            i = end + 1
            if tokens[end][1] == ")":
                break
        if i == count:
            return True
        if tokens[i][1] != "," or tokens[i][0] != OP:
            return False  # an upsert, RETURNING, …: the parser reads those
        i += 1


def _read_update(statement: Draft, i: int, occurrence: dict[int, int], out: list[_Target]) -> bool:
    tokens, count = statement.tokens, statement.body
    if i + 1 >= count or tokens[i][0] not in (WORD, QUOTED, STRING):
        return False
    i += 1
    if tokens[i][1] != "SET" or tokens[i][0] != WORD:
        return False
    i += 1
    while True:
        if i + 1 >= count or tokens[i][0] not in (WORD, QUOTED, STRING) or tokens[i + 1][1] != "=":
            return False
        column = fold_ascii(_unquote(statement.sql[tokens[i][2] : tokens[i][3]]))
        start = i + 2
        end = _value_end(tokens, start, count)
        k = _whole_param(tokens, start, end, occurrence)
        if k is not None:
            out[k] = column
        if end >= count:
            return True
        kind, key = tokens[end][0], tokens[end][1]
        if kind == OP and key == ",":
            i = end + 1
            continue
        return kind == WORD and key == "WHERE"


_ENDS_VALUE: Final = frozenset({",", ")"})
_ENDS_SET_ITEM: Final = frozenset({"WHERE", "FROM", "RETURNING", "ORDER", "LIMIT"})


def _value_end(tokens: list[Tok], i: int, count: int) -> int:
    """Index of the ``,`` or ``)`` (or the word ending a SET list) that ends the value starting
    at ``i`` at its parenthesis depth; ``count`` if the text ends first."""
    depth = 0
    for j in range(i, count):
        kind, key, _start, _end = tokens[j]
        if kind == OP:
            if key == "(":
                depth += 1
            elif depth == 0 and key in _ENDS_VALUE:
                return j
            elif key == ")":
                depth -= 1
        elif depth == 0 and kind == WORD and key in _ENDS_SET_ITEM:
            return j
    return count


def _whole_param(tokens: list[Tok], i: int, end: int, occurrence: dict[int, int]) -> int | None:
    """The occurrence number when tokens ``i:end`` are one parameter in optional parentheses."""
    if end - i == 1:
        return occurrence.get(i) if tokens[i][0] == PARAM else None
    while end - i >= 3 and tokens[i][1] == "(" and tokens[end - 1][1] == ")":
        i, end = i + 1, end - 1
    if end - i == 1 and tokens[i][0] == PARAM:
        return occurrence.get(i)
    return None


def _name_list(statement: Draft, i: int) -> tuple[list[str] | None, int]:
    """``a, "b", 'c')`` starting at ``i``: the folded names and the index after ``)``."""
    tokens, count, sql = statement.tokens, statement.body, statement.sql
    names: list[str] = []
    while i + 1 < count and tokens[i][0] in (WORD, QUOTED, STRING):
        kind, key, start, end = tokens[i]
        if kind == WORD and key.isascii():
            names.append(key.lower())  # the key is the word upper-cased
        else:
            names.append(fold_ascii(_unquote(sql[start:end])))
        separator = tokens[i + 1][1]
        i += 2
        if separator == ")":
            return names, i
        if separator != ",":
            break
    return None, i


# --- anything else: sqlglot's parser, once ------------------------------------------------------


class _Quiet(SQLite):
    """SQLite's dialect, parsing JSON paths leniently: a path sqlglot's own path syntax cannot
    read (SQLite takes more: ``'$./.link@1.id'``, the natural way to read what a link names)
    stays text, which is all the mapping needs — where the strict dialect also logged a warning
    that reached the user's stderr at every parse (a raw library line, Errors)."""

    STRICT_JSON_PATH_SYNTAX = False


_DIALECT: Final = _Quiet()


def _assign_targets(statement: Draft, targets: list[_Target]) -> None:
    try:
        tokens = _parser_tokens(statement)
        try:
            _assign_parsed(statement, tokens, targets)
        except sqlglot.errors.SqlglotError:
            # Words SQLite reads as names where the parser takes them for keywords (a column
            # named like, outer, with, rollback, …), a string literal SQLite reads as a SET's
            # column, digits with separators (1_000): the statement is given to the parser
            # again with those as it reads them, when there are any.
            respelled = _respelled(tokens)
            if respelled is None:
                raise
            targets[:] = [None] * len(targets)
            _assign_parsed(statement, respelled, targets)
    except (sqlglot.errors.SqlglotError, RecursionError, TypeError, ValueError):
        # Unparseable, or nested deeper than the parser (or the walk of a long UNION chain)
        # can follow, or text sqlglot's parser fails on with an error of its own (a JSON arrow
        # with nothing after it: TypeError): every parameter targets no column (see the
        # module docstring) — SQLite says what is wrong with the statement, if anything.
        targets[:] = [None] * len(targets)


def _assign_parsed(statement: Draft, tokens: list[RawToken], targets: list[_Target]) -> None:
    """Map the parameters of ``tokens`` (the statement as the parser reads it)."""
    try:
        _assign_tree(statement, tokens, targets)
    except sqlglot.errors.SqlglotError:
        # sqlglot's parser reads one upsert clause (SQLite reads a chain of them, ≥ 3.35):
        # such a statement is parsed once per clause, as the INSERT before the first clause
        # followed by that clause alone, so the VALUES (or SELECT) and every DO UPDATE SET
        # are mapped.  Only when the whole does not parse: ``JOIN v ON conflict = …`` (a
        # column named so) in an ``INSERT … SELECT`` is no clause.
        if statement.verb in ("INSERT", "REPLACE"):
            # sqlglot's parser takes no compound whose first arm is VALUES (SQLite does):
            # that arm is given to it as the SELECT * FROM (VALUES …) it reads.
            wrapped = _values_arm_wrapped(tokens)
            if wrapped is not None:
                _assign_tree(statement, wrapped, targets)
                return
        clauses = _upsert_clauses(tokens) if statement.verb in ("INSERT", "REPLACE") else []
        if len(clauses) < 2:
            raise
        prefix = tokens[: clauses[0]]
        for start, end in zip(clauses, [*clauses[1:], len(tokens)], strict=True):
            _assign_tree(statement, prefix + tokens[start:end], targets)


# Words SQLite also reads as names (its grammar's fallback to an identifier, its join and LIKE
# keywords, which `nm` takes), which sqlglot's parser may read as keywords only.
_SQLITE_NAME_WORDS: Final = """
    ABORT ACTION AFTER ALWAYS ANALYZE ASC ATTACH BEFORE BEGIN BY CASCADE CAST COLUMN CONFLICT
    CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFERRED DESC DETACH DO
    EACH END EXCLUDE EXCLUSIVE EXPLAIN FAIL FIRST FOLLOWING FOR FULL GENERATED GLOB GROUPS IF
    IGNORE IMMEDIATE INITIALLY INNER INSTEAD KEY LAST LEFT LIKE MATCH MATERIALIZED NATURAL NO
    NULLS OF OFFSET OTHERS OUTER PARTITION PLAN PRAGMA PRECEDING QUERY RAISE RANGE RECURSIVE
    REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RIGHT ROLLBACK ROW ROWS SAVEPOINT TEMP TIES
    TRIGGER UNBOUNDED VACUUM VIEW VIRTUAL WITH WITHOUT
"""
_NAME_WORDS: Final = frozenset(_SQLITE_NAME_WORDS.split())
# A name-word is a name before these (or at the end) unless an operand stands before it (then
# it is an operator or a modifier: ``a LIKE b``, ``x DESC,``), and after these unless a "("
# follows it (a call, ``CAST(``) or it is WITH (a subquery's ``(WITH``).
_NAME_BEFORE: Final = frozenset({TokenType.EQ, TokenType.COMMA, TokenType.R_PAREN, TokenType.DOT})
_NAME_AFTER: Final = frozenset(
    {TokenType.SET, TokenType.COMMA, TokenType.L_PAREN, TokenType.SELECT, TokenType.WHERE}
)
_OPERANDS: Final = frozenset(
    {TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING, TokenType.NUMBER}
    | {TokenType.R_PAREN, TokenType.PLACEHOLDER}
)


def _respelled(tokens: list[RawToken]) -> list[RawToken] | None:
    """``tokens`` with what sqlglot's parser misreads spelled as it reads it (see
    :func:`_assign_targets`): a word SQLite reads as a name there as a name, a string literal
    before the ``=`` of a SET item as a name, a number and the ``_…`` digits after it as one
    number; None when there is nothing of the kind."""
    out: list[RawToken] = []
    changed = False
    count = len(tokens)
    i = 0
    while i < count:
        token = tokens[i]
        kind = token.token_type
        after = tokens[i + 1] if i + 1 < count else None
        following = after.token_type if after is not None else None
        before = out[-1].token_type if out else None
        if kind is TokenType.NUMBER and after is not None and _separated_digits(token, after):
            text = (token.text + after.text).replace("_", "")
            out.append(RawToken(TokenType.NUMBER, text, start=token.start, end=after.end))
            changed = True
            i += 2
            continue
        if (kind is TokenType.VAR or kind is TokenType.IDENTIFIER) or not (
            token.text.upper() in _NAME_WORDS or kind is TokenType.STRING
        ):
            out.append(token)
            i += 1
            continue
        if kind is TokenType.STRING:
            name = before in (TokenType.SET, TokenType.COMMA) and following is TokenType.EQ
        else:
            name = (
                ((following is None or following in _NAME_BEFORE) and before not in _OPERANDS)
                or before is TokenType.DOT
                or (
                    before in _NAME_AFTER
                    and following is not TokenType.L_PAREN
                    and token.text.upper() != "WITH"
                )
            )
        if name:
            out.append(RawToken(TokenType.IDENTIFIER, token.text, start=token.start, end=token.end))
            changed = True
        else:
            out.append(token)
        i += 1
    return out if changed else None


def _separated_digits(number: RawToken, after: RawToken) -> bool:
    """Whether ``after`` continues ``number`` with digit separators (``1_000``: sqlglot's
    tokens ``1`` and ``_000``)."""
    return (
        after.token_type is TokenType.VAR
        and after.start == number.end + 1
        and after.text.startswith("_")
        and (number.text + after.text).replace("_", "").isdigit()
    )


def _assign_tree(statement: Draft, tokens: list[RawToken], targets: list[_Target]) -> None:
    parsed = _DIALECT.parser().parse(tokens, statement.sql)
    tree = parsed[0] if parsed else None
    if isinstance(tree, exp.Insert):
        _assign_insert(tree, targets)
        conflict = tree.args.get("conflict")
        if isinstance(conflict, exp.OnConflict):
            _assign_set(conflict.expressions, targets)  # DO UPDATE SET; never its WHERE
    elif isinstance(tree, exp.Update):
        _assign_set(tree.expressions, targets)
    elif statement.verb in READ_VERBS and isinstance(tree, exp.Expression):
        _assign_compared(tree, targets)


_COMPOUND: Final = frozenset({TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT})


def _top_level(tokens: list[RawToken]) -> Iterator[tuple[int, RawToken]]:
    """The tokens outside every parenthesis (the parentheses themselves left out), with their
    index."""
    depth = 0
    for i, token in enumerate(tokens):
        kind = token.token_type
        if kind is TokenType.L_PAREN:
            depth += 1
        elif kind is TokenType.R_PAREN:
            depth -= 1
        elif depth == 0:
            yield i, token


def _values_arm_wrapped(tokens: list[RawToken]) -> list[RawToken] | None:
    """``INSERT … VALUES (…) UNION …`` with that first arm as ``SELECT * FROM (VALUES (…))``,
    which says the same (the star is the values' columns, in order); None when the statement
    has no such arm."""
    start = end = None
    for i, token in _top_level(tokens):
        if token.token_type is TokenType.VALUES and start is None:
            start = i
        elif token.token_type in _COMPOUND and start is not None:
            end = i
            break
    if start is None or end is None:
        return None
    at = tokens[start].start
    made = [
        RawToken(kind, text, start=at, end=at)
        for kind, text in (
            (TokenType.SELECT, "SELECT"),
            (TokenType.STAR, "*"),
            (TokenType.FROM, "FROM"),
            (TokenType.L_PAREN, "("),
            (TokenType.R_PAREN, ")"),
        )
    ]
    return [*tokens[:start], *made[:4], *tokens[start:end], made[4], *tokens[end:]]


def _upsert_clauses(tokens: list[RawToken]) -> list[int]:
    """Where each ``ON CONFLICT`` that starts an upsert clause is: outside parentheses, ``ON``
    then the bare word ``CONFLICT`` (a quoted ``"conflict"`` is a name, as SQLite reads it)."""
    return [
        i
        for i, token in _top_level(tokens)
        if token.token_type is TokenType.ON
        and i + 1 < len(tokens)
        and tokens[i + 1].token_type is TokenType.VAR
        and tokens[i + 1].text.upper() == "CONFLICT"
    ]


def _parser_tokens(statement: Draft) -> list[RawToken]:
    """sqlglot's tokens of the statement, rewritten into forms its parser reads: each parameter
    as ``:_cfpK``, ``REPLACE INTO`` as ``INSERT OR REPLACE INTO``, ``UPDATE OR <action>`` as
    ``UPDATE`` (the action does not change what is bound where), no trailing ``;``."""
    raw = statement.raw
    replaced: dict[int, tuple[int, list[RawToken]]] = {}
    for k, (_index, raw_first, raw_last) in enumerate(statement.params_raw):
        first = raw[raw_first]
        replaced[raw_first] = (
            raw_last,
            [
                RawToken(TokenType.COLON, ":", start=first.start, end=first.start),
                RawToken(TokenType.VAR, f"{_PLACEHOLDER}{k}", start=first.start, end=first.end),
            ],
        )
    at = _raw_index(raw, statement.tokens[statement.verb_index][2])
    if at >= 0 and statement.verb == "REPLACE":
        verb = raw[at]
        replaced[at] = (
            at,
            [
                RawToken(TokenType.INSERT, "INSERT", start=verb.start, end=verb.end),
                RawToken(TokenType.OR, "OR", start=verb.start, end=verb.end),
                RawToken(TokenType.REPLACE, "REPLACE", start=verb.start, end=verb.end),
            ],
        )
    elif (
        at >= 0
        and statement.verb == "UPDATE"
        and at + 2 < len(raw)
        and raw[at + 1].token_type is TokenType.OR
    ):
        replaced[at + 1] = (at + 2, [])
    out: list[RawToken] = []
    r = 0
    while r < len(raw):
        token = raw[r]
        if token.token_type is TokenType.SEMICOLON:
            break
        if r in replaced:
            last, tokens = replaced[r]
            out.extend(tokens)
            r = last + 1
            continue
        out.append(token)
        r += 1
    return out


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
        if isinstance(value, exp.Star) or (
            isinstance(value, exp.Column) and isinstance(value.this, exp.Star)
        ):
            # ``*`` (or ``t.*``) stands for as many columns as its source has: the values
            # after it target no column that can be told here (R31: a Cell there is refused).
            return
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
        column_at = _listed([fold_ascii(ident.name) for ident in into.expressions])
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
        values = _star_over_values(source)
        if values is not None:
            _assign_source(values, column_at, out)
        else:
            _bind_row(source.expressions, column_at, out)
    elif isinstance(source, exp.SetOperation):  # INSERT … SELECT … UNION ALL SELECT …
        _assign_source(source.this, column_at, out)
        _assign_source(source.expression, column_at, out)


def _star_over_values(select: exp.Select) -> exp.Values | None:
    """The ``VALUES`` of ``SELECT * FROM (VALUES …)`` — how the parser gives a compound's
    ``VALUES`` arm (``… UNION ALL VALUES (…)``): its star is the values' columns, in order, so
    the values are what each column position takes. None for any other select."""
    if len(select.expressions) != 1 or not isinstance(select.expressions[0], exp.Star):
        return None
    source = select.args.get("from_") or select.args.get("from")
    if not isinstance(source, exp.From) or select.args.get("joins"):
        return None
    values = source.this
    return values if isinstance(values, exp.Values) else None


def _assign_set(assignments: Sequence[exp.Expression], out: list[_Target]) -> None:
    """``SET col = ?`` and ``SET (a, b) = (?, ?)`` / ``= (SELECT ?, ?)``."""
    for eq in assignments:
        if not isinstance(eq, exp.EQ):
            continue
        left, right = eq.this, eq.expression
        while isinstance(left, exp.Paren):  # ``SET (a) = (?)``: a row value of one column
            left = left.this
        # A string literal is a column's name there, as SQLite reads it (``SET 'a' = ?``).
        if isinstance(left, exp.Column) or (isinstance(left, exp.Literal) and left.is_string):
            _bind_row([right], _listed([fold_ascii(left.name)]), out)
        elif isinstance(left, exp.Tuple):
            names = _listed([fold_ascii(c.name) for c in left.expressions])
            if isinstance(right, exp.Tuple):
                _bind_row(right.expressions, names, out)
            elif isinstance(right, exp.Subquery) and isinstance(right.this, exp.Select):
                _bind_row(right.this.expressions, names, out)


# Comparisons a value that is not a link can make true of no row: not their negations (``!=``,
# ``IS NOT``, ``NOT IN``, ``NOT (… = ?)``), which such a value makes true of every linked row.
_COMPARISONS: Final = (exp.EQ, exp.NullSafeEQ)


def _assign_compared(tree: exp.Expression, out: list[_Target]) -> None:
    """A read's parameters compared with a link column (see the module docstring): ``col = ?``,
    ``? = col`` (``==`` and ``IS`` alike) and ``col IN (?, …)``, not negated."""
    for node in tree.find_all(*_COMPARISONS, exp.In):
        parent = node.parent
        while isinstance(parent, exp.Paren):
            parent = parent.parent
        if isinstance(parent, exp.Not):
            continue
        if isinstance(node, exp.In):
            column = _link_column(node.this)
            if column is not None:
                _bind_row(node.expressions, _listed([column] * len(node.expressions)), out)
            continue
        left, right = node.this, node.expression
        for column, value in ((_link_column(left), right), (_link_column(right), left)):
            if column is not None:
                _bind_row([value], _listed([column]), out)


def _link_column(node: exp.Expression | None) -> str | None:
    """The folded name of the link column ``node`` is (in optional parentheses), else None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        name = fold_ascii(node.name)
        return name if is_link_column(name) else None
    return None

"""Where SQLite reads a name (R24): string literals in name positions, tables, functions.

:func:`find_names` walks a statement's tokens once and returns the indexes of the string literals
SQLite reads as names, the names it resolves as tables and the names it calls.
:func:`may_be_names` is the cheap test that lets most statements skip that walk.
:func:`may_name_a_cte` says whether a token stands where a CTE's name can.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlite_cells.sql._kinds import OP, STRING, WORD, Tok, matching
from sqlite_cells.sql._lexer import unquote
from sqlite_cells.sql._names import fold_ascii

__all__ = ["find_names", "may_be_names", "may_name_a_cte"]

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
# SQLite's grammar lets an expression follow these words: a string literal right after one is
# data (FROM only after IS [NOT] DISTINCT, SET a column of the target table).  After any other
# word, a literal, a parameter, a quoted identifier or a ")" a string literal is a name: an
# implicit alias (SQLite's "as ::= ids"), after AS an alias or a type name, after WITH, RECURSIVE,
# WINDOW and OVER a CTE's or a window's name, after COLLATE a collation's.
_DATA_AFTER: Final = frozenset(
    {"SELECT", "DISTINCT", "ALL", "WHERE", "HAVING", "ON", "BY", "LIMIT", "OFFSET", "FROM"}
    | {"AND", "OR", "NOT", "IS", "BETWEEN", "LIKE", "GLOB", "REGEXP", "MATCH", "ESCAPE"}
    | {"CASE", "WHEN", "THEN", "ELSE", "ROWS", "RANGE", "GROUPS", "RETURNING", "DEFAULT"}
)
# Those of them SQLite also reads as a column's name (its "fallback" to an identifier) where an
# operand starts: "SELECT offset 'x'" names the column offset x.  LIKE, GLOB, REGEXP and MATCH
# are operators after an operand and after a NOT that follows one ("body NOT LIKE 'x'").
_ALSO_COLUMNS: Final = frozenset({"BY", "OFFSET", "ROWS", "RANGE", "GROUPS"})
_ALSO_COLUMNS_AFTER_NOT: Final = frozenset({"LIKE", "GLOB", "REGEXP", "MATCH"})
_FRAME_WORDS: Final = frozenset({"ROWS", "RANGE", "GROUPS"})
_KEYWORD_COLUMNS: Final = _ALSO_COLUMNS | _ALSO_COLUMNS_AFTER_NOT
# A SET list names columns ("SET 'a' = 1, ('b', 'c') = (2, 3)") up to one of these words at its
# parenthesis depth.
_SET_ENDERS: Final = _FROM_ENDERS | {"FROM", "ON"}
# A window's base name stands first in "OVER (" and "WINDOW w AS (" (after "AS (" in a CTE only
# a statement can).
_BEFORE_WINDOW_BASE: Final = frozenset({"OVER", "AS"})
# Table positions: a table read (it may be a called table-valued function), a write target, an
# index (INDEXED BY).
_SOURCE, _TARGET, _INDEX = 1, 2, 3


def find_names(
    sql: str, tokens: Sequence[Tok], count: int
) -> tuple[frozenset[int], tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """String literals SQLite reads as names, names it resolves as tables, names it calls.

    A token stands in a *table position* after FROM (not ``IS [NOT] DISTINCT FROM``), JOIN, IN
    (not ``IN (``), INTO, UPDATE, ``UPDATE OR <action>``, TABLE and ``INDEXED BY``, after a ``,``
    of a FROM list, after a ``(`` that itself stands in a table position (a parenthesised FROM
    item), and after the ``.`` of a qualified name in a table position.  A string literal is a
    name there, before or after a ``.``, and when a ``(`` follows it (only a table-valued
    function can be a called string).  Elsewhere it is a name by what stands before it
    (:func:`_names_by_neighbour`): an alias, a CTE's, a window's, a type's or a collation's name.
    """
    strings: list[int] = []
    tables: list[tuple[str, int]] = []
    functions: list[tuple[str, int]] = []
    in_from = [False]  # per parenthesis depth: inside a FROM list?
    columns = [False]  # per parenthesis depth: inside a list of names (CTE, INSERT, SET)?
    position = 0  # the table position of the current token, 0 for none
    last = 0  # the table position of the previous name
    target = -1  # the index of the last name in a write target's position
    opened: list[int] = []  # the indexes of the "(" not closed yet
    openers: dict[int, int] = {}  # the index of each ")" met so far -> that of its "("
    for i in range(count):
        kind, key = tokens[i][0], tokens[i][1]
        if kind == OP:
            if key == "(":
                columns.append(i > 0 and _opens_names(tokens, i, target, columns[-1], openers))
                opened.append(i)
            elif key == ")":
                if opened:
                    openers[i] = opened.pop()
                if len(columns) > 1:
                    columns.pop()
            position = _after_operator(tokens, i, key, position, last, in_from)
            last = 0
            continue
        if kind > STRING:  # numbers, parameters, blobs
            position = last = 0
            continue
        following = tokens[i + 1][1] if i + 1 < count and tokens[i + 1][0] == OP else ""
        if kind == WORD:
            if key == "SET":
                columns[-1] = True
            elif columns[-1] and key in _SET_ENDERS and _is_a_keyword(tokens, i, key):
                columns[-1] = False
        if kind == WORD and not position and following != "(":
            last = 0  # the common case: a keyword or a column name
            position = _after_word(tokens, i, key, in_from)
            continue
        if kind == STRING:
            after_dot = i > 0 and tokens[i - 1][1] == "." and tokens[i - 1][0] == OP
            if not (position or after_dot or following == "." or following == "("):
                if i and _names_by_neighbour(tokens, i, columns[-1], openers):
                    strings.append(i)  # an alias, a CTE's, window's, type's or collation's name
                position = last = 0
                continue
            strings.append(i)
        after_as = i > 0 and tokens[i - 1][:2] == (WORD, "AS")
        _record(sql, tokens[i], position, following, tables, functions, after_as)
        if position == _TARGET:
            target = i
        last = position
        position = _after_word(tokens, i, key, in_from) if kind == WORD else 0
    return frozenset(strings), tuple(tables), tuple(functions)


def _after_operator(
    tokens: Sequence[Tok], i: int, key: str, position: int, last: int, in_from: list[bool]
) -> int:
    """The table position after the operator ``key`` at ``i`` (updating the FROM-list stack)."""
    if key == "(":
        paren = position == _SOURCE and tokens[i - 1][1] != "IN"
        in_from.append(paren)
        return _SOURCE if paren else 0
    if key == ")":
        if len(in_from) > 1:
            in_from.pop()
        return 0
    if key == ",":
        return _SOURCE if in_from[-1] else 0
    return last if key == "." else 0


def _after_word(tokens: Sequence[Tok], i: int, key: str, in_from: list[bool]) -> int:
    """The table position after the word ``key`` at ``i`` (updating the FROM-list stack)."""
    position = _POSITIONS.get(key, 0)
    if position or key == "BY" or (i >= 2 and tokens[i - 1][1] == "OR"):
        position = _position_after(tokens, i, key)
    if key in _FROM_ENDERS and _is_a_keyword(tokens, i, key):
        in_from[-1] = False
    elif position == _SOURCE and key != "IN":
        in_from[-1] = True
    return position


def _opens_names(
    tokens: Sequence[Tok], i: int, target: int, names: bool, openers: dict[int, int]
) -> bool:
    """Whether the ``(`` at ``i`` opens a list of names: a CTE's columns (``WITH c(``), an
    INSERT's (after its target, ``INTO t (`` or ``INTO t AS x (``), a join's ``USING (``, or a
    SET's (``SET (`` or ``, (`` in a SET list, which ``names`` says the enclosing depth is)."""
    kind, key = tokens[i - 1][0], tokens[i - 1][1]
    if kind == OP:
        return names and key == ","
    return (
        target == i - 1
        or (target == i - 3 and tokens[i - 2][:2] == (WORD, "AS"))
        or (kind == WORD and (key == "SET" or key == "USING"))
        or may_name_a_cte(tokens, i - 1, openers)
    )


def _is_a_keyword(tokens: Sequence[Tok], i: int, key: str) -> bool:
    """Whether the word ``key`` at ``i`` (one of :data:`_FROM_ENDERS`) is that keyword: SQLite
    also reads DO as a name (``FROM t AS do, …``) unless ``UPDATE`` or ``NOTHING`` follows it, and
    WINDOW unless a window's name and ``AS`` follow it (``FROM t window, …``)."""
    if key == "DO":
        return i + 1 < len(tokens) and tokens[i + 1][1] in ("UPDATE", "NOTHING")
    if key == "WINDOW":
        return i + 2 < len(tokens) and tokens[i + 2][:2] == (WORD, "AS")
    return True


def _names_by_neighbour(
    tokens: Sequence[Tok], i: int, columns: bool, openers: dict[int, int]
) -> bool:
    """Whether SQLite reads the string literal at ``i`` (in no table position) as a name.

    It is one after a word that no expression follows in SQLite's grammar (an implicit alias
    after a column or table name, ``NULL``, ``END``; after ``AS``, ``WITH``, ``WINDOW``, ``OVER``,
    ``COLLATE``, ``SET``) or one SQLite reads as a column's name there (``SELECT offset 'x'``),
    after a literal, parameter, quoted identifier or ``)`` (an implicit alias: ``SELECT 'a' 'b'``
    names its column b), first in ``OVER (`` or ``AS (`` (a window's base name), after the ``,``
    that ends a CTE's or a window's definition, and in a list of names (``columns``: a CTE's,
    an INSERT's or a SET's columns).  After ``=``, ``(`` of a call, ``,`` of a list, ``LIKE``,
    ``THEN``, … it is data.
    """
    kind, key = tokens[i - 1][0], tokens[i - 1][1]
    if kind == WORD:
        return key not in _DATA_AFTER or _is_a_column(tokens, i - 1)
    if kind != OP or key == ")":
        return True
    if key == "(":
        return columns or (
            i >= 2 and tokens[i - 2][0] == WORD and tokens[i - 2][1] in _BEFORE_WINDOW_BASE
        )
    return key == "," and (columns or may_name_a_cte(tokens, i, openers))


# How many such words in a row are followed back (``WHERE range LIKE``: RANGE is a column there,
# so LIKE is the operator); past that many a word counts as a column.
_RUN: Final = 8


def _is_a_column(tokens: Sequence[Tok], j: int, run: int = 0) -> bool:
    """Whether SQLite reads the word at ``j``, a keyword an expression follows elsewhere, as a
    column's name: where an operand starts (after an operator other than ``)``, or a word an
    expression follows that is not itself a column), except that ROWS, RANGE and GROUPS open a
    window's frame after ``(`` and LIKE, GLOB, REGEXP and MATCH are operators after a ``NOT``
    that follows an operand."""
    key = tokens[j][1]
    if key not in _KEYWORD_COLUMNS or j == 0:
        return False
    if run > _RUN:
        return True
    kind, previous = tokens[j - 1][0], tokens[j - 1][1]
    if kind == OP:
        return previous != ")" and (previous != "(" or key not in _FRAME_WORDS)
    if kind != WORD or previous not in _DATA_AFTER:
        return False
    if previous == "NOT" and key in _ALSO_COLUMNS_AFTER_NOT:
        return _starts_operand(tokens, j - 1, run + 1)
    return not _is_a_column(tokens, j - 1, run + 1)


def _starts_operand(tokens: Sequence[Tok], j: int, run: int) -> bool:
    """Whether the token at ``j`` stands where an operand starts."""
    if j == 0:
        return False
    kind, previous = tokens[j - 1][0], tokens[j - 1][1]
    if kind == OP:
        return previous != ")"
    return kind == WORD and previous in _DATA_AFTER and not _is_a_column(tokens, j - 1, run + 1)


def may_name_a_cte(tokens: Sequence[Tok], i: int, openers: dict[int, int] | None = None) -> bool:
    """Whether the name at ``i`` stands where a CTE's name can: after ``WITH``, ``WITH
    RECURSIVE``, or the ``,`` after a CTE's body ``AS [[NOT] MATERIALIZED] (…)`` (or after a
    window's definition ``w AS (…)``, which has the same shape).

    ``openers`` maps the index of each ``)`` before ``i`` to that of its ``(``, when the caller
    walks the tokens forward and keeps it: then the group before the ``,`` is found at once,
    not by walking back over it (which, for each ``),`` of a deeply nested text, made the
    guard's time grow with the square of its length, R44)."""
    if i == 0:
        return False
    kind, key = tokens[i - 1][0], tokens[i - 1][1]
    if kind == WORD:
        # WITH (or WITH RECURSIVE) opens a statement or a subquery; elsewhere it is a name
        # ("WHERE with IN (…)").
        if key == "RECURSIVE" and i >= 2 and tokens[i - 2][:2] == (WORD, "WITH"):
            i -= 1
            key = "WITH"
        return key == "WITH" and (i < 2 or tokens[i - 2][:2] == (OP, "("))
    if key != "," or i < 2 or tokens[i - 2][:2] != (OP, ")"):
        return False
    j = openers.get(i - 2, -1) if openers is not None else matching(tokens, i - 2, -1)
    return j > 0 and tokens[j - 1][:2] in ((WORD, "AS"), (WORD, "MATERIALIZED"))


def _record(
    sql: str,
    token: Tok,
    position: int,
    following: str,
    tables: list[tuple[str, int]],
    functions: list[tuple[str, int]],
    after_as: bool,
) -> None:
    """Note the name ``token`` as a table and/or a function, by its position. A word after
    ``AS`` (``after_as``) is an alias or a type's name, a ``(`` after it notwithstanding
    (``INSERT INTO t AS changes (a)``, ``CAST(x AS edit(10))``): never a call."""
    kind, key, start, end = token
    if kind == WORD and key in _NOT_NAMES:
        return
    if position and following != ".":
        name = fold_ascii(unquote(sql[start:end]))
        if position != _INDEX:
            tables.append((name, start))
        if position == _SOURCE and following == "(":
            functions.append((name, start))  # a table-valued function
    elif following == "(" and kind == WORD and not after_as:
        functions.append((fold_ascii(sql[start:end]), start))


_POSITIONS: Final = {"FROM": _SOURCE, "JOIN": _SOURCE, "IN": _SOURCE}
_POSITIONS.update(dict.fromkeys(("INTO", "UPDATE", "TABLE"), _TARGET))


# Words a string literal after which is only ever data (FROM and BY may introduce a table or an
# index, so they are not here).
_DATA_ONLY_AFTER: Final = _DATA_AFTER - {"FROM", "BY"}
_NEXT_TO_NAMES: Final = frozenset({",", "(", "."})


def may_be_names(tokens: Sequence[Tok], count: int, strings: list[int]) -> bool:
    """Whether any string literal stands where :func:`find_names` could find a name: after a word
    other than one an expression follows (``=``, ``LIKE``, ``THEN``, …), after a literal, a
    parameter, a quoted identifier or ``)``, after ``,``, ``(`` or ``.``, or before ``.`` or
    ``(``.  Most literals are plain data (``body LIKE 'x%'``, ``body = 'x'``) and skip the pass."""
    for i in strings:
        if i >= count:
            break
        if not i:
            continue
        kind, previous = tokens[i - 1][0], tokens[i - 1][1]
        following = tokens[i + 1][1] if i + 1 < count else ""
        if (
            (kind != OP and (kind != WORD or previous not in _DATA_ONLY_AFTER))
            or (previous in _KEYWORD_COLUMNS and kind == WORD and _is_a_column(tokens, i - 1))
            or previous in _NEXT_TO_NAMES
            or previous == ")"
            or following == "."
            or following == "("
        ):
            return True
    return False


def _position_after(tokens: Sequence[Tok], i: int, key: str) -> int:
    """The table position of the token after the word at ``i`` (0 for none)."""
    if key in _TABLE_SOURCES:
        if key == "FROM" and i and tokens[i - 1][:2] == (WORD, "DISTINCT"):
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

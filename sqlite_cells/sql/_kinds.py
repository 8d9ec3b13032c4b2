"""The vocabulary of the front end's tokens, shared by the scan and its readers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "BLOB",
    "NUMBER",
    "OP",
    "PARAM",
    "QUOTED",
    "STRING",
    "WORD",
    "Group",
    "Param",
    "Target",
    "Tok",
    "groups",
    "matching",
]

# Kinds of token (SQLite's tokens).  Words and quoted identifiers are names; string literals are
# names only where SQLite reads one as a name (R24).
WORD, QUOTED, STRING, BLOB, NUMBER, PARAM, OP = range(7)

# One token: (kind, key, start, end).  ``key`` is the text upper-cased (ASCII letters only) for
# words and operators, the unescaped text upper-cased for quoted identifiers and string literals,
# the text for parameters, "" for numbers and blobs.
Tok = tuple[int, str, int, int]

# Where one parameter occurrence is bound: a column (ASCII-folded), (table, position) for
# ``INSERT INTO table VALUES (…)`` without a column list, or None for no column.
Target = str | tuple[str, int] | None


# One occurrence of a parameter: (index of its token, SQLite's number for it).  The number is 0
# when SQLite refuses it (``?0`` or above 32766).  A plain tuple: the scan makes one per
# occurrence on the path of every new statement.
Param = tuple[int, int]


class Group(NamedTuple):
    """A parenthesised group of a statement's tokens (a call's arguments, a column list)."""

    commas: list[int]  # the indexes of its top-level commas
    close: int  # the index of its closing parenthesis, -1 when it has none
    first_as: int  # the index of its first top-level AS (a CAST's type follows it), -1 if none


def groups(tokens: Sequence[Tok]) -> dict[int, Group]:
    """Each parenthesised group of ``tokens``, by the index of its opening parenthesis: found
    in one pass, so that a reader asking about every call of a deeply nested text does not
    walk each call's group again (its time would grow with the square of the text, R44)."""
    found: dict[int, Group] = {}
    open_: list[int] = []
    for j, token in enumerate(tokens):
        kind, key = token[0], token[1]
        if kind == WORD:
            if key == "AS" and open_ and found[open_[-1]].first_as < 0:
                found[open_[-1]] = found[open_[-1]]._replace(first_as=j)
        elif kind == OP:
            if key == "(":
                found[j] = Group([], -1, -1)
                open_.append(j)
            elif key == ")":
                if open_:
                    opening = open_.pop()
                    found[opening] = found[opening]._replace(close=j)
            elif key == "," and open_:
                found[open_[-1]].commas.append(j)
    return found


def matching(tokens: Sequence[Tok], at: int, step: int) -> int:
    """The index of the bracket matching the one at ``at`` (-1: none), walking from it by
    ``step``: +1 from a ``(``, -1 from a ``)``. Walks that group alone."""
    inward, outward = ("(", ")") if step > 0 else (")", "(")
    depth = 0
    j = at
    while 0 <= j < len(tokens):
        kind, key = tokens[j][0], tokens[j][1]
        if kind == OP and key == inward:
            depth += 1
        elif kind == OP and key == outward:
            depth -= 1
            if depth == 0:
                return j
        j += step
    return -1

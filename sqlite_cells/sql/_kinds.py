"""The vocabulary of the front end's tokens, shared by the scan and its readers."""

from __future__ import annotations

__all__ = [
    "BLOB",
    "NUMBER",
    "OP",
    "PARAM",
    "QUOTED",
    "STRING",
    "WORD",
    "Param",
    "Target",
    "Tok",
    "group",
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


def group(tokens: tuple[Tok, ...], opening: int) -> tuple[list[int], int]:
    """The indexes of the top-level commas of the parenthesised group opening at token
    ``opening`` (a call's arguments, a column list) and of its closing parenthesis (-1 when it
    has none)."""
    depth = 0
    commas: list[int] = []
    for j in range(opening, len(tokens)):
        kind, key = tokens[j][0], tokens[j][1]
        if kind != OP:
            continue
        if key == "(":
            depth += 1
        elif key == ")":
            depth -= 1
            if depth == 0:
                return commas, j
        elif key == "," and depth == 1:
            commas.append(j)
    return commas, -1

"""The vocabulary of the front end's tokens, shared by the scan and its readers."""

from __future__ import annotations

__all__ = ["BLOB", "NUMBER", "OP", "PARAM", "QUOTED", "STRING", "WORD", "Param", "Target", "Tok"]

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

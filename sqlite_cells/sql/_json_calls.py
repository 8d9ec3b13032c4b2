"""JSON calls of several paths, rewritten so that the write path can keep its deadline (R44).

A call of ``json_extract(doc, p1, …, pn)`` is one step of SQLite's VM that looks every path up
in the document, one after the other: its time is the document's size times the number of
paths (up to 999), and the progress handler cannot stop it. The same holds for
``json_remove``, for ``json_set``, ``json_insert``, ``json_replace`` and ``json_array_insert``
(path and value pairs), and for their ``jsonb_`` forms. A call of one path (or one pair) is
linear in its arguments, as other builtins are, and stays as written. ``json_patch`` looks each
key of the patch up among the target's, so its every call is quadratic in the number of keys
(two objects of 20,000 keys: ≈ 4 s): every call of it is rewritten. (``jsonb_patch`` returns a
blob, which needs no subtype: it is overridden under its own name with the other long calls.)

:func:`split_json_calls` rewrites each call of two paths or more in a user statement into a
call of a runtime function of its own (``_cf_json_extract``, …; the guard refuses ``_cf_`` names
in user text, the authorizer allows these ones), which the write path registers on its
connections and computes like its other long calls, abandonable at the write's deadline
(``sqlite_cells.write._calls``). The results stay SQLite's own, JSON subtype included: the mark
by which ``json_array(json_set(…))`` nests an object where a plain string would be quoted. A
Python function can neither read nor set it, so the rewrite carries it across:

* each value of a path and value pair is passed as ``jsonb_set('[0]', '$[0]', value)``: a
  JSONB array whose one element is the value as the builtin would insert it (a text as
  ``TEXTRAW``, a number, ``null``, a value that has the subtype parsed as JSON), and the runtime
  function inserts that element's JSONB as it is, so even ``jsonb_set``'s bytes are the
  builtin's;
* a value that may be a BLOB other than JSONB (a parameter, a blob literal, a column) is passed
  as it is when it is one, for the builtin to judge as it would the value written (NULL for a
  NULL document, else "JSON cannot hold BLOB values"), which ``jsonb_set`` would refuse at
  once: such a value is written twice, in a ``CASE`` (a bare ``?`` given its number, so every
  parameter keeps its place); any other value keeps the wrapper alone;
* a call of a ``json_`` function (text) is wrapped in ``json(…)``, which gives its result the
  subtype the builtin's always has (a call of two paths or more always returns JSON or NULL).
  ``jsonb_`` results are blobs, recognized by their content.

Only statements that change rows or select are rewritten (a ``CREATE TABLE … AS SELECT`` or a
``CREATE VIEW`` keeps its text: a schema is stored as written). Parameters keep their places.
A text that names one of the runtime's ``_cf_json_*`` functions itself is not rewritten at all:
the write connection allows those functions to a rewritten statement (R23), and that allowance
must not reach a call the user wrote (the guard refuses it first; the authorizer alone then
refuses it as any other ``_cf_`` function).
"""

from __future__ import annotations

import functools
import re
from typing import Final

import apsw

from sqlite_cells.sql._kinds import BLOB, OP, PARAM, QUOTED, WORD, Group, groups
from sqlite_cells.sql._names import JSON_CALL_PREFIX, JSON_CALLS, REWRITTEN_JSON_FUNCTIONS
from sqlite_cells.sql._statement import CACHE_MAX_SQL_LENGTH, scan_sql

__all__ = ["split_json_calls"]

_KEYS: Final = {name.upper(): name for name in JSON_CALLS}
_MAY_CALL: Final = re.compile("json", re.IGNORECASE)
# A name after these is a table, an alias or a type, even with a parenthesis after it
# (``INSERT INTO t AS json_patch (a, b)``, ``CAST(x AS json_patch(5))``).
_NOT_A_CALL_AFTER: Final = frozenset((".", "INTO", "FROM", "JOIN", "AS"))
# Calls of these take exactly so many arguments: a call of another count stays as written, so
# that SQLite refuses it by its own name ("wrong number of arguments to function json_patch()").
_EXACTLY: Final = {"json_patch": 2}
# SQLite's keywords: no window can be named by one unquoted (``json_patch(a, b) over FROM t``
# is an alias named "over", not a window use).
_KEYWORDS: Final = frozenset(word.upper() for word in apsw.keywords)
# A value as json_set converts it (numbers rendered as json_set renders them, a text with the
# JSON subtype as JSON), in a JSONB array whose one element the runtime function inserts.
_VALUE: Final = "jsonb_set('[0]', '$[0]', "
# A value that may be a BLOB other than JSONB: the builtin refuses it ("JSON cannot hold BLOB
# values") unless the document is NULL, when it returns NULL without looking at the values, and
# jsonb_set would refuse it at once. Such a value is passed as it is, for the builtin to judge;
# only a value SQLite can evaluate again to the same thing is written twice (a parameter, a
# literal, a column): any other keeps the plain wrapper (a BLOB from it fails the write).
_BLOB_AS_IS: Final = (
    "CASE WHEN typeof({value}) = 'blob' AND NOT json_valid({value}, 4) THEN {value} "
    "ELSE jsonb_set('[0]', '$[0]', {value}) END"
)
_REWRITTEN_VERBS: Final = frozenset(("SELECT", "VALUES", "INSERT", "REPLACE", "UPDATE", "DELETE"))
# The runtime's own functions as a token names them (upper case): a text that names one itself
# is never rewritten, so that the rewrite's allowance of them (R23) covers only the calls the
# runtime wrote, and the authorizer refuses the text's own as any other ``_cf_`` function.
_RUNTIME_KEYS: Final = frozenset(name.upper() for name in REWRITTEN_JSON_FUNCTIONS)
Tokens = tuple[tuple[int, str, int, int], ...]


def split_json_calls(sql: str) -> str:
    """``sql`` with each call of :data:`JSON_CALLS` of two paths or more rewritten (see the
    module docstring); ``sql`` itself when it has none."""
    if _MAY_CALL.search(sql) is None:
        return sql
    # Cached as the scan is: a text too long for its cache is rewritten on each call.
    return _split(sql) if len(sql) > CACHE_MAX_SQL_LENGTH else _split_cached(sql)


@functools.lru_cache(maxsize=256)
def _split_cached(sql: str) -> str:
    return _split(sql)


def _split(sql: str) -> str:
    scan = scan_sql(sql)
    if scan.problem is not None or scan.verb not in _REWRITTEN_VERBS:
        return sql
    tokens = scan.tokens
    numbers = dict(scan.params)  # a parameter's token index -> SQLite's number for it
    found_groups = groups(tokens)
    types = _type_names(tokens, found_groups)
    # (start, end, text): the text replacing sql[start:end]; an insertion when start == end.
    edits: list[tuple[int, int, str]] = []
    for i, (kind, key, start, end) in enumerate(tokens):
        if kind in (WORD, QUOTED) and key in _RUNTIME_KEYS:
            return sql  # names a runtime function itself: run as written (see _RUNTIME_KEYS)
        name = _KEYS.get(key) if kind in (WORD, QUOTED) else None
        if name is None or i + 1 == len(tokens) or tokens[i + 1][:2] != (OP, "("):
            continue
        if _is_a_name(tokens, i) or i in types:
            continue  # a name, with its column list (INSERT INTO json_set (a, b, c) …), a type
        commas, close, _ = found_groups[i + 1]
        fewest, pairs = JSON_CALLS[name]
        count = len(commas) + 1
        if close < 0 or count < fewest or (pairs and count % 2 == 0):
            continue
        if _EXACTLY.get(name, count) != count:
            continue
        if _is_window_use(tokens, close + 1):
            continue
        if _is_cte(tokens, close + 1):
            continue  # a CTE's name and column list: WITH json_set (a, b, c) AS (…)
        function = JSON_CALL_PREFIX + name
        text_result = not name.startswith("jsonb_")
        edits.append((start, end, f"json({function}" if text_result else function))
        if pairs:
            # Each value: the argument after the 2nd, 4th, … comma, up to the next one.
            ends = [*commas[1:], close]
            for n in range(1, len(commas), 2):
                first, last = commas[n] + 1, ends[n] - 1
                again = _evaluated_again(sql, tokens, first, last, numbers)
                if again is not None:
                    start_at, end_at = tokens[first][2], tokens[last][3]
                    edits.append((start_at, end_at, _BLOB_AS_IS.format(value=again)))
                    continue
                after = tokens[commas[n]][3]
                edits.append((after, after, _VALUE))
                before = tokens[ends[n]][2]
                edits.append((before, before, ")"))
        if text_result:
            after = tokens[close][3]
            edits.append((after, after, ")"))
    if not edits:
        return sql
    out: list[str] = []
    at = 0
    # An insertion goes before a name replaced at the same place (a value that is a call).
    for start, end, text in sorted(edits, key=lambda edit: edit[:2]):
        out += (sql[at:start], text)
        at = end
    out.append(sql[at:])
    return "".join(out)


def _evaluated_again(
    sql: str, tokens: Tokens, first: int, last: int, numbers: dict[int, int]
) -> str | None:
    """The text of the value ``tokens[first:last + 1]`` when it may be a BLOB and SQLite
    evaluates it again to the same thing: a parameter (a bare ``?`` given its number, so that
    writing it twice keeps every parameter's place), a blob literal, a column (``c``, ``t.c``);
    None for anything else."""
    span = tokens[first : last + 1]
    if len(span) == 1:
        kind = span[0][0]
        if kind == PARAM:
            text = sql[span[0][2] : span[0][3]]
            return f"?{numbers[first]}" if text == "?" and first in numbers else text
        if kind in (BLOB, QUOTED) or (kind == WORD and span[0][1] not in _KEYWORDS):
            return sql[span[0][2] : span[0][3]]
        return None
    qualified = len(span) == 3 and span[1][:2] == (OP, ".")
    if qualified and span[0][0] in (WORD, QUOTED) and span[2][0] in (WORD, QUOTED):
        return sql[span[0][2] : span[2][3]] if span[2][1] not in _KEYWORDS else None
    return None


def _is_a_name(tokens: Tokens, i: int) -> bool:
    """Whether the word at ``i`` follows a word after which SQLite reads a name (a table, an
    alias, a type), not a call; ``IS [NOT] DISTINCT FROM`` is an operator."""
    if not i or tokens[i - 1][0] not in (OP, WORD) or tokens[i - 1][1] not in _NOT_A_CALL_AFTER:
        return False
    return not (tokens[i - 1][1] == "FROM" and i > 1 and tokens[i - 2][1] == "DISTINCT")


def _type_names(tokens: Tokens, found_groups: dict[int, Group]) -> set[int]:
    """The indexes of the tokens that make the type of a ``CAST(x AS type)``: a type name may
    be several words and end in a parenthesised size (``CAST(x AS my json_patch(1, 2))``)."""
    spans: list[tuple[int, int]] = []
    for i, (kind, key, _, _) in enumerate(tokens):
        if kind != WORD or key != "CAST" or i + 1 == len(tokens) or tokens[i + 1][:2] != (OP, "("):
            continue  # (a quoted name or a string whose text is "(" opens nothing)
        _, close, first_as = found_groups[i + 1]
        if first_as >= 0:
            spans.append((first_as + 1, close if close >= 0 else len(tokens)))
    # Spans nest (a type's size may hold another CAST): each index is added once.
    found: set[int] = set()
    reached = 0
    for start, end in sorted(spans):
        found.update(range(max(start, reached), end))
        reached = max(reached, end)
    return found


def _is_window_use(tokens: Tokens, after: int) -> bool:
    """Whether a call ending before ``after`` is used as a window function (``OVER (…)``,
    ``OVER w``) or an aggregate (``FILTER (…)``), which SQLite refuses for these functions by
    their own names: left as written, so it still does. ``over`` or ``filter`` as an alias
    is not such a use."""
    if after + 1 >= len(tokens):
        return False
    word, following = tokens[after], tokens[after + 1]
    if word[0] != WORD or word[1] not in ("OVER", "FILTER"):
        return False
    if following[:2] == (OP, "("):
        return True
    return (
        word[1] == "OVER"
        and following[0] in (WORD, QUOTED)
        and (following[0] == QUOTED or following[1] not in _KEYWORDS)
    )


def _is_cte(tokens: Tokens, after: int) -> bool:
    """Whether ``AS [NOT] [MATERIALIZED] (`` starts at ``after``: a common table expression's
    body, not an alias."""
    words = [t[1] for t in tokens[after : after + 4]]
    if words[:1] != ["AS"]:
        return False
    rest = words[1:]
    if rest[:1] == ["NOT"]:
        rest = rest[1:]
    if rest[:1] == ["MATERIALIZED"]:
        rest = rest[1:]
    return rest[:1] == ["("]

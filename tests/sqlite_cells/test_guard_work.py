"""R44 before any deadline starts: the front end reads a statement on the caller's thread before the
statement's timeout is armed, so its work must grow with the text's length, not its square.

Counted, not timed: the string-literal pass (``find_names``) is given the tokens through a
sequence that counts its reads. Deeply nested groups each followed by ``,'…'`` made it walk back
over the whole group at each one (a 48 KB read took 10 s of guard alone)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, overload

import pytest

from sqlite_cells.codec import GuardViolation
from sqlite_cells.sql import Mode, check_statement
from sqlite_cells.sql._json_calls import split_json_calls
from sqlite_cells.sql._kinds import Tok
from sqlite_cells.sql._positions import find_names
from sqlite_cells.sql._statement import scan_sql


class _Counted(Sequence[Tok]):
    def __init__(self, items: Sequence[Tok]) -> None:
        self.items = items
        self.reads = 0

    @overload
    def __getitem__(self, i: int) -> Tok: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Tok]: ...
    def __getitem__(self, i: int | slice) -> Tok | Sequence[Tok]:
        self.reads += 1
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)


def _reads(sql: str) -> int:
    scanned = scan_sql(sql)
    counted = _Counted(scanned.tokens)
    find_names(sql, counted, scanned.body)
    return counted.reads


SHAPES: dict[str, Callable[[int], str]] = {
    "nested groups, each then a string": lambda d: "SELECT " + "(" * d + "1" + "),'')" * d,
    "nested calls, each then a string": lambda d: "SELECT " + "f(" * d + "1" + ",'')" * d,
    "nested IN lists": lambda d: (
        "SELECT * FROM t WHERE a IN (" + "(" * d + "'a'" + "),'a'" * d + ")"
    ),
    "nested CTEs named by strings": lambda d: (
        "SELECT " + "(WITH c AS (SELECT " * d + "1" + "), 'x' AS (SELECT 1) SELECT 1)" * d
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_string_literal_pass_reads_each_token_a_bounded_number_of_times(shape: str) -> None:
    small, large = _reads(SHAPES[shape](500)), _reads(SHAPES[shape](2000))
    assert large <= 4.5 * small, (small, large)  # 4x the text: ~4x the reads (was ~16x)


def test_the_nested_shapes_still_get_their_verdicts() -> None:
    """The pass still finds the CTE named by a string after the ``,`` of a nested body (a name:
    nothing refused here), and a reserved name in that position."""
    for shape in SHAPES.values():
        check_statement(shape(200), Mode.READ)
    with pytest.raises(GuardViolation) as caught:
        check_statement("WITH c AS (SELECT 1), '_cf_x' AS (SELECT 2) SELECT 1", Mode.READ)
    assert caught.value.kind == "reserved-name"
    assert caught.value.offset == 22


def _lines_run(work: Callable[[], object], files: tuple[str, ...]) -> int:
    """How many lines of ``files`` ran during ``work()`` (a count of work, not a time)."""
    count = 0

    def trace(frame: FrameType, event: str, _arg: object) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.endswith(files):
            return None
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


JSON_SHAPES: dict[str, Callable[[int], str]] = {
    "nested json_set": lambda d: (
        "INSERT INTO t (a) VALUES (" + "json_set(" * d + "'{}'" + ",'$.a',1,'$.b',2)" * d + ")"
    ),
    "nested CAST": lambda d: (
        "SELECT " + "json_set(CAST(" * d + "1" + " AS text),'$.a',1,'$.b',2)" * d
    ),
}


@pytest.mark.parametrize("shape", JSON_SHAPES)
def test_the_json_call_rewrite_looks_at_each_group_once(shape: str) -> None:
    """The rewrite of JSON calls (run on every write and read path) found each call's group by
    walking it from its ``(``: nested calls made that quadratic (a 144 KB write held its caller
    12.9 s, past ``exec_timeout``)."""
    files = ("sql/_json_calls.py", "sql/_kinds.py")
    small = _lines_run(lambda: split_json_calls(JSON_SHAPES[shape](300)), files)
    large = _lines_run(lambda: split_json_calls(JSON_SHAPES[shape](1200)), files)
    assert large <= 4.5 * small, (small, large)


def test_ctes_named_like_forbidden_functions_are_checked_in_linear_work() -> None:
    """``WITH edit(a) AS (…)`` names a CTE, not a call of ``edit``: telling them apart looks at
    that name's group alone, not at the whole statement each time (a 108 KB read of 2,000 such
    CTEs spent 21 s in the guard)."""
    shape = "SELECT " + "{}"
    one = "(WITH edit(a) AS (SELECT {i}) SELECT a FROM edit) AS c{i}"

    def text(n: int) -> str:
        return shape.format(", ".join(one.format(i=i) for i in range(n)))

    files = ("sql/_guard.py", "sql/_kinds.py")
    small = _lines_run(lambda: check_statement(text(100), Mode.READ), files)
    large = _lines_run(lambda: check_statement(text(400), Mode.READ), files)
    assert large <= 4.5 * small, (small, large)


def test_a_quoted_parenthesis_after_cast_opens_no_group() -> None:
    """A quoted name or string whose text is ``(`` after ``CAST`` is no type's group: the JSON
    call rewrite leaves it to SQLite's syntax error (it raised a raw ``KeyError``)."""
    for quoted in ('"("', "'('", "[(]", "`(`"):
        sql = f"UPDATE t SET a = json_set('{{}}', '$.a', 1) WHERE CAST {quoted} AS x"
        rewritten = split_json_calls(sql)
        assert rewritten.endswith(f"WHERE CAST {quoted} AS x")

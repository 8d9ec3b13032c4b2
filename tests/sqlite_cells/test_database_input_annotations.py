"""R61: a pattern input annotated with ``SqliteDb`` imported for type checkers only (``if
TYPE_CHECKING:``, as linters advise), under postponed annotations: the annotation cannot be
resolved when the piece runs, and the input silently became a plain cell — given a database,
its queries kept reading it after a relink; given nothing, the body got a cell with no
``query``. The annotation's text names the database input: it is one all the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

if TYPE_CHECKING:
    from sqlite_cells import SqliteDb

TABLES = {"t": sc.table(id="integer primary key", v="integer")}


@sc.pattern
def plain(ref: SqliteDb) -> Any:
    return ref.query("SELECT count(*) AS n FROM t")


@sc.pattern
def optional(ref: SqliteDb | None) -> Any:
    return ref.query("SELECT count(*) AS n FROM t")


@sc.pattern
def spelled_out(ref: Optional[SqliteDb]) -> Any:  # noqa: UP045 - the older spelling, on purpose
    return ref.query("SELECT count(*) AS n FROM t")


@pytest.mark.parametrize("pattern", [plain, optional, spelled_out])
def test_an_input_typed_for_type_checkers_only_is_a_database_input(
    rt: sc.Runtime, space: Space, pattern: Any
) -> None:
    first = space.sqlite_database("first", tables=TABLES)
    second = space.sqlite_database("second", tables=TABLES)
    with space.transact():
        second.exec("INSERT INTO t (v) VALUES (1)")
    given = space.run(pattern, key="given", ref=first)
    rt.settle()
    assert given.outputs.get().result == [{"n": 0}]
    given.inputs["ref"].link(second)
    rt.settle()
    assert given.outputs.get().result == [{"n": 1}]
    waiting = space.run(pattern, key="nothing", ref=None)
    rt.settle()
    assert waiting.outputs.get() == sc.QueryState(True, None, None, 0)

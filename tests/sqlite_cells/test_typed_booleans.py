"""A ``bool`` field of a typed row (R43) takes SQLite's booleans: SQLite has no boolean type and
stores 0 and 1 (``TRUE`` and ``FALSE`` are those integers), so 0 and 1 are the only values
that fit such a field; any other value still fails the query naming the column."""

from __future__ import annotations

import dataclasses
from typing import Optional, TypedDict

import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import QueryError

TABLES = {
    "tasks": sc.table(id="integer primary key", done="integer", flag="blob")
}  # no affinity: stored as given


class TaskStruct(msgspec.Struct):
    id: int
    done: bool
    flag: bool | None


class TaskRenamed(msgspec.Struct, rename={"is_done": "done"}):
    id: int
    is_done: bool
    flag: Optional[bool]  # noqa: UP045 (the other spelling of bool | None)


@dataclasses.dataclass
class TaskData:
    id: int
    done: bool
    flag: bool | None


class TaskDict(TypedDict):
    id: int
    done: bool
    flag: bool | None


ROW_TYPES = [TaskStruct, TaskData, TaskDict]


def _done(row: object) -> object:
    return row["done"] if isinstance(row, dict) else getattr(row, "done", None)


@pytest.fixture
def tasks(space: Space) -> sc.SqliteDb:
    db = space.sqlite_database("tasks", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO tasks (id, done, flag) VALUES (1, 1, NULL)")
        db.exec("INSERT INTO tasks (id, done, flag) VALUES (2, 0, 1)")
        db.exec("INSERT INTO tasks (id, done, flag) VALUES (3, TRUE, FALSE)")
    return db


@pytest.mark.parametrize("row", ROW_TYPES, ids=lambda t: t.__name__)
def test_zero_and_one_read_as_false_and_true(tasks: sc.SqliteDb, row: type) -> None:
    rows = tasks.read("SELECT id, done, flag FROM tasks ORDER BY id", row=row)
    got = [(r["done"], r["flag"]) if isinstance(r, dict) else (r.done, r.flag) for r in rows]
    assert got == [(True, None), (False, True), (True, False)]
    assert all(type(d) is bool for d, _ in got)


def test_a_renamed_field_and_the_optional_spelling_take_them_too(tasks: sc.SqliteDb) -> None:
    rows = tasks.read("SELECT id, done, flag FROM tasks ORDER BY id", row=TaskRenamed)
    assert rows == [
        TaskRenamed(1, True, None),
        TaskRenamed(2, False, True),
        TaskRenamed(3, True, False),
    ]


@pytest.mark.parametrize("row", ROW_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("stored", ["2", "-1", "'1'", "'true'", "1.0"])
def test_any_other_value_still_fails_naming_the_column(
    space: Space, tasks: sc.SqliteDb, row: type, stored: str
) -> None:
    with space.transact():
        tasks.exec(f"UPDATE tasks SET flag = {stored} WHERE id = 2")
    with pytest.raises(QueryError) as caught:
        tasks.read("SELECT id, done, flag FROM tasks ORDER BY id", row=row)
    assert "column 'flag'" in str(caught.value)


def test_dict_rows_keep_sqlites_integers(tasks: sc.SqliteDb) -> None:
    rows = tasks.read("SELECT done FROM tasks ORDER BY id")
    assert rows == [{"done": 1}, {"done": 0}, {"done": 1}]
    assert all(type(r["done"]) is int for r in rows)


def test_a_live_query_delivers_booleans_and_its_changes(
    rt: sc.Runtime, space: Space, tasks: sc.SqliteDb
) -> None:
    q = tasks.query("SELECT id, done, flag FROM tasks WHERE id = 2", row=TaskStruct)
    seen: list[list[TaskStruct]] = []
    q.observe().subscribe(lambda state: seen.append(state.result) if state.result else None)
    assert rt.settle(timeout=10)
    with space.transact():
        tasks.exec("UPDATE tasks SET done = 1 WHERE id = 2")
    assert rt.settle(timeout=10)
    assert seen == [[TaskStruct(2, False, True)], [TaskStruct(2, True, True)]]
    assert q.get().error is None
    assert [_done(r) for r in tasks.read("SELECT id, done, flag FROM tasks", row=TaskDict)] == [
        True,
        True,
        True,
    ]

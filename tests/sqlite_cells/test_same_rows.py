"""R42: a re-run whose rows equal the previous rows notifies nobody; "equal" is equal as SQLite
values, which Python's ``==`` is not: ``1`` (an integer) and ``1.0`` (a real), ``0.0`` and
``-0.0`` are different rows, delivered like any change."""

from __future__ import annotations

import math
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.read._same import same_values

TABLES = {"t": sc.table(id="integer primary key", v="blob", k="integer")}


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("demo")


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("x", tables=TABLES)


def write(rt: sc.Runtime, space: Space, db: sc.SqliteDb, sql: str) -> None:
    with space.transact():
        db.exec(sql)
    rt.settle()


def watched(q: sc.Query[Any]) -> list[sc.QueryState[Any]]:
    seen: list[sc.QueryState[Any]] = []
    q.observe().subscribe(seen.append)
    return seen


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ([(1, "x")], [(1, "x")], True),
        ([(1.5, b"x", None)], [(1.5, b"x", None)], True),
        ([(1,)], [(1.0,)], False),
        ([(0.0,)], [(-0.0,)], False),
        ([(-0.0,)], [(-0.0,)], True),
        ([(1, 2)], [(1, 3)], False),
        ([(1,)], [(1,), (1,)], False),
        ([(1,)], None, False),
    ],
)
def test_same_values_tells_sqlite_values_apart(a: Any, b: Any, same: bool) -> None:
    assert same_values(a, b) is same
    if b is not None:
        assert same_values(b, a) is same


def test_a_value_become_real_is_delivered(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    write(rt, space, db, "INSERT INTO t (id, v) VALUES (1, 1)")
    q = db.query("SELECT v FROM t")
    seen = watched(q)
    rt.settle()
    told = len(seen)
    write(rt, space, db, "UPDATE t SET v = 1.0")
    state = q.get()
    assert state.seq == 2 and state.result == [{"v": 1.0}]
    assert type(state.result[0]["v"]) is float
    assert len(seen) == told + 1 and seen[-1] is state
    write(rt, space, db, "UPDATE t SET v = 1")  # and back
    assert type(q.get().result[0]["v"]) is int and len(seen) == told + 2


def test_an_aggregate_become_real_is_delivered(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    write(rt, space, db, "INSERT INTO t (id, v) VALUES (1, 1), (2, 2)")
    q = db.query("SELECT sum(v) AS total FROM t")
    rt.settle()
    assert q.get().result == [{"total": 3}] and type(q.get().result[0]["total"]) is int
    write(rt, space, db, "UPDATE t SET v = 2.0 WHERE id = 2")
    assert type(q.get().result[0]["total"]) is float and q.get().seq == 2


def test_a_negative_zero_is_delivered(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    write(rt, space, db, "INSERT INTO t (id, v, k) VALUES (1, 0.0, 1)")
    q = db.query("SELECT v FROM t", react_on=db)
    seen = watched(q)
    rt.settle()
    told = len(seen)
    write(rt, space, db, "UPDATE t SET v = -0.0, k = 2")
    state = q.get()
    assert state.seq == 2 and math.copysign(1.0, state.result[0]["v"]) == -1.0
    assert len(seen) == told + 1


def test_rows_equal_as_sqlite_values_still_notify_nobody(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    write(rt, space, db, "INSERT INTO t (id, v, k) VALUES (1, 1.0, 1)")
    q = db.query("SELECT v FROM t", react_on=db)
    seen = watched(q)
    rt.settle()
    told = len(seen)
    write(rt, space, db, "UPDATE t SET k = 2")
    assert q.get().seq == 2 and type(q.get().result[0]["v"]) is float
    assert len(seen) == told

"""A parameter used for several columns (R31): it is bound once, so its one value goes to each
use. A link target when every use is a link column, a plain value when none is, and refused
(anything but None) when some are and some are not."""

from __future__ import annotations

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.sql import map_params

TABLES = {
    "t": sc.table(
        id="integer primary key", a_cf_link=sc.cf_link(), b_cf_link=sc.cf_link(), v="text"
    )
}

# (sql, positional, named, mixed)
CASES: list[
    tuple[
        str, tuple[str | None, ...], dict[str, str | None], dict[int | str, tuple[str | None, ...]]
    ]
] = [
    # every use a link column: a link target (the first column by name)
    (
        "INSERT INTO t (b_cf_link, a_cf_link) VALUES (:x, :x)",
        ("a_cf_link",),
        {"x": "a_cf_link"},
        {},
    ),
    ("INSERT INTO t (a_cf_link, b_cf_link) VALUES (?1, ?1)", ("a_cf_link",), {}, {}),
    (
        "INSERT INTO t (a_cf_link) VALUES (:x) ON CONFLICT DO UPDATE SET b_cf_link = :x",
        ("a_cf_link",),
        {"x": "a_cf_link"},
        {},
    ),
    # ":x" and "$x": two slots, one mapping key
    (
        "INSERT INTO t (a_cf_link, b_cf_link) VALUES (:x, $x)",
        ("a_cf_link", "b_cf_link"),
        {"x": "a_cf_link"},
        {},
    ),
    # no use a link column: a plain value
    ("INSERT INTO t (v, id) VALUES (:x, :x)", (None,), {"x": None}, {}),
    ("UPDATE t SET v = :x WHERE v <> :x", (None,), {"x": None}, {}),
    # some link columns, some not: mixed
    (
        "INSERT INTO t (v, a_cf_link) VALUES (:x, :x)",
        (None,),
        {"x": None},
        {1: ("a_cf_link", "v"), "x": ("a_cf_link", "v")},
    ),
    (
        "UPDATE t SET b_cf_link = ?1, a_cf_link = ?1 WHERE a_cf_link IS NOT ?1",
        (None,),
        {},
        {1: ("a_cf_link", "b_cf_link", None)},
    ),
    (
        "INSERT INTO t (a_cf_link, v) VALUES (:x, $x)",
        ("a_cf_link", "v"),
        {"x": None},
        {"x": ("a_cf_link", "v")},
    ),
]


@pytest.mark.parametrize(("sql", "positional", "named", "mixed"), CASES)
def test_map_params_merges_the_uses_of_a_parameter(
    sql: str,
    positional: tuple[str | None, ...],
    named: dict[str, str | None],
    mixed: dict[int | str, tuple[str | None, ...]],
) -> None:
    targets = map_params(sql)
    assert (targets.positional, dict(targets.named), dict(targets.mixed)) == (
        positional,
        named,
        mixed,
    )


def test_an_insert_without_column_list_merges_the_same_way() -> None:
    def columns(table: str) -> list[str]:
        return ["id", "a_cf_link", "b_cf_link", "v"]

    both = map_params("INSERT INTO t VALUES (NULL, ?1, ?1, NULL)", columns)
    assert (both.positional, dict(both.mixed)) == (("a_cf_link",), {})
    mixed = map_params("INSERT INTO t VALUES (NULL, ?1, NULL, ?1)", columns)
    assert (mixed.positional, dict(mixed.mixed)) == ((None,), {1: ("a_cf_link", "v")})


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("d", tables=TABLES)


def _stored(db: sc.SqliteDb) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute("SELECT a_cf_link, b_cf_link, v FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def test_one_cell_bound_to_several_link_columns(space: Space, db: sc.SqliteDb) -> None:
    cell = space.cell("c", default=1)
    other = space.cell("o", default=2)
    with space.transact():
        db.exec("INSERT INTO t (a_cf_link, b_cf_link) VALUES (:x, :x)", {"x": cell})
        db.exec("INSERT INTO t (b_cf_link, a_cf_link, v) VALUES (?1, ?1, ?2)", [other, "two"])
        db.exec("INSERT INTO t (a_cf_link, b_cf_link) VALUES (:x, :x)", {"x": None})
    link, other_link = cell.link_str(), other.link_str()
    assert _stored(db) == [(link, link, None), (other_link, other_link, "two"), (None, None, None)]
    # A value that is not a cell is refused there as in one link column.
    with space.transact() as tx:
        with pytest.raises(sc.LinkEncodeError, match="targets the link column a_cf_link"):
            db.exec("INSERT INTO t (a_cf_link, b_cf_link) VALUES (:x, :x)", {"x": "text"})
        assert tx.ops == ()


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("INSERT INTO t (v, a_cf_link) VALUES (:x, :x)", "cell"),
        ("INSERT INTO t (v, a_cf_link) VALUES (:x, :x)", "text"),
        ("UPDATE t SET a_cf_link = ?1 WHERE a_cf_link IS NOT ?1", "cell"),
    ],
)
def test_a_parameter_both_link_and_plain_is_refused_at_the_call(
    space: Space, db: sc.SqliteDb, sql: str, params: str
) -> None:
    cell = space.cell("c", default=1)
    value: object = cell if params == "cell" else "text"
    bound: object = {"x": value} if ":x" in sql else [value]
    with space.transact() as tx:
        with pytest.raises(sc.LinkEncodeError) as info:
            db.exec(sql, bound)
        assert tx.ops == ()  # nothing recorded: the transaction goes on
        message = str(info.value)
        assert "used for the link column(s) a_cf_link and for" in message
        assert "bind a separate parameter for each use" in message
        # None fits every use.
        db.exec(sql, {"x": None} if ":x" in sql else [None])
    assert db.rev == 1

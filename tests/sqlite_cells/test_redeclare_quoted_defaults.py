"""A re-declared column whose default is a quoted name or a bare word standing alone
(``default "dq"``, ``default dq``) reads as that text before the file is migrated, as it does
after (R14, R41); the read of the file never fails for one column's default."""

from __future__ import annotations

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema import declare_tables

P = "integer primary key"


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ('text default "dq"', "dq"),
        ('text collate nocase default "Q"', "Q"),
        ('text default "a""b"', 'a"b'),
        ("text default [d q]", "d q"),
        ("text default `b``q`", "b`q"),
        ('text default "it\'s"', "it's"),
        ("text default dq", "dq"),  # a bare word: its text too
        ("text default Éa_1", "Éa_1"),
    ],
)
def test_redeclared_column_reads_its_quoted_default(space: Space, spec: str, value: str) -> None:
    db = space.sqlite_database("g", tables={"t": sc.table(id=P), "u": sc.table(id=P)})
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (1)")
        db.exec("INSERT INTO u (id) VALUES (2)")
    tables = {"t": sc.table(id=P, dd=spec), "u": sc.table(id=P)}
    db = space.sqlite_database("g", tables=tables)
    assert db.read("SELECT 1 AS one") == [{"one": 1}]
    assert db.read("SELECT * FROM u") == [{"id": 2}]
    assert db.read("SELECT id, dd FROM t") == [{"id": 1, "dd": value}]
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (3)")
    assert db.read("SELECT id, dd FROM t ORDER BY id") == [
        {"id": 1, "dd": value},
        {"id": 3, "dd": value},
    ]


def test_a_fresh_file_stores_the_same_quoted_default(space: Space) -> None:
    db = space.sqlite_database("f", tables={"t": sc.table(id=P, dd="text default [d q]")})
    assert db.read("SELECT dd FROM t") == []
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (1)")
    assert db.read("SELECT dd FROM t") == [{"dd": "d q"}]


def test_a_default_sqlite_cannot_compute_is_still_refused_at_declaration() -> None:
    """A bare word is text to SQLite, but an expression naming a column is no default: refused
    at declaration, never a database that cannot be read."""
    with pytest.raises(sc.SchemaError, match=r"default value of column \[dd\] is not constant"):
        declare_tables({"t": sc.table(id=P, dd="text default (dq || 'x')")})

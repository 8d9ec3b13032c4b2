"""R13, R14, R44: no migration leaves a row whose VIRTUAL generated column cannot be computed.

SQLite computes a VIRTUAL generated column at every read, and ``ALTER TABLE … ADD COLUMN`` adds
one without computing it for the rows already there: a value over the length limit, an integer
overflow or malformed JSON made every read of such a row fail from then on. The migration
computes each new column for every row and is refused, with nothing written, when one fails.
Writes are refused by SQLite itself (it computes every generated column of a row it writes);
the last tests pin that down."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema._migrate import MigrationConnection

from .test_migrate_links import raw

BASE = {"id": "integer primary key", "a": "text"}
OTHER = {"u": sc.table(id="integer primary key")}

# (the column's spec, SQLite's words when a row cannot compute it). Rows get ids 1, 2, …: the
# overflow is row 1's (row 2 computes it), the JSON is that of column a.
TOO_BIG = ("blob as (zeroblob(70000000))", "string or blob too big")
OVERFLOW = ("integer as (abs(id - 9223372036854775807 - 2))", "integer overflow")
BAD_JSON = ("text as (json(a))", "malformed JSON")


def log_seq(space: Space) -> int:
    return int(str(raw(space.file.path, "SELECT max(seq) FROM _cf_log")[0][0]))


def file_state(db: sc.SqliteDb) -> tuple[object, ...]:
    """What the database file holds: its schema, rows, version and watermark."""
    return (
        raw(db.path, "SELECT type, name, sql FROM sqlite_schema ORDER BY name"),
        raw(db.path, "SELECT id, a FROM t ORDER BY id"),
        raw(db.path, "SELECT id FROM u ORDER BY id"),
        raw(db.path, "SELECT key, value FROM _cf_meta ORDER BY key"),
        raw(db.path, "SELECT seq FROM _cf_watermark"),
    )


def declare(space: Space, **extra: str) -> sc.SqliteDb:
    return space.sqlite_database("d", tables={"t": sc.table({**BASE, **extra}), **OTHER})


def with_rows(space: Space, *values: str | None) -> sc.SqliteDb:
    db = declare(space)
    with space.transact():
        db.exec("INSERT INTO u (id) VALUES (0)")  # the file exists at the first declaration
        if values:
            db.exec_many("INSERT INTO t (a) VALUES (?)", [[v] for v in values])
    return db


@pytest.mark.parametrize(
    ("spec", "words", "rows"),
    [
        (*TOO_BIG, ["kept"]),
        (*OVERFLOW, ["one", "two"]),  # row 1 overflows, row 2 computes
        (*BAD_JSON, ["[1, 2]", "x"]),
        ("text as (json('x'))", "malformed JSON", ["kept"]),
    ],
    ids=["too-big", "overflow", "bad-json", "bad-json-constant"],
)
def test_adding_a_column_a_row_cannot_compute_is_refused(
    space: Space, spec: str, words: str, rows: list[str]
) -> None:
    db = with_rows(space, *rows)
    before, seq = file_state(db), log_seq(space)
    db2 = declare(space, x=spec)
    with pytest.raises(sc.UnsupportedMigration) as caught, space.transact():
        db2.exec("INSERT INTO u (id) VALUES (1)")  # a write to another table migrates
    message = str(caught.value)
    assert "t.x" in message and words in message and "VIRTUAL generated" in message
    assert caught.value.differences[0].startswith("t.x: ")
    # Nothing written: the file (schema, rows, version, watermark) and the space's log.
    assert file_state(db) == before
    assert log_seq(space) == seq
    # The table still reads, the column as NULL until the file has it (R41).
    assert [r["a"] for r in db2.read("SELECT * FROM t ORDER BY id")] == rows
    assert {r["x"] for r in db2.read("SELECT x FROM t")} == {None}


def test_every_column_a_row_cannot_compute_is_named(space: Space) -> None:
    db = with_rows(space, "x")
    db2 = declare(space, big=TOO_BIG[0], fine="integer as (id + 1)", js=BAD_JSON[0])
    with pytest.raises(sc.UnsupportedMigration) as caught, space.transact():
        db2.exec("INSERT INTO u (id) VALUES (1)")
    named = [difference.partition(":")[0] for difference in caught.value.differences]
    assert named == ["t.big", "t.js"]
    assert raw(db.path, "SELECT name FROM pragma_table_xinfo('t') ORDER BY cid") == [
        ("id",),
        ("a",),
    ]


@pytest.mark.parametrize("spec", [TOO_BIG[0], OVERFLOW[0], BAD_JSON[0]])
def test_adding_it_to_an_empty_table_is_accepted(space: Space, spec: str) -> None:
    with_rows(space)
    db = declare(space, x=spec)
    with space.transact():
        db.exec("INSERT INTO u (id) VALUES (1)")
    assert raw(db.path, "SELECT name FROM pragma_table_xinfo('t') WHERE hidden = 2") == [("x",)]
    assert db.read("SELECT * FROM t") == []


def test_adding_it_when_every_row_computes_is_accepted(rt: sc.Runtime, space: Space) -> None:
    db = with_rows(space, "[1]", '{"k": 2}')
    db2 = declare(space, x=BAD_JSON[0], n="integer as (abs(id - 9223372036854775807))")
    query = db2.query("SELECT id, x, n FROM t ORDER BY id")
    rt.settle()
    with space.transact():
        db2.exec("INSERT INTO u (id) VALUES (1)")
    rt.settle()
    expected = [
        {"id": 1, "x": "[1]", "n": 9223372036854775806},
        {"id": 2, "x": '{"k":2}', "n": 9223372036854775805},
    ]
    assert db2.read("SELECT id, x, n FROM t ORDER BY id") == expected
    assert query.get().result == expected
    assert raw(db.path, "SELECT id FROM u ORDER BY id") == [(0,), (1,)]


def test_a_stored_column_is_added_as_before(space: Space) -> None:
    """A STORED column is computed as the rebuild copies the rows: its rows must compute it
    already (that rebuild is refused otherwise), and it is not read again."""
    db = with_rows(space, "[1]", "x")
    db2 = declare(space, y="integer as (length(a) * 2) stored")
    with space.transact():
        db2.exec("INSERT INTO u (id) VALUES (1)")
    assert db2.read("SELECT id, y FROM t ORDER BY id") == [{"id": 1, "y": 6}, {"id": 2, "y": 2}]
    db3 = declare(space, y="integer as (length(a) * 2) stored", z="text as (json(a)) stored")
    with pytest.raises(sc.UnsupportedMigration, match="malformed JSON"), space.transact():
        db3.exec("INSERT INTO u (id) VALUES (2)")
    assert raw(db.path, "SELECT id FROM u ORDER BY id") == [(0,), (1,)]


def _migrate(*sql: str) -> Callable[[MigrationConnection, int], None]:
    def migrate(conn: MigrationConnection, _from: int) -> None:
        for statement in sql:
            conn.execute(statement)

    return migrate


def test_a_migrate_that_adds_a_column_a_row_cannot_compute_fails(space: Space) -> None:
    db = space.sqlite_database("d", tables={"t": sc.table(BASE), **OTHER}, version=1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('x'), ('[1]')")
    before, seq = file_state(db), log_seq(space)
    migrate = _migrate(f"ALTER TABLE t ADD COLUMN x {BAD_JSON[0]}")
    tables = {"t": sc.table({**BASE, "x": BAD_JSON[0]}), **OTHER}
    db2 = space.sqlite_database("d", tables=tables, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError) as caught, space.transact():
        db2.exec("INSERT INTO u (id) VALUES (1)")
    message = str(caught.value)
    assert "t.x" in message and "malformed JSON" in message and "nothing was written" in message
    assert file_state(db) == before
    assert log_seq(space) == seq
    # A migrate that fixes the rows first is accepted.
    fixed = _migrate(
        "UPDATE t SET a = '[]' WHERE json_valid(a) = 0", f"ALTER TABLE t ADD COLUMN x {BAD_JSON[0]}"
    )
    db3 = space.sqlite_database("d", tables=tables, version=2, migrate=fixed)
    with space.transact():
        db3.exec("INSERT INTO u (id) VALUES (1)")
    assert db3.read("SELECT id, x FROM t ORDER BY id") == [
        {"id": 1, "x": "[]"},
        {"id": 2, "x": "[1]"},
    ]


# -- writes: SQLite computes every generated column of a row it writes -----------------------


@pytest.mark.parametrize(
    ("sql", "args", "many", "words"),
    [
        ("INSERT INTO t (a) VALUES (?)", ["x"], False, "malformed JSON"),
        ("UPDATE t SET a = ? WHERE id = 1", ["x"], False, "malformed JSON"),
        ("INSERT INTO t (a) VALUES (?)", [["[3]"], ["x"]], True, "malformed JSON"),
        (
            "INSERT INTO t (id, a) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET a = excluded.a",
            ["x"],
            False,
            "malformed JSON",
        ),
        ("INSERT OR REPLACE INTO t (id, a) VALUES (1, ?)", ["x"], False, "malformed JSON"),
        ("UPDATE t SET n = -9223372036854775807 - 1", [], False, "integer overflow"),
        ("UPDATE t SET big = 70000000", [], False, "string or blob too big"),
    ],
    ids=["insert", "update", "exec-many", "upsert", "replace", "overflow", "too-big"],
)
def test_a_write_leaving_a_row_that_cannot_compute_is_refused(
    space: Space, sql: str, args: list[object], many: bool, words: str
) -> None:
    columns = {
        **BASE,
        "n": "integer default 0",
        "big": "integer default 1",
        "x": BAD_JSON[0],
        "m": "integer as (abs(n))",
        "z": "blob as (zeroblob(big))",
    }
    db = space.sqlite_database("d", tables={"t": sc.table(columns), **OTHER})
    cell = space.cell("c", default=0)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('[1]')")
    rows, rev, seq = db.read("SELECT * FROM t"), db.rev, log_seq(space)
    with pytest.raises(sc.ExecError, match=words), space.transact():
        cell.set(1)
        db.exec("INSERT INTO u (id) VALUES (1)")
        if many:
            db.exec_many(sql, args)
        else:
            db.exec(sql, args)
    assert (db.read("SELECT * FROM t"), db.rev, log_seq(space)) == (rows, rev, seq)
    assert db.read("SELECT * FROM u") == []
    assert cell.get() == 0
    with space.transact():
        db.exec("UPDATE t SET a = ?, n = -5 WHERE id = 1", ["[2]"])
    assert db.read("SELECT id, x, m FROM t") == [{"id": 1, "x": "[2]", "m": 5}]

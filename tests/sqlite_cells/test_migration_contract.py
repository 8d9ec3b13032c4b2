"""Tables and migration as the contract states them (R10–R14, R41): names a declaration may
not take, what a write that cannot migrate leaves behind, a process killed inside ``migrate``,
and what a re-declaration changes for reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

ROOT = Path(__file__).resolve().parents[2]
P = "integer primary key"

# SQLite's JSON table functions are eponymous virtual tables that `pragma_module_list` does not
# list: the `jsonb_` pair came with SQLite 3.45.
JSON_TABLES = ["json_each", "json_tree", "jsonb_each", "jsonb_tree", "JSONB_Each"]


@pytest.mark.parametrize("name", JSON_TABLES)
def test_the_json_table_functions_are_names_no_declaration_takes(name: str) -> None:
    """R13: names of SQLite's eponymous virtual tables are refused at declaration, as a table,
    a column and an index."""
    with pytest.raises(sc.SchemaError, match="reserved") as info:
        sc.table({name: "text"})
    assert isinstance(info.value, ValueError) and repr(name) in str(info.value)
    with pytest.raises(sc.SchemaError, match="reserved"):
        sc.table(a="text", indexes={name: ["a"]})
    with sc.Runtime.ephemeral() as rt, pytest.raises(sc.SchemaError, match="reserved"):
        rt.space("demo").sqlite_database("d", tables={name: sc.table(a="text")})


def test_every_eponymous_virtual_table_the_library_resolves_is_reserved() -> None:
    """Whatever name SQLite resolves as an eponymous virtual table on a fresh connection —
    the modules it lists and the JSON table functions it does not — is reserved."""
    from sqlite_cells.sql import is_reserved_table

    conn = apsw.Connection(":memory:")
    names = [row[0] for row in conn.execute("SELECT name FROM pragma_module_list")]
    names += ["json_each", "json_tree", "jsonb_each", "jsonb_tree"]
    resolved = []
    for name in names:
        try:
            conn.execute(f'SELECT * FROM "{name}" LIMIT 0').fetchall()
        except apsw.Error:
            continue
        resolved.append(name)
    conn.close()
    assert {"jsonb_each", "jsonb_tree"} <= set(resolved)
    assert [name for name in resolved if not is_reserved_table(name)] == []


@pytest.mark.parametrize("function", ["json_each", "jsonb_each", "jsonb_tree"])
def test_reads_may_call_the_json_table_functions(space: Space, function: str) -> None:
    """The JSON table functions hold no data: a read calls them, before and after the first
    write, as it calls json_each."""
    db = space.sqlite_database("d", tables={"t": sc.table(id=P, doc="text")})
    sql = f"SELECT value FROM {function}('[1, 2]') WHERE type = 'integer' ORDER BY value"
    assert db.read(sql) == [{"value": 1}, {"value": 2}]
    with space.transact():
        db.exec("INSERT INTO t (doc) VALUES ('[3]')")
    joined = f"SELECT j.value FROM t, {function}(t.doc) AS j WHERE j.type = 'integer'"
    assert db.read(joined) == [{"value": 3}]


CRASH_IN_MIGRATE = """
import os, signal, sys
import sqlite_cells as sc

def migrate(conn, from_version):
    conn.execute("ALTER TABLE t RENAME COLUMN a TO b")
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, x TEXT)")
    conn.execute("INSERT INTO u (x) SELECT b FROM t")
    conn.execute("UPDATE t SET b = upper(b)")
    print("inside", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    tables = {
        "t": sc.table(id="integer primary key", b="text", c="text default 'c'"),
        "u": sc.table(id="integer primary key", x="text"),
    }
    db = space.sqlite_database("app", tables=tables, version=2, migrate=migrate)
    with space.transact():
        space.cell("n", default=0).set(1)
        db.exec("INSERT INTO t (b) VALUES ('two')")
print("not killed")
"""


def test_a_process_killed_inside_migrate_leaves_the_old_version_and_schema(store: Path) -> None:
    """R14: the migration, the additive diff after it and the new version commit together in
    one transaction of the file; a process killed inside ``migrate`` leaves the old ones, and
    the next write runs ``migrate`` again, in full."""
    v1 = {"t": sc.table(id=P, a="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("app", tables=v1)
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('one')")
        path = db.path
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_IN_MIGRATE), str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == "inside", done.stderr
    assert done.returncode == -signal.SIGKILL
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
    assert "u" not in names
    assert conn.execute("SELECT id, a FROM t").fetchall() == [(1, "one")]
    assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall() == [(1,)]
    conn.close()

    calls: list[int] = []

    def migrate(conn: object, from_version: int) -> None:
        calls.append(from_version)
        run = conn.execute  # type: ignore[attr-defined]
        run("ALTER TABLE t RENAME COLUMN a TO b")
        run("CREATE TABLE u (id INTEGER PRIMARY KEY, x TEXT)")
        run("INSERT INTO u (x) SELECT b FROM t")

    v2 = {"t": sc.table(id=P, b="text", c="text default 'c'"), "u": sc.table(id=P, x="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        old = space.sqlite_database("app", tables=v1)
        assert old.read("SELECT id, a FROM t") == [{"id": 1, "a": "one"}]
        assert space.cell("n", default=0).get() == 0  # the killed commit wrote no cell
        db = space.sqlite_database("app", tables=v2, version=2, migrate=migrate)
        with space.transact():
            db.exec("INSERT INTO t (b) VALUES ('two')")
        assert calls == [1]
        assert db.read("SELECT id, b, c FROM t ORDER BY id") == [
            {"id": 1, "b": "one", "c": "c"},
            {"id": 2, "b": "two", "c": "c"},
        ]
        assert db.read("SELECT x FROM u") == [{"x": "one"}]
    assert os.path.exists(path)


V1 = {"t": sc.table(id=P, a="text")}
V2 = {
    "t": sc.table(id=P, a="text", b="integer not null default 7"),
    "u": sc.table(id=P, x="text"),
}


def _insert(space: Space, db: sc.SqliteDb, sql: str) -> None:
    with space.transact():
        db.exec(sql)


def test_every_handle_of_a_database_follows_its_latest_declaration(space: Space) -> None:
    """R14: a re-declaration is visible to reads at once — through the handle declared before
    it too — and a write through that handle after the new schema was materialized is no
    attempt to shrink the file back."""
    first = space.sqlite_database("app", tables=V1)
    _insert(space, first, "INSERT INTO t (a) VALUES ('one')")
    second = space.sqlite_database("app", tables=V2)
    assert first.declaration is second.declaration
    assert set(first.tables) == {"t", "u"}
    assert first.read("SELECT id, a, b FROM t") == [{"id": 1, "a": "one", "b": 7}]
    assert first.read("SELECT * FROM u") == []
    _insert(space, second, "INSERT INTO t (a, b) VALUES ('two', 2)")
    _insert(space, first, "INSERT INTO t (a) VALUES ('three')")  # not UnsupportedMigration
    assert first.read("SELECT a, b FROM t ORDER BY id") == [
        {"a": "one", "b": 7},
        {"a": "two", "b": 2},
        {"a": "three", "b": 7},
    ]
    assert first.rev == second.rev == 3


class Row(msgspec.Struct):
    id: int
    a: str
    b: int = 0


def test_live_queries_follow_an_additive_redeclaration_at_once(
    rt: sc.Runtime, space: Space
) -> None:
    """R14, R41: a live query made before an additive re-declaration shows the declared
    column at its default, and a table it could not read (undeclared: QueryError) reads as
    empty, without waiting for a write; typed rows too. Nothing is written by it."""
    db = space.sqlite_database("app", tables=V1)
    _insert(space, db, "INSERT INTO t (a) VALUES ('one')")
    star = db.query("SELECT * FROM t")
    typed = db.query("SELECT * FROM t", row=Row)
    other = db.query("SELECT count(*) AS n FROM u")
    rt.settle()
    assert star.get().result == [{"id": 1, "a": "one"}]
    assert typed.get().result == [Row(1, "one", 0)]
    assert isinstance(other.get().error, sc.QueryError)
    before = db.path.stat().st_mtime_ns, db.rev
    space.sqlite_database("app", tables=V2)
    rt.settle()
    assert star.get().result == [{"id": 1, "a": "one", "b": 7}]
    assert typed.get().result == [Row(1, "one", 7)]
    assert other.get().error is None and other.get().result == [{"n": 0}]
    assert (db.path.stat().st_mtime_ns, db.rev) == before
    names = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    assert names.execute("SELECT name FROM pragma_table_info('t')").fetchall() == [("id",), ("a",)]
    names.close()


@pytest.mark.parametrize("name", ["sqlite", "SQLiteData", "sqlitex", "sqlite-x", "sqlite%"])
def test_names_that_start_like_sqlite_without_the_underscore_are_user_names(
    space: Space, name: str
) -> None:
    """R12 reserves names that start with ``sqlite_``; ``sqlite`` alone or followed by anything
    else is a name like any other, as a table (created, migrated, read) and as an index."""
    quoted = '"' + name + '"'
    db = space.sqlite_database(
        "d", tables={name: sc.table(a="text", indexes={f"ix {name}": ["a"]})}
    )
    assert db.read(f"SELECT a FROM {quoted}") == []
    _insert(space, db, f"INSERT INTO {quoted} (a) VALUES ('x')")
    grown = {name: sc.table(a="text", b="text default 'b'", indexes={f"ix {name}": ["a"]})}
    db = space.sqlite_database("d", tables=grown)
    _insert(space, db, f"INSERT INTO {quoted} (a) VALUES ('y')")
    assert db.read(f"SELECT a, b FROM {quoted} ORDER BY a") == [
        {"a": "x", "b": "b"},
        {"a": "y", "b": "b"},
    ]


def _schema_and_version(path: Path) -> tuple[object, ...]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return (
            conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY name").fetchall(),
            conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall(),
            conn.execute("SELECT * FROM t ORDER BY id").fetchall(),
        )
    finally:
        conn.close()


@pytest.mark.parametrize("version", [1, 2])
def test_a_write_that_cannot_migrate_writes_no_cell_of_its_transaction(
    space: Space, version: int
) -> None:
    """R13, R14: a non-additive difference — at the same version, or at a version bump without
    ``migrate`` — is UnsupportedMigration naming each difference; the cells written in the
    same transaction, the handle's rev and the file stay as they were."""
    db = space.sqlite_database("app", tables=V1)
    _insert(space, db, "INSERT INTO t (a) VALUES ('one')")
    counter = space.cell("counter", default=0)
    before = _schema_and_version(db.path), db.rev
    changed = {"t": sc.table(id=P, a="integer", c="text not null")}
    db = space.sqlite_database("app", tables=changed, version=version)
    with pytest.raises(sc.UnsupportedMigration) as info, space.transact():
        counter.set(5)
        db.exec("INSERT INTO t (a, c) VALUES (1, 'c')")
    assert len(info.value.differences) == 2
    assert any("t.a" in d and "TEXT → INTEGER" in d for d in info.value.differences)
    assert any("t.c" in d and "NOT NULL" in d for d in info.value.differences)
    assert info.value.db_id == db.id and "migrate=" in str(info.value)
    assert counter.get() == 0
    assert (_schema_and_version(db.path), db.rev) == before

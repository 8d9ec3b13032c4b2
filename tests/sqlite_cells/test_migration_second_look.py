"""Tables and migration through the public API, read from the contract's words (R10–R14):
every declaration form and the names it may take, specs that try to carry other SQL, the first
write as the only moment a file is made or changed, what a refused migration leaves, what a
``migrate`` callback may reach and return, and two processes holding different versions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import DatabaseDropped

ROOT = Path(__file__).resolve().parents[2]
P = "integer primary key"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def runtime(store: Path) -> Iterator[sc.Runtime]:
    with sc.Runtime(store) as rt:
        yield rt


def files_in(store: Path) -> list[str]:
    if not store.exists():
        return []
    return sorted(p.name for p in store.rglob("*") if p.is_file())


def file_schema(path: Path) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"
            )
        ]
    finally:
        conn.close()


def file_version(path: Path) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'")]
    finally:
        conn.close()


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def insert(space: Space, db: sc.SqliteDb, sql: str, params: list[object] | None = None) -> None:
    with space.transact():
        db.exec(sql, params)


# -- R10: the declaration forms --------------------------------------------------------------


def test_keyword_mapping_and_mixed_forms_declare_the_same_table() -> None:
    """R10: ``sc.table(**columns)``, ``sc.table({...})`` and the two together are one
    declaration; the mapping form takes names a keyword cannot (``indexes``, spaces)."""
    by_keywords = sc.table(id=P, body="text", indexes={"by_body": ["body"]})
    by_mapping = sc.table({"id": P, "body": "text"}, indexes={"by_body": ["body"]})
    mixed = sc.table({"id": P}, body="text", indexes={"by_body": ["body"]})
    assert by_keywords == by_mapping == mixed
    odd = sc.table({"indexes": "text", "two words": "integer"}, indexes={"ix": ["indexes"]})
    assert odd.column_names == ("indexes", "two words")
    assert odd.indexes == (("ix", ("indexes",)),)


NAMES = [
    "my table",
    'quo"te',
    "br[ack]et",
    "back`tick",
    "ünïcødé",
    "日本",
    "indexes",
    "a.b",
    "a;b",
    "1abc",
    "select",
    "x'y",
    "main_",
    "temporary",
    " lead",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_name_that_needs_quoting_works_through_a_whole_life(store: Path, name: str) -> None:
    """R10, R13, R14: a table, column and index named with spaces, quotes, brackets,
    backticks, dots, semicolons, keywords or non-ASCII letters is created, written, read,
    re-declared with an added column and index (read at its default at once) and migrated;
    the file holds exactly those names."""
    added = name + "2"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        v1 = {name: sc.table({"id": P, name: "text default 'd'"}, indexes={"ix " + name: [name]})}
        db = space.sqlite_database("d", tables=v1)
        assert db.read(f"SELECT {q(name)} FROM {q(name)}") == []
        insert(space, db, f"INSERT INTO {q(name)} ({q(name)}) VALUES (?)", ["v"])
        v2_table = sc.table(
            {"id": P, name: "text default 'd'", added: "integer default 7"},
            indexes={"ix " + name: [name], "ix " + added: [added]},
        )
        db = space.sqlite_database("d", tables={name: v2_table})
        sql = f"SELECT {q(name)} AS v, {q(added)} AS w FROM {q(name)} ORDER BY id"
        assert db.read(sql) == [{"v": "v", "w": 7}]
        insert(space, db, f"INSERT INTO {q(name)} ({q(added)}) VALUES (?)", [8])
        assert db.read(sql) == [{"v": "v", "w": 7}, {"v": "d", "w": 8}]
        path = db.path
    ours = [r[1] for r in file_schema(path) if not str(r[1]).startswith(("_cf_", "sqlite_"))]
    assert sorted(ours) == sorted([name, "ix " + name, "ix " + added])
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({q(name)})")]
    conn.close()
    assert columns == ["id", name, added]


def test_names_differing_only_in_ascii_case_are_one_name(store: Path) -> None:
    """R10, R13: SQLite compares names ignoring ASCII case: two tables, two columns, or an
    index and a table whose names differ only so are refused as declared twice; a
    re-declaration that changes only the case of a table's or column's name is the same
    schema (no difference, rows kept)."""
    with pytest.raises(sc.SchemaError, match="declared twice"):
        sc.table({"Body": "text", "body": "text"})
    with pytest.raises(sc.SchemaError, match="declared twice"):
        sc.table(a="text", indexes={"IX": ["a"], "ix": ["a"]})
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.SchemaError, match="declared twice"):
            space.sqlite_database(
                "d", tables={"Msgs": sc.table(a="text"), "msgs": sc.table(a="text")}
            )
        with pytest.raises(sc.SchemaError, match="share one namespace"):
            space.sqlite_database(
                "d",
                tables={
                    "t": sc.table(a="text", indexes={"OTHER": ["a"]}),
                    "other": sc.table(b="text"),
                },
            )
        assert files_in(store) == []
        db = space.sqlite_database(
            "d", tables={"Msgs": sc.table(id=P, Body="text", indexes={"By_Body": ["body"]})}
        )
        insert(space, db, "INSERT INTO msgs (body) VALUES ('one')")
        db = space.sqlite_database(
            "d", tables={"MSGS": sc.table(ID=P, body="text", indexes={"by_body": ["BODY"]})}
        )
        insert(space, db, "INSERT INTO Msgs (BODY) VALUES ('two')")
        assert db.read("SELECT count(*) AS n FROM mSgS") == [{"n": 2}]
        assert db.rev == 2


RESERVED = [
    "_CF_x",
    "_Cf_cells",
    "SQLITE_x",
    "Sqlite_master",
    "sQlItE_sequence",
    "PRAGMA_table_info",
    "Pragma_anything",
    "DBSTAT",
    "Json_Each",
    "JSON_TREE",
    "FTS3TOKENIZE",
    "Carray",
]


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_names_in_any_case_are_refused_as_table_column_and_index(
    store: Path, name: str
) -> None:
    """R12, R13: reserved prefixes and SQLite's eponymous virtual tables, in any ASCII case,
    are a ``SchemaError`` (a ``ValueError``) naming the name, as a table, a column or an index
    name, and a refused declaration leaves no file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        attempts = [
            lambda: space.sqlite_database("d", tables={name: sc.table(a="text")}),
            lambda: space.sqlite_database("d", tables={"t": sc.table({name: "text"})}),
            lambda: space.sqlite_database(
                "d", tables={"t": sc.table(a="text", indexes={name: ["a"]})}
            ),
        ]
        for attempt in attempts:
            with pytest.raises(sc.SchemaError, match="reserved") as info:
                attempt()
            assert isinstance(info.value, ValueError)
            assert repr(name) in str(info.value)
    assert files_in(store) == []


@pytest.mark.parametrize(
    ("columns", "what"),
    [
        ({"a_cf_link": "text"}, "must be declared as sc.cf_link()"),
        ({"A_CF_LINK": "TEXT"}, "must be declared as sc.cf_link()"),
        ({"a_Cf_Link": "text not null"}, "must be declared as sc.cf_link()"),
        ({"a": sc.cf_link()}, "only for columns whose name ends in"),
        ({"a_cf_linkx": sc.cf_link()}, "only for columns whose name ends in"),
        ({"cf_link": sc.cf_link()}, "only for columns whose name ends in"),
        ({"a_cf_link ": sc.cf_link()}, "only for columns whose name ends in"),
    ],
)
def test_cf_link_rules_hold_both_ways_in_every_form(columns: dict[str, object], what: str) -> None:
    """R11: a ``*_cf_link`` column (suffix in any case) must be ``sc.cf_link()``, even when
    its spec is the very type a link column is stored as; ``sc.cf_link()`` fits no other
    name. A ``SchemaError`` when the table is declared, in the mapping form too."""
    with pytest.raises(sc.SchemaError, match=r"R11") as info:
        sc.table(columns)  # type: ignore[arg-type]
    assert what in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_link_column_in_any_case_is_stored_as_text_and_reads_as_a_cell(space: Space) -> None:
    """R11: ``sc.cf_link()`` on a name whose suffix is in upper case is a link column."""
    db = space.sqlite_database("d", tables={"t": sc.table(id=P, Owner_CF_LINK=sc.cf_link())})
    owner = space.cell("owner", default=1)
    insert(space, db, "INSERT INTO t (Owner_CF_LINK) VALUES (?)", [owner])
    assert db.read("SELECT typeof(Owner_CF_LINK) AS t FROM t") == [{"t": "text"}]
    with pytest.raises(sc.LinkEncodeError), space.transact():
        db.exec("INSERT INTO t (owner_cf_link) VALUES ('not a link')")
    assert db.rev == 1


@pytest.mark.parametrize("name", ["main", "temp", "MAIN", "Temp"])
def test_a_table_named_like_a_database_is_refused_at_declaration(store: Path, name: str) -> None:
    """R13, R21: the guard refuses ``main.col`` and ``temp.col`` as schema-qualified names, so
    a table named ``main`` or ``temp`` could never have its columns qualified by its name
    (``UPDATE main SET a = 1 WHERE main.id = 1``): a ``SchemaError`` when it is declared, and
    no file. As a column or index name it is an ordinary name."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.SchemaError, match="schema-qualified") as info:
            space.sqlite_database("d", tables={name: sc.table(id=P, a="text")})
        assert isinstance(info.value, ValueError) and repr(name) in str(info.value)
        assert files_in(store) == []
        tables = {"t": sc.table({"id": P, name: "text"}, indexes={name: [name]})}
        db = space.sqlite_database("d", tables=tables)
        insert(space, db, f"INSERT INTO t ({name}) VALUES ('x')")
        assert db.read(f"SELECT t.{name} AS v FROM t WHERE t.id = 1") == [{"v": "x"}]


class LinkRow(msgspec.Struct):
    id: int
    link: sc.Cell | None


@pytest.mark.parametrize(
    "column", ["a b_cf_link", 'quo"te_cf_link', "日本_cf_link", "x.y_cf_link", "?_cf_link"]
)
def test_a_link_column_whose_name_needs_quoting_is_a_link_column_everywhere(
    runtime: sc.Runtime, column: str
) -> None:
    """R11, R31, R43: a ``*_cf_link`` column named with spaces, quotes, non-ASCII letters, a
    dot or a ``?`` takes Cells (positional and named parameters, INSERT and UPDATE), refuses
    anything else there and a Cell anywhere else, and reads back as Cells in typed rows."""
    space = runtime.space("demo")
    cell = space.cell("c", default=1)
    db = space.sqlite_database(
        "d", tables={"t": sc.table({"id": P, column: sc.cf_link(), "p": "text"})}
    )
    name = q(column)
    insert(space, db, f"INSERT INTO t ({name}) VALUES (?)", [cell])
    insert(space, db, f"UPDATE t SET {name} = ? WHERE id = 1", [cell])
    with space.transact():
        db.exec(f"INSERT INTO t ({name}, p) VALUES (:v, :w)", {"v": cell, "w": "x"})
    for sql, params in [
        (f"INSERT INTO t (p, {name}) VALUES (?, ?)", ["x", "not a cell"]),
        ("INSERT INTO t (p) VALUES (?)", [cell]),
        (f"INSERT INTO t ({name}) VALUES ('junk')", None),
    ]:
        with pytest.raises(sc.LinkEncodeError), space.transact():
            db.exec(sql, params)
    query = db.query(f"SELECT id, {name} AS link FROM t ORDER BY id", row=LinkRow)
    runtime.settle()
    result = query.get().result
    assert result is not None
    assert [row.link.get() if row.link is not None else None for row in result] == [1, 1]
    assert db.rev == 3


# -- R10, R13: specs that try to carry other SQL ---------------------------------------------

SMUGGLED = [
    "integer); DROP TABLE x; --",
    "integer) ; CREATE TABLE y (a",
    "integer, b text",
    "text /* hidden */",
    "text -- trailing",
    "integer references _cf_cells",
    'integer references "_CF_META"',
    "integer references [sqlite_master]",
    "integer references '_cf_meta'",
    "integer references 'SQLITE_MASTER'",
    "integer references parent('_cf_x')",
    "text check ((select count(*) from sqlite_master) > 0)",
    "text check (a in (select 1))",
    "text default (load_extension('x'))",
    "text default (readfile('/etc/passwd'))",
    "blob as (writefile('/tmp/x', 'y'))",
    "text check (fts3_tokenizer('simple') is null)",
    "text check (edit(a) is null)",
    "integer as ((select 1))",
    "integer as (random())",
    "text collate no_such_collation",
    "integer references main.t",
    "text default ((select 1))",
    "text check (_cf_json_extract(a, '$') is null)",
    "text default (sqlite_log(1, 'x'))",
]


@pytest.mark.parametrize("spec", SMUGGLED)
def test_a_spec_that_carries_other_sql_is_refused_and_creates_nothing(
    store: Path, spec: str
) -> None:
    """R10, R12, R13: a spec is one SQLite column definition. One that ends the definition,
    names a reserved table, calls a forbidden function or holds what SQLite refuses in a
    column is a ``SchemaError`` when the database is declared: no file, no table of its own."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with pytest.raises(sc.SchemaError) as info:
            space.sqlite_database("d", tables={"t": sc.table({"a": "text", "c": spec})})
        assert isinstance(info.value, ValueError)
        assert "'c'" in str(info.value) or repr(spec) in str(info.value)
    assert files_in(store) == []


def test_specs_sqlite_accepts_behave_as_sqlite_makes_them(space: Space) -> None:
    """R10: a collation, a CHECK without subquery, generated columns, a reference to another
    declared table and a time default are column definitions SQLite accepts: declared, and
    they behave as SQLite makes them."""
    tables = {
        "owner": sc.table(id=P, name="text collate nocase unique"),
        "t": sc.table(
            id=P,
            owner="integer references owner(id)",
            n="integer not null check (n >= 0) default 0",
            twice="integer as (n * 2)",
            label="text generated always as ('#' || n) stored",
            at="text default current_timestamp",
            semi="text default ');drop table owner;--'",
            data="text default '_cf_meta' references 'owner'('id')",
        ),
    }
    db = space.sqlite_database("d", tables=tables)
    insert(space, db, "INSERT INTO owner (name) VALUES ('Ann')")
    insert(space, db, "INSERT INTO t (owner, n) VALUES (1, 3)")
    assert db.read("SELECT id FROM owner WHERE name = 'ANN'") == [{"id": 1}]
    rows = db.read("SELECT n, twice, label, semi, at IS NOT NULL AS has_at FROM t")
    assert rows == [
        {"n": 3, "twice": 6, "label": "#3", "semi": ");drop table owner;--", "has_at": 1}
    ]
    with pytest.raises(sc.ExecError, match="CHECK constraint failed"), space.transact():
        db.exec("INSERT INTO t (n) VALUES (-1)")
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]


def test_a_table_over_sqlites_column_limit_is_blamed_on_the_table() -> None:
    """R10, Errors: SQLite refuses a table of more columns than its limit whatever the specs
    say; the error says so, of the table, not of a column whose spec is fine."""
    columns = {f"c{i}": "text" for i in range(2001)}
    with sc.Runtime.ephemeral() as rt, pytest.raises(sc.SchemaError) as info:
        rt.space("demo").sqlite_database("d", tables={"wide": sc.table(columns)})
    message = str(info.value)
    assert "table 'wide'" in message
    assert "too many columns" in message
    assert "column 'c0'" not in message
    assert "probe" not in message
    assert "2001" in message and "2000" in message


@pytest.mark.parametrize(
    "columns",
    [
        {"a": "text default '" + "x" * 70_000_000 + "'"},
        {"a": "integer check (" + "a + " * 20_000 + "1)"},
        {"_cf_" + "n" * 1_000_000: "text"},
        {"n" * 1_000_000 + "_cf_link": "text"},
    ],
    ids=["default-over-the-length-limit", "deep-check", "long-reserved-name", "long-link-name"],
)
def test_a_refused_declaration_says_so_in_a_message_of_readable_length(
    columns: dict[str, str],
) -> None:
    """Errors, R44: a spec or name megabytes long is refused with a message that shows its
    beginning and its length, not the whole text."""
    with sc.Runtime.ephemeral() as rt, pytest.raises(sc.SchemaError) as info:
        rt.space("demo").sqlite_database("d", tables={"t": sc.table(columns)})
    message = str(info.value)
    assert len(message) < 2000
    assert "characters)" in message


def test_a_table_without_a_key_must_leave_its_rowid_a_name(runtime: sc.Runtime) -> None:
    """R70, R51, R10: the changes of a table without a primary key are recorded by rowid, which
    SQLite's session extension names ``_rowid_``. A column of that name leaves the runtime no
    way to name its rows (a bulk UPDATE recorded no change, and a live query of the table
    stayed stale): a ``SchemaError`` when declared. With a primary key, or that name free, the
    table is declared, and a live query follows a bulk UPDATE."""
    space = runtime.space("demo")
    hidden = {"rowid": "text", "OID": "text", "_rowid_": "text", "a": "text"}
    with pytest.raises(sc.SchemaError, match="a column named _rowid_") as info:
        space.sqlite_database("d", tables={"t": sc.table(hidden)})
    assert isinstance(info.value, ValueError)
    for n, columns in enumerate(
        [{**hidden, "id": P}, {"rowid": "text", "oid": "text", "a": "text"}, {"a": "text"}]
    ):
        db = space.sqlite_database(f"d{n}", tables={"t": sc.table(columns)})
        with space.transact():
            db.exec_many("INSERT INTO t (a) VALUES (?)", [[str(i)] for i in range(100)])
        query = db.query("SELECT count(*) AS n FROM t WHERE a LIKE '%x'")
        runtime.settle()
        insert(space, db, "UPDATE t SET a = a || 'x'")
        runtime.settle()
        assert query.get().result == [{"n": 100}], columns


# -- R13: the first write, never a read -------------------------------------------------------


def test_no_read_of_any_kind_creates_the_file_or_calls_migrate(store: Path) -> None:
    """R13, R14, R7: reads, live queries, subscriptions, ``db.get()``, ``db.rev`` and the
    handle's other properties, and a read inside a transaction that commits no write, create
    no file and call no ``migrate``; the first write does, without calling ``migrate`` (the
    file did not exist)."""
    calls: list[int] = []
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        tables = {"t": sc.table(id=P, a="text default 'x'", indexes={"by_a": ["a"]})}
        db = space.sqlite_database(
            "d", tables=tables, version=3, migrate=lambda conn, v: calls.append(v)
        )
        assert db.read("SELECT * FROM t") == []
        assert db.read("SELECT a FROM t INDEXED BY by_a") == []
        query = db.query("SELECT count(*) AS n FROM t")
        seen: list[object] = []
        query.observe().subscribe(seen.append)
        rt.settle()
        assert query.get().result == [{"n": 0}]
        assert db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 0}
        assert db.rev == 0 and set(db.tables) == {"t"}
        with pytest.raises(sc.QueryError):
            db.read("SELECT * FROM nope")
        with space.transact():
            assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
        assert files_in(store) == []
        insert(space, db, "INSERT INTO t (id) VALUES (1)")
        rt.settle()
        assert calls == []
        assert db.path.exists()
        assert file_version(db.path) == [(3,)]
        assert query.get().result == [{"n": 1}]


def test_a_fresh_runtime_reading_an_older_file_changes_nothing_in_it(store: Path) -> None:
    """R13, R14: a runtime that declares a newer schema and version reads the older file as
    declared but runs no DDL and no ``migrate``: the file's schema, version and bytes stay."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        path = db.path
    before_schema = file_schema(path)
    before_bytes = path.read_bytes()
    calls: list[int] = []
    v2 = {
        "t": sc.table(id=P, a="text", b="integer default 5", indexes={"by_b": ["b"]}),
        "u": sc.table(id=P),
    }
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v2, version=2, migrate=lambda c, v: calls.append(v))
        assert db.read("SELECT a, b FROM t") == [{"a": "one", "b": 5}]
        assert db.read("SELECT * FROM u") == []
        query = db.query("SELECT a, b FROM t")
        rt.settle()
        assert query.get().result == [{"a": "one", "b": 5}]
    assert calls == []
    assert file_schema(path) == before_schema
    assert file_version(path) == [(1,)]
    assert path.read_bytes() == before_bytes


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM u",
        "SELECT 1 AS n FROM u",
        "SELECT count(*) AS n FROM t JOIN u",
        "SELECT t.a AS n FROM t, u",
        "SELECT EXISTS (SELECT 1 FROM u) AS n",
        "SELECT count(*) AS n FROM t WHERE EXISTS (SELECT 1 FROM u INDEXED BY by_x)",
    ],
)
def test_a_stored_table_the_declaration_dropped_is_not_read_even_without_its_columns(
    runtime: sc.Runtime, sql: str
) -> None:
    """R41, R23: an undeclared table is a ``QueryError``, written or not — also when the
    statement names none of its columns (a row count, ``SELECT 1``, the other side of a
    join), through ``db.read`` and a live query alike. A CTE of that name is the statement's
    own and reads as usual."""
    space = runtime.space("demo")
    v1 = {"t": sc.table(id=P, a="text"), "u": sc.table(x="text", indexes={"by_x": ["x"]})}
    db = space.sqlite_database("d", tables=v1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('one')")
        db.exec("INSERT INTO u (x) VALUES ('secret'), ('more')")
    db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
    with pytest.raises(sc.QueryError, match="declared tables") as info:
        db.read(sql)
    assert "'u'" in str(info.value)
    query = db.query(sql)
    runtime.settle()
    state = query.get()
    assert isinstance(state.error, sc.QueryError) and state.result is None
    assert db.read("WITH u AS (SELECT a FROM t) SELECT count(*) AS n FROM u") == [{"n": 1}]
    assert db.read("WITH u AS (VALUES (1), (2)) SELECT count(*) AS n FROM u") == [{"n": 2}]
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]


def test_a_table_a_newer_declaration_added_is_not_read_by_an_older_one(store: Path) -> None:
    """R41, R14: a runtime holding the older declaration does not read a table that a newer
    one (another runtime) added to the file, by any shape of statement; the file being at the
    newer version, the error says so, as for a column the file lacks."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        with sc.Runtime(store) as newer:
            other = newer.space("demo")
            v2 = {"t": sc.table(id=P, a="text"), "w": sc.table(id=P)}
            db2 = other.sqlite_database("d", tables=v2, version=2)
            insert(other, db2, "INSERT INTO w (id) VALUES (1)")
        for sql in ("SELECT count(*) AS n FROM w", "SELECT id FROM w"):
            with pytest.raises(sc.QueryError, match=NEWER_FILE):
                db.read(sql)
        assert db.read("SELECT a FROM t") == [{"a": "one"}]


NEWER_FILE = (
    "the file is at version 2, newer than the declared version=1: a newer declaration "
    r"migrated it, and this one no longer matches its tables; update the declaration \(tables "
    r"and version\) to the newer one"
)


@pytest.mark.parametrize("newer", [False, True], ids=["same version", "newer version"])
def test_a_table_another_declaration_made_says_whether_the_file_is_newer(
    store: Path, newer: bool
) -> None:
    """R14, R41: a version-1 runtime reading a table another runtime's declaration put in the
    file: at the same version (declared additively there) the error says queries read only the
    declared tables; made by a version-2 `migrate`, it says the file is at version 2, newer than
    the declared version=1, and to update the declaration — as for a column the file lacks
    (it used to give the authorizer's words alone)."""
    with sc.Runtime(store) as rt1, sc.Runtime(store) as rt2:
        s1, s2 = rt1.space("demo"), rt2.space("demo")
        db1 = s1.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(s1, db1, "INSERT INTO t (a) VALUES ('r1')")
        both = {"t": sc.table(id=P, a="text"), "audit": sc.table(id=P, note="text")}
        if newer:

            def migrate(conn: object, _version: int) -> None:
                conn.execute("CREATE TABLE audit (id integer primary key, note text)")  # type: ignore[attr-defined]

            db2 = s2.sqlite_database("d", tables=both, version=2, migrate=migrate)
        else:
            db2 = s2.sqlite_database("d", tables=both)
        insert(s2, db2, "INSERT INTO audit (note) VALUES ('n')")
        for sql in ("SELECT note FROM audit", "SELECT count(*) AS n FROM audit"):
            with pytest.raises(sc.QueryError) as info:
                db1.read(sql)
            message = str(info.value)
            assert "Traceback" not in message and "audit" in message
            if newer:
                assert re.search(NEWER_FILE, message), message
            else:
                assert "queries may read only the database's declared tables" in message
                assert "version" not in message
        assert db1.read("SELECT a FROM t") == [{"a": "r1"}]


def test_a_table_no_declaration_has_is_undeclared_whatever_the_files_version(
    store: Path,
) -> None:
    """R41, R14: a version-1 runtime reading a table that neither its declaration nor the
    version-2 one that migrated the file has was told to update its declaration to the newer
    one ("a newer declaration migrated it"), which has no such table either. It is an
    undeclared table; the file's newer version is said as context only."""
    with sc.Runtime(store) as rt1, sc.Runtime(store) as rt2:
        s1, s2 = rt1.space("demo"), rt2.space("demo")
        db1 = s1.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(s1, db1, "INSERT INTO t (a) VALUES ('r1')")
        db2 = s2.sqlite_database(
            "d", tables={"t": sc.table(id=P, a="text", b="text")}, version=2,
            migrate=lambda conn, version: None,
        )  # fmt: skip
        insert(s2, db2, "INSERT INTO t (a) VALUES ('r2')")
        for sql in ("SELECT * FROM nope", "SELECT count(*) AS n FROM nope"):
            with pytest.raises(sc.QueryError) as info:
                db1.read(sql)
            assert (info.value.db_id, info.value.sql) == (db1.id, sql)
            assert str(info.value).startswith(f"database {db1.id}: no such table: "), info.value
            assert (
                "nope: queries may read only the database's declared tables, and the "
                "declaration has no such table (for context: the file is at version 2, newer "
                "than the declared version=1) (SQLite's SQLITE_ERROR); correct the statement"
            ) in str(info.value)
            assert "update the declaration" not in str(info.value)
        q = db1.query("SELECT * FROM nope")
        rt1.settle()
        state = q.get()
        assert (state.pending, state.result) == (False, None)
        assert isinstance(state.error, sc.QueryError)
        assert "the declaration has no such table" in str(state.error)
        assert db1.read("SELECT a FROM t") == [{"a": "r1"}, {"a": "r2"}]


def test_a_column_no_declaration_has_is_the_statements_whatever_the_files_version(
    store: Path,
) -> None:
    """R41, R14: a version-1 runtime reading a column that neither its declaration nor the
    file (migrated by a version-2 declaration) has was told to update its declaration to the
    newer one, which has no such column either. It is the statement's mistake; the file's
    newer version is context only. A column the newer declaration added reads as it is stored,
    and one this declaration has that the newer file lacks still says the file is newer."""
    with sc.Runtime(store) as rt1, sc.Runtime(store) as rt2:
        s1, s2 = rt1.space("demo"), rt2.space("demo")
        db1 = s1.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(s1, db1, "INSERT INTO t (a) VALUES ('r1')")
        db2 = s2.sqlite_database(
            "d", tables={"t": sc.table(id=P, a="text", b="text")}, version=2,
            migrate=lambda conn, version: None,
        )  # fmt: skip
        insert(s2, db2, "INSERT INTO t (a, b) VALUES ('r2', 'x')")
        assert db1.read("SELECT b FROM t ORDER BY id") == [{"b": None}, {"b": "x"}]
        for sql in ("SELECT nope FROM t", "SELECT t.nope FROM t", "SELECT a FROM t WHERE Nope"):
            with pytest.raises(sc.QueryError) as info:
                db1.read(sql)
            assert (info.value.db_id, info.value.sql) == (db1.id, sql)
            assert str(info.value).startswith(f"database {db1.id}: no such column: "), info.value
            assert (
                "nope: neither the file nor the declaration has that column (for context: the "
                "file is at version 2, newer than the declared version=1) (SQLite's "
                "SQLITE_ERROR); correct the statement"
            ) in str(info.value).replace("Nope", "nope")
            assert "update the declaration" not in str(info.value)
        q = db1.query("SELECT nope FROM t")
        rt1.settle()
        state = q.get()
        assert (state.pending, state.result) == (False, None)
        assert isinstance(state.error, sc.QueryError)
        assert "neither the file nor the declaration has that column" in str(state.error)
        redeclared = s1.sqlite_database("d", tables={"t": sc.table(id=P, a="text", c="text")})
        with pytest.raises(sc.QueryError, match=NEWER_FILE):
            redeclared.read("SELECT c FROM t")


# -- R13: what a refused migration leaves -----------------------------------------------------


def test_a_changed_or_dropped_index_is_refused_naming_each_and_nothing_is_written(
    runtime: sc.Runtime,
) -> None:
    """R13: an index declared on other columns, an index no longer declared, a retyped and a
    dropped column are each named by ``UnsupportedMigration``; the transaction's cell writes,
    its rows and the handle's rev stay as they were, and no subscriber hears of it."""
    space = runtime.space("demo")
    v1 = {
        "t": sc.table(
            id=P, a="text", b="integer", gone="text", indexes={"by_a": ["a"], "by_b": ["b"]}
        )
    }
    db = space.sqlite_database("d", tables=v1)
    insert(space, db, "INSERT INTO t (a, b) VALUES ('x', 1)")
    path = db.path
    schema_before = file_schema(path)
    counter = space.cell("counter", default=0)
    heard: list[object] = []
    counter.observe().subscribe(heard.append)
    runtime.settle()
    v2 = {"t": sc.table(id=P, a="integer", b="integer", indexes={"by_a": ["a", "b"]})}
    db2 = space.sqlite_database("d", tables=v2)
    with pytest.raises(sc.UnsupportedMigration) as info, space.transact():
        counter.set(1)
        db2.exec("INSERT INTO t (a, b) VALUES (2, 2)")
    message = str(info.value)
    for part in ("t.a: type TEXT → INTEGER", "t.gone", "index by_a", "index by_b"):
        assert part in message
        assert any(part in d for d in info.value.differences)
    assert isinstance(info.value, sc.SqliteCellsError)
    runtime.settle()
    assert counter.get() == 0 and heard == [0]
    assert db.rev == 1
    assert file_schema(path) == schema_before
    assert db2.read("SELECT count(*) AS n FROM t") == [{"n": 1}]


# -- R14: version= and migrate= --------------------------------------------------------------


def test_migrate_runs_once_before_the_write_with_the_stored_version(store: Path) -> None:
    """R14: a version bump over two steps calls ``migrate`` once, with the stored version,
    before the write (the write's rows are not there yet); later writes, and another runtime,
    do not call it again."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
    calls: list[tuple[int, list[tuple[object, ...]]]] = []

    def migrate(conn: object, from_version: int) -> None:
        run = conn.execute  # type: ignore[attr-defined]
        calls.append((from_version, run("SELECT id, a FROM t ORDER BY id")))
        run("ALTER TABLE t RENAME COLUMN a TO b")

    v3 = {"t": sc.table(id=P, b="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v3, version=3, migrate=migrate)
        insert(space, db, "INSERT INTO t (b) VALUES ('two')")
        insert(space, db, "INSERT INTO t (b) VALUES ('three')")
        assert calls == [(1, [(1, "one")])]
        path = db.path
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v3, version=3, migrate=migrate)
        insert(space, db, "INSERT INTO t (b) VALUES ('four')")
        assert [r["b"] for r in db.read("SELECT b FROM t ORDER BY id")] == [
            "one",
            "two",
            "three",
            "four",
        ]
    assert len(calls) == 1
    assert file_version(path) == [(3,)]


def test_an_exception_after_ddl_in_migrate_leaves_the_file_as_it_was(store: Path) -> None:
    """R14, R34: the migration commits with its version or not at all: an exception raised
    after several statements leaves the file's schema, rows and version as they were, and the
    write is a ``MigrationError`` whose cause is the exception; the transaction writes nothing."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        path = db.path
        before = file_schema(path)

        def migrate(conn: object, from_version: int) -> None:
            run = conn.execute  # type: ignore[attr-defined]
            run("ALTER TABLE t RENAME COLUMN a TO b")
            run("CREATE TABLE u (id INTEGER PRIMARY KEY)")
            run("CREATE INDEX u_id ON u (id)")
            run("UPDATE t SET b = 'changed'")
            raise LookupError("halfway")

        tables = {"t": sc.table(id=P, b="text"), "u": sc.table(id=P, indexes={"u_id": ["id"]})}
        db2 = space.sqlite_database("d", tables=tables, version=2, migrate=migrate)
        cell = space.cell("c", default=0)
        with pytest.raises(sc.MigrationError) as info, space.transact():
            cell.set(1)
            db2.exec("INSERT INTO t (b) VALUES ('two')")
        assert isinstance(info.value.__cause__, LookupError)
        assert "halfway" in str(info.value)
        assert cell.get() == 0
    assert file_schema(path) == before
    assert file_version(path) == [(1,)]
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT id, a FROM t").fetchall() == [(1, "one")]
    conn.close()


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("CREATE TABLE leftover (a)", "leftover"),
        ("CREATE INDEX leftover_ix ON t (a)", "leftover_ix"),
        ("CREATE UNIQUE INDEX by_a_unique ON t (a)", "by_a_unique"),
    ],
)
def test_migrate_leaving_an_undeclared_table_or_index_fails(
    store: Path, extra: str, name: str
) -> None:
    """R14: after ``migrate`` the file holds exactly the declared tables and indexes: an extra
    table or index is a ``MigrationError`` naming it; nothing of the migration stays."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        path = db.path
        before = file_schema(path)

        def migrate(conn: object, from_version: int) -> None:
            conn.execute(extra)  # type: ignore[attr-defined]

        db2 = space.sqlite_database(
            "d", tables={"t": sc.table(id=P, a="text")}, version=2, migrate=migrate
        )
        with pytest.raises(sc.MigrationError) as info:
            insert(space, db2, "INSERT INTO t (a) VALUES ('two')")
        assert name in str(info.value)
    assert file_schema(path) == before
    assert file_version(path) == [(1,)]


def test_migrate_may_leave_a_declared_table_or_index_to_the_additive_step(store: Path) -> None:
    """R14: the additive diff runs after ``migrate``: a declared table or index the callback
    did not create is created with the migration, in the same transaction."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        v2 = {
            "t": sc.table(id=P, b="text", indexes={"by_b": ["b"]}),
            "u": sc.table(id=P, x="text default 'x'"),
        }

        def migrate(conn: object, from_version: int) -> None:
            conn.execute("ALTER TABLE t RENAME COLUMN a TO b")  # type: ignore[attr-defined]

        db2 = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)
        insert(space, db2, "INSERT INTO u (id) VALUES (1)")
        assert db2.read("SELECT b FROM t INDEXED BY by_b") == [{"b": "one"}]
        assert db2.read("SELECT x FROM u") == [{"x": "x"}]
        path = db2.path
    assert file_version(path) == [(2,)]


def test_a_lower_version_than_stored_is_refused_without_calling_migrate(store: Path) -> None:
    """R14: a declaration older than the file (version 2 stored, 1 declared, with a
    ``migrate``) never runs ``migrate`` (the stored version is not older) and its write is
    ``UnsupportedMigration`` naming both versions; the file and the space stay."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")}, version=2)
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        path = db.path
    before = file_schema(path)
    calls: list[int] = []
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database(
            "d", tables={"t": sc.table(id=P, a="text")}, migrate=lambda c, v: calls.append(v)
        )
        assert db.read("SELECT a FROM t") == [{"a": "one"}]
        with pytest.raises(sc.UnsupportedMigration) as info:
            insert(space, db, "INSERT INTO t (a) VALUES ('two')")
        assert "version 2" in str(info.value) and "version=1" in str(info.value)
        assert db.rev == 1
    assert calls == []
    assert file_schema(path) == before
    assert file_version(path) == [(2,)]


@pytest.mark.parametrize(
    "result",
    [42, None, False, "text", {"a": 1}, [1, 2], object()],
    ids=["int", "none", "false", "str", "dict", "list", "object"],
)
def test_what_migrate_returns_is_not_used(space: Space, result: object) -> None:
    """R14: ``migrate``'s return value means nothing: whatever a plain function returns, the
    migration commits."""
    db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
    insert(space, db, "INSERT INTO t (a) VALUES ('one')")

    def migrate(conn: object, from_version: int) -> object:
        conn.execute("ALTER TABLE t ADD COLUMN b TEXT")  # type: ignore[attr-defined]
        return result

    db2 = space.sqlite_database(
        "d", tables={"t": sc.table(id=P, a="text", b="text")}, version=2, migrate=migrate
    )
    insert(space, db2, "INSERT INTO t (a, b) VALUES ('two', 'b')")
    assert db2.read("SELECT a, b FROM t ORDER BY id") == [
        {"a": "one", "b": None},
        {"a": "two", "b": "b"},
    ]


def test_migrate_returning_an_awaitable_fails_and_writes_nothing(space: Space) -> None:
    """R14: a ``migrate`` that hands back an awaitable (a coroutine it made, an object with
    ``__await__``) did not do its work; the write is a ``MigrationError`` and the version
    stays."""
    db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
    insert(space, db, "INSERT INTO t (a) VALUES ('one')")

    class Later:
        def __await__(self) -> Iterator[None]:
            yield None

    db2 = space.sqlite_database(
        "d", tables={"t": sc.table(id=P, a="text")}, version=2, migrate=lambda c, v: Later()
    )
    with pytest.raises(sc.MigrationError, match="instead of running"):
        insert(space, db2, "INSERT INTO t (a) VALUES ('two')")
    assert file_version(db.path) == [(1,)]
    assert db2.read("SELECT a FROM t") == [{"a": "one"}]


MIGRATE_HOSTILE = [
    "SELECT * FROM _cf_log",
    'SELECT * FROM "_CF_CELLS"',
    "SELECT * FROM [_cf_meta]",
    "SELECT * FROM `_cf_changes`",
    "SELECT * FROM '_cf_watermark'",
    "SELECT * FROM main._cf_watermark",
    "UPDATE _cf_meta SET value = 9",
    "ATTACH ':memory:' AS x",
    "DETACH main",
    "PRAGMA user_version = 3",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM dbstat",
    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TEMP TABLE x (a)",
    'CREATE TABLE "temp".x (a)',
    "CREATE VIRTUAL TABLE f USING fts5(a)",
    "CREATE TABLE _cf_mine (a)",
    "SELECT load_extension('x')",
    "SELECT readfile('/etc/hostname')",
    "VACUUM INTO 'copy.db'",
    "ANALYZE",
    "REINDEX",
    "COMMIT",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("sql", MIGRATE_HOSTILE)
def test_a_refused_migration_statement_fails_the_write_and_leaves_the_file(
    store: Path, sql: str
) -> None:
    """R14: the migration connection refuses the space's tables in any quoting, the runtime's
    own, ATTACH/DETACH, PRAGMAs, triggers, views, temp and virtual tables, forbidden functions
    and transaction control. Uncaught, the refusal fails the write as a ``MigrationError``;
    the file keeps its schema and version, the space no commit."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        path = db.path
        before = file_schema(path)
        cell = space.cell("c", default=0)

        def migrate(conn: object, from_version: int) -> None:
            conn.execute(sql)  # type: ignore[attr-defined]

        db2 = space.sqlite_database(
            "d", tables={"t": sc.table(id=P, a="text")}, version=2, migrate=migrate
        )
        with pytest.raises(sc.MigrationError) as info, space.transact():
            cell.set(1)
            db2.exec("INSERT INTO t (a) VALUES ('two')")
        assert repr(sql) in str(info.value) or sql in str(info.value)
        assert cell.get() == 0 and db2.rev == 1
    assert file_schema(path) == before
    assert file_version(path) == [(1,)]
    assert not (store / "copy.db").exists() and not Path("copy.db").exists()


# -- two processes ----------------------------------------------------------------------------

DECLARE_V2 = """
import sys
import sqlite_cells as sc

def migrate(conn, from_version):
    conn.execute("ALTER TABLE t RENAME COLUMN a TO b")
    conn.execute("CREATE TABLE IF NOT EXISTS runs (n INTEGER)")
    conn.execute("INSERT INTO runs (n) VALUES (?)", (from_version,))

with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    tables = {
        "t": sc.table(id="integer primary key", b="text"),
        "runs": sc.table(n="integer"),
    }
    db = space.sqlite_database("d", tables=tables, version=2, migrate=migrate)
    with space.transact():
        db.exec("INSERT INTO t (b) VALUES (?)", [sys.argv[2]])
print("ok")
"""


def run_v2(store: Path, value: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DECLARE_V2), str(store), value],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_process_at_an_older_version_is_refused_after_another_migrated(store: Path) -> None:
    """R13, R14, R53: a runtime that declared version 1 and wrote keeps running while another
    process migrates the file to version 2 (renaming a column). Its next write is refused as
    ``UnsupportedMigration`` naming both versions and writes nothing; its reads of the renamed
    column fail as ``QueryError``, never a raw error; the other process's rows stay."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        query = db.query("SELECT a FROM t ORDER BY id")
        rt.settle()
        assert query.get().result == [{"a": "one"}]
        child = run_v2(store, "two")
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "ok", err
        rt.settle()
        with pytest.raises(sc.UnsupportedMigration) as info:
            insert(space, db, "INSERT INTO t (a) VALUES ('three')")
        assert "version 2" in str(info.value) and "version=1" in str(info.value)
        with pytest.raises(sc.QueryError):
            db.read("SELECT a FROM t")
        state = query.get()
        assert isinstance(state.error, sc.QueryError) and state.result is None
        assert db.rev == 2
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        v2 = {"t": sc.table(id=P, b="text"), "runs": sc.table(n="integer")}
        db = space.sqlite_database("d", tables=v2, version=2)
        assert db.read("SELECT b FROM t ORDER BY id") == [{"b": "one"}, {"b": "two"}]
        assert db.read("SELECT n FROM runs") == [{"n": 1}]


def test_two_processes_bumping_the_version_together_migrate_once(store: Path) -> None:
    """R14: two processes that declare version 2 over a version-1 file and write at the same
    time run ``migrate`` once between them (the second finds the version stored); both
    writes land."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
    children = [run_v2(store, value) for value in ("x", "y")]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "ok", err
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        v2 = {"t": sc.table(id=P, b="text"), "runs": sc.table(n="integer")}
        db = space.sqlite_database("d", tables=v2, version=2)
        assert sorted(r["b"] for r in db.read("SELECT b FROM t")) == ["one", "x", "y"]
        assert db.read("SELECT n FROM runs") == [{"n": 1}]
        assert db.rev == 3


def test_objects_another_program_named_like_the_runtimes_are_differences(store: Path) -> None:
    """R13: what the declaration does not have is a difference, whatever its name — only the
    runtime's own tables are not. Objects another program put in the file under reserved
    `_cf_` names were passed over, and such a trigger fired on the next write."""
    tables = {"t": sc.table(id="integer primary key", a="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('one')")
        path = db.path
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TRIGGER _cf_trg AFTER INSERT ON t BEGIN UPDATE t SET a = 'trigger'; END;"
        "CREATE INDEX _cf_idx ON t(a); CREATE VIEW _cf_view AS SELECT * FROM t;"
        "CREATE TABLE _CF_junk(x);"
    )
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with pytest.raises(sc.UnsupportedMigration) as raised, space.transact():
            db.exec("INSERT INTO t (a) VALUES ('two')")
        text = str(raised.value)
        for name in ("_cf_trg", "_cf_idx", "_cf_view", "_CF_junk"):
            assert name in text, (name, text)
        assert "reserved for the runtime" in text
        assert db.read("SELECT id, a FROM t") == [{"id": 1, "a": "one"}]  # nothing written


def test_double_quoted_and_bare_words_that_are_text_to_sqlite_compare_as_text(
    store: Path,
) -> None:
    """R13, by what SQLite reads: a double-quoted word that names no column of the table is a
    string literal (in a DEFAULT, a CHECK, a generated expression), and so is a default of one
    word or bracketed name. They compared as names — case aside — so `"abc"` → `"ABC"` passed
    unseen: the write stored a row the declared CHECK forbids. Spelled as the same text, or
    naming a column in another case, they still compare equal."""

    def declared(a: str, b: str, c: str, g: str) -> dict[str, sc.Table]:
        return {
            "t": sc.table(
                a=f"text default {a}",
                b=f'text check ({b} != "x")',
                c=f"text default {c}",
                g=f"text as ({g} || 'x')",
            )
        }

    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=declared('"abc"', "b", "[abc]", '"b"'))
        with space.transact():
            db.exec("INSERT INTO t (b) VALUES ('y')")
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        # The same, spelled otherwise: a literal in other quotes, the column in another case.
        db = space.sqlite_database("d", tables=declared("'abc'", '"B"', '"abc"', "B"))
        with space.transact():
            db.exec("INSERT INTO t (b) VALUES ('z')")
        changed = {
            "t": sc.table(
                a='text default "ABC"',
                b='text check (b != "X")',
                c="text default [ABC]",
                g="text as (\"b\" || 'x')",
            )
        }
        db = space.sqlite_database("d", tables=changed)
        with pytest.raises(sc.UnsupportedMigration) as raised, space.transact():
            db.exec("INSERT INTO t (b) VALUES ('X')")
        text = str(raised.value)
        assert "t.a: default" in text and "t.c: default" in text and "t.b: CHECK" in text
        assert "t.g" not in text  # "b" names the column: the same expression
        assert [r["b"] for r in db.read("SELECT b FROM t ORDER BY rowid")] == ["y", "z"]


def test_a_bare_word_default_is_the_text_sqlite_stores(store: Path) -> None:
    """R10, R14: `text default abc` is a column definition SQLite takes (the default is the text
    `abc`); its declaration was refused ("SQLite cannot compute the default abc: no such
    column"). It is declared, written, read before the column is materialized as its text,
    and a word SQLite reads as a keyword (`TRUE`, `NULL`) stays one."""
    columns = {"id": "integer primary key", "e": "text default abc", "f": "text default TRUE"}
    tables = {"t": sc.table(columns)}
    wider = {"t": sc.table({**columns, "g": "text default Qq", "h": "text default NULL"})}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (id) VALUES (1)")
        assert db.read("SELECT e, f FROM t") == [{"e": "abc", "f": "1"}]
        db = space.sqlite_database("d", tables=wider)
        assert db.read("SELECT g, h FROM t") == [{"g": "Qq", "h": None}]
        with space.transact():
            db.exec("INSERT INTO t (id) VALUES (2)")
        assert db.read("SELECT e, g, h FROM t WHERE id = 2") == [{"e": "abc", "g": "Qq", "h": None}]


def test_a_declared_table_whose_name_the_file_gives_an_index_reads_empty(store: Path) -> None:
    """R41: "a declared table not yet materialized → []". A re-declaration that drops an index
    `foo` and declares a table `foo` cannot be written (the file's index holds the name:
    `UnsupportedMigration`), but its reads failed as "no such table … queries may read only the
    declared tables", naming a declared table. It reads as declared and empty, live too."""
    first = {"t": sc.table(id="integer primary key", a="text", indexes={"foo": ["a"]})}
    second = {"t": sc.table(id="integer primary key", a="text"), "foo": sc.table(x="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=first)
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('q')")
        db = space.sqlite_database("d", tables=second)
        assert db.read("SELECT * FROM foo") == []
        assert db.read("SELECT a FROM t") == [{"a": "q"}]
        q = db.query("SELECT count(*) AS n FROM foo")
        rt.settle()
        assert (q.get().result, q.get().error) == ([{"n": 0}], None)
        refused = pytest.raises(sc.UnsupportedMigration, match=r"holds an object \(index\)")
        with refused, space.transact():
            db.exec("INSERT INTO foo (x) VALUES ('y')")
        assert db.read("SELECT * FROM foo") == []


@pytest.mark.parametrize(
    "default",
    ["1.50", "(0.10)", "1e2", "-0.0", "- 5.", "+ 1e2", "1_0e1", "(- 2.50)", "(cast(1.50 as text))"],
)
def test_a_text_columns_default_spelled_as_a_number_with_a_fraction_is_refused(
    space: Space, default: str
) -> None:
    """R13, R14: SQLite stores such a default as the number's text ('1.5') in rows written
    after the column exists, but reads it as the literal's spelling ('1.50') in rows ALTER
    TABLE … ADD COLUMN gave the column: old rows changed value at migration, and a file migrated
    by a table rebuild held the other value. Refused at declaration, naming both values;
    nothing is declared."""
    with pytest.raises(sc.SchemaError, match="write the text meant as a string") as refused:
        space.sqlite_database(
            "d", tables={"t": sc.table(id="integer primary key", price=f"text default {default}")}
        )
    assert "rows a migration adds the column to" in str(refused.value)
    with pytest.raises(sc.SqliteCellsError):
        space.sqlite_database("d", tables={"t": sc.table(price=f"varchar(9) default {default}")})


@pytest.mark.parametrize(
    "spec",
    [
        "text default '1.50'",
        "text default 1.5",
        "text default 007",
        "real default 1.50",
        "text default - 5",
    ],
)
def test_defaults_that_read_alike_either_way_are_declared(space: Space, spec: str) -> None:
    old = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
    with space.transact():
        old.exec("INSERT INTO t (id) VALUES (1)")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", price=spec)})
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (2)")  # the first write adds the column: ADD COLUMN
    (before, after) = [r["price"] for r in db.read("SELECT price FROM t ORDER BY id")]
    assert before == after


@pytest.mark.parametrize("spec", ["text default current_timestamp", "text default (lower('A'))"])
def test_a_text_default_no_column_can_be_added_with_is_declared_for_a_new_table(
    space: Space, spec: str
) -> None:
    """The check of a TEXT default that may be a number's spelling adds the column to a
    scratch table: a default ``ADD COLUMN`` refuses (not a constant) says nothing of it."""
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", v=spec)})
    with space.transact():
        db.exec("INSERT INTO t (id) VALUES (1)")
    (value,) = (r["v"] for r in db.read("SELECT v FROM t"))
    assert isinstance(value, str) and value


def test_a_write_failing_after_its_migration_says_that_the_migration_stays(store: Path) -> None:
    """R14: `migrate` commits in the database file before the write it ran for. A write that
    then failed said "the whole transaction was rolled back", while the migration (rows it
    deleted, the new version) stayed. The error says so now — of the write it ran for only."""
    v1 = {"t": sc.table(id="integer primary key", v="text not null")}
    v2 = {"t": sc.table(id="integer primary key", v="text not null", w="integer default 0")}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=v1)
        with space.transact():
            db.exec_many("INSERT INTO t (v) VALUES (?)", [[str(i)] for i in range(20)])

        def migrate(conn: object, _version: int) -> None:
            conn.execute("DELETE FROM t WHERE id > 10")  # type: ignore[attr-defined]

        db2 = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)
        with pytest.raises(sc.ExecError) as first, space.transact():
            db2.exec("INSERT INTO t (v) VALUES (NULL)")
        assert type(first.value) is sc.ExecError
        assert isinstance(first.value.__cause__, apsw.ConstraintError)
        assert str(first.value).endswith(
            "the whole transaction was rolled back, but not the migration of this database to "
            "version 2, which committed on its own before the write and stays"
        )
        assert db2.read("SELECT count(*) AS n FROM t") == [{"n": 10}]
        # No migration ran for this one.
        with pytest.raises(sc.ExecError) as second, space.transact():
            db2.exec("INSERT INTO t (v) VALUES (NULL)")
        assert str(second.value).endswith("the whole transaction was rolled back")


def test_a_bad_link_after_its_migration_says_that_the_migration_stays(store: Path) -> None:
    """As for an ExecError: a write refused for what it would store in a link column (R31) said
    "nothing was written" while the migration that ran for it stayed."""
    tables = {"t": sc.table(id="integer primary key", a_cf_link=sc.cf_link())}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (id) VALUES (1)")

        def migrate(conn: object, _version: int) -> None:
            conn.execute("DELETE FROM t")  # type: ignore[attr-defined]

        db2 = space.sqlite_database("d", tables=tables, version=2, migrate=migrate)
        with pytest.raises(sc.LinkEncodeError) as first, space.transact():
            db2.exec("INSERT INTO t (id, a_cf_link) VALUES (2, 'junk')")
        assert str(first.value).endswith(
            "nothing was written, except the migration of this database to version 2, which "
            "committed on its own before the write and stays"
        )
        assert db2.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
        with pytest.raises(sc.LinkEncodeError) as second, space.transact():
            db2.exec("INSERT INTO t (id, a_cf_link) VALUES (3, 'junk')")
        assert str(second.value).endswith("nothing was written")


DROP_V1 = """
import sys
import sqlite_cells as sc

with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", a="text")})
    with space.transact():
        db.drop()
print("dropped")
"""


def test_a_write_to_a_database_another_process_dropped_never_migrates_its_file(
    store: Path,
) -> None:
    """R14, R74: a write recorded under a declaration with `migrate`, whose database another
    process drops before it commits, is refused as dropped before `migrate` runs: the dropped
    file, kept until gc, keeps its rows and its version (the migration used to commit there
    first, deleting them, and only then was the write refused)."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('precious row')")
        path = db.path
    calls: list[int] = []

    def migrate(conn: object, from_version: int) -> None:
        calls.append(from_version)
        conn.execute("DELETE FROM t")  # type: ignore[attr-defined]

    v2 = {"t": sc.table(id=P, a="text", b="integer")}
    with sc.Runtime(store, poll_interval=30) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)
        with pytest.raises(DatabaseDropped) as info, space.transact():
            db.exec("INSERT INTO t (a) VALUES ('second')")
            child = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(DROP_V1), str(store)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert child.returncode == 0 and child.stdout.strip() == "dropped", child.stderr
        assert "was dropped" in str(info.value) and "nothing was written" in str(info.value)
    assert calls == []
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT id, a FROM t").fetchall() == [(1, "precious row")]
    finally:
        conn.close()
    assert file_version(path) == [(1,)]


def test_writes_committed_together_under_a_new_version_migrate_once(store: Path) -> None:
    """R14: transactions that commit together (a group commit) under a declaration with
    `migrate`: the first migrates, inside the commit's transaction; the others find the file at
    the declared version and write, never waiting for the file's lock the first one holds."""
    from tests.runtime.test_group_commit import commit_queued

    calls: list[int] = []

    def migrate(conn: object, from_version: int) -> None:
        calls.append(from_version)
        conn.execute("UPDATE t SET a = upper(a)")  # type: ignore[attr-defined]

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        v2 = {"t": sc.table(id=P, a="text", b="integer")}
        db2 = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)
        bodies = [
            lambda: db2.exec("INSERT INTO t (a) VALUES ('two')"),
            lambda: db2.exec("INSERT INTO t (a) VALUES ('three')"),
        ]
        outcomes, statements = commit_queued(space, bodies)
        assert outcomes == [2, 3] and statements.count("COMMIT") == 1
        assert calls == [1]
        assert db2.read("SELECT a FROM t ORDER BY id") == [
            {"a": "ONE"},
            {"a": "two"},
            {"a": "three"},
        ]
        assert file_version(db2.path) == [(2,)]


def test_a_transaction_that_conflicts_never_migrates(store: Path) -> None:
    """R14, §3: a transaction that read a cell another commit changed before it committed is
    refused as a conflict before its `migrate` runs: the file keeps its rows and version (the
    migration used to commit first and stay, under a plain ConflictError that did not say so);
    run again, it migrates once and writes."""
    calls: list[int] = []

    def migrate(conn: object, from_version: int) -> None:
        calls.append(from_version)
        conn.execute("UPDATE t SET a = upper(a)")  # type: ignore[attr-defined]

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c", default=0)
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        v2 = {"t": sc.table(id=P, a="text", b="integer")}
        db2 = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)

        def bump() -> None:
            with space.transact():
                c.set(1)

        with pytest.raises(sc.ConflictError) as info, space.transact():
            assert c.get() == 0
            db2.exec("INSERT INTO t (a) VALUES ('two')")
            thread = threading.Thread(target=bump)
            thread.start()
            thread.join()
        assert list(info.value.cell_ids) == [c.id]
        assert calls == []
        assert file_version(db.path) == [(1,)]
        assert db.read("SELECT a FROM t") == [{"a": "one"}]
        with space.transact():
            assert c.get() == 1
            db2.exec("INSERT INTO t (a) VALUES ('two')")
        assert calls == [1]
        assert db2.read("SELECT a FROM t ORDER BY id") == [{"a": "ONE"}, {"a": "two"}]


def test_a_bumped_version_without_migrate_is_asked_for_migrate_only(store: Path) -> None:
    """R13, R14: a change no write adds, declared at the file's version, is advised to bump
    version= and pass migrate=; declared with version=2 but no migrate=, the advice said the
    same though the version was bumped. It now says version=2 has no migrate= and asks for that
    alone. Nothing is written either way."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables={"t": sc.table(id=P, a="text")})
        insert(space, db, "INSERT INTO t (a) VALUES ('r1')")
        path = db.path
        changed = {"t": sc.table(id=P, a="integer")}
        same = space.sqlite_database("d", tables=changed)
        with pytest.raises(sc.UnsupportedMigration) as info:
            insert(space, same, "INSERT INTO t (a) VALUES (1)")
        assert str(info.value).endswith(
            "t.a: type TEXT → INTEGER. Bump version= and pass migrate= to change it."
        )
        bumped = space.sqlite_database("d", tables=changed, version=2)
        with pytest.raises(sc.UnsupportedMigration) as info:
            insert(space, bumped, "INSERT INTO t (a) VALUES (1)")
        message = str(info.value)
        assert info.value.differences == ("t.a: type TEXT → INTEGER",)
        assert message.endswith(
            "t.a: type TEXT → INTEGER. version=2 is declared without migrate= (the file is at "
            "version 1): pass migrate=, a function that brings the file from version 1 to the "
            "declared tables."
        )
        assert "Bump" not in message
    assert file_version(path) == [(1,)]


def test_a_write_under_a_new_version_after_one_under_the_older_is_refused_at_the_call(
    store: Path,
) -> None:
    """R14, R32: a transaction that wrote a database under its version-1 declaration, then
    declared it anew at version 2 with `migrate` and wrote it again, ran the migration (which
    commits on its own) and then failed with a ConflictError saying nothing was written. The
    second write is refused at its call now, before anything migrates; the transaction stays
    usable, and a handler's next try records both writes under the new declaration, migrates
    once and commits."""
    calls: list[int] = []

    def migrate(conn: object, from_version: int) -> None:
        calls.append(from_version)
        conn.execute("UPDATE t SET a = upper(a)")  # type: ignore[attr-defined]

    v1 = {"t": sc.table(id=P, a="text")}
    v2 = {"t": sc.table(id=P, a="text", b="integer")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v1)
        insert(space, db, "INSERT INTO t (a) VALUES ('one')")
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('two')")
            db2 = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)
            with pytest.raises(sc.ConflictError) as info:
                db2.exec("INSERT INTO t (a) VALUES ('three')")
        assert type(info.value) is sc.ConflictError and info.value.cell_ids == ()
        assert str(info.value) == (
            f"space 'demo': database 'd' ({db.id}) was declared anew at version 2, with "
            "migrate=, after this transaction wrote it under its declaration at version 1, and "
            "that write could not commit after the migration, which commits on its own before "
            "the transaction (R14); this call recorded nothing and nothing was migrated "
            "(declare the new version before the transaction first writes the database): run "
            "it again (@sc.handler does so for you)"
        )
        # The transaction stayed usable: its first write committed, under version 1.
        assert calls == []
        assert file_version(db.path) == [(1,)]
        assert db.read("SELECT a FROM t ORDER BY id") == [{"a": "one"}, {"a": "two"}]

        other = space.sqlite_database("e", tables=v1)
        insert(space, other, "INSERT INTO t (a) VALUES ('one')")
        tries: list[int] = []

        @sc.handler
        def write_both() -> None:
            tries.append(1)
            other.exec("INSERT INTO t (a) VALUES ('two')")
            again = space.sqlite_database("e", tables=v2, version=2, migrate=migrate)
            again.exec("INSERT INTO t (a) VALUES ('three')")

        write_both()
        assert len(tries) == 2 and calls == [1]
        assert file_version(other.path) == [(2,)]
        assert other.read("SELECT a, b FROM t ORDER BY id") == [
            {"a": "ONE", "b": None},
            {"a": "two", "b": None},
            {"a": "three", "b": None},
        ]

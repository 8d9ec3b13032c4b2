"""Table declarations (R10–R12): what is accepted, what is refused and why, and the DDL."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec._errors import SchemaError, SqliteCellsError
from sqlite_cells.schema._schema import (
    CfLink,
    Column,
    Schema,
    Table,
    cf_link,
    declare_tables,
    render_ddl,
    table,
)


def messages() -> Table:
    return table(
        id="integer primary key",
        body="text not null default ''",
        author_cf_link=cf_link(),
        ts="integer",
        indexes={"by_ts": ["TS"], "by_author": ["author_cf_link", "ts"]},
    )


def test_table_keeps_declaration_order_and_normalizes_indexes() -> None:
    t = messages()
    assert t.columns == (
        Column("id", "integer primary key", False),
        Column("body", "text not null default ''", False),
        Column("author_cf_link", "TEXT", True),
        Column("ts", "integer", False),
    )
    # Sorted by name; column names spelled as declared.
    assert t.indexes == (("by_author", ("author_cf_link", "ts")), ("by_ts", ("ts",)))
    assert t.column_names == ("id", "body", "author_cf_link", "ts")
    assert t.link_columns == frozenset({"author_cf_link"})
    assert t.column("BODY") == Column("body", "text not null default ''", False)
    assert t.column("nope") is None


def test_mapping_form_and_mixing_with_keywords() -> None:
    t = table({"indexes": "text", "two words": "integer"}, c="real", indexes={"i": ["two words"]})
    assert t.column_names == ("indexes", "two words", "c")
    assert t.indexes == (("i", ("two words",)),)
    assert table({"a": "text"}) == table(a="text")


def test_link_column_case_insensitive_suffix() -> None:
    t = table(Owner_CF_Link=cf_link())
    assert t.link_columns == frozenset({"owner_cf_link"})
    assert t.columns[0] == Column("Owner_CF_Link", "TEXT", True)


def test_cf_link_marker() -> None:
    assert repr(cf_link()) == "sc.cf_link()"
    assert isinstance(cf_link(), CfLink)
    assert cf_link() == CfLink()
    assert hash(cf_link()) == hash(CfLink())


def refused(make: Callable[[], object], *fragments: str) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        make()
    assert isinstance(info.value, SqliteCellsError)
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: table({"a": "text"}, A="text"), ("'A'", "declared twice")),
        (lambda: table({"a": "text", "A": "int"}), ("'A'", "declared twice")),
        (lambda: table(note_cf_link="text"), ("'note_cf_link'", "cf_link()", "R11")),
        (lambda: table(note=cf_link()), ("'note'", "_cf_link", "R11")),
        (lambda: table(_cf_x="text"), ("'_cf_x'", "reserved", "R12")),
        (lambda: table(_CF_x="text"), ("'_CF_x'", "reserved")),
        (lambda: table(SQLite_x="text"), ("'SQLite_x'", "reserved")),
        (lambda: table(a="text", indexes={"_cf_i": ["a"]}), ("'_cf_i'", "reserved")),
        (lambda: table(a="text", indexes={"sqlite_i": ["a"]}), ("'sqlite_i'", "reserved")),
        (lambda: table(), ("at least one column",)),
        (lambda: table({}, indexes={}), ("at least one column",)),
        (lambda: table({"": "text"}), ("empty",)),
        (lambda: table({"a\x00b": "text"}), ("NUL",)),
        (lambda: table(a="text\x00"), ("NUL", "'a'")),
        (lambda: table(a=""), ("'a'", "empty")),
        (lambda: table(a="   "), ("'a'", "empty")),
        (lambda: table(a=3), ("'a'", "int")),  # type: ignore[arg-type]
        (lambda: table(a=None), ("'a'", "NoneType")),  # type: ignore[arg-type]
        (lambda: table({1: "text"}), ("1", "not a string")),  # type: ignore[dict-item]
        (lambda: table(a="text", indexes={"i": ["b"]}), ("'i'", "'b'", "not a column")),
        (lambda: table(a="text", indexes={"i": []}), ("'i'", "empty")),
        (lambda: table(a="text", indexes={"i": "a"}), ("'i'", "list")),
        (lambda: table(a="text", indexes={"": ["a"]}), ("empty",)),
        (lambda: table(a="text", indexes={"i": ["a"], "I": ["a"]}), ("'I'", "twice")),
        (lambda: table(a="text", indexes=["a"]), ("indexes=",)),  # type: ignore[arg-type]
        (lambda: table(["a"]), ("mapping",)),  # type: ignore[arg-type]
        # Text that is not one column definition never reaches SQLite.
        (lambda: table(x="text); DROP TABLE x; --"), ("'x'", "single column", "')'")),
        (lambda: table(x="text, y integer"), ("'x'", "single column", "','")),
        (lambda: table(x="text; select 1"), ("'x'", "single column", "';'")),
        (lambda: table(x="text -- hidden"), ("'x'", "comment")),
        (lambda: table(x="text /* hidden */"), ("'x'", "comment")),
        (lambda: table(x="text check (x > (0)"), ("'x'", "unclosed")),
        (lambda: table(x="blah blah ("), ("'x'", "unclosed")),
    ],
)
def test_table_refuses(make: Callable[[], object], fragments: tuple[str, ...]) -> None:
    refused(make, *fragments)


def test_separators_inside_literals_and_parentheses_are_fine() -> None:
    t = table(a="text default 'x, y); --'", b="text check (b in ('p', 'q'))", c='"weird" text')
    schema = declare_tables({"t": t})
    assert schema.table("T") == t


@pytest.mark.parametrize(
    ("tables", "fragments"),
    [
        ({"_cf_t": table(a="text")}, ("'_cf_t'", "reserved")),
        ({"sqlite_t": table(a="text")}, ("'sqlite_t'", "reserved")),
        ({"": table(a="text")}, ("empty",)),
        ({"a\x00": table(a="text")}, ("NUL",)),
        ({"t": table(a="text"), "T": table(b="text")}, ("'T'", "twice")),
        ({"t": "text"}, ("'t'", "not a sc.table")),
        (
            {
                "t": table(a="text", indexes={"i": ["a"]}),
                "u": table(b="text", indexes={"I": ["b"]}),
            },
            ("'I'", "'t'", "namespace"),
        ),
        ({"t": table(a="text", indexes={"u": ["a"]}), "u": table(b="text")}, ("'u'", "namespace")),
        # SQLite judges the specs; the error names table and column.
        ({"msgs": table(id="integer", body="text not not null")}, ("'msgs'", "'body'")),
        ({"msgs": table(id="integer", body="text check")}, ("'msgs'", "'body'", "syntax error")),
        ({"msgs": table(id="integer", body="text collate")}, ("'msgs'", "'body'")),
        ({"msgs": table(id="integer", body="text default")}, ("'msgs'", "'body'")),
        ({"msgs": table(id="integer", body="text default ?")}, ("'msgs'", "'body'")),
        ({"msgs": table(id="integer", body="as (nope * 2)")}, ("'msgs'", "'body'", "nope")),
        # Only the combination is wrong: the error names the table.
        (
            {"msgs": table(a="integer primary key", b="text primary key")},
            ("'msgs'", "more than one primary key"),
        ),
        # CREATE TABLE takes them; SQLite refuses every row written (one is tried).
        (
            {"t": table(id="integer primary key", x="text as (datetime('now')) virtual")},
            ("'t'", "non-deterministic use of datetime() in a generated column", "INSERT"),
        ),
        (
            {"t": table(n="integer not null", d="text as (date('now', '+1 day')) stored")},
            ("'t'", "non-deterministic use of date() in a generated column"),
        ),
        (
            {"t": table(x="text not null check (x < datetime('now'))")},
            ("'t'", "non-deterministic use of datetime() in a CHECK constraint"),
        ),
        (
            {"t": table(a="integer", b="as (c) stored", c="as (b) stored")},
            ("'t'", "refuses every row", 'generated column loop on "c"', "depend on itself"),
        ),
        (
            {"t": table(a="integer", b="text check (b collate nosuch = b)")},
            ("'t'", "refuses every row", "no such collation sequence: nosuch", "BINARY"),
        ),
    ],
)
def test_declare_tables_refuses(tables: dict[str, Table], fragments: tuple[str, ...]) -> None:
    refused(lambda: declare_tables(tables), *fragments)


def test_tables_built_directly_are_checked_too() -> None:
    refused(
        lambda: declare_tables({"t": Table((Column("_cf_x", "text", False),), ())}),
        "table 't'",
        "'_cf_x'",
        "reserved",
    )
    refused(
        lambda: declare_tables({"t": Table((Column("a", "text ", False),), ())}),
        "table 't'",
        "sc.table",
    )
    refused(lambda: declare_tables({"t": Table((), ())}), "table 't'", "at least one column")
    refused(lambda: table(a="text", indexes=[]), "indexes=")  # type: ignore[arg-type]


def test_declare_tables_refuses_non_mapping() -> None:
    refused(lambda: declare_tables([("t", table(a="text"))]), "mapping")  # type: ignore[arg-type]


def test_columns_may_refer_to_each_other() -> None:
    t = table(a="integer", b="integer as (a * 2) stored", c="integer check (c > a)")
    assert declare_tables({"t": t}).tables == (("t", t),)


def test_schema_is_sorted_hashable_and_fingerprinted() -> None:
    one = declare_tables({"messages": messages(), "Authors": table(name="text")})
    two = declare_tables({"Authors": table(name="text"), "messages": messages()})
    assert [name for name, _ in one.tables] == ["Authors", "messages"]
    assert one == two and hash(one) == hash(two)
    assert len({one, two}) == 1
    assert one.fingerprint == two.fingerprint
    assert len(one.fingerprint) == 64 and int(one.fingerprint, 16) >= 0
    # Pinned: the fingerprint is remembered across runs, so its canonical form must not drift.
    canonical = '{"t":{"columns":[{"link":false,"name":"a","spec":"text"}],"indexes":{}}}'
    expected = hashlib.sha256(b"sqlite-cells schema v1\n" + canonical.encode()).hexdigest()
    assert expected == "192c48aada667323043dcbb81b6a566cffe06239f978e0d8421724b2c71c6f4c"
    assert declare_tables({"t": table(a="text")}).fingerprint == expected
    changed = declare_tables({"messages": messages(), "Authors": table(name="text not null")})
    assert changed.fingerprint != one.fingerprint and changed != one
    with pytest.raises(AttributeError):
        one.tables = ()  # type: ignore[misc]


def test_to_json() -> None:
    schema = declare_tables({"messages": messages()})
    assert schema.to_json() == {
        "messages": {
            "columns": [
                {"name": "id", "spec": "integer primary key", "link": False},
                {"name": "body", "spec": "text not null default ''", "link": False},
                {"name": "author_cf_link", "spec": "TEXT", "link": True},
                {"name": "ts", "spec": "integer", "link": False},
            ],
            "indexes": {"by_author": ["author_cf_link", "ts"], "by_ts": ["ts"]},
        }
    }
    assert isinstance(schema, Schema)


def test_render_ddl_and_run_it(tmp_path: Path) -> None:
    schema = declare_tables({"messages": messages(), 'odd"name': table({"a b": "text"})})
    ddl = render_ddl(schema, "main")
    assert ddl == [
        'CREATE TABLE "main"."messages" ("id" integer primary key, '
        '"body" text not null default \'\', "author_cf_link" TEXT, "ts" integer)',
        'CREATE INDEX "main"."by_author" ON "messages" ("author_cf_link", "ts")',
        'CREATE INDEX "main"."by_ts" ON "messages" ("ts")',
        'CREATE TABLE "main"."odd""name" ("a b" text)',
    ]
    conn = apsw.Connection(str(tmp_path / "db.sqlite"))
    conn.execute("ATTACH ? AS _cf_db", (str(tmp_path / "other.sqlite"),))
    for statement in render_ddl(schema, "_cf_db"):
        conn.execute(statement)
    names = conn.execute("SELECT type, name FROM _cf_db.sqlite_schema ORDER BY name").fetchall()
    assert names == [
        ("index", "by_author"),
        ("index", "by_ts"),
        ("table", "messages"),
        ("table", 'odd"name'),
    ]
    assert conn.execute("SELECT count(*) FROM main.sqlite_schema").fetchall() == [(0,)]
    conn.close()


# --- R13: names the guard would refuse in a statement are refused at declaration ---------------

GUARD_REFUSED_NAMES = [
    "_cf_log",
    "sqlite_stat1",
    "pragma_table_list",
    "PRAGMA_anything",
    "dbstat",
    "DBStat",
    "json_each",
    "JSON_TREE",
    "fts3tokenize",
    "carray",
]


@pytest.mark.parametrize("name", GUARD_REFUSED_NAMES)
def test_names_the_guard_refuses_are_refused_at_declaration(name: str) -> None:
    with pytest.raises(SchemaError, match="reserved") as table_error:
        declare_tables({name: table(a="text")})
    assert repr(name) in str(table_error.value)
    with pytest.raises(SchemaError, match="reserved"):
        table({name: "text"})
    with pytest.raises(SchemaError, match="reserved"):
        table(a="text", indexes={name: ["a"]})


def test_every_eponymous_virtual_table_of_the_library_is_refused() -> None:
    """Each module SQLite can read as a table without CREATE VIRTUAL TABLE (an eponymous
    virtual table) is a name a declaration may not take."""
    from sqlite_cells.sql import is_reserved_table

    conn = apsw.Connection(":memory:")
    modules = [row[0] for row in conn.execute("SELECT name FROM pragma_module_list")]
    modules += ["json_each", "json_tree"]  # built in, not listed
    eponymous = []
    for module in modules:
        try:
            conn.execute(f'SELECT * FROM "{module}" LIMIT 0').fetchall()
        except apsw.Error:
            continue
        eponymous.append(module)
    conn.close()
    assert "dbstat" in eponymous
    for module in eponymous:
        assert is_reserved_table(module), module
        with pytest.raises(SchemaError, match="reserved"):
            declare_tables({module: table(a="text")})


@pytest.mark.parametrize("name", ["pragma", "dbstats", "json_each_x", "my_sqlite_t", "ſqlite_x"])
def test_names_close_to_reserved_ones_are_fine(name: str) -> None:
    schema = declare_tables({name: table({name: "text"})})
    assert schema.table(name) is not None


@pytest.mark.parametrize(
    "spec",
    ["int references _cf_log(seq)", "int references sqlite_master(x)", 'int references "_CF_x"(y)'],
)
def test_a_column_spec_naming_a_reserved_table_is_refused(spec: str) -> None:
    with pytest.raises(sc.SchemaError, match="reserved name") as info:
        sc.table(x=spec)
    assert isinstance(info.value, ValueError)


def test_a_column_spec_may_call_sqlites_version_functions_and_hold_reserved_text() -> None:
    assert sc.table(a="text default (sqlite_version())", b="text default '_cf_x'") is not None


class _Name(enum.StrEnum):
    MESSAGES = "messages"
    BODY = "body"
    BY_BODY = "by_body"
    CHAT = "chat"


def test_names_given_as_a_str_subclass_name_what_their_text_names(rt: sc.Runtime) -> None:
    """A table, column or index name given as a str subclass (an enum member) was refused with a
    ValueEncodeError about cell values; as for a cell's or a database's name, it names what its
    text names (Errors, R10)."""
    space = rt.space("demo")
    tables = {_Name.MESSAGES: sc.table({_Name.BODY: "text"}, indexes={_Name.BY_BODY: [_Name.BODY]})}
    db = space.sqlite_database(_Name.CHAT, tables=tables)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('hi')")
    assert db.read("SELECT body FROM messages INDEXED BY by_body") == [{"body": "hi"}]
    plain = {"messages": sc.table(body="text", indexes={"by_body": ["body"]})}
    assert space.sqlite_database("chat", tables=plain).read("SELECT body FROM messages") == [
        {"body": "hi"}
    ]
    declared = declare_tables(tables)
    assert [type(name) for name, _ in declared.tables] == [str]
    assert [type(c.name) for c in declared.tables[0][1].columns] == [str]


class _Broken(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("boom")


def test_a_mapping_whose_own_code_raises_is_a_schema_error() -> None:
    for call in (
        lambda: declare_tables(_Broken(t=sc.table(a="text"))),
        lambda: sc.table(_Broken(a="text")),
        lambda: sc.table(a="text", indexes=_Broken(i=["a"])),
    ):
        with pytest.raises(sc.SchemaError, match="reading the mapping given raised RuntimeError"):
            call()


def test_a_column_computed_from_a_fixed_time_or_defaulting_to_now_is_fine(rt: sc.Runtime) -> None:
    """What the trial row of a declaration refuses is SQLite's refusal to compute 'now' in a
    generated column or CHECK constraint; a fixed time there, and 'now' as a default, are fine."""
    space = rt.space("s")
    db = space.sqlite_database(
        "d",
        tables={
            "t": table(
                id="integer primary key",
                fixed="text as (datetime('2020-01-01', '+1 day')) virtual",
                made="text default (datetime('now'))",
                n="integer not null check (n > 5)",
            )
        },
    )
    with space.transact():
        db.exec("INSERT INTO t (n) VALUES (6)")
    (row,) = db.read("SELECT fixed, made IS NOT NULL AS made FROM t")
    assert row == {"fixed": "2020-01-02 00:00:00", "made": 1}


def test_a_write_sqlite_refuses_for_a_now_in_a_check_blames_the_declaration(
    rt: sc.Runtime,
) -> None:
    """A CHECK that computes 'now' only for some rows passes the declaration's trial row; the
    write SQLite then refuses says the table's declaration is at fault, not the statement."""
    space = rt.space("s")
    db = space.sqlite_database(
        "d", tables={"t": table(x="text check (x IS NULL OR x < datetime())")}
    )
    with space.transact():
        db.exec("INSERT INTO t (x) VALUES (NULL)")
    with pytest.raises(sc.ExecError) as raised, space.transact():
        db.exec("INSERT INTO t (x) VALUES ('a')")
    assert "non-deterministic use of datetime() in a CHECK constraint" in str(raised.value)
    assert "the table's declaration is at fault, not the statement" in str(raised.value)
    assert "correct the statement" not in str(raised.value)
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]

"""The SQL front end against a differential fuzzer (R20–R24, R31, R35, R36, R43, R44).

Statements are built from a grammar of fragments (SELECT, VALUES, WITH, INSERT, REPLACE, UPDATE,
DELETE, upserts, RETURNING, subqueries, joins, table-valued and JSON functions, window
functions, CASE, CAST, COLLATE), with comments and odd whitespace between any two tokens, names
in every quoting and case, schema prefixes, and names drawn from the user's tables and from the
runtime's and SQLite's own (``_cf_*``, ``sqlite_*``, the ``_cf_db`` alias of the write
connection, ``pragma_*``, the forbidden functions).  Each fragment that the SPEC says the guard
must refuse carries the kind it must be refused with, so every statement knows its verdict.

Properties, each on real files:

1. Safety: whatever runs through ``db.read``/``db.query``/``db.exec`` reads and changes only the
   declared tables — the runtime's tables of both files are unchanged by a read, and a write
   changes them only by its own bookkeeping — and every error is a ``SqliteCellsError``.
2. No false refusals: a statement of the user's tables that plain SQLite runs on a copy of the
   file is not refused by the guard, and gives the rows (or the table contents) SQLite gives.
3. Guard and authorizer agree: a statement the guard refuses for reaching the runtime's or
   SQLite's own objects is refused by the authorizer alone too, on a pooled reader and on the
   space's write connection with the database file attached.
4. ``GuardViolation`` has the kind of the leftmost refused fragment and its offset points at it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import apsw.ext
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import ALIAS, attach
from sqlite_cells.sql import USER_PREPARE_FLAGS, Gate
from sqlite_cells.sql._authorizer import make_authorizer
from sqlite_cells.sql._guard import Mode, check_statement
from sqlite_cells.sql._statement import scan_sql

# --- the store the statements run against ------------------------------------------------------

TABLES = {
    "items": sc.table(
        id="integer primary key",
        name="text",
        qty="integer default 0",
        owner_cf_link=sc.cf_link(),
        indexes={"by_qty": ["qty"]},
    ),
    "tags": sc.table(item_id="integer", tag="text", indexes={"by_tag": ["tag"]}),
    "ones": sc.table(v="integer"),
}
COLUMNS = {
    "items": ("id", "name", "qty", "owner_cf_link"),
    "tags": ("item_id", "tag"),
    "ones": ("v",),
}
# What a write may store in each table's columns (never a link: R31 is not this file's subject).
WRITABLE = {"items": ("name", "qty"), "tags": ("item_id", "tag"), "ones": ("v", "v")}
SEED = [
    "INSERT INTO items(name, qty) VALUES ('apple', 3), ('Banana', 0), ('cherry', -2), (NULL, 7)",
    "INSERT INTO tags(item_id, tag) VALUES (1, 'red'), (1, 'fruit'), (2, 'yellow'), (9, NULL)",
    "INSERT INTO ones(v) VALUES (1), (3), (NULL)",
]


@dataclass
class Store:
    rt: sc.Runtime
    space: Space
    db: sc.SqliteDb

    @property
    def files(self) -> tuple[Path, Path]:
        return (self.space.file.path, self.db.path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with sc.Runtime(tmp_path_factory.mktemp("store"), poll_interval=0.01) as rt:
        space = rt.space("fuzz")
        db = space.sqlite_database("shop", tables=TABLES)
        owner = space.cell("owner", default=None)
        with space.transact():
            owner.set({"who": "ann"})
            for sql in SEED:
                db.exec(sql)
            db.exec("UPDATE items SET owner_cf_link = ? WHERE id = 1", [owner])
        yield Store(rt, space, db)


def open_plain(path: Path) -> apsw.Connection:
    return apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)


def table_contents(conn: apsw.Connection, *, internal: bool) -> dict[str, list[str]]:
    """Each table's rows (sorted reprs): the runtime's and SQLite's (``internal``) or the user's."""
    names = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
        ).fetchall()
    ]
    chosen = [n for n in names if (n.startswith(("_cf_", "sqlite_")) == internal)]
    contents = {}
    for name in chosen:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")').fetchall()]
        # typeof and hex: stored text need not be valid UTF-8 (CAST(X'ff' AS TEXT))
        shown = " || ',' || ".join(f'typeof("{c}") || \':\' || hex("{c}")' for c in columns)
        rows = conn.execute(f'SELECT {shown} FROM "{name}"').fetchall()
        contents[name] = sorted(row[0] if internal else _as_written(row[0]) for row in rows)
    return contents


def _as_written(row: str) -> str:
    """A user row as the runtime writes it: a long call's (``replace``, ``trim``, …) text result
    that is not valid UTF-8 (a blob argument's bytes) is stored as a blob of the same bytes,
    where SQLite alone stores text (docs/decisions.md, "A long call's result that is not
    UTF-8"). Such text counts as that blob on both sides; valid text stays text."""
    values = []
    for value in row.split(","):
        kind, _, hexed = value.partition(":")
        if kind == "text":
            try:
                bytes.fromhex(hexed).decode("utf-8")
            except UnicodeDecodeError:
                kind = "blob"
        values.append(f"{kind}:{hexed}")
    return ",".join(values)


def schema_of(conn: apsw.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"
    ).fetchall()


def internal_state(store: Store) -> dict[str, Any]:
    """The schema and the runtime's tables of the space file and of the database file."""
    state: dict[str, Any] = {}
    for label, path in zip(("space", "db"), store.files, strict=True):
        conn = open_plain(path)
        try:
            state[label] = (schema_of(conn), table_contents(conn, internal=True))
        finally:
            conn.close()
    return state


def user_state(store: Store) -> dict[str, list[str]]:
    conn = open_plain(store.db.path)
    try:
        return table_contents(conn, internal=False)
    finally:
        conn.close()


def plain_copy(store: Store) -> apsw.Connection:
    """A plain in-memory copy of the database file, as SQLite alone sees it (a statement on it
    is interrupted after the runtime's own query timeout)."""
    source = open_plain(store.db.path)
    copy = apsw.Connection(":memory:")
    try:
        with copy.backup("main", source, "main") as backup:
            backup.step()
    finally:
        source.close()
    deadline = time.monotonic() + 5.0
    copy.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    return copy


def keep_small(store: Store) -> None:
    """Writes add rows: keep each table small, so every statement stays fast."""
    for table in COLUMNS:
        (count,) = store.db.read(f"SELECT count(*) AS n FROM {table}")[0].values()
        if count > 60:
            with store.space.transact():
                store.db.exec(f"DELETE FROM {table} WHERE rowid NOT IN "
                              f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT 20)")  # fmt: skip


# --- the grammar -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One token of a generated statement; ``kind`` is the GuardViolation kind the SPEC says the
    guard must refuse it with (None: the token is fine), ``reaches`` says whether it names an
    object of SQLite or the runtime (so the authorizer alone must refuse it too)."""

    text: str
    kind: str | None = None
    reaches: bool = False
    verb: bool = False  # the statement's main verb (where a verdict on its kind points)


Parts = list[Part]
Draw = Callable[..., Any]


def w(*texts: str) -> Parts:
    return [Part(t) for t in texts]


SEPARATORS = st.sampled_from(
    [" ", " ", " ", "  ", "\n", "\t", "\r\n", "\f", "/**/", "/* _cf_log; ATTACH 'x' AS y */",
     "-- sqlite_master ; DROP\n", " /* main.items */ "]
)  # fmt: skip


def mixed_case(draw: Draw, word: str) -> str:
    how = draw(st.sampled_from(["same", "lower", "upper", "alternate"]))
    if how == "lower":
        return word.lower()
    if how == "upper":
        return word.upper()
    if how == "alternate":
        return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(word))
    return word


def quoted(draw: Draw, name: str, *, string_ok: bool) -> str:
    """``name`` in one of the quotings SQLite reads as a name there."""
    name = mixed_case(draw, name)
    styles = ["plain", "plain", "double", "bracket", "backtick"] + (["single"] if string_ok else [])
    style = draw(st.sampled_from(styles))
    return {
        "plain": name,
        "double": f'"{name}"',
        "bracket": f"[{name}]",
        "backtick": f"`{name}`",
        "single": f"'{name}'",
    }[style]


def kw(draw: Draw, *words: str) -> Parts:
    return [Part(mixed_case(draw, word)) for word in words]


def main_verb(parts: Parts) -> Parts:
    """``parts`` with its first part marked as the statement's main verb."""
    return [Part(parts[0].text, verb=True), *parts[1:]]


INTERNAL_TABLES = [
    "_cf_log", "_cf_cells", "_cf_meta", "_cf_watermark", "_cf_changes", "_cf_named",
    "sqlite_master", "sqlite_schema", "sqlite_temp_master",
]  # fmt: skip
DATABASES = ["main", "temp", ALIAS]


@dataclass
class Scope:
    """The table a clause's columns come from (its name as written, or its alias)."""

    table: str
    ref: str | None  # how to qualify its columns, None: leave them unqualified


@st.composite
def table_ref(
    draw: Draw, table: str, *, hostile: bool, string_ok: bool = True, in_from: bool = True
) -> Parts:
    """A reference to the user table ``table`` (or, when hostile, something worse in its place);
    ``in_from``: an item of a FROM clause that no alias follows (a list, INDEXED BY may stand)."""
    if hostile:
        choice = draw(
            st.sampled_from(["schema", "internal", "internal-schema", "pragma", "dbstat", "list"])
        )
        if (
            choice == "list" and in_from
        ):  # an item of a parenthesised FROM list is a name, quoted or not
            name = quoted(draw, draw(st.sampled_from(INTERNAL_TABLES)), string_ok=string_ok)
            return [Part("("), Part(quoted(draw, table, string_ok=string_ok)), Part(","),
                    Part(name, "reserved-name", reaches=True), Part(")")]  # fmt: skip
        if choice == "schema":
            schema = quoted(draw, draw(st.sampled_from(DATABASES)), string_ok=string_ok)
            dot = draw(st.sampled_from([".", " . ", "/**/./**/"]))
            return [
                Part(schema, "schema-qualified"),
                Part(dot),
                Part(quoted(draw, table, string_ok=string_ok)),
            ]
        if choice in ("internal", "internal-schema"):
            name = quoted(draw, draw(st.sampled_from(INTERNAL_TABLES)), string_ok=string_ok)
            if choice == "internal-schema":
                schema = quoted(draw, draw(st.sampled_from(DATABASES)), string_ok=string_ok)
                return [Part(schema, "schema-qualified", reaches=True), Part("."), Part(name)]
            return [Part(name, "reserved-name", reaches=True)]
        if choice == "pragma":
            fn = draw(
                st.sampled_from(["pragma_table_list", "pragma_table_info", "pragma_database_list"])
            )
            args = "('_cf_log')" if fn == "pragma_table_info" else "()"
            name = quoted(draw, fn, string_ok=string_ok)  # 'pragma_table_list'() is a call too
            return [Part(name, "forbidden-function", reaches=True), Part(args)]
        return [Part(quoted(draw, "dbstat", string_ok=False), "forbidden-function", reaches=True)]
    name = [Part(quoted(draw, table, string_ok=string_ok))]
    shape = draw(st.sampled_from(["plain", "plain", "plain", "indexed", "not-indexed", "list"]))
    if not in_from:
        return name
    if shape == "not-indexed":
        return [*name, *kw(draw, "NOT", "INDEXED")]
    if shape == "indexed" and table == "items":
        return [*name, *kw(draw, "INDEXED", "BY"), Part("by_qty")]
    if shape == "list" and string_ok:
        return [Part("("), *name, Part(")")]
    return name


CLEAN_FUNCTIONS = [
    ("abs", 1), ("length", 1), ("upper", 1), ("lower", 1), ("typeof", 1), ("quote", 1),
    ("coalesce", 2), ("ifnull", 2), ("nullif", 2), ("max", 2), ("min", 2), ("instr", 2),
    ("substr", 3), ("iif", 3), ("replace", 3), ("json_quote", 1), ("json_array", 2),
    ("json_type", 1), ("hex", 1), ("trim", 1), ("round", 1), ("unicode", 1),
]  # fmt: skip
HOSTILE_CALLS = [
    ("load_extension", "('/tmp/x.so')", "forbidden-function"),
    ("readfile", "('/etc/hostname')", "forbidden-function"),
    ("writefile", "('/tmp/cf-fuzz-x', 'y')", "forbidden-function"),
    ("edit", "('a')", "forbidden-function"),
    ("fts3_tokenizer", "('simple')", "forbidden-function"),
    ("changes", "()", "forbidden-function"),
    ("total_changes", "()", "forbidden-function"),
    ("sqlite_log", "(1, 'x')", "reserved-name"),
    ("sqlite_offset", "(1)", "reserved-name"),
    ("_cf_json_extract", "('{}', '$.a', '$.b')", "reserved-name"),
]
LITERALS = ["1", "0", "-2", "2.5", "'é😀'", "1_000", ".5", "'a\\'", "'apple'", "'it''s'", "NULL",
            "X'00ff'", "'_cf_log'", "'main.items'", "'sqlite_master'", "1e3", "0x10",
            "'{\"a\":[1,2]}'", "''"]  # fmt: skip


@st.composite
def expr(draw: Draw, scope: Scope, *, hostile: bool, depth: int = 2) -> Parts:
    """An expression over ``scope``'s columns; when ``hostile``, one refused fragment inside."""
    if hostile:
        where = draw(st.sampled_from(["call", "column", "subquery", "three-part", "in"]))
        if where == "in":  # a string literal after IN is a name
            name = quoted(draw, draw(st.sampled_from(INTERNAL_TABLES)), string_ok=True)
            return [Part("1"), *kw(draw, "IN"), Part(name, "reserved-name", reaches=True)]
        if where == "call":
            name, args, kind = draw(st.sampled_from(HOSTILE_CALLS))
            # The runtime's _cf_json_* functions compute what json_* do (a write's JSON calls
            # are rewritten to them after the guard): the authorizer lets them run.
            reaches = not name.startswith("_cf_json_")
            return [Part(mixed_case(draw, name), kind, reaches=reaches), Part(args)]
        if where == "column":
            return [Part(quoted(draw, "_cf_secret", string_ok=False), "reserved-name")]
        if where == "three-part":
            first = quoted(draw, draw(st.sampled_from(["items", "x", *DATABASES])), string_ok=False)
            return [Part(first, "schema-qualified"), *w(".", scope.table or "items", ".", "qty")]
        inner = draw(table_ref(scope.table or "items", hostile=True))
        return [*w("(", "SELECT", "count", "(", "*", ")", "FROM"), *inner, Part(")")]
    columns = COLUMNS.get(scope.table, ())
    options = ["literal", "column", "column"] if columns else ["literal"]
    if depth > 0:
        options += ["call", "binary", "case", "cast", "collate", "subquery", "in", "json",
                    "paren", "version"] + (["window"] if columns else [])  # fmt: skip
    choice = draw(st.sampled_from(options))
    sub = lambda: draw(expr(scope, hostile=False, depth=depth - 1))  # noqa: E731 -- a local shorthand
    if choice == "literal":
        return [Part(draw(st.sampled_from(LITERALS)))]
    if choice == "column":
        column = quoted(draw, draw(st.sampled_from(columns)), string_ok=False)
        if scope.ref is not None and draw(st.booleans()):
            # R21: a name of a database before a dot is refused, even where it is an alias
            refused = "schema-qualified" if scope.ref.lower() in ("main", "temp") else None
            return [Part(scope.ref, refused), Part("."), Part(column)]
        return [Part(column)]
    if choice == "call":
        name, arity = draw(st.sampled_from(CLEAN_FUNCTIONS))
        parts = [Part(mixed_case(draw, name)), Part("(")]
        for i in range(arity):
            if i:
                parts.append(Part(","))
            parts += sub()
        return [*parts, Part(")")]
    if choice == "binary":
        op = draw(
            st.sampled_from(
                ["+", "-", "*", "||", "=", "<", ">=", "<>", "AND", "OR", "IS", "IS NOT"]
            )
        )
        return [*sub(), *w(*op.split()), *sub()]
    if choice == "case":
        return [
            *kw(draw, "CASE", "WHEN"),
            *sub(),
            *kw(draw, "THEN"),
            *sub(),
            *kw(draw, "ELSE"),
            *sub(),
            *kw(draw, "END"),
        ]
    if choice == "cast":
        to = draw(st.sampled_from(["INTEGER", "TEXT", "REAL", "NUMERIC", "BLOB"]))
        return [*kw(draw, "CAST"), Part("("), *sub(), *kw(draw, "AS", to), Part(")")]
    if choice == "collate":
        return [*sub(), *kw(draw, "COLLATE", draw(st.sampled_from(["NOCASE", "BINARY", "RTRIM"])))]
    if choice == "subquery":
        other = draw(st.sampled_from(sorted(COLUMNS)))
        return [*w("(", "SELECT"), *kw(draw, "count"), *w("(", "*", ")"), *kw(draw, "FROM"),
                *draw(table_ref(other, hostile=False)), Part(")")]  # fmt: skip
    if choice == "in":
        how = draw(st.sampled_from(["list", "table", "select"]))
        if how == "list":
            return [*sub(), *kw(draw, "IN"), *w("(", "1", ",", "'apple'", ",", "NULL", ")")]
        if how == "table":
            return [*sub(), *kw(draw, "NOT", "IN"), Part(quoted(draw, "ones", string_ok=True))]
        return [*sub(), *kw(draw, "IN"), *w("(", "SELECT", "item_id", "FROM"),
                *draw(table_ref("tags", hostile=False)), Part(")")]  # fmt: skip
    if choice == "json":
        path = draw(st.sampled_from(["'$.a'", "'$.a[1]'", "'$'", "'$.b'"]))
        fn = draw(st.sampled_from(["json_extract", "json_valid", "json_type", "->>"]))
        doc = '\'{"a":[1,2],"b":"x"}\''
        if fn == "->>":
            return [Part(doc), Part("->>"), Part(path)]
        if fn == "json_valid":
            return [Part(mixed_case(draw, fn)), Part("("), *sub(), Part(")")]
        return [Part(mixed_case(draw, fn)), *w("(", doc, ",", path, ")")]
    if choice == "window":
        column = draw(st.sampled_from(columns))
        calls = [["row_number", "(", ")"], ["sum", "(", column, ")"], ["count", "(", "*", ")"],
                 ["lag", "(", column, ")"]]  # fmt: skip
        fn = draw(st.sampled_from(calls))
        return [
            *w(*fn),
            *kw(draw, "OVER"),
            Part("("),
            *kw(draw, "ORDER", "BY"),
            Part(column),
            Part(")"),
        ]
    if choice == "version":
        return [Part(mixed_case(draw, "sqlite_version")), Part("()")]
    return [Part("("), *sub(), Part(")")]


@st.composite
def select(draw: Draw, *, hostile: bool, table: str | None = None) -> Parts:
    """A SELECT over a user table; ``hostile``: exactly one refused fragment somewhere."""
    table = table or draw(st.sampled_from(sorted(COLUMNS)))
    alias = draw(st.sampled_from([None, None, "t", "temp", "x1"]))
    ref = alias or table
    scope = Scope(table, ref if draw(st.booleans()) else None)
    spots = ["columns", "from", "where", "order", "alias", "join"]
    spot = draw(st.sampled_from(spots)) if hostile else None
    parts = main_verb(kw(draw, "SELECT"))
    if draw(st.booleans()):
        parts += kw(draw, "DISTINCT")
    n = draw(st.integers(1, 3))
    for i in range(n):
        if i:
            parts.append(Part(","))
        parts += draw(expr(scope, hostile=spot == "columns" and i == n - 1))
        if draw(st.booleans()):
            if spot == "alias" and i == 0:
                parts += [
                    *kw(draw, "AS"),
                    Part(quoted(draw, "sqlite_alias", string_ok=False), "reserved-name"),
                ]
            else:
                parts += [*kw(draw, "AS"), Part(quoted(draw, f"c{i}", string_ok=True))]
        elif spot == "alias" and i == 0:
            parts += [
                *kw(draw, "AS"),
                Part(quoted(draw, "_cf_alias", string_ok=False), "reserved-name"),
            ]
    parts += kw(draw, "FROM")
    parts += draw(table_ref(table, hostile=spot == "from", in_from=alias is None))
    if alias is not None:
        if draw(st.booleans()):
            parts += kw(draw, "AS")
        parts.append(Part(alias))
    if spot == "join" or draw(st.integers(0, 4)) == 0:
        other = "tags" if table == "items" else "items"
        join = draw(st.sampled_from(["JOIN", "LEFT JOIN", "CROSS JOIN", ","]))
        parts += [Part(join)] if join == "," else kw(draw, *join.split())
        if draw(st.booleans()) and spot != "join":
            parts += [*w("json_each", "(", "'[1,2,3]'", ")")]
        else:
            # the join's ON clause (commas inside calls) before a further FROM item
            parts += draw(table_ref(other, hostile=False))
            if join in ("JOIN", "LEFT JOIN"):
                parts += [*kw(draw, "ON"), *draw(expr(Scope(other, None), hostile=False))]
            if spot == "join":
                parts += [Part(","), *draw(table_ref("ones", hostile=True))]
    if spot == "where" or draw(st.booleans()):
        parts += [*kw(draw, "WHERE"), *draw(expr(scope, hostile=spot == "where"))]
    if draw(st.booleans()):
        parts += [*kw(draw, "GROUP", "BY"), Part(COLUMNS[table][0])]
    if spot == "order" or draw(st.booleans()):
        parts += [*kw(draw, "ORDER", "BY"), *draw(expr(scope, hostile=spot == "order"))]
        parts += kw(draw, draw(st.sampled_from(["ASC", "DESC", "NULLS FIRST"])))
    if draw(st.booleans()):
        parts += [*kw(draw, "LIMIT"), Part(str(draw(st.integers(0, 5))))]
    return parts


@st.composite
def read_statement(draw: Draw, *, hostile: bool) -> Parts:
    shape = draw(st.sampled_from(["select", "select", "with", "values", "bare"]))
    if shape == "values":
        rows = draw(st.integers(1, 3))
        parts = main_verb(kw(draw, "VALUES"))
        for r in range(rows):
            parts += [Part(",")] if r else []
            parts += [
                Part("("),
                Part(draw(st.sampled_from(LITERALS))),
                Part(","),
                Part(str(r)),
                Part(")"),
            ]
        if hostile:  # VALUES has no place for a name: append a hostile UNION
            union = draw(select(hostile=True))
            parts += [*kw(draw, "UNION", "ALL"), Part(union[0].text), *union[1:]]
        return parts
    if shape == "bare":
        scope = Scope("", None)
        parts = main_verb(kw(draw, "SELECT"))
        parts += (
            draw(expr(scope, hostile=False, depth=1))
            if not hostile
            else draw(expr(scope, hostile=True))
        )
        return parts
    if shape == "with":
        name_hostile = hostile and draw(st.booleans())
        cte = (
            Part(quoted(draw, "_cf_cte", string_ok=False), "reserved-name")
            if name_hostile
            else Part(
                quoted(draw, draw(st.sampled_from(["recent", "temp", "edit"])), string_ok=False)
            )
        )
        table = draw(st.sampled_from(sorted(COLUMNS)))
        parts = [*kw(draw, "WITH"), cte, *kw(draw, "AS"), Part("(")]
        body = draw(select(hostile=hostile and not name_hostile, table=table))
        parts += [Part(body[0].text), *body[1:]]  # the CTE's SELECT is not the main verb
        parts += [Part(")"), *main_verb(kw(draw, "SELECT")), Part("*"), *kw(draw, "FROM"),
                  Part(cte.text)]  # fmt: skip
        return parts
    return draw(select(hostile=hostile))


@st.composite
def write_statement(draw: Draw, *, hostile: bool) -> Parts:
    table = draw(st.sampled_from(sorted(COLUMNS)))
    scope = Scope(table, None)
    shape = draw(st.sampled_from(["insert", "insert-select", "upsert", "update", "delete", "with"]))
    spot = draw(st.sampled_from(["target", "body", "returning"])) if hostile else None
    target = draw(table_ref(table, hostile=spot == "target", in_from=False))
    cols = WRITABLE[table]
    if shape in ("insert", "insert-select", "upsert"):
        verb = draw(
            st.sampled_from(
                [["INSERT"], ["INSERT", "OR", "IGNORE"], ["REPLACE"], ["INSERT", "OR", "REPLACE"]]
            )
        )
        if shape == "upsert":
            verb = ["INSERT"]
        parts = [*main_verb(kw(draw, *verb)), *kw(draw, "INTO"), *target]
        parts += [Part("("), Part(cols[0]), Part(","), Part(cols[1]), Part(")")]
        if shape == "insert-select":
            source = Scope(draw(st.sampled_from(sorted(COLUMNS))), None)
            parts += [*kw(draw, "SELECT"), *draw(expr(source, hostile=spot == "body")), Part(","),
                      *draw(expr(source, hostile=False)), *kw(draw, "FROM"),
                      *draw(table_ref(source.table, hostile=False, string_ok=False))]  # fmt: skip
            parts += [
                *kw(draw, "WHERE"),
                *draw(expr(source, hostile=False)),
                *kw(draw, "LIMIT"),
                Part("2"),
            ]  # fmt: skip  (bounded: the tables must not double each time)
        else:
            parts += [*kw(draw, "VALUES"), Part("(")]
            parts += draw(expr(Scope("", None), hostile=spot == "body", depth=1))
            parts += [Part(","), *draw(expr(Scope("", None), hostile=False, depth=1)), Part(")")]
        if shape == "upsert":
            conflict = "id" if table == "items" else None
            if conflict is None:
                parts += kw(draw, "ON", "CONFLICT", "DO", "NOTHING")
            else:
                parts += [*kw(draw, "ON", "CONFLICT"), *w("(", "id", ")")]
                parts += [*kw(draw, "DO", "UPDATE", "SET"), *w("qty", "=", "qty", "+", "1")]
    elif shape == "update":
        parts = [
            *main_verb(kw(draw, "UPDATE")),
            *(kw(draw, "OR", "IGNORE") if draw(st.booleans()) else []),
            *target,
        ]
        parts += [*kw(draw, "SET"), Part(quoted(draw, cols[1], string_ok=False)), Part("=")]
        parts += draw(expr(scope, hostile=spot == "body"))
        if draw(st.booleans()):
            parts += [*kw(draw, "WHERE"), *draw(expr(scope, hostile=False))]
    elif shape == "delete":
        parts = [
            *main_verb(kw(draw, "DELETE", "FROM")),
            *target,
            *kw(draw, "WHERE"),
            *draw(expr(scope, hostile=spot == "body")),
        ]
    else:
        parts = [*kw(draw, "WITH"), Part("gone"), *kw(draw, "AS"), Part("(")]
        parts += [*kw(draw, "SELECT"), Part(COLUMNS[table][0]), *kw(draw, "FROM"),
                  *draw(table_ref(table, hostile=False)), *kw(draw, "WHERE"),
                  *draw(expr(scope, hostile=spot == "body"))]  # fmt: skip
        parts += [Part(")"), *main_verb(kw(draw, "DELETE", "FROM")), *target, *kw(draw, "WHERE"),
                  Part(COLUMNS[table][0]), *kw(draw, "IN"), Part("gone")]  # fmt: skip
    if spot == "returning" or (not hostile and draw(st.integers(0, 9)) == 0):
        parts += [Part(mixed_case(draw, "RETURNING"), "returning"), Part("*")]
    return parts


@dataclass(frozen=True)
class Generated:
    sql: str
    mode: Mode
    expected: tuple[str, int, str] | None  # (kind, offset, token) the guard must refuse it with
    reaches: bool  # it names an object of SQLite or the runtime
    verb: int  # the offset of the main verb


@st.composite
def statements(draw: Draw, *, hostile: bool | None = None, mode: Mode | None = None) -> Generated:
    mode = mode or draw(st.sampled_from(Mode))
    hostile = draw(st.integers(0, 2)) == 0 if hostile is None else hostile
    parts = draw(
        read_statement(hostile=hostile) if mode is Mode.READ else write_statement(hostile=hostile)
    )
    text, expected, reaches, verb = "", None, False, -1
    lead = draw(st.sampled_from(["", "", " ", "\n", "/* lead */ ", "-- x\n"]))
    text = lead
    for i, part in enumerate(parts):
        if i:
            separator = draw(SEPARATORS)
            # A "--" comment right after a "-" would start one dash early, where the "-" is.
            text += " " + separator if text.endswith("-") else separator
        if part.kind is not None and expected is None:
            expected = (part.kind, len(text), part.text)
        reaches = reaches or part.reaches
        if part.verb:
            verb = len(text)
        text += part.text
    text += draw(st.sampled_from(["", "", ";", " ; -- end", "\n"]))
    assert verb >= 0, parts
    return Generated(text, mode, expected, reaches, verb)


# --- how each statement is run -----------------------------------------------------------------


def plain_run(conn: apsw.Connection, sql: str) -> tuple[list[tuple[Any, ...]], list[str]] | None:
    """Rows and column names SQLite alone gives for ``sql`` (None: SQLite refuses it)."""
    try:
        cursor = conn.cursor()
        rows, names = [], []
        for row in cursor.execute(sql):
            if not rows:
                names = [d[0] for d in cursor.getdescription()]
            rows.append(row)
    except (apsw.Error, ValueError, UnicodeError):
        return None
    return rows, names


def as_dicts(result: tuple[list[tuple[Any, ...]], list[str]]) -> list[str]:
    rows, names = result
    return sorted(repr(sorted(dict(zip(names, row, strict=True)).items())) for row in rows)


def rows_seen(rows: list[Any]) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in rows)


def check_guard_verdict(generated: Generated) -> sc.GuardViolation | None:
    """Property 4 (and the verdict the grammar promises): kind and offset of the refusal."""
    try:
        check_statement(generated.sql, generated.mode)
    except sc.GuardViolation as violation:
        if generated.expected is not None:
            kind, offset, _token = generated.expected
            assert (violation.kind, violation.offset) == (kind, offset), (generated, violation)
        assert violation.sql == generated.sql
        return violation
    assert generated.expected is None, generated
    return None


# Refusals of statements plain SQLite runs that the SPEC or docs/decisions.md name (not the
# guard's): text that is not UTF-8 is never stored (decisions: "An UPDATE that stores text that
# is not UTF-8 …").
DOCUMENTED_REFUSALS = ("not valid UTF-8",)


def assert_documented_refusal(generated: Generated, error: sc.SqliteCellsError) -> None:
    assert not isinstance(error, sc.GuardViolation), (generated, error)
    if not any(reason in str(error) for reason in DOCUMENTED_REFUSALS):
        pytest.fail(f"{generated.sql!r}: SQLite runs it, the runtime refused {error!r}")


def run_read(store: Store, generated: Generated, *, live: bool) -> None:
    """Properties 1 and 2 for a read through db.read (or db.query)."""
    before = internal_state(store)
    copy = plain_copy(store)
    try:
        plain = plain_run(copy, generated.sql)
    finally:
        copy.close()
    try:
        if live:
            query = store.db.query(generated.sql, react_on=None)
            store.rt.settle(timeout=30)
            state = query.get()
            if state.error is not None:
                raise state.error
            rows = state.result
        else:
            rows = store.db.read(generated.sql)
    except sc.SqliteCellsError as error:
        if generated.expected is None and plain is not None:
            assert_documented_refusal(generated, error)
    else:
        assert generated.expected is None, generated
        assert plain is not None, f"{generated.sql!r} ran, but SQLite alone refuses it"
        assert rows_seen(rows) == as_dicts(plain), generated.sql
    assert internal_state(store) == before, generated.sql


def run_write(store: Store, generated: Generated) -> None:
    """Properties 1 and 2 for a write through db.exec (committed)."""
    keep_small(store)
    before, users_before = internal_state(store), user_state(store)
    copy = plain_copy(store)
    try:
        ok = plain_run(copy, generated.sql) is not None
        expected_users = table_contents(copy, internal=False)
    finally:
        copy.close()
    try:
        with store.space.transact():
            store.db.exec(generated.sql)
    except sc.SqliteCellsError as error:
        if generated.expected is None and ok:
            assert_documented_refusal(generated, error)
        assert internal_state(store) == before, generated.sql
        assert user_state(store) == users_before, generated.sql
        return
    assert generated.expected is None, generated
    assert ok, f"{generated.sql!r} committed, but SQLite alone refuses it"
    assert user_state(store) == expected_users, generated.sql
    assert_only_bookkeeping(before, internal_state(store), store)


JOURNALS = ("_cf_log", "_cf_changes", "_cf_op_index", "_cf_named")  # grow; compaction prunes
COMPACTED = "text:" + b"compacted".hex().upper()


def assert_only_bookkeeping(before: dict[str, Any], after: dict[str, Any], store: Store) -> None:
    """A committed write changed the runtime's tables only as a commit does: the journals
    moved, the handle cell and the watermark changed by one row, the compaction point moved;
    nothing else. The changesets the database file now journals touch the user's tables only."""
    for label in ("space", "db"):
        schema_before, tables_before = before[label]
        schema_after, tables_after = after[label]
        assert schema_after == schema_before, label
        assert set(tables_after) == set(tables_before), label
        for name, rows in tables_before.items():
            now = tables_after[name]
            if name in JOURNALS:
                continue
            if name in ("_cf_watermark", "_cf_cells"):
                assert len(set(now) - set(rows)) <= 1, (label, name)
            elif name == "_cf_meta":
                kept = [row for row in now if not row.startswith(COMPACTED)]
                assert kept == [row for row in rows if not row.startswith(COMPACTED)], label
            else:
                assert now == rows, (label, name)
    conn = open_plain(store.db.path)
    try:
        for (changeset,) in conn.execute("SELECT changeset FROM _cf_changes").fetchall():
            for change in apsw.Changeset.iter(changeset):
                assert change.name in COLUMNS, change.name
    finally:
        conn.close()


# --- the properties ----------------------------------------------------------------------------

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FAST
@given(generated=statements())
def test_guard_verdict_kind_and_offset(generated: Generated) -> None:
    violation = check_guard_verdict(generated)
    if violation is not None and generated.expected is not None:
        token = generated.sql[violation.offset :].lstrip("\"'[`").lower()
        name = generated.expected[2].strip("\"'[]`").lower()
        assert token.startswith(name), (generated, violation)


@FAST
@given(generated=statements())
def test_a_statement_of_the_other_kind_is_refused_at_its_verb(generated: Generated) -> None:
    """R22/R24: a write through a read (or a read through exec) is refused at the statement's
    first keyword — its main verb, or the WITH before it — whatever else is wrong with it
    further on."""
    other = Mode.WRITE if generated.mode is Mode.READ else Mode.READ
    with pytest.raises(sc.GuardViolation) as caught:
        check_statement(generated.sql, other)
    kind = "not-a-write" if other is Mode.WRITE else "not-read-only"
    first = scan_sql(generated.sql).tokens[0][2]
    assert first <= generated.verb
    assert (caught.value.kind, caught.value.offset) == (kind, first), generated


@settings(FAST, max_examples=400)
@given(generated=statements())
def test_guard_verdicts_many(generated: Generated) -> None:
    check_guard_verdict(generated)


@FAST
@given(generated=statements(mode=Mode.READ))
def test_reads_are_safe_and_agree_with_sqlite(store: Store, generated: Generated) -> None:
    run_read(store, generated, live=False)


@settings(FAST, max_examples=15)
@given(generated=statements(mode=Mode.READ))
def test_live_queries_are_safe_and_agree_with_sqlite(store: Store, generated: Generated) -> None:
    run_read(store, generated, live=True)


@settings(FAST, max_examples=40)
@given(generated=statements(mode=Mode.WRITE))
def test_writes_are_safe_and_agree_with_sqlite(store: Store, generated: Generated) -> None:
    run_write(store, generated)


def run_user(conn: apsw.Connection, sql: str) -> BaseException | None:
    """Run ``sql`` as the runtime runs user statements, under the connection's gate only."""
    try:
        bindings = apsw.ext.query_info(conn, sql).bindings_count
    except (apsw.Error, ValueError, UnicodeError):
        bindings = 0
    try:
        for _row in conn.cursor().execute(
            sql, (None,) * bindings, prepare_flags=USER_PREPARE_FLAGS
        ):
            pass
    except (apsw.Error, ValueError, UnicodeError) as error:
        return error
    return None


def gate_of(conn: apsw.Connection) -> Gate:
    existing = conn.authorizer
    assert isinstance(existing, Gate), "the runtime's connections each have a gate"
    return existing


INTERNAL_COLUMNS = {
    "_cf_meta": "key", "_cf_watermark": "seq", "_cf_changes": "seq", "_cf_log": "seq",
    "_cf_cells": "id", "_cf_named": "id", "sqlite_master": "name", "sqlite_schema": "sql",
}  # fmt: skip


@st.composite
def reaching(draw: Draw) -> Generated:
    """A statement SQLite would run (were it allowed) that reads or writes an object of the
    runtime or of SQLite, in every quoting and with or without a database name."""
    table = draw(st.sampled_from(sorted(INTERNAL_COLUMNS)))
    column = INTERNAL_COLUMNS[table]
    ref = quoted(draw, table, string_ok=True)
    if draw(st.booleans()):
        ref = quoted(draw, draw(st.sampled_from(DATABASES)), string_ok=True) + "." + ref
    reads = [
        f"SELECT count(*) FROM {ref}",
        f"SELECT * FROM {ref}",
        f"SELECT {column} FROM {ref}",
        f"SELECT * FROM items JOIN {ref} ON 1",
        f"SELECT (SELECT max({column}) FROM {ref})",
        f"WITH c AS (SELECT * FROM {ref}) SELECT * FROM c",
        f"SELECT * FROM items WHERE id IN (SELECT {column} FROM {ref})",
        "SELECT * FROM pragma_table_list",
        "SELECT * FROM 'pragma_table_info'('_cf_meta')",
        "SELECT count(*) FROM dbstat",
        "SELECT load_extension('/nonexistent/x')",
        "SELECT fts3_tokenizer('simple')",
        "SELECT sqlite_offset(id) FROM items",
    ]
    writes = [
        f"DELETE FROM {ref}",
        f"UPDATE {ref} SET {column} = {column}",
        f"INSERT INTO {ref}({column}) SELECT {column} FROM {ref} LIMIT 1",
        f"DELETE FROM items WHERE id IN (SELECT {column} FROM {ref})",
        f"INSERT INTO items(name) SELECT {column} FROM {ref}",
        f"UPDATE items SET name = (SELECT max({column}) FROM {ref})",
    ]
    mode = draw(st.sampled_from(Mode))
    sql = draw(st.sampled_from(reads if mode is Mode.READ else writes))
    return Generated(sql, mode, None, True, 0)


@settings(FAST, max_examples=80)
@given(generated=reaching())
def test_the_authorizer_alone_refuses_every_reach_for_internals(
    store: Store, generated: Generated
) -> None:
    with pytest.raises(sc.GuardViolation):
        check_statement(generated.sql, generated.mode)
    check_authorizer(store, generated)


@settings(FAST, max_examples=80)
@given(generated=statements(hostile=True))
def test_the_authorizer_alone_refuses_what_reaches_internals(
    store: Store, generated: Generated
) -> None:
    check_authorizer(store, generated)


def check_authorizer(store: Store, generated: Generated) -> None:
    """Property 3 on the runtime's real connections, the guard bypassed."""
    if not generated.reaches:
        return
    declared = set(COLUMNS)
    before = internal_state(store)
    with store.rt.read_pool.connection(store.db.path) as pooled:
        policy = make_authorizer(generated.mode, database="main", tables=declared)
        with gate_of(pooled.conn).user(policy):
            error = run_user(pooled.conn, generated.sql)
        assert error is not None, f"a pooled reader ran {generated.sql!r}"
    with store.space.file.write_connection() as conn:
        attach(conn, store.db.path)
        gate = conn.authorizer if isinstance(conn.authorizer, Gate) else Gate().install(conn)
        policy = make_authorizer(generated.mode, database=ALIAS, tables=declared)
        conn.execute("BEGIN")
        try:
            with gate.user(policy):
                error = run_user(conn, generated.sql)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        assert error is not None, f"the write connection ran {generated.sql!r}"
    assert internal_state(store) == before


# --- a longer run, on demand (`-m slow`) ---------------------------------------------------------

LONG = settings(FAST, max_examples=1500)


@pytest.mark.slow
@settings(LONG, max_examples=5000)
@given(generated=statements())
def test_guard_verdicts_long(generated: Generated) -> None:
    check_guard_verdict(generated)


@pytest.mark.slow
@LONG
@given(generated=statements(mode=Mode.READ))
def test_reads_long(store: Store, generated: Generated) -> None:
    run_read(store, generated, live=False)


@pytest.mark.slow
@LONG
@given(generated=statements(mode=Mode.WRITE))
def test_writes_long(store: Store, generated: Generated) -> None:
    run_write(store, generated)


@pytest.mark.slow
@LONG
@given(generated=statements(hostile=True))
def test_authorizer_long(store: Store, generated: Generated) -> None:
    check_authorizer(store, generated)


# --- plain examples of positions the fuzzer reaches --------------------------------------------


@pytest.mark.parametrize(
    ("sql", "mode"),
    [
        ("SELECT * FROM items JOIN tags ON coalesce(items.id, 1) = 1, '_cf_log'", Mode.READ),
        ("SELECT * FROM items JOIN tags ON items.id IN (1, 2), 'sqlite_master'", Mode.READ),
        ("SELECT * FROM items NOT INDEXED, '_cf_watermark'", Mode.READ),
        ("SELECT * FROM items INDEXED BY by_qty, '_cf_changes'", Mode.READ),
        ("SELECT * FROM json_each('[1]', '$'), '_cf_meta'", Mode.READ),
        ("SELECT * FROM items AS 'x', 'sqlite_schema'", Mode.READ),
        ("UPDATE items SET qty = 1 FROM items AS a, '_cf_watermark'", Mode.WRITE),
        (
            "INSERT INTO items(id, qty) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET "
            "qty = (SELECT 1 FROM tags, '_cf_watermark')",
            Mode.WRITE,
        ),
    ],
)
def test_a_string_after_a_from_item_is_a_name(store: Store, sql: str, mode: Mode) -> None:
    """R24: an item of a FROM list is a name in every quoting, whatever came before it; the
    guard refuses it at the name, and so does the authorizer alone (R23)."""
    name = sql.rsplit("'", 2)[-2]
    offset = sql.rindex(f"'{name}'")
    with pytest.raises(sc.GuardViolation) as caught:
        check_statement(sql, mode)
    assert (caught.value.kind, caught.value.offset) == ("reserved-name", offset)
    check_authorizer(store, Generated(sql, mode, ("reserved-name", offset, name), True, 0))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM items WHERE name IN ('_cf_log', 'sqlite_master') ORDER BY id",
        "SELECT id FROM items JOIN tags ON 1 IS DISTINCT FROM 'dbstat' ORDER BY id",
        "SELECT id FROM items WHERE name IS NOT DISTINCT FROM 'pragma_table_list'",
    ],
)
def test_a_string_that_is_a_value_is_data(store: Store, sql: str) -> None:
    """R24: a string literal SQLite reads as a value never triggers the guard; the read gives
    what SQLite gives."""
    run_read(store, Generated(sql, Mode.READ, None, False, 0), live=False)

"""R44 for one JSON call of many paths inside a write: ``json_extract``, ``json_remove``,
``json_set``, ``json_insert``, ``json_replace``, ``json_array_insert`` and their ``jsonb_`` forms
look every path up in the document within one VM step. In a write (and a ``migrate``) such a
call of two paths or more is rewritten into a runtime function computed like the other long
calls (``sql/_json_calls.py``, ``write/_calls.py``): abandoned at ``exec_timeout``, and
otherwise giving exactly SQLite's result, JSON subtype included."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema._migrate import MigrationConnection
from sqlite_cells.sql import JSON_CALLS, split_json_calls
from sqlite_cells.write._calls import INLINE_COST, override_long_calls, running

TABLES = {"t": sc.table(id="integer primary key", v="text")}

# A million keys (≈ 17 MB): each path to the last one takes a few milliseconds to look up.
KEYS = 1_000_000
DOC = "{" + ",".join(f'"k{i}":{i}' for i in range(KEYS)) + "}"
LAST = f"'$.k{KEYS - 1}'"

# Each runs for well over a second here (several times exec_timeout).
LONG = {
    "json_extract": f"json_extract(?, {', '.join([LAST] * 600)})",
    "json_set": f"json_set(?, {', '.join([f'{LAST}, 1'] * 400)})",
    "jsonb_remove": f"length(jsonb_remove(?, {', '.join([LAST] * 600)}))",
}


@pytest.fixture
def fast(store: Path, quiet_helpers: None) -> Iterator[sc.Runtime]:
    with sc.Runtime(store, exec_timeout=0.3, poll_interval=0.01) as runtime:
        yield runtime


@pytest.mark.parametrize("form", sorted(LONG))
def test_a_json_call_of_many_paths_times_out_and_lets_the_space_go(
    fast: sc.Runtime, form: str
) -> None:
    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    sql = f"INSERT INTO t (v) VALUES ({LONG[form]})"
    with pytest.raises(sc.ExecTimeout) as info, space.transact():
        db.exec("INSERT INTO t (v) VALUES ('same transaction')")
        db.exec(sql, [DOC])
    assert info.value.sql == sql and info.value.db_id == db.id
    assert isinstance(info.value.__cause__, apsw.InterruptError)
    assert running() >= 1  # the lookups go on, abandoned
    assert db.rev == 0
    with space.transact():  # writable at once
        db.exec("INSERT INTO t (v) VALUES (json_extract(?, '$.k1', '$.k2'))", ['{"k1":1,"k2":[2]}'])
    assert db.read("SELECT v FROM t") == [{"v": "[1,[2]]"}]


def _object(prefix: str, keys: int) -> str:
    return "{" + ",".join(f'"{prefix}{i}":{i}' for i in range(keys)) + "}"


def test_a_json_patch_of_large_objects_times_out_and_lets_the_space_go(fast: sc.Runtime) -> None:
    """One call of json_patch looks each key of the patch up among the target's: two objects
    of 12,000 keys take ≈ 1.5 s here, several times exec_timeout."""
    space = fast.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    sql = "INSERT INTO t (v) VALUES (json_object('merged', json_patch(?, ?)))"
    started = time.monotonic()
    with pytest.raises(sc.ExecTimeout) as info, space.transact():
        db.exec(sql, [_object("a", 12_000), _object("b", 12_000)])
    assert time.monotonic() - started < 1.0  # exec_timeout 0.3 s, not the call's ≈ 1.5 s
    assert isinstance(info.value.__cause__, apsw.InterruptError)
    assert db.rev == 0
    with space.transact():  # writable at once; a small patch nests an object, as SQLite's does
        db.exec(sql, ['{"a":1}', '{"b":2}'])
    assert db.read("SELECT v FROM t") == [{"v": '{"merged":{"a":1,"b":2}}'}]


def test_a_migrate_statement_with_a_json_call_of_many_paths_times_out(
    store: Path, quiet_helpers: None
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('x')")

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute(f"UPDATE t SET v = {LONG['json_extract']}", [DOC])

    with sc.Runtime(store, exec_timeout=0.3) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES, version=2, migrate=migrate)
        with pytest.raises(sc.MigrationError) as info, space.transact():
            db.exec("INSERT INTO t (v) VALUES ('y')")
        assert isinstance(info.value.__cause__, sc.ExecTimeout)
        assert db.read("SELECT v FROM t") == [{"v": "x"}]


def test_a_migrate_statement_sees_sqlites_results(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("""INSERT INTO t (v) VALUES ('{"a":1,"b":{"c":2}}')""")

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("UPDATE t SET v = json_array(json_set(v, '$.a', json('[1]'), '$.d', 'x'))")

    with sc.Runtime(store, exec_timeout=5) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES, version=2, migrate=migrate)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (json_object('e', json_remove(?, '$.a', '$.z')))",
                    ['{"a":1,"b":2}'])  # fmt: skip
        assert db.read("SELECT v FROM t ORDER BY id") == [
            {"v": '[{"a":[1],"b":{"c":2},"d":"x"}]'},
            {"v": '{"e":{"b":2}}'},
        ]


D = """'{"a":1,"b":[2,3],"c":{"d":"x"},"e":1.50e0,"s":"q\\u00e9","n":null}'"""
# Calls of two paths or more nested in functions that read the JSON subtype, values of every
# kind (subtype or not, JSONB, numbers as SQLite renders them, infinity), NULLs and errors.
EXPRESSIONS = [
    f"json_extract({D}, '$.a', '$.b')",
    f"json_extract({D}, '$.c', '$.e', '$.s', '$.n', '$.zz')",
    f"json_array(json_extract({D}, '$.a', '$.b'))",
    f"json_quote(json_extract({D}, '$.a', '$.b'))",
    f"json_extract({D}, '$.a', '$.b') -> '$[1]'",
    f"json_object('k', json_set({D}, '$.a', 9, '$.z', json('[1]')))",
    f"json_set({D}, '$.a', 'txt', '$.z', json_array(1, 2), '$.y', NULL, '$.w', 2.5)",
    f"json_set({D}, '$.a', jsonb('[1,2]'), '$.z', jsonb_object('q', 1), '$.y', jsonb('\"s\"'))",
    "json_set('{}', '$.a', 9e999, '$.b', -9e999, '$.c', json('9.0e+999'))",
    "json_set('{}', '$.a', json('12345678901234567890'), '$.b', 9223372036854775807)",
    "json_set('{}', '$.a', 'q\"é' || char(10) || char(0), '$.b', json('\"s\"'))",
    "json_set('[]', '$[#]', json_array(json_array(1)), '$[#]', '[2]')",
    f"json_insert({D}, '$.a', 5, '$.new', '{{}}')",
    f"json_replace({D}, '$.a', 5, '$.b[0]', json('{{\"p\":1}}'))",
    f"json_remove({D}, '$.a', '$.b[0]')",
    f"json_remove({D}, '$', '$.a')",
    "json_array_insert('[1,2,3]', '$[1]', 'x', '$[0]', json('[9]'))",
    f"hex(jsonb_extract({D}, '$.a', '$.c'))",
    f"json(jsonb_set({D}, '$.a', json('[1]'), '$.b', 'str'))",
    f"json(jsonb_insert({D}, '$.q', 1, '$.r', 2))",
    f"json(jsonb_replace({D}, '$.a', 1, '$.r', 2))",
    f"json(jsonb_remove({D}, '$.a', '$.c.d'))",
    "json(jsonb_array_insert('[1]', '$[0]', 2, '$[#]', 3))",
    f"json_extract(jsonb({D}), '$.a', '$.b')",
    "json_set('{a:1}', '$.a', 1, '$.b', 2)",
    "json_extract(NULL, '$.a', '$.b')",
    "json_set(NULL, '$.a', 1, '$.b', 2)",
    f"json_extract({D}, '$.a', NULL)",
    f"json_extract({D}, '$.a', 'bad')",
    "json_extract('not json', '$.a', '$.b')",
    "json_extract(x'00', '$.a', '$.b')",
    f"json_set({D}, '$.a', 1, 'bad', 2)",
    f"json_set({D}, '$.a', x'0102', '$.b', 2)",
    f"json_set({D}, '$.a', 1, '$.b', 2, '$.c')",
    f'json_object(\'k\', json_patch({D}, \'{{"a":null,"c":{{"d":[1]}},"z":1}}\'))',
    "json_array(json_patch('[1]', '{\"a\":1}'), json_patch('{\"a\":1}', '7'))",
    f"json_patch(jsonb({D}), jsonb('{{\"b\":null}}'))",
    f"hex(jsonb_set({D}, '$.a', '', '$.z', json('[]'), '$.y', jsonb('{{}}'), '$.w', 5))",
    "hex(jsonb_array_insert('[1]', '$[0]', '', '$[#]', json('{}')))",
    # A BLOB that is no JSONB: NULL for a NULL document (the builtin looks at no value), an
    # error otherwise; a JSONB blob is JSON.
    "json_set(NULL, '$.a', 1, '$.b', x'41')",
    "json_insert(NULL, '$.a', x'41', '$.b', 1)",
    "json_array_insert(NULL, '$[0]', x'41', '$[1]', 1)",
    "json(jsonb_replace(NULL, '$.a', x'41', '$.b', 1))",
    "json_set('{}', '$.a', 1, '$.b', x'41')",
    "json_set('{}', '$.a', x'0b', '$.b', x'1b30')",
    "json_set(NULL, '$.a', x'0b', '$.b', x'1b30', '$.c', x'1bff')",
    "hex(jsonb_set('[]', '$[0]', x'1b30', '$[1]', x'13'))",
    "json_patch(NULL, '{}')",
    "json_patch('{}', NULL)",
    "json_patch('{}', 'not json')",
    "json_patch('{\"a\":1.50e0}', '{\"b\":9e999}') -> '$.a'",
]


def _outcome(conn: apsw.Connection, expr: str) -> object:
    try:
        return conn.execute(f"SELECT r, typeof(r) FROM (SELECT {expr} AS r)").fetchone()
    except apsw.Error as exc:
        return (type(exc), str(exc))


class _Owner:
    deadline: float | None = None


@pytest.mark.parametrize("deadline", [None, "now + 60 s"])
def test_rewritten_calls_give_sqlites_results(deadline: str | None) -> None:
    plain = apsw.Connection(":memory:")
    owner = _Owner()
    overridden = apsw.Connection(":memory:")
    override_long_calls(overridden, owner)
    owner.deadline = None if deadline is None else time.monotonic() + 60
    rewritten = 0
    for expr in EXPRESSIONS:
        text = split_json_calls(f"SELECT {expr}")
        rewritten += text != f"SELECT {expr}"
        assert _outcome(overridden, text[len("SELECT ") :]) == _outcome(plain, expr), expr
    assert rewritten == len(EXPRESSIONS) - 1  # all but the call of an even number of arguments
    assert running() == 0


def test_large_rewritten_calls_on_a_helper_give_sqlites_results() -> None:
    plain = apsw.Connection(":memory:")
    owner = _Owner()
    overridden = apsw.Connection(":memory:")
    override_long_calls(overridden, owner)
    owner.deadline = time.monotonic() + 600
    doc = "{" + ",".join(f'"k{i}":[{i}]' for i in range(20_000)) + "}"
    assert len(doc) * 2 >= INLINE_COST
    for expr in [
        "json_array(json_extract(?1, '$.k7', '$.k19999'))",
        "json_array(json_set(?1, '$.k1', json('{}'), '$.new', 'x'))",
        "hex(jsonb_remove(?1, '$.k1', '$.k2'))",
    ]:
        text = split_json_calls(f"SELECT {expr}")
        got = overridden.execute(text, (doc,)).fetchall()
        assert got == plain.execute(f"SELECT {expr}", (doc,)).fetchall(), expr


def test_a_user_write_sees_sqlites_results(space: Space) -> None:
    db = space.sqlite_database(
        "d", tables={"r": sc.table(id="integer primary key", v="blob", k="text")}
    )
    plain = apsw.Connection(":memory:")
    exprs = [e for e in EXPRESSIONS if "error" not in str(_outcome(plain, e)).lower()]
    with space.transact():
        for expr in exprs:
            db.exec(f"INSERT INTO r (v, k) VALUES ({expr}, typeof({expr}))")
    got = [(r["v"], r["k"]) for r in db.read("SELECT v, k FROM r ORDER BY id")]
    assert got == [plain.execute(f"SELECT {e}, typeof({e})").fetchone() for e in exprs]
    with pytest.raises(sc.ExecError) as info, space.transact():
        db.exec(f"INSERT INTO r (v) VALUES (json_extract({D}, '$.a', 'bad'))")
    assert "bad JSON path" in str(info.value)


def test_a_rewritten_call_takes_blob_parameters_and_columns_as_sqlite_does(space: Space) -> None:
    """A value that is a BLOB other than JSONB is judged by the builtin, as written: the call
    is NULL for a NULL document and an error otherwise; a JSONB blob is inserted as JSON. A
    bare ``?`` written twice by the rewrite keeps its number, and the parameters after it
    theirs."""
    db = space.sqlite_database(
        "d", tables={"r": sc.table(id="integer primary key", v="text", b="blob")}
    )
    plain = apsw.Connection(":memory:")
    plain.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
    jsonb = plain.execute("SELECT jsonb('[5]')").fetchone()[0]
    writes: list[tuple[str, list[object]]] = [
        ("INSERT INTO r (id, v, b) VALUES (1, NULL, ?)", [b"A"]),
        ("INSERT INTO r (id, v, b) VALUES (2, '{}', ?)", [jsonb]),
        (
            "UPDATE r SET v = json_set(v, '$.a', ?, '$.b', ?, '$.c', ?) WHERE id = ?",
            [b"A", 2, 3, 1],
        ),
        ("UPDATE r SET v = json_set(v, '$.a', r.b, '$.b', ?) WHERE id = ?", [jsonb, 2]),
        ("UPDATE r SET v = json_insert(v, '$.x', b, '$.y', ?2) WHERE id = ?1", [1, "y"]),
    ]
    for sql, params in writes:
        plain.execute(sql, params)
        with space.transact():
            db.exec(sql, params)
    rows = db.read("SELECT id, v, b FROM r ORDER BY id")
    assert [tuple(r.values()) for r in rows] == plain.execute(
        "SELECT id, v, b FROM r ORDER BY id"
    ).fetchall()
    assert rows[1]["v"] == '{"a":[5],"b":[5]}'
    with pytest.raises(sc.ExecError, match="JSON cannot hold BLOB values"), space.transact():
        db.exec("UPDATE r SET v = json_set(v, '$.a', 1, '$.b', ?) WHERE id = 2", [b"A"])


def test_json_patch_misused_is_refused_by_its_name(space: Space) -> None:
    """A call of the wrong number of arguments, or as a window function, is SQLite's error
    about json_patch, even where no row would call it; an alias named json_patch is a name."""
    db = space.sqlite_database("d", tables=TABLES)
    for sql, error in [
        ("UPDATE t SET v = json_patch(v, '{}', '{}') WHERE id = 999", "wrong number of arguments"),
        ("UPDATE t SET v = (SELECT json_patch('{}', '{}') OVER ())", "json_patch() may not be"),
    ]:
        with pytest.raises(sc.ExecError, match=r"json_patch\(\)") as info, space.transact():
            db.exec(sql)
        assert error in str(info.value)
    assert db.rev == 0
    with space.transact():
        db.exec(
            "INSERT INTO t AS json_patch (id, v) VALUES (1, 'x') "
            "ON CONFLICT (id) DO UPDATE SET v = json_patch.v || excluded.v"
        )
    assert db.read("SELECT id, v FROM t") == [{"id": 1, "v": "x"}]


def test_sqlites_words_name_the_function_as_written(space: Space) -> None:
    """An error about a rewritten call names the function the statement called, not the
    runtime's function computing it."""
    db = space.sqlite_database("d", tables=TABLES)
    many = ", ".join(["'$.a'"] * 1000)
    for sql, words in [
        (f"INSERT INTO t (v) VALUES (json_extract('{{}}', {many}))", "function json_extract"),
        ("INSERT INTO t (v) SELECT json_patch(v, v ORDER BY id) FROM t", "json_patch()"),
    ]:
        with pytest.raises(sc.ExecError) as info, space.transact():
            db.exec(sql)
        assert words in str(info.value) and words in str(info.value.sqlite_error)
        assert "_cf_" not in str(info.value) + str(info.value.sqlite_error)


def test_the_runtime_functions_cannot_be_named_by_a_user(space: Space) -> None:
    db = space.sqlite_database("d", tables=TABLES)
    with pytest.raises(sc.GuardViolation) as info, space.transact():
        db.exec("INSERT INTO t (v) VALUES (_cf_json_extract('{}', '$.a', '$.b'))")
    assert info.value.kind == "reserved-name"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT json_extract(a, '$.a') FROM t", None),
        ("SELECT json_set(a, '$.a', 1) FROM t", None),
        ("SELECT json_set(a, '$.a', 1, '$.b') FROM t", None),
        (
            "SELECT json_extract(a, '$.a', '$.b') AS x FROM t",
            "SELECT json(_cf_json_extract(a, '$.a', '$.b')) AS x FROM t",
        ),
        (
            "UPDATE t SET a = \"JSON_SET\"(a, ?, (SELECT max(1, 2)), '$.b', ?)",
            "UPDATE t SET a = json(_cf_json_set(a, ?,jsonb_set('[0]', '$[0]',  (SELECT max(1, 2))"
            "), '$.b', CASE WHEN typeof(?2) = 'blob' AND NOT json_valid(?2, 4) THEN ?2 "
            "ELSE jsonb_set('[0]', '$[0]', ?2) END))",
        ),
        (
            "DELETE FROM t WHERE jsonb_remove(a, '$.a', '$.b') IS NULL",
            "DELETE FROM t WHERE _cf_jsonb_remove(a, '$.a', '$.b') IS NULL",
        ),
        ("INSERT INTO json_remove (a, b, c) VALUES (1, 2, 3)", None),
        ("WITH json_extract (a, b, c) AS (SELECT 1, 2, 3) SELECT * FROM json_extract", None),
        ("CREATE TABLE x AS SELECT json_extract(a, '$.a', '$.b') FROM t", None),
        ("SELECT 'json_extract(a, b, c)', json_extract", None),
        ("UPDATE t SET a = json_patch(a, ?)", "UPDATE t SET a = json(_cf_json_patch(a, ?))"),
        ("INSERT INTO t AS json_patch (a, b) VALUES (1, 2) ON CONFLICT DO NOTHING", None),
        ("SELECT CAST(a AS json_patch(5)) FROM t", None),
        ("UPDATE t SET a = json_patch(a, '{}', '{}') WHERE 0", None),
        ("UPDATE t SET a = json_patch(a) WHERE 0", None),
        ("SELECT json_patch('{}', '{}') OVER () FROM t", None),
        ("SELECT json_extract(a, '$.a', '$.b') FILTER (WHERE 1) FROM t", None),
        ("SELECT json_patch(a, b) OVER w FROM t WINDOW w AS ()", None),
        ("SELECT json_patch(a, b) over FROM t", "SELECT json(_cf_json_patch(a, b)) over FROM t"),
        ("SELECT json_patch(a, b) filter", "SELECT json(_cf_json_patch(a, b)) filter"),
        (
            "SELECT 1 WHERE a IS NOT DISTINCT FROM json_patch(?, ?)",
            "SELECT 1 WHERE a IS NOT DISTINCT FROM json(_cf_json_patch(?, ?))",
        ),
        ("SELECT CAST('5' AS my json_patch(1, 2))", None),
        # A text naming a runtime function itself is run as written (R23: see test_authorizer).
        ("UPDATE t SET a = _cf_json_patch(a, '{}'), b = json_patch(b, '{}')", None),
        ("UPDATE t SET a = json_patch(a, '{}') WHERE \"_CF_JSON_SET\"(a, '$.a', 1) IS NULL", None),
    ],
)
def test_which_calls_are_rewritten(sql: str, expected: str | None) -> None:
    assert split_json_calls(sql) == (sql if expected is None else expected)


def test_every_function_that_takes_many_paths_is_rewritten() -> None:
    plain = apsw.Connection(":memory:")
    variadic = {
        name
        for name, narg in plain.execute("SELECT name, narg FROM pragma_function_list")
        if name.startswith(("json", "jsonb")) and narg == -1
    }
    # The others of any number of arguments build an array or object from them: linear.
    assert variadic - set(JSON_CALLS) == {
        "json_array",
        "json_object",
        "jsonb_array",
        "jsonb_object",
    }

"""map_params: the target column of each bound parameter (R31), counted the way SQLite counts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlite_cells.sql import _targets
from sqlite_cells.sql._kinds import PARAM, QUOTED
from sqlite_cells.sql._params import _analysis, map_params
from sqlite_cells.sql._statement import _scan, scan_sql

DDL = (
    "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c, x_cf_link);"
    "CREATE TABLE u(id, v);"
    'CREATE TABLE w(id INTEGER PRIMARY KEY, a UNIQUE, b, c, x_cf_link, "on", "conflict");'
    'CREATE TABLE "T2"("A", "B")'
)
T_COLUMNS = ["id", "a", "b", "c", "x_cf_link"]


@pytest.fixture(scope="module")
def conn() -> Iterator[apsw.Connection]:
    c = apsw.Connection(":memory:")
    c.execute(DDL)
    yield c
    c.close()


def sqlite_params(conn: apsw.Connection, sql: str) -> tuple[int, tuple[str | None, ...]]:
    """SQLite's own bind parameter count and names (apsw strips the prefix)."""
    cursor = conn.cursor()
    # Binding nothing to a statement with parameters raises BindingsError after preparing it, so
    # the count is readable; explain=1 keeps a statement without parameters from writing.
    with contextlib.suppress(apsw.BindingsError):
        cursor.execute(sql, (), explain=1)
    return cursor.bindings_count, cursor.bindings_names


CASES: list[tuple[str, tuple[str | None, ...], dict[str, str | None]]] = [
    ("INSERT INTO t (a, b) VALUES (?, ?)", ("a", "b"), {}),
    ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, 1)", ("a", "b", "a", "b", "a"), {}),
    ("INSERT INTO t (a, b) SELECT ?, ? FROM u WHERE v = ?", ("a", "b", None), {}),
    ("INSERT INTO t (a, b) SELECT ? AS p, (?) UNION ALL SELECT ?, ?", ("a", "b", "a", "b"), {}),
    # A compound's VALUES arm, second or first (which sqlglot's parser does not take as it is).
    ("INSERT INTO t (a, b) SELECT 1, ? UNION ALL VALUES (?, ?), (?, 2)", ("b", "a", "b", "a"), {}),
    (
        "INSERT INTO t (b, a) VALUES (?, 1) UNION ALL SELECT ?, ? EXCEPT VALUES (?, ?)",
        ("b",) * 2 + ("a", "b", "a"),
        {},
    ),
    ("INSERT INTO t (a, b) SELECT * FROM (VALUES (?, ?))", ("a", "b"), {}),
    ("INSERT INTO t (a, b) SELECT * FROM (VALUES (?)), (VALUES (?))", (None, None), {}),
    ("UPDATE t SET a = ?, b = ? WHERE id = ?", ("a", "b", None), {}),
    ("UPDATE t SET (a, b) = (?, ?), c = ?", ("a", "b", "c"), {}),
    ("UPDATE t SET (a, b) = (SELECT ?, ?)", ("a", "b"), {}),
    ("UPDATE OR IGNORE t SET x_cf_link = ? WHERE a = ?", ("x_cf_link", None), {}),
    ("REPLACE INTO t (a, x_cf_link) VALUES (?, ?)", ("a", "x_cf_link"), {}),
    ("INSERT OR REPLACE INTO t (x_cf_link) VALUES (?)", ("x_cf_link",), {}),
    ("INSERT OR IGNORE INTO t (a) VALUES (?)", ("a",), {}),
    (
        "INSERT INTO t (id, a) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET a = ?, "
        "b = excluded.b || ? WHERE ? RETURNING ?",
        ("id", "a", "a", None, None, None),
        {},
    ),
    ("INSERT INTO t (a, b) VALUES (?2, ?1), (?2, ?3)", ("b", "a", "b"), {}),
    ("INSERT INTO t (a, b) VALUES (?3, ?)", (None, None, "a", "b"), {}),
    ("INSERT INTO t (a) VALUES (?5)", (None, None, None, None, "a"), {}),
    (
        "INSERT INTO t (a, b, c) VALUES (:n, @m, $o)",
        ("a", "b", "c"),
        {"n": "a", "m": "b", "o": "c"},
    ),
    ("INSERT INTO t (a, b) VALUES (:n, :n)", (None,), {"n": None}),
    ("INSERT INTO t (a) VALUES (:n) ON CONFLICT DO UPDATE SET a = :n", ("a",), {"n": "a"}),
    ("INSERT INTO t (a, b, c) VALUES (:n, ?, ?1)", (None, "b"), {"n": None}),
    ("INSERT INTO t (a, b) VALUES ($v::w, :1)", ("a", "b"), {"v::w": "a", "1": "b"}),
    ("UPDATE t SET a = ? || 'x', b = (?), c = -?", (None, "b", None), {}),
    ("UPDATE t SET a = CAST(? AS TEXT) WHERE id IN (SELECT ?)", (None, None), {}),
    ("WITH q AS (SELECT ? AS z) INSERT INTO t (a, b) SELECT z, ? FROM q", (None, "b"), {}),
    ("WITH q AS (SELECT 1) REPLACE INTO t (a) VALUES (?)", ("a",), {}),
    ("INSERT INTO t (a, b) VALUES ('?', ? /* ? */) -- ?", ("b",), {}),
    ('INSERT INTO "T2" ("A", [B]) VALUES (?, ?)', ("a", "b"), {}),
    ("INSERT INTO main.t (A) VALUES (?)", ("a",), {}),
    ("SELECT ?, :a FROM t WHERE a = ?", (None, None, None), {"a": None}),
    # A read's parameter compared with a link column targets it (a cell there must hold a
    # link); one compared with another column, or in an expression, targets none.
    (
        "SELECT x_cf_link, ? FROM t WHERE x_cf_link = ? AND a = ? OR ? IS t.X_CF_LINK",
        (None, "x_cf_link", None, "x_cf_link"),
        {},
    ),
    # A negated comparison holds for every linked row, whatever the value: it targets none.
    (
        'SELECT 1 FROM t WHERE ("x_cf_link") <> (?) OR x_cf_link NOT IN (?, ? || 1) '
        "OR x_cf_link = ? || 1 OR x_cf_link || ? = 'a' OR x_cf_link IN (SELECT ?) "
        "OR (x_cf_link) IN (?) OR NOT (x_cf_link = ?)",
        (None, None, None, None, None, None, "x_cf_link", None),
        {},
    ),
    (
        "WITH q AS (SELECT x_cf_link AS l FROM t WHERE x_cf_link IS :o) "
        "SELECT * FROM q WHERE l = :p AND EXISTS (SELECT 1 FROM t WHERE x_cf_link IS NOT :p)",
        ("x_cf_link", None),
        {"o": "x_cf_link", "p": None},
    ),
    ("SELECT 1 FROM t WHERE x_cf_link == :o OR a = :o", (None,), {"o": None}),
    ("DELETE FROM t WHERE a = ?", (None,), {}),
    ("INSERT INTO t DEFAULT VALUES", (), {}),
    ("UPDATE t SET a = 1", (), {}),
    # Several ON CONFLICT clauses (SQLite >= 3.35; sqlglot parses one): the VALUES and every
    # DO UPDATE SET are mapped; conflict targets, WHERE and RETURNING target no column.
    (
        "INSERT INTO t (id, a) VALUES (?, ?) ON CONFLICT(id) DO NOTHING "
        "ON CONFLICT DO UPDATE SET a = ?",
        ("id", "a", "a"),
        {},
    ),
    (
        "INSERT INTO t (id, a, x_cf_link) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING "
        "ON CONFLICT DO NOTHING",
        ("id", "a", "x_cf_link"),
        {},
    ),
    (
        "INSERT INTO w (id, a, x_cf_link) VALUES (?, ?, ?) ON CONFLICT(id) WHERE ? DO UPDATE "
        "SET a = ?, x_cf_link = ? WHERE ? ON CONFLICT (a) WHERE a > (?) DO UPDATE "
        "SET (x_cf_link, b) = (?, ?) WHERE a = ? ON CONFLICT DO NOTHING RETURNING ?",
        ("id", "a", "x_cf_link", None, "a", "x_cf_link", None, None, "x_cf_link", "b", None, None),
        {},
    ),
    (
        "INSERT INTO w (a, b) SELECT ?, ? FROM u WHERE true ON CONFLICT (a) DO UPDATE SET b = ? "
        "ON CONFLICT DO UPDATE SET c = :n",
        ("a", "b", "b", "c"),
        {"n": "c"},
    ),
    (
        'WITH q AS (SELECT ? AS z) INSERT INTO w ("on", x_cf_link) VALUES (?, ?) '
        'ON CONFLICT (a) DO UPDATE SET "conflict" = ? ON CONFLICT DO UPDATE SET a = ?',
        (None, "on", "x_cf_link", "conflict", "a"),
        {},
    ),
    # A join's ON with a column named conflict is no upsert clause.
    (
        "INSERT INTO t (a, b) SELECT ?, ? FROM u JOIN w ON conflict = ? WHERE true "
        "ON CONFLICT (id) DO UPDATE SET b = ?",
        ("a", "b", None, "b"),
        {},
    ),
]


@pytest.mark.parametrize(("sql", "positional", "named"), CASES)
def test_map_params(
    conn: apsw.Connection,
    sql: str,
    positional: tuple[str | None, ...],
    named: dict[str, str | None],
) -> None:
    targets = map_params(sql)
    assert targets.positional == positional
    assert dict(targets.named) == named
    count, names = sqlite_params(conn, sql)
    assert targets.count == count == len(positional)
    # Every named parameter SQLite knows is in `named`, under its prefix-less name.
    assert {n for n in names if n is not None and not n.isdigit()} <= set(targets.named)


def test_insert_without_column_list_uses_columns_of(conn: apsw.Connection) -> None:
    sql = "INSERT INTO t VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"
    seen: list[str] = []

    def columns_of(table: str) -> list[str]:
        seen.append(table)
        return T_COLUMNS

    targets = map_params(sql, columns_of)
    assert targets.positional == tuple(T_COLUMNS) * 2
    assert seen and set(seen) == {"t"}
    assert targets.count == sqlite_params(conn, sql)[0] == 10
    # Without the callback, or when it does not know the table, the targets are None.
    assert map_params(sql).positional == (None,) * 10

    def unknown(table: str) -> list[str]:
        raise KeyError(table)

    assert map_params(sql, unknown).positional == (None,) * 10
    # Fewer columns than values (SQLite refuses it at prepare time): extra values target None.
    assert map_params("INSERT INTO u VALUES (?, ?, ?)", lambda _: ["id", "v"]).positional == (
        "id",
        "v",
        None,
    )


def test_cached_per_sql_text() -> None:
    first = map_params("INSERT INTO t (a) VALUES (?)")
    hits = _analysis.cache_info().hits
    assert map_params("INSERT INTO t (a) VALUES (?)") == first
    assert _analysis.cache_info().hits == hits + 1
    for i in range(_analysis.cache_info().maxsize or 0 + 5):
        map_params(f"SELECT {i}, ?")
    info = _analysis.cache_info()
    assert info.maxsize is not None and info.currsize <= info.maxsize


def test_named_is_read_only() -> None:
    targets = map_params("INSERT INTO t (a) VALUES (:n)")
    with pytest.raises(TypeError):
        targets.named["n"] = "b"  # type: ignore[index]


def test_scan_finds_parameters_and_names() -> None:
    sql = "SELECT 'it''s ?', \"q\"\"?\", [x?], `y?`, ?1, :a, @b, $c::d, x$y -- ?\n/* ? */ ?"
    statement = scan_sql(sql)
    assert statement.problem is None
    words = statement.words()
    assert [w.text for w in words if w.kind == PARAM] == ["?1", ":a", "@b", "$c::d", "?"]
    assert [w.name for w in words if w.kind == QUOTED] == ['q"?', "x?", "y?"]
    assert statement.param_count == 5
    assert statement.param_names == (("a", 2), ("b", 3), ("c::d", 4))


def test_tcl_style_parameters_are_a_syntax_problem() -> None:
    problem = scan_sql("SELECT $e(f)").problem
    assert problem is not None and problem[:2] == ("syntax", 7)


@pytest.mark.parametrize(("sql", "positional", "named"), CASES)
def test_token_reading_agrees_with_the_parser(
    sql: str,
    positional: tuple[str | None, ...],
    named: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the two common shapes are read from the tokens, sqlglot's parser agrees."""
    read = _scan(sql).targets
    monkeypatch.setattr(_targets, "_read_simple", lambda draft, out: False)
    assert _scan(sql).targets == read


def test_common_shapes_need_no_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(draft: object, out: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(_targets, "_assign_targets", no_parse)
    for sql in (
        "INSERT INTO t (a, b) VALUES (?, ?), (?, (?))",
        "INSERT OR IGNORE INTO t VALUES (?, coalesce(?, 1))",
        "REPLACE INTO t ('a', \"b\") VALUES (:x, :y)",
        "UPDATE OR REPLACE t SET a = ?, b = ? || 'x' WHERE id = ?",
    ):
        assert _scan(sql).targets


PARAMS = st.one_of(
    st.just("?"),
    st.integers(1, 6).map(lambda n: f"?{n}"),
    st.sampled_from([":a", ":b", "@a", "$a", "$b::c", ":A"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(PARAMS, min_size=1, max_size=6))
def test_numbering_matches_sqlite(params: list[str]) -> None:
    """Each column of an INSERT gets one parameter; SQLite says which slot filled which column."""
    columns = [f"c{i}" for i in range(len(params))]
    sql = f"INSERT INTO w ({', '.join(columns)}) VALUES ({', '.join(params)})"
    conn = apsw.Connection(":memory:")
    conn.execute(f"CREATE TABLE w ({', '.join(columns)})")
    count, names = sqlite_params(conn, sql)
    conn.execute(sql, tuple(range(1, count + 1)))  # slot i binds the value i
    filled = conn.execute("SELECT * FROM w").fetchall()[0]
    users: dict[object, list[str]] = {}
    for column, slot in zip(columns, filled, strict=True):
        users.setdefault(slot, []).append(column)
    expected = tuple(
        found[0] if len(found := users.get(slot, [])) == 1 else None for slot in range(1, count + 1)
    )
    targets = map_params(sql)
    assert targets.count == count
    assert targets.positional == expected
    for slot, name in enumerate(names, start=1):
        if name is not None and not name.isdigit():
            assert name in targets.named
            # Same unprefixed name on two slots (":a" and "@a") agrees or is None.
            if names.count(name) == 1:
                assert targets.named[name] == expected[slot - 1]
    conn.close()

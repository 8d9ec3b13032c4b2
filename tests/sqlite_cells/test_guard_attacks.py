"""Hostile statements against the guard (R20–R24), parameter mapping (R31) and the limits (R44).

Exact kinds and offsets of refusals the hostile corpus makes without offsets; statements nested
deeper than a Python parser can follow; names that only Unicode case folding would make reserved
or link columns; what may follow the final ``;``; and every path of the runtime (``db.exec``,
``db.exec_many``, ``db.query``, ``db.read``, ``sc.sqlite_query``, a disk source, the command's
``query``) giving the same verdict at the call, before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import GuardViolation, SqliteCellsError
from sqlite_cells.sql import Mode, _guard, check_statement, map_params, scan_sql

from ..conftest import run_cli

TABLES = {
    "messages": sc.table(
        id="integer primary key",
        body="text",
        author_cf_link=sc.cf_link(),
        ts="integer not null default 0",
    ),
}


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    _guard.clear_cache()
    yield
    _guard.clear_cache()


def refusal(sql: str, mode: Mode) -> GuardViolation:
    with pytest.raises(GuardViolation) as caught:
        check_statement(sql, mode)
    return caught.value


# --- exact verdicts ----------------------------------------------------------------------------

R, W = Mode.READ, Mode.WRITE

VERDICTS = [
    # comments, form feeds and newlines between a database name, the dot and the table
    ("SELECT * FROM main/* c */.messages", R, "schema-qualified", 14),
    ("SELECT * FROM main --c\n. messages", R, "schema-qualified", 14),
    ("SELECT * FROM main\f.\fmessages", R, "schema-qualified", 14),
    # every quoting of the database name, mixed with another quoting of the table
    ("SELECT * FROM \"main\".'_cf_meta'", R, "schema-qualified", 14),
    ("SELECT * FROM [MAIN].[_CF_META]", R, "schema-qualified", 14),
    ("SELECT * FROM `Main`./**/`sqlite_master`", R, "schema-qualified", 14),
    ("SELECT * FROM 'temp'.x", R, "schema-qualified", 14),
    ("SELECT * FROM messages WHERE id IN 'main'.'_cf_watermark'", R, "schema-qualified", 35),
    ('SELECT "a"."b"."c"."d"', R, "schema-qualified", 7),
    ('DELETE FROM "main"."messages" WHERE 1', W, "schema-qualified", 12),
    ("UPDATE OR FAIL main.messages SET body = 1", W, "schema-qualified", 15),
    ('SELECT * FROM _cf_db . "messages"', R, "schema-qualified", 14),
    # reserved names as CTE, window and alias names, and behind a harmless CTE name
    ("WITH _cf_x AS (SELECT 1) SELECT * FROM _cf_x", R, "reserved-name", 5),
    ("WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master", R, "reserved-name", 5),
    (
        "WITH messages AS (SELECT * FROM sqlite_master) SELECT * FROM messages",
        R,
        "reserved-name",
        32,
    ),
    ("SELECT sum(1) OVER _cf_w FROM messages WINDOW _cf_w AS ()", R, "reserved-name", 19),
    ("SELECT sqlite_j.value FROM json_each('[1]') AS sqlite_j", R, "reserved-name", 7),
    ("SELECT * FROM sqlite_temp_master", R, "reserved-name", 14),
    ("SELECT * FROM sqlite_dbpage('main')", R, "reserved-name", 14),
    ("UPDATE messages SET body = 1 FROM (SELECT 1) AS sqlite_x", W, "reserved-name", 48),
    # eponymous tables and pragma functions, called or named, in any quoting
    ("SELECT * FROM pragma_table_info('t')", R, "forbidden-function", 14),
    ("SELECT * FROM 'dbstat'('main')", R, "forbidden-function", 14),
    ('SELECT name FROM "PRAGMA_TABLE_LIST"', R, "forbidden-function", 17),
    # statement kinds are decided at the first keyword, before anything later in the text
    ("EXPLAIN SELECT * FROM _cf_meta", R, "not-read-only", 0),
    ("EXPLAIN QUERY PLAN SELECT 1", R, "not-read-only", 0),
    ("EXPLAIN QUERY PLAN INSERT INTO messages DEFAULT VALUES", W, "not-a-write", 0),
    ("VALUES (1), (2)", W, "not-a-write", 0),
    ("WITH x AS (VALUES (1)) SELECT * FROM x", W, "not-a-write", 0),
    ("PRAGMA main.user_version", R, "forbidden-statement", 0),
    ("DELETE FROM _cf_meta", R, "not-read-only", 0),
    # RETURNING after DEFAULT VALUES, REPLACE and an upsert's DO UPDATE
    ("INSERT INTO messages DEFAULT VALUES RETURNING id", W, "returning", 36),
    ("REPLACE INTO messages DEFAULT VALUES RETURNING *", W, "returning", 37),
    (
        "INSERT INTO messages(id) VALUES (1) ON CONFLICT(id) DO UPDATE SET body = 1 RETURNING id",
        W,
        "returning",
        75,
    ),
    # RETURNING in a read: SQLite would refuse it too, but the runtime does first (R23)
    ("SELECT * FROM messages RETURNING id", R, "returning", 23),
    ("WITH x AS (SELECT 1) SELECT * FROM x /* c */ returning *", R, "returning", 45),
    ('SELECT "returning" FROM messages', R, "ok", -1),
    # characters SQLite reads differently from whitespace
    ("SELECT 1 /* \0 */", R, "not-read-only", 12),
    ("SELECT 1 -- \0", R, "not-read-only", 12),
    ("SELECT\u30001", R, "not-read-only", 6),
    ("SELECT 1 FROM messages\u3000WHERE 1", R, "not-read-only", 22),
    ("SELECT\u200b1", R, "not-read-only", 0),
    ("\ufeffSELECT 1", R, "not-read-only", 0),
    # A U+FEFF that starts a word is a space to SQLite: the name after it is the name read
    ("SELECT * FROM \ufeffsqlite_master", R, "not-read-only", 14),
    ("SELECT * FROM \ufeffmain.messages", R, "not-read-only", 14),
    ("SELECT \ufeffload_extension('x')", R, "not-read-only", 7),
    ("SELECT * FROM messages \ufeff", R, "not-read-only", 23),
    ("INSERT INTO messages (body) VALUES (1) \ufeffRETURNING id", W, "not-a-write", 39),
    ("UPDATE \ufeff_cf_db.messages SET body = 1", W, "not-a-write", 7),
    ("SELECT 'a\ufeffb', \"x\ufeffy\" FROM messages", R, "ok", -1),
    ("SELECT '\udcff'", R, "not-read-only", 8),
    ("SELECT \ud800", R, "not-read-only", 7),
    # a blob is no name: before a "." it is SQLite's syntax error, never a database name
    ("SELECT * FROM messages WHERE x'6d61696e'.id", R, "ok", -1),
]


@pytest.mark.parametrize(("sql", "mode", "kind", "offset"), VERDICTS)
def test_verdicts(sql: str, mode: Mode, kind: str, offset: int) -> None:
    if kind == "ok":
        check_statement(sql, mode)
        return
    error = refusal(sql, mode)
    assert (error.kind, error.offset) == (kind, offset)
    assert error.sql == sql


LOOKALIKES = [
    # Names SQLite never folds to a reserved one: it compares names with ASCII case folding only.
    "SELECT * FROM _\u1d04f_meta",  # small capital C
    "SELECT * FROM \uff3fcf_meta",  # fullwidth low line
    "SELECT * FROM sql\u0131te_master",  # dotless i
    "SELECT * FROM SQL\u0130TE_MASTER",  # dotted capital I
    "SELECT * FROM \u017fqlite_master",  # long s (str.upper() makes it S)
    'SELECT * FROM "ma""in".messages',  # the name ma"in, not main
]


@pytest.mark.parametrize("sql", LOOKALIKES)
def test_non_ascii_lookalikes_are_other_names_to_the_guard_and_to_sqlite(sql: str) -> None:
    check_statement(sql, Mode.READ)
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE _cf_meta(k); CREATE TABLE messages(k)")
    with pytest.raises(apsw.SQLError, match="no such table"):
        conn.execute(sql)
    conn.close()


def test_a_str_subclass_is_judged_by_its_text() -> None:
    class Lying(str):
        def __str__(self) -> str:
            return "SELECT 1"

        def __hash__(self) -> int:
            return hash("SELECT 1")

        def __eq__(self, other: object) -> bool:
            return True

    check_statement("SELECT 1", Mode.READ)  # a cached verdict the subclass would like to hit
    error = refusal(Lying("SELECT * FROM sqlite_master"), Mode.READ)
    assert (error.kind, error.offset) == ("reserved-name", 14)
    assert type(error.sql) is str


# --- what follows the final ";" ----------------------------------------------------------------

ONE_STATEMENT = [
    "SELECT 1;/*\v*/",
    "SELECT 1;--\v",
    "SELECT 1; /**/ \v",
    "SELECT 1;\f\v",
    "SELECT 1; \t\n\r\f\v",
]


@pytest.mark.parametrize("sql", ONE_STATEMENT)
def test_a_vertical_tab_in_a_trailing_comment_or_whitespace_run_is_fine(sql: str) -> None:
    """Comments never trigger the guard (R20): apsw skips spaces, tabs and line ends after the
    ";", and SQLite reads the rest as a comment or a whitespace run."""
    assert check_statement(sql, Mode.READ).verb == "SELECT"
    conn = apsw.Connection(":memory:")
    assert conn.execute(sql).fetchall() == [(1,)]
    conn.close()


@pytest.mark.parametrize(
    ("sql", "offset"),
    [
        ("SELECT 1;\v", 9),
        ("SELECT 1; \v", 10),
        ("SELECT 1;\r\n\v", 11),
        ("SELECT 1; /**/\v", 14),
        ("SELECT 1;\v--", 9),
    ],
)
def test_a_vertical_tab_apsw_reads_as_a_second_statement_is_refused(sql: str, offset: int) -> None:
    error = refusal(sql, Mode.READ)
    assert (error.kind, error.offset) == ("multiple-statements", offset)
    conn = apsw.Connection(":memory:")
    with pytest.raises(apsw.SQLError, match="unrecognized token"):
        conn.execute(sql).fetchall()
    conn.close()


AFTER_A_BYTE_ORDER_MARK = [
    "SELECT 1;\ufeff",
    "SELECT 1; \ufeff",
    "SELECT 1;\n\ufeff\n",
    "SELECT 1;\f\ufeff",
    "SELECT 1;\ufeff\ufeff",
    "SELECT 1;\ufeff -- c",
    "SELECT 1;\ufeff/* c */",
    "SELECT 1;--c\n\ufeff",
    "SELECT 1;\ufeff \v",
]


@pytest.mark.parametrize("sql", AFTER_A_BYTE_ORDER_MARK)
def test_a_byte_order_mark_after_the_final_semicolon_is_nothing(sql: str) -> None:
    """SQLite skips a U+FEFF that starts a token as a space: after the final ";" with only
    whitespace and comments, it is one statement to SQLite and to the guard (R21)."""
    assert check_statement(sql, Mode.READ).verb == "SELECT"
    conn = apsw.Connection(":memory:")
    assert conn.execute(sql).fetchall() == [(1,)]
    conn.close()


@pytest.mark.parametrize(
    ("sql", "kind", "offset"),
    [
        ("SELECT 1;\ufeffSELECT 2", "multiple-statements", 9),
        ("SELECT 1;\ufeff SELECT 2", "multiple-statements", 9),
        ("SELECT 1;\ufeff;", "multiple-statements", 9),
        ("SELECT 1;\ufeff\v", "multiple-statements", 9),  # SQLite: "unrecognized token"
        ("SELECT \ufeff1;", "not-read-only", 7),
        ("SELECT 1\ufeff;", "not-read-only", 7),  # a letter to SQLite after a number
        ("SELECT * FROM messages \ufeff", "not-read-only", 23),
    ],
)
def test_a_byte_order_mark_before_the_final_semicolon_or_another_statement_is_refused(
    sql: str, kind: str, offset: int
) -> None:
    error = refusal(sql, Mode.READ)
    assert (error.kind, error.offset, error.sql) == (kind, offset, sql)


def test_a_byte_order_mark_after_the_final_semicolon_runs_one_statement_on_every_path(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES (?);\ufeff", ["a"])
        db.exec_many("INSERT INTO messages (body) VALUES (?); \ufeff\n", [["b"], ["c"]])
    sql = "SELECT body FROM messages ORDER BY id;\ufeff"
    assert db.read(sql) == [{"body": "a"}, {"body": "b"}, {"body": "c"}]
    query = db.query(sql)
    rt.settle()
    state = query.get()
    assert (state.error, state.result) == (None, [{"body": "a"}, {"body": "b"}, {"body": "c"}])
    assert db.rev == 1


# --- nesting deeper than a parser can follow ---------------------------------------------------

DEEP = {
    "parentheses": lambda n: "INSERT INTO messages(body) SELECT " + "(" * n + "?" + ")" * n,
    "subqueries": lambda n: "INSERT INTO messages(body) SELECT " + "(SELECT " * n + "?" + ")" * n,
    "not": lambda n: "INSERT INTO messages(body) SELECT " + "NOT " * n + "?",
    "case": lambda n: (
        "INSERT INTO messages(body) SELECT " + "CASE WHEN ? THEN " * n + "1" + " END" * n
    ),
    "functions": lambda n: "INSERT INTO messages(body) SELECT " + "abs(" * n + "?" + ")" * n,
    "union": lambda n: "INSERT INTO messages(body) " + " UNION ALL ".join(["SELECT ?"] * n),
    "upsert": lambda n: (
        "INSERT INTO messages(id) VALUES (1) ON CONFLICT(id) DO UPDATE SET body = "
        + "(" * n
        + "?"
        + ")" * n
    ),
}


@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_nesting_is_checked_and_mapped_without_a_recursion_error(shape: str) -> None:
    """A write nested deeper than sqlglot's parser can follow is still one checked statement;
    its parameters target no column (R31: what cannot be parsed maps to None)."""
    sql = DEEP[shape](3000)
    assert check_statement(sql, Mode.WRITE).verb == "INSERT"
    targets = map_params(sql)
    assert set(targets.positional) == {None}
    assert len(scan_sql(sql).params) >= 1


@pytest.fixture
def space(rt: sc.Runtime) -> Space:
    return rt.space("attacks")


@pytest.fixture
def db(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("chat", tables=TABLES)


def test_deep_parentheses_sqlite_accepts_are_written(space: Space, db: sc.SqliteDb) -> None:
    sql = DEEP["parentheses"](1000)
    with space.transact():
        db.exec(sql, ["deep"])
        db.exec_many(sql, [["deeper"]])
    assert db.read("SELECT body FROM messages ORDER BY id") == [
        {"body": "deep"},
        {"body": "deeper"},
    ]


def test_nesting_sqlite_refuses_fails_the_commit_as_an_exec_error(
    space: Space, db: sc.SqliteDb
) -> None:
    with pytest.raises(sc.ExecError, match=r"too large|Recursion limit"), space.transact():
        db.exec(DEEP["not"](5000), [1])
    assert db.rev == 0


# --- parameter mapping folds names as SQLite does (R11, R31) -----------------------------------

KELVIN = "note_cf_lin\u212a"  # str.lower() turns the Kelvin sign into "k"


def test_a_column_ending_in_a_kelvin_sign_is_no_link_column(rt: sc.Runtime) -> None:
    space = rt.space("kelvin")
    db = space.sqlite_database(
        "k", tables={"t": sc.table({"id": "integer primary key", KELVIN: "text"})}
    )
    cell = space.cell("c", default=1)
    for sql in ("INSERT INTO t VALUES (?, ?)", f'INSERT INTO t(id, "{KELVIN}") VALUES (?, ?)'):
        with space.transact():
            db.exec(sql, [None, "plain text"])
        with pytest.raises(sc.LinkEncodeError), space.transact():
            db.exec(sql, [None, cell])
    assert db.read(f'SELECT "{KELVIN}" AS v FROM t') == [{"v": "plain text"}] * 2


# --- every path: the same verdict at the call, nothing recorded (R20, R24) ----------------------


@pytest.fixture
def source(space: Space, tmp_path: Path) -> Any:
    path = tmp_path / "source.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE messages(id INTEGER PRIMARY KEY, body TEXT)")
    conn.close()
    return space.register_disk_source(str(path))


# (read, write, kind, offset): the same refusal as a read and as a write.  The kind
# "not-read-only/not-a-write" is for text SQLite cannot read: R22's "anything else" of the path.
REFUSED_EVERYWHERE = [
    (
        "SELECT * FROM [main]./**/messages",
        "DELETE FROM [main]./**/messages",
        "schema-qualified",
        "[main]",
    ),
    (
        "SELECT * FROM messages WHERE id IN '_cf_watermark'",
        "DELETE FROM messages WHERE id IN '_cf_watermark'",
        "reserved-name",
        "'_cf_watermark'",
    ),
    ("SELECT 1;\v", "DELETE FROM messages;\v", "multiple-statements", "\v"),
    (
        "SELECT '\udcff'",
        "DELETE FROM messages WHERE body = '\udcff'",
        "not-read-only/not-a-write",
        "\udcff",
    ),
    ("SELECT 1 -- \0", "DELETE FROM messages -- \0", "not-read-only/not-a-write", "\0"),
    ("PRAGMA user_version", "PRAGMA user_version", "forbidden-statement", 0),
    ("", "", "empty", 0),
    # a rule broken before text SQLite cannot read is met first (R24)
    (
        "SELECT * FROM [main].messages WHERE body = 'x",
        "DELETE FROM [main].messages WHERE body = 'x",
        "schema-qualified",
        "[main]",
    ),
    ("PRAGMA table_info('messages", "PRAGMA table_info('messages", "forbidden-statement", 0),
]


def _path_kind(kind: str, *, write: bool) -> str:
    """The kind a path raises: ``kind``, or for "not-read-only/not-a-write" the path's own."""
    reads, _, writes = kind.partition("/")
    return writes if write and writes else reads


def _offset(sql: str, at: int | str) -> int:
    """The offset ``at`` names: itself, or where its text first stands in ``sql``."""
    return at if isinstance(at, int) else sql.index(at)


@pytest.mark.parametrize(("read", "write", "kind", "offset"), REFUSED_EVERYWHERE)
def test_every_path_refuses_at_the_call(
    space: Space, db: sc.SqliteDb, source: Any, read: str, write: str, kind: str, offset: int | str
) -> None:
    def exec_(sql: str) -> None:
        with space.transact():
            db.exec(sql)

    def exec_many(sql: str) -> None:
        with space.transact():
            db.exec_many(sql, [[]])

    paths: dict[str, tuple[Callable[[str], object], str]] = {
        "db.read": (db.read, read),
        "db.query": (db.query, read),
        "sc.sqlite_query": (lambda sql: sc.sqlite_query(db=db, sql=sql), read),
        "source.read": (source.read, read),
        "source.query": (source.query, read),
        "db.exec": (exec_, write),
        "db.exec_many": (exec_many, write),
    }
    for name, (call, sql) in paths.items():
        _guard.clear_cache()
        with pytest.raises(GuardViolation) as caught:
            call(sql)
        wanted = _path_kind(kind, write=name.startswith("db.exec"))
        assert (caught.value.kind, caught.value.offset) == (wanted, _offset(sql, offset)), name
    assert db.rev == 0
    assert not db.path.exists()


def test_the_query_command_refuses_with_the_same_verdict(rt: sc.Runtime, store: Path) -> None:
    space = rt.space("cli")
    db = space.sqlite_database("chat", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO messages(body) VALUES ('a')")
    rt.close()
    for sql, _write, kind, offset in REFUSED_EVERYWHERE:
        if "\0" in sql or "\udcff" in sql:
            continue  # not an argument a process can be given
        done = run_cli("query", str(store), "cli", "chat", sql)
        assert done.returncode in (1, 2), (sql, done)
        wanted = _path_kind(kind, write=False)
        assert f"{wanted} at offset {_offset(sql, offset)}" in done.stderr, (sql, done.stderr)


@pytest.mark.parametrize("mode", Mode)
def test_text_sqlite_cannot_read_is_a_guard_violation_never_a_unicode_or_recursion_error(
    mode: Mode,
) -> None:
    for text in ("\udcff", "SELECT \udcff", "SELECT 1\0", "\ud800SELECT 1"):
        error = refusal(text, mode)
        assert isinstance(error, SqliteCellsError)
        # R22: anything else than the mode's statements, unreadable text included
        assert error.kind == ("not-a-write" if mode is Mode.WRITE else "not-read-only")
    unbalanced = "SELECT " + "(" * 100_000
    try:
        check_statement(unbalanced, mode)
    except GuardViolation as error:
        assert error.kind == "not-a-write"


# --- R22's "anything else" within R24's closed list of kinds -------------------------------------

# R24's kinds, as the SPEC lists them: a caller never sees another.
R24_KINDS = frozenset(
    {
        "empty",
        "multiple-statements",
        "forbidden-statement",
        "ddl",
        "temp-object",
        "schema-qualified",
        "reserved-name",
        "forbidden-function",
        "returning",
        "not-read-only",
        "not-a-write",
    }
)

# (sql, kind through db.read and db.query, kind through db.exec and db.exec_many (None: accepted),
# what the message says on all four paths).  R22: "Anything else: GuardViolation(kind=
# "not-read-only") / (kind="not-a-write")" — text that is no statement and text SQLite cannot
# read as much as a valid statement of the other kind; the message keeps the detail.
ANYTHING_ELSE = [
    # not a statement
    ("FOO BAR", "not-read-only", "not-a-write", "syntax error: 'FOO' does not start"),
    ("(SELECT 1)", "not-read-only", "not-a-write", "syntax error: '(' does not start"),
    ("SELEC * FROM messages", "not-read-only", "not-a-write", "'SELEC' does not start"),
    ("WITH x AS (SELECT 1)", "not-read-only", "not-a-write", "syntax error: a malformed WITH"),
    ("WITH x AS SELECT 1", "not-read-only", "not-a-write", "syntax error: a malformed WITH"),
    # text SQLite cannot read
    ("WITH a AS (SELECT 'x", "not-read-only", "not-a-write", "unterminated string literal"),
    ("WITH a AS (SELECT 1 /* x", "not-read-only", "not-a-write", "unterminated /* comment"),
    ("WITH a AS (SELECT 1\0) SELECT 1", "not-read-only", "not-a-write", "NUL character"),
    ("WITH\u3000a AS (SELECT 1) SELECT 1", "not-read-only", "not-a-write", "cannot read"),
    ("\ud800", "not-read-only", "not-a-write", "syntax error: lone surrogate"),
    ("?0", "not-read-only", "not-a-write", "parameter ?0: SQLite numbers parameters"),
    # … where the other path meets the statement kind first (R24)
    ("SELECT 'unterminated", "not-read-only", "not-a-write", ""),
    ("DELETE FROM messages WHERE body = 'x", "not-read-only", "not-a-write", ""),
    # a valid statement of the other kind
    ("SELECT * FROM messages", None, "not-a-write", "a write must be INSERT"),
    ("VALUES (1)", None, "not-a-write", "a write must be INSERT"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", None, "not-a-write", "a write must be INSERT"),
    ("DELETE FROM messages", "not-read-only", None, "a read must be SELECT"),
    ("INSERT INTO messages(body) VALUES ('a')", "not-read-only", None, "a read must be SELECT"),
    ("WITH x AS (SELECT 1) UPDATE messages SET body = 'b'", "not-read-only", None, "a read must"),
]


@pytest.mark.parametrize(("sql", "read_kind", "write_kind", "says"), ANYTHING_ELSE)
def test_anything_else_is_the_paths_own_kind_from_the_spec(
    space: Space,
    db: sc.SqliteDb,
    sql: str,
    read_kind: str | None,
    write_kind: str | None,
    says: str,
) -> None:
    def exec_(text: str) -> None:
        with space.transact():
            db.exec(text)

    def exec_many(text: str) -> None:
        with space.transact():
            db.exec_many(text, [[]])

    paths: list[tuple[str, Callable[[str], object], str | None]] = [
        ("db.read", db.read, read_kind),
        ("db.query", db.query, read_kind),
        ("db.exec", exec_, write_kind),
        ("db.exec_many", exec_many, write_kind),
    ]
    for name, call, kind in paths:
        _guard.clear_cache()
        if kind is None:
            call(sql)  # a statement of the path's own kind runs
            continue
        with pytest.raises(GuardViolation) as caught:
            call(sql)
        error = caught.value
        assert error.kind == kind, name
        assert error.kind in R24_KINDS, name
        assert str(error).startswith(f"{kind} at offset {error.offset}: "), name
        assert says in str(error), name


# --- what comes before text SQLite cannot read (R24) -------------------------------------------

# (call, statement, kind, offset): R24's order — the statement kind at the first keyword, else
# the leftmost token that breaks a rule — holds when the text goes on with something SQLite
# cannot tokenize; only a ";" after that point cannot be seen (docs/decisions.md).
BEFORE_UNREADABLE = [
    ("read", "PRAGMA table_info('t", "forbidden-statement", 0),
    ("read", "DELETE FROM t WHERE a = 'x", "not-read-only", 0),
    ("read", "SELECT * FROM sqlite_master WHERE a = 'x", "reserved-name", 14),
    ("read", 'SELECT * FROM main.t WHERE a = "x', "schema-qualified", 14),
    ("exec", "INSERT INTO main.t(a) VALUES ('x)", "schema-qualified", 12),
    ("exec", "SELECT 1 FROM t WHERE a = 'x", "not-a-write", 0),
    ("read", "SELECT 1 # x; SELECT 2", "not-read-only", 9),
    ("read", "SELECT a FROM t WHERE a = 'x", "not-read-only", 26),
    ("exec", "DELETE FROM t WHERE a = 'x", "not-a-write", 24),
]


@pytest.mark.parametrize(("call", "sql", "kind", "offset"), BEFORE_UNREADABLE)
def test_a_rule_broken_before_unreadable_text_decides(
    space: Space, call: str, sql: str, kind: str, offset: int
) -> None:
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", a="text")})

    def run() -> None:
        if call == "read":
            db.read(sql)
        else:
            with space.transact():
                db.exec(sql)

    for _fresh_then_cached in range(2):
        with pytest.raises(GuardViolation) as caught:
            run()
        assert (caught.value.kind, caught.value.offset) == (kind, offset)
        assert str(caught.value).startswith(f"{kind} at offset {offset}: ")
    assert db.rev == 0


# The part before the unreadable text is judged as SQLite reads it: a rule that needs a token
# beyond that point does not apply, and the last token is left out when SQLite reads it and the
# unreadable character as one token.
CUT = [
    ("SELECT load_extension('x", R, "forbidden-function", 7),
    ("SELECT a, load_extension('x", R, "forbidden-function", 10),
    ("WITH a AS (SELECT load_extension('x", R, "forbidden-function", 18),
    ("WITH edit(a, 'x", R, "not-read-only", 13),  # a CTE's column list, not a call
    ("WITH edit(a) AS 'x", R, "not-read-only", 16),
    ("WITH a AS (SELECT 1), edit(a, 'x", R, "not-read-only", 30),
    ("SELECT * FROM (WITH edit(a, 'x", R, "not-read-only", 28),
    ("SELECT sqlite_version('x", R, "not-read-only", 22),
    ("SELECT * FROM main.'x", R, "not-read-only", 19),  # no name after the dot
    ("SELECT a.b.#", R, "not-read-only", 11),
    ("SELECT a.b.c'x", R, "schema-qualified", 7),
    ("SELECT * FROM sqlite_master\xa0", R, "not-read-only", 27),  # one token to SQLite
    ("SELECT * FROM sqlite_master \xa0", R, "reserved-name", 14),
    ("SELECT changes\0()", R, "not-read-only", 14),  # SQLite stops reading at the NUL: no call
    ("SELECT * FROM 'sqlite_master' WHERE '", R, "reserved-name", 14),
    ("SELEC 'x", R, "not-read-only", 0),
    ("WITH a AS (SELECT 'x", R, "not-read-only", 18),
    ("WITH a AS (SELECT * FROM sqlite_master WHERE 'x", R, "reserved-name", 25),
    ("WITH a AS (SELECT 1) DELETE FROM t WHERE 'x", R, "not-read-only", 0),
    ("WITH a AS (PRAGMA x) SELECT 'x", R, "forbidden-statement", 11),
    ("PRAGMA x # ; SELECT 2", R, "forbidden-statement", 0),
    ("SELECT * FROM sqlite_master; /* open", R, "reserved-name", 14),
    ("SELECT 1; 'x", R, "multiple-statements", 10),
    ("PRAGMA x(?0)", R, "forbidden-statement", 0),
    ("SELECT ?0 FROM sqlite_master", R, "not-read-only", 7),
    ("SELECT # \ud800", R, "not-read-only", 7),  # the first problem, not the surrogate
    ("SELECT sqlite_x, \ud800", R, "reserved-name", 7),
    ("INSERT INTO t VALUES (1) RETURNING 'x", W, "returning", 25),
    ("CREATE TEMP TABLE x('", W, "ddl", 0),
]


@pytest.mark.parametrize(("sql", "mode", "kind", "offset"), CUT)
def test_the_part_before_unreadable_text_is_judged_as_sqlite_reads_it(
    sql: str, mode: Mode, kind: str, offset: int
) -> None:
    error = refusal(sql, mode)
    assert (error.kind, error.offset) == (kind, offset)
    again = refusal(sql, mode)  # the cached verdict
    assert (again.kind, again.offset, str(again)) == (kind, offset, str(error))


# Numbers SQLite's tokenizer reads as one token it cannot read (R20, R22, R24): a "_" digit
# separator not between two digits, and identifier characters right after a number's ".".
# sqlglot splits each of them into tokens SQLite would accept.
MALFORMED_NUMBERS = [
    "1_",
    "1__0",
    "1_e5",
    "1e5_",
    "1._5",
    "1_.5",
    "1.5_",
    ".5_",
    "1.x",
    "1.FROM",
    "1.$",
    "1.é",
]


@pytest.mark.parametrize("number", MALFORMED_NUMBERS)
def test_a_malformed_number_is_refused_at_the_call(
    space: Space, db: sc.SqliteDb, number: str
) -> None:
    read = f"SELECT 'é', {number}"
    with pytest.raises(GuardViolation) as caught:
        db.read(read)
    assert (caught.value.kind, caught.value.offset) == ("not-read-only", read.index(number))
    assert "malformed number" in str(caught.value)
    with pytest.raises(GuardViolation) as caught:
        db.query(read)
    assert (caught.value.kind, caught.value.offset) == ("not-read-only", read.index(number))
    write = f"INSERT INTO messages(body) VALUES ({number})"
    with space.transact():
        db.exec("INSERT INTO messages(body) VALUES ('kept')")
        with pytest.raises(GuardViolation) as caught:
            db.exec(write)
    assert (caught.value.kind, caught.value.offset) == ("not-a-write", write.index(number))
    assert db.read("SELECT body FROM messages") == [{"body": "kept"}]
    assert db.rev == 1


def test_numbers_sqlite_reads_pass_the_guard(db: sc.SqliteDb) -> None:
    sql = "SELECT 1_0.2_5e1_0 AS a, 0xA_b_C AS b, 1. AS c, 1.5 AS d, .5 AS e"
    assert db.read(sql) == [{"a": 10.25e10, "b": 0xABC, "c": 1.0, "d": 1.5, "e": 0.5}]

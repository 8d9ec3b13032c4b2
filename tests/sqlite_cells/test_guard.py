"""The statement guard (R20–R24): the hostile corpus, exact offsets, the cache and fuzzing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import apsw
import apsw.ext
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlite_cells.codec._errors import GuardViolation, SqliteCellsError
from sqlite_cells.sql import _guard
from sqlite_cells.sql._guard import CheckedStatement, Mode, check_statement
from sqlite_cells.sql._statement import _scan_cached, scan_sql

from ._corpus import Case, load_corpus

KINDS = {
    "ok",
    "empty",
    "multiple-statements",
    "forbidden-statement",
    "ddl",
    "not-read-only",
    "not-a-write",
    "temp-object",
    "schema-qualified",
    "reserved-name",
    "forbidden-function",
    "returning",
}
READ_VERBS = {"SELECT", "VALUES"}
WRITE_VERBS = {"INSERT", "REPLACE", "UPDATE", "DELETE"}

CASES = load_corpus()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Each test sees the guard's real (uncached) verdicts first.
    _guard.clear_cache()
    yield
    _guard.clear_cache()


def refusal(sql: str, mode: Mode) -> GuardViolation:
    with pytest.raises(GuardViolation) as caught:
        check_statement(sql, mode)
    return caught.value


# --- the corpus ------------------------------------------------------------------------------


def test_corpus_is_large_and_covers_every_kind() -> None:
    kinds = Counter(case.kind for case in CASES)
    assert len(CASES) >= 150
    assert kinds["ok"] >= 40
    assert set(kinds) == KINDS
    assert {case.mode for case in CASES if case.kind == "ok"} == {Mode.READ, Mode.WRITE}
    # An accepted statement must also pass the authorizer (test_authorizer.py runs them).
    assert {case.auth for case in CASES if case.kind == "ok"} == {"runs"}
    assert {case.auth for case in CASES if case.kind == "empty"} == {"none"}


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"line{case.line}")
def test_corpus(case: Case) -> None:
    if case.kind == "ok":
        checked = check_statement(case.sql, case.mode)
        assert checked == CheckedStatement(case.sql, case.mode, checked.verb)
        assert checked.verb in (READ_VERBS if case.mode is Mode.READ else WRITE_VERBS)
        return
    error = refusal(case.sql, case.mode)
    assert error.kind == case.kind
    assert error.sql == case.sql
    assert 0 <= error.offset <= len(case.sql)
    if case.sql.strip():
        assert error.offset < len(case.sql) or case.kind == "not-read-only"
    prefix = f"{case.kind} at offset {error.offset}: "
    assert str(error).startswith(prefix)
    assert len(str(error)) > len(prefix) + 20  # says what was wrong and what to do
    assert isinstance(error, ValueError)
    assert isinstance(error, SqliteCellsError)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.kind == "ok"], ids=lambda case: f"line{case.line}"
)
def test_ok_statements_are_ok_in_their_mode_only(case: Case) -> None:
    other = Mode.WRITE if case.mode is Mode.READ else Mode.READ
    error = refusal(case.sql, other)
    assert error.kind == ("not-a-write" if other is Mode.WRITE else "not-read-only")


@pytest.fixture(scope="module")
def schema_db() -> Iterator[apsw.Connection]:
    conn = apsw.Connection(":memory:")
    conn.execute(
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, body TEXT, author_cf_link TEXT, "
        "ts INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score INTEGER DEFAULT 0)"
    )
    yield conn
    conn.close()


def sqlite_statements(conn: apsw.Connection, sql: str) -> list[str]:
    """The statements SQLite itself splits ``sql`` into (preparing them, never running them)."""
    statements = []
    rest = sql
    while True:
        info = apsw.ext.query_info(conn, rest)
        if info.has_vdbe:  # False for text that is only whitespace, comments and ";"
            statements.append(info.first_query)
        rest = info.query_remaining or ""
        if not rest.strip():
            return statements


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.kind == "ok"], ids=lambda case: f"line{case.line}"
)
def test_sqlite_sees_one_statement_in_every_ok_line(case: Case, schema_db: apsw.Connection) -> None:
    assert len(sqlite_statements(schema_db, case.sql)) == 1


# --- offsets, verbs, messages -----------------------------------------------------------------

OFFSETS = [
    ("SELECT * FROM messages; SELECT 2", Mode.READ, "multiple-statements", 24),
    ("SELECT 1;;", Mode.READ, "multiple-statements", 9),
    ("SELECT 1; 'unterminated", Mode.READ, "multiple-statements", 10),
    ('SELECT * FROM "main"."messages"', Mode.READ, "schema-qualified", 14),
    ("SELECT * FROM [main].messages", Mode.READ, "schema-qualified", 14),
    ("SELECT m.id FROM messages m, `_cf_db`.t", Mode.READ, "schema-qualified", 29),
    ("SELECT a.b.c FROM t", Mode.READ, "schema-qualified", 7),
    ("SELECT * FROM [sqlite_master]", Mode.READ, "reserved-name", 14),
    ('SELECT id FROM messages JOIN "_cf_meta"', Mode.READ, "reserved-name", 29),
    ("SELECT * FROM messages, 'sqlite_master'", Mode.READ, "reserved-name", 24),
    ("SELECT 1, load_extension('x')", Mode.READ, "forbidden-function", 10),
    ("SELECT * FROM t JOIN pragma_table_list", Mode.READ, "forbidden-function", 21),
    ("WITH x AS (SELECT 1) DELETE FROM messages", Mode.READ, "not-read-only", 0),
    ("WITH x AS (SELECT 1) SELECT * FROM x", Mode.WRITE, "not-a-write", 0),
    ("WITH x AS (SELECT 1)", Mode.READ, "not-read-only", 20),
    # A verb rejected everywhere (R21) after a WITH list: its kind, met at WITH (R24).
    ("WITH x AS (SELECT 1) ATTACH 'f' AS y", Mode.READ, "forbidden-statement", 0),
    ("WITH x AS (SELECT 1) PRAGMA user_version", Mode.WRITE, "forbidden-statement", 0),
    ("WITH x AS (SELECT 1) CREATE TABLE z(a)", Mode.WRITE, "ddl", 0),
    ("WITH x AS (SELECT 1) EXPLAIN SELECT 1", Mode.READ, "not-read-only", 21),
    ("  /* c */ PRAGMA user_version", Mode.READ, "forbidden-statement", 10),
    ("\n\nCREATE TEMP TABLE t(x)", Mode.WRITE, "ddl", 2),
    ("SELECT 1 FROM t WHERE CREATE TEMP TABLE x(a)", Mode.READ, "temp-object", 29),
    ("UPDATE users SET score = 1 RETURNING id", Mode.WRITE, "returning", 27),
    ("SELECT 'it''s", Mode.READ, "not-read-only", 7),
    ('SELECT id, "body FROM messages', Mode.READ, "not-read-only", 11),
    ("SELECT x'ABC'", Mode.READ, "not-read-only", 7),
    ("SELECT $a('x) FROM t; DELETE FROM t; --')", Mode.READ, "not-read-only", 7),
    ("SELECT 1 /* open", Mode.READ, "not-read-only", 9),
    ("SELECT 1\x00", Mode.READ, "not-read-only", 8),
    ("SELECT\u00a0* FROM t", Mode.READ, "not-read-only", 6),
    ("SELECT 1 {# c #}", Mode.READ, "not-read-only", 9),
    ("", Mode.READ, "empty", 0),
    ("   -- nothing", Mode.WRITE, "empty", 0),
]


@pytest.mark.parametrize(("sql", "mode", "kind", "offset"), OFFSETS)
def test_offsets(sql: str, mode: Mode, kind: str, offset: int) -> None:
    error = refusal(sql, mode)
    assert (error.kind, error.offset) == (kind, offset)


def test_schema_qualified_message_names_the_name_and_says_what_to_do() -> None:
    error = refusal("SELECT * FROM main.messages", Mode.READ)
    assert str(error) == (
        "schema-qualified at offset 14: schema-qualified name 'main.messages': refer to tables "
        "unqualified; a database cell only sees its own tables"
    )


@pytest.mark.parametrize(
    ("sql", "mode", "verb"),
    [
        ("SELECT 1", Mode.READ, "SELECT"),
        ("values (1)", Mode.READ, "VALUES"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", Mode.READ, "SELECT"),
        ("WITH RECURSIVE x(n) AS (VALUES (1)) VALUES (2)", Mode.READ, "VALUES"),
        ("INSERT OR REPLACE INTO t(a) VALUES (1)", Mode.WRITE, "INSERT"),
        ("replace INTO t(a) VALUES (1)", Mode.WRITE, "REPLACE"),
        ("UPDATE OR ROLLBACK t SET a = 1", Mode.WRITE, "UPDATE"),
        ("WITH x AS (SELECT 1), y AS (SELECT 2) DELETE FROM t", Mode.WRITE, "DELETE"),
        (
            "WITH x AS NOT MATERIALIZED (SELECT 1) INSERT INTO t SELECT * FROM x",
            Mode.WRITE,
            "INSERT",
        ),
    ],
)
def test_verb(sql: str, mode: Mode, verb: str) -> None:
    assert check_statement(sql, mode) == CheckedStatement(sql, mode, verb)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        # The leftmost offending token decides.
        ("SELECT * FROM sqlite_master, main.t", "reserved-name"),
        ("SELECT * FROM main.t, sqlite_master", "schema-qualified"),
        ("SELECT load_extension(x) FROM _cf_meta", "forbidden-function"),
        # At one token: schema-qualified before temp-object and reserved-name.
        ("SELECT * FROM temp.t", "schema-qualified"),
        ("SELECT * FROM _cf_db.t", "schema-qualified"),
        ("SELECT * FROM main.sqlite_master", "schema-qualified"),
        # The statement kind is decided before the token rules.
        ("PRAGMA main.sqlite_master", "forbidden-statement"),
        ("CREATE TEMP TABLE _cf_x(a)", "ddl"),
        ("DELETE FROM sqlite_master", "not-read-only"),
        # empty and multiple-statements come first of all.
        ("PRAGMA x; SELECT 1", "multiple-statements"),
        ("SELECT 'open; DROP TABLE t", "not-read-only"),
        ("SELECT 1; SELECT 'open", "multiple-statements"),
    ],
)
def test_precedence(sql: str, kind: str) -> None:
    assert refusal(sql, Mode.READ).kind == kind


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sqlite_version()",
        'SELECT "sqlite_source_id"()',
        "SELECT sqlite_compileoption_get(0)",
        "SELECT edit FROM t",
        "SELECT * FROM t WHERE edit = 1",
        "SELECT a FROM t WHERE a IS NOT DISTINCT FROM 'sqlite_master'",
        "SELECT 'sqlite_master', '_cf_db.t', 'main.t'",
        'SELECT "t"."main" FROM t',
        "SELECT t.temp_x, temporary_y FROM t",
    ],
)
def test_legal_lookalikes(sql: str) -> None:
    assert check_statement(sql, Mode.READ).verb == "SELECT"


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT sqlite_version", "reserved-name"),  # a column, not the function
        ("SELECT sqlite_master()", "reserved-name"),
        ("SELECT _cf_version()", "reserved-name"),
        ("SELECT * FROM pragma_table_info", "forbidden-function"),
        ("SELECT * FROM messages AS pragma_x", "forbidden-function"),
        ("SELECT * FROM 'main'.t", "schema-qualified"),
        ("SELECT t.'_cf_x' FROM t", "reserved-name"),
        ("UPDATE '_cf_meta' SET v = 1", "not-read-only"),
    ],
)
def test_names_in_unusual_places(sql: str, kind: str) -> None:
    assert refusal(sql, Mode.READ).kind == kind


def test_into_a_table_named_like_a_forbidden_function_is_not_a_call() -> None:
    sql = "INSERT INTO edit(body) VALUES (1)"
    assert check_statement(sql, Mode.WRITE).verb == "INSERT"
    assert refusal("INSERT INTO t(a) VALUES (edit(1))", Mode.WRITE).kind == "forbidden-function"


def test_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError):
        check_statement(b"SELECT 1", Mode.READ)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_statement("SELECT 1", "read")  # type: ignore[arg-type]


# --- the cache -------------------------------------------------------------------------------


def test_cache_returns_the_same_verdict() -> None:
    sql = "SELECT id FROM messages WHERE ts > ?"
    first = check_statement(sql, Mode.READ)
    hits = _guard._verdict.cache_info().hits
    assert check_statement(sql, Mode.READ) is first
    assert _guard._verdict.cache_info().hits == hits + 1
    # The mode is part of the key.
    assert refusal(sql, Mode.WRITE).kind == "not-a-write"
    assert check_statement(sql, Mode.READ) is first
    # Both modes share one scan of the text.
    assert first.statement is scan_sql(sql)


def test_cached_rejection_raises_an_equal_new_error() -> None:
    sql = "SELECT * FROM messages; DROP TABLE messages"
    first = refusal(sql, Mode.READ)
    hits = _guard._verdict.cache_info().hits
    second = refusal(sql, Mode.READ)
    assert _guard._verdict.cache_info().hits == hits + 1
    assert second is not first
    assert (second.kind, second.offset, second.sql, str(second)) == (
        first.kind,
        first.offset,
        first.sql,
        str(first),
    )
    assert (second.kind, second.offset) == ("multiple-statements", 24)


def test_cache_is_bounded() -> None:
    for number in range(_guard.CACHE_MAX_ENTRIES + 50):
        check_statement(f"SELECT {number}", Mode.READ)
    assert _guard._verdict.cache_info().currsize == _guard.CACHE_MAX_ENTRIES
    assert _scan_cached.cache_info().currsize == _guard.CACHE_MAX_ENTRIES


def test_long_statements_are_checked_but_not_cached() -> None:
    sql = "SELECT " + " + ".join(["1"] * (_guard.CACHE_MAX_SQL_LENGTH // 4))
    assert len(sql) > _guard.CACHE_MAX_SQL_LENGTH
    assert check_statement(sql, Mode.READ).verb == "SELECT"
    assert _guard._verdict.cache_info().currsize == 0
    assert _scan_cached.cache_info().currsize == 0


def test_threads_get_the_same_verdicts() -> None:
    statements = [case for case in CASES if case.kind != "ok"][:60] + [
        case for case in CASES if case.kind == "ok"
    ][:60]
    expected = {case.line: _verdict(case) for case in statements}
    _guard.clear_cache()
    results: dict[int, tuple[str, int]] = {}
    errors: list[BaseException] = []

    def work(part: list[Case]) -> None:
        try:
            for _ in range(3):
                for case in part:
                    results[case.line] = _verdict(case)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(statements[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == expected


def _verdict(case: Case) -> tuple[str, int]:
    try:
        check_statement(case.sql, case.mode)
    except GuardViolation as error:
        return error.kind, error.offset
    return "ok", -1


# --- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
# Accepted statements without a ";" or a line comment of their own, to glue together.
READ_OK = [
    case.sql.strip()
    for case in CASES
    if case.kind == "ok" and case.mode is Mode.READ and ";" not in case.sql
    if "--" not in case.sql
]
WRITE_OK = [
    case.sql.strip()
    for case in CASES
    if case.kind == "ok" and case.mode is Mode.WRITE and ";" not in case.sql
    if "--" not in case.sql
]
SEPARATORS = st.sampled_from(
    ["", " ", "\n", "\t", "  ", "/* ; */", "-- c\n", " /* x */ ", "\r\n", "/**/"]
)
# Pieces of SQL that stress the two tokenizers where they differ from each other or from SQLite.
# fmt: off
FRAGMENT_TEXTS = (
    " ", "\n", "\t", "\v", "\r", "\x0c", "\u00a0", "\u2028", "\x1c", "\x85", "\ufeff",
    "'", "''", '"', '""', "`", "[", "]", "x'", "X'AB'", "N'", "0x", "1", "1_0", ".5", "e5",
    "--", "/*", "*/", ";", "(", ")", ",", ".", "*", "=", "<", ">", "!", "|", "&", "-", "+",
    "$", "$a", "$a(", "$$", ":", "::", ":a", "@", "@a", "?", "?1", "#", "#}", "{#", "{", "}",
    "\\", "^", "~", "SELECT", "FROM", "DELETE", "main", "temp", "sqlite_master", "_cf_x",
    "load_extension", "pragma_x", "RETURNING", "ORDER", "BY", "WITH", "AS", "x", "messages",
    "ATTACH", "é", "ß", "\u0130", "\U0001f600",
)
# fmt: on
FRAGMENTS = st.sampled_from(FRAGMENT_TEXTS)


@FUZZ
@given(text=st.text(max_size=80), mode=st.sampled_from(Mode))
def test_arbitrary_text_is_accepted_or_refused_never_crashes(text: str, mode: Mode) -> None:
    _guard.clear_cache()
    try:
        checked = check_statement(text, mode)
    except GuardViolation as error:
        assert error.kind in KINDS - {"ok"}
        assert 0 <= error.offset <= len(text)
        assert error.sql == text
    else:
        assert checked.sql == text


@FUZZ
@given(pieces=st.lists(FRAGMENTS, max_size=14), mode=st.sampled_from(Mode))
def test_sql_like_text_is_accepted_or_refused_never_crashes(pieces: list[str], mode: Mode) -> None:
    _guard.clear_cache()
    text = "SELECT " + "".join(pieces)
    try:
        check_statement(text, mode)
    except GuardViolation as error:
        assert error.kind in KINDS - {"ok"}
        assert 0 <= error.offset <= len(text)


@FUZZ
@given(pieces=st.lists(FRAGMENTS, max_size=14), tail=st.sampled_from(["", " FROM messages"]))
def test_what_the_guard_accepts_sqlite_reads_as_one_statement(
    pieces: list[str], tail: str, schema_db: apsw.Connection
) -> None:
    _guard.clear_cache()
    text = "SELECT " + "".join(pieces) + tail
    try:
        check_statement(text, Mode.READ)
    except GuardViolation:
        return
    try:
        statements = sqlite_statements(schema_db, text)
    except apsw.Error:
        return  # SQLite refuses the first statement: nothing would run
    except UnicodeEncodeError:  # pragma: no cover - the guard refuses lone surrogates
        pytest.fail(f"accepted text that cannot be encoded: {text!r}")
    assert len(statements) == 1, text


@FUZZ
@given(
    first=st.sampled_from(READ_OK),
    second=st.sampled_from(READ_OK + WRITE_OK),
    before=SEPARATORS,
    after=SEPARATORS,
    mode=st.sampled_from(Mode),
)
def test_two_statements_are_always_refused(
    first: str, second: str, before: str, after: str, mode: Mode
) -> None:
    _guard.clear_cache()
    sql = f"{first}{before};{after}{second}"
    assert refusal(sql, mode).kind == "multiple-statements"


@FUZZ
@given(statement=st.sampled_from(READ_OK), sep=SEPARATORS)
def test_a_trailing_semicolon_and_comments_are_fine(statement: str, sep: str) -> None:
    _guard.clear_cache()
    assert check_statement(f"{statement}{sep};{sep}", Mode.READ).verb in READ_VERBS

"""The authorizer on its own (R23): the hostile corpus run with the statement guard switched off.

Every line of tests/fixtures/hostile.sql runs on a fresh database file (a new connection, so the
schema is loaded under the authorizer) with make_authorizer(MODE, database="main",
tables={"messages", "users"}) installed and a NULL bound to every parameter.  Its AUTH column says
what must happen, and whatever happens, afterwards:

* the schema, the attached databases and the files in the directory are unchanged;
* the runtime's tables (_cf_watermark, _cf_meta) are unchanged;
* the declared tables are unchanged, except for WRITE lines that are ok, run, or are several
  statements SQLite runs one by one (multiple-statements, and the lines of text the guard cannot
  read that SQLite reads as several statements: those say "runs");
* no transaction is left open;
* every answer the authorizer gave agrees with an independent statement of the policy below
  (:func:`policy_allows`), so SQLite never did anything the policy does not allow — which also
  means no extension was loaded and nothing was attached.

What the authorizer guarantees on its own, per kind of line (the guard refuses all of them):

``ok``
    It runs.
``empty``
    Nothing runs.
``multiple-statements``
    SQLite prepares and runs the statements one by one and the authorizer judges each alone: it
    stops the first one that needs a denied action (earlier ones have run), and cannot stop two
    harmless reads, or two allowed writes in WRITE mode.
text the guard cannot read (``not-read-only`` / ``not-a-write``, the message says syntax error)
    SQLite refuses the text; or, where SQLite reads the text differently from sqlglot (Tcl
    parameters, an unterminated comment at the end), each statement it finds is authorized on
    its own as above.
``forbidden-statement``
    Denied: ATTACH, DETACH, PRAGMA, VACUUM (it ATTACHes), ANALYZE, a bare REINDEX, transactions
    and savepoints.  ``REINDEX table`` reaches no callback: it runs, and changes no data.
``ddl``
    Denied; SQLite raises its own error first for a few (dropping an automatic index), and
    ``DROP TABLE IF EXISTS`` of a missing table asks for nothing and does nothing.
``not-read-only``
    Every write action is denied in READ mode.  ``EXPLAIN`` of a read runs: it runs nothing.
``not-a-write``
    Reads are allowed in WRITE mode: a query sent down the write path runs and changes nothing.
``temp-object``
    Creating temporary objects is DDL and denied (SQLite refuses ``CREATE TEMP`` in the middle
    of a statement as a syntax error).
``schema-qualified``
    Other schemas are denied or do not exist; ``main.messages`` on a connection where main *is*
    the database cell's file names the cell's own table and runs.
``reserved-name``
    ``sqlite_*`` and ``_cf_*`` tables are denied (or do not exist); reserved names used as an
    alias or a CTE name run harmlessly.
``forbidden-function``
    Denied (``load_extension``, ``fts3_tokenizer``; pragma functions and dbstat as reads), or the
    library does not have the function (``readfile``, ``writefile``, ``edit``).
``returning``
    Runs: RETURNING only reads columns of the table the write may touch.  Refusing it is the
    guard's job alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import apsw
import apsw.ext
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import ALIAS, attach
from sqlite_cells.sql import USER_PREPARE_FLAGS, Gate
from sqlite_cells.sql._authorizer import Authorizer, make_authorizer
from sqlite_cells.sql._guard import Mode

from ._corpus import Case, load_corpus

SCHEMA = """
CREATE TABLE messages(id INTEGER PRIMARY KEY, body TEXT, author_cf_link TEXT,
                      ts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score INTEGER DEFAULT 0);
CREATE TABLE _cf_watermark(id INTEGER PRIMARY KEY, seq INTEGER);
CREATE TABLE _cf_meta(key TEXT PRIMARY KEY, value);
INSERT INTO messages(body, author_cf_link, ts) VALUES ('{"a":1}', 'ann', 1), ('{"b":2}', 'bob', 2);
INSERT INTO users(name, score) VALUES ('ann', 5), ('bob', -1);
INSERT INTO _cf_watermark(seq) VALUES (7);
INSERT INTO _cf_meta(key, value) VALUES ('schema', 'v1');
"""
DECLARED = frozenset({"messages", "users"})
RUNTIME_TABLES = ("_cf_watermark", "_cf_meta")
ALL_TABLES = ("messages", "users", *RUNTIME_TABLES)

# --- the corpus (format: see the header of hostile.sql) ---------------------------------------

CASES = load_corpus()

# --- the policy, stated independently of the module under test ------------------------------

_ALWAYS = {apsw.SQLITE_SELECT, apsw.SQLITE_RECURSIVE}
_WRITES = {apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE}
_FORBIDDEN_FUNCTIONS = {
    *("load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"),
    *("changes", "total_changes"),
}
_HARMLESS_SQLITE_FUNCTIONS = {
    "sqlite_version",
    "sqlite_source_id",
    "sqlite_compileoption_used",
    "sqlite_compileoption_get",
}
_DATALESS = {"json_each", "json_tree"}
_EPONYMOUS = {"dbstat", "fts3tokenize", "carray", *_DATALESS}


def policy_allows(
    mode: Mode,
    database: str,
    declared: frozenset[str] | None,
    call: tuple[int, str | None, str | None, str | None],
) -> bool:
    action, arg1, arg2, db = call
    if action in _ALWAYS:
        return True
    if action == apsw.SQLITE_FUNCTION:
        name = (arg2 or "").lower()
        if name.startswith("sqlite_"):
            return name in _HARMLESS_SQLITE_FUNCTIONS
        return (
            bool(name)
            and name not in _FORBIDDEN_FUNCTIONS
            and not name.startswith(("pragma_", "_cf_"))
        )
    if arg1 is None:
        return False
    table = arg1.lower()
    if declared is None:
        table_ok = not table.startswith(("_cf_", "sqlite_", "pragma_")) and table not in _EPONYMOUS
    else:
        table_ok = table in declared
    if action == apsw.SQLITE_READ:
        if table in _DATALESS:
            return True
        if db is None:
            # count(*) of a table or a CTE: any name that is not reserved.
            return (
                arg2 == ""
                and not table.startswith(("_cf_", "sqlite_", "pragma_"))
                and table not in _EPONYMOUS
            )
        return db.lower() == database and table_ok
    if action in _WRITES:
        return mode is Mode.WRITE and db is not None and db.lower() == database and table_ok
    return False


@dataclass
class Recorder:
    """Wraps an authorizer and remembers every question and answer."""

    inner: Authorizer
    calls: list[tuple[int, str | None, str | None, str | None, int]] = field(default_factory=list)

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, via: str | None
    ) -> int:
        verdict = self.inner(action, arg1, arg2, db, via)
        self.calls.append((action, arg1, arg2, db, verdict))
        return verdict

    def denied(self) -> list[tuple[int, str | None, str | None, str | None, int]]:
        return [call for call in self.calls if call[4] == apsw.SQLITE_DENY]

    def assert_agrees_with_policy(
        self, mode: Mode, database: str, declared: frozenset[str] | None
    ) -> None:
        names = apsw.mapping_authorizer_function
        for action, arg1, arg2, db, verdict in self.calls:
            assert verdict in (apsw.SQLITE_OK, apsw.SQLITE_DENY)
            expected = policy_allows(mode, database, declared, (action, arg1, arg2, db))
            assert (verdict == apsw.SQLITE_OK) == expected, (names[action], arg1, arg2, db)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    schema: tuple[tuple[str, ...], ...]
    databases: tuple[tuple[str, str], ...]
    files: tuple[str, ...]
    data: dict[str, str]


def state(path: Path, tables: tuple[str, ...] = ALL_TABLES) -> State:
    conn = apsw.Connection(str(path))
    try:
        schema = tuple(
            tuple(str(value) for value in row)
            for row in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY 2"
            )
        )
        databases = tuple((row[1], row[2]) for row in conn.execute("PRAGMA database_list"))
        data = {
            table: hashlib.sha256(
                repr(conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()).encode()
            ).hexdigest()
            for table in tables
        }
    finally:
        conn.close()
    files = tuple(sorted(p.name for p in path.parent.iterdir()))
    return State(schema, databases, files, data)


def binding_count(path: Path, sql: str) -> int:
    """How many parameters SQLite finds in all the statements of ``sql`` (prepared, not run)."""
    probe = apsw.Connection(str(path))
    total = 0
    rest = sql
    try:
        while rest.strip():
            info = apsw.ext.query_info(probe, rest)
            total += info.bindings_count
            rest = info.query_remaining or ""
    except (apsw.Error, ValueError):
        pass  # the statement SQLite cannot prepare is where the real run stops too
    finally:
        probe.close()
    return total


def is_denial(error: BaseException) -> bool:
    # A denied action fails the prepare: SQLITE_AUTH, or SQLITE_ERROR "not authorized to use
    # function: …" for SQLITE_FUNCTION.
    return isinstance(error, apsw.AuthError) or (
        isinstance(error, apsw.SQLError) and str(error).startswith("not authorized")
    )


def run(conn: apsw.Connection, sql: str, bindings: int) -> BaseException | None:
    try:
        for _row in conn.execute(sql, (None,) * bindings):
            pass
    except (apsw.Error, ValueError) as error:  # ValueError: NUL; UnicodeEncodeError: surrogates
        return error
    return None


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute(SCHEMA)
    conn.close()
    return path


# --- the corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"line{case.line}")
def test_corpus_under_the_authorizer_alone(case: Case, database: Path) -> None:
    before = state(database)
    bindings = binding_count(database, case.sql)
    recorder = Recorder(make_authorizer(case.mode, database="main", tables=DECLARED))
    conn = apsw.Connection(str(database))
    conn.authorizer = recorder
    error = run(conn, case.sql, bindings)
    in_transaction = conn.in_transaction
    conn.close()

    if case.auth == "none":
        assert error is None
        assert recorder.calls == []
    elif case.auth == "runs":
        assert error is None, error
    elif case.auth == "denied":
        assert error is not None and is_denial(error), error
        assert recorder.denied()
    else:
        assert case.auth == "error"
        assert error is not None and not is_denial(error), error
        assert recorder.denied() == []

    recorder.assert_agrees_with_policy(case.mode, "main", DECLARED)
    assert not in_transaction
    after = state(database)
    assert after.schema == before.schema
    assert after.databases == before.databases
    assert after.files == before.files
    for table in RUNTIME_TABLES:
        assert after.data[table] == before.data[table], table
    writes_may_run = case.mode is Mode.WRITE and (
        case.kind in ("ok", "multiple-statements") or case.auth == "runs"
    )
    if not writes_may_run:
        assert after.data == before.data


def test_the_corpus_exercises_every_outcome() -> None:
    outcomes = {(case.kind, case.auth) for case in CASES}
    assert {auth for _kind, auth in outcomes} == {"runs", "denied", "error", "none"}
    for kind in ("forbidden-statement", "ddl", "reserved-name", "forbidden-function"):
        assert (kind, "denied") in outcomes


# --- the write connection: the space file is main, the database file is _cf_db -----------------

SPACE_SCHEMA = """
CREATE TABLE _cf_cells(id INTEGER PRIMARY KEY, v);
CREATE TABLE notes(id INTEGER PRIMARY KEY, v);
INSERT INTO _cf_cells(v) VALUES ('cell');
INSERT INTO notes(v) VALUES ('note');
"""


@pytest.fixture
def write_connection(database: Path) -> Iterator[tuple[apsw.Connection, Recorder, Path]]:
    space = database.parent / "space.sqlite"
    conn = apsw.Connection(str(space))
    conn.execute(SPACE_SCHEMA)
    conn.execute("ATTACH DATABASE ? AS _cf_db", (str(database),))
    recorder = Recorder(make_authorizer(Mode.WRITE, database="_cf_db", tables=DECLARED))
    conn.authorizer = recorder
    yield conn, recorder, space
    conn.close()


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ("INSERT INTO messages(body) VALUES ('x')", True),
        ("UPDATE users SET score = score + 1", True),
        ("DELETE FROM messages WHERE id = 1", True),
        (
            "INSERT INTO users(name, score) VALUES ('ann', 9) "
            "ON CONFLICT(name) DO UPDATE SET score = excluded.score",
            True,
        ),
        ("WITH n(x) AS (VALUES (3)) INSERT INTO messages(ts) SELECT x FROM n", True),
        ("UPDATE messages SET body = users.name FROM users WHERE users.id = messages.id", True),
        ("SELECT count(*) FROM messages", False),
        ("SELECT value FROM json_each('[1, 2]')", False),
        (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 5) "
            "SELECT count(*) FROM n",
            False,
        ),
    ],
)
def test_write_connection_allows_the_database_cells_tables(
    write_connection: tuple[apsw.Connection, Recorder, Path],
    database: Path,
    sql: str,
    writes: bool,
) -> None:
    conn, recorder, space = write_connection
    space_before = state(space, ("_cf_cells", "notes"))
    database_before = state(database)
    assert run(conn, sql, 0) is None
    assert recorder.denied() == []
    recorder.assert_agrees_with_policy(Mode.WRITE, "_cf_db", DECLARED)
    assert state(space, ("_cf_cells", "notes")) == space_before
    assert (state(database).data != database_before.data) == writes


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM _cf_cells",
        "SELECT count(*) FROM _cf_cells",
        "SELECT v FROM notes",
        # "SELECT count(*) FROM notes" is allowed: a count(*) read names no database (its table
        # may be a CTE), and the runtime's space file holds only reserved `_cf_` tables.
        "SELECT * FROM main.notes",
        "INSERT INTO _cf_cells(v) VALUES ('evil')",
        "UPDATE _cf_cells SET v = 'evil'",
        "DELETE FROM _cf_cells",
        "INSERT INTO notes(v) VALUES ('evil')",
        "DELETE FROM main.notes",
        "INSERT INTO messages(body) SELECT v FROM notes",
        "UPDATE messages SET body = (SELECT v FROM _cf_cells)",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM _cf_db.sqlite_master",
        "DELETE FROM _cf_db._cf_meta",
        "DETACH DATABASE _cf_db",
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA _cf_db.user_version = 3",
        "CREATE TABLE _cf_db.evil(x)",
        "BEGIN",
    ],
)
def test_write_connection_denies_everything_else(
    write_connection: tuple[apsw.Connection, Recorder, Path], sql: str, database: Path
) -> None:
    conn, recorder, space = write_connection
    space_before = state(space, ("_cf_cells", "notes"))
    database_before = state(database)
    error = run(conn, sql, 0)
    assert error is not None and is_denial(error), error
    assert recorder.denied()
    recorder.assert_agrees_with_policy(Mode.WRITE, "_cf_db", DECLARED)
    conn.authorizer = None
    assert [row[1] for row in conn.execute("PRAGMA database_list")] == ["main", "_cf_db"]
    assert not conn.in_transaction
    assert state(space, ("_cf_cells", "notes")) == space_before
    assert state(database) == database_before


# --- tables=None: injected read-only files with their own schema ------------------------------


@pytest.mark.parametrize(
    ("sql", "allowed"),
    [
        ("SELECT * FROM docs", True),
        ("SELECT count(*) FROM docs", True),
        ("SELECT d.title, m.body FROM docs d JOIN messages m ON m.id = d.id", True),
        ("SELECT * FROM json_each('[1]')", True),
        ("SELECT 1 FROM json_tree('[1]')", True),
        ("SELECT * FROM _cf_meta", False),
        ("SELECT count(*) FROM _cf_watermark", False),
        ("SELECT * FROM sqlite_master", False),
        ("SELECT * FROM dbstat", False),
        ("SELECT * FROM pragma_table_list", False),
        ("DELETE FROM docs", False),
        ("INSERT INTO docs(title) VALUES ('x')", False),
    ],
)
def test_any_unreserved_table_when_tables_is_none(database: Path, sql: str, allowed: bool) -> None:
    setup = apsw.Connection(str(database))
    setup.execute(
        "CREATE TABLE docs(id INTEGER PRIMARY KEY, title); INSERT INTO docs VALUES (1, 't')"
    )
    setup.close()
    recorder = Recorder(make_authorizer(Mode.READ, database="main", tables=None))
    conn = apsw.Connection(str(database))
    conn.authorizer = recorder
    error = run(conn, sql, 0)
    conn.close()
    if allowed:
        assert error is None, error
        assert recorder.denied() == []
    else:
        assert error is not None and is_denial(error), error
    recorder.assert_agrees_with_policy(Mode.READ, "main", None)


# --- details ---------------------------------------------------------------------------------


def test_declared_tables_compare_case_insensitively(database: Path) -> None:
    conn = apsw.Connection(str(database))
    conn.authorizer = make_authorizer(Mode.WRITE, database="MAIN", tables={"Messages", "USERS"})
    assert conn.execute("SELECT count(*) FROM MESSAGES").fetchall() == [(2,)]
    conn.execute("UPDATE Users SET score = 0")
    assert conn.execute("SELECT sum(score) FROM users").fetchall() == [(0,)]
    conn.close()


def test_autoincrement_tables_work_without_sqlite_sequence_access(tmp_path: Path) -> None:
    path = tmp_path / "auto.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE counters(id INTEGER PRIMARY KEY AUTOINCREMENT, n)")
    recorder = Recorder(make_authorizer(Mode.WRITE, database="main", tables={"counters"}))
    conn.authorizer = recorder
    conn.execute("INSERT INTO counters(n) VALUES (1), (2)")
    conn.execute("DELETE FROM counters WHERE n = 2")
    assert conn.execute("SELECT id, n FROM counters").fetchall() == [(1, 1)]
    with pytest.raises(apsw.AuthError):
        conn.execute("SELECT * FROM sqlite_sequence")
    recorder.assert_agrees_with_policy(Mode.WRITE, "main", frozenset({"counters"}))
    conn.close()


def test_statements_cached_before_the_authorizer_are_authorized_again(database: Path) -> None:
    conn = apsw.Connection(str(database))
    sql = "SELECT name FROM sqlite_master"
    assert conn.execute(sql).fetchall()  # prepared and cached without an authorizer
    conn.authorizer = make_authorizer(Mode.READ, database="main", tables=DECLARED)
    with pytest.raises(apsw.AuthError):
        conn.execute(sql).fetchall()
    conn.close()


ACTION_CODES = sorted(
    code for name, code in apsw.mapping_authorizer_function.items() if isinstance(name, str)
)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("action", ACTION_CODES, ids=apsw.mapping_authorizer_function.get)
def test_every_action_code(mode: Mode, action: int) -> None:
    authorize = make_authorizer(mode, database="main", tables=DECLARED)
    allowed = {apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_FUNCTION, apsw.SQLITE_RECURSIVE}
    if mode is Mode.WRITE:
        allowed |= _WRITES
    arg2 = "count" if action == apsw.SQLITE_FUNCTION else "body"
    verdict = authorize(action, "messages", arg2, "main", None)
    assert verdict == (apsw.SQLITE_OK if action in allowed else apsw.SQLITE_DENY)
    # Never for a table of another schema or of the runtime, in any mode.
    if action not in (apsw.SQLITE_SELECT, apsw.SQLITE_RECURSIVE, apsw.SQLITE_FUNCTION):
        assert authorize(action, "messages", "body", "temp", None) == apsw.SQLITE_DENY
        assert authorize(action, "_cf_meta", "value", "main", None) == apsw.SQLITE_DENY


@pytest.mark.parametrize(
    ("call", "verdict"),
    [
        ((apsw.SQLITE_FUNCTION, None, "LOAD_EXTENSION", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_FUNCTION, None, "pragma_table_info", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_FUNCTION, None, "_cf_link", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_FUNCTION, None, "sqlite_version", None, None), apsw.SQLITE_OK),
        ((apsw.SQLITE_FUNCTION, None, "SQLITE_COMPILEOPTION_GET", None, None), apsw.SQLITE_OK),
        ((apsw.SQLITE_FUNCTION, None, "sqlite_log", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_FUNCTION, None, "sqlite_offset", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_FUNCTION, None, "_cf_anything", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "dbstat", "name", "main", None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "pragma_table_list", "name", "main", None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "sqlite_master", "", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "dbstat", "", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_FUNCTION, None, None, None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, None, "x", "main", None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "messages", "", None, None), apsw.SQLITE_OK),
        ((apsw.SQLITE_READ, "messages", "body", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "_cf_meta", "", None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "messages", "body", "_cf_db", None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_READ, "messages", "body", "main", "some_view"), apsw.SQLITE_OK),
        ((apsw.SQLITE_READ, "json_each", "value", "main", None), apsw.SQLITE_OK),
        ((apsw.SQLITE_DELETE, "messages", None, None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_PRAGMA, "user_version", None, None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_ATTACH, "x.db", None, None, None), apsw.SQLITE_DENY),
        ((apsw.SQLITE_TRANSACTION, "BEGIN", None, None, None), apsw.SQLITE_DENY),
    ],
)
def test_callback_shapes(
    call: tuple[int, str | None, str | None, str | None, str | None], verdict: int
) -> None:
    authorize = make_authorizer(Mode.WRITE, database="main", tables=DECLARED)
    assert authorize(*call) == verdict


def test_only_a_read_of_an_injected_file_may_ask_for_its_data_version() -> None:
    """FTS5 asks for ``PRAGMA data_version`` while a MATCH runs (an injected file's full-text
    table, R60): allowed there, for its own schema, without an argument; nowhere else."""
    data_version = (apsw.SQLITE_PRAGMA, "data_version", None, "main", None)
    source = make_authorizer(Mode.READ, database="main", tables=None)
    assert source(*data_version) == apsw.SQLITE_OK
    assert source(apsw.SQLITE_PRAGMA, "data_version", "1", "main", None) == apsw.SQLITE_DENY
    assert source(apsw.SQLITE_PRAGMA, "data_version", None, "temp", None) == apsw.SQLITE_DENY
    assert source(apsw.SQLITE_PRAGMA, "data_version", None, None, None) == apsw.SQLITE_DENY
    assert source(apsw.SQLITE_PRAGMA, "table_info", "t", "main", None) == apsw.SQLITE_DENY
    assert source(apsw.SQLITE_PRAGMA, "user_version", None, "main", None) == apsw.SQLITE_DENY
    for mode, tables in ((Mode.WRITE, None), (Mode.READ, DECLARED), (Mode.WRITE, DECLARED)):
        assert make_authorizer(mode, database="main", tables=tables)(*data_version) == (
            apsw.SQLITE_DENY
        )


@pytest.mark.parametrize("tables", [{"_cf_cells"}, {"messages", "sqlite_master"}, {"DBSTAT"}])
def test_reserved_tables_cannot_be_declared(tables: set[str]) -> None:
    with pytest.raises(ValueError, match="reserved"):
        make_authorizer(Mode.READ, database="main", tables=tables)


def test_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError):
        make_authorizer("read", database="main", tables=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make_authorizer(Mode.READ, database="main", tables="messages")


def test_a_gate_allows_the_runtime_and_judges_user_statements_without_expiring_them() -> None:
    from sqlite_cells.sql import USER_PREPARE_FLAGS, Gate

    def user_sql(sql: str) -> list[tuple[object, ...]]:
        return list(conn.cursor().execute(sql, prepare_flags=USER_PREPARE_FLAGS))

    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT, ts INTEGER)")
    conn.execute("CREATE TABLE _cf_watermark (seq INTEGER)")
    gate = Gate().install(conn)
    conn.execute("SELECT seq FROM _cf_watermark").fetchall()  # the runtime's own: allowed
    policy = make_authorizer(Mode.READ, database="main", tables={"messages"})
    reads: set[tuple[str, str]] = set()
    with gate.user(policy, record=reads):
        assert user_sql("SELECT body FROM messages WHERE ts > 0") == []
        with pytest.raises(apsw.AuthError):  # prepared above by the runtime, not reused here
            user_sql("SELECT seq FROM _cf_watermark")
    assert reads == {("messages", "body"), ("messages", "ts")}
    assert not gate.is_user
    assert conn.authorizer is gate


# --- the whole corpus on the runtime's real connections (R23) ----------------------------------

RUNTIME_DECLARED = {
    "messages": sc.table(
        id="integer primary key",
        body="text",
        author_cf_link=sc.cf_link(),
        ts="integer not null default 0",
    ),
    "users": sc.table(id="integer primary key", name="text unique", score="integer default 0"),
}


@dataclass
class RuntimeDatabase:
    rt: sc.Runtime
    space: Space
    db: sc.SqliteDb


@pytest.fixture(scope="module")
def runtime_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeDatabase]:
    with sc.Runtime(tmp_path_factory.mktemp("store")) as rt:
        space = rt.space("corpus")
        db = space.sqlite_database("chat", tables=RUNTIME_DECLARED)
        with space.transact():
            space.cell("counter", default=0).set(1)
            db.exec("INSERT INTO users(name, score) VALUES ('ann', 5), ('bob', -1)")
            db.exec("INSERT INTO messages(body, ts) VALUES ('{\"a\":1}', 1), ('{\"b\":2}', 2)")
        yield RuntimeDatabase(rt, space, db)


def reserved_state(path: Path) -> tuple[object, ...]:
    """The schema of the file and the contents of every table but the declared ones."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY 2").fetchall()
        contents = [
            (name, sorted(map(repr, conn.execute(f'SELECT * FROM "{name}"').fetchall())))
            for (kind, name, _sql) in schema
            if kind == "table" and name not in RUNTIME_DECLARED and name != "sqlite_sequence"
        ]
    finally:
        conn.close()
    return (tuple(schema), hashlib.sha256(repr(contents).encode()).hexdigest())


@contextmanager
def gated(conn: apsw.Connection) -> Iterator[Gate]:
    """The connection's gate: the runtime's own when it installed one, else one for the test."""
    existing = conn.authorizer
    if isinstance(existing, Gate):
        yield existing
        return
    gate = Gate().install(conn)
    try:
        yield gate
    finally:
        conn.authorizer = existing


def run_user(conn: apsw.Connection, sql: str) -> BaseException | None:
    """Run ``sql`` the way the runtime runs user statements: prepared with the user flags."""
    try:
        bindings = apsw.ext.query_info(conn, sql).bindings_count if sql.strip() else 0
    except (apsw.Error, ValueError):
        bindings = 0
    try:
        cursor = conn.cursor()
        for _row in cursor.execute(sql, (None,) * bindings, prepare_flags=USER_PREPARE_FLAGS):
            pass
    except (apsw.Error, ValueError) as error:
        return error
    return None


def check_alone(
    case: Case, error: BaseException | None, recorder: Recorder, schema: str, *, read_only: bool
) -> None:
    """What the authorizer alone guarantees for one corpus line on a real connection."""
    recorder.assert_agrees_with_policy(case.mode, schema, DECLARED)
    if case.kind == "ok":
        if read_only and case.mode is Mode.WRITE:
            assert error is None or isinstance(error, apsw.ReadOnlyError), error
        else:
            assert error is None, error
    elif case.auth == "denied":
        # What the authorizer refuses on a fresh file it refuses here too (or SQLite does).
        assert error is not None, case.sql
    # Any other line may run here where it failed on a fresh file ("_cf_db.messages" is the
    # cell's own table on the write connection): every action it took agreed with the policy,
    # and the test checks that nothing outside the declared tables changed.


def run_corpus(conn: apsw.Connection, gate: Gate, schema: str, *, read_only: bool) -> None:
    """Each line under the authorizer alone, inside a savepoint the test rolls back (so every
    line sees the same rows); a line that ends the test's transaction fails."""
    databases = conn.execute("PRAGMA database_list").fetchall()
    for case in CASES:
        recorder = Recorder(make_authorizer(case.mode, database=schema, tables=DECLARED))
        conn.execute("SAVEPOINT corpus")
        with gate.user(recorder):
            error = run_user(conn, case.sql)
        still_open = conn.in_transaction
        if still_open:
            conn.execute("ROLLBACK TO corpus; RELEASE corpus")
        assert still_open, f"line {case.line} ended the transaction"
        check_alone(case, error, recorder, schema, read_only=read_only)
        assert conn.execute("PRAGMA database_list").fetchall() == databases, case.line


def test_corpus_on_the_space_write_connection(runtime_db: RuntimeDatabase) -> None:
    """Every line under the authorizer alone on the space's write connection, the database
    file attached as _cf_db, through a Gate, prepared with USER_PREPARE_FLAGS."""
    space_path = runtime_db.space.file.path
    db_path = runtime_db.db.path
    space_before, db_before = reserved_state(space_path), reserved_state(db_path)
    with runtime_db.space.file.write_connection() as conn, gated(conn) as gate:
        attach(conn, db_path)
        run_corpus(conn, gate, ALIAS, read_only=False)
    assert reserved_state(space_path) == space_before
    assert reserved_state(db_path) == db_before


def test_corpus_on_a_pooled_reader(runtime_db: RuntimeDatabase) -> None:
    """Every line under the authorizer alone on a read-only connection of the runtime's pool."""
    db_path = runtime_db.db.path
    before = reserved_state(db_path)
    with runtime_db.rt.read_pool.connection(db_path) as pooled, gated(pooled.conn) as gate:
        run_corpus(pooled.conn, gate, "main", read_only=True)
    assert reserved_state(db_path) == before


def test_a_source_connection_with_rtree_tables_still_denies_every_write(tmp_path: Path) -> None:
    """R23, R60: an R*Tree table prepares writes to its shadow tables when it connects, so a
    user statement that first names it on a connection is denied; the runtime connects it
    outside the user state (``connect_rtrees``), and after that reads pass while every write by
    a user statement, to the table or to its shadow tables, is still denied on the pooled
    source connection, as are SQLite's own tables."""
    from sqlite_cells.read._vtabs import connect_rtrees

    path = tmp_path / "geo.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE VIRTUAL TABLE r USING rtree(id, x0, x1, +label)")
    conn.execute("INSERT INTO r VALUES (1, 0, 10, 'a')")
    conn.close()
    before = path.read_bytes()
    policy = make_authorizer(Mode.READ, database="main", tables=None)
    with sc.Runtime(tmp_path / "store") as rt:
        handle = rt.space("geo").register_disk_source(str(path))
        with (
            rt.read_pool.connection(path, source=handle.id) as pooled,
            gated(pooled.conn) as gate,
        ):
            with gate.user(policy):
                error = run_user(pooled.conn, "SELECT * FROM r")
            assert error is not None and is_denial(error)
            assert connect_rtrees(pooled.conn)
            with gate.user(policy):
                assert run_user(pooled.conn, "SELECT id, label FROM r WHERE x0 < 5") is None
                assert run_user(pooled.conn, "SELECT nodeno FROM r_node") is None
                for sql in (
                    "INSERT INTO r VALUES (2, 1, 2, 'b')",
                    "UPDATE r SET label = 'c'",
                    "DELETE FROM r",
                    "INSERT OR REPLACE INTO r_node VALUES (1, x'00')",
                    "DELETE FROM r_node WHERE nodeno = 1",
                    "INSERT OR REPLACE INTO r_rowid VALUES (1, 1, 'z')",
                    "UPDATE r_rowid SET a0 = 'z'",
                    "DELETE FROM r_parent",
                    "SELECT name FROM sqlite_master",
                ):
                    error = run_user(pooled.conn, sql)
                    assert error is not None and is_denial(error), sql
    assert path.read_bytes() == before


def test_a_statement_authorized_under_one_policy_is_authorized_again_under_another() -> None:
    """apsw's cache hands a prepared statement to the next statement of the same text; the gate
    makes SQLite prepare (and authorize) it again when the policy changes."""
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO messages (body) VALUES ('a'), ('b')")
    gate = Gate().install(conn)
    write = make_authorizer(Mode.WRITE, database="main", tables={"messages", "notes"})
    read = make_authorizer(Mode.READ, database="main", tables={"messages", "notes"})
    narrower = make_authorizer(Mode.WRITE, database="main", tables={"messages"})
    sql = "DELETE FROM messages WHERE id = 1"
    with gate.user(write):
        assert run_user(conn, sql) is None
    with gate.user(read):
        error = run_user(conn, sql)
    assert error is not None and is_denial(error)
    with gate.user(write):
        assert run_user(conn, "DELETE FROM notes") is None
    with gate.user(narrower):
        error = run_user(conn, "DELETE FROM notes")
    assert error is not None and is_denial(error)
    assert conn.execute("SELECT count(*) FROM messages").fetchall() == [(1,)]
    conn.close()


@pytest.mark.parametrize("many", [False, True])
def test_a_returning_write_past_the_guard_fails_and_writes_no_row(
    space: Space, monkeypatch: pytest.MonkeyPatch, many: bool
) -> None:
    """R23: what the authorizer cannot see (RETURNING) the runtime refuses before SQLite runs
    the statement — the guard. Should a RETURNING get past it, the write stops at the first
    row it returns (an ``exec_many`` wrote 1 row of 3, and committed): the commit fails, and
    nothing of it is written."""
    import dataclasses

    from sqlite_cells import _db

    real = _db.check_statement

    def blind(sql: str, mode: Mode) -> object:
        return dataclasses.replace(real(sql.replace(" RETURNING id", ""), mode), sql=sql)

    db = space.sqlite_database("r", tables={"t": sc.table(id="integer primary key", v="integer")})
    monkeypatch.setattr(_db, "check_statement", blind)
    with pytest.raises(sc.ExecError, match="RETURNING") as info, space.transact():
        if many:
            db.exec_many("INSERT INTO t (v) VALUES (?) RETURNING id", [[1], [2], [3]])
        else:
            db.exec("INSERT INTO t (v) VALUES (?) RETURNING id", [1])
    assert info.value.db_id == db.id
    monkeypatch.undo()
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}] and db.rev == 0


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE t SET v = _cf_json_patch(v, '{\"a\": 1}'), "
        "id = id + 0 * length(json_patch('{}', '{}'))",
        "UPDATE t SET v = \"_CF_JSON_SET\"(v, '$.a', 1, '$.b', 2) "
        "WHERE json_extract(v, '$.a', '$.b') IS NULL OR 1",
    ],
)
def test_a_runtime_json_function_named_by_the_user_is_denied_beside_a_rewritten_call(
    space: Space, monkeypatch: pytest.MonkeyPatch, sql: str
) -> None:
    """R23: the write connection allows the runtime's _cf_json_* functions to a statement it
    rewrote (a JSON call of many paths), and to those calls only: with the guard switched off,
    the user's own call of one, beside a call the runtime rewrites, is denied by the authorizer
    alone, as it is without that call; nothing is written."""
    import dataclasses

    from sqlite_cells import _db

    real = _db.check_statement
    harmless = "INSERT INTO t (v) VALUES (1)"

    def blind(text: str, mode: Mode) -> object:
        return dataclasses.replace(real(harmless, mode), sql=text)

    db = space.sqlite_database("j", tables={"t": sc.table(id="integer primary key", v="text")})
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES ('{}')")
    monkeypatch.setattr(_db, "check_statement", blind)
    with (
        pytest.raises(sc.ExecError, match="not authorized to use function") as info,
        space.transact(),
    ):
        db.exec(sql)
    assert info.value.db_id == db.id
    monkeypatch.undo()
    assert db.read("SELECT v FROM t") == [{"v": "{}"}] and db.rev == 1


SECOND_PRAGMAS = [
    "PRAGMA foreign_keys = OFF",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA _cf_db.table_xinfo(nothing)",  # what the write path lets the session extension ask
    "PRAGMA main.table_xinfo(t)",
]


@pytest.mark.parametrize("second", SECOND_PRAGMAS)
def test_a_pragma_in_a_second_statement_past_the_guard_runs_on_no_path(
    rt: sc.Runtime, space: Space, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """R23: with the guard switched off, a second statement reaches SQLite. On the write path
    the session extension's PRAGMA table_xinfo is allowed while the user's statement steps, and
    the authorizer cannot tell it from the same PRAGMA in a second statement (prepared while the
    first is done stepping): a write refuses a text with a second statement before the first
    runs. On the read path each statement is authorized alone, and a PRAGMA is denied. Nothing
    is written, and the file's journal mode is unchanged."""
    import dataclasses

    from sqlite_cells import _db

    real = _db.check_statement

    def blind(text: str, mode: Mode) -> object:
        harmless = "INSERT INTO t (v) VALUES (1)" if mode is Mode.WRITE else "SELECT v FROM t"
        return dataclasses.replace(real(harmless, mode), sql=text)

    db = space.sqlite_database("p", tables={"t": sc.table(id="integer primary key", v="integer")})
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (0)")
    monkeypatch.setattr(_db, "check_statement", blind)
    write = f"INSERT INTO t (v) VALUES (7); {second}"
    for many in (False, True):
        with (
            pytest.raises(sc.ExecError, match="more than one statement") as info,
            space.transact(),
        ):
            if many:
                db.exec_many(write, [[]])
            else:
                db.exec(write)
        assert info.value.db_id == db.id
    read = f"SELECT v FROM t; {second}"
    if "_cf_db" not in second:  # (no such database on a read connection)
        with pytest.raises(sc.QueryError, match="not authorized"):
            db.read(read)
        query = db.query(read)
        rt.settle()
        state = query.get()
        assert state.result is None and isinstance(state.error, sc.QueryError)
        assert "not authorized" in str(state.error)
    monkeypatch.undo()
    assert db.read("SELECT v FROM t") == [{"v": 0}] and db.rev == 1
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    finally:
        conn.close()


NOT_WRITES = [
    "REINDEX t",
    "REINDEX _cf_changes",  # the runtime's own table, in the database file
    "REINDEX nocase",
    "/* a comment first */ reindex t",
    "SELECT 1",
    "EXPLAIN INSERT INTO t (v) VALUES (1)",
]


@pytest.mark.parametrize("sql", NOT_WRITES)
def test_a_statement_that_is_not_a_write_past_the_guard_runs_on_no_write(
    space: Space, monkeypatch: pytest.MonkeyPatch, sql: str
) -> None:
    """R23: REINDEX of a table without indexes, or of a collation no index uses, reaches no
    authorizer callback (one that rebuilds an index is denied as SQLITE_REINDEX). With the
    guard switched off it ran on the write connection and committed as the database's write
    (its rev bumped); a SELECT or an EXPLAIN was refused only as returning rows. The write
    path refuses a text whose first word is not INSERT, REPLACE, UPDATE, DELETE or WITH
    before it runs, as not a write: nothing is written, db.exec and exec_many alike, and the
    next ordinary write goes on."""
    import dataclasses

    from sqlite_cells import _db

    real = _db.check_statement

    def blind(text: str, mode: Mode) -> object:
        return dataclasses.replace(real("INSERT INTO t (v) VALUES (1)", mode), sql=text)

    db = space.sqlite_database("n", tables={"t": sc.table(id="integer primary key", v="integer")})
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (0)")
    monkeypatch.setattr(_db, "check_statement", blind)
    for many in (False, True):
        with pytest.raises(sc.ExecError, match="not a write") as info, space.transact():
            if many:
                db.exec_many(sql, [[]])
            else:
                db.exec(sql)
        assert info.value.db_id == db.id
        assert info.value.sql == sql
    monkeypatch.undo()
    assert db.rev == 1
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (2)")
    assert db.read("SELECT v FROM t ORDER BY v") == [{"v": 0}, {"v": 2}] and db.rev == 2

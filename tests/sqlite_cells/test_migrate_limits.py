"""A ``migrate`` callback under the write path's limits and rules (R14, R34, R44): its statements
share one deadline of ``exec_timeout`` (a loop of steps, one long function call, a statement
started too late), SQLite's own ``sqlite_sequence`` is DDL it may cause, and a callback whose
body would never run (``async def``, a generator) is refused."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema._migrate import MigrationConnection, _MigrationPolicy, migrate_file
from sqlite_cells.schema._schema import declare_tables

V1 = {"t": sc.table(id="integer primary key", a="text")}
V2 = {"t": sc.table(id="integer primary key", a="text", b="text")}
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"

Migrate = Callable[[MigrationConnection, int], object]


@pytest.fixture
def fast(store: Path, quiet_helpers: None) -> Iterator[sc.Runtime]:
    with sc.Runtime(store, exec_timeout=0.2, poll_interval=0.01) as runtime:
        yield runtime


def _written_v1(runtime: sc.Runtime) -> tuple[Space, sc.SqliteDb]:
    space = runtime.space("s")
    db = space.sqlite_database("db", tables=V1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('x')")
    return space, db


def _file(db: sc.SqliteDb) -> tuple[object, ...]:
    """The file's version, schema and rows, read on a connection of its own."""
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        version = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall()
        schema = conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY name").fetchall()
        return version, schema, conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def _migrate_to_v2(space: Space, migrate: Migrate) -> pytest.ExceptionInfo[sc.MigrationError]:
    """Declare V2 with ``migrate`` and write it, expecting the migration to fail."""
    db2 = space.sqlite_database("db", tables=V2, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError) as info, space.transact():
        db2.exec("INSERT INTO t (a) VALUES ('y')")
    return info


def _still_writable(space: Space, db: sc.SqliteDb) -> None:
    # Every handle follows the latest declaration (V2, whose migration failed): declaring V1
    # again makes the file's own version the one written.
    space.sqlite_database("db", tables=V1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('z')")
    assert db.read("SELECT a FROM t ORDER BY id") == [{"a": "x"}, {"a": "z"}]


# -- the deadline (R44) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endless",
    [
        f"{ENDLESS} SELECT count(*) FROM c",
        f"{ENDLESS} UPDATE t SET a = (SELECT count(*) FROM c)",
        f"{ENDLESS} INSERT INTO t (a) SELECT 'n' FROM c",
    ],
    ids=["select", "update", "insert"],
)
def test_an_endless_statement_in_migrate_times_out(fast: sc.Runtime, endless: str) -> None:
    space, db = _written_v1(fast)
    before = _file(db)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        conn.execute(endless)

    info = _migrate_to_v2(space, migrate)
    cause = info.value.__cause__
    assert isinstance(cause, sc.ExecTimeout)
    assert isinstance(cause.__cause__, apsw.InterruptError)
    assert cause.sql == endless
    assert _file(db) == before  # nothing written: no column b, version 1
    _still_writable(space, db)


def test_one_long_function_call_in_migrate_times_out(fast: sc.Runtime) -> None:
    space, db = _written_v1(fast)
    before = _file(db)
    # One call of replace(): a single VM step of several seconds, the progress handler never runs.
    long_call = (
        "SELECT length(replace(printf('%.*c', 5000000, 'a'), printf('%.*c', 20000, 'a') || 'b', "
        "'x'))"
    )

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        conn.execute(long_call)

    info = _migrate_to_v2(space, migrate)
    cause = info.value.__cause__
    assert isinstance(cause, sc.ExecTimeout)
    assert "replace() ran past" in str(cause.__cause__)
    assert _file(db) == before
    _still_writable(space, db)


def test_a_statement_of_rows_of_long_calls_in_migrate_times_out_and_commits_nothing(
    fast: sc.Runtime,
) -> None:
    """R44: each row one long linear call (`randomblob` of 60 MB), ten rows: the progress
    handler's 1,000 steps come after the statement ended, so it ran well past exec_timeout and
    the migration committed. The write watchdog interrupts it, and a statement that ends past
    the deadline fails as it would have a moment earlier: nothing of the migration is kept."""
    space, db = _written_v1(fast)
    before = _file(db)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        conn.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) "
            "INSERT INTO t (a) SELECT length(randomblob(60000000)) FROM c"
        )

    info = _migrate_to_v2(space, migrate)
    assert isinstance(info.value.__cause__, sc.ExecTimeout)
    assert _file(db) == before
    _still_writable(space, db)


def test_the_deadline_is_for_the_whole_migration(fast: sc.Runtime) -> None:
    """Python code of the callback is not interrupted, but no statement starts after the
    migration's deadline, however short each one is."""
    space, db = _written_v1(fast)
    before = _file(db)
    ran: list[str] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        time.sleep(0.4)  # twice exec_timeout, in Python
        ran.append("slept")
        conn.execute("UPDATE t SET b = 'late'")
        ran.append("updated")

    info = _migrate_to_v2(space, migrate)
    assert ran == ["slept"]
    assert isinstance(info.value.__cause__, sc.ExecTimeout)
    assert "started after the migration's deadline" in str(info.value.__cause__)
    assert _file(db) == before
    _still_writable(space, db)


def test_a_migrate_returning_past_the_deadline_fails_and_commits_nothing(
    fast: sc.Runtime,
) -> None:
    """R44: a callback whose statements all ran in time, and whose Python code then ran past
    the migration's deadline (it cannot be interrupted, and runs with the space's write lock
    held), used to commit its migration however long it took. It fails as a statement past the
    deadline fails it: nothing of it commits."""
    space, db = _written_v1(fast)
    before = _file(db)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        conn.execute("UPDATE t SET b = 'in time'")
        time.sleep(0.4)  # twice exec_timeout, in Python, after the last statement

    info = _migrate_to_v2(space, migrate)
    assert "migrate(conn, from_version=1) returned past exec_timeout=0.2s" in str(info.value)
    assert str(info.value).endswith(
        "make the migration faster (do its work in SQL statements), or raise exec_timeout"
    )
    assert "nothing was written" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, sc.ExecTimeout)
    assert "past exec_timeout=0.2s" in str(cause)
    assert _file(db) == before  # nothing written: no column b, version 1
    _still_writable(space, db)


def test_a_caught_timeout_still_fails_the_migration(fast: sc.Runtime) -> None:
    space, db = _written_v1(fast)
    before = _file(db)
    seen: list[type[BaseException]] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        for sql in (f"{ENDLESS} UPDATE t SET a = (SELECT count(*) FROM c)", "SELECT 1"):
            try:
                conn.execute(sql)
            except sc.SqliteCellsError as exc:
                seen.append(type(exc))
        # and returns normally

    info = _migrate_to_v2(space, migrate)
    assert seen == [sc.ExecTimeout, sc.ExecTimeout]
    assert isinstance(info.value.__cause__, sc.ExecTimeout)
    assert _file(db) == before
    _still_writable(space, db)


def test_no_statement_runs_outside_the_migrations_transaction(tmp_path: Path) -> None:
    """An ``INSERT OR ROLLBACK`` that fails ends the transaction; a callback that catches the
    error must not go on in autocommit mode, where each statement would commit alone."""
    with sc.Runtime(tmp_path / "store") as runtime:
        space = runtime.space("s")
        db = space.sqlite_database("db", tables=V1)
        with space.transact():
            db.exec("INSERT INTO t (id, a) VALUES (1, 'x')")
        path = db.path
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    before = conn.execute("SELECT sql FROM sqlite_schema ORDER BY name").fetchall()
    seen: list[str] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")
        for sql in ("INSERT OR ROLLBACK INTO t (id) VALUES (1)", "ALTER TABLE t ADD COLUMN c"):
            try:
                conn.execute(sql)
            except sc.MigrationError as exc:
                seen.append(str(exc))

    with pytest.raises(sc.MigrationError) as info:
        migrate_file(path, declare_tables(V2), db_id="db", version=2, migrate=migrate)
    assert "UNIQUE constraint failed" in seen[0]
    assert "rolled the migration's transaction back" in seen[1]
    assert "rolled the migration's transaction back" in str(info.value)
    assert conn.execute("SELECT sql FROM sqlite_schema ORDER BY name").fetchall() == before
    assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall() == [(1,)]
    conn.close()


def test_waiting_for_the_files_lock_is_bounded_too(fast: sc.Runtime) -> None:
    """Another connection holds the database file's write lock: the migration waits
    ``exec_timeout`` for it, not the runtime's general busy timeout, and fails with
    ``ExecTimeout`` (the holder lets go only once the write has returned, or after 10 s)."""
    space, db = _written_v1(fast)
    holder = apsw.Connection(str(db.path))
    holder.execute("BEGIN IMMEDIATE")
    returned = threading.Event()

    def let_go() -> None:
        returned.wait(10)
        holder.execute("ROLLBACK")

    thread = threading.Thread(target=let_go)
    thread.start()
    db2 = space.sqlite_database(
        "db", tables=V2, version=2, migrate=lambda conn, v: conn.execute("ALTER TABLE t ADD b text")
    )
    try:
        with pytest.raises(sc.ExecTimeout), space.transact():
            db2.exec("INSERT INTO t (a) VALUES ('y')")
    finally:
        returned.set()
        thread.join()
        holder.close()
    with space.transact():  # the lock is free again: the migration runs now
        db2.exec("INSERT INTO t (a, b) VALUES ('y', 'b')")
    assert db2.read("SELECT a, b FROM t ORDER BY id") == [
        {"a": "x", "b": None},
        {"a": "y", "b": "b"},
    ]


# -- AUTOINCREMENT: SQLite's sqlite_sequence (R14 "DDL included") -------------------------------


AI = {
    "t": sc.table(id="integer primary key", a="text"),
    "ai": sc.table(id="integer primary key autoincrement", v="text"),
}


def _names(db: sc.SqliteDb) -> list[str]:
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_schema ORDER BY name")]
    finally:
        conn.close()


def test_migrate_creates_the_files_first_autoincrement_table(rt: sc.Runtime) -> None:
    space, db = _written_v1(rt)
    assert "sqlite_sequence" not in _names(db)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("CREATE TABLE ai (id integer primary key autoincrement, v text)")
        conn.execute("INSERT INTO ai (id, v) VALUES (41, 'old')")
        conn.execute("DELETE FROM ai")

    db2 = space.sqlite_database("db", tables=AI, version=2, migrate=migrate)
    with space.transact():
        db2.exec("INSERT INTO ai (v) VALUES ('new')")
    assert "sqlite_sequence" in _names(db2)
    assert db2.read("SELECT id, v FROM ai") == [{"id": 42, "v": "new"}]  # AUTOINCREMENT kept


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE sqlite_sequence SET seq = 100",
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('t', 5)",
        "DELETE FROM sqlite_sequence",
        "CREATE TABLE sqlite_sequence (name, seq)",
        "DROP TABLE sqlite_sequence",
    ],
    ids=["update", "insert", "delete", "create", "drop"],
)
def test_the_callback_itself_never_writes_sqlite_sequence(rt: sc.Runtime, statement: str) -> None:
    space = rt.space("s")
    db = space.sqlite_database("db", tables=AI)
    with space.transact():
        db.exec("INSERT INTO ai (v) VALUES ('a')")
    before = _file(db)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute(statement)

    db2 = space.sqlite_database("db", tables=AI, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError) as info, space.transact():
        db2.exec("INSERT INTO ai (v) VALUES ('b')")
    assert isinstance(info.value.__cause__, sc.MigrationError)  # refused inside migrate
    assert _file(db) == before


def test_the_implicit_create_is_allowed_only_inside_a_create_table() -> None:
    """The authorizer sequence SQLite sends for ``CREATE TABLE ai (… AUTOINCREMENT)`` on a file
    without ``sqlite_sequence``; the second CREATE alone, or in any other place, is denied."""
    ok, deny, create = apsw.SQLITE_OK, apsw.SQLITE_DENY, apsw.SQLITE_CREATE_TABLE
    policy = _MigrationPolicy()
    policy.start("CREATE")
    assert policy(create, "sqlite_sequence", None, "main", None) == deny
    assert policy(create, "ai", None, "main", None) == ok
    assert policy(create, "sqlite_sequence", None, "main", None) == ok
    assert policy(create, "sqlite_sequence", None, "temp", None) == deny
    assert policy(create, "sqlite_sequence", None, "main", "v") == deny
    assert policy(create, "_cf_x", None, "main", None) == deny
    policy.start("CREATE")  # a new statement forgets the table the previous one created
    assert policy(create, "sqlite_sequence", None, "main", None) == deny
    policy.start("INSERT")
    assert policy(create, "sqlite_sequence", None, "main", None) == deny


def test_an_autoincrement_table_added_by_the_additive_diff(rt: sc.Runtime) -> None:
    space, db = _written_v1(rt)
    assert "sqlite_sequence" not in _names(db)
    db2 = space.sqlite_database("db", tables=AI)  # same version: the additive diff adds it
    with space.transact():
        db2.exec("INSERT INTO ai (v) VALUES ('a')")
    assert "sqlite_sequence" in _names(db2)
    assert db2.read("SELECT id, v FROM ai") == [{"id": 1, "v": "a"}]


# -- a callback whose body never runs ----------------------------------------------------------


async def _async_migrate(conn: MigrationConnection, from_version: int) -> None:
    conn.execute("ALTER TABLE t ADD COLUMN b text")


def _generator_migrate(conn: MigrationConnection, from_version: int) -> Iterator[None]:
    conn.execute("ALTER TABLE t ADD COLUMN b text")
    yield


async def _async_generator_migrate(conn: MigrationConnection, from_version: int) -> object:
    conn.execute("ALTER TABLE t ADD COLUMN b text")
    yield None


class _AsyncCall:
    async def __call__(self, conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b text")


@pytest.mark.parametrize(
    "migrate",
    [
        _async_migrate,
        _generator_migrate,
        _async_generator_migrate,
        _AsyncCall(),
        functools.partial(_async_migrate),
    ],
    ids=["async", "generator", "async-generator", "async-call", "partial"],
)
def test_an_async_or_generator_migrate_is_refused_at_declaration(
    rt: sc.Runtime, migrate: object
) -> None:
    space = rt.space("s")
    with pytest.raises(sc.SchemaError, match="async or generator function"):
        space.sqlite_database("db", tables=V2, version=2, migrate=migrate)  # type: ignore[arg-type]


def test_a_migrate_returning_a_coroutine_fails_and_writes_nothing(rt: sc.Runtime) -> None:
    space, db = _written_v1(rt)
    before = _file(db)
    made: list[Awaitable[None]] = []

    def migrate(conn: MigrationConnection, from_version: int) -> Awaitable[None]:
        made.append(_async_migrate(conn, from_version))
        return made[0]

    info = _migrate_to_v2(space, migrate)
    assert "instead of running" in str(info.value)
    assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED  # no "never awaited"
    assert _file(db) == before
    _still_writable(space, db)


class _Shy:
    """A value whose own ``__class__`` raises (it is never asked: the result is judged by its
    type)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class here")


def test_what_a_migrate_returns_runs_none_of_its_own_code(rt: sc.Runtime) -> None:
    """R14: what ``migrate`` returns is not used; a value whose ``__class__`` raised was a raw
    RuntimeError at the write (Errors). It is judged by its type alone: the migration commits."""
    space, _ = _written_v1(rt)

    def migrate(conn: MigrationConnection, from_version: int) -> object:
        return _Shy()

    db2 = space.sqlite_database("db", tables=V2, version=2, migrate=migrate)
    with space.transact():
        db2.exec("INSERT INTO t (a, b) VALUES ('y', 'b')")
    assert db2.read("SELECT a, b FROM t ORDER BY id") == [
        {"a": "x", "b": None},
        {"a": "y", "b": "b"},
    ]


# -- A rebuilt table with a UNIQUE or a PRIMARY KEY that is not the rowid (R14) ---------------


def test_migrate_rebuilds_a_table_with_a_text_key_and_unique_columns(rt: sc.Runtime) -> None:
    """A retype is done by a rebuild in ``migrate``; the new table's key and UNIQUE columns get
    SQLite's own indexes (``sqlite_autoindex_*``), made inside its CREATE TABLE."""
    space = rt.space("s")
    v1 = {"t": sc.table(id="text primary key", x="integer", y="text unique")}
    db = space.sqlite_database("db", tables=v1)
    with space.transact():
        db.exec("INSERT INTO t (id, x, y) VALUES ('a', 1, 'p')")

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("CREATE TABLE t_new (id text primary key, x text, y text unique)")
        conn.execute("INSERT INTO t_new (id, x, y) SELECT id, CAST(x AS TEXT), y FROM t")
        conn.execute("DROP TABLE t")
        conn.execute("ALTER TABLE t_new RENAME TO t")

    v2 = {"t": sc.table(id="text primary key", x="text", y="text unique")}
    db2 = space.sqlite_database("db", tables=v2, version=2, migrate=migrate)
    with space.transact():
        db2.exec("INSERT INTO t (id, x, y) VALUES ('b', 'two', 'q')")
    assert db2.read("SELECT id, x, y FROM t ORDER BY id") == [
        {"id": "a", "x": "1", "y": "p"},
        {"id": "b", "x": "two", "y": "q"},
    ]
    assert [n for n in _names(db2) if n.startswith("sqlite_autoindex_t")] == [
        "sqlite_autoindex_t_1",
        "sqlite_autoindex_t_2",
    ]


def test_an_autoindex_is_allowed_only_for_the_table_being_created() -> None:
    ok, deny, index = apsw.SQLITE_OK, apsw.SQLITE_DENY, apsw.SQLITE_CREATE_INDEX
    policy = _MigrationPolicy()
    policy.start("CREATE")
    assert policy(index, "sqlite_autoindex_t_1", "t", "main", None) == deny  # no table yet
    assert policy(apsw.SQLITE_CREATE_TABLE, "t", None, "main", None) == ok
    assert policy(index, "sqlite_autoindex_t_1", "t", "main", None) == ok
    assert policy(index, "sqlite_autoindex_t_x", "t", "main", None) == deny
    assert policy(index, "sqlite_autoindex_u_1", "t", "main", None) == deny
    assert policy(index, "sqlite_autoindex_t_1", "t", "temp", None) == deny
    assert policy(index, "sqlite_autoindex__cf_meta_1", "_cf_meta", "main", None) == deny
    policy.start("CREATE")  # "CREATE INDEX sqlite_autoindex_t_1 ON t (x)" by the callback
    assert policy(index, "sqlite_autoindex_t_1", "t", "main", None) == deny


@pytest.mark.parametrize(
    ("column", "spec", "expected"),
    [
        ("b", "text check (b <> '')", [(1, "x", None), (2, "y", None)]),
        ("g", "integer as (id * 2) not null", [(1, "x", 2), (2, "y", 4)]),
    ],
    ids=["check", "generated-not-null"],
)
def test_migrate_adds_a_column_sqlite_checks_the_rows_for(
    rt: sc.Runtime, column: str, spec: str, expected: list[tuple[object, ...]]
) -> None:
    """SQLite checks the rows itself inside such an ``ADD COLUMN`` (it reads
    ``pragma_quick_check`` of the table): the migration authorizer refused that read as a
    PRAGMA of the callback's, so a plain ``ALTER TABLE`` could not run in a migration."""
    space, _ = _written_v1(rt)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute(f"ALTER TABLE t ADD COLUMN {column} {spec}")

    tables = {"t": sc.table({"id": "integer primary key", "a": "text", column: spec})}
    db2 = space.sqlite_database("db", tables=tables, version=2, migrate=migrate)
    with space.transact():
        db2.exec("INSERT INTO t (a) VALUES ('y')")
    assert [tuple(r.values()) for r in db2.read("SELECT * FROM t ORDER BY id")] == expected
    # The callback itself may still not read it.
    refused = sc.MigrationError
    db3 = space.sqlite_database(
        "db",
        tables=tables,
        version=3,
        migrate=lambda conn, v: conn.execute("SELECT * FROM pragma_quick_check"),
    )
    with pytest.raises(refused) as info, space.transact():
        db3.exec("INSERT INTO t (a) VALUES ('z')")
    assert "pragma_quick_check" in str(info.value)


@pytest.mark.parametrize("kind", ["virtual", "stored"])
def test_a_generated_not_null_column_is_added_to_a_table_with_rows(
    rt: sc.Runtime, kind: str
) -> None:
    """R13: a generated column computes its value for every row the table holds, so NOT NULL
    without a default is no reason to refuse it (it was: "existing rows need a value"). A row
    for which it would compute NULL is refused by SQLite, naming the column."""
    space, _ = _written_v1(rt)
    tables = {
        "t": sc.table(id="integer primary key", a="text", g=f"integer as (id * 2) {kind} not null")
    }
    db2 = space.sqlite_database("db", tables=tables)
    with space.transact():
        db2.exec("INSERT INTO t (a) VALUES ('y')")
    assert db2.read("SELECT id, g FROM t ORDER BY id") == [{"id": 1, "g": 2}, {"id": 2, "g": 4}]
    nulls = {
        "t": sc.table(
            id="integer primary key",
            a="text",
            g=f"integer as (id * 2) {kind} not null",
            n=f"text as (nullif(a, 'x')) {kind} not null",
        )
    }
    db3 = space.sqlite_database("db", tables=nulls)
    with pytest.raises(sc.UnsupportedMigration) as info, space.transact():
        db3.exec("INSERT INTO t (a) VALUES ('z')")
    assert "t.n" in str(info.value) and "NOT NULL constraint failed" in str(info.value)


def test_migrate_may_not_leave_a_new_row_whose_key_is_null(rt: sc.Runtime) -> None:
    """A write refuses to leave a row whose primary key is NULL (SQLite's session records no
    change to it); a migration left one, and every later write touching it failed."""
    keyed = {"t": sc.table(k="text primary key", v="text")}
    space = rt.space("s")
    db = space.sqlite_database("db", tables=keyed)
    with space.transact():
        db.exec("INSERT INTO t (k, v) VALUES ('a', 'x')")
    before = _keyed_file(db)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (NULL, 'no key')")

    db2 = space.sqlite_database("db", tables=keyed, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError) as info, space.transact():
        db2.exec("INSERT INTO t (k, v) VALUES ('b', 'y')")
    message = str(info.value)
    assert "table t holds 1 more row(s) whose primary key (t.k) is NULL" in message
    assert "nothing was written" in message
    assert _keyed_file(db) == before
    # A row whose key was NULL before the migration (another program's) is kept, as writes keep
    # it; the migration goes on.
    conn = apsw.Connection(str(db.path))
    conn.execute("INSERT INTO t (k, v) VALUES (NULL, 'old')")
    conn.close()
    db3 = space.sqlite_database(
        "db", tables=keyed, version=2, migrate=lambda conn, v: conn.execute("UPDATE t SET v = v")
    )
    with space.transact():
        db3.exec("INSERT INTO t (k, v) VALUES ('b', 'y')")
    assert db3.read("SELECT k, v FROM t ORDER BY k") == [
        {"k": None, "v": "old"},
        {"k": "a", "v": "x"},
        {"k": "b", "v": "y"},
    ]


def _keyed_file(db: sc.SqliteDb) -> tuple[object, ...]:
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        version = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall()
        return version, conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()
    finally:
        conn.close()


def test_a_migrate_that_changes_no_row_counts_no_null_keys(
    rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting rows whose key holds NULL scans a table whose key has two columns (its index
    serves the first only): a migration that changed no row cannot have left one, and pays
    nothing; one that did counts once, and reads the file as it was only if it finds some."""
    from sqlite_cells.schema import _migrate as migrate_module

    counted: list[str] = []
    real = migrate_module._null_key_rows

    def counting(conn: apsw.Connection, schema: Any) -> Any:
        counted.append("count")
        return real(conn, schema)

    monkeypatch.setattr(migrate_module, "_null_key_rows", counting)
    keyed = {"t": sc.table(k="text primary key", v="text")}
    space = rt.space("s")
    db = space.sqlite_database("db", tables=keyed)
    with space.transact():
        db.exec("INSERT INTO t (k, v) VALUES ('a', 'x')")
    added = {"t": sc.table(k="text primary key", v="text", w="text")}
    db2 = space.sqlite_database(
        "db",
        tables=added,
        version=2,
        migrate=lambda conn, v: conn.execute("ALTER TABLE t ADD COLUMN w text"),
    )
    with space.transact():
        db2.exec("INSERT INTO t (k, v) VALUES ('b', 'y')")
    assert counted == []
    db3 = space.sqlite_database(
        "db", tables=added, version=3, migrate=lambda conn, v: conn.execute("UPDATE t SET w = v")
    )
    with space.transact():
        db3.exec("INSERT INTO t (k, v) VALUES ('c', 'z')")
    assert counted == ["count"]
    assert db3.read("SELECT k, w FROM t ORDER BY k") == [
        {"k": "a", "w": "x"},
        {"k": "b", "w": "y"},
        {"k": "c", "w": None},
    ]

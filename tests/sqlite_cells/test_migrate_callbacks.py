"""What a ``migrate`` callback raises or does reaches the writer as a sqlite-cells error (R14,
R34, Errors): never a raw exception of the callback's own, of apsw or of Python's text
handling."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.schema._migrate import MigrationConnection

P = "integer primary key"
V1 = {"t": sc.table(id=P, a="text")}
V2 = {"t": sc.table(id=P, b="text")}


def _seeded(space: Space) -> None:
    db = space.sqlite_database("app", tables=V1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('one')")


def _write_v2(space: Space, migrate: object) -> sc.SqliteDb:
    db = space.sqlite_database("app", tables=V2, version=2, migrate=migrate)  # type: ignore[arg-type]
    with space.transact():
        db.exec("INSERT INTO t (b) VALUES ('two')")
    return db


def _stored(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        columns = [(r[1],) for r in conn.execute("PRAGMA table_info(t)")]
        meta = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'")
        version = [tuple(r) for r in meta]
        return columns, version
    finally:
        conn.close()


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ raised")


class _OwnBase(BaseException):
    pass


@pytest.mark.parametrize(
    "raised",
    [_Unprintable(), _OwnBase("stop"), GeneratorExit(), ValueError("bad \ud800 text")],
    ids=["str-raises", "base-exception", "generator-exit", "lone-surrogate"],
)
def test_what_migrate_raises_is_a_migration_error(space: Space, raised: BaseException) -> None:
    _seeded(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")
        raise raised

    with pytest.raises(sc.MigrationError) as info:
        _write_v2(space, migrate)
    assert info.value.__cause__ is raised
    message = str(info.value)
    message.encode("utf-8")  # printable: no lone surrogate
    assert f"raised {type(raised).__name__}" in message
    assert message.endswith("nothing was written")
    db = space.sqlite_database("app", tables=V1)
    assert _stored(db.path) == ([("id",), ("a",)], [(1,)])
    assert db.read("SELECT a FROM t") == [{"a": "one"}]


def test_a_lone_surrogate_in_the_text_is_escaped(space: Space) -> None:
    _seeded(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        raise ValueError("bad \ud800 text")

    with pytest.raises(sc.MigrationError) as info:
        _write_v2(space, migrate)
    assert "raised ValueError: bad \\ud800 text; nothing was written" in str(info.value)


def test_a_huge_text_is_quoted_by_its_beginning_and_length(space: Space) -> None:
    _seeded(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        raise ValueError("bad " + "x" * 1_000_000)

    with pytest.raises(sc.MigrationError) as info:
        _write_v2(space, migrate)
    message = str(info.value)
    assert "raised ValueError: bad xxx" in message
    assert "… (1,000,004 characters); nothing was written" in message
    assert len(message) < 2_000
    assert len(str(info.value.__cause__)) == 1_000_004


def test_keyboard_interrupt_in_migrate_passes_through(space: Space) -> None:
    _seeded(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _write_v2(space, migrate)
    db = space.sqlite_database("app", tables=V1)
    assert db.read("SELECT a FROM t") == [{"a": "one"}]


def test_closing_the_runtime_inside_migrate_is_a_closed_error(rt: sc.Runtime, space: Space) -> None:
    _seeded(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        rt.close()
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")

    with pytest.raises(sc.ClosedError, match="the runtime was closed while the commit ran"):
        _write_v2(space, migrate)
    with pytest.raises(sc.ClosedError):
        space.sqlite_database("app", tables=V2, version=2)


def test_text_that_is_not_utf8_in_a_result_is_said_so(space: Space) -> None:
    _seeded(space)
    refused: list[sc.MigrationError] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        try:
            conn.execute("SELECT CAST(x'61ff' AS TEXT) AS bad")
        except sc.MigrationError as exc:
            refused.append(exc)
        assert conn.execute("SELECT CAST(CAST(x'61ff' AS TEXT) AS BLOB)") == [(b"a\xff",)]
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")

    db = _write_v2(space, migrate)
    assert len(refused) == 1
    message = str(refused[0])
    assert "its result holds text that is not valid UTF-8" in message
    assert "CAST(column AS BLOB)" in message
    assert "parameters" not in message
    assert isinstance(refused[0].__cause__, UnicodeDecodeError)
    assert db.read("SELECT b FROM t ORDER BY id") == [{"b": "one"}, {"b": "two"}]


def test_the_connection_used_from_two_threads_is_a_migration_error(space: Space) -> None:
    _seeded(space)
    seen: dict[str, BaseException] = {}

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        def endless() -> None:
            while True:
                try:
                    conn.execute(
                        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                        "SELECT count(*) FROM c"
                    )
                except sc.SqliteCellsError as exc:
                    if "in another thread" in str(exc):
                        continue  # it came while the main thread's SELECT 1 ran: again
                    seen["worker"] = exc
                    return

        worker = threading.Thread(target=endless)
        worker.start()
        try:
            # SELECT 1 runs until the worker's statement holds the connection, which it does
            # until it is interrupted.
            while "main" not in seen:
                try:
                    conn.execute("SELECT 1")
                except BaseException as exc:  # kept for the test to look at
                    seen["main"] = exc
                # (A pause lets the worker's thread start its statement: on a loaded machine a
                # loop of SELECT 1 alone kept it from doing so until exec_timeout.)
                time.sleep(0.001)
        finally:
            while worker.is_alive():  # an interrupt before the statement starts is lost
                conn._conn.interrupt()
                worker.join(0.01)
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")

    # The worker's statement was interrupted: the migration fails, as any interrupted one.
    with pytest.raises(sc.MigrationError):
        _write_v2(space, migrate)
    main = seen["main"]
    assert isinstance(main, sc.MigrationError), repr(main)
    assert "running another statement, in another thread" in str(main)
    assert isinstance(seen["worker"], sc.SqliteCellsError), repr(seen["worker"])


@pytest.mark.parametrize("params", [[float("nan")], {"v": float("nan")}], ids=["list", "mapping"])
def test_a_nan_parameter_of_a_migrate_statement_is_refused(space: Space, params: object) -> None:
    """R6, R14: SQLite binds a NaN as NULL; ``db.exec`` refuses it, and so does a ``migrate``
    statement (it stored NULL over the row's value), with nothing written."""
    _seeded(space)
    sql = "UPDATE t SET b = ?" if isinstance(params, list) else "UPDATE t SET b = :v"

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")
        conn.execute(sql, params)  # type: ignore[arg-type]

    with pytest.raises(sc.MigrationError, match="is NaN, which SQLite would store as NULL"):
        _write_v2(space, migrate)
    db = space.sqlite_database("app", tables=V1)
    assert _stored(db.path) == ([("id",), ("a",)], [(1,)])
    assert db.read("SELECT a FROM t") == [{"a": "one"}]


def test_migrate_drops_what_another_program_left_in_the_file(space: Space) -> None:
    """R13, R14: another program's view, trigger, virtual table, and a table and an index it
    named `_cf_…` make the file differ from any declaration; the refusal says to bump version=
    with a migrate that drops them, and that migrate may (creating any of them stays refused,
    and so does touching the runtime's own tables or the foreign table's rows)."""
    db = space.sqlite_database("app", tables=V1)
    with space.transact():
        db.exec("INSERT INTO t (a) VALUES ('one')")
    conn = apsw.Connection(str(db.path))
    for sql in (
        "CREATE VIEW v AS SELECT a FROM t",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = a WHERE 0; END",
        "CREATE VIRTUAL TABLE f USING fts5(a)",
        "CREATE TABLE _cf_junk (x); INSERT INTO _cf_junk VALUES (1)",
        "CREATE INDEX _cf_ix ON t (a)",
    ):
        conn.execute(sql)
    conn.close()
    with pytest.raises(sc.UnsupportedMigration) as refused, space.transact():
        db.exec("INSERT INTO t (a) VALUES ('two')")
    said = str(refused.value)
    assert "no declaration holds a view: bump version= with a migrate that drops it" in said
    assert "no declaration holds a trigger" in said and "virtual table" in said
    refusals: list[str] = []

    def migrate(mc: MigrationConnection, from_version: int) -> None:
        for sql in ("DELETE FROM _cf_junk", "DROP TABLE _cf_meta", "CREATE VIEW w AS SELECT 1"):
            try:
                mc.execute(sql)
            except sc.MigrationError as exc:
                refusals.append(sql if "SQLITE_AUTH" in str(exc) else str(exc))
        for sql in ("DROP VIEW v", "DROP TRIGGER tr", "DROP TABLE f", "DROP TABLE _cf_junk"):
            mc.execute(sql)
        mc.execute("DROP INDEX _cf_ix")

    again = space.sqlite_database("app", tables=V1, version=2, migrate=migrate)
    with space.transact():
        again.exec("INSERT INTO t (a) VALUES ('two')")
    assert refusals == ["DELETE FROM _cf_junk", "DROP TABLE _cf_meta", "CREATE VIEW w AS SELECT 1"]
    assert again.read("SELECT a FROM t ORDER BY id") == [{"a": "one"}, {"a": "two"}]
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    names = {
        r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite%'")
    }
    conn.close()
    assert names == {"t", "_cf_meta", "_cf_watermark", "_cf_changes"}


class _AllAlike(str):
    """A str subclass whose instances all compare equal and hash alike."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


def test_a_migrate_statement_given_as_a_str_subclass_is_judged_as_its_text(space: Space) -> None:
    """R14, R23: a migrate statement given as a str subclass whose own __eq__ and __hash__ found
    the scan of an earlier text ("SELECT 1") got a second statement and a REINDEX of the
    runtime's own tables past the checks the authorizer cannot make. Its text is judged, as
    db.exec's is."""
    _seeded(space)
    refusals: list[str] = []

    def migrate(mc: MigrationConnection, from_version: int) -> None:
        assert mc.execute(_AllAlike("SELECT 1")) == [(1,)]
        for sql in ("REINDEX _cf_meta", "SELECT 2; REINDEX _cf_meta"):
            try:
                mc.execute(_AllAlike(sql))
            except sc.MigrationError as exc:
                refusals.append(str(exc))
        mc.execute("ALTER TABLE t RENAME COLUMN a TO b")

    _write_v2(space, migrate)
    assert len(refusals) == 2
    assert "the runtime's own tables" in refusals[0] and "several statements" in refusals[1]


def test_a_migrate_statement_refused_is_one_error_naming_the_database_once(
    store: Path,
) -> None:
    """R14: a statement of the callback that the runtime's connection refuses was a
    ``MigrationError`` wrapped in a second one ("migrate(…) raised MigrationError: database …:
    migrate statement … refused"), the database named twice. It is said once now, with the
    call, and the refusal stays reachable as the cause."""

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("DROP TABLE _cf_meta")

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        _seeded(space)
        with pytest.raises(sc.MigrationError) as info:
            _write_v2(space, migrate)
        text = str(info.value)
        assert text.count(info.value.db_id) == 1, text
        assert text.startswith(
            f"database {info.value.db_id}: migrate(conn, from_version=1): migrate statement "
            "'DROP TABLE _cf_meta' refused"
        ), text
        assert "raised MigrationError" not in text and text.endswith("; nothing was written")
        assert isinstance(info.value.__cause__, sc.MigrationError)
        db = space.sqlite_database("app", tables=V1)
        assert db.read("SELECT a FROM t") == [{"a": "one"}]


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE t RENAME TO _cf_x",
        'ALTER TABLE main.t RENAME TO "_CF_x";',
        "ALTER TABLE t RENAME /* to */ TO '_cf_x'",
    ],
    ids=["bare", "qualified-quoted", "string-literal"],
)
def test_a_migrate_renaming_a_table_to_a_cf_name_is_refused_before_it_runs(
    space: Space, sql: str
) -> None:
    """R12, R14: the authorizer is never told the new name of ``ALTER TABLE … RENAME TO``, so
    a migrate renaming its table to ``_cf_x`` ran it, and the check after migrate refused the
    file saying "another program" had made that object. The statement is refused before it
    runs now, naming it, what was wrong and what to do; nothing is written."""
    _seeded(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute(sql)

    with pytest.raises(sc.MigrationError) as info:
        _write_v2(space, migrate)
    text = str(info.value)
    assert f"migrate statement {sql!r} refused: it renames a table to " in text, text
    assert "names starting with _cf_ are kept for the runtime's own tables (R12)" in text
    assert "the statement was not run: rename the table to another name" in text
    assert "another program" not in text and text.endswith("; nothing was written")
    db = space.sqlite_database("app", tables=V1)
    assert _stored(db.path) == ([("id",), ("a",)], [(1,)])
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    conn.close()
    assert names == {"t", "_cf_meta", "_cf_watermark", "_cf_changes"}
    assert db.read("SELECT a FROM t") == [{"a": "one"}]

    refusals: list[str] = []

    def caught(conn: MigrationConnection, from_version: int) -> None:
        try:
            conn.execute(sql)
        except sc.MigrationError as exc:
            refusals.append(str(exc))
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")  # t was not renamed

    again = _write_v2(space, caught)
    assert len(refusals) == 1 and "rename the table to another name" in refusals[0]
    assert again.read("SELECT b FROM t ORDER BY id") == [{"b": "one"}, {"b": "two"}]


def test_settle_in_a_migrate_callback_waited_for_by_a_subscriber_is_refused(
    tmp_path: Path,
) -> None:
    """§3, R14: ``rt.settle()`` in a ``migrate`` callback, while a subscriber commits to the
    same space, hung for good: the migration's commit holds the space's write lock until the
    callback returns, the subscriber's commit waits for that lock, and settle() waits for the
    subscriber. It raises TransactionError once the subscriber waits for that commit (as a
    commit from the callback is refused); the callback may go on, and the write commits."""
    with sc.Runtime(tmp_path) as rt:
        _seeded(rt.space("s"))
    rt = sc.Runtime(tmp_path)
    space = rt.space("s")
    trigger = space.cell("trigger", default=0)
    counted = space.cell("counted", default=0)
    go = threading.Event()

    def subscriber(value: object) -> None:
        if value == 1:
            go.wait()  # (until the migration holds the space's write lock)
            with space.transact():
                counted.set(counted.get() + 1)

    trigger.observe().subscribe(subscriber)
    with space.transact():
        trigger.set(1)
    raised: list[BaseException] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("ALTER TABLE t RENAME COLUMN a TO b")
        go.set()
        try:
            rt.settle(timeout=30)  # (without one it hung)
        except sc.TransactionError as exc:
            raised.append(exc)

    db = _write_v2(space, migrate)
    (error,) = raised
    assert "settle() inside a commit of the space (a migrate callback)" in str(error)
    assert "call settle() after the write has returned" in str(error)
    assert rt.settle()
    assert counted.get() == 1
    assert db.read("SELECT b FROM t ORDER BY id") == [{"b": "one"}, {"b": "two"}]
    rt.close()

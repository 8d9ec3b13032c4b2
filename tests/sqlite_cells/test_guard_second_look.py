"""A second look at the statement guard and the authorizer (R12, R13, R20–R24), from the SPEC.

What the corpus and the other guard tests leave out: exact kinds and offsets after leading
comments, line ends and characters of several bytes; which of two violations is met first;
``empty`` and ``multiple-statements`` decided before anything else, and only when there is a
second statement; string literals and quoted names in every name position; the runtime's alias
and three-part names; functions in every quoting; odd tokens and very large statements on every
path of the runtime (never a raw sqlglot, apsw, Unicode or recursion error); R22's shapes through
the runtime (nothing recorded, the transaction still usable); the authorizer alone rejecting new
hostile statements on the runtime's real connections (the space's write connection with the
database attached, a pooled reader of the cell's file, a pooled reader of a disk source); and
the command line's ``query``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import GuardViolation, SqliteCellsError
from sqlite_cells.files import ALIAS, attach
from sqlite_cells.sql import Gate, Mode, _guard, check_statement
from sqlite_cells.sql._authorizer import make_authorizer

from .._files import read_bytes
from ..conftest import COMMAND, run_cli
from .test_authorizer import Recorder, gated, is_denial, reserved_state, run_user

R, W = Mode.READ, Mode.WRITE

TABLES = {
    "messages": sc.table(
        id="integer primary key",
        body="text",
        author_cf_link=sc.cf_link(),
        ts="integer not null default 0",
    ),
    "users": sc.table(id="integer primary key", name="text unique", score="integer default 0"),
    "notes": sc.table({"id": "integer primary key", "returning": "text", "main": "text"}),
}
DECLARED = frozenset(TABLES)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    _guard.clear_cache()
    yield
    _guard.clear_cache()


def refusal(sql: str, mode: Mode) -> GuardViolation:
    with pytest.raises(GuardViolation) as caught:
        check_statement(sql, mode)
    return caught.value


def _offset(sql: str, at: int | str) -> int:
    """``at`` itself, or the index where the text ``at`` first stands in ``sql``."""
    return at if isinstance(at, int) else sql.index(at)


# --- exact kinds and offsets (R24) ---------------------------------------------------------------

VERDICTS: list[tuple[str, Mode, str, int | str]] = [
    # offsets are character offsets, after comments, line ends and characters of several bytes
    ('-- é😀 note\n/* 日本 ; */ SELECT * FROM "sqlite_master"', R, "reserved-name", '"sql'),
    ("SELECT '😀😀', * FROM sqlite_master", R, "reserved-name", 20),
    ("SELECT 'e\u0301', body FROM main.messages", R, "schema-qualified", "main"),
    ("\r\n\t/* ; */\r\nDELETE FROM messages", R, "not-read-only", "DELETE"),
    ("\ufeff\u00e9 SELECT 1", R, "not-read-only", 0),
    ("SELECT '日本' AS x FROM messages; SELECT 2", R, "multiple-statements", "SELECT 2"),
    ("SELECT '\U0001f600' FROM [_cf_db].[messages]", R, "schema-qualified", "[_cf_db]"),
    ('SELECT "ü".id FROM messages AS "ü" JOIN \'_cf_meta\' ON 1', R, "reserved-name", "'_cf"),
    # the first violation met scanning left to right
    ("SELECT load_extension('x') FROM sqlite_master", R, "forbidden-function", 7),
    ("SELECT * FROM sqlite_master WHERE body = load_extension('a')", R, "reserved-name", 14),
    ("SELECT _cf_x.a FROM main.messages", R, "reserved-name", 7),
    ("SELECT * FROM main.messages JOIN _cf_meta ON 1", R, "schema-qualified", 14),
    ("SELECT sqlite_version(), edit('x') FROM temp.t", R, "forbidden-function", "edit"),
    ("DELETE FROM messages RETURNING (SELECT 1 FROM sqlite_master)", W, "returning", 21),
    (
        "DELETE FROM messages WHERE id IN (SELECT 1 FROM _cf_meta) RETURNING 1",
        W,
        "reserved-name",
        "_cf_meta",
    ),
    ("INSERT INTO messages SELECT * FROM main.messages RETURNING *", W, "schema-qualified", "main"),
    ("UPDATE messages SET body = 1 RETURNING (SELECT 1 FROM main.t)", W, "returning", "RETURNING"),
    # a statement-kind verdict is met at the first keyword (WITH too), before any name after it
    ("WITH x AS (SELECT * FROM sqlite_master) SELECT 1", W, "not-a-write", 0),
    ("WITH x AS (SELECT load_extension(1)) DELETE FROM messages", R, "not-read-only", 0),
    ("/* c */ WITH x AS (SELECT * FROM main.t) DELETE FROM t", R, "not-read-only", "WITH"),
    ("VACUUM sqlite_master", R, "forbidden-statement", 0),
    ("ATTACH '_cf_x' AS main2", W, "forbidden-statement", 0),
    ("SELECT * FROM sqlite_master", W, "not-a-write", 0),
    ('DELETE FROM "_cf_meta"', R, "not-read-only", 0),
    ("-- x\nREINDEX messages", W, "forbidden-statement", 5),
    ("/**/EXPLAIN DELETE FROM messages", W, "not-a-write", 4),
    # empty and multiple-statements are decided first
    ("SELECT 1; ;", R, "multiple-statements", 10),
    ("SELECT 1 ; ; ", R, "multiple-statements", 11),
    ("SELECT * FROM sqlite_master; SELECT 1", R, "multiple-statements", "SELECT 1"),
    ("PRAGMA x; SELECT 1", R, "multiple-statements", "SELECT 1"),
    ("SELECT 'unterminated; SELECT 1", R, "not-read-only", 7),
    (" ;SELECT 1", R, "multiple-statements", 2),
    ("DELETE FROM _cf_meta;\nDELETE FROM messages", W, "multiple-statements", "DELETE FROM m"),
    (";", R, "empty", 0),
    (" ; ;\n;\t", W, "empty", 0),
    ("/* only */ -- comments\n", W, "empty", 0),
    ("\n\r\t\f ", R, "empty", 0),
    # after the final ";" an unterminated comment or a NUL starts no second statement: SQLite
    # reads the comment to the end (apsw finds nothing more to run) and stops at the NUL; the
    # guard refuses both as it refuses them before the ";" (syntax), and says what is wrong
    ("SELECT 1; /* x", R, "not-read-only", 10),
    ("SELECT 1;/*", R, "not-read-only", 9),
    ("SELECT 1;\0", R, "not-read-only", 9),
    ("SELECT 1; -- x \0", R, "not-read-only", 15),
    ("DELETE FROM messages;\n/* unterminated", W, "not-a-write", "/*"),
    # ... but text after the ";" is a second statement when a token starts there
    ("SELECT 1; 'unterminated", R, "multiple-statements", "'"),
    ("SELECT 1;\0 SELECT 2", R, "not-read-only", 9),
    ("SELECT 1; SELECT 2\0", R, "multiple-statements", 10),
    ("SELECT 1; x /* unterminated", R, "multiple-statements", "x"),
    # string literals in name positions, in every case and quoting (R24)
    ("SELECT * FROM '_CF_LOG'", R, "reserved-name", 14),
    ('SELECT * FROM messages JOIN "sqlite_master" ON 1', R, "reserved-name", '"'),
    ("SELECT * FROM messages NATURAL JOIN 'Sqlite_Schema'", R, "reserved-name", "'"),
    ("SELECT * FROM messages CROSS JOIN `_cf_meta`", R, "reserved-name", "`"),
    ("INSERT INTO '_cf_x' VALUES (1)", W, "reserved-name", 12),
    ("INSERT OR IGNORE INTO [_cf_x] DEFAULT VALUES", W, "reserved-name", "["),
    ("UPDATE OR REPLACE '_cf_x' SET a = 1", W, "reserved-name", 18),
    ('UPDATE OR ABORT "SQLITE_X" SET a = 1', W, "reserved-name", '"'),
    ("SELECT * FROM messages WHERE id IN 'sqlite_schema'", R, "reserved-name", "'"),
    ('SELECT * FROM messages WHERE id NOT IN "_cf_log"', R, "reserved-name", '"'),
    ("SELECT * FROM 'main'.messages", R, "schema-qualified", 14),
    ("SELECT messages.'_cf_x' FROM messages", R, "reserved-name", "'"),
    ("SELECT * FROM (('sqlite_master'))", R, "reserved-name", "'"),
    ("SELECT * FROM (messages, ((users, 'sqlite_master')))", R, "reserved-name", "'"),
    ("SELECT * FROM messages JOIN users USING (id), '_cf_meta'", R, "reserved-name", "'"),
    ("SELECT * FROM (SELECT 1) AS x, '_cf_meta'", R, "reserved-name", "'"),
    ("SELECT * FROM (VALUES (1)), 'sqlite_master'", R, "reserved-name", "'"),
    ("SELECT * FROM json_each('[1]') AS j, 'sqlite_master'", R, "reserved-name", "'s"),
    ("WITH x AS (SELECT * FROM '_cf_meta') SELECT * FROM x", R, "reserved-name", "'"),
    ("SELECT * FROM 'pragma_table_info'('_cf_log')", R, "forbidden-function", 14),
    ("SELECT * FROM messages WHERE id IN 'pragma_table_list'()", R, "forbidden-function", "'"),
    ("SELECT * FROM \"dbstat\"('_cf_db')", R, "forbidden-function", 14),
    ('SELECT * FROM "sqlite_master "', R, "reserved-name", 14),
    ("SELECT * FROM [sqlite_master ]", R, "reserved-name", 14),
    ("SELECT * FROM 'sqlite_master\t'", R, "reserved-name", 14),
    (
        "SELECT * FROM messages AS m, users AS u WHERE m.id IN 'sqlite_master'",
        R,
        "reserved-name",
        "'",
    ),
    ("DELETE FROM messages WHERE EXISTS (SELECT 1 FROM 'sqlite_master')", W, "reserved-name", "'"),
    # schema qualification: main, temp and the runtime's alias, in every quoting and case
    ("SELECT * FROM temp.messages", R, "schema-qualified", 14),
    ('SELECT * FROM "MAIN".messages', R, "schema-qualified", 14),
    ("SELECT * FROM `Temp`.messages", R, "schema-qualified", 14),
    (f"SELECT * FROM [{ALIAS.upper()}].messages", R, "schema-qualified", 14),
    (f"SELECT * FROM `{ALIAS}`.messages", R, "schema-qualified", 14),
    (f"SELECT * FROM '{ALIAS}'.messages", R, "schema-qualified", 14),
    (f"SELECT * FROM \"{ALIAS}\" . 'messages'", R, "schema-qualified", 14),
    (f"INSERT INTO {ALIAS}.messages(body) VALUES (1)", W, "schema-qualified", 12),
    (f"UPDATE OR IGNORE [{ALIAS}].users SET score = 1", W, "schema-qualified", 17),
    (f"DELETE FROM messages WHERE id IN {ALIAS}.users", W, "schema-qualified", ALIAS),
    (
        "SELECT * FROM messages WHERE id IN (SELECT id FROM main.users)",
        R,
        "schema-qualified",
        "main",
    ),
    ("SELECT * FROM a.b.c", R, "schema-qualified", 14),
    ("SELECT x.y.z FROM messages AS x", R, "schema-qualified", 7),
    ("SELECT \"x\".'y'.[z] FROM messages AS x", R, "schema-qualified", 7),
    ("SELECT * FROM messages WHERE main.messages.id = 1", R, "schema-qualified", "main"),
    ("SELECT main.body FROM messages AS main", R, "schema-qualified", 7),
    # functions in every case and quoting, in subqueries, CTEs and upserts
    ("SELECT \"load_extension\"('x')", R, "forbidden-function", 7),
    ("SELECT Load_Extension ('x')", R, "forbidden-function", 7),
    ("SELECT * FROM (SELECT [readfile]('x'))", R, "forbidden-function", "["),
    ("WITH x AS (SELECT `WriteFile`('/tmp/x', 'y')) SELECT * FROM x", R, "forbidden-function", "`"),
    (
        "INSERT INTO users(name) VALUES ('a') ON CONFLICT(name) DO UPDATE SET "
        "score = fts3_tokenizer('simple')",
        W,
        "forbidden-function",
        "fts3",
    ),
    ("DELETE FROM messages WHERE body = EDIT('x', 'vi')", W, "forbidden-function", "EDIT"),
    ("SELECT load_extension --c\n('x')", R, "forbidden-function", 7),
    ("SELECT sqlite_log(1, 'x')", R, "reserved-name", 7),
    ('SELECT "sqlite_offset"(id) FROM messages', R, "reserved-name", 7),
    ("SELECT sqlite_rename_table(1, 2, 3, 4, 5, 6, 7)", R, "reserved-name", 7),
    ("SELECT _cf_json_extract('{}', '$.a', '$.b')", R, "reserved-name", 7),
    ("SELECT name FROM pragma_table_info('_cf_log')", R, "forbidden-function", 17),
    ("SELECT * FROM PRAGMA_FUNCTION_LIST", R, "forbidden-function", 14),
    (
        "SELECT * FROM messages WHERE id IN (SELECT pgno FROM DbStat)",
        R,
        "forbidden-function",
        "DbStat",
    ),
    # functions that report the write connection's row counts, which the runtime's own
    # statements move between the user's: refused in any quoting (decision)
    ("INSERT INTO messages(ts) VALUES (changes())", W, "forbidden-function", "changes"),
    ('UPDATE users SET score = "TOTAL_CHANGES"()', W, "forbidden-function", '"'),
    ("SELECT [Changes] ()", R, "forbidden-function", 7),
    ("SELECT total_changes() FROM messages", R, "forbidden-function", 7),
    # a call's AS names an alias: a call still, whatever the alias looks like
    ('SELECT changes() AS "(" FROM messages', R, "forbidden-function", 7),
    ("SELECT load_extension('x') AS materialized", R, "forbidden-function", 7),
    ("WITH x(a) AS (SELECT edit('y') AS b) SELECT * FROM x", R, "forbidden-function", "edit"),
    # RETURNING in every write shape, after odd whitespace and comments
    ("INSERT INTO messages(body) SELECT name FROM users RETURNING id", W, "returning", "RETURNING"),
    (
        "INSERT INTO users(name) VALUES ('a') ON CONFLICT DO NOTHING RETURNING id",
        W,
        "returning",
        "RETURNING",
    ),
    ("INSERT INTO messages(body) VALUES (1)/**/RETURNING/**/id", W, "returning", "RETURNING"),
    ("INSERT INTO messages(body) VALUES (1)\n\tReTuRnInG\fid", W, "returning", "ReTuRnInG"),
    (
        "WITH x AS (SELECT 1) UPDATE messages SET ts = 1 -- c\nreturning *",
        W,
        "returning",
        "returning",
    ),
    (
        "DELETE FROM messages WHERE id IN (SELECT id FROM messages) RETURNING id",
        W,
        "returning",
        "RETURNING",
    ),
    ('REPLACE INTO notes(id) VALUES (1) RETURNING "returning"', W, "returning", "RETURNING"),
    # transaction control, through either call
    ("BEGIN", W, "forbidden-statement", 0),
    ("begin deferred", R, "forbidden-statement", 0),
    ("COMMIT TRANSACTION", W, "forbidden-statement", 0),
    ("END", W, "forbidden-statement", 0),
    ('SAVEPOINT "sp"', W, "forbidden-statement", 0),
    ("RELEASE sp", R, "forbidden-statement", 0),
    ("ROLLBACK TO sp", W, "forbidden-statement", 0),
    (" /* ; */ Rollback", R, "forbidden-statement", 9),
    # odd tokens: what SQLite cannot read, refused where it starts
    ("SELECT 0x", R, "not-read-only", 7),
    ("SELECT 1e", R, "not-read-only", 7),
    ("DELETE FROM messages WHERE ts = 1e+", W, "not-a-write", "1e+"),
    ("SELECT .5.", R, "not-read-only", 7),
    ("SELECT $", R, "not-read-only", 7),
    ("SELECT :", R, "not-read-only", 7),
    ("SELECT @", R, "not-read-only", 7),
    ("SELECT ?0", R, "not-read-only", 7),
    ("SELECT ?99999999999", R, "not-read-only", 7),
    ("SELECT ?32767", R, "not-read-only", 7),
    ("SELECT 0x_1", R, "not-read-only", 7),
    ("SELECT 1e5sqlite_master", R, "not-read-only", 7),
    ("SELECT 'abc", R, "not-read-only", 7),
    ('SELECT "abc', R, "not-read-only", 7),
    ("SELECT [abc", R, "not-read-only", 7),
    ("SELECT `abc", R, "not-read-only", 7),
    ("SELECT /* abc", R, "not-read-only", 7),
    ("SELECT x'0", R, "not-read-only", 7),
    ("DELETE FROM messages WHERE body = 'a\0'", W, "not-a-write", "\0"),
    ("SELECT '\udc80' FROM sqlite_master", R, "not-read-only", 8),
    ("SELECT \ud83d\ude00", R, "not-read-only", 7),
    # A WITH list SQLite cannot read on from (malformed, or followed by no statement) is a
    # syntax verdict where it stops; a rule broken before that is met first.
    ("WITH x AS (SELECT * FROM sqlite_master) SELEC * FROM x", R, "reserved-name", 25),
    ("WITH x AS (SELECT * FROM sqlite_master)", R, "reserved-name", 25),
    ("WITH x AS (SELECT * FROM main.t), SELECT 1", R, "schema-qualified", 25),
    ("WITH x AS (SELECT load_extension('a')) y", R, "forbidden-function", 18),
    ("WITH x AS (SELECT 1) DELET FROM messages", W, "not-a-write", "DELET"),
    ("WITH x AS (SELECT 1)", W, "not-a-write", 20),
]


@pytest.mark.parametrize(("sql", "mode", "kind", "at"), VERDICTS)
def test_verdicts(sql: str, mode: Mode, kind: str, at: int | str) -> None:
    error = refusal(sql, mode)
    offset = _offset(sql, at)
    assert (error.kind, error.offset) == (kind, offset)
    assert error.sql == sql
    assert isinstance(error, SqliteCellsError) and isinstance(error, ValueError)
    assert str(error).startswith(f"{kind} at offset {offset}: ")


ACCEPTED: list[tuple[str, Mode]] = [
    # a trailing ";" with comments after it is one statement
    ("SELECT 1;--x", R),
    ("SELECT 1;/*x*/", R),
    ("SELECT 1;\n-- x\n/* y */\n", R),
    ("DELETE FROM messages; -- done", W),
    # column qualification stays legal, in every quoting, strings after "." included
    ("SELECT messages.body, m.id FROM messages, messages AS m", R),
    ("SELECT \"messages\".[body], `m`.'id' FROM messages AS m", R),
    ("SELECT t.main FROM notes AS t", R),
    ("SELECT main FROM notes", R),
    ("UPDATE notes SET main = 'main.users' WHERE notes.main IS NULL", W),
    # names that only look reserved: another name to SQLite too
    ('SELECT * FROM " sqlite_master"', R),
    ('SELECT * FROM "sqlite""_master"', R),
    ("SELECT * FROM [sqlite master]", R),
    ('SELECT * FROM messages AS "cf_meta"', R),
    # a quoted RETURNING is a name, in every quoting
    ('INSERT INTO notes("returning") VALUES (1)', W),
    ("INSERT INTO notes([RETURNING], `main`) VALUES (1, 2)", W),
    ('UPDATE notes SET "returning" = \'RETURNING\' WHERE "returning" IS NULL', W),
    ("INSERT INTO notes('returning') VALUES ('x')", W),
    # string literals that are data
    ("SELECT * FROM messages WHERE body = 'sqlite_master' OR body IN ('_cf_meta')", R),
    ("INSERT INTO messages(body) VALUES ('main.messages'), ('load_extension(1)')", W),
    # R22's shapes
    ("VALUES (1), (2)", R),
    ("WITH x(n) AS (VALUES (1)) SELECT n FROM x", R),
    ("WITH x AS (SELECT 1 AS n) INSERT INTO messages(ts) SELECT n FROM x", W),
    ("WITH x AS (SELECT 1 AS n) REPLACE INTO messages(ts) SELECT n FROM x", W),
    ("INSERT OR ROLLBACK INTO users(name) VALUES ('a')", W),
    ("UPDATE OR ABORT users SET score = 1", W),
    # a CTE named like a forbidden function, with a column list, is no call
    ("WITH changes(id) AS (SELECT 1) DELETE FROM messages WHERE id IN changes", W),
    ("WITH load_extension(a) AS MATERIALIZED (SELECT 1) SELECT a FROM load_extension", R),
    ("WITH x AS (SELECT 1), Edit(b) AS NOT MATERIALIZED (SELECT 2) SELECT * FROM x, Edit", R),
    ("SELECT * FROM (WITH readfile(f) AS (VALUES (1)) SELECT f FROM readfile)", R),
    # a column or table named like a counting function is no call; last_insert_rowid() is fine
    ("INSERT INTO changes(total_changes) VALUES (last_insert_rowid())", W),
    ("SELECT changes, total_changes FROM t", R),
    # harmless sqlite_ functions, called
    ('SELECT sqlite_version(), "sqlite_source_id"(), [sqlite_compileoption_get](0)', R),
]


@pytest.mark.parametrize(("sql", "mode"), ACCEPTED)
def test_accepted(sql: str, mode: Mode) -> None:
    checked = check_statement(sql, mode)
    assert checked.sql == sql and checked.mode is mode


# --- the runtime: R22's shapes, odd tokens and large statements on every path --------------------


@pytest.fixture
def cells(space: Space) -> sc.SqliteDb:
    return space.sqlite_database("second", tables=TABLES)


@pytest.fixture
def source(space: Space, tmp_path: Path) -> Any:
    path = tmp_path / "source.db"
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, body TEXT, author_cf_link TEXT, ts INT);"
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score INT);"
        "INSERT INTO messages(body) VALUES ('source');"
    )
    conn.close()
    return space.register_disk_source(str(path))


def _paths(space: Space, db: sc.SqliteDb, source: Any) -> dict[str, Callable[[str], object]]:
    """Every way a statement reaches the runtime, reads then writes."""

    def exec_(sql: str) -> None:
        with space.transact():
            db.exec(sql)

    def exec_many(sql: str) -> None:
        with space.transact():
            db.exec_many(sql, [[], []])

    def query(sql: str) -> object:
        q = db.query(sql)
        db.space.runtime.settle(timeout=30)
        return q.get()

    return {
        "db.read": db.read,
        "db.query": query,
        "sc.sqlite_query": lambda sql: sc.sqlite_query(db=db, sql=sql),
        "source.read": source.read,
        "source.query": source.query,
        "db.exec": exec_,
        "db.exec_many": exec_many,
    }


_READ_PATHS = ("db.read", "db.query", "sc.sqlite_query", "source.read", "source.query")


def test_values_and_with_select_read_and_with_insert_writes(
    space: Space, cells: sc.SqliteDb
) -> None:
    with space.transact():
        cells.exec("WITH x(n) AS (VALUES (1), (2)) INSERT INTO messages(ts) SELECT n FROM x")
        cells.exec("INSERT INTO notes(\"returning\", [main]) VALUES ('r', 'm')")
        cells.exec("UPDATE notes SET `returning` = 'RETURNING' WHERE \"main\" = 'm'")
    assert cells.read("VALUES (1, 'a'), (2, 'b')") == [
        {"column1": 1, "column2": "a"},
        {"column1": 2, "column2": "b"},
    ]
    assert cells.read("WITH x AS (SELECT ts FROM messages) SELECT sum(ts) AS s FROM x") == [
        {"s": 3}
    ]
    q = cells.query(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
        "SELECT n FROM r"
    )
    space.runtime.settle(timeout=30)
    assert q.get().result == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert cells.read('SELECT "returning", main FROM notes') == [
        {"returning": "RETURNING", "main": "m"}
    ]
    assert cells.rev == 1


REFUSED_WRITES: list[tuple[str, str]] = [
    ("INSERT INTO messages(body) VALUES ('x') RETURNING id", "returning"),
    ("INSERT INTO messages(body) SELECT name FROM users RETURNING *", "returning"),
    (
        "INSERT INTO users(name) VALUES ('a') ON CONFLICT(name) DO UPDATE SET score = 2 "
        "/* c */ RETURNING score",
        "returning",
    ),
    ("UPDATE messages SET ts = 9 RETURNING ts", "returning"),
    ("DELETE FROM messages\nRETURNING\tbody", "returning"),
    ("WITH x AS (SELECT 1) REPLACE INTO users(id, name) VALUES (1, 'z') returning 1", "returning"),
    ("SELECT * FROM messages", "not-a-write"),
    ("VALUES (1)", "not-a-write"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "not-a-write"),
    ("BEGIN", "forbidden-statement"),
    ("COMMIT", "forbidden-statement"),
    ("END TRANSACTION", "forbidden-statement"),
    ("ROLLBACK", "forbidden-statement"),
    ("SAVEPOINT sp", "forbidden-statement"),
    ("RELEASE sp", "forbidden-statement"),
    ("REINDEX messages", "forbidden-statement"),
    ("EXPLAIN DELETE FROM messages", "not-a-write"),
    ("DELETE FROM messages; DELETE FROM users", "multiple-statements"),
]


@pytest.mark.parametrize(("sql", "kind"), REFUSED_WRITES)
def test_refused_writes_record_nothing_and_leave_the_transaction_usable(
    space: Space, cells: sc.SqliteDb, sql: str, kind: str
) -> None:
    counter = space.cell("counter", default=0)
    with space.transact():
        counter.set(1)
        cells.exec("INSERT INTO users(name, score) VALUES ('a', 1)")
    for call in (lambda: cells.exec(sql), lambda: cells.exec_many(sql, [[], []])):
        with space.transact():
            counter.set(counter.get() + 1)
            with pytest.raises(GuardViolation) as caught:
                call()
            assert caught.value.kind == kind
            # nothing was recorded: the transaction goes on and commits what it did before
            cells.exec("UPDATE users SET score = score + 1")
    assert counter.get() == 3
    assert cells.read("SELECT name, score FROM users") == [{"name": "a", "score": 3}]
    assert cells.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    assert cells.rev == 3


REFUSED_READS: list[tuple[str, str]] = [
    ("BEGIN", "forbidden-statement"),
    ("SAVEPOINT sp", "forbidden-statement"),
    ("ROLLBACK", "forbidden-statement"),
    ("REINDEX messages", "forbidden-statement"),
    ("EXPLAIN SELECT * FROM messages", "not-read-only"),
    ("INSERT INTO messages(body) VALUES (1) RETURNING id", "not-read-only"),
    ("WITH x AS (SELECT 1) DELETE FROM messages", "not-read-only"),
    ("SELECT * FROM messages NATURAL JOIN 'sqlite_schema'", "reserved-name"),
    ("SELECT * FROM '_cf_meta'", "reserved-name"),
    ("SELECT * FROM messages WHERE id IN '_cf_watermark'", "reserved-name"),
    ('SELECT count(*) FROM "_cf_log"', "reserved-name"),
    ("SELECT * FROM temp.messages", "schema-qualified"),
    (f"SELECT * FROM `{ALIAS}`.messages", "schema-qualified"),
    ("SELECT * FROM pragma_table_info('messages')", "forbidden-function"),
    ("SELECT * FROM dbstat", "forbidden-function"),
    ("SELECT sqlite_log(1, 'x')", "reserved-name"),
    ("SELECT 1; /* x", "not-read-only"),
]


@pytest.mark.parametrize(("sql", "kind"), REFUSED_READS)
def test_refused_reads_on_every_read_path(
    space: Space, cells: sc.SqliteDb, source: Any, sql: str, kind: str
) -> None:
    paths = _paths(space, cells, source)
    for name in _READ_PATHS:
        _guard.clear_cache()
        with pytest.raises(GuardViolation) as caught:
            paths[name](sql)
        assert caught.value.kind == kind, name
    assert cells.rev == 0
    assert not cells.path.exists()


# Text SQLite cannot read, or reads as an error, through every path: a GuardViolation or a
# QueryError / ExecError, never a raw sqlglot, apsw, Unicode or recursion error.
ODD = [
    "SELECT 1_",
    "SELECT 1_000_",
    "SELECT 1__0",
    "SELECT 1._5",
    "SELECT 1..2",
    "SELECT 1.5e+3.2",
    "SELECT ?1?2",
    "SELECT :a:b",
    "SELECT $a:b",
    "SELECT 1 ->>> 2",
    "SELECT 1 =< 2",
    "SELECT x'41'x'42'",
    "SELECT * FROM X'6d657373'",
    "SELECT t.1 FROM messages AS t",
    "SELECT 1 // 2",
    "SELECT * FROM messages RETURNING id",
    "SELECT 0x",
    "SELECT 1e",
    "SELECT .5.",
    "SELECT $",
    "SELECT ?0",
    "SELECT ?99999999999",
    "SELECT :",
    "SELECT 'unterminated",
    'SELECT "unterminated',
    "SELECT [unterminated",
    "SELECT `unterminated",
    "SELECT 1 /* unterminated",
    "SELECT '\0'",
    "SELECT \ud800",
    "SELECT '\udfff' FROM messages",
    "SELECT (" + "(" * 10_000 + "1" + ")" * 10_001,
    "SELECT " + "(" * 10_000,
    "SELECT " + "CASE WHEN 1 THEN " * 3_000 + "1" + " END" * 3_000,
    "SELECT " + "NOT " * 20_000 + "1",
    "SELECT " + "(SELECT " * 2_000 + "1" + ")" * 2_000,
    "SELECT " + " + ".join(["1"] * 250_000),
]


def _as_write(sql: str) -> str:
    return "INSERT INTO messages(body) " + sql


@pytest.mark.parametrize("sql", ODD, ids=lambda sql: repr(sql[:24]))
def test_odd_text_is_a_runtime_error_on_every_path(
    space: Space, cells: sc.SqliteDb, source: Any, sql: str
) -> None:
    paths = _paths(space, cells, source)
    for name, call in paths.items():
        text = sql if name in _READ_PATHS else _as_write(sql)
        try:
            outcome = call(text)
        except GuardViolation as error:
            assert error.kind in ("not-read-only", "not-a-write", "returning"), name
            assert 0 <= error.offset <= len(text)
            continue
        except (sc.QueryError, sc.ExecError) as error:
            assert len(str(error)) < 2_000, name  # the statement is cut, not repeated whole
            continue
        except sc.StatementError as error:  # more tokens than the guard reads (R44)
            assert "the statement guard reads at most" in str(error), name
            assert len(str(error)) < 2_000, name
            continue
        # a live query reports its error in its state, not by raising
        assert name.endswith("query"), (name, outcome)
        state = outcome if isinstance(outcome, sc.QueryState) else _settled(space, outcome)
        assert isinstance(state.error, sc.QueryError), (name, state)
        assert state.result is None
    assert cells.rev == 0


def _settled(space: Space, query: Any) -> sc.QueryState[Any]:
    space.runtime.settle(timeout=30)
    state = query.get()
    assert isinstance(state, sc.QueryState)
    return state


def test_a_megabyte_statement_is_judged_on_every_path_with_exact_offsets(
    space: Space, cells: sc.SqliteDb, source: Any
) -> None:
    filler = "/*" + "é😀" * 250_000 + "*/ "
    read = filler + "SELECT '" + "x" * 500_000 + "' FROM messages JOIN 'sqlite_master' ON 1"
    write = filler + "DELETE FROM messages WHERE body = '" + "y" * 500_000 + "' RETURNING id"
    paths = _paths(space, cells, source)
    for name, call in paths.items():
        sql = read if name in _READ_PATHS else write
        with pytest.raises(GuardViolation) as caught:
            call(sql)
        expected = sql.index("'sqlite_master'") if sql is read else sql.index("RETURNING")
        assert (caught.value.offset, caught.value.sql) == (expected, sql), name
        assert len(str(caught.value)) < 1_000
    ok = filler + "SELECT '" + "z" * 1_000_000 + "' AS v"
    assert cells.read(ok) == [{"v": "z" * 1_000_000}]
    with space.transact():
        cells.exec(filler + "INSERT INTO messages(body) VALUES ('" + "w" * 1_000_000 + "')")
    assert cells.read("SELECT length(body) AS n FROM messages") == [{"n": 1_000_000}]


def test_a_statement_of_more_tokens_than_the_guard_reads_is_refused_at_once(
    space: Space, cells: sc.SqliteDb, source: Any
) -> None:
    """R44: the guard reads a statement's tokens before any deadline can run, ≈ 1.5 µs each: a
    list of a million values held a read seconds past its timeout. Past 500,000 characters
    outside literals, names and comments a statement is a ``StatementError`` (a ``ValueError``),
    at once, on every path, saying what to do; nothing runs. Long literals stay welcome."""
    values = ",".join(str(i) for i in range(200_000))
    read = f"SELECT count(*) AS n FROM messages WHERE id IN ({values})"
    write = f"DELETE FROM messages WHERE id IN ({values})"
    for name, call in _paths(space, cells, source).items():
        sql = read if name in _READ_PATHS else write
        with pytest.raises(sc.StatementError) as caught:
            call(sql)
        assert isinstance(caught.value, ValueError) and not isinstance(caught.value, GuardViolation)
        message = str(caught.value)
        assert f"has {len(sql):,} characters outside its string literals" in message, name
        assert "json_each(?)" in message and len(message) < 1_000
    assert cells.rev == 0
    long = "SELECT '" + "x" * 3_000_000 + "' AS v /*" + " " * 1_000_000 + "*/"
    assert cells.read(long) == [{"v": "x" * 3_000_000}]


def test_many_short_literals_or_comments_count_toward_what_the_guard_reads(
    space: Space, cells: sc.SqliteDb, source: Any
) -> None:
    """R44: literals, quoted names and comments were left out of the count, as if each were
    cheap — but a text of 1.5 million `''` and `/**/` took ≈ 9 s of tokenizing before any
    deadline (and held other threads). Each counts as one character now: refused at once."""
    sql = "SELECT 1 AS v WHERE 1 IN (" + "''/**/," * 300_000 + "1)"
    for name, call in _paths(space, cells, source).items():
        with pytest.raises(sc.StatementError) as caught:
            call(sql if name in _READ_PATHS else "DELETE FROM messages WHERE 1 IN (" + sql[26:])
        assert "characters outside its string literals and comments (each of those counting" in (
            str(caught.value)
        ), name
    assert cells.rev == 0


# The guard's length count, in a process of its own (it held the interpreter for minutes).
_UNCLOSED = """
import sys
from sqlite_cells.sql import Mode, check_statement
try:
    check_statement("SELECT 1 FROM t WHERE " + sys.argv[1] * 510_000, Mode.READ)
except Exception as exc:
    print(type(exc).__name__, getattr(exc, "kind", ""), getattr(exc, "offset", ""))
"""


@pytest.mark.parametrize("opener", ["[", "[a"])
def test_a_text_of_many_unclosed_openers_is_read_once(opener: str) -> None:
    """R44, R20: the count of what the guard reads matched each literal, quoted name and comment
    from each opener again when it was never closed: half a million `[` took minutes, in one
    call of the regular expression engine, which holds the interpreter (no deadline, no other
    thread, no `close()`). One left open now runs to the end of the text, read once."""
    done = subprocess.run(
        [sys.executable, "-c", _UNCLOSED, opener], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["GuardViolation", "not-read-only", "22"], done.stderr


# --- the authorizer alone on the runtime's real connections (R23) --------------------------------

# (mode, guard kind, sql): statements the guard refuses and SQLite could run; run under the
# authorizer alone (the guard bypassed) on each real connection, each must fail — denied by the
# authorizer, or refused by SQLite itself — and change nothing outside the declared tables.
HOSTILE: list[tuple[Mode, str, str]] = [
    (R, "reserved-name", "SELECT * FROM messages NATURAL JOIN 'sqlite_master'"),
    (R, "reserved-name", "SELECT * FROM messages CROSS JOIN `_cf_meta`"),
    (R, "reserved-name", "SELECT count(*) FROM '_cf_meta'"),
    (R, "reserved-name", 'SELECT count(*) FROM "sqlite_schema"'),
    (R, "reserved-name", "SELECT count(*) FROM _cf_log"),
    (R, "reserved-name", "SELECT group_concat(seq) FROM _cf_log"),
    (R, "reserved-name", "SELECT * FROM _cf_cells"),
    (R, "reserved-name", "SELECT * FROM messages WHERE id IN (SELECT seq FROM '_cf_log')"),
    (R, "reserved-name", 'SELECT * FROM messages WHERE id IN "_cf_log"'),
    (R, "reserved-name", "SELECT * FROM (('_cf_meta'))"),
    (R, "reserved-name", "SELECT * FROM (VALUES (1)), 'sqlite_master'"),
    (R, "reserved-name", "SELECT * FROM messages JOIN users USING (id), '_cf_meta'"),
    (R, "reserved-name", "WITH RECURSIVE c(x) AS (SELECT 1) SELECT * FROM c, _cf_cells"),
    (
        R,
        "reserved-name",
        "SELECT value FROM json_each((SELECT json_group_array(seq) FROM _cf_log))",
    ),
    (R, "schema-qualified", "SELECT * FROM main._cf_log"),
    (R, "schema-qualified", "SELECT * FROM 'main'.'_cf_cells'"),
    (R, "schema-qualified", "SELECT * FROM temp.sqlite_temp_master"),
    (R, "schema-qualified", 'SELECT * FROM "MAIN".sqlite_schema'),
    (R, "schema-qualified", f"SELECT * FROM [{ALIAS}].[_cf_meta]"),
    (R, "schema-qualified", f"SELECT count(*) FROM '{ALIAS}'.sqlite_master"),
    (R, "forbidden-function", "SELECT * FROM 'pragma_table_info'('_cf_log')"),
    (R, "forbidden-function", "SELECT * FROM pragma_table_list"),
    (R, "forbidden-function", f"SELECT * FROM dbstat('{ALIAS}')"),
    (R, "forbidden-function", "SELECT * FROM messages WHERE id IN 'pragma_table_list'()"),
    (R, "forbidden-function", "SELECT * FROM (SELECT \"load_extension\"('x'))"),
    (R, "forbidden-function", "SELECT [fts3_tokenizer]('simple')"),
    (R, "reserved-name", "SELECT \"sqlite_log\"(1, 'x')"),
    (R, "forbidden-statement", "SAVEPOINT sp"),
    (R, "forbidden-statement", "RELEASE sp"),
    (R, "forbidden-statement", "ROLLBACK"),
    (R, "forbidden-statement", "COMMIT"),
    (R, "forbidden-statement", "END"),
    (R, "forbidden-statement", "BEGIN"),
    (R, "forbidden-statement", "PRAGMA query_only = 0"),
    (R, "forbidden-statement", "ATTACH ':memory:' AS evil"),
    (R, "forbidden-statement", f"DETACH {ALIAS}"),
    (R, "not-read-only", "DELETE FROM messages"),
    (R, "not-read-only", "INSERT INTO users(name) VALUES ('r') RETURNING id"),
    (W, "reserved-name", "INSERT INTO messages(body) SELECT record FROM _cf_log"),
    (W, "reserved-name", "UPDATE messages SET body = (SELECT group_concat(id) FROM _cf_cells)"),
    (W, "reserved-name", "DELETE FROM `_cf_log`"),
    (W, "reserved-name", 'UPDATE OR REPLACE "_cf_cells" SET id = id'),
    (W, "reserved-name", "INSERT OR IGNORE INTO [_cf_meta](key, value) VALUES ('k', 'v')"),
    (W, "reserved-name", "UPDATE OR ROLLBACK 'sqlite_master' SET sql = ''"),
    (
        W,
        "reserved-name",
        "INSERT INTO users(name) VALUES ('a') ON CONFLICT(name) DO UPDATE SET "
        "score = (SELECT count(*) FROM _cf_log)",
    ),
    (
        W,
        "reserved-name",
        "DELETE FROM messages WHERE body IN "
        "(SELECT value FROM json_each((SELECT group_concat(seq) FROM _cf_log)))",
    ),
    (W, "schema-qualified", "INSERT INTO main._cf_meta(key, value) VALUES ('k', 'v')"),
    (W, "schema-qualified", "DELETE FROM 'main'.'_cf_log'"),
    (W, "schema-qualified", f"UPDATE [{ALIAS}].[_cf_meta] SET value = 0"),
    (W, "forbidden-function", "UPDATE messages SET body = `load_extension`('x')"),
    (W, "forbidden-function", "INSERT INTO messages(body) SELECT name FROM 'pragma_table_list'"),
    (W, "forbidden-function", "INSERT INTO messages(ts) VALUES (changes())"),
    (W, "forbidden-function", "UPDATE users SET score = total_changes()"),
    (R, "forbidden-function", 'SELECT "total_changes"()'),
    (W, "forbidden-statement", "COMMIT"),
    (W, "forbidden-statement", "ROLLBACK TO sp"),
    (W, "forbidden-statement", "RELEASE sp"),
    (W, "forbidden-statement", "END TRANSACTION"),
    (W, "forbidden-statement", "PRAGMA foreign_keys = OFF"),
    (W, "ddl", "CREATE TEMP TRIGGER tr AFTER INSERT ON messages BEGIN SELECT 1; END"),
    (W, "ddl", "CREATE TEMP VIEW v AS SELECT * FROM _cf_log"),
    (W, "ddl", "DROP TABLE users"),
]


@pytest.mark.parametrize(("mode", "kind", "sql"), HOSTILE, ids=lambda v: str(v)[:40])
def test_hostile_statements_are_refused_by_the_guard(mode: Mode, kind: str, sql: str) -> None:
    assert refusal(sql, mode).kind == kind


@dataclass
class Connections:
    rt: sc.Runtime
    space: Space
    db: sc.SqliteDb
    source_path: Path


@pytest.fixture(scope="module")
def connections(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connections]:
    root = tmp_path_factory.mktemp("second_look")
    source_path = root / "source.db"
    conn = apsw.Connection(str(source_path))
    conn.execute(
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, body TEXT, author_cf_link TEXT, ts INT);"
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score INTEGER);"
        'CREATE TABLE notes(id INTEGER PRIMARY KEY, "returning" TEXT, main TEXT);'
        "INSERT INTO users(name, score) VALUES ('s', 1);"
    )
    conn.close()
    store = root / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("hostile")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            space.cell("counter", default=0).set(1)
            db.exec("INSERT INTO users(name, score) VALUES ('ann', 5), ('bob', -1)")
            db.exec("INSERT INTO messages(body, ts) VALUES ('{\"a\":1}', 1)")
        yield Connections(rt, space, db, source_path)


def _hostile_alone(conn: apsw.Connection, gate: Gate, schema: str, declared: Any) -> None:
    """Each HOSTILE statement under the authorizer alone on ``conn``, inside a savepoint the
    test rolls back: it fails, and every answer the authorizer gave follows its policy."""
    databases = conn.execute("PRAGMA database_list").fetchall()
    for mode, _kind, sql in HOSTILE:
        recorder = Recorder(make_authorizer(mode, database=schema, tables=declared))
        conn.execute("SAVEPOINT hostile")
        with gate.user(recorder):
            error = run_user(conn, sql)
        still_open = conn.in_transaction
        if still_open:
            conn.execute("ROLLBACK TO hostile; RELEASE hostile")
        assert still_open, f"{sql!r} ended the transaction"
        assert error is not None, f"{sql!r} ran under the authorizer alone on {schema}"
        assert is_denial(error) or isinstance(error, apsw.SQLError), (sql, error)
        recorder.assert_agrees_with_policy(mode, schema, declared)
        assert conn.execute("PRAGMA database_list").fetchall() == databases, sql


def test_hostile_statements_alone_on_the_space_write_connection(connections: Connections) -> None:
    space_path = connections.space.file.path
    db_path = connections.db.path
    space_before, db_before = reserved_state(space_path), reserved_state(db_path)
    with connections.space.file.write_connection() as conn, gated(conn) as gate:
        attach(conn, db_path)
        _hostile_alone(conn, gate, ALIAS, DECLARED)
    assert reserved_state(space_path) == space_before
    assert reserved_state(db_path) == db_before


def test_hostile_statements_alone_on_a_pooled_reader(connections: Connections) -> None:
    db_path = connections.db.path
    before = reserved_state(db_path)
    with connections.rt.read_pool.connection(db_path) as pooled, gated(pooled.conn) as gate:
        pooled.conn.execute("BEGIN")
        try:
            _hostile_alone(pooled.conn, gate, "main", DECLARED)
        finally:
            pooled.conn.execute("ROLLBACK")
    assert reserved_state(db_path) == before


def test_hostile_statements_alone_on_a_disk_sources_reader(connections: Connections) -> None:
    path = connections.source_path
    handle = connections.space.register_disk_source(str(path))
    before = read_bytes(path)  # a kept descriptor: the module's runtime has the file open
    with (
        connections.rt.read_pool.connection(path, source=handle.id) as pooled,
        gated(pooled.conn) as gate,
    ):
        pooled.conn.execute("BEGIN")
        try:
            _hostile_alone(pooled.conn, gate, "main", None)
        finally:
            pooled.conn.execute("ROLLBACK")
    assert read_bytes(path) == before


# --- the command line's query (R20, §6) ----------------------------------------------------------


@pytest.fixture
def cli_store(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("cli")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO messages(body) VALUES ('a')")
    return store


CLI_REFUSED = [
    ("SELECT * FROM messages NATURAL JOIN 'sqlite_master'", "reserved-name", "'"),
    ('SELECT * FROM "MAIN".messages', "schema-qualified", '"'),
    (f"SELECT * FROM `{ALIAS}`.messages", "schema-qualified", "`"),
    ("SELECT * FROM 'pragma_table_info'('messages')", "forbidden-function", "'"),
    ("-- é😀\nREINDEX messages", "forbidden-statement", "REINDEX"),
    ("EXPLAIN SELECT * FROM messages", "not-read-only", 0),
    ("SELECT 1; /* x", "not-read-only", "/*"),
    ("SELECT 1; ;", "multiple-statements", 10),
    (" ; -- c", "empty", 0),
    ("SELECT ?0", "not-read-only", 7),
]


def _store_files(store: Path) -> list[str]:
    """The store's files but SQLite's -wal and -shm, which a read may leave."""
    return sorted(p.name for p in store.rglob("*") if not p.name.endswith(("-wal", "-shm")))


def test_the_query_command_gives_the_guards_verdicts(cli_store: Path) -> None:
    before = _store_files(cli_store)
    for sql, kind, at in CLI_REFUSED:
        done = run_cli("query", str(cli_store), "cli", "chat", sql)
        assert done.returncode == 1, (sql, done)
        assert f"{kind} at offset {_offset(sql, at)}" in done.stderr, (sql, done.stderr)
    nested = run_cli("query", str(cli_store), "cli", "chat", "SELECT " + "(" * 10_000 + "1")
    assert nested.returncode in (1, 2) and nested.stderr.startswith("sqlite-cells:")
    assert _store_files(cli_store) == before


def test_the_query_command_refuses_text_that_is_not_utf8(cli_store: Path) -> None:
    for raw in (b"SELECT '\xff'", b"SELECT * FROM \xed\xa0\x80", b"SELECT 1 -- \xc3"):
        done = subprocess.run(
            [str(COMMAND), "query", str(cli_store), "cli", "chat", raw],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done
        assert b"Traceback" not in done.stderr
        assert b"UTF-8" in done.stderr


# --- last_insert_rowid(), changes() and total_changes() in a write (R31, R34; decision) ----------


def test_last_insert_rowid_is_the_transactions_previous_insert(
    space: Space, cells: sc.SqliteDb
) -> None:
    """Each statement of a transaction sees the rowid of the transaction's previous insert, as
    one connection would show it; the first sees 0. The runtime's own statements between them
    (cell writes, the commit record, the journal) never show through."""
    with space.transact():
        cells.exec("INSERT INTO users(id, name) VALUES (100, 'seed')")
    for name in ("a", "b"):
        with space.transact():
            space.cell("counter", default=0).set(name)
            cells.exec("INSERT INTO messages(body) VALUES (last_insert_rowid())")
            cells.exec("INSERT INTO users(name) VALUES (?)", [name])
            cells.exec("INSERT INTO messages(body, ts) VALUES ('child', last_insert_rowid())")
            cells.exec_many("INSERT INTO notes(main) VALUES (last_insert_rowid())", [[], []])
    assert cells.read("SELECT id, body, ts FROM messages ORDER BY id") == [
        {"id": 1, "body": "0", "ts": 0},
        {"id": 2, "body": "child", "ts": 101},
        {"id": 3, "body": "0", "ts": 0},
        {"id": 4, "body": "child", "ts": 102},
    ]
    assert cells.read("SELECT id, main FROM notes ORDER BY id") == [
        {"id": 1, "main": "2"},
        {"id": 2, "main": "1"},
        {"id": 3, "main": "4"},
        {"id": 4, "main": "3"},
    ]


def test_last_insert_rowid_after_a_bulk_insert_into_a_table_without_a_primary_key(
    space: Space,
) -> None:
    """A bulk change to a rowid table is captured by running the statement again (R70): the
    next statement still sees the rowid the bulk insert left."""
    db = space.sqlite_database(
        "rowids",
        tables={
            "bulk": sc.table(v="integer"),
            "after": sc.table(id="integer primary key", seen="integer"),
        },
    )
    with space.transact():
        db.exec(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 50) "
            "INSERT INTO bulk(v) SELECT n FROM r"
        )
        db.exec("INSERT INTO after(seen) VALUES (last_insert_rowid())")
    assert db.read("SELECT seen FROM after") == [{"seen": 50}]
    assert db.read("SELECT count(*) AS n, max(rowid) AS m FROM bulk") == [{"n": 50, "m": 50}]


def test_a_cte_named_like_a_forbidden_function_is_written(space: Space, cells: sc.SqliteDb) -> None:
    with space.transact():
        cells.exec(
            "WITH changes(n) AS (VALUES (7), (8)) INSERT INTO messages(ts) SELECT n FROM changes"
        )
    assert cells.read(
        "WITH load_extension(t) AS (SELECT ts FROM messages) SELECT sum(t) AS s FROM load_extension"
    ) == [{"s": 15}]


def test_a_name_after_as_with_a_parenthesis_after_it_is_no_call(
    space: Space, cells: sc.SqliteDb
) -> None:
    """After AS stands an alias or a type's name, never a call, though a "(" follows it: an
    upsert's target alias (``INSERT INTO t AS x (cols)``), a CAST's type (``AS x(10)``). Named
    like a forbidden function it is written; named like SQLite's own it is a reserved name, as
    an UPDATE's alias is."""
    with space.transact():
        for alias in ("changes", "edit"):
            cells.exec(
                f"INSERT INTO users AS {alias} (name, score) VALUES ('ann', 1) "
                f"ON CONFLICT(name) DO UPDATE SET score = {alias}.score + 1"
            )
    assert cells.read("SELECT name, score FROM users") == [{"name": "ann", "score": 2}]
    assert cells.read("SELECT CAST(score AS edit(10)) AS n FROM users") == [{"n": 2}]
    for sql, at in [
        ("INSERT INTO users AS sqlite_version (name) VALUES ('cy')", "sqlite_version"),
        ("UPDATE users AS sqlite_version SET score = 0", "sqlite_version"),
        ("INSERT INTO sqlite_version (name) VALUES ('cy')", "sqlite_version"),
    ]:
        verdict = refusal(sql, W)
        assert (verdict.kind, verdict.offset) == ("reserved-name", sql.index(at)), sql
    verdict = refusal("SELECT CAST(score AS sqlite_x(10)) FROM users", R)
    assert (verdict.kind, verdict.offset) == ("reserved-name", 21)
    # A call is still one where it is: after "(", "=", a keyword that an expression follows.
    verdict = refusal("SELECT edit(name) AS changes FROM users", R)
    assert (verdict.kind, verdict.offset) == ("forbidden-function", 7)


def test_row_counting_functions_are_refused_at_the_call(space: Space, cells: sc.SqliteDb) -> None:
    with space.transact():
        with pytest.raises(GuardViolation) as caught:
            cells.exec("INSERT INTO messages(ts) VALUES (changes())")
        assert caught.value.kind == "forbidden-function"
        assert "changes()" in str(caught.value)
        cells.exec("INSERT INTO messages(ts) VALUES (1)")
    with pytest.raises(GuardViolation) as caught:
        cells.read("SELECT total_changes() AS n")
    assert caught.value.kind == "forbidden-function"
    assert cells.read("SELECT ts FROM messages") == [{"ts": 1}]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (a) SELECT ? ->",
        "INSERT INTO t (a, b) VALUES (1, 2) ON CONFLICT DO UPDATE SET a = @a ->>",
    ],
)
def test_text_sqlglots_parser_fails_on_is_no_raw_error(space: Space, sql: str) -> None:
    """Errors, R24: a JSON arrow with nothing after it made sqlglot's parser (which maps the
    parameters to their columns) raise its own ``TypeError`` through ``db.exec``, and through
    ``db.read``/``db.query`` before the verdict that a write is no read."""
    db = space.sqlite_database("p", tables={"t": sc.table(a="integer", b="integer")})
    for read in (db.read, db.query):
        with pytest.raises(GuardViolation) as info:
            read(sql, [1])
        assert (info.value.kind, info.value.offset) == ("not-read-only", 0)
    with pytest.raises(SqliteCellsError) as raised, space.transact():
        db.exec(sql, [1])
    assert isinstance(raised.value, sc.ExecError)
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]

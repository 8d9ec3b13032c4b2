"""The SQL front end: each statement is tokenized once and every reader shares the scan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlglot.tokens

import sqlite_cells as sc
from sqlite_cells.sql import Mode, check_statement, map_params, scan_sql
from sqlite_cells.sql._guard import clear_cache
from sqlite_cells.sql._statement import CACHE_MAX_SQL_LENGTH

from .conftest import MESSAGES


@pytest.fixture
def tokenizer_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call of sqlglot's tokenizer (any dialect, any caller), by text."""
    calls: list[str] = []
    original = sqlglot.tokens.Tokenizer.tokenize

    def counting(self: sqlglot.tokens.Tokenizer, sql: str) -> Any:
        calls.append(sql)
        return original(self, sql)

    monkeypatch.setattr(sqlglot.tokens.Tokenizer, "tokenize", counting)
    clear_cache()
    yield calls


def test_a_new_statement_through_db_exec_is_tokenized_once(
    rt: sc.Runtime, tokenizer_calls: list[str]
) -> None:
    space = rt.space("front")
    db = space.sqlite_database("chat", tables=MESSAGES)
    alice = space.cell("alice", default=0)
    sql = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, 17) -- exec once"
    with space.transact():
        db.exec(sql, [alice, "hi"])
    rt.settle()
    assert tokenizer_calls.count(sql) == 1
    with space.transact():
        db.exec(sql, [None, "again"])
    assert tokenizer_calls.count(sql) == 1  # cached: not tokenized again
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 2}]


def test_a_new_statement_through_db_read_is_tokenized_once(
    rt: sc.Runtime, tokenizer_calls: list[str]
) -> None:
    space = rt.space("front")
    db = space.sqlite_database("chat", tables=MESSAGES)
    sql = "SELECT id, body FROM messages WHERE ts > ? ORDER BY ts -- read once"
    assert db.read(sql, [0]) == []
    assert tokenizer_calls.count(sql) == 1
    assert db.read(sql, [0]) == []
    assert tokenizer_calls.count(sql) == 1


def test_a_statement_too_long_to_cache_is_tokenized_once_per_call(
    rt: sc.Runtime, tokenizer_calls: list[str]
) -> None:
    # Longer than the caches take: each call scans it again, but once, not once per check
    # (the guard's verdict is held while the parameters are checked and mapped).
    space = rt.space("front")
    db = space.sqlite_database("chat", tables=MESSAGES)
    not_in = " NOT IN (" + ", ".join(["-1"] * (CACHE_MAX_SQL_LENGTH // 4)) + ")"
    read = "SELECT body FROM messages WHERE ts = ? AND ts" + not_in
    write = "INSERT INTO messages (body, ts) SELECT ?, 5 WHERE 5" + not_in
    assert len(read) > CACHE_MAX_SQL_LENGTH
    assert db.read(read, [5]) == []
    assert tokenizer_calls.count(read) == 1
    with space.transact():
        db.exec(write, ["long"])
    assert tokenizer_calls.count(write) == 1
    assert db.read(read, [5]) == [{"body": "long"}]
    assert tokenizer_calls.count(read) == 2


def test_a_complex_write_is_tokenized_once_and_parsed_once(
    tokenizer_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upsert needs sqlglot's parser for its parameter targets: it reads the scan's tokens."""
    from sqlglot.dialects.sqlite import SQLite

    parses: list[object] = []
    parser_class = SQLite.Parser
    original = parser_class.parse

    def counting(self: Any, raw_tokens: Any, sql: str | None = None) -> Any:
        parses.append(sql)
        return original(self, raw_tokens, sql)

    monkeypatch.setattr(parser_class, "parse", counting)
    sql = "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = ? -- parse once"
    check_statement(sql, Mode.WRITE)
    targets = map_params(sql)
    assert targets.positional == ("a", "b", "b")
    check_statement(sql, Mode.WRITE)
    map_params(sql)
    assert tokenizer_calls.count(sql) == 1
    assert parses == [sql]


def test_read_and_write_modes_share_one_scan(tokenizer_calls: list[str]) -> None:
    sql = "SELECT 1 -- both modes"
    assert check_statement(sql, Mode.READ).statement is scan_sql(sql)
    with pytest.raises(sc.GuardViolation):
        check_statement(sql, Mode.WRITE)
    assert tokenizer_calls.count(sql) == 1


@pytest.mark.parametrize(
    ("sql", "tables", "functions"),
    [
        ("SELECT count(*) FROM messages", [("messages", 21)], [("count", 7)]),
        (
            "SELECT * FROM 'pragma_table_list'('x')",
            [("pragma_table_list", 14)],
            [("pragma_table_list", 14)],
        ),
        ("SELECT * FROM (a, ('B'))", [("a", 15), ("b", 19)], []),
        ("UPDATE OR IGNORE 't' SET x = lower(?)", [("t", 17)], [("lower", 29)]),
        ("INSERT INTO t (a) VALUES (abs(1))", [("t", 12)], [("abs", 26)]),
        ("SELECT * FROM m WHERE a IN 'x' AND b IN ('y')", [("m", 14), ("x", 27)], []),
        ("SELECT * FROM main.t", [("t", 19)], []),
        ("SELECT 'a' IS DISTINCT FROM 'b'", [], []),
    ],
)
def test_tables_and_functions(
    sql: str, tables: list[tuple[str, int]], functions: list[tuple[str, int]]
) -> None:
    statement = scan_sql(sql)
    assert list(statement.tables()) == tables
    assert list(statement.functions()) == functions


@pytest.mark.parametrize(
    ("sql", "offset"),
    [
        ("SELECT $a(x;y)", 7),  # Tcl-style: SQLite reads one token up to ")"
        ("SELECT #1", 7),
        ("SELECT\v1", 6),  # \v only continues a whitespace run
        ("SELECT /**/\v1", 11),
        ("SELECT\xa01", 6),  # an identifier character to SQLite, whitespace to sqlglot
        ("SELECT 1 {# x #}", 9),
        ("SELECT N'x'", 7),
        ("SELECT 0x1g", 7),
        ("SELECT 1abc", 7),
        ("SELECT [a]]b]", 7),
        ("SELECT 'a", 7),
        ("SELECT 1 /* open", 9),
        ("SELECT 'a\x00'", 9),
        ("SELECT '\ud800'", 8),
        ("SELECT ?1.5", 7),
        ("SELECT @@x", 7),
        ("SELECT x ^ y", 9),
        ("SELECT (??)", 8),  # one sqlglot token, two of SQLite's: not a bare "?"
        ("SELECT (??, 1)", 8),
        ("SELECT ?::a", 7),
    ],
)
def test_where_sqlite_and_sqlglot_differ_the_scan_says_syntax(sql: str, offset: int) -> None:
    problem = scan_sql(sql).problem
    assert problem is not None
    assert problem[:2] == ("syntax", offset)
    assert problem[2].startswith("syntax error")


def test_words_keep_what_sqlglot_could_not_tokenize() -> None:
    """The schema code compares stored SQL by its words: a text sqlglot stops reading must not
    lose its tail (two CHECKs differing there would read as the same)."""
    first = [w.text for w in scan_sql("a <> 'x").words()]
    second = [w.text for w in scan_sql("a <> 'y").words()]
    assert first != second
    assert [w.text for w in scan_sql("a <> 'x' -- c").words()] == ["a", "<>", "'x'"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a FROM t GROUP BY a ORDER BY a",
        "SELECT a FROM t ORDER\tBY a",
        "SELECT a FROM t ORDER  BY a",
        "SELECT a FROM t ORDER /* c */ BY a",
        "SELECT a FROM t ORDER\nBY a",
    ],
)
def test_a_keyword_of_two_words_is_two_of_sqlites_words(sql: str) -> None:
    """sqlglot reads "ORDER BY" as one token; SQLite reads two words, wherever they stand."""
    statement = scan_sql(sql)
    assert statement.problem is None
    words = [(key, sql[start:end]) for kind, key, start, end in statement.tokens if key]
    expected = [(w.upper(), w) for w in sql.replace("/* c */", "").split() if w.isidentifier()]
    assert words == expected

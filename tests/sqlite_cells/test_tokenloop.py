"""The lexer's pass over sqlglot's tokens, in C (``sql/_tokenloop.c``): the tokens it makes
itself (ASCII words, keywords of two words, operators, bare ``?``, plain numbers, quoted
literals, gaps of whitespace and comments) are the ones SQLite reads, and everything else is
still handed to the Lexer's own checks (R21, R24: SQLite's view of the text decides)."""

from __future__ import annotations

import pytest

import sqlite_cells as sc
from sqlite_cells.sql import _kinds, _tokenloop
from sqlite_cells.sql._kinds import BLOB, NUMBER, OP, PARAM, QUOTED, STRING, WORD
from sqlite_cells.sql._lexer import Lexer, sqlglot_tokens


def lex(sql: str) -> Lexer:
    raw, failed = sqlglot_tokens(sql)
    lexer = Lexer(sql, raw)
    lexer.build(failed)
    return lexer


def test_the_c_pass_and_the_python_vocabulary_name_the_same_kinds() -> None:
    assert (_tokenloop.WORD, _tokenloop.NUMBER, _tokenloop.PARAM, _tokenloop.OP) == (
        _kinds.WORD,
        _kinds.NUMBER,
        _kinds.PARAM,
        _kinds.OP,
    )


def test_the_common_tokens_are_sqlites() -> None:
    sql = "SELECT a_1, \"Qu\"\"o\", [b c], 'it''s é' FROM t ORDER BY x >= ?, 42 || `k`"
    lexer = lex(sql)
    assert lexer.tokens == [
        (WORD, "SELECT", 0, 6),
        (WORD, "A_1", 7, 10),
        (OP, ",", 10, 11),
        (QUOTED, 'QU"O', 12, 19),
        (OP, ",", 19, 20),
        (QUOTED, "B C", 21, 26),
        (OP, ",", 26, 27),
        (STRING, "IT'S é", 28, 37),
        (WORD, "FROM", 38, 42),
        (WORD, "T", 43, 44),
        (WORD, "ORDER", 45, 50),  # sqlglot's one token "ORDER BY" is two of SQLite's words
        (WORD, "BY", 51, 53),
        (WORD, "X", 54, 55),
        (OP, ">=", 56, 58),
        (PARAM, "?", 59, 60),
        (OP, ",", 60, 61),
        (NUMBER, "", 62, 64),
        (OP, "||", 65, 67),
        (QUOTED, "K", 68, 71),
    ]
    assert lexer.strings == [7]
    assert lexer.params_raw == [(14, 13, 13)]  # token 14 is sqlglot's 13th
    assert (lexer.problem, lexer.comment, lexer.semicolon, lexer.dot) == (-1, False, -1, False)


def test_what_the_pass_hands_on_keeps_its_checks() -> None:
    lexer = lex("SELECT ?12, :name, x'0A', .5, 1e3, é FROM s.t; SELECT 1")
    assert [(kind, key) for kind, key, _start, _end in lexer.tokens] == [
        (WORD, "SELECT"),
        (PARAM, "?12"),
        (OP, ","),
        (PARAM, ":name"),
        (OP, ","),
        (BLOB, ""),
        (OP, ","),
        (NUMBER, ""),
        (OP, ","),
        (NUMBER, ""),
        (OP, ","),
        (WORD, "é"),
        (WORD, "FROM"),
        (WORD, "S"),
        (OP, "."),
        (WORD, "T"),
        (OP, ";"),
        (WORD, "SELECT"),
        (NUMBER, ""),
    ]
    assert lexer.problem == -1
    assert (lexer.semicolon, lexer.dot) == (16, True)
    assert lexer.params_raw[0][0] == 1  # ?12: one parameter of two raw tokens


@pytest.mark.parametrize(
    ("sql", "comment"),
    [
        ("SELECT 1 -- trailing", True),
        ("SELECT /* inner */ 1", True),
        ("SELECT\t\n 1 \r\n", False),
        ("SELECT 1\n--\n", True),
    ],
)
def test_gaps_of_whitespace_and_comments_are_read_whole(sql: str, comment: bool) -> None:
    lexer = lex(sql)
    assert lexer.problem == -1
    assert lexer.comment is comment


@pytest.mark.parametrize(
    ("sql", "offset"),
    [
        ("SELECT [a]]b] FROM t", 7),  # sqlglot's extent is not SQLite's
        ("SELECT 'open", 7),  # unterminated
        ("SELECT 1 /* open", 9),  # unclosed comment
        ("SELECT\v1", 6),  # \v starts no whitespace run for SQLite
        ("SELECT 1 \v", -1),  # but goes on with one
        ("SELECT 1 -- x\x00", -1),  # a comment runs to the end of the text
        ("SELECT a\xa0FROM t", 8),  # a no-break space is a letter to SQLite
        ("SELECT 1 {", 9),  # an operator SQLite does not have
        ("SELECT a ^ b", 9),
        ("SELECT N'x'", 7),  # a prefixed literal
        ("SELECT 1abc", 7),  # a number touching a word
    ],
)
def test_where_sqlite_reads_differently_the_problem_is_at_its_offset(sql: str, offset: int) -> None:
    assert lex(sql).problem == offset


class _Text(str):
    """A str subclass whose own __str__ says something else: its text is what counts."""

    def __str__(self) -> str:
        return "SELECT 2"


def test_a_str_subclass_is_read_as_its_text() -> None:
    assert lex(_Text("SELECT a FROM t")).tokens == lex("SELECT a FROM t").tokens
    # A column spec is scanned as a statement's text is (Errors: no raw TypeError).
    assert sc.table(a=_Text("integer not null")) == sc.table(a="integer not null")


def test_a_str_subclass_never_finds_another_texts_scan_or_mapping() -> None:
    class AllAlike(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 0

    from sqlite_cells.sql import map_params, scan_sql

    assert scan_sql(AllAlike("SELECT ?")).param_count == 1
    assert scan_sql(AllAlike("SELECT $a(x) -- c")).problem is not None
    assert map_params(AllAlike("SELECT ?")).count == 1
    assert map_params(AllAlike("INSERT INTO t (a, b) VALUES (?, ?)")).count == 2

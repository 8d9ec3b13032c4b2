"""The guard alone refuses every statement SQLite resolves to a reserved table (R21, R24).

Statements are generated around reserved names — the runtime's tables, SQLite's schema tables,
table-valued pragma functions, dbstat — in every quoting (bare, "x", [x], `x`, 'x') and every
position a name can take: table positions (FROM, JOIN, FROM lists, parenthesised FROM items, IN,
INTO, UPDATE [OR …], DELETE FROM, table-valued calls, subqueries, CTEs) and data positions.
SQLite itself decides what each statement touches: it prepares the statement on a scratch
connection that holds tables of those names, under an authorizer that records every table it
reads or writes.  Whatever SQLite resolves to a reserved table, the guard must refuse; and a
string literal that SQLite reads as data must not make the guard refuse.  A string literal SQLite
reads as a name that is no table (an alias, a CTE's, a window's, a type's or a collation's name)
is refused like the same name in double quotes; SQLite's result column names show which strings
it takes as aliases.
"""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import apsw.ext
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlite_cells.codec import GuardViolation
from sqlite_cells.sql import Mode, check_statement, is_reserved_table

RESERVED = (
    "_cf_log",
    "_cf_cells",
    "_cf_watermark",
    "sqlite_master",
    "sqlite_schema",
    "sqlite_temp_master",
    "pragma_table_list",
    "pragma_table_info",
    "dbstat",
)
QUOTINGS = ("{}", '"{}"', "[{}]", "`{}`", "'{}'")
SEPARATORS = (" ", "  ", "\n", "\t", " /* c */ ", "/**/")

# {n}: the name; {_}: a separator.  Reads and writes.
READS = (
    "SELECT * FROM{_}{n}",
    "SELECT * FROM messages,{_}{n}",
    "SELECT * FROM messages JOIN{_}{n}{_}ON 1",
    "SELECT * FROM messages LEFT JOIN{_}{n}{_}AS t ON 1",
    "SELECT * FROM{_}({n})",
    "SELECT * FROM ({_}({n}))",
    "SELECT * FROM (messages,{_}{n})",
    "SELECT * FROM messages JOIN{_}({n})",
    "SELECT * FROM (messages JOIN{_}{n}{_}ON 1)",
    "SELECT * FROM messages WHERE id IN{_}{n}",
    "SELECT * FROM messages WHERE id NOT IN{_}{n}",
    "SELECT * FROM{_}{n}('messages')",
    "SELECT * FROM messages,{_}{n}{_}('messages')",
    "SELECT * FROM{_}{n}{_}AS t",
    "SELECT * FROM main.{n}",
    "SELECT {n}.* FROM{_}{n}",
    "SELECT (SELECT count(*) FROM{_}{n})",
    "SELECT * FROM messages WHERE EXISTS (SELECT 1 FROM{_}{n})",
    "WITH c AS (SELECT * FROM{_}{n}) SELECT * FROM c",
    "SELECT id FROM messages UNION SELECT id FROM{_}{n}",
    # a text or name spelled like a keyword just before: DISTINCT only as IS [NOT] DISTINCT FROM
    # compares, DO and WINDOW are names unless UPDATE/NOTHING or "w AS" follow them
    "SELECT id, 'distinct' FROM{_}{n}",
    'SELECT 1 AS "distinct" FROM messages,{_}{n}',
    "SELECT * FROM messages AS do,{_}{n}",
    "SELECT * FROM messages window,{_}{n}",
    "SELECT * FROM messages do,{_}({n})",
    "WITH do AS (SELECT 1) SELECT * FROM do,{_}{n}",
    # data positions
    "SELECT{_}{n}",
    "SELECT{_}{n}{_}AS x",
    "SELECT * FROM messages WHERE body ={_}{n}",
    "SELECT * FROM messages WHERE body IN ({n},{_}'x')",
    "SELECT coalesce(body,{_}{n}) FROM messages",
    "VALUES ({n})",
    "SELECT * FROM messages ORDER BY{_}{n}",
    "SELECT body IS DISTINCT FROM{_}{n} FROM messages",
)
WRITES = (
    "INSERT INTO{_}{n}{_}VALUES (1, 'x')",
    "INSERT INTO{_}{n}(id){_}VALUES (1)",
    "INSERT OR IGNORE INTO{_}{n}{_}VALUES (1, 'x')",
    "REPLACE INTO{_}{n}{_}VALUES (1, 'x')",
    "UPDATE{_}{n}{_}SET body = 1",
    "UPDATE OR IGNORE{_}{n}{_}SET body = 1",
    "UPDATE OR REPLACE{_}{n}{_}SET body = 1",
    "DELETE FROM{_}{n}",
    "DELETE FROM messages WHERE id IN{_}{n}",
    "INSERT INTO messages(body) SELECT body FROM{_}{n}",
    "UPDATE messages SET body = 1 FROM{_}{n}",
    "WITH c AS (SELECT id FROM{_}{n}) DELETE FROM messages WHERE id IN c",
    "UPDATE messages SET body = 'distinct' FROM{_}{n}",
    "INSERT INTO messages(body) SELECT body FROM messages AS do,{_}{n}",
    # data positions
    "INSERT INTO messages(body) VALUES ({n})",
    "UPDATE messages SET body ={_}{n}{_}WHERE body ={_}{n}",
    "DELETE FROM messages WHERE body ={_}{n}",
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[tuple[apsw.Connection, set[str]]]:
    """A connection holding messages and tables of the reserved names SQLite lets one create;
    its authorizer records every table a statement reads or writes, and allows everything."""
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    for name in ("_cf_log", "_cf_cells", "_cf_watermark"):
        conn.execute(f'CREATE TABLE "{name}" (id INTEGER PRIMARY KEY, body TEXT)')
    touched: set[str] = set()
    tables = {apsw.SQLITE_READ, apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE}

    def record(
        action: int, arg1: str | None, arg2: str | None, db: str | None, via: str | None
    ) -> int:
        if action in tables and arg1:
            touched.add(arg1)
        elif action == apsw.SQLITE_PRAGMA and arg1:
            touched.add(f"pragma_{arg1}")
        return apsw.SQLITE_OK

    conn.authorizer = record
    yield conn, touched
    conn.close()


def what_sqlite_touches(scratch: tuple[apsw.Connection, set[str]], sql: str) -> set[str] | None:
    """The tables SQLite resolves ``sql`` to while preparing it; None if it refuses it."""
    conn, touched = scratch
    touched.clear()
    try:
        apsw.ext.query_info(conn, sql)
    except (apsw.Error, ValueError):
        return None
    return set(touched)


SETTINGS = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def verdict(sql: str, mode: Mode) -> str:
    try:
        check_statement(sql, mode)
    except GuardViolation as error:
        return error.kind
    return "ok"


@SETTINGS
@given(
    name=st.sampled_from(RESERVED),
    quoting=st.sampled_from(QUOTINGS),
    template=st.sampled_from([(t, Mode.READ) for t in READS] + [(t, Mode.WRITE) for t in WRITES]),
    separator=st.sampled_from(SEPARATORS),
    upper=st.booleans(),
)
def test_the_guard_refuses_what_sqlite_resolves_to_a_reserved_table(
    scratch: tuple[apsw.Connection, set[str]],
    name: str,
    quoting: str,
    template: tuple[str, Mode],
    separator: str,
    upper: bool,
) -> None:
    text, mode = template
    sql = text.format(n=quoting.format(name.upper() if upper else name), _=separator)
    touched = what_sqlite_touches(scratch, sql)
    if touched is None:
        return  # SQLite refuses it: nothing would run
    found = verdict(sql, mode)
    if any(is_reserved_table(table) for table in touched):
        assert found != "ok", (sql, touched)
    elif quoting == "'{}'":
        # A string literal SQLite reads as data never triggers the guard.
        assert found == "ok", (sql, found)


def test_every_template_has_a_table_and_a_data_position_sqlite_agrees_with(
    scratch: tuple[apsw.Connection, set[str]],
) -> None:
    """The generator above is not vacuous: with a string literal, SQLite resolves a good share of
    the templates to the reserved table and reads the others as data."""
    resolved = data = 0
    for text, mode in [(t, Mode.READ) for t in READS] + [(t, Mode.WRITE) for t in WRITES]:
        sql = text.format(n="'_cf_log'", _=" ")
        touched = what_sqlite_touches(scratch, sql)
        if touched is None:
            continue
        if "_cf_log" in touched:
            resolved += 1
            assert verdict(sql, mode) in ("reserved-name", "schema-qualified"), sql
        else:
            data += 1
            assert verdict(sql, mode) == "ok", sql
    assert resolved >= 20
    assert data >= 8


# Pieces of SQL around reserved names; glued at random, whatever the guard accepts must not make
# SQLite touch a reserved table or call a refused function.
PIECES = (
    " ", "\n", "/**/", "(", ")", ",", ".", "'", '"', "[", "]", "`", "?", ":a", "$b",
    "FROM", "JOIN", "IN", "NOT", "AS", "ON", "1", "SELECT", "WHERE", "UNION", "VALUES",
    "messages", "body", "id", "_cf_log", "sqlite_master", "pragma_table_list", "dbstat",
    "'_cf_log'", "'sqlite_master'", "\"_cf_log\"", "[sqlite_master]", "`_cf_cells`", "'x'",
    "json_each", "sqlite_log", "main", "temp", "=", "*", "||", "--", "\v", "\xa0", ";",
)  # fmt: skip


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=12))
def test_what_the_guard_accepts_touches_nothing_reserved(
    scratch: tuple[apsw.Connection, set[str]], pieces: list[str]
) -> None:
    sql = "SELECT " + " ".join(pieces)
    if verdict(sql, Mode.READ) != "ok":
        return
    conn, touched = scratch
    touched.clear()
    calls: list[str] = []

    def record(
        action: int, arg1: str | None, arg2: str | None, db: str | None, via: str | None
    ) -> int:
        if action in (apsw.SQLITE_READ, apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE):
            touched.add(arg1 or "")
        elif action == apsw.SQLITE_FUNCTION:
            calls.append(arg2 or "")
        elif action not in (apsw.SQLITE_SELECT, apsw.SQLITE_RECURSIVE):
            touched.add(f"action {action}")
        return apsw.SQLITE_OK

    saved = conn.authorizer
    conn.authorizer = record
    try:
        info = apsw.ext.query_info(conn, sql)
    except (apsw.Error, ValueError):
        return  # SQLite refuses it: nothing would run
    finally:
        conn.authorizer = saved
    # One statement: what follows it is only whitespace and comments to SQLite.
    assert conn.execute(info.query_remaining or "").fetchall() == [], sql
    dataless = {"json_each", "json_tree"}  # they read only their arguments
    reserved = {t for t in touched if is_reserved_table(t) and t not in dataless}
    assert not reserved and not any(t.startswith("action") for t in touched), (sql, touched)
    assert not any(name.lower().startswith(("sqlite_log", "pragma_", "_cf_")) for name in calls)


# --- names that are no table: aliases, CTE, window, type and collation names -------------------

# {n}: the name; {_}: a separator.  SQLite reads a string literal here as a name (SQLite's "nm" or
# "ids"), as it reads the quoted identifier in the same place.
NAME_POSITIONS = (
    ("SELECT body AS{_}{n} FROM messages", Mode.READ),
    ("SELECT body{_}{n} FROM messages", Mode.READ),
    ("SELECT 1{_}{n}", Mode.READ),
    ("SELECT NULL{_}{n}", Mode.READ),
    ("SELECT 'a'{_}{n}", Mode.READ),
    ("SELECT ?{_}{n}", Mode.READ),
    ("SELECT (1){_}{n}", Mode.READ),
    ("SELECT count(*){_}{n} FROM messages", Mode.READ),
    ("SELECT CASE WHEN 1 THEN 2 END{_}{n}", Mode.READ),
    ("SELECT * FROM messages AS{_}{n}", Mode.READ),
    ("SELECT * FROM messages{_}{n}", Mode.READ),
    ("SELECT * FROM messages JOIN messages{_}{n}{_}ON 1", Mode.READ),
    ("SELECT * FROM (SELECT 1){_}{n}", Mode.READ),
    ("WITH{_}{n}{_}AS (SELECT 1) SELECT 1", Mode.READ),
    ("WITH RECURSIVE{_}{n}{_}AS (SELECT 1) SELECT 1", Mode.READ),
    ("WITH c AS (SELECT 1),{_}{n}{_}AS (SELECT 2) SELECT 1", Mode.READ),
    ("WITH c({_}{n}) AS (SELECT 1) SELECT * FROM c", Mode.READ),
    ("WITH c(a,{_}{n}) AS (SELECT 1, 2) SELECT * FROM c", Mode.READ),
    ("SELECT sum(id) OVER{_}{n} FROM messages", Mode.READ),
    ("SELECT sum(id) OVER ({n}{_}ORDER BY id) FROM messages", Mode.READ),
    ("SELECT 1 FROM messages WINDOW{_}{n}{_}AS ()", Mode.READ),
    ("SELECT 1 FROM messages WINDOW w AS (),{_}{n}{_}AS ()", Mode.READ),
    ("SELECT 1 FROM messages WINDOW w AS ({n})", Mode.READ),
    ("SELECT CAST(body AS{_}{n}) FROM messages", Mode.READ),
    ("SELECT body COLLATE{_}{n} FROM messages", Mode.READ),
    ("UPDATE messages AS{_}{n}{_}SET body = 1", Mode.WRITE),
    ("DELETE FROM messages AS{_}{n}", Mode.WRITE),
    ("WITH{_}{n}{_}AS (SELECT 1) DELETE FROM messages", Mode.WRITE),
    # a keyword SQLite reads as a column's name where an operand starts, then an alias
    ('SELECT offset{_}{n} FROM (SELECT 1 AS "offset")', Mode.READ),
    ('SELECT 1, by{_}{n} FROM (SELECT 1 AS "by")', Mode.READ),
    ('SELECT DISTINCT rows{_}{n} FROM (SELECT 1 AS "rows")', Mode.READ),
    ('SELECT 1 + glob{_}{n} FROM (SELECT 1 AS "glob")', Mode.READ),
    ('SELECT NOT like{_}{n} FROM (SELECT 1 AS "like")', Mode.READ),
    ('SELECT 1 IS NOT match{_}{n} FROM (SELECT 1 AS "match")', Mode.READ),
    ('SELECT q.range{_}{n} FROM (SELECT 1 AS "range") AS q', Mode.READ),
)
# {n} names a column: in a join's USING list, a SET list and an INSERT's column list.
COLUMN_POSITIONS = (
    ("SELECT * FROM messages JOIN messages AS m USING ({n})", Mode.READ),
    ("SELECT * FROM messages JOIN messages AS m USING (id,{_}{n})", Mode.READ),
    ("UPDATE messages SET{_}{n}{_}= 1", Mode.WRITE),
    ("UPDATE messages SET body = 1,{_}{n}{_}= 2", Mode.WRITE),
    ("UPDATE messages SET ({n}, body) = (1, 2)", Mode.WRITE),
    ("UPDATE messages SET body = 1, (id,{_}{n}) = (1, 2) WHERE id = 0", Mode.WRITE),
    ("INSERT INTO messages ({n}) VALUES (1)", Mode.WRITE),
    ("INSERT INTO messages (id,{_}{n}) VALUES (1, 2)", Mode.WRITE),
    ("INSERT INTO messages AS m ({n}) VALUES (1)", Mode.WRITE),
    (
        "INSERT INTO messages (id) VALUES (1) ON CONFLICT DO UPDATE SET body = 2,{_}{n}{_}= 3",
        Mode.WRITE,
    ),
)
# A string literal here is data, whatever it holds.
DATA_POSITIONS = (
    ("SELECT{_}{n}", Mode.READ),
    ("SELECT{_}{n}{_}AS x", Mode.READ),
    ("SELECT DISTINCT{_}{n}", Mode.READ),
    ("SELECT body AS x,{_}{n} FROM messages", Mode.READ),
    ("SELECT CAST(body AS TEXT),{_}{n} FROM messages", Mode.READ),
    ("SELECT abs(1), coalesce(body,{_}{n}) FROM messages", Mode.READ),
    ("SELECT * FROM messages WHERE body LIKE{_}{n}{_}ESCAPE{_}{n}", Mode.READ),
    ("SELECT * FROM messages WHERE body NOT GLOB{_}{n}", Mode.READ),
    ("SELECT * FROM messages WHERE body IS NOT{_}{n}", Mode.READ),
    ("SELECT * FROM messages WHERE NOT{_}{n}{_}OR{_}{n}", Mode.READ),
    ("SELECT * FROM messages WHERE body BETWEEN{_}{n}{_}AND{_}{n}", Mode.READ),
    ("SELECT body IS DISTINCT FROM{_}{n} FROM messages", Mode.READ),
    ("SELECT CASE{_}{n}{_}WHEN{_}{n}{_}THEN{_}{n}{_}ELSE{_}{n}{_}END FROM messages", Mode.READ),
    ("SELECT * FROM messages ORDER BY{_}{n}", Mode.READ),
    ("SELECT * FROM messages GROUP BY body HAVING{_}{n}", Mode.READ),
    ("SELECT * FROM messages LIMIT 1 OFFSET{_}{n}", Mode.READ),
    ("SELECT sum(id) OVER (PARTITION BY{_}{n}) FROM messages", Mode.READ),
    ("SELECT sum(id) OVER (ORDER BY id ROWS{_}{n}{_}PRECEDING) FROM messages", Mode.READ),
    ("SELECT * FROM messages JOIN messages AS m ON{_}{n}", Mode.READ),
    ("VALUES ({n}), ({n})", Mode.READ),
    ("INSERT INTO messages (body) VALUES ({n})", Mode.WRITE),
    ("UPDATE messages SET body ={_}{n}{_}WHERE body ={_}{n}", Mode.WRITE),
    (
        "UPDATE messages SET body = 1, id = coalesce(id,{_}{n}) WHERE body IN ({n},{_}{n})",
        Mode.WRITE,
    ),
    ("INSERT INTO messages (body) VALUES ({n}) ON CONFLICT DO UPDATE SET body ={_}{n}", Mode.WRITE),
    ("SELECT * FROM messages WHERE body NOT LIKE{_}{n}{_}OR NOT body MATCH{_}{n}", Mode.READ),
    ("SELECT * FROM messages ORDER BY body LIMIT ? OFFSET{_}{n}", Mode.READ),
    # after a column named like a keyword (the keyword is the operator then)
    ('SELECT * FROM (SELECT 1 AS "range") WHERE range LIKE{_}{n}', Mode.READ),
    ('SELECT * FROM (SELECT 1 AS "offset") AS e WHERE e.offset NOT LIKE{_}{n}', Mode.READ),
    ('SELECT * FROM (SELECT 1 AS "offset") WHERE offset NOT GLOB{_}{n}', Mode.READ),
    ('SELECT * FROM (SELECT 1 AS "with") WHERE with IN ({n},{_}{n})', Mode.READ),
)
NAMES = ("sqlite_y", "_cf_x", "SQLITE_W", "_CF_C", "dbstat", "pragma_table_list")


def located(sql: str, mode: Mode) -> tuple[str, int]:
    try:
        check_statement(sql, mode)
    except GuardViolation as error:
        return error.kind, error.offset
    return "ok", -1


@settings(max_examples=300, deadline=None, database=None)
@given(
    name=st.sampled_from(NAMES),
    template=st.sampled_from(NAME_POSITIONS + COLUMN_POSITIONS),
    separator=st.sampled_from(SEPARATORS),
)
def test_a_string_literal_read_as_a_name_is_refused_like_its_quoted_twin(
    name: str, template: tuple[str, Mode], separator: str
) -> None:
    """R24: an alias, CTE, window, type or collation name written as a string literal is refused
    with the kind and offset of the same name in double quotes."""
    text, mode = template
    as_string = located(text.format(n=f"'{name}'", _=separator), mode)
    assert as_string[0] != "ok", text
    assert as_string == located(text.format(n=f'"{name}"', _=separator), mode), text


@settings(max_examples=300, deadline=None, database=None)
@given(
    name=st.sampled_from(NAMES),
    template=st.sampled_from(DATA_POSITIONS),
    separator=st.sampled_from(SEPARATORS),
)
def test_a_string_literal_read_as_data_is_never_refused(
    name: str, template: tuple[str, Mode], separator: str
) -> None:
    text, mode = template
    assert verdict(text.format(n=f"'{name}'", _=separator), mode) == "ok", text


# Result columns: SQLite names the column by the string literal's text only when it reads it as an
# alias (a column of data is named by the expression's text, quotes included).
RESULT_COLUMNS = (
    ("SELECT body AS {n} FROM messages", True),
    ("SELECT body {n} FROM messages", True),
    ("SELECT 1 {n}", True),
    ("SELECT NULL {n}", True),
    ("SELECT 'a' {n}", True),
    ("SELECT ? {n}", True),
    ("SELECT (1) {n}", True),
    ("SELECT count(*) {n} FROM messages", True),
    ("SELECT CASE WHEN 1 THEN 2 END {n}", True),
    ("SELECT {n}", False),
    ("SELECT {n} AS x", False),
    ("SELECT DISTINCT {n}", False),
    ("SELECT body AS x, {n} FROM messages", False),
    ("SELECT CAST(body AS TEXT), {n} FROM messages", False),
    ("SELECT body LIKE {n} FROM messages", False),
    ("SELECT body NOT LIKE {n} FROM messages", False),
    ('SELECT offset {n} FROM (SELECT 1 AS "offset")', True),
    ('SELECT 1 + glob {n} FROM (SELECT 1 AS "glob")', True),
    ('SELECT NOT like {n} FROM (SELECT 1 AS "like")', True),
    ('SELECT 1 IS NOT regexp {n} FROM (SELECT 1 AS "regexp")', True),
)


@pytest.mark.parametrize(("text", "alias"), RESULT_COLUMNS)
def test_the_guard_refuses_a_string_literal_exactly_where_sqlite_names_a_column_by_it(
    scratch: tuple[apsw.Connection, set[str]], text: str, alias: bool
) -> None:
    conn, _touched = scratch
    sql = text.format(n="'sqlite_y'")
    columns = [column for column, _type in apsw.ext.query_info(conn, sql).description]
    assert ("sqlite_y" in columns) == alias, columns
    assert located(sql, Mode.READ) == (
        ("reserved-name", sql.index("'sqlite_y'")) if alias else ("ok", -1)
    )


def test_sqlite_reads_the_name_and_data_templates(
    scratch: tuple[apsw.Connection, set[str]],
) -> None:
    """The templates above are not vacuous: SQLite prepares every data template and nearly every
    name template (a window's base name written as a string matches no window)."""
    for text, _mode in DATA_POSITIONS:
        assert what_sqlite_touches(scratch, text.format(n="'sqlite_y'", _=" ")) is not None, text
    read = [
        text
        for text, _mode in NAME_POSITIONS
        if what_sqlite_touches(scratch, text.format(n="'sqlite_y'", _=" ")) is not None
    ]
    assert len(read) >= len(NAME_POSITIONS) - 2


@pytest.mark.parametrize(("text", "_mode"), COLUMN_POSITIONS)
def test_sqlite_reads_a_string_in_a_list_of_columns_as_a_column(
    scratch: tuple[apsw.Connection, set[str]], text: str, _mode: Mode
) -> None:
    """The column templates are names to SQLite: the string 'body' there writes that column, and
    a string naming no column is "no such column" (as the quoted twin would be)."""
    conn, _touched = scratch
    assert what_sqlite_touches(scratch, text.format(n="'body'", _=" ")) is not None, text
    with pytest.raises(apsw.SQLError, match=r"no such column|has no column named|using column"):
        conn.execute(text.format(n="'nope'", _=" "))

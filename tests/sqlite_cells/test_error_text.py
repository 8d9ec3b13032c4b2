"""What a refused or failed statement's message says (Errors: what was wrong, where, and what
to do): a statement of megabytes is quoted by its beginning and its length, never whole; a
statement neither a read nor a write (``EXPLAIN``) is not sent to the other call."""

from __future__ import annotations

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.codec import ExecError, GuardViolation, LinkEncodeError, PendingValue, QueryError

LONG_WHERE = "id IN (" + ", ".join(map(str, range(50_000))) + ")"  # ≈ 290,000 characters


def test_a_failed_read_of_a_long_statement_quotes_its_beginning_and_length(
    db: sc.SqliteDb,
) -> None:
    sql = f"SELECT id FROM no_such_table WHERE {LONG_WHERE}"
    with pytest.raises(QueryError) as caught:
        db.read(sql)
    text = str(caught.value)
    assert caught.value.sql == sql  # the whole statement stays on the error
    assert len(text) < 1_000
    assert "no such table: no_such_table" in text
    assert repr(sql[:200]) in text and f"({len(sql):,} characters)" in text


def test_a_failed_write_of_a_long_statement_quotes_its_beginning_and_length(
    space: Space, db: sc.SqliteDb
) -> None:
    sql = f"UPDATE no_such_table SET body = 'x' WHERE {LONG_WHERE}"
    with pytest.raises(ExecError) as caught, space.transact():
        db.exec(sql)
    text = str(caught.value)
    assert caught.value.sql == sql
    assert len(text) < 1_000
    assert "no such table" in text and f"({len(sql):,} characters)" in text
    assert text.endswith("the whole transaction was rolled back")


def test_a_short_statement_is_quoted_whole(db: sc.SqliteDb) -> None:
    with pytest.raises(QueryError) as caught:
        db.read("SELECT id FROM no_such_table")
    assert str(caught.value).endswith("in 'SELECT id FROM no_such_table'")


@pytest.mark.parametrize("sql", ["EXPLAIN SELECT 1", "EXPLAIN QUERY PLAN SELECT * FROM t"])
def test_explain_is_refused_without_sending_it_to_the_other_call(
    space: Space, db: sc.SqliteDb, sql: str
) -> None:
    with pytest.raises(GuardViolation) as read:
        db.read(sql)
    assert read.value.kind == "not-read-only" and read.value.offset == 0
    assert "EXPLAIN is not run" in str(read.value) and "db.exec" not in str(read.value)
    with pytest.raises(GuardViolation) as write, space.transact():
        db.exec(sql)
    assert write.value.kind == "not-a-write" and write.value.offset == 0
    assert "EXPLAIN is not run" in str(write.value) and "db.read" not in str(write.value)


def test_a_statement_of_the_other_kind_names_the_call_that_takes_it(
    space: Space, db: sc.SqliteDb
) -> None:
    with pytest.raises(GuardViolation) as read:
        db.read("DELETE FROM t")
    assert read.value.kind == "not-read-only"
    assert "db.exec(...) inside a transaction" in str(read.value)
    with pytest.raises(GuardViolation) as write, space.transact():
        db.exec("SELECT 1")
    assert write.value.kind == "not-a-write"
    assert "db.read(...) or db.query(...)" in str(write.value)


@pytest.mark.parametrize(
    ("row", "error", "said"),
    [
        ([2, object(), None], ExecError, "row 1 (counting from 0), parameter 2 is a object"),
        ([2, "y", "not a link"], LinkEncodeError, "row 1 (counting from 0), parameter 3 targets"),
        ([2, "y"], ExecError, "row 1 (counting from 0): the statement has 3 parameter(s)"),
        (5, ExecError, "row 1 (counting from 0): parameters are a list"),
        ([2, sc.PENDING, None], PendingValue, "row 1 (counting from 0), parameter 2 is not ready"),
    ],
)
def test_exec_many_names_the_row_it_refuses(
    space: Space, db: sc.SqliteDb, row: object, error: type[Exception], said: str
) -> None:
    sql = "INSERT INTO messages (id, body, author_cf_link) VALUES (?, ?, ?)"
    with space.transact():
        with pytest.raises(error) as caught:
            db.exec_many(sql, [[1, "x", None], row])
        assert said in str(caught.value)
        db.exec(sql, [1, "kept", None])  # nothing of the refused call was recorded (R31)
    assert db.read("SELECT id, body FROM messages") == [{"id": 1, "body": "kept"}]


def test_exec_names_no_row(space: Space, db: sc.SqliteDb) -> None:
    with pytest.raises(ExecError) as caught, space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (?, ?)", [1, object()])
    assert "parameter 2 is a object" in str(caught.value) and "row" not in str(caught.value)


def test_stored_text_that_is_not_utf8_names_the_column_the_file_and_the_remedy(
    space: Space,
) -> None:
    # (A table with link columns refuses such text at the write: its changeset is decoded.)
    db = space.sqlite_database(
        "notes", tables={"notes": sc.table(id="integer primary key", body="text")}
    )
    with space.transact():
        db.exec("INSERT INTO notes (id, body) VALUES (1, CAST(x'41ff00fe' AS TEXT))")
    with pytest.raises(QueryError) as caught:
        db.read("SELECT id, body FROM notes")
    text = str(caught.value)
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)
    assert (
        f"text in column(s) 'body' of the rows read from the file {db.path} is not valid UTF-8"
        in text
    )
    assert "CAST(column AS BLOB)" in text
    rows = db.read("SELECT id, CAST(body AS BLOB) AS body FROM notes")
    assert rows == [{"id": 1, "body": b"A\xff\x00\xfe"}]  # the remedy the message names


def test_text_a_read_makes_that_is_not_utf8_is_not_said_to_be_stored(db: sc.SqliteDb) -> None:
    """A blob CAST AS TEXT in the statement makes such text too: the message names both."""
    with pytest.raises(QueryError) as caught:
        db.read("SELECT CAST(x'80' AS TEXT) AS t")
    text = str(caught.value)
    assert "text in column(s) 't' of the rows read from the file" in text
    assert "stored so or made so by the statement (a blob CAST AS TEXT)" in text


@pytest.mark.parametrize(
    ("sql", "said", "code", "advice"),
    [
        ("SELECT nosuch FROM messages", "no such column: nosuch", "SQLITE_ERROR", "correct the"),
        ("SELECT 'a' ||| 'b'", 'near "|": syntax error', "SQLITE_ERROR", "correct the statement"),
        ("SELECT abs(1, 2)", "wrong number of arguments", "SQLITE_ERROR", "correct the"),
        ("SELECT 1 LIMIT 'x'", "datatype mismatch", "SQLITE_MISMATCH", "LIMIT and OFFSET"),
    ],
)
def test_a_read_sqlite_refuses_says_sqlites_words_its_code_and_what_to_do(
    db: sc.SqliteDb, sql: str, said: str, code: str, advice: str
) -> None:
    with pytest.raises(QueryError) as caught:
        db.read(sql)
    text = str(caught.value)
    assert said in text and f"(SQLite's {code})" in text and advice in text
    assert "SQLError" not in text  # apsw's class name is no advice
    assert text.endswith(f"in {sql!r}")


@pytest.mark.parametrize(
    ("sql", "params", "said", "code", "advice"),
    [
        (
            "INSERT INTO messages (id, body) VALUES (?, 'b')",
            [1],
            "UNIQUE constraint failed: messages.id",
            "SQLITE_CONSTRAINT",
            "say what a conflict should do",
        ),
        (
            "INSERT INTO messages (id, body) VALUES (?, 'b')",
            ["not a number"],
            "datatype mismatch",
            "SQLITE_MISMATCH",
            "give a value of the type expected there",
        ),
        (
            "INSERT INTO messages (body) SELECT token FROM fts3tokenize('simple', ?)",
            ["a b"],
            "fts3tokenize.token is prohibited",
            "SQLITE_AUTH",
            "may use only the database's declared tables",
        ),
        ("UPDATE messages SET nosuch = ?", [1], "no such column", "SQLITE_ERROR", "correct the"),
    ],
)
def test_a_write_sqlite_refuses_says_sqlites_words_its_code_and_what_to_do(
    space: Space, db: sc.SqliteDb, sql: str, params: list[object], said: str, code: str, advice: str
) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'a')")
    with pytest.raises(ExecError) as caught, space.transact():
        db.exec(sql, params)
    text = str(caught.value)
    assert said in text and f"(SQLite's {code})" in text and advice in text
    assert caught.value.sqlite_error is not None and said in caught.value.sqlite_error
    assert "ConstraintError" not in text and "SQLError" not in text
    assert db.read("SELECT id, body FROM messages") == [{"id": 1, "body": "a"}]


def test_malformed_json_from_stored_data_says_the_stored_value_is_not_json(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """A JSON function over a column holding text that is not JSON fails in SQLite with
    "malformed JSON": the statement is fine, the stored value is not. The message said
    "correct the statement"; it now says the stored value is not JSON, and to correct it or
    guard the call with json_valid — for a read, a live query and a write (which writes
    nothing). A statement that reads no table gave the text itself: it is told to correct it."""
    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'not json{')")
    stored = "a value stored in a column the statement reads is not JSON text"
    guard = "correct the stored value, or guard the call with json_valid"
    sql = "SELECT json_extract(body, '$.a') AS a FROM messages"
    with pytest.raises(QueryError) as caught:
        db.read(sql)
    q = db.query(sql)
    rt.settle()
    rev = db.rev
    with pytest.raises(ExecError) as written, space.transact():
        db.exec("UPDATE messages SET body = json_set(body, '$.a', 1)")
    for error in (caught.value, q.get().error, written.value):
        text = str(error)
        assert "malformed JSON (SQLite's SQLITE_ERROR)" in text, text
        assert stored in text and guard in text, text
        assert "correct the statement" not in text, text
    assert (q.get().pending, q.get().result) == (False, None)
    assert db.read("SELECT id, body FROM messages") == [{"id": 1, "body": "not json{"}]
    assert db.rev == rev
    assert (
        db.read("SELECT json_extract(body, '$.a') AS a FROM messages WHERE json_valid(body)") == []
    )
    for sql, params in (
        ("SELECT json_extract('x{', '$') AS a", []),
        ("SELECT json(?) AS a", ["x{"]),
    ):
        with pytest.raises(QueryError) as caught:
            db.read(sql, params=params)
        text = str(caught.value)
        assert "malformed JSON" in text and "a literal or a parameter of the statement" in text
        assert stored not in text


def test_indexed_by_a_declared_index_the_file_lacks_says_when_it_comes(space: Space) -> None:
    """R13, R14: an index added by a re-declaration is created at the next write; SQLite has
    no stand-in for it before (a read runs no DDL), so ``INDEXED BY`` it fails — saying so,
    not "correct the statement"."""
    tables = {"t": sc.table(a="text", k="integer")}
    db = space.sqlite_database("ix", tables=tables)
    with space.transact():
        db.exec("INSERT INTO t (a, k) VALUES ('x', 2)")
    db = space.sqlite_database(
        "ix", tables={**tables, "t": sc.table(a="text", k="integer", indexes={"by_k": ["k"]})}
    )
    sql = "SELECT a FROM t INDEXED BY by_k WHERE k = 2"
    with pytest.raises(
        QueryError,
        match="index by_k is declared, but until the database's next write",
    ):
        db.read(sql)
    with space.transact():
        db.exec("INSERT INTO t (a, k) VALUES ('y', 3)")
    assert db.read(sql) == [{"a": "x"}]


def test_a_path_keys_refusal_shows_the_key_cut(space: Space) -> None:
    """Every refusal shows its argument cut (docs/decisions.md): a path key was quoted whole, a
    5 MB key giving a 5 MB message."""
    c = space.cell("scalar", default=5)
    key = "k" * 5_000_000
    with pytest.raises(sc.SqliteCellsError, match="cannot set key") as info, space.transact():
        c.key(key).set(1)  # inside an int
    assert len(str(info.value)) < 2_000
    with pytest.raises(sc.SqliteCellsError, match="not valid Unicode") as info:
        c.key(key + "\ud800")
    assert len(str(info.value)) < 2_000


def test_a_cell_compared_with_a_link_column_in_a_write_is_told_to_bind_its_link(
    space: Space,
) -> None:
    """R31 refuses a cell bound where the statement writes no link column; the advice was only
    "bind cell.get() for its value", which a WHERE comparing with a link column refuses next."""
    owner = space.cell("owner")
    db = space.sqlite_database(
        "owned", tables={"t": sc.table(n="integer default 0", owner_cf_link=sc.cf_link())}
    )
    update = "UPDATE t SET n = n + 1 WHERE owner_cf_link = ?"
    with space.transact():
        db.exec("INSERT INTO t (owner_cf_link) VALUES (?)", [owner])
        with pytest.raises(sc.LinkEncodeError, match=r"bind cell\.link_str\(\) to compare"):
            db.exec(update, [owner])
        db.exec(update, [owner.link_str()])  # the advice works
    assert db.read("SELECT n FROM t") == [{"n": 1}]


def test_one_database_per_transaction_and_read_after_write_name_the_databases(
    space: Space,
) -> None:
    """R33, R35: the refusals named databases by their ids only, where a conflict names them
    as the runtime calls them (docs/decisions.md)."""
    tables = {"t": sc.table(v="integer")}
    orders = space.sqlite_database("orders", tables=tables)
    audit = space.sqlite_database("audit", tables=tables)
    with space.transact():
        orders.exec("INSERT INTO t (v) VALUES (1)")
        with pytest.raises(sc.TooManyDatabases) as many:
            audit.exec("INSERT INTO t (v) VALUES (1)")
        with pytest.raises(sc.ReadAfterWriteUnsupported) as after:
            orders.read("SELECT v FROM t")
    assert f"already writes database 'orders' ({orders.id})" in str(many.value)
    assert f"cannot also write database 'audit' ({audit.id})" in str(many.value)
    assert f"pending db.exec on database 'orders' ({orders.id})" in str(after.value)


def test_decode_cf_link_takes_the_link_object_cell_link_returns(space: Space) -> None:
    c = space.cell("c", default=1)
    found = sc.decode_cf_link(c.link(), space.runtime)
    assert found.id == c.id and found.get() == 1


def test_a_pattern_called_directly_is_told_to_run_with_space_run(space: Space) -> None:
    @sc.pattern
    def notes() -> sc.SqliteDb:
        return space.sqlite_database(tables={"t": sc.table(v="text")})

    with pytest.raises(sc.SqliteCellsError, match=r"called directly.*space\.run\(notes, key="):
        notes()
    piece = space.run(notes, key="main")  # as it says
    assert isinstance(piece.outputs, sc.SqliteDb)


def test_a_cell_holding_a_dict_compared_with_a_link_column_is_told_so(space: Space) -> None:
    """The refusal listed "or a Cell" among what may be bound, while refusing a cell, and did
    not say the value is compared with a link column, as it does for a number."""
    alice = space.cell("alice", default={"name": "Alice"})
    db = space.sqlite_database(
        "owned2", tables={"t": sc.table(n="integer", owner_cf_link=sc.cf_link())}
    )
    with pytest.raises(sc.QueryError) as info:
        db.read("SELECT n FROM t WHERE owner_cf_link = ?", [alice])
    text = str(info.value)
    assert "compares it with the link column owner_cf_link" in text and "or a Cell" not in text


def test_an_unwritten_database_whose_cell_another_runtime_set_says_what_may_have_happened(
    rt: sc.Runtime,
) -> None:
    """Decided: another runtime, which does not know the id for a database's, may set the cell
    of a database never written through its link; the database is quarantined (R5). Its advice
    said "its file is kept" (none exists) and blamed "an older or foreign program" only."""
    space = rt.space("s")
    db = space.sqlite_database("d", tables={"t": sc.table(v="text")})
    with sc.Runtime(rt.store) as other:
        other_space = other.space("s")
        with other_space.transact():
            other.cell_from_link(db.link_str()).set({"x": 1})
    rt.settle(10)
    with pytest.raises(sc.Quarantined) as info:
        db.read("SELECT v FROM t")
    text = str(info.value)
    assert "set through a link to the cell by a runtime that did not know it" in text
    assert "if it has one" in text and "declare it under another name" in text


def test_a_cells_repr_shows_its_path_keys_cut(space: Space) -> None:
    cell = space.cell("c").key("k" * 5_000_000)
    assert len(repr(cell)) < 2_000 and "kkk" in repr(cell)


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        ([[1, "a"], [2, "b"], [1, "c"], [3, "d"]], "row 2 (counting from 0): UNIQUE constraint"),
        ([[1, None], [2, "b"]], "row 0 (counting from 0): NOT NULL constraint"),
    ],
)
def test_exec_many_names_the_row_sqlite_refuses_at_commit(
    space: Space, db: sc.SqliteDb, rows: list[list[object]], said: str
) -> None:
    with pytest.raises(ExecError) as caught, space.transact():
        db.exec_many("INSERT INTO messages (id, body) VALUES (?, ?)", rows)
    assert said in str(caught.value)
    assert (
        caught.value.sqlite_error is not None and "constraint failed" in caught.value.sqlite_error
    )
    assert db.read("SELECT id FROM messages") == [] and db.rev == 0  # rolled back whole (R34)


def test_exec_many_names_no_row_for_a_statement_sqlite_cannot_prepare(
    space: Space, db: sc.SqliteDb
) -> None:
    with pytest.raises(ExecError) as caught, space.transact():
        db.exec_many("INSERT INTO no_such_table (id) VALUES (?)", [[1], [2]])
    assert "no such table" in str(caught.value) and "row" not in str(caught.value)


def test_sqlite_out_of_memory_in_a_statement_says_what_to_do() -> None:
    """Errors: a write SQLite ran out of memory for said only "out of memory (SQLite's
    SQLITE_NOMEM)"."""
    from sqlite_cells.sql._refusals import sqlite_refusal

    said = sqlite_refusal(apsw.NoMemError("out of memory"))
    assert said.startswith("out of memory (SQLite's ")
    assert "no memory left for the statement" in said and "memory limit" in said

"""db.exec folds into the commit (R2, R13, R31–R36)."""

from __future__ import annotations

from collections import UserList
from collections.abc import Iterator, Mapping
from itertools import islice

import apsw
import pytest

import sqlite_cells as sc
import sqlite_cells.runtime._commit as commit
from sqlite_cells._runtime import Space
from sqlite_cells.codec import derive_id, short_hash
from sqlite_cells.files import read_watermark

from .conftest import MESSAGES

INSERT = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)"


def _rows(db: sc.SqliteDb) -> list[tuple[object, ...]]:
    if not db.path.exists():
        return []
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return list(conn.execute("SELECT id, author_cf_link, body, ts FROM messages ORDER BY id"))
    finally:
        conn.close()


def _watermark(db: sc.SqliteDb) -> int:
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return read_watermark(conn)
    finally:
        conn.close()


def test_handle_identity_file_and_value(rt: sc.Runtime, space: Space, db: sc.SqliteDb) -> None:
    assert db.id == derive_id("sqlite", "demo", "chat")
    assert db.path == rt.store / f"cell-{short_hash(db.id)}.sqlite"
    assert db.path.parent == space.file.path.parent
    assert db.rev == 0
    assert db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 0}
    assert set(db.tables) == {"messages"}
    assert not db.path.exists()  # declaring writes nothing


def test_exec_writes_rows_and_links_in_the_same_commit(space: Space, db: sc.SqliteDb) -> None:
    alice = space.cell("alice", default={"name": "Alice"})
    counter = space.cell("counter", default=0)
    with space.transact() as tx:
        counter.set(1)
        db.exec(INSERT, [alice, "hi", 5])
        db.exec(INSERT, (None, "anon", 6))
    assert tx.seq == 1
    assert _rows(db) == [(1, alice.link_str(), "hi", 5), (2, None, "anon", 6)]
    assert db.rev == 1  # one committed transaction, however many statements
    assert db.get()["rev"] == 1
    assert _watermark(db) == 1
    assert counter.get() == 1


def test_rev_increments_once_per_committed_transaction(space: Space, db: sc.SqliteDb) -> None:
    @sc.handler
    def post(body: str) -> None:
        db.exec("INSERT INTO messages (body) VALUES (?)", [body])

    seqs = [post(b) for b in "abc"]
    assert seqs == [1, 2, 3]
    assert db.rev == 3 and _watermark(db) == 3


def test_exec_many_is_one_op(space: Space, db: sc.SqliteDb) -> None:
    with space.transact() as tx:
        db.exec_many("INSERT INTO messages (body, ts) VALUES (?, ?)", [("a", 1), ("b", 2)])
        assert len(tx.ops) == 1
    assert [r[2] for r in _rows(db)] == ["a", "b"]


def test_named_parameters_and_update_of_a_link_column(space: Space, db: sc.SqliteDb) -> None:
    alice, bob = space.cell("alice"), space.cell("bob")
    with space.transact():
        db.exec(
            "INSERT INTO messages (body, author_cf_link) VALUES (:b, :who)",
            {"b": "x", "who": alice},
        )
    with space.transact():
        db.exec("UPDATE messages SET author_cf_link = ? WHERE id = ?", [bob, 1])
    assert _rows(db) == [(1, bob.link_str(), "x", 0)]


def test_exec_needs_a_transaction(db: sc.SqliteDb) -> None:
    with pytest.raises(sc.NoTransaction, match="needs a transaction"):
        db.exec(INSERT, [None, "x", 1])


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ([None, "body", sc.PENDING], sc.PendingValue, "not ready"),
        (["not a cell", "body", 1], sc.LinkEncodeError, "targets the link column"),
        ([None, "CELL", 1], sc.LinkEncodeError, "cells can only be bound"),
        ([None, "body"], sc.ExecError, "has 3 parameter"),
        ([None, {"a": 1}, 1], sc.ExecError, "is a dict"),
    ],
)
def test_bad_parameters_raise_at_the_call_and_record_nothing(
    space: Space, db: sc.SqliteDb, params: list[object], error: type[Exception], match: str
) -> None:
    alice = space.cell("alice")
    params = [alice if p == "CELL" else p for p in params]
    counter = space.cell("counter", default=0)
    with space.transact() as tx:
        counter.set(1)
        with pytest.raises(error, match=match):
            db.exec(INSERT, params)
        assert tx.ops == () and db.id not in tx.writes
        db.exec(INSERT, [alice, "ok", 1])  # the transaction is still usable
    assert counter.get() == 1 and db.rev == 1
    assert [r[2] for r in _rows(db)] == ["ok"]


def test_guard_verdicts_raise_at_the_call(space: Space, db: sc.SqliteDb) -> None:
    with space.transact() as tx:
        with pytest.raises(sc.GuardViolation) as info:
            db.exec("DROP TABLE messages")
        assert info.value.kind == "ddl"
        with pytest.raises(sc.GuardViolation) as info:
            db.exec("SELECT * FROM messages")
        assert info.value.kind == "not-a-write"
        with pytest.raises(sc.GuardViolation) as info:
            db.exec("INSERT INTO main.messages (body) VALUES ('x')")
        assert info.value.kind == "schema-qualified"
        assert tx.ops == ()
    assert not db.path.exists()


def test_a_failing_exec_rolls_back_the_cells_too(space: Space, db: sc.SqliteDb) -> None:
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'first')")
    seen: list[object] = []
    counter.observe().subscribe(seen.append)
    with pytest.raises(sc.ExecError) as info, space.transact():
        counter.set(10)
        db.exec("INSERT INTO messages (id, body) VALUES (2, 'second')")
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'duplicate')")
    assert info.value.db_id == db.id
    assert "duplicate" in info.value.sql and "UNIQUE" in str(info.value)
    assert isinstance(info.value.__cause__, apsw.ConstraintError)
    # R34: the error carries SQLite's own error, the statement and the database id.
    assert info.value.sqlite_error == "UNIQUE constraint failed: messages.id"
    assert info.value.sqlite_code == apsw.SQLITE_CONSTRAINT_PRIMARYKEY
    assert counter.get() == 0
    assert [r[2] for r in _rows(db)] == ["first"]
    assert db.rev == 1 and _watermark(db) == 1
    space.runtime.settle()
    assert seen == [0]  # nobody heard of the rolled-back value
    with space.transact() as tx:  # seqs are not skipped
        counter.set(2)
    assert tx.seq == 2


def test_authorizer_denies_what_the_guard_cannot_see(space: Space, db: sc.SqliteDb) -> None:
    with pytest.raises(sc.ExecError) as info, space.transact():
        db.exec("INSERT INTO undeclared (x) VALUES (1)")
    assert info.value.db_id == db.id
    assert db.rev == 0


def test_one_database_per_transaction(space: Space, db: sc.SqliteDb) -> None:
    other = space.sqlite_database("other", tables=MESSAGES)
    with space.transact():
        db.exec(INSERT, [None, "a", 1])
        with pytest.raises(sc.TooManyDatabases, match="R33"):
            other.exec(INSERT, [None, "b", 1])
    assert db.rev == 1 and other.rev == 0 and not other.path.exists()
    with space.transact():  # another transaction may write the other database
        other.exec(INSERT, [None, "b", 1])
    with space.transact():  # and back: the attached file is switched before BEGIN
        db.exec(INSERT, [None, "c", 2])
    assert [r[2] for r in _rows(db)] == ["a", "c"]
    assert [r[2] for r in _rows(other)] == ["b"]
    assert (_watermark(db), _watermark(other)) == (3, 2)


def test_reading_a_database_written_in_the_same_transaction(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.read("SELECT count(*) AS n FROM messages")  # before writing: fine
        db.exec(INSERT, [None, "a", 1])
        with pytest.raises(sc.ReadAfterWriteUnsupported, match="R35"):
            db.read("SELECT count(*) AS n FROM messages")
        with pytest.raises(sc.ReadAfterWriteUnsupported):
            db.query("SELECT * FROM messages")
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]


def test_additive_migration_on_first_write_of_a_new_declaration(
    rt: sc.Runtime, space: Space
) -> None:
    v1 = space.sqlite_database(
        "notes", tables={"notes": sc.table(id="integer primary key", body="text")}
    )
    with space.transact():
        v1.exec("INSERT INTO notes (body) VALUES ('old')")
    v2 = space.sqlite_database(
        "notes",
        tables={
            "notes": sc.table(id="INTEGER PRIMARY KEY", body="text", pinned="integer default 0"),
            "tags": sc.table(name="text"),
        },
    )
    assert v2.id == v1.id
    # Reads never run DDL: the new column is not there yet, the new table reads as empty.
    assert v2.read("SELECT * FROM tags") == []
    with space.transact():
        v2.exec("INSERT INTO tags (name) VALUES ('x')")
    assert v2.read("SELECT body, pinned FROM notes") == [{"body": "old", "pinned": 0}]


def test_destructive_migration_is_refused_and_writes_nothing(space: Space) -> None:
    v1 = space.sqlite_database(
        "notes", tables={"notes": sc.table(id="integer primary key", body="text")}
    )
    with space.transact():
        v1.exec("INSERT INTO notes (body) VALUES ('old')")
    v2 = space.sqlite_database(
        "notes", tables={"notes": sc.table(id="integer primary key", body="integer")}
    )
    counter = space.cell("counter", default=0)
    with pytest.raises(sc.UnsupportedMigration) as info, space.transact():
        counter.set(1)
        v2.exec("INSERT INTO notes (body) VALUES (1)")
    assert any("body" in d for d in info.value.differences)
    assert counter.get() == 0 and v2.rev == 1


def test_a_failing_migrate_callback_is_a_migration_error(space: Space) -> None:
    v1 = space.sqlite_database(
        "notes", tables={"notes": sc.table(id="integer primary key", body="text")}
    )
    with space.transact():
        v1.exec("INSERT INTO notes (body) VALUES ('old')")

    def migrate(conn: object, from_version: int) -> None:
        raise KeyError("boom")

    v2 = space.sqlite_database(
        "notes",
        tables={"notes": sc.table(id="integer primary key", body="text")},
        version=2,
        migrate=migrate,
    )
    with pytest.raises(sc.MigrationError) as info, space.transact():
        v2.exec("INSERT INTO notes (body) VALUES ('new')")
    assert isinstance(info.value.__cause__, KeyError)
    assert v2.read("SELECT body FROM notes") == [{"body": "old"}]


def test_setting_the_authorizer_empties_apsws_statement_cache() -> None:
    """Why each write connection gets one Gate for its lifetime: a statement prepared under one
    authorizer is prepared again once another is set, so switching authorizers per op would
    re-prepare every statement on every commit."""
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.authorizer = lambda *args: apsw.SQLITE_OK
    conn.execute("SELECT * FROM t").fetchall()
    conn.authorizer = lambda action, *args: (
        apsw.SQLITE_DENY if action == apsw.SQLITE_READ else apsw.SQLITE_OK
    )
    with pytest.raises(apsw.AuthError):
        conn.execute("SELECT * FROM t").fetchall()


def test_exec_many_binds_plain_rows_and_checks_odd_ones(space: Space, db: sc.SqliteDb) -> None:
    alice = space.cell("alice")
    with space.transact():
        db.exec_many(
            "INSERT INTO messages (body, ts) VALUES (?, ?)", [("a", 1), ["b", True], ("c", 3.5)]
        )
        db.exec_many("INSERT INTO messages (author_cf_link, body) VALUES (?, ?)", [(alice, "d")])
        with pytest.raises(sc.LinkEncodeError):
            db.exec_many("INSERT INTO messages (body, ts) VALUES (?, ?)", [("ok", 1), (alice, 2)])
        with pytest.raises(sc.ExecError, match="has 2 parameter"):
            db.exec_many("INSERT INTO messages (body, ts) VALUES (?, ?)", [("ok", 1), ("short",)])
    assert db.read("SELECT body, ts FROM messages ORDER BY id") == [
        {"body": "a", "ts": 1},
        {"body": "b", "ts": 1},
        {"body": "c", "ts": 3.5},
        {"body": "d", "ts": 0},
    ]


def test_exec_many_takes_each_row_of_an_iterator_as_it_was_handed_over(
    space: Space, db: sc.SqliteDb
) -> None:
    """R36: a generator that fills one list (or dict) anew for each row gives each row's
    values, as ``exec`` calls would, not the last row's for every row."""
    alice = space.cell("alice")

    def positional() -> Iterator[list[object]]:
        row: list[object] = [None, "", 0]
        for i in range(3):
            row[:] = [alice if i % 2 == 0 else None, f"r{i}", i]
            yield row

    def named() -> Iterator[dict[str, object]]:
        row: dict[str, object] = {}
        for i in range(3, 5):
            row.update(body=f"r{i}", ts=i)
            yield row

    class Folded(Mapping[str, object]):  # a row of its own lookup: keys in any letter case
        def __init__(self) -> None:
            self.values: dict[str, object] = {}

        def __getitem__(self, key: str) -> object:
            return self.values[key.lower()]

        def __iter__(self) -> Iterator[str]:
            return iter(key.upper() for key in self.values)

        def __len__(self) -> int:
            return len(self.values)

    def own_rows() -> Iterator[object]:
        listed, folded = UserList([""]), Folded()
        for i in range(5, 7):
            listed[:] = [f"r{i}", i]
            yield listed
        for i in range(7, 9):
            folded.values.update(body=f"r{i}", ts=i)
            yield folded

    with space.transact():
        db.exec_many(INSERT, positional())
        db.exec_many("INSERT INTO messages (body, ts) VALUES (:body, :ts)", named())
        db.exec_many("INSERT INTO messages (body, ts) VALUES (?, ?)", islice(own_rows(), 2))
        db.exec_many(
            "INSERT INTO messages (body, ts) VALUES (:body, :ts)", islice(own_rows(), 2, 4)
        )
    link = alice.link_str()
    assert [row[1:] for row in _rows(db)] == [
        (link, "r0", 0),
        (None, "r1", 1),
        (link, "r2", 2),
        (None, "r3", 3),
        (None, "r4", 4),
        (None, "r5", 5),
        (None, "r6", 6),
        (None, "r7", 7),
        (None, "r8", 8),
    ]


def test_a_write_too_big_to_record_is_an_exec_error(space: Space, db: sc.SqliteDb) -> None:
    """A commit's changes are kept as one value (the changeset, R70), under SQLite's length
    limit (R44): a write changing more than that is an ExecError saying to write fewer rows,
    and nothing is written. The limit is lowered here so that a small write reaches it."""
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'first')")
    with space.file.write_connection() as conn:
        kept = conn.limit(apsw.SQLITE_LIMIT_LENGTH, 50_000)
    try:
        with pytest.raises(sc.ExecError) as info, space.transact():
            counter.set(1)
            db.exec(
                "WITH RECURSIVE c(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) "
                "INSERT INTO messages (id, body) SELECT x, 'row ' || x FROM c"
            )
    finally:
        with space.file.write_connection() as conn:
            conn.limit(apsw.SQLITE_LIMIT_LENGTH, kept)
    assert "too big to record in one commit" in str(info.value)
    assert "fewer rows per transaction" in str(info.value)
    assert info.value.db_id == db.id and info.value.sqlite_error is not None
    # The same error and advice as a commit record too big (it said apsw's class name, and
    # only "write fewer rows", which cannot help a single large row).
    assert isinstance(info.value, sc.ValueEncodeError)
    assert "set its large columns to NULL" in str(info.value)
    assert "TooBigError" not in str(info.value)
    assert counter.get() == 0 and db.rev == 1
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 1}]


def test_a_row_too_big_to_delete_at_once_is_deleted_in_the_steps_the_error_names(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writes each fit a record, the row they build does not: its DELETE records every old
    value. The error says how to remove it (its large columns set to NULL one per transaction,
    then the row), and those steps do. The record's limit is lowered so small rows reach it."""
    db = space.sqlite_database(
        "big", tables={"t": sc.table(id="integer primary key", a="text", b="text")}
    )
    monkeypatch.setattr(commit, "LENGTH_LIMIT", 20_000)
    with space.transact():
        db.exec("INSERT INTO t (id, a) VALUES (1, ?)", ["a" * 8_000])
    with space.transact():
        db.exec("UPDATE t SET b = ? WHERE id = 1", ["b" * 8_000])
    with pytest.raises(sc.ExecError) as info, space.transact():
        db.exec("DELETE FROM t WHERE id = 1")
    assert "set its large columns to NULL, one per transaction, then delete" in str(info.value)
    for column in ("a", "b"):
        with space.transact():
            db.exec(f"UPDATE t SET {column} = NULL WHERE id = 1")
    with space.transact():
        db.exec("DELETE FROM t WHERE id = 1")
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]


def test_writes_that_add_up_to_a_record_too_big_are_an_exec_error(
    space: Space, db: sc.SqliteDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write fits, their commit record does not: the same ExecError as one write too big
    (R34), still a ValueEncodeError for callers that caught that; nothing is written. The
    record's limit is lowered here so that small writes reach it."""
    counter = space.cell("counter", default=0)
    monkeypatch.setattr(commit, "LENGTH_LIMIT", 20_000)
    insert = "INSERT INTO messages (id, body) VALUES (?, ?)"
    with pytest.raises(sc.ExecError) as info, space.transact():
        counter.set(1)
        db.exec(insert, [1, "x" * 12_000])
        db.exec(insert, [2, "y" * 12_000])
    assert isinstance(info.value, sc.ValueEncodeError)
    assert info.value.db_id == db.id
    assert "too big to record in one commit" in str(info.value)
    assert "fewer rows per transaction" in str(info.value)
    assert "4/3 of their size" in str(info.value) and "in smaller pieces" in str(info.value)
    assert " in ''" not in str(info.value)
    assert counter.get() == 0 and db.rev == 0
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    with pytest.raises(sc.ValueEncodeError) as values, space.transact():
        counter.set("z" * 30_000)
    assert not isinstance(values.value, sc.ExecError)

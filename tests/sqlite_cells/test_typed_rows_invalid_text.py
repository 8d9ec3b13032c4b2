"""Text that is not UTF-8, stored by another program in a link column (R43): a typed row reads
it as no link (``None`` for that field) without failing the query, in one-shot reads and live
queries, by either way rows are built. Such text anywhere else still fails the query with
``QueryError``, typed or not (Errors)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space


class Msg(msgspec.Struct):
    id: int
    author_cf_link: sc.Cell | None


class Aliased(msgspec.Struct):
    id: int
    author: sc.Cell | None


class WithBody(msgspec.Struct):
    id: int
    author_cf_link: sc.Cell | None
    body: str


@dataclasses.dataclass
class MsgData:  # built the general way (msgspec with a decode hook)
    id: int
    author_cf_link: sc.Cell | None


def _store_bad_text(space: Space, db: sc.SqliteDb, column: str) -> sc.Cell:
    alice = space.cell("alice", default="a")
    with space.transact():
        alice.set("Alice")
        db.exec("INSERT INTO messages (id, author_cf_link, body) VALUES (1, ?, 'one')", [alice])
        db.exec("INSERT INTO messages (id, author_cf_link, body) VALUES (2, ?, 'two')", [alice])
    conn = apsw.Connection(str(Path(db.path)))
    conn.execute(f"UPDATE messages SET {column} = CAST(x'7bff80' AS TEXT) WHERE id = 1")
    conn.close()
    return alice


@pytest.mark.parametrize(
    ("row", "sql"),
    [
        (Msg, "SELECT id, author_cf_link FROM messages ORDER BY id"),
        (Aliased, "SELECT id, author_cf_link AS author FROM messages ORDER BY id"),
        (MsgData, "SELECT id, author_cf_link FROM messages ORDER BY id;"),
        (Msg, "SELECT id, author_cf_link FROM messages ORDER BY id; -- newest last"),
        (Msg, "SELECT id, author_cf_link FROM messages ORDER BY id ;\n/* by id */\n"),
    ],
    ids=["struct", "alias", "dataclass", "comment-after-semicolon", "block-comment-after"],
)
def test_a_link_that_is_not_utf8_reads_as_none(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, row: type, sql: str
) -> None:
    alice = _store_bad_text(space, db, "author_cf_link")
    first, second = db.read(sql, row=row)
    assert first.id == 1 and second.id == 2
    assert getattr(first, "author_cf_link", getattr(first, "author", 0)) is None
    assert getattr(second, "author_cf_link", getattr(second, "author", 0)) == alice
    query = db.query(sql, row=row)
    rt.settle(timeout=10)
    state = query.get()
    assert state.error is None and state.result is not None
    assert [r.id for r in state.result] == [1, 2]


def test_the_query_still_fails_on_other_text_that_is_not_utf8(
    space: Space, db: sc.SqliteDb
) -> None:
    _store_bad_text(space, db, "author_cf_link")
    conn = apsw.Connection(str(Path(db.path)))
    conn.execute("UPDATE messages SET body = CAST(x'ff' AS TEXT) WHERE id = 2")
    conn.close()
    for sql, row in (
        ("SELECT id, author_cf_link FROM messages", None),  # untyped: the raw value
        ("SELECT id, author_cf_link, body FROM messages", WithBody),
    ):
        with pytest.raises(sc.QueryError) as info:
            db.read(sql, row=row)
        assert isinstance(info.value.__cause__, UnicodeDecodeError), sql
    # Read as a link, the same text is no link.
    rows = db.read("SELECT id, body AS author_cf_link FROM messages ORDER BY id", row=Msg)
    assert [(r.id, r.author_cf_link) for r in rows] == [(1, None), (2, None)]


def test_text_and_blobs_around_the_bad_link_read_as_stored(space: Space, db: sc.SqliteDb) -> None:
    _store_bad_text(space, db, "author_cf_link")

    class Row(msgspec.Struct):
        author_cf_link: sc.Cell | None
        body: str
        raw: bytes
        n: None

    rows = db.read(
        "SELECT author_cf_link, body, x'00ff' AS raw, NULL AS n FROM messages ORDER BY id",
        row=Row,
    )
    assert [(r.body, r.raw, r.n) for r in rows] == [
        ("one", b"\x00\xff", None),
        ("two", b"\x00\xff", None),
    ]
    assert rows[0].author_cf_link is None and rows[1].author_cf_link is not None


def test_reads_after_a_failed_one_see_later_commits(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    alice = _store_bad_text(space, db, "author_cf_link")
    sql = "SELECT id, author_cf_link FROM messages ORDER BY id"
    untyped, typed = db.query(sql), db.query(sql, row=Msg)
    rt.settle(timeout=10)
    with pytest.raises(sc.QueryError):
        db.read(sql)
    assert isinstance(untyped.get().error, sc.QueryError)
    with space.transact():
        db.exec("INSERT INTO messages (id, author_cf_link, body) VALUES (3, ?, 'three')", [alice])
    rt.settle(timeout=10)
    assert [r["id"] for r in db.read("SELECT id FROM messages ORDER BY id")] == [1, 2, 3]
    state = typed.get()
    assert state.result is not None and [r.id for r in state.result] == [1, 2, 3]
    assert isinstance(untyped.get().error, sc.QueryError)


def test_two_link_columns_named_alike_but_for_case_are_never_swapped(
    space: Space, db: sc.SqliteDb
) -> None:
    # SQLite takes `who` and `WHO` as one name, so the second read could not tell them apart:
    # the error stands rather than a field given the other column's link.
    alice = space.cell("alice", default="a")
    with space.transact():
        db.exec("INSERT INTO messages (id, author_cf_link, body) VALUES (1, ?, 'one')", [alice])
    conn = apsw.Connection(str(Path(db.path)))
    conn.execute("UPDATE messages SET body = CAST(x'7bff80' AS TEXT)")
    conn.close()

    class Both(msgspec.Struct):
        who: sc.Cell | None
        WHO: sc.Cell | None

    for sql in (
        "SELECT body AS who, author_cf_link AS WHO FROM messages",
        "SELECT author_cf_link AS who, body AS WHO FROM messages",
    ):
        try:
            rows = db.read(sql, row=Both)
        except sc.QueryError as error:
            assert isinstance(error.__cause__, UnicodeDecodeError), sql
            continue
        raise AssertionError(f"{sql}: read {rows}, where the bad text cannot be told apart")

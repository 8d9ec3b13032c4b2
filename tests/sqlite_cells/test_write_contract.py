"""The write path as R30–R36 state it, checked through the public API on real stores, threads
and processes: link text, parameter mapping, errors at the call and at commit, the rev bump."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space

INSERT = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)"


def _bodies(db: sc.SqliteDb) -> list[str]:
    return [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")]


# -- R30: the link's text ----------------------------------------------------------------------


def test_a_link_is_absolute_canonical_json_with_a_path_only_when_there_is_one(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    alice = space.cell("alice")
    whole, inner = alice.link_str(), alice.key("a").key(0).link_str()
    assert json.loads(whole) == {
        "/": {"link@1": {"id": alice.id, "space": "demo", "scope": "space"}}
    }
    assert json.loads(inner)["/"]["link@1"]["path"] == ["a", 0]
    # Canonical: the same cell gives the same bytes however it was reached.
    again = rt.cell_from_link(json.dumps(json.loads(inner), indent=2))
    assert again.link_str() == inner == space.cell("alice").key("a").key(0).link_str()
    with space.transact():
        assert db.exec(INSERT, [alice.key("a").key(0), "hi", 1]) is None  # abort-only: no result
    assert db.read("SELECT author_cf_link FROM messages") == [{"author_cf_link": inner}]


# -- R31: parameters at the call ---------------------------------------------------------------

AT_THE_CALL: dict[str, tuple[str, Any, type[Exception]]] = {
    "cell-in-body": ("INSERT INTO messages (body) VALUES (?)", "CELL", sc.LinkEncodeError),
    "cell-in-where": (
        "DELETE FROM messages WHERE author_cf_link = ?",
        "CELL",
        sc.LinkEncodeError,
    ),
    "cell-in-an-expression": (
        "INSERT INTO messages (author_cf_link, body) VALUES (coalesce(?, NULL), 'x')",
        "CELL",
        sc.LinkEncodeError,
    ),
    "text-to-a-link-column": (INSERT, ["not a link", "x", 1], sc.LinkEncodeError),
    "link-text-to-a-link-column": (INSERT, ["LINK", "x", 1], sc.LinkEncodeError),
    "int-to-a-link-column": (INSERT, [7, "x", 1], sc.LinkEncodeError),
    "bytes-to-a-link-column": (INSERT, [b"x", "x", 1], sc.LinkEncodeError),
    "set-clause": (
        "UPDATE messages SET body = ?, author_cf_link = ?",
        ["x", "not a link"],
        sc.LinkEncodeError,
    ),
    "pending": ("INSERT INTO messages (body) VALUES (?)", [sc.PENDING], sc.PendingValue),
    "pending-query-state": (
        "INSERT INTO messages (body) VALUES (?)",
        [sc.QueryState(pending=True, result=None, error=None, seq=0)],
        sc.PendingValue,
    ),
    "guard": ("DELETE FROM messages RETURNING id", [], sc.GuardViolation),
}


@pytest.mark.parametrize("case", list(AT_THE_CALL.values()), ids=list(AT_THE_CALL))
def test_an_error_at_the_call_records_nothing_and_the_transaction_commits(
    space: Space, db: sc.SqliteDb, case: tuple[str, Any, type[Exception]]
) -> None:
    sql, params, error = case
    alice = space.cell("alice")
    if params == "CELL":
        params = [alice]
    params = [alice.link_str() if p == "LINK" else p for p in params]
    c = space.cell("c", default=0)
    with space.transact() as tx:
        c.set(1)
        with pytest.raises(error) as info:
            db.exec(sql, params)
        assert isinstance(info.value, sc.SqliteCellsError)
        with pytest.raises(error):
            db.exec_many(sql, [params])
        db.exec(INSERT, [alice, "kept", 1])  # still usable, and still free to write this db
    assert tx.seq == 1 and c.get() == 1
    assert _bodies(db) == ["kept"] and db.rev == 1


def test_a_guard_verdict_of_exec_many_needs_no_rows(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        with pytest.raises(sc.GuardViolation) as info:
            db.exec_many("DROP TABLE messages", [])
        assert info.value.kind == "ddl"
        with pytest.raises(sc.GuardViolation) as info:
            db.exec_many("INSERT INTO messages (body) VALUES (?) RETURNING id", iter([]))
        assert info.value.kind == "returning"
    assert db.rev == 0 and not db.path.exists()


# -- R31: what SQL produced, checked at commit -------------------------------------------------

PRODUCED = {
    "coalesce": (
        "INSERT INTO messages (author_cf_link, body) VALUES (coalesce(?, NULL), 'b')",
        ["x"],
    ),
    "concatenation": ("INSERT INTO messages (author_cf_link, body) VALUES (? || '', 'b')", ["x"]),
    "literal": ("INSERT INTO messages (author_cf_link, body) VALUES ('junk', 'b')", []),
    "number": ("UPDATE messages SET author_cf_link = 5", []),
    "blob": ("UPDATE messages SET author_cf_link = x'00'", []),
    "text-not-utf8": ("UPDATE messages SET author_cf_link = CAST(x'ff' AS TEXT)", []),
    "text-not-utf8-inserted": (
        "INSERT INTO messages (author_cf_link, body) VALUES (CAST(x'c3' AS TEXT), 'b')",
        [],
    ),
    "insert-select": (
        "INSERT INTO messages (author_cf_link, body) SELECT body, body FROM messages",
        [],
    ),
    "update-from-a-column": ("UPDATE messages SET author_cf_link = body", []),
    "upsert-excluded": (
        "INSERT INTO messages (id, body) VALUES (1, 'x') "
        "ON CONFLICT(id) DO UPDATE SET author_cf_link = excluded.body",
        [],
    ),
    "link-with-other-spacing": (
        "UPDATE messages SET author_cf_link = "
        """'{"/": {"link@1": {"id": "of:abc", "space": "demo", "scope": "space"}}}'""",
        [],
    ),
    "link-with-an-empty-path": (
        "UPDATE messages SET author_cf_link = "
        """'{"/":{"link@1":{"id":"of:abc","space":"demo","scope":"space","path":[]}}}'""",
        [],
    ),
    "link-without-a-space": (
        "UPDATE messages SET author_cf_link = "
        """'{"/":{"link@1":{"id":"of:abc","scope":"space"}}}'""",
        [],
    ),
}


@pytest.mark.parametrize("case", list(PRODUCED.values()), ids=list(PRODUCED))
def test_a_commit_storing_anything_but_null_or_a_link_fails_and_writes_nothing(
    space: Space, db: sc.SqliteDb, case: tuple[str, list[Any]]
) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'a body')")
    c = space.cell("c", default=0)
    sql, params = case
    with pytest.raises(sc.LinkEncodeError) as info, space.transact():
        c.set(1)
        db.exec("INSERT INTO messages (body) VALUES ('same commit')")
        db.exec(sql, params)
    assert db.id in str(info.value) and "author_cf_link" in str(info.value)
    assert c.get() == 0 and db.rev == 1  # cells too: nothing of the commit was written
    assert db.read("SELECT id, author_cf_link, body FROM messages") == [
        {"id": 1, "author_cf_link": None, "body": "a body"}
    ]


def test_links_sql_copies_or_builds_in_canonical_form_are_stored(
    space: Space, db: sc.SqliteDb
) -> None:
    alice = space.cell("alice")
    with space.transact():
        db.exec(INSERT, [alice, alice.link_str(), 1])
    with space.transact():
        db.exec(
            "INSERT INTO messages (author_cf_link, body) "
            "SELECT author_cf_link, 'copy' FROM messages"
        )
        db.exec("UPDATE messages SET author_cf_link = body WHERE id = 1")
        db.exec("INSERT INTO messages (author_cf_link, body) VALUES (?, 'none')", [None])
    links = {r["author_cf_link"] for r in db.read("SELECT author_cf_link FROM messages")}
    assert links == {alice.link_str(), None}
    assert db.rev == 2


# -- R32: rev, handle value, conflicts ---------------------------------------------------------


def test_rev_is_an_int_that_counts_committed_transactions_that_wrote_the_database(
    space: Space, db: sc.SqliteDb
) -> None:
    assert db.rev == 0 and type(db.rev) is int
    assert db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 0}
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        db.exec_many("INSERT INTO messages (body) VALUES (?)", [["b"], ["c"]])
        db.exec("UPDATE messages SET ts = 1")
    assert db.rev == 1 and db.get()["rev"] == 1
    with space.transact():
        space.cell("c").set(1)  # a transaction that does not write the database
    with pytest.raises(sc.ExecError), space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'duplicate')")
    assert db.rev == 1  # neither commit wrote it
    with space.transact():
        db.exec("DELETE FROM messages WHERE body = 'c'")
    assert db.rev == 2 and set(db.get()) == {"id", "tables", "rev"}


def test_threads_that_only_write_a_database_never_retry(space: Space, db: sc.SqliteDb) -> None:
    bodies_run: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    @sc.handler
    def post(body: str) -> None:
        with lock:
            bodies_run.append(body)
        db.exec("INSERT INTO messages (body) VALUES (?)", [body])

    def writer(name: str) -> None:
        start.wait()
        for i in range(15):
            post(f"{name}{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bodies_run) == 45  # no body ran twice
    assert db.rev == 45 and sorted(_bodies(db)) == sorted(bodies_run)


def test_read_then_write_retries_after_another_thread_commits_in_between(
    space: Space, db: sc.SqliteDb
) -> None:
    read_done, other_done = threading.Event(), threading.Event()
    counts: list[int] = []

    @sc.handler
    def count_then_write() -> None:
        n = db.read("SELECT count(*) AS n FROM messages")[0]["n"]
        counts.append(n)
        if len(counts) == 1:
            read_done.set()
            assert other_done.wait(30)
        db.exec("INSERT INTO messages (body) VALUES (?)", [f"saw {n}"])

    def other() -> None:
        assert read_done.wait(30)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('other')")
        other_done.set()

    t = threading.Thread(target=other)
    t.start()
    seq = count_then_write()
    t.join()
    assert counts == [0, 1]  # retried, and the retry saw the other thread's row
    assert seq == 2 and _bodies(db) == ["other", "saw 1"] and db.rev == 2


def test_read_then_write_in_two_processes_is_serializable(store: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import sqlite_cells as sc
        tables = {{"t": sc.table(id="integer primary key", who="text", seen="integer")}}
        with sc.Runtime({str(store)!r}) as rt:
            db = rt.space("demo").sqlite_database("counted", tables=tables)

            @sc.handler
            def add(i):
                seen = db.read("SELECT count(*) AS n FROM t")[0]["n"]
                db.exec("INSERT INTO t (who, seen) VALUES (?, ?)", [sys.argv[1], seen])

            for i in range(20):
                add(i)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, who]) for who in "ab"]
    for p in procs:
        assert p.wait(timeout=300) == 0
    tables = {"t": sc.table(id="integer primary key", who="text", seen="integer")}
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("counted", tables=tables)
        rows = db.read("SELECT who, seen FROM t ORDER BY id")
        assert [r["seen"] for r in rows] == list(range(40))  # each saw every row before it
        assert db.rev == 40


# -- R33–R36 -----------------------------------------------------------------------------------


def test_a_second_database_is_refused_at_its_call(space: Space, db: sc.SqliteDb) -> None:
    other = space.sqlite_database("other", tables={"t": sc.table(x="integer")})
    with space.transact() as tx:
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        with pytest.raises(sc.TooManyDatabases) as info:
            other.exec("INSERT INTO t (x) VALUES (1)")
        assert other.id in str(info.value) and db.id in str(info.value)
        with pytest.raises(sc.TooManyDatabases):
            other.exec_many("INSERT INTO t (x) VALUES (?)", [[1]])
    assert tx.seq == 1 and _bodies(db) == ["a"]
    assert other.rev == 0 and not other.path.exists()


def test_a_sql_error_rolls_back_cells_and_says_what_where_and_which_database(
    space: Space, db: sc.SqliteDb
) -> None:
    c = space.cell("c", default=0)
    with pytest.raises(sc.ExecError) as info, space.transact():
        c.set(1)
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'a')")
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'b')")
    error = info.value
    assert error.db_id == db.id
    assert error.sql == "INSERT INTO messages (id, body) VALUES (1, 'b')"
    assert "UNIQUE constraint failed" in error.sqlite_error
    assert not isinstance(error, KeyError) and isinstance(error, sc.SqliteCellsError)
    assert c.get() == 0 and db.rev == 0 and _bodies(db) == []
    with space.transact() as tx:  # the space is as it was, and writable
        c.set(2)
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'b')")
    assert tx.seq == 1 and c.get() == 2 and _bodies(db) == ["b"]


def test_reading_a_database_written_in_the_transaction_is_refused_and_changes_nothing(
    space: Space, db: sc.SqliteDb
) -> None:
    with space.transact() as tx:
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        with pytest.raises(sc.ReadAfterWriteUnsupported):
            db.read("SELECT count(*) AS n FROM messages")
        with pytest.raises(sc.ReadAfterWriteUnsupported):
            db.query("SELECT count(*) AS n FROM messages")
        db.exec("INSERT INTO messages (body) VALUES ('b')")
    assert tx.seq == 1 and _bodies(db) == ["a", "b"]


def test_exec_many_is_one_write_and_one_rerun(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    q = db.query("SELECT count(*) AS n FROM messages")
    states: list[Any] = []
    q.observe().subscribe(lambda s: states.append((s.pending, s.result)))
    rt.settle()
    with space.transact():
        db.exec_many(
            "INSERT INTO messages (author_cf_link, body) VALUES (?, ?)",
            [(space.cell("alice"), "a"), (None, "b"), (space.cell("bob"), "c")],
        )
    rt.settle()
    assert db.rev == 1
    assert states[-1] == (False, [{"n": 3}])
    assert [s for s in states if not s[0]] == [(False, [{"n": 0}]), (False, [{"n": 3}])]

"""The write path at commit: typed ops, the rev bump (R32), link columns checked at commit (R31),
migrate on its own connection (R14), write limits (R44), StoreChanged (R73), statements that stay
prepared."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import check_store
from sqlite_cells.schema._migrate import MigrationConnection
from sqlite_cells.write._fold import SqliteParticipant

from .._files import copy_file
from .conftest import MESSAGES

INSERT = "INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, ?)"
NOTES = {"notes": sc.table(id="integer primary key", body="text")}


def _bodies(db: sc.SqliteDb) -> list[object]:
    return [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")]


def _space_state(space: Space) -> tuple[object, ...]:
    with space.file.write_connection() as conn:
        return (
            conn.execute("SELECT id, value, rev FROM _cf_cells ORDER BY id").fetchall(),
            conn.execute("SELECT seq, record FROM _cf_log ORDER BY seq").fetchall(),
        )


# -- 1. typed ops ---------------------------------------------------------------------------------


def test_redeclaring_with_an_added_column_while_a_write_is_pending(space: Space) -> None:
    v1 = space.sqlite_database("notes", tables=NOTES)
    with space.transact():
        v1.exec("INSERT INTO notes (body) VALUES ('a')")
    grown = {"notes": sc.table(id="integer primary key", body="text", pinned="integer default 0")}
    with space.transact() as tx:
        v1.exec("INSERT INTO notes (body) VALUES ('b')")
        v2 = space.sqlite_database("notes", tables=grown)  # re-declared while the write pends
        assert [op.kind for op in tx.ops] == ["sqlite"]
    # The pending write was applied (and remembered) against the schema it was checked against;
    # the new schema is ensured by the next write, which may use the new column.
    with space.transact():
        v2.exec("INSERT INTO notes (body, pinned) VALUES ('c', 1)")
    assert v2.read("SELECT body, pinned FROM notes ORDER BY id") == [
        {"body": "a", "pinned": 0},
        {"body": "b", "pinned": 0},
        {"body": "c", "pinned": 1},
    ]
    assert v2.rev == 3
    assert v2.get()["tables"] == v2.declaration.schema.to_json()  # type: ignore[union-attr]


def test_the_pending_op_carries_its_request_and_the_record_keeps_the_changeset(
    space: Space, db: sc.SqliteDb
) -> None:
    with space.transact() as tx:
        db.exec(INSERT, [None, "hi", 1])
        (op,) = tx.ops
        assert (op.kind, op.target) == ("sqlite", db.id)
        assert op.payload.sql == INSERT  # type: ignore[attr-defined]
    with space.file.write_connection() as conn:
        row = conn.execute("SELECT record FROM _cf_log WHERE seq = ?", (tx.seq,)).fetchone()
    assert row is not None
    _, writes, ops = msgspec.json.decode(row[0])
    assert [w[0] for w in writes] == [db.id]  # the rev bump is a write of this commit
    assert writes[0][1] == db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 1}
    assert ops[0][2]["sql"] == INSERT and ops[0][2]["changeset"]


# -- 2. the rev bump at commit (R32) ----------------------------------------------------------


def test_writers_that_only_write_a_database_never_conflict(space: Space, db: sc.SqliteDb) -> None:
    runs = 0
    runs_lock = threading.Lock()

    @sc.handler
    def post(body: str) -> None:
        nonlocal runs
        with runs_lock:
            runs += 1
        db.exec("INSERT INTO messages (body) VALUES (?)", [body])

    def writer(n: int) -> None:
        for i in range(10):
            post(f"{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs == 40  # no body ran twice: no ConflictError retry
    assert db.rev == 40 and len(_bodies(db)) == 40
    assert space.file.seen_seq == 40


def test_read_then_write_conflicts_and_is_retried(space: Space, db: sc.SqliteDb) -> None:
    def insert_elsewhere() -> None:
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('elsewhere')")

    runs = 0

    @sc.handler
    def count_then_write() -> None:
        nonlocal runs
        runs += 1
        n = db.read("SELECT count(*) AS n FROM messages")[0]["n"]
        if runs == 1:  # another transaction writes the database between the read and the commit
            contextvars.Context().run(insert_elsewhere)
        db.exec("INSERT INTO messages (body) VALUES (?)", [f"saw {n}"])

    count_then_write()
    assert runs == 2
    assert _bodies(db) == ["elsewhere", "saw 1"]
    assert db.rev == 2


def test_a_conflict_is_raised_without_a_handler(space: Space, db: sc.SqliteDb) -> None:
    with pytest.raises(sc.ConflictError) as info, space.transact():
        db.read("SELECT count(*) AS n FROM messages")
        with sc.Runtime(space.runtime.store) as other:
            other_db = other.space("demo").sqlite_database("chat", tables=MESSAGES)

            def elsewhere() -> None:
                with other.space("demo").transact():
                    other_db.exec("INSERT INTO messages (body) VALUES ('x')")

            contextvars.Context().run(elsewhere)
        db.exec("INSERT INTO messages (body) VALUES ('y')")
    assert db.id in info.value.cell_ids
    assert _bodies(db) == ["x"]


# -- 3. link columns checked at commit (R31) --------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("INSERT INTO messages (author_cf_link, body) VALUES ('not a link', 'x')", None),
        ("INSERT INTO messages (author_cf_link, body) VALUES (x'00', 'x')", None),
        ("INSERT INTO messages (author_cf_link, body) VALUES (coalesce(?, NULL), 'x')", ["bad"]),
        ("INSERT INTO messages (author_cf_link, body) VALUES (? || '', 'x')", ["bad"]),
        ("INSERT INTO messages (author_cf_link, body) SELECT body, body FROM messages", None),
        (
            "WITH v(l) AS (SELECT '{\"/\": 1}') "
            "INSERT INTO messages (author_cf_link, body) SELECT l, 'x' FROM v",
            None,
        ),
        ("UPDATE messages SET author_cf_link = body", None),
        ("UPDATE messages SET author_cf_link = substr(author_cf_link, 2)", None),
        # A link that parses but is not the codec's canonical text (R30): equal links must be
        # equal text, or `WHERE author_cf_link = ?` with a Cell would miss the row.
        ("UPDATE messages SET author_cf_link = ' ' || author_cf_link", None),
        ("UPDATE messages SET author_cf_link = replace(author_cf_link, '\":', '\": ')", None),
        ("INSERT INTO messages VALUES (NULL, 42, 'x', 0)", None),
    ],
)
def test_a_commit_storing_a_non_link_in_a_link_column_writes_nothing(
    space: Space, db: sc.SqliteDb, sql: str, params: list[object] | None
) -> None:
    alice = space.cell("alice")
    counter = space.cell("counter", default=0)
    with space.transact():
        db.exec(INSERT, [alice, "first", 1])
    before = (_space_state(space), db.read("SELECT * FROM messages"), db.rev)
    with (
        pytest.raises(sc.LinkEncodeError, match=r"link column messages\.author_cf_link"),
        space.transact(),
    ):
        counter.set(1)
        db.exec(sql, params)
    assert (_space_state(space), db.read("SELECT * FROM messages"), db.rev) == before
    assert counter.get() == 0


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"path": [10**30]}, id="index-past-64-bits"),
        pytest.param({"path": [-(10**30)]}, id="index-below-64-bits"),
        pytest.param({"id": "of:a\nb"}, id="id-newline"),
        pytest.param({"id": "of:a\x00"}, id="id-nul"),
    ],
)
def test_a_commit_storing_a_malformed_link_writes_nothing(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb, fields: dict[str, object]
) -> None:
    # Well-formed is one rule of the codec (R1, R6, R30): what the commit refuses to store is
    # what decode_cf_link refuses to read.
    inner = {**json.loads(space.cell("alice").link_str())["/"]["link@1"], **fields}
    text = json.dumps({"/": {"link@1": inner}}, separators=(",", ":"), ensure_ascii=False)
    with (
        pytest.raises(sc.LinkEncodeError, match=r"link column messages\.author_cf_link"),
        space.transact(),
    ):
        db.exec(
            "INSERT INTO messages (author_cf_link, body) VALUES (coalesce(?, NULL), 'x')", [text]
        )
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    with pytest.raises(sc.LinkDecodeError):
        sc.decode_cf_link(text, rt)


def test_a_cell_at_a_negative_index_is_linked_as_it_reads(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """``cell.key(-1)`` reads the last element, as Python counts; its link says the same (R6's
    64-bit ints), and earlier versions stored such links (R73)."""
    items = space.cell("items", default=[1, 2])
    last = items.key(-1)
    assert last.get() == 2
    with space.transact():
        db.exec(INSERT, [last, "x", 1])
        space.cell("other").set({"who": last, "first": items.key(0)})
    (row,) = db.read("SELECT author_cf_link AS a FROM messages")
    assert row["a"] == last.link_str()
    back = sc.decode_cf_link(row["a"], rt)
    assert back.get() == 2
    stored = space.cell("other").get()
    assert stored["who"].get() == 2 and stored["first"].get() == 1
    with space.transact():
        items.set([1, 2, 3])
    assert back.get() == 3 and stored["who"].get() == 3


def test_links_produced_by_sql_are_fine_when_well_formed(space: Space, db: sc.SqliteDb) -> None:
    alice = space.cell("alice")
    with space.transact():
        db.exec(INSERT, [alice, "first", 1])
        db.exec(
            "INSERT INTO messages (author_cf_link, body) "
            "SELECT author_cf_link, 'copy' FROM messages"
        )
        db.exec("INSERT INTO messages (author_cf_link, body) VALUES (coalesce(NULL, NULL), 'none')")
        db.exec("UPDATE messages SET body = 'edited' WHERE id = 1")  # link column unchanged
    rows = db.read("SELECT author_cf_link, body FROM messages ORDER BY id")
    assert rows == [
        {"author_cf_link": alice.link_str(), "body": "edited"},
        {"author_cf_link": alice.link_str(), "body": "copy"},
        {"author_cf_link": None, "body": "none"},
    ]


def test_link_columns_of_a_table_without_a_primary_key_are_checked_by_name(space: Space) -> None:
    # The session records such a table with its rowid as an extra first column.
    db = space.sqlite_database(
        "scores", tables={"scores": sc.table(points="integer", player_cf_link=sc.cf_link())}
    )
    ada = space.cell("ada")
    with space.transact():
        db.exec("INSERT INTO scores (points, player_cf_link) VALUES (?, ?)", [3, ada])
    with pytest.raises(sc.LinkEncodeError, match=r"scores\.player_cf_link"), space.transact():
        db.exec("INSERT INTO scores (points, player_cf_link) VALUES (5, 'ada')")
    rows = db.read("SELECT points, player_cf_link FROM scores")
    assert rows == [{"points": 3, "player_cf_link": ada.link_str()}]


# -- 4. migrate on its own connection (R14) ----------------------------------------------------


ATTACKS = [
    "DELETE FROM '_cf_log'",
    "DELETE FROM 'main'.'_cf_log'",
    "UPDATE '_cf_cells' SET value = x'00'",
    "DELETE FROM _cf_watermark",
    "CREATE TRIGGER t AFTER INSERT ON notes BEGIN DELETE FROM notes; END",
    "CREATE TEMP TABLE _cf_log (x)",
    "ATTACH '' AS other",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_migrate_cannot_reach_the_space(rt: sc.Runtime, space: Space, attack: str) -> None:
    v1 = space.sqlite_database("notes", tables=NOTES)
    counter = space.cell("counter", default=0)
    with space.transact():
        counter.set(1)
        v1.exec("INSERT INTO notes (body) VALUES ('a')")
    before = _space_state(space)

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute(attack)

    v2 = space.sqlite_database("notes", tables=NOTES, version=2, migrate=migrate)
    with pytest.raises(sc.MigrationError) as info, space.transact():
        counter.set(2)
        v2.exec("INSERT INTO notes (body) VALUES ('b')")
    assert isinstance(info.value.__cause__, sc.MigrationError)  # the refusal, raised in migrate
    assert _space_state(space) == before
    assert counter.get() == 1
    assert v2.read("SELECT body FROM notes") == [{"body": "a"}]
    assert all(o.agrees for o in check_store(rt.store, repair=False))


def test_migrate_commits_with_the_additive_diff_and_the_version(space: Space) -> None:
    v1 = space.sqlite_database("notes", tables=NOTES)
    with space.transact():
        v1.exec("INSERT INTO notes (body) VALUES ('a')")
    calls: list[int] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        calls.append(from_version)
        conn.execute("ALTER TABLE notes RENAME COLUMN body TO text")

    renamed = {"notes": sc.table(id="integer primary key", text="text", tag="text default 't'")}
    v2 = space.sqlite_database("notes", tables=renamed, version=2, migrate=migrate)
    with space.transact():
        v2.exec("INSERT INTO notes (text) VALUES ('b')")
    with space.transact():
        v2.exec("INSERT INTO notes (text) VALUES ('c')")
    assert calls == [1]  # once
    assert v2.read("SELECT text, tag FROM notes ORDER BY id") == [
        {"text": "a", "tag": "t"},
        {"text": "b", "tag": "t"},
        {"text": "c", "tag": "t"},
    ]
    conn = apsw.Connection(str(v2.path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall() == [(2,)]
    conn.close()


def test_a_failing_space_commit_after_migrate_leaves_the_file_migrated(space: Space) -> None:
    """Documented: the migration is its own transaction of the database file, committed before
    the space's commit attaches it; a failing space commit then writes no rows."""
    v1 = space.sqlite_database("notes", tables=NOTES)
    with space.transact():
        v1.exec("INSERT INTO notes (id, body) VALUES (1, 'a')")

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        conn.execute("UPDATE notes SET body = upper(body)")

    v2 = space.sqlite_database("notes", tables=NOTES, version=2, migrate=migrate)
    with pytest.raises(sc.ExecError), space.transact():
        v2.exec("INSERT INTO notes (id, body) VALUES (1, 'duplicate')")
    assert v2.read("SELECT id, body FROM notes") == [{"id": 1, "body": "A"}]
    assert v2.rev == 1


# -- 5. write limits (R44) ---------------------------------------------------------------------


def test_a_runaway_write_times_out_rolls_back_and_releases_the_lock(store: Path) -> None:
    with sc.Runtime(store) as rt:  # the first write, which makes the file, on a busy machine
        space = rt.space("demo")
        with space.transact():
            space.sqlite_database("chat", tables=MESSAGES).exec(INSERT, [None, "first", 1])
    with sc.Runtime(store, exec_timeout=0.2) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        counter = space.cell("counter", default=0)
        runaway = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "INSERT INTO messages (body) SELECT 'x' FROM c"
        )
        with pytest.raises(sc.ExecTimeout) as info, space.transact():
            counter.set(1)
            db.exec(runaway)
        assert isinstance(info.value, sc.ExecError) and isinstance(info.value, TimeoutError)
        assert info.value.db_id == db.id and info.value.sql == runaway
        assert counter.get() == 0 and db.rev == 1 and _bodies(db) == ["first"]
        with space.transact():  # the space's write lock was let go
            db.exec(INSERT, [None, "second", 2])
        assert _bodies(db) == ["first", "second"]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO messages (body) VALUES (randomblob(70000000))",
        "INSERT INTO messages (body) VALUES (zeroblob(70000000))",
        "INSERT INTO messages (body) VALUES (printf('%.*c', 70000000, 'x'))",
    ],
)
def test_values_over_the_length_limit_are_refused(space: Space, db: sc.SqliteDb, sql: str) -> None:
    with pytest.raises(sc.ExecError, match="too big"), space.transact():
        db.exec(sql)
    assert db.rev == 0 and _bodies(db) == []


def test_parameters_and_defaults_over_the_length_limit_are_refused(space: Space) -> None:
    with pytest.raises(sc.SchemaError, match="too big"):  # at declaration, before any write
        space.sqlite_database(
            "big",
            tables={"t": sc.table(id="integer primary key", b="blob default (zeroblob(70000000))")},
        )
    big = space.sqlite_database("big", tables={"t": sc.table(id="integer primary key", b="blob")})
    with pytest.raises(sc.ExecError, match="too big"), space.transact():
        big.exec("INSERT INTO t (id, b) VALUES (1, zeroblob(70000000))")
    with space.transact():
        big.exec("INSERT INTO t (id, b) VALUES (1, x'00')")
    with pytest.raises(sc.ExecError, match="too big"), space.transact():
        big.exec("UPDATE t SET b = ?", [b"\0" * (64 * 1024 * 1024 + 1)])
    assert big.read("SELECT id, length(b) AS n FROM t") == [{"id": 1, "n": 1}]


def test_a_cell_value_over_the_length_limit_is_refused_at_set(space: Space) -> None:
    c = space.cell("c", default=0)
    with space.transact() as tx:
        with pytest.raises(sc.ValueEncodeError, match="length limit"):
            c.set("x" * (64 * 1024 * 1024))
        assert tx.writes == {}
        c.set(1)  # the transaction is still usable
    assert c.get() == 1


# -- 6. files deleted or replaced while open (R73) ---------------------------------------------


def test_a_deleted_space_file_is_detected_at_the_next_commit(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact():
        c.set(1)
    path = space.file.path
    path.unlink()
    with pytest.raises(sc.StoreChanged) as info, space.transact():
        c.set(2)
    assert info.value.path == str(path)
    assert not path.exists()  # nothing was committed anywhere


def test_a_replaced_space_file_is_detected_at_the_next_commit(rt: sc.Runtime) -> None:
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact():
        c.set(1)
    path = space.file.path
    copy = path.with_name("copy.sqlite")
    copy_file(path, copy)  # through a kept descriptor: the runtime has the file open
    os.replace(copy, path)
    with pytest.raises(sc.StoreChanged), space.transact():
        c.set(2)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT count(*) FROM _cf_log").fetchall() == [(1,)]
    conn.close()


def _checkpoint(path: Path) -> None:
    """Copy the -wal into the file, from another process (as a program beside the runtime)."""
    code = f"import apsw; apsw.Connection({str(path)!r}).execute('PRAGMA wal_checkpoint(TRUNCATE)')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_emptied_space_file_is_detected_at_the_next_commit(rt: sc.Runtime) -> None:
    """R73: a space file truncated to no bytes under the runtime (once it held pages: a WAL
    file is empty until its first checkpoint) is ``StoreChanged``, nothing committed."""
    space = rt.space("demo")
    c = space.cell("c", default=0)
    with space.transact():
        c.set(1)
    path = space.file.path
    _checkpoint(path)
    with space.transact():
        c.set(2)  # the runtime sees the file holding pages
    seq = space.file.seen_seq
    with path.open("r+b") as f:
        f.truncate(0)
    with pytest.raises(sc.StoreChanged, match="emptied") as info, space.transact():
        c.set(3)
    assert info.value.path == str(path)
    assert space.file.seen_seq == seq


def test_an_emptied_database_file_is_detected_and_rebuilt_at_its_next_use(
    space: Space, db: sc.SqliteDb
) -> None:
    """R73: an emptied database file is ``StoreChanged`` at the next commit that writes it
    (nothing committed); its next use checks the file against its space again and rebuilds it
    from the log (R71)."""
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    _checkpoint(db.path)
    with space.transact():
        db.exec(INSERT, [None, "second", 2])
    seq = space.file.seen_seq
    with db.path.open("r+b") as f:
        f.truncate(0)
    with pytest.raises(sc.StoreChanged, match="emptied") as info, space.transact():
        db.exec(INSERT, [None, "third", 3])
    assert info.value.path == str(db.path)
    assert space.file.seen_seq == seq and db.rev == 2
    assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY ts")] == [
        "first",
        "second",
    ]
    with space.transact():
        db.exec(INSERT, [None, "third", 3])
    assert db.rev == 3


def test_a_database_file_checkpointed_and_emptied_by_another_program_is_detected(
    space: Space, db: sc.SqliteDb
) -> None:
    """R73: a database file this runtime created and still has attached, checkpointed by
    another program and then truncated to no bytes with no commit of the runtime between, is
    ``StoreChanged`` ("emptied") naming it, nothing committed — not a "damaged" space file to
    restore from a backup; its next use rebuilds it from the log (R71)."""
    c = space.cell("c", default=0)
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    _checkpoint(db.path)
    with db.path.open("r+b") as f:
        f.truncate(0)
    seq = space.file.seen_seq
    with pytest.raises(sc.StoreChanged, match="emptied") as info, space.transact():
        c.set(1)
        db.exec(INSERT, [None, "second", 2])
    assert info.value.path == str(db.path)
    assert space.file.seen_seq == seq and db.rev == 1 and c.get() == 0
    assert [r["body"] for r in db.read("SELECT body FROM messages")] == ["first"]
    with space.transact():
        db.exec(INSERT, [None, "second", 2])
    assert db.rev == 2
    assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY ts")] == [
        "first",
        "second",
    ]


def test_a_database_file_emptied_after_the_write_connection_let_it_go_is_detected_at_once(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    """R73, R44: the write connection attaches one database file at a time; a file it created,
    wrote and let go of (a commit to another database attached that one) and that was emptied
    afterwards looked like a new file to the next write, which then waited 30 s for its own
    pooled reader (a live query's) before an ``ExecTimeout`` blaming another connection. The
    file is noted as holding pages when it is let go: the write is ``StoreChanged`` at once."""
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    other = space.sqlite_database("other", tables=MESSAGES)
    with space.transact():
        other.exec(INSERT, [None, "elsewhere", 1])
    q = db.query("SELECT body FROM messages")
    assert rt.settle(10) and q.get().result == [{"body": "first"}]
    assert db.path.stat().st_size > 0
    with db.path.open("r+b") as f:
        f.truncate(0)
    with pytest.raises(sc.StoreChanged, match="emptied") as info, space.transact():
        db.exec(INSERT, [None, "second", 2])
    assert info.value.path == str(db.path) and db.rev == 1
    with space.transact():
        db.exec(INSERT, [None, "second", 2])
    assert rt.settle(10)
    assert q.get().result == [{"body": "first"}, {"body": "second"}]


@contextlib.contextmanager
def _emptied_after_a_read(store: Path) -> Iterator[tuple[Space, sc.SqliteDb]]:
    """A runtime that read a database of one commit whose file was then truncated to no
    bytes (by another program), and that database."""
    with sc.Runtime(store) as first:
        space = first.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec(INSERT, [None, "first", 1])
    with sc.Runtime(store, exec_timeout=1.0) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        assert db.read("SELECT body FROM messages") == [{"body": "first"}]
        with db.path.open("r+b") as f:
            f.truncate(0)
        yield space, db


def test_a_database_file_emptied_before_this_runtime_wrote_it_is_detected_at_once(
    store: Path,
) -> None:
    """R73, R44: a database file emptied after this runtime checked it against its space (a
    read) and before its first write here: the write took the file for a new one, waited 30 s
    under the space's write lock for its own reader's lock, and quarantined the database for
    the runtime's life. The check pins the file as holding pages: the write is ``StoreChanged``
    at once, and the next use rebuilds the file from the log (R71)."""
    with _emptied_after_a_read(store) as (space, db):
        with pytest.raises(sc.StoreChanged, match="emptied") as info, space.transact():
            db.exec(INSERT, [None, "second", 2])
        assert info.value.path == str(db.path) and db.rev == 1
        assert db.read("SELECT body FROM messages") == [{"body": "first"}]
        with space.transact():
            db.exec(INSERT, [None, "second", 2])
        assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY ts")] == [
            "first",
            "second",
        ]


def test_a_database_file_emptied_and_met_by_a_read_is_rebuilt_at_the_next_write(
    store: Path,
) -> None:
    """R71, R73: the same file emptied, met first by a read (``QueryError``: damaged, checked
    again before the next use). The check that followed could not write the file its own pooled
    reader still held open (with the emptied file's -wal and -shm): "database is locked", and
    the database was quarantined for the runtime's life. The pooled readers let a damaged file
    go before it is checked; a lock met by a repair is no damage (the next use tries again)."""
    with _emptied_after_a_read(store) as (space, db):
        with pytest.raises(sc.QueryError, match="damaged"):
            db.read("SELECT body FROM messages")
        with space.transact():
            db.exec(INSERT, [None, "second", 2])
        assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY ts")] == [
            "first",
            "second",
        ]


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_a_database_file_changed_while_attached(space: Space, db: sc.SqliteDb, how: str) -> None:
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    seq = space.file.seen_seq
    if how == "delete":
        db.path.unlink()
    else:
        copy = db.path.with_name("copy.sqlite")
        copy_file(db.path, copy)  # through a kept descriptor: the runtime has the file open
        os.replace(copy, db.path)
    with pytest.raises(sc.StoreChanged) as info, space.transact():
        db.exec(INSERT, [None, "second", 2])
    assert info.value.path == str(db.path)
    assert space.file.seen_seq == seq and db.rev == 1


def _version_2_migrating(space: Space) -> tuple[sc.SqliteDb, list[int]]:
    """``chat`` declared again at version 2, with a column more and a ``migrate`` that rewrites
    every body; the versions it was called from."""
    calls: list[int] = []

    def migrate(conn: MigrationConnection, from_version: int) -> None:
        calls.append(from_version)
        conn.execute("UPDATE messages SET body = 'MIGRATED'")

    messages = sc.table(
        id="integer primary key",
        author_cf_link=sc.cf_link(),
        body="text not null",
        ts="integer not null default 0",
        note="text",
        indexes={"by_ts": ["ts"]},
    )
    db2 = space.sqlite_database("chat", tables={"messages": messages}, version=2, migrate=migrate)
    return db2, calls


def test_a_database_file_replaced_before_a_write_that_migrates_is_never_migrated(
    space: Space, db: sc.SqliteDb
) -> None:
    """R73, R14: a write under a declaration whose `migrate` is pending, to a file replaced (by
    a copy) while the runtime had it open, is StoreChanged like any other write — `migrate`
    never opens the file now at the path (it used to migrate the copy and acknowledge the
    write); the next write checks that file against its space, then migrates it."""
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    db2, calls = _version_2_migrating(space)
    copy = db.path.with_name("copy.sqlite")
    copy_file(db.path, copy)  # through a kept descriptor: the runtime has the file open
    os.replace(copy, db.path)
    seq = space.file.seen_seq
    with pytest.raises(sc.StoreChanged) as info, space.transact():
        db2.exec(INSERT, [None, "second", 2])
    assert info.value.path == str(db.path) and "replaced" in str(info.value)
    assert calls == [] and space.file.seen_seq == seq and db2.rev == 1
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT body FROM messages").fetchall() == [("first",)]
        assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall() == [(1,)]
    finally:
        conn.close()
    with space.transact():
        db2.exec(INSERT, [None, "second", 2])
    assert calls == [1]
    assert _bodies(db2) == ["MIGRATED", "second"]


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_a_database_file_changed_while_another_was_attached(
    space: Space, db: sc.SqliteDb, how: str
) -> None:
    other = space.sqlite_database("other", tables=MESSAGES)
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    with space.transact():  # db's file is let go, the other one attached
        other.exec(INSERT, [None, "elsewhere", 1])
    if how == "delete":
        db.path.unlink()
    else:
        copy = db.path.with_name("copy.sqlite")
        copy_file(db.path, copy)  # through a kept descriptor: the runtime has the file open
        os.replace(copy, db.path)
    with pytest.raises(sc.StoreChanged), space.transact():
        db.exec(INSERT, [None, "second", 2])
    assert db.rev == 1 and space.file.seen_seq == 2
    assert how == "replace" or not db.path.exists()  # no empty file was made in its place
    with space.transact():  # the other database is still fine
        other.exec(INSERT, [None, "more", 2])


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_a_database_file_changed_after_a_runtime_only_read_it(store: Path, how: str) -> None:
    """R73 for a runtime that has read the file (and so checked it against its space) but not
    written it yet: the swap is StoreChanged at its first commit, not rows written into a new
    file or into another store's file."""
    with sc.Runtime(store) as first:
        space = first.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec(INSERT, [None, "kept", 1])
    foreign = store.parent / "foreign"
    foreign.mkdir()
    with sc.Runtime(foreign) as other:
        other_space = other.space("demo")
        other_db = other_space.sqlite_database("chat", tables=MESSAGES)
        with other_space.transact():
            other_db.exec(INSERT, [None, "foreign", 1])
            other_db.exec(INSERT, [None, "foreign", 2])
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        c = space.cell("c", default=0)
        assert _bodies(db) == ["kept"]
        if how == "delete":
            db.path.unlink()
        else:
            os.replace(other_db.path, db.path)
        with pytest.raises(sc.StoreChanged) as info, space.transact():
            c.set(1)
            db.exec(INSERT, [None, "second", 2])
        assert info.value.path == str(db.path)
        assert c.get() == 0 and space.file.seen_seq == 1
    with sc.Runtime(store) as fresh:  # a new runtime checks the file against its space again
        space = fresh.space("demo")
        assert space.cell("c", default=0).get() == 0
        if how == "delete":  # rebuilt from the log
            assert _bodies(space.sqlite_database("chat", tables=MESSAGES)) == ["kept"]
        else:  # another store's file: never served as this database
            with pytest.raises(sc.Quarantined):
                space.sqlite_database("chat", tables=MESSAGES).read("SELECT body FROM messages")


# -- 7. statements stay prepared ---------------------------------------------------------------


@pytest.mark.parametrize("rows", [2, 300])
def test_an_identical_commit_prepares_no_statement_again(
    space: Space, db: sc.SqliteDb, rows: int
) -> None:
    """300 rows: apsw's statement cache takes ``executemany``'s statement back once per row,
    evicting the entry used longest ago; the write connection's cache is large enough that the
    commit's other statements survive it (``WRITER_STATEMENTS``)."""
    counter = space.cell("counter", default=0)

    def commit(n: int) -> None:
        with space.transact():
            counter.set(n)
            db.exec(INSERT, [None, "same", n])
            db.exec_many("INSERT INTO messages (body) VALUES (?)", [["a"]] * rows)

    commit(1)
    calls: list[tuple[object, ...]] = []
    with space.file.write_connection() as conn:
        gate = conn.authorizer
        assert gate is not None

        def counting(*args: object) -> int:
            calls.append(args)
            return gate(*args)  # type: ignore[no-any-return]

        conn.authorizer = counting  # (this expires the statements once more)
    commit(2)
    calls.clear()
    commit(3)
    # No runtime or user statement is prepared again. What remains is the session extension's
    # own SQL (a session lives for one op): its metadata read at the first change of a table,
    # and the savepoint and SELECT with which it builds the changeset.
    session_sql = {
        (apsw.SQLITE_PRAGMA, "table_xinfo"),
        (apsw.SQLITE_SAVEPOINT, "BEGIN"),
        (apsw.SQLITE_SAVEPOINT, "RELEASE"),
        (apsw.SQLITE_SELECT, None),
        (apsw.SQLITE_READ, "messages"),
    }
    assert calls and {(c[0], c[1]) for c in calls} <= session_sql
    assert counter.get() == 3 and db.rev == 3


def test_a_commit_after_this_runtimes_own_reads_nothing_back(
    store: Path, space: Space, db: sc.SqliteDb
) -> None:
    """While nobody else writes either file (SQLite's data version says so), a commit runs only
    the statements that write: what the runtime's own last commit left is known. Once another
    runtime commits, everything is read again, and the rev counts both runtimes' writes."""
    for n in range(3):
        with space.transact():
            db.exec(INSERT, [None, "mine", n])
    statements: list[str] = []
    with space.file.write_connection() as conn:
        conn.exec_trace = lambda _c, sql, _b: statements.append(sql) is None
    try:
        with space.transact():
            db.exec(INSERT, [None, "quiet", 3])
        quiet = list(statements)
        with sc.Runtime(store) as other:
            theirs = other.space("demo").sqlite_database("chat", tables=MESSAGES)
            with other.space("demo").transact():
                theirs.exec(INSERT, [None, "theirs", 4])
        statements.clear()
        with space.transact():
            db.exec(INSERT, [None, "after", 5])
    finally:
        with space.file.write_connection() as conn:
            conn.exec_trace = None
    # (The user's INSERT runs on a cursor of its own, not traced here.)
    assert [sql.split(" (")[0] for sql in quiet] == [
        "BEGIN",
        "UPDATE main._cf_meta SET key = key WHERE 0",  # the space file's write lock alone
        "UPDATE _cf_db._cf_meta SET key = key WHERE 0",  # then the database file's
        "INSERT INTO _cf_cells",
        "INSERT INTO _cf_db._cf_changes",
        "INSERT INTO _cf_log",
        "INSERT OR IGNORE INTO _cf_op_index",
        "COMMIT",
    ]
    # (Stored JSON is selected as bytes, through stored_json_column.)
    assert any(sql.startswith("SELECT CASE typeof(record)") for sql in statements)
    assert any(
        sql.startswith("SELECT CASE typeof(value)") and "FROM main._cf_cells" in sql
        for sql in statements
    )
    assert db.rev == 6 and _bodies(db) == ["mine"] * 3 + ["quiet", "theirs", "after"]


def test_the_session_pragma_is_never_allowed_to_user_text(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    # The guard refuses PRAGMA text; the gate would refuse it too, as the user's prepare is judged
    # by the write policy alone. Simulate a statement that slipped past the guard:
    from sqlite_cells.write._conn import write_conn
    from sqlite_cells.write._watchdog import Watchdog

    with space.file.write_connection() as conn:
        state = write_conn(conn)
        from sqlite_cells.sql import Mode, make_authorizer

        policy = make_authorizer(Mode.WRITE, database="_cf_db", tables={"messages"})
        with pytest.raises(apsw.AuthError):
            state.run_user(
                conn,
                policy,
                "PRAGMA _cf_db.table_xinfo(messages)",
                [()],
                many=False,
                timeout=5,
                watchdog=Watchdog(),
            )


# -- 8. group commit -----------------------------------------------------------------------


def test_grouped_database_writes_each_bump_the_rev_and_a_fatal_member_is_dropped(
    space: Space, db: sc.SqliteDb
) -> None:
    from tests.runtime.test_group_commit import commit_queued

    with space.transact():
        db.exec("INSERT INTO messages (id, body) VALUES (1, 'first')")
    counter = space.cell("counter", default=0)
    bodies = [
        lambda: db.exec("INSERT INTO messages (body) VALUES ('a')"),
        lambda: counter.set(1),
        # OR ROLLBACK ends the whole SQLite transaction: the others are run again without it.
        lambda: db.exec("INSERT OR ROLLBACK INTO messages (id, body) VALUES (1, 'dup')"),
        lambda: db.exec("INSERT INTO messages (body) VALUES ('b')"),
    ]
    outcomes, statements = commit_queued(space, bodies)
    assert outcomes[0] == 2 and outcomes[1] == 3 and outcomes[3] == 4
    assert isinstance(outcomes[2], sc.ExecError) and outcomes[2].db_id == db.id
    assert statements.count("COMMIT") == 1 and statements.count("BEGIN") == 2
    assert _bodies(db) == ["first", "a", "b"]
    assert db.rev == 3 and counter.get() == 1
    assert all(o.agrees for o in check_store(space.runtime.store, repair=False))


def test_link_columns_are_found_by_sqlites_own_name_folding(space: Space) -> None:
    """SQLite folds only ASCII case: "É" and "é" are two tables, and only the one with a link
    column has its values checked (R31)."""
    db = space.sqlite_database(
        "accents",
        tables={
            "É": sc.table(ref_cf_link=sc.cf_link(), note="text"),
            "é": sc.table(a="text", b="text"),
        },
    )
    with space.transact():
        db.exec('INSERT INTO "é" (a, b) VALUES (?, ?)', ["free text", "more"])
    with pytest.raises(sc.LinkEncodeError, match=r"link column É\.ref_cf_link"), space.transact():
        db.exec("INSERT INTO \"É\" (ref_cf_link, note) VALUES ('free text', 'x')")
    assert db.read('SELECT a FROM "é"') == [{"a": "free text"}]
    assert db.read('SELECT count(*) AS n FROM "É"') == [{"n": 0}]


def test_a_database_file_replaced_while_a_migrating_write_waits_is_never_migrated(
    space: Space, db: sc.SqliteDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R73, R14: the file is looked at again under the space's write lock, before `migrate`
    opens it by its path: replaced after the write's prepare found it the one this runtime
    checked (while the commit waits for the lock, say), it is StoreChanged and never
    migrated."""
    with space.transact():
        db.exec(INSERT, [None, "first", 1])
    db2, calls = _version_2_migrating(space)
    prepare = SqliteParticipant.prepare

    def prepared_then_replaced(self: SqliteParticipant, conn: Any, ops: Any) -> None:
        prepare(self, conn, ops)
        copy = db.path.with_name("copy.sqlite")
        copy_file(db.path, copy)
        os.replace(copy, db.path)

    monkeypatch.setattr(SqliteParticipant, "prepare", prepared_then_replaced)
    with pytest.raises(sc.StoreChanged) as info, space.transact():
        db2.exec(INSERT, [None, "second", 2])
    monkeypatch.undo()
    assert info.value.path == str(db.path) and calls == []
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("SELECT body FROM messages").fetchall() == [("first",)]
        assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall() == [(1,)]
    finally:
        conn.close()

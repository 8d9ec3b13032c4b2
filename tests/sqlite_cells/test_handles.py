"""R5: a database handle is not a writable cell; R4/R7 for handles and links read back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import (
    DatabaseDropped,
    check_store,
    collect_garbage,
    handle_value,
    remember_handle,
)
from sqlite_cells.runtime import InvalidArgument, space_file_name
from sqlite_cells.schema import db_file_name, declare_tables

from .conftest import MESSAGES


@pytest.mark.parametrize("call", ["set", "update", "key"])
def test_r5_set_update_and_key_on_a_handle_raise_type_error(
    space: Space, db: sc.SqliteDb, call: str
) -> None:
    with space.transact() as tx:
        with pytest.raises(TypeError, match=r"not a writable cell|has no paths") as info:
            if call == "set":
                db.set(None)
            elif call == "update":
                db.update(lambda v: v)
            else:
                db.key("rev")
        assert isinstance(info.value, sc.SqliteCellsError)
        assert tx.is_empty
    assert db.rev == 0 and db.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 0}


def test_r5_only_exec_and_drop_write_the_handle(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
        db.exec("INSERT INTO messages (body) VALUES ('b')")
    assert db.rev == 1
    with space.transact():
        db.drop()
    assert db.get()["dropped"] is True


@pytest.mark.parametrize("written", [False, True], ids=["declared", "written"])
def test_r5_no_plain_cell_of_a_handle_id_writes_it(
    store: Path, space: Space, db: sc.SqliteDb, written: bool
) -> None:
    if written:
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('a')")
    for impostor in (sc.Cell(space, db.id), space.runtime.cell_from_link(db.link_str())):
        with space.transact() as tx:
            with pytest.raises(TypeError, match="not a writable cell") as info:
                impostor.set({"something": "else"})
            assert isinstance(info.value, sc.SqliteCellsError) and tx.is_empty
            with pytest.raises(TypeError):
                impostor.key("rev").set(5)
    assert db.rev == (1 if written else 0)
    # After a restart nothing is declared: the committed handle value still protects it.
    if written:
        with sc.Runtime(store) as again:
            cell = again.cell_from_link(db.link_str())
            with pytest.raises(TypeError), again.space("demo").transact():
                cell.set(None)


def test_r5_update_of_a_plain_cell_of_a_handle_id_runs_nothing_and_reads_nothing(
    space: Space, db: sc.SqliteDb
) -> None:
    """R5, R32: ``update`` on a plain ``Cell`` of a database's id (made by hand, from a link, at
    a path) is refused before its function runs, as ``db.update`` is: the function is never
    called and no read of the handle is recorded, so another transaction's write to that
    database is no conflict for the one the refusal happened in, and both commits are kept."""
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('first')")
    note = space.cell("note")
    link = db.link_str()
    impostors = (sc.Cell(space, db.id), space.runtime.cell_from_link(link))
    calls: list[Any] = []
    for n, impostor in enumerate((*impostors, impostors[1].key("rev"))):
        with space.transact():
            note.set(n)
            with pytest.raises(TypeError, match="not a writable cell") as info:
                impostor.update(lambda value: calls.append(value) or value)
            assert isinstance(info.value, sc.SqliteCellsError)
            worker = threading.Thread(
                target=_insert_in_a_transaction, args=(space, db, f"theirs {n}")
            )
            worker.start()
            worker.join()
        assert calls == [] and note.get() == n
    assert db.rev == 4
    assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")] == [
        "first",
        "theirs 0",
        "theirs 1",
        "theirs 2",
    ]


def test_r5_a_handle_written_elsewhere_fails_the_live_queries_already_there(
    store: Path,
) -> None:
    """R5: a runtime that never declared a database takes its unwritten handle cell for a plain
    one and may write it; the declaring runtime's reads then fail with Quarantined — and its
    live queries made before too (they served the old rows with no error, not being re-run by
    a commit with no op of the database's)."""
    with sc.Runtime(store) as first, sc.Runtime(store) as second:
        db = first.space("s").sqlite_database("d", tables=MESSAGES)
        q = db.query("SELECT count(*) AS n FROM messages")
        assert first.settle(10) and q.get().result == [{"n": 0}]
        with second.space("s").transact():
            second.cell_from_link(db.link_str()).set(None)
        assert first.settle(10)
        assert isinstance(q.get().error, sc.Quarantined) and q.get().result is None


@pytest.mark.parametrize(
    "default",
    [{"foo": 1}, "handle-shaped", None, 0],
    ids=["not-a-handle", "handle-shaped", "none", "zero"],
)
def test_r5_no_plain_cell_of_a_handle_id_declares_its_default(
    space: Space, db: sc.SqliteDb, default: Any
) -> None:
    """A default is what the cell reads until its first write (R4); a database's is its handle
    value (R2), so another would change what ``db.get()`` and ``db.rev`` read — a never-written
    database read as ``Quarantined``, or with ``rev`` 99."""
    if default == "handle-shaped":
        default = {"id": db.id, "tables": {}, "rev": 99}
    before = db.get()
    with pytest.raises(TypeError, match="a Cell of a database's id declares no default") as info:
        sc.Cell(space, db.id, default=default)
    assert isinstance(info.value, sc.SqliteCellsError)
    assert db.get() == before and db.rev == 0
    assert sc.Cell(space, db.id).get() == before
    assert db.read("SELECT count(*) AS n FROM messages") == [{"n": 0}]
    # Its own declaration, made again, still gives it its default.
    again = space.sqlite_database("chat", tables=dict(db.tables))
    assert again.id == db.id and again.get() == before


@pytest.mark.parametrize("grouped", [False, True], ids=["alone", "with-another-write"])
def test_r5_a_handle_written_after_another_runtime_judged_the_cell_is_refused_at_commit(
    store: Path, space: Space, db: sc.SqliteDb, grouped: bool
) -> None:
    """Runtime B judges the handle cell writable on its view (never written); A's first
    ``db.exec`` then makes it a handle before B has caught up: B's commit judges the write again
    on the committed value and refuses it, and the database stays A's."""
    with space.transact():
        space.cell("seed").set(1)  # the space file exists; the handle is not written yet
    with sc.Runtime(store, poll_interval=3600) as other:
        theirs = other.space("demo")
        handle = other.cell_from_link(db.link_str())
        assert handle.get() is None
        refused = pytest.raises(TypeError, match="not a writable cell")
        with refused as info, theirs.transact() as tx:
            if grouped:
                theirs.cell("note").set("kept out too")
            handle.set(None)  # judged on B's view: never written, so writable
            first_write = threading.Thread(target=_write_once, args=(space, db))
            first_write.start()  # A's first write, committed before B's (another thread: a
            first_write.join()  # transaction here would join B's)
        assert isinstance(info.value, sc.SqliteCellsError) and tx.seq is None
        assert theirs.cell("note").get() is None
    assert db.rev == 1 and db.read("SELECT body FROM messages") == [{"body": "precious"}]
    with sc.Runtime(store) as again:
        mine = again.space("demo").sqlite_database("chat", tables=MESSAGES)
        assert mine.read("SELECT body FROM messages") == [{"body": "precious"}]


def test_r5_an_async_handler_is_judged_again_at_commit_too(
    store: Path, space: Space, db: sc.SqliteDb
) -> None:
    """As above, for an async handler: its body's transaction is committed off the loop as a
    new transaction, which keeps the guards."""
    with space.transact():
        space.cell("seed").set(1)
    with sc.Runtime(store, poll_interval=3600) as other:
        handle = other.cell_from_link(db.link_str())

        @sc.handler
        async def blank() -> None:
            handle.set(None)
            first_write = threading.Thread(target=_write_once, args=(space, db))
            first_write.start()
            first_write.join()

        with pytest.raises(TypeError, match="not a writable cell") as info:
            asyncio.run(blank())
        assert isinstance(info.value, sc.SqliteCellsError)
    assert db.rev == 1 and db.read("SELECT body FROM messages") == [{"body": "precious"}]


def _write_once(space: Space, db: sc.SqliteDb) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('precious')")


def test_r5_a_handle_overwritten_by_another_program_quarantines(
    space: Space, db: sc.SqliteDb
) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    conn = apsw.Connection(str(space.file.path))
    conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (b'{"something": "else"}', db.id))
    conn.close()
    space.file._cache.clear()  # the runtime's cache never saw the foreign write
    with pytest.raises(sc.Quarantined, match="not a database handle") as info:
        db.read("SELECT * FROM messages")
    # Shown as the JSON the store holds, not as a Python literal ({'something': 'else'}).
    assert 'its handle cell holds {"something": "else"}, which' in str(info.value)
    (outcome,) = check_store(space.file.path.parent, repair=False)
    assert 'its handle cell holds {"something": "else"}, which' in outcome.detail
    q = db.query("SELECT * FROM messages")
    space.runtime.settle()
    assert isinstance(q.get().error, sc.Quarantined) and q.get().result is None
    with pytest.raises(sc.Quarantined), space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('b')")
    with pytest.raises(sc.Quarantined):
        db.rev  # noqa: B018  # the property raises
    assert collect_garbage(space.runtime.store) == []


def test_r4_a_handle_reached_through_a_link_reads_its_declared_value(
    rt: sc.Runtime, space: Space, db: sc.SqliteDb
) -> None:
    same = rt.cell_from_link(db.link_str())
    assert same.get() == {"id": db.id, "tables": db.get()["tables"], "rev": 0}


def test_r7_reading_a_database_of_a_space_the_store_does_not_hold_creates_nothing(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        db = rt.space("ghost").sqlite_database("chat", tables=MESSAGES)
        assert db.read("SELECT * FROM messages") == []
        q = db.query("SELECT * FROM messages")
        rt.settle()
        assert q.get().result == []
        assert db.rev == 0
    assert list(store.iterdir()) == []


def test_a_remembered_handle_answers_only_for_its_own_bytes() -> None:
    data = b'{"id":"of:x","rev":2,"tables":{}}'
    remembered = {"id": "of:x", "rev": 2, "tables": {}}
    remember_handle("of:x", data, remembered)
    assert handle_value("of:x", data) is remembered
    assert handle_value("of:y", data) is None  # another id: decoded, not a handle of of:y
    assert handle_value("of:x", data.replace(b"2", b"3")) == {"id": "of:x", "rev": 3, "tables": {}}
    assert handle_value("of:x", b'{"id":"of:x"}') is None


def test_r3_a_plain_cell_cannot_be_set_to_its_own_handle_shape(
    space: Space, db: sc.SqliteDb
) -> None:
    """R3: only sqlite_database and register_disk_source make databases. A value shaped like a
    handle of the very cell it is written to would make that cell a database (and lock it)."""
    forged = space.cell("forged")
    counter = space.cell("counter", default=0)
    shaped = {"id": forged.id, "tables": db.get()["tables"], "rev": 0}
    with space.transact():
        counter.set(1)
        with pytest.raises(TypeError, match=r"shape of a database handle") as info:
            forged.set(shaped)
        assert isinstance(info.value, sc.SqliteCellsError)
    assert (forged.get(), counter.get()) == (None, 1)
    with space.transact():
        forged.set({"id": forged.id, "rev": 0})
        with pytest.raises(TypeError):  # a path write completing the shape: the whole value
            forged.key("tables").set(shaped["tables"])
    assert forged.get() == {"id": forged.id, "rev": 0}
    with space.transact():
        forged.set({**shaped, "id": "another id"})  # not its own id: an ordinary value
    assert forged.get()["id"] == "another id"


def test_r5_handle_tables_that_do_not_decode_quarantine_the_database(store: Path) -> None:
    from sqlite_cells.files import HandleQuarantined, declaration_from_handle

    value = {"id": "of:x", "tables": "notadict", "rev": 1}
    with pytest.raises(HandleQuarantined):
        declaration_from_handle(value, "of:x", "s", store=store, roots=None)
    value = {"id": "of:x", "tables": {"t": {"columns": "no"}}, "rev": 1}
    with pytest.raises(HandleQuarantined):
        declaration_from_handle(value, "of:x", "s", store=store, roots=None)


def test_sqlite_query_takes_a_database(space: Space) -> None:
    for db in (space.cell("plain"), None):
        with pytest.raises(sc.SqliteCellsError, match=r"takes a database") as info:
            sc.sqlite_query(db=db, sql="SELECT 1")  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("what", ["path", "id", "schema"])
def test_r3_a_handle_cannot_be_made_from_an_altered_declaration(
    store: Path, tmp_path: Path, space: Space, db: sc.SqliteDb, what: str
) -> None:
    """The declaration is public to read, never to hand back: a copy pointing at another file,
    at another cell's id, or with other tables gives no handle, and nothing is written."""
    victim = tmp_path / "victim.db"
    conn = apsw.Connection(str(victim))
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    conn.close()
    plain = space.cell("plain")
    changes: dict[str, Any] = {
        "path": {"path": victim},
        "id": {"db_id": plain.id, "path": store / db_file_name(plain.id)},
        "schema": {"schema": declare_tables({"other": sc.table(x="text")})},
    }[what]
    forged = dataclasses.replace(db.declaration, **changes)
    with pytest.raises(sc.SqliteCellsError, match=r"not made by this runtime \(R3") as info:
        sc.SqliteDb(space, forged)
    assert isinstance(info.value, TypeError)
    with space.transact():  # the real handle is untouched and still works
        db.exec("INSERT INTO messages (body) VALUES ('mine')")
    assert db.rev == 1
    assert db.read("SELECT body FROM messages") == [{"body": "mine"}]
    conn = apsw.Connection(str(victim))
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("messages",)]
    assert conn.execute("SELECT count(*) FROM messages").fetchall() == [(0,)]
    conn.close()
    assert plain.get() is None
    assert not (store / db_file_name(plain.id)).exists()


@pytest.mark.parametrize("given", ["a name", "a cell", "the handle"])
def test_r3_a_handle_is_made_from_a_runtime_declaration_only(
    store: Path, space: Space, db: sc.SqliteDb, given: str
) -> None:
    """Anything but a declaration the runtime made, where ``sc.SqliteDb`` takes one, is our
    error at the call (not Python's, raised while the refusal was being worded)."""
    what: Any = {"a name": "x", "a cell": space.cell("plain"), "the handle": db}[given]
    with pytest.raises(sc.SqliteCellsError, match=r"sc\.SqliteDb\(space, declaration\)") as info:
        sc.SqliteDb(space, what)
    assert isinstance(info.value, TypeError)
    with pytest.raises(sc.SqliteCellsError, match="R3") as info:
        sc.SqliteDb(what, db.declaration)
    assert isinstance(info.value, TypeError)
    assert sorted(p.name for p in store.iterdir()) == []  # nothing was written


def test_a_str_subclass_names_a_database_and_is_its_sql(space: Space) -> None:
    class Tagged(str):
        pass

    db = space.sqlite_database(Tagged("chat"), tables={"m": sc.table(body="text")})
    assert db.id == space.sqlite_database("chat", tables={"m": sc.table(body="text")}).id
    with space.transact():
        db.exec(Tagged("INSERT INTO m (body) VALUES (?)"), [Tagged("hi")])
    assert db.read("SELECT body FROM m") == [{"body": "hi"}]


class _Lying(str):
    """SQL whose ``__str__``, ``__eq__`` and ``__hash__`` claim another, harmless text."""

    def __str__(self) -> str:
        return "SELECT body FROM m"

    def __eq__(self, other: object) -> bool:
        return other == "SELECT body FROM m"

    def __hash__(self) -> int:
        return hash("SELECT body FROM m")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO m (body) VALUES ('z'); DELETE FROM m", "multiple-statements"),
        ("INSERT INTO m (body) VALUES (?) RETURNING body", "returning"),
        ("SELECT body FROM m; SELECT 2", "multiple-statements"),
        ("SELECT body FROM main.m", "schema-qualified"),
        ("EXPLAIN SELECT body FROM m", "not-read-only"),
    ],
)
def test_r20_the_guard_judges_the_text_sqlite_runs(space: Space, sql: str, kind: str) -> None:
    """A str subclass is judged by its text, never by what its methods say (R20, R21)."""
    db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('kept')")
    if sql.startswith("INSERT"):
        for call in (
            lambda: db.exec(_Lying(sql), ["x"] if "?" in sql else None),
            lambda: db.exec_many(_Lying(sql), [["x"], ["y"]]),
        ):
            with pytest.raises(sc.GuardViolation) as caught, space.transact():
                call()
            assert caught.value.kind == kind
    else:
        for call in (
            lambda: db.read(_Lying(sql)),
            lambda: db.query(_Lying(sql)),
            lambda: sc.sqlite_query(db=db, sql=_Lying(sql)),
        ):
            with pytest.raises(sc.GuardViolation) as caught:
                call()
            assert caught.value.kind == kind and caught.value.sql == sql
    assert db.read("SELECT body FROM m") == [{"body": "kept"}]


@pytest.mark.parametrize("rev", [-3, 2**63 - 1])
def test_r5_a_handle_whose_rev_is_no_count_of_commits_quarantines(
    space: Space, db: sc.SqliteDb, rev: int
) -> None:
    """A revision below 0, or one the next write could not count past in 64 bits (R6)."""
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    tables = db.get()["tables"]
    conn = apsw.Connection(str(space.file.path))
    value = json.dumps({"id": db.id, "tables": tables, "rev": rev}).encode()
    conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (value, db.id))
    conn.close()
    space.file._cache.clear()  # the runtime's cache never saw the foreign write
    with pytest.raises(sc.Quarantined):
        db.read("SELECT * FROM messages")
    with pytest.raises(sc.Quarantined), space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('b')")


def test_a_database_written_and_dropped_in_one_transaction_is_refused_at_the_call(
    space: Space, db: sc.SqliteDb
) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('kept')")
    rows = db.read("SELECT body FROM messages")
    with pytest.raises(sc.TransactionError) as raised, space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('x')")
        db.drop()
    assert "written by this transaction (db.exec) and cannot also be dropped" in str(raised.value)
    # Dropped earlier in the same transaction (not committed): it is not "was dropped".
    for after_the_drop in (
        lambda: db.exec("INSERT INTO messages (body) VALUES ('after the drop')"),
        lambda: db.exec_many("INSERT INTO messages (body) VALUES (?)", [["x"]]),
        db.drop,
    ):
        with pytest.raises(sc.TransactionError) as raised, space.transact():
            db.drop()
            after_the_drop()
        assert type(raised.value) is sc.TransactionError
        assert "is dropped by this transaction" in str(raised.value)
        assert "was dropped" not in str(raised.value)
    with (
        pytest.raises(sc.ReadAfterWriteUnsupported, match="this transaction drops"),
        space.transact(),
    ):
        db.drop()
        db.read("SELECT body FROM messages")
    # No transaction committed anything: the rows, the rev and the handle are as they were.
    assert db.read("SELECT body FROM messages") == rows
    assert db.rev == 1 and db.get().get("dropped") is None
    with space.transact():  # each in a transaction of its own: written, then dropped
        db.exec("INSERT INTO messages (body) VALUES ('last')")
    with space.transact():
        db.drop()
    assert db.get()["dropped"] is True


def _insert_in_a_transaction(space: Space, db: sc.SqliteDb, body: str) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES (?)", [body])


@pytest.mark.parametrize("dropped", ["another", "the written"])
def test_a_drop_refused_at_the_call_records_no_read_of_the_handle(
    space: Space, db: sc.SqliteDb, dropped: str
) -> None:
    """R32, R33: a drop refused at the call (``TooManyDatabases`` for a database other than the
    one the transaction writes, ``TransactionError`` for that one) records nothing: another
    transaction writing the refused database before this write-only one commits is no
    conflict, and both commits are kept."""
    other = space.sqlite_database("other", tables=MESSAGES)
    refused = other if dropped == "another" else db
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('mine')")
        with pytest.raises((sc.TooManyDatabases, sc.TransactionError)) as raised:
            refused.drop()
        expected = sc.TooManyDatabases if dropped == "another" else sc.TransactionError
        assert type(raised.value) is expected and "this transaction" in str(raised.value)
        worker = threading.Thread(target=_insert_in_a_transaction, args=(space, refused, "theirs"))
        worker.start()
        worker.join()
    assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")] == (
        ["theirs", "mine"] if refused is db else ["mine"]  # theirs committed first
    )
    assert db.rev == (2 if refused is db else 1) and other.rev == (0 if refused is db else 1)
    assert db.get().get("dropped") is None and other.get().get("dropped") is None


def test_every_use_of_a_dropped_database_is_one_database_error(
    space: Space, db: sc.SqliteDb
) -> None:
    """After a committed drop, reads, live queries, writes and another drop each raise the
    same error class, a ``DatabaseError`` (not the bare root class), saying what to do."""
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    with space.transact():
        db.drop()
    uses: list[Callable[[], object]] = [
        lambda: db.read("SELECT body FROM messages"),
        lambda: db.query("SELECT body FROM messages"),
    ]
    for use in uses:
        with pytest.raises(DatabaseDropped) as raised:
            use()
        assert isinstance(raised.value, sc.DatabaseError)
        assert "was dropped: declare a new one" in str(raised.value)
    for write in (lambda: db.exec("INSERT INTO messages (body) VALUES ('b')"), db.drop):
        with pytest.raises(DatabaseDropped), space.transact():
            write()


def test_a_write_committed_after_another_runtime_dropped_the_database_is_database_dropped(
    store: Path,
) -> None:
    """The write was recorded before the drop committed: the commit finds the handle dropped
    and says so with the class every other use after a drop raises."""
    with sc.Runtime(store) as first, sc.Runtime(store) as second:
        one = first.space("demo").sqlite_database("chat", tables=MESSAGES)
        two = second.space("demo").sqlite_database("chat", tables=MESSAGES)
        with first.space("demo").transact():
            one.exec("INSERT INTO messages (body) VALUES ('first')")

        def drop() -> None:  # on a thread of its own: not inside the transaction below
            with second.space("demo").transact():
                two.drop()

        with pytest.raises(DatabaseDropped) as raised, first.space("demo").transact():
            one.exec("INSERT INTO messages (body) VALUES ('late')")
            dropper = threading.Thread(target=drop)
            dropper.start()
            dropper.join()
        assert isinstance(raised.value, sc.DatabaseError)
        assert "was dropped" in str(raised.value)


def test_r3_a_handle_cannot_be_made_in_another_space_than_its_declaration(
    rt: sc.Runtime, store: Path, space: Space, db: sc.SqliteDb
) -> None:
    """A declaration this runtime made, handed to ``sc.SqliteDb`` with another space, is a bad
    argument said as such (it said the cell "cannot be set" to a value nobody set), and the
    other space gets nothing: no database, no handle, no file."""
    other = rt.space("other")
    with pytest.raises(sc.SqliteCellsError, match=r"belongs to space 'demo', not to space 'other'"):
        sc.SqliteDb(other, db.declaration)
    with pytest.raises(InvalidArgument) as info:
        sc.SqliteDb(other, db.declaration)
    assert isinstance(info.value, TypeError)
    assert "R3" in str(info.value)
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('mine')")
    with pytest.raises(InvalidArgument, match=r"belongs to space 'demo'"):
        sc.SqliteDb(other, db.declaration)
    assert other.cell("plain").get() is None
    assert sc.SqliteDb(space, db.declaration).get() == db.get()  # its own space still works
    assert not (store / space_file_name("other")).exists()

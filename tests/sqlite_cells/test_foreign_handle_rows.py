"""R5 and Errors: a database handle cell whose row another program wrote — a value that is not
JSON, not a BLOB or text, or a rev that is not an integer — makes that database ``Quarantined``
(never "no handle", never a raw or encoding error of a cell the caller did not name); a handle
stored as text holding its JSON is the handle. Written with plain apsw, read in a new runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells.files import Action, HandleQuarantined, check_store, collect_garbage

from .conftest import MESSAGES


def _space_path(store: Path) -> Path:
    (path,) = store.glob("space-*.sqlite")
    return path


def _one_write(store: Path) -> str:
    """A store with database "chat" of space "demo" written once; the handle's id."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('a')")
        return db.id


def _foreign(store: Path, db_id: str, column: str, make: Any) -> None:
    """Replace a column of the handle's row with ``make(current)``, as another program would."""
    conn = apsw.Connection(str(_space_path(store)))
    try:
        (current,) = conn.execute(
            f"SELECT {column} FROM _cf_cells WHERE id = ?", (db_id,)
        ).fetchone()
        conn.execute(f"UPDATE _cf_cells SET {column} = ? WHERE id = ?", (make(current), db_id))
    finally:
        conn.close()


def _log_seq(store: Path) -> int:
    conn = apsw.Connection(str(_space_path(store)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return int(conn.execute("SELECT max(seq) FROM _cf_log").fetchone()[0])
    finally:
        conn.close()


FOREIGN = {
    "not-json": ("value", lambda _: b"not json"),
    "zero-bytes": ("value", lambda _: b"\x00" * 5),
    "json-null": ("value", lambda _: b"null"),
    "integer": ("value", lambda _: 5),
    "huge-integer": ("value", lambda _: 10**15),
    "real": ("value", lambda _: 2.5),
    "text-not-json": ("value", lambda _: "not json"),
    "text-not-a-handle": ("value", lambda _: '{"weird": 1}'),
    "rev-text": ("rev", lambda _: "x"),
    "rev-blob": ("rev", lambda _: b"\x01"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_r5_a_handle_row_another_program_wrote_quarantines_the_database(
    store: Path, case: str
) -> None:
    db_id = _one_write(store)
    column, make = FOREIGN[case]
    _foreign(store, db_id, column, make)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(HandleQuarantined) as info:
            db.read("SELECT * FROM messages")
        assert info.value.db_id == db_id and "quarantined" in str(info.value)
        assert "restore the handle value from a backup" in str(info.value)
        with pytest.raises(sc.Quarantined), space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('b')")
        with pytest.raises(sc.Quarantined):
            db.get()
        with pytest.raises(sc.Quarantined), space.transact():
            db.drop()
        q = db.query("SELECT * FROM messages")
        rt.settle()
        assert isinstance(q.get().error, sc.Quarantined)
    assert _log_seq(store) == 1  # nothing was committed
    assert collect_garbage(store) == []  # its file is kept
    outcomes = check_store(store, repair=False)
    assert [(o.db_id, o.action) for o in outcomes] == [(db_id, Action.QUARANTINED)]


@pytest.mark.parametrize("case", ["json-null", "text-not-a-handle"])
def test_r5_a_damaged_handle_is_not_written_over_by_a_runtime_that_never_declared_it(
    store: Path, case: str
) -> None:
    """The log's ops name the cell a database's handle, whatever another program left in it: a
    plain ``set`` through its link is refused as for any handle, and the damage is kept."""
    db_id = _one_write(store)
    column, make = FOREIGN[case]
    _foreign(store, db_id, column, make)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        handle = sc.Cell(space, db_id)
        link = handle.link_str()
        for cell in (handle, rt.cell_from_link(link)):
            with space.transact() as tx:
                for value in (None, {"anything": 1}, "x"):
                    with pytest.raises(TypeError, match="not a writable cell") as info:
                        cell.set(value)
                    assert isinstance(info.value, sc.SqliteCellsError)
                assert tx.is_empty
        db = space.sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(HandleQuarantined):
            db.read("SELECT * FROM messages")
    assert _log_seq(store) == 1  # nothing was committed


def test_r5_a_handle_stored_as_text_is_read_as_its_json(store: Path) -> None:
    db_id = _one_write(store)
    _foreign(store, db_id, "value", lambda value: bytes(value).decode("utf-8"))
    assert [o.action for o in check_store(store, repair=False)] == [Action.IN_SYNC]
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        assert db.read("SELECT body FROM messages") == [{"body": "a"}]
        assert db.rev == 1
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('b')")  # the rev bump reads the text
        assert db.rev == 2
        assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")] == ["a", "b"]
    assert collect_garbage(store) == []


@sc.pattern
def _reads_chat(chat: sc.SqliteDb) -> Any:
    return chat.query("SELECT body FROM messages")


def _linked_output(store: Path) -> Any:
    """What the piece linked to the database before the restart sees in a new runtime, one
    that never declared the database: it knows it only through the link."""
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(_reads_chat, key="reader")
        rt.settle()
        return piece.outputs.get()


@pytest.mark.parametrize("case", list(FOREIGN))
def test_r5_a_damaged_handle_reached_through_a_pattern_input_quarantines_the_database(
    store: Path, case: str
) -> None:
    """A link does not make a damaged handle "no handle" either: the database's file says the
    cell is its handle, whatever the cell holds now."""
    db_id = _one_write(store)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(_reads_chat, key="reader")
        piece.inputs["chat"].link(space.sqlite_database("chat", tables=MESSAGES))
        rt.settle()
        assert piece.outputs.get().result == [{"body": "a"}]
    column, make = FOREIGN[case]
    _foreign(store, db_id, column, make)
    state = _linked_output(store)
    assert state.result is None
    assert isinstance(state.error, HandleQuarantined), repr(state.error)
    assert state.error.db_id == db_id


SOURCE_DAMAGE = {
    "rev-text-json": lambda value: {**value, "rev": "0"},
    "rev-negative": lambda value: {**value, "rev": -5},
    "rev-real": lambda value: {**value, "rev": 1.5},
    "tables-list": lambda value: {**value, "tables": []},
    "source-kind-unknown": lambda value: {**value, "source": {**value["source"], "kind": "zzz"}},
    "source-list": lambda value: {**value, "source": []},
    "source-path-not-text": lambda value: {**value, "source": {**value["source"], "path": 7}},
}


@pytest.mark.parametrize("case", list(SOURCE_DAMAGE))
def test_r5_a_damaged_handle_of_an_injected_file_quarantines_it(
    store: Path, tmp_path: Path, case: str
) -> None:
    """An injected file's handle is judged like any other (its shape, rev included) and a
    ``source`` that is not an injected file is never read as the runtime's own database with no
    tables (which answered "no such table")."""
    outside = tmp_path / "outside.db"
    conn = apsw.Connection(str(outside))
    conn.execute("CREATE TABLE messages (body TEXT); INSERT INTO messages VALUES ('kept')")
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        source = space.register_disk_source(str(outside))
        piece = space.run(_reads_chat, key="reader")
        piece.inputs["chat"].link(source)
        rt.settle()
        assert piece.outputs.get().result == [{"body": "kept"}]
        db_id, value = source.id, source.get()
    _foreign(store, db_id, "value", lambda _: msgspec.json.encode(SOURCE_DAMAGE[case](value)))
    state = _linked_output(store)
    assert state.result is None
    assert isinstance(state.error, HandleQuarantined), repr(state.error)
    assert state.error.db_id == db_id


def test_a_plain_cell_of_another_space_with_a_databases_id_is_not_its_handle(store: Path) -> None:
    """Only the space whose log wrote a database holds its handle: a cell of another space
    with the same id (a link whose space was edited) is a plain cell, refused as an input
    typed sc.SqliteDb, and never makes that database quarantined."""
    db_id = _one_write(store)
    with sc.Runtime(store) as rt:
        other = rt.space("other")
        twin = sc.Cell(other, db_id)
        with other.transact():
            twin.set({"plain": 1})
    with sc.Runtime(store) as rt:
        other = rt.space("other")
        with pytest.raises(sc.SqliteCellsError) as info:
            other.run(_reads_chat, key="reader", chat=sc.Cell(other, db_id))
        assert isinstance(info.value, ValueError)
        assert "holds no database handle" in str(info.value)
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        assert db.read("SELECT body FROM messages") == [{"body": "a"}]


def test_a_quarantined_handle_is_not_sent_to_a_check_that_shows_no_log(
    store: Path, tmp_path: Path
) -> None:
    """Errors: the advice said to run `sqlite-cells check` "to see what the space's log
    holds", which `check` never shows (it reports the database quarantined and that
    `--repair` cannot repair it). The advice is the backup of the space file, and `check` lists
    the database; restoring that copy brings the database back."""
    db_id = _one_write(store)
    backup = tmp_path / "space.backup"
    backup.write_bytes(_space_path(store).read_bytes())
    _foreign(store, db_id, "value", lambda _: 5)
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        with pytest.raises(HandleQuarantined) as info:
            db.read("SELECT * FROM messages")
    message = str(info.value)
    assert "see what the space's log holds" not in message
    assert (
        "restore the handle value from a backup (a copy of the space file made before that "
        "value was written; `sqlite-cells check --repair` cannot rebuild it, and `sqlite-cells "
        "check` lists each database so quarantined)"
    ) in message
    (found,) = check_store(store, repair=False)
    assert (found.db_id, found.action) == (db_id, Action.QUARANTINED)
    _space_path(store).write_bytes(backup.read_bytes())  # what the message says to do
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=MESSAGES)
        assert [r["body"] for r in db.read("SELECT body FROM messages")] == ["a"]

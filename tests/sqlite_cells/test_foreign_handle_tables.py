"""R5: a handle value whose ``tables`` do not declare tables (written by an older or foreign
program) makes that database ``Quarantined`` on every path — a database declared again with
``sqlite_database``, a pattern input following a link, a live query, a write — and is never
served, never written over, never reported as the caller's own ``SchemaError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells.files import Action, HandleQuarantined, check_store, collect_garbage

from .conftest import MESSAGES


def _column(name: str, spec: str = "text", *, link: bool = False) -> dict[str, Any]:
    return {"name": name, "spec": spec, "link": link}


TABLES: dict[str, Any] = {
    "not-a-table": {"messages": 5},
    "no-columns": {"messages": {"columns": [], "indexes": {}}},
    "reserved-column": {"messages": {"columns": [_column("_cf_x")], "indexes": {}}},
    "link-without-suffix": {"messages": {"columns": [_column("a", link=True)], "indexes": {}}},
    "spec-of-two-columns": {"messages": {"columns": [_column("a", "int, b int")], "indexes": {}}},
    "reserved-table": {"sqlite_x": {"columns": [_column("a")], "indexes": {}}},
    "columns-not-a-list": {"messages": {"columns": "a", "indexes": {}}},
}


@sc.pattern
def uses(inp: sc.SqliteDb) -> dict[str, Any]:
    return {"db": inp, "query": inp.query("SELECT * FROM messages")}


def _space_path(store: Path) -> Path:
    (path,) = store.glob("space-*.sqlite")
    return path


def _stored(store: Path, db_id: str) -> tuple[bytes, int]:
    conn = apsw.Connection(str(_space_path(store)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        value = conn.execute("SELECT value FROM _cf_cells WHERE id = ?", (db_id,)).fetchone()[0]
        seq = conn.execute("SELECT max(seq) FROM _cf_log").fetchone()[0]
        return bytes(value), int(seq)
    finally:
        conn.close()


def _foreign_tables(store: Path, tables: Any) -> str:
    """A store whose database "chat" (space "demo", written once, linked to piece "u" of
    ``uses``) has a handle value with ``tables``, as another program would write it."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('a')")
        space.run(uses, key="u", inp=db)
        db_id = db.id
    value = msgspec.json.encode({"id": db_id, "tables": tables, "rev": 1})
    conn = apsw.Connection(str(_space_path(store)))
    try:
        conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (value, db_id))
    finally:
        conn.close()
    return db_id


def _quarantined(call: Any, db_id: str) -> None:
    with pytest.raises(HandleQuarantined) as info:
        call()
    assert info.value.db_id == db_id
    assert "its handle cell's tables do not declare tables" in str(info.value)
    # Every Quarantined carries what it documents (an `except sc.Quarantined as e:` reads it).
    assert info.value.path is None and "do not declare tables" in info.value.reason
    assert isinstance(info.value, sc.Quarantined)


@pytest.mark.parametrize("case", list(TABLES))
def test_r5_a_declared_database_whose_handle_tables_do_not_decode_is_quarantined(
    store: Path, case: str
) -> None:
    db_id = _foreign_tables(store, TABLES[case])
    before = _stored(store, db_id)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=MESSAGES)
        _quarantined(db.get, db_id)
        _quarantined(lambda: db.rev, db_id)
        _quarantined(lambda: db.read("SELECT * FROM messages"), db_id)
        with space.transact() as tx:
            _quarantined(lambda: db.exec("INSERT INTO messages (body) VALUES ('b')"), db_id)
            assert tx.is_empty  # refused at the call: the transaction stays usable
        with pytest.raises(sc.Quarantined), space.transact():
            db.drop()
        q = db.query("SELECT * FROM messages")
        rt.settle()
        assert isinstance(q.get().error, HandleQuarantined) and q.get().result is None
        # No plain cell writes it either: it is still a handle, one that quarantines (R5).
        with pytest.raises(sc.SqliteCellsError) as info, space.transact():
            rt.cell_from_link(db.link_str()).set({"id": db_id, "tables": {}, "rev": 0})
        assert isinstance(info.value, TypeError)
    assert _stored(store, db_id) == before  # never written over
    assert collect_garbage(store) == []  # its file is kept
    outcomes = check_store(store, repair=False)
    assert [(o.db_id, o.action) for o in outcomes] == [(db_id, Action.QUARANTINED)]


@pytest.mark.parametrize("case", list(TABLES))
def test_r5_a_pattern_input_linked_to_such_a_handle_is_quarantined(store: Path, case: str) -> None:
    db_id = _foreign_tables(store, TABLES[case])
    before = _stored(store, db_id)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        piece = space.run(uses, key="u")
        rt.settle()
        state = piece.outputs["query"].get()
        assert isinstance(state.error, HandleQuarantined), state
        assert state.error.db_id == db_id and state.result is None
        assert "its handle cell's tables do not declare tables" in str(state.error)
        linked = piece.outputs["db"]
        with space.transact() as tx:
            _quarantined(lambda: linked.exec("INSERT INTO messages (body) VALUES ('b')"), db_id)
            assert tx.is_empty
        _quarantined(lambda: linked.read("SELECT * FROM messages"), db_id)
    assert _stored(store, db_id) == before

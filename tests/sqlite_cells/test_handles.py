"""R5: a database handle is not a writable cell; R4/R7 for handles and links read back."""

from __future__ import annotations

from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells._runtime import Space
from sqlite_cells.files import collect_garbage

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


def test_r5_a_handle_overwritten_through_a_plain_cell_quarantines(
    space: Space, db: sc.SqliteDb
) -> None:
    with space.transact():
        db.exec("INSERT INTO messages (body) VALUES ('a')")
    impostor = sc.Cell(space, db.id)  # the same id reached as a plain cell
    with space.transact():
        impostor.set({"something": "else"})
    with pytest.raises(sc.Quarantined, match="not a database handle"):
        db.read("SELECT * FROM messages")
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

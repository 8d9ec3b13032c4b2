"""A pattern that builds in other spaces than its piece's (R1, R2, R71, R74): a database (or a
nested piece, and so its databases) of one name built in two spaces gets two ids, so two files,
never one file both spaces write; what a pattern builds in its piece's own space keeps the id
it always had, so a store written before binds the same ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import derive_id

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@sc.pattern
def two_spaces(a: sc.Cell, b: sc.Cell) -> tuple[sc.SqliteDb, sc.SqliteDb, sc.SqliteDb]:
    return (
        a.space.sqlite_database("notes", tables=TABLES),
        b.space.sqlite_database("notes", tables=TABLES),
        a.space.sqlite_database(tables=TABLES),  # unnamed: by its position
    )


@sc.pattern
def child(where: sc.Cell) -> sc.SqliteDb:
    return where.space.sqlite_database(tables=TABLES)  # unnamed, in the child's own space


@sc.pattern
def parent(a: sc.Cell, b: sc.Cell) -> tuple[sc.Piece, sc.Piece]:
    return a.space.run(child, key="c", where=a), b.space.run(child, key="c", where=b)


def _rows(db: sc.SqliteDb) -> list[str]:
    return [row["v"] for row in db.read("SELECT v FROM t ORDER BY id")]


def test_a_database_of_one_name_in_two_spaces_gets_two_files(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        one, two = rt.space("one"), rt.space("two")
        piece = one.run(two_spaces, key="k", a=one.cell("a"), b=two.cell("b"))
        mine, other, unnamed = piece.outputs
        assert mine.id != other.id and mine.path != other.path
        # Built in the piece's own space: the id it always had.
        assert mine.id == derive_id("sqlite", "piece", piece.id, "notes")
        assert unnamed.id == derive_id("sqlite", "piece", piece.id, "#", 0)
        with one.transact():
            mine.exec("INSERT INTO t (v) VALUES ('one')")
        with two.transact():
            other.exec("INSERT INTO t (v) VALUES ('two')")
        assert _rows(mine) == ["one"] and _rows(other) == ["two"]
    with sc.Runtime(tmp_path) as rt:  # the same program again: the same ids, in sync
        one, two = rt.space("one"), rt.space("two")
        again = one.run(two_spaces, key="k", a=one.cell("a"), b=two.cell("b")).outputs
        assert [db.id for db in again] == [mine.id, other.id, unnamed.id]
        assert _rows(again[0]) == ["one"] and _rows(again[1]) == ["two"]
    assert len(list(tmp_path.glob("cell-*.sqlite"))) == 2
    assert not (tmp_path / "quarantine").exists()


def test_a_nested_piece_of_one_key_in_two_spaces_gets_its_own_databases(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        one, two = rt.space("one"), rt.space("two")
        top = one.run(parent, key="p", a=one.cell("a"), b=two.cell("b"))
        first, second = top.outputs
        assert first.id != second.id
        db_one, db_two = first.outputs, second.outputs
        assert db_one.path != db_two.path
        with two.transact():
            db_two.exec("INSERT INTO t (v) VALUES ('two')")
        assert _rows(db_one) == [] and _rows(db_two) == ["two"]


@sc.pattern
def uses(db: sc.SqliteDb) -> sc.SqliteDb:
    return db


def test_a_database_id_in_another_space_is_no_database_input(tmp_path: Path) -> None:
    """R3: a database is its handle in its own space; a cell of another space that carries
    its id (through a hand-made link) holds no handle, so it is refused as a database input
    (nothing recorded), never taken for the database."""
    with sc.Runtime(tmp_path) as rt:
        one, two = rt.space("one"), rt.space("two")
        real = one.sqlite_database("real", tables=TABLES)
        with one.transact():
            real.exec("INSERT INTO t (v) VALUES ('one')")
        fake = rt.cell_from_link(
            json.dumps({"/": {"link@1": {"id": real.id, "space": "two", "scope": "space"}}})
        )
        assert fake.id == real.id and fake.get() is None
        with pytest.raises(sc.SqliteCellsError, match="holds no database handle") as info:
            two.run(uses, key="k", db=fake)
        assert isinstance(info.value, ValueError | TypeError)
        assert len(list(tmp_path.glob("space-*.sqlite"))) == 1  # space 'two' got no file
        piece = one.run(uses, key="k", db=real)  # the database itself, in its own space
        assert piece.outputs.read("SELECT v FROM t") == [{"v": "one"}]

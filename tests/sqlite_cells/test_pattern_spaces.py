"""A pattern that builds in other spaces than its piece's (R1, R2, R3): an entity's id comes
from its piece and its name (or position) whatever space it is built in, so a program binds
the same ids at every run, a store written before included; a database's file is named by its
id, so a database of one cause in two spaces — one file two spaces would write — is refused
where the second is declared, nothing declared, instead of sharing the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import derive_id

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@sc.pattern
def elsewhere(a: sc.Cell) -> sc.SqliteDb:
    return a.space.sqlite_database("notes", tables=TABLES)


@sc.pattern
def two_spaces(a: sc.Cell, b: sc.Cell) -> tuple[sc.SqliteDb, sc.SqliteDb]:
    return (
        a.space.sqlite_database("notes", tables=TABLES),
        b.space.sqlite_database("notes", tables=TABLES),
    )


@sc.pattern
def child(where: sc.Cell) -> sc.SqliteDb:
    return where.space.sqlite_database(tables=TABLES)  # unnamed, in the child's own space


@sc.pattern
def parent(a: sc.Cell, b: sc.Cell) -> tuple[sc.Piece, sc.Piece]:
    return a.space.run(child, key="c", where=a), b.space.run(child, key="c", where=b)


def _rows(db: sc.SqliteDb) -> list[str]:
    return [row["v"] for row in db.read("SELECT v FROM t ORDER BY id")]


def test_a_database_built_in_another_space_keeps_its_id(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        home, audit = rt.space("home"), rt.space("audit")
        piece = home.run(elsewhere, key="k", a=audit.cell("a"))
        db = piece.outputs
        assert db.id == derive_id("sqlite", "piece", piece.id, "notes")  # as stores hold it
        with audit.transact():
            db.exec("INSERT INTO t (v) VALUES ('kept')")
    with sc.Runtime(tmp_path) as rt:  # the same program again: the same database, its rows
        home, audit = rt.space("home"), rt.space("audit")
        again = home.run(elsewhere, key="k", a=audit.cell("a")).outputs
        assert again.id == db.id and _rows(again) == ["kept"]


def test_a_database_of_one_cause_in_two_spaces_is_refused(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        one, two = rt.space("one"), rt.space("two")
        with pytest.raises(sc.DeclarationError, match="already a database of space 'one'") as info:
            one.run(two_spaces, key="k", a=one.cell("a"), b=two.cell("b"))
        assert isinstance(info.value, ValueError)
        assert "give the one in the other space another name" in str(info.value)
        with pytest.raises(sc.DeclarationError, match="already a database of space 'one'"):
            one.run(parent, key="p", a=one.cell("a"), b=two.cell("b"))
    assert not list(tmp_path.glob("cell-*.sqlite"))  # nothing was written


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
        # Linked later, it is no database either: as any cell holding no handle (it was an
        # error about *setting* a handle, raised for the database of space 'one').
        later = two.run(uses, key="later", db=None)
        with pytest.raises(sc.SqliteCellsError, match="holds no database handle"):
            later.inputs["db"].link(fake)  # refused at the call, as by run
        with two.transact():
            later.inputs["db"].set(fake)  # the same link, as the input's value
        with pytest.raises(sc.SourceError, match="does not hold a database handle"):
            later.outputs.read("SELECT v FROM t")


@sc.pattern
def home_of(where: sc.Cell) -> sc.SqliteDb:
    return where.space.sqlite_database(tables=TABLES)


@sc.handler
def _add(v: str, *, db: sc.SqliteDb) -> None:
    db.exec("INSERT INTO t (v) VALUES (?)", [v])


def test_one_database_id_in_two_spaces_of_two_runtimes_never_serves_or_undoes_the_other(
    tmp_path: Path,
) -> None:
    """R71, R2: two runtimes run one piece with its input in two spaces: one database id, one
    file. Space B's first write made the file; space A's runtime, which had read the database
    while it had no file, read B's row as its own, and its next write took B's commit for its
    own commit left in flight and undid it — B's committed row lost. The file records the space
    whose database it is: A's reads and writes are ``Quarantined`` naming both spaces, and B's
    row stays."""
    with sc.Runtime(tmp_path) as first, sc.Runtime(tmp_path) as second:
        in_a = first.space("A").run(home_of, key="k", where=first.space("A").cell("n")).outputs
        assert in_a.read("SELECT v FROM t") == []  # (no file yet: the declared tables, R41)
        home = second.space("A")
        in_b = home.run(home_of, key="k", where=second.space("B").cell("n")).outputs
        assert (in_a.id, in_a.path) == (in_b.id, in_b.path)
        assert (in_a.space.id, in_b.space.id) == ("A", "B")
        _add("written in B", db=in_b)
        with pytest.raises(sc.Quarantined, match="holds the commits of space 'B'") as info:
            in_a.read("SELECT v FROM t")
        assert "another name" in str(info.value)
        with pytest.raises(sc.Quarantined):
            _add("written in A", db=in_a)
        assert _rows(in_b) == ["written in B"]
    with sc.Runtime(tmp_path) as again:
        piece = again.space("A").run(home_of, key="k", where=again.space("B").cell("n"))
        assert _rows(piece.outputs) == ["written in B"]


def test_a_file_rebuilt_from_its_space_s_log_still_records_its_space(tmp_path: Path) -> None:
    """R71: a database file lost and rebuilt from its space's log records that space again, as
    its first write did. Before, the rebuilt file recorded none, and another space declaring the
    same database id (with a commit of its own) took A's committed row for its own commit left
    in flight and undid it."""
    with sc.Runtime(tmp_path) as first:
        in_a = first.space("P").run(home_of, key="k", where=first.space("A").cell("n")).outputs
        _add("written in A", db=in_a)
        path = in_a.path
    path.unlink()
    with sc.Runtime(tmp_path) as rebuilt:
        in_a = rebuilt.space("P").run(home_of, key="k", where=rebuilt.space("A").cell("n")).outputs
        assert _rows(in_a) == ["written in A"]  # replayed from the log
    with sc.Runtime(tmp_path) as second:
        with second.space("B").transact():
            second.space("B").cell("n").set(1)
        in_b = second.space("P").run(home_of, key="k", where=second.space("B").cell("n")).outputs
        with pytest.raises(sc.Quarantined, match="holds the commits of space 'A'"):
            in_b.read("SELECT v FROM t")
    with sc.Runtime(tmp_path) as again:
        piece = again.space("P").run(home_of, key="k", where=again.space("A").cell("n"))
        assert _rows(piece.outputs) == ["written in A"]


def test_one_database_id_met_by_a_space_with_no_file_yet_names_both_spaces(
    tmp_path: Path,
) -> None:
    """The same, run one after the other, the second space having no file yet: it was
    quarantined as "ahead of a lost space", advice that points at restoring a space nothing
    lost; it names the other space and the name clash, as when it has a file."""
    with sc.Runtime(tmp_path) as first:
        in_a = first.space("P").run(home_of, key="k", where=first.space("A").cell("n")).outputs
        _add("written in A", db=in_a)
    with sc.Runtime(tmp_path) as second:
        in_b = second.space("P").run(home_of, key="k", where=second.space("B").cell("n")).outputs
        with pytest.raises(sc.Quarantined, match="holds the commits of space 'A'") as info:
            in_b.read("SELECT v FROM t")
        assert "lost space" not in str(info.value) and "another name" in str(info.value)
    with sc.Runtime(tmp_path) as again:
        piece = again.space("P").run(home_of, key="k", where=again.space("A").cell("n"))
        assert _rows(piece.outputs) == ["written in A"]

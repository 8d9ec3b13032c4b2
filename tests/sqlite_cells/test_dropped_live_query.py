"""A live query of a database that is then dropped (decisions.md, "Drop"; R71, Errors): it
reports the error every use of a dropped database gives, and the database is never reconciled
against its drop (nor called quarantined)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.files import DatabaseDropped

from ..conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@pytest.mark.parametrize("same_runtime", [True, False])
def test_a_live_query_of_a_dropped_database_says_it_was_dropped(
    store: Path, same_runtime: bool, caplog: pytest.LogCaptureFixture
) -> None:
    first = sc.Runtime(store, poll_interval=0.01)
    second = first if same_runtime else sc.Runtime(store, poll_interval=0.01)
    try:
        space = first.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        other = second.space("demo").sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (?)", ["a"])
        query = other.query("SELECT v FROM t")
        second.settle(timeout=10)
        assert query.get().result == [{"v": "a"}]
        with caplog.at_level(logging.WARNING, logger="sqlite_cells"):
            with space.transact():
                db.drop()
            deadline = time.monotonic() + 10
            while query.get().error is None and time.monotonic() < deadline:
                time.sleep(0.01)
            second.settle(timeout=10)
        error = query.get().error
        assert type(error) is DatabaseDropped, error
        dropped = f"database {db.id} was dropped: declare a new one (another name) instead"
        assert str(error) == dropped
        with pytest.raises(sc.SqliteCellsError) as read:
            other.read("SELECT v FROM t")
        assert str(read.value) == str(error)
        assert not [r for r in caplog.records if "quarantined" in r.getMessage()]
        assert not (store / "quarantine").exists()
    finally:
        first.close()
        if not same_runtime:
            second.close()


def test_a_write_or_read_of_a_database_another_runtime_dropped_says_it_was_dropped(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A runtime that declared the database before another one dropped it compared the file
    with its space's log at its next use, took the drop for a commit the file lacked, failed to
    replay it ("ValidationError: Expected `object`, got `null`") and quarantined an intact file;
    `check` said so too. A drop writes nothing into the file: the file is in step with the last
    commit that wrote it, and every use says the database was dropped."""
    with sc.Runtime(store) as a, sc.Runtime(store) as b:
        dropping = a.space("demo").sqlite_database("d", tables=TABLES)
        with a.space("demo").transact():
            dropping.exec("INSERT INTO t (v) VALUES ('a')")
        space = b.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        assert db.rev == 1
        with a.space("demo").transact():
            dropping.drop()
        with caplog.at_level(logging.WARNING, logger="sqlite_cells"):
            with pytest.raises(DatabaseDropped), space.transact():
                db.exec("INSERT INTO t (v) VALUES ('b')")
            with pytest.raises(DatabaseDropped):
                db.read("SELECT v FROM t")
        assert not [r for r in caplog.records if "quarantined" in r.getMessage()]
    done = run_cli("check", str(store))
    assert done.returncode == 0, done.stdout
    assert "quarantined" not in done.stdout
    assert not (store / "quarantine").exists()


def test_a_first_write_recorded_before_another_runtime_dropped_the_database_says_dropped(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for a database never written nor read here, whose first write was recorded
    before the drop committed: comparing the new file with the log at that commit met the drop
    where it looked for rows a replay would delete ("its op … has no readable body"), and
    quarantined the database, advising to restore an intact space file. The commit is refused
    as dropped, as a later write is."""
    never = 1_000_000  # seconds: only the commit itself may learn of the drop
    with sc.Runtime(store, poll_interval=never) as a, sc.Runtime(store) as b:
        space = a.space("demo")
        space.file.wake = lambda: None  # (nor may a peer's wake-up)
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            space.cell("x").set(1)  # the space has a file; the database none
        dropping = b.space("demo").sqlite_database("d", tables=TABLES)

        def drop() -> None:  # (in a thread of its own: this one's transaction is open)
            with b.space("demo").transact():
                dropping.drop()

        with caplog.at_level(logging.WARNING, logger="sqlite_cells"):
            with pytest.raises(DatabaseDropped, match="dropped by a commit made after"):  # noqa: SIM117 - the drop commits inside the block
                with space.transact():
                    db.exec("INSERT INTO t (v) VALUES ('first')")
                    other = threading.Thread(target=drop)
                    other.start()
                    other.join()
            with pytest.raises(DatabaseDropped):
                db.read("SELECT v FROM t")
        assert not [r for r in caplog.records if "quarantined" in r.getMessage()]
    done = run_cli("check", str(store))
    assert done.returncode == 0, done.stdout
    assert not (store / "quarantine").exists()


def test_a_dropped_database_a_pattern_built_says_what_to_change(store: Path) -> None:
    """A database a pattern builds has no name where it is declared (its id comes from the
    piece): dropped, every run of the piece failed with "declare a new one (another name)
    instead", advice its author could not follow. It says that the piece's id and the name (or
    place) in the body name it, and what to change: a name not used before, or another key."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")

        @sc.pattern
        def notes(title: str) -> tuple[sc.SqliteDb, sc.Query]:
            db = space.sqlite_database(tables=TABLES)
            return db, db.query("SELECT v FROM t")

        db, _ = space.run(notes, key="k", title="x").outputs
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
        with space.transact():
            db.drop()
        with pytest.raises(DatabaseDropped) as info:
            space.run(notes, key="k")
        said = str(info.value)
        assert said.startswith(f"database {db.id} was dropped: declare a new one")
        assert "give it a name not used before there, or run the piece with another key" in said
        other, query = space.run(notes, key="another").outputs  # what the advice says works
        assert rt.settle(timeout=10) and query.get().result == [] and other.id != db.id
        named = space.sqlite_database("named", tables=TABLES)
        with space.transact():
            named.exec("INSERT INTO t (v) VALUES ('a')")
        with space.transact():
            named.drop()
        with pytest.raises(DatabaseDropped) as info:
            named.read("SELECT v FROM t")
        assert str(info.value).endswith("declare a new one (another name) instead")


def test_a_dropped_database_linked_into_a_piece_of_another_space_says_to_link_another(
    store: Path,
) -> None:
    """A database of space ``a`` linked into a piece's database input in space ``b``, then
    dropped: after a restart the piece's query met the handle through the link alone, and said
    the advice for a database the pattern builds ("running the piece again declares the dropped
    one … run the piece with another key"), which this piece does not. It says to link another
    database where the dropped one was linked."""

    @sc.pattern
    def viewer(db: sc.SqliteDb) -> sc.Query:
        return db.query("SELECT v FROM t")

    with sc.Runtime(store) as rt:
        db = rt.space("a").sqlite_database("d", tables=TABLES)
        with rt.space("a").transact():
            db.exec("INSERT INTO t (v) VALUES ('x')")
        piece = rt.space("b").run(viewer, key="k")
        piece.inputs["db"].link(db)
        assert rt.settle(timeout=10) and piece.outputs.get().result == [{"v": "x"}]
        with rt.space("a").transact():
            db.drop()
    with sc.Runtime(store) as rt:
        query = rt.space("b").run(viewer, key="k").outputs
        assert rt.settle(timeout=10)
        error = query.get().error
        assert isinstance(error, DatabaseDropped)
        said = str(error)
        assert said.startswith(f"database {db.id} was dropped: declare a new one")
        assert "a database a pattern builds" not in said
        assert "link the new one where this one was linked" in said

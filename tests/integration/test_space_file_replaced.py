"""A space file replaced under a running runtime is read no more (R73, R53): the poller finds
another file at the path, and from then on the runtime's reads of that space — cells, derived
cells, database reads and live queries — are `StoreChanged`, its subscribers are told that error
instead of keeping the replaced file's values as current, and `settle()` returns. A file moved
away and put back is the same file: it is read on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import FORMAT_VERSION

TABLES = {"t": sc.table(id="integer primary key", v="integer")}


def _filled(store: Path) -> Path:
    """A store whose space "demo" holds c=3 and three rows in database "db"; its space file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("db", tables=TABLES)
        c = space.cell("c", default=0)
        for i in (1, 2, 3):
            with space.transact():
                c.set(i)
                db.exec("INSERT INTO t (v) VALUES (?)", [i])
        return Path(space.file.path)


def _move(path: Path, folder: Path, *, back: bool = False) -> None:
    """Move the file at ``path`` and its -wal and -shm into ``folder``, or ``back`` from it."""
    for suffix in ("", "-wal", "-shm"):
        here, there = Path(f"{path}{suffix}"), folder / f"{path.name}{suffix}"
        source, target = (there, here) if back else (here, there)
        if source.exists():
            shutil.move(source, target)


def test_a_runtime_that_only_reads_stops_serving_a_space_file_replaced_under_it(
    store: Path, tmp_path: Path
) -> None:
    space_path = _filled(store)
    reader = sc.Runtime(store)
    try:
        space = reader.space("demo")
        c = space.cell("c", default=0)
        db = space.sqlite_database("db", tables=TABLES)
        doubled = sc.derive(c, lambda v: v * 2)
        q = db.query("SELECT count(*) AS n FROM t")
        values: list[object] = []
        errors: list[Exception] = []
        c.observe().subscribe(values.append, errors.append)
        assert reader.settle(timeout=30)
        assert (c.get(), doubled.get(), q.get().result) == (3, 6, [{"n": 3}])

        # The space's and the database's files are moved out of the store; another runtime
        # starts the space afresh: a new file at the same path.
        aside = tmp_path / "aside"
        aside.mkdir()
        _move(space_path, aside)
        _move(Path(db.path), aside)
        with sc.Runtime(store) as writer:
            theirs = writer.space("demo").cell("c", default=0)
            with writer.space("demo").transact():
                theirs.set(777)

            assert reader.settle(timeout=30)  # (it catches up first: it finds the new file)
            for read in (c.get, doubled.get, lambda: db.read("SELECT count(*) AS n FROM t")):
                with pytest.raises(sc.StoreChanged) as changed:
                    read()
                assert changed.value.path == str(space_path)
                assert "close this runtime and open a new one" in str(changed.value)
            assert values == [3]  # never told a value of the replaced file as a new one
            assert len(errors) == 1 and isinstance(errors[0], sc.StoreChanged)
            state = q.get()
            assert state.result is None and isinstance(state.error, sc.StoreChanged)
            with pytest.raises(sc.StoreChanged), space.transact():
                c.set(4)

            # The new file is left as the other runtime wrote it.
            assert theirs.get() == 777
    finally:
        reader.close()
    with sc.Runtime(store) as fresh:
        assert fresh.space("demo").cell("c", default=0).get() == 777


def test_a_space_file_moved_away_and_put_back_under_a_reading_runtime_is_read_on(
    store: Path, tmp_path: Path
) -> None:
    space_path = _filled(store)
    with sc.Runtime(store) as reader, sc.Runtime(store) as writer:
        c = reader.space("demo").cell("c", default=0)
        assert c.get() == 3
        aside = tmp_path / "aside"
        aside.mkdir()
        _move(space_path, aside)
        assert reader.settle(timeout=30)
        assert c.get() == 3  # nothing at the path: the file may come back
        _move(space_path, aside, back=True)
        assert os.path.exists(space_path)
        theirs = writer.space("demo").cell("c", default=0)
        with writer.space("demo").transact():
            theirs.set(theirs.get() + 1)
        assert reader.settle(timeout=30)
        assert c.get() == 4  # the other runtime's commit, seen (R53)
        with reader.space("demo").transact():
            c.set(5)
        assert writer.settle(timeout=30)
        assert theirs.get() == 5


def test_a_space_file_upgraded_in_place_to_a_newer_format_refuses_the_next_commit(
    store: Path,
) -> None:
    """R73: another program (a newer sqlite-cells) raised the space file's store format in
    place (same inode) while a runtime had it open; the runtime went on committing into a
    file whose format it cannot read. Each next commit fails naming both formats, and commits
    nothing: the log and the cell's row stay as they were."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c", default=0)
        with space.transact():
            c.set(1)
        path = Path(space.file.path)
        inode = path.stat().st_ino
        conn = apsw.Connection(str(path))
        conn.setbusytimeout(5000)
        newer = FORMAT_VERSION + 1
        conn.execute("UPDATE _cf_meta SET value = ? WHERE key = 'format'", (newer,))
        before = conn.execute("SELECT max(seq), count(*) FROM _cf_log").fetchall()
        for _ in range(2):
            with pytest.raises(sc.DatabaseError) as refused, space.transact():
                c.set(2)
            message = str(refused.value)
            assert f"{path} is in store format {newer}" in message
            assert f"this sqlite-cells reads format {FORMAT_VERSION}" in message
        assert conn.execute("SELECT max(seq), count(*) FROM _cf_log").fetchall() == before
        assert path.stat().st_ino == inode
        conn.close()


def test_a_store_moved_under_a_runtime_says_where_its_spaces_went(tmp_path: Path) -> None:
    """R73: a store folder renamed under a running runtime made its next commit say "the file of
    space 's' was deleted …: close this runtime and open a new one" — and a new runtime at that
    path starts the space empty, while its file is where it was moved. It says the file was
    deleted or moved, to put it back or open a runtime where it is now; nothing is committed."""
    store, moved = tmp_path / "store", tmp_path / "moved"
    rt = sc.Runtime(store)
    try:
        space = rt.space("s")
        cell = space.cell("c", default=0)
        with space.transact():
            cell.set(1)
        store.rename(moved)
        with pytest.raises(sc.StoreChanged) as raised, space.transact():
            cell.set(2)
    finally:
        rt.close()
    message = str(raised.value)
    assert "was deleted or moved away" in message and "nothing was committed" in message
    assert "put it back at its path" in message and "starts the space empty" in message
    assert not store.exists()
    with sc.Runtime(moved) as again:
        assert again.space("s").cell("c").get() == 1

"""Another program's SQLite file under a space file's name (SPEC Errors, §6): `inspect`,
`check` (with and without `--repair`) and `gc` report it as a space file that cannot be read,
say what to do, and inspect and check the rest of the store all the same; the file is left as
it was found. A damaged database file is called damaged, not a question of permissions, and a
directory at a database file's path is named, with a remedy that works; a database ahead of its
space by more than one commit is said to be quarantined, not reconciled. A space file whose own
tables another program changed (a column gone) is damaged, for the commands and the runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli

FOREIGN = "space-" + "0" * 32 + ".sqlite"


@pytest.fixture
def with_foreign(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")
    conn = apsw.Connection(str(store / FOREIGN))
    conn.execute("CREATE TABLE foo (x)")
    conn.close()
    return store


@pytest.mark.parametrize(
    "args", [["inspect"], ["check"], ["check", "--repair"], ["gc"], ["gc", "--yes"]]
)
def test_a_foreign_file_named_as_a_space_file_is_reported(
    with_foreign: Path, args: list[str]
) -> None:
    before = (with_foreign / FOREIGN).read_bytes()
    done = run_cli(*args, "--store", str(with_foreign))
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    assert f"{FOREIGN}: DAMAGED" in done.stdout or f"space file {FOREIGN}" in done.stdout
    assert "not a space file: an SQLite database without the table(s)" in done.stdout
    assert "move it and its -wal and -shm out of the store" in done.stdout
    if args[0] == "check":
        assert "watermark 1, space seq 1: in sync" in done.stdout  # the rest is checked
    assert (with_foreign / FOREIGN).read_bytes() == before


def test_inspect_lists_the_other_spaces_beside_a_foreign_file(with_foreign: Path) -> None:
    done = run_cli("inspect", "--store", str(with_foreign), "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert [space["id"] for space in data["spaces"]] == ["demo"]
    assert [d["file"] for d in data["damaged_space_files"]] == [FOREIGN]


def _one_database(store: Path) -> Path:
    """A store with one written database; its file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")
    (db_file,) = store.glob("cell-*.sqlite")
    return db_file


def test_a_damaged_database_file_is_called_damaged_not_a_permission_problem(
    store: Path,
) -> None:
    db_file = _one_database(store)
    data = bytearray(db_file.read_bytes())
    data[100:4000] = b"\xde" * 3900  # the schema page overwritten
    db_file.write_bytes(bytes(data))
    done = run_cli("tables", "--store", str(store))
    assert done.returncode == 1
    # Left out as `check` finds it (R71: its rows are not served), the rest still listed.
    # The watermark as `check` reports it: this file's cannot be read (it said "seq 0").
    assert f"(file {db_file.name}): damaged (watermark unreadable, space seq 1" in done.stderr
    assert "`sqlite-cells check` says what it finds and what to do" in done.stderr
    assert "read and write the store's directory" not in done.stderr


def test_a_directory_at_a_database_files_path_is_named_with_a_remedy_that_works(
    store: Path,
) -> None:
    db_file = _one_database(store)
    db_file.unlink()
    db_file.mkdir()
    done = run_cli("inspect", "--store", str(store))
    assert done.returncode == 1
    assert "NOT A REGULAR FILE where the database file belongs (move it out)" in done.stdout
    assert f"{db_file.name} is not a regular file" in done.stdout
    assert "MISSING" not in done.stdout
    assert "move it out of the store, then `sqlite-cells check --repair` rebuilds" in done.stdout
    db_file.rmdir()  # as the finding says: then --repair rebuilds it
    done = run_cli("check", "--repair", "--store", str(store))
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_cli("query", str(store), "demo", "chat", "SELECT body FROM m", "--json")
    assert json.loads(done.stdout)["rows"] == [{"body": "one"}]


def test_a_database_ahead_by_two_commits_is_not_said_to_be_reconciled(tmp_path: Path) -> None:
    store, old = tmp_path / "store", tmp_path / "old"
    tables = {"m": sc.table(body="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")
    (space_file,) = store.glob("space-*.sqlite")
    old.mkdir()
    shutil.copy(space_file, old / space_file.name)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        for _ in range(2):
            with space.transact():
                db.exec("INSERT INTO m (body) VALUES ('more')")
    shutil.copy(old / space_file.name, space_file)  # the space file lost two commits
    done = run_cli("inspect", "--store", str(store))
    assert done.returncode == 1
    assert "a runtime reconciles it" not in done.stdout
    assert "ahead by more than the one commit a crash leaves in flight" in done.stdout
    assert "it is quarantined (R71); `sqlite-cells check` says why and what to do" in done.stdout


def test_tables_lists_no_rows_of_a_database_its_space_disagrees_with(store: Path) -> None:
    """R71: divergent rows are never served — `tables` (row counts) leaves out a database that
    `check` finds behind, ahead, damaged or quarantined, as `query` reads nothing of it, and
    says so (exit 1); the others are still listed."""
    db_file = _one_database(store)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        other = space.sqlite_database("other", tables={"o": sc.table(x="integer")})
        with space.transact():
            other.exec("INSERT INTO o (x) VALUES (1)")
    older = db_file.read_bytes()
    with sc.Runtime(store) as rt:  # one more commit to "chat", then its file put back as before
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            chat.exec("INSERT INTO m (body) VALUES ('two')")
    for companion in (db_file.with_name(db_file.name + "-wal"),):
        companion.unlink(missing_ok=True)
    db_file.write_bytes(older)
    done = run_cli("tables", "--store", str(store), "--json")
    assert done.returncode == 1, done.stderr
    assert [(r["table"], r["rows"]) for r in json.loads(done.stdout)] == [("o", 1)]
    assert f"(file {db_file.name}): behind (watermark seq 1, space seq 3" in done.stderr
    assert run_cli("check", "--store", str(store)).returncode == 1


def test_tables_says_a_written_database_whose_file_is_missing_is_left_out(store: Path) -> None:
    """R71, §6: a database its space wrote whose file was then deleted was left out of `tables`
    without a word (exit 0; "no database of this store has been written yet" when it was the
    only one): a missing file was taken for a database never written. It is behind (no file),
    said on stderr, exit 1 — as `inspect` and `check` say it."""
    db_file = _one_database(store)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.sqlite_database("never", tables={"n": sc.table(x="integer")})  # declared only
        with space.transact():
            space.cell("c").set(1)
    db_file.unlink()
    done = run_cli("tables", "--store", str(store))
    assert done.returncode == 1, done.stdout
    assert "no database of this store has been written yet" not in done.stdout
    assert f"(file {db_file.name}): behind (watermark seq 0, space seq 1: no file)" in (done.stderr)
    assert "never" not in done.stderr  # a database never written is no finding


@pytest.mark.parametrize("command", ["cells", "tables"])
def test_a_directory_where_a_space_file_belongs_fails_the_listings_naming_it(
    store: Path, command: str
) -> None:
    """Errors: `cells` and `tables` report a space file they cannot read, naming it, as
    `inspect` does, and list the rest; a directory there was skipped in silence (exit 0) while
    `check` reported it."""
    _one_database(store)
    (store / FOREIGN).mkdir()
    done = run_cli(command, "--store", str(store))
    assert done.returncode == 1
    assert f"space file {store / FOREIGN} is damaged (a directory stands where a space file" in (
        done.stderr
    )
    assert "demo" in done.stdout
    assert run_cli("check", "--store", str(store)).returncode == 1


def test_query_of_a_space_whose_file_is_a_directory_names_it(store: Path) -> None:
    """Errors: `query` of a space whose space file's path holds a directory said "no space"
    (the listings name the directory)."""
    _one_database(store)
    (path,) = store.glob("space-*.sqlite")
    for companion in store.glob("space-*.sqlite*"):
        companion.unlink()
    path.mkdir()
    done = run_cli("query", "--store", str(store), "demo", "chat", "SELECT 1")
    assert done.returncode == 1
    assert (
        f"cannot read {path}: a directory stands where the space file of space 'demo' belongs"
        in done.stderr
    )
    assert "no space" not in done.stderr


def _space_rebuilt(store: Path, sql: str) -> Path:
    """A store of one space, cell ``x`` = 1, whose space file another program then changed
    with ``sql``; the space file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("x").set(1)
    (path,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(path))
    conn.execute(sql)
    conn.close()
    return path


def _space_without_rev(store: Path) -> Path:
    """A store whose one space file's ``_cf_cells`` lost its ``rev`` column (rebuilt by another
    program without it); the space file."""
    return _space_rebuilt(
        store,
        "CREATE TABLE t AS SELECT id, value FROM _cf_cells; DROP TABLE _cf_cells; "
        "ALTER TABLE t RENAME TO _cf_cells",
    )


@pytest.mark.parametrize("args", [["inspect"], ["check"], ["gc"]])
def test_a_space_file_whose_tables_lack_a_column_is_reported_damaged(
    store: Path, args: list[str]
) -> None:
    path = _space_without_rev(store)
    before = path.read_bytes()
    done = run_cli(*args, "--store", str(store))
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    assert "its own tables lack the column(s) _cf_cells.rev" in done.stdout
    assert "restore it (with its -wal, if any) from a backup" in done.stdout
    assert path.read_bytes() == before


@pytest.mark.parametrize("args", [["cells", "--space", "demo"], ["tables"]])
def test_listing_a_space_file_whose_tables_lack_a_column_says_so(
    store: Path, args: list[str]
) -> None:
    _space_without_rev(store)
    done = run_cli(*args, "--store", str(store))
    assert done.returncode == 1
    assert "its tables are not as this program writes them (no such column: rev)" in done.stderr
    assert "sqlite-cells check` says which files are damaged" in done.stderr
    assert "Check that you may read" not in done.stderr


def test_the_runtime_refuses_a_space_file_whose_tables_lack_a_column(store: Path) -> None:
    path = _space_without_rev(store)
    before = path.read_bytes()
    rt = sc.Runtime(store)
    try:
        with pytest.raises(sc.DatabaseError) as raised:
            rt.space("demo").cell("x").get()
    finally:
        rt.close()
    message = str(raised.value)
    assert (
        f"space file {path} is damaged: its own tables lack the column(s) _cf_cells.rev" in message
    )
    assert "nothing was written to it" in message and "from a backup" in message
    assert path.read_bytes() == before


def test_a_space_file_whose_tables_another_program_renamed_in_another_case_is_used(
    store: Path,
) -> None:
    """SQLite's names are ASCII case-insensitive: `_CF_CELLS (ID, VALUE, REV)` is the table
    every space file holds, and the file is no damaged one."""
    _space_rebuilt(
        store,
        'CREATE TABLE n ("ID" TEXT PRIMARY KEY, "VALUE" BLOB NOT NULL, "REV" INTEGER NOT NULL) '
        "WITHOUT ROWID; INSERT INTO n SELECT * FROM _cf_cells; DROP TABLE _cf_cells; "
        'ALTER TABLE n RENAME TO "_CF_CELLS"',
    )
    assert run_cli("check", "--store", str(store)).returncode == 0
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert space.cell("x").get() == 1
        with space.transact():
            space.cell("x").set(2)
        assert space.cell("x").get() == 2


def _spaces_swapped(store: Path) -> tuple[Path, Path]:
    """A store of spaces ``demo`` (a database ``chat`` with one row) and ``s2`` whose two space
    files another program swapped; (the file now at demo's name, holding s2's space; the file
    now at s2's name, holding demo's)."""
    with sc.Runtime(store) as rt:
        demo = rt.space("demo")
        db = demo.sqlite_database("chat", tables={"m": sc.table(x="text")})
        with demo.transact():
            db.exec("INSERT INTO m (x) VALUES ('hello')")
        s2 = rt.space("s2")
        with s2.transact():
            s2.cell("a").set(5)
        demo_name, s2_name = Path(demo.file.path), Path(s2.file.path)
    aside = store / "aside"
    demo_name.rename(aside)
    s2_name.rename(demo_name)
    aside.rename(s2_name)
    return demo_name, s2_name


@pytest.mark.parametrize(
    "args",
    [
        ["query", "demo", "chat", "SELECT x FROM m"],
        ["query", "s2", "chat", "SELECT 1"],
        ["cells"],
        ["tables"],
    ],
    ids=["query-demo", "query-s2", "cells", "tables"],
)
def test_reading_a_space_file_that_belongs_to_another_space_is_refused_as_check_refuses_it(
    store: Path, args: list[str]
) -> None:
    """A space file swapped with another space's (each records the space it belongs to) is
    damaged for `check`, `inspect`, `gc` and the runtime; `query` and `cells` read it all the
    same and served the other space's rows and cells as this one's (exit 0)."""
    at_demo, at_s2 = _spaces_swapped(store)
    before = {p: p.read_bytes() for p in store.glob("*.sqlite")}
    found = run_cli("check", "--store", str(store))
    assert found.returncode == 1
    assert "the file of space 's2' under another space's file name" in found.stdout
    done = run_cli(args[0], "--store", str(store), *args[1:])
    assert done.returncode == 1, done.stdout
    assert "hello" not in done.stdout and "s2" not in done.stdout
    if args[0] == "query":  # the file named for the space asked for is named
        first, owner = (at_demo, "s2") if args[1] == "demo" else (at_s2, "demo")
        assert f"cannot read {first}: the file is damaged" in done.stderr
        assert f"the file of space {owner!r} under another space's file name" in done.stderr
    else:  # the listings report each, as `inspect` does
        for path, owner in ((at_demo, "s2"), (at_s2, "demo")):
            assert f"space file {path} is damaged (the file of space {owner!r} under" in (
                done.stderr
            )
    assert "move it aside, or put back the file that belongs there" in done.stderr
    assert {p: p.read_bytes() for p in store.glob("*.sqlite")} == before


def _space_with_added_indexes(store: Path) -> Path:
    """A store of one space, cell ``x`` = 1, to whose space file another program added
    indexes on the runtime's own tables: one SQLite cannot compute (a blob over its length
    limit), one UNIQUE; the space file."""
    return _space_rebuilt(
        store,
        "CREATE INDEX ix ON _cf_log(length(zeroblob(1000000000)));"
        'CREATE UNIQUE INDEX "odd ""name""" ON _CF_CELLS(rev)',
    )


@pytest.mark.parametrize("args", [["inspect"], ["check"], ["check", "--repair"]])
def test_an_index_another_program_added_to_a_space_files_table_is_named_with_its_drop(
    store: Path, args: list[str]
) -> None:
    path = _space_with_added_indexes(store)
    before = path.read_bytes()
    done = run_cli(*args, "--store", str(store))
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    assert (
        "it holds index(es) the runtime never makes on its own tables "
        '("ix" on _cf_log, "odd ""name""" on _cf_cells)'
    ) in done.stdout
    assert "nothing of the space is lost by dropping it" in done.stdout
    assert "`DROP INDEX name`" in done.stdout
    assert "from a backup" not in done.stdout
    assert path.read_bytes() == before


def test_the_runtime_refuses_a_space_file_with_an_added_index_until_it_is_dropped(
    store: Path,
) -> None:
    path = _space_with_added_indexes(store)
    before = path.read_bytes()
    with sc.Runtime(store) as rt, pytest.raises(sc.DatabaseError) as raised:
        rt.space("demo")
    message = str(raised.value)
    assert f"space file {path} is changed by another program" in message
    assert '("ix" on _cf_log, "odd ""name""" on _cf_cells)' in message
    assert "nothing was written to it" in message and "DROP INDEX" in message
    assert "from a backup" not in message
    assert path.read_bytes() == before
    conn = apsw.Connection(str(path))
    conn.execute('DROP INDEX ix; DROP INDEX "odd ""name"""')
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert space.cell("x").get() == 1
        with space.transact():
            space.cell("x").set(2)
        assert space.cell("x").get() == 2

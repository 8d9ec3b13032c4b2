"""Something other than a regular file at a store file's path, or at its ``-wal``/``-shm`` path
(Errors, R73): an error naming the path and what to do, never a hang, never a write into it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from tests.conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _space_with_a_commit(store: Path) -> Path:
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        with space.transact():
            space.cell("x").set(1)
        return space.file.path
    finally:
        rt.close()


def _database_with_a_row(store: Path) -> Path:
    """Database ``d`` of space ``demo`` with one row written; the path of its file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
        return db.path


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


_OPEN_SPACE = textwrap.dedent(
    """
    import sys
    import sqlite_cells as sc
    rt = sc.Runtime(sys.argv[1])
    try:
        rt.space("demo").cell("x").get()
        print("served")
    except sc.SqliteCellsError as exc:
        print(type(exc).__name__, exc)
    """
)


def test_a_named_pipe_at_the_space_files_path_is_an_error_not_a_hang(store: Path) -> None:
    path = _space_with_a_commit(store)
    _remove(path)
    os.mkfifo(path)
    # In a subprocess: SQLite opening the pipe would block where no timeout reaches.
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_SPACE, str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("DatabaseError "), done.stdout
    assert str(path) in done.stdout
    assert "a named pipe" in done.stdout and "move it out of the store" in done.stdout


@pytest.mark.parametrize("command", ["inspect", "check"])
def test_the_command_reports_a_named_pipe_at_a_space_files_path(store: Path, command: str) -> None:
    path = _space_with_a_commit(store)
    _remove(path)
    os.mkfifo(path)
    done = run_cli(command, str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert path.name in done.stdout + done.stderr
    assert "a named pipe stands where a space file belongs" in done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["a directory", "a symbolic link that loops"])
def test_something_else_at_the_space_files_path_is_an_error_naming_it(
    store: Path, kind: str
) -> None:
    """A directory, or a symbolic link to itself, where the space file belongs: named when the
    space opens, and left where it is. `Path.exists` says False for the link (ELOOP): the space
    read as one the store does not hold, its cells as their defaults (R7 is for a space with no
    file, not for a file that cannot be read), until a write named the link."""
    path = _space_with_a_commit(store)
    _remove(path)
    if kind == "a directory":
        path.mkdir()
    else:
        os.symlink(path, path)
    rt = sc.Runtime(store)
    try:
        with pytest.raises(sc.DatabaseError) as raised:
            rt.space("demo").cell("x").get()
    finally:
        rt.close()
    assert f"space file {path} is {kind}" in str(raised.value)
    assert path.is_dir() if kind == "a directory" else path.is_symlink()


def test_another_programs_database_at_the_space_files_path_is_not_written(store: Path) -> None:
    path = _space_with_a_commit(store)
    _remove(path)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE q (a); INSERT INTO q VALUES ('their data')")
    conn.close()
    before = path.read_bytes()
    rt = sc.Runtime(store)
    try:
        with pytest.raises(sc.DatabaseError) as raised:
            space = rt.space("demo")
            with space.transact():
                space.cell("x").set(2)
    finally:
        rt.close()
    message = str(raised.value)
    assert f"space file {path} is not a space file" in message
    assert "_cf_cells, _cf_log, _cf_meta" in message and "move it" in message
    assert path.read_bytes() == before  # not even its journal mode changed


def test_a_blank_file_at_the_space_files_path_is_used(store: Path) -> None:
    """What a first commit cut short leaves: an SQLite file with no table at all."""
    path = _space_with_a_commit(store)
    _remove(path)
    path.write_bytes(b"")
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        with space.transact():
            space.cell("x").set(2)
        assert space.cell("x").get() == 2
    finally:
        rt.close()


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_directory_at_the_space_files_companion_is_named(store: Path, suffix: str) -> None:
    path = _space_with_a_commit(store)
    Path(f"{path}{suffix}").unlink(missing_ok=True)
    Path(f"{path}{suffix}").mkdir()
    rt = sc.Runtime(store)
    try:
        with pytest.raises(sc.DatabaseError) as raised:
            rt.space("demo").cell("x").get()
    finally:
        rt.close()
    message = str(raised.value)
    assert f"{path}{suffix} is a directory" in message
    assert f"remove {path}{suffix}" in message and "read-only" not in message


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_directory_at_a_database_files_companion_is_named(store: Path, suffix: str) -> None:
    db_path = _database_with_a_row(store)
    for companion in ("-wal", "-shm"):
        Path(f"{db_path}{companion}").unlink(missing_ok=True)
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        Path(f"{db.path}{suffix}").mkdir()
        with pytest.raises(sc.DatabaseError) as raised, space.transact():
            db.exec("INSERT INTO t (v) VALUES ('b')")
    finally:
        rt.close()
    message = str(raised.value)
    assert f"{db.path}{suffix} is a directory" in message
    assert f"remove {db.path}{suffix}" in message and "try again" in message


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
@pytest.mark.parametrize("which", ["space", "database"])
def test_the_commands_name_a_directory_at_a_store_files_companion(
    store: Path, which: str, suffix: str
) -> None:
    """A directory at a -wal/-shm path made `check` call an intact database file "damaged"
    and advise `--repair`, which then blamed the space file and kept a quarantine copy of
    the intact file; at a -shm the commands said all was well or "read-only". Each command now
    names the directory and says to remove it, and nothing is changed."""
    db_path = _database_with_a_row(store)
    target = db_path if which == "database" else next(store.glob("space-*.sqlite"))
    companion = Path(f"{target}{suffix}")
    companion.unlink(missing_ok=True)
    companion.mkdir()
    before = sorted(p.name for p in store.iterdir())
    for args in (["inspect"], ["check"], ["check", "--repair"]):
        done = run_cli(*args, str(store))
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert f"{companion} is a directory" in done.stderr, (args, done.stderr)
        assert f"remove {companion}" in done.stderr and "damaged" not in done.stdout, args
    assert sorted(p.name for p in store.iterdir()) == before  # no quarantine copy, nothing new


def test_quarantined_for_a_directory_at_a_database_files_path_names_it(store: Path) -> None:
    db_path = _database_with_a_row(store)
    _remove(db_path)
    db_path.mkdir()
    rt = sc.Runtime(store)
    try:
        db = rt.space("demo").sqlite_database("d", tables=TABLES)
        with pytest.raises(sc.Quarantined) as raised:
            db.read("SELECT v FROM t")
    finally:
        rt.close()
    quarantined = raised.value
    assert (quarantined.db_seq, quarantined.space_seq, quarantined.path) == (0, 1, db.path)
    message = str(quarantined)
    assert f"({db.path}) is quarantined: a directory stands where the database file belongs" in (
        message
    )
    assert "watermark" not in message  # there is no file to read one from


@pytest.mark.parametrize("repair", [False, True])
def test_a_named_pipe_at_a_database_files_path_is_quarantined_and_repair_leaves_nothing(
    store: Path, repair: bool
) -> None:
    db_path = _database_with_a_row(store)
    _remove(db_path)
    os.mkfifo(db_path)
    before = sorted(p.name for p in store.iterdir())
    done = run_cli("check", str(store), *(["--repair"] if repair else []))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"{db_path.name}): watermark unreadable, space seq 1: quarantined (a named pipe stands "
        "where the database file belongs: move it)"
    ) in done.stdout
    # Nothing copied, rebuilt beside it or left behind: no .rebuild file, no quarantine folder.
    assert sorted(p.name for p in store.iterdir()) == before
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("d", tables=TABLES)
        with pytest.raises(sc.Quarantined) as raised:
            db.read("SELECT v FROM t")
    assert "a named pipe stands where the database file belongs" in str(raised.value)
    # Moved away, the database is rebuilt from its space's log.
    db_path.unlink()
    assert run_cli("check", str(store), "--repair").returncode == 0
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("d", tables=TABLES)
        assert db.read("SELECT v FROM t") == [{"v": "a"}]


def test_query_names_a_named_pipe_at_a_database_files_path_and_does_not_hang(store: Path) -> None:
    db_path = _database_with_a_row(store)
    _remove(db_path)
    os.mkfifo(db_path)
    before = sorted(p.name for p in store.iterdir())
    # Reading the version the file stores opened the pipe, which blocks SQLite's open for ever
    # (run_cli's timeout would fail the test).
    done = run_cli("query", str(store), "demo", "d", "SELECT v FROM t")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("sqlite-cells: Quarantined: "), done.stderr
    assert f"({db_path}) is quarantined: a named pipe stands where the database file belongs" in (
        done.stderr
    )
    assert sorted(p.name for p in store.iterdir()) == before


@pytest.mark.parametrize("kind", ["directory", "named pipe"])
def test_tables_reports_something_else_at_a_written_databases_path(store: Path, kind: str) -> None:
    db_path = _database_with_a_row(store)
    _remove(db_path)
    if kind == "directory":
        db_path.mkdir()
    else:
        os.mkfifo(db_path)
    done = run_cli("tables", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no database of this store has been written yet" not in done.stdout
    assert done.stdout == "(no tables listed)\n"
    assert "left out database 'd' (of:" in done.stderr  # named: the store recorded its name
    assert f"(file {db_path.name}): quarantined" in done.stderr
    assert f"a {kind} stands where the database file belongs: move it" in done.stderr


@pytest.mark.parametrize("written", [False, True])
def test_a_symbolic_link_that_loops_at_a_database_files_path_is_not_read_as_empty(
    store: Path, written: bool
) -> None:
    """`Path.exists` says False for a link to itself (ELOOP), which read as a database never
    written: `[]` (R41: other I/O errors are never masked as empty), and its write failed in
    SQLite. It is quarantined, named, as a directory there is."""
    if written:
        db_path = _database_with_a_row(store)
        _remove(db_path)
    else:
        _space_with_a_commit(store)
        with sc.Runtime(store) as rt:
            db_path = rt.space("demo").sqlite_database("d", tables=TABLES).path
    os.symlink(db_path, db_path)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        with pytest.raises(sc.Quarantined) as raised:
            db.read("SELECT v FROM t")
        assert "a symbolic link that loops stands where the database file belongs" in str(
            raised.value
        )
        with pytest.raises(sc.Quarantined), space.transact():
            db.exec("INSERT INTO t (v) VALUES ('b')")
    assert db_path.is_symlink()  # left where it is
    if written:  # (`check` looks at the databases its spaces' handles name)
        done = run_cli("check", str(store))
        assert done.returncode == 1 and "a symbolic link that loops stands" in done.stdout


def test_a_dangling_link_where_a_store_file_is_to_be_made_is_refused(
    store: Path, tmp_path: Path
) -> None:
    """R2 (a database's file is beside its space's file in the store): a symbolic link to
    nothing at the path of a database never written (or of a space never written) was followed
    by its first write, and SQLite made the file at the link's target, outside the store — the
    rows lived there, and gc skipped the link. A write that would create the file through such
    a link is a DatabaseError naming it, nothing written anywhere; a read still finds nothing
    (R41). So is the repair that would rebuild a database whose file became such a link."""
    outside = tmp_path / "outside.db"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("x").set(1)
        db = space.sqlite_database("d", tables=TABLES)
        db.path.symlink_to(outside)
        assert db.read("SELECT v FROM t") == []
        with (
            pytest.raises(sc.DatabaseError, match=r"symbolic link to .*outside\.db") as refused,
            space.transact(),
        ):
            db.exec("INSERT INTO t (v) VALUES ('a')")
        assert "not in the store" in str(refused.value)
        assert not outside.exists() and db.rev == 0
        db.path.unlink()
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('b')")
        rows = db.read("SELECT v FROM t")
        assert rows == [{"v": "b"}] and db.rev == 1
        other = rt.space("other")
        other.file.path.symlink_to(tmp_path / "outside-space.sqlite")
        assert other.cell("y").get() is None
        with (
            pytest.raises(sc.DatabaseError, match=r"space file .* is a symbolic link"),
            other.transact(),
        ):
            other.cell("y").set(1)
        assert not (tmp_path / "outside-space.sqlite").exists()
        path = db.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.symlink_to(outside)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        with (
            pytest.raises(sc.DatabaseError, match=r"symbolic link to .*outside\.db"),
            space.transact(),
        ):
            db.exec("INSERT INTO t (v) VALUES ('c')")
    assert not outside.exists()


@pytest.mark.parametrize("repair", [False, True])
def test_check_names_a_dangling_link_at_a_written_databases_path(
    store: Path, tmp_path: Path, repair: bool
) -> None:
    """§6, R71: a symbolic link to nothing at the path of a database its space wrote. `check
    --repair`, run by the store's owner, said it "could not write it, as this user may not
    write" the file (the permission test followed the link), and `check` advised the repair
    that cannot run. Both name the link and its target, as a runtime's write does (one
    wording), exit 1, and leave the link and the store as they were."""
    outside = tmp_path / "nowhere" / "zzz.sqlite"
    path = _database_with_a_row(store)
    _remove(path)
    path.symlink_to(outside)
    before = sorted(p.name for p in store.iterdir())
    done = run_cli("check", str(store), *(["--repair"] if repair else []))
    assert done.returncode == 1, done.stdout + done.stderr
    said = (
        f"nothing was changed: database file {path} is a symbolic link to {str(outside)!r}, "
        "where nothing is: SQLite would create the database file there, not in the store; "
        "remove the link (or put back the file it pointed to)"
    )
    assert said in done.stdout
    assert "may not write" not in done.stdout
    assert "re-apply" not in done.stdout
    assert sorted(p.name for p in store.iterdir()) == before
    assert path.is_symlink() and not outside.parent.exists()


@pytest.mark.parametrize("kind", ["directory", "named pipe", "symbolic link that loops"])
def test_something_else_at_a_database_path_of_a_space_without_a_file_is_named(
    store: Path, kind: str
) -> None:
    """A space never written has no file: its database's path was opened as a lost space's
    file, and SQLite's refusal of what stands there was told as a failing disk ("disk I/O
    error: a full disk, a file size limit or a failing device") or as a bare CantOpenError."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        if kind == "directory":
            db.path.mkdir()
        elif kind == "named pipe":
            os.mkfifo(db.path)
        else:
            os.symlink(db.path, db.path)
        before = sorted(p.name for p in store.iterdir())
        with pytest.raises(sc.Quarantined) as raised:
            db.read("SELECT v FROM t")
        message = str(raised.value)
        assert f"a {kind} stands where the database file belongs: move it" in message
        assert "disk" not in message and "CantOpenError" not in message
        with pytest.raises(sc.Quarantined) as raised, space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
        assert f"a {kind} stands where the database file belongs" in str(raised.value)
        assert not space.file.path.exists()
    assert sorted(p.name for p in store.iterdir()) == before  # left as found, nothing made
    assert os.path.lexists(db.path)


def test_a_damaged_file_at_a_database_path_of_a_space_without_a_file_is_told_as_damaged(
    store: Path,
) -> None:
    """A space never written has no file: bytes that are not a database at its database's
    path were quarantined with SQLite's bare "file is not a database", not told as the damaged
    file it is (what it is, that no log can rebuild it, what to do)."""
    garbage = b"hello" * 1000
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        db.path.write_bytes(garbage)
        before = sorted(p.name for p in store.iterdir())
        with pytest.raises(sc.Quarantined) as raised:
            db.read("SELECT v FROM t")
        message = str(raised.value)
        assert str(db.path) in message
        assert "damaged file: file is not a database" in message
        assert "its space has no file" in message
        assert "move it out of the store" in message
        with pytest.raises(sc.Quarantined) as raised, space.transact():
            db.exec("INSERT INTO t (v) VALUES ('a')")
        assert "damaged file: file is not a database" in str(raised.value)
        assert not space.file.path.exists()
    assert sorted(p.name for p in store.iterdir()) == before  # left as found, nothing made
    assert db.path.read_bytes() == garbage

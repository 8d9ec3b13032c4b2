"""A store in a folder this user may not write (read-only media; §6, Errors): SQLite reads a
WAL file through a `-wal` and `-shm` it creates beside it, and there it cannot, so every command
failed. A file with no `-wal` or `-shm` beside it holds every commit and is read as it is: the
commands that only read (`inspect`, `tables`, `cells`, `check`, `gc` without `--yes`, `query`)
read the store and leave it as it was; `check --repair` repairs nothing there. `check --repair`
run by a user who may not write the files says so, not to run itself again."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli, run_unprivileged, shared_dir, start_unprivileged

TABLES = {"t": sc.table(id="integer primary key", v="text")}
COMMANDS = (
    ("inspect",),
    ("tables",),
    ("cells",),
    ("check",),
    ("check", "--repair"),
    ("gc",),
)
NOBODY = 65534


@pytest.fixture
def store() -> Iterator[Path]:
    with shared_dir() as parent:
        root = parent / "store"
        with sc.Runtime(root) as rt:
            space = rt.space("a")
            db = space.sqlite_database("d", tables=TABLES)
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES ('x')")
                space.cell("c").set(1)
        yield root


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def _read_everything(root: Path) -> None:
    for command in COMMANDS:
        done = run_unprivileged("-m", "sqlite_cells", *command, str(root))
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert done.stderr == "", (command, done.stderr)
    done = run_unprivileged(
        "-m", "sqlite_cells", "query", "--json", str(root), "a", "d", "SELECT v FROM t"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"v": "x"}]
    done = run_unprivileged("-m", "sqlite_cells", "check", "--json", str(root))
    assert [row["action"] for row in json.loads(done.stdout)] == ["in sync"]


def test_a_folder_this_user_may_not_write_is_read(store: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the files must belong to the user the commands run as (chown needs root)")
    before = _names(store)
    for path in store.iterdir():
        os.chown(path, NOBODY, NOBODY)
    store.chmod(0o555)
    try:
        _read_everything(store)
        assert _names(store) == before
    finally:
        store.chmod(0o755)
        for path in store.iterdir():
            os.chown(path, 0, 0)


def _behind(root: Path) -> Path:
    """Make the database of ``root`` one commit behind its space (its file put back as it was
    before the last commit); its file."""
    with sc.Runtime(root) as rt:
        db_file = rt.space("a").sqlite_database("d", tables=TABLES).path
    kept = db_file.read_bytes()
    with sc.Runtime(root) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('y')")
    db_file.write_bytes(kept)
    return db_file


@pytest.mark.parametrize("folder", [0o555, 0o777])
def test_check_repair_by_a_user_who_may_not_write_says_so(store: Path, folder: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("the store must belong to another user than the commands run as")
    db_file = _behind(store)
    before = db_file.read_bytes()
    for path in store.iterdir():
        path.chmod(0o644)
    store.chmod(folder)
    try:
        done = run_unprivileged("-m", "sqlite_cells", "check", "--repair", str(store))
    finally:
        store.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert "watermark 1, space seq 2: behind" in done.stdout
    assert "`--repair` could not write it, as this user may not write" in done.stdout
    assert "as a user who may (the store's owner)" in done.stdout
    assert "Quarantined" not in done.stdout and "ReadOnlyError" not in done.stdout
    assert db_file.read_bytes() == before
    done = run_unprivileged("-m", "sqlite_cells", "check", str(store))  # without --repair
    assert "run `sqlite-cells check --repair` to re-apply the commits it misses" in done.stdout


def test_gc_by_a_user_who_may_not_remove_an_unused_file_says_so(store: Path) -> None:
    """§6, Errors: a file no space names and that holds nothing, which this user may not
    remove, is kept with the reason (a permission), not said to be in use by another
    connection, which sent the user to run gc again for ever."""
    if os.geteuid() != 0:
        pytest.skip("the store must belong to another user than the commands run as")
    unused = store / f"cell-{'0' * 32}.sqlite"
    unused.touch()
    for path in store.iterdir():
        path.chmod(0o644)
    store.chmod(0o755)
    listed = run_unprivileged("-m", "sqlite_cells", "gc", str(store))
    assert listed.returncode == 0 and f"would remove {unused.name}" in listed.stdout
    done = run_unprivileged("-m", "sqlite_cells", "gc", "--yes", str(store))
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert f"could not remove {unused.name}: Permission denied: this user may not remove it" in said
    assert "another connection" not in said
    assert unused.exists()


def _gc_as_owner(store: Path) -> subprocess.CompletedProcess[str]:
    """``gc --yes`` run by ``nobody`` on ``store`` made ``nobody``'s for the run."""
    for path in [store, *store.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    try:
        return run_unprivileged("-m", "sqlite_cells", "gc", "--yes", str(store))
    finally:
        for path in [store, *store.iterdir()]:
            os.chown(path, 0, 0)


def test_gc_by_the_store_s_owner_removes_an_unused_file_it_may_not_write(store: Path) -> None:
    """R74: an unused file of mode 0444 in a folder its owner may write is removed by that owner
    (removing a file needs the folder's permission, not the file's): a permission is said only
    where one stands in the way."""
    if os.geteuid() != 0:
        pytest.skip("the files must belong to the user the commands run as (chown needs root)")
    unused = store / f"cell-{'0' * 32}.sqlite"
    unused.touch()
    unused.chmod(0o444)
    done = _gc_as_owner(store)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 file(s) removed" in done.stdout and not unused.exists()


def test_gc_by_the_owner_of_an_unused_wal_file_it_may_not_write_says_to_make_it_writable(
    store: Path,
) -> None:
    """§6, Errors: an unused WAL-mode file of mode 0444 cannot be checked for connections that
    have it open (that check writes it): kept, saying so and what to do, not that another
    connection has it open (which sent its owner to run gc again for ever)."""
    if os.geteuid() != 0:
        pytest.skip("the files must belong to the user the commands run as (chown needs root)")
    unused = store / f"cell-{'0' * 32}.sqlite"
    conn = apsw.Connection(str(unused))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE _cf_meta (k)")
    conn.close()
    unused.chmod(0o444)
    done = _gc_as_owner(store)
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "this user may not write it" in said and "chmod u+w" in said
    assert "another connection" not in said and unused.exists()


def test_gc_by_a_user_who_may_not_remove_a_dropped_database_says_what_to_do(
    store: Path,
) -> None:
    """§6, Errors: the file of a dropped database that this user may not remove was reported
    as "could not remove …: Permission denied" and nothing more (an unused file's line said
    what to do); it says so too now."""
    if os.geteuid() != 0:
        pytest.skip("the store must belong to another user than the commands run as")
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.drop()
        path = db.path
    for entry in store.iterdir():
        entry.chmod(0o644)
    store.chmod(0o755)
    done = run_unprivileged("-m", "sqlite_cells", "gc", "--yes", str(store))
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert (
        f"could not remove {path.name} (database 'd' of space 'a'): Permission denied: this user "
        "may not remove it"
    ) in said
    assert "run gc as a user who may" in said
    assert path.exists()


def test_check_repair_on_a_read_only_file_system_says_so_not_this_users_permissions(
    store: Path, tmp_path: Path
) -> None:
    """§6, Errors: `check --repair` of a store mounted read-only (here a read-only bind mount of
    it, run by its owner) blamed this user's permissions ("run it as a user who may (the
    store's owner)"), which no user has there. It says the file system is read-only, and to
    remount it writable or copy the store to a writable place."""
    db_file = _behind(store)
    before = db_file.read_bytes()
    seen = tmp_path / "read-only"
    seen.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(store), str(seen)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"no bind mount here: {mounted.stderr!r}")
    try:
        remounted = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(seen)], capture_output=True
        )
        if remounted.returncode != 0:
            pytest.skip(f"no read-only remount here: {remounted.stderr!r}")
        done = run_cli("check", "--repair", str(seen))
    finally:
        subprocess.run(["umount", str(seen)], check=False)
    assert done.returncode == 1, done.stderr
    assert "watermark 1, space seq 2: behind" in done.stdout
    assert (
        f"`--repair` could not write it, as the file system holding {db_file.name} is mounted "
        "read-only (no user may write there); remount it writable, or copy the store (with "
        "every -wal) to a writable place, then run `sqlite-cells check --repair` there"
    ) in done.stdout
    assert "this user may not write" not in done.stdout and "store's owner" not in done.stdout
    assert db_file.read_bytes() == before


def _ahead_beside_a_quarantine_folder_nobody_may_write(store: Path) -> tuple[Path, bytes, Path]:
    """A store whose database "d" of space "a" is ahead of its space by one commit (the space's
    file put back as it was before it), its files and folder writable by anyone, and a
    quarantine folder only root may write: the database's file, its bytes, that folder. The
    store is left mode 0o777 (the caller sets it back)."""
    with sc.Runtime(store) as rt:
        space_file = rt.space("a").file.path
        db_file = rt.space("a").sqlite_database("d", tables=TABLES).path
    kept = space_file.read_bytes()
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        with space.transact():
            space.sqlite_database("d", tables=TABLES).exec("INSERT INTO t (v) VALUES ('y')")
    space_file.write_bytes(kept)  # the space's file lost the last commit: the database is ahead
    before = db_file.read_bytes()
    for path in store.iterdir():
        path.chmod(0o666)
    store.chmod(0o777)
    folder = store / "quarantine"
    folder.mkdir(mode=0o755)  # root's: nobody may not write it
    return db_file, before, folder


def test_check_repair_whose_copy_this_user_may_not_write_says_to_let_it_write_the_folder(
    store: Path,
) -> None:
    """R71, §6, Errors: a database ahead of its space by the commit in flight is inverted after a
    copy of it is kept in the store's quarantine folder. When this user may not write that
    folder, `check --repair` stopped before the copy, as it must, but advised to put back a copy
    of the space's file or to move the database's file out of the store (giving up its commit),
    neither of which the file needs. It says the copy could not be written into the folder and
    to let this user write it, then repair again; nothing is changed."""
    if os.geteuid() != 0:
        pytest.skip("the quarantine folder must belong to another user than the command runs as")
    db_file, before, folder = _ahead_beside_a_quarantine_folder_nobody_may_write(store)
    try:
        done = run_unprivileged("-m", "sqlite_cells", "check", "--repair", str(store))
    finally:
        store.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert "watermark 2, space seq 1: quarantined" in done.stdout
    assert "could not be copied to" in done.stdout and "Permission denied" in done.stdout
    assert (
        "nothing was changed: a repair that removes rows first keeps a copy of the file in the "
        f"store's quarantine folder, and the copy could not be written into {folder} (see why "
        "above); let this user write that folder"
    ) in done.stdout
    assert "put back a copy of the space's file" not in done.stdout
    assert "out of the store" not in done.stdout
    assert db_file.read_bytes() == before
    assert list(folder.iterdir()) == []


# Reads database "d" of space "a" of the store argv[1] in one runtime, once per line it is given
# on stdin (the first at once): each read's rows, or its error, printed as one line of JSON.
_READS_ON_REQUEST = """
import json, sys
import sqlite_cells as sc
with sc.Runtime(sys.argv[1]) as rt:
    tables = {"t": sc.table(id="integer primary key", v="text")}
    db = rt.space("a").sqlite_database("d", tables=tables)
    while True:
        try:
            said = {"rows": db.read("SELECT v FROM t ORDER BY id")}
        except sc.Quarantined as exc:
            transient = getattr(exc, "transient", None)
            said = {"error": type(exc).__name__, "transient": transient, "message": str(exc)}
        print(json.dumps(said), flush=True)
        if not sys.stdin.readline():
            break
"""


def test_a_quarantine_for_a_copy_this_user_may_not_write_is_tried_again_by_the_running_runtime(
    store: Path,
) -> None:
    """R71, Errors: a repair stopped because its copy could not be written into the quarantine
    folder leaves the database quarantined until its next use, which tries the repair again
    in the same runtime. Its `Quarantined` said so, and also that a running runtime keeps the
    quarantine until it is opened again, which is not so for it: the message says only that
    the next use tries again, and once the folder may be written the next read repairs."""
    if os.geteuid() != 0:
        pytest.skip("the quarantine folder must belong to another user than the reads run as")
    db_file, before, folder = _ahead_beside_a_quarantine_folder_nobody_may_write(store)
    reads = start_unprivileged("-c", _READS_ON_REQUEST, str(store))
    try:
        assert reads.stdin is not None and reads.stdout is not None
        first = json.loads(reads.stdout.readline())
        assert first["error"] == "Quarantined", first
        message = first["message"]
        assert "its watermark is seq 2 but its space's log says 1" in message
        assert "could not be copied to" in message and "Permission denied" in message
        assert "nothing of the file was changed, and the next use tries the repair again" in (
            message
        )
        assert "until it is opened again" not in message
        assert first["transient"] is True
        assert db_file.read_bytes() == before
        assert list(folder.iterdir()) == []
        folder.chmod(0o777)  # now this user may write it: the next read repairs
        reads.stdin.write("\n")
        reads.stdin.flush()
        assert json.loads(reads.stdout.readline()) == {"rows": [{"v": "x"}]}
        _out, err = reads.communicate(timeout=120)  # (closes stdin: the reads end)
    finally:
        if reads.poll() is None:
            reads.kill()
            reads.wait()
        store.chmod(0o755)
    assert reads.returncode == 0, err
    assert "Traceback" not in err
    copies = [p.name for p in folder.iterdir() if p.name.endswith(".ahead-2-of-1.0")]
    assert len(copies) == 1 and copies[0].startswith(f"{db_file.name}.")  # the repair's copy


def test_a_quarantine_folder_this_user_may_not_search_is_named_not_the_database_file(
    store: Path,
) -> None:
    """R71, Errors: a repair's copy goes into the quarantine folder; with a folder this user may
    not even search, looking for a free name in it raised before the copy, and the read said the
    database's own file "may not be used by this user … give it read and write permission", when
    the file was writable and the folder was the trouble. The folder is named, as for a folder
    this user may not write, and nothing of the file is changed."""
    if os.geteuid() != 0:
        pytest.skip("the quarantine folder must belong to another user than the reads run as")
    db_file, before, folder = _ahead_beside_a_quarantine_folder_nobody_may_write(store)
    folder.chmod(0o700)  # root's: nobody may not look inside it
    try:
        done = run_unprivileged("-c", _READS_ON_REQUEST, str(store))
    finally:
        store.chmod(0o755)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout.splitlines()[0])
    assert said["error"] == "Quarantined", said
    message = said["message"]
    assert f"could not be copied to {folder} (Permission denied)" in message
    assert "may not be used by this user" not in message
    assert "the next use tries the repair again" in message
    assert said["transient"] is True
    assert db_file.read_bytes() == before

"""A space file the commands cannot read (Errors, §6, R74): one this user may not open is named
as a file that cannot be opened (not a damaged one: nothing is to restore), one whose log holds
a record that does not decode as damaged; `check`, `inspect` and `gc` say what to do and report
the store's other spaces all the same; `gc` removes nothing such a file may name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli, run_cli_limited, run_unprivileged, shared_dir, written_once

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@pytest.fixture
def store() -> Iterator[tuple[Path, Path, Path]]:
    """(store, space b's file at mode 000, space a's database file): spaces 'a' and 'b', one
    database each, written once."""
    with shared_dir() as parent:
        root = parent / "store"
        with sc.Runtime(root) as rt:
            files = []
            for name in ("a", "b"):
                space = rt.space(name)
                db = space.sqlite_database("d", tables=TABLES)
                with space.transact():
                    db.exec("INSERT INTO t (v) VALUES ('x')")
                files.append((space.file.path, db.path))
        root.chmod(0o777)
        for path in root.iterdir():
            path.chmod(0o666)
        (_, a_db), (b_space, _) = files
        b_space.chmod(0o000)
        try:
            yield root, b_space, a_db
        finally:
            b_space.chmod(0o644)


def _cli(*args: str) -> tuple[int, str, str]:
    done = run_unprivileged("-m", "sqlite_cells", *args)
    return done.returncode, done.stdout, done.stderr


def test_check_inspect_and_gc_report_it_and_go_on(store: tuple[Path, Path, Path]) -> None:
    root, b_space, a_db = store
    before = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    code, out, err = _cli("check", "--json", str(root))
    assert (code, err) == (1, ""), out
    rows = {row["file"]: row for row in json.loads(out)}
    assert rows[a_db.name]["action"] == "in sync"  # space a was checked
    assert rows[b_space.name]["action"] == "unreadable space file"
    assert "let this user read and write the space file" in rows[b_space.name]["advice"]
    assert "restore" not in rows[b_space.name]["advice"]

    code, out, err = _cli("inspect", "--json", str(root))
    assert (code, err) == (1, ""), out
    info = json.loads(out)
    assert [s["id"] for s in info["spaces"]] == ["a"]
    assert info["damaged_space_files"] == [
        {"file": b_space.name, "reason": "unable to open database file", "unreadable": True}
    ]
    assert any(f"space file {b_space.name} cannot be opened" in f for f in info["findings"])

    code, out, err = _cli("gc", "--yes", str(root))
    assert code == 1 and err == "", out
    assert f"unreadable space file {b_space.name}" in out and "0 file(s) removed" in out
    # Space b's database file (which only b names) is kept: gc cannot know b does not name it.
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == before


def test_a_log_record_that_does_not_decode_is_a_damaged_space_file(tmp_path: Path) -> None:
    """Bytes that are no record in `_cf_log` (SQLite reads them without an error): `check`,
    `inspect` and `gc` report that space file as damaged, naming the record, and go on with the
    other spaces, instead of stopping the whole command with advice to run `check`."""
    root = tmp_path / "store"
    with sc.Runtime(root) as rt:
        paths = {}
        for name in ("a", "b"):
            space = rt.space(name)
            db = space.sqlite_database("d", tables=TABLES)
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES ('x')")
            with space.transact():
                space.cell("c").set(1)
            paths[name] = (space.file.path, db.path)
    b_space = paths["b"][0]
    conn = apsw.Connection(str(b_space))
    conn.execute("UPDATE _cf_log SET record = x'00ff00ff' WHERE seq = 2")
    conn.close()
    done = run_cli("check", "--json", str(root))
    assert done.returncode == 1 and done.stderr == "", done
    rows = {row["file"]: row for row in json.loads(done.stdout)}
    assert rows[paths["a"][1].name]["action"] == "in sync"
    assert rows[b_space.name]["action"] == "damaged space file"
    assert "the log record of seq 2" in rows[b_space.name]["detail"]
    done = run_cli("inspect", "--json", str(root))
    assert done.returncode == 1 and done.stderr == "", done
    info = json.loads(done.stdout)
    assert [s["id"] for s in info["spaces"]] == ["a"]
    assert [d["file"] for d in info["damaged_space_files"]] == [b_space.name]
    done = run_cli("gc", "--yes", str(root))
    assert done.returncode == 1 and done.stderr == "", done
    assert f"damaged space file {b_space.name}" in done.stdout
    assert paths["b"][1].exists()  # b's database: gc cannot know b does not name it


def test_tables_of_a_store_whose_only_database_is_orphaned_says_so(tmp_path: Path) -> None:
    """Its space file gone, the database file still holds commits: `tables` said "no database
    of this store has been written yet" while `inspect` and `check` report the orphan."""
    root = tmp_path / "store"
    with sc.Runtime(root) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('x')")
    for path in root.glob("space-*.sqlite"):
        path.unlink()
    done = run_cli("tables", str(root))
    assert done.returncode == 0, done
    assert "not been written yet" not in done.stdout
    assert "database files that no space names are in the store" in done.stdout


def test_a_space_file_the_disk_cannot_open_says_so_not_this_users_permissions(
    tmp_path: Path,
) -> None:
    """Errors, §6: under a file size limit (as on a full disk) SQLite cannot make the -shm it
    writes beside a space file it reads: `check` said the file "cannot be opened by this user"
    and to fix permissions. It says the file cannot be opened, for an I/O error, and to free
    space or check the disk."""
    store = tmp_path / "store"
    written_once(store, "a", "d")
    done = run_cli_limited("RLIMIT_FSIZE", 10_000, "check", "--store", str(store))
    assert done.returncode == 1, done.stderr
    assert "cannot be opened (disk I/O error)" in done.stdout, done.stdout
    assert "free space or check the disk" in done.stdout
    assert "by this user" not in done.stdout and "Traceback" not in done.stderr
    done = run_cli("check", "--store", str(store))  # the limit gone: all is well
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout

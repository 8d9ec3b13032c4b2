"""One database file this user may not open (Errors, §6, R71): every command names that file,
not its space file, says it cannot be read (not that it is damaged: nothing is to repair), and
`check`, `tables` and `inspect` report the store's other databases all the same."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli, run_cli_limited, run_unprivileged, shared_dir, written_once

TABLES = {"t": sc.table(id="integer primary key", v="text")}


@pytest.fixture
def store() -> Iterator[tuple[Path, Path, Path]]:
    """(store, the unreadable database file, the readable one): databases 'one' and 'two' of
    space 'a', written once each; 'one''s file has mode 000."""
    with shared_dir() as parent:
        root = parent / "store"
        with sc.Runtime(root) as rt:
            space = rt.space("a")
            paths = []
            for name in ("one", "two"):
                db = space.sqlite_database(name, tables=TABLES)
                with space.transact():
                    db.exec("INSERT INTO t (v) VALUES ('x')")
                paths.append(db.path)
        root.chmod(0o777)
        for path in root.iterdir():
            path.chmod(0o666)
        paths[0].chmod(0o000)
        try:
            yield root, paths[0], paths[1]
        finally:
            paths[0].chmod(0o644)


def _cli(*args: str) -> tuple[int, str, str]:
    done = run_unprivileged("-m", "sqlite_cells", *args)
    return done.returncode, done.stdout, done.stderr


def test_check_reports_the_unreadable_file_and_checks_the_others(
    store: tuple[Path, Path, Path],
) -> None:
    root, one, two = store
    space_file = next(root.glob("space-*.sqlite"))
    for repair in ((), ("--repair",)):
        code, out, err = _cli("check", *repair, "--json", str(root))
        assert code == 1, (out, err)
        assert err == ""
        rows = {row["file"]: row for row in json.loads(out)}
        assert rows[two.name]["action"] == "in sync"
        found = rows[one.name]
        assert found["action"] == "unreadable"
        assert found["watermark"] is None
        assert f"({one}) cannot be opened" in found["detail"]
        assert "let this user read and write the file" in found["advice"]
        assert str(space_file) not in found["detail"]
    assert oct(one.stat().st_mode & 0o777) == "0o0"  # nothing was changed or repaired
    assert not (root / "quarantine").exists()


def test_tables_lists_the_others_and_names_the_file_it_left_out(
    store: tuple[Path, Path, Path],
) -> None:
    root, one, _two = store
    code, out, err = _cli("tables", str(root))
    assert code == 1
    assert [line.split()[:3] for line in out.splitlines()[2:]] == [["a", "two", "t"]]
    assert "left out database 'one'" in err
    assert f"({one}) cannot be opened" in err
    assert "seq" not in err  # nothing was read of it: no watermark to show


def test_query_names_the_database_file_and_reads_the_other(
    store: tuple[Path, Path, Path],
) -> None:
    root, one, _two = store
    code, out, err = _cli("query", str(root), "a", "one", "SELECT count(*) FROM t")
    assert code == 1 and out == ""
    assert err.startswith("sqlite-cells: UnreadableFile: database of:")
    assert f"({one}) cannot be opened" in err
    assert "space-" not in err
    code, out, err = _cli("query", "--json", str(root), "a", "two", "SELECT count(*) AS n FROM t")
    assert (code, err) == (0, "")
    assert json.loads(out)["rows"] == [{"n": 1}]


def test_inspect_says_unreadable_not_damaged(store: tuple[Path, Path, Path]) -> None:
    root, one, _two = store
    code, out, err = _cli("inspect", str(root))
    assert code == 1, err
    assert f"UNREADABLE: cannot open {one}" in out
    assert "DAMAGED" not in out and "--repair" not in out
    assert "cannot be read" in out and "nothing was changed" in out
    code, out, _ = _cli("inspect", "--json", str(root))
    databases = {d["file"]: d for s in json.loads(out)["spaces"] for d in s["databases"]}
    assert databases[one.name]["unreadable"].startswith(f"cannot open {one}")
    assert databases[one.name]["damage"] is None
    assert os.access(one, os.F_OK)


def test_a_shm_this_user_may_not_open_is_no_damage(store: tuple[Path, Path, Path]) -> None:
    """R71: a database file's -shm this user may not open (another program holds the file in
    WAL mode) says nothing of its rows: `check` reports the database unreadable, and a runtime's
    read fails naming it — nothing is quarantined or rebuilt."""

    root, _one, two = store
    holder = apsw.Connection(str(two))  # keeps its -wal and -shm there while it is open
    try:
        holder.execute("SELECT count(*) FROM t").fetchall()
        shm = Path(f"{two}-shm")
        assert shm.exists()
        shm.chmod(0o000)
        code, out, _ = _cli("check", "--json", str(root))
        assert code == 1
        rows = {row["file"]: row for row in json.loads(out)}
        assert rows[two.name]["action"] == "unreadable"
        read = (
            "import sqlite_cells as sc, sys\n"
            f"with sc.Runtime({str(root)!r}) as rt:\n"
            "    db = rt.space('a').sqlite_database('two', tables={'t': sc.table("
            "id='integer primary key', v='text')})\n"
            "    try:\n"
            "        db.read('SELECT count(*) AS n FROM t')\n"
            "    except sc.SqliteCellsError as e:\n"
            "        print(type(e).__name__)\n"
        )
        done = run_unprivileged("-c", read)
        assert done.stdout.strip() == "UnreadableFile", (done.stdout, done.stderr)
        assert not (root / "quarantine").exists()
    finally:
        Path(f"{two}-shm").chmod(0o644)
        holder.close()


_SOURCE_MADE_UNREADABLE = """
import os, sys
import apsw
import sqlite_cells as sc
parent = sys.argv[1]
source = os.path.join(parent, "ref.db")
conn = apsw.Connection(source)
conn.execute("CREATE TABLE items (x)")
conn.close()
with sc.Runtime(os.path.join(parent, "store2")) as rt:
    handle = rt.space("demo").register_disk_source(source)
    os.chmod(source, 0)
    try:
        handle.read("SELECT x FROM items")
    except sc.QueryError as exc:
        print(type(exc).__name__, exc)
"""


def test_a_source_made_unreadable_after_registration_is_named_with_what_to_do() -> None:
    """Its read said only SQLite's "unable to open database file", naming neither the file
    nor what to do (R60, Errors)."""
    with shared_dir() as parent:
        done = run_unprivileged("-c", _SOURCE_MADE_UNREADABLE, str(parent))
        assert done.returncode == 0, done.stderr
        source = parent / "ref.db"
        assert done.stdout.startswith("QueryError "), done.stdout
        assert f"the source file {source} cannot be opened" in done.stdout
        assert "let this user read it" in done.stdout


def test_a_database_file_the_disk_cannot_open_says_to_free_space(tmp_path: Path) -> None:
    """Errors, §6: on a full disk (here a limit on file sizes) SQLite cannot make the -shm it
    writes beside a database file it opens. `check` reported the file unreadable with advice to
    let this user read and write it ("or free what stands in the way"). It says to free space or
    check the disk (and `inspect` likewise); nothing is changed, and once there is room all is
    well."""
    store = tmp_path / "store"
    db = written_once(store, "a", "d")
    with sc.Runtime(store) as rt:  # holds the space file's -shm, not the database file's
        space = rt.space("a")
        with space.transact():
            space.cell("c", default=0).set(1)
        assert not Path(f"{db.path}-shm").exists()
        before = db.path.read_bytes()
        done = run_cli_limited("RLIMIT_FSIZE", 0, "check", "--store", str(store))
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"({db.path.name}): watermark unreadable" in done.stdout, done.stdout
        assert "disk I/O error" in done.stdout
        assert "free space or check the disk, then run `sqlite-cells check` again" in done.stdout
        assert "let this user" not in done.stdout
        done = run_cli_limited("RLIMIT_FSIZE", 0, "inspect", "--store", str(store))
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "free space or check the disk, then run the command again" in done.stdout
        assert "let this user" not in done.stdout, done.stdout
        assert db.path.read_bytes() == before
    done = run_cli("check", "--store", str(store))  # the limit gone: all is well
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout

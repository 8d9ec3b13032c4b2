"""Opening a fresh store from several processes at once, and stores that cannot be written
(SPEC §5 "Errors": no raw BusyError while the first opener switches the file to WAL)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]

OPENER = """
import sys
import sqlite_cells as sc

sys.stdin.readline()  # every process starts together
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("fresh")
    db = space.sqlite_database("chat", tables={"m": sc.table(id="integer primary key", who="text")})

    @sc.handler
    def write(n: int) -> None:
        space.cell(f"c{n}").set(n)
        db.exec("INSERT INTO m (who) VALUES (?)", [str(n)])

    write(int(sys.argv[2]))
print("ok", flush=True)
"""


def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path: Path) -> None:
    store = tmp_path / "store"  # does not exist yet: every process races to create it
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(OPENER), str(store), str(n)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err
    with sc.Runtime(store) as rt:
        space = rt.space("fresh")
        assert sorted(space.cell(f"c{n}").get() for n in range(4)) == [0, 1, 2, 3]
        db = space.sqlite_database(
            "chat", tables={"m": sc.table(id="integer primary key", who="text")}
        )
        assert sorted(r["who"] for r in db.read("SELECT who FROM m")) == ["0", "1", "2", "3"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_an_unwritable_store_is_reported_not_raw(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o555)
    try:
        with sc.Runtime(store) as rt:
            space = rt.space("demo")
            with (
                pytest.raises(sc.SqliteCellsError, match=r"store|writable|opened"),
                space.transact(),
            ):
                space.cell("c").set(1)
        assert list(store.iterdir()) == []
    finally:
        store.chmod(0o755)


def test_a_runtime_closed_cleanly_leaves_no_wal_or_shm_files(tmp_path: Path) -> None:
    """Closing a runtime closes its readers before its write connection, the one connection
    that may checkpoint and remove a file's -wal and -shm (readers are read-only)."""
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("db", tables={"t": sc.table(id="integer primary key")})
        with space.transact():
            db.exec("INSERT INTO t DEFAULT VALUES")
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 1}]
        query = db.query("SELECT id FROM t")
        assert rt.settle(timeout=10)
        assert query.get().result == [{"id": 1}]
        assert space.cell("c", default=0).get() == 0
    left = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in left if n.endswith(("-wal", "-shm"))] == []
    assert len([n for n in left if n.endswith(".sqlite")]) == 2


def test_a_database_its_writer_let_go_of_while_read_has_its_commits_in_its_file_after_close(
    tmp_path: Path,
) -> None:
    """The write connection attaches one database at a time: writing a second one let go of
    the first while a live query's reader still had it open, and that reader (read-only) was
    then the file's last connection, which cannot copy the -wal into the file: its commits
    stayed in its -wal alone after a clean close, and a copy of the store's .sqlite files
    lacked them. Close lets go of such files through a connection that may."""
    tables = {"t": sc.table(x="integer")}
    with sc.Runtime(tmp_path / "store") as rt:
        space = rt.space("s")
        a = space.sqlite_database("a", tables=tables)
        b = space.sqlite_database("b", tables=tables)
        watched = a.query("SELECT count(*) AS n FROM t")
        with space.transact():
            a.exec("INSERT INTO t (x) VALUES (1)")
        assert rt.settle(timeout=10)
        with space.transact():
            b.exec("INSERT INTO t (x) VALUES (1)")
        assert rt.settle(timeout=10)
        assert watched.get().result == [{"n": 1}]
        a_path = a.path
    left = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert [n for n in left if n.endswith(("-wal", "-shm"))] == []
    conn = apsw.Connection(str(a_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:  # the file alone holds the row
        assert conn.execute("SELECT count(*) FROM t").fetchall() == [(1,)]
    finally:
        conn.close()


_UNREADABLE_STORE = """
import os, sys
import sqlite_cells as sc
store = sys.argv[1]
with sc.Runtime(store) as rt:
    space = rt.space("demo")
    with space.transact():
        space.cell("c").set(1)
for mode in (0o000, 0o666):
    os.chmod(store, mode)
    try:
        with sc.Runtime(store) as rt:
            rt.space("demo").cell("c").get()
        print(oct(mode), "read")
    except sc.SqliteCellsError as exc:
        print(oct(mode), type(exc).__name__, isinstance(exc, ValueError), exc)
    except Exception as exc:
        print(oct(mode), "RAW", type(exc).__name__, exc)
    finally:
        os.chmod(store, 0o755)
"""


def test_a_store_this_user_may_not_search_is_a_named_error_not_a_raw_one() -> None:
    """Errors: a store directory without read or search permission for the user was a raw
    ``PermissionError`` from ``rt.space()``; it is a ``StorePathError`` (a ``SqliteCellsError``
    and ``ValueError``) naming the store and the permission to give."""
    from ..conftest import run_unprivileged, shared_dir

    with shared_dir() as base:
        done = run_unprivileged("-c", _UNREADABLE_STORE, str(base / "store"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    for line, mode in zip(lines, ("0o0", "0o666"), strict=True):
        assert line.startswith(f"{mode} StorePathError True "), line
        assert str(base / "store") in line and "read and search permission" in line, line


_UNREADABLE_DATABASE = """
import os, sys
import sqlite_cells as sc
store = sys.argv[1]
tables = {"t": sc.table(x="integer")}
with sc.Runtime(store) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=tables)
    with space.transact():
        db.exec("INSERT INTO t VALUES (1)")
    path = db.path
os.chmod(path, 0)
try:
    with sc.Runtime(store) as rt:
        rt.space("demo").sqlite_database("d", tables=tables).read("SELECT x FROM t")
    print("read")
except sc.SqliteCellsError as exc:
    print(type(exc).__name__, exc)
from sqlite_cells.cli._cli import main
print("check exit", main(["check", store]))
print(sorted(os.listdir(store)))
os.chmod(path, 0o644)
with sc.Runtime(store) as rt:
    print(rt.space("demo").sqlite_database("d", tables=tables).read("SELECT x FROM t"))
"""


def test_a_database_file_this_user_may_not_open_is_not_damage() -> None:
    """R71: a database file SQLite cannot open for want of permission (or a full disk, an I/O
    error) says nothing of its rows: it was taken for damage — "damaged", quarantined, a copy
    kept — and is now an error naming the file and what to check, with nothing decided."""
    from ..conftest import run_unprivileged, shared_dir

    with shared_dir() as base:
        done = run_unprivileged("-c", _UNREADABLE_DATABASE, str(base / "store"))
    assert done.returncode == 0, done.stderr
    error, *checked, listing, after = done.stdout.splitlines()
    # (A DatabaseError: the file could not be opened, for a reason that is not its rows.)
    assert error.startswith("UnreadableFile database of:"), error
    assert "damaged" not in error and str(base) in error, error
    assert checked[-1] == "check exit 1", checked
    report = "\n".join(checked)
    assert "damaged" not in report and "--repair" not in report, report
    assert "quarantine" not in listing, listing
    assert after == "[{'x': 1}]"

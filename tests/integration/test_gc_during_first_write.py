"""gc and a new database's first write (R74, R73): the write creates the database file before its
commit names the handle in the space's log, so for a moment the file exists, holds no commit and
no space names it. gc must leave it to the write: removing it would acknowledge the commit into
an unlinked file. A real writer thread, gc in a real subprocess and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="integer")}
# A first write whose statement runs a while (rows of computed values, nothing stored large).
SLOW_INSERT = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 40000) "
    "INSERT INTO t (v) SELECT length(hex(randomblob(2000))) + x FROM c"
)


class Writer:
    """Runs one transaction writing ``db`` on a thread of its own and keeps how it ended."""

    def __init__(self, space: sc.Space, db: sc.SqliteDb, sql: str) -> None:
        self.error: BaseException | None = None
        self.done = False

        def write() -> None:
            try:
                with space.transact():
                    db.exec(sql)
                self.done = True
            except BaseException as exc:  # reported by the test, not lost with the thread
                self.error = exc

        self.thread = threading.Thread(target=write)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(120)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        assert self.done


def _space_file(store: Path) -> Path:
    (found,) = sorted(store.glob("space-*.sqlite"))
    return found


def _wait_until_attached(db: sc.SqliteDb, writer: Writer) -> None:
    """Until the writer opened the new file's WAL (it holds it from then on to its commit)."""
    wal = Path(f"{db.path}-wal")
    while not wal.exists():
        assert writer.thread.is_alive(), writer.error
        writer.thread.join(0.005)


@pytest.fixture
def runtime(store: Path) -> Iterator[sc.Runtime]:
    rt = sc.Runtime(store, exec_timeout=60)
    try:
        yield rt
    finally:
        rt.close()


def test_gc_keeps_the_file_of_a_first_write_waiting_to_commit(
    store: Path, runtime: sc.Runtime
) -> None:
    space = runtime.space("s")
    with space.transact():
        space.cell("c").set(1)  # the space file exists
    db = space.sqlite_database("db", tables=TABLES)
    # Another connection holds the space's write lock: the first write attaches its new file,
    # then waits for the lock, its commit in flight for as long as the test holds it.
    lock = apsw.Connection(str(_space_file(store)))
    lock.execute("BEGIN IMMEDIATE")
    writer = Writer(space, db, "INSERT INTO t (v) VALUES (7)")
    try:
        _wait_until_attached(db, writer)
        listed = run_cli("gc", str(store), "--json")  # a file that holds no commit yet is listed
        assert json.loads(listed.stdout) == {
            "removed": False,
            "files": [db.path.name],
            "databases": [{"space": None, "file": db.path.name, "name": None}],  # (not named yet)
        }
        done = run_cli("gc", str(store), "--yes", "--json")
        assert space.gc() == []
        assert writer.thread.is_alive()  # both ran while the write was in flight
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    writer.join()
    assert done.returncode == 1, done.stdout
    report = json.loads(done.stdout)
    assert report["removed"] is True and report["files"] == []
    assert [f["file"] for f in report["failed"]] == [db.path.name]
    assert "another connection has it open" in report["failed"][0]["why"]
    # The commit went into the file at the path: read back, written again, not garbage.
    assert db.path.exists()
    assert db.read("SELECT v FROM t") == [{"v": 7}]
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (8)")
    assert db.read("SELECT v FROM t ORDER BY v") == [{"v": 7}, {"v": 8}]
    assert space.gc() == [] and db.path.exists()


def test_gc_run_again_and_again_never_removes_a_file_whose_first_insert_is_running(
    store: Path, runtime: sc.Runtime
) -> None:
    space = runtime.space("s")
    with space.transact():
        space.cell("c").set(1)
    db = space.sqlite_database("db", tables=TABLES)
    writer = Writer(space, db, SLOW_INSERT)
    _wait_until_attached(db, writer)
    removed: list[Path] = []
    runs = 0
    while writer.thread.is_alive():
        removed += space.gc()
        runs += 1
        assert db.path.exists()
    writer.join()
    assert runs > 0 and removed == []
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 40000}]
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (-1)")
    assert db.read("SELECT count(*) AS n FROM t") == [{"n": 40001}]


def test_gc_still_removes_an_unwritten_file_nobody_has_open(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with space.transact():
            space.cell("c").set(1)
    stray = store / "cell-0123456789abcdef0123456789abcdef.sqlite"
    conn = apsw.Connection(str(stray))  # set up as a first write leaves it, then closed
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    held = apsw.Connection(str(stray), flags=apsw.SQLITE_OPEN_READONLY)
    held.execute("SELECT count(*) FROM t").fetchall()  # a reader has it open: kept
    done = run_cli("gc", str(store), "--yes")
    assert done.returncode == 1
    assert f"could not remove {stray.name}: kept: another connection has it open" in done.stdout
    assert stray.exists()
    held.close()
    done = run_cli("gc", str(store), "--yes")
    assert done.returncode == 0, done.stdout
    assert f"removed {stray.name}" in done.stdout
    assert sorted(p.name for p in store.glob("cell-*")) == []


# A first write in rollback mode, its transaction open: the file is locked, no space names it.
FIRST_WRITE = """
import sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN EXCLUSIVE")
conn.execute("CREATE TABLE t (x)")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
"""


def test_gc_calls_a_file_locked_by_its_first_write_a_write_under_way_not_foreign(
    store: Path,
) -> None:
    # gc cannot read the file (its watermark, its tables) while the write holds it: it is
    # neither a foreign file nor an orphan, and gc never advises moving it out of the store.
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with space.transact():
            space.cell("c").set(1)
    fresh = store / "cell-0123456789abcdef0123456789abcdef.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", FIRST_WRITE, str(fresh)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None and writer.stdin is not None
        try:
            assert writer.stdout.readline().strip() == "held"
            before = fresh.read_bytes()
            for args in (("gc",), ("gc", "--yes")):
                done = run_cli(*args, str(store))
                assert (done.returncode, done.stderr) == (0, ""), done.stderr
                assert done.stdout.startswith(f"kept {fresh.name}: no space names it yet, "), (
                    done.stdout
                )
                assert "first write under way" in done.stdout
                assert "run gc again" in done.stdout
                assert "out of the store" not in done.stdout and "orphan" not in done.stdout
                assert fresh.read_bytes() == before
            done = run_cli("gc", str(store), "--json")
            (entry,) = json.loads(done.stdout)["kept"]
            assert entry["file"] == fresh.name and "first write under way" in entry["why"]
            # `check` says the same of it: not an orphan that "cannot be read" (nothing decided)
            done = run_cli("check", str(store))
            assert done.stderr == "" and "first write under way" in done.stdout, done.stdout
            assert "orphan" not in done.stdout and "cannot be read" not in done.stdout
            # … and `inspect`: in use, not an orphaned file that "cannot be read" (it was one)
            done = run_cli("inspect", str(store), "--json")
            shown = json.loads(done.stdout)
            assert (shown["orphaned_files"], shown["in_use_files"]) == ([], [fresh.name])
            assert any("first write under way" in f for f in shown["findings"])
            done = run_cli("inspect", str(store))
            assert done.returncode == 1 and done.stderr == "", done.stderr
            assert f"database file {fresh.name} in use: no space names it yet" in done.stdout
            assert "orphan" not in done.stdout and "unreadable" not in done.stdout
            assert fresh.read_bytes() == before
            writer.stdin.write("\n")
            writer.stdin.flush()
            assert writer.wait(60) == 0
        finally:
            writer.kill()
    done = run_cli("gc", str(store), "--yes")  # let go, never committed: an unused file now
    assert done.returncode == 0, done.stdout
    assert f"removed {fresh.name}" in done.stdout and not fresh.exists()

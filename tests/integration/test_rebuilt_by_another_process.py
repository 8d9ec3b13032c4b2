"""A database file rebuilt from its space's log by another process (R53, R71, R73).

`sqlite-cells check --repair`, or another process's runtime that met corrupt pages, rebuilds a
damaged database file: a new file (a new inode) takes the path. A runtime already running finds
that file is not the one it pinned, forgets what it knew of the database and checks the file now
at the path against its space, as a new runtime does at first use: in sync, it is pinned, read
and written. A commit that finds the file replaced still commits nothing (`StoreChanged`, R73);
the next one commits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import apsw

import sqlite_cells as sc

from .._files import write_at
from ..conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="text")}
ROWS = 40


def _fill(space: sc.Space, db: sc.SqliteDb) -> None:
    for i in range(ROWS):
        _write(space, db, "x" * 500 + str(i))


def _write(space: sc.Space, db: sc.SqliteDb, value: str) -> None:
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (?)", [value])


def _corrupt(path: Path) -> None:
    """Overwrite half of ``t``'s leaf pages: the watermark and journal stay readable. Written
    through a descriptor kept open: the runtime has the file open, and a close would drop its
    locks (the process that repairs the file next would take it for unused)."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [
        page
        for (page,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf'"
        )
    ]
    size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.close()
    for page in pages[len(pages) // 2 :]:
        write_at(path, (page - 1) * size, b"\x0d\x00\x00\xff\xff\x00\x10\x00")


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


def _repair_in_another_process(store: Path, db: sc.SqliteDb) -> None:
    before = _identity(db.path)
    _corrupt(db.path)
    done = run_cli("check", str(store), "--repair")
    assert done.returncode in (0, 1), done.stderr
    assert _identity(db.path) != before  # rebuilt: a new file at the path
    assert list((store / "quarantine").iterdir())  # the damaged copy is kept


def _count(db: sc.SqliteDb) -> int:
    rows = db.read("SELECT count(*) AS n FROM t")
    return int(rows[0]["n"])


def test_a_file_rebuilt_by_check_repair_is_read_and_written(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        _fill(space, db)
        query = db.query("SELECT count(*) AS n FROM t")
        rt.settle(timeout=10)
        assert query.get().result == [{"n": ROWS}]
        _repair_in_another_process(store, db)
        assert _count(db) == ROWS  # the rebuilt file is checked, pinned and read
        _write(space, db, "after")  # and written
        assert _count(db) == ROWS + 1
        rt.settle(timeout=10)
        state = query.get()
        assert state.error is None and state.result == [{"n": ROWS + 1}]
    with sc.Runtime(store) as again:
        db = again.space("demo").sqlite_database("d", tables=TABLES)
        assert _count(db) == ROWS + 1


def test_the_commit_that_finds_the_file_rebuilt_commits_nothing_and_the_next_commits(
    store: Path,
) -> None:
    """R73 for the commit that finds it; its message's remedy is what happens next."""
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        _fill(space, db)
        _repair_in_another_process(store, db)
        seq = space.file.seen_seq
        try:
            _write(space, db, "lost")
        except sc.StoreChanged as exc:
            assert exc.path == str(db.path)
            assert "nothing was committed" in str(exc)
            assert "checks the file now at the path against its space again" in str(exc)
            assert space.file.seen_seq == seq
        else:
            raise AssertionError("the commit that found the file replaced committed")
        _write(space, db, "after")  # what the message says: run the transaction again
        assert space.file.seen_seq == seq + 1
        assert [r["v"] for r in db.read("SELECT v FROM t WHERE v IN ('lost', 'after')")] == [
            "after"
        ]
        assert _count(db) == ROWS + 1


_READER = """
import sys
import sqlite_cells as sc
store = sys.argv[1]
tables = {"t": sc.table(id="integer primary key", v="text")}
with sc.Runtime(store, poll_interval=0.01) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=tables)
    print("first", db.read("SELECT count(*) AS n FROM t")[0]["n"], flush=True)
    sys.stdin.readline()
    try:
        print("second", db.read("SELECT count(*) AS n FROM t")[0]["n"], flush=True)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (?)", ["child"])
        print("third", db.read("SELECT count(*) AS n FROM t")[0]["n"], flush=True)
    except sc.SqliteCellsError as exc:
        print("error", type(exc).__name__, exc, flush=True)
"""


def test_a_file_rebuilt_by_another_processs_runtime_is_read_and_written(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        _fill(space, db)
        with subprocess.Popen(
            [sys.executable, "-c", _READER, str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline() == f"first {ROWS}\n"
            before = _identity(db.path)
            _corrupt(db.path)
            try:
                db.read("SELECT v FROM t")
            except sc.QueryError as exc:
                assert str(db.path) in str(exc)
            else:
                raise AssertionError("the corrupt pages were read")
            _write(space, db, "after")  # this runtime rebuilds the file first
            assert _identity(db.path) != before
            assert _count(db) == ROWS + 1
            out, err = child.communicate("go\n", timeout=60)
        assert child.returncode == 0, err
        assert "Traceback" not in err, err
        assert out.splitlines() == [f"second {ROWS + 1}", f"third {ROWS + 2}"], out
        assert _count(db) == ROWS + 2

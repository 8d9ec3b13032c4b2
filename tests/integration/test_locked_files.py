"""A database file another process holds locked (R44): reads and writes wait for the lock no
longer than their timeouts, say so, and decide nothing about the file; once the lock is let go
everything works as before. The holder is a real process with SQLite's exclusive locking mode."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sqlite_cells as sc

NOTES = {"notes": sc.table(id="integer primary key", body="text")}
INSERT = "INSERT INTO notes (body) VALUES (?)"
SELECT = "SELECT body FROM notes ORDER BY id"

HOLDER = """
import sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("PRAGMA locking_mode=EXCLUSIVE").fetchall()
conn.execute("BEGIN EXCLUSIVE")
conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
"""


@pytest.fixture
def written(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("notes", tables=NOTES)
        with space.transact():
            db.exec(INSERT, ["first"])
        return db.path


def test_a_locked_database_file_times_out_reads_and_writes_and_is_left_as_it_is(
    store: Path, written: Path
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(written)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            _while_held(store, written, holder)
        finally:
            holder.kill()


def _while_held(store: Path, written: Path, holder: subprocess.Popen[str]) -> None:
    identity = written.stat().st_ino
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    with sc.Runtime(store, query_timeout=0.3, exec_timeout=0.3) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("notes", tables=NOTES)
        c = space.cell("c", default=0)
        # The first read checks the file against its space (R71): it cannot, for now.
        with pytest.raises(sc.QueryTimeout, match="for a lock that another connection holds"):
            db.read(SELECT)
        q = db.query(SELECT)
        rt.settle(timeout=30)
        assert isinstance(q.get().error, sc.QueryTimeout)
        waited = "for a lock that another connection holds"
        with pytest.raises(sc.ExecTimeout, match=waited), space.transact():
            c.set(1)
            db.exec(INSERT, ["second"])
        assert c.get() == 0 and space.file.seen_seq == 1
        # Waiting is not damage: the file was neither moved nor rebuilt.
        assert written.stat().st_ino == identity
        assert not (store / "quarantine").exists()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(30) == 0
        assert db.read(SELECT) == [{"body": "first"}]
        with space.transact():
            c.set(1)
            db.exec(INSERT, ["second"])
        rt.settle(timeout=30)
        assert q.get().error is None
        assert q.get().result == [{"body": "first"}, {"body": "second"}]
        assert c.get() == 1

"""A database file whose first commit another process was killed in (R71, R72).

A new database file is in rollback mode until its creator puts it in WAL mode, so a writer
killed there leaves a hot journal. SQLite lets only a connection that may write the file roll
it back; a runtime that had already read the file (blank, as the creator left it a moment
before) reads it through read-only connections, and must still read it, not fail for good.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"messages": sc.table(id="integer primary key", body="text")}
COUNT = "SELECT count(*) AS n FROM messages"

# Creates the file as a runtime does (opened, then put in WAL mode) and is SIGKILLed right after
# its first write to it (crashkit's VFS shim), once the parent says go.
KILLED_CREATOR = """
import sys, apsw
sys.path.insert(0, "tests/integration")
import crashkit
plan = crashkit.Plan(fault=crashkit.Fault.parse("db:write:1:after", "kill"))
vfs = crashkit.install(plan)
conn = apsw.Connection(sys.argv[1])
print("opened", flush=True)
sys.stdin.readline()
plan.arm()
conn.execute("PRAGMA journal_mode=WAL").fetchall()
print("survived", flush=True)
"""


def test_a_file_seen_blank_then_left_with_a_hot_journal_is_rolled_back_and_read(
    tmp_path: Path,
) -> None:
    with sc.Runtime(tmp_path / "store") as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        assert db.read(COUNT) == [{"n": 0}]  # no file yet
        with subprocess.Popen(
            [sys.executable, "-c", KILLED_CREATOR, str(db.path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as creator:
            assert creator.stdout is not None and creator.stdin is not None
            assert creator.stdout.readline().strip() == "opened"
            assert db.read(COUNT) == [{"n": 0}]  # the blank file, read and kept in the pool
            creator.stdin.write("\n")
            creator.stdin.flush()
            assert creator.stdout.read() == ""  # killed before it could say it survived
            assert creator.wait(timeout=30) == -9
        journal = db.path.with_name(db.path.name + "-journal")
        assert journal.stat().st_size > 0  # hot: what a read-only connection may not undo

        query = db.query(COUNT)  # its first run reads on a query worker
        rt.settle()
        state = query.get()
        assert state.error is None and state.result == [{"n": 0}]
        assert db.read(COUNT) == [{"n": 0}]
        assert not journal.exists()  # rolled back: the file as its creator found it

        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('after')")
        rt.settle()
        assert query.get().result == [{"n": 1}]
        assert db.read("SELECT body FROM messages") == [{"body": "after"}]
    with sc.Runtime(tmp_path / "store") as again:
        db = again.space("demo").sqlite_database("chat", tables=TABLES)
        assert db.read("SELECT body FROM messages") == [{"body": "after"}] and db.rev == 1

"""A refused first write removes the database file it created (R7) while other processes open
the same path: a runtime that opened the file just before it was unlinked must not touch the
``-wal``/``-shm`` that belong to the new file at the path, and a commit is acknowledged only if
its rows are in the file at the path (R71). Real subprocesses, paused at a chosen point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import apsw

import sqlite_cells as sc
from sqlite_cells.files import attach, detach, remove_unused_database
from sqlite_cells.runtime import remove_unused

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"t": sc.table(id="integer primary key", tag="text not null")}

# Attaches the database file for its first write and stops right after SQLite opened it (before
# the switch to WAL and the first read), until told to go on.
PAUSED_WRITER = """
import sys
import sqlite_cells as sc
from sqlite_cells.files import _layout

original = _layout._set_wal
paused = []

def set_wal(conn):
    if not paused:
        paused.append(True)
        print("opened", flush=True)
        assert sys.stdin.readline().strip() == "go"
    original(conn)

_layout._set_wal = set_wal
tables = {"t": sc.table(id="integer primary key", tag="text not null")}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("fresh", tables=tables)
    with space.transact():
        db.exec("INSERT INTO t (tag) VALUES (?)", ["child"])
    print("ack", sorted(r["tag"] for r in db.read("SELECT tag FROM t")), flush=True)
"""


def _blank_file(path: Path) -> None:
    """The file a refused first write created, as its removal leaves it after switching it to a
    rollback journal (``remove_unused``), before it locks it: no table, no lock held."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    conn.close()


def _tags_in_file(path: Path) -> list[str]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return sorted(str(tag) for (tag,) in conn.execute("SELECT tag FROM t"))
    finally:
        conn.close()


def test_a_file_removed_under_an_attach_leaves_the_new_files_commits_in_place(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("fresh", tables=TABLES)
        with space.transact():  # the space file exists before the race
            space.cell("other").set(1)
        path = db.path
        _blank_file(path)
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PAUSED_WRITER), str(store)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "opened"
            # The refused first write's clean-up: nobody holds a lock on the blank file, so it
            # is removed although the child has it open.
            assert remove_unused(path, lambda _conn: True)
            assert not path.exists()
            # A good first write creates the file again and commits; this runtime stays open
            # (its commit still in the -wal) while the child goes on.
            with space.transact():
                db.exec("INSERT INTO t (tag) VALUES (?)", ["parent"])
            child.stdin.write("go\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, err
        assert out.strip() == "ack ['child', 'parent']"
        assert sorted(r["tag"] for r in db.read("SELECT tag FROM t")) == ["child", "parent"]
        assert db.rev == 2
    # Every acknowledged row is in the file at the path, before any runtime could replay it.
    assert _tags_in_file(path) == ["child", "parent"]
    check = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", "check", str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# A good first write in a runtime of its own: it creates the file again and commits.
GOOD_WRITER = """
import sys
import sqlite_cells as sc
tables = {"t": sc.table(id="integer primary key", tag="text not null")}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("demo")
    with space.transact():
        space.sqlite_database("fresh", tables=tables).exec(
            "INSERT INTO t (tag) VALUES (?)", ["child"]
        )
"""


def test_a_read_after_the_file_it_read_was_removed_reads_the_file_at_the_path(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("fresh", tables=TABLES)
        with space.transact():
            space.cell("other").set(1)
        path = db.path
        _blank_file(path)
        # A read of the empty file (R41: the declared tables read empty): its pooled
        # connection holds no lock on a file in rollback mode...
        assert db.read("SELECT tag FROM t") == []
        # ...so the refused first write's clean-up removes the file under it.
        assert remove_unused(path, lambda _conn: True)
        # The empty file going away lost nothing: no error, the declared tables read empty.
        assert db.read("SELECT tag FROM t") == []
        good = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(GOOD_WRITER), str(store)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert good.returncode == 0, good.stderr
        assert _tags_in_file(path) == ["child"]
        # This runtime reads the file now at the path, not the removed one.
        assert [r["tag"] for r in db.read("SELECT tag FROM t")] == ["child"]
        assert db.rev == 1
        assert [r["tag"] for r in db.read("SELECT tag FROM t")] == ["child"]


def test_a_refused_first_write_removes_only_the_file_it_attached(
    store: Path, tmp_path: Path
) -> None:
    """Two refused first writes that both found the path free both count the file as theirs
    (R7); the second one's clean-up must not remove the empty file that a third runtime has
    just created at the path and not yet set up: SQLite would then, in that runtime, delete
    the -wal of whichever file is at the path next, with its commits (a 0-byte database file
    "has no WAL")."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("fresh", tables=TABLES)
        with space.transact():
            space.cell("other").set(1)
        path = db.path
        # The two refused writers' write connections, both having attached the new file.
        first = apsw.Connection(str(tmp_path / "first.sqlite"))
        second = apsw.Connection(str(tmp_path / "second.sqlite"))
        assert attach(first, path)
        assert not attach(second, path)
        # The second one's clean-up lets go of the file and waits for the space's write lock,
        # which the first one's clean-up holds while it removes the file.
        detach(second)
        assert remove_unused_database(first, path)
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PAUSED_WRITER), str(store)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "opened"  # it created the file anew
            assert path.exists()
            # Not the file the second writer attached: it stays.
            assert not remove_unused_database(second, path)
            assert path.exists()
            with space.transact():
                db.exec("INSERT INTO t (tag) VALUES (?)", ["parent"])
            child.stdin.write("go\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        first.close()
        second.close()
        assert child.returncode == 0, err
        assert out.strip() == "ack ['child', 'parent']"
        assert sorted(r["tag"] for r in db.read("SELECT tag FROM t")) == ["child", "parent"]
    assert _tags_in_file(path) == ["child", "parent"]

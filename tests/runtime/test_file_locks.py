"""SQLite's locks in this process survive another SQLite library in the same process (Linux).

Python's ``sqlite3`` module carries its own SQLite, which knows nothing of apsw's. With SQLite's
classic POSIX locks, its first connection to a store file took the file for unused and reset
the ``-shm`` the runtime had mapped (the process died of a bus error), and its close dropped
the runtime's locks. The runtime holds its locks as open file description locks
(``runtime/_file_locks.py``): the other library then sees them as it would another process's.
"""

from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import locks_held

from ..sqlite_cells.test_locks_kept import _RESERVED, _held

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="open file description locks are Linux's"
)

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _count(path: str | Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def test_pythons_sqlite3_reading_the_store_beside_a_running_runtime(rt: sc.Runtime) -> None:
    """A notebook's habit: ``sqlite3.connect(db.path)`` between commits, with a live query
    subscribed. Each read sees every commit that returned; the runtime goes on committing and
    re-running, and a runtime opened afterwards reads the same rows (nothing was lost)."""
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)
    live = db.query("SELECT count(*) AS n FROM t")
    seen: list[int] = []
    subscription = live.observe().subscribe(lambda state: seen.append(len(state.result or [])))
    try:
        for i in range(1, 61):
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES (?)", [str(i)])
                counter.set(i)
            assert _count(db.path, "SELECT count(*) FROM t") == i
            space_file = glob.glob(str(rt.store / "space-*.sqlite"))[0]
            assert _count(space_file, "SELECT count(*) FROM _cf_log") >= i
        rt.settle()
        assert live.get().result == [{"n": 60}]
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 60}]
    finally:
        subscription.dispose()
    assert seen  # it was told
    store = rt.store
    rt.close()
    with sc.Runtime(store) as again:
        space = again.space("demo")
        assert space.sqlite_database("d", tables=TABLES).read("SELECT count(*) AS n FROM t") == [
            {"n": 60}
        ]
        assert space.cell("counter", default=0).get() == 60


def test_a_write_of_pythons_sqlite3_waits_for_a_write_of_this_process(tmp_path: Path) -> None:
    """The other library's writer is kept out while a connection of ours writes, as another
    process's is (with classic locks, both held the write lock at once), and the other way
    round."""
    path = tmp_path / "w.db"
    ours = apsw.Connection(str(path))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        ours.setbusytimeout(0)
        ours.execute("PRAGMA journal_mode=WAL").fetchall()
        ours.execute("CREATE TABLE t (v)")
        ours.execute("BEGIN IMMEDIATE")
        ours.execute("INSERT INTO t VALUES ('ours')")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        ours.execute("COMMIT")
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES ('other')")
        with pytest.raises(apsw.BusyError):
            ours.execute("BEGIN IMMEDIATE")
        other.execute("COMMIT")
        assert ours.execute("SELECT v FROM t ORDER BY rowid").fetchall() == [("ours",), ("other",)]
    finally:
        other.close()
        ours.close()


def test_a_forked_child_is_kept_out_of_its_parents_write(tmp_path: Path) -> None:
    """A child forked while the parent holds a write lock opens the file anew and is refused
    the lock (it inherits the parent's descriptors, not its locks)."""
    path = tmp_path / "f.db"
    conn = apsw.Connection(str(path))
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("CREATE TABLE t (v)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (1)")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once, whatever happens
            code = 3
            try:
                child = apsw.Connection(str(path))
                child.setbusytimeout(0)
                try:
                    child.execute("BEGIN IMMEDIATE")
                    code = 1  # got the lock the parent holds
                except apsw.BusyError:
                    code = 0
            finally:
                os.write(write, bytes([code]))
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        assert answer == bytes([0])
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_the_descriptions_kept_are_given_up_with_the_files(tmp_path: Path) -> None:
    """One kept description per file while SQLite has it open; none once it is closed."""
    before = locks_held()
    conns = [apsw.Connection(str(tmp_path / "g.db")) for _ in range(3)]
    conns[0].execute("PRAGMA journal_mode=WAL").fetchall()
    for conn in conns:
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    files, descriptors = locks_held()
    assert files - before[0] == 2  # the database file and its -shm
    # SQLite locks a file through the descriptor of whichever connection asks first
    assert descriptors - before[1] >= 2
    for conn in conns:
        conn.close()
    assert locks_held() == before


def test_a_write_lock_after_a_read_only_connection_locked_the_file_first(tmp_path: Path) -> None:
    """The read pool's read-only connection is often the first to lock a file: the writer of
    the same process still gets its write locks (the description the locks are held on is
    opened for writing, not copied from the read-only descriptor)."""
    path = tmp_path / "r.db"
    writer = apsw.Connection(str(path))
    writer.execute("CREATE TABLE t (v)")
    writer.close()
    reader = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    writer = apsw.Connection(str(path))
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
        reader.execute("COMMIT")
        writer.setbusytimeout(0)
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO t VALUES (1)")
        writer.execute("COMMIT")
        writer.execute("PRAGMA journal_mode=WAL").fetchall()
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(1,)]
    finally:
        reader.close()
        writer.close()
    assert not Path(f"{path}-wal").exists()  # the last close checkpointed and removed it


def test_the_locks_go_on_through_the_next_connection_once_the_first_closes(
    tmp_path: Path,
) -> None:
    """The first connection to lock a file holds its locks for the process; once it closes,
    the next connection's locks are held as firmly (another process sees them, a close of
    another descriptor of the file leaves them)."""
    path = tmp_path / "j.db"  # a rollback journal: no lock is held between transactions
    before = locks_held()
    first, second = apsw.Connection(str(path)), apsw.Connection(str(path))
    try:
        first.execute("CREATE TABLE t (v)")
        second.execute("SELECT count(*) FROM t").fetchall()
        first.close()
        second.execute("BEGIN IMMEDIATE")
        second.execute("INSERT INTO t VALUES (1)")
        os.close(os.open(path, os.O_RDONLY))  # a plain open and close of the file
        assert _held(path, _RESERVED)
        second.execute("COMMIT")
        assert not _held(path, _RESERVED)
    finally:
        second.close()
    assert locks_held() == before  # nothing of the file is kept


_WRITER = """
import sys, apsw
import sqlite_cells  # the same held locks as the test's process
for i in range(int(sys.argv[2])):
    conn = apsw.Connection(sys.argv[1])
    conn.setbusytimeout(20000)
    with conn:
        conn.execute("INSERT INTO t (who, n) VALUES ('child', ?)", (i,))
    conn.close()
"""


def test_connections_opened_and_closed_by_threads_and_another_process_never_write_at_once(
    tmp_path: Path,
) -> None:
    """Many short connections of this process's threads and of another process write one WAL
    file at once: each write lands once, the file stays whole. (A lock lost while one
    connection closed and another locked would let two writers in at the same time.)"""
    path = tmp_path / "busy.db"
    setup = apsw.Connection(str(path))
    setup.execute("PRAGMA journal_mode=WAL").fetchall()
    setup.execute("CREATE TABLE t (who TEXT, n INTEGER)")
    setup.close()
    rounds = 150
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(rounds)])
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(rounds):
                conn = apsw.Connection(str(path))
                conn.setbusytimeout(20000)
                with conn:
                    conn.execute("INSERT INTO t (who, n) VALUES (?, ?)", (name, i))
                if i % 3 == 0:
                    conn.execute("SELECT count(*) FROM t").fetchall()
                conn.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"thread-{k}",)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert child.wait(timeout=120) == 0
    assert errors == []
    check = apsw.Connection(str(path))
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        counts = dict(check.execute("SELECT who, count(DISTINCT n) FROM t GROUP BY who"))
        assert counts == {"child": rounds, **{f"thread-{k}": rounds for k in range(3)}}
        assert check.execute("SELECT count(*) FROM t").fetchall() == [(4 * rounds,)]
    finally:
        check.close()


_OWN_WRITER = """
import os, sqlite3, sys, time
import sqlite_cells as sc

def classic_lock_of_mine(path):
    # a POSIX lock of this process on the file: the sqlite3 module's, ours are OFD locks
    st = os.stat(path)
    file = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as locks:
        return any(
            line.split()[1] == "POSIX" and line.split()[4] == str(os.getpid())
            and line.split()[5] == file
            for line in locks if "->" not in line
        )

def descriptors_of(directory):
    return sum(
        os.readlink(f"/proc/self/fd/{fd}").startswith(directory + "/")
        for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")
    )

source, store, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
writer = sqlite3.connect(source, isolation_level=None)
writer.execute("PRAGMA journal_mode=WAL")
writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
writer.execute("INSERT INTO t (v) VALUES ('a')")
rt = sc.Runtime(store=store)
live = rt.space("demo").register_disk_source(source).query("SELECT count(*) AS n FROM t")
rt.settle(5)
for i in range(rounds):
    writer.execute("INSERT INTO t (v) VALUES ('b')")
    deadline = time.monotonic() + 5
    while live.get().result != [{"n": i + 2}] and time.monotonic() < deadline:
        time.sleep(0.002)
    assert live.get().result == [{"n": i + 2}], (i, live.get())
    assert classic_lock_of_mine(source + "-shm"), f"the sqlite3 module's lock is gone at {i}"
    if i == 10:
        early = descriptors_of(os.path.dirname(source))
print("followed", rounds, "commits", flush=True)
assert descriptors_of(os.path.dirname(source)) <= early + 2, "descriptors kept grow"
rt.close()
writer.close()
print(sorted(os.listdir(os.path.dirname(source))))
"""


def test_a_source_written_by_this_process_s_sqlite3_module_is_followed_live(
    tmp_path: Path,
) -> None:
    """A WAL file written by this process's own ``sqlite3`` connection, registered as a disk
    source with a live query: the runtime's read connections to it, opened and closed at each
    re-run, left that library's lock on the ``-shm``'s dead man switch byte at each close, and
    the next one reset the ``-shm`` under its mapping (the process died of a bus error, 4 runs
    in 5). Run in a child process, so that such a death fails the test."""
    source = tmp_path / "own" / "ref.db"
    source.parent.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", _OWN_WRITER, str(source), str(tmp_path / "store"), "120"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.splitlines() == ["followed 120 commits", "['ref.db']"]

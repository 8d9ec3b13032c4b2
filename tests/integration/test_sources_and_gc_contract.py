"""Injected sources met as another program leaves them, and gc run as a separate command
(R60, R62, R74, Errors): real files, real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

WAIT = 20.0  # bound on waits for what another program's change brings (never reached when right)


def _source(path: Path, rows: int = 1) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    conn.close()
    return path


def _beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _wait_for(q: sc.Query[Any], done: Callable[[sc.QueryState[Any]], bool]) -> bool:
    reached = threading.Event()
    subscription = q.observe().subscribe(lambda state: done(state) and reached.set())
    try:
        return reached.wait(WAIT)
    finally:
        subscription.dispose()


def _interrupt_a_write(path: Path) -> None:
    """Another program dies in the middle of a write to ``path`` (rollback-journal mode): its
    pages are in the file and the journal that undoes them is hot."""
    code = (
        "import apsw, os\n"
        f"c = apsw.Connection({str(path)!r})\n"
        "c.execute('PRAGMA cache_size = 1')\n"
        "c.execute('BEGIN')\n"
        "for i in range(2000):\n"
        "    c.execute('INSERT INTO t VALUES (?)', ('x' * 300,))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert _beside(path) == [path.name, f"{path.name}-journal"]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[sc.Runtime]:
    with sc.Runtime(tmp_path / "store", poll_interval=0.02) as runtime:
        yield runtime


def test_a_source_swapped_for_a_named_pipe_stalls_no_other_source(
    rt: sc.Runtime, outside: Path
) -> None:
    """The poller that keeps sources live never opens what is not a regular file: a named pipe
    at a source's path would hold it until some program wrote to the pipe."""
    space = rt.space("demo")
    swapped = _source(outside / "swapped.db")
    other = _source(outside / "other.db")
    first = space.register_disk_source(str(swapped)).query("SELECT count(*) AS n FROM t")
    second = space.register_disk_source(str(other)).query("SELECT count(*) AS n FROM t")
    rt.settle()
    assert first.get().result == [{"n": 1}] and second.get().result == [{"n": 1}]
    swapped.unlink()
    os.mkfifo(swapped)
    try:
        assert _wait_for(first, lambda state: state.error is not None), first.get()
        error = first.get().error
        assert isinstance(error, sc.QueryError) and str(swapped) in str(error)
        assert first.get().result is None
        writer = apsw.Connection(str(other))
        writer.execute("INSERT INTO t VALUES (2)")
        writer.close()
        assert _wait_for(second, lambda state: state.result == [{"n": 2}]), second.get()
    finally:
        _release_readers(swapped)


def _release_readers(fifo: Path) -> None:
    """Let anything stuck opening the pipe for reading go (it then reads end of file)."""
    for _ in range(4):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return  # nobody is waiting on it


def test_a_source_with_a_hot_journal_says_so_and_what_to_do(rt: sc.Runtime, outside: Path) -> None:
    """A write another program left half done: SQLite must roll it back before the file can be
    read, and sqlite-cells never writes a source. The error names the file and the remedy,
    not SQLite's 'attempt to write a readonly database'; the journal is left as found."""
    path = _source(outside / "ref.db")
    space = rt.space("demo")
    handle = space.register_disk_source(str(path))
    q = handle.query("SELECT count(*) AS n FROM t")
    rt.settle()
    assert q.get().result == [{"n": 1}]
    _interrupt_a_write(path)
    journal = (outside / "ref.db-journal").read_bytes()
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT count(*) AS n FROM t")
    message = str(info.value)
    assert "hot journal" in message and str(path) in message and "readonly" not in message
    assert _wait_for(q, lambda state: state.error is not None), q.get()
    assert isinstance(q.get().error, sc.QueryError) and "hot journal" in str(q.get().error)
    assert _beside(path) == ["ref.db", "ref.db-journal"]
    assert (outside / "ref.db-journal").read_bytes() == journal
    with pytest.raises(sc.DiskSourceError) as refused:  # registering it again says the same
        rt.space("other").register_disk_source(str(path))
    assert refused.value.rule == "sqlite-file" and "hot journal" in str(refused.value)
    apsw.Connection(str(path)).execute("SELECT count(*) FROM t").fetchall()  # its own program
    assert _wait_for(q, lambda state: state.result == [{"n": 1}]), q.get()
    assert _beside(path) == ["ref.db"]


def test_a_source_is_the_same_handle_by_any_name_and_refuses_every_write(
    rt: sc.Runtime, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    (outside / "alias.db").symlink_to(path)
    space = rt.space("demo")
    handle = space.register_disk_source(path)
    for name in (str(outside / "alias.db"), f"{outside}//ref.db", f"{outside}/./ref.db"):
        assert space.register_disk_source(name).id == handle.id
    assert rt.space("other").register_disk_source(path).id != handle.id
    counter = space.cell("counter", default=0)
    with space.transact():
        counter.set(1)
        with pytest.raises(sc.ReadOnlySource, match="read-only"):
            handle.exec("INSERT INTO t VALUES (5)")
        with pytest.raises(sc.ReadOnlySource):
            handle.exec_many("INSERT INTO t VALUES (?)", [[6]])
        with pytest.raises(sc.ReadOnlySource):
            handle.drop()
        counter.set(counter.get() + 1)  # the transaction is still usable
    assert counter.get() == 2
    assert handle.read("SELECT x FROM t") == [{"x": 0}] and handle.rev == 0
    assert _beside(path) == ["alias.db", "ref.db"]


def test_a_table_a_source_does_not_hold_is_named_as_missing_from_that_file(
    rt: sc.Runtime, outside: Path
) -> None:
    """A source has no declared tables (it is read with its own schema): the error says which
    file lacks the table, not that only declared tables may be read."""
    path = _source(outside / "ref.db")
    handle = rt.space("demo").register_disk_source(str(path))
    with pytest.raises(sc.QueryError) as info:
        handle.read("SELECT * FROM codes")
    message = str(info.value)
    assert "no such table: codes" in message and str(path) in message
    assert "declared" not in message


def test_refused_registrations_leave_no_file_in_the_store(tmp_path: Path, outside: Path) -> None:
    store = tmp_path / "store"
    not_sqlite = outside / "notes.txt"
    not_sqlite.write_text("hello")
    roots = outside / "roots"
    roots.mkdir()
    with sc.Runtime(store, disk_source_roots=[roots]) as rt:
        space = rt.space("demo")
        good = _source(outside / "ref.db")
        for path, rule in [
            ("ref.db", "absolute"),
            (str(outside / "missing.db"), "exists"),
            (str(outside), "under-roots"),  # where it lies is judged before what it is
            (str(roots), "regular-file"),
            (str(good), "under-roots"),
        ]:
            with pytest.raises(sc.DiskSourceError) as info:
                space.register_disk_source(path)
            assert info.value.rule == rule
        assert sorted(p.name for p in store.iterdir()) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlite_cells", *args], capture_output=True, text=True, timeout=120
    )


def test_gc_in_its_own_process_removes_only_dropped_files_and_only_when_told(
    tmp_path: Path,
) -> None:
    """The writer is killed without closing anything: what each space named lies in -wal files.
    gc lists the dropped database's file, removes it only with --yes, and keeps every file a
    handle named (in this space and another)."""
    store = tmp_path / "store"
    code = f"""
import os, sqlite_cells as sc
tables = {{"m": sc.table(id="integer primary key", body="text")}}
rt = sc.Runtime({str(store)!r})
a, b = rt.space("a"), rt.space("b")
kept, dropped, other = (
    a.sqlite_database("kept", tables=tables),
    a.sqlite_database("dropped", tables=tables),
    b.sqlite_database("other", tables=tables),
)
for space, db in ((a, kept), (a, dropped), (b, other)):
    with space.transact():
        db.exec("INSERT INTO m (body) VALUES ('x')")
with a.transact():
    dropped.drop()
print(kept.path.name, dropped.path.name, other.path.name, flush=True)
os._exit(0)
"""
    written = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    kept, dropped, other = written.stdout.split()
    before = sorted(p.name for p in store.iterdir())
    listed = _cli("gc", str(store), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {
        "removed": False,
        "files": [dropped],
        "databases": [{"space": "a", "file": dropped, "name": "dropped"}],
    }
    assert sorted(p.name for p in store.iterdir()) == before
    removed = _cli("gc", str(store), "--yes")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines()[0] == f"removed {dropped} (database 'dropped' of space 'a')"
    left = {p.name for p in store.iterdir()}
    assert kept in left and other in left and not any(n.startswith(dropped) for n in left)
    again = _cli("gc", str(store), "--yes")
    assert again.returncode == 0 and "0 file(s) removed" in again.stdout
    tables = {"m": sc.table(id="integer primary key", body="text")}
    with sc.Runtime(store) as rt:
        for space, name in (("a", "kept"), ("b", "other")):
            db = rt.space(space).sqlite_database(name, tables=tables)
            assert db.read("SELECT body FROM m") == [{"body": "x"}]


def test_vm_sources_refuse_every_write_at_the_call(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path / "store") as rt:
        space = rt.space("demo")
        tables = {"m": sc.table(id="integer primary key", body="text")}
        vm = space.sqlite_database("vm", tables=tables, source=sc.VmSource(vm=object(), path="/x"))
        counter = space.cell("counter", default=0)
        with space.transact():
            counter.set(1)
            with pytest.raises(sc.NotImplementedSource):
                vm.exec_many("INSERT INTO m (body) VALUES (?)", [["a"]])
            with pytest.raises(sc.NotImplementedSource):
                vm.drop()
        assert counter.get() == 1 and vm.rev == 0
        assert not list((tmp_path / "store").glob("cell-*"))


def test_listing_commands_never_roll_back_or_create_anything_beside_a_source(
    store: Path, outside: Path
) -> None:
    """`inspect` and `tables` open an injected file as the runtime's reads do (R60): another
    program's interrupted write is left for it to roll back (the file and its hot journal
    unchanged, the source reported as unreadable with what to do), and a WAL file gets no
    -wal or -shm of ours beside it."""
    path = _source(outside / "ref.db")
    (outside.parent / "w").mkdir()
    wal = outside.parent / "w" / "wal.db"
    conn = apsw.Connection(str(wal))
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute("CREATE TABLE w (x)")
    conn.execute("INSERT INTO w VALUES (1)")
    conn.close()  # the last connection: the -wal is moved into the file and removed
    assert _beside(wal) == ["wal.db"]
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.register_disk_source(str(path))
        space.register_disk_source(str(wal))
    _interrupt_a_write(path)
    before = {p: p.read_bytes() for p in [path, wal, outside / "ref.db-journal"]}
    inspected = _cli("inspect", str(store))
    assert "hot journal" in inspected.stdout, inspected
    assert "Traceback" not in inspected.stderr
    tables = _cli("tables", str(store))
    assert tables.returncode == 1 and "hot journal" in tables.stderr, tables
    assert "Traceback" not in tables.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert _beside(path) == ["ref.db", "ref.db-journal"]
    assert _beside(wal) == ["wal.db"]


def test_listing_commands_refuse_a_wal_source_whose_wal_they_cannot_read(
    store: Path, outside: Path
) -> None:
    """A WAL file copied with its -wal but no -shm: SQLite reads that -wal only through a -shm
    it would create beside the file, so reads refuse it (R60) rather than serve older rows.
    `inspect` and `tables` showed those older rows as the file's ("in sync", 3 rows of 5)."""
    live = outside / "live.db"
    conn = apsw.Connection(str(live))
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute("PRAGMA wal_autocheckpoint = 0").fetchall()
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1), (2), (3)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("INSERT INTO t VALUES (4), (5)")  # in the -wal alone
    (outside / "w").mkdir()
    copy = outside / "w" / "copy.db"
    shutil.copy(live, copy)
    shutil.copy(f"{live}-wal", f"{copy}-wal")
    conn.close()
    with sc.Runtime(store) as rt:
        handle = rt.space("demo").register_disk_source(str(copy))
        with pytest.raises(sc.QueryError, match="has no -shm"):
            handle.read("SELECT count(*) AS n FROM t")
    inspected = _cli("inspect", "--json", str(store))
    assert inspected.returncode == 1, inspected
    (db,) = json.loads(inspected.stdout)["spaces"][0]["databases"]
    assert "has no -shm" in db["unreadable"] and db["damage"] is None
    assert db["tables"] == []
    tables = _cli("tables", str(store))
    assert tables.returncode == 1 and "has no -shm" in tables.stderr, tables
    assert _beside(copy) == ["copy.db", "copy.db-wal"]

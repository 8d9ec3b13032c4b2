"""Disk sources and several runtimes met across real processes (R53, R60, R61): another
program writes, deletes or registers a source while this runtime reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

WAIT = 20.0  # bound on waits for what another process's change brings (never reached when right)
ROOT = Path(__file__).resolve().parents[2]


def _source(path: Path, rows: int = 3) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(rows)])
    conn.close()
    return path


def _python(code: str, *args: str) -> str:
    """Run ``code`` in another Python process (this project importable); its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SQLITE_CELLS_STORE", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait_for(q: sc.Query[Any], done: Callable[[sc.QueryState[Any]], bool]) -> bool:
    reached = threading.Event()
    subscription = q.observe().subscribe(lambda state: done(state) and reached.set())
    try:
        return reached.wait(WAIT)
    finally:
        subscription.dispose()


def _beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def rt(store: Path) -> Iterator[sc.Runtime]:
    with sc.Runtime(store, poll_interval=0.02) as runtime:
        yield runtime


STDLIB_WRITE = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1])
    if sys.argv[2] == "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    with conn:
        conn.execute("INSERT INTO t (v) VALUES (?)", (sys.argv[3],))
    conn.close()
"""


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_each_write_of_another_program_reruns_the_source_s_queries(
    rt: sc.Runtime, outside: Path, mode: str
) -> None:
    path = _source(outside / "shared.db")
    if mode == "wal":
        conn = apsw.Connection(str(path))
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.close()
    handle = rt.space("demo").register_disk_source(str(path))
    q = handle.query("SELECT count(*) AS n, max(v) AS last FROM t")
    rt.settle()
    assert q.get().result == [{"n": 3, "last": "v2"}]
    before = _beside(path)
    for i, word in enumerate(["w1", "w2", "w3"], start=4):
        _python(STDLIB_WRITE, str(path), mode, word)
        assert _wait_for(q, lambda s, i=i, w=word: s.result == [{"n": i, "last": w}]), q.get()
    assert q.get().error is None and q.get().seq == 0
    # the writer's own files only, never one of ours: a WAL writer leaves its -wal and -shm
    # when it closes while a reader (here, this runtime) has the file open, as with any reader
    assert set(_beside(path)) <= {*before, f"{path.name}-wal", f"{path.name}-shm"}
    assert set(before) <= set(_beside(path))


WAL_WRITER = """
    import apsw, sys
    conn = apsw.Connection(sys.argv[1])
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    print("ready", flush=True)
    for line in sys.stdin:
        conn.execute(line)
        print("done", flush=True)
    conn.close()
"""


def test_a_wal_writer_that_checkpoints_while_a_query_watches_is_followed(
    rt: sc.Runtime, outside: Path
) -> None:
    """Another process keeps a WAL file open, checkpoints and writes again (its ``-wal``
    starting over at the same size): every commit reaches the query here."""
    path = outside / "walled.db"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 400) for i in range(40)])
    conn.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WAL_WRITER), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert writer.stdin is not None and writer.stdout is not None

    def send(sql: str) -> None:
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write(sql + "\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "done"

    try:
        assert writer.stdout.readline().strip() == "ready"
        send("UPDATE t SET v = 'a' WHERE k = 0")
        handle = rt.space("demo").register_disk_source(str(path))
        q = handle.query("SELECT v FROM t WHERE k = 0")
        rt.settle()
        assert q.get().result == [{"v": "a"}]
        for value in ["b", "c", "d", "e"]:
            send("PRAGMA wal_checkpoint(PASSIVE)")
            send(f"UPDATE t SET v = '{value}' WHERE k = 0")
            assert _wait_for(q, lambda s, v=value: s.result == [{"v": v}]), q.get()
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
        writer.stdout.close()


def test_a_source_deleted_by_another_process_fails_its_query_only(
    rt: sc.Runtime, outside: Path
) -> None:
    doomed = _source(outside / "doomed.db")
    kept = _source(outside / "kept.db")
    space = rt.space("demo")
    q_doomed = space.register_disk_source(str(doomed)).query("SELECT count(*) AS n FROM t")
    q_kept = space.register_disk_source(str(kept)).query("SELECT count(*) AS n FROM t")
    rt.settle()
    _python("import os, sys; os.unlink(sys.argv[1])", str(doomed))
    assert _wait_for(q_doomed, lambda s: s.error is not None)
    error = q_doomed.get().error
    assert isinstance(error, sc.QueryError) and str(doomed) in str(error)
    _python(STDLIB_WRITE, str(kept), "delete", "later")
    assert _wait_for(q_kept, lambda s: s.result == [{"n": 4}])
    assert q_doomed.get().result is None
    assert _beside(doomed) == ["kept.db"]


REGISTER = """
    import json, sys
    import sqlite_cells as sc
    with sc.Runtime(sys.argv[1]) as rt:
        handle = rt.space("demo").register_disk_source(sys.argv[2])
        print(json.dumps({"id": handle.id, "rows": handle.read("SELECT count(*) AS n FROM t")}))
"""


def test_another_process_registering_the_same_file_gets_the_same_handle(
    rt: sc.Runtime, store: Path, outside: Path
) -> None:
    path = _source(outside / "ref.db")
    (outside / "alias.db").symlink_to(path)
    here = rt.space("demo").register_disk_source(str(path))
    there = json.loads(_python(REGISTER, str(store), str(outside / "alias.db")))
    assert there == {"id": here.id, "rows": [{"n": 3}]}
    assert here.read("SELECT count(*) AS n FROM t") == [{"n": 3}]
    assert _beside(path) == ["alias.db", "ref.db"]


@sc.pattern
def lookup(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT v FROM t WHERE k = 1")


LINK = """
    import sys
    import sqlite_cells as sc
    from tests.integration.test_sources_processes import lookup
    with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("demo")
        piece = space.run(lookup, key="main")
        piece.inputs["ref"].link(space.register_disk_source(sys.argv[2]))
"""


def test_a_database_input_linked_by_another_process_runs_here(
    rt: sc.Runtime, store: Path, outside: Path
) -> None:
    """R61 across processes: the input waits here (pending) until another process links a
    handle to it; the query then runs here within a poll interval and a re-run."""
    path = _source(outside / "ref.db")
    piece = rt.space("demo").run(lookup, key="main")
    rt.settle()
    assert piece.outputs.get().pending is True
    _python(LINK, str(store), str(path))
    assert _wait_for(piece.outputs, lambda s: s.result == [{"v": "v1"}]), piece.outputs.get()
    _python(
        STDLIB_WRITE.replace("INSERT INTO t (v) VALUES (?)", "UPDATE t SET v = ? WHERE k = 1"),
        str(path),
        "delete",
        "changed",
    )
    assert _wait_for(piece.outputs, lambda s: s.result == [{"v": "changed"}])


LINK_THEN_WRITE = """
    import sys
    import sqlite_cells as sc
    from tests.integration.test_sources_processes import lookup
    with sc.Runtime(sys.argv[1]) as rt:
        space = rt.space("demo")
        piece = space.run(lookup, key="main")
        t = sc.table(k="integer primary key", v="text")
        db = space.sqlite_database("codes", tables={"t": t})
        piece.inputs["ref"].link(db)  # declared, not written yet: the cell holds no handle
        print("linked", flush=True)
        sys.stdin.readline()
        with space.transact():
            db.exec("INSERT INTO t VALUES (1, 'written')")
"""


def test_a_link_to_a_database_another_process_writes_later_runs_here(
    rt: sc.Runtime, store: Path
) -> None:
    """R53, R61: another process links the input to a database it declared but has not
    written: here that cell holds no handle yet, and the query is pending (no error). Its first
    write creates the handle, and the query here resolves the link again and reads the row
    within a poll interval and a re-run (it used to keep a SourceError for ever)."""
    piece = rt.space("demo").run(lookup, key="main")
    rt.settle()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SQLITE_CELLS_STORE", None)
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LINK_THEN_WRITE), str(store)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as other:
        assert other.stdout is not None and other.stdin is not None
        try:
            assert other.stdout.readline() == "linked\n"
            assert _wait_for(piece.inputs["ref"], lambda v: isinstance(v, sc.Cell))
            rt.settle()
            state = piece.outputs.get()
            assert state.pending and state.error is None, state
            other.stdin.write("write\n")
            other.stdin.close()
            assert other.wait(timeout=120) == 0
        finally:
            if other.poll() is None:
                other.kill()
    assert _wait_for(piece.outputs, lambda s: s.result == [{"v": "written"}]), piece.outputs.get()

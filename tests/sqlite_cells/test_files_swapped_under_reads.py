"""A database file deleted or replaced under a running runtime is never read unchecked (R71, R73):
a read that finds another file at the path checks it against its space again, as a new runtime
does at first use — a file with another history is quarantined, its rows untouched; the read
pool checks the file it opens, or reuses, against the one the write path pinned."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from tests.conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _write(space: sc.Space, db: sc.SqliteDb, value: str) -> None:
    with space.transact():
        db.exec("INSERT INTO t (v) VALUES (?)", [value])


def _copy(path: Path, dest: Path) -> None:
    """A consistent copy of an SQLite file (its -wal folded in)."""
    src, dst = apsw.Connection(str(path)), apsw.Connection(str(dest))
    with dst.backup("main", src, "main") as backup:
        backup.step()
    src.close()
    dst.close()


def _put(copy: Path, path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, path)


def _forked_file(store: Path, tmp_path: Path) -> Path:
    """The file of database "a" from a fork of ``store`` that made another seq-3 commit."""
    fork = tmp_path / "fork"
    shutil.copytree(store, fork)
    rt = sc.Runtime(fork)
    try:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        _write(space, a, "OTHER")
        forked = tmp_path / "forked.sqlite"
        _copy(a.path, forked)
        return forked
    finally:
        rt.close()


@pytest.fixture
def forked(store: Path, tmp_path: Path) -> Path:
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        b = space.sqlite_database("b", tables=TABLES)
        _write(space, a, "a1")
        _write(space, b, "b1")
    finally:
        rt.close()
    return _forked_file(store, tmp_path)


def _rows(path: Path) -> list[str]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY id")]
    finally:
        conn.close()


@pytest.mark.parametrize("pool_size", [1, 4])
def test_a_file_replaced_under_a_running_runtime_is_not_read(
    store: Path, forked: Path, pool_size: int
) -> None:
    """With one pooled connection, reading "b" lets "a"'s go and "a" is opened again; with more,
    "a"'s idle connection is checked as it is taken again. Either way the file now at the path
    is checked against the space before anything of it is read: another history, quarantined."""
    rt = sc.Runtime(store, read_pool_size=pool_size)
    try:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        b = space.sqlite_database("b", tables=TABLES)
        _write(space, a, "good")  # seq 3 here
        assert [r["v"] for r in a.read("SELECT v FROM t ORDER BY id")] == ["a1", "good"]
        _put(forked, a.path)  # the same watermark, other rows
        assert [r["v"] for r in b.read("SELECT v FROM t")] == ["b1"]
        with pytest.raises(sc.Quarantined) as raised:
            a.read("SELECT v FROM t ORDER BY id")
        assert raised.value.path == a.path
        assert "not the ones its space logged" in str(raised.value)
        # Still refused at the next read, and the next write commits nothing.
        with pytest.raises(sc.Quarantined):
            a.read("SELECT v FROM t ORDER BY id")
        seq = space.file.seen_seq
        with pytest.raises(sc.Quarantined):
            _write(space, a, "lost")
        assert space.file.seen_seq == seq
        assert _rows(a.path) == ["a1", "OTHER"]  # the rows are untouched
    finally:
        rt.close()


def test_a_live_query_on_a_replaced_file_reports_it(store: Path, forked: Path) -> None:
    rt = sc.Runtime(store, read_pool_size=1)
    try:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        b = space.sqlite_database("b", tables=TABLES)
        _write(space, a, "good")
        a.read("SELECT v FROM t")
        _put(forked, a.path)
        b.read("SELECT v FROM t")
        query = a.query("SELECT v FROM t ORDER BY id")
        rt.settle()
        state = query.get()
        assert state.result is None
        assert isinstance(state.error, sc.Quarantined)
        assert _rows(a.path) == ["a1", "OTHER"]
    finally:
        rt.close()


def test_a_file_deleted_under_a_running_runtime_is_an_error_on_read(store: Path) -> None:
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        _write(space, db, "a")
        assert db.read("SELECT v FROM t") == [{"v": "a"}]  # its connection stays in the pool
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db.path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(sc.QueryError) as raised:
            db.read("SELECT v FROM t")
        assert f"the file {db.path} is gone" in str(raised.value)
    finally:
        rt.close()


def test_the_runtimes_own_rebuild_is_read(store: Path) -> None:
    """A file the runtime rebuilt itself (R71) is the one pinned: its reads go on."""
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        _write(space, db, "a")
    finally:
        rt.close()
    Path(db.path).write_bytes(b"not a database" * 400)
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        assert db.read("SELECT v FROM t") == [{"v": "a"}]
        _write(space, db, "b")
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": "a"}, {"v": "b"}]
    finally:
        rt.close()


def test_a_live_query_shows_the_quarantine_its_database_was_found_in(store: Path) -> None:
    """R71: "its queries and writes fail with Quarantined". A database file replaced by another
    program's file was quarantined by the commit that met it; its live query kept its rows and
    no error (it re-runs on writes, and none can come). The quarantine re-runs the database's
    live queries once."""
    with sc.Runtime(store) as first:
        space = first.space("demo")
        _write(space, space.sqlite_database("a", tables=TABLES), "one")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        query = a.query("SELECT v FROM t")
        rt.settle()
        assert query.get().result == [{"v": "one"}]
        other = apsw.Connection(str(store / "other.sqlite"))
        other.execute("CREATE TABLE z (x)")
        other.close()
        (store / "other.sqlite").replace(a.path)
        with pytest.raises(sc.StoreChanged):
            _write(space, a, "two")
        with pytest.raises(sc.Quarantined) as info:
            _write(space, a, "two")
        rt.settle()
        state = query.get()
        assert state.result is None and isinstance(state.error, sc.Quarantined)
        assert state.error.db_id == a.id == info.value.db_id


@pytest.mark.parametrize("repair", ["read", "reconcile", "new query", "check --repair"])
def test_a_live_query_that_met_a_gone_file_shows_the_rows_once_the_file_is_rebuilt(
    store: Path, repair: str
) -> None:
    """R71, R42: a live query that ran into "the file ... is gone" kept that error after the
    runtime rebuilt the file from its space's log (no write came to re-run it). Any check that
    finds the file agreeing with its space again — made by a read, `reconcile`, another live
    query's first run, or the read after another process's `check --repair` — re-runs the
    database's live queries that show an error."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        since = space.cell("since", default=0)
        _write(space, db, "a")
        query = db.query("SELECT v FROM t WHERE id > ?", params=[since])
        rt.settle()
        assert query.get().result == [{"v": "a"}]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db.path}{suffix}").unlink(missing_ok=True)
        with space.transact():
            since.set(-1)  # the query runs again, and meets the gone file
        rt.settle()
        state = query.get()
        assert state.result is None and isinstance(state.error, sc.QueryError)
        assert f"the file {db.path} is gone" in str(state.error)
        seq = space.file.seen_seq
        with pytest.raises(sc.StoreChanged):
            _write(space, db, "b")  # its next use checks the file against its space again
        assert space.file.seen_seq == seq
        if repair == "read":
            assert db.read("SELECT v FROM t") == [{"v": "a"}]
        elif repair == "reconcile":
            assert rt.reconcile(db).action.name == "REPLAYED"
        elif repair == "new query":
            count = db.query("SELECT count(*) AS n FROM t")
            rt.settle()
            assert count.get().result == [{"n": 1}]
        else:
            done = run_cli("check", "--repair", str(store))
            assert done.returncode == 0, done.stderr
            assert "replayed, 1 commit(s) applied" in done.stdout
            assert db.read("SELECT v FROM t") == [{"v": "a"}]
        rt.settle()
        state = query.get()
        assert state.error is None and state.result == [{"v": "a"}]
        assert _rows(db.path) == ["a"]  # the log's rows: the refused write left nothing
        assert space.file.seen_seq == seq

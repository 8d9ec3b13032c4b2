"""Crash safety of the store's files through the public API and real processes (R14, R71–R73).

Files of a store are lost, put back from older copies, replaced by another store's, truncated or
overwritten while a runtime is stopped or running, and writers are SIGKILLed during a `migrate`
and during a `db.drop()` commit. A database and its space must never be served disagreeing:
either they agree (repaired from the log) or the database is quarantined, its rows untouched,
and `sqlite-cells check` says so without changing what it only looks at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files import read_watermark
from sqlite_cells.files._held_files import copy_file

from .._files import checkpointed, write_at

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"ev": sc.table(id="integer primary key", k="integer", body="text")}
V2 = {
    "ev": sc.table(id="integer primary key", kk="integer", body="text", tag="text"),
    "extra": sc.table(id="integer primary key"),
}


def _run_killed(script: Path, store: Path) -> None:
    """Run ``script`` (``_KILLED_BETWEEN_COMMITS``) on ``store``: a writer killed between its
    space's COMMIT and its database file's."""
    done = subprocess.run(
        [sys.executable, str(script), str(store), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, (done.stdout, done.stderr)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


@contextlib.contextmanager
def _opened(store: Path) -> Iterator[tuple[sc.Runtime, sc.SqliteDb, sc.Cell]]:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        yield rt, space.sqlite_database("events", tables=TABLES), space.cell("counter", default=0)


def _commit(db: sc.SqliteDb, counter: sc.Cell, *ks: int, body: str = "") -> list[int]:
    @sc.handler
    def step(k: int) -> None:
        counter.update(lambda v: v + 1)
        db.exec("INSERT INTO ev (k, body) VALUES (?, ?)", [k, body])

    return [step(k) for k in ks]


def _fill(store: Path, *ks: int) -> Path:
    store.mkdir(exist_ok=True)
    with _opened(store) as (_, db, counter):
        _commit(db, counter, *ks)
        return Path(db.path)


def _space_path(store: Path) -> Path:
    (path,) = store.glob("space-*.sqlite")
    return path


def _put(source: Path, target: Path) -> None:
    """``source`` (checkpointed) in place of ``target`` and its -wal/-shm."""
    checkpointed(source)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


def _digest(store: Path) -> dict[str, str]:
    """The store's files but -shm (SQLite's index of a -wal, rebuilt by any reader) and empty
    -wal files (they hold nothing)."""
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
        and not p.name.endswith("-shm")
        and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlite_cells", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )


def _look(store: Path) -> subprocess.CompletedProcess[str]:
    """``sqlite-cells check STORE`` (no repair), asserting it changed no file of the store."""
    before = _digest(store)
    result = _cli("check", str(store))
    assert _digest(store) == before, result.stdout
    assert "Traceback" not in result.stderr
    return result


def _restore_in_place(source_path: Path, target_path: Path) -> None:
    """Write ``source_path``'s database over ``target_path``'s, keeping its inode, as SQLite's
    backup API (the shell's `.restore`) does."""
    target = apsw.Connection(str(target_path))
    source = apsw.Connection(str(source_path))
    try:
        with target.backup("main", source, "main") as step:
            step.step()
    finally:
        target.close()
        source.close()


def _tmpfs(mount: Path, size: str) -> Path:
    """A tmpfs of ``size`` mounted at ``mount`` (a real filesystem that fills up), or the test
    is skipped where mounting is not allowed; the caller unmounts it."""
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    return mount


def _raw_rows(path: Path) -> list[tuple[object, ...]]:
    conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    try:
        return conn.execute("SELECT k FROM ev ORDER BY id").fetchall()
    finally:
        conn.close()


def _raw_log_seq(path: Path) -> int:
    conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    try:
        (row,) = conn.execute("SELECT coalesce(max(seq), 0) FROM _cf_log").fetchall()
        return int(row[0])
    finally:
        conn.close()


# -- a database file ahead of, or foreign to, its space (R71) ----------------------------------


def test_a_database_ahead_of_a_space_put_back_from_an_older_copy_is_quarantined(
    tmp_path: Path,
) -> None:
    """R71: ahead by more than the one commit in flight → quarantined naming both seqs, never
    inverted, never served; `check` says so (exit 1) and `--repair` removes nothing."""
    store = tmp_path / "store"
    db_path = _fill(store, 1, 2, 3)
    space = _space_path(store)
    checkpointed(space)
    shutil.copyfile(space, tmp_path / "space.old")
    _fill(store, 4, 5, 6)
    _put(tmp_path / "space.old", space)
    checkpointed(db_path)
    rows = _raw_rows(db_path)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]

    found = _look(store)
    assert found.returncode == 1 and "watermark 6, space seq 3: quarantined" in found.stdout
    with _opened(store) as (rt, db, counter):
        with pytest.raises(sc.Quarantined) as read:
            db.read("SELECT k FROM ev")
        assert (read.value.db_seq, read.value.space_seq, read.value.path) == (6, 3, db_path)
        q = db.query("SELECT k FROM ev")
        rt.settle()
        assert isinstance(q.get().error, sc.Quarantined) and q.get().result is None
        with pytest.raises(sc.Quarantined), rt.space("demo").transact():
            db.exec("INSERT INTO ev (k) VALUES (7)")
        assert counter.get() == 3
    repaired = _cli("check", "--repair", str(store))
    assert repaired.returncode == 1, repaired.stdout
    assert _raw_rows(db_path) == rows  # untouched: no inversion, no rebuild
    assert not (store / "quarantine").exists() or not any((store / "quarantine").iterdir())


def test_a_database_ahead_by_the_one_commit_a_restore_lost_is_inverted_after_a_copy(
    tmp_path: Path,
) -> None:
    """R71: ahead by one commit whose predecessor the space still holds → inverted, and a copy of
    the file is kept in the store's quarantine folder before the rows are removed."""
    store = tmp_path / "store"
    db_path = _fill(store, 1, 2, 3)
    space = _space_path(store)
    checkpointed(space)
    shutil.copyfile(space, tmp_path / "space.old")
    _fill(store, 4)
    _put(tmp_path / "space.old", space)
    assert _look(store).returncode == 1
    with _opened(store) as (_, db, counter):
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2, 3]
        assert counter.get() == 3
    (kept,) = (store / "quarantine").glob("cell-*.ahead-4-of-3.0")
    assert [r[0] for r in _raw_rows(kept)] == [1, 2, 3, 4]
    assert [r[0] for r in _raw_rows(db_path)] == [1, 2, 3]
    assert _cli("check", str(store)).returncode == 0


def test_another_stores_database_file_behind_its_space_is_quarantined_not_replayed(
    tmp_path: Path,
) -> None:
    """R71, R73: a file whose newest commit is not the one its space logged for that seq is not
    this space's file; replaying the space's later commits onto it would serve a mix of two
    stores' rows. It is quarantined (both seqs named), kept as found, and `check` sends the
    user to move it out and rebuild."""
    store, other = tmp_path / "store", tmp_path / "other"
    db_path = _fill(store, 1, 2, 3)
    foreign = _fill(other, -1, -2)
    _put(foreign, db_path)
    before = _raw_rows(db_path)

    found = _look(store)
    assert found.returncode == 1
    assert "watermark 2, space seq 3: quarantined" in found.stdout
    assert "not the one this space wrote" in found.stdout
    assert "out of the store" in found.stdout  # the remedy that works
    with _opened(store) as (_, db, _counter):
        with pytest.raises(sc.Quarantined) as read:
            db.read("SELECT k FROM ev")
        assert (read.value.db_seq, read.value.space_seq, read.value.path) == (2, 3, db_path)
        assert "_Irreparable" not in str(read.value)
    assert _raw_rows(db_path) == before
    assert _cli("check", "--repair", str(store)).returncode == 1
    assert _raw_rows(db_path) == before


def test_another_stores_database_file_ahead_of_its_space_is_called_another_file(
    tmp_path: Path,
) -> None:
    """§6: a file of another history whose watermark is ahead of its space is quarantined as
    another file; `check`'s advice says so (move it out), not that the space's file lost
    commits and should be put back from a copy reaching the foreign file's seq."""
    store, other = tmp_path / "store", tmp_path / "other"
    db_path = _fill(store, 1)
    foreign = _fill(other, -1, -2, -3)
    _put(foreign, db_path)

    found = _look(store)
    assert found.returncode == 1
    assert "watermark 3, space seq 1: quarantined" in found.stdout
    assert "not the one this space wrote" in found.stdout
    assert "is not this database's file" in found.stdout and "out of the store" in found.stdout
    assert "lost commits" not in found.stdout and "reaches seq" not in found.stdout


def test_another_stores_database_file_at_the_same_seq_is_reported_by_inspect_as_check_does(
    tmp_path: Path,
) -> None:
    """R71, R73, §6: a file of another history whose watermark equals its space's last write to
    it is quarantined by a runtime and by `check`; `inspect` (read without a lock) makes the
    same comparison and says so, with a finding and exit status 1, never "in sync"."""
    store, other = tmp_path / "store", tmp_path / "other"
    db_path = _fill(store, 1, 2)
    foreign = _fill(other, -1, -2)
    _put(foreign, db_path)
    before = _digest(store)

    shown = _cli("inspect", str(store))
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert "(in sync)" not in shown.stdout
    assert "watermark 2, ANOTHER HISTORY: " in shown.stdout
    assert "is not the file its space wrote" in shown.stdout  # the finding
    as_json = _cli("inspect", "--json", str(store))
    (db,) = json.loads(as_json.stdout)["spaces"][0]["databases"]
    assert db["in_sync"] is False and db["history"] and db["watermark"] == 2
    assert _digest(store) == before  # nothing written
    assert "watermark 2, space seq 2: quarantined" in _look(store).stdout
    with _opened(store) as (_, db_cell, _counter), pytest.raises(sc.Quarantined):
        db_cell.read("SELECT k FROM ev")
    own = _fill(tmp_path / "third", 1, 2)
    assert "(in sync)" in _cli("inspect", str(own.parent)).stdout


def test_check_without_repair_tries_the_replay_a_repair_would_make(tmp_path: Path) -> None:
    """R71, §6: a file one commit behind its space, where another program changed the row the
    missing commit updates: the replay cannot apply. `check` said "behind" and sent the user to
    `--repair`, which (as a runtime) then quarantined it. `check` now tries the replay on a copy
    in memory and reports what the repair would find, changing no file."""
    store = tmp_path / "store"
    db_path = _fill(store, 1)
    checkpointed(db_path)
    behind = db_path.read_bytes()
    with _opened(store) as (rt, db, counter), rt.space("demo").transact():
        counter.set(5)
        db.exec("UPDATE ev SET body = 'ours' WHERE k = 1")
    checkpointed(db_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db_path.write_bytes(behind)
    other = apsw.Connection(str(db_path))
    other.execute("UPDATE ev SET body = 'theirs' WHERE k = 1")
    other.close()

    found = _look(store)
    assert found.returncode == 1
    assert "watermark 1, space seq 2: quarantined (a changeset does not apply (an UPDATE" in (
        found.stdout
    )
    assert "`--repair` cannot repair it" in found.stdout
    assert "re-apply" not in found.stdout
    repaired = _cli("check", "--repair", str(store))
    assert "watermark 1, space seq 2: quarantined" in repaired.stdout
    assert _raw_rows(db_path) == [(1,)]  # their row kept as it is


def test_check_without_repair_still_reports_a_replayable_file_behind(tmp_path: Path) -> None:
    """The trial changes nothing of the verdict for a file the replay brings in line."""
    store = tmp_path / "store"
    db_path = _fill(store, 1)
    checkpointed(db_path)
    behind = db_path.read_bytes()
    with _opened(store) as (_, db, counter):
        _commit(db, counter, 2)
    checkpointed(db_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db_path.write_bytes(behind)
    found = _look(store)
    assert found.returncode == 1 and "watermark 1, space seq 2: behind" in found.stdout
    assert _cli("check", "--repair", str(store)).returncode == 0
    assert _raw_rows(db_path) == [(1,), (2,)]


# -- files deleted or replaced under a running runtime (R73) ------------------------------------


@pytest.mark.parametrize("target", ["db", "space"])
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_file_deleted_or_replaced_under_a_running_runtime_takes_no_commit(
    tmp_path: Path, target: str, how: str
) -> None:
    """R73: the next commit raises `StoreChanged` naming the file and commits nothing, in either
    file; meanwhile reads give a clear error or the pinned file's rows, never another file's
    rows and never a mix. A space file replaced is read no more: its cells are `StoreChanged`
    too (a deleted one may be put back: its values are still the space's)."""
    store, other = tmp_path / "store", tmp_path / "other"
    store.mkdir()
    foreign_db = _fill(other, -1, -2)
    foreign_space = _space_path(other)
    checkpointed(foreign_space)
    with _opened(store) as (rt, db, counter):
        _commit(db, counter, 1, 2, 3)
        q = db.query("SELECT k FROM ev ORDER BY id")
        rt.settle()
        db_path, space_path = Path(db.path), _space_path(store)
        path = db_path if target == "db" else space_path
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        if how == "replaced":
            shutil.copyfile(foreign_db if target == "db" else foreign_space, path)
        with pytest.raises(sc.StoreChanged) as changed:
            _commit(db, counter, 10)
        assert changed.value.path == str(path)
        if target == "space" and how == "replaced":
            with pytest.raises(sc.StoreChanged) as read:
                counter.get()
            assert read.value.path == str(space_path)
        else:
            assert counter.get() == 3
        ours = [{"k": 1}, {"k": 2}, {"k": 3}]
        for _ in range(2):
            try:
                rows = db.read("SELECT k FROM ev ORDER BY id")
            except (sc.QueryError, sc.Quarantined, sc.StoreChanged) as exc:
                assert str(db_path) in str(exc) or str(space_path) in str(exc)
            else:
                assert rows == ours
        rt.settle()
        state = q.get()
        assert state.result in (None, ours) and (state.result is not None or state.error)
    # Nothing landed: the space's log and the database's rows are as they were.
    if target == "space" and how == "replaced":
        assert _raw_log_seq(space_path) == 2  # the other store's two commits, no third
    elif target == "space":
        assert not space_path.exists()
    if target == "db" and how == "replaced":
        assert [r[0] for r in _raw_rows(db_path)] == [-1, -2]
    elif target == "db":
        assert not db_path.exists() or _raw_rows(db_path) in ([], [(1,), (2,), (3,)])
    if target == "space":
        assert [r[0] for r in _raw_rows(db_path)] == [1, 2, 3]
    else:
        assert _raw_log_seq(space_path) == 3


@pytest.mark.parametrize("target", ["db", "space"])
def test_a_backup_put_back_under_a_running_runtime_is_not_written_over_by_its_old_wal(
    tmp_path: Path, target: str
) -> None:
    """R73, R71: a backup copied over a file a runtime has open — only the file, as a user
    restores one — is detected at the next commit. SQLite keeps the -wal and -shm of a file it
    sees moved when its connections close, and the next connection read that -wal as the
    restored file's: the space file came out corrupt, its log unreadable, and a new runtime
    committed into it. The runtime sets them aside (kept in the quarantine folder) when it lets
    go of the moved file, so the backup reads as it was put back."""
    store = tmp_path / "store"
    store.mkdir()
    with _opened(store) as (_rt, db, counter):
        _commit(db, counter, 1)
        path = Path(db.path) if target == "db" else _space_path(store)
        backup = tmp_path / "backup"
        _copy_of(path, backup)
        _commit(db, counter, *range(2, 40), body="x" * 3000)  # frames in the -wal
        assert Path(f"{path}-wal").stat().st_size > 0
        shutil.copyfile(backup, tmp_path / "put")
        os.replace(tmp_path / "put", path)
        with pytest.raises(sc.StoreChanged) as changed:
            _commit(db, counter, 100)
        assert changed.value.path == str(path)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM sqlite_schema").fetchall() != [(0,)]
    finally:
        conn.close()
    if target == "space":
        assert _raw_log_seq(path) == 1  # the backup's log, as it was put back
    else:
        assert _raw_rows(path) == [(1,)]  # the backup's rows
    kept = sorted(p.name for p in (store / "quarantine").iterdir())
    assert [n for n in kept if n.startswith(f"{path.name}-wal.") and n.endswith(".moved")]
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    if target == "space":
        found = _look(store)  # the database is ahead by 38 commits: quarantined, not inverted
        assert found.returncode == 1 and "watermark 39, space seq 1: quarantined" in found.stdout
    else:  # its space replays the rest (R71)
        with _opened(store) as (_rt, db, counter):
            assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == list(range(1, 40))
            assert counter.get() == 39


def test_a_space_restored_in_place_under_a_running_runtime_takes_no_commit(
    tmp_path: Path,
) -> None:
    """R73: an older copy written *over* the open space file — SQLite's backup API, as the
    shell's `.restore` does, keeping the file's inode — is detected by its log, which ends
    before the seq this runtime has seen: the next commit is `StoreChanged` and commits nothing
    (it took seq 2 again, and the database kept rows of a commit the space no longer had, with
    `check` saying "in sync")."""
    store = tmp_path / "store"
    store.mkdir()
    backup = tmp_path / "backup"
    with _opened(store) as (_rt, db, counter):
        _commit(db, counter, 1)
        space_path = _space_path(store)
        _copy_of(space_path, backup)
        _commit(db, counter, 2)
        inode = space_path.stat().st_ino
        _restore_in_place(backup, space_path)
        assert space_path.stat().st_ino == inode and _raw_log_seq(space_path) == 1
        with pytest.raises(sc.StoreChanged) as changed:
            _commit(db, counter, 3)
        assert changed.value.path == str(space_path)
        assert "ends at seq 1, behind seq 2 this runtime has seen" in str(changed.value)
        with pytest.raises(sc.StoreChanged), db.space.transact():
            counter.set(100)  # a commit of cells alone too
    assert _raw_log_seq(space_path) == 1
    assert [r[0] for r in _raw_rows(Path(db.path))] == [1, 2]  # ahead by one: R71's to judge


def test_a_database_file_replaced_while_detached_takes_no_commit_even_at_its_old_inode(
    tmp_path: Path,
) -> None:
    """R73, R71: a database file the write connection has let go of (another database was
    written since) is replaced by a copy of another database's file; the freed inode number
    goes to the copy at once (ext4), so the (device, inode) pin passed, the commit was
    acknowledged into the other database's rows and reads served them, `check` saying "in
    sync". The file holds commits its space never made to this database: the commit is refused
    (a conflict: nothing written), and the file, compared again, is quarantined with its rows
    as found."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        x = space.sqlite_database("x", tables=TABLES)
        y = space.sqlite_database("y", tables=TABLES)
        _commit(x, space.cell("cx", default=0), 1)
        _commit(y, space.cell("cy", default=0), 2, 3)  # x is detached now
        xp, yp = Path(x.path), Path(y.path)
        subprocess.run(["rm", "-f", str(xp), f"{xp}-wal", f"{xp}-shm"], check=True)
        subprocess.run(["cp", str(yp), str(xp)], check=True)
        if Path(f"{yp}-wal").exists():
            subprocess.run(["cp", f"{yp}-wal", f"{xp}-wal"], check=True)
        seq = space.file.seen_seq
        with pytest.raises(sc.SqliteCellsError), space.transact():
            x.exec("INSERT INTO ev (k, body) VALUES (9, 'x')")
        assert space.file.seen_seq == seq
        with pytest.raises(sc.Quarantined):
            x.read("SELECT k FROM ev")
        assert y.read("SELECT k FROM ev ORDER BY id") == [{"k": 2}, {"k": 3}]
    assert [r[0] for r in _raw_rows(xp)] == [2, 3]  # the copy, as found: nothing written into it
    assert _look(store).returncode == 1


def test_a_space_file_overwritten_in_place_by_another_space_s_takes_no_commit(
    tmp_path: Path,
) -> None:
    """R73, §2: the open space file overwritten in place (the same inode: SQLite's backup API,
    as the shell's `.restore` does) by another space's file with a longer log. The log went no
    back, so the commit was taken after the other space's commits (seq 21, skipping demo's 3 to
    20) into that space's file. It is `StoreChanged` now, nothing committed."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        other = rt.space("other")
        for i in range(20):
            with other.transact():
                other.cell("c").set(i)
        other_path = other.file.path
    with _opened(store) as (_rt, db, counter):
        _commit(db, counter, 1, 2)
        space_path = Path(db.space.file.path)
        inode = space_path.stat().st_ino
        _restore_in_place(Path(other_path), space_path)
        assert space_path.stat().st_ino == inode and _raw_log_seq(space_path) == 20
        with pytest.raises(sc.StoreChanged) as changed, db.space.transact():
            counter.set(100)
        assert "now belongs to space 'other', not 'demo'" in str(changed.value)
    assert _raw_log_seq(space_path) == 20
    found = _look(store)  # `check` said "0 database(s) checked" and exit 0 of such a store
    assert found.returncode == 1
    assert f"space file {space_path.name}: damaged" in found.stdout
    assert "the file of space 'other' under another space's file name" in found.stdout


@pytest.mark.parametrize("read_before", [False, True], ids=["no-reader", "pooled-reader"])
def test_a_database_wal_deleted_under_a_running_runtime_takes_no_commit(
    tmp_path: Path, read_before: bool
) -> None:
    """R73: a database file's -wal deleted while the runtime has the file attached: the commit
    went into the unlinked -wal and was acknowledged, and every read after failed for good
    with a bare "disk I/O error" (the -shm still counted the deleted file's frames). The next
    commit is `StoreChanged` naming the -wal; the file is let go and checked against its space
    at its next use, so reads and commits go on, with every acknowledged commit."""
    store = tmp_path / "store"
    store.mkdir()
    with _opened(store) as (rt, db, counter):
        _commit(db, counter, 1, 2, 3)
        if read_before:
            assert db.read("SELECT count(*) AS n FROM ev") == [{"n": 3}]
        wal = Path(f"{db.path}-wal")
        wal.unlink()
        with pytest.raises(sc.StoreChanged) as changed:
            _commit(db, counter, 4)
        assert changed.value.path == str(wal)
        assert "the -wal of this database file was deleted or replaced" in str(changed.value)
        assert counter.get() == 3
        assert db.read("SELECT k FROM ev ORDER BY id") == [{"k": 1}, {"k": 2}, {"k": 3}]
        _commit(db, counter, 5)
        q = db.query("SELECT k FROM ev ORDER BY id")
        assert rt.settle(timeout=30)
        assert q.get().result == [{"k": 1}, {"k": 2}, {"k": 3}, {"k": 5}]
    assert _look(store).returncode == 0
    with _opened(store) as (_rt, db, counter):
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2, 3, 5]
        assert counter.get() == 4 and db.rev == 4


def test_a_space_file_moved_away_and_back_keeps_its_wal_and_every_commit(tmp_path: Path) -> None:
    """R72, R73: the file moved away while the runtime closes — nothing at its path then — and
    put back: its -wal, which holds its commits, stays where it is (the file may come back),
    and every acknowledged commit reads back."""
    store = tmp_path / "store"
    store.mkdir()
    with _opened(store) as (_rt, db, counter):
        _commit(db, counter, 1, 2, 3, 4, 5)
        path = _space_path(store)
        assert Path(f"{path}-wal").stat().st_size > 0
        os.rename(path, tmp_path / "away")
    os.rename(tmp_path / "away", path)
    assert not (store / "quarantine").exists()
    with _opened(store) as (_rt, db, counter):
        assert counter.get() == 5
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2, 3, 4, 5]


def test_a_wal_another_runtime_writes_for_the_file_now_at_the_path_is_left_alone(
    tmp_path: Path,
) -> None:
    """R72, R73: a byte copy of the space file renamed over it keeps its -wal (its frames are
    the copy's next pages); a second runtime opens the copy and commits through that -wal.
    The first runtime, finding its file moved, must not set that -wal aside: the second
    runtime's acknowledged commits are in it."""
    store = tmp_path / "store"
    store.mkdir()
    with _opened(store) as (_rt, db, counter):
        _commit(db, counter, 1, 2, 3)
        path = _space_path(store)
        copy_file(path, tmp_path / "copy")
        os.replace(tmp_path / "copy", path)
        with _opened(store) as (_other, theirs, their_counter):
            _commit(theirs, their_counter, 10, 11)
            with pytest.raises(sc.StoreChanged):
                _commit(db, counter, 4)  # finds the file moved while the other has it open
    assert not (store / "quarantine").exists()
    with _opened(store) as (_rt, db, counter):
        assert counter.get() == 5
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2, 3, 10, 11]


def _copy_of(path: Path, backup: Path) -> None:
    """A consistent copy of the file ``path`` at ``backup`` (SQLite's backup), made beside the
    runtime that has it open, one file without companions."""
    source = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    copy = apsw.Connection(str(backup))
    try:
        with copy.backup("main", source, "main") as step:
            step.step()
        copy.execute("PRAGMA journal_mode=DELETE")  # one file, as a backup is kept
    finally:
        copy.close()
        source.close()


def test_a_space_file_deleted_leaves_its_database_quarantined_and_reported(
    tmp_path: Path,
) -> None:
    """R7, R71: with the space file gone, the database file holding its commits is quarantined
    (the space is at seq 0), reads create no space file, and `check` reports it orphaned."""
    store = tmp_path / "store"
    db_path = _fill(store, 1, 2, 3)
    space = _space_path(store)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{space}{suffix}").unlink(missing_ok=True)
    found = _look(store)
    assert found.returncode == 1 and "orphaned" in found.stdout
    with _opened(store) as (_, db, counter):
        with pytest.raises(sc.Quarantined) as read:
            db.read("SELECT k FROM ev")
        assert (read.value.db_seq, read.value.space_seq) == (3, 0)
        assert counter.get() == 0
        assert not space.exists()  # a read creates no file (R7)
    assert [r[0] for r in _raw_rows(db_path)] == [1, 2, 3]


# -- damaged database files (R71, Errors) --------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    """Damage the file in place. No descriptor of it is closed here (``os.truncate`` opens
    none): a runtime of this process may have it open, and a close would drop its locks."""
    checkpointed(path)
    if how == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    else:  # garbage over some pages, the header kept
        write_at(path, 4096 * 3, b"\xa5" * 4096 * 4)


def _filled_with_pages(store: Path) -> tuple[Path, list[dict[str, object]]]:
    store.mkdir()
    with _opened(store) as (_, db, counter):
        _commit(db, counter, *range(40), body="x" * 2000)
        return Path(db.path), db.read("SELECT * FROM ev ORDER BY id")


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_database_file_is_reported_then_rebuilt_to_the_same_rows(
    tmp_path: Path, how: str
) -> None:
    """R71: `check` reports the damage without touching the file; a new runtime rebuilds it from
    the log (which holds its whole history) to exactly the rows it had, keeping the damaged
    copy."""
    store = tmp_path / "store"
    db_path, expected = _filled_with_pages(store)
    _damage(db_path, how)
    found = _look(store)
    assert found.returncode == 1 and "damaged" in found.stdout
    with _opened(store) as (_, db, _counter):
        assert db.read("SELECT * FROM ev ORDER BY id") == expected
    assert list((store / "quarantine").glob("cell-*.damaged.*"))
    assert _cli("check", str(store)).returncode == 0


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_database_file_damaged_under_a_running_runtime_names_the_file_then_is_rebuilt(
    tmp_path: Path, how: str
) -> None:
    store = tmp_path / "store"
    db_path, expected = _filled_with_pages(store)
    with _opened(store) as (_, db, counter):
        assert db.read("SELECT * FROM ev ORDER BY id") == expected
        _damage(db_path, how)
        with pytest.raises(sc.QueryError) as read:
            db.read("SELECT * FROM ev ORDER BY id")
        assert str(db_path) in str(read.value) and "damaged" in str(read.value)
        assert db.read("SELECT * FROM ev ORDER BY id") == expected  # rebuilt at the next use
        _commit(db, counter, 99)
        assert len(db.read("SELECT k FROM ev")) == len(expected) + 1
    assert _cli("check", str(store)).returncode == 0


# -- processes killed: a lost -wal, a migrate, a drop (R14, R71, R72) ----------------------------

_WRITER = textwrap.dedent(
    """
    import os, sys, time
    import sqlite_cells as sc
    store, mode = sys.argv[1], sys.argv[2]
    V1 = {"ev": sc.table(id="integer primary key", k="integer", body="text")}
    V2 = {
        "ev": sc.table(id="integer primary key", kk="integer", body="text", tag="text"),
        "extra": sc.table(id="integer primary key"),
    }
    def say(text):
        os.write(1, (text + "\\n").encode())
    def migrate(conn, version):
        conn.execute("ALTER TABLE ev RENAME COLUMN k TO kk"); say("step 1"); time.sleep(0.2)
        conn.execute("ALTER TABLE ev ADD COLUMN tag text"); say("step 2"); time.sleep(0.2)
        conn.execute("UPDATE ev SET tag = 'm' || kk"); say("step 3"); time.sleep(0.2)
    rt = sc.Runtime(store)
    space = rt.space("demo")
    counter = space.cell("counter", default=0)
    if mode == "loop":
        db = space.sqlite_database("events", tables=V1)
        @sc.handler
        def step(k):
            counter.update(lambda v: v + 1)
            db.exec("INSERT INTO ev (k) VALUES (?)", [k])
        say("ready")
        k = 0
        while True:
            say(f"seq {step(k)}")
            k += 1
    else:
        db = space.sqlite_database("events", tables=V2, version=2, migrate=migrate)
        with space.transact():
            counter.update(lambda v: v + 1)
            db.exec("INSERT INTO ev (kk, tag) VALUES (1000, 'new')")
        say("committed")
        time.sleep(30)
    """
)


def _writer(tmp_path: Path, store: Path, mode: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(store), mode], stdout=subprocess.PIPE, env=_env()
    )


def _kill_at(proc: subprocess.Popen[bytes], line: str) -> list[str]:
    """SIGKILL ``proc`` right after it prints ``line``; every line it printed."""
    assert proc.stdout is not None
    seen = []
    try:
        while True:
            got = proc.stdout.readline().decode().strip()
            assert got, f"the writer ended before {line!r}: {seen}"
            seen.append(got)
            if got == line:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        seen += proc.stdout.read().decode().splitlines()
        proc.stdout.close()
        code = proc.wait()
    assert code == -signal.SIGKILL
    return seen


@pytest.mark.parametrize("lost", ["db", "space"])
def test_a_wal_deleted_after_a_kill_never_leaves_database_and_space_disagreeing(
    tmp_path: Path, lost: str
) -> None:
    """R71, R72: after a writer is SIGKILLed, its -wal (un-checkpointed commits) is deleted.
    The database's: it is behind and replayed from the log, nothing lost. The space's: the
    database is ahead by more than the commit in flight and is quarantined, and `check` says so."""
    store = tmp_path / "store"
    store.mkdir()
    proc = _writer(tmp_path, store, "loop")
    lines = _kill_at(proc, "seq 40")
    returned = [int(x.split()[1]) for x in lines if x.startswith("seq ")]
    db_path, space = next(store.glob("cell-*.sqlite")), _space_path(store)
    wal = Path(f"{db_path if lost == 'db' else space}-wal")
    assert wal.stat().st_size > 0
    wal.unlink()
    Path(f"{wal}".removesuffix("-wal") + "-shm").unlink(missing_ok=True)
    found = _look(store)
    assert found.returncode == 1
    with _opened(store) as (_, db, counter):
        if lost == "db":
            assert len(db.read("SELECT k FROM ev")) == counter.get() >= max(returned)
        else:
            with pytest.raises(sc.Quarantined) as read:
                db.read("SELECT k FROM ev")
            assert read.value.db_seq > read.value.space_seq + 1
            assert read.value.space_seq == counter.get()
    assert _cli("check", str(store)).returncode == (0 if lost == "db" else 1)


def _migrate_done(conn: object, version: int) -> None:
    execute = conn.execute  # type: ignore[attr-defined]  # the migration connection (R14)
    execute("ALTER TABLE ev RENAME COLUMN k TO kk")
    execute("ALTER TABLE ev ADD COLUMN tag text")
    execute("UPDATE ev SET tag = 'm' || kk")


def _file_schema(path: Path) -> tuple[list[str], int, list[str]]:
    conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    try:
        columns = [str(r[1]) for r in conn.execute("PRAGMA table_info(ev)")]
        (version,) = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchone()
        tables = sorted(
            str(r[0])
            for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
            if not str(r[0]).startswith("_cf_")
        )
        return columns, int(version), tables
    finally:
        conn.close()


@pytest.mark.parametrize("at", ["step 2", "step 3", "committed"])
def test_a_writer_killed_during_a_migrate_leaves_the_old_schema_or_the_new(
    tmp_path: Path, at: str
) -> None:
    """R14, R72: killed between `migrate` statements or after the commit, the file holds the old
    version and schema or the new ones, never a mix; `check` finds nothing and changes nothing;
    a fresh runtime migrates (again) and every row has its migrated values."""
    store = tmp_path / "store"
    store.mkdir()
    with _opened(store) as (_, db, counter):
        _commit(db, counter, *range(20))
    _kill_at(_writer(tmp_path, store, "migrate"), at)
    db_path = next(store.glob("cell-*.sqlite"))
    schema = _file_schema(db_path)
    if at == "committed":
        assert schema == (["id", "kk", "body", "tag"], 2, ["ev", "extra"])
    else:
        assert schema == (["id", "k", "body"], 1, ["ev"])
    assert _look(store).returncode == 0
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("events", tables=V2, version=2, migrate=_migrate_done)
        counter = space.cell("counter", default=0)
        with space.transact():
            counter.update(lambda v: v + 1)
            db.exec("INSERT INTO ev (kk, tag) VALUES (2000, 'again')")
        rows = db.read("SELECT kk, tag FROM ev ORDER BY id")
    old = [{"kk": k, "tag": f"m{k}"} for k in range(20)]
    new = [{"kk": 1000, "tag": "new"}] if at == "committed" else []
    assert rows == [*old, *new, {"kk": 2000, "tag": "again"}]
    assert counter.get() == len(rows)
    assert _file_schema(db_path) == (["id", "kk", "body", "tag"], 2, ["ev", "extra"])
    assert _cli("check", str(store)).returncode == 0


_DROPPER = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[3])
    import crashkit
    import sqlite_cells as sc
    store, spec = sys.argv[1], sys.argv[2]
    plan = crashkit.Plan(fault=None if spec == "count" else crashkit.Fault.parse(spec, "kill"))
    vfs = crashkit.install(plan)
    rt = sc.Runtime(store)
    space = rt.space("demo")
    counter = space.cell("counter", default=0)
    ev = sc.table(id="integer primary key", k="integer", body="text")
    db = space.sqlite_database("events", tables={"ev": ev})
    for k in range(5):
        with space.transact():
            counter.update(lambda v: v + 1)
            db.exec("INSERT INTO ev (k) VALUES (?)", [k])
    plan.arm()
    with space.transact():
        counter.update(lambda v: v + 1)
        db.drop()
    os.write(1, ("counts " + json.dumps(plan.disarm()) + "\\n").encode())
    rt.close()
    """
)


def _drop_killed(tmp_path: Path, store: Path, spec: str) -> str:
    script = tmp_path / "dropper.py"
    script.write_text(_DROPPER)
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(store), spec, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.stdout


def _drop_outcome(store: Path) -> str:
    """'old' (5 rows, counter 5) or 'new' (dropped, counter 6); anything else fails."""
    assert _look(store).returncode == 0
    with _opened(store) as (_, db, counter):
        value = counter.get()
        try:
            rows = db.read("SELECT k FROM ev")
        except sc.SqliteCellsError as exc:
            assert "dropped" in str(exc)
            assert value == 6
            return "new"
        assert (len(rows), value) == (5, 5)
        return "old"


def test_a_writer_killed_at_the_last_sync_of_a_drop_leaves_it_dropped_or_not(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    _drop_killed(tmp_path, store, "space-wal:sync:1:before")
    assert _drop_outcome(store) in ("old", "new")


@pytest.mark.slow
def test_a_writer_killed_at_every_write_of_a_drop_leaves_it_dropped_or_not(
    tmp_path: Path,
) -> None:
    """R72: the drop commits whole or not at all, whatever write or sync it was killed at."""
    store = tmp_path / "store"
    out = _drop_killed(tmp_path, store, "count")
    counts = json.loads(out.split("counts ", 1)[1])
    seen = set()
    for kind, ops in counts.items():
        for op, n in ops.items():
            for i in range(1, n + 1):
                for when in ("before", "after"):
                    _drop_killed(tmp_path, store, f"{kind}:{op}:{i}:{when}")
                    seen.add(_drop_outcome(store))
    assert seen == {"old", "new"}


# -- a full disk (R34, R71, R72) -----------------------------------------------------------------


@pytest.mark.parametrize("free_kb", [300, 500, 600, 700])
def test_a_full_disk_loses_no_commit_that_returned_and_leaves_the_files_agreeing(
    tmp_path: Path, free_kb: int
) -> None:
    """A real full filesystem (a 1 MiB tmpfs, mounted when allowed): commits fail with a
    `SqliteCellsError`, none that returned is lost, and once space is freed the same runtime
    reads and commits again, the database and its space agree and `check` finds nothing."""
    mount = _tmpfs(tmp_path / "fs", "1m")
    try:
        filler = mount / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            f.write(b"\0" * (1024 * 1024 - free_kb * 1024))
        store = mount / "store"
        store.mkdir()
        returned: list[int] = []
        failures = 0
        with _opened(store) as (_, db, counter):
            for k in range(400):
                try:
                    _commit(db, counter, k, body="x" * 3000)
                    returned.append(k)
                except sc.SqliteCellsError:
                    failures += 1
                    if failures == 3:
                        break
            assert failures == 3
            filler.unlink()
            # The same runtime, once there is room again: what a full disk stopped (a repair
            # included, which quarantines the database only for that use) works (R71).
            assert {r["k"] for r in db.read("SELECT k FROM ev")} >= set(returned)
            _commit(db, counter, 10_000)
            returned.append(10_000)
        with _opened(store) as (_, db, counter):
            ks = {r["k"] for r in db.read("SELECT k FROM ev")}
            assert set(returned) <= ks and counter.get() == len(ks)
        assert _cli("check", str(store)).returncode == 0
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("then", ["commit", "read"])
def test_a_backup_restored_under_a_running_runtime_never_meets_the_replaced_files_wal(
    tmp_path: Path, then: str
) -> None:
    """R71, R73: a store's files copied while its runtime ran, then copied back over it while
    it still runs. The next commit meets the replaced space file (StoreChanged); the runtime is
    closed, as that error says. A database file that no commit met since it was replaced had its
    old `-wal` (commits past the backup) left at its path, which the next opener applied to the
    restored file: it served rows its space never committed, and `check` said "in sync". Its
    companions are set aside at close now; every database holds exactly its space's commits.
    A read first (`then="read"`) found the file replaced, checked it against the space it still
    held open — the replaced one — and replayed that space's later commits into the restored
    file: the read is `StoreChanged` now, as a commit is, and repairs nothing."""
    store = tmp_path / "store"
    rows = {"rows": sc.table(id="integer primary key", k="integer")}
    rt = sc.Runtime(store)
    space = rt.space("s")
    counter = space.cell("n", default=0)
    dbs = [space.sqlite_database(name, tables=rows) for name in ("a", "b")]

    def commit(k: int) -> None:
        with space.transact():
            counter.set(k)
            dbs[k % 2].exec("INSERT INTO rows (k) VALUES (?)", [k])

    for k in range(1, 101):
        commit(k)
    backup = tmp_path / "backup"
    backup.mkdir()
    for path in store.iterdir():
        if path.is_file():
            shutil.copy(path, backup / path.name)
    for k in range(101, 172):
        commit(k)
    for path in backup.iterdir():  # put back, each file replaced whole (a new file at its path)
        shutil.copy(path, store / (path.name + ".tmp"))
        os.replace(store / (path.name + ".tmp"), store / path.name)
    with pytest.raises(sc.StoreChanged):
        if then == "commit":
            commit(172)
        else:
            dbs[1].read("SELECT count(*) AS n FROM rows")
    rt.close()
    with sc.Runtime(store) as again:
        space = again.space("s")
        n = space.cell("n", default=0).get()
        assert n == 100
        for i, name in enumerate(("a", "b")):
            db = space.sqlite_database(name, tables=rows)
            found = [row["k"] for row in db.read("SELECT k FROM rows ORDER BY k")]
            assert found == [k for k in range(1, n + 1) if k % 2 == i], name
    done = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", "check", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_after_a_full_disk_repair_live_queries_show_the_commit_and_no_old_quarantine(
    tmp_path: Path,
) -> None:
    """R71, R42: the disk fills while a commit writes its database file (the space committed,
    the file did not, its repair failed: a passing quarantine). Once space is freed, the next
    read repaired the file but the live query kept the quarantine's error (nothing re-ran it),
    and a first read after freeing space raised that old quarantine without looking again.
    Now the read repairs and returns the rows, and the query shows them."""
    mount = _tmpfs(tmp_path / "fs", "4m")
    try:
        store = mount / "store"
        store.mkdir()
        tables = {"t": sc.table(id="integer primary key", b="blob", indexes={"i": ["b", "id"]})}
        with sc.Runtime(store) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("d", tables=tables)
            with space.transact():
                db.exec("INSERT INTO t (b) VALUES (x'00')")
            q = db.query("SELECT count(*) AS n FROM t")
            rt.settle()
            filler = mount / "filler"
            for leave_kb in range(40, 400, 20):  # until a commit's file write meets a full disk
                free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
                with contextlib.suppress(OSError), open(filler, "wb") as f:
                    f.write(b"\0" * max(0, free - leave_kb * 1024))
                try:
                    with space.transact():
                        db.exec("INSERT INTO t (b) VALUES (?)", [os.urandom(40 * 1024)])
                except sc.SqliteCellsError:
                    filler.unlink()
                    continue
                rt.settle()
                if isinstance(q.get().error, sc.Quarantined):
                    break
                filler.unlink()
            else:
                pytest.skip("no commit met the full disk between its two files here")
            filler.unlink()
            rows = db.read("SELECT count(*) AS n FROM t")
            deadline = time.monotonic() + 10
            while q.get().result != rows and time.monotonic() < deadline:
                time.sleep(0.02)
            assert q.get().error is None and q.get().result == rows
        assert _cli("check", str(store)).returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


_KILLED_BETWEEN_COMMITS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    import crashkit
    import sqlite_cells as sc
    plan = crashkit.Plan(fault=crashkit.Fault.parse("db-wal:write:1:before", "kill"))
    vfs = crashkit.install(plan)
    rt = sc.Runtime(sys.argv[1])
    space = rt.space("demo")
    db = space.sqlite_database("d", tables={"ev": sc.table(
        id="integer primary key", a="text", b="text")})
    db.read("SELECT 1 FROM ev")
    plan.arm()
    with space.transact():
        db.exec("INSERT INTO ev (a, b) VALUES ('a2', 'b2')")
    print("not killed", flush=True)
    """
)


def _reorder(conn: Any, _from_version: int) -> None:
    conn.execute("CREATE TABLE ev_new (id integer primary key, b text, a text)")
    conn.execute("INSERT INTO ev_new (id, b, a) SELECT id, b, a FROM ev")
    conn.execute("DROP TABLE ev")
    conn.execute("ALTER TABLE ev_new RENAME TO ev")


def _drop_b(conn: Any, _from_version: int) -> None:
    conn.execute("ALTER TABLE ev DROP COLUMN b")


@pytest.mark.parametrize("change", ["reorder", "drop"])
def test_a_migrate_after_another_writer_died_between_its_commits_runs_on_the_caught_up_file(
    tmp_path: Path, change: str
) -> None:
    """R14, R71, R72: this runtime checked the database against its space at its first write;
    then another process committed to the space and was killed before the database file's
    COMMIT (the file one commit behind). A new version's `migrate` ran on that file as it was,
    and the commit it lacked was replayed after it, onto the new tables: its values put by
    position into reordered columns (`check` said "in sync"), or a column the migration dropped
    made again — the version already new, every later write an UnsupportedMigration. The file is
    compared with its space again before a `migrate` runs: the commit is replayed first."""
    store = tmp_path / "store"
    v1 = {"ev": sc.table(id="integer primary key", a="text", b="text")}
    if change == "reorder":
        v2, migrate = {"ev": sc.table(id="integer primary key", b="text", a="text")}, _reorder
    else:
        v2, migrate = {"ev": sc.table(id="integer primary key", a="text")}, _drop_b
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_BETWEEN_COMMITS)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v1)
        with space.transact():
            db.exec("INSERT INTO ev (a, b) VALUES ('a1', 'b1')")
        _run_killed(script, store)
        raw = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
        try:  # (what this test is about: the file is a commit behind)
            assert raw.execute("SELECT a FROM ev").fetchall() == [("a1",)]
        finally:
            raw.close()
        newer = space.sqlite_database("d", tables=v2, version=2, migrate=migrate)

        @sc.handler
        def write() -> None:  # (a handler runs it again should the file be found behind)
            newer.exec("INSERT INTO ev (a) VALUES ('a3')")

        write()
        columns = "id, a, b" if change == "reorder" else "id, a"
        rows = newer.read(f"SELECT {columns} FROM ev ORDER BY id")
    if change == "reorder":
        assert rows == [
            {"id": 1, "a": "a1", "b": "b1"},
            {"id": 2, "a": "a2", "b": "b2"},
            {"id": 3, "a": "a3", "b": None},
        ]
    else:
        assert rows == [{"id": 1, "a": "a1"}, {"id": 2, "a": "a2"}, {"id": 3, "a": "a3"}]
    assert _cli("check", str(store)).returncode == 0
    with sc.Runtime(store) as rt:
        again = rt.space("demo").sqlite_database("d", tables=v2, version=2, migrate=migrate)
        with rt.space("demo").transact():
            again.exec("INSERT INTO ev (a) VALUES ('a4')")
        assert [r["a"] for r in again.read("SELECT a FROM ev ORDER BY id")] == [
            "a1",
            "a2",
            "a3",
            "a4",
        ]


def test_a_writer_killed_between_its_commits_after_a_migrating_write_prepared_is_replayed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R14, R71, R72: a write whose `migrate` is pending compares the database file with its
    space before the commit takes the space's write lock; another process that commits to the
    database right then and is killed between its space's COMMIT and its file's leaves the file
    a commit behind. The migration used to commit on that file anyway, the write was then
    refused as out of step, and the missed commit, recorded under the old tables, could no
    longer be replayed: the database was quarantined for good. The migration now looks again
    under the file's write lock: nothing is migrated, the write is refused as out of step, and
    the next try replays the missed commit, then migrates."""
    from sqlite_cells.write import _fold

    store = tmp_path / "store"
    v1 = {"ev": sc.table(id="integer primary key", a="text", b="text")}
    v2 = {"ev": sc.table(id="integer primary key", a="text")}
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_BETWEEN_COMMITS)
    killed: list[subprocess.CompletedProcess[str]] = []
    prepare = _fold.SqliteParticipant.prepare

    def prepare_then_kill_a_writer(self: Any, conn: Any, ops: Any) -> None:
        prepare(self, conn, ops)
        if not killed:  # (the second process, at this exact moment: after the file was compared)
            killed.append(
                subprocess.run(
                    [sys.executable, str(script), str(store), str(Path(__file__).parent)],
                    capture_output=True,
                    text=True,
                    env=_env(),
                    timeout=60,
                )
            )

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=v1)
        with space.transact():
            db.exec("INSERT INTO ev (a, b) VALUES ('a1', 'b1')")
        newer = space.sqlite_database("d", tables=v2, version=2, migrate=_drop_b)
        monkeypatch.setattr(_fold.SqliteParticipant, "prepare", prepare_then_kill_a_writer)
        with pytest.raises(sc.ConflictError) as info, space.transact():
            newer.exec("INSERT INTO ev (a) VALUES ('a3')")
        assert killed[0].returncode == -signal.SIGKILL, (killed[0].stdout, killed[0].stderr)
        assert "its file holds commits up to seq 1 but its space last wrote it at seq 2" in str(
            info.value
        )
        assert "nothing was written, and the file is repaired before its next use" in str(
            info.value
        )
        raw = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
        try:  # nothing migrated: the old tables, the old version, the one row
            assert raw.execute("SELECT * FROM ev").fetchall() == [(1, "a1", "b1")]
            version = "SELECT value FROM _cf_meta WHERE key = 'version'"
            assert raw.execute(version).fetchall() == [(1,)]
        finally:
            raw.close()
        with space.transact():
            newer.exec("INSERT INTO ev (a) VALUES ('a3')")
        rows = newer.read("SELECT id, a FROM ev ORDER BY id")
    assert rows == [{"id": 1, "a": "a1"}, {"id": 2, "a": "a2"}, {"id": 3, "a": "a3"}]
    done = _cli("check", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout


def test_a_file_migrated_while_it_lacked_a_commit_is_said_to_be_so_and_rebuilds_from_the_log(
    tmp_path: Path,
) -> None:
    """R14, R71: a database file that a migration reached while it lacked a commit of its
    space (written at the older version) cannot be replayed. `check`, `check --repair` and the
    runtime said the file was "not this database's file"; they now say what happened, change
    nothing, and the advice holds: moved out, the file is rebuilt from the log at the older
    version, and the next write migrates it."""
    store = tmp_path / "store"
    v1 = {"ev": sc.table(id="integer primary key", a="text", b="text")}
    v2 = {"ev": sc.table(id="integer primary key", a="text")}
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_BETWEEN_COMMITS)
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("d", tables=v1)
        with rt.space("demo").transact():
            db.exec("INSERT INTO ev (a, b) VALUES ('a1', 'b1')")
        path = Path(db.path)
    _run_killed(script, store)
    raw = apsw.Connection(str(path))
    try:  # what a migration to version 2 committed in the file, one commit behind, left
        raw.execute("ALTER TABLE ev DROP COLUMN b")
        raw.execute("UPDATE _cf_meta SET value = 2 WHERE key = 'version'")
    finally:
        raw.close()
    said = (
        "the file is at version 2, but the space's commit 2, which it lacks, was written on it "
        "at version 1: a migration (a migrate= step) committed in the file before that commit "
        "reached it"
    )

    def database_files() -> dict[str, str]:  # (the space file's -wal may be checkpointed)
        return {name: hashed for name, hashed in _digest(store).items() if "cell-" in name}

    for args in ([], ["--repair"]):
        before = database_files()
        found = _cli("check", str(store), *args)
        assert database_files() == before, found.stdout
        assert found.returncode == 1 and said in found.stdout, found.stdout
        assert "not this database's file" not in found.stdout
        assert (
            "moving cell-" in found.stdout and "rebuilds the database from the log" in found.stdout
        )
    for part in (path, Path(f"{path}-wal")):
        if part.exists():
            part.rename(tmp_path / part.name)
    assert _cli("check", str(store), "--repair").returncode == 0
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        newer = space.sqlite_database("d", tables=v2, version=2, migrate=_drop_b)
        with space.transact():
            newer.exec("INSERT INTO ev (a) VALUES ('a3')")
        rows = newer.read("SELECT id, a FROM ev ORDER BY id")
    assert rows == [{"id": 1, "a": "a1"}, {"id": 2, "a": "a2"}, {"id": 3, "a": "a3"}]


def test_a_migrate_reading_a_database_behind_its_space_fails_alone_and_repairs_nothing(
    tmp_path: Path,
) -> None:
    """R14, R71: a `migrate` callback runs inside the commit of its write, with the space's
    write lock held (re-entrant for that thread). A read in it of another database of the
    space whose file is a commit behind (its writer killed between the two COMMITs) used to
    repair that file on the space's write connection, rolling back the open commit: the
    migration stayed, the write failed with SQLite's "unknown database", and the transactions
    committed together with it failed too. The read now raises TransactionError inside the
    callback, so the write fails as MigrationError, nothing migrated; the transactions grouped
    with it commit, and the behind file is repaired at its next read."""
    from tests.runtime.test_group_commit import commit_queued

    store = tmp_path / "store"
    v1 = {"ev": sc.table(id="integer primary key", a="text", b="text")}
    m1 = {"t": sc.table(id="integer primary key", a="text")}
    m2 = {"t": sc.table(id="integer primary key", c="text")}
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_BETWEEN_COMMITS)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        ref, db = space.sqlite_database("d", tables=v1), space.sqlite_database("m", tables=m1)
        with space.transact():
            ref.exec("INSERT INTO ev (a, b) VALUES ('a1', 'b1')")
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES ('x')")
        path = Path(db.path)
    _run_killed(script, store)
    seen: list[BaseException] = []
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        ref = space.sqlite_database("d", tables=v1)

        def migrate(conn: Any, _from_version: int) -> None:
            try:
                ref.read("SELECT a FROM ev")
            except sc.SqliteCellsError as exc:
                seen.append(exc)
                raise
            conn.execute("ALTER TABLE t RENAME COLUMN a TO c")

        newer = space.sqlite_database("m", tables=m2, version=2, migrate=migrate)
        cells = [space.cell("before", default=0), space.cell("after", default=0)]
        outcomes, _ = commit_queued(
            space,
            [
                lambda: cells[0].set(1),
                lambda: newer.exec("INSERT INTO t (c) VALUES ('y')"),
                lambda: cells[1].set(2),
            ],
        )
        assert isinstance(outcomes[0], int) and isinstance(outcomes[2], int), outcomes
        failed = outcomes[1]
        assert isinstance(failed, sc.MigrationError), failed
        assert isinstance(seen[0], sc.TransactionError) and failed.__cause__ is seen[0]
        said = str(seen[0])
        assert "disagrees with its space and is checked and repaired under the space's" in said
        assert "(a read from a migrate callback); nothing was read or repaired" in said
        assert said.endswith("or after the write has returned")
        assert "nothing was written" in str(failed)
        assert [c.get() for c in cells] == [1, 2]
        # The migration committed nothing; the behind file is repaired at its next read.
        raw = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            assert raw.execute("SELECT * FROM t").fetchall() == [(1, "x")]
            version = "SELECT value FROM _cf_meta WHERE key = 'version'"
            assert raw.execute(version).fetchall() == [(1,)]
        finally:
            raw.close()
        assert ref.read("SELECT a FROM ev ORDER BY id") == [{"a": "a1"}, {"a": "a2"}]
        with space.transact():  # the callback's read now finds the file in step: it migrates
            newer.exec("INSERT INTO t (c) VALUES ('y')")
        assert newer.read("SELECT c FROM t ORDER BY id") == [{"c": "x"}, {"c": "y"}]
    assert _cli("check", str(store)).returncode == 0


# -- the commit in flight ran a `migrate` that renamed a table (R14, R71, §6) ------------------


def _renamer(old: str, new: str) -> Any:
    def migrate(conn: Any, from_version: int) -> None:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

    return migrate


def _write_renamed(store: Path, version: int, old: str, new: str, k: int) -> None:
    """A newer program: its first write runs a `migrate` renaming ``old`` to ``new``."""
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database(
            "events",
            tables={new: TABLES["ev"]},
            version=version,
            migrate=_renamer(old, new),
        )

        @sc.handler
        def add() -> None:
            db.exec(f"INSERT INTO {new} (k) VALUES (?)", [k])

        add()


def _lose_renaming_commit(tmp_path: Path, version: int, old: str, new: str, k: int) -> None:
    """The space file put back from before the newer program's commit (which renamed ``old``
    to ``new``): the database file is ahead by that one commit, as a lost commit in flight
    leaves it."""
    store = tmp_path / "store"
    space = _space_path(store)
    checkpointed(space)
    shutil.copyfile(space, tmp_path / "space.old")
    _write_renamed(store, version, old, new, k)
    _put(tmp_path / "space.old", space)


def _file_state(path: Path) -> tuple[list[str], object, object]:
    """The file's tables (not the runtime's), its version and watermark."""
    conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    try:
        names = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '_cf_%'"
        tables = sorted(name for (name,) in conn.execute(names))
        (version,) = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchone()
        return tables, version, read_watermark(conn)
    finally:
        conn.close()


def _ks(path: Path, table: str) -> list[object]:
    conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    try:
        return [k for (k,) in conn.execute(f"SELECT k FROM {table} ORDER BY id")]
    finally:
        conn.close()


def test_repair_of_a_commit_in_flight_that_renamed_a_table_rebuilds_the_file_at_once(
    tmp_path: Path,
) -> None:
    """R71, §6: undoing a commit in flight whose `migrate` renamed a table leaves the rename (it
    committed in the file on its own), so the file lacks a table its space's declaration
    holds. `check --repair` said "inverted" (exit 0) of it and the next `check` found it
    damaged; it now goes on as for a damaged file: rebuilt from the log, a copy kept, and the
    next `check` finds it in sync."""
    store = tmp_path / "store"
    db_path = _fill(store, 1, 2)
    _lose_renaming_commit(tmp_path, 2, "ev", "ev2", 3)
    assert _file_state(db_path) == (["ev2"], 2, 3)
    assert _look(store).returncode == 1
    repaired = _cli("check", "--repair", str(store))
    assert repaired.returncode == 0, repaired.stdout
    assert ": rebuilt, " in repaired.stdout and "inverted" not in repaired.stdout
    assert (
        "once the commit in flight (seq 3) is undone, the file at version 2 lacks the table(s) "
        "['ev'] that its space's last write to it (seq 2, at version 1) declared"
    ) in repaired.stdout
    assert _file_state(db_path) == (["ev"], 1, 2)
    assert _raw_rows(db_path) == [(1,), (2,)]
    # One copy, of the file as found: the renamed table with the undone commit's row.
    (kept,) = (store / "quarantine").glob(f"{db_path.name}.*.0")
    assert kept.name.endswith(".damaged.0") and str(kept) in repaired.stdout
    assert _file_state(kept) == (["ev2"], 2, 3)
    assert _ks(kept, "ev2") == [1, 2, 3]
    again = _look(store)
    assert again.returncode == 0 and ": in sync" in again.stdout, again.stdout
    # The newer program's next write migrates the rebuilt file again.
    _write_renamed(store, 2, "ev", "ev2", 4)
    assert _file_state(db_path) == (["ev2"], 2, 3)  # (seq 3 taken again)
    assert _ks(db_path, "ev2") == [1, 2, 4]
    assert _look(store).returncode == 0


def test_a_runtime_never_serves_a_file_whose_undone_commit_in_flight_renamed_a_table(
    tmp_path: Path,
) -> None:
    """R71: a runtime's first use undoes the commit in flight as `check --repair` does, and the
    file it serves is the one its space's log holds (the declared table, its rows), not the
    renamed one; a copy of the file as found is kept."""
    store = tmp_path / "store"
    db_path = _fill(store, 1, 2)
    _lose_renaming_commit(tmp_path, 2, "ev", "ev2", 3)
    with _opened(store) as (_, db, counter):
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2]
        assert counter.get() == 2
        _commit(db, counter, 5)
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2, 5]
    assert _file_state(db_path) == (["ev"], 1, 3)
    (kept,) = (store / "quarantine").glob(f"{db_path.name}.*.damaged.0")
    assert _file_state(kept) == (["ev2"], 2, 3) and _ks(kept, "ev2") == [1, 2, 3]
    assert _look(store).returncode == 0


def test_repair_of_a_renaming_commit_in_flight_the_log_cannot_rebuild_is_a_finding(
    tmp_path: Path,
) -> None:
    """R71, §6: when the log cannot rebuild the file (its history crosses an earlier `migrate`
    step), the repair neither says "inverted" nor changes the file: it is quarantined as found
    (exit 1), the message naming both versions and the space file's backup to restore."""
    store = tmp_path / "store"
    db_path = _fill(store, 1, 2)
    _write_renamed(store, 2, "ev", "ev2", 3)
    _lose_renaming_commit(tmp_path, 3, "ev2", "ev3", 4)
    assert _file_state(db_path) == (["ev3"], 3, 4)
    before = _digest(store)
    repaired = _cli("check", "--repair", str(store))
    assert repaired.returncode == 1, repaired.stdout
    assert "inverted" not in repaired.stdout and "quarantined" in repaired.stdout
    assert (
        "the file at version 3 lacks the table(s) ['ev2'] that its space's last write to it "
        "(seq 3, at version 2) declared"
    ) in repaired.stdout
    assert "restore the space file from a backup made after commit 4" in repaired.stdout
    assert "its space's log cannot rebuild it" in repaired.stdout
    assert _digest(store) == before  # kept as found, and no copy left for a repair not made
    assert _file_state(db_path) == (["ev3"], 3, 4) and _ks(db_path, "ev3") == [1, 2, 3, 4]
    assert _cli("check", str(store)).returncode == 1


def test_check_says_a_renaming_commit_in_flight_is_rebuilt_or_quarantined_not_undone(
    tmp_path: Path,
) -> None:
    """§6, R71: `check` (without `--repair`) says what `check --repair` does. Of a file one
    commit ahead whose commit in flight followed a `migrate` that renamed a declared table, it
    said "ahead" and advised `--repair` "to undo the one commit…", while the repair rebuilds
    the file from the log (a copy kept) or, when the log cannot, quarantines it as found."""
    store = tmp_path / "store"
    _fill(store, 1, 2)
    _lose_renaming_commit(tmp_path, 2, "ev", "ev2", 3)
    looked = _look(store)
    assert looked.returncode == 1, looked.stdout
    assert ": damaged (" in looked.stdout and ": ahead" not in looked.stdout, looked.stdout
    assert "undo the one commit" not in looked.stdout
    assert "the file at version 2 lacks the table(s) ['ev']" in looked.stdout
    assert "run `sqlite-cells check --repair` to rebuild it from its space's log" in looked.stdout
    # `query` reads nothing of it and says what a runtime does: a rebuild, not an undo.
    queried = _cli("query", str(store), "demo", "events", "SELECT k FROM ev")
    assert queried.returncode == 1 and "NeedsRepair" in queried.stderr, queried.stderr
    assert "is damaged (" in queried.stderr and "undoes" not in queried.stderr
    assert "a runtime rebuilds it from its space's log" in queried.stderr
    assert ": rebuilt, " in _cli("check", "--repair", str(store)).stdout

    other = tmp_path / "other"
    other_store = other / "store"
    other.mkdir()
    _fill(other_store, 1, 2)
    _write_renamed(other_store, 2, "ev", "ev2", 3)
    _lose_renaming_commit(other, 3, "ev2", "ev3", 4)
    looked = _look(other_store)
    assert looked.returncode == 1, looked.stdout
    assert ": quarantined (" in looked.stdout and "undo the one commit" not in looked.stdout
    assert "restore the space file from a backup made after commit 4" in looked.stdout
    assert "its space's log cannot rebuild it" in looked.stdout
    repaired = _cli("check", "--repair", str(other_store))
    assert repaired.returncode == 1 and ": quarantined (" in repaired.stdout

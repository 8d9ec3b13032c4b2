"""A replay never crosses a version step the database file lacks (R14, R71, R72): a file that
lost a ``migrate`` step is quarantined; a step the replayed commits made themselves (the
additive diff) is replayed and its version stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells import files as sc_files
from sqlite_cells.codec import Op
from sqlite_cells.files import KIND, OpBody, decode_op_body
from sqlite_cells.files._reconcile import Action, _Irreparable, _version_after
from sqlite_cells.runtime import SpaceFile
from sqlite_cells.runtime._store import space_file_name
from sqlite_cells.schema._migrate import MigrationConnection

V1 = {"t": sc.table(id="integer primary key", a="text")}
V2 = {"t": sc.table(id="integer primary key", a="text", b="integer default 5")}


def upper(conn: MigrationConnection, _from: int) -> None:
    conn.execute("UPDATE t SET a = upper(a)")


def never(conn: MigrationConnection, _from: int) -> None:
    raise AssertionError("migrate ran again over rows already migrated")


def copy_files(path: Path, dest: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            shutil.copy2(f"{path}{suffix}", f"{dest}{suffix}")


def put_back(copy: Path, path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
        if Path(f"{copy}{suffix}").exists():
            shutil.copy2(f"{copy}{suffix}", f"{path}{suffix}")


def rows_and_version(path: Path) -> tuple[list[tuple[object, ...]], object]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows = [tuple(r) for r in conn.execute("SELECT id, a FROM t ORDER BY id")]
        version = conn.execute("SELECT value FROM _cf_meta WHERE key = 'version'").fetchall()
        return rows, version[0][0]
    finally:
        conn.close()


def written_and_copied(store: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A database written once at version 1, and a copy of its file; both paths."""
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("m", tables=V1, version=1)
        with rt.space("demo").transact():
            db.exec("INSERT INTO t (id, a) VALUES (1, 'x')")
        path = db.path
    copy = tmp_path / "copy.sqlite"
    copy_files(path, copy)
    return path, copy


def migrated_store(store: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A database written at version 1, copied, then migrated to version 2 by a ``migrate``
    that changes its rows and written again; the file's path and the copy's."""
    path, copy = written_and_copied(store, tmp_path)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("m", tables=V2, version=2, migrate=upper)
        with space.transact():
            db.exec("INSERT INTO t (id, a) VALUES (2, 'y')")
        with space.transact():
            db.exec("INSERT INTO t (id, a) VALUES (3, 'z')")
        assert db.read("SELECT a FROM t ORDER BY id") == [{"a": "X"}, {"a": "y"}, {"a": "z"}]
    return path, copy


def test_a_file_that_lost_a_migrate_step_is_quarantined_not_replayed(
    store: Path, tmp_path: Path
) -> None:
    path, copy = migrated_store(store, tmp_path)
    put_back(copy, path)
    before = rows_and_version(path)
    assert before == ([(1, "x")], 1)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("m", tables=V2, version=2, migrate=upper)
        with pytest.raises(sc.Quarantined):
            db.read("SELECT a FROM t")
        with pytest.raises(sc.Quarantined), space.transact():
            db.exec("INSERT INTO t (id, a) VALUES (4, 'w')")
    # Nothing replayed onto the pre-migration rows, and migrate not run over them again.
    assert rows_and_version(path) == before
    (outcome,) = sc_files.check_store(store, repair=True)
    assert outcome.action is Action.QUARANTINED
    assert "the file is at version 1, but the space's commit 2 was written on it at version 2" in (
        outcome.detail
    )
    assert rows_and_version(path) == before


def test_a_look_without_repair_reports_the_lost_migrate_step(store: Path, tmp_path: Path) -> None:
    path, copy = migrated_store(store, tmp_path)
    put_back(copy, path)
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.QUARANTINED and "lacks a migration" in outcome.detail
    assert (outcome.db_seq, outcome.space_seq) == (1, 3)


def test_a_missing_file_whose_history_crosses_a_migrate_step_is_not_rebuilt(
    store: Path, tmp_path: Path
) -> None:
    path, _copy = migrated_store(store, tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.QUARANTINED and "at no version" not in outcome.detail
    # Said as what it is: no file, and a log that cannot rebuild one (not "the file is at
    # version 1 … restored from an older copy", of a file there is not).
    assert "no file; its space's log cannot rebuild it" in outcome.detail
    assert "after a migration (a migrate= step) that the log does not hold" in outcome.detail
    assert "the file is at" not in outcome.detail and "nothing was created" in outcome.detail
    assert not path.exists()
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("m", tables=V2, version=2, migrate=upper)
        with pytest.raises(sc.Quarantined):
            db.read("SELECT a FROM t")


def test_an_additive_version_step_made_by_the_lost_commit_is_replayed(
    store: Path, tmp_path: Path
) -> None:
    """A version bump without ``migrate`` is made inside the commit that needs it: a file that
    lost that commit (a crash between the two files' commits) replays it, bump included."""
    path, copy = written_and_copied(store, tmp_path)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("m", tables=V2, version=2)
        with space.transact():
            db.exec("UPDATE t SET b = 9 WHERE id = 1")
        want = db.read("SELECT * FROM t ORDER BY id")
    put_back(copy, path)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("m", tables=V2, version=2, migrate=never)
        assert db.read("SELECT * FROM t ORDER BY id") == want == [{"id": 1, "a": "x", "b": 9}]
        assert rows_and_version(path)[1] == 2  # the replay stored the version the commit left
        with space.transact():  # no migrate: the file is at version 2 already
            db.exec("INSERT INTO t (id, a) VALUES (2, 'y')")
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC


def op(version: int | None, from_version: int | None) -> tuple[int, Op]:
    body = OpBody("INSERT …", [], False, b"", version, from_version)
    return 0, Op(KIND, "of:db", msgspec.json.encode(body))


@pytest.mark.parametrize(
    ("found", "ops", "after"),
    [
        (1, [op(1, 1), op(1, 1)], 1),
        (1, [op(2, 1), op(2, 2)], 2),  # the first op's commit made the step itself
        # a file replayed from its first commit, through two additive steps
        (None, [op(1, None), op(2, 1), op(3, 2), op(3, 3)], 3),
        (None, [op(1, None), op(1, 1)], 1),
        (2, [op(None, None), op(3, 3)], 3),  # older records: nothing known across them
        (1, [op(None, None)], None),
    ],
)
def test_version_after_a_replay(
    found: int | None, ops: list[tuple[int, Op]], after: int | None
) -> None:
    assert _version_after(ops, found) == after


@pytest.mark.parametrize(
    ("found", "ops"),
    [
        (1, [op(2, 2)]),
        (1, [op(1, 1), op(2, 2)]),
        (None, [op(2, 2)]),
        (None, [op(1, None), op(2, 2)]),
    ],
)
def test_replay_refuses_a_version_step_it_cannot_make(
    found: int | None, ops: list[tuple[int, Op]]
) -> None:
    with pytest.raises(_Irreparable, match="lacks a migration"):
        _version_after(ops, found)


@pytest.mark.parametrize(
    ("found", "ops"),
    [
        (3, [op(2, 2)]),
        (2, [op(1, 1), op(2, 2)]),
        (2, [op(2, 1)]),  # (the commit's own additive step came after the migration)
    ],
)
def test_replay_refuses_a_commit_older_than_the_file_version(
    found: int | None, ops: list[tuple[int, Op]]
) -> None:
    """A file at a newer version than a commit it lacks was written at: a migration committed
    in it while it was behind its space (R14, R71); that commit's values belong in the older
    tables."""
    with pytest.raises(_Irreparable, match="committed in the file before that commit reached"):
        _version_after(ops, found)


def test_the_op_records_the_versions(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("m", tables=V1, version=1)
        with space.transact():
            db.exec("INSERT INTO t (id, a) VALUES (1, 'x')")
        db2 = space.sqlite_database("m", tables=V2, version=2, migrate=upper)
        with space.transact():
            db2.exec("INSERT INTO t (id, a) VALUES (2, 'y')")
            db2.exec("INSERT INTO t (id, a) VALUES (3, 'z')")
        db3 = space.sqlite_database("m", tables=V2, version=3)
        with space.transact():
            db3.exec("INSERT INTO t (id, a) VALUES (4, 'w')")
        with space.transact():
            db3.exec("INSERT INTO t (id, a) VALUES (5, 'v')")
    conn = apsw.Connection(str(store / space_file_name("demo")), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        found = [
            (seq, body.version, body.from_version)
            for seq, o in SpaceFile.ops_for(conn, db.declaration.db_id, 0, 10)
            for body in [decode_op_body(o)]
        ]
    finally:
        conn.close()
    assert found == [(1, 1, None), (2, 2, 2), (2, 2, 2), (3, 3, 2), (4, 3, 3)]

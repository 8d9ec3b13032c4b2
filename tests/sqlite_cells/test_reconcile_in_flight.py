"""R71: a database ahead of its space is inverted only when its newest commit is the one a crash
left in flight; another database's file at its path, or a space file restored from an old copy
(or lost) whose seqs other commits took again, is quarantined with its rows untouched."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files._reconcile import Action
from sqlite_cells.runtime import log_head

TABLES = {"t": sc.table(id="integer primary key", v="text")}


def _commit(space: sc.Space, db: sc.SqliteDb, value: str) -> int:
    with space.transact() as tx:
        db.exec("INSERT INTO t (v) VALUES (?)", [value])
    assert tx.seq is not None
    return tx.seq


def _set_cell(space: sc.Space, value: int) -> int:
    with space.transact() as tx:
        space.cell("x", default=0).set(value)
    assert tx.seq is not None
    return tx.seq


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _copy(source: Path, dest: Path) -> None:
    """A consistent copy of an SQLite file (its -wal folded in), without companions."""
    _remove(dest)
    src, dst = apsw.Connection(str(source)), apsw.Connection(str(dest))
    try:
        with dst.backup("main", src, "main") as backup:
            backup.step()
        dst.execute("PRAGMA journal_mode=DELETE").fetchall()
    finally:
        src.close()
        dst.close()


def _rows(path: Path) -> list[str]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [str(v) for (v,) in conn.execute("SELECT v FROM t ORDER BY id")]
    finally:
        conn.close()


def _space_file(store: Path) -> Path:
    (found,) = store.glob("space-*.sqlite")
    return found


def _crash_in_flight(store: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Commits 1 (the database: 'first'), 2 (a cell), then 3 (the database: 'in flight'); returns
    a copy of the space file as it was at seq 2 (a crash before seq 3 was durable in it) and the
    database file's path."""
    before = tmp_path / "space-at-2.sqlite"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("data", tables=TABLES)
        assert (_commit(space, db, "first"), _set_cell(space, 1)) == (1, 2)
        _copy(_space_file(store), before)
        assert _commit(space, db, "in flight") == 3
    return before, db.path


def test_another_databases_file_one_past_its_last_write_is_quarantined(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        a = space.sqlite_database("a", tables=TABLES)
        b = space.sqlite_database("b", tables=TABLES)
        seqs = [_commit(space, db, v) for db, v in ((a, "A1"), (b, "B2"), (a, "A3"), (b, "B4"))]
        assert seqs == [1, 2, 3, 4]
    _copy(b.path, a.path)  # b's file (watermark 4) where a's (last written at seq 3) belongs
    with sc.Runtime(store) as rt:
        a = rt.space("demo").sqlite_database("a", tables=TABLES)
        with pytest.raises(sc.Quarantined) as info:
            a.read("SELECT v FROM t")
        assert (info.value.db_id, info.value.db_seq, info.value.space_seq) == (a.id, 4, 3)
        outcome = rt.reconcile(a.declaration)
        assert outcome.action is Action.QUARANTINED
        # (Its commit 4 is the one the log recorded for b: the file is b's, named as such.)
        assert f"holds commit 4 as the space's log recorded it for database {b.id}" in (
            outcome.detail
        )
    assert _rows(a.path) == ["B2", "B4"]  # kept as found: nothing inverted
    assert not (store / "quarantine").exists()


def test_another_stores_file_with_the_same_seqs_is_quarantined(store: Path, tmp_path: Path) -> None:
    """Another store's database of the same name, one commit further: its watermark before
    that commit is the space's last write to the database, but its changes of that commit are
    not the ones this space's log recorded."""
    other = tmp_path / "other-store"
    for where, values in ((store, ["A1"]), (other, ["X1", "X2"])):
        with sc.Runtime(where) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("a", tables=TABLES)
            assert [_commit(space, db, v) for v in values] == list(range(1, len(values) + 1))
    (other_file,) = other.glob("cell-*.sqlite")
    (own_file,) = store.glob("cell-*.sqlite")
    _copy(other_file, own_file)
    with sc.Runtime(store) as rt:
        a = rt.space("demo").sqlite_database("a", tables=TABLES)
        outcome = rt.reconcile(a.declaration)
        assert (outcome.action, outcome.db_seq, outcome.space_seq) == (Action.QUARANTINED, 2, 1)
        assert "changes of commit 1 are not the ones its space logged" in outcome.detail
    assert _rows(own_file) == ["X1", "X2"]


def test_a_space_restored_from_an_old_copy_quarantines_a_database_it_caught_up_with(
    store: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "space-backup.sqlite"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("data", tables=TABLES)
        assert (_commit(space, db, "first"), _set_cell(space, 1)) == (1, 2)
        _copy(_space_file(store), backup)  # the space at seq 2
        assert (_set_cell(space, 2), _commit(space, db, "precious")) == (3, 4)
    _copy(backup, _space_file(store))  # restored: the database (at seq 4) is ahead by two
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        # Cell commits take seqs 3 and 4 before the database's first use: it now looks one
        # commit ahead of a space whose seq 4 did not write it, as after a crash.
        assert [_set_cell(space, 10 + i) for i in range(2)] == [3, 4]
        db = space.sqlite_database("data", tables=TABLES)
        with pytest.raises(sc.Quarantined) as info:
            db.read("SELECT v FROM t")
        assert (info.value.db_seq, info.value.space_seq) == (4, 1)
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.QUARANTINED
        assert "but the space's log holds another commit in its place" in outcome.detail
    assert _rows(db.path) == ["first", "precious"]
    assert not (store / "quarantine").exists()


def test_a_lost_space_whose_new_commits_reach_the_watermark_quarantines_the_database(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        for i in range(3):
            _set_cell(space, i)
        db = space.sqlite_database("data", tables=TABLES)
        assert _commit(space, db, "precious") == 4
    _remove(_space_file(store))
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert [_set_cell(space, 10 + i) for i in range(4)] == [1, 2, 3, 4]
        db = space.sqlite_database("data", tables=TABLES)
        with pytest.raises(sc.Quarantined) as info:
            db.read("SELECT v FROM t")
        assert (info.value.db_seq, info.value.space_seq) == (4, 0)
    assert _rows(db.path) == ["precious"]


def test_the_commit_in_flight_is_still_inverted_after_other_commits_took_its_seq(
    store: Path, tmp_path: Path
) -> None:
    """A crash: the space never made seq 3 durable, the database did; another commit took
    seq 3 (and 4) later. The log still holds seq 2, the commit seq 3 followed: inverted."""
    before, _ = _crash_in_flight(store, tmp_path)
    _copy(before, _space_file(store))  # as the space file was when the crash hit
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert [_set_cell(space, 10 + i) for i in range(2)] == [3, 4]
        db = space.sqlite_database("data", tables=TABLES)
        assert db.read("SELECT v FROM t") == [{"v": "first"}]
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.IN_SYNC and outcome.db_seq == 1
    kept = sorted((store / "quarantine").glob("*.ahead-3-of-1.0"))
    assert len(kept) == 1 and _rows(kept[0]) == ["first", "in flight"]


def test_the_commit_in_flight_is_quarantined_once_the_record_it_followed_is_gone(
    store: Path, tmp_path: Path
) -> None:
    """Compaction removed the record the commit in flight followed: nothing tells a crash from
    a restore any more, so the database is quarantined, rows untouched, never inverted."""
    before, _ = _crash_in_flight(store, tmp_path)
    _copy(before, _space_file(store))
    with sc.Runtime(store) as rt:
        assert _set_cell(rt.space("demo"), 10) == 3
    conn = apsw.Connection(str(_space_file(store)))
    conn.execute("DELETE FROM _cf_log WHERE seq = 2")  # as a compaction would
    conn.close()
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("data", tables=TABLES)
        outcome = rt.reconcile(db.declaration)
        assert (outcome.action, outcome.db_seq, outcome.space_seq) == (Action.QUARANTINED, 3, 1)
        assert "followed the space's commit 2, but the space's log no longer holds it" in (
            outcome.detail
        )
    assert _rows(db.path) == ["first", "in flight"]


def test_journal_rows_written_before_the_head_column_keep_the_earlier_rule(
    store: Path, tmp_path: Path
) -> None:
    """A file whose journal predates the ``head`` column (and whose commits set the watermark
    row too): the in-flight commit is inverted as before (nothing recorded to compare), and
    the next write adds the column."""
    before, db_path = _crash_in_flight(store, tmp_path)
    conn = apsw.Connection(str(db_path))
    conn.execute("ALTER TABLE _cf_changes DROP COLUMN head")
    # Earlier formats also set the watermark row in each commit.
    conn.execute("UPDATE _cf_watermark SET seq = 3")
    conn.close()
    _copy(before, _space_file(store))
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("data", tables=TABLES)
        assert db.read("SELECT v FROM t") == [{"v": "first"}]
        assert _commit(space, db, "next") == 3
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows = conn.execute("SELECT seq, head IS NULL FROM _cf_changes ORDER BY rowid").fetchall()
    finally:
        conn.close()
    assert rows == [(1, 1), (3, 0)]


def test_each_journal_row_records_the_hash_of_the_log_record_before_it(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("data", tables=TABLES)
        _commit(space, db, "one")
        _set_cell(space, 1)
        with space.transact():  # two ops of one commit share the head
            db.exec("INSERT INTO t (v) VALUES ('two')")
            db.exec("INSERT INTO t (v) VALUES ('three')")
    conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
    space_conn = apsw.Connection(str(_space_file(store)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        heads = conn.execute("SELECT seq, head FROM _cf_changes ORDER BY rowid").fetchall()
        assert heads == [(1, 0), (3, log_head(space_conn, 2)), (3, log_head(space_conn, 2))]
        assert log_head(space_conn, 2) not in (None, 0, log_head(space_conn, 1))
    finally:
        conn.close()
        space_conn.close()


KEYED = {"k": sc.table(name="text primary key", n="integer")}


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE k SET name = name || '2' WHERE n < 3",
        "INSERT OR REPLACE INTO k (name, n) VALUES ('a', 10)",
        "INSERT INTO k (name, n) VALUES ('b', 20) ON CONFLICT (name) DO UPDATE SET n = excluded.n",
    ],
    ids=["key-update", "replace", "upsert"],
)
@pytest.mark.parametrize("repair", ["replayed", "inverted"])
def test_a_replay_of_a_text_keyed_table_keeps_its_rows_and_keys(
    store: Path, tmp_path: Path, sql: str, repair: str
) -> None:
    """R70 for a table keyed by text: behind, replayed; ahead by the commit in flight, inverted.
    Its rows and keys come back exactly (its hidden rowids may not: decisions.md)."""
    old_db, old_space = tmp_path / "db.sqlite", tmp_path / "space.sqlite"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("k", tables=KEYED)
        with space.transact():
            db.exec_many("INSERT INTO k (name, n) VALUES (?, ?)", [["a", 1], ["b", 2], ["c", 3]])
        before = db.read("SELECT name, n FROM k ORDER BY name")
        _copy(db.path, old_db)
        _copy(_space_file(store), old_space)
        with space.transact():
            db.exec(sql)
        after = db.read("SELECT name, n FROM k ORDER BY name")
    assert after != before
    if repair == "replayed":
        _copy(old_db, db.path)  # the file lost the last commit
    else:
        _copy(old_space, _space_file(store))  # the space lost it: the commit in flight
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("k", tables=KEYED)
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action[repair.upper()]
        expected = after if repair == "replayed" else before
        assert db.read("SELECT name, n FROM k ORDER BY name") == expected

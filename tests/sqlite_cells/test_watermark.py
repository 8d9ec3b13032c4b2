"""The database file's watermark (R70): a commit writes its journal row(s) only; the watermark
is the newest journal row's seq, or ``_cf_watermark`` when larger; repairs keep both in step;
files written when every commit also updated ``_cf_watermark`` read the same."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells import files as sc_files
from sqlite_cells.cli._inspect import inspect_store
from sqlite_cells.files import Action, read_watermark, set_watermark
from sqlite_cells.schema import ensure_runtime_tables
from sqlite_cells.write import _fold

TABLES = {"events": sc.table(id="integer primary key", n="integer")}


def _open(store: Path) -> tuple[sc.Runtime, sc.SqliteDb]:
    rt = sc.Runtime(store)
    return rt, rt.space("demo").sqlite_database("events", tables=TABLES)


def _commit(db: sc.SqliteDb, *ns: int) -> int:
    @sc.handler
    def step() -> None:
        for n in ns:
            db.exec("INSERT INTO events (n) VALUES (?)", [n])

    seq = step()
    assert seq is not None
    return seq


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _file_watermark(path: Path) -> int:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return read_watermark(conn)
    finally:
        conn.close()


def _write_the_old_way(path: Path) -> None:
    """What the previous version left: ``_cf_watermark`` updated by every commit, the journal in
    step with it."""
    conn = apsw.Connection(str(path))
    conn.execute("UPDATE _cf_watermark SET seq = (SELECT max(seq) FROM _cf_changes)")
    conn.close()


def test_the_rule_newest_journal_row_or_the_watermark_row_when_larger(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "f.sqlite"))
    assert read_watermark(conn) == 0  # no runtime tables: a file the runtime never wrote
    conn.execute("CREATE TABLE _cf_watermark(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    conn.execute("INSERT INTO _cf_watermark VALUES (0, 5)")
    assert read_watermark(conn) == 5  # a file of the format before the journal
    ensure_runtime_tables(conn, "main")
    assert read_watermark(conn) == 5  # empty journal
    for seq in (6, 7, 7):
        conn.execute("INSERT INTO _cf_changes (seq, changeset) VALUES (?, x'')", (seq,))
    assert read_watermark(conn) == 7
    conn.execute("UPDATE _cf_watermark SET seq = 9")
    assert read_watermark(conn) == 9
    set_watermark(conn, 6)  # a repair going back: the journal rows past it go too
    assert read_watermark(conn) == 6
    assert conn.execute("SELECT seq FROM _cf_changes ORDER BY rowid").fetchall() == [(6,)]
    assert conn.execute("SELECT seq FROM _cf_watermark").fetchall() == [(6,)]
    conn.execute("INSERT INTO _cf_changes (seq, changeset) VALUES (8, x'')")
    assert read_watermark(conn) == 8
    conn.close()


def test_a_commit_writes_its_journal_rows_and_not_the_watermark_row(store: Path) -> None:
    rt, db = _open(store)
    with rt:
        first = _commit(db, 1)
        second = _commit(db, 2, 3)  # two ops in one commit: two rows of one seq
    assert _rows(db.path, "SELECT seq FROM _cf_changes ORDER BY rowid") == [
        (first,),
        (second,),
        (second,),
    ]
    assert _rows(db.path, "SELECT seq FROM _cf_watermark") == [(0,)]
    assert _file_watermark(db.path) == second
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC and outcome.db_seq == second


def test_a_file_written_the_old_way_reads_the_same_and_goes_on(store: Path) -> None:
    rt, db = _open(store)
    with rt:
        seqs = [_commit(db, n) for n in range(3)]
    _write_the_old_way(db.path)
    assert _rows(db.path, "SELECT seq FROM _cf_watermark") == [(seqs[-1],)]
    assert _file_watermark(db.path) == seqs[-1]
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC
    (space,) = inspect_store(store).spaces
    (info,) = space.databases
    assert info.watermark == seqs[-1] and info.in_sync
    rt, db = _open(store)
    with rt:
        assert db.read("SELECT count(*) AS c FROM events") == [{"c": 3}]
        newer = _commit(db, 3)
    assert _file_watermark(db.path) == newer
    assert _rows(db.path, "SELECT seq FROM _cf_watermark") == [(seqs[-1],)]
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC and outcome.db_seq == newer


@pytest.mark.parametrize("old_way", [False, True], ids=["new", "old-way"])
def test_inverting_the_commit_in_flight_leaves_one_watermark(store: Path, old_way: bool) -> None:
    rt, db = _open(store)
    with rt:
        seqs = [_commit(db, n, n + 10) for n in range(3)]
    if old_way:
        _write_the_old_way(db.path)
    space = apsw.Connection(str(next(store.glob("space-*.sqlite"))))
    space.execute(  # the space never made the last commit durable (R71)
        "DELETE FROM _cf_log WHERE seq > ?; DELETE FROM _cf_op_index WHERE seq > ?",
        (seqs[-2], seqs[-2]),
    )
    space.close()
    (outcome,) = sc_files.check_store(store, repair=True)
    assert outcome.action is Action.INVERTED and outcome.db_seq == seqs[-1]
    assert _file_watermark(db.path) == seqs[-2]
    assert _rows(db.path, "SELECT max(seq) FROM _cf_changes") == [(seqs[-2],)]
    assert _rows(db.path, "SELECT seq FROM _cf_watermark") == [(seqs[-2],)]
    assert _rows(db.path, "SELECT count(*) FROM events") == [(4,)]
    rt, db = _open(store)
    with rt:
        again = _commit(db, 7)
    assert _file_watermark(db.path) == again
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC


def test_replaying_a_file_behind_sets_one_watermark(store: Path) -> None:
    rt, db = _open(store)
    with rt:
        seqs = [_commit(db, n) for n in range(4)]
    conn = apsw.Connection(str(db.path))  # the file lost its last two commits
    conn.execute("BEGIN")
    for (cs,) in conn.execute(
        "SELECT changeset FROM _cf_changes WHERE seq > ? ORDER BY rowid DESC", (seqs[1],)
    ).fetchall():
        apsw.Changeset.apply(apsw.Changeset.invert(cs), conn)
    set_watermark(conn, seqs[1])
    conn.execute("COMMIT")
    conn.close()
    assert _file_watermark(db.path) == seqs[1]
    (outcome,) = sc_files.check_store(store, repair=True)
    assert outcome.action is Action.REPLAYED and outcome.commits == 2
    assert _file_watermark(db.path) == seqs[-1]
    assert _rows(db.path, "SELECT count(*) FROM events") == [(4,)]


def test_pruning_the_journal_keeps_its_newest_row(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fold, "JOURNAL_KEEP", 2)
    monkeypatch.setattr(_fold, "JOURNAL_PRUNE_EVERY", 3)
    rt, db = _open(store)
    with rt:
        seqs = [_commit(db, n, n) for n in range(4)]
        while seqs[-1] % 3 != 0:  # end on a commit that prunes
            seqs.append(_commit(db, 0, 0))
    assert len(seqs) >= 4
    kept = _rows(db.path, "SELECT seq FROM _cf_changes ORDER BY rowid")
    assert kept == [(seqs[-2],), (seqs[-2],), (seqs[-1],), (seqs[-1],)]
    assert _file_watermark(db.path) == seqs[-1]
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC and outcome.db_seq == seqs[-1]


def test_the_journal_of_a_database_never_written_at_a_pruning_seq_is_pruned(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written only at odd seqs (a plain commit between), no commit of it lands on a seq that is a
    # multiple of the pruning period: its journal must still keep about JOURNAL_KEEP seqs.
    monkeypatch.setattr(_fold, "JOURNAL_KEEP", 2)
    monkeypatch.setattr(_fold, "JOURNAL_PRUNE_EVERY", 4)
    rt, db = _open(store)
    space = rt.space("demo")
    with rt:
        seqs = []
        for n in range(20):
            seqs.append(_commit(db, n))
            with space.transact():
                space.cell("other").set(n)
    assert all(seq % 2 == 1 for seq in seqs)
    kept = [seq for (seq,) in _rows(db.path, "SELECT seq FROM _cf_changes ORDER BY rowid")]
    assert kept == seqs[-len(kept) :]
    assert 2 <= len(kept) <= 2 + 4
    assert _file_watermark(db.path) == seqs[-1]

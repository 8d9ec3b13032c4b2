"""Reconciliation of a database with its space (R70–R71), with the divergence made by hand."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files._reconcile import Action

TABLES = {
    "events": sc.table(id="integer primary key", r="integer", at="text", blob="blob", n="integer"),
    "loose": sc.table(x="integer", y="text"),  # no explicit primary key: captured by rowid
}


def _open(store: Path) -> tuple[sc.Runtime, sc.SqliteDb, sc.Cell]:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    return rt, space.sqlite_database("events", tables=TABLES), space.cell("counter", default=0)


def _write(rt: sc.Runtime, db: sc.SqliteDb, counter: sc.Cell, n: int) -> int:
    @sc.handler
    def step() -> None:
        counter.update(lambda v: v + 1)
        db.exec(
            "INSERT INTO events (r, at, blob, n) VALUES (random(), CURRENT_TIMESTAMP, "
            "randomblob(8), ?)",
            [n],
        )
        db.exec("INSERT INTO loose (x, y) VALUES (?, hex(randomblob(4)))", [n])
        db.exec("UPDATE events SET n = n + 100 WHERE n = ?", [n - 1])

    seq = step()
    assert seq is not None
    return seq


def _snapshot(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], int]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        events = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        loose = conn.execute("SELECT rowid, * FROM loose ORDER BY rowid").fetchall()
        row = conn.execute("SELECT seq FROM _cf_watermark").fetchone()
        assert row is not None
        return events, loose, int(row[0])
    finally:
        conn.close()


def _undo_last_commits_in_file(path: Path, keep_seq: int) -> None:
    """Make the database file lose its newest commits, as a crash between the two files'
    commits would: invert its own journal past ``keep_seq``."""
    conn = apsw.Connection(str(path))
    conn.execute("BEGIN")
    for _, cs in conn.execute(
        "SELECT seq, changeset FROM _cf_changes WHERE seq > ? ORDER BY seq DESC, rowid DESC",
        (keep_seq,),
    ).fetchall():
        apsw.Changeset.apply(apsw.Changeset.invert(cs), conn)
    conn.execute("DELETE FROM _cf_changes WHERE seq > ?", (keep_seq,))
    conn.execute("UPDATE _cf_watermark SET seq = ?", (keep_seq,))
    conn.execute("COMMIT")
    conn.close()


def test_a_database_behind_its_space_is_replayed_exactly(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 6)]
    expected = _snapshot(db.path)
    rt.close()
    _undo_last_commits_in_file(db.path, keep_seq=seqs[1])
    assert _snapshot(db.path)[2] == seqs[1]
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.commits == 3
        assert (outcome.db_seq, outcome.space_seq) == (seqs[1], seqs[-1])
        # random(), randomblob() and CURRENT_TIMESTAMP replay to the very same rows.
        assert _snapshot(db.path) == expected
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": counter.get()}]


def test_first_use_reconciles_before_any_read(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 4)]
    rt.close()
    _undo_last_commits_in_file(db.path, keep_seq=0)
    rt, db, counter = _open(store)
    with rt:
        # Never served the stale rows: the first read repairs first.
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 3}]
        assert _snapshot(db.path)[2] == seqs[-1]
        assert rt.reconcile(db.declaration).action is Action.IN_SYNC


def test_a_database_ahead_of_its_space_is_rolled_back(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 5)]
    rt.close()
    # The space loses its last two commits (as if they never became durable there).
    space = apsw.Connection(str(next(store.glob("space-*.sqlite"))))
    space.execute(
        "DELETE FROM _cf_log WHERE seq > ?; DELETE FROM _cf_op_index WHERE seq > ?",
        (seqs[1], seqs[1]),
    )
    space.close()
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.INVERTED and outcome.commits == 2
        assert (outcome.db_seq, outcome.space_seq) == (seqs[-1], seqs[1])
        events, _, watermark = _snapshot(db.path)
        assert watermark == seqs[1] and len(events) == 2


def test_an_irreparable_database_is_quarantined(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 4)]
    rt.close()
    conn = apsw.Connection(str(db.path))  # lose commits *and* the journal that could undo them
    conn.execute("DELETE FROM events; DELETE FROM loose; DELETE FROM _cf_changes")
    conn.execute("UPDATE _cf_watermark SET seq = ?", (seqs[-1] + 5,))
    conn.close()
    rt, db, counter = _open(store)
    with rt:
        with pytest.raises(sc.Quarantined) as info:
            db.read("SELECT * FROM events")
        assert (info.value.db_id, info.value.db_seq, info.value.space_seq) == (
            db.id,
            seqs[-1] + 5,
            seqs[-1],
        )
        with pytest.raises(sc.Quarantined), db.space.transact():
            counter.set(99)
            db.exec("INSERT INTO loose (x) VALUES (1)")
        assert counter.get() == 3
        q = db.query("SELECT * FROM events")
        rt.settle()
        assert isinstance(q.get().error, sc.Quarantined) and q.get().result is None
    assert "quarantined" in caplog.text


def test_reconcile_without_repair_only_reports(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 3)]
    rt.close()
    _undo_last_commits_in_file(db.path, keep_seq=seqs[0])
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration, repair=False)
        assert outcome.action is Action.BEHIND and outcome.diverged
        assert _snapshot(db.path)[2] == seqs[0]

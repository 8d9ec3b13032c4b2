"""Log compaction and the databases of a space: reconcile (R71) still finds what it replays, a
rebuild says when the log no longer holds a database's history, gc (R74) keeps what only
compacted history named, a runtime behind the compaction point re-runs its live queries."""

from __future__ import annotations

from pathlib import Path

import apsw

import sqlite_cells as sc
from sqlite_cells import files as sc_files
from sqlite_cells.cli._inspect import inspect_store
from sqlite_cells.files._reconcile import Action
from sqlite_cells.runtime import last_seq
from sqlite_cells.runtime._space_file import KEEP_PER_TARGET
from sqlite_cells.write._fold import JOURNAL_KEEP

from .conftest import undo_last_commits_in_file

TABLES = {"events": sc.table(id="integer primary key", n="integer")}


def _open(store: Path, **options: float) -> tuple[sc.Runtime, sc.SqliteDb, sc.Cell]:
    rt = sc.Runtime(store, **options)
    space = rt.space("demo")
    space.file.compact_keep = 2
    space.file.compact_every = 2
    space.file.keep_per_target = 3
    return rt, space.sqlite_database("events", tables=TABLES), space.cell("counter", default=0)


def _write(db: sc.SqliteDb, counter: sc.Cell, n: int) -> int:
    @sc.handler
    def step() -> None:
        counter.update(lambda v: v + 1)
        db.exec("INSERT INTO events (n) VALUES (?)", [n])

    seq = step()
    assert seq is not None
    return seq


def _plain(space: sc.Space, n: int) -> None:
    with space.transact():
        space.cell("other").set(n)


def _space_conn(store: Path) -> apsw.Connection:
    return apsw.Connection(str(next(store.glob("space-*.sqlite"))))


def _db_seqs(store: Path, db_id: str) -> tuple[list[int], int]:
    conn = _space_conn(store)
    try:
        seqs = [
            int(s)
            for (s,) in conn.execute("SELECT seq FROM _cf_op_index WHERE target = ?", (db_id,))
        ]
        row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'compacted'").fetchone()
        return seqs, int(row[0]) if row else 0
    finally:
        conn.close()


def test_the_records_kept_per_database_cover_its_journal() -> None:
    assert KEEP_PER_TARGET >= JOURNAL_KEEP


def test_a_database_behind_its_space_is_replayed_after_compaction(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = []
    for n in range(1, 9):
        seqs.append(_write(db, counter, n))
        _plain(rt.space("demo"), n)  # commits that touch no database: compacted freely
    rt.close()
    kept, point = _db_seqs(store, db.id)
    assert point > seqs[2]  # compaction ran past the database's early commits ...
    assert kept == seqs[-3:]  # ... and kept its newest ones
    undo_last_commits_in_file(db.path, keep_seq=seqs[-2])
    (found,) = sc_files.check_store(store, repair=False)
    assert found.action is Action.BEHIND
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.commits == 1
        assert db.read("SELECT count(*) AS c, max(n) AS m FROM events") == [{"c": 8, "m": 8}]
    (after,) = sc_files.check_store(store, repair=False)
    assert after.action is Action.IN_SYNC


def test_a_look_without_repair_says_what_a_repair_would_find(store: Path) -> None:
    """A database behind its space past the compaction point cannot be replayed: a look
    without repair (``check``, ``inspect``, ``query``, a runtime's first look) says quarantined,
    as the repair would, not "behind" with advice to repair. So does a missing file whose
    history is gone. Nothing is written either way."""
    rt, db, counter = _open(store)
    seqs = [_write(db, counter, n) for n in range(1, 9)]
    rt.close()
    assert _db_seqs(store, db.id)[1] > seqs[0]
    undo_last_commits_in_file(db.path, keep_seq=seqs[0])  # behind, past what the log keeps
    before = db.path.read_bytes()
    (found,) = sc_files.check_store(store, repair=False)
    assert found.action is Action.QUARANTINED and "compacted" in found.detail
    assert db.path.read_bytes() == before
    db.path.unlink()
    (found,) = sc_files.check_store(store, repair=False)
    assert found.action is Action.QUARANTINED and found.detail.startswith("no file; ")
    assert not db.path.exists()


def test_a_damaged_database_is_not_rebuilt_from_a_compacted_log(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 9):
        _write(db, counter, n)
    rt.close()
    assert _db_seqs(store, db.id)[1] > 0
    db.path.write_bytes(b"garbage" * 1000)
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.QUARANTINED
        assert "compacted" in outcome.detail and "whole history" in outcome.detail
    assert db.path.read_bytes() == b"garbage" * 1000  # kept as found


def test_a_missing_database_the_compacted_log_cannot_rebuild_is_not_created(store: Path) -> None:
    """R7: a read creates no file. A database whose file was deleted and whose history the
    log no longer holds is quarantined, by a read and by a repair alike, and nothing is made
    at its path: the repair created the file before it found the history gone, leaving an
    empty one that the tools then took for another program's file."""
    rt, db, counter = _open(store)
    for n in range(1, 9):
        _write(db, counter, n)
    rt.close()
    path = db.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rt, db, counter = _open(store)
    with rt:
        try:
            db.read("SELECT count(*) AS c FROM events")
            raise AssertionError("read a database whose history is gone")
        except sc.Quarantined as exc:
            assert "no file" in str(exc) and "whole history" in str(exc)
        assert not path.exists()
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.QUARANTINED and "no file" in outcome.detail
    assert not path.exists()


def test_a_damaged_database_is_rebuilt_while_its_history_is_kept(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 3):
        _write(db, counter, n)
    for n in range(10):
        _plain(rt.space("demo"), n)  # the log is compacted, the database's commits are kept
    rt.close()
    assert _db_seqs(store, db.id)[1] > 0
    db.path.write_bytes(b"garbage" * 1000)
    rt, db, counter = _open(store)
    with rt:
        assert rt.reconcile(db.declaration).action is Action.REBUILT
        assert db.read("SELECT count(*) AS c FROM events") == [{"c": 2}]


def test_gc_keeps_a_database_named_only_in_compacted_history(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 9):
        _write(db, counter, n)
    rt.close()
    conn = _space_conn(store)
    assert conn.execute("SELECT id FROM _cf_named").fetchall() == [(db.id,)]
    # Leave the id nowhere but in _cf_named: no cell, no op index row, no record naming it.
    conn.execute("DELETE FROM _cf_cells WHERE id = ?", (db.id,))
    conn.execute("DELETE FROM _cf_op_index WHERE target = ?", (db.id,))
    conn.execute("DELETE FROM _cf_log WHERE instr(record, ?) > 0", (db.id,))
    conn.close()
    assert sc_files.collect_garbage(store) == []
    stray = store / "cell-0000.sqlite"
    stray.write_bytes(b"")
    assert sc_files.collect_garbage(store) == [stray]


def test_check_and_inspect_read_a_compacted_store(store: Path) -> None:
    rt, db, counter = _open(store)
    last = 0
    for n in range(1, 9):
        last = _write(db, counter, n)
    rt.close()
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC and outcome.space_seq == last
    (space,) = inspect_store(store).spaces
    (database,) = space.databases
    assert space.last_seq == last and database.watermark == last


def test_a_runtime_behind_the_compaction_point_reruns_its_live_queries(store: Path) -> None:
    writer, db, counter = _open(store)
    with writer, sc.Runtime(store, poll_interval=3600) as reader:
        _write(db, counter, 1)
        space = reader.space("demo")
        space.file.wake = lambda: None  # never woken by this process's commits: stays behind
        rdb = space.sqlite_database("events", tables=TABLES)
        counts: list[object] = []
        rdb.query("SELECT count(*) AS c FROM events").observe().subscribe(
            lambda state: None if state.pending else counts.append(state.result)
        )
        reader.settle()
        seen = space.file.seen_seq
        assert counts == [[{"c": 1}]]
        for n in range(2, 10):
            _write(db, counter, n)
            _plain(writer.space("demo"), n)
        assert _db_seqs(store, db.id)[1] > seen
        assert space.file.catch_up()
        reader.settle()
        assert counts[-1] == [{"c": 9}]
        assert space.cell("counter").get() == 9
        assert space.file.seen_seq == last_seq(_space_conn(store))


def test_compaction_lets_go_of_the_records_of_a_dropped_database(store: Path) -> None:
    """A dropped database is written no more: compaction keeps only its drop (the log used to
    keep its newest ``keep_per_target`` records, changesets included, for every database ever
    dropped). ``inspect`` still finds its last write, gc still gives its file up (R74), its
    name still says it was dropped, and a database declared after it has its own records."""
    rt, live, counter = _open(store)
    space = rt.space("demo")
    dropped: list[tuple[sc.SqliteDb, list[int], int]] = []
    for i in range(3):
        db = space.sqlite_database(f"tmp{i}", tables=TABLES)
        writes = [_write(db, counter, n) for n in range(5)]
        with space.transact() as tx:
            db.drop()
        assert tx.seq is not None
        dropped.append((db, writes, tx.seq))
    live_writes = [_write(live, counter, n) for n in range(5)]
    for n in range(6):
        _plain(space, n)
    rt.close()
    conn = _space_conn(store)
    try:
        logged = {int(s) for (s,) in conn.execute("SELECT seq FROM _cf_log")}
        named = dict(conn.execute("SELECT id, seq FROM _cf_named").fetchall())
    finally:
        conn.close()
    for db, writes, drop in dropped:
        assert _db_seqs(store, db.id)[0] == [drop]
        assert drop in logged and not logged & set(writes)
        assert named[db.id] == writes[-1]
    assert _db_seqs(store, live.id)[0] == live_writes[-3:]
    infos = {d.id: d for s in inspect_store(store).spaces for d in s.databases}
    for db, writes, _ in dropped:
        info = infos[db.id]
        assert info.dropped and info.last_write_seq == info.watermark == writes[-1]
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.db_id == live.id and outcome.action is Action.IN_SYNC
    paths = sorted(db.path for db, _, _ in dropped)
    found = sc_files.find_garbage(store)
    assert sorted(g.path for g in found) == paths and all(g.dropped for g in found)
    assert sorted(sc_files.collect_garbage(store, remove=True)) == paths
    assert not any(p.exists() for p in paths) and live.path.exists()
    rt, live, counter = _open(store)
    with rt:
        space = rt.space("demo")
        again = space.sqlite_database("tmp0", tables=TABLES)
        try:
            with space.transact():
                again.exec("INSERT INTO events (n) VALUES (1)")
            raise AssertionError("wrote a dropped database")
        except sc_files.DatabaseDropped as exc:
            assert "was dropped" in str(exc)
        assert not again.path.exists()
        new = space.sqlite_database("tmp3", tables=TABLES)
        seqs = [_write(new, counter, n) for n in range(4)]
    kept = _db_seqs(store, new.id)[0]
    assert kept[-3:] == seqs[-3:] and set(kept) <= set(seqs)  # its own records, none of tmp0's
    undo_last_commits_in_file(new.path, keep_seq=seqs[-2])
    rt, live, counter = _open(store)
    with rt:
        new = rt.space("demo").sqlite_database("tmp3", tables=TABLES)
        outcome = rt.reconcile(new.declaration)
        assert outcome.action is Action.REPLAYED and outcome.commits == 1
        assert new.read("SELECT count(*) AS c FROM events") == [{"c": 4}]


def test_compaction_by_size_keeps_what_a_database_behind_its_space_replays(store: Path) -> None:
    """Large values written between a database's commits are compacted away by size; the
    database's newest records stay, so a crash's missing commit is still replayed (R71)."""
    rt = sc.Runtime(store)
    space = rt.space("demo")
    space.file.compact_bytes = 64 * 1024
    db = space.sqlite_database("events", tables=TABLES)
    counter = space.cell("counter", default=0)
    seqs = []
    for n in range(1, 5):
        seqs.append(_write(db, counter, n))
        for _ in range(4):
            with space.transact():
                space.cell("big").set("x" * 32 * 1024)
    rt.close()
    kept, point = _db_seqs(store, db.id)
    assert point > seqs[-1] and kept == seqs  # compacted past them, all of them kept
    conn = _space_conn(store)
    try:
        logged = {int(s) for (s,) in conn.execute("SELECT seq FROM _cf_log")}
    finally:
        conn.close()
    assert set(seqs) <= logged
    undo_last_commits_in_file(db.path, keep_seq=seqs[-2])
    rt = sc.Runtime(store)
    with rt:
        db = rt.space("demo").sqlite_database("events", tables=TABLES)
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.commits == 1
        assert db.read("SELECT count(*) AS c, max(n) AS m FROM events") == [{"c": 4, "m": 4}]

"""Reconciliation of a database with its space (R70–R71), with the divergence made by hand."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import sqlite_cells as sc
from sqlite_cells import files as sc_files
from sqlite_cells.codec import Op, decode_record, encode_record
from sqlite_cells.files import _reconcile as reconcile_module
from sqlite_cells.files._reconcile import Action
from sqlite_cells.runtime import FORMAT_VERSION, InvalidArgument

from .conftest import undo_last_commits_in_file

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
        return events, loose, sc_files.read_watermark(conn)
    finally:
        conn.close()


def test_a_database_behind_its_space_is_replayed_exactly(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 6)]
    expected = _snapshot(db.path)
    rt.close()
    undo_last_commits_in_file(db.path, keep_seq=seqs[1])
    assert _snapshot(db.path)[2] == seqs[1]
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.commits == 3
        assert (outcome.db_seq, outcome.space_seq) == (seqs[1], seqs[-1])
        # random(), randomblob() and CURRENT_TIMESTAMP replay to the very same rows.
        assert _snapshot(db.path) == expected
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": counter.get()}]


def test_reconcile_takes_the_database_handle_and_refuses_anything_else(store: Path) -> None:
    rt, db, counter = _open(store)
    with rt:
        _write(rt, db, counter, 1)
        by_handle = rt.reconcile(db)
        assert by_handle.action is Action.IN_SYNC and by_handle.db_id == db.id
        with pytest.raises(InvalidArgument) as caught:
            rt.reconcile(db.id)  # type: ignore[arg-type]
        assert isinstance(caught.value, sc.SqliteCellsError) and isinstance(caught.value, TypeError)
        assert "sqlite_database" in str(caught.value) and repr(db.id)[:20] in str(caught.value)


def test_a_replay_that_deletes_rows_keeps_a_copy_first_and_one_that_does_not_keeps_none(
    store: Path,
) -> None:
    """R71: "any repair that removes rows first keeps a copy of the file". A database behind
    its space by a commit that deleted rows is replayed with a copy of the file as it was kept
    in the quarantine folder (and named by the outcome); one behind by inserts only keeps no
    copy."""
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 4)]
    rt.close()
    undo_last_commits_in_file(db.path, keep_seq=seqs[1])  # behind by inserts and an update
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.kept is None
        with db.space.transact():
            db.exec("DELETE FROM events WHERE n > 100")
        deleted = db.space.file.seen_seq
    before = _snapshot(db.path)
    undo_last_commits_in_file(db.path, keep_seq=seqs[-1])
    kept_rows = _snapshot(db.path)
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.space_seq == deleted
        assert outcome.kept is not None and outcome.kept.parent == store / "quarantine"
        assert f"behind-{seqs[-1]}-of-{deleted}" in outcome.kept.name
        assert _snapshot(outcome.kept) == kept_rows and _snapshot(db.path) == before
        assert len(kept_rows[0]) > len(before[0])  # the copy holds the rows the replay removed


def test_a_replay_that_cannot_apply_leaves_no_copy_behind(store: Path) -> None:
    """R71: the copy is taken before a replay that deletes rows; when the replay then cannot
    apply (another program changed a row the DELETE removes), nothing was removed and the
    database is quarantined — the copy went on lying in the quarantine folder, named by no
    report, one more at each try (each runtime opened, each `check --repair`)."""
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    with rt:
        with db.space.transact():
            db.exec("DELETE FROM events")
        deleted = db.space.file.seen_seq
    undo_last_commits_in_file(db.path, keep_seq=deleted - 1)
    other = apsw.Connection(str(db.path))
    other.execute("UPDATE events SET n = 99")
    other.close()
    for _ in range(2):
        rt, db, counter = _open(store)
        with rt:
            outcome = rt.reconcile(db.declaration)
            assert outcome.action is Action.QUARANTINED and outcome.kept is None
        assert not (store / "quarantine").exists() or not any(
            ".behind-" in p.name for p in (store / "quarantine").iterdir()
        )


def test_a_rebuild_of_a_lost_file_that_cannot_apply_leaves_no_file_behind(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R71, Errors: a lost database file is rebuilt from the log into a file the repair
    creates; when a changeset then does not apply, the rebuild is rolled back and the database
    quarantined "as found" — and the empty file it had created was left at the path."""
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    rt.close()
    path = db.path
    path.unlink()

    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise apsw.AbortError("a changeset that does not apply")

    monkeypatch.setattr(reconcile_module, "apply_exactly", refused)
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db)
        assert outcome.action is Action.QUARANTINED
        assert "does not apply" in outcome.detail
    assert not path.exists() and not list(store.glob(f"{path.name}*"))


# Repairs the database "d" of space "a" of the store argv[1], whose file is gone, with every
# changeset refused (as in the test above), and is SIGKILLed as it removes the second of the
# files at the database's path argv[2] (the first removed): between the removals of the file
# that failed rebuild created and of what SQLite keeps beside it.
_REBUILD_KILLED_BETWEEN_UNLINKS = """
import os, signal, sys
import apsw
import sqlite_cells as sc
from sqlite_cells.files import _reconcile

def refused(*_args, **_kwargs):
    raise apsw.AbortError("a changeset that does not apply")

_reconcile.apply_exactly = refused
path = sys.argv[2]
files = {path + suffix for suffix in ("", "-wal", "-shm", "-journal")}
removed = []

def hook(event, args):
    if event == "os.remove" and str(args[0]) in files:
        removed.append(args[0])
        if len(removed) == 2:
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
with sc.Runtime(sys.argv[1]) as rt:
    rt.reconcile(rt.space("a").sqlite_database("d", tables={"t": sc.table(x="integer")}))
"""

# Opens a database file (SQLite makes its -wal and -shm), reads it, and is SIGKILLed holding it.
_READER_KILLED = """
import os, signal, sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("SELECT count(*) FROM t").fetchall()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_failed_rebuild_killed_between_its_unlinks_leaves_the_file_the_next_repair_uses(
    store: Path,
) -> None:
    """R71, R72: a rebuild of a lost file that fails removes the file it created, and removed
    it before its -wal and -shm. Killed in between, it left a -wal and -shm at the path with no
    file: nothing lists or removes them (gc lists database files). The file goes last now, as
    gc removes a dropped database's: a kill leaves the file itself, which the next repair
    rebuilds into, and no -wal."""
    tables = {"t": sc.table(x="integer")}
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        path = db.path
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    reader = subprocess.run(
        [sys.executable, "-c", _READER_KILLED, str(path)], env=env, capture_output=True, timeout=60
    )
    assert reader.returncode == -9, reader.stderr
    path.unlink()  # the file is lost; its -wal and -shm stay
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    assert wal.exists() and shm.exists()
    killed = subprocess.run(
        [sys.executable, "-c", _REBUILD_KILLED_BETWEEN_UNLINKS, str(store), str(path)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    assert path.exists() and path.stat().st_size == 0  # what the kill left: the file
    assert not wal.exists()
    with sc.Runtime(store) as rt:
        db = rt.space("a").sqlite_database("d", tables=tables)
        outcome = rt.reconcile(db)
        assert outcome.action is Action.REPLAYED, outcome.detail
        assert db.read("SELECT x FROM t") == [{"x": 1}]


def test_a_file_where_the_quarantine_folder_belongs_is_named_and_the_repair_tried_again(
    store: Path,
) -> None:
    """R71, Errors: a replay that deletes rows keeps a copy first, in `<store>/quarantine`;
    a file standing there made every use fail with "File exists — check the path and the
    disk", naming the database file. It names the quarantine path, and once it is moved the
    next repair works (a missing folder is not the database's damage: transient)."""
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    with rt:
        with db.space.transact():
            db.exec("DELETE FROM events")
        deleted = db.space.file.seen_seq
    undo_last_commits_in_file(db.path, keep_seq=deleted - 1)
    (store / "quarantine").write_text("not a folder")
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.QUARANTINED and outcome.transient
        assert f"{store / 'quarantine'} is not a directory" in outcome.detail
        (store / "quarantine").unlink()
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REPLAYED and outcome.kept is not None
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 0}]


def test_a_replay_is_logged_once_as_what_it_did(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime's first look at a database behind its space (no lock, nothing decided) is
    quiet; the repair under the lock logs what it applied, once."""
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 4)]
    rt.close()
    undo_last_commits_in_file(db.path, keep_seq=seqs[1])
    rt, db, counter = _open(store)
    with rt, caplog.at_level("INFO", logger="sqlite_cells"):
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 3}]
    lines = [r.getMessage() for r in caplog.records if db.id in r.getMessage()]
    assert lines == [
        f"database {db.id} replayed: watermark seq {seqs[1]}, space seq {seqs[2]}, "
        "1 changeset(s) applied"
    ]


def test_first_use_reconciles_before_any_read(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 4)]
    rt.close()
    undo_last_commits_in_file(db.path, keep_seq=0)
    rt, db, counter = _open(store)
    with rt:
        # Never served the stale rows: the first read repairs first.
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 3}]
        assert _snapshot(db.path)[2] == seqs[-1]
        assert rt.reconcile(db.declaration).action is Action.IN_SYNC


def _lose_space_commits(store: Path, after: int) -> None:
    space = apsw.Connection(str(next(store.glob("space-*.sqlite"))))
    space.execute(
        "DELETE FROM _cf_log WHERE seq > ?; DELETE FROM _cf_op_index WHERE seq > ?", (after, after)
    )
    space.close()


def test_the_one_commit_in_flight_is_rolled_back_and_a_copy_kept(store: Path) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 5)]
    rt.close()
    before = _snapshot(db.path)
    _lose_space_commits(store, seqs[-2])  # the space never made the last commit durable
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.INVERTED and outcome.commits == 1
        assert (outcome.db_seq, outcome.space_seq) == (seqs[-1], seqs[-2])
        events, _, watermark = _snapshot(db.path)
        assert watermark == seqs[-2] and len(events) == 3
        # R71: a repair that removes rows keeps a copy of the file beside the quarantine records.
        assert outcome.kept is not None and outcome.kept.parent == store / "quarantine"
        assert _snapshot(outcome.kept) == before


@pytest.mark.parametrize("lost", [2, 4], ids=["two-commits", "emptied"])
def test_a_database_further_ahead_is_quarantined_never_inverted(store: Path, lost: int) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 5)]
    rt.close()
    before = _snapshot(db.path)
    _lose_space_commits(store, seqs[-1 - lost] if lost < len(seqs) else 0)
    rt, db, counter = _open(store)
    with rt:
        with pytest.raises(sc.Quarantined) as info:
            db.read("SELECT * FROM events")
        assert info.value.db_seq == seqs[-1]
        # The quarantine lasts the runtime's life: a repair made meanwhile by `check --repair`
        # counts once the store is opened again, as the error says.
        assert str(info.value).endswith(
            "`sqlite-cells check` says why and what to do (a runtime that was running when the "
            "file was repaired keeps it quarantined until it is opened again)"
        )
        with pytest.raises(sc.Quarantined), db.space.transact():
            db.exec("INSERT INTO loose (x) VALUES (1)")
    assert _snapshot(db.path) == before  # rows intact
    assert not (store / "quarantine").exists()  # nothing was repaired, so nothing copied


def test_an_emptied_space_file_quarantines_its_databases(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 4):
        _write(rt, db, counter, n)
    rt.close()
    before = _snapshot(db.path)
    space_file = next(store.glob("space-*.sqlite"))
    space_file.write_bytes(b"")  # emptied (a failed copy, a truncating tool)
    rt, db, counter = _open(store)
    with rt, pytest.raises(sc.Quarantined):
        db.read("SELECT * FROM events")
    assert _snapshot(db.path) == before


def _corrupt_a_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    for start in range(page, len(data) - page, page):  # every page after the first
        data[start : start + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


def _many_pages(rt: sc.Runtime, db: sc.SqliteDb, counter: sc.Cell) -> None:
    with db.space.transact():
        db.exec_many("INSERT INTO loose (x, y) VALUES (?, ?)", [(i, "y" * 300) for i in range(80)])


def test_check_reports_corrupt_pages_and_repair_rebuilds_from_the_log(store: Path) -> None:
    rt, db, counter = _open(store)
    _many_pages(rt, db, counter)
    for n in range(1, 3):
        _write(rt, db, counter, n)
    rt.close()
    expected = _snapshot(db.path)
    _corrupt_a_page(db.path)
    listing = sorted(p.name for p in store.glob("*.sqlite"))
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.DAMAGED and not outcome.agrees
    assert sorted(p.name for p in store.glob("*.sqlite")) == listing  # check creates nothing
    (outcome,) = sc_files.check_store(store, repair=True)
    assert outcome.action is Action.REBUILT and outcome.agrees
    assert outcome.kept is not None and outcome.kept.exists()
    assert _snapshot(db.path) == expected
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC


def test_a_file_that_is_not_a_database_is_rebuilt_from_the_log(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 3):
        _write(rt, db, counter, n)
    rt.close()
    expected = _snapshot(db.path)
    db.path.write_bytes(b"this is not a database" * 100)
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.DAMAGED
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.REBUILT
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 2}]
    assert _snapshot(db.path) == expected


def test_a_damaged_file_without_its_whole_history_is_quarantined(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 3):
        _write(rt, db, counter, n)
    rt.close()
    space = apsw.Connection(str(next(store.glob("space-*.sqlite"))))
    space.execute("DELETE FROM _cf_log WHERE seq = 1")  # the log no longer holds seq 1
    space.close()
    db.path.write_bytes(b"garbage" * 1000)
    rt, db, counter = _open(store)
    with rt, pytest.raises(sc.Quarantined):
        db.read("SELECT * FROM events")
    assert db.path.read_bytes() == b"garbage" * 1000  # kept as found


def _downgrade_to_format_1(store: Path) -> None:
    """What "older" means here (R73): a store as the version before crash safety wrote it — no
    ``format`` in ``_cf_meta``, no ``_cf_op_index``, ``sqlite`` ops without changesets in the
    log, and database files without their ``_cf_changes`` journal."""
    for path in store.glob("space-*.sqlite"):
        conn = apsw.Connection(str(path))
        conn.execute("DELETE FROM _cf_meta WHERE key = 'format'; DROP TABLE _cf_op_index")
        for seq, data in conn.execute("SELECT seq, record FROM _cf_log").fetchall():
            record = decode_record(bytes(data))
            ops = tuple(
                Op(op.kind, op.target, msgspec.Raw(msgspec.json.encode(_without_changeset(op))))
                for op in record.ops
            )
            conn.execute(
                "UPDATE _cf_log SET record = ? WHERE seq = ?",
                (encode_record(msgspec.structs.replace(record, ops=ops)), seq),
            )
        conn.close()
    for path in store.glob("cell-*.sqlite"):
        conn = apsw.Connection(str(path))
        # That version kept the watermark in _cf_watermark alone, updated by every commit.
        sc_files.set_watermark(conn, sc_files.read_watermark(conn))
        conn.execute("DROP TABLE _cf_changes")
        conn.close()


def _without_changeset(op: Op) -> object:
    body = msgspec.json.decode(op.body)
    if isinstance(body, dict):
        body.pop("changeset", None)
    return body


def test_an_older_read_only_space_file_is_refused_naming_both_formats(store: Path) -> None:
    """R73: an older store is upgraded in place or refused "with an error naming both versions
    and what to run". Upgrading needs write access; a read-only space file was refused as
    "read-only … make the store writable to write to it", naming no format."""
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    rt.close()
    _downgrade_to_format_1(store)
    (path,) = store.glob("space-*.sqlite")
    with _read_only(path):
        with sc.Runtime(store) as rt, pytest.raises(sc.DatabaseError) as info:
            rt.space("demo")
        message = str(info.value)
        assert f"{path} is in store format 1" in message
        assert f"uses format {FORMAT_VERSION}" in message and "needs write access" in message
        assert "make the store writable" in message
    rt, db, counter = _open(store)  # writable again: upgraded, nothing hidden
    with rt:
        assert counter.get() == 1
        assert db.read("SELECT n FROM events") == [{"n": 1}]


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for this process: its mode for a user, the immutable attribute for
    root (whom modes do not stop)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("root, and this file system has no immutable attribute (chattr +i)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_an_older_store_is_upgraded_in_place_and_nothing_is_hidden(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 6):
        _write(rt, db, counter, n)
    rt.close()
    expected = _snapshot(db.path)
    _downgrade_to_format_1(store)
    # A read-only check of the older store sees its database, in sync.
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.IN_SYNC and outcome.space_seq == expected[2]
    rt, db, counter = _open(store)
    with rt:
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 5}]
        assert counter.get() == 5
        _write(rt, db, counter, 6)
    conn = apsw.Connection(str(next(store.glob("space-*.sqlite"))), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'format'").fetchone() == (
        FORMAT_VERSION,
    )
    assert conn.execute("SELECT count(*) FROM _cf_op_index").fetchone() == (6,)
    conn.close()


def test_a_store_of_a_newer_format_is_refused_naming_both_versions(store: Path) -> None:
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    rt.close()
    conn = apsw.Connection(str(next(store.glob("space-*.sqlite"))))
    conn.execute("UPDATE _cf_meta SET value = 99 WHERE key = 'format'")
    conn.close()
    with (
        sc.Runtime(store) as rt,
        pytest.raises(sc.SqliteCellsError, match=rf"format 99.*format {FORMAT_VERSION}"),
    ):
        rt.space("demo").cell("counter").get()


@pytest.mark.parametrize("recorded", [2.5, 3.7, 3.0, -1, 0, "3"], ids=repr)
def test_a_store_format_that_is_no_positive_integer_is_refused_never_upgraded(
    store: Path, recorded: object
) -> None:
    """R73: a real, text, zero or negative format is no version: refused naming both, never
    truncated to a version, parsed, or taken for an older format and upgraded."""
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    rt.close()
    space_file = next(store.glob("space-*.sqlite"))
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_meta SET value = ? WHERE key = 'format'", (recorded,))
    conn.close()
    with sc.Runtime(store) as rt, pytest.raises(sc.DatabaseError) as info:
        space = rt.space("demo")
        with space.transact():
            space.cell("counter").set(5)
    message = str(info.value)
    assert f"records format {recorded!r}, which is not a version number" in message
    assert f"reads formats 1 to {FORMAT_VERSION}" in message
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        stored = conn.execute("SELECT value FROM _cf_meta WHERE key = 'format'").fetchone()
        assert stored == (recorded,) and type(stored[0]) is type(recorded)
        assert conn.execute("SELECT max(seq) FROM _cf_log").fetchone() == (1,)
    finally:
        conn.close()


def test_a_bad_handle_value_quarantines_the_database_and_gc_keeps_its_file(store: Path) -> None:
    rt, db, counter = _open(store)
    _write(rt, db, counter, 1)
    rt.close()
    for bad in (
        b"0",
        b"null",
        b'{"id": "other", "tables": {}, "rev": 1}',
        b"[1,2]",
        b'{"dropped": true}',  # says "dropped", but is no handle: not read as a drop
    ):
        conn = apsw.Connection(str(next(store.glob("space-*.sqlite"))))
        conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (bad, db.id))
        conn.close()
        rt, db, counter = _open(store)
        with rt:
            with pytest.raises(sc.Quarantined, match="not a database handle"):
                db.read("SELECT * FROM events")
            error: BaseException | None
            try:  # refused at the call, or the query's error (R42): Quarantined either way
                query = db.query("SELECT * FROM events")
            except sc.Quarantined as exc:
                error = exc
            else:
                rt.settle()
                error = query.get().error
            assert isinstance(error, sc.Quarantined) and "not a database handle" in str(error)
            with pytest.raises(sc.Quarantined), db.space.transact():
                db.exec("INSERT INTO loose (x) VALUES (1)")
            with pytest.raises(sc.Quarantined):
                db.get()
        assert sc_files.collect_garbage(store) == []
        assert sc_files.collect_garbage(store, remove=True) == [] and db.path.exists()
        outcomes = sc_files.check_store(store, repair=False)
        assert [o.action for o in outcomes] == [Action.QUARANTINED]
        assert [o.space_seq for o in outcomes] == [1]  # the log's last write of it (R71)


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
    undo_last_commits_in_file(db.path, keep_seq=seqs[0])
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration, repair=False)
        assert outcome.action is Action.BEHIND and outcome.diverged
        assert _snapshot(db.path)[2] == seqs[0]


def test_a_database_whose_space_file_is_gone_is_quarantined_and_nothing_created(
    store: Path,
) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 3):
        _write(rt, db, counter, n)
    rt.close()
    before = _snapshot(db.path)
    for path in store.glob("space-*"):
        path.unlink()
    rt, db, counter = _open(store)
    with rt:
        with pytest.raises(sc.Quarantined):
            db.read("SELECT * FROM events")
        assert counter.get() == 0  # the default: the space holds nothing
    assert not list(store.glob("space-*"))  # reading did not create the space file
    assert _snapshot(db.path) == before


def test_check_repair_upgrades_an_older_store_in_place(store: Path) -> None:
    rt, db, counter = _open(store)
    for n in range(1, 4):
        _write(rt, db, counter, n)
    rt.close()
    expected = _snapshot(db.path)
    _downgrade_to_format_1(store)
    (outcome,) = sc_files.check_store(store, repair=True)
    assert outcome.action is Action.IN_SYNC and outcome.space_seq == expected[2]
    space_file = next(store.glob("space-*.sqlite"))
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'format'").fetchone() == (
        FORMAT_VERSION,
    )
    assert conn.execute("SELECT count(*) FROM _cf_op_index").fetchone() == (3,)
    conn.close()
    assert _snapshot(db.path) == expected


def test_the_commit_in_flight_is_undone_even_after_another_writer_took_its_seq(
    store: Path,
) -> None:
    rt, db, counter = _open(store)
    seqs = [_write(rt, db, counter, n) for n in range(1, 4)]
    rt.close()
    _lose_space_commits(store, seqs[-2])
    with sc.Runtime(store) as other:  # commits seq 3 to the space, cells only, before repair
        space = other.space("demo")
        with space.transact() as tx:
            space.cell("elsewhere").set(1)
        assert tx.seq == seqs[-1]
    rt, db, counter = _open(store)
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert outcome.action is Action.INVERTED and outcome.commits == 1
        assert db.read("SELECT count(*) AS n FROM events") == [{"n": 2}]


@pytest.mark.parametrize("read_first", [False, True], ids=["written-only", "read-before"])
def test_a_file_deleted_under_a_runtime_is_an_error_not_empty_rows(
    store: Path, read_first: bool
) -> None:
    """R41: a missing file reads as the declared schema, empty, only for a database never
    written; one that this runtime wrote or read and that vanished is a QueryError (a new
    runtime rebuilds it from the log, R71)."""
    rt, db, counter = _open(store)
    try:
        _write(rt, db, counter, 1)
        if read_first:
            assert len(db.read("SELECT id FROM events")) == 1
        rt.read_pool.discard(db.path)  # as a StoreChanged at the next write would
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db.path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(sc.QueryError, match="is gone"):
            db.read("SELECT id FROM events")
        never = rt.space("demo").sqlite_database("never", tables=TABLES)
        assert never.read("SELECT id FROM events") == []
    finally:
        rt.close()
    rt, db, _counter = _open(store)
    try:
        assert len(db.read("SELECT id FROM events")) == 1  # rebuilt from the space's log
    finally:
        rt.close()


@pytest.mark.parametrize("later", [1, 2])
def test_two_files_of_one_space_swapped_are_never_replayed_onto_each_other(
    store: Path, later: int
) -> None:
    """R71: a file whose watermark names a commit that wrote another database of its space is
    that database's file: a replay would add this database's commits to its rows and serve the
    mix. Both files are quarantined and kept as they are; `check` says so and how to recover —
    for the file ahead, that it is the other database's (its space's file lost nothing: the
    advice to restore it was wrong: `check`'s advice follows the detail), whether one or two of
    that database's commits are past."""
    tables = {"rows": sc.table(id="integer primary key", who="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        a = space.sqlite_database("a", tables=tables)
        b = space.sqlite_database("b", tables=tables)
        writes = [(a, "a1"), (b, "b1")] + [(a, f"a{2 + i}") for i in range(later)]
        for db, who in writes:  # seqs 1, 2, 3 (and 4)
            with space.transact():
                db.exec("INSERT INTO rows (who) VALUES (?)", [who])
    last = 2 + later
    a.path.rename(store / "swap")
    b.path.rename(a.path)
    (store / "swap").rename(b.path)
    files = {path: path.read_bytes() for path in (a.path, b.path)}
    report = sorted(sc_files.check_store(store, repair=False), key=lambda o: o.db_seq)
    assert [(o.db_id, o.action, o.db_seq, o.space_seq) for o in report] == [
        (a.id, Action.QUARANTINED, 2, last),  # b's file at a's path: behind, another history
        (b.id, Action.QUARANTINED, last, 2),  # a's file at b's path: ahead by a's commits
    ]
    assert sc_files.OTHER_HISTORY in report[0].detail
    assert f"recorded it for database {a.id}: {sc_files.OTHER_HISTORY}" in report[1].detail
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        with pytest.raises(sc.Quarantined, match=sc_files.OTHER_HISTORY):
            space.sqlite_database("a", tables=tables).read("SELECT who FROM rows")
        with pytest.raises(sc.Quarantined):
            space.sqlite_database("b", tables=tables).read("SELECT who FROM rows")
    assert {path: path.read_bytes() for path in (a.path, b.path)} == files


# A commit that changes a key to one SQLite finds equal (collation, 1 and 1.0): the session
# extension captures it in a form it cannot apply again or invert as it is (R70, R71).
EQUAL_KEYS = {
    "nocase": (
        "text primary key collate nocase",
        "'Ada'",
        "UPDATE t SET k = 'ADA' WHERE k = 'Ada'",
    ),
    "rtrim": (
        "text primary key collate rtrim",
        "'Ada'",
        "UPDATE t SET k = 'Ada ', x = 'w' WHERE k = 'Ada'",
    ),
    "number": ("blob primary key", "1", "UPDATE t SET k = 1.0 WHERE k = 1"),
    "delete-insert": (
        "text primary key collate nocase",
        "'Ada'",
        "DELETE FROM t WHERE k = 'Ada'; INSERT INTO t (k, x) VALUES ('ada', 'new')",
    ),
}


def _equal_keys_db(store: Path, spec: str) -> tuple[sc.Runtime, sc.SqliteDb]:
    rt = sc.Runtime(store)
    tables = {"t": sc.table(k=spec, x="text"), "other": sc.table(id="integer primary key")}
    return rt, rt.space("demo").sqlite_database("keys", tables=tables)


def _equal_keys_rows(db: sc.SqliteDb) -> list[dict[str, object]]:
    return db.read("SELECT k, typeof(k) AS kind, x FROM t ORDER BY x")


def _equal_keys_commits(store: Path, case: str) -> tuple[sc.SqliteDb, list[Any], list[int], bytes]:
    """Two commits, each by a runtime of its own: the row, then the change of its key (each
    statement its own db.exec). Their seqs, the rows after each, and the database file as the
    first left it."""
    spec, key, change = EQUAL_KEYS[case]
    seqs, rows, first = [], [], b""
    for statements in (
        [f"INSERT INTO t (k, x) VALUES ({key}, 'v'), ('Bo', 'b')"],
        change.split("; "),
    ):
        rt, db = _equal_keys_db(store, spec)
        with rt:

            @sc.handler
            def commit(statements: list[str] = statements, db: sc.SqliteDb = db) -> None:
                for sql in statements:
                    db.exec(sql)

            seq = commit()
            assert seq is not None
            seqs.append(seq)
            rows.append(_equal_keys_rows(db))
        first = first or db.path.read_bytes()  # (closed: no -wal left)
    assert rows[0] != rows[1]
    return db, rows, seqs, first


@pytest.mark.parametrize("case", sorted(EQUAL_KEYS))
def test_a_key_changed_to_an_equal_one_replays_exactly(store: Path, case: str) -> None:
    db, rows, _, first = _equal_keys_commits(store, case)
    db.path.write_bytes(first)  # the file lost the key's change
    rt, db = _equal_keys_db(store, EQUAL_KEYS[case][0])
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert (outcome.action, outcome.commits) == (Action.REPLAYED, 1)
        assert _equal_keys_rows(db) == rows[1]
        assert rt.reconcile(db.declaration).action is Action.IN_SYNC


@pytest.mark.parametrize("case", sorted(EQUAL_KEYS))
def test_a_key_changed_to_an_equal_one_in_flight_is_undone_exactly(store: Path, case: str) -> None:
    db, rows, seqs, _ = _equal_keys_commits(store, case)
    _lose_space_commits(store, seqs[0])  # the space never made the key's change durable
    rt, db = _equal_keys_db(store, EQUAL_KEYS[case][0])
    with rt:
        outcome = rt.reconcile(db.declaration)
        assert (outcome.action, outcome.commits) == (Action.INVERTED, 1)
        assert _equal_keys_rows(db) == rows[0]  # the row is back, not lost
        assert rt.reconcile(db.declaration).action is Action.IN_SYNC


@pytest.mark.parametrize("rows", [10, 50], ids=["session", "diff"])
def test_values_changed_to_equal_ones_by_rowid_are_replayed_and_undone(
    store: Path, rows: int
) -> None:
    """A table without a primary key: an op changing 42 rows or more is captured by SQLite's
    diff, which compares columns with ``IS NOT`` under their collations and so saw no change
    from 1 to 1.0, 'a' to 'A' (NOCASE) or 'a' to 'a ' (RTRIM). Both paths are exact."""
    tables = {"t": sc.table(v="blob", n="text collate nocase", r="text collate rtrim")}

    def summary(db: sc.SqliteDb) -> list[dict[str, object]]:
        return db.read(
            "SELECT count(*) AS rows, v, typeof(v) AS tv, n, r || '|' AS r FROM t "
            "GROUP BY v, typeof(v), n, r"
        )

    def open_() -> tuple[sc.Runtime, sc.SqliteDb]:
        rt = sc.Runtime(store)
        return rt, rt.space("demo").sqlite_database("d", tables=tables)

    rt, db = open_()
    with rt, db.space.transact() as tx:
        db.exec_many("INSERT INTO t (v, n, r) VALUES (1, 'a', 'a')", [[]] * rows)
    first, first_seq = db.path.read_bytes(), tx.seq  # (closed: no -wal left)
    rt, db = open_()
    with rt:
        with db.space.transact():
            db.exec("UPDATE t SET v = 1.0, n = 'A', r = 'a '")
        before, after = (
            [{"rows": rows, "v": 1, "tv": "integer", "n": "a", "r": "a|"}],
            [{"rows": rows, "v": 1.0, "tv": "real", "n": "A", "r": "a |"}],
        )
        assert summary(db) == after
    committed = store / "committed"
    committed.mkdir()
    for path in store.glob("*.sqlite"):
        (committed / path.name).write_bytes(path.read_bytes())
    db.path.write_bytes(first)  # behind: the file lost the op
    rt, db = open_()
    with rt:
        assert summary(db) == after
    for path in committed.iterdir():  # ahead: the space lost it
        (store / path.name).write_bytes(path.read_bytes())
    _lose_space_commits(store, first_seq)
    rt, db = open_()
    with rt:
        assert rt.reconcile(db.declaration).action is Action.INVERTED
        assert summary(db) == before


def test_check_finds_an_index_that_disagrees_with_its_table_and_repair_rebuilds_it(
    store: Path,
) -> None:
    """R71: `check` runs SQLite's integrity check. One indexed value changed in its table's page
    alone reads without an error and passes ``quick_check`` (which reads every page but does
    not compare indexes with tables), while a read by that index and a read by key disagree;
    ``integrity_check`` finds the row missing from the index. Reported as damaged, and rebuilt
    from the log by a repair."""
    tables = {"m": sc.table(id="integer primary key", ts="integer", indexes={"by_ts": ["ts"]})}
    rt = sc.Runtime(store)
    space = rt.space("demo")
    db = space.sqlite_database("indexed", tables=tables)
    with space.transact():
        db.exec_many(
            "INSERT INTO m (id, ts) VALUES (?, ?)", [(i, 0x11220000 + i) for i in range(20)]
        )
    rt.close()
    path = db.path
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'm'")]
    conn.close()
    data = bytearray(path.read_bytes())
    needle = (0x11220005).to_bytes(4, "big")
    (at,) = [o for p in pages if (o := data.find(needle, (p - 1) * 4096, p * 4096)) >= 0]
    data[at : at + 4] = (0x11220905).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    conn.close()
    (outcome,) = sc_files.check_store(store, repair=False)
    assert outcome.action is Action.DAMAGED and "missing from index by_ts" in outcome.detail
    (outcome,) = sc_files.check_store(store, repair=True)
    assert outcome.action is Action.REBUILT and outcome.agrees
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("indexed", tables=tables)
        assert db.read("SELECT id FROM m WHERE ts = ?", [0x11220005]) == [{"id": 5}]
        assert db.read("SELECT ts FROM m WHERE id = 5") == [{"ts": 0x11220005}]


def test_a_lock_met_by_a_repair_is_said_to_be_tried_again() -> None:
    """Errors: a repair that met another connection's lock is a transient quarantine (the next
    use tries again); its reason said only "BusyError: database is locked", read as for good."""
    from sqlite_cells.files._reconcile import _why

    reason = _why(apsw.BusyError("database is locked"))
    assert reason.startswith("BusyError: database is locked")
    assert "another connection holds the file" in reason and "tries the repair again" in reason


# A table whose own constraint resolves conflicts by REPLACE: its commits delete rows that the
# changeset holds as DELETEs beside the change that replaced them, in the order of their keys'
# hashes, not the order they were made (R70, R71).
REPLACING = {"i": sc.table(id="integer primary key", u="integer unique on conflict replace")}
REPLACES = [
    "INSERT INTO i (id, u) VALUES (8, 1)",
    "INSERT INTO i (id, u) VALUES (12, 3), (36, 5)",
    "INSERT OR REPLACE INTO i (id, u) VALUES (2, 4)",
    "UPDATE i SET id = 10 WHERE id = 1",
    "UPDATE i SET u = 3 WHERE id = 1",
    "UPDATE i SET u = u + 1",
]


def _replacing_commits(store: Path, change: str) -> tuple[list[Any], list[int], bytes]:
    """Six rows, then ``change``, each committed by a runtime of its own: the rows after each,
    their seqs, and the database file as the first commit left it."""
    seqs, rows, first = [], [], b""
    for sql in ("INSERT INTO i (id, u) VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)",
                change):  # fmt: skip
        with sc.Runtime(store) as rt:
            space = rt.space("demo")
            db = space.sqlite_database("replacing", tables=REPLACING)
            with space.transact() as tx:
                db.exec(sql)
            assert tx.seq is not None
            seqs.append(tx.seq)
            rows.append(db.read("SELECT id, u FROM i ORDER BY id"))
        first = first or db.path.read_bytes()  # (closed: no -wal left)
    assert rows[0] != rows[1]
    return rows, seqs, first


@pytest.mark.parametrize("change", REPLACES)
@pytest.mark.parametrize("how", ["behind", "in flight", "lost"])
def test_a_commit_that_a_tables_own_replace_shaped_is_applied_again_and_undone_exactly(
    store: Path, change: str, how: str
) -> None:
    """Applied in the changeset's order, a new row met the row it had replaced still there, the
    table's REPLACE deleted it without a conflict, and the changeset's DELETE of it then found
    nothing: a file behind its space was quarantined, a lost one could not be rebuilt."""
    rows, seqs, first = _replacing_commits(store, change)
    path = next(store.glob("cell-*.sqlite"))
    if how == "behind":
        path.write_bytes(first)
    elif how == "lost":
        path.unlink()
    else:
        _lose_space_commits(store, seqs[0])  # the space never made the change durable
    expected = {
        "behind": (Action.REPLAYED, rows[1]),
        "lost": (Action.REPLAYED, rows[1]),  # (from no commit at all)
        "in flight": (Action.INVERTED, rows[0]),
    }[how]
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("replacing", tables=REPLACING)
        outcome = rt.reconcile(db)
        assert (outcome.action, db.read("SELECT id, u FROM i ORDER BY id")) == expected
        assert rt.reconcile(db).action is Action.IN_SYNC


def test_a_file_behind_an_older_store_is_reported_behind_as_its_repair_replays_it(
    store: Path,
) -> None:
    """R71, R73: a look that writes nothing (`check`, `query`) cannot read the log of a space
    file of an older format (it is read once upgraded). A file behind such a space was reported
    quarantined ("`--repair` cannot repair it"), while `check --repair` and a runtime upgraded
    the space file and replayed the commit at once. It is reported behind, saying so."""
    rt, db, counter = _open(store)
    for n in range(1, 4):
        _write(rt, db, counter, n)
    rt.close()
    expected = _snapshot(db.path)
    undo_last_commits_in_file(db.path, 2)  # a crash left the file a commit behind
    space_file = next(store.glob("space-*.sqlite"))
    conn = apsw.Connection(str(space_file))  # format 2: no _cf_named (see runtime/_format.py)
    conn.execute("UPDATE _cf_meta SET value = 2 WHERE key = 'format'; DROP TABLE _cf_named")
    conn.close()
    (looked,) = sc_files.check_store(store, repair=False)
    assert (looked.action, looked.db_seq, looked.space_seq) == (Action.BEHIND, 2, 3)
    assert "the space file is of an older store format" in looked.detail
    (repaired,) = sc_files.check_store(store, repair=True)
    assert (repaired.action, repaired.commits) == (Action.REPLAYED, 1)
    assert _snapshot(db.path) == expected

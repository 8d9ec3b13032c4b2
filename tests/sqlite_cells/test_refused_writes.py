"""A refused write leaves no file behind (R7, SPEC "Errors": a bad input never leaves partial
state behind): a first commit that fails removes the space file and the database file it
created, a write refused because its database was dropped creates nothing, and a file another
connection has open or a commit wrote is never removed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import has_moved, remove_unused

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"t": sc.table(id="integer primary key", body="text", a_cf_link=sc.cf_link())}
BAD_LINKS = [
    ("INSERT INTO t (a_cf_link) VALUES ('notalink')", None),
    ("INSERT INTO t (a_cf_link) VALUES (coalesce(?, NULL))", ["junk"]),
    ("INSERT INTO t (a_cf_link) VALUES (? || '')", ["junk"]),
]


def listing(store: Path) -> list[str]:
    return sorted(os.listdir(store))


def refuse(space: sc.Space, db: sc.SqliteDb, sql: str, params: object) -> None:
    with pytest.raises(sc.LinkEncodeError), space.transact():
        db.exec(sql, params)


@pytest.mark.parametrize(("sql", "params"), BAD_LINKS)
def test_a_refused_first_commit_leaves_the_store_as_it_was(
    store: Path, sql: str, params: object
) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        refuse(space, db, sql, params)
        assert listing(store) == []
        assert db.rev == 0
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 0}]
        assert listing(store) == []
    assert listing(store) == []


def test_a_first_commit_right_after_a_refused_one_commits(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        cell = space.cell("c", default=0)
        for sql, params in BAD_LINKS:
            refuse(space, db, sql, params)
            assert listing(store) == []
        with space.transact():
            cell.set(1)
            db.exec("INSERT INTO t (body, a_cf_link) VALUES (?, ?)", ["hi", cell])
        assert db.rev == 1
        assert db.read("SELECT body FROM t") == [{"body": "hi"}]
        names = listing(store)
        assert db.path.name in names
        assert any(n.startswith("space-") and n.endswith(".sqlite") for n in names)
        # Refused again once the files hold commits: they stay, with what they hold.
        refuse(space, db, *BAD_LINKS[0])
        assert db.rev == 1
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        assert db.read("SELECT body FROM t") == [{"body": "hi"}]
        assert space.cell("c").get() == 1
        assert db.rev == 1


def test_a_refused_first_write_of_a_database_in_a_written_space(store: Path) -> None:
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(1)
        before = listing(store)
        db = space.sqlite_database("d", tables=TABLES)
        refuse(space, db, *BAD_LINKS[0])
        assert listing(store) == before
        assert not db.path.exists()
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('ok')")
        assert db.read("SELECT body FROM t") == [{"body": "ok"}]


def test_another_runtime_writing_the_space_is_not_disturbed(store: Path) -> None:
    with (
        sc.Runtime(store, poll_interval=0.01) as rt1,
        sc.Runtime(store, poll_interval=0.01) as rt2,
    ):
        s1, s2 = rt1.space("demo"), rt2.space("demo")
        d1 = s1.sqlite_database("d", tables=TABLES)
        d2 = s2.sqlite_database("d", tables=TABLES)
        with s2.transact():
            s2.cell("c").set(1)  # rt2 holds the space file open from now on
        refuse(s1, d1, *BAD_LINKS[0])
        assert not d1.path.exists()
        # Both still commit into the one space file (nothing was swapped under either).
        with s1.transact():
            d1.exec("INSERT INTO t (body) VALUES ('one')")
        with s2.transact():
            d2.exec("INSERT INTO t (body) VALUES ('two')")
        assert sorted(r["body"] for r in d1.read("SELECT body FROM t")) == ["one", "two"]


def test_files_another_connection_has_open_are_kept(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection (a reader of another runtime, say) has the files open when the first
    commit is refused: they are kept, and the next commit uses them."""
    held: list[apsw.Connection] = []

    def with_a_reader(path: Path, holds_nothing: Callable[[apsw.Connection], bool]) -> bool:
        reader = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
        held.append(reader)
        return remove_unused(path, holds_nothing)

    monkeypatch.setattr("sqlite_cells.runtime._space_file.remove_unused", with_a_reader)
    monkeypatch.setattr("sqlite_cells.files._layout.remove_unused", with_a_reader)
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        refuse(space, db, *BAD_LINKS[0])
        assert len(held) == 2
        assert db.path.exists() and space.file.path.exists()
        for reader in held:
            reader.close()
        monkeypatch.undo()
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('kept')")
        assert db.read("SELECT body FROM t") == [{"body": "kept"}]
        assert db.rev == 1
    assert [n for n in listing(store) if n.endswith(".sqlite")] == sorted(
        [db.path.name, space.file.path.name]
    )


def test_a_write_refused_after_a_drop_creates_nothing(store: Path) -> None:
    ra = sc.Runtime(store, poll_interval=0.01)
    rb = sc.Runtime(store, poll_interval=0.01)
    try:
        spa, spb = ra.space("demo"), rb.space("demo")
        da = spa.sqlite_database("chat", tables=TABLES)
        dbb = spb.sqlite_database("chat", tables=TABLES)
        with spa.transact():
            da.exec("INSERT INTO t (body) VALUES ('a')")
        assert dbb.read("SELECT body FROM t") == [{"body": "a"}]

        def drop() -> None:
            with spa.transact():
                da.drop()

        with pytest.raises(sc.SqliteCellsError, match="was dropped") as info, spb.transact():
            dbb.exec("INSERT INTO t (body) VALUES ('b')")
            # A drops the database after B recorded its write, before B commits.
            dropper = threading.Thread(target=drop)
            dropper.start()
            dropper.join()
            after_drop = listing(store)
            assert da.path.name in after_drop  # a drop keeps the file until gc (R74)
        assert "nothing was written" in str(info.value)
        assert listing(store) == after_drop
        assert dbb.path.stat().st_size == da.path.stat().st_size  # B wrote nothing into it
    finally:
        ra.close()
        rb.close()
    assert [n for n in listing(store) if n.startswith("cell-") and n.endswith(".sqlite")] == [
        da.path.name
    ]


def test_files_left_by_a_crash_in_the_middle_of_a_removal_are_used_as_they_are(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the files were switched back to a rollback journal but before they were
    unlinked leaves a space file without commits and a blank database file: the next runtime
    reads them as empty and writes into them (in WAL mode again)."""

    def crash_midway(path: Path, holds_nothing: object) -> bool:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
        conn.close()
        return False

    monkeypatch.setattr("sqlite_cells.runtime._space_file.remove_unused", crash_midway)
    monkeypatch.setattr("sqlite_cells.files._layout.remove_unused", crash_midway)
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        refuse(space, db, *BAD_LINKS[0])
    assert listing(store) == sorted([db.path.name, space.file.path.name])
    monkeypatch.undo()
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        assert db.read("SELECT body FROM t") == []
        assert space.cell("c").get() is None
        with space.transact():
            space.cell("c").set(1)
            db.exec("INSERT INTO t (body) VALUES ('after')")
        assert db.read("SELECT body FROM t") == [{"body": "after"}]
        assert db.rev == 1
        with space.file.write_connection() as conn:
            assert conn.execute("PRAGMA main.journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA _cf_db.journal_mode").fetchone() == ("wal",)


# -- the removal itself -----------------------------------------------------------------------


def _wal_file(path: Path, *, table: bool) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    if table:
        conn.execute("CREATE TABLE x (y)")
    return conn


def _holds_nothing(conn: apsw.Connection) -> bool:
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM sqlite_master)").fetchone()
    return row is not None and bool(row[0])


def test_remove_unused_keeps_a_file_in_use_or_holding_data(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    writer = _wal_file(path, table=False)
    writer.execute("SELECT 1").fetchall()
    reader = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
    writer.close()
    assert remove_unused(path, _holds_nothing) is False  # an idle reader holds it open
    assert path.exists()
    reader.close()
    data = tmp_path / "g.sqlite"
    _wal_file(data, table=True).close()
    assert remove_unused(data, _holds_nothing) is False
    assert data.exists()
    assert apsw.Connection(str(data)).execute("SELECT name FROM sqlite_master").fetchall() == [
        ("x",)
    ]
    assert remove_unused(path, _holds_nothing) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.sqlite"]
    assert remove_unused(tmp_path / "missing.sqlite", _holds_nothing) is False
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_connection_to_a_removed_file_cannot_write_it_and_knows(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    _wal_file(path, table=False).close()
    late = apsw.Connection(str(path))  # opened before the removal, locked after it
    assert has_moved(late) is False
    assert remove_unused(path, _holds_nothing) is True
    assert has_moved(late) is True
    with pytest.raises(apsw.ReadOnlyError):
        late.execute("CREATE TABLE x (y)")
    late.close()
    assert list(tmp_path.iterdir()) == []


# -- another process creating the same space at the same time --------------------------------

SPACES = 24
WRITER = """
import sys
import sqlite_cells as sc

TABLES = {"t": sc.table(id="integer primary key", body="text", a_cf_link=sc.cf_link())}
with sc.Runtime(sys.argv[1], poll_interval=float(sys.argv[3])) as rt:
    dbs = [rt.space(f"s{i}").sqlite_database("d", tables=TABLES) for i in range(int(sys.argv[2]))]
    print("ready", flush=True)
    sys.stdin.readline()
    for i, db in enumerate(dbs):
        with db.space.transact():
            db.exec("INSERT INTO t (body) VALUES (?)", [f"w{i}"])
print("done", flush=True)
"""


@pytest.mark.parametrize("poll", [0.01, 3600.0])
def test_refused_first_commits_racing_another_process_lose_none_of_its_commits(
    store: Path, poll: float
) -> None:
    """Both processes create the same spaces and databases at the same moment, one with
    refused writes, the other with good ones: every good commit is kept (none goes into a file
    removed under it) and nothing else is left. Polling, the other process opens each space
    file as soon as it appears; not polling, only its commit opens it."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(store), str(SPACES), str(poll)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        with sc.Runtime(store, poll_interval=0.01) as rt:
            spaces = [rt.space(f"s{i}") for i in range(SPACES)]
            dbs = [space.sqlite_database("d", tables=TABLES) for space in spaces]
            child.stdin.write("go\n")
            child.stdin.flush()
            for i, (space, db) in enumerate(zip(spaces, dbs, strict=True)):
                for sql, params in BAD_LINKS:
                    refuse(space, db, sql, params)
                assert db.rev in (0, 1), i
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "done" in out
    expected: list[str] = []
    with sc.Runtime(store) as rt:
        for i in range(SPACES):
            space = rt.space(f"s{i}")
            db = space.sqlite_database("d", tables=TABLES)
            assert db.read("SELECT body FROM t") == [{"body": f"w{i}"}]
            assert db.rev == 1
            expected += [db.path.name, space.file.path.name]
    # (The read pool's read-only connections leave -wal/-shm beside the files they read.)
    assert [n for n in listing(store) if n.endswith(".sqlite")] == sorted(expected)


def test_a_ctrl_c_as_a_refused_first_writes_file_is_removed_leaves_the_database_writable(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R7, R72: a Ctrl-C that landed just after the file a refused first write created was
    removed, before the runtime forgot the file it had attached, made the next write of the
    database fail ("this database file was deleted or replaced while the runtime had it
    open") — the runtime's own removal taken for another program's. The interrupt is
    delivered once the removal is complete."""
    import signal

    from sqlite_cells.files import _layout

    real = _layout.remove_unused

    def removed_then_interrupted(path: Path, holds_nothing: Callable[..., bool]) -> bool:
        removed = real(path, holds_nothing)
        signal.raise_signal(signal.SIGINT)
        return removed

    monkeypatch.setattr("sqlite_cells.files._layout.remove_unused", removed_then_interrupted)
    with sc.Runtime(store, poll_interval=0.01) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("c").set(1)  # the space file stays: only the database file is removed
        db = space.sqlite_database("d", tables=TABLES)
        with pytest.raises(KeyboardInterrupt), space.transact():
            db.exec(*BAD_LINKS[0])
        assert not db.path.exists()
        monkeypatch.undo()
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('ok')")
        assert db.read("SELECT body FROM t") == [{"body": "ok"}]

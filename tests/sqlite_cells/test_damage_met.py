"""Corrupt pages first met by a read or a write (R71, Errors): the error names the file and what to
do, and the runtime checks the file again before its next use — rebuilt from its space's log
(a copy of the damaged file kept) when the log holds its whole history, else quarantined. No
further write lands in the damaged file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files import _reconcile as reconcile_module
from sqlite_cells.files._handles import check_store

from ..conftest import run_cli

TABLES = {
    "t": sc.table(id="integer primary key", v="text"),
    "other": sc.table(a="integer"),
}
ROWS = 40


def _damaged_store(store: Path, *, compact: bool = False) -> Path:
    """A store whose database holds ROWS rows of ``t``, then some of ``t``'s leaf pages are
    overwritten: its journal and watermark are intact, so R71's check at first use finds it in
    sync. With ``compact`` the space's log keeps only the newest commit (no rebuild possible)."""
    rt = sc.Runtime(store)
    try:
        space = rt.space("demo")
        if compact:
            space.file.compact_every = space.file.compact_keep = space.file.keep_per_target = 1
        db = space.sqlite_database("d", tables=TABLES)
        for i in range(ROWS):
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES (?)", ["x" * 500 + str(i)])
        path = db.path
    finally:
        rt.close()
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [
        page
        for (page,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf'"
        )
    ]
    size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.close()
    with path.open("r+b") as f:
        for page in pages[len(pages) // 2 :]:
            f.seek((page - 1) * size)
            f.write(b"\x0d\x00\x00\xff\xff\x00\x10\x00")
    return path


def _open(store: Path) -> tuple[sc.Runtime, sc.Space, sc.SqliteDb]:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    return rt, space, space.sqlite_database("d", tables=TABLES)


def _kept(store: Path) -> list[str]:
    """The copies of damaged files kept in the quarantine directory (not their -wal, notes)."""
    found = (store / "quarantine").glob("*.damaged.*")
    return sorted(p.name for p in found if re.search(r"\.damaged\.\d+$", p.name))


def test_a_read_that_meets_corrupt_pages_names_the_file_and_it_is_rebuilt(store: Path) -> None:
    path = _damaged_store(store)
    rt, space, db = _open(store)
    try:
        with pytest.raises(sc.QueryError) as raised:
            db.read("SELECT count(*) AS n FROM t")
        message = str(raised.value)
        assert f"the database file {path} is damaged" in message
        assert "`sqlite-cells check --repair`" in message
        assert _kept(store) == []  # nothing decided yet: the next use checks it
        # The next use checks the file, rebuilds it from the log, and reads every row.
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": ROWS}]
        assert len(_kept(store)) == 1
        with space.transact():
            db.exec("INSERT INTO other (a) VALUES (1)")
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": ROWS}]
    finally:
        rt.close()
    conn = apsw.Connection(str(path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def test_a_write_that_meets_corrupt_pages_names_the_file_and_it_is_rebuilt(store: Path) -> None:
    path = _damaged_store(store)
    rt, space, db = _open(store)
    try:
        with pytest.raises(sc.ExecError) as raised, space.transact():
            db.exec("UPDATE t SET v = 'y'")
        message = str(raised.value)
        assert f"nothing was written: the database file {path} is damaged" in message
        assert "`sqlite-cells check --repair`" in message
        with space.transact():
            db.exec("UPDATE t SET v = 'y'")
        assert db.read("SELECT count(*) AS n, min(v) AS v FROM t") == [{"n": ROWS, "v": "y"}]
        assert len(_kept(store)) == 1
    finally:
        rt.close()


def test_a_damaged_file_the_log_cannot_rebuild_is_quarantined(store: Path) -> None:
    path = _damaged_store(store, compact=True)
    before = path.read_bytes()
    rt, space, db = _open(store)
    try:
        with pytest.raises(sc.QueryError):
            db.read("SELECT count(*) AS n FROM t")
        with pytest.raises(sc.Quarantined) as raised, space.transact():
            db.exec("INSERT INTO other (a) VALUES (1)")
        assert raised.value.path == path
        assert "damaged" in str(raised.value)
        with pytest.raises(sc.Quarantined):
            db.read("SELECT count(*) AS n FROM other")
    finally:
        rt.close()
    assert path.read_bytes() == before  # nothing written into it


def test_a_problem_sqlite_finds_in_many_rows_is_said_once(tmp_path: Path) -> None:
    """``quick_check`` keeps SQLite's first three findings; one SQLite reports for each row it
    meets it in ("NULL value in t.a" twice) is said once, and the next finding still shows."""
    from sqlite_cells.files._damage import quick_check

    conn = apsw.Connection(str(tmp_path / "d.sqlite"))
    conn.execute("CREATE TABLE t (a); INSERT INTO t VALUES (NULL), (NULL);")
    conn.execute("CREATE TABLE u (b); INSERT INTO u VALUES (NULL);")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_schema SET sql = 'CREATE TABLE t (a NOT NULL)' WHERE name = 't'")
    conn.execute("UPDATE sqlite_schema SET sql = 'CREATE TABLE u (b NOT NULL)' WHERE name = 'u'")
    conn.execute("PRAGMA writable_schema = OFF")
    conn.close()
    conn = apsw.Connection(str(tmp_path / "d.sqlite"))
    try:
        assert quick_check(conn) == "NULL value in u.b; NULL value in t.a"  # (SQLite's order)
    finally:
        conn.close()


def test_a_database_file_overwritten_after_a_read_fails_the_write_naming_it(store: Path) -> None:
    """R34, Errors: a database file whose header was overwritten after this runtime read it is
    met by the commit's ATTACH. That reached the caller as a bare ``SqliteCellsError`` naming no
    file, saying "try again" — and every later write failed the same way. It is the op's
    ``ExecError`` naming the file, and the next use rebuilds the file from the log."""
    rt, space, db = _open(store)
    try:
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('one')")
    finally:
        rt.close()
    rt, space, db = _open(store)
    try:
        assert db.read("SELECT v FROM t") == [{"v": "one"}]
        with db.path.open("r+b") as f:
            f.write(b"garbage!" * 16)
        with pytest.raises(sc.ExecError) as raised, space.transact():
            db.exec("INSERT INTO t (v) VALUES ('two')")
        assert raised.value.db_id == db.id
        assert f"the database file {db.path} is damaged" in str(raised.value)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('two')")
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": "one"}, {"v": "two"}]
        assert len(_kept(store)) == 1
    finally:
        rt.close()


def test_a_commit_that_meets_a_damaged_space_file_names_it(store: Path) -> None:
    """Errors: corrupt pages of the space file met by a commit were "the commit failed in
    SQLite …: try again", naming no file. The error names the space file and says what to do;
    nothing is committed."""
    with sc.Runtime(store) as first:
        space = first.space("demo")
        with space.transact():
            space.cell("c").set(0)
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        c = space.cell("c")
        assert c.get() == 0
        path = space.file.path
        with path.open("r+b") as f:
            f.seek(4096)
            f.write(b"\xa5" * 4096 * 3)
        for _ in range(2):  # and so again: the file stays damaged
            with pytest.raises(sc.SqliteCellsError) as raised, space.transact():
                c.set(1)
            message = str(raised.value)
            assert f"the commit found {path} damaged" in message
            assert "`sqlite-cells check`" in message and "restore the space file" in message
            assert isinstance(raised.value.__cause__, apsw.CorruptError | apsw.NotADBError)


def _damage_log_root(space_file: Path) -> None:
    """Overwrite the root page of the space file's log: the database file stays intact."""
    conn = apsw.Connection(str(space_file))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ((root,),) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = '_cf_log'")
    size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.close()
    with space_file.open("r+b") as f:
        f.seek(size * (root - 1))
        f.write(b"\xde\xad\xbe\xef" * (size // 4))


def test_damage_in_the_space_log_is_the_space_file_s_not_the_database_s(store: Path) -> None:
    """R71, Errors: comparing a database with its space reads the space's log; corrupt pages
    there were reported as the *database* file damaged, with `check --repair` as the remedy —
    which could do nothing (the database file was intact, the log unreadable). The finding
    names the space file; the database file is not called damaged or quarantined."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("d", tables=TABLES)
        for i in range(3):
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES (?)", [str(i)])
        space_file, db_file = space.file.path, db.path
    _damage_log_root(space_file)
    conn = apsw.Connection(str(db_file))
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    before = db_file.read_bytes()
    for args in (("check", str(store)), ("check", "--repair", str(store))):
        done = run_cli(*args)
        assert done.returncode == 1
        assert f"space file {space_file.name}: damaged" in done.stdout
        assert f"({db_file.name}): " not in done.stdout  # no finding about the database file
    done = run_cli("query", str(store), "demo", "d", "SELECT count(*) AS n FROM t")
    assert done.returncode == 1
    assert f"cannot read {space_file}: the file is damaged" in done.stderr
    assert db_file.read_bytes() == before
    assert not (store / "quarantine").exists() or not _kept(store)


def test_a_repair_interrupted_while_it_rebuilds_leaves_no_file_behind(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§6: Ctrl-C leaves the store consistent. A rebuild writes a new file beside the damaged
    one, then puts it in its place; interrupted in between, the new file stayed (a 0-byte
    `cell-….sqlite.rebuild` that nothing listed). It is removed; the damaged file is as it was."""
    path = _damaged_store(store)
    before = path.read_bytes()

    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(reconcile_module, "_replay", interrupted)
    with pytest.raises(KeyboardInterrupt):
        check_store(store, repair=True)
    assert sorted(p.name for p in store.iterdir() if ".rebuild" in p.name) == []
    assert path.read_bytes() == before


def test_gc_run_while_a_repair_swaps_its_rebuilt_file_in_removes_nothing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R74, R71: `gc` lists an unfinished rebuild's file (`cell-….sqlite.rebuild`) and removes
    one no connection has open. A repair closed the new file before copying the damaged one
    aside and moving the new one into place: a `gc --yes` in that moment removed the rebuilt
    file, and the repair failed naming another file. The repair now holds the new file until it
    stands at the path; the `gc` of another process, run at that very moment, keeps it."""
    path = _damaged_store(store)
    copy_aside = reconcile_module.keep_copy
    answers: list[subprocess.CompletedProcess[str]] = []

    def copy_then_gc(damaged: Path, why: str) -> Path:
        kept = copy_aside(damaged, why)
        answers.append(run_cli("gc", str(store), "--yes"))
        return kept

    monkeypatch.setattr(reconcile_module, "keep_copy", copy_then_gc)
    outcomes = check_store(store, repair=True)
    assert [o.action for o in outcomes] == [reconcile_module.Action.REBUILT]
    [gc] = answers
    assert gc.returncode == 1, gc.stdout + gc.stderr
    assert (
        f"could not remove {path.name}.rebuild (database 'd' of space 'demo'): kept: another "
        "connection has it open"
    ) in (gc.stdout + gc.stderr)
    assert not Path(f"{path}.rebuild").exists()
    conn = apsw.Connection(str(path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
        assert conn.execute("SELECT count(*) FROM t").fetchall() == [(ROWS,)]
    finally:
        conn.close()
    rt, _space, db = _open(store)
    try:
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": ROWS}]
    finally:
        rt.close()


def test_a_declared_table_another_program_dropped_is_damage_and_rebuilt(store: Path) -> None:
    """R71: a table the space's last write to a database declared and made, dropped by another
    program, read as a database in sync and empty (`check` exit 0), and the next write made the
    table anew, the space's rows lost from it. The file is damaged: `check` says so, and a
    runtime (or `--repair`) rebuilds it from the log, keeping a copy first."""
    tables = {"t": sc.table(id="integer primary key", v="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        for v in ("a", "b"):
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES (?)", [v])
        path = db.path
    conn = apsw.Connection(str(path))
    conn.execute("DROP TABLE t")
    conn.close()
    done = run_cli("check", "--store", str(store))
    assert done.returncode == 1, done.stdout
    assert "damaged" in done.stdout and "lacks the table(s) ['t']" in done.stdout
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=tables)
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": "a"}, {"v": "b"}]  # rebuilt
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('c')")
        assert [r["v"] for r in db.read("SELECT v FROM t ORDER BY id")] == ["a", "b", "c"]
    assert list((store / "quarantine").glob(f"{path.name}.*.damaged.*"))  # the copy kept
    assert run_cli("check", "--store", str(store)).returncode == 0

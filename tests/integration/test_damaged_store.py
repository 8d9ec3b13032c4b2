"""Hostile file systems and damaged files (R7, R71, R74): a refused first commit leaves no file;
a damaged space file is reported by ``check``, ``gc`` and ``inspect`` with advice that works;
``inspect`` lists a database file that holds commits but that no space names."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.codec import Link, derive_id
from sqlite_cells.files import Action, check_store, collect_garbage, damaged_spaces
from sqlite_cells.runtime._store import space_file_name

from ..conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"t": sc.table(id="integer primary key", body="text")}


def _script(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a Python process of its own with ``args``, which must end well."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _files(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir())


# -- a first commit refused by the file system leaves no file (R7) ---------------------------

_FIRST_WRITES_UNDER_LIMITS = textwrap.dedent(
    """
    import json, logging, os, resource, signal, sys
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    import sqlite_cells as sc
    base, with_db = sys.argv[1], sys.argv[2] == "db"
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    found = []
    for limit in range(0, 64 * 1024, 2048):
        store = os.path.join(base, str(limit))
        os.mkdir(store)
        rt = sc.Runtime(store)
        space = rt.space("demo")
        cell = space.cell("c", default=0)
        db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            with space.transact():
                cell.set(1)
                if with_db:
                    db.exec("INSERT INTO t (id) VALUES (1)")
            error = None
        except sc.SqliteCellsError as exc:
            error = {"class": type(exc).__name__, "message": str(exc)}
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)
        before_close = sorted(os.listdir(store))
        rt.close()
        found.append({"error": error, "before_close": before_close,
                      "after_close": sorted(os.listdir(store))})
    print(json.dumps(found))
    """
)


@pytest.mark.parametrize("with_db", ["cell", "db"])
def test_a_first_commit_refused_by_the_file_system_leaves_no_file(
    tmp_path: Path, with_db: str
) -> None:
    """Each write past a limit fails (RLIMIT_FSIZE, as on a full disk), for limits from 0 up
    to past what a first commit needs: SQLite fails while it makes the space file, or later at
    the commit itself. Whenever the commit is refused, no file stays behind (R7)."""
    done = _script(_FIRST_WRITES_UNDER_LIMITS, str(tmp_path), with_db, timeout=300)
    found = json.loads(done.stdout)
    refused = [f for f in found if f["error"] is not None]
    assert all(f["error"] is None for f in found[len(refused) :])  # refused below, then made
    assert 0 < len(refused) < len(found)
    making = [f for f in refused if f["error"]["message"].startswith("space file ")]
    committing = [f for f in refused if "the commit failed" in f["error"]["message"]]
    assert making and committing and len(making) + len(committing) == len(refused)
    for f in refused:
        assert f["error"]["class"] in ("DatabaseError", "SqliteCellsError")
        assert "I/O error" in f["error"]["message"]
        assert (f["before_close"], f["after_close"]) == ([], [])
    for f in found[len(refused) :]:
        assert any(name.startswith("space-") for name in f["after_close"])
    store = tmp_path / "0"
    with sc.Runtime(store) as rt:  # the store works as if nothing had been tried
        space = rt.space("demo")
        with space.transact():
            space.cell("c", default=0).set(2)
        assert space.cell("c", default=0).get() == 2


# -- a damaged space file: reported with advice that works, the rest of the store checked ------


def _make_store(store: Path) -> tuple[Path, Path, Path]:
    """Two spaces, each with a database that holds commits: (demo's space file, demo's database
    file, other's database file)."""
    paths = []
    with sc.Runtime(store) as rt:
        for name, count in (("demo", 3), ("other", 2)):
            space = rt.space(name)
            cell = space.cell("c", default=0)
            db = space.sqlite_database("d", tables=TABLES)
            for n in range(count):
                with space.transact():
                    cell.set(n)
                    db.exec("INSERT INTO t (body) VALUES (?)", [f"r{n}"])
            paths.append(db.path)
    return store / space_file_name("demo"), paths[0], paths[1]


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        if how == "pages":  # the header stays: SQLite opens it, then finds corrupt pages
            f.seek(4096)
            f.write(bytes((i * 37 + 11) % 256 for i in range(size - 4096)))
        else:  # garbage from the first byte: not a database at all
            f.write(bytes((i * 53 + 7) % 256 for i in range(size)))


def _snapshot(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.iterdir()) if p.is_file()}


@pytest.mark.parametrize("how", ["garbage", "pages"])
def test_a_damaged_space_file_is_reported_and_the_rest_of_the_store_checked(
    store: Path, how: str
) -> None:
    demo_space, demo_db, other_db = _make_store(store)
    _damage(demo_space, how)
    # A file no space names that holds no commit: gc would remove it, but while a space file
    # is damaged it may be that space's, so it is kept.
    blank = store / "cell-00000000000000000000000000000000.sqlite"
    blank.write_bytes(b"")
    before = _snapshot(store)
    reason = "file is not a database" if how == "garbage" else "malformed"

    for args in (("check",), ("check", "--repair")):
        done = run_cli(args[0], str(store), *args[1:])
        assert done.returncode == 1, done.stderr
        assert done.stderr == ""
        out = done.stdout
        assert f"space file {demo_space.name}: damaged, cannot be read (" in out
        assert reason in out
        assert "restore it (with its -wal, if any) from a backup" in out
        assert "move it and its -wal and -shm out of the store" in out
        assert "quarantine and rebuild" not in out
        assert f"({other_db.name}): watermark 2, space seq 2: in sync" in out
        assert f"orphaned database file {demo_db.name}: watermark 3 (the file holds" in out
        assert "2 database(s) checked" in out
        assert _snapshot(store) == before  # nothing repaired, moved or created

    done = run_cli("check", str(store), "--json")
    rows = {row["file"]: row for row in json.loads(done.stdout)}
    assert rows[demo_space.name]["action"] == "damaged space file"
    assert rows[demo_space.name]["db"] is None
    assert "source of truth" in rows[demo_space.name]["advice"]

    done = run_cli("gc", str(store), "--yes")
    assert done.returncode == 1 and done.stderr == ""
    assert f"damaged space file {demo_space.name} (" in done.stdout
    assert "0 file(s) removed" in done.stdout
    assert _snapshot(store) == before

    done = run_cli("inspect", str(store))
    assert done.returncode == 1 and done.stderr == ""
    assert f"space file {demo_space.name}: DAMAGED, cannot be read (" in done.stdout
    assert "space 'other'" in done.stdout and "watermark 2 (in sync)" in done.stdout
    assert f"finding: space file {demo_space.name} is damaged" in done.stdout
    assert f"finding: orphaned database file {demo_db.name}" in done.stdout
    data = json.loads(run_cli("inspect", str(store), "--json").stdout)
    assert [d["file"] for d in data["damaged_space_files"]] == [demo_space.name]
    assert [s["id"] for s in data["spaces"]] == ["other"]
    lines = run_cli("inspect", str(store), "--ndjson").stdout.splitlines()
    kinds = {row["file"]: row["kind"] for row in map(json.loads, lines)}
    assert kinds[demo_space.name] == "damaged space file"
    assert kinds[demo_db.name] == "orphaned" and kinds[other_db.name] == "cell"

    with sc.Runtime(store) as rt, pytest.raises(sc.DatabaseError) as caught:
        rt.space("demo").cell("c", default=0).get()
    message = str(caught.value)
    assert str(demo_space) in message and "source of truth" in message
    assert "restore it" in message and "quarantine and rebuild" not in message
    after = _snapshot(store)
    assert sorted(after) == sorted(before)
    # Opening it may bump SQLite's change counter in its header: its content is as found.
    assert after.pop(demo_space.name)[100:] == before.pop(demo_space.name)[100:]
    assert after == before


def test_cells_and_tables_list_the_readable_spaces_and_report_a_damaged_one(store: Path) -> None:
    """§6: one damaged space file made `cells` (even `cells --space other`, a healthy space)
    and `tables` list nothing, where `inspect` lists the rest. They list what is readable and
    report the damaged file as `inspect` does: a finding naming it, what is wrong and what to
    do (exit 1); nothing is written."""
    demo_space, _, _ = _make_store(store)
    _damage(demo_space, "pages")
    before = _snapshot(store)
    for args in (("cells", "--space", "other"), ("cells",), ("tables",), ("tables", "--json")):
        done = run_cli(args[0], str(store), *args[1:])
        assert done.returncode == 1, done.stderr
        assert f"space file {demo_space} is damaged (" in done.stderr
        assert "restore it (with its -wal, if any) from a backup" in done.stderr
        assert "other" in done.stdout and "demo" not in done.stdout
    rows = json.loads(run_cli("tables", str(store), "--json").stdout)
    assert [(r["space"], r["table"], r["rows"]) for r in rows] == [("other", "t", 2)]
    done = run_cli("cells", str(store), "--space", "demo")  # its file is the damaged one
    assert done.returncode == 1 and done.stdout == ""
    assert f"space file {demo_space} is damaged (" in done.stderr
    assert "no space 'demo'" in done.stderr and "cannot be read, said above" in done.stderr
    assert _snapshot(store) == before


def test_query_reads_a_healthy_space_while_another_space_file_is_damaged(store: Path) -> None:
    """§6 (follows "`cells` and `tables` list what they can read"): one damaged space file
    made `query` of every other space's database fail, naming the damaged file. `query` reads
    the space it is given: another space's file that cannot be read is left alone (a link
    into it is shown unnamed), and named only when the space asked for is found nowhere."""
    demo_space, _, _ = _make_store(store)
    _damage(demo_space, "garbage")
    before = _snapshot(store)
    link = Link(derive_id("cell", "other", "c"), "other", "space").encode().decode()
    sql = "SELECT body, ? AS who FROM t ORDER BY body"
    done = run_cli("query", str(store), "other", "d", sql, "-p", "1", link, "--csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["body,who", "r0,→ c 1", "r1,→ c 1"]
    done = run_cli("query", str(store), "demo", "d", "SELECT 1 AS n")
    assert done.returncode == 1 and done.stdout == ""
    assert f"cannot read {demo_space}: the file is damaged (file is not a database)" in (
        done.stderr
    )
    done = run_cli("query", str(store), "nope", "d", "SELECT 1 AS n")
    assert done.returncode == 1 and done.stderr == (
        f"sqlite-cells: InspectError: no space 'nope' in {store}: `sqlite-cells inspect` lists "
        f"them ({demo_space.name} could not be read, and may be its file: `sqlite-cells check` "
        "says what is wrong with it and what to do)\n"
    )
    assert _snapshot(store) == before


def test_a_space_file_whose_damage_sqlite_reads_without_an_error_is_reported(
    store: Path,
) -> None:
    """Bytes flipped inside the cells of ``_cf_cells``' page: SQLite reads the page without an
    error — rows of NULLs where the ids and values were — but its ``quick_check`` says what is
    wrong. ``inspect`` listed such a space as clean and its database as never written (exit
    0); ``gc`` read the ids it must keep from those rows. Now each reports the damaged space."""
    demo_space, demo_db, _other_db = _make_store(store)
    conn = apsw.Connection(str(demo_space))
    (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = '_cf_cells'").fetchone()
    conn.close()
    data = bytearray(demo_space.read_bytes())
    start = (root - 1) * 4096 + 8
    data[start : start + 60] = bytes(b ^ 0x5A for b in data[start : start + 60])
    demo_space.write_bytes(bytes(data))
    conn = apsw.Connection(str(demo_space), flags=apsw.SQLITE_OPEN_READONLY)
    conn.execute("SELECT * FROM _cf_cells").fetchall()  # no error: the damage reads as rows
    conn.close()
    blank = store / "cell-00000000000000000000000000000000.sqlite"
    blank.write_bytes(b"")
    before = _snapshot(store)

    done = run_cli("inspect", str(store))
    assert done.returncode == 1 and done.stderr == ""
    assert f"space file {demo_space.name}: DAMAGED, cannot be read (" in done.stdout
    assert "out of range" in done.stdout
    assert f"finding: orphaned database file {demo_db.name}" in done.stdout
    done = run_cli("gc", str(store), "--yes")
    assert done.returncode == 1 and "0 file(s) removed" in done.stdout
    assert [d.path for d in damaged_spaces(store)] == [demo_space]
    assert collect_garbage(store, remove=True) == []
    done = run_cli("check", str(store))
    assert done.returncode == 1
    assert f"space file {demo_space.name}: damaged, cannot be read (" in done.stdout
    for listing in ("tables", "cells"):  # they list every row: they check the pages first
        done = run_cli(listing, str(store))
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"space file {demo_space} is damaged (" in done.stderr
    assert _snapshot(store) == before


# -- inspect lists an orphaned database file (one that holds commits, named by no space) -------


def test_a_space_file_whose_meta_rows_read_as_nulls_is_damaged_not_older(store: Path) -> None:
    """R73, R71, Errors: damage SQLite reads as rows of NULLs in ``_cf_meta`` hides the format
    row (and the space id). The runtime took such a file for an older store, "upgraded" it and
    committed into it; ``query`` said there was no such space. Each now says it is damaged, and
    the file is left as found."""
    demo_space, _demo_db, _other_db = _make_store(store)
    conn = apsw.Connection(str(demo_space))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = '_cf_meta'").fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    data = bytearray(demo_space.read_bytes())
    start = (root - 1) * page_size + 8  # the page's cell pointers: rows of NULLs, no error
    data[start : start + 300] = bytes(b ^ 0x5A for b in data[start : start + 300])
    demo_space.write_bytes(bytes(data))
    before = _snapshot(store)
    rt = sc.Runtime(store)
    try:
        with pytest.raises(sc.DatabaseError) as raised, rt.space("demo").transact():
            rt.space("demo").cell("c").set(9)
    finally:
        rt.close()
    assert f"space file {demo_space}" in str(raised.value)
    assert "integrity check finds it damaged" in str(raised.value)
    assert "restore it" in str(raised.value)
    done = run_cli("query", str(store), "demo", "d", "SELECT body FROM t")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot read {demo_space}, the space file of space 'demo': the file is damaged (" in (
        done.stderr
    )
    assert _snapshot(store) == before


def test_inspect_lists_a_database_file_whose_space_file_was_emptied(store: Path) -> None:
    demo_space, demo_db, other_db = _make_store(store)
    os.truncate(demo_space, 0)  # blank: read as a space never written, so no space names demo_db
    before = _snapshot(store)

    done = run_cli("inspect", str(store))
    assert done.returncode == 1 and done.stderr == ""
    assert f"orphaned database file {demo_db.name}: watermark 3" in done.stdout
    assert f"finding: orphaned database file {demo_db.name}: it holds commits up to seq 3" in (
        done.stdout
    )
    assert "put back the space file that wrote it" in done.stdout
    assert other_db.name not in done.stdout.split("space 'other'")[0]
    data = json.loads(run_cli("inspect", str(store), "--json").stdout)
    assert data["orphaned_files"] == [{"file": demo_db.name, "watermark": 3}]

    # check reports the very same file as orphaned (one definition of "orphaned")
    done = run_cli("check", str(store), "--json")
    assert done.returncode == 1
    orphaned = [row["file"] for row in json.loads(done.stdout) if row["action"] == "orphaned"]
    assert orphaned == [demo_db.name]
    assert _snapshot(store) == before


def test_the_store_walk_reports_a_damaged_space_file_instead_of_raising(store: Path) -> None:
    """``check_store`` and ``collect_garbage`` (what ``check`` and ``gc`` run) go on past a space
    file that is not a database: it is an outcome, and nothing is removed."""
    demo_space, demo_db, other_db = _make_store(store)
    _damage(demo_space, "garbage")
    blank = store / "cell-00000000000000000000000000000000.sqlite"
    blank.write_bytes(b"")
    before = _snapshot(store)
    assert [d.path for d in damaged_spaces(store)] == [demo_space]
    assert collect_garbage(store, remove=True) == []
    outcomes = {o.path: o for o in check_store(store, repair=True)}
    assert outcomes[demo_space].action is Action.SPACE_DAMAGED
    assert outcomes[demo_space].detail == "file is not a database"
    assert not outcomes[demo_space].agrees
    assert outcomes[other_db].action is Action.IN_SYNC
    assert outcomes[demo_db].action is Action.ORPHANED
    assert _snapshot(store) == before
    demo_space.unlink()  # moved aside: the blank file no space names is gc's again
    assert collect_garbage(store, remove=True) == [blank]


# -- a space file damaged under a running runtime ------------------------------------------------


def test_a_catch_up_that_keeps_failing_is_logged_once_without_a_traceback(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The space file emptied by another program while a runtime polls it: the runtime's
    catch-up fails at every poll (woken three times here). It says so once, naming the file and
    what to do, not a traceback at every poll; the next commit is refused (R73) and the cached
    value is still served."""
    # Polls only when woken: a poll between the commit and the truncation would refresh the
    # poller's view of the file, and it would see no change to read (and no damage) after it.
    with sc.Runtime(store, poll_interval=3600) as rt:
        space = rt.space("demo")
        cell = space.cell("c", default=0)
        with space.transact():
            cell.set(1)
        with caplog.at_level("INFO", logger="sqlite_cells"):
            os.truncate(store / space_file_name("demo"), 0)
            for _ in range(3):
                rt._wake.set()
                time.sleep(0.1)
            records = [r for r in caplog.records if "catching up" in r.getMessage()]
            assert len(records) == 1, [r.getMessage() for r in records]
            assert records[0].levelname == "ERROR" and records[0].exc_info is None
            message = records[0].getMessage()
            assert str(store / space_file_name("demo")) in message
            assert "sqlite-cells check" in message
            assert not any(r.exc_info for r in caplog.records if r.levelname != "DEBUG")
        with pytest.raises(sc.StoreChanged), space.transact():
            cell.set(2)
        assert cell.get() == 1


def test_a_first_write_committed_after_the_names_were_read_is_no_orphan(store: Path) -> None:
    """`check` and `inspect` read the names the space files hold, then the database files'
    watermarks: a database's first write committing in between (another runtime making a new
    database) left a file no name held yet, reported as orphaned with advice to move it out
    of the store. Its space file commits first, so the names read again after the watermark
    hold it; called with the names as they were before that write (none), the walk finds no
    orphan."""
    from sqlite_cells.files._handles import _orphans

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("fresh", tables={"t": sc.table(x="integer")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES (1)")
        path = db.path
    assert _orphans(store, named=set()) == []
    # A file no space names at all is still found, as before.
    orphan = store / ("cell-" + "ab" * 16 + ".sqlite")
    orphan.write_bytes(path.read_bytes())
    assert _orphans(store, named=set()) == [(orphan, 1)]


@pytest.mark.parametrize("table", ["_cf_op_index", "_cf_cells", "_cf_log"])
def test_corrupt_pages_in_any_table_of_a_space_file_are_a_database_error(
    store: Path, table: str
) -> None:
    """Errors: garbage over the root page of one of the space file's tables is said as the
    damage it is (a `DatabaseError` naming the file, with the restore advice) whichever table
    it hits; the op index's raised a raw `apsw.CorruptError` from `rt.space()`."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("a", tables={"rows": sc.table(k="integer")})
        for k in range(300):
            with space.transact():
                space.cell("n").set(k)
                db.exec("INSERT INTO rows (k) VALUES (?)", [k])
    (path,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(path))
    (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with path.open("r+b") as file:
        file.seek(page_size * (root - 1))
        file.write(b"\x0d" + random.Random(table).randbytes(page_size - 1))
    rt = sc.Runtime(store)
    try:
        with pytest.raises(sc.DatabaseError) as raised:
            rt.space("s").cell("n").get()
    finally:
        rt.close()
    assert f"space file {path}" in str(raised.value)
    assert "restore it" in str(raised.value)


def test_a_database_of_a_space_file_damaged_elsewhere_is_listed_once(tmp_path: Path) -> None:
    """§6: a space file whose damage lies in pages a database's check does not read (here an
    old page of its log): `check` compared the database with its space ("in sync"), reported
    the space file damaged (SQLite's check of the whole file), and then listed the database a
    second time, as named by no readable space — "2 database(s) checked" for one. Once."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        cell = space.cell("c", default="")
        for i in range(60):
            with space.transact():
                cell.set("x" * 3000 + str(i))
        db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", s="text")})
        with space.transact():
            db.exec("INSERT INTO t (s) VALUES ('a')")
        db_file = db.path
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    pages = [
        page
        for (page,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = '_cf_log' AND pagetype = 'leaf' ORDER BY pageno"
        )
    ]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(space_file, "r+b") as f:  # an old record's page: no check of the database reads it
        f.seek((pages[1] - 1) * size)
        f.write(b"\xff" * size)
    outcomes = check_store(store, repair=False)
    assert [o.path for o in outcomes].count(db_file) == 1
    assert [o.action for o in outcomes if o.path == space_file] == [Action.SPACE_DAMAGED]
    done = run_cli("check", str(store))
    assert done.returncode == 1
    assert done.stdout.count(db_file.name) == 1
    assert "1 database(s) checked" in done.stdout


def _set_version(path: Path, value: object) -> None:
    conn = apsw.Connection(str(path))
    conn.setbusytimeout(5000)
    conn.execute("UPDATE _cf_meta SET value = ? WHERE key = 'version'", (value,))
    conn.close()


def test_a_database_file_whose_version_is_not_an_integer_is_damaged(store: Path) -> None:
    """R71: a database file whose ``_cf_meta.version`` holds text is damaged (only the runtime
    writes it, and only integers). A write refused it as an ``UnsupportedMigration`` that said
    the file was damaged and also told to bump ``version=``, and `check` found it "in sync"
    (exit 0). `check` reports it damaged (exit 1, nothing changed), `check --repair` rebuilds
    it from the log, keeping the damaged copy, and its rows read back."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('a')")
        path = db.path
    _set_version(path, "abc")
    before = _snapshot(store)
    done = run_cli("check", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "damaged file: its _cf_meta.version holds 'abc', not an integer" in done.stdout
    assert "run `sqlite-cells check --repair` to rebuild it" in done.stdout
    assert "Bump version=" not in done.stdout + done.stderr
    assert _snapshot(store) == before
    done = run_cli("check", str(store), "--repair")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt, 1 commit(s) applied" in done.stdout
    (kept,) = (store / "quarantine").glob(f"{path.name}.*.damaged.0")
    assert kept.read_bytes() == before[path.name]
    assert run_cli("check", str(store)).returncode == 0
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        assert db.read("SELECT id, body FROM t") == [{"id": 1, "body": "a"}]


def test_a_write_meeting_a_version_that_is_not_an_integer_rebuilds_the_file(
    store: Path,
) -> None:
    """R71, Errors: a runtime's first use of a database whose file's version holds text
    rebuilds it from the log; a file damaged so under a running runtime fails the write as
    damage (an ``ExecError`` naming the file, no advice to bump ``version=``, nothing
    written), and the next write finds it rebuilt."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('a')")
        path = db.path
    _set_version(path, "abc")
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('b')")
        assert len(list((store / "quarantine").glob(f"{path.name}.*.damaged.*.txt"))) == 1
        _set_version(path, "abc")
        with pytest.raises(sc.ExecError) as raised, space.transact():
            db.exec("INSERT INTO t (body) VALUES ('c')")
        message = str(raised.value)
        assert f"the database file {path} is damaged" in message
        assert "its _cf_meta.version holds 'abc', not an integer" in message
        assert "Bump version=" not in message
        assert db.read("SELECT body FROM t ORDER BY id") == [{"body": "a"}, {"body": "b"}]
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('c')")
        assert [r["body"] for r in db.read("SELECT body FROM t ORDER BY id")] == ["a", "b", "c"]
        assert len(list((store / "quarantine").glob(f"{path.name}.*.damaged.*.txt"))) == 2


def test_a_version_that_is_text_not_utf8_is_damage_not_an_internal_error(store: Path) -> None:
    """R71, Errors, §6: a database file's ``_cf_meta.version`` another program set to text that
    is not UTF-8 made `query`, `inspect` and `tables` end in "internal error, please report it:
    UnicodeDecodeError", and `check` blame the space file's text. It is damage, as a version
    that is text: each command says so naming the file, and a write under a running runtime
    fails as damage, nothing written, the next one finding the file rebuilt."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('a')")
        path = db.path
    conn = apsw.Connection(str(path))
    conn.execute("UPDATE _cf_meta SET value = CAST(x'ff41' AS TEXT) WHERE key = 'version'")
    conn.close()
    said = "its _cf_meta.version holds text that is not valid UTF-8 (x'ff41'), not an integer"
    before = _snapshot(store)
    for command in (("query", str(store), "s", "x", "SELECT * FROM t"), ("tables", str(store))):
        done = run_cli(*command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert said in done.stderr and "internal error" not in done.stderr
    done = run_cli("inspect", str(store))
    assert done.returncode in (0, 1) and "internal error" not in done.stderr, done.stderr
    done = run_cli("check", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"damaged file: {said}" in done.stdout and "space-" not in done.stderr
    assert _snapshot(store) == before
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('b')")  # the first use rebuilt the file
        conn = apsw.Connection(str(path))
        conn.setbusytimeout(5000)
        conn.execute("UPDATE _cf_meta SET value = CAST(x'ff41' AS TEXT) WHERE key = 'version'")
        conn.close()
        with pytest.raises(sc.ExecError) as raised, space.transact():
            db.exec("INSERT INTO t (body) VALUES ('c')")
        assert f"the database file {path} is damaged" in str(raised.value)
        assert said in str(raised.value)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('c')")
        assert [r["body"] for r in db.read("SELECT body FROM t ORDER BY id")] == ["a", "b", "c"]


_COMMITS_ON_A_FULL_DISK = """
import resource, signal, sys
import sqlite_cells as sc
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    cell = space.cell("c", default=0)
    with space.transact():
        cell.set(1)  # the space file exists; the database's file does not yet
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # a full disk
    for i in (10, 11, 12):
        try:
            with space.transact():
                cell.set(i)
                db.exec("INSERT INTO t (id) VALUES (?)", [i])
            print("committed")
        except sc.SqliteCellsError as exc:
            print(type(exc).__name__, str(exc).replace("\\n", " "))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    with space.transact():
        cell.set(2)
        db.exec("INSERT INTO t (id) VALUES (2)")
    print(cell.get(), db.read("SELECT id FROM t"))
"""


def test_every_commit_on_a_full_disk_says_so(tmp_path: Path) -> None:
    """A database's first write on a full disk: the first commit said "disk I/O error", each
    after it "no such savepoint: _cf_take_lock" (an I/O error rolls back SQLite's whole
    transaction, and the runtime's undo of its savepoint failed in its place)."""
    done = _script(_COMMITS_ON_A_FULL_DISK, str(tmp_path / "store"))
    lines = done.stdout.splitlines()
    assert len(lines) == 4, lines
    for line in lines[:3]:
        assert line.startswith("DatabaseError ") and "disk I/O error" in line, line
        assert "savepoint" not in line
    assert lines[3] == "2 [{'id': 2}]"


# The start of each script run under a limit on the size of files (RLIMIT_FSIZE, a full disk
# as SQLite meets it): a write past the limit fails with EFBIG instead of killing the process.
_LIMITS = """
import resource, signal, sys
import sqlite_cells as sc
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
"""

_A_WRITE_PAST_A_FILE_SIZE_LIMIT = (
    _LIMITS
    + """
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    cell = space.cell("c", default=0)
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", b="blob")})
    with space.transact():
        cell.set(1)
        db.exec("INSERT INTO t (b) VALUES (randomblob(10))")
    print(db.path)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, hard))
    try:
        with space.transact():
            cell.set(2)
            db.exec("INSERT INTO t (b) VALUES (randomblob(8000000))")
        print("committed")
    except sc.SqliteCellsError as exc:
        print(type(exc).__name__, str(exc).replace("\\n", " "))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(cell.get(), db.rev, db.read("SELECT count(*) AS n FROM t"))
    with space.transact():
        cell.set(3)
        db.exec("INSERT INTO t (b) VALUES (randomblob(10))")
    print(cell.get(), db.rev, db.read("SELECT count(*) AS n FROM t"))
"""
)


def test_a_write_statement_the_file_system_refuses_says_where_and_what_to_do(
    tmp_path: Path,
) -> None:
    """A db.exec statement whose pages the file system refuses to write (a full disk; here a
    limit on file sizes) said only "disk I/O error (SQLite's SQLITE_IOERR)": neither the file
    nor what to do. It names the database file and says to free space or check the disk; the
    transaction is rolled back, cells included, and the next commit works (Errors, R34)."""
    done = _script(_A_WRITE_PAST_A_FILE_SIZE_LIMIT, str(tmp_path / "store"))
    path, refused, after, next_commit = done.stdout.splitlines()
    assert refused.startswith("ExecError "), refused
    assert "disk I/O error" in refused and "SQLITE_IOERR" in refused
    assert f"the statement writes the database file {path}" in refused
    assert "free space or check the disk, then try again" in refused
    assert "the whole transaction was rolled back" in refused
    assert after == "1 1 [{'n': 1}]"
    assert next_commit == "3 2 [{'n': 2}]"


@pytest.mark.parametrize("stored", ["'abc'", "CAST(x'ff41' AS TEXT)"])
def test_a_journal_changeset_stored_as_text_is_no_internal_error(store: Path, stored: str) -> None:
    """R71, Errors, §6: a database file's journal row whose changeset another program stored as
    text ended every command in "internal error, please report it" (``TypeError: string
    argument without an encoding``, or ``UnicodeDecodeError`` for text that is not UTF-8), `check`
    too. It is read as its bytes, which are not the changes the space logged, as for any other
    changeset that differs: the database is quarantined as not its space's file, each command
    says so, and nothing is changed."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("x", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (body) VALUES ('a')")
        path = db.path
    conn = apsw.Connection(str(path))
    conn.execute(f"UPDATE _cf_changes SET changeset = {stored}")
    conn.close()
    before = _snapshot(store)
    said = "the file's changes of commit 1 are not the ones its space logged"
    for command in (
        ("query", str(store), "s", "x", "SELECT * FROM t"),
        ("tables", str(store)),
        ("inspect", str(store)),
        ("check", str(store)),
        ("check", "--repair", str(store)),
    ):
        done = run_cli(*command)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "internal error" not in done.stderr, (command, done.stderr)
        assert said in done.stdout + done.stderr, (command, done.stdout, done.stderr)
    assert _snapshot(store) == before
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("x", tables=TABLES)
        with pytest.raises(sc.Quarantined, match="are not the ones its space logged"):
            db.read("SELECT * FROM t")


_A_MIGRATION_ON_A_FULL_DISK = (
    _LIMITS
    + """
def widen(conn, from_version):
    conn.execute("ALTER TABLE t ADD COLUMN w text")
    conn.execute("UPDATE t SET w = body")
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", body="text")})
    with space.transact():
        db.exec_many("INSERT INTO t (body) VALUES (?)", [["a" * 1000] for _ in range(100)])
    print(db.path)
    db = space.sqlite_database(
        "d",
        tables={"t": sc.table(id="integer primary key", body="text", w="text")},
        version=2,
        migrate=widen,
    )
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # a full disk
    try:
        with space.transact():
            db.exec("UPDATE t SET w = 'x' WHERE id = 1")
        print("committed")
    except sc.SqliteCellsError as exc:
        print(type(exc).__name__, exc.db_id == db.id, str(exc).replace("\\n", " "))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(db.rev, db.read("SELECT count(w) AS n FROM t"))
    with space.transact():
        db.exec("UPDATE t SET w = 'x' WHERE id = 1")
    print(db.rev, db.read("SELECT count(w) AS n, sum(w = 'x') AS x FROM t"))
"""
)


def test_a_migration_the_disk_refuses_says_what_to_do_and_writes_nothing(tmp_path: Path) -> None:
    """R14, Errors: a migration whose writes the file system refused (a full disk; here a limit
    on file sizes) failed as "migrating <file> failed in SQLite: disk I/O error", saying neither
    what kind of error that is nor what to do. It says to free space or check the disk, and that
    nothing was written; once there is room, the next write migrates the file and commits."""
    done = _script(_A_MIGRATION_ON_A_FULL_DISK, str(tmp_path / "store"))
    path, refused, after, next_commit = done.stdout.splitlines()
    assert refused.startswith("MigrationError True "), refused
    assert f"migrating {path} failed in SQLite: disk I/O error (SQLite's SQLITE_IOERR)" in refused
    assert "a full disk" in refused and "free space or check the disk, then try again" in refused
    assert refused.endswith("; nothing was written"), refused
    assert after == "1 [{'n': 0}]"
    assert next_commit == "2 [{'n': 100, 'x': 1}]"


_A_DATABASE_FILE_OPENED_ON_A_FULL_DISK = (
    _LIMITS
    + """
tables = {"t": sc.table(id="integer primary key", body="text")}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    db = space.sqlite_database("d", tables=tables)
    with space.transact():
        db.exec("INSERT INTO t (body) VALUES ('a')")
with sc.Runtime(sys.argv[1]) as rt:  # the database file has no -shm now
    space = rt.space("s")
    cell = space.cell("c", default=0)
    with space.transact():
        cell.set(1)
    db = space.sqlite_database("d", tables=tables)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # a full disk
    try:
        with space.transact():
            cell.set(2)
            db.exec("INSERT INTO t (body) VALUES ('b')")
        print("committed")
    except sc.DatabaseError as exc:
        print(str(exc).replace("\\n", " "))
    try:
        print(db.read("SELECT count(*) AS n FROM t"))
    except sc.DatabaseError as exc:
        print(str(exc).replace("\\n", " "))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(cell.get(), db.rev, db.read("SELECT count(*) AS n FROM t"))
    with space.transact():
        db.exec("INSERT INTO t (body) VALUES ('b')")
    print(db.rev, db.read("SELECT count(*) AS n FROM t"))
"""
)


def test_a_database_file_the_disk_cannot_open_says_to_free_space(tmp_path: Path) -> None:
    """Errors: a database file SQLite could not open on a full disk (it cannot make the -shm it
    writes beside a file it opens; here a limit on file sizes) failed a write and a read with
    "an I/O error (disk I/O error): check the disk, then run `sqlite-cells check`", never naming
    the full disk nor freeing space. Both say it now; the write commits nothing, and both work
    once there is room, in the same process."""
    done = _script(_A_DATABASE_FILE_OPENED_ON_A_FULL_DISK, str(tmp_path / "store"))
    refused_write, refused_read, after, next_commit = done.stdout.splitlines()
    for refused in (refused_write, refused_read):
        assert "cell-" in refused and "an I/O error (disk I/O error)" in refused, refused
        assert "a full disk" in refused, refused
        assert "free space or check the disk, then try again" in refused, refused
    assert after == "1 1 [{'n': 1}]"
    assert next_commit == "2 [{'n': 2}]"


_A_CELL_COMMIT_ON_A_FULL_DISK = (
    _LIMITS
    + """
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    cell = space.cell("c", default=0)
    with space.transact():
        cell.set(1)
    print(space.file.path)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # a full disk
    try:
        with space.transact():
            cell.set("x" * 100_000)
        print("committed")
    except sc.DatabaseError as exc:
        print(type(exc).__name__, str(exc).replace("\\n", " "))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(cell.get())
    with space.transact():
        cell.set(2)
    print(cell.get())
"""
)


def test_a_commit_the_disk_refuses_says_to_free_space(tmp_path: Path) -> None:
    """R34, Errors: a commit whose pages the file system refused (a full disk; here a limit on
    file sizes) failed with "the commit failed in SQLite (disk I/O error); nothing of it is
    visible: try again, and check the disk if it keeps failing": trying again cannot help until
    there is room. It names the file, the full disk, and says to free space first."""
    done = _script(_A_CELL_COMMIT_ON_A_FULL_DISK, str(tmp_path / "store"))
    space_file, refused, after, next_commit = done.stdout.splitlines()
    assert refused.startswith(f"DatabaseError space 's': the commit failed writing {space_file}")
    assert "(disk I/O error)" in refused and "a full disk" in refused, refused
    assert "nothing of it is visible: free space or check the disk, then try again" in refused
    assert (after, next_commit) == ("1", "2")

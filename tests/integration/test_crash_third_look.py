"""Crash safety, store format and deletion, read from the rules alone (R5, R70–R74, §6).

Files of real stores are emptied, overwritten, renamed over and put back from older copies, rows
of a space file are deleted by another program, a space file records a newer format, and writers
doing updates and deletes on a table without a primary key are SIGKILLed: a database and its
space are never served disagreeing, `check` says what it finds with its exit status, and nothing
is deleted that a handle named or that a store of a newer format may name.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files import check_store, set_watermark
from sqlite_cells.runtime import FORMAT_VERSION

from .._files import checkpointed, copy_file

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "notes": sc.table(body="text", r="integer", b="blob"),  # no primary key: rowids
    "ev": sc.table(id="integer primary key", k="integer"),
}
ROWS = "SELECT rowid AS rid, body, r, b FROM notes ORDER BY rowid"


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _open(store: Path) -> tuple[sc.Runtime, sc.Space, sc.SqliteDb, sc.Cell]:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    return rt, space, space.sqlite_database("d", tables=TABLES), space.cell("counter", default=0)


def _space_path(store: Path, space_id: str = "demo") -> Path:
    for path in sorted(store.glob("space-*.sqlite")):
        conn = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
        try:
            row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'space_id'").fetchone()
        finally:
            conn.close()
        if row == (space_id,):
            return path
    raise AssertionError(f"no space file of {space_id}")


def _digest(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
        and not p.name.endswith("-shm")
        and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


def _fill_with_gaps(store: Path) -> tuple[Path, list[dict[str, object]]]:
    """Rows of a table without a primary key, made by random() and randomblob(), with rowid
    gaps left by deletes and the highest rowid deleted (SQLite reuses it for the next insert)."""
    rt, _space, db, counter = _open(store)
    with rt:

        @sc.handler
        def change(sql: str, rows: list[list[object]] | None = None) -> None:
            counter.update(lambda v: v + 1)
            if rows is None:
                db.exec(sql)
            else:
                db.exec_many(sql, rows)

        change(
            "INSERT INTO notes (body, r, b) VALUES (?, random(), randomblob(8))",
            [[f"n{i}"] for i in range(12)],
        )
        change("DELETE FROM notes WHERE rowid IN (3, 5, 12)")
        change("INSERT INTO notes (body, r, b) VALUES ('reused', random(), randomblob(4))")
        change("UPDATE notes SET r = random(), body = body || '!' WHERE rowid % 2 = 0")
        rows = db.read(ROWS)
        assert [r["rid"] for r in rows] == [1, 2, 4, 6, 7, 8, 9, 10, 11, 12]
        return Path(db.path), rows


# -- R73, R74: a store of which one space is of a newer format ----------------------------------


def _store_with_a_newer_space(store: Path) -> dict[str, Path]:
    """Space `alpha` in this format; space `beta` (one database dropped) recording a newer
    format; and a database file no space names, which never held a commit."""
    with sc.Runtime(store) as rt:
        alpha, beta = rt.space("alpha"), rt.space("beta")
        kept = alpha.sqlite_database("d", tables=TABLES)
        gone = beta.sqlite_database("d", tables=TABLES)
        with alpha.transact():
            kept.exec("INSERT INTO ev (k) VALUES (1)")
        with beta.transact():
            gone.exec("INSERT INTO ev (k) VALUES (1)")
        with beta.transact():
            gone.drop()
        files = {"kept": Path(kept.path), "dropped": Path(gone.path)}
    files["unnamed"] = store / "cell-ffffffffffffffffffffffffffffffff.sqlite"
    files["unnamed"].write_bytes(b"")
    conn = apsw.Connection(str(_space_path(store, "beta")))
    conn.execute("UPDATE _cf_meta SET value = ? WHERE key = 'format'", (FORMAT_VERSION + 1,))
    conn.close()
    return files


def test_gc_from_a_runtime_refuses_a_store_one_of_whose_spaces_is_of_a_newer_format(
    tmp_path: Path,
) -> None:
    """R73, R74: a newer format may name files in ways this version cannot read, so `space.gc()`
    — the library's request to delete — refuses the store as `sqlite-cells gc --yes` does,
    naming the file and both versions, and removes nothing (it removed the newer space's
    dropped file and the unnamed one)."""
    store = tmp_path / "store"
    files = _store_with_a_newer_space(store)
    before = _digest(store)
    for args in (["gc"], ["gc", "--yes"]):
        refused = _cli(*args, str(store))
        assert refused.returncode == 1 and refused.stdout == ""
        assert f"store format {FORMAT_VERSION + 1}" in refused.stderr
    with sc.Runtime(store) as rt:
        alpha = rt.space("alpha")
        with pytest.raises(sc.SqliteCellsError) as refused_gc:
            alpha.gc()
    message = str(refused_gc.value)
    assert str(_space_path(store, "beta")) in message
    assert f"format {FORMAT_VERSION + 1}" in message and f"format {FORMAT_VERSION}" in message
    assert "upgrade sqlite-cells" in message
    assert all(path.exists() for path in files.values())
    assert {k: v for k, v in _digest(store).items() if k.startswith("cell-")} == {
        k: v for k, v in before.items() if k.startswith("cell-")
    }


def test_a_repair_never_acts_on_a_space_file_of_a_newer_format(tmp_path: Path) -> None:
    """R73: the store walk behind `check --repair` refuses a newer space file before it
    replays anything into the database that file names."""
    store = tmp_path / "store"
    rt, space, db, _counter = _open(store)
    with rt:
        for k in range(3):
            with space.transact():
                db.exec("INSERT INTO ev (k) VALUES (?)", [k])
        path = Path(db.path)
    conn = apsw.Connection(str(path))
    conn.execute("DELETE FROM ev WHERE k = 2")
    set_watermark(conn, 2)  # one commit behind: work for a repair
    conn.close()
    conn = apsw.Connection(str(_space_path(store)))
    conn.execute("UPDATE _cf_meta SET value = ? WHERE key = 'format'", (FORMAT_VERSION + 1,))
    conn.close()
    before = _digest(store)
    with pytest.raises(sc.SqliteCellsError, match=f"format {FORMAT_VERSION + 1}"):
        check_store(store, repair=True)
    assert _digest(store) == before


# -- R71, §6: database files emptied, overwritten, cut short while no runtime runs -------------


@pytest.mark.parametrize("how", ["zero-length", "text", "header-cut"])
def test_a_database_file_emptied_or_overwritten_is_reported_then_rebuilt_with_its_rowids(
    tmp_path: Path, how: str
) -> None:
    """R70, R71, §6: `check` finds it (exit 1) and changes nothing; `check --repair` rebuilds
    it from the log (which holds its whole history) to the same rowids, random() values and
    blobs; then `check` exits 0."""
    store = tmp_path / "store"
    path, rows = _fill_with_gaps(store)
    checkpointed(path)
    if how == "zero-length":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("not a database\n" * 500)
    else:
        os.truncate(path, 50)
    before = _digest(store)
    found = _cli("check", str(store))
    assert found.returncode == 1, found.stdout
    assert ("behind" if how == "zero-length" else "damaged") in found.stdout
    assert "--repair" in found.stdout
    assert _digest(store) == before
    repaired = _cli("check", "--repair", str(store))
    assert repaired.returncode in (0, 1), repaired.stdout + repaired.stderr
    assert _cli("check", str(store)).returncode == 0
    rt, _space, db, counter = _open(store)
    with rt:
        assert db.read(ROWS) == rows
        assert counter.get() == 4


# -- R70, R71: the one commit in flight, inverted on a table without a primary key -------------


def test_the_commit_in_flight_is_inverted_to_the_same_rowids_and_values(tmp_path: Path) -> None:
    """R70, R71: a space file put back from the copy made one commit earlier leaves the database
    ahead by that commit, whose UPDATE by random(), DELETE and INSERT reusing a rowid on a table
    without a primary key are inverted exactly; a copy of the file is kept first; `check` says
    `ahead` (exit 1) before, and exit 0 after."""
    store = tmp_path / "store"
    path, rows = _fill_with_gaps(store)
    space_path = _space_path(store)
    checkpointed(space_path)
    shutil.copyfile(space_path, tmp_path / "space.old")
    rt, space, db, counter = _open(store)
    with rt:
        with space.transact():
            counter.set(100)
            db.exec("UPDATE notes SET r = random(), b = randomblob(2) WHERE rowid > 6")
            db.exec("DELETE FROM notes WHERE rowid IN (1, 12)")
            db.exec("INSERT INTO notes (body) VALUES ('late')")
        lost = db.read(ROWS)
        assert lost != rows
    checkpointed(space_path)
    shutil.copyfile(tmp_path / "space.old", space_path)
    found = _cli("check", str(store))
    assert found.returncode == 1 and "watermark 5, space seq 4: ahead" in found.stdout
    rt, space, db, counter = _open(store)
    with rt:
        assert db.read(ROWS) == rows
        assert counter.get() == 4 and db.rev == 4
    (kept,) = (store / "quarantine").glob(f"{path.name}.*.ahead-5-of-4.0")
    conn = apsw.Connection(f"file:{kept}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
    try:
        assert conn.execute("SELECT count(*) FROM notes WHERE body = 'late'").fetchone() == (1,)
    finally:
        conn.close()
    assert _cli("check", str(store)).returncode == 0


# -- R73: a file renamed over by a copy of itself -----------------------------------------------


@pytest.mark.parametrize("target", ["db", "space"])
def test_a_file_renamed_over_by_a_copy_of_itself_takes_no_commit(
    tmp_path: Path, target: str
) -> None:
    """R73: even a byte-for-byte copy renamed over the file is another file: the next commit
    raises `StoreChanged` naming it and commits nothing — neither its cell write nor its rows,
    as a new runtime sees — and the store then checks clean."""
    store = tmp_path / "store"
    rt, space, db, counter = _open(store)
    with rt:
        with space.transact():
            counter.set(1)
            db.exec("INSERT INTO ev (k) VALUES (1)")
        path = Path(db.path) if target == "db" else _space_path(store)
        copy_file(path, tmp_path / "copy")  # WAL frames stay in -wal
        os.replace(tmp_path / "copy", path)
        with pytest.raises(sc.StoreChanged) as changed, space.transact():
            counter.set(2)
            db.exec("INSERT INTO ev (k) VALUES (2)")
        assert changed.value.path == str(path)
        assert isinstance(changed.value, sc.SqliteCellsError)
    rt, space, db, counter = _open(store)
    with rt:
        assert counter.get() == 1
        assert db.read("SELECT k FROM ev") == [{"k": 1}]
        assert db.rev == 1
    assert _cli("check", str(store)).returncode == 0


# -- R5, R74: gc keeps what a handle named, whatever another program did to the space file -----


def test_gc_keeps_files_whose_handle_rows_another_program_deleted_after_compaction(
    tmp_path: Path,
) -> None:
    """R5, R74: `set` on a handle raises `TypeError` (and a `SqliteCellsError`); with the log
    compacted and the handle rows deleted from the space file by another program, `gc` (listing,
    then `--yes`) removes only the dropped database's file; `check` reports the databases whose
    handles are gone as quarantined, never repaired, rows untouched."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.file.compact_keep = 2  # type: ignore[attr-defined]  # the log compacts as it goes
        space.file.compact_every = 2  # type: ignore[attr-defined]
        a, b, gone = (space.sqlite_database(n, tables=TABLES) for n in ("a", "b", "gone"))
        counter = space.cell("counter", default=0)
        for db in (a, a, a, b, gone):
            with space.transact():
                db.exec("INSERT INTO ev (k) VALUES (1)")
        for db in (a, b):
            with pytest.raises(TypeError) as refused:
                db.set(None)  # type: ignore[attr-defined]
            assert isinstance(refused.value, sc.SqliteCellsError)
        with space.transact():
            gone.drop()
        for n in range(8):
            with space.transact():
                counter.set(n)
        paths = {"a": Path(a.path), "b": Path(b.path), "gone": Path(gone.path)}
        ids = (a.id, b.id)
    conn = apsw.Connection(str(_space_path(store)))
    assert conn.execute("SELECT value FROM _cf_meta WHERE key = 'compacted'").fetchone()
    conn.execute("DELETE FROM _cf_cells WHERE id IN (?, ?)", ids)
    conn.close()
    listed = _cli("gc", str(store))
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        f"would remove {paths['gone'].name} (database 'gone' of space 'demo')",
        "1 file(s) to remove: run again with --yes to remove them",
    ]
    assert all(p.exists() for p in paths.values())
    removed = _cli("gc", "--yes", str(store))
    assert removed.returncode == 0 and f"removed {paths['gone'].name}" in removed.stdout
    assert paths["a"].exists() and paths["b"].exists() and not paths["gone"].exists()
    found = _cli("check", "--repair", str(store))
    assert found.returncode == 1
    assert found.stdout.count("quarantined") == 2, found.stdout
    for name, count in (("a", 3), ("b", 1)):
        conn = apsw.Connection(f"file:{paths[name]}?mode=ro", flags=apsw.SQLITE_OPEN_URI | 1)
        try:
            assert conn.execute("SELECT count(*) FROM ev").fetchone() == (count,)
        finally:
            conn.close()


# -- R70–R72: writers killed during updates and deletes of a table without a primary key --------

_WRITER = textwrap.dedent(
    """
    import os, random, sys
    import sqlite_cells as sc
    store, seed = sys.argv[1], int(sys.argv[2])
    TABLES = {
        "notes": sc.table(body="text", r="integer", b="blob"),
        "ev": sc.table(id="integer primary key", k="integer"),
    }
    rng = random.Random(seed)
    rt = sc.Runtime(store)
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)

    @sc.handler
    def step(kind: int, n: int) -> None:
        counter.update(lambda v: v + 1)
        if kind == 0:
            db.exec_many(
                "INSERT INTO notes (body, r, b) VALUES (?, random(), randomblob(16))",
                [[f"x{n}-{i}"] for i in range(5)],
            )
        elif kind == 1:
            db.exec("DELETE FROM notes WHERE rowid IN (SELECT rowid FROM notes "
                    "ORDER BY random() LIMIT 2)")
        else:
            db.exec("UPDATE notes SET r = random(), body = body || '.' WHERE rowid % 3 = ?",
                    [n % 3])

    os.write(1, b"ready\\n")
    n = 0
    while True:
        n += 1
        seq = step(rng.choice((0, 0, 1, 2)), n)
        os.write(1, f"seq {seq}\\n".encode())
    """
)


def test_writers_killed_during_updates_and_deletes_leave_the_rows_the_log_rebuilds(
    tmp_path: Path,
) -> None:
    """R70–R72: after each SIGKILL at a random point, every commit whose handler returned is
    in the space; `check` finds the database and its space agreeing (exit 0, after any repair a
    first use made); and the file holds exactly the rows a rebuild from the log makes — the
    same rowids, random() values and blobs."""
    store = tmp_path / "store"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rng = random.Random(20261203)
    returned: list[int] = []
    for kill in range(3):
        child = subprocess.Popen(
            [sys.executable, str(script), str(store), str(kill)],
            stdout=subprocess.PIPE,
            env=_env(),
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        lines = rng.randint(5, 40)
        for _ in range(lines):
            line = child.stdout.readline()
            assert line.startswith("seq "), line
            returned.append(int(line.split()[1]))
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # commits that returned before the signal landed
            returned.append(int(line.split()[1]))
        child.wait(timeout=30)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        rt, _space, db, counter = _open(store)
        with rt:
            assert db.read("SELECT count(*) AS n FROM ev") == [{"n": 0}]  # first use: R71 runs
            assert counter.get() >= max(returned)
        assert returned == sorted(set(returned))
    checked = _cli("check", str(store))
    assert checked.returncode == 0, checked.stdout
    rt, _space, db, counter = _open(store)
    with rt:
        rows = db.read(ROWS)
        last = counter.get()
        path = Path(db.path)
    assert last >= max(returned) and rows
    checkpointed(path)
    path.write_text("not a database\n" * 100)  # force a rebuild from the whole log
    assert _cli("check", "--repair", str(store)).returncode in (0, 1)
    rt, _space, db, counter = _open(store)
    with rt:
        assert db.read(ROWS) == rows
        assert counter.get() == last
    assert _cli("check", str(store)).returncode == 0


# -- R72, R73: the space's -wal deleted under a running writer ---------------------------------

_WAL_WRITER = textwrap.dedent(
    """
    import os, sys
    import sqlite_cells as sc
    TABLES = {"ev": sc.table(id="integer primary key", k="integer")}
    rt = sc.Runtime(sys.argv[1])
    space = rt.space("demo")
    db = space.sqlite_database("d", tables=TABLES)
    counter = space.cell("counter", default=0)

    @sc.handler
    def step(k: int) -> None:
        counter.update(lambda v: v + 1)
        db.exec("INSERT INTO ev (k) VALUES (?)", [k])

    for line in sys.stdin:
        try:
            os.write(1, f"seq {step(int(line))}\\n".encode())
        except sc.SqliteCellsError as exc:
            os.write(1, f"{type(exc).__name__} {exc.path}\\n".encode())
    """
)


class _Writer:
    """A writer process taking one handler call per line of input."""

    def __init__(self, script: Path, store: Path) -> None:
        self.child = subprocess.Popen(
            [sys.executable, str(script), str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_env(),
            text=True,
        )

    def ask(self, k: int) -> str:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(f"{k}\n")
        self.child.stdin.flush()
        return self.child.stdout.readline().strip()

    def end(self, *, kill: bool) -> None:
        assert self.child.stdin is not None and self.child.stdout is not None
        if kill:
            self.child.send_signal(signal.SIGKILL)
        self.child.stdin.close()
        self.child.wait(timeout=30)
        self.child.stdout.close()


def test_a_commit_after_the_spaces_wal_was_deleted_is_refused_not_lost_by_a_kill(
    tmp_path: Path,
) -> None:
    """R72, R73: the space's commits live in its -wal until a checkpoint; with the -wal deleted
    under a running writer, the next commit raises `StoreChanged` naming it, so no commit is
    acknowledged into a file a kill then loses (they were: `seq 3`, `seq 4` returned and the
    space read seq 0 after the kill). The database, written after the space in each commit, is
    never served ahead of its space."""
    store = tmp_path / "store"
    script = tmp_path / "writer.py"
    script.write_text(_WAL_WRITER)
    writer = _Writer(script, store)
    try:
        assert [writer.ask(1), writer.ask(2)] == ["seq 1", "seq 2"]
        wal = Path(f"{_space_path(store)}-wal")
        assert wal.stat().st_size > 0  # the two commits are there, not yet in the space file
        wal.unlink()
        assert [writer.ask(3), writer.ask(4)] == [f"StoreChanged {wal}"] * 2
    finally:
        writer.end(kill=True)
    rt, _space, db, counter = _open(store)
    with rt:
        assert counter.get() == 0  # the two commits before the deletion went with the -wal
        with pytest.raises(sc.Quarantined) as ahead:
            db.read("SELECT k FROM ev")
        assert (ahead.value.db_seq, ahead.value.space_seq) == (2, 0)


def test_a_commit_after_the_spaces_shm_was_deleted_never_overwrites_another_writers_commits(
    tmp_path: Path,
) -> None:
    """§2, R72, R73: the -shm keeps the writers of a space's -wal apart. With it deleted under a
    running writer A, a writer B started afterwards makes another one; A's next commits raise
    `StoreChanged` naming the -shm instead of taking seqs B took and writing over B's commits
    (before, both were told seq 3 and 4, and the space ended behind its database). Every
    commit that returned is kept, each seq once."""
    store = tmp_path / "store"
    script = tmp_path / "writer.py"
    script.write_text(_WAL_WRITER)
    a = _Writer(script, store)
    b: _Writer | None = None
    try:
        assert [a.ask(1), a.ask(2)] == ["seq 1", "seq 2"]
        shm = Path(f"{_space_path(store)}-shm")
        shm.unlink()
        b = _Writer(script, store)
        assert [b.ask(10), b.ask(11)] == ["seq 3", "seq 4"]
        assert [a.ask(3), a.ask(4)] == [f"StoreChanged {shm}"] * 2
        assert b.ask(12) == "seq 5"
    finally:
        a.end(kill=False)
        if b is not None:
            b.end(kill=False)
    rt, _space, db, counter = _open(store)
    with rt:
        assert counter.get() == 5
        assert [r["k"] for r in db.read("SELECT k FROM ev ORDER BY id")] == [1, 2, 10, 11, 12]
    assert _cli("check", str(store)).returncode == 0

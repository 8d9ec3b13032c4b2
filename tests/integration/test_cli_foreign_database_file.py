"""Another program's SQLite file at a database's path (SPEC §6, R71): `check` says the file is
not the database's, with a remedy that works (never "run --repair", which would refuse), and
`tables` does not list the foreign file's tables as the database's."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc

from ..conftest import run_cli

TABLES = {"messages": sc.table(id="integer primary key", body="text not null")}


@pytest.fixture
def foreign(store: Path) -> Path:
    """A store whose database file was replaced by another program's file."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        for body in ("hi", "yo"):
            with space.transact():
                db.exec("INSERT INTO messages (body) VALUES (?)", [body])
    (path,) = store.glob("cell-*.sqlite")
    os.remove(path)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE messages(x); INSERT INTO messages VALUES (1)")
    conn.close()
    return store


def test_check_says_the_file_is_not_the_databases_and_its_remedy_works(
    foreign: Path, tmp_path: Path
) -> None:
    (path,) = foreign.glob("cell-*.sqlite")
    for args in (["check"], ["check", "--repair"], ["check"]):
        done = run_cli(*args, "--store", str(foreign))
        assert done.returncode == 1, done.stdout
        assert ": quarantined (the file's tables differ from the declared ones" in done.stdout
        assert "is not this database's file" in done.stdout
        assert f"Move {path.name}" in done.stdout
        assert "run `sqlite-cells check --repair` to re-apply" not in done.stdout
    rows = json.loads(run_cli("check", "--store", str(foreign), "--json").stdout)
    assert [row["action"] for row in rows] == ["quarantined"]
    shutil.move(path, tmp_path / "kept.sqlite")  # what the advice says, then --repair
    repaired = run_cli("check", "--repair", "--store", str(foreign))
    assert repaired.returncode == 0, repaired.stdout
    assert "replayed, 2 commit(s) applied" in repaired.stdout
    assert run_cli("check", "--store", str(foreign)).returncode == 0


def test_tables_leaves_out_a_foreign_file_and_says_so(foreign: Path) -> None:
    done = run_cli("tables", "--store", str(foreign), "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout) == []
    assert "left out database" in done.stderr and "is not its file" in done.stderr
    assert "`sqlite-cells check` says what to do" in done.stderr
    text = run_cli("tables", "--store", str(foreign))
    assert (text.returncode, text.stdout) == (1, "(no tables listed)\n")


def test_inspect_says_a_file_without_a_watermark_is_no_runtimes(foreign: Path) -> None:
    done = run_cli("inspect", "--store", str(foreign))
    assert done.returncode == 1
    assert "None" not in done.stdout
    assert "holds no watermark, so no runtime wrote it" in done.stdout
    assert "a runtime reconciles it before its next use" not in done.stdout


def test_inspect_says_a_file_its_first_write_never_reached_is_behind(store: Path) -> None:
    """R71: a crash between the space's commit of a database's first write and the file's own
    leaves the file the attach created, with no tables. `check` says it is behind (watermark
    0) and a runtime replays the write; `inspect` said it held no watermark, "so no runtime
    wrote it (another program's file?)". It says it is behind, as `check` does."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('hi')")
    (path,) = store.glob("cell-*.sqlite")
    os.remove(path)
    conn = apsw.Connection(str(path))  # the file as its attach left it: WAL, no tables
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.close()
    done = run_cli("inspect", "--store", str(store))
    assert done.returncode == 1
    assert "watermark 0 but the space last wrote it at seq 1" in done.stdout
    assert "a runtime reconciles it before its next use" in done.stdout
    assert "no runtime wrote it" not in done.stdout
    checked = run_cli("check", "--store", str(store))
    assert "watermark 0, space seq 1: behind" in checked.stdout
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=TABLES)
        assert db.read("SELECT body FROM messages") == [{"body": "hi"}]
    assert run_cli("inspect", "--store", str(store)).returncode == 0


def test_another_spaces_database_file_copied_in_is_named_so_and_its_remedy_works(
    store: Path, tmp_path: Path
) -> None:
    """R71: a file copied over from another space's database (another id) records that space's
    commits. The reason given was only "a database of the same id declared in both spaces: give
    one another name", which fixes nothing here; it names both cases, and moving the file out
    then `--repair` rebuilds the database."""
    with sc.Runtime(store) as rt:
        first, second = rt.space("s"), rt.space("s2")
        mine = first.sqlite_database("a", tables=TABLES)
        theirs = second.sqlite_database("a", tables=TABLES)
        assert mine.id != theirs.id
        with first.transact():
            mine.exec("INSERT INTO messages (body) VALUES ('mine')")
        with second.transact():
            theirs.exec("INSERT INTO messages (body) VALUES ('theirs')")
        path, copied = mine.path, theirs.path
    shutil.copy(copied, path)  # (closed: each file holds its commits)
    done = run_cli("check", "--store", str(store))
    assert done.returncode == 1
    assert "either the file of one of that space's databases was put at this path" in done.stdout
    shutil.move(path, tmp_path / "kept.sqlite")
    assert run_cli("check", "--repair", "--store", str(store)).returncode == 0
    with sc.Runtime(store) as rt:
        db = rt.space("s").sqlite_database("a", tables=TABLES)
        assert db.read("SELECT body FROM messages") == [{"body": "mine"}]


def test_check_finds_a_file_in_sync_whose_writes_are_refused_and_says_why_as_a_write_does(
    store: Path,
) -> None:
    """A table and a trigger another program added to a database file in sync with its space:
    every write is refused (`UnsupportedMigration`), yet `check` said "in sync" (exit 0), and
    `check --repair` likewise. It is a finding, with the write's own reason and advice; nothing
    is changed, and the migrate it advises makes the file agree again."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('hi')")
    (path,) = store.glob("cell-*.sqlite")
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TABLE audit (x); CREATE TRIGGER tr AFTER INSERT ON messages "
        "BEGIN INSERT INTO audit VALUES (new.body); END"
    )
    conn.close()
    before = path.read_bytes()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        assert db.read("SELECT body FROM messages") == [{"body": "hi"}]
        with pytest.raises(sc.UnsupportedMigration) as refused, space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('yo')")
    assert path.read_bytes() == before
    for args in (["check"], ["check", "--repair"]):
        done = run_cli(*args, "--store", str(store))
        assert done.returncode == 1, done.stdout
        assert "watermark 1, space seq 1: writes refused" in done.stdout
        assert f"({refused.value})" in done.stdout  # the write's reason and advice, whole
        assert "audit: the stored table is not declared" in done.stdout
        assert "tr: the file holds a trigger that is not declared" in done.stdout
        assert (
            "nothing was changed" in done.stdout and "every write of it is refused" in done.stdout
        )
        assert path.read_bytes() == before
    rows = json.loads(run_cli("check", "--store", str(store), "--json").stdout)
    assert [row["action"] for row in rows] == ["writes refused"]

    def migrate(mc: sc.MigrationConnection, from_version: int) -> None:
        mc.execute("DROP TRIGGER tr")
        mc.execute("DROP TABLE audit")

    with sc.Runtime(store) as rt:  # what the advice says
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES, version=2, migrate=migrate)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('yo')")
    done = run_cli("check", "--store", str(store))
    assert done.returncode == 0, done.stdout
    assert "watermark 2, space seq 2: in sync" in done.stdout


def test_inspect_and_tables_report_a_file_whose_writes_are_refused_as_check_does(
    store: Path,
) -> None:
    """§6: a table another program added to a database file in sync with its space had three
    verdicts: `inspect` "in sync" (exit 0), `tables` "not its file" (untrue: it is), `check`
    "writes refused". `inspect` and `tables` now report it as `check` does: the write's own
    reason and what to do, exit 1; nothing is changed."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('hi')")
    (path,) = store.glob("cell-*.sqlite")
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE foreign_t (x)")
    conn.close()
    before = path.read_bytes()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        with pytest.raises(sc.UnsupportedMigration) as refused, space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('yo')")
    checked = run_cli("check", "--store", str(store))
    reason = f"watermark 1, space seq 1: writes refused ({refused.value})"
    assert checked.returncode == 1 and reason in checked.stdout
    advice = checked.stdout.splitlines()[1].strip()
    assert advice.startswith("nothing was changed, and `--repair` does not change it")

    inspected = run_cli("inspect", "--store", str(store))
    assert inspected.returncode == 1, inspected.stdout
    assert "(in sync)" not in inspected.stdout
    assert f"WRITES REFUSED: {refused.value}" in inspected.stdout
    (finding,) = [x for x in inspected.stdout.splitlines() if x.startswith("finding: ")]
    assert reason in finding and finding.endswith(advice)
    data = json.loads(run_cli("inspect", "--store", str(store), "--json").stdout)
    (found,) = data["spaces"][0]["databases"]
    assert (found["in_sync"], found["writes_refused"]) == (False, str(refused.value))

    listed = run_cli("tables", "--store", str(store))
    assert (listed.returncode, listed.stdout) == (1, "(no tables listed)\n")
    assert reason in listed.stderr and listed.stderr.rstrip("\n").endswith(advice)
    assert "not its file" not in listed.stderr
    assert path.read_bytes() == before


def test_a_file_a_kept_migration_brought_past_its_handle_is_no_finding(tmp_path: Path) -> None:
    """R14, §6: a `migrate` commits in the file before the write it ran for and stays when that
    write fails; the handle still records the older declaration. `check`, `inspect` and `tables`
    took the newer declaration's table for another program's ("writes refused … another program
    changed the file", advising a rebuild that would drop the migration), while the program's
    next write goes through. The file's version, past the one the space's last write recorded,
    says a migration made it so: no finding, and `tables` lists what the file holds."""
    store = tmp_path / "store"
    v1 = {"t": sc.table(id="integer primary key", v="text")}
    v2 = {**v1, "u": sc.table(id="integer primary key", w="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables=v1, version=1)
        with space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, 'a')")
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database(
            "db", tables=v2, version=2, migrate=lambda conn, _v: conn.execute("SELECT 1")
        )
        with pytest.raises(sc.ExecError), space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, 'dup')")  # fails; the migration stays
    for command in ("check", "inspect"):
        done = run_cli(command, str(store))
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "writes refused" not in done.stdout.lower(), command
    done = run_cli("tables", str(store), "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(row["table"] for row in json.loads(done.stdout)) == ["t", "u"]
    with sc.Runtime(store) as rt:  # the program's next write goes through
        space = rt.space("s")
        db = space.sqlite_database("db", tables=v2, version=2)
        with space.transact():
            db.exec("INSERT INTO u (w) VALUES ('x')")
        assert db.read("SELECT w FROM u") == [{"w": "x"}]


def test_query_of_a_column_a_kept_migration_renamed_makes_up_no_nulls(tmp_path: Path) -> None:
    """R14, R41, §6: a `migrate` renamed a column and stayed when the write it ran for failed;
    the handle still records the older tables. `query` took them at the file's version, as if
    the file were not yet migrated to them: the old column read as NULL on every row, and
    `SELECT *` listed it beside the renamed one. The file now reads as it is, and naming the
    old column fails saying both versions."""
    store = tmp_path / "store"
    key = "integer primary key"

    def rename(conn: Any, _from: int) -> None:
        conn.execute("ALTER TABLE t RENAME COLUMN a TO name")

    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("db", tables={"t": sc.table(id=key, a="text")})
        with space.transact():
            db.exec("INSERT INTO t (id, a) VALUES (1, 'x')")
        db = space.sqlite_database(
            "db", tables={"t": sc.table(id=key, name="text")}, version=2, migrate=rename
        )
        with pytest.raises(sc.ExecError), space.transact():
            db.exec("INSERT INTO t (id, name) VALUES (1, 'dup')")  # fails; the migration stays
    done = run_cli("query", str(store), "s", "db", "SELECT * FROM t", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"id": 1, "name": "x"}]
    done = run_cli("query", str(store), "s", "db", "SELECT a FROM t")
    assert done.returncode == 1, done.stdout
    assert "QueryError" in done.stderr
    assert "no such column: a" in done.stderr
    assert "the file is at version 2, newer than the declared version=1" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_whose_writes_are_refused_is_not_sent_to_a_rebuild_its_log_cannot_make(
    store: Path,
) -> None:
    """§6, R71: the advice for a file whose every write is refused said to move it out of the
    store and run `check --repair`, which rebuilds it from its space's log; after a compaction
    the log cannot, and following it left the database quarantined with no file. The advice now
    says not to move it (and why) whenever the log cannot rebuild it; the migrate it advises
    still works."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        for body in ("a", "b", "c"):
            with space.transact():
                db.exec("INSERT INTO messages (body) VALUES (?)", [body])
        space.file.compact_keep, space.file.keep_per_target = 1, 1
        assert space.file.compact() == 2
    (path,) = store.glob("cell-*.sqlite")
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE audit (x)")
    conn.close()
    cannot = (
        f"or undo it with another tool; do not move {path.name} out of the store: its space's "
        "log cannot rebuild it (the space's log was compacted"
    )
    for args in (["check"], ["check", "--repair"], ["inspect"]):
        done = run_cli(*args, "--store", str(store))
        assert done.returncode == 1, done.stdout
        assert "writes refused" in done.stdout.lower(), (args, done.stdout)
        assert cannot in done.stdout, (args, done.stdout)
        assert "then run `sqlite-cells check --repair`, which rebuilds" not in done.stdout
    listed = run_cli("tables", "--store", str(store))
    assert listed.returncode == 1 and cannot in listed.stderr, listed.stderr

    def migrate(mc: sc.MigrationConnection, from_version: int) -> None:
        mc.execute("DROP TABLE audit")

    with sc.Runtime(store) as rt:  # what the advice says
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES, version=2, migrate=migrate)
        with space.transact():
            db.exec("INSERT INTO messages (body) VALUES ('d')")
        assert [r["body"] for r in db.read("SELECT body FROM messages ORDER BY id")] == [
            "a",
            "b",
            "c",
            "d",
        ]
    done = run_cli("check", "--store", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout, done.stdout

"""The command line never serves what the library would refuse (SPEC §6, R60, R71): ``query``
compares a database with its space first, as a runtime's first look does, and reads nothing
from a database that is quarantined, damaged, behind or ahead of its space, or whose file is
missing; ``inspect`` reports a missing file; CSV output has its header without rows and
booleans as JSON writes them; the name ``inspect`` shows for an injected file is accepted back.
Each case runs the real command in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files import set_watermark

from ..conftest import run_cli

TABLES = {
    "m": sc.table(id="integer primary key", body="text", ts="integer", indexes={"by_ts": ["ts"]})
}
SQL = "SELECT body FROM m ORDER BY id"


def _query(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("query", str(store), "demo", "chat", SQL, *extra)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(root.rglob("*"))
    }


def _chat(store: Path, *bodies: str) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=TABLES)
        for n, body in enumerate(bodies):
            with space.transact():
                db.exec("INSERT INTO m (body, ts) VALUES (?, ?)", [body, n])
        return db.path


def _refused(store: Path, error: str, *words: str) -> str:
    """Run the query, which must be refused with ``error`` naming ``words``, change nothing in
    the store and print nothing on stdout; its message."""
    before = _tree(store)
    done = _query(store)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.startswith(f"sqlite-cells: {error}: "), done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    assert _tree(store) == before  # a query is a read: nothing repaired, nothing created
    return done.stderr


def _rows(store: Path) -> list[str]:
    done = _query(store, "--json")
    assert done.returncode == 0, done.stderr
    return [row["body"] for row in json.loads(done.stdout)["rows"]]


def test_a_quarantined_database_is_refused_as_the_library_refuses_it(store: Path) -> None:
    # The space file put back to a copy taken two commits ago: the database is ahead by two.
    _chat(store, "one")
    saved = {p.name: p.read_bytes() for p in store.glob("space-*")}
    _chat(store, "lost 0", "lost 1")
    for name, data in saved.items():
        for stale in store.glob(name + "*"):
            stale.unlink()
        (store / name).write_bytes(data)
    for argv in (["check", str(store)], ["check", str(store), "--repair"]):
        done = run_cli(*argv)
        assert done.returncode == 1 and "quarantined" in done.stdout
        _refused(store, "Quarantined", "is quarantined", "seq 3", "says 1", "`sqlite-cells check`")
    with sc.Runtime(store) as rt:
        db = rt.space("demo").sqlite_database("chat", tables=TABLES)
        with pytest.raises(sc.Quarantined) as caught:
            db.read(SQL)
    assert (caught.value.db_seq, caught.value.space_seq) == (3, 1)


def _smash_index(path: Path, index: str) -> None:
    """Overwrite the root page of ``index``: a read of the table alone does not meet it."""
    conn = apsw.Connection(str(path))
    ((root,),) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (index,))
    ((page_size,),) = conn.execute("PRAGMA page_size")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size + 8 : root * page_size] = b"\xde\xad\xbe\xef" * (
        (page_size - 8) // 4
    )
    path.write_bytes(bytes(data))


def test_a_damaged_file_is_refused_until_check_repair_rebuilds_it(store: Path) -> None:
    path = _chat(store, "one", "two")
    _smash_index(path, "by_ts")
    done = run_cli("inspect", str(store))
    assert done.returncode == 1 and "DAMAGED" in done.stdout
    message = _refused(store, "NeedsRepair", "is damaged (", "check --repair")
    assert "'chat'" in message and "_Damaged" not in message
    assert run_cli("check", str(store), "--repair").returncode == 0
    assert _rows(store) == ["one", "two"]


def test_a_database_behind_its_space_is_refused_with_what_to_run(store: Path) -> None:
    path = _chat(store, "one", "two", "three")
    # What a crash between the two files' commits leaves: the last commit missing from the file.
    conn = apsw.Connection(str(path))
    (seq,) = conn.execute("SELECT max(seq) FROM _cf_changes").fetchone()
    for (cs,) in conn.execute("SELECT changeset FROM _cf_changes WHERE seq = ?", (seq,)).fetchall():
        apsw.Changeset.apply(apsw.Changeset.invert(cs), conn)
    conn.execute("DELETE FROM _cf_changes WHERE seq = ?", (seq,))
    set_watermark(conn, seq - 1)
    conn.close()
    _refused(store, "NeedsRepair", "is behind its space", "seq 2", "seq 3", "check --repair`")
    assert run_cli("check", str(store), "--repair").returncode == 0
    assert _rows(store) == ["one", "two", "three"]


def test_a_database_ahead_by_the_commit_in_flight_is_refused(store: Path) -> None:
    path = _chat(store, "one")
    conn = apsw.Connection(str(path))
    conn.execute("INSERT INTO m (body, ts) VALUES ('in flight', 9)")
    conn.execute("INSERT INTO _cf_changes (seq, changeset) SELECT 2, changeset FROM _cf_changes")
    set_watermark(conn, 2)
    conn.close()
    _refused(store, "NeedsRepair", "is ahead of its space", "seq 2", "seq 1", "check --repair`")


def test_a_missing_file_is_a_finding_and_no_query_calls_it_never_written(store: Path) -> None:
    path = _chat(store, "one", "two")
    path.unlink()
    done = run_cli("inspect", str(store))
    assert done.returncode == 1
    assert "MISSING" in done.stdout and "finding: database " in done.stdout
    assert f"its file {path.name} is missing" in done.stdout
    done = run_cli("inspect", str(store), "--json")
    assert done.returncode == 1
    (database,) = json.loads(done.stdout)["spaces"][0]["databases"]
    assert (database["exists"], database["missing"], database["in_sync"]) == (False, True, False)
    message = _refused(store, "NeedsRepair", f"{path.name}", "is missing", "check --repair`")
    assert "never written" not in message
    assert run_cli("check", str(store), "--repair").returncode == 0
    assert _rows(store) == ["one", "two"]
    assert run_cli("inspect", str(store)).returncode == 0


def test_a_query_without_rows_prints_the_header_of_its_columns(store: Path) -> None:
    _chat(store, "one")
    sql = "SELECT id, body AS text FROM m WHERE ts > :after"
    done = run_cli("query", str(store), "demo", "chat", sql, "-p", "after", "5", "--csv")
    assert (done.returncode, done.stdout) == (0, "id,text\n"), done.stderr
    done = run_cli("query", str(store), "demo", "chat", sql, "-p", "after", "5")
    assert done.returncode == 0
    assert done.stdout.splitlines()[:3] == ["id  text", "--  ----", "(no rows)"]


def test_inspect_csv_writes_booleans_as_json_does(store: Path) -> None:
    _chat(store, "one")
    done = run_cli("inspect", str(store), "--csv")
    assert done.returncode == 0
    (row,) = csv.DictReader(io.StringIO(done.stdout))
    assert (row["in_sync"], row["dropped"], row["exists"]) == ("true", "false", "true")
    assert "True" not in done.stdout and "False" not in done.stdout


def test_the_name_inspect_shows_for_an_injected_file_is_accepted_by_query(
    store: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    reference = outside / "ref.db"
    conn = apsw.Connection(str(reference))
    conn.execute(
        "CREATE TABLE countries (code, name); INSERT INTO countries VALUES ('fr', 'France')"
    )
    conn.close()
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        handle = space.register_disk_source(str(reference))
        with space.transact():
            space.cell("note").set("a commit")
    done = run_cli("inspect", str(store))
    assert f"database 'ref.db' ({handle.id})" in done.stdout
    sql = "SELECT name FROM countries"
    for name in ("ref.db", str(reference.resolve()), handle.id):
        done = run_cli("query", str(store), "demo", name, sql, "--json")
        assert done.returncode == 0, (name, done.stderr)
        assert json.loads(done.stdout)["db_id"] == handle.id
        assert json.loads(done.stdout)["rows"] == [{"name": "France"}]
    # Two injected files of one name: the name alone is refused, saying what to give instead.
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(reference, other / "ref.db")
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        second = space.register_disk_source(str(other / "ref.db"))
        with space.transact():
            space.cell("note").set("another commit")
    done = run_cli("query", str(store), "demo", "ref.db", sql)
    assert done.returncode == 1 and "InspectError" in done.stderr
    assert handle.id in done.stderr and second.id in done.stderr and "absolute path" in done.stderr


def test_a_file_no_handle_of_the_space_names_is_not_read(store: Path) -> None:
    _chat(store, "one")
    with sc.Runtime(store) as rt:
        other = rt.space("other")
        with other.transact():
            other.cell("note").set("a space without databases")
    db_id = json.loads(run_cli("inspect", str(store), "--json").stdout)["spaces"][0]["databases"][
        0
    ]["id"]
    done = run_cli("query", str(store), "other", db_id, SQL)
    assert (done.returncode, done.stdout) == (1, "")
    assert "InspectError" in done.stderr and "no handle of this space names it" in done.stderr
    assert run_cli("query", str(store), "demo", db_id, SQL).returncode == 0


def test_a_handle_cell_that_holds_no_handle_is_quarantined_as_the_library_says(
    store: Path,
) -> None:
    _chat(store, "one")
    (space_file,) = store.glob("space-*.sqlite")
    db_id = json.loads(run_cli("inspect", str(store), "--json").stdout)["spaces"][0]["databases"][
        0
    ]["id"]
    conn = apsw.Connection(str(space_file))
    conn.execute("UPDATE _cf_cells SET value = ? WHERE id = ?", (b'"not a handle"', db_id))
    conn.close()
    done = run_cli("query", str(store), "demo", db_id, SQL)
    assert (done.returncode, done.stdout) == (1, "")
    # The value as the store holds it (JSON), not as a Python literal.
    assert "HandleQuarantined" in done.stderr
    assert 'its handle cell holds "not a handle", which' in done.stderr

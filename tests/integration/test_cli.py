"""The ``sqlite-cells`` command: demo, inspect, query (SPEC §6). Exit 0 / 1 finding / 2 usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.cli._cli import main
from sqlite_cells.codec import decode_record, derive_id
from sqlite_cells.files import set_watermark
from sqlite_cells.schema._declaration import db_file_name

from ..conftest import run_cli, written_once

ROOT = Path(__file__).resolve().parents[2]
CHAT_ID = derive_id("sqlite", "demo", "chat")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store the demo ran on once, through the command line in a subprocess."""
    store = tmp_path_factory.mktemp("demo") / "store"
    done = run_cli("demo", "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert "live query -> 3 row(s) at seq 4" in done.stdout
    assert "ExecError" in done.stdout and "posts is still 3" in done.stdout
    return store


def _last_seq_writing(store: Path, db_id: str) -> int:
    """The last seq of the demo space's log whose ops wrote ``db_id``, read from the log."""
    (space_file,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        records = [decode_record(bytes(r)) for (r,) in conn.execute("SELECT record FROM _cf_log")]
    finally:
        conn.close()
    return max(r.seq for r in records if any(op.target == db_id for op in r.ops))


def test_inspect_json_lists_the_demo_database_with_its_watermark(demo_store: Path) -> None:
    done = run_cli("inspect", str(demo_store), "--json")
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    assert info["store"] == str(demo_store.resolve())
    (space,) = info["spaces"]
    assert (space["id"], space["cells"], space["last_seq"]) == ("demo", 4, 5)
    (db,) = space["databases"]
    assert db["id"] == CHAT_ID and db["file"] == db_file_name(CHAT_ID)
    assert db["tables"] == [{"name": "messages", "rows": 3, "declared": True}]
    assert db["declared_tables"] == ["messages"]
    assert db["rev"] == 3  # three committed transactions wrote it
    # R70: the file's watermark is the space's last seq that wrote the database.
    assert db["watermark"] == db["last_write_seq"] == _last_seq_writing(demo_store, CHAT_ID) == 4
    assert db["in_sync"] is True
    assert info["findings"] == [] and info["unreferenced_files"] == []


def test_inspect_text(demo_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(demo_store)]) == 0
    out = capsys.readouterr().out
    assert "space 'demo' (space-" in out and "4 cell(s), last seq 5" in out
    assert f"database 'chat' ({CHAT_ID})" in out  # the store recorded its name
    assert "rev 3, last write at seq 4, watermark 4 (in sync)" in out
    assert "messages  3" in out


def test_inspect_uses_the_default_store(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SQLITE_CELLS_STORE", str(demo_store))
    assert main(["inspect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["store"] == str(demo_store.resolve())


def test_inspect_a_missing_store_is_a_finding_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["inspect", str(missing)]) == 1
    assert "no store at" in capsys.readouterr().err
    assert not missing.exists()
    assert main(["query", str(missing), "demo", "chat", "SELECT 1"]) == 1
    assert not missing.exists()


def test_inspect_reports_a_watermark_behind_its_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = apsw.Connection(str(written_once(tmp_path, "s", "d").path))
    try:
        set_watermark(conn, 0)
    finally:
        conn.close()
    assert main(["inspect", str(tmp_path), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    (dbinfo,) = info["spaces"][0]["databases"]
    assert (dbinfo["watermark"], dbinfo["last_write_seq"], dbinfo["in_sync"]) == (0, 1, False)
    (finding,) = info["findings"]
    assert "watermark 0 but the space last wrote it at seq 1" in finding


def test_query_prints_a_table(demo_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT id, body FROM messages WHERE id <= 2 ORDER BY id"
    assert main(["query", str(demo_store), "demo", "chat", sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "body"]
    assert lines[2] == "1   Hi Bob!"
    assert lines[3].startswith("2   Hi Alice.")
    assert lines[-1] == f"(2 row(s); database {CHAT_ID} at seq 4)"


def test_query_json_by_name_and_by_id(demo_store: Path) -> None:
    sql = "SELECT id, author_cf_link FROM messages ORDER BY id LIMIT 1"
    by_name = run_cli("query", str(demo_store), "demo", "chat", sql, "--json")
    assert by_name.returncode == 0, by_name.stderr
    result = json.loads(by_name.stdout)
    assert (result["space"], result["db_id"], result["seq"]) == ("demo", CHAT_ID, 4)
    (row,) = result["rows"]
    assert row["id"] == 1
    # A link shows as the cell it names and that cell's value, never as its stored JSON.
    assert row["author_cf_link"] == {
        "cell": derive_id("cell", "demo", "alice"),
        "space": "demo",
        "name": "alice",  # ids are one-way hashes: the store recorded the name at its first write
        "path": [],
        "value": {"name": "Alicia"},
    }
    by_id = run_cli("query", str(demo_store), "demo", CHAT_ID, sql, "--json")
    assert json.loads(by_id.stdout) == result


@pytest.mark.parametrize(
    "options_first",
    [
        ["--json"],
        ["-p", "n", "2"],
        ["--timeout", "3"],
        ["--json", "--timeout", "3", "-p", "n", "2"],
    ],
)
def test_query_options_may_stand_between_the_store_and_the_rest(
    demo_store: Path, options_first: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An option right after the positional STORE leaves SPACE, DB and SQL where they are."""
    sql = "SELECT id FROM messages WHERE id <= coalesce(:n, 2) ORDER BY id"
    given = ["-p", "n", "2"] if "-p" not in options_first else []
    assert main(["query", str(demo_store), *options_first, "demo", "chat", sql, *given]) == 0
    out = capsys.readouterr().out
    if "--json" in options_first:
        assert [row["id"] for row in json.loads(out)["rows"]] == [1, 2]
    else:
        assert out.splitlines()[-1] == f"(2 row(s); database {CHAT_ID} at seq 4)"


@pytest.mark.parametrize(
    ("space", "db", "sql", "message"),
    [
        ("demo", "chat", "SELECT * FROM _cf_watermark", "reserved-name at offset 14"),
        ("demo", "chat", "DELETE FROM messages", "not-read-only at offset 0"),
        ("demo", "chat", "SELECT 1; SELECT 2", "multiple-statements"),
        ("demo", "chat", "SELECT * FROM nope", "QueryError: database"),
        ("demo", "nochat", "SELECT 1", "InspectError: no file for database 'nochat'"),
        ("nospace", "chat", "SELECT 1", "InspectError: no space 'nospace'"),
    ],
)
def test_query_findings_exit_1(
    demo_store: Path,
    capsys: pytest.CaptureFixture[str],
    space: str,
    db: str,
    sql: str,
    message: str,
) -> None:
    assert main(["query", str(demo_store), space, db, sql]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_query_never_writes(demo_store: Path) -> None:
    # The guard refuses writes; the authorizer and the read-only connection would too.
    before = run_cli("query", str(demo_store), "demo", "chat", "SELECT count(*) AS n FROM messages")
    done = run_cli(
        "query", str(demo_store), "demo", "chat", "INSERT INTO messages (body) VALUES (1)"
    )
    after = run_cli("query", str(demo_store), "demo", "chat", "SELECT count(*) AS n FROM messages")
    assert done.returncode == 1 and "not-read-only" in done.stderr
    assert before.stdout == after.stdout and "3" in after.stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["inspect"],
        ["query"],
        ["tables"],
        ["schema"],
        ["cells"],
        ["check"],
        ["link"],
        ["gc"],
    ],
)
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sqlite-cells" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [[], ["frobnicate"], ["query", "store-only"], ["inspect", "--bogus"]]
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: sqlite-cells" in capsys.readouterr().err


def test_a_dropped_database_is_in_sync_in_every_format(tmp_path: Path) -> None:
    """R70, §6: `inspect --json/--csv` reported a dropped database `in_sync: false`, its drop's
    seq counted as its last write although the drop writes nothing into the file, while the
    exit status and the text said nothing was wrong. Its last write is the commit before the
    drop; once `gc --yes` removed its file it is in sync too (nothing is left to disagree)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("g")
        db = space.sqlite_database("b", tables={"t": sc.table(x="text")})
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES ('b')")
        with space.transact():
            db.drop()
    for removed in (False, True):
        done = run_cli("inspect", str(store), "--json")
        assert done.returncode == 0, done.stderr
        (found,) = json.loads(done.stdout)["spaces"][0]["databases"]
        shown = (found["dropped"], found["exists"], found["last_write_seq"], found["in_sync"])
        assert shown == (True, not removed, 1, True)
        if not removed:
            assert found["watermark"] == 1
        done = run_cli("inspect", str(store), "--csv")
        header, row = done.stdout.splitlines()
        assert done.returncode == 0 and row.split(",")[header.split(",").index("in_sync")] == "true"
        text = run_cli("inspect", str(store)).stdout
        assert "last write at seq 1" in text or removed
        assert run_cli("gc", str(store), "--yes").returncode == 0


def test_inspect_and_query_injected_and_dropped_databases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.db"
    conn = apsw.Connection(str(reference))
    try:
        conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)")
    finally:
        conn.close()
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        source = space.register_disk_source(str(reference))
        gone = space.sqlite_database("gone", tables={"t": sc.table(x="integer")})
        with space.transact():
            gone.exec("INSERT INTO t (x) VALUES (1)")
        with space.transact():
            gone.drop()
    assert main(["inspect", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    databases = {d["id"]: d for d in info["spaces"][0]["databases"]}
    injected = databases[source.id]
    assert (injected["kind"], injected["file"], injected["dropped"]) == (
        "disk",
        str(reference.resolve()),
        False,
    )
    assert injected["tables"] == [{"name": "t", "rows": 2, "declared": False}]
    assert (injected["watermark"], injected["in_sync"]) == (None, True)
    dropped = databases[gone.id]
    # A drop keeps the file until gc removes it (R74).
    assert (dropped["kind"], dropped["dropped"], dropped["exists"]) == ("cell", True, True)
    assert info["findings"] == [] and info["unreferenced_files"] == [gone.path.name]

    assert main(["query", str(store), "s", source.id, "SELECT sum(x) AS n FROM t", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [{"n": 3}]
    assert main(["query", str(store), "s", "gone", "SELECT 1"]) == 1
    assert "was dropped" in capsys.readouterr().err

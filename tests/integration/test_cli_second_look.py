"""The ``sqlite-cells`` command as a user drives it (SPEC §6, R71, R74, Errors): every case runs
the command as a real process, on real stores, and reads its exit status and streams."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.cli._demo import run_demo
from sqlite_cells.files import set_watermark

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "items": sc.table(id="integer primary key", owner_cf_link=sc.cf_link(), label="text", n="real")
}


def _cli(
    *args: str | bytes,
    stdin: int | None = subprocess.DEVNULL,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command of this checkout (``python -m sqlite_cells``) and check that it printed
    no traceback, whatever happened."""
    base = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    base["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        stdin=None if input_text is not None else stdin,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout
    return done


def _popen(*args: str) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "sqlite_cells", *args],
        env=base,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _files(store: Path) -> set[str]:
    return {p.name for p in store.iterdir()}


@pytest.fixture
def items(store: Path) -> Path:
    """Space ``s`` with cell ``alice`` and database ``items`` holding awkward values."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        alice = space.cell("alice", default=None)
        db = space.sqlite_database("items", tables=TABLES)
        with space.transact():
            alice.set({"name": "Alice"})
            db.exec(
                "INSERT INTO items (id, owner_cf_link, label, n) VALUES (?, ?, ?, ?)",
                [1, alice, 'a, "quoted"\nline', 1.5],
            )
            db.exec("INSERT INTO items (id, owner_cf_link, label, n) VALUES (2, NULL, NULL, 2)")
            db.exec("INSERT INTO items (id, label, n) VALUES (3, 'ünïcödé ✓', -0.25)")
    return store


# --- query: output exactness -------------------------------------------------------------


def test_csv_reads_back_as_the_rows_with_links_shown_by_what_they_name(items: Path) -> None:
    sql = "SELECT id, owner_cf_link AS owner, label, n FROM items ORDER BY id"
    done = _cli("query", str(items), "s", "items", sql, "--csv", "--name", "alice")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout, newline="")))
    assert rows[0] == ["id", "owner", "label", "n"]
    assert rows[2:] == [["2", "", "", "2.0"], ["3", "", "ünïcödé ✓", "-0.25"]]
    assert rows[1][0] == "1" and rows[1][2:] == ['a, "quoted"\nline', "1.5"]
    # The link shows the cell it names, never the stored JSON.
    assert "alice" in rows[1][1] and '"/"' not in rows[1][1] and "link@1" not in done.stdout


def test_json_and_ndjson_give_the_same_rows_with_null_and_unicode_exact(items: Path) -> None:
    sql = "SELECT id, label, n, x'00ff' AS b, owner_cf_link FROM items ORDER BY id"
    as_json = _cli("query", str(items), "s", "items", sql, "--json")
    as_lines = _cli("query", str(items), "s", "items", sql, "--ndjson")
    assert as_json.returncode == as_lines.returncode == 0
    rows = json.loads(as_json.stdout)["rows"]
    lines = as_lines.stdout.splitlines()
    assert len(lines) == 3 and [json.loads(line) for line in lines] == rows
    assert [r["label"] for r in rows] == ['a, "quoted"\nline', None, "ünïcödé ✓"]
    assert [r["n"] for r in rows] == [1.5, 2.0, -0.25]
    assert rows[1]["owner_cf_link"] is None
    owner = rows[0]["owner_cf_link"]
    assert owner["space"] == "s" and owner["value"] == {"name": "Alice"}
    assert owner["cell"].startswith("of:")
    blob = rows[0]["b"]
    assert blob != "\x00\xff" and "AP8=" in json.dumps(blob)  # a blob is tagged, never text


def test_parameters_are_bound_as_the_text_typed(items: Path) -> None:
    sql = "SELECT :a AS a, typeof(:a) AS t, :b AS b, typeof(:b) AS tb"
    done = _cli(
        "query", str(items), "s", "items", sql, "-p", "a", "12", "-p", "b", "1.5e3", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"a": "12", "t": "text", "b": "1.5e3", "tb": "text"}]
    # Compared with an integer column, SQLite's affinity makes the text match (as sqlite-utils).
    done = _cli(
        "query", str(items), "s", "items", "SELECT id FROM items WHERE id = ?", "-p", "1", "2"
    )
    assert done.returncode == 0 and done.stdout.splitlines()[2] == "2"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a.id, b.id FROM items a JOIN items b USING (id)",
        "SELECT 1 AS x, 2 AS x",
        "SELECT * FROM items a, items b",
    ],
)
@pytest.mark.parametrize("fmt", ["text", "--json", "--csv", "--ndjson", "--nl"])
def test_two_result_columns_of_one_name_are_refused_not_half_shown(
    items: Path, sql: str, fmt: str
) -> None:
    """A row shows one value per column name: the last of two same-named columns hid the first
    in every format (a text table or CSV with a column missing)."""
    done = _cli("query", str(items), "s", "items", sql, *([] if fmt == "text" else [fmt]))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("sqlite-cells: QueryError: ")
    assert "both named" in done.stderr and " AS " in done.stderr


def test_the_same_statement_with_distinct_names_shows_every_column(items: Path) -> None:
    sql = "SELECT a.id AS a_id, b.id AS b_id FROM items a JOIN items b USING (id) ORDER BY 1"
    done = _cli("query", str(items), "s", "items", sql, "--csv")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["a_id,b_id", "1,1", "2,2", "3,3"]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("DELETE FROM items", "not-read-only"),
        ("SELECT * FROM main.items", "schema-qualified"),
        ("PRAGMA table_info(items)", "forbidden-statement"),
        ("SELECT load_extension('x')", "forbidden-function"),
        ("SELECT 1; SELECT 2", "multiple-statements"),
        ("   ", "empty"),
    ],
)
def test_a_refused_statement_is_a_finding_naming_its_kind(items: Path, sql: str, kind: str) -> None:
    before = _files(items)
    done = _cli("query", str(items), "s", "items", sql)
    assert done.returncode == 1 and done.stdout == ""
    assert f"guard: {kind} at offset" in done.stderr
    assert _files(items) == before


def test_syntax_errors_and_unknown_tables_are_findings(items: Path) -> None:
    for sql in ("SELECT FROM WHERE", "SELECT nope FROM items", "SELECT * FROM nowhere"):
        done = _cli("query", str(items), "s", "items", sql)
        assert done.returncode == 1 and done.stdout == "", sql
        assert done.stderr.startswith("sqlite-cells: "), done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_a_space_or_database_that_does_not_exist_is_a_finding_and_creates_nothing(
    items: Path,
) -> None:
    before = _files(items)
    for space, db in (("nospace", "items"), ("s", "nodb"), ("s", "of:nothing")):
        done = _cli("query", str(items), space, db, "SELECT 1")
        assert done.returncode == 1 and done.stdout == ""
        assert "sqlite-cells: InspectError:" in done.stderr
    assert _files(items) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["query"],
        ["query", "s", "items"],
        ["query", "STORE", "s", "items", "SELECT :a", "-p", "a"],
        ["query", "STORE", "s", "items", "SELECT :a", "-p", "a", "1", "-p", "a", "2"],
        ["query", "STORE", "s", "items", "SELECT :a", "-p", "b", "1"],
        ["query", "STORE", "s", "items", "SELECT 1", "--frobnicate"],
        ["query", "STORE", "s", "items", "SELECT 1", "--timeout", "0"],
        ["query", "STORE", "s", "items", "SELECT 1", "--timeout", "soon"],
        ["query", "STORE", "s", "items", "SELECT 1", "--json", "--csv"],
        ["inspect", "STORE", "extra"],
        ["check", "STORE", "--yes"],
        ["gc", "STORE", "--repair"],
        ["link", "sqlite:/x.db", "s", "of:p"],
        ["link", "/x.db", "s", "of:p", "f", "--store", "STORE"],
        ["demo", "--json"],
    ],
)
def test_bad_usage_is_status_2_and_touches_nothing(items: Path, argv: list[str]) -> None:
    before = _files(items)
    done = _cli(*[str(items) if a == "STORE" else a for a in argv])
    assert done.returncode == 2, (argv, done.stderr)
    assert done.stdout == ""
    assert _files(items) == before


def test_arguments_that_are_not_utf8_or_huge_end_cleanly(items: Path) -> None:
    done = _cli("query", str(items), b"s\xff", "items", "SELECT 1")
    assert done.returncode == 2 and "not valid UTF-8" in done.stderr
    done = _cli("query", str(items), "s", "items", b"SELECT '\xfe'")
    assert done.returncode == 2 and "not valid UTF-8" in done.stderr
    big = "x" * 100_000  # one argument near the system's limit for one
    done = _cli("query", str(items), "s", "items", f"SELECT length('{big}') AS n", "--csv")
    assert done.returncode == 0 and done.stdout.splitlines() == ["n", "100000"]


# --- link ----------------------------------------------------------------------------------


@sc.pattern
def counter(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT count(*) AS n FROM t")


@pytest.fixture
def piece_store(store: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    reference = tmp_path / "reference.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)")
    conn.close()
    with sc.Runtime(store) as rt:
        piece = rt.space("s").run(counter, key="k")
        rt.settle()
    return store, piece.id, reference


@pytest.mark.parametrize("prefix", ["sqlite://", "sqlite:///", "sqlite:////"])
def test_link_refuses_a_url_with_a_host_part_and_writes_nothing(
    piece_store: tuple[Path, str, Path], prefix: str
) -> None:
    """``sqlite://tmp/x.db`` names a host ``tmp`` as a URL, and SQLAlchemy reads ``sqlite:///x``
    as a relative path: taken as a path, either linked another file than the user meant."""
    store, piece, reference = piece_store
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    url = prefix + str(reference).lstrip("/")
    done = _cli("link", url, "s", piece, "ref", "--store", str(store))
    assert done.returncode == 2 and done.stdout == ""
    assert "sqlite:/absolute/path" in done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == before


def test_link_with_its_field_left_out_says_how_the_four_arguments_were_read(
    piece_store: tuple[Path, str, Path],
) -> None:
    """§6: ``link STORE sqlite:… SPACE PIECE`` (FIELD left out) is bad usage: argparse takes the
    store for URL, and the error said the store path was no sqlite: URL. It says FIELD seems to
    be missing, as ``query`` says of its SQL."""
    store, piece, reference = piece_store
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    done = _cli("link", str(store), f"sqlite:{reference}", "s", piece)
    assert done.returncode == 2 and done.stdout == ""
    assert "only four arguments were given" in done.stderr
    assert "FIELD seems to be missing" in done.stderr
    assert "is not a sqlite:/absolute/path URL" not in done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == before


def test_link_with_the_specs_url_form_links_and_the_piece_reads_the_file(
    piece_store: tuple[Path, str, Path],
) -> None:
    store, piece, reference = piece_store
    done = _cli("link", f"sqlite:{reference}", "s", piece, "ref", "--store", str(store))
    assert done.returncode == 0, done.stderr
    with sc.Runtime(store) as rt:
        again = rt.space("s").run(counter, key="k")
        rt.settle()
        assert again.outputs.get().result == [{"n": 2}]


@pytest.mark.parametrize(
    "case", ["space", "piece", "field", "relative", "not-a-database", "missing-file", "store"]
)
def test_link_to_what_does_not_exist_exits_1_and_creates_nothing(
    piece_store: tuple[Path, str, Path], tmp_path: Path, case: str
) -> None:
    store, piece, reference = piece_store
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello")
    url, space, field, where = f"sqlite:{reference}", "s", "ref", store
    if case == "space":
        space = "elsewhere"
    elif case == "piece":
        piece = "of:" + "a" * 52
    elif case == "field":
        field = "nope"
    elif case == "relative":
        url = "sqlite:reference.db"
    elif case == "not-a-database":
        url = f"sqlite:{not_db}"
    elif case == "missing-file":
        url = f"sqlite:{tmp_path / 'gone.db'}"
    else:
        where = tmp_path / "no-store"
    outside = _files(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    done = _cli("link", url, space, piece, field, "--store", str(where), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr.startswith("sqlite-cells: ") and len(done.stderr.splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == before
    assert _files(tmp_path) == outside


# --- gc (R74) ------------------------------------------------------------------------------


def test_gc_removes_nothing_without_yes_whatever_stdin_says(items: Path) -> None:
    stray = items / ("cell-" + "f" * 32 + ".sqlite")
    stray.write_bytes(b"")
    kept = _files(items)
    for answer in ("y\n", "yes\n", ""):
        done = _cli("gc", str(items), input_text=answer)
        assert done.returncode == 0 and stray.name in done.stdout and "--yes" in done.stdout
        assert _files(items) == kept
    done = _cli("gc", str(items), stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and _files(items) == kept
    # Asked twice: only the file no handle names goes; the live database stays and reads.
    done = _cli("gc", str(items), "--yes", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {
        "removed": True,
        "files": [stray.name],
        "databases": [{"space": None, "file": stray.name, "name": None}],
    }
    assert _files(items) == kept - {stray.name}
    done = _cli("query", str(items), "s", "items", "SELECT count(*) AS n FROM items", "--csv")
    assert done.stdout.splitlines() == ["n", "3"]


def test_gc_offers_a_dropped_database_and_never_a_live_one(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        live = space.sqlite_database("live", tables=TABLES)
        gone = space.sqlite_database("gone", tables=TABLES)
        with space.transact():
            live.exec("INSERT INTO items (id) VALUES (1)")
        with space.transact():
            gone.exec("INSERT INTO items (id) VALUES (1)")
        with space.transact():
            gone.drop()
        live_file, gone_file = live.path.name, gone.path.name
    done = _cli("gc", str(store), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["files"] == [gone_file]
    assert (store / gone_file).exists()
    done = _cli("gc", str(store), "--yes")
    assert done.returncode == 0
    assert not (store / gone_file).exists() and (store / live_file).exists()
    assert _cli("check", str(store)).returncode == 0


# --- odd stores ----------------------------------------------------------------------------


def test_a_store_path_that_is_a_file_is_a_finding_for_every_command(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store")
    for argv in (
        ["inspect", str(a_file)],
        ["tables", str(a_file)],
        ["cells", str(a_file)],
        ["check", str(a_file), "--repair"],
        ["gc", str(a_file), "--yes"],
        ["query", str(a_file), "s", "d", "SELECT 1"],
        ["link", "sqlite:/x.db", "s", "of:p", "f", "--store", str(a_file)],
    ):
        done = _cli(*argv)
        assert done.returncode == 1 and str(a_file.name) in done.stderr, argv
        assert a_file.read_text() == "not a store"


def test_a_corrupt_database_file_is_named_by_every_command(items: Path) -> None:
    (db_file,) = items.glob("cell-*.sqlite")
    data = bytearray(db_file.read_bytes())
    data[100:4096] = b"\x55" * (4096 - 100)  # the schema page's body
    db_file.write_bytes(bytes(data))
    for argv, code in (
        (["inspect", str(items)], 1),
        (["check", str(items)], 1),
        (["query", str(items), "s", "items", "SELECT * FROM items"], 1),
        (["tables", str(items)], None),
        (["cells", str(items)], 0),
    ):
        done = _cli(*argv)
        assert done.returncode == code or code is None, (argv, done.stderr)
        assert done.returncode in (0, 1)
        if argv[0] in ("inspect", "check", "query"):
            assert (
                db_file.name in done.stdout + done.stderr
                or "damaged" in (done.stdout + done.stderr).lower()
            ), argv


@pytest.mark.parametrize("mode", ["NORMAL", "EXCLUSIVE"])
def test_a_database_file_another_process_is_writing_or_holds_locked(items: Path, mode: str) -> None:
    """A write in progress elsewhere never hides the committed rows (WAL); a file another
    process holds in exclusive locking mode is waited for until --timeout, then named."""
    (db_file,) = items.glob("cell-*.sqlite")
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import apsw, sys\n"
            "c = apsw.Connection(sys.argv[1])\n"
            f"c.execute('PRAGMA locking_mode={mode}')\n"
            "c.execute('BEGIN EXCLUSIVE; UPDATE items SET n = n + 1')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
            "c.execute('ROLLBACK')\n",
            str(db_file),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        sql = "SELECT n FROM items ORDER BY id"
        done = _cli("query", str(items), "s", "items", sql, "--timeout", "1", "--csv")
        if mode == "NORMAL":
            assert done.returncode == 0 and done.stdout.splitlines() == ["n", "1.5", "2.0", "-0.25"]
        else:
            assert done.returncode == 1 and done.stdout == ""
            assert done.stderr.startswith("sqlite-cells: ") and len(done.stderr.splitlines()) == 1
            assert "lock" in done.stderr
    finally:
        locker.communicate("", timeout=30)
    assert _cli("check", str(items)).returncode == 0


WRITER = """
import sys, sqlite_cells as sc
store, count = sys.argv[1], int(sys.argv[2])
with sc.Runtime(store) as rt:
    space = rt.space("s")
    db = space.sqlite_database("items", tables={
        "items": sc.table(id="integer primary key", owner_cf_link=sc.cf_link(), label="text",
                          n="real")})
    c = space.cell("counter", default=0)
    print("ready", flush=True)
    for i in range(count):
        with space.transact():
            c.set(i)
            db.exec("INSERT INTO items (label, n) VALUES (?, ?)", ["w", i])
"""


@pytest.fixture
def writer(items: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(items), "400"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    try:
        yield process
    finally:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err


def test_commands_that_look_while_another_process_writes(
    items: Path, writer: subprocess.Popen[str]
) -> None:
    rounds = 0
    while writer.poll() is None or rounds < 2:
        for argv in (
            ["inspect", str(items)],
            ["check", str(items)],
            ["cells", str(items), "--json"],
            ["tables", str(items)],
            ["query", str(items), "s", "items", "SELECT count(*) AS n FROM items", "--csv"],
        ):
            done = _cli(*argv)
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
        rounds += 1
    done = _cli("query", str(items), "s", "items", "SELECT count(*) AS n FROM items", "--csv")
    assert done.stdout.splitlines() == ["n", "403"]
    done = _cli("check", str(items))
    assert done.returncode == 0 and "in sync" in done.stdout


# --- Ctrl-C --------------------------------------------------------------------------------


def _wait_until_open(pid: int, path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            targets = {os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()}
        except (FileNotFoundError, ProcessLookupError):
            targets = set()
        if str(path) in targets:
            return
        time.sleep(0.002)
    raise AssertionError(f"process {pid} never opened {path}")


def _rewind(db_file: Path, commits: int) -> None:
    """Put the database file ``commits`` commits behind its space, as a crash between the two
    files' commits would (R71), by inverting its last changesets."""
    conn = apsw.Connection(str(db_file))
    with conn:
        rows = conn.execute(
            "SELECT changeset FROM _cf_changes ORDER BY seq DESC LIMIT ?", (commits,)
        ).fetchall()
        for (changeset,) in rows:
            apsw.Changeset.apply(apsw.Changeset.invert(changeset), conn)
        (seq,) = conn.execute("SELECT max(seq) FROM _cf_changes").fetchone()
        set_watermark(conn, seq - commits)
    conn.close()


def test_ctrl_c_during_check_repair_exits_130_and_a_later_repair_completes(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("items", tables=TABLES)
        for i in range(300):
            with space.transact():
                db.exec_many(
                    "INSERT INTO items (label) VALUES (?)", [[f"{i}-{j}"] for j in range(20)]
                )
        db_file = db.path
    _rewind(db_file, 300)
    process = _popen("check", str(store), "--repair")
    try:
        _wait_until_open(process.pid, db_file.resolve())
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert "Traceback" not in err
    assert process.returncode in (130, 0), err  # 0: the repair finished before the signal
    if process.returncode == 130:  # at once, or once the repair under way was made and said
        assert err.endswith("sqlite-cells: interrupted\n") or err.startswith(
            "sqlite-cells: interrupted once the repairs above were made; they are kept"
        )
    checked = _cli("check", str(store))
    assert checked.returncode in (0, 1)
    assert "quarantin" not in checked.stdout.lower() and "damaged" not in checked.stdout.lower()
    assert _cli("check", str(store), "--repair").returncode == 0
    done = _cli("check", str(store))
    assert done.returncode == 0 and "in sync" in done.stdout
    done = _cli("query", str(store), "s", "items", "SELECT count(*) AS n FROM items", "--csv")
    assert done.stdout.splitlines() == ["n", "6000"]


def test_demo_runs_to_its_end_and_continues_on_a_second_run(tmp_path: Path) -> None:
    first = _cli("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / ".sqlite-cells").is_dir()  # the default store
    second = _cli("demo", cwd=tmp_path)
    assert second.returncode == 0 and second.stdout != first.stdout
    # The first run renamed Alice to Alicia: the second labels her posts as her rows show her.
    assert "\nAlice: 'Hi Bob!' committed as seq" in first.stdout
    assert "\nAlicia: 'Hi Bob!' committed as seq" in second.stdout
    done = _cli("check", cwd=tmp_path)
    assert done.returncode == 0 and "in sync" in done.stdout


def test_the_demo_on_a_chat_whose_messages_were_deleted_says_it_continues(tmp_path: Path) -> None:
    """§6: the demo said "the database has no file yet; the first write creates it" of a chat
    database whose file exists and was written, when its messages had been deleted (it judged
    from the count of messages). It says so from whether the database was ever written."""
    store = tmp_path / "store"
    first = _cli("demo", str(store))
    assert first.returncode == 0, first.stderr
    assert "new chat: the database has no file yet; the first write creates it" in first.stdout
    from sqlite_cells.cli._demo import TABLES as CHAT

    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables=CHAT)
        with space.transact():
            db.exec("DELETE FROM messages")
        path = db.path
    assert path.is_file()
    second = _cli("demo", str(store))
    assert second.returncode == 0, second.stderr
    assert "continuing: the database already holds 0 messages (same ids, same file: R1)" in (
        second.stdout
    ), second.stdout
    assert "no file yet" not in second.stdout


def test_the_demo_on_a_store_holding_other_data_under_its_names_says_so(tmp_path: Path) -> None:
    """Errors: a `posts` cell holding text ended the demo with the catch-all "internal error"
    (a ValueError of `int()`), and a `chat` database of another schema printed "0 row(s)",
    hiding its live query's error. Both are `demo failed: …` naming what is there now, said
    before the demo's first step."""
    other, schema = tmp_path / "other", tmp_path / "schema"
    with sc.Runtime(other) as rt:
        space = rt.space("demo")
        with space.transact():
            space.cell("posts").set("many")
    with sc.Runtime(schema) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables={"messages": sc.table(text="text")})
        with space.transact():
            chat.exec("INSERT INTO messages (text) VALUES ('x')")
    for store, said in (
        (other, "demo failed: OtherData: cell 'posts' of space 'demo' holds 'many', not the"),
        (schema, "demo failed: OtherData: database 'chat' of space 'demo' has other tables"),
    ):
        out, err = io.StringIO(), io.StringIO()
        assert run_demo(str(store), out=out, err=err) == 1
        assert said in err.getvalue()
        assert "live query ->" not in out.getvalue()  # it fails before its first step


def test_the_demo_on_a_store_holding_other_data_writes_nothing_there(tmp_path: Path) -> None:
    """Errors: the demo wrote its users, messages and counter into another program's space
    `demo` (and its `chat` database) and only then failed. Every check of what the store holds
    under the demo's names runs before its first commit: it fails at once, naming what it found
    and saying to use another store, and the store is as it was."""
    cases = {
        "posts": ("cell 'posts' of space 'demo' holds 'hello', not the demo's count of posts"),
        "chat": (
            "database 'chat' of space 'demo' has other tables: messages(id, body), not the "
            "demo's messages(id, author_cf_link, body, ts)"
        ),
        "alice": "cell 'alice' of space 'demo' holds 5, not one of the demo's users",
    }
    for case, said in cases.items():
        store = tmp_path / case
        with sc.Runtime(store) as rt:
            space = rt.space("demo")
            if case == "chat":
                chat = space.sqlite_database(
                    "chat", tables={"messages": sc.table(id="text primary key", body="blob")}
                )
                with space.transact():
                    chat.exec("INSERT INTO messages (id, body) VALUES ('x', 'y')")
            else:
                with space.transact():
                    space.cell(case).set("hello" if case == "posts" else 5)
        before = (_cli("cells", str(store)).stdout, _cli("tables", str(store)).stdout)
        files = _files(store)
        done = _cli("demo", str(store))
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"sqlite-cells: demo failed: OtherData: {said}" in done.stderr
        assert "nothing was written" in done.stderr and "run the demo on another store" in (
            done.stderr
        )
        assert "committed" not in done.stdout
        assert (_cli("cells", str(store)).stdout, _cli("tables", str(store)).stdout) == before
        assert _files(store) == files


def test_ctrl_c_during_the_demo_exits_130_and_leaves_the_store_consistent(tmp_path: Path) -> None:
    store = tmp_path / "st"
    process = _popen("demo", "--store", str(store))
    try:
        deadline = time.monotonic() + 60
        while not list(store.glob("space-*.sqlite")) and time.monotonic() < deadline:
            time.sleep(0.002)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert "Traceback" not in err
    assert process.returncode in (130, 0), err
    done = _cli("check", str(store))
    assert done.returncode == 0, done.stdout + done.stderr


# --- the store, given the same way to every command -----------------------------------------


def test_the_environment_store_reaches_every_command(items: Path, tmp_path: Path) -> None:
    env = {"SQLITE_CELLS_STORE": str(items)}
    for argv in (
        ["inspect"],
        ["tables"],
        ["cells"],
        ["check"],
        ["gc"],
        ["query", "s", "items", "SELECT count(*) AS n FROM items"],
    ):
        done = _cli(*argv, env=env, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        by_option = _cli(*argv[:1], "--store", str(items), *argv[1:], cwd=tmp_path)
        assert by_option.stdout == done.stdout, argv
    assert not (tmp_path / ".sqlite-cells").exists()


# --- check of files no space names ---------------------------------------------------------


def test_check_reports_an_unreadable_orphan_without_a_watermark_or_space_seq(
    store: Path,
) -> None:
    """A database file no space names has no space seq and no id to show; one that cannot be
    read holds no watermark (``inspect`` says "unreadable"): ``check`` said "watermark 0, space
    seq 0", values the file and the store do not hold."""
    (store / "space-x.sqlite").write_bytes(b"junk" * 100)  # a damaged space file
    (store / "cell-y.sqlite").write_bytes(b"junk" * 100)
    done = _cli("check", str(store), "--json")
    assert done.returncode == 1
    (orphan,) = [row for row in json.loads(done.stdout) if row["action"] == "orphaned"]
    assert (orphan["db"], orphan["file"], orphan["watermark"], orphan["space_seq"]) == (
        None,
        "cell-y.sqlite",
        None,
        None,
    )
    text = _cli("check", str(store)).stdout
    assert "orphaned database file cell-y.sqlite: watermark unreadable (" in text
    assert "space seq 0" not in text and "watermark 0" not in text
    shown = json.loads(_cli("inspect", str(store), "--json").stdout)["orphaned_files"]
    assert shown == [{"file": "cell-y.sqlite", "watermark": None}]


def test_check_reports_a_readable_orphan_with_its_own_watermark(items: Path) -> None:
    (space_file,) = items.glob("space-*.sqlite")
    space_file.unlink()
    for extra in items.glob("space-*"):
        extra.unlink()
    done = _cli("check", str(items), "--json")
    assert done.returncode == 1
    (orphan,) = json.loads(done.stdout)
    assert (orphan["action"], orphan["watermark"], orphan["space_seq"], orphan["db"]) == (
        "orphaned",
        1,  # the fixture's one commit
        None,
        None,
    )


# --- numbered parameters the statement skips -------------------------------------------------


def test_a_numbered_parameter_binds_alone_and_a_skipped_number_is_not_asked_for(
    items: Path,
) -> None:
    """``?2`` alone uses parameter 2 only: ``-p 2 v`` is all it takes (SQLite leaves the unused
    number 1 unbound), and ``-p 1 v`` is a parameter the statement does not use."""
    done = _cli("query", str(items), "s", "items", "SELECT ?2 AS v", "-p", "2", "x", "--csv")
    assert (done.returncode, done.stdout.splitlines()) == (0, ["v", "x"]), done.stderr
    sql = "SELECT ?1 AS a, ?3 AS b"
    done = _cli("query", str(items), "s", "items", sql, "-p", "1", "x", "-p", "3", "y", "--csv")
    assert (done.returncode, done.stdout.splitlines()) == (0, ["a,b", "x,y"]), done.stderr
    done = _cli("query", str(items), "s", "items", "SELECT ?2 AS v", "-p", "1", "z", "-p", "2", "x")
    assert done.returncode == 2 and done.stdout == ""
    assert "-p 1: the statement has no parameter 1" in done.stderr and "-p 2 VALUE" in done.stderr
    done = _cli("query", str(items), "s", "items", sql, "-p", "1", "x")
    assert done.returncode == 2 and "parameter 3" in done.stderr and "-p 3 VALUE" in done.stderr


# --- links inside values name their path ------------------------------------------------------


def test_a_link_to_a_path_inside_a_cell_keeps_its_path_in_every_format(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        a, b = space.cell("a", default=None), space.cell("b", default=None)
        with space.transact():
            a.set({"x": [7, 8]})
            b.set({"whole": a, "part": a.key("x").key(1)})
        a_id, b_id = a.id, b.id
    done = _cli("cells", str(store), "--json", "--name", "a")
    assert done.returncode == 0
    (row,) = [r for r in json.loads(done.stdout) if r["id"] == b_id]
    assert row["value"]["whole"] == {"cell": a_id, "space": "s", "name": "a", "path": []}
    assert row["value"]["part"] == {"cell": a_id, "space": "s", "name": "a", "path": ["x", 1]}
    lines = [json.loads(line) for line in _cli("cells", str(store), "--ndjson").stdout.splitlines()]
    (row,) = [r for r in lines if r["id"] == b_id]
    assert row["value"]["part"]["path"] == ["x", 1] and row["value"]["whole"]["path"] == []
    text = _cli("cells", str(store), "--name", "a").stdout
    assert "→ a.x[1]" in text and '"/"' not in text


def test_check_names_each_database_as_inspect_does(tmp_path: Path) -> None:
    """§6: `check` listed databases by id alone, where `inspect` names them: a line now starts
    with the database's name and its space's (in the text output; the rows of --json and --csv
    are unchanged)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"t": sc.table(a="integer")})
        with space.transact():
            db.exec("INSERT INTO t (a) VALUES (1)")
        db_id = db.id
    done = _cli("check", str(store))
    assert done.returncode == 0, done.stderr
    assert f"database 'chat' of space 'demo', {db_id} (cell-" in done.stdout
    assert "watermark 1, space seq 1: in sync" in done.stdout
    done = _cli("check", str(store), "--json")
    assert [row["db"] for row in json.loads(done.stdout)] == [db_id]


def test_the_demo_on_a_chat_file_of_a_newer_version_writes_nothing_there(tmp_path: Path) -> None:
    """Errors: another program declared the demo's own tables at version=2: the handle records
    the demo's tables, so the demo committed its users and failed at its first post with
    UnsupportedMigration. The file is looked at as the first write will find it (its stored
    version too) before the first commit: OtherData, exit 1, nothing written."""
    from sqlite_cells.cli._demo import TABLES as DEMO_TABLES

    store = tmp_path / "st"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables=DEMO_TABLES, version=2)
        with space.transact():
            chat.exec("INSERT INTO messages (body, ts) VALUES ('mine', 1)")
    before = (_cli("cells", str(store)).stdout, _cli("tables", str(store)).stdout)
    files = _files(store)
    done = _cli("demo", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "sqlite-cells: demo failed: OtherData: database 'chat' of space 'demo' has a file that "
        "refuses the demo's writes"
    ) in done.stderr
    assert "the file is at version 2, newer than the declared version=1" in done.stderr
    assert "nothing was written" in done.stderr and "run the demo on another store" in done.stderr
    assert "committed" not in done.stdout
    assert (_cli("cells", str(store)).stdout, _cli("tables", str(store)).stdout) == before
    assert _files(store) == files
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert [space.cell(key).get() for key in ("alice", "bob", "posts")] == [None] * 3
        assert space.sqlite_database("chat", tables=DEMO_TABLES, version=2).read(
            "SELECT body FROM messages"
        ) == [{"body": "mine"}]


def test_the_demo_on_a_chat_whose_ids_reach_the_largest_writes_nothing_there(
    tmp_path: Path,
) -> None:
    """Errors: another program's rows of the demo's own schema at the top of SQLite's id range
    gave the demo's posts random ids, none of them among the latest its live query shows, and
    the demo ended in an internal error after committing its posts. Such rows are refused
    before the first commit: OtherData, exit 1, nothing written."""
    from sqlite_cells.cli._demo import TABLES as DEMO_TABLES

    largest = 2**63 - 1
    store = tmp_path / "st"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        chat = space.sqlite_database("chat", tables=DEMO_TABLES)
        with space.transact():
            chat.exec_many(
                "INSERT INTO messages (id, body, ts) VALUES (?, ?, 0)",
                [[largest - i, f"mine {i}"] for i in range(5)],
            )
    before = (_cli("cells", str(store)).stdout, _cli("tables", str(store)).stdout)
    files = _files(store)
    done = _cli("demo", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "sqlite-cells: demo failed: OtherData: database 'chat' of space 'demo' holds a message "
        f"of id {largest}, too near the largest id SQLite allows"
    ) in done.stderr
    assert "internal error" not in done.stderr
    assert "nothing was written" in done.stderr and "run the demo on another store" in done.stderr
    assert "committed" not in done.stdout
    assert (_cli("cells", str(store)).stdout, _cli("tables", str(store)).stdout) == before
    assert _files(store) == files
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert [space.cell(key).get() for key in ("alice", "bob", "posts")] == [None] * 3


def test_the_demo_renames_alice_when_other_posts_pushed_hers_out_of_its_live_query(
    tmp_path: Path,
) -> None:
    """Another writer's five posts, committed between the demo's posts and its rename step,
    left none of Alice's messages among the five its live query shows: the rename step ended
    the demo with a raw StopIteration. It finds her latest message further back; with none of
    hers left at all (deleted meanwhile), it says so (OtherData) instead."""
    from sqlite_cells.cli._demo import INSERT, OtherData, _Chat

    with sc.Runtime(tmp_path / "st") as rt:
        out = io.StringIO()
        chat = _Chat(rt, out)
        chat.post_conversation()  # Alice's last post is message #3
        with chat.space.transact():  # the other writer
            for i in range(5):
                chat.db.exec(INSERT, [chat.users["bob"], f"other #{i}", 100 + i])
        rt.settle()
        assert [m.id for m in chat.latest.get().result or []] == [8, 7, 6, 5, 4]
        chat.rename_an_author()
        assert chat.row_id == 3 and chat.run.names_seen == ["Alice", "Alicia"]
        assert "author cell of message #3 (decoded from its link) saw: ['Alice', 'Alicia']" in (
            out.getvalue()
        )
        assert chat.users["alice"].get() == {"name": "Alicia"}
        chat.roll_back_a_write()  # the duplicate of #3 still collides
        assert "UNIQUE constraint failed" in chat.run.rollback_error
        assert chat.finish().messages == 8

        with chat.space.transact():
            alice = chat.users["alice"].link_str()
            chat.db.exec("DELETE FROM messages WHERE author_cf_link = ?", [alice])
        with pytest.raises(OtherData, match="none of Alice's messages is left in database 'chat'"):
            chat.rename_an_author()
        assert chat.users["alice"].get() == {"name": "Alicia"}  # no rename committed

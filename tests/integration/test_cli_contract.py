"""The ``sqlite-cells`` command driven as a user drives it (SPEC §6): real subprocesses of
``python -m sqlite_cells`` on stores made with the public API. Exit 0 success, 1 a finding,
2 bad usage, 130 Ctrl-C; never a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _command(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The command's output as it wrote it (no newline translation: a ``\\r`` stays one)."""
    done = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", *args],
        env=_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(done.args, done.returncode, out, err)


def _store_with_text(store: Path, *texts: str) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database(
            "notes", tables={"t": sc.table(id="integer primary key", v="text")}
        )
        with space.transact():
            db.exec_many("INSERT INTO t (v) VALUES (?)", [[text] for text in texts])


def test_csv_quotes_a_carriage_return_so_the_record_reads_back_whole(tmp_path: Path) -> None:
    store = tmp_path / "store"
    texts = ["bare\rreturn", "crlf\r\ninside", 'comma, "quote"', "plain"]
    _store_with_text(store, *texts)
    done = _command(
        "query", str(store), "demo", "notes", 'SELECT id, v AS "a\rb" FROM t ORDER BY id', "--csv"
    )
    assert done.returncode == 0, done.stderr
    records = list(csv.reader(io.StringIO(done.stdout, newline="")))
    assert records == [["id", "a\rb"]] + [[str(n), text] for n, text in enumerate(texts, 1)]


@pytest.mark.parametrize(
    ("command", "option"),
    [("cells", "--name"), ("tables", "--name"), ("query", "--name"), ("cells", "--space")],
)
def test_a_name_that_is_not_utf8_is_bad_usage_like_every_other_argument(
    tmp_path: Path, command: str, option: str
) -> None:
    store = tmp_path / "store"
    _store_with_text(store, "x")
    rest = ["demo", "notes", "SELECT v FROM t"] if command == "query" else []
    done = _command(command, str(store), *rest, option, os.fsdecode(b"not\xffutf8"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{option} 'not\\\\xffutf8' is not valid UTF-8" in done.stderr
    assert done.stdout == ""


def test_non_ascii_arguments_under_a_c_locale_without_utf8_mode_are_read_as_utf8(
    tmp_path: Path,
) -> None:
    """``LC_ALL=C PYTHONUTF8=0``: Python decodes the arguments as ASCII and keeps each other
    byte as a lone surrogate; the UTF-8 text the shell passed is what the command reads."""
    store = tmp_path / "store"
    space_id, db_name, table, column = "caf\u00e9\U0001f600", "d\u00e9b", "t\u00e2ble", "c\u00f6l"
    with sc.Runtime(store) as rt:
        space = rt.space(space_id)
        with space.transact():
            space.cell("na\u00efve", default=0).set(1)
        db = space.sqlite_database(db_name, tables={table: sc.table({column: "text"})})
        with space.transact():
            db.exec(f'INSERT INTO "{table}" ("{column}") VALUES (?)', ["\U0001d518"])
    env = {**_env(), "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"}
    env.pop("PYTHONCOERCECLOCALE", None)
    sql = f'SELECT "{column}" AS v FROM "{table}" WHERE "{column}" <> :p'
    base = [sys.executable, "-m", "sqlite_cells", "--json"]
    args = [*base, "query", str(store), space_id, db_name, sql, "-p", "p", "\u00e9"]
    done = subprocess.run(
        [os.fsencode(a) for a in args], env=env, capture_output=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["rows"] == [{"v": "\U0001d518"}]
    args = [*base, "cells", str(store), "--space", space_id, "--name", "na\u00efve"]
    done = subprocess.run(
        [os.fsencode(a) for a in args], env=env, capture_output=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    rows = json.loads(done.stdout)
    assert {row["space"] for row in rows} == {space_id}
    assert {row["name"] for row in rows if row["kind"] == "cell"} == {"na\u00efve"}


def test_demo_on_a_store_that_is_a_file_says_so_once(tmp_path: Path) -> None:
    a_file = tmp_path / "store"
    a_file.write_text("not a directory")
    done = _command("demo", "--store", str(a_file))
    assert done.returncode == 1
    assert done.stderr == (
        f"sqlite-cells: demo failed: StorePathError: the store {a_file} is a file, not a "
        "directory: give the directory that holds the space-*.sqlite files (or a path where one "
        "may be created)\n"
    )
    assert a_file.read_text() == "not a directory"


WRITE_LOCK_HOLDER = """
import sys
import apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")  # the space's write lock; readers go on (WAL)
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
"""


@sc.pattern
def _counts(ref: sc.SqliteDb) -> sc.Query[dict[str, int]]:
    return ref.query("SELECT count(*) AS n FROM things")


def _piece_store(tmp_path: Path) -> tuple[Path, str, Path]:
    """A store whose space ``demo`` ran ``_counts`` once, its piece id, and a file to link."""
    reference = tmp_path / "things.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x)")
    conn.close()
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        piece = rt.space("demo").run(_counts, key="k")
        rt.settle()
    return store, piece.id, reference


@pytest.mark.parametrize("ctrl_c", [False, True], ids=["waits-once", "ctrl-c"])
def test_link_waits_for_the_space_write_lock_boundedly_and_ctrl_c_ends_the_wait(
    tmp_path: Path, ctrl_c: bool
) -> None:
    store, piece_id, reference = _piece_store(tmp_path)
    (space_file,) = store.glob("space-*.sqlite")
    before = space_file.read_bytes()
    with subprocess.Popen(
        [sys.executable, "-c", WRITE_LOCK_HOLDER, str(space_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sqlite_cells",
                    "link",
                    f"sqlite:{reference}",
                    "demo",
                    piece_id,
                    "ref",
                    "--store",
                    str(store),
                ],
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            if ctrl_c:
                time.sleep(2)  # into its wait for the write lock
                process.send_signal(signal.SIGINT)
            try:
                # SQLite's own busy timeout held the command 30 s, deaf to Ctrl-C.
                out, err = process.communicate(timeout=15)
            finally:
                process.kill()
                process.wait()
        finally:
            holder.kill()
    if ctrl_c:
        assert (process.returncode, err) == (130, b"sqlite-cells: interrupted\n")
    else:
        assert process.returncode == 1, err
        # Opening the space reads it (no lock); the link's commit is what waits, and gives up.
        assert b"waited for the write lock of the space file" in err and b"try again" in err
    assert out == b""
    assert b"Traceback" not in err
    assert space_file.read_bytes() == before  # nothing linked, nothing registered
    done = _command("cells", str(store), "--json")
    assert done.returncode == 0 and "disk source" not in done.stdout


def test_a_reader_gone_in_the_middle_of_a_text_table_gives_status_1(tmp_path: Path) -> None:
    """`sqlite-cells cells | head -1`: the text table is one write far larger than a pipe
    holds; the reader goes away after its first line. Status 1 and no message, as in every
    other format, never 0 with the output cut short (an unbuffered stream took the part the
    pipe had taken in for the whole)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        with space.transact():
            for n in range(3000):
                space.cell(f"c{n}").set("x" * 200)
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlite_cells", "cells", str(store)],
        env={**_env(), "PYTHONUNBUFFERED": "1"},  # as some users' shells run it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().split() == [
        b"space",
        b"name",
        b"id",
        b"kind",
        b"rev",
        b"value",
    ]
    process.stdout.close()
    assert process.wait(timeout=120) == 1
    assert process.stderr.read() == b""
    process.stderr.close()


def test_query_of_an_ordinary_cell_says_it_is_no_database_not_quarantined(tmp_path: Path) -> None:
    """A cell's id (a value, a piece) given as DB is a user's slip, not a damaged handle (R5
    quarantines a database whose handle no longer decodes): nothing to restore from a backup."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        counter = space.cell("counter", default=0)
        with space.transact():
            counter.set(5)
        piece = space.run(_counts, key="k")
        rt.settle()
    done = _command("query", str(store), "demo", counter.id, "SELECT 1")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"sqlite-cells: InspectError: {counter.id} names a cell of space 'demo', not a "
        "database: `sqlite-cells cells` lists each cell with its kind; give a database's "
        "name or id\n"
    )
    # A piece's id is taken as its name is: the advice says which names to give instead.
    done = _command("query", str(store), "demo", piece.id, "SELECT 1")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(
        f"sqlite-cells: InspectError: {piece.id!r} names a piece of space 'demo' ("
    ) and "), not a database: `sqlite-cells link sqlite:/abs/path.db demo " in (done.stderr)
    # By its name, as a database is named: it was "no file for database 'counter' … never
    # written", advice that led nowhere.
    done = _command("query", str(store), "demo", "counter", "SELECT 1")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"sqlite-cells: InspectError: 'counter' names a cell of space 'demo' ({counter.id}), "
        "not a database: `sqlite-cells cells` lists each cell with its kind; give a "
        "database's name or id\n"
    )


def test_file_names_and_paths_the_store_holds_cannot_break_a_line_of_text_output(
    tmp_path: Path,
) -> None:
    """A registered file's path and a stray file's name are text another program chose: in
    `inspect` and `gc` they are written with their control characters escaped, as the text
    tables write values, so they neither break the line nor reach the terminal as ESC."""
    store, piece_id, _ = _piece_store(tmp_path)
    odd = tmp_path / "we\nird\x1b[31m.db"
    apsw.Connection(str(odd)).execute("CREATE TABLE things (x)")
    done = _command("link", f"sqlite:{odd}", "demo", piece_id, "ref", "--store", str(store))
    assert done.returncode == 0, done.stderr
    stray = store / "cell-\x1b[2Jstray\n.sqlite"
    apsw.Connection(str(stray)).execute("CREATE TABLE t (x)")
    inspected = _command("inspect", str(store))
    assert f"    file {tmp_path}/we\\nird\\x1b[31m.db: rev 0" in inspected.stdout
    assert "unreferenced database file cell-\\x1b[2Jstray\\n.sqlite (" in inspected.stdout
    listed = _command("gc", str(store))
    assert listed.returncode == 0
    assert "would remove cell-\\x1b[2Jstray\\n.sqlite\n" in listed.stdout
    for done in (inspected, listed):
        assert "\x1b" not in done.stdout
        assert all(line.isprintable() for line in done.stdout.splitlines())


def test_a_parameter_value_that_starts_with_a_dash_is_bound_as_typed(tmp_path: Path) -> None:
    """`-p NAME VALUE` takes the two words after it as they are, as sqlite-utils does: a value
    such as `-abc` or `--` is text to bind, not an option."""
    store = tmp_path / "store"
    _store_with_text(store, "-abc", "--", "-1")
    sql = "SELECT id FROM t WHERE v IN (:a, :b, :c) ORDER BY id"
    done = _command(
        "query", str(store), "demo", "notes", sql, "-p", "a", "-abc", "-p", "b", "--",
        "-p", "c", "-1", "--ndjson",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"id":1}\n{"id":2}\n{"id":3}\n'


@pytest.mark.parametrize("through_a_link", [False, True], ids=["named", "linked-to"])
def test_link_of_a_file_whose_name_is_not_utf8_is_refused_naming_the_rule(
    tmp_path: Path, through_a_link: bool
) -> None:
    """The file exists, but SQLite opens files by their UTF-8 names: `link` refuses it as the
    library does (rule `exists`), never as an internal error, and writes nothing."""
    store, piece_id, reference = _piece_store(tmp_path)
    odd = os.fsdecode(bytes(tmp_path) + b"/not\xffutf8.db")
    os.rename(reference, odd)
    given = odd
    if through_a_link:
        given = str(tmp_path / "plain.db")
        os.symlink(odd, given)
    (space_file,) = store.glob("space-*.sqlite")
    before = space_file.read_bytes()
    done = _command("link", f"sqlite:{given}", "demo", piece_id, "ref", "--store", str(store))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"sqlite-cells: DiskSourceError: exists: {given!r}: "), (
        done.stderr
    )
    assert "is not valid Unicode text (a lone surrogate at position" in done.stderr
    assert "rename the file" in done.stderr
    assert space_file.read_bytes() == before
    assert sorted(p.name for p in store.iterdir()) == [space_file.name]
    # Another command has no -p: refused as typed.
    refused = _command("inspect", str(store), "-p", "a", "-abc")
    assert refused.returncode == 2
    assert refused.stderr.endswith("error: unrecognized arguments: -p a -abc\n")


def test_csv_has_its_header_for_an_empty_store_too(tmp_path: Path) -> None:
    """`--csv` is one header line, then one line per row: with no row, the header alone, the
    same one a store with rows gets."""
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    with sc.Runtime(full) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")
    for command in ("inspect", "tables", "check", "cells", "gc"):
        (header,) = _command(command, str(empty), "--csv").stdout.splitlines()
        lines = _command(command, str(full), "--csv").stdout.splitlines()
        assert len(header.split(",")) > 2, (command, header)
        if command != "gc":  # (gc lists nothing in either store)
            assert len(lines) == 2 and lines[0] == header, (command, lines)


def test_a_link_is_named_by_its_own_space_not_by_another_space_with_the_same_id(
    tmp_path: Path,
) -> None:
    """A name derives an id within one space (R1): the cell of space "a" named "alice" and the
    cell of the same id in space "b" (reached through a link whose space was edited) are two
    cells; only the first is shown as "alice", with its own value."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        a, b = rt.space("a"), rt.space("b")
        alice = a.cell("alice")
        same_id_in_b = sc.Cell(b, alice.id)
        db = a.sqlite_database("chat", tables={"m": sc.table(who_cf_link=sc.cf_link())})
        with b.transact():
            same_id_in_b.set("not alice")
        with a.transact():
            alice.set("Alice")
            db.exec_many("INSERT INTO m (who_cf_link) VALUES (?)", [[alice], [same_id_in_b]])
    done = _command(
        "--ndjson", "query", "--name", "alice", str(store), "a", "chat", "SELECT who_cf_link FROM m"
    )
    assert done.returncode == 0, done.stderr
    shown = [json.loads(line)["who_cf_link"] for line in done.stdout.splitlines()]
    assert [(s["space"], s["name"], s["value"]) for s in shown] == [
        ("a", "alice", "Alice"),
        ("b", None, "not alice"),
    ]


def test_demo_and_link_take_the_store_as_the_positional_store_too(tmp_path: Path) -> None:
    """§6: "The store is given the same way to every command": `demo STORE` and `link STORE URL
    SPACE PIECE FIELD` as `inspect STORE`; a positional STORE and `--store` naming two
    directories are bad usage, and nothing is written then."""
    store, piece_id, reference = _piece_store(tmp_path)
    (space_file,) = store.glob("space-*.sqlite")
    before = space_file.read_bytes()
    other = tmp_path / "other"
    url = f"sqlite:{reference}"
    refused = _command("link", str(other), url, "demo", piece_id, "ref", "--store", str(store))
    assert refused.returncode == 2
    assert "two stores given" in refused.stderr
    assert space_file.read_bytes() == before and not other.exists()
    done = _command("link", str(store), url, "demo", piece_id, "ref")
    assert done.returncode == 0, done.stderr
    listed = _command("cells", str(store), "--json")
    assert str(reference) in listed.stdout
    chat = tmp_path / "chat"
    shown = _command("demo", str(chat))
    assert shown.returncode == 0, shown.stderr
    assert "done: 3 messages" in shown.stdout
    assert sorted(p.name.split("-")[0] for p in chat.glob("*.sqlite")) == ["cell", "space"]


def test_a_database_named_like_an_id_is_found_by_its_name_and_by_its_id(tmp_path: Path) -> None:
    """§6: a DB argument beginning with `of:` was taken as an id only, so a database named
    `of:notes` could not be named (the answer: "never written"). An id the space holds is still
    taken as given; else the database of that name, if the space holds one."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database("of:notes", tables={"t": sc.table(v="text")})
        with space.transact():
            db.exec("INSERT INTO t VALUES ('hello')")
        db_id = db.id
    for given in ("of:notes", db_id):
        done = _command("query", str(store), "s", given, "--json", "SELECT v FROM t")
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert (answer["db_id"], answer["rows"]) == (db_id, [{"v": "hello"}])
    done = _command("query", str(store), "s", "of:nothing", "SELECT 1")
    assert done.returncode == 1 and "of:nothing" in done.stderr and "Traceback" not in done.stderr

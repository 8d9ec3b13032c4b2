"""Large results on the command line (SPEC §6): a text table with a value of megabytes stays a
readable table whose size grows with its rows, and a query with a link column names its links
through one connection per space file, however many rows it prints, and keeps few files open,
however many spaces it links into."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sqlite_cells as sc
import sqlite_cells.cli._inspect as inspect_module
from sqlite_cells.cli._cli import main

from ..conftest import run_cli, run_cli_limited

HUGE = 5_000_000
LONG = 100_000  # long enough: 300 lines of it, uncut, are 30 MB
WIDEST_CELL = 1_000  # terminal columns a text table shows of one value
CELL_CHARACTERS_PER_COLUMN = 4  # and at most 4 characters a column (combining marks take none)
NOTE = "(--json, --csv or --ndjson print it whole)"


@pytest.fixture
def rows(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("t", tables={"t": sc.table(id="integer primary key", v="text")})
        with space.transact():
            db.exec_many("INSERT INTO t (v) VALUES (?)", [(f"row {n}",) for n in range(300)])
            space.cell("big").set("y" * LONG)
            for n in range(300):
                space.cell(f"c{n}").set(n)
    return store


def test_a_value_of_megabytes_is_cut_in_the_text_table_and_says_where_it_is_whole(
    rows: Path,
) -> None:
    sql = f"SELECT printf('%.*c', {HUGE}, 'x') AS v"
    done = run_cli("query", str(rows), "demo", "t", sql)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) < 3 * WIDEST_CELL  # the line, its rule and the summary
    header, rule, line, summary = done.stdout.splitlines()
    assert header == "v"
    assert line == "x" * WIDEST_CELL + f"…[cut: {HUGE:,} characters] {NOTE}"
    assert rule == "-" * len(line)
    assert summary.startswith("(1 row(s); database ")
    for fmt in ("--json", "--csv", "--ndjson"):  # the note says true: they print it whole
        done = run_cli("query", str(rows), "demo", "t", sql, fmt)
        assert done.returncode == 0, done.stderr
        assert "x" * HUGE in done.stdout and "cut:" not in done.stdout


def test_one_long_value_pads_no_row_past_the_widest_cell(rows: Path) -> None:
    """Every row is padded to its columns' widths: one value of 20 MB made each line of 5,000
    cells 20 MB long (189 s) before the cut."""
    sql = f"SELECT id, iif(id = 7, printf('%.*c', {LONG}, 'x'), v) AS v, 'end' AS z FROM t"
    done = run_cli("query", str(rows), "demo", "t", sql)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 + 300 + 1
    widest = 3 + 2 + WIDEST_CELL + len(f"…[cut: {LONG:,} characters] {NOTE}") + 2 + 3
    assert max(len(line) for line in lines) == widest
    cut = "x" * WIDEST_CELL + f"…[cut: {LONG:,} characters] {NOTE}"
    assert lines[2 + 6] == f"7    {cut}  end"
    assert lines[2].split() == ["1", "row", "0", "end"]
    done = run_cli("cells", str(rows))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 + 302  # 300 small cells, the big one and the database's
    assert max(len(line) for line in lines) < 2 * WIDEST_CELL
    (big,) = [line for line in lines if line.split()[1] == "big"]
    # (A string value is listed as JSON text, in quotes: two characters more.)
    assert big.endswith('"' + "y" * (WIDEST_CELL - 1) + f"…[cut: {LONG + 2:,} characters] {NOTE}")


def test_a_value_as_wide_as_the_widest_cell_is_shown_whole(rows: Path) -> None:
    for length, cut in ((WIDEST_CELL, False), (WIDEST_CELL + 1, True)):
        done = run_cli("query", str(rows), "demo", "t", f"SELECT printf('%.*c', {length}, 'x')")
        assert done.returncode == 0, done.stderr
        line = done.stdout.splitlines()[2]
        assert line.startswith("x" * WIDEST_CELL)
        assert line == (
            "x" * WIDEST_CELL + f"…[cut: {length:,} characters] {NOTE}" if cut else "x" * length
        )
    # a wide character takes two columns: 600 of them are cut at 500
    done = run_cli("query", str(rows), "demo", "t", "SELECT printf('%.*c', 600, '漢') AS v")
    assert done.stdout.splitlines()[2] == "漢" * 500 + f"…[cut: 600 characters] {NOTE}"
    # text shown as a literal is cut after its escapes, still in quotes at its start
    sql = "SELECT replace(printf('%.*c', 600, 'x'), 'x', char(10)) AS v"
    done = run_cli("query", str(rows), "demo", "t", sql)
    assert done.stdout.splitlines()[2] == "'" + "\\n" * 499 + "\\…[cut: 600 characters] " + NOTE


def _shown(store: Path, sql: str) -> str:
    """The one value ``sql`` selects, as the text table's line shows it."""
    done = run_cli("query", str(store), "demo", "t", sql)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[2]


def test_a_cell_is_cut_by_its_columns_not_its_characters(rows: Path) -> None:
    """A combining mark takes no column: a value of 1,000 columns and 1,001 characters, or of
    one column and 1,201 characters, was cut after its 1,000th character."""
    marks = "replace(printf('%.*c', {}, 'x'), 'x', char(769))"  # U+0301, combining acute
    accents = f"printf('%.*c', {WIDEST_CELL}, 'é') || char(769)"
    assert _shown(rows, f"SELECT {accents}") == "é" * WIDEST_CELL + "\u0301"
    assert _shown(rows, f"SELECT 'e' || {marks.format(1200)}") == "e" + "\u0301" * 1200
    # past the widest cell: cut after the last column that fits, its marks kept with it
    sql = f"SELECT printf('%.*c', {WIDEST_CELL}, 'x') || {marks.format(5)} || 'y'"
    assert _shown(rows, sql) == (
        "x" * WIDEST_CELL + "\u0301" * 5 + f"…[cut: {WIDEST_CELL + 6:,} characters] {NOTE}"
    )


def test_a_cell_of_one_column_is_cut_by_its_characters(rows: Path) -> None:
    """Five million combining marks on one letter are one column wide: the whole value was
    printed (5 MB on one line of the table). A cell shows at most four characters a column."""
    most = CELL_CHARACTERS_PER_COLUMN * WIDEST_CELL
    sql = "SELECT 'e' || replace(printf('%.*c', 5000000, 'x'), 'x', char(769))"
    assert _shown(rows, sql) == (
        "e" + "\u0301" * (most - 1) + f"…[cut: 5,000,001 characters] {NOTE}"
    )
    # up to the bound, whole
    sql = f"SELECT 'e' || replace(printf('%.*c', {most - 1}, 'x'), 'x', char(769))"
    assert _shown(rows, sql) == "e" + "\u0301" * (most - 1)


def test_a_long_text_is_a_literal_wherever_its_control_character_is(rows: Path) -> None:
    """Only the text's first 1,000 characters were looked at: a newline after them printed the
    text unquoted (and cut), as if it were the text itself."""
    sql = "SELECT printf('%.*c', 1200, 'z') || char(10)"
    assert _shown(rows, sql) == "'" + "z" * 999 + f"…[cut: 1,201 characters] {NOTE}"
    sql = "SELECT printf('%.*c', 500, 'z') || char(10)"  # short enough: whole, in quotes
    assert _shown(rows, sql) == "'" + "z" * 500 + "\\n'"


@pytest.fixture
def linked(store: Path) -> Path:
    """Rows 1..200, row N linking cell ``pN`` (each a cell of its own) in a column of links."""
    with sc.Runtime(store) as rt:
        space = rt.space("s")
        db = space.sqlite_database(
            "d", tables={"r": sc.table(id="integer primary key", who_cf_link=sc.cf_link())}
        )
        with space.transact():
            people = [space.cell(f"p{n}") for n in range(1, 201)]
            for n, person in enumerate(people, 1):
                person.set({"n": n})
            db.exec_many(
                "INSERT INTO r (id, who_cf_link) VALUES (?, ?)", list(enumerate(people, 1))
            )
    return store


@pytest.mark.parametrize("fmt", ["text", "--json", "--csv", "--ndjson"])
def test_naming_links_opens_each_space_file_once_however_many_rows(
    linked: Path,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each link value opened the space file anew (two connections a row with --ndjson and
    --csv): 20,000 rows took 14 s before their first line, past `--timeout 1`."""
    opened: list[Path] = []
    real = inspect_module.open_unwritable

    def counted(path: Path, *args: object) -> object:
        opened.append(path)
        return real(path, *args)

    monkeypatch.setattr(inspect_module, "open_unwritable", counted)

    def opens(sql: str) -> tuple[int, str]:
        opened.clear()
        assert main(["query", str(linked), "s", "d", sql, *([] if fmt == "text" else [fmt])]) == 0
        return len(opened), capsys.readouterr().out

    without_links, _ = opens("SELECT id FROM r ORDER BY id")
    for limit in (2, 200):
        count, out = opens(f"SELECT id, who_cf_link AS who FROM r ORDER BY id LIMIT {limit}")
        # the link column adds two: one to read the names the space tells, one its values
        assert count == without_links + 2, (limit, count, without_links)
        if fmt == "text":
            last = out.splitlines()[2 + limit - 1]
            assert last.split() == [str(limit), "→", f"p{limit}", f'{{"n":{limit}}}']
        elif fmt == "--csv":
            assert out.splitlines()[limit] == f'{limit},"→ p{limit} {{""n"":{limit}}}"'
        else:
            rows = json.loads(out)["rows"] if fmt == "--json" else map(json.loads, out.splitlines())
            assert [row["who"]["name"] for row in rows] == [f"p{n}" for n in range(1, limit + 1)]


SPACES = 100
OPEN_FILES = 128  # the query's few files and 16 kept space files fit; 100 space files do not


@pytest.fixture
def many_spaces(store: Path) -> Path:
    """Spaces ``sp0``..``sp99``, each with cells ``a`` and ``b``, and rows linking every ``a``
    then every ``b``: each space is opened, left for the others, then read again."""
    with sc.Runtime(store) as rt:
        main_space = rt.space("main")
        db = main_space.sqlite_database(
            "d", tables={"t": sc.table(id="integer primary key", who_cf_link=sc.cf_link())}
        )
        cells: dict[str, list[sc.Cell]] = {"a": [], "b": []}
        for n in range(SPACES):
            space = rt.space(f"sp{n}")
            with space.transact():
                for name, column in cells.items():
                    column.append(space.cell(name))
                    column[-1].set({"n": n, "cell": name})
        with main_space.transact():
            db.exec_many(
                "INSERT INTO t (who_cf_link) VALUES (?)", [(c,) for c in cells["a"] + cells["b"]]
            )
    return store


@pytest.mark.parametrize("fmt", ["text", "--ndjson"])
def test_a_query_linking_into_many_spaces_holds_few_files_open(many_spaces: Path, fmt: str) -> None:
    """One connection (the file, its -wal and -shm) was kept per linked space until the output
    was printed: 400 spaces failed under the usual limit of 1,024 open files, with "unable to
    open database file" and nothing printed."""
    limited = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({OPEN_FILES}, {OPEN_FILES})); "
        "sys.argv[0] = 'sqlite-cells'; runpy.run_module('sqlite_cells', run_name='__main__')"
    )
    sql = "SELECT id, who_cf_link AS who FROM t ORDER BY id"
    args = [str(many_spaces), "main", "d", sql, *([] if fmt == "text" else [fmt])]
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    done = subprocess.run(
        [sys.executable, "-c", limited, "query", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = [(n, name) for name in ("a", "b") for n in range(SPACES)]
    if fmt == "text":
        lines = done.stdout.splitlines()[2:-1]
        # `1  → a (in space 'sp0') {"n":0,…}`: the linked cell, its space (not the query's),
        # its value
        shown = [json.loads(line.split(maxsplit=6)[6]) for line in lines]
        assert [line.split()[:6] for line in lines] == [
            [str(row), "→", name, "(in", "space", f"'sp{n}')"]
            for row, (n, name) in enumerate(expected, 1)
        ]
    else:
        shown = [json.loads(line)["who"]["value"] for line in done.stdout.splitlines()]
    assert shown == [{"n": n, "cell": name} for n, name in expected]


def test_a_result_too_large_for_memory_says_so(tmp_path: Path) -> None:
    """Errors, §6: a query whose whole result does not fit in the process's memory (the text
    table reads it whole, in one read transaction, before it is printed; the other formats
    print rows as they are read: `test_cli_streamed_output`) is a finding that says what to do,
    not an "internal error, please report it"."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1)")
    rows = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) "
        "SELECT x, printf('%040d', x) AS s FROM c"
    )
    command = ["query", "--timeout", "120", str(store), "a", "d", rows]
    done = run_cli_limited("RLIMIT_AS", 700 << 20, *command)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("sqlite-cells: the command ran out of memory"), done.stderr
    assert "LIMIT" in done.stderr and "internal error" not in done.stderr

"""The text table `query` prints by default (SPEC §6): a stored value cannot drive the terminal
or break the table's rows, the text ``NULL`` reads apart from SQL NULL, a parameter given twice
is bad usage, and `inspect` says when a database file has no watermark."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import termios
from pathlib import Path

import pytest

import sqlite_cells as sc

from ..conftest import COMMAND, run_cli

TEXTS = ["\x1b]0;owned\x07\x1b[2J", "a\nb", "NULL", None, "'quoted'", "C:\\x", "plain"]


@pytest.fixture
def texts(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("t", tables={"t": sc.table(id="integer primary key", v="text")})
        with space.transact():
            db.exec_many("INSERT INTO t (id, v) VALUES (?, ?)", list(enumerate(TEXTS)))
    return store


def test_the_text_table_escapes_what_a_terminal_acts_on_and_quotes_ambiguous_text(
    texts: Path,
) -> None:
    done = run_cli("query", str(texts), "demo", "t", "SELECT v FROM t ORDER BY id")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "v"
    assert [line.rstrip() for line in lines[2:9]] == [
        "'\\x1b]0;owned\\x07\\x1b[2J'",
        "'a\\nb'",
        "'NULL'",
        "NULL",
        "'\\'quoted\\''",
        "C:\\x",
        "plain",
    ]
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout


def test_a_column_name_with_control_characters_is_escaped(texts: Path) -> None:
    done = run_cli("query", str(texts), "demo", "t", 'SELECT 1 AS "a\x1b[2Jb"')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "a\\x1b[2Jb"


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT :a AS a", ["-p", "a", "1", "-p", "a", "2"]),
        ("SELECT :a AS a", ["-p", "a", "1", "-p", ":a", "2"]),
        ("SELECT ? AS a", ["-p", "1", "x", "-p", "01", "y"]),
    ],
)
def test_a_parameter_given_twice_is_bad_usage(texts: Path, sql: str, params: list[str]) -> None:
    done = run_cli("query", str(texts), "demo", "t", sql, *params)
    assert done.returncode == 2, done.stdout
    assert "given twice" in done.stderr and done.stdout == ""


def test_inspect_never_prints_python_none_for_an_unreadable_database_file(texts: Path) -> None:
    (path,) = [p for p in texts.iterdir() if p.name.startswith("cell-") and p.suffix == ".sqlite"]
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    done = run_cli("inspect", "--store", str(texts))
    assert "None" not in done.stdout, done.stdout
    assert "no watermark, DAMAGED" in done.stdout


def test_an_error_line_escapes_the_stored_text_and_the_arguments_it_quotes(texts: Path) -> None:
    """stderr is the terminal too: SQLite's message quotes the bad JSON path a row holds, and a
    usage error the argument as given; each is escaped as the text table escapes it."""
    sql = "SELECT json_extract('{}', v) FROM t WHERE id = 0"
    done = run_cli("query", str(texts), "demo", "t", sql)
    assert done.returncode == 1
    assert "bad JSON path: '\\x1b]0;owned\\x07\\x1b[2J' (SQLite's SQLITE_ERROR)" in done.stderr
    assert done.stderr.startswith("sqlite-cells: QueryError: ")
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    done = run_cli("query", str(texts), "demo", "t", "SELECT :a", "-p", "\x1b[2J", "1")
    assert done.returncode == 2
    assert done.stderr == (
        "sqlite-cells: -p '\\x1b[2J': the statement has no parameter ':\\x1b[2J' (it uses :a)\n"
    )
    done = run_cli("inspect", str(texts), "\x1b]0;owned\x07")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: sqlite-cells")
    assert done.stderr.endswith("error: unrecognized arguments: \\x1b]0;owned\\x07\n")


def test_the_text_table_aligns_wide_and_combining_characters_by_terminal_columns(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("t", tables={"t": sc.table(id="integer primary key", v="text")})
        with space.transact():
            db.exec_many(
                "INSERT INTO t (v) VALUES (?)",
                [["abcdefghij"], ["漢字テスト"], ["😀😀"], ["e\u0301e\u0301"]],
            )
    done = run_cli("query", str(store), "demo", "t", "SELECT v, 'END' AS z FROM t ORDER BY id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:6] == [
        "v           z",
        "----------  ---",
        "abcdefghij  END",
        "漢字テスト  END",  # five characters two columns wide each
        "😀😀        END",
        "e\u0301e\u0301          END",  # the accents take no column
    ]


def test_a_store_path_holding_a_newline_is_escaped_in_the_error_line(tmp_path: Path) -> None:
    """Errors: the error line escaped a path's ESC but printed its newline as it was, so a
    store path could start a second line reading as the command's own (`sqlite-cells: store
    OK`); so could an argument argparse quotes in a usage error. Every error is one line, with
    a newline written `\\n` as text output writes it."""
    forged = tmp_path / "x\nsqlite-cells: store OK, 0 findings\x1b[31m"
    for args in (["inspect", str(forged)], ["query", str(forged), "s", "d", "SELECT 1"]):
        done = run_cli(*args)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
        assert done.stderr.startswith("sqlite-cells: InspectError: no store at ")
        assert "x\\nsqlite-cells: store OK, 0 findings\\x1b[31m" in done.stderr
    done = run_cli("inspect", str(tmp_path), "a\nsqlite-cells: store OK")  # a usage error
    assert done.returncode == 2
    assert done.stderr.endswith("error: unrecognized arguments: a\\nsqlite-cells: store OK\n")


C1_TEXT = "\x9b2J\x9d0;owned\x9c\x7f"  # CSI, OSC and ST as single characters (C1), and DEL


@pytest.mark.parametrize("fmt", ["--json", "--ndjson"])
def test_json_escapes_the_c1_controls_and_del_and_reads_back_the_same(
    store: Path, fmt: str
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("t", tables={"t": sc.table(v="text")})
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (?)", [C1_TEXT])
    done = run_cli("query", str(store), "demo", "t", "SELECT v FROM t", fmt)
    assert done.returncode == 0, done.stderr
    assert not any(0x7F <= ord(c) <= 0x9F for c in done.stdout)
    rows = json.loads(done.stdout)["rows"] if fmt == "--json" else [json.loads(done.stdout)]
    assert rows == [{"v": C1_TEXT}]


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the command with its standard output a terminal (a pseudo-terminal): its status and
    what it wrote there, the terminal's own line ends (``\\r\\n``) made ``\\n`` again."""
    main, child = pty.openpty()
    attrs = termios.tcgetattr(child)
    attrs[1] &= ~termios.ONLCR  # the terminal writes each byte as it came
    termios.tcsetattr(child, termios.TCSANOW, attrs)
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    with subprocess.Popen(
        [str(COMMAND), *args], env=env, stdout=child, stderr=subprocess.PIPE
    ) as process:
        os.close(child)
        written = bytearray()
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            written += chunk
        _, err = process.communicate(timeout=120)
    os.close(main)
    assert b"Traceback" not in err, err
    return process.returncode, written.decode()


def test_csv_on_a_terminal_escapes_what_a_terminal_acts_on(texts: Path) -> None:
    sql = "SELECT v, char(155) || '2J' AS \"c\x1b[2J\" FROM t WHERE id IN (0, 1) ORDER BY id"
    status, written = _on_a_terminal("query", str(texts), "demo", "t", sql, "--csv")
    assert status == 0
    assert not any((ord(c) < 0x20 and c not in "\n\r") or 0x7F <= ord(c) <= 0x9F for c in written)
    assert list(csv.reader(io.StringIO(written, newline=""))) == [
        ["v", "c\\x1b[2J"],
        ["\\x1b]0;owned\\x07\\x1b[2J", "\\x9b2J"],
        ["a\nb", "\\x9b2J"],
    ]
    # To a pipe, CSV gives the values whole, for the program reading them.
    done = run_cli("query", str(texts), "demo", "t", sql, "--csv")
    assert list(csv.reader(io.StringIO(done.stdout, newline="")))[1] == [TEXTS[0], "\x9b2J"]


def test_the_text_table_quotes_a_text_spelled_as_a_blob_or_an_infinity_is(texts: Path) -> None:
    sql = (
        "SELECT '<3 bytes>' AS a, x'000102' AS b, 'Infinity' AS c, 9e999 AS d, "
        "'-Infinity' AS e, -9e999 AS f, 'NaN' AS g, '<3 bytes' AS h"
    )
    done = run_cli("query", str(texts), "demo", "t", sql)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split() == [
        "'<3",
        "bytes>'",
        "<3",
        "bytes>",
        "'Infinity'",
        "Infinity",
        "'-Infinity'",
        "-Infinity",
        "'NaN'",
        "<3",
        "bytes",
    ]


def test_a_text_starting_with_the_link_mark_reads_apart_from_a_link(store: Path) -> None:
    """§6: a link shows as `→ NAME …`; a stored text that starts with `→` (in a column, in a
    cell's value, in JSON text a query builds) printed the same. Text and CSV now quote such a
    text, or escape its mark inside JSON (`"\\u2192 …"`, the same JSON string); links print as
    before, and JSON output keeps links as objects and the text as it is."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        alice = space.cell("alice")
        table = sc.table(id="integer primary key", who_cf_link=sc.cf_link(), body="text")
        db = space.sqlite_database("chat", tables={"m": table})
        with space.transact():
            alice.set("A")
            space.cell("mix").set({"a": "→ alice", "b": alice, "c": ["→ alice", alice]})
            db.exec(
                "INSERT INTO m (id, who_cf_link, body) VALUES (1, ?, ?)", [alice, '→ alice "A"']
            )
    sql = "SELECT who_cf_link, body, json_array(body, who_cf_link) AS j FROM m"
    text = run_cli("query", str(store), "demo", "chat", sql)
    assert text.returncode == 0, text.stderr
    row = text.stdout.splitlines()[2].split("  ")
    assert [c.strip() for c in row if c.strip()] == [
        '→ alice "A"',
        "'→ alice \"A\"'",
        '["\\u2192 alice \\"A\\"","→ alice"]',
    ]
    done = run_cli("query", str(store), "demo", "chat", sql, "--csv")
    assert done.returncode == 0, done.stderr
    assert list(csv.reader(io.StringIO(done.stdout)))[1] == [
        '→ alice "A"',
        "'→ alice \"A\"'",
        '["\\u2192 alice \\"A\\"","→ alice"]',
    ]
    # The escaped mark is the same JSON string.
    assert json.loads(list(csv.reader(io.StringIO(done.stdout)))[1][2])[0] == '→ alice "A"'
    done = run_cli("query", str(store), "demo", "chat", sql, "--json")
    (shown,) = json.loads(done.stdout)["rows"]
    assert shown["who_cf_link"]["name"] == "alice" and shown["body"] == '→ alice "A"'
    for fmt in ((), ("--csv",)):
        done = run_cli("cells", str(store), *fmt)
        assert done.returncode == 0, done.stderr
        assert '"a":"\\u2192 alice","b":"→ alice","c":["\\u2192 alice","→ alice"]' in (
            done.stdout.replace('""', '"')
        ), done.stdout
    done = run_cli("cells", str(store), "--json")
    (mix,) = [c for c in json.loads(done.stdout) if c["name"] == "mix"]
    assert mix["value"]["a"] == "→ alice" and mix["value"]["b"]["name"] == "alice"


# Characters that make a terminal show another text than the one stored: bidi overrides and
# isolates, zero-width ones, a BOM, a tag, and those Python calls printable that show as nothing
# or as a blank (the combining grapheme joiner, a Hangul filler, a variation selector).
SPOOFS = "\u202e\u202a\u2066\u2069\u200b\u200d\u200e\ufeff\U000e0041\u034f\u3164\ufe0f\x9b"
SPOOF_NAME = f"a{SPOOFS}b"


@pytest.fixture
def spoofed(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space(SPOOF_NAME)
        cell = space.cell(SPOOF_NAME)
        db = space.sqlite_database(SPOOF_NAME, tables={SPOOF_NAME: sc.table(v="text")})
        with space.transact():
            cell.set(SPOOF_NAME)
            db.exec(f'INSERT INTO "{SPOOF_NAME}" (v) VALUES (?)', [SPOOF_NAME])
    return store


def _raw(text: str) -> set[str]:
    return {f"U+{ord(c):04X}" for c in text if c in SPOOFS}


def _commands(store: Path) -> list[list[str]]:
    sql = f'SELECT v, v AS "{SPOOF_NAME}" FROM "{SPOOF_NAME}"'
    return [
        ["inspect", str(store)],
        ["cells", str(store)],
        ["tables", str(store)],
        ["query", str(store), SPOOF_NAME, SPOOF_NAME, sql],
    ]


def test_text_outputs_escape_every_character_that_spoofs_a_terminal(spoofed: Path) -> None:
    """§6: a space id, a cell's or a database's name, a column name and a value holding a bidi
    control, a zero-width or another invisible character print escaped in the text outputs,
    names and values alike (the ones Python calls printable, U+034F, U+3164, U+FE0F, were
    printed raw: ``a`` + U+034F read as ``a``)."""
    for args in _commands(spoofed):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
        assert not _raw(done.stdout), (args[0], _raw(done.stdout))
        assert "a\\u202e\\u202a\\u2066\\u2069\\u200b" in done.stdout, done.stdout
        assert "\\U000e0041\\u034f\\u3164\\ufe0f\\x9bb" in done.stdout, done.stdout
    status, written = _on_a_terminal("--csv", "cells", str(spoofed))
    assert status == 0 and not _raw(written)
    assert "\\u034f\\u3164\\ufe0f" in written


@pytest.mark.parametrize("fmt", ["--json", "--ndjson"])
def test_json_escapes_every_character_that_spoofs_a_terminal_and_reads_back_exact(
    spoofed: Path, fmt: str
) -> None:
    """JSON is data: a program reading it gets every name and value exact. Each character a
    terminal would act on or not show is written as its JSON escape (``\\u202e``), which reads
    back as the same character, so the JSON shown on a terminal spoofs nothing either (the bidi
    controls and the zero-width characters were written raw)."""
    for args in _commands(spoofed):
        done = run_cli(fmt, *args)
        assert done.returncode == 0, done.stderr
        assert not _raw(done.stdout), (args[0], _raw(done.stdout))
        assert "\\u202e" in done.stdout and "\\udb40\\udc41" in done.stdout
        parsed = (
            json.loads(done.stdout)
            if fmt == "--json"
            else [json.loads(line) for line in done.stdout.splitlines()]
        )
        assert SPOOF_NAME in json.dumps(parsed, ensure_ascii=False), args[0]
    cells = json.loads(run_cli("--json", "cells", str(spoofed)).stdout)
    (cell,) = [c for c in cells if c["kind"] == "cell"]
    assert (cell["space"], cell["name"], cell["value"]) == (SPOOF_NAME, SPOOF_NAME, SPOOF_NAME)
    query = json.loads(run_cli("--json", *_commands(spoofed)[3]).stdout)
    assert query["rows"] == [{"v": SPOOF_NAME, SPOOF_NAME: SPOOF_NAME}]

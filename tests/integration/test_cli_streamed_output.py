"""`query --csv`, `--ndjson` and `--json` print rows as they are read, a batch at a time, in one
read transaction (SPEC §6, R40, R44): the memory they take does not grow with the row count,
a reader that goes away ends the command quietly, and an error of the read met after some rows
were printed leaves those rows printed, says the error and exits 1 (a JSON document then stays
unclosed). The text table still reads the whole result before it aligns its columns."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

import sqlite_cells as sc
from sqlite_cells.cli._cli import main

from ..conftest import COMMAND, run_cli, run_cli_limited

ROWS = 5_000  # five batches of `read._reader.STREAM_BATCH`
FAILS_AT = 1_500  # a row inside the second batch
FORMATS = ("--csv", "--ndjson", "--json")


@pytest.fixture
def many(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("t", tables={"t": sc.table(id="integer primary key", v="text")})
        with space.transact():
            db.exec_many(
                "INSERT INTO t (v) VALUES (?)", [(f"row {n}",) for n in range(1, ROWS + 1)]
            )
    return store


class _Output(io.StringIO):
    """Standard output that notes, at each write, whether the read still runs."""

    def __init__(self) -> None:
        super().__init__()
        self.while_reading: list[bool] = []

    def write(self, text: str) -> int:
        self.while_reading.append(
            any(t.name == "sqlite-cells-read" and t.is_alive() for t in threading.enumerate())
        )
        return super().write(text)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_are_written_while_the_read_still_runs(
    many: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _Output()
    monkeypatch.setattr("sys.stdout", out)
    code = main(["query", str(many), "demo", "t", "SELECT id, v FROM t ORDER BY id", fmt])
    assert code == 0
    # Five batches: the reader hands one on and reads the next while the first is printed; it
    # can only end once the output took the batches before, so the first writes come before.
    assert out.while_reading[0] is True
    assert len(out.while_reading) > 1
    text = out.getvalue()
    if fmt == "--json":
        assert [r["id"] for r in json.loads(text)["rows"]] == list(range(1, ROWS + 1))
    elif fmt == "--ndjson":
        assert [json.loads(line)["id"] for line in text.splitlines()] == list(range(1, ROWS + 1))
    else:
        assert text.splitlines()[1:] == [f"{n},row {n}" for n in range(1, ROWS + 1)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_reader_that_goes_away_midway_ends_the_command_quietly(many: Path, fmt: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    command = [str(COMMAND), "query", str(many), "demo", "t", "SELECT id, v FROM t", fmt]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline()  # as `| head -1` does
        process.stdout.close()
        code = process.wait(timeout=120)
        err = process.stderr.read()
    assert code == 1
    assert err == ""


_FAILING = (
    f"SELECT id, CASE WHEN id = {FAILS_AT} THEN abs(-9223372036854775807 - 1) ELSE v END AS v "
    "FROM t ORDER BY id"
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_error_midway_leaves_the_rows_before_it_printed_and_exits_1(
    many: Path, fmt: str
) -> None:
    done = run_cli("query", str(many), "demo", "t", _FAILING, fmt)
    assert done.returncode == 1
    assert done.stderr.startswith("sqlite-cells: QueryError: "), done.stderr
    assert "integer overflow" in done.stderr
    before = list(range(1, FAILS_AT))
    if fmt == "--csv":
        lines = done.stdout.splitlines()
        assert lines[0] == "id,v"
        assert [int(line.split(",")[0]) for line in lines[1:]] == before
    elif fmt == "--ndjson":
        assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == before
    else:
        # Unclosed: no JSON reader takes what was printed for the whole result.
        with pytest.raises(json.JSONDecodeError):
            json.loads(done.stdout)
        assert done.stdout.rstrip().endswith(
            '"v": ' + json.dumps(f"row {FAILS_AT - 1}") + "\n    }"
        )


def test_text_that_is_not_utf8_midway_is_said_after_the_rows_before_it(many: Path) -> None:
    sql = (
        f"SELECT id, CASE WHEN id = {FAILS_AT} THEN CAST(x'ff' AS TEXT) ELSE v END AS w "
        "FROM t ORDER BY id"
    )
    done = run_cli("query", str(many), "demo", "t", sql, "--ndjson")
    assert done.returncode == 1
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == list(range(1, FAILS_AT))
    assert "text in column(s) 'w' of the rows read from the file" in done.stderr
    assert "is not valid UTF-8" in done.stderr


def test_the_memory_of_a_streamed_result_does_not_grow_with_its_rows(tmp_path: Path) -> None:
    """A million rows printed under an address-space limit the whole result does not fit in
    (read whole, as the text table does, it runs out of memory there)."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("a")
        db = space.sqlite_database("d", tables={"t": sc.table(v="integer")})
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES (1)")
    rows = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) "
        "SELECT x, printf('%040d', x) AS s FROM c"
    )
    limit = 250 << 20
    # A deadline far past the read's time on a loaded machine: this is about memory.
    streamed = run_cli_limited(
        "RLIMIT_AS", limit, "query", "--csv", "--timeout", "120", str(store), "a", "d", rows
    )
    assert streamed.returncode == 0, streamed.stderr
    lines = streamed.stdout.splitlines()
    assert len(lines) == 1_000_001 and lines[-1] == f"1000000,{1000000:040d}"
    whole = run_cli_limited(
        "RLIMIT_AS", limit, "query", "--timeout", "120", str(store), "a", "d", rows
    )
    assert whole.returncode == 1
    assert whole.stderr.startswith("sqlite-cells: the command ran out of memory"), whole.stderr

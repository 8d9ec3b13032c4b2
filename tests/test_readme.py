"""The README's Python examples run, so they cannot rot."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sqlite_cells.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[index], f"README.md block {index}", "exec", dont_inherit=True)
    exec(code, {"__name__": "readme"})


def test_the_readme_shows_how_asyncio_code_follows_a_query() -> None:
    # SPEC §3 offers async handlers and `await rt.settled()`; a live query's states reach
    # asyncio code through `q.states()` and `q.first()` (the query itself is no async iterable),
    # which a reader of the README alone could not find.
    shown = [block for block in BLOCKS if "async for" in block]
    assert shown, "no README example follows a query with `async for`"
    block = shown[0]
    for call in ("async def", ".states():", "await rt.settled()", ".first()"):
        assert call in block, call


ROOT = README.parent
TYPED = ROOT / "examples" / "typed.py"


def test_the_typed_example_is_examples_typed_py() -> None:
    source = TYPED.read_text()
    assert source[source.index("from __future__") :] in BLOCKS


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_typed_example_passes_mypy_strict(tmp_path: Path) -> None:
    done = _mypy(TYPED, ROOT / "examples" / "web")  # the web app is typed too
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
    # The check can fail: a row's int field used as text is caught.
    broken = tmp_path / "typed_broken.py"
    broken.write_text(
        TYPED.read_text() + "\n\ndef wrong(row: Score) -> str:\n    return row.points\n"
    )
    done = _mypy(broken)
    assert done.returncode == 1
    assert 'Incompatible return value type (got "int", expected "str")' in done.stdout


SAMPLES = re.findall(r"```text\n(.*?)```", README.read_text(), re.S)


def _commands(sample: str) -> list[tuple[list[str], str]]:
    """Each ``$ sqlite-cells …`` line of a sample with the output printed under it."""
    found: list[tuple[list[str], str]] = []
    for line in sample.splitlines():
        if line.startswith("$ sqlite-cells "):
            found.append((shlex.split(line)[2:], ""))
        elif found and not line.startswith("$ "):
            found[-1] = (found[-1][0], found[-1][1] + line + "\n")
    return found


def test_the_command_line_samples_print_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = [c for sample in SAMPLES for c in _commands(sample)]
    assert len(commands) >= 4
    store = tmp_path / "store"
    assert main(["demo", "--store", str(store)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SQLITE_CELLS_STORE", str(store))
    for argv, expected in commands:
        assert main(argv) == 0, argv
        assert capsys.readouterr().out == expected, argv


def test_a_type_checker_catches_missing_and_stray_arguments_of_the_hot_calls(
    tmp_path: Path,
) -> None:
    """``Cell.get``/``set`` and ``db.exec`` refuse wrong arguments at run time with our own error
    (they take stray arguments only to refuse them); a type checker still flags the call."""
    calls = tmp_path / "calls.py"
    calls.write_text(
        "import sqlite_cells as sc\n"
        "\n"
        "def ok(c: sc.Cell, db: sc.SqliteDb) -> None:\n"
        "    c.set(1)\n"
        "    c.set(value=2)\n"
        "    c.get()\n"
        "    db.exec('DELETE FROM t')\n"
        "    db.exec('DELETE FROM t WHERE id = ?', [1])\n"
        "    db.exec(sql='DELETE FROM t', params=None)\n"
        "    c.link(c)\n"
        "    sc.Runtime.ephemeral(query_timeout=1.0).close()\n"
        "\n"
        "def wrong(c: sc.Cell, db: sc.SqliteDb) -> None:\n"
        "    c.set()\n"
        "    c.set(1, 2)\n"
        "    c.get(1)\n"
        "    db.exec()\n"
        "    db.exec('DELETE FROM t', None, 3)\n"
        "    c.link(None)\n"
        "    sc.Runtime.ephemeral(poll_intervall=1.0)\n"
    )
    done = _mypy(calls)
    flagged = sorted({int(m) for m in re.findall(r"calls\.py:(\d+): error", done.stdout)})
    assert flagged == [14, 15, 16, 17, 18, 19, 20], done.stdout + done.stderr


def test_decode_cf_link_and_a_subscripted_query_state_type_and_run_as_the_spec_writes_them(
    tmp_path: Path,
) -> None:
    """§4: ``decode_cf_link`` of a link string is a ``Cell`` (None for None), so ``.get()`` on
    it type-checks; R43: ``QueryState[Msg](…)`` type-checks and also runs."""
    program = tmp_path / "links.py"
    program.write_text(
        "import msgspec\n"
        "import sqlite_cells as sc\n"
        "\n"
        "class Msg(msgspec.Struct):\n"
        "    id: int\n"
        "\n"
        "def value(raw: str, rt: sc.Runtime) -> object:\n"
        "    return sc.decode_cf_link(raw, rt).get()\n"
        "\n"
        "def nothing(rt: sc.Runtime) -> None:\n"
        "    return sc.decode_cf_link(None, rt)\n"
        "\n"
        "state = sc.QueryState[Msg](pending=False, result=[Msg(1)], error=None, seq=1)\n"
        "rows: list[Msg] | None = state.result\n"
        "print(rows)\n"
    )
    done = _mypy(program)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
    ran = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (ran.returncode, ran.stdout) == (0, "[Msg(id=1)]\n"), ran.stderr


HANDLERS = """
from typing import Any, assert_type
from collections.abc import Coroutine

import sqlite_cells as sc


@sc.handler
def bump(n: int, *, counter: sc.Cell) -> None: ...


@sc.handler
async def post(text: str, *, log: sc.Cell) -> None: ...


@sc.handler
def counted(n: int) -> int:
    return n


@sc.handler(tries=3)
def retried(n: int) -> None: ...


class Board:
    @sc.handler
    def add(self, n: int) -> None: ...

    @classmethod
    @sc.handler
    def make(cls, n: int) -> None: ...

    @staticmethod
    @sc.handler
    def tally(n: int, *, c: sc.Cell) -> None: ...


def used(c: sc.Cell) -> None:
    assert_type(bump(3, counter=c), int | None)
    assert_type(counted(3), int | None)
    assert_type(retried(3), int | None)
    assert_type(Board().add(3), int | None)
    assert_type(Board.make(3), int | None)
    assert_type(Board().tally(3, c=c), int | None)
    assert_type(post("hi", log=c), Coroutine[Any, Any, int | None]).close()


def wrong(c: sc.Cell) -> None:
    bump("three", counter=c)  # wrong
    bump(3, bogus=True)  # wrong
    Board().add("x")  # wrong
    Board.make("x")  # wrong
    Board().tally(1)  # wrong


async def wrong_async(c: sc.Cell) -> None:
    await post(1, log=c)  # wrong
"""


def test_a_handler_keeps_the_wrapped_signature_for_mypy(tmp_path: Path) -> None:
    """§3: "@sc.handler keeps the wrapped signature for type checkers (ParamSpec)": plain,
    async, with ``tries=``, as a method, a classmethod and a staticmethod, the calls are checked
    against the body's parameters and typed as returning the commit's seq (or a coroutine of
    it). A body whose return is not annotated is ``Any`` to mypy, which then types the handler
    as ``Any`` (docs/decisions.md)."""
    script = tmp_path / "handlers.py"
    script.write_text(HANDLERS)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(script)],
        cwd=tmp_path,  # (mypy's default options: not the project's own strict ones)
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    flagged = {int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line}
    wrong = {n for n, line in enumerate(HANDLERS.splitlines(), 1) if line.endswith("# wrong")}
    assert len(wrong) == 6 and flagged == wrong, done.stdout


def test_a_derived_cell_is_typed_by_its_function(tmp_path: Path) -> None:
    """§3: ``sc.lift(add)(c, d).get()`` is what ``add`` returns, for a type checker too (it was
    ``Any``: a result used as another type passed)."""
    calls = tmp_path / "derived.py"
    calls.write_text(
        "import sqlite_cells as sc\n"
        "\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "\n"
        "def use(c: sc.Cell) -> None:\n"
        "    total: int = sc.lift(add)(c, c).get()\n"
        "    text: str = sc.derive(c, lambda v: str(v)).get()\n"
        "    wrong: str = sc.lift(add)(c, c).get()\n"
        "    also_wrong: int = sc.derive(c, lambda v: str(v)).get()\n"
    )
    done = _mypy(calls)
    flagged = sorted({int(m) for m in re.findall(r"derived\.py:(\d+): error", done.stdout)})
    assert flagged == [9, 10], done.stdout + done.stderr


def test_the_readme_counts_the_compiled_modules_setup_py_builds() -> None:
    """The README said the install compiles two C modules; ``setup.py`` builds four."""
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
    said = re.search(r"compiles (\w+) small C modules?", README.read_text())
    assert said is not None
    built = len(re.findall(r"\bExtension\(", (ROOT / "setup.py").read_text()))
    assert words[said.group(1)] == built


def _limits() -> list[tuple[str, float]]:
    from sqlite_cells.cli import _cli
    from sqlite_cells.read import _display, _workers
    from sqlite_cells.runtime import _space_file
    from sqlite_cells.sql import _guard

    return [
        ("workers and their extras ({} beyond `query_workers`)", _workers.MAX_EXTRA),
        ("The statement guard reads at most {} characters", _guard.MAX_STATEMENT_LENGTH),
        ("a text table shows the first {} columns", _display.WIDEST_CELL),
        (
            "(at most {} characters)",
            _display.WIDEST_CELL * _display.CELL_CHARACTERS_PER_COLUMN,
        ),
        ("each of their waits for a lock lasts at most {} s", _cli.LOCK_WAIT),
        ("SQLite's busy timeout ({} s)", _space_file.BUSY_TIMEOUT_MS / 1000),
    ]


@pytest.mark.parametrize(("phrase", "value"), _limits())
def test_the_limits_the_readme_states_are_the_codes(phrase: str, value: float) -> None:
    """A number the README gives for a limit is the constant the code keeps (it said extra
    workers stop at 8 beyond ``query_workers`` after the code had raised that to 14)."""
    text = " ".join(README.read_text().split())
    shown = f"{value:,.0f}" if value == int(value) else f"{value:,}"
    assert phrase.format(shown) in text, phrase.format(shown)

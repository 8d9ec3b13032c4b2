"""Every example runs, prints what it shows and returns what it did (examples/)."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import sqlite_cells as sc
from sqlite_cells.codec import derive_id
from sqlite_cells.schema._declaration import db_file_name

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # examples/ is run from the repository root
    return importlib.import_module(f"examples.{name}")


def test_chat_posts_renames_rolls_back_and_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = _example("chat", monkeypatch)
    store = str(tmp_path / "store")
    first = chat.main(store)
    out = capsys.readouterr().out

    assert first.db_id == derive_id("sqlite", "demo", "chat")
    assert first.db_path == Path(store).resolve() / db_file_name(first.db_id)
    assert (first.messages_before, first.messages, first.posts) == (0, 3, 3)
    assert first.post_seqs == [2, 3, 4]  # seq 1 wrote the two users
    assert first.query_seqs == [0, 2, 3, 4]  # one delivery per commit that wrote the database
    # R52: the decoded author cell saw the rename; the query did not re-run for it.
    assert first.rename_seq == 5
    assert first.names_seen == ["Alice", "Alicia"]
    assert (first.query_seq_after_rename, first.deliveries_after_rename) == (4, 0)
    # Abort-only: the duplicate id rolled back the counter bump of the same transaction.
    assert "UNIQUE constraint failed: messages.id" in first.rollback_error
    assert first.posts_after_rollback == 3
    assert first.last_seq == 4
    assert "new chat" in out
    assert "live query -> 3 row(s) at seq 4" in out
    assert "3   Alicia  In SQLite" in out  # re-rendered rows read the renamed cell
    assert "ExecError: database" in out and "posts is still 3" in out

    second = chat.main(store)
    out = capsys.readouterr().out
    assert "continuing: the database already holds 3 messages" in out
    assert (second.db_id, second.db_path) == (first.db_id, first.db_path)  # R1
    assert (second.messages_before, second.messages, second.posts) == (3, 6, 6)
    assert second.post_seqs == [6, 7, 8]
    assert second.names_seen == ["Alicia", "Alice"]  # the rename toggles back


def test_chat_without_a_store_uses_a_temporary_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _example("chat", monkeypatch).main()
    assert run.messages == 3
    assert not run.store.exists()  # Runtime.ephemeral() removed it on close
    assert "new chat" in capsys.readouterr().out


def test_leaderboard_decodes_aliased_links_through_a_typed_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    board = _example("leaderboard", monkeypatch).main(str(tmp_path))
    out = capsys.readouterr().out
    assert board == [("Ann", 30), ("Ben", 25), ("Cat", 15)]
    assert "Ann scored 30 (seq 5): board at seq 5: 1. Ann 30, 2. Ben 25, 3. Cat 15" in out
    assert "Ben scored  5 (seq 6): the re-run at seq 6 found the same rows" in out
    assert "row type: Entry; player field: <Cell of:" in out
    assert 'the same column is the stored link text: {"/":{"link@1":' in out


def test_atomic_counter_rolls_back_the_cell_with_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _example("atomic_counter", monkeypatch).main(str(tmp_path))
    out = capsys.readouterr().out
    assert (run.total, run.entries) == (12, 2)
    assert run.errors == ["ExecError", "Interrupted"]
    assert "CHECK constraint failed: amount > 0" in out
    assert "DISAGREE" not in out
    assert out.count("-> agree") == 5


@pytest.mark.parametrize("value", ["12", "abc", 2.5, True])
def test_atomic_counter_refuses_a_store_whose_counter_is_not_a_whole_number(
    tmp_path: Path, value: object
) -> None:
    """A counter holding text ended the example with a raw ValueError's traceback; "12" was
    converted and written over. Either is another program's data: refused in one line, exit
    status 1, before the example's first commit (nothing written)."""
    with sc.Runtime(str(tmp_path)) as rt, rt.space("counter").transact():
        rt.space("counter").cell("total").set(value)
    files = sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "examples.atomic_counter", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.startswith(
        f"error: OtherData: cell 'total' of space 'counter' holds {value!r}, not the "
        "example's counter"
    ), done.stderr
    assert "nothing was written" in done.stderr and len(done.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no ledger file
    with sc.Runtime(str(tmp_path)) as rt:
        space = rt.space("counter")
        assert space.cell("total").get() == value and type(space.cell("total").get()) is type(value)
        assert space.sqlite_database("ledger", tables={}).rev == 0


def test_notes_pattern_pieces_get_their_own_databases_and_rebind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _example("notes_patterns", monkeypatch).main(str(tmp_path))
    out = capsys.readouterr().out
    assert run.piece_ids["alice"] != run.piece_ids["bob"]
    assert run.db_ids["alice"] != run.db_ids["bob"]
    assert run.files["alice"] != run.files["bob"]
    # The unnamed database's id is causal: the piece id and its position among databases.
    assert run.db_ids["alice"] == derive_id("sqlite", "piece", run.piece_ids["alice"], "#", 0)
    assert run.notes == {"alice": ["buy milk", "call Bob"], "bob": ["water the plants"]}
    assert (run.rebound_piece_id, run.rebound_db_id, run.rebound_file) == (
        run.piece_ids["alice"],
        run.db_ids["alice"],
        run.files["alice"],
    )
    assert run.rebound_notes == ["buy milk", "call Bob"]
    assert "(the same ids)" in out
    assert sorted(p.name for p in tmp_path.glob("cell-*.sqlite")) == sorted(run.files.values())


def test_examples_run_as_modules_from_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run as __main__, the pattern must bind the same pieces as when imported.
    done = subprocess.run(
        [sys.executable, "-m", "examples.notes_patterns", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "notes still there: ['buy milk', 'call Bob']" in done.stdout
    notes = _example("notes_patterns", monkeypatch)
    with sc.Runtime(str(tmp_path)) as rt:
        space = rt.space("notes")
        piece = space.run(notes.notebook, key="alice", owner=space.cell("alice"))
        rt.settle()
        bodies = [n.body for n in piece.outputs["notes"].get().result]
    assert bodies == ["buy milk", "call Bob"]


def test_typed_rows_decode_links_into_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = _example("typed", monkeypatch)
    assert typed.main() == [("Ada", 5), ("Ada", 3)]


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "examples.chat", "{file}"],
        ["-m", "examples.leaderboard", "{file}"],
        ["-m", "examples.web", "--store", "{file}", "--port", "0"],
    ],
)
def test_an_example_given_a_store_it_cannot_use_says_so_in_one_line(
    tmp_path: Path, args: list[str]
) -> None:
    """A store path that is a file: the library's StorePathError was printed with Python's
    traceback; it is one line now, with exit status 1, as the command line prints it."""
    if "examples.web" in args:
        pytest.importorskip("uvicorn", reason="the web example needs the dev dependencies")
    file = tmp_path / "not-a-directory"
    file.write_text("x")
    done = subprocess.run(
        [sys.executable, *(a.format(file=file) for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: StorePathError: "), done.stderr
    assert str(file) in done.stderr and len(done.stderr.splitlines()) == 1


def test_the_web_example_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    """`make web` always asks for port 8000: taken, it printed an OSError's traceback."""
    pytest.importorskip("uvicorn", reason="the web example needs the dev dependencies")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "examples.web", "--store", str(tmp_path), "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing opened, nothing created


@pytest.mark.parametrize("name", ["chat", "leaderboard", "notes_patterns", "typed"])
def test_an_example_whose_output_reader_went_away_stops_quietly(tmp_path: Path, name: str) -> None:
    """``python -m examples.chat | head -3``: the example's next print met a closed pipe and
    printed ``BrokenPipeError`` with Python's traceback. It stops quietly with exit status 1,
    as the ``sqlite-cells`` command does, and its runtime is closed (its store consistent)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", f"examples.{name}", str(tmp_path / "s")],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, ""), done.stderr
    if name != "typed":  # (typed always runs on a temporary store)
        check = subprocess.run(
            [sys.executable, "-m", "sqlite_cells", "check", str(tmp_path / "s")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("buffered", [False, True], ids=["written-at-once", "flushed-at-exit"])
@pytest.mark.parametrize("name", ["chat", "typed"])
def test_an_example_whose_output_cannot_be_written_says_so_in_one_line(
    tmp_path: Path, name: str, buffered: bool
) -> None:
    """``python -m examples.chat > /dev/full``: a write that failed printed the OSError with
    Python's traceback; buffered, the last flush as the program ended printed "Exception
    ignored" and the error, exit status 120. Either is one line now, the command's, status 1."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", f"examples.{name}", str(tmp_path / "s")],
            cwd=ROOT,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert (done.returncode, done.stderr) == (
        1,
        "error: the output could not be written (No space left on device): free space on its "
        "disk, or send it elsewhere, and run the command again\n",
    ), done.stderr
    if name == "chat":  # its runtime was closed: the store is consistent
        check = subprocess.run(
            [sys.executable, "-m", "sqlite_cells", "check", str(tmp_path / "s")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("name", "args", "status"),
    [
        ("chat", ["--help"], 0),
        ("leaderboard", ["-h"], 0),
        ("atomic_counter", ["--help"], 0),
        ("notes_patterns", ["--help"], 0),
        ("reference_lookup", ["--help"], 0),
        ("chat", ["--store", "s"], 2),
        ("leaderboard", ["s", "t"], 2),
    ],
)
def test_an_example_given_an_option_or_two_stores_makes_no_store_of_them(
    tmp_path: Path, name: str, args: list[str], status: int
) -> None:
    """``python -m examples.chat --help`` (run from another folder): the word was taken as the
    store's path, a store ``--help`` was made there and the example ran on it; a second word
    was left unread. ``--help`` prints the usage, anything else is bad usage (exit 2), and
    nothing is created."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", f"examples.{name}", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == status, done
    assert "Traceback" not in done.stderr
    if status == 0:
        assert done.stdout.startswith(f"usage: python -m examples.{name} [-h] [STORE]"), done
    else:
        assert f"usage: python -m examples.{name}" in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(f"python -m examples.{name}: error")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "name", ["chat", "leaderboard", "atomic_counter", "notes_patterns", "reference_lookup"]
)
def test_an_example_run_as_a_file_finds_its_package(tmp_path: Path, name: str) -> None:
    """``python examples/notes_patterns.py STORE`` (a file, not ``-m``): its ``__main__`` block
    imports from the ``examples`` package, which was not found (``ModuleNotFoundError`` and its
    traceback); the package is found from the repository root now."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), str(tmp_path / "s")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    check = subprocess.run(
        [sys.executable, "-m", "sqlite_cells", "check", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

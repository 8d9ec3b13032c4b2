"""A store the command cannot reach (SPEC §6, Errors): a store directory it may not list or
search, or a path the system refuses, is a finding (exit 1) naming the store and what to do,
never an empty store (exit 0) nor a bare OS error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run_cli, run_unprivileged, shared_dir
from .test_cli_store_names import _written

COMMANDS = (
    ("inspect",),
    ("check",),
    ("check", "--repair"),
    ("cells",),
    ("tables",),
    ("gc",),
    ("gc", "--yes"),
)


def test_a_store_path_too_long_is_named_short_with_what_to_do(tmp_path: Path) -> None:
    for long in (tmp_path / ("y" * 300), tmp_path.joinpath(*["x" * 200] * 30)):
        query = ("query", str(long), "demo", "chat", "SELECT 1")
        for args in [(*command, str(long)) for command in COMMANDS] + [query]:
            done = run_cli(*args)
            assert done.returncode == 1, (args[0], done.stderr)
            assert done.stdout == ""
            assert done.stderr.startswith("sqlite-cells: InspectError: the store path "), args
            assert "File name too long" in done.stderr
            assert "give a shorter path" in done.stderr
            assert f"({len(str(long)):,} characters)" in done.stderr
            assert len(done.stderr) < 600, len(done.stderr)


def test_a_store_under_the_home_of_no_such_user_is_named_with_what_to_do() -> None:
    store = "~no_such_user_here/store"
    query = ("query", store, "demo", "chat", "SELECT 1")
    for args in [(*command, store) for command in COMMANDS] + [query]:
        done = run_cli(*args)
        assert done.returncode == 1, (args[0], done.stderr)
        assert done.stdout == ""
        assert done.stderr == (
            "sqlite-cells: InspectError: the store path '~no_such_user_here/store' starts with "
            "~, but the system knows no home directory of a user named 'no_such_user_here': "
            "give the path in full, or a user that exists\n"
        ), args


@pytest.fixture
def shared_store() -> Iterator[Path]:
    """A written store in a directory another user may enter (a test's tmp_path is private
    to its user)."""
    with shared_dir() as parent:
        store = parent / "store"
        _written(store)
        yield store


@pytest.mark.parametrize("mode", [0o000, 0o333, 0o666], ids=["none", "not-readable", "no-search"])
def test_a_store_the_user_may_not_read_is_a_finding_not_an_empty_store(
    shared_store: Path, mode: int
) -> None:
    before = sorted(p.name for p in shared_store.iterdir())
    shared_store.chmod(mode)
    try:
        query = ("query", str(shared_store), "demo", "chat", "SELECT body FROM m")
        for args in [(*command, str(shared_store)) for command in COMMANDS] + [query]:
            done = run_unprivileged("-m", "sqlite_cells", *args)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert done.stdout == "", (args, done.stdout)
            assert done.stderr.startswith(
                f"sqlite-cells: InspectError: the store directory {shared_store} cannot be read "
                "(Permission denied)"
            ), (args, done.stderr)
            assert "Make it readable and searchable" in done.stderr
    finally:
        shared_store.chmod(0o755)
    assert sorted(p.name for p in shared_store.iterdir()) == before


def test_an_os_error_let_through_says_where_shortened_and_what_to_do(tmp_path: Path) -> None:
    from sqlite_cells.cli._cli import _os_message

    long = str(tmp_path / ("z" * 6000))
    with pytest.raises(OSError) as caught:
        os.stat(long)
    text = _os_message(caught.value)
    assert text.startswith(f"File name too long at {long[:200]}… ({len(long):,} characters): ")
    assert "give a shorter store path" in text
    assert len(text) < 400


def test_a_space_file_the_user_may_not_read_is_named_with_what_to_do(shared_store: Path) -> None:
    """Every command that meets a space file it may not open says what to do, as `inspect`
    and `check` did: `tables`, `cells`, `query` and `link` said only "cannot open …: unable to
    open database file"."""
    (space_file,) = shared_store.glob("space-*.sqlite")
    before = sorted(p.name for p in shared_store.iterdir())
    space_file.chmod(0o600)  # its owner's alone
    try:
        commands = [
            ("tables", str(shared_store)),
            ("cells", str(shared_store)),
            ("query", str(shared_store), "demo", "chat", "SELECT body FROM m"),
            ("link", "sqlite:/etc/hostname", "demo", "of:x", "f", "--store", str(shared_store)),
        ]
        for args in commands:
            done = run_unprivileged("-m", "sqlite_cells", *args)
            assert done.returncode == 1, (args, done.stderr)
            assert f"{space_file} cannot be opened" in done.stderr, (args, done.stderr)
            # (the listings report it as `inspect` does, with its advice)
            advice = (
                "let this user read and write the space file"
                if args[0] in ("tables", "cells")
                else "that you may read and write it"
            )
            assert advice in done.stderr, (args, done.stderr)
            assert "Traceback" not in done.stderr
    finally:
        space_file.chmod(0o644)
    assert sorted(p.name for p in shared_store.iterdir()) == before


@pytest.mark.parametrize(
    "command", [["inspect"], ["check"], ["gc"], ["query", "s", "d", "SELECT 1"]]
)
def test_the_default_store_in_a_deleted_current_directory_is_said_as_that(
    tmp_path: Path, command: list[str]
) -> None:
    """Errors: with the current directory deleted, the default store (./.sqlite-cells) was
    said to be missing ("no store at .sqlite-cells … pass its path"); the command says the
    current directory cannot be found, and to change to one that exists or give an absolute
    path. Nothing is made."""
    gone = tmp_path / "gone"
    gone.mkdir()
    code = (
        "import os, runpy, sys; "
        f"os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
        "sys.argv[0] = 'sqlite-cells'; runpy.run_module('sqlite_cells', run_name='__main__')"
    )
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    done = subprocess.run(
        [sys.executable, "-c", code, *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "no store at" not in done.stderr
    assert "the store path .sqlite-cells is relative, but the current directory cannot be" in (
        done.stderr
    )
    assert "give the store as an absolute path" in done.stderr
    assert list(tmp_path.iterdir()) == []

"""A store in a folder this user may not write (read-only media; §6, Errors): SQLite reads a
WAL file through a `-wal` and `-shm` it creates beside it, and there it cannot, so every command
failed. A file with no `-wal` or `-shm` beside it holds every commit and is read as it is: the
commands that only read (`inspect`, `tables`, `cells`, `check`, `gc` without `--yes`, `query`)
read the store and leave it as it was; `check --repair` repairs nothing there."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import sqlite_cells as sc

from ..conftest import run_unprivileged, shared_dir

TABLES = {"t": sc.table(id="integer primary key", v="text")}
COMMANDS = (
    ("inspect",),
    ("tables",),
    ("cells",),
    ("check",),
    ("check", "--repair"),
    ("gc",),
)
NOBODY = 65534


@pytest.fixture
def store() -> Iterator[Path]:
    with shared_dir() as parent:
        root = parent / "store"
        with sc.Runtime(root) as rt:
            space = rt.space("a")
            db = space.sqlite_database("d", tables=TABLES)
            with space.transact():
                db.exec("INSERT INTO t (v) VALUES ('x')")
                space.cell("c").set(1)
        yield root


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def _read_everything(root: Path) -> None:
    for command in COMMANDS:
        done = run_unprivileged("-m", "sqlite_cells", *command, str(root))
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert done.stderr == "", (command, done.stderr)
    done = run_unprivileged(
        "-m", "sqlite_cells", "query", "--json", str(root), "a", "d", "SELECT v FROM t"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"v": "x"}]
    done = run_unprivileged("-m", "sqlite_cells", "check", "--json", str(root))
    assert [row["action"] for row in json.loads(done.stdout)] == ["in sync"]


def test_a_folder_this_user_may_not_write_is_read(store: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the files must belong to the user the commands run as (chown needs root)")
    before = _names(store)
    for path in store.iterdir():
        os.chown(path, NOBODY, NOBODY)
    store.chmod(0o555)
    try:
        _read_everything(store)
        assert _names(store) == before
    finally:
        store.chmod(0o755)
        for path in store.iterdir():
            os.chown(path, 0, 0)

"""Store files this user may not write, or in a folder it may not write (§6, Errors): the
commands that only read (`inspect`, `tables`, `cells`, `check`, `gc` without `--yes`, `query`)
read them, and leave nothing beside them — a read-only connection to a WAL file creates a `-wal`
and `-shm` it cannot remove, read-only, and the next writer's commits failed on them; in a
folder it may not write it cannot create them, and every command failed. Such a file, with no
`-wal` or `-shm` beside it, holds every commit and is read as it is. `check --repair` on it
repairs nothing and leaves nothing either."""

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


def test_files_this_user_may_not_write_are_read_and_left_alone(store: Path) -> None:
    before = _names(store)
    store.chmod(0o777)
    for path in store.iterdir():
        path.chmod(0o444)
    try:
        _read_everything(store)
        assert _names(store) == before  # no -wal, no -shm
    finally:
        for path in store.iterdir():
            path.chmod(0o644)
    with sc.Runtime(store) as rt:  # the next writer commits as before
        space = rt.space("a")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec("INSERT INTO t (v) VALUES ('y')")
        assert db.read("SELECT v FROM t ORDER BY id") == [{"v": "x"}, {"v": "y"}]


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

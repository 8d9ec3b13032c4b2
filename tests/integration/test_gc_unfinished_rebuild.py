"""R74, §6: a `check --repair` killed while it rebuilds a damaged database file leaves the
unfinished rebuild beside it (`cell-….sqlite.rebuild` and its journal). No command listed it,
and `gc --yes` left it for good once the database was set right another way. gc lists it as an
unfinished rebuild and removes it with `--yes`; the next repair rebuilds the database whole."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import sqlite_cells as sc

from ..conftest import run_cli

TABLES = {"t": sc.table(id="integer primary key", v="text")}

# A repair that is killed (a real SIGKILL) once its rebuild holds the rows, before it commits.
KILLED_REPAIR = """
import os, signal, sys
from sqlite_cells import files
from sqlite_cells.files import _reconcile

replay = _reconcile._replay

def replay_then_die(*args, **kwargs):
    replay(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

_reconcile._replay = replay_then_die
files.check_store(sys.argv[1], repair=True)
"""


def test_gc_lists_and_removes_an_unfinished_rebuild(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("s")
        db = space.sqlite_database("d", tables=TABLES)
        with space.transact():
            db.exec_many("INSERT INTO t (id, v) VALUES (?, ?)", [(i, "x") for i in range(50)])
        path = db.path
    path.write_bytes(b"not a database" * 100)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_REPAIR, str(tmp_path)], capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    rebuild = path.with_name(path.name + ".rebuild")
    assert rebuild.exists() and Path(f"{rebuild}-journal").exists()
    listed = run_cli("gc", str(tmp_path))
    assert listed.returncode == 0
    assert f"would remove {rebuild.name}" in listed.stdout
    assert rebuild.exists()  # listed only
    listed = run_cli("gc", str(tmp_path), "--csv")
    assert f"{rebuild.name},would remove,an unfinished rebuild of a damaged" in listed.stdout
    removed = run_cli("gc", str(tmp_path), "--yes")
    assert removed.returncode == 0 and f"removed {rebuild.name}" in removed.stdout
    leftovers = sorted(p.name for p in tmp_path.iterdir() if ".rebuild" in p.name)
    assert leftovers == []
    assert path.read_bytes() == b"not a database" * 100  # the damaged file: check's, not gc's
    repaired = run_cli("check", str(tmp_path), "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    with sc.Runtime(tmp_path) as rt:
        db = rt.space("s").sqlite_database("d", tables=TABLES)
        assert db.read("SELECT count(*) AS n FROM t") == [{"n": 50}]

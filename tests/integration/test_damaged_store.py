"""Hostile file systems and damaged files (R7, R71, R74): a refused first commit leaves no file;
a damaged space file is reported by ``check``, ``gc`` and ``inspect`` with advice that works;
``inspect`` lists a database file that holds commits but that no space names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"t": sc.table(id="integer primary key", body="text")}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "sqlite_cells.cli._cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _files(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir())


# -- a first commit refused by the file system leaves no file (R7) ---------------------------

_FIRST_WRITE_UNDER_LIMIT = textwrap.dedent(
    """
    import json, logging, os, resource, signal, sys
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    import sqlite_cells as sc
    store, limit, with_db = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "db"
    rt = sc.Runtime(store)
    space = rt.space("demo")
    cell = space.cell("c", default=0)
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key", body="text")})
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        with space.transact():
            cell.set(1)
            if with_db:
                db.exec("INSERT INTO t (body) VALUES (?)", ["x"])
        error = None
    except sc.SqliteCellsError as exc:
        error = {"class": type(exc).__name__, "message": str(exc)}
    before_close = sorted(os.listdir(store))
    rt.close()
    print(json.dumps({"error": error, "before_close": before_close}))
    """
)


@pytest.mark.parametrize("with_db", ["cell", "db"])
@pytest.mark.parametrize("limit", [0, 4096])
def test_a_first_commit_refused_while_the_space_file_is_made_leaves_no_file(
    store: Path, limit: int, with_db: str
) -> None:
    """Each write past ``limit`` bytes fails (RLIMIT_FSIZE, as a full disk does), so SQLite
    fails while it makes the space file: the commit is refused and no file stays behind."""
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_WRITE_UNDER_LIMIT, str(store), str(limit), with_db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["error"] is not None and found["error"]["class"] == "DatabaseError"
    assert "space file" in found["error"]["message"]
    assert "I/O error" in found["error"]["message"]
    assert found["before_close"] == []
    assert _files(store) == []
    with sc.Runtime(store) as rt:  # the store works as if nothing had been tried
        space = rt.space("demo")
        with space.transact():
            space.cell("c", default=0).set(2)
        assert space.cell("c", default=0).get() == 2

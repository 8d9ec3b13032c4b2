"""Crash safety through the public API and real processes (R70–R72).

A writer process commits in a loop from several threads (a counter cell and rows in the same
transaction; ``random()``, ``CURRENT_TIMESTAMP``, a table without a primary key updated in bulk)
and prints each seq as its commit returns; it is SIGKILLed at random moments. A fresh runtime
must then hold every printed commit, the counter must equal the rows, and ``sqlite-cells check``
must find nothing. A database file put back from an older copy is replayed to the very rows it
had (R70: a replay applies the recorded changesets, not the statements).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "ev": sc.table(id="integer primary key", k="integer", r="integer", ts="text"),
    "loose": sc.table(k="integer", r="integer"),  # no primary key: captured by rowid
}

_WRITER = textwrap.dedent(
    """
    import os, sys, threading
    import sqlite_cells as sc
    store, threads = sys.argv[1], int(sys.argv[2])
    TABLES = {
        "ev": sc.table(id="integer primary key", k="integer", r="integer", ts="text"),
        "loose": sc.table(k="integer", r="integer"),
    }
    rt = sc.Runtime(store, poll_interval=0.05)
    space = rt.space("demo")
    counter = space.cell("counter", default=0)
    db = space.sqlite_database("events", tables=TABLES)

    @sc.handler
    def step(k):
        counter.update(lambda v: v + 1)
        db.exec("INSERT INTO ev (k, r, ts) VALUES (?, random(), CURRENT_TIMESTAMP)", [k])
        db.exec("INSERT INTO loose (k, r) VALUES (?, random())", [k])
        if k % 7 == 0:  # a bulk update of the table without a key
            db.exec("UPDATE loose SET r = random() WHERE k % 3 = ?", [k % 3])

    def work(t):
        i = 0
        while True:
            k = (os.getpid() * 1000 + i) * 8 + t
            os.write(1, f"seq {step(k)} {k}\\n".encode())
            i += 1

    os.write(1, b"ready\\n")
    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    """
)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _open(store: Path) -> tuple[sc.Runtime, sc.SqliteDb, sc.Cell]:
    rt = sc.Runtime(store)
    space = rt.space("demo")
    return rt, space.sqlite_database("events", tables=TABLES), space.cell("counter", default=0)


def _kill_loop(store: Path, tmp_path: Path, loops: int, seed: int) -> int:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rng = random.Random(seed)
    returned: dict[int, int] = {}  # k -> seq of every commit whose call returned
    for loop in range(loops):
        threads = rng.choice((1, 3))
        proc = subprocess.Popen(
            [sys.executable, str(script), str(store), str(threads)],
            stdout=subprocess.PIPE,
            env=_env(),
            cwd=tmp_path,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out = proc.stdout.read().decode()
        proc.stdout.close()
        assert proc.wait() == -signal.SIGKILL
        for line in out.splitlines():
            if line.startswith("seq "):
                _, seq, k = line.split()
                returned[int(k)] = int(seq)
        rt, db, counter = _open(store)
        with rt:
            (n,) = db.read("SELECT count(*) AS n FROM ev")
            (m,) = db.read("SELECT count(*) AS n FROM loose")
            ks = {row["k"] for row in db.read("SELECT k FROM ev")}
            assert counter.get() == n["n"] == m["n"], loop  # cells and rows agree
            assert set(returned) <= ks, (loop, sorted(set(returned) - ks)[:5])  # nothing lost
            assert db.rev >= max(returned.values(), default=0)
        check = subprocess.run(
            [sys.executable, "-m", "sqlite_cells", "check", str(store)],
            capture_output=True,
            text=True,
            env=_env(),
        )
        assert check.returncode == 0, (loop, check.stdout, check.stderr)
    return len(returned)


def test_writers_killed_at_random_lose_no_commit_that_returned(store: Path, tmp_path: Path) -> None:
    assert _kill_loop(store, tmp_path, loops=8, seed=20261203) > 0


@pytest.mark.slow
def test_many_writers_killed_at_random_lose_no_commit_that_returned(
    store: Path, tmp_path: Path
) -> None:
    assert _kill_loop(store, tmp_path, loops=80, seed=7) > 0


def _copy_files(source: Path, target: Path) -> None:
    for suffix in ("", "-wal"):
        src = Path(f"{source}{suffix}")
        if src.exists():
            shutil.copyfile(src, f"{target}{suffix}")


@pytest.mark.parametrize(
    "bulk",
    [
        "UPDATE loose SET r = random()",
        "UPDATE loose SET r = r",  # changes nothing
        "UPDATE loose SET rowid = rowid + 1000 WHERE k % 3 = 0",
    ],
)
def test_a_database_file_put_back_from_an_older_copy_is_replayed_to_the_same_rows(
    store: Path, tmp_path: Path, bulk: str
) -> None:
    """R70, R71: behind → the recorded changesets are applied again, so rows made by random()
    and CURRENT_TIMESTAMP, and a bulk update of a table without a primary key, come back as
    they were."""
    rt, db, counter = _open(store)
    with rt:

        @sc.handler
        def fill(n: int) -> None:
            counter.update(lambda v: v + 1)
            db.exec_many("INSERT INTO loose (k, r) VALUES (?, random())", [[i] for i in range(n)])
            db.exec("INSERT INTO ev (k, r, ts) VALUES (0, random(), CURRENT_TIMESTAMP)")

        @sc.handler
        def change(sql: str) -> None:
            counter.update(lambda v: v + 1)
            db.exec(sql)
            db.exec("INSERT INTO ev (k, r, ts) VALUES (1, random(), CURRENT_TIMESTAMP)")

        fill(300)
        path = Path(db.path)
    backup = tmp_path / "backup.sqlite"
    _copy_files(path, backup)  # the file as it was at seq 1 (closed: checkpointed)
    rt, db, counter = _open(store)
    with rt:
        change(bulk)
        change("DELETE FROM loose WHERE k % 5 = 0")
        expected = {
            t: db.read(f"SELECT rowid AS rid, * FROM {t} ORDER BY rowid") for t in ("ev", "loose")
        }
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _copy_files(backup, path)
    rt, db, counter = _open(store)
    with rt:
        assert rt.reconcile(db.declaration).action.value == "replayed"
        for t in ("ev", "loose"):
            assert db.read(f"SELECT rowid AS rid, * FROM {t} ORDER BY rowid") == expected[t]
        assert counter.get() == 3

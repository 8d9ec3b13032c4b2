"""Closing a runtime while its threads and the caller's threads work, in a process of its own
(§3, R44, R50, Errors: ClosedError): the process ends normally (no crash, no hang, no
traceback), every call ended completed or with ClosedError, and every commit that returned is
in the store when another process opens it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
BOUND = 240  # a hang detector for the whole child, never a speed bound

TABLES = {"rows": sc.table(id="integer primary key", who="integer not null", tag="text")}

_CHILD = """
import sys, threading, time
import sqlite_cells as sc

TABLES = {"rows": sc.table(id="integer primary key", who="integer not null", tag="text")}
store, trials = sys.argv[1], int(sys.argv[2])
wrong = []
for trial in range(trials):
    rt = sc.Runtime(f"{store}/t{trial}", poll_interval=0.01, query_timeout=2.0)
    space = rt.space("demo")
    db = space.sqlite_database("db", tables=TABLES)
    with space.transact():
        db.exec("INSERT INTO rows (who, tag) VALUES (-1, 'seed')")
    db.query("SELECT count(*) AS n FROM rows").observe().subscribe(lambda _: None)
    c = space.cell("c", default=0)
    sc.derive(c, lambda v: v + 1).observe().subscribe(lambda _: None)
    going = threading.Barrier(7)
    committed = []

    def body(who):
        going.wait()
        n = 0
        try:
            while True:
                n += 1
                if who < 3:
                    with space.transact() as tx:
                        c.set(n)
                        db.exec("INSERT INTO rows (who, tag) VALUES (?, ?)", [who, f"{who}-{n}"])
                    committed.append(f"{who}-{n}")
                elif who < 5:
                    db.read("SELECT count(*) AS n FROM rows")
                else:
                    db.query("SELECT count(*) + ? AS n FROM rows", params=[n]).get()
        except sc.ClosedError:
            pass
        except BaseException as exc:
            wrong.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=body, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    going.wait()
    time.sleep(0.002 * (trial % 5))
    rt.close()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a call hung after close()"
    left = [t.name for t in threading.enumerate() if t.name.startswith("sqlite-cells")]
    if left:
        wrong.append(f"threads left after close(): {left}")
    print(trial, " ".join(committed))
if wrong:
    print("\\n".join(wrong), file=sys.stderr)
    sys.exit(1)
"""


def test_close_racing_writers_readers_and_queries_in_a_process_of_its_own(tmp_path: Path) -> None:
    trials = 25
    for trial in range(trials):
        (tmp_path / f"t{trial}").mkdir()
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", _CHILD, str(tmp_path), str(trials)],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    for line in done.stdout.splitlines():
        trial, *tags = line.split()
        with sc.Runtime(tmp_path / f"t{trial}") as rt:
            db = rt.space("demo").sqlite_database("db", tables=TABLES)
            stored = {r["tag"] for r in db.read("SELECT tag FROM rows WHERE who >= 0")}
        # Every commit that returned is durable, and one told ClosedError wrote nothing.
        assert stored == set(tags), trial

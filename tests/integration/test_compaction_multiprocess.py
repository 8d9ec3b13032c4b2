"""A process behind its space's compacted log catches up from the cells and re-runs its live
queries whole; a process compacting while others write loses nothing (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw

import sqlite_cells as sc

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"events": sc.table(id="integer primary key", n="integer")}

BEHIND = """
import json, sys
import sqlite_cells as sc

TABLES = {"events": sc.table(id="integer primary key", n="integer")}
# A poll of an hour: this process only catches up when told to.
with sc.Runtime(sys.argv[1], poll_interval=3600) as rt:
    space = rt.space("demo")
    db = space.sqlite_database("events", tables=TABLES)
    counts, values = [], []
    db.query("SELECT count(*) AS c FROM events").observe().subscribe(
        lambda s: None if s.pending else counts.append(s.result[0]["c"])
    )
    space.cell("counter", default=0).observe().subscribe(values.append)
    rt.settle()
    print(json.dumps({"seen": space.file.seen_seq, "counts": counts, "values": values}), flush=True)
    sys.stdin.readline()
    caught = space.file.catch_up()
    rt.settle()
    print(json.dumps({"caught": caught, "seen": space.file.seen_seq, "counts": counts,
                      "values": values, "other": space.cell("other").get()}), flush=True)
"""


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _step(space: sc.Space, db: sc.SqliteDb, n: int) -> None:
    @sc.handler
    def step() -> None:
        space.cell("counter", default=0).update(lambda v: v + 1)
        db.exec("INSERT INTO events (n) VALUES (?)", [n])

    step()
    with space.transact():
        space.cell("other").set(n)


def test_a_process_behind_the_compaction_point_catches_up_and_reruns_queries(
    store: Path,
) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.file.compact_keep = 2
        space.file.compact_every = 2
        space.file.keep_per_target = 2
        db = space.sqlite_database("events", tables=TABLES)
        _step(space, db, 1)
        child = _spawn(BEHIND, str(store))
        assert child.stdout is not None and child.stdin is not None
        first = json.loads(child.stdout.readline() or "{}")
        assert first == {"seen": 2, "counts": [1], "values": [1]}
        for n in range(2, 12):
            _step(space, db, n)
        conn = apsw.Connection(str(space.file.path), flags=apsw.SQLITE_OPEN_READONLY)
        row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'compacted'").fetchone()
        conn.close()
        assert row is not None and int(row[0]) > first["seen"]  # the child is behind it
        child.stdin.write("go\n")
        child.stdin.flush()
        with child:
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        after = json.loads(out)
        assert after["caught"] is True and after["seen"] == 22
        assert after["counts"][-1] == 11 and after["values"][-1] == 11 and after["other"] == 11


WRITER = """
import sys
import sqlite_cells as sc

with sc.Runtime(sys.argv[1], poll_interval=0.01) as rt:
    space = rt.space("demo")
    space.file.compact_keep = 3
    space.file.compact_every = 3
    cell = space.cell("counter", default=0)

    @sc.handler
    def bump():
        cell.update(lambda v: v + 1)
        space.cell("p" + sys.argv[2]).update(lambda v: (v or 0) + 1)

    for _ in range(int(sys.argv[3])):
        bump()
"""


def test_processes_compacting_while_others_write_lose_nothing(store: Path) -> None:
    per_process = 150
    procs = [_spawn(WRITER, str(store), str(i), str(per_process)) for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        assert space.cell("counter").get() == 3 * per_process
        assert [space.cell(f"p{i}").get() for i in range(3)] == [per_process] * 3
        assert space.file.seen_seq == 3 * per_process


BEHIND_BIG = """
import json, sys
import sqlite_cells as sc

with sc.Runtime(sys.argv[1], poll_interval=3600) as rt:
    space = rt.space("demo")
    heads = []
    space.cell("big").observe().subscribe(lambda v: heads.append(v[:8]))
    rt.settle()
    print(json.dumps({"seen": space.file.seen_seq, "heads": heads}), flush=True)
    sys.stdin.readline()
    caught = space.file.catch_up()
    rt.settle()
    print(json.dumps({"caught": caught, "seen": space.file.seen_seq, "heads": heads,
                      "size": len(space.cell("big").get())}), flush=True)
"""


def test_a_process_behind_a_compaction_by_size_converges_to_current_values(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        space.file.compact_bytes = 128 * 1024
        big = space.cell("big")
        with space.transact():
            big.set("head0000" + "x" * 64 * 1024)
        # (Within ``with``: an assertion failing before the end still closes the child's pipes,
        # and the end of its stdin lets it finish.)
        with _spawn(BEHIND_BIG, str(store)) as child:
            assert child.stdout is not None and child.stdin is not None
            first = json.loads(child.stdout.readline() or "{}")
            assert first == {"seen": 1, "heads": ["head0000"]}
            for n in range(1, 12):
                with space.transact():
                    big.set(f"head{n:04d}" + "x" * 64 * 1024)
            conn = apsw.Connection(str(space.file.path), flags=apsw.SQLITE_OPEN_READONLY)
            row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'compacted'").fetchone()
            conn.close()
            assert row is not None and int(row[0]) > first["seen"]  # the child is behind it
            child.stdin.write("go\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        after = json.loads(out)
        assert after["caught"] is True and after["seen"] == 12
        assert after["heads"][-1] == "head0011" and after["size"] == 8 + 64 * 1024

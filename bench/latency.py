"""Figure 2 — commit → subscriber latency: from a handler returning to the live query's
subscriber receiving the new rows (a 20-row query), in the same process and in another process
(which learns of the commit by polling every ``poll_interval``). Also the same for a plain cell
across processes.

    python -m bench.latency [--quick] [--json PATH] [--profile]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse, profile

TABLES = {"messages": sc.table(id="integer primary key", body="text not null", ts="integer")}
QUERY = "SELECT id, body, ts FROM messages ORDER BY ts DESC LIMIT 20"
POLL = 0.02
ARGS = (str(POLL), QUERY)


def in_process(directory: Path, count: int) -> list[float]:
    with sc.Runtime(directory) as rt:
        db = rt.space("bench").sqlite_database("db", tables=TABLES)
        arrived: dict[int, float] = {}
        got = threading.Condition()

        def seen(state: sc.QueryState) -> None:
            if state.result:
                with got:
                    arrived[state.result[0]["ts"]] = time.perf_counter()
                    got.notify_all()

        db.query(QUERY).observe().subscribe(seen)

        @sc.handler
        def post(ts: int) -> None:
            db.exec("INSERT INTO messages (body, ts) VALUES (?, ?)", ["x", ts])

        for ts in range(20):
            post(ts)
        rt.settle()
        delays = []
        for ts in range(100, 100 + count):
            post(ts)
            returned = time.perf_counter()
            with got:
                got.wait_for(lambda ts=ts: ts in arrived, timeout=5)
            delays.append(arrived[ts] - returned)
        return delays


WATCHER = """
import sys, time, threading
import sqlite_cells as sc
store, kind, count, poll, query = sys.argv[1:6]
count, poll = int(count), float(poll)
tables = {"messages": sc.table(id="integer primary key", body="text not null", ts="integer")}
with sc.Runtime(store, poll_interval=poll) as rt:
    space = rt.space("bench")
    done = threading.Event()
    def stamp(value):
        print(value, time.perf_counter(), flush=True)
        if value == count - 1:
            done.set()
    if kind == "query":
        db = space.sqlite_database("db", tables=tables)
        db.query(query).observe().subscribe(
            lambda s: s.result and stamp(s.result[0]["ts"]))
    else:
        space.cell("c", default=-1).observe().subscribe(stamp)
    rt.settle()
    print("ready", flush=True)
    done.wait(60)
"""


def across_processes(directory: Path, kind: str, count: int) -> list[float]:
    watcher = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WATCHER), str(directory), kind, str(count), *ARGS],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    for line in watcher.stdout:
        if line.strip() == "ready":
            break
    sent: dict[int, float] = {}
    with sc.Runtime(directory, poll_interval=POLL) as rt:
        space = rt.space("bench")
        db = space.sqlite_database("db", tables=TABLES)
        cell = space.cell("c", default=-1)

        @sc.handler
        def write(n: int) -> None:
            if kind == "query":
                db.exec("INSERT INTO messages (body, ts) VALUES (?, ?)", ["x", n])
            else:
                cell.set(n)

        for n in range(count):
            write(n)
            sent[n] = time.perf_counter()
            time.sleep(POLL * 1.5)  # one commit per poll, so each is seen on its own
    out, _ = watcher.communicate(timeout=120)
    received: dict[int, float] = {}
    for line in out.splitlines():
        value, stamp = line.split()
        received.setdefault(int(value), float(stamp))
    return [received[n] - sent[n] for n in sent if n in received]


def row(name: str, values: list[float], target_ms: float | None, *, q: float = 0.5) -> Row:
    ms = [v * 1000 for v in values]
    got = median(ms) if q == 0.5 else p(ms, q)
    return Row(
        name,
        "ms",
        got,
        p(ms, 0.9),
        target=f"≤ {target_ms:g} ms" if target_ms is not None else "",
        met=None if target_ms is None else got <= target_ms,
    )


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    count = 20 if args.quick else 300
    remote_count = 10 if args.quick else 100
    fig = Figure("latency", "2. Commit → subscriber latency", "python -m bench.latency")
    with tempfile.TemporaryDirectory() as a:
        local = in_process(Path(a), count)
    remote: dict[str, Any] = {}
    for kind in ("query", "cell"):
        with tempfile.TemporaryDirectory() as b:
            remote[kind] = across_processes(Path(b), kind, remote_count)
    in_row = fig.add(row("in-process, 20-row query, median", local, 1.0))
    fig.add(row("in-process, 20-row query, p99", local, None, q=0.99))
    budget = POLL * 1000 + 5
    fig.add(row("across processes, 20-row query, median", remote["query"], budget))
    fig.add(row("across processes, 20-row query, p99", remote["query"], budget, q=0.99))
    fig.add(row("across processes, cell, median", remote["cell"], budget))
    fig.notes.append(
        f"{count} commits in-process, {remote_count} across processes (one commit per "
        f"1.5 polls), poll_interval {POLL * 1000:.0f} ms; p90 column is the 90th percentile. "
        "Across processes the expected median is about poll_interval / 2 plus the re-run."
    )
    if args.profile and not in_row.met:
        with tempfile.TemporaryDirectory() as d:
            fig.profiles["in-process (main thread: the handler and the wait)"] = profile(
                lambda: in_process(Path(d), count)
            )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

"""Figure 9 — held locks: what holding SQLite's file locks as open file description locks costs
(``runtime/_file_locks.py``; Linux). The same work runs with the runtime's ``fcntl`` and ``close``
in SQLite's unix VFS and with SQLite's own calls put back (the baseline), alternating, each
run on a new runtime and store (a file's locks are never taken both ways):

* CPU per commit, syncs off: a handler's one-row ``db.exec``, process CPU time per commit;
* one ``db.read`` of one row, wall time per read.

Ratio = baseline / ours (1.00× = no cost).

    python -m bench.locks [--quick] [--runs N] [--json PATH]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse
from bench.write_throughput import TABLES, cpu_per_commit, handler_commit
from sqlite_cells.runtime import use_held_locks


def _per_read(rt: sc.Runtime, count: int) -> float:
    db = rt.space("bench").sqlite_database("db", tables=TABLES)
    start = time.perf_counter()
    for _ in range(count):
        db.read("SELECT body FROM messages WHERE id = 1")
    return (time.perf_counter() - start) / count * 1e6


def _measure(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder, sc.Runtime(Path(folder)) as rt:
        post = handler_commit(rt, 1, sync=False)
        return cpu_per_commit(post, count), _per_read(rt, count)


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    count = 50 if args.quick else 2000
    runs = 2 if args.quick else max(args.runs, 6)
    fig = Figure("locks", "Held locks: open file description locks vs SQLite's own", "")
    fig.command = "python -m bench.locks"
    if not sc.runtime.hold_locks():
        fig.notes.append("no open file description locks on this system: nothing to measure")
        fig.finish(args, started)
        return
    ours: dict[str, list[float]] = {"commit": [], "read": []}
    own: dict[str, list[float]] = {"commit": [], "read": []}
    try:
        for _ in range(runs):
            for held, into in ((False, own), (True, ours)):
                use_held_locks(held)
                commit, read = _measure(count)
                into["commit"].append(commit)
                into["read"].append(read)
    finally:
        use_held_locks(True)
    for key, name in (
        ("commit", "handler + db.exec, CPU per commit, syncs off"),
        ("read", "db.read of one row, per read"),
    ):
        mine, base = median(ours[key]), median(own[key])
        fig.add(Row(name, "µs", mine, p(ours[key], 0.9), baseline=base, ratio=base / mine))
    fig.notes.append(
        f"{runs} alternating runs of {count} commits and {count} reads each way; the baseline "
        "is SQLite's own fcntl and close (classic POSIX locks) in the same process"
    )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

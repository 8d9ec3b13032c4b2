"""Figure 3 — fan-out: 1, 10, 100 and 1000 live queries spread over 1 and over 100 databases, one
write to the first database, and the time from the handler's return until ``rt.settle()`` returns.
Re-runs are counted with a spy around the live query's read
(``sqlite_cells.read._query.read_rows``):
a write must re-run only the queries on the written database. The baseline is raw apsw running
the same number of queries one after another on one connection to the written file.

    python -m bench.fanout [--quick] [--runs N] [--json PATH] [--no-plot]
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import apsw

import sqlite_cells as sc
import sqlite_cells.read._workers as query_module
from bench._common import Figure, Row, median, p, parse, pyplot, save_plot

TABLES = {"t": sc.table(id="integer primary key", v="integer not null")}
QUERY = "SELECT count(*) AS n, max(v) AS top FROM t"


class Spy:
    """Counts live-query reads (one per run or re-run)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        self._real = vars(query_module)["read_batch"]

    def __enter__(self) -> Spy:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls += len(args[2]) - kwargs.get("start", 0)
            return self._real(*args, **kwargs)

        vars(query_module)["read_batch"] = counted  # a spy, in a benchmark only
        return self

    def __exit__(self, *exc: object) -> None:
        vars(query_module)["read_batch"] = self._real


def measure(directory: Path, n_queries: int, n_dbs: int, writes: int, spy: Spy) -> dict[str, Any]:
    with sc.Runtime(directory) as rt:
        space = rt.space("bench")
        dbs = [space.sqlite_database(f"db{i}", tables=TABLES) for i in range(n_dbs)]

        @sc.handler
        def put(db: sc.SqliteDb, v: int) -> None:
            db.exec("INSERT INTO t (v) VALUES (?)", [v])

        for db in dbs:
            put(db, 0)  # every file exists before the queries start
        queries = [dbs[i % n_dbs].query(QUERY) for i in range(n_queries)]
        rt.settle()
        expected = len(range(0, n_queries, n_dbs))
        settle, reruns = [], []
        for w in range(writes):
            spy.calls = 0  # everything settled: from here on only this write's re-runs count
            put(dbs[0], w + 1)
            start = time.perf_counter()
            rt.settle()
            settle.append(time.perf_counter() - start)
            reruns.append(spy.calls)
        assert all(q.get().error is None for q in queries)
        path = dbs[0].path
    raw = []
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    for _ in range(writes):
        start = time.perf_counter()
        for _ in range(expected):
            conn.execute("BEGIN")
            conn.execute(QUERY).fetchall()
            conn.execute("SELECT seq FROM _cf_watermark WHERE id = 0").fetchall()
            conn.execute("COMMIT")
        raw.append(time.perf_counter() - start)
    conn.close()
    return {"settle": settle, "reruns": reruns, "expected": expected, "raw": raw}


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    counts = [1, 10, 100] if args.quick else [1, 10, 100, 1000]
    db_counts = [1, 10] if args.quick else [1, 100]
    writes = 2 if args.quick else max(5, args.runs)
    fig = Figure("fanout", "3. Fan-out: one write, N live queries", "python -m bench.fanout")
    curves: dict[int, list[tuple[int, float, float]]] = {}
    with Spy() as spy:
        for n_dbs in db_counts:
            for n in counts:
                with tempfile.TemporaryDirectory() as d:
                    got = measure(Path(d), n, n_dbs, writes, spy)
                ms = [s * 1000 for s in got["settle"]]
                raw_ms = [s * 1000 for s in got["raw"]]
                exact = all(r == got["expected"] for r in got["reruns"])
                fig.add(
                    Row(
                        f"{n} queries / {n_dbs} db: settle after 1 write "
                        f"({median(got['reruns']):.0f} re-runs, expected {got['expected']})",
                        "ms",
                        median(ms),
                        p(ms, 0.9),
                        baseline=median(raw_ms),
                        ratio=median(raw_ms) / median(ms),
                        target="re-runs = queries on the written db",
                        met=exact,
                    )
                )
                per = median(ms) * 1000 / max(1, got["expected"])
                curves.setdefault(n_dbs, []).append((n, median(ms), per))
    for n_dbs, points in curves.items():
        fig.notes.append(
            f"{n_dbs} db(s): settle per re-run query "
            + ", ".join(f"{n} q → {per:.0f} µs" for n, _, per in points)
        )
    fig.notes.append(
        f"{writes} writes per configuration; baseline = raw apsw running the expected number of "
        "queries (each with its watermark read in one read transaction) one after another on one "
        "connection; ratio = baseline / ours."
    )
    plt = pyplot(args)
    if plt is not None:
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
        for n_dbs, points in curves.items():
            xs = [n for n, _, _ in points]
            left.plot(xs, [m for _, m, _ in points], "o-", label=f"{n_dbs} db(s)")
            right.plot(xs, [per for _, _, per in points], "o-", label=f"{n_dbs} db(s)")
        left.set(
            xscale="log", yscale="log", xlabel="live queries", ylabel="settle after 1 write (ms)"
        )
        right.set(xscale="log", xlabel="live queries", ylabel="per re-run query (µs)")
        for ax in (left, right):
            ax.legend()
            ax.grid(alpha=0.3)
        fig.plot = save_plot(plt, figure, "fanout")
    fig.finish(args, started)


if __name__ == "__main__":
    main()

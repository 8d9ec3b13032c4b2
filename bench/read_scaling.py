"""Figure 4 — read scaling: live queries re-running a CPU-heavy aggregate after one write, with
``query_workers`` = 1, 2 (and 4), and ``db.read`` of the same query from 1 vs 2 threads. apsw
releases the GIL while SQLite works, so two workers should nearly double read throughput on two
cores. Baseline: one worker (one thread) in the same process.

    python -m bench.read_scaling [--quick] [--runs N] [--json PATH] [--no-plot] [--profile]
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse, profile, pyplot, save_plot

TABLES = {"t": sc.table(id="integer primary key", v="integer not null")}
HEAVY = "SELECT sum((v * ?) % 7) AS s, count(DISTINCT v % 1000) AS d FROM t"


def build(directory: Path, rows: int) -> None:
    with sc.Runtime(directory) as rt:
        db = rt.space("bench").sqlite_database("heavy", tables=TABLES)
        batch = 50_000
        for start in range(0, rows, batch):
            with rt.space("bench").transact():
                db.exec_many(
                    "INSERT INTO t (v) VALUES (?)",
                    [[i * 7919 % 100_003] for i in range(start, min(rows, start + batch))],
                )


def live_rate(directory: Path, workers: int, n_queries: int, writes: int) -> list[float]:
    """Re-run queries per second after each write (settle time of ``n_queries`` re-runs)."""
    with sc.Runtime(directory, query_workers=workers) as rt:
        db = rt.space("bench").sqlite_database("heavy", tables=TABLES)
        queries = [db.query(HEAVY, params=[i + 1]) for i in range(n_queries)]
        rt.settle()

        @sc.handler
        def put(v: int) -> None:
            db.exec("INSERT INTO t (v) VALUES (?)", [v])

        rates = []
        for w in range(writes):
            put(w)
            start = time.perf_counter()
            rt.settle()
            rates.append(n_queries / (time.perf_counter() - start))
        assert all(q.get().error is None for q in queries)
        return rates


def read_rate(directory: Path, threads: int, per_thread: int) -> float:
    """``db.read`` calls per second, ``threads`` threads each doing ``per_thread`` reads."""
    with sc.Runtime(directory) as rt:
        db = rt.space("bench").sqlite_database("heavy", tables=TABLES)
        db.read(HEAVY, [1])  # warm the pool and the guard

        def work() -> None:
            for i in range(per_thread):
                db.read(HEAVY, [i + 2])

        pool = [threading.Thread(target=work) for _ in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return threads * per_thread / (time.perf_counter() - start)


def raw_rate(path: Path, threads: int, per_thread: int) -> float:
    """The same reads with raw apsw, one connection per thread: the ceiling this machine allows
    right now (no guard, no pool, no authorizer, no progress handler)."""
    conns = [apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY) for _ in range(threads)]
    for conn in conns:
        conn.setbusytimeout(5_000)
        conn.execute("SELECT count(*) FROM t").fetchall()  # opened and WAL-index mapped

    def work(conn: apsw.Connection) -> None:
        for i in range(per_thread):
            conn.execute(HEAVY, (i + 2,)).fetchall()

    pool = [threading.Thread(target=work, args=(c,)) for c in conns]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return threads * per_thread / elapsed


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    rows = 20_000 if args.quick else 200_000
    n_queries = 4 if args.quick else 12
    writes = 1 if args.quick else max(5, args.runs)
    worker_counts = [1, 2] if args.quick else [1, 2, 4]
    fig = Figure("read_scaling", "4. Read scaling (query_workers)", "python -m bench.read_scaling")
    with tempfile.TemporaryDirectory() as d:
        directory = Path(d)
        build(directory, rows)
        # Rounds interleave the worker counts; each round's ratio is taken within the round, so
        # a burst of load from elsewhere on this shared machine spoils one round, not the figure.
        live: dict[int, list[float]] = {w: [] for w in worker_counts}
        round_ratios: dict[int, list[float]] = {w: [] for w in worker_counts}
        for _ in range(1 if args.quick else 4):
            got = {w: live_rate(directory, w, n_queries, writes) for w in worker_counts}
            for w in worker_counts:
                live[w] += got[w]
                round_ratios[w].append(median(got[w]) / median(got[1]))
        for w in worker_counts:
            ratio = median(round_ratios[w])
            fig.add(
                Row(
                    f"live re-runs/s, query_workers={w} ({n_queries} queries, 1 write)",
                    "/s",
                    median(live[w]),
                    p(live[w], 0.1),
                    baseline=None if w == 1 else median(live[1]),
                    ratio=None if w == 1 else ratio,
                    target="≥ 1.6× (vs 1 worker)" if w == 2 else "",
                    met=ratio >= 1.6 if w == 2 else None,
                )
            )
        fig.notes.append(
            "query_workers=2 vs 1, ratio per round: "
            + ", ".join(f"{r:.2f}" for r in round_ratios[2])
        )
        per_thread = 3 if args.quick else 20
        one, two, pair_ratios, raw_ratios = [], [], [], []
        with sc.Runtime(directory) as rt:
            path = rt.space("bench").sqlite_database("heavy", tables=TABLES).path
        for _ in range(1 if args.quick else max(7, args.runs)):
            one.append(read_rate(directory, 1, per_thread))
            two.append(read_rate(directory, 2, per_thread))
            pair_ratios.append(two[-1] / one[-1])
            raw_ratios.append(raw_rate(path, 2, per_thread) / raw_rate(path, 1, per_thread))
        fig.add(Row("db.read/s, 1 thread", "/s", median(one), p(one, 0.1)))
        ratio = median(pair_ratios)
        fig.add(
            Row(
                "db.read/s, 2 threads",
                "/s",
                median(two),
                p(two, 0.1),
                baseline=median(one),
                ratio=ratio,
                target="≥ 1.6× (vs 1 thread)",
                met=ratio >= 1.6,
            )
        )
        fig.add(
            Row(
                "raw apsw, 2 threads vs 1 (the machine's ceiling now), ratio",
                "×",
                median(raw_ratios),
                p(raw_ratios, 0.1),
            )
        )
        fig.notes.append(
            "db.read, 2 threads vs 1, ratio per interleaved pair: "
            + ", ".join(f"{r:.2f}" for r in pair_ratios)
            + "; the ratio column is the median of these."
        )
        fig.notes.append(
            f"{rows:,} rows; one heavy aggregate takes about {1000 / median(one):.0f} ms on one "
            f"thread; p90 column is the 10th percentile of the rates (the slow tail). "
            "The machine is shared: two workers can only scale as far as two idle cores allow."
        )
        plt = pyplot(args)
        if plt is not None:
            figure, ax = plt.subplots(figsize=(5, 3.5))
            ax.plot(worker_counts, [median(live[w]) for w in worker_counts], "o-", label="live")
            ax.plot(worker_counts, [median(live[1]) * w for w in worker_counts], ":", label="ideal")
            ax.set(xlabel="query_workers", ylabel="re-runs/s", xticks=worker_counts)
            ax.legend()
            ax.grid(alpha=0.3)
            fig.plot = save_plot(plt, figure, "read_scaling")
        if args.profile and any(r.met is False for r in fig.rows):
            fig.profiles["2 threads of db.read, main thread"] = profile(
                lambda: read_rate(directory, 2, per_thread)
            )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

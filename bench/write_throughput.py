"""Figure 1 — write throughput: commits/s of a handler doing one ``db.exec`` insert vs raw apsw
doing the same durable work on the same kind of files (space file synchronous=FULL in WAL +
attached database file synchronous=NORMAL, the insert, the handle cell, the watermark, a commit
row). Also one handler doing 100 inserts with ``exec_many`` vs raw ``executemany``, and cell-only
commits/s.

    python -m bench.write_throughput [--quick] [--runs N] [--json PATH] [--profile]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse, profile, rate

TABLES = {"messages": sc.table(id="integer primary key", body="text not null", ts="integer")}
INSERT = "INSERT INTO messages (body, ts) VALUES (?, ?)"


def raw_apsw(directory: Path, count: int, batch: int) -> float:
    """Commits/s of the same durable work done with apsw directly (``batch`` rows per commit)."""
    space = apsw.Connection(str(directory / "space.sqlite"))
    # One pragma per call: a pragma that returns a row stops apsw's run of a multi-statement text.
    space.execute("PRAGMA journal_mode=WAL").fetchall()
    space.execute("PRAGMA synchronous=FULL")
    space.execute(
        "CREATE TABLE _cf_cells (id TEXT PRIMARY KEY, value BLOB, rev INTEGER) WITHOUT ROWID;"
        "CREATE TABLE _cf_log (seq INTEGER PRIMARY KEY, record BLOB)"
    )
    space.execute("ATTACH ? AS _cf_db", (str(directory / "db.sqlite"),))
    space.execute("PRAGMA _cf_db.journal_mode=WAL").fetchall()
    space.execute("PRAGMA _cf_db.synchronous=NORMAL")
    space.execute(
        "CREATE TABLE _cf_db.messages (id INTEGER PRIMARY KEY, body TEXT NOT NULL, ts INTEGER);"
        "CREATE TABLE _cf_db._cf_watermark (id INTEGER PRIMARY KEY, seq INTEGER);"
        "INSERT INTO _cf_db._cf_watermark VALUES (0, 0)"
    )
    seq = 0

    def commit() -> None:
        nonlocal seq
        seq += 1
        space.execute("BEGIN IMMEDIATE")
        space.execute(
            "INSERT INTO _cf_cells VALUES ('handle', ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET value = excluded.value, rev = excluded.rev",
            (b'{"rev": %d}' % seq, seq),
        )
        if batch == 1:
            space.execute(INSERT, ("hello", seq))
        else:
            space.executemany(INSERT, [("hello", seq * batch + i) for i in range(batch)])
        space.execute("UPDATE _cf_db._cf_watermark SET seq = ? WHERE id = 0", (seq,))
        space.execute("INSERT INTO _cf_log VALUES (?, ?)", (seq, b'{"seq": %d}' % seq))
        space.execute("COMMIT")

    result = rate(commit, count)
    space.close()
    return result


def handler_commit(rt: sc.Runtime, batch: int) -> Callable[[], object]:
    db = rt.space("bench").sqlite_database("db", tables=TABLES)
    ts = 0

    @sc.handler
    def post() -> None:
        nonlocal ts
        ts += 1
        if batch == 1:
            db.exec(INSERT, ["hello", ts])
        else:
            db.exec_many(INSERT, [["hello", ts * batch + i] for i in range(batch)])

    post()  # the first write creates the file; not what is measured
    return post


def handler_rate(directory: Path, count: int, batch: int) -> float:
    with sc.Runtime(directory) as rt:
        return rate(handler_commit(rt, batch), count)


def handler_cells(directory: Path, count: int) -> float:
    with sc.Runtime(directory) as rt:
        counter = rt.space("bench").cell("counter", default=0)

        @sc.handler
        def bump() -> None:
            counter.update(lambda v: v + 1)

        return rate(bump, count)


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    count = 40 if args.quick else 500
    runs = 1 if args.quick else args.runs
    fig = Figure("write_throughput", "1. Write throughput", "python -m bench.write_throughput")
    cases = {"1 insert": (1, count), "exec_many 100 rows": (100, max(10, count // 5))}
    missed = []
    for label, (batch, n) in cases.items():
        raw, ours, ratios = [], [], []
        for _ in range(runs):  # interleaved, so both see the same machine load
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                raw.append(raw_apsw(Path(a), n, batch))
                ours.append(handler_rate(Path(b), n, batch))
            ratios.append(ours[-1] / raw[-1])
        ratio = median(ours) / median(raw)
        fig.add(Row(f"raw apsw, {label}, commits/s", "/s", median(raw), p(raw, 0.1)))
        row = fig.add(
            Row(
                f"handler + db.{'exec' if batch == 1 else 'exec_many'}, {label}, commits/s",
                "/s",
                median(ours),
                p(ours, 0.1),
                baseline=median(raw),
                ratio=ratio,
                target="≥ 0.5× (aim 0.7×)",
                met=ratio >= 0.5,
            )
        )
        if not row.met:
            missed.append((label, batch, n))
        fig.notes.append(
            f"{label}: {n} commits × {runs} runs; per-run ratios "
            + ", ".join(f"{r:.2f}" for r in ratios)
        )
    cells = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as c:
            cells.append(handler_cells(Path(c), count))
    fig.add(Row("handler, one cell update, commits/s", "/s", median(cells), p(cells, 0.1)))
    fig.notes.append("p90 column for rates is the 10th percentile (the slow tail).")
    if args.profile:
        for label, batch, n in missed:
            with tempfile.TemporaryDirectory() as d, sc.Runtime(Path(d)) as rt:
                post = handler_commit(rt, batch)
                fig.profiles[f"handler, {label}"] = profile(
                    lambda post=post, n=n: [post() for _ in range(n)]
                )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

"""Figure 7 — scale: 1,000 databases in one space with ``read_pool_size=64`` (open connections and
the process's open files stay bounded, reads of every database keep working), and a 1,000,000-row
table queried with ``ORDER BY … LIMIT 20`` (by ``db.read`` and by a live query's re-run). Baselines:
raw apsw opening the file and running the same read, and raw apsw on an open connection.

    python -m bench.scale [--quick] [--runs N] [--json PATH] [--profile]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse, profile

SMALL = {"t": sc.table(id="integer primary key", v="integer not null")}
BIG = {
    "t": sc.table(
        id="integer primary key",
        body="text not null",
        ts="integer not null",
        indexes={"by_ts": ["ts"]},
    )
}
TOP = "SELECT id, body, ts FROM t ORDER BY ts DESC LIMIT 20"
# A pooled connection's file, -wal and -shm, and (Linux) the description its file's locks are
# held on when a read-only connection locked the file first (runtime/_file_locks.py).
FDS_PER_CONNECTION = 4
POOL = 64


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def many_databases(fig: Figure, directory: Path, n_dbs: int) -> None:
    fds_before = open_fds()
    with sc.Runtime(directory, read_pool_size=POOL) as rt:
        space = rt.space("bench")
        dbs = [space.sqlite_database(f"db{i}", tables=SMALL) for i in range(n_dbs)]

        @sc.handler
        def put(db: sc.SqliteDb, v: int) -> None:
            db.exec("INSERT INTO t (v) VALUES (?)", [v])

        start = time.perf_counter()
        for i, db in enumerate(dbs):
            put(db, i)
        create_s = time.perf_counter() - start
        peak_conns, peak_fds, lat = 0, 0, []
        for sweep in range(2):  # every database, twice: the pool turns over completely
            for i, db in enumerate(dbs):
                t0 = time.perf_counter()
                rows = db.read("SELECT v FROM t")
                lat.append((time.perf_counter() - t0) * 1e6)
                assert rows == [{"v": i}], (sweep, i, rows)
                peak_conns = max(peak_conns, rt.read_pool.open_connections)
                if i % 50 == 0:
                    peak_fds = max(peak_fds, open_fds())
        peak_fds = max(peak_fds, open_fds())
        raw = []
        for db in dbs[:200]:
            t0 = time.perf_counter()
            conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
            conn.execute("SELECT v FROM t").fetchall()
            conn.close()
            raw.append((time.perf_counter() - t0) * 1e6)
    fig.add(
        Row(
            f"{n_dbs} dbs: db.read of a db evicted from the pool",
            "µs",
            median(lat),
            p(lat, 0.9),
            baseline=median(raw),
            ratio=median(raw) / median(lat),
            target="all reads correct",
            met=True,
        )
    )
    fig.add(
        Row(
            f"{n_dbs} dbs: peak read_pool.open_connections (read_pool_size={POOL})",
            "",
            peak_conns,
            target=f"≤ {POOL} + workers",
            met=peak_conns <= POOL + 2,
        )
    )
    fig.add(
        Row(
            f"{n_dbs} dbs: peak open fds (before the runtime: {fds_before})",
            "",
            peak_fds,
            target=f"≤ {FDS_PER_CONNECTION} per pooled connection + 32 "
            f"(= {FDS_PER_CONNECTION * POOL + 32} more)",
            met=peak_fds - fds_before <= FDS_PER_CONNECTION * POOL + 32,
        )
    )
    fig.notes.append(
        f"{n_dbs} databases created by one first write each in {create_s:.1f} s "
        f"({create_s / n_dbs * 1000:.1f} ms per database, file creation and DDL included). "
        "Baseline for the evicted read: raw apsw open + query + close of the same kind of file. "
        "A WAL connection holds 3 files (database, -wal, -shm)."
    )


def big_table(fig: Figure, directory: Path, rows: int, reads: int, args_profile: bool) -> None:
    with sc.Runtime(directory) as rt:
        space = rt.space("bench")
        db = space.sqlite_database("big", tables=BIG)
        start = time.perf_counter()
        batch = 100_000
        for first in range(0, rows, batch):
            with space.transact():
                db.exec_many(
                    "INSERT INTO t (body, ts) VALUES (?, ?)",
                    [["x" * 20, (i * 7919) % rows] for i in range(first, min(rows, first + batch))],
                )
        build_s = time.perf_counter() - start
        read_us = []
        for _ in range(reads):
            t0 = time.perf_counter()
            got = db.read(TOP)
            read_us.append((time.perf_counter() - t0) * 1e3)
            assert len(got) == 20
        live = db.query(TOP)
        rt.settle()

        @sc.handler
        def put(ts: int) -> None:
            db.exec("INSERT INTO t (body, ts) VALUES (?, ?)", ["new", ts])

        settle_ms = []
        for k in range(min(reads, 50)):
            put(rows + k)
            t0 = time.perf_counter()
            rt.settle()
            settle_ms.append((time.perf_counter() - t0) * 1e3)
            assert live.get().result[0]["ts"] == rows + k
        conn = apsw.Connection(str(db.path), flags=apsw.SQLITE_OPEN_READONLY)
        raw = []
        for _ in range(reads):
            t0 = time.perf_counter()
            conn.execute(TOP).fetchall()
            raw.append((time.perf_counter() - t0) * 1e3)
        conn.close()
        row = fig.add(
            Row(
                f"{rows:,}-row table: db.read ORDER BY ts DESC LIMIT 20",
                "ms",
                median(read_us),
                p(read_us, 0.9),
                baseline=median(raw),
                ratio=median(raw) / median(read_us),
                target="≤ 3 ms",
                met=median(read_us) <= 3,
            )
        )
        fig.add(
            Row(
                f"{rows:,}-row table: live query, write → settled",
                "ms",
                median(settle_ms),
                p(settle_ms, 0.9),
                target="≤ 3 ms",
                met=median(settle_ms) <= 3,
            )
        )
        fig.notes.append(
            f"{rows:,} rows built with exec_many in batches of {batch:,} in {build_s:.1f} s "
            f"({rows / build_s:,.0f} rows/s, the commit log keeps each batch's ops and changeset). "
            "Baseline for the read: raw apsw on an already open connection (no read transaction "
            "set-up, no guard, no authorizer, statement cache on)."
        )
        if args_profile and not row.met:
            fig.profiles["db.read of the big table"] = profile(
                lambda: [db.read(TOP) for _ in range(reads)]
            )


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    fig = Figure("scale", "7. Scale", "python -m bench.scale")
    with tempfile.TemporaryDirectory() as d:
        many_databases(fig, Path(d), 150 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as d:
        big_table(
            fig,
            Path(d),
            10_000 if args.quick else 1_000_000,
            20 if args.quick else 200,
            args.profile,
        )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

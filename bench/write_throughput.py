"""Figure 1 — write throughput: commits/s of a handler doing one ``db.exec`` insert vs raw apsw
doing the same durable work on the same kind of files (space file synchronous=FULL in WAL +
attached database file synchronous=NORMAL, the insert, the handle cell, the watermark, a commit
row); one handler doing 100 inserts with ``exec_many`` vs raw ``executemany``; CPU per commit
with syncs off (both sides ``synchronous=OFF``); 1, 2 and 4 writer threads against one raw
writer (and 4 threads writing cells only), each thread making as many commits as the one-writer
runs (400: a run of a few dozen commits measures thread start-up and the WAL file's first growth
more than throughput); and how many statements and WAL pages each side writes per commit.

    python -m bench.write_throughput [--quick] [--runs N] [--json PATH] [--profile]
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse, profile, rate
from sqlite_cells.runtime._space_file import WRITER_STATEMENTS

TABLES = {"messages": sc.table(id="integer primary key", body="text not null", ts="integer")}
INSERT = "INSERT INTO messages (body, ts) VALUES (?, ?)"


class Raw:
    """The baseline: the same durable work with apsw directly."""

    def __init__(self, directory: Path, *, sync: bool = True) -> None:
        self.directory = directory
        self.conn = self.open(sync=sync, create=True)

    def open(self, *, sync: bool, create: bool = False) -> apsw.Connection:
        # The runtime's write connection's statement cache size: with apsw's default (100) an
        # executemany of 100 rows evicts the commit's other statements (see WRITER_STATEMENTS).
        conn = apsw.Connection(
            str(self.directory / "space.sqlite"), statementcachesize=WRITER_STATEMENTS
        )
        conn.setbusytimeout(30_000)
        # One pragma per call: a pragma that returns a row stops apsw's run of a multi-statement
        # text.
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute(f"PRAGMA synchronous={'FULL' if sync else 'OFF'}")
        if create:
            conn.execute(
                "CREATE TABLE _cf_cells (id TEXT PRIMARY KEY, value BLOB, rev INTEGER) "
                "WITHOUT ROWID; CREATE TABLE _cf_log (seq INTEGER PRIMARY KEY, record BLOB)"
            )
        conn.execute("ATTACH ? AS _cf_db", (str(self.directory / "db.sqlite"),))
        conn.execute("PRAGMA _cf_db.journal_mode=WAL").fetchall()
        conn.execute(f"PRAGMA _cf_db.synchronous={'NORMAL' if sync else 'OFF'}")
        if create:
            conn.execute(
                "CREATE TABLE _cf_db.messages (id INTEGER PRIMARY KEY, body TEXT NOT NULL, "
                "ts INTEGER); CREATE TABLE _cf_db._cf_watermark (id INTEGER PRIMARY KEY, "
                "seq INTEGER); INSERT INTO _cf_db._cf_watermark VALUES (0, 0)"
            )
        return conn

    @staticmethod
    def commit(conn: apsw.Connection, batch: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        seq = 1 + conn.execute("SELECT coalesce(max(seq), 0) FROM _cf_log").fetchall()[0][0]
        conn.execute(
            "INSERT INTO _cf_cells VALUES ('handle', ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET value = excluded.value, rev = excluded.rev",
            (b'{"rev": %d}' % seq, seq),
        )
        if batch == 1:
            conn.execute(INSERT, ("hello", seq))
        else:
            conn.executemany(INSERT, [("hello", seq * batch + i) for i in range(batch)])
        conn.execute("UPDATE _cf_db._cf_watermark SET seq = ? WHERE id = 0", (seq,))
        conn.execute("INSERT INTO _cf_log VALUES (?, ?)", (seq, b'{"seq": %d}' % seq))
        conn.execute("COMMIT")

    def work(self, batch: int) -> Callable[[], None]:
        return lambda: self.commit(self.conn, batch)


def handler_commit(rt: sc.Runtime, batch: int, *, sync: bool = True) -> Callable[[], object]:
    space = rt.space("bench")
    db = space.sqlite_database("db", tables=TABLES)
    ts = 0

    @sc.handler
    def post() -> None:
        nonlocal ts
        ts += 1
        if batch == 1:
            db.exec(INSERT, ["hello", ts])
        else:
            db.exec_many(INSERT, [["hello", ts * batch + i] for i in range(batch)])

    post()  # the first write creates and attaches the file; not what is measured
    if not sync:
        with space.file.write_connection() as conn:
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA _cf_db.synchronous=OFF")
    return post


def cpu_per_commit(work: Callable[[], object], count: int) -> float:
    """Process CPU time (all threads: the scheduler and poller included) per call, in µs."""
    start = time.process_time()
    for _ in range(count):
        work()
    return (time.process_time() - start) / count * 1e6


def writers_rate(work: Callable[[int], Callable[[], object]], writers: int, each: int) -> float:
    """Commits/s of ``writers`` threads, each making ``each`` commits with its own ``work``."""
    jobs = [work(n) for n in range(writers)]
    barrier = threading.Barrier(writers + 1)

    def run(job: Callable[[], object]) -> None:
        barrier.wait()
        for _ in range(each):
            job()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return writers * each / (time.perf_counter() - start)


def counts_per_commit(directory: Path, commits: int) -> tuple[float, float, float, float]:
    """(statements, WAL pages) per commit of a ``db.exec`` handler, and of the raw baseline."""
    (directory / "raw").mkdir()
    raw = Raw(directory / "raw")
    ours = directory / "ours"
    ours.mkdir()
    with sc.Runtime(ours) as rt:
        post = handler_commit(rt, 1)
        with rt.space("bench").file.write_connection() as conn:
            ours_counts = _count(conn, lambda: post(), commits, user_statements=1)
    raw_counts = _count(raw.conn, raw.work(1), commits, user_statements=0)
    raw.conn.close()
    return (*ours_counts, *raw_counts)


def _count(
    conn: apsw.Connection, work: Callable[[], object], commits: int, *, user_statements: int
) -> tuple[float, float]:
    statements = 0

    def trace(_cursor: apsw.Cursor, _sql: str, _bindings: object) -> bool:
        nonlocal statements
        statements += 1
        return True

    conn.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("PRAGMA _cf_db.wal_checkpoint(TRUNCATE)").fetchall()
    conn.wal_autocheckpoint(0)
    before = _wal_frames(conn)
    conn.exec_trace = trace
    for _ in range(commits):
        work()
    conn.exec_trace = None
    frames = _wal_frames(conn) - before
    conn.wal_autocheckpoint(1000)
    # The user statement runs on a cursor with its own tracer, so it is counted by hand.
    return (statements / commits + user_statements, frames / commits)


def _wal_frames(conn: apsw.Connection) -> int:
    frames = 0
    for schema in ("main", "_cf_db"):
        path = Path(conn.db_filename(schema) + "-wal")
        page = conn.execute(f"PRAGMA {schema}.page_size").fetchall()[0][0]
        if path.exists() and path.stat().st_size > 32:
            frames += (path.stat().st_size - 32) // (page + 24)
    return frames


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    count = 40 if args.quick else 400
    runs = 1 if args.quick else args.runs
    fig = Figure("write_throughput", "1. Write throughput", "python -m bench.write_throughput")
    _throughput(fig, count, runs)
    _cpu(fig, count, runs)
    _writers(fig, count, runs)
    with tempfile.TemporaryDirectory() as d:
        s_ours, w_ours, s_raw, w_raw = counts_per_commit(Path(d), 10 if args.quick else 50)
    fig.notes.append(
        f"per commit (1 insert): db.exec handler {s_ours:.1f} statements and {w_ours:.1f} WAL "
        f"pages; raw apsw {s_raw:.1f} statements and {w_raw:.1f} WAL pages (the runtime also "
        "keeps the changeset in the record and in the file's journal, and indexes the op)"
    )
    fig.notes.append("p90 column for rates is the 10th percentile (the slow tail).")
    if args.profile:
        with tempfile.TemporaryDirectory() as d, sc.Runtime(Path(d)) as rt:
            post = handler_commit(rt, 1, sync=False)
            fig.profiles["handler, 1 insert, syncs off"] = profile(
                lambda: [post() for _ in range(count)]
            )
    fig.finish(args, started)


def _throughput(fig: Figure, count: int, runs: int) -> None:
    cases = {"1 insert": (1, count), "exec_many 100 rows": (100, max(10, count // 5))}
    for label, (batch, n) in cases.items():
        raw, ours, ratios = [], [], []
        for _ in range(runs):  # interleaved, so both see the same machine load
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                baseline = Raw(Path(a))
                raw.append(rate(baseline.work(batch), n))
                baseline.conn.close()
                with sc.Runtime(Path(b)) as rt:
                    post = handler_commit(rt, batch)
                    ours.append(rate(lambda post=post: post(), n))
            ratios.append(ours[-1] / raw[-1])
        ratio = median(ours) / median(raw)
        verb = "exec" if batch == 1 else "exec_many"
        fig.add(Row(f"raw apsw, {label}, commits/s", "/s", median(raw), p(raw, 0.1)))
        fig.add(
            Row(
                f"handler + db.{verb}, {label}, commits/s",
                "/s",
                median(ours),
                p(ours, 0.1),
                baseline=median(raw),
                ratio=ratio,
                target="≥ 0.7× raw apsw",
                met=ratio >= 0.7,
            )
        )
        fig.notes.append(
            f"{label}: {n} commits × {runs} runs; per-run ratios "
            + ", ".join(f"{r:.2f}" for r in ratios)
        )


def _cpu(fig: Figure, count: int, runs: int) -> None:
    raw, ours = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            baseline = Raw(Path(a), sync=False)
            raw.append(cpu_per_commit(baseline.work(1), count))
            baseline.conn.close()
            with sc.Runtime(Path(b)) as rt:
                post = handler_commit(rt, 1, sync=False)
                ours.append(cpu_per_commit(post, count))
    fig.add(Row("raw apsw, CPU per commit, syncs off", "µs", median(raw), p(raw, 0.9)))
    fig.add(
        Row(
            "handler + db.exec, CPU per commit, syncs off",
            "µs",
            median(ours),
            p(ours, 0.9),
            baseline=median(raw),
            ratio=median(raw) / median(ours),
            target="≤ 150 µs",
            met=median(ours) <= 150,
        )
    )


def _writers(fig: Figure, each: int, runs: int) -> None:
    """N writer threads of ours vs one raw writer (one fsync per commit): the yardstick for
    group commit. Raw with N writers is noted too (SQLite's own lock, no grouping)."""
    raw_one = [_raw_writers(1, each) for _ in range(runs)]
    fig.add(Row("raw apsw, 1 writer, commits/s", "/s", median(raw_one), p(raw_one, 0.1)))

    def add(name: str, ours: list[float], *, target: bool) -> None:
        ratio = median(ours) / median(raw_one)
        fig.add(
            Row(
                f"{name}, commits/s",
                "/s",
                median(ours),
                p(ours, 0.1),
                baseline=median(raw_one),
                ratio=ratio,
                target="≥ 1.5× one raw writer" if target else "",
                met=ratio >= 1.5 if target else None,
            )
        )

    for writers in (1, 2, 4):
        raw, ours = [], []
        for _ in range(runs):
            raw.append(_raw_writers(writers, each))
            with tempfile.TemporaryDirectory() as b, sc.Runtime(Path(b)) as rt:
                post = handler_commit(rt, 1)
                ours.append(writers_rate(lambda n, post=post: post, writers, each))
        add(f"{writers} writer threads, handler + db.exec", ours, target=writers == 4)
        if writers > 1:
            fig.notes.append(
                f"{writers} raw writer threads (each its own connection): "
                f"{median(raw):,.0f} commits/s"
            )
    cells = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as b, sc.Runtime(Path(b)) as rt:
            cells.append(writers_rate(lambda n, rt=rt: cell_commit(rt, n), 4, each))
    add("4 writer threads, handler + one cell set", cells, target=True)


def cell_commit(rt: sc.Runtime, n: int) -> Callable[[], object]:
    """A handler setting a cell of its own (writer ``n``): a commit with cell writes only."""
    cell = rt.space("bench").cell(f"writer-{n}", default=0)
    count = 0

    @sc.handler
    def post() -> None:
        nonlocal count
        count += 1
        cell.set(count)

    return post


def _raw_writers(writers: int, each: int) -> float:
    with tempfile.TemporaryDirectory() as a:
        baseline = Raw(Path(a))
        conns = [baseline.open(sync=True) for _ in range(writers)]
        try:
            return writers_rate(
                lambda n, conns=conns: lambda: Raw.commit(conns[n], 1), writers, each
            )
        finally:
            for c in [*conns, baseline.conn]:
                c.close()


if __name__ == "__main__":
    main()

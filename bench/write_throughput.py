"""Write throughput: commits/s of a handler doing one ``db.exec`` insert vs raw apsw doing the same
durable work on the same kind of files (space file synchronous=FULL in WAL + attached database
file synchronous=NORMAL, one insert, the watermark, a commit row). Also cell-only commits/s.

    python -m bench.write_throughput [--quick] [--runs N]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import median, parse, rate, report

TABLES = {"messages": sc.table(id="integer primary key", body="text not null", ts="integer")}


def raw_apsw(directory: Path, count: int) -> float:
    space = apsw.Connection(str(directory / "space.sqlite"))
    space.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
    space.execute(
        "CREATE TABLE _cf_cells (id TEXT PRIMARY KEY, value BLOB, rev INTEGER) WITHOUT ROWID;"
        "CREATE TABLE _cf_log (seq INTEGER PRIMARY KEY, record BLOB)"
    )
    space.execute("ATTACH ? AS _cf_db", (str(directory / "db.sqlite"),))
    space.execute("PRAGMA _cf_db.journal_mode=WAL; PRAGMA _cf_db.synchronous=NORMAL")
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
        space.execute("INSERT INTO messages (body, ts) VALUES (?, ?)", ("hello", seq))
        space.execute("UPDATE _cf_db._cf_watermark SET seq = ? WHERE id = 0", (seq,))
        space.execute("INSERT INTO _cf_log VALUES (?, ?)", (seq, b'{"seq": %d}' % seq))
        space.execute("COMMIT")

    result = rate(commit, count)
    space.close()
    return result


def handler_exec(directory: Path, count: int) -> float:
    with sc.Runtime(directory) as rt:
        db = rt.space("bench").sqlite_database("db", tables=TABLES)
        ts = 0

        @sc.handler
        def post() -> None:
            nonlocal ts
            ts += 1
            db.exec("INSERT INTO messages (body, ts) VALUES (?, ?)", ["hello", ts])

        post()  # the first write creates the file; not what is measured
        return rate(post, count)


def handler_cells(directory: Path, count: int) -> float:
    with sc.Runtime(directory) as rt:
        counter = rt.space("bench").cell("counter", default=0)

        @sc.handler
        def bump() -> None:
            counter.update(lambda v: v + 1)

        return rate(bump, count)


def main() -> None:
    args = parse(__doc__ or "")
    count = 50 if args.quick else 1000
    runs = 1 if args.quick else args.runs
    raw, ours, cells = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            raw.append(raw_apsw(Path(a), count))
            ours.append(handler_exec(Path(b), count))
        with tempfile.TemporaryDirectory() as c:
            cells.append(handler_cells(Path(c), count))
    report(
        f"write throughput ({count} commits x {runs} runs, medians)",
        [
            ("raw apsw commits/s", f"{median(raw):.0f}"),
            ("handler + db.exec commits/s", f"{median(ours):.0f}"),
            ("ratio (target >= 0.5)", f"{median(ours) / median(raw):.2f}"),
            ("handler, cell only, commits/s", f"{median(cells):.0f}"),
        ],
    )


if __name__ == "__main__":
    main()

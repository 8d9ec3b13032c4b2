"""Figure 8 — cost that does not grow with history: RSS growth and space-file size after 100,000
commits over 100,000 distinct unwatched cells, and after 100,000 commits to one cell; and the
space-file size after 2,000 commits of a 100 KB value to one cell (compaction by size).

Each workload runs in a child process of its own (so one run's freed memory cannot hide the next
one's growth): RSS (``/proc/self/statm``) is read after a warm-up of 1,000 commits and again at the
end; the space file is measured after a last compaction and the runtime's close (which
checkpoints the WAL into it). The file is compared with the smallest space file holding the same
cells — the same file with its log cut to its last record, vacuumed — and, for the distinct cells,
with the bytes of ``_cf_cells`` content (ids, values, revs); the large value's file is compared
with its bound, twice the values plus the size floor (``COMPACT_BYTES``). Baseline: the same
workload with compaction and the cache bound switched off (what every commit cost before), in its
own child.

    python -m bench.history [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

import sqlite_cells as sc
from bench._common import Figure, Row, parse
from sqlite_cells.runtime._space_file import COMPACT_BYTES

WARMUP = 1_000
LARGE = 100_000  # bytes of the large value
LARGE_WARMUP = 20
RSS_TARGET_MIB = 50


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def floor_size(path: Path, directory: Path) -> int:
    """The size of a space file holding the same cells and no history: a copy with the log cut to
    its last record, vacuumed."""
    copy = directory / "floor.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute("VACUUM INTO ?", (str(copy),))
    conn.close()
    conn = apsw.Connection(str(copy))
    conn.execute("DELETE FROM _cf_log WHERE seq < (SELECT max(seq) FROM _cf_log)")
    conn.execute("DELETE FROM _cf_op_index")
    conn.execute("VACUUM")
    conn.close()
    size = copy.stat().st_size
    copy.unlink()
    return size


def child(kind: str, commits: int, unbounded: bool) -> dict[str, float]:
    """Run one workload here and return its measures."""
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        directory = Path(tmp)
        rt = sc.Runtime(directory / "store")
        space = rt.space("bench")
        file = space.file
        if unbounded:
            file.cache_size = 10**9
            file.compact_every = 10**9
            file.compact_bytes = 10**15
        cells = [space.cell(f"c{i}") for i in range(commits)] if kind == "distinct" else []
        one = space.cell("one")
        large = "x" * LARGE

        def commit(i: int) -> None:
            with space.transact():
                if kind == "large":
                    one.set(f"{i:08d}{large}")
                else:
                    (cells[i] if kind == "distinct" else one).set(i)

        warmup = LARGE_WARMUP if kind == "large" else WARMUP
        for i in range(warmup):
            commit(i)
        rt.settle()
        before = rss_mib()
        start = time.perf_counter()
        for i in range(warmup, commits):
            commit(i)
        seconds = time.perf_counter() - start
        rt.settle()
        after = rss_mib()
        cached, view = file.cached_count, rt.scheduler.view_count
        if not unbounded:
            file.compact()
        path = file.path
        rt.close()
        size = path.stat().st_size
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        row = conn.execute(
            "SELECT coalesce(sum(length(id) + length(value) + 8), 0) FROM _cf_cells"
        ).fetchone()
        content = int(row[0]) if row else 0
        (records,) = conn.execute("SELECT count(*) FROM _cf_log").fetchone() or (0,)
        conn.close()
        return {
            "rss_growth_mib": after - before,
            "commits_per_s": (commits - warmup) / seconds,
            "file_bytes": size,
            "floor_bytes": floor_size(path, directory),
            "content_bytes": content,
            "log_records": int(records),
            "cached": cached,
            "view": view,
        }


def run_child(kind: str, commits: int, unbounded: bool) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.history", "--child", kind, str(commits)]
    if unbounded:
        cmd.append("--unbounded")
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), "--unbounded" in sys.argv)))
        return
    args = parse(__doc__ or "")
    started = time.perf_counter()
    commits = 5_000 if args.quick else 100_000
    fig = Figure(
        "history",
        "8. History: memory and file size after many commits",
        "python -m bench.history" + (" --quick" if args.quick else ""),
    )
    for kind, label in (("distinct", "distinct unwatched cells"), ("one", "one cell")):
        ours = run_child(kind, commits, unbounded=False)
        base = run_child(kind, commits, unbounded=True)
        name = f"{commits:,} commits, {label}"
        growth = max(ours["rss_growth_mib"], 0.0)
        fig.add(
            Row(
                f"{name}: RSS growth after {WARMUP:,} warm-up commits",
                "MiB",
                growth,
                baseline=base["rss_growth_mib"],
                ratio=base["rss_growth_mib"] / growth if growth > 0.5 else None,
                target=f"≤ {RSS_TARGET_MIB} MiB",
                met=growth <= RSS_TARGET_MIB,
            )
        )
        fig.add(
            Row(
                f"{name}: space file / same cells without history",
                "×",
                ours["file_bytes"] / ours["floor_bytes"],
                baseline=base["file_bytes"] / base["floor_bytes"],
                target="≤ 2×",
                met=ours["file_bytes"] / ours["floor_bytes"] <= 2,
            )
        )
        if kind == "distinct":
            fig.add(
                Row(
                    f"{name}: space file / bytes of _cf_cells content",
                    "×",
                    ours["file_bytes"] / ours["content_bytes"],
                    baseline=base["file_bytes"] / base["content_bytes"],
                    target="≤ 2×",
                    met=ours["file_bytes"] / ours["content_bytes"] <= 2,
                )
            )
        fig.add(
            Row(
                f"{name}: commits/s",
                "/s",
                ours["commits_per_s"],
                baseline=base["commits_per_s"],
                ratio=ours["commits_per_s"] / base["commits_per_s"],
            )
        )
        fig.notes.append(
            f"{label}: file {ours['file_bytes'] / 1024:,.0f} KiB (baseline "
            f"{base['file_bytes'] / 1024:,.0f} KiB), the same cells without history "
            f"{ours['floor_bytes'] / 1024:,.0f} KiB, _cf_cells content "
            f"{ours['content_bytes'] / 1024:,.0f} KiB; log records kept {ours['log_records']:,} "
            f"(baseline {base['log_records']:,}); values cached {ours['cached']:,} (baseline "
            f"{base['cached']:,}); scheduler view {ours['view']:,} (baseline {base['view']:,})."
        )
    large_commits = 300 if args.quick else 2_000
    ours = run_child("large", large_commits, unbounded=False)
    base = run_child("large", large_commits, unbounded=True)
    bound = 2 * ours["content_bytes"] + COMPACT_BYTES
    fig.add(
        Row(
            f"{large_commits:,} commits of a {LARGE // 1000} KB value to one cell: space file",
            "MiB",
            ours["file_bytes"] / 2**20,
            baseline=base["file_bytes"] / 2**20,
            ratio=base["file_bytes"] / ours["file_bytes"],
            target=f"≤ 2× the value + {COMPACT_BYTES // 2**20} MiB",
            met=ours["file_bytes"] <= bound,
        )
    )
    fig.notes.append(
        f"large value: file {ours['file_bytes'] / 1024:,.0f} KiB (baseline "
        f"{base['file_bytes'] / 1024:,.0f} KiB), _cf_cells content "
        f"{ours['content_bytes'] / 1024:,.0f} KiB; log records kept {ours['log_records']:,} "
        f"(baseline {base['log_records']:,}); {ours['commits_per_s']:,.0f} commits/s (baseline "
        f"{base['commits_per_s']:,.0f})."
    )
    fig.notes.append(
        "Baseline: the same workload in the same code with the cache bound and compaction "
        "switched off (cache_size, compact_every and compact_bytes set huge), each in a child "
        "process of its own."
    )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

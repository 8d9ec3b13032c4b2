"""Run every figure and write ``bench/RESULTS.md``: the machine, the versions, a table per figure
(and its plot), the profiles of missed targets and the notes in ``bench/analysis.md``.

    python -m bench [--quick] [--profile] [--no-plot] [--only NAME ...]

Each figure runs in its own process, so one figure's threads, caches and files cannot skew the
next; the figures run one after another, never in parallel.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import apsw

from bench._common import BENCH_DIR, Figure, figure_from_json

FIGURES = [
    "write_throughput",
    "latency",
    "fanout",
    "read_scaling",
    "guard",
    "link_decode",
    "scale",
    "history",
    "locks",
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_revision() -> str:
    """The commit measured (``git describe``, read-only), or $BENCH_CODE_REV for a snapshot."""
    if os.environ.get("BENCH_CODE_REV"):
        return os.environ["BENCH_CODE_REV"]
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def machine() -> list[str]:
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("apsw", "sqlglot", "msgspec", "reactivex")
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"{platform.system()} {platform.release()}; load average at the start: {load}",
        f"- python {platform.python_version()}, SQLite {apsw.sqlite_lib_version()}, {versions}",
        f"- code measured: {code_revision()}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile each missed target")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--only", nargs="*", choices=FIGURES, default=FIGURES)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    header = machine()
    started = time.perf_counter()
    figures: list[Figure] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, "-m", f"bench.{name}", "--json", str(out)]
            cmd += [
                flag
                for flag, on in (
                    ("--quick", args.quick),
                    ("--profile", args.profile),
                    ("--no-plot", args.no_plot),
                )
                if on
            ]
            print(f"$ {' '.join(cmd[1:])}", flush=True)
            if subprocess.run(cmd, cwd=BENCH_DIR.parent, check=False).returncode != 0:
                failed.append(name)
                continue
            figures.append(figure_from_json(out))
    total = time.perf_counter() - started
    doc = ["# Benchmark results", ""]
    doc.append(
        "Written by `make bench` (`python -m bench --profile`); do not edit by hand — the "
        "analysis at the end comes from `bench/analysis.md`."
        + (" **Quick mode: few iterations, not figures to quote.**" if args.quick else "")
    )
    doc += ["", *header, f"- total time: {total:.0f} s", ""]
    doc.append(
        "Medians over runs (or samples); the `p90` column is the 90th percentile for times and the "
        "10th for rates (the slow side either way). Ratios are against a baseline measured in the "
        "same process, oriented so that higher is better."
    )
    doc += [
        "",
        "## Summary",
        "",
        "| figure | measure | median | target | met |",
        "|---|---|---:|---|:-:|",
    ]
    for fig in figures:
        for r in fig.rows:
            if r.met is not None:
                value = (
                    f"{r.ratio:.2f}×"
                    if r.ratio is not None and "×" in r.target
                    else (f"{r.median:.3g} {r.unit}".strip())
                )
                doc.append(
                    f"| {fig.key} | {r.name} | {value} | {r.target} | "
                    f"{'yes' if r.met else '**no**'} |"
                )
    if failed:
        doc += ["", f"**Failed to run:** {', '.join(failed)}"]
    for fig in figures:
        doc += ["", fig.markdown(), "", f"_({fig.seconds:.0f} s)_"]
    analysis = BENCH_DIR / "analysis.md"
    if analysis.exists():
        doc += ["", analysis.read_text().strip()]
    args.out.write_text("\n".join(doc) + "\n")
    print(f"wrote {args.out} in {total:.0f} s", flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

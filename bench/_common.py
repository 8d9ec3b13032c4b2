"""Shared helpers for the benchmarks: timing, medians, the figure table and its JSON, profiles.

Benchmarks compare against a baseline run in the same process, on the same kind of files, so the
ratio means something on a noisy machine. They are run on demand (``make bench``), never as timed
tests. Each script measures one figure, prints its table (markdown) and, with ``--json PATH``,
writes it for ``python -m bench`` to gather into ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


def parse(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few iterations, to check it runs")
    parser.add_argument("--runs", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figure as JSON to this path")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")
    parser.add_argument(
        "--profile", action="store_true", help="profile the workload of each missed target"
    )
    return parser.parse_args(argv)


def rate(work: Callable[[], None], count: int) -> float:
    """Operations per second of ``count`` calls of ``work``."""
    start = time.perf_counter()
    for _ in range(count):
        work()
    return count / (time.perf_counter() - start)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"## {title}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


# --- the figure: one table per script --------------------------------------------------------


@dataclass
class Row:
    """One measured line: median and p90 of the runs (or samples), the baseline's median measured
    in the same process, and ``ratio`` = ours / baseline oriented so that higher is better."""

    name: str
    unit: str
    median: float
    p90: float | None = None
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Figure:
    key: str
    title: str
    command: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plot: str | None = None
    profiles: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def markdown(self) -> str:
        out = [f"## {self.title}", "", f"`{self.command}`", ""]
        out.append("| measure | median | p90 | baseline median | ratio | target | met |")
        out.append("|---|---:|---:|---:|---:|---|:-:|")
        for r in self.rows:
            met = "–" if r.met is None else ("yes" if r.met else "**no**")
            out.append(
                f"| {r.name} | {fmt(r.median)} {r.unit} | {fmt(r.p90)} | {fmt(r.baseline)} "
                f"| {fmt(r.ratio, ratio=True)} | {r.target or '–'} | {met} |"
            )
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        if self.plot:
            out += ["", f"![{self.key}]({self.plot})"]
        for name, text in self.profiles.items():
            out += ["", f"<details><summary>profile: {name}</summary>", "", "```", text, "```"]
            out += ["", "</details>"]
        return "\n".join(out)

    def finish(self, args: argparse.Namespace, started: float) -> None:
        self.seconds = time.perf_counter() - started
        print(self.markdown(), flush=True)
        if args.json:
            args.json.write_text(json.dumps(asdict(self), indent=1))


def figure_from_json(path: Path) -> Figure:
    data: dict[str, Any] = json.loads(path.read_text())
    rows = [Row(**r) for r in data.pop("rows")]
    return Figure(rows=rows, **data)


def fmt(value: float | None, *, ratio: bool = False) -> str:
    if value is None:
        return "–"
    if ratio:
        return f"{value:.2f}×"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


# --- profiles and plots -----------------------------------------------------------------------


def profile(work: Callable[[], object], *, top: int = 18) -> str:
    """Where ``work`` spends its time on the calling thread: the top functions by own time and
    the top by cumulative time (cProfile; worker threads are not seen, say so where it matters)."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        work()
    finally:
        prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    lines = [ln.rstrip() for ln in out.getvalue().splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith(("Ordered by", "   List reduced"))]
    return "\n".join(keep)


def pyplot(args: argparse.Namespace) -> Any:
    """matplotlib's pyplot (headless), or None when plots are off or matplotlib is missing."""
    if args.no_plot:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; `make bench` installs it)")
        return None
    return plt


def save_plot(plt: Any, fig: Any, name: str) -> str:
    path = BENCH_DIR / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.name

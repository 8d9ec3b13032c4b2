"""Shared helpers for the benchmarks: timing, medians and ratios printed as a small table.

Benchmarks compare against a baseline run in the same process, on the same kind of files, so the
ratio means something on a noisy machine. They are run on demand, never as timed tests.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence


def parse(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few iterations, to check it runs")
    parser.add_argument("--runs", type=int, default=5, help="repetitions (median reported)")
    return parser.parse_args()


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

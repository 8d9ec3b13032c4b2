"""The benchmarks cannot rot: each figure's script runs once in ``--quick`` mode, in its own
process, and must exit 0 and print its table. Speed is never checked here (wall-clock bounds belong
in ``bench/``), and no plot is drawn, so matplotlib is not needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
TABLE_HEADER = "| measure | median | p90 | baseline median | ratio | target | met |"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", FIGURES)
def test_figure_runs_quick_and_prints_its_table(name: str) -> None:
    done = run(f"bench.{name}", "--quick", "--no-plot")
    assert done.returncode == 0, done.stderr[-3000:]
    assert TABLE_HEADER in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) >= 3, done.stdout  # the header and at least one measured row


def test_runner_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    done = run("bench", "--quick", "--no-plot", "--only", "guard", "link_decode", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "## 5. Statement guard" in text
    assert "## 6. Link decode" in text
    assert "SQLite " in text and "msgspec " in text

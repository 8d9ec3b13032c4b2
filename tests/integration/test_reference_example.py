"""The reference_lookup example runs and shows a pattern waiting for, then using, a source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from examples import reference_lookup

ROOT = Path(__file__).resolve().parents[2]


def test_reference_lookup_waits_then_answers(tmp_path: Path) -> None:
    lines = reference_lookup.main(str(tmp_path / "store"))
    assert lines[0].endswith("-> pending")
    assert lines[1].endswith("-> Japan")
    assert lines[2].endswith("-> Peru")
    assert lines[3] == "writing the source is refused: ReadOnlySource"


def test_reference_lookup_runs_as_a_module(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.reference_lookup", str(tmp_path / "store")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "-> Japan" in done.stdout and "-> Peru" in done.stdout

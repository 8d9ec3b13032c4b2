"""The reference_lookup example runs and shows a pattern waiting for, then using, a source."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def test_reference_lookup_on_a_store_keeps_its_file_beside_it(tmp_path: Path) -> None:
    """Run twice on a store (as the README invites): the reference file stays beside the store,
    both runs link the same one, and the store names no file that is gone (`inspect` finds
    nothing; it found one gone source per run, and `query … countries.db` named several)."""
    store = tmp_path / "store"
    for _ in range(2):
        reference_lookup.main(str(store))
    assert (tmp_path / "store-reference" / "countries.db").is_file()
    cli = str(Path(sys.executable).parent / "sqlite-cells")
    found = subprocess.run(
        [cli, "inspect", str(store)], capture_output=True, text=True, timeout=60, check=False
    )
    assert found.returncode == 0, found.stdout + found.stderr
    assert "GONE" not in found.stdout and "finding" not in found.stdout
    asked = subprocess.run(
        [cli, "query", str(store), "lookup", "countries.db", "SELECT name FROM countries",
         "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert "Kenya" in asked.stdout


def test_reference_lookup_stopped_while_making_its_file_makes_it_whole_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the example fills its reference file, then a run again on the same store:
    the file is made whole, and 'pe' is Peru. The half-made file (two of its rows, committed
    one by one) was taken as made, and the lookup of 'pe' answered None."""
    store = str(tmp_path / "store")
    countries = reference_lookup.COUNTRIES

    def interrupted() -> Iterator[tuple[str, str]]:
        yield from countries[:2]
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(reference_lookup, "COUNTRIES", interrupted())
        with pytest.raises(KeyboardInterrupt):
            reference_lookup.main(store)
    lines = reference_lookup.main(store)
    assert lines[1].endswith("-> Japan")
    assert lines[2].endswith("-> Peru")
    folder = tmp_path / "store-reference"
    assert sorted(p.name for p in folder.iterdir()) == ["countries.db"]

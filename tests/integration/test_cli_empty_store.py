"""One rule for an empty store path (SPEC §6 "the store is given the same way to every
command"): bad usage (exit 2) for every command, said on stderr; `demo`'s errors go to stderr
too."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import sqlite_cells as sc

from ..conftest import COMMAND

# Run in another directory, the command imports the same package as these tests.
ROOT = str(Path(sc.__file__).resolve().parent.parent)

COMMANDS = [
    ["demo", "--store", ""],
    ["inspect", "--store", ""],
    ["inspect", ""],
    ["check", "--store", ""],
    ["check", "--repair", "--store", ""],
    ["gc", "--yes", "--store", ""],
    ["cells", "--store", ""],
    ["tables", "--store", ""],
    ["query", "", "demo", "chat", "SELECT 1"],
    ["link", "sqlite:/nowhere.db", "demo", "of:x", "ref", "--store", ""],
]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [str(COMMAND), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_an_empty_store_path_is_bad_usage_for_every_command(
    tmp_path: Path, args: list[str]
) -> None:
    done = _cli(tmp_path, *args)
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    assert "the store path is empty" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created in the current directory


def test_a_demo_error_goes_to_stderr(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a store")
    done = _cli(tmp_path, "demo", "--store", str(tmp_path / "file"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "demo failed: StorePathError" in done.stderr and "Traceback" not in done.stderr

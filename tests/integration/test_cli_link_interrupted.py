"""Ctrl-C during `sqlite-cells link` (§6): the registration and the input's link are two commits,
and an interrupt that comes once the first is made waits for the second: the command says what
it linked and that it was interrupted, exits 130, and the store holds the whole link.

The interrupt is a real SIGINT the command's own process sends itself at the moment under test
(right after the registration returns), so the timing is exact on any machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sqlite_cells as sc

from .test_cli_contract import _counts, _piece_store

ROOT = Path(__file__).resolve().parents[2]

# Runs the command as `python -m sqlite_cells` does, with one SIGINT sent right after the file is
# registered (the first of the link's two commits).
RUN_INTERRUPTED = """
import os, signal, sys
from sqlite_cells._runtime import Space
from sqlite_cells.cli._cli import main

registered = Space.register_disk_source

def register_then_interrupt(self, *args, **kwargs):
    handle = registered(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)
    return handle

Space.register_disk_source = register_then_interrupt
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: str, interrupted: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env["PYTHONPATH"] = str(ROOT)
    head = ["-c", RUN_INTERRUPTED] if interrupted else ["-m", "sqlite_cells"]
    return subprocess.run(
        [sys.executable, *head, *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("fmt", [[], ["--json"]], ids=["text", "json"])
def test_ctrl_c_after_the_registration_waits_for_the_link(tmp_path: Path, fmt: list[str]) -> None:
    store, piece_id, reference = _piece_store(tmp_path)
    done = _cli(
        "link", f"sqlite:{reference}", "demo", piece_id, "ref", "--store", str(store), *fmt,
        interrupted=True,
    )  # fmt: skip
    assert done.returncode == 130, done
    assert done.stderr == "sqlite-cells: interrupted once the link above was made; it is kept\n"
    if fmt:
        assert json.loads(done.stdout)["file"] == str(reference)
    else:
        assert done.stdout.startswith(f"linked {reference} (")
    # The store holds the whole link: the input names the registered file.
    with sc.Runtime(store) as rt:
        again = rt.space("demo").run(_counts, key="k")
        rt.settle()
        handle = again.inputs["ref"].get()  # a link to the registered file's handle
        assert isinstance(handle, sc.Cell) and handle.get()["source"]["path"] == str(reference)

"""The commands that only look at a store (`inspect`, `cells`, `tables`, `query`, `check`
without `--repair`) leave a crashed store as they found it (§6): the `-wal` a killed writer left
is neither copied into the files nor removed by the last connection closing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import run_cli

_WRITER = """
import sys
import sqlite_cells as sc
rt = sc.Runtime(sys.argv[1])
space = rt.space("demo")
db = space.sqlite_database("chat", tables={"messages": sc.table(body="text")})
for n in range(5):
    with space.transact():
        space.cell("n").set(n)
        db.exec("INSERT INTO messages (body) VALUES (?)", [f"m{n}"])
print("ready", flush=True)
sys.stdin.read()
"""


def _crashed_store(store: Path) -> None:
    """Five commits, then the writer is killed: its -wal files hold them."""
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        writer.kill()


def _files(store: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.iterdir())
        if p.name.endswith((".sqlite", "-wal"))
    }


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "--store"),
        ("cells", "--store"),
        ("tables", "--store"),
        ("check", "--store"),
        ("query", "STORE", "demo", "chat", "SELECT count(*) AS n FROM messages"),
    ],
    ids=lambda a: a[0],
)
def test_a_command_that_only_looks_leaves_a_crashed_store_as_found(
    store: Path, args: tuple[str, ...]
) -> None:
    _crashed_store(store)
    before = _files(store)
    assert any(name.endswith("-wal") for name in before)
    argv = [str(store) if a == "STORE" else a for a in args]
    if argv[-1] == "--store":
        argv.append(str(store))
    done = run_cli(*argv)
    assert done.returncode == 0, done.stderr
    assert _files(store) == before
    if args[0] == "query":
        assert "5" in done.stdout

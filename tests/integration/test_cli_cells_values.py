"""§6: `cells` lists each cell's value as what it holds, in every format: a string in text and
CSV is JSON text in quotes, so the string "5" is not the number 5 (CSV lost the difference that
JSON and NDJSON keep)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import sqlite_cells as sc

from ..conftest import run_cli

VALUES = {"n": 5, "s": "5", "none": None, "snull": "null", "t": True, "st": "true", "d": {"a": 1}}


def test_values_that_differ_are_listed_apart_in_every_format(tmp_path: Path) -> None:
    with sc.Runtime(tmp_path) as rt:
        space = rt.space("v")
        alice = space.cell("alice")
        with space.transact():
            alice.set({"name": "Alice"})
            for name, value in VALUES.items():
                space.cell(name).set(value)
            space.cell("arrow").set("→ alice")
            space.cell("link").set(alice)
    done = run_cli("cells", str(tmp_path), "--csv")
    assert done.returncode == 0, done.stderr
    listed = {row["name"]: row["value"] for row in csv.DictReader(io.StringIO(done.stdout))}
    for name, value in VALUES.items():
        assert json.loads(listed[name]) == value, name
    assert listed["arrow"] == '"→ alice"' and listed["link"] == "→ alice"
    done = run_cli("cells", str(tmp_path), "--ndjson")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {line["name"]: line["value"] for line in lines if line["name"] in VALUES} == VALUES
    done = run_cli("cells", str(tmp_path))
    (text,) = [line for line in done.stdout.splitlines() if line.split()[1] == "s"]
    assert text.endswith(' "5"')

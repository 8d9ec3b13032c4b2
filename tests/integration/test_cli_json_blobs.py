"""A BLOB in `query --json` and `--ndjson` (SPEC §6, beside sqlite-utils and Datasette): tagged
``{"$base64": true, "encoded": "…"}``, so it never reads as the text of its base64."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sqlite_cells as sc

from ..conftest import run_cli


@pytest.fixture
def blobs(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("b", tables={"t": sc.table(id="integer primary key", v="blob")})
        with space.transact():
            db.exec("INSERT INTO t (id, v) VALUES (1, x'00ff10'), (2, 'AP8Q'), (3, x'')")
    return store


def test_a_blob_in_ndjson_is_tagged_and_text_is_not(blobs: Path) -> None:
    done = run_cli("query", str(blobs), "demo", "b", "SELECT v FROM t ORDER BY id", "--ndjson")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["v"] for line in done.stdout.splitlines()] == [
        {"$base64": True, "encoded": "AP8Q"},
        "AP8Q",
        {"$base64": True, "encoded": ""},
    ]


def test_a_blob_in_json_is_tagged(blobs: Path) -> None:
    done = run_cli("query", str(blobs), "demo", "b", "SELECT v FROM t WHERE id = 1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"v": {"$base64": True, "encoded": "AP8Q"}}]

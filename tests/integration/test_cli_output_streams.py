"""Standard output the command cannot write as usual (SPEC §6, Errors): closed by the caller
(`>&-`) it ends with status 1 and no traceback, as for a reader that went away; an encoding
that cannot hold the text (`PYTHONIOENCODING=ascii`, a C locale) gets escapes, never an
error, and JSON output stays JSON that reads back as the same text."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import sqlite_cells as sc

from ..conftest import COMMAND

TEXT = "Zoë 😀"


@pytest.fixture
def written(store: Path) -> Path:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES (?)", [TEXT])
    return store


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    return {**env, **extra}


@pytest.mark.parametrize("command", ["inspect", "cells", "query"])
def test_a_closed_standard_output_is_status_1_without_a_traceback(
    written: Path, command: str
) -> None:
    args = ["query", str(written), "demo", "chat", "SELECT body FROM m"]
    if command != "query":
        args = [command, "--store", str(written)]
    done = subprocess.run(
        [str(COMMAND), *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 1
    assert done.stderr == ""


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("fmt", ["--json", "--ndjson", "text", "--csv"])
def test_an_output_encoding_that_cannot_hold_the_text_gets_escapes(
    written: Path, encoding: str, fmt: str
) -> None:
    args = ["query", str(written), "demo", "chat", "SELECT body FROM m"]
    done = subprocess.run(
        [str(COMMAND), *args, *([] if fmt == "text" else [fmt])],
        env=_env(PYTHONIOENCODING=encoding),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode(encoding)
    if fmt == "--json":
        assert json.loads(out)["rows"] == [{"body": TEXT}]
    elif fmt == "--ndjson":
        assert json.loads(out) == {"body": TEXT}
    else:
        assert "\\U0001f600" in out  # the emoji, escaped

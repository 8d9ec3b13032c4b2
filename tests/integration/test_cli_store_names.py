"""Names that are not UTF-8 text (SPEC Errors, §6): a store path holding such a byte is a clear
error for every command, and a stray file so named inside a store is none of the store's files
(the runtime names its files in hex): the rest of the store is listed and queried as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import sqlite_cells as sc

from ..conftest import COMMAND

COMMANDS = ("inspect", "check", "gc", "cells", "tables")


def _written(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")


def _run(*args: bytes | str) -> subprocess.CompletedProcess[str]:
    # Arguments as bytes: a name that is not UTF-8 reaches the command as the system gives it.
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    done = subprocess.run(
        [os.fsencode(COMMAND), *(os.fsencode(a) for a in args)],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_store_path_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    _written(tmp_path / "store")
    bad = os.fsencode(tmp_path) + b"/st\xff"
    shutil.copytree(os.fsencode(tmp_path / "store"), bad)
    query = ("query", bad, "demo", "chat", "SELECT body FROM m")
    for args in [(command, b"--store", bad) for command in COMMANDS] + [query]:
        done = _run(*args)
        assert done.returncode == 1, (args[0], done.stderr)
        assert done.stderr.startswith("sqlite-cells: InspectError: the store path "), done.stderr
        assert "is not valid Unicode text" in done.stderr
        assert "rename the directory" in done.stderr


def test_a_utf8_store_path_under_a_c_locale_names_the_locale_not_the_name(
    tmp_path: Path,
) -> None:
    """``LC_ALL=C PYTHONUTF8=0``: Python decodes the store's UTF-8 name as ASCII (its bytes
    beyond ASCII as lone surrogates), which SQLite cannot open; renaming would not help, the
    locale does, and the library, every command and ``link`` say so."""
    store = tmp_path / "st\u00f6"
    _written(store)
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    env.update(LC_ALL="C", PYTHONUTF8="0", PYTHONIOENCODING="utf-8")
    env.pop("PYTHONCOERCECLOCALE", None)
    remedy = "PYTHONUTF8=1 or a UTF-8 locale (LC_ALL=C.UTF-8)"
    for command in COMMANDS:
        done = subprocess.run(
            [os.fsencode(COMMAND), command.encode(), os.fsencode(store)],
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith("sqlite-cells: InspectError: the store path "), done.stderr
        assert "is UTF-8 that this Python decoded as ascii" in done.stderr
        assert remedy in done.stderr and "rename" not in done.stderr
    source = tmp_path / "s\u00f6urce.db"
    shutil.copy(next(store.glob("cell-*.sqlite")), source)
    script = (
        "import os, sys\n"
        "import sqlite_cells as sc\n"
        "store, source = (os.fsdecode(a) for a in sys.argv[1:])\n"
        "for attempt in (lambda: sc.Runtime(store), lambda: sc.Runtime.ephemeral().space('s')"
        ".register_disk_source(source)):\n"
        "    try:\n"
        "        attempt()\n"
        "    except sc.SqliteCellsError as exc:\n"
        "        print(type(exc).__name__, getattr(exc, 'rule', ''), exc)\n"
    )
    done = subprocess.run(
        [
            os.fsencode(sys.executable),
            b"-c",
            script.encode(),
            os.fsencode(store),
            os.fsencode(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("StorePathError  the store path ") and remedy in first, first
    assert second.startswith("DiskSourceError exists ") and remedy in second, second
    assert "rename" not in done.stdout


def test_a_file_name_that_is_not_utf8_in_a_store_is_none_of_its_files(store: Path) -> None:
    _written(store)
    for name in (b"space-\xff.sqlite", b"cell-\xff.sqlite"):
        with open(os.fsencode(store) + b"/" + name, "wb"):
            pass
    for command in COMMANDS:
        done = _run(command, "--store", str(store), "--json")
        assert done.returncode == 0, (command, done.stderr)
    done = _run("inspect", "--store", str(store), "--json")
    assert [space["id"] for space in json.loads(done.stdout)["spaces"]] == ["demo"]
    done = _run("query", str(store), "demo", "chat", "SELECT body FROM m", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"body": "one"}]

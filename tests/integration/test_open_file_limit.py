"""A process out of file descriptors is told so (Errors: what was wrong, what to do).

SQLite reports a file it cannot open for lack of a descriptor as "unable to open database file"
(``SQLITE_CANTOPEN``), the words it uses for a wrong path; the runtime's advice was to check the
path or the disk.  The child process below lowers its limit of open files just above what its
runtime holds, then declares and writes databases until a commit or a read cannot open a file.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.runtime import out_of_files

from ..conftest import run_cli_limited

CHILD = r"""
import json, os, resource, sys
import sqlite_cells as sc

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
out = {}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    count = space.cell("commits", default=0)
    dbs = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 24, hard))
    if sys.argv[2] == "write":  # the process's other files leave room for a few commits
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(17)]
    try:
        for i in range(500):
            db = space.sqlite_database(f"d{i}", tables={"t": sc.table(id="integer primary key")})
            dbs.append(db)
            with space.transact():
                db.exec("INSERT INTO t DEFAULT VALUES")
                count.update(lambda n: n + 1)
            if sys.argv[2] == "read":
                db.read("SELECT id FROM t")
    except sc.SqliteCellsError as exc:
        out["error"] = [type(exc).__name__, str(exc)]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    out["commits"] = count.get()
    out["rows"] = [len(db.read("SELECT id FROM t")) for db in dbs]
    db = dbs[-1]
    with space.transact():
        db.exec("INSERT INTO t DEFAULT VALUES")
    out["after"] = len(db.read("SELECT id FROM t"))
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["read", "write"])
def test_running_out_of_open_files_says_so_and_commits_nothing(tmp_path: Path, mode: str) -> None:
    """Reads after each commit fill the read pool and meet the limit in a read (a
    ``QueryError``); with the process's other files leaving little room, commits alone meet it
    in a commit or in the first use of a database file (whichever needs the file first)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "store"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    out = json.loads(done.stdout)
    kind, message = out["error"]
    assert kind in ("QueryError", "SqliteCellsError", "DatabaseError"), out
    assert "its limit of open files" in message and "ulimit -n" in message, message
    assert "check the disk" not in message, message
    rows = out["rows"]
    # Every commit before the failing one holds its row and its count; a failed commit left
    # neither; a failed read came after its commit.
    assert out["commits"] == sum(rows) and set(rows) <= {0, 1}, out
    assert rows[: out["commits"]] == [1] * out["commits"], out
    assert out["after"] == rows[-1] + 1


def test_a_file_that_cannot_be_opened_for_another_reason_gets_no_such_advice() -> None:
    assert out_of_files(apsw.CantOpenError("unable to open database file")) == ""
    assert out_of_files(FileNotFoundError(errno.ENOENT, "No such file or directory")) == ""
    advice = out_of_files(OSError(errno.EMFILE, "Too many open files"))
    assert "its limit of open files" in advice and "ulimit -n" in advice


def _store_of_rows(tmp_path: Path, rows: int) -> Path:
    """A store whose database ``d`` of space ``main`` holds ``rows`` rows, one commit each."""
    store = tmp_path / "store"
    with sc.Runtime(store) as rt:
        space = rt.space("main")
        db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
        for _ in range(rows):
            with space.transact():
                db.exec("INSERT INTO t DEFAULT VALUES")
    return store


FIRST_USE = r"""
import json, os, resource, sys
import sqlite_cells as sc

extra, op = int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
out = {}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("main")
    db = space.sqlite_database("d", tables={"t": sc.table(id="integer primary key")})
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + extra, hard))
    try:
        if op == "read":
            db.read("SELECT id FROM t")
        else:
            with space.transact():
                db.exec("INSERT INTO t DEFAULT VALUES")
        out["error"] = None
    except sc.SqliteCellsError as exc:
        out["error"] = str(exc)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    out["rows"] = len(db.read("SELECT id FROM t"))
print(json.dumps(out))
"""


@pytest.mark.parametrize("op", ["read", "write"])
def test_a_first_use_out_of_open_files_finds_no_damage(tmp_path: Path, op: str) -> None:
    """The first use of a healthy database in a runtime, with no descriptor left for its file,
    took SQLite's "unable to open database file" for damage: the runtime quarantined the file
    for the rest of its life (every later read refused), and a repair would have rebuilt it.
    Tried with room for 0 to 5 more files, so that each of the files the first use opens is the
    one refused in some run."""
    store = _store_of_rows(tmp_path, 3)
    before = {p.name: p.read_bytes() for p in store.glob("cell-*.sqlite")}
    refused = 0
    for extra in range(6):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_USE, str(store), str(extra), op],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, (extra, done.stderr)
        out = json.loads(done.stdout)
        if out["error"] is not None:
            refused += 1
            assert "its limit of open files" in out["error"], (extra, out)
            assert "damaged" not in out["error"] and "quarantined" not in out["error"], out
        assert out["rows"] == 3 + (op == "write" and out["error"] is None), (extra, out)
        assert not (store / "quarantine").exists(), extra
        if op == "write" and out["error"] is None:
            break
        assert {p.name: p.read_bytes() for p in store.glob("cell-*.sqlite")} == before, extra
    assert refused >= 2


@pytest.mark.parametrize("command", ["query", "check"])
def test_the_command_line_out_of_open_files_says_so(tmp_path: Path, command: str) -> None:
    """`query` said a healthy database was damaged and to run `check --repair`; `check --repair`
    said to check that the path is a file."""
    store = _store_of_rows(tmp_path, 1)
    args = ["query", str(store), "main", "d", "SELECT id FROM t"]
    if command == "check":
        args = ["check", "--repair", str(store)]
    said = []
    for limit in range(6, 12):
        done = run_cli_limited("RLIMIT_NOFILE", limit, *args)
        assert "Traceback" not in done.stderr and "damaged" not in done.stderr, done.stderr
        if done.returncode:
            # `query` fails; `check` reports the database it could not open, and goes on.
            told = done.stderr if command == "query" else done.stdout
            assert "its limit of open files" in told, (limit, done.stderr, done.stdout)
            assert "damaged" not in done.stdout, done.stdout
            said.append(limit)
        assert not (store / "quarantine").exists()
    assert said and said[-1] < 11, said


SOURCES_CHILD = r"""
import json, os, resource, sys
import apsw
import sqlite_cells as sc

folder = sys.argv[2]
for i in range(60):
    conn = apsw.Connection(f"{folder}/s{i}.db")
    conn.execute("CREATE TABLE t (v); INSERT INTO t VALUES (1)")
    conn.close()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
out = {"queries": [], "register": None}
with sc.Runtime(sys.argv[1]) as rt:
    space = rt.space("s")
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 40, hard))
    handles = []
    try:
        for i in range(60):
            handles.append(space.register_disk_source(f"{folder}/s{i}.db"))
    except sc.DiskSourceError as exc:
        out["register"] = [exc.rule, str(exc)]
    queries = [h.query("SELECT v FROM t") for h in handles]
    rt.settle()
    out["queries"] = [str(q.get().error) for q in queries if q.get().error is not None]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
print(json.dumps(out))
"""


def test_sources_past_the_open_file_limit_say_so(tmp_path: Path) -> None:
    """R60: each registered source keeps its file open (its pin), and its readers more. Past
    the limit, its queries said "let this user read it", and a registration "SQLite cannot
    read it": both now say the process has as many files open as it may."""
    folder = tmp_path / "sources"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SOURCES_CHILD, str(tmp_path / "store"), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    said = out["queries"] + ([out["register"][1]] if out["register"] else [])
    assert said, out  # the limit was met somewhere
    for message in said:
        assert "its limit of open files" in message and "ulimit -n" in message, message
        assert "let this user read it" not in message and "cannot read it" not in message

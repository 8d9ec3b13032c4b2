"""Ctrl-C exits 130 (SPEC §6) even when it arrives after the command's output, while the
process ends: never ended by the signal itself (status -2 to a parent)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import apsw

import sqlite_cells as sc

COMMAND = Path(sys.executable).parent / "sqlite-cells"


def _default_ctrl_c() -> None:
    # As a shell starts a command: SIGINT at its default, which Python takes over.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_after_the_output_exits_130_or_0_never_by_the_signal(store: Path) -> None:
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    statuses = []
    for delay in (0.0, 0.01, 0.03):
        process = subprocess.Popen(
            [str(COMMAND), "query", str(store), "demo", "chat", "SELECT body FROM m"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_default_ctrl_c,
        )
        assert process.stdout is not None
        for line in process.stdout:  # the last line: the command has returned
            if b"row(s)" in line:
                break
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert b"Traceback" not in err
        statuses.append(process.returncode)
    assert set(statuses) <= {0, 130}, statuses


# The command's process, with a Ctrl-C arriving just as the command has returned: after it gave
# Python's own handling of Ctrl-C back, before the process's end takes it (seen under load).
_CTRL_C_AT_THE_END = """
import os, signal, sys
from sqlite_cells.cli import _entry

end = _entry._end

def ctrl_c_then_end(code):
    os.kill(os.getpid(), signal.SIGINT)
    end(code)

_entry._end = ctrl_c_then_end
sys.argv = ["sqlite-cells", *sys.argv[1:]]
sys.exit(_entry.main())
"""


def _interrupted_run(script: str, args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run the command through ``script`` (which sends the Ctrl-C), started as a shell starts
    it; it must have exited 130 saying ``interrupted``, with no traceback."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        timeout=60,
        preexec_fn=_default_ctrl_c,
    )
    assert b"Traceback" not in done.stderr, done.stderr
    assert (done.returncode, done.stderr.splitlines()[-1:]) == (
        130,
        [b"sqlite-cells: interrupted"],
    ), args
    return done


def test_ctrl_c_between_the_commands_return_and_the_process_end_exits_130(store: Path) -> None:
    for args in (["--version"], ["inspect", str(store)]):
        _interrupted_run(_CTRL_C_AT_THE_END, args)


def test_a_reader_gone_before_the_output_gives_one_status_in_every_format(store: Path) -> None:
    """A reader that closed its end (`… | head -c0`) ends the command with status 1 and no
    traceback, whether the output is one write (JSON) or many (the other formats)."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("chat", tables={"m": sc.table(body="text")})
        with space.transact():
            db.exec("INSERT INTO m (body) VALUES ('one')")
    # Output buffered as a user's is (not PYTHONUNBUFFERED): the JSON is then written whole at
    # the end, after the command has returned.
    hidden = ("SQLITE_CELLS_STORE", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    statuses = {}
    for fmt in ("--json", "--csv", "--ndjson", None):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the command writes
        args = ["query", str(store), "demo", "chat", "SELECT body FROM m"]
        done = subprocess.run(
            [str(COMMAND), *args, *([fmt] if fmt else [])],
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
        os.close(write)
        assert b"Traceback" not in done.stderr and b"Exception" not in done.stderr, done.stderr
        statuses[fmt] = done.returncode
    assert statuses == {"--json": 1, "--csv": 1, "--ndjson": 1, None: 1}


def test_a_reader_gone_in_the_middle_of_the_json_output_gives_status_1(store: Path) -> None:
    """The reader reads the start and goes away while the JSON (one write, far larger than a
    pipe holds) is being written: status 1, as in the other formats, never 0."""
    with sc.Runtime(store) as rt:
        space = rt.space("demo")
        db = space.sqlite_database("big", tables={"t": sc.table(v="text")})
        with space.transact():
            db.exec_many("INSERT INTO t (v) VALUES (?)", [["x" * 100] for _ in range(50_000)])
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    for fmt in ("--json", "--ndjson"):
        process = subprocess.Popen(
            [str(COMMAND), "query", str(store), "demo", "big", "SELECT v FROM t", fmt],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(100)
        process.stdout.close()
        assert process.wait(timeout=120) == 1, fmt
        assert process.stderr.read() == b""
        process.stderr.close()


# `python -m sqlite_cells`, with a Ctrl-C arriving as the command's first module beyond the
# package is being imported (an audit hook sends it then).
_CTRL_C_AS_THE_COMMAND_STARTS = """
import os, runpy, signal, sys

def hook(event, args):
    if event == "import" and args[0] == "sqlite_cells.cli":
        os.kill(os.getpid(), signal.SIGINT)

sys.addaudithook(hook)
sys.argv = ["sqlite_cells", *sys.argv[1:]]
runpy.run_module("sqlite_cells", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_as_python_m_hands_over_to_the_command_exits_130(store: Path) -> None:
    """SPEC §6: ``python -m sqlite_cells`` handed over to the command through a second module
    run, a few milliseconds of the project's code in which a Ctrl-C was still Python's: a
    traceback from the project's files, the process killed by the signal (6 runs in 200 of a
    Ctrl-C sent 8–33 ms after the start). It takes Ctrl-C itself first now, and hands it over."""
    sc.Runtime(store).close()
    for args in (["--version"], ["inspect", str(store)]):
        assert _interrupted_run(_CTRL_C_AS_THE_COMMAND_STARTS, args).stdout == b"", args


def test_help_and_version_that_cannot_be_written_exit_1_and_say_so() -> None:
    """§6: exit status 0 on success. argparse drops an output it cannot write and exits 0:
    ``--version`` or ``--help`` to a full disk lost the output and said success. They exit 1
    and say why on standard error, as a command whose output fails does; a usage error that
    cannot even be written still exits 2."""
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    for option in ("--version", "--help"):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [str(COMMAND), option], stdout=full, stderr=subprocess.PIPE, text=True, env=env
            )
        assert done.returncode == 1, (option, done.stderr)
        assert "the output could not be written (No space left on device)" in done.stderr
        assert "Traceback" not in done.stderr
    with open("/dev/full", "w") as full:
        usage = subprocess.run([str(COMMAND), "query"], stderr=full, env=env, check=False)
    assert usage.returncode == 2


def test_a_command_whose_output_cannot_be_written_says_so_and_gc_says_what_it_removed(
    store: Path,
) -> None:
    """§6, Errors: a command whose standard output could not be written (a full disk) said
    "No space left on device: free space on the disk and run the command again", blaming the
    store's disk; `gc --yes` said so after removing the files, and the user never learned which.
    Every command now says the output could not be written, as `--version` does (status 1);
    `gc --yes` adds that the removal was done, how many files, and what lists what is left."""
    with sc.Runtime(store) as rt:
        space = rt.space("g")
        kept = space.sqlite_database("a", tables={"t": sc.table(x="text")})
        dropped = space.sqlite_database("b", tables={"t": sc.table(x="text")})
        with space.transact():
            kept.exec("INSERT INTO t (x) VALUES ('a')")
        with space.transact():
            dropped.exec("INSERT INTO t (x) VALUES ('b')")
        with space.transact():
            dropped.drop()
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    full_disk = "sqlite-cells: the output could not be written (No space left on device): "
    for args in (["cells"], ["inspect", "--json"], ["gc"], ["check", "--csv"]):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [str(COMMAND), args[0], str(store), *args[1:]],
                stdout=full, stderr=subprocess.PIPE, text=True, env=env, check=False,
            )  # fmt: skip
        assert (done.returncode, done.stderr) == (
            1,
            full_disk + "free space on its disk, or send it elsewhere, and run the command again\n",
        ), args
    assert dropped.path.exists()
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [str(COMMAND), "gc", str(store), "--yes"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=env, check=False,
        )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        1,
        full_disk + "free space on its disk, or send it elsewhere; the removal was done all the "
        "same (1 file(s) removed): `sqlite-cells gc` lists what is left\n",
    )
    assert not dropped.path.exists() and kept.path.exists()


def _full_output(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [str(COMMAND), *args],
            stdout=full, stderr=subprocess.PIPE, text=True, env=env, check=False,
        )  # fmt: skip


def test_check_repair_and_link_whose_output_cannot_be_written_say_what_they_did(
    store: Path, tmp_path: Path
) -> None:
    """§6, Errors (follows the test above): `check --repair > /dev/full` and `link > /dev/full`
    said only "run the command again", though the repairs (a copy of an "ahead" file kept in
    quarantine) and the link were made, and a run again finds nothing to say. They now say what
    was done: each database repaired and where a copy was kept; that the link was made."""
    tables = {"t": sc.table(x="text")}
    with sc.Runtime(store) as rt:
        space = rt.space("b")
        db = space.sqlite_database("d", tables=tables)
        with space.transact():
            db.exec("INSERT INTO t (x) VALUES ('0')")
    (space_file,) = store.glob("space-*.sqlite")
    shutil.copy(space_file, tmp_path / "older")
    with sc.Runtime(store) as rt:
        space = rt.space("b")
        with space.transact():
            space.sqlite_database("d", tables=tables).exec("INSERT INTO t (x) VALUES ('1')")
    for suffix in ("-wal", "-shm"):
        Path(f"{space_file}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "older", space_file)  # the space lost its last commit: "ahead"
    full_disk = "sqlite-cells: the output could not be written (No space left on device): "
    done = _full_output("check", str(store), "--repair")
    (kept,) = [p for p in (store / "quarantine").iterdir() if p.name.endswith("of-1.0")]
    assert (done.returncode, done.stderr) == (
        1,
        full_disk + "free space on its disk, or send it elsewhere; the repairs were made all the "
        f"same and are kept (database 'd' of space 'b' ({db.id}): inverted, 1 commit(s) applied, "
        f"a copy of the file as it was is kept at {kept}): `sqlite-cells check` shows the store "
        "as it is now\n",
    )
    assert (
        "in sync"
        in subprocess.run(
            [str(COMMAND), "check", str(store)], capture_output=True, text=True, check=True
        ).stdout
    )
    # link: the input is linked all the same.
    reference = tmp_path / "ref.db"
    conn = apsw.Connection(str(reference))
    conn.execute("CREATE TABLE things (x)")
    conn.close()
    with sc.Runtime(store) as rt:
        piece = rt.space("b").run(_reads, key="k")
    done = _full_output("link", str(store), f"sqlite:{reference}", "b", piece.id, "ref")
    assert done.returncode == 1
    assert done.stderr.startswith(
        full_disk + f"free space on its disk, or send it elsewhere; the link was made all the "
        f"same: {reference} (of:"
    ) and done.stderr.endswith(
        f") is linked to ref of piece {piece.id}; `sqlite-cells cells` shows it\n"
    )
    with sc.Runtime(store) as rt:
        piece = rt.space("b").run(_reads, key="k")
        rt.settle()
        assert piece.outputs.get().result == [{"n": 0}]


@sc.pattern
def _reads(ref: sc.SqliteDb) -> Any:
    return ref.query("SELECT count(*) AS n FROM things")

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc

from . import _files

COMMAND = Path(sys.executable).parent / "sqlite-cells"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sqlite-cells`` command in a subprocess (the store comes from the
    arguments, never from the caller's $SQLITE_CELLS_STORE); no command prints a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    done = subprocess.run(
        [str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run_cli_limited(limit: str, value: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line (as ``run_cli`` does, without its traceback check: the caller looks)
    in a process whose resource ``limit`` (a ``resource.RLIMIT_*`` name) is ``value``, set before
    the package is imported."""
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}
    limited = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.{limit}, ({value}, {value})); "
        "sys.argv[0] = 'sqlite-cells'; runpy.run_module('sqlite_cells', run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", limited, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


_NOBODY = 65534


def run_unprivileged(*python_args: str) -> subprocess.CompletedProcess[str]:
    """Run this Python with ``python_args`` (``"-c", code, …`` or ``"-m", "sqlite_cells", …``)
    in a subprocess that file permissions apply to: as this user, or as ``nobody`` (through
    ``setpriv``, which can still start an interpreter installed where ``nobody`` may not look)
    when the tests run as root. Skips the test when that cannot be done (root reads through
    every permission). Paths it is given must be reachable by that user (see
    :func:`shared_dir`)."""
    env = _unprivileged_env()
    done = subprocess.run(
        [*_unprivileged_prefix(env), sys.executable, *python_args],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def start_unprivileged(*python_args: str) -> subprocess.Popen[str]:
    """:func:`run_unprivileged` started, not waited for: its stdin and stdout are pipes (text)
    for a test to talk to it line by line; the caller waits for it."""
    env = _unprivileged_env()
    return subprocess.Popen(
        [*_unprivileged_prefix(env), sys.executable, *python_args],
        env=env,
        cwd="/",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _unprivileged_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SQLITE_CELLS_STORE"}


def _unprivileged_prefix(env: dict[str, str]) -> list[str]:
    """What runs a command as ``nobody`` when the tests run as root (nothing otherwise); skips
    the test when that cannot be done."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no file permission applies")
    drop = [setpriv, f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups"]
    probe = subprocess.run(
        [*drop, sys.executable, "-c", "import sqlite_cells"],
        env=env,
        cwd="/",
        capture_output=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("running as root, and nobody cannot run this Python: no permission applies")
    return drop


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A new directory every user may enter and write (for :func:`run_unprivileged`), removed
    after the block whatever modes were left inside it."""
    path = Path(tempfile.mkdtemp(prefix="sqlite-cells-perm-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        for parent, dirs, _ in os.walk(path):  # top-down: each made enterable before entered
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(parent, name), 0o777)
        shutil.rmtree(path, ignore_errors=True)


def written_once(store: Path, space: str, name: str, x: int = 1) -> sc.SqliteDb:
    """Database ``name`` of ``space`` (table ``t (x integer)``) with one row written (``x``),
    its runtime closed again: the handle, for its ``id`` and ``path``."""
    with sc.Runtime(store) as rt:
        db = rt.space(space).sqlite_database(name, tables={"t": sc.table(x="integer")})
        with rt.space(space).transact():
            db.exec("INSERT INTO t (x) VALUES (?)", [x])
    return db


def in_thread(body: Callable[[], object], bound: float, hang: str) -> object:
    """Run ``body`` on a daemon thread and return what it returned or raised; a body still
    running after ``bound`` seconds fails the test with ``hang`` (instead of hanging the
    suite)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(body())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), hang
    return outcome[0]


@contextmanager
def threads_running(*bodies: Callable[[], None], stop: threading.Event) -> Iterator[None]:
    """Run each of ``bodies`` on a thread of its own for as long as the ``with`` block runs;
    then set ``stop`` (which the bodies watch to end) and join them (a minute at most each)."""
    threads = [threading.Thread(target=body) for body in bodies]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the processes the tests start. A shell starts a background job (`make
    test &`, a CI step run in the background) with SIGINT ignored, every child inherits that,
    and a command started with Ctrl-C ignored rightly keeps ignoring it (as shells expect of
    background jobs): the tests that send Ctrl-C to a command or a notebook kernel would then
    wait for nothing. So the suite takes SIGINT back, as an interactive shell's job has it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The descriptors ``_files`` kept are closed once a module's tests are done: its fixtures
    (module-scoped ones too) are torn down, so no runtime of theirs has the files open."""
    yield
    if nextitem is None or nextitem.path != item.path:
        _files.release()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def rt(store: Path) -> Iterator[sc.Runtime]:
    runtime = sc.Runtime(store, poll_interval=0.01)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def woken(rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs of the commits that woke ``rt``'s scheduler thread (quiet ones do not)."""
    seqs: list[int] = []
    on_commit = rt.scheduler._on_commit

    def counting(event: Any) -> None:
        seqs.append(event.seq)
        on_commit(event)

    monkeypatch.setattr(rt.scheduler, "_on_commit", counting)
    return seqs

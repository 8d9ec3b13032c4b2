"""Fault injection for the crash tests (R71–R72): a writer program and an apsw VFS shim.

Run as a program (``cwd`` = the repository root)::

    python tests/integration/crashkit.py writer STORE [--warmup K] [--commits N]
        [--count | --kill FILE:OP:N:WHEN | --ioerror FILE:OP:N]
    python tests/integration/crashkit.py bump STORE CALLS
    python tests/integration/crashkit.py serve

``writer`` opens ``STORE``, runs ``K`` warm-up commits of the crash handler (bump the ``counter``
cell and insert one row into ``events``), then arms the VFS shim for the next (target) commit and
keeps committing (``N`` commits in all after the warm-up; 0 = until killed). Every commit that
returned prints ``seq <n>`` (flushed), so the parent knows what committed before a kill.

* ``--count`` prints ``counts <json>``: the xWrite/xSync calls of the target commit per file kind
  (``space``, ``space-wal``, ``db``, ``db-wal``, …), so a sweep knows how many points there are;
* ``--kill FILE:OP:N:WHEN`` SIGKILLs the process at the N-th ``OP`` (``write``/``sync``) of
  ``FILE`` during the target commit, ``before`` or ``after`` performing it;
* ``--ioerror FILE:OP:N`` makes that call fail once with ``SQLITE_IOERR_WRITE`` /
  ``SQLITE_IOERR_FSYNC`` and prints how the commit ended (``failed <type> root|foreign`` —
  whether the error derives from ``SqliteCellsError`` — or ``seq <n>``); after a failed commit
  it prints ``state <space seq> <watermark>`` (what the files say right then, R71), and carries
  on with the remaining commits. ``--busy-timeout-ms`` shortens reconcile's busy timeout.

Parent-side helpers: :class:`ForkServer`, :func:`file_state`, :func:`reopen` and
:func:`kill_loop` (used by ``test_crash.py`` and ``kill_loop.py``).

``bump`` runs ``CALLS`` handler calls and prints ``bodies <n> returns <n>``. ``serve`` is a fork
server: it imports everything once and forks a fresh writer per JSON command read from stdin
(``["writer", STORE, ...]``), reporting ``<pid> started`` and ``<pid> exit <status>``; the
children's lines are prefixed with their pid. It makes a loop of hundreds of kills cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run by file path: make the packages importable
    sys.path.insert(0, str(ROOT))

import sqlite_cells as sc  # noqa: E402 (needs the path above when run as a script)
from sqlite_cells.files import read_watermark  # noqa: E402

SPACE = "demo"
DB = "events"
TABLES = {"events": sc.table(id="integer primary key", n="integer")}
OPS = ("write", "sync")
WHENS = ("before", "after")
VFS_NAME = "crashkit"


def file_kind(name: str | None) -> str:
    """``space``/``db`` (the main files), with ``-wal``/``-shm``/``-journal`` as a suffix."""
    if not name:
        return "temp"
    base = os.path.basename(name)
    for suffix in ("-wal", "-shm", "-journal"):
        if base.endswith(suffix):
            return _main_kind(base[: -len(suffix)]) + suffix
    return _main_kind(base)


def _main_kind(base: str) -> str:
    if base.startswith("space-"):
        return "space"
    if base.startswith("cell-"):
        return "db"
    return "other"


@dataclass
class Fault:
    """One armed fault: at the ``n``-th ``op`` on ``kind``, ``action`` (kill/ioerror)."""

    kind: str
    op: str
    n: int
    action: str  # "kill" or "ioerror"
    when: str = "before"

    @classmethod
    def parse(cls, spec: str, action: str) -> Fault:
        parts = spec.split(":")
        if action == "kill" and len(parts) == 4:
            kind, op, n, when = parts
        elif action == "ioerror" and len(parts) == 3:
            (kind, op, n), when = parts, "before"
        else:
            raise argparse.ArgumentTypeError(f"bad fault spec {spec!r}")
        if op not in OPS or when not in WHENS:
            raise argparse.ArgumentTypeError(f"bad fault spec {spec!r}")
        return cls(kind, op, int(n), action, when)


@dataclass
class Plan:
    """What the shim does; ``lock`` guards ``armed``, ``counts`` and ``fired``."""

    fault: Fault | None = None
    armed: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self) -> None:
        with self.lock:
            self.counts = {}
            self.armed = True

    def disarm(self) -> dict[str, dict[str, int]]:
        with self.lock:
            self.armed = False
            return {k: dict(v) for k, v in self.counts.items()}

    def hit(self, kind: str, op: str) -> Fault | None:
        """Count one call; the fault to act on now, if this is its call."""
        with self.lock:
            if not self.armed:
                return None
            per_file = self.counts.setdefault(kind, {"write": 0, "sync": 0})
            per_file[op] += 1
            fault = self.fault
            if (
                fault is None
                or self.fired
                or (fault.kind, fault.op, fault.n) != (kind, op, per_file[op])
            ):
                return None
            self.fired = True
            return fault


class FaultFile(apsw.VFSFile):
    """A file of the default VFS whose xWrite/xSync go through the plan."""

    def __init__(self, plan: Plan, base: str, name: Any, flags: list[int]) -> None:
        self._plan = plan
        self._kind = file_kind(name.filename() if isinstance(name, apsw.URIFilename) else name)
        super().__init__(base, name, flags)

    def _io(self, op: str, perform: Callable[[], None]) -> None:
        fault = self._plan.hit(self._kind, op)
        if fault is None:
            perform()
            return
        if fault.action == "ioerror":
            code = apsw.SQLITE_IOERR_WRITE if op == "write" else apsw.SQLITE_IOERR_FSYNC
            raise apsw.exception_for(code)
        if fault.when == "before":
            _die()
        perform()
        _die()

    def xWrite(self, data: Any, offset: int) -> None:
        self._io("write", lambda: super(FaultFile, self).xWrite(data, offset))

    def xSync(self, flags: int) -> None:
        self._io("sync", lambda: super(FaultFile, self).xSync(flags))


class FaultVFS(apsw.VFS):
    """Inherits from the default VFS and becomes the default, so every connection uses it."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._base = apsw.vfs_names()[0]  # the default before this one registers
        super().__init__(VFS_NAME, self._base, makedefault=True)

    def xOpen(self, name: Any, flags: list[int]) -> FaultFile:
        return FaultFile(self._plan, self._base, name, flags)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(plan: Plan) -> FaultVFS:
    """Register the shim as the default VFS of this process (keep the returned object alive)."""
    return FaultVFS(plan)


# -- the parent's side -------------------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    """What the two files say, read raw (before any runtime reconciles them)."""

    space_seq: int  # the space's last seq that wrote the database (_cf_op_index)
    watermark: int  # the database file's _cf_watermark (0 when it has none)
    log_seq: int  # the space's last seq of all

    @property
    def diverged(self) -> bool:
        return self.space_seq != self.watermark


def db_path(store: Path) -> Path | None:
    found = sorted(store.glob("cell-*.sqlite"))
    return found[0] if found else None


def file_state(store: Path, db_id: str) -> FileState:
    """Read both files with plain connections (which recover their WALs, as any opener would)."""
    (space_path,) = store.glob("space-*.sqlite")
    conn = apsw.Connection(str(space_path))
    conn.set_busy_timeout(10_000)  # a runtime of the test may hold a file a moment (R71)
    try:
        space_seq = conn.execute(
            "SELECT coalesce(max(seq), 0) FROM _cf_op_index WHERE target = ?", (db_id,)
        ).fetchone()
        log_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM _cf_log").fetchone()
    finally:
        conn.close()
    watermark = 0
    path = db_path(store)
    if path is not None:
        conn = apsw.Connection(str(path))
        conn.set_busy_timeout(10_000)
        try:
            watermark = read_watermark(conn)
        finally:
            conn.close()
    assert space_seq is not None and log_seq is not None
    return FileState(int(space_seq[0]), watermark, int(log_seq[0]))


@dataclass(frozen=True)
class Reopened:
    """A store after a crash: the raw state found, what reconcile did, and what it holds now."""

    before: FileState
    action: str  # the reconcile outcome's action value
    after: FileState
    counter: int
    rows: int
    ns: frozenset[int]  # the ``n`` of every row


def reopen(store: Path) -> Reopened:
    """Open ``store`` with a runtime after a crash and reconcile the database (R71)."""
    rt, db, counter = open_store(store)
    try:
        before = file_state(store, db.id)
        action = rt.reconcile(db.declaration).action.value
        after = file_state(store, db.id)
        rows = db.read("SELECT n FROM events")
        return Reopened(
            before, action, after, counter.get(), len(rows), frozenset(r["n"] for r in rows)
        )
    finally:
        rt.close()


class ForkServer:
    """A ``crashkit serve`` process: forks a fresh writer per :meth:`start`, one at a time."""

    def __init__(self, stderr: Path | None = None) -> None:
        self._stderr = open(stderr, "wb") if stderr is not None else subprocess.DEVNULL  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output from the fork server in {timeout} s") from None
        if line is None:
            raise EOFError("the fork server exited")
        return line

    def start(self, *argv: str, timeout: float = 30) -> int:
        """Fork ``crashkit <argv>``; returns the child's pid."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(list(argv)) + "\n")
        self.proc.stdin.flush()
        pid_str, word = self._next(timeout).split(" ", 1)
        assert word == "started", word
        return int(pid_str)

    def until(self, pid: int, prefix: str, timeout: float = 30) -> list[str]:
        """The child's lines up to and including the first one starting with ``prefix``."""
        lines = []
        while True:
            line = self._next(timeout)
            owner, text = line.split(" ", 1)
            assert int(owner) == pid, line
            lines.append(text)
            if text.startswith(prefix):
                return lines

    def finish(self, pid: int, timeout: float = 60) -> tuple[list[str], int]:
        """The child's remaining lines and its exit code (-9 when SIGKILLed)."""
        lines = self.until(pid, "exit ", timeout)
        return lines[:-1], int(lines[-1].split()[1])

    def run(self, *argv: str, timeout: float = 60) -> tuple[list[str], int]:
        return self.finish(self.start(*argv), timeout)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._reader.join(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        if not isinstance(self._stderr, int):
            self._stderr.close()


def seqs_of(lines: Sequence[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("seq ")]


@dataclass
class LoopStats:
    loops: int = 0
    commits_seen: int = 0  # commits the writers printed before dying
    diverged_before: int = 0  # stores whose files disagreed before reconcile
    diverged_after: int = 0  # ... and after it (must stay 0)
    broken: list[str] = field(default_factory=list)  # descriptions of every failed check


def kill_loop(
    forks: ForkServer,
    store: Path,
    loops: int,
    rng: random.Random,
    stats: LoopStats,
    extra: Sequence[str] = (),
) -> LoopStats:
    """Start a writer on ``store`` (with the ``extra`` writer options), SIGKILL it 30–300 ms
    after it is ready, reopen and check (R72: rows == counter, watermark == the space's last seq
    for the database, no printed commit lost); ``loops`` times, on the same store."""
    for _ in range(loops):
        pid = forks.start("writer", str(store), "--warmup", "0", "--commits", "0", *extra)
        before_ready = forks.until(pid, "ready")
        time.sleep(rng.uniform(0.030, 0.300))
        os.kill(pid, signal.SIGKILL)
        lines, code = forks.finish(pid)
        printed = seqs_of(before_ready + lines)
        state = reopen(store)
        stats.loops += 1
        stats.commits_seen += len(printed)
        stats.diverged_before += state.before.diverged
        stats.diverged_after += state.after.diverged
        last = printed[-1] if printed else 0
        problems = []
        if code != -signal.SIGKILL:
            problems.append(f"writer exited {code} before the kill")
        if state.rows != state.counter:
            problems.append(f"rows {state.rows} != counter {state.counter}")
        if state.after.diverged or state.after.space_seq != state.after.log_seq:
            problems.append(f"files disagree after reconcile: {state.after}")
        if state.counter < last:
            problems.append(f"counter {state.counter} < last returned seq {last} (lost commit)")
        if problems:
            stats.broken.append(f"loop {stats.loops}: " + "; ".join(problems))
    return stats


# -- programs ----------------------------------------------------------------------------------


def _emit(line: str) -> None:
    """One line straight to fd 1 (no Python buffer that a SIGKILL or a fork could lose or copy)."""
    prefix = os.environ.get("CRASHKIT_PREFIX", "")
    os.write(1, f"{prefix}{line}\n".encode())


def open_store(store: str | os.PathLike[str]) -> tuple[sc.Runtime, Any, Any]:
    rt = sc.Runtime(store, poll_interval=0.05)
    space = rt.space(SPACE)
    db = space.sqlite_database(DB, tables=TABLES)
    return rt, db, space.cell("counter", default=0)


def make_step(
    db: Any, counter: Any, on_body: Callable[[], None] | None = None
) -> Callable[[int], Any]:
    """The crash handler: bump ``counter`` and insert one row (``n`` = ``k``) in one commit."""

    @sc.handler
    def step(k: int) -> None:
        if on_body is not None:
            on_body()
        counter.update(lambda v: v + 1)
        db.exec("INSERT INTO events (n) VALUES (?)", [k])

    return step


def writer(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="crashkit writer")
    parser.add_argument("store")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--commits", type=int, default=1, help="after the warm-up; 0 = forever")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--count", action="store_true")
    mode.add_argument("--kill", type=lambda s: Fault.parse(s, "kill"))
    mode.add_argument("--ioerror", type=lambda s: Fault.parse(s, "ioerror"))
    parser.add_argument(
        "--busy-timeout-ms",
        type=int,
        default=None,
        help="shorten reconcile's busy timeout (after an I/O error it can wait on a lock that "
        "this very process holds; see the xfail tests)",
    )
    parser.add_argument(
        "--compact",
        type=int,
        default=0,
        help="compact the space's log every N commits, keeping N records and 2 per database",
    )
    args = parser.parse_args(argv)
    if args.busy_timeout_ms is not None:
        from sqlite_cells.files import _reconcile

        _reconcile.BUSY_TIMEOUT_MS = args.busy_timeout_ms
    plan = Plan(fault=args.kill or args.ioerror)
    vfs = install(plan)
    rt, db, counter = open_store(args.store)
    if args.compact:
        file = rt.space(SPACE).file
        file.compact_keep = file.compact_every = args.compact
        file.keep_per_target = 2
    try:
        step = make_step(db, counter)
        k = counter.get() + 1
        for _ in range(args.warmup):
            _emit(f"seq {step(k)}")
            k += 1
        _emit("ready")
        done = 0
        while args.commits == 0 or done < args.commits:
            target = done == 0 and (args.count or plan.fault is not None)
            if target:
                plan.arm()
            try:
                seq = step(k)
            except sc.SqliteCellsError as exc:
                _emit(f"failed {type(exc).__name__} root")
                seq = None
            except Exception as exc:
                _emit(f"failed {type(exc).__name__} foreign")
                seq = None
            finally:
                counts = plan.disarm() if target else None
            if counts is not None and args.count:
                _emit(f"counts {json.dumps(counts, sort_keys=True)}")
            if seq is not None:
                _emit(f"seq {seq}")
            else:  # R71: the participant has reconciled at once; what do the files say now?
                state = file_state(Path(args.store), db.id)
                _emit(f"state {state.space_seq} {state.watermark}")
            k += 1
            done += 1
    finally:
        rt.close()
        del vfs
    _emit("done")
    return 0


def bump(argv: Sequence[str]) -> int:
    """Handler calls from another process, for the lost-update test."""
    store, calls = argv[0], int(argv[1])
    rt, db, counter = open_store(store)
    bodies = [0]

    def count_body() -> None:
        bodies[0] += 1  # one thread per process here

    step = make_step(db, counter, count_body)
    returned = 0
    with rt:
        _emit("ready")
        for k in range(calls):
            if step(1_000_000 + k) is not None:
                returned += 1
    _emit(f"bodies {bodies[0]} returns {returned}")
    return 0


def serve() -> int:
    """Fork a fresh writer per command line (JSON list: the program and its arguments)."""
    for line in sys.stdin:
        command = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os.environ["CRASHKIT_PREFIX"] = f"{os.getpid()} "
            code = 1
            try:
                code = main(command)
            finally:
                os._exit(code)
        _emit(f"{pid} started")
        _, status = os.waitpid(pid, 0)
        _emit(f"{pid} exit {os.waitstatus_to_exitcode(status)}")
    return 0


def main(argv: Sequence[str]) -> int:
    program, rest = argv[0], argv[1:]
    if program == "writer":
        return writer(rest)
    if program == "bump":
        return bump(rest)
    if program == "serve":
        return serve()
    raise SystemExit(f"unknown program {program!r}: writer, bump or serve")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

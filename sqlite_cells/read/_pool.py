"""The read pool: read-only connections keyed by file path, least recently used first out (R40).

A connection is used by one thread at a time (checked out, then given back); idle connections are
kept up to ``size`` in all and closed when evicted. Connections are opened with
``SQLITE_OPEN_READONLY``, so a write to the file through them is impossible (``query_only`` is not
set: it would also forbid the temporary tables of R41's shadows), with SQLite's length limit
lowered (R44).

Each connection is set up once for its lifetime (:class:`PooledConnection`): one :class:`Gate`
as its authorizer (assigning an authorizer per read would expire every prepared statement), one
progress handler and one busy handler, both reading the connection's current ``deadline`` — so a
loop of steps and a wait for a lock both end at the deadline (R44). An injected source (R60) is
opened through :func:`source_uri` (nothing created beside it) after checking that its path still
names the pinned file. A source connection opened ``immutable`` reads the file as it was at the
open: it is kept only while the file's content signature is unchanged (checked at each
checkout), so a read sees the commits other programs finished before it began (R40). A source
connection that found the file in WAL mode (opened ``mode=ro`` beside its program's ``-wal``
and ``-shm``) is closed after each read: kept, its lock would keep that program's close from
checkpointing and removing them, so they would stay beside the file.

A store file is checked against the file the runtime's write path pinned for it (``pinned``,
see :func:`sqlite_cells.files.pin`): a connection opened on another file (the pinned one deleted
or replaced under the running runtime) reads nothing, and the read is :class:`StoreChanged`
(R71, R73: rows of an unchecked file are never served). The runtime looks before each read
and checks a file it finds replaced against its space again (``Runtime._follow_file``), so
this is the read of a file replaced between that look and the open. A connection kept idle is
checked again at its next checkout (a ``stat``): its file deleted or replaced since, it is let
go, and the path is opened (and checked) again — a file that is gone is a read of a missing
file (R41).

A store file can be unlinked while a pooled connection has it open: another runtime removes the
empty file its refused first write created (R7), and only a connection holding a lock on it
keeps that from happening — which a connection to a WAL file does from its first read on, and
one that found the file in rollback mode (empty, being set up or removed) does not. Such a
connection would read the unlinked file forever (empty tables, while the file at the path gets
the commits), so until it is seen to hold the WAL it is checked at every checkout (a ``stat``)
and replaced when its file moved.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import apsw

from sqlite_cells.codec import ClosedError, DiskSourceError, StoreChanged
from sqlite_cells.files import (
    CHECKED_AGAIN,
    SOURCE_OPEN,
    Identity,
    Pins,
    content_signature,
    file_identity,
    in_wal_mode,
    open_as_is,
    read_as_is,
    source_opening,
    wal_companions_present,
)
from sqlite_cells.read._shadows import ShadowState
from sqlite_cells.runtime import LENGTH_LIMIT, check_not_inherited, harden, has_moved, opened_file
from sqlite_cells.sql import Gate

__all__ = [
    "DEFAULT_LENGTH_LIMIT",
    "PROGRESS_STEPS",
    "PROGRESS_STEPS_INLINE",
    "PooledConnection",
    "ReadPool",
]

DEFAULT_LENGTH_LIMIT = LENGTH_LIMIT
# VM steps between deadline checks. Each check is a Python call, which must take the GIL: every
# 1,000 steps, a thread running Python without pause (a busy main thread) held a query worker's
# read ≈ 5 ms per check (the GIL's switch interval), so a 50 ms query did not land in 5 s. A
# read on a worker is checked every 100,000 steps (≈ 0.7 ms of SQLite's plain work; a step that
# calls a builtin on a large value is longer, and the watchdog stands behind it, R44). A batch
# run inline on the scheduler thread, which everything reactive waits for, is checked every
# 1,000 steps, as before.
PROGRESS_STEPS = 100_000
PROGRESS_STEPS_INLINE = 1000
_BUSY_SLEEP_MAX = 0.02
_OPEN_TRIES = 5  # a file removed under each open is raced by other processes


class PooledConnection:
    """A pooled read-only connection with its gate and deadline (owned by one thread at a time).

    ``deadline`` is a ``time.monotonic()`` value (``inf`` when no read runs: the pool's own
    statements then wait for no lock); past it the progress handler interrupts the statement
    and the busy handler stops waiting for a lock.
    ``timed_out_waiting`` says whether the last lock wait ended at the deadline, and
    ``lock_waited_at`` when the busy handler last ran (a statement in a lock wait)."""

    __slots__ = (
        "_steps",
        "as_is",
        "complete",
        "conn",
        "deadline",
        "frozen",
        "gate",
        "held",
        "identity",
        "live_wal",
        "lock_waited_at",
        "opened",
        "path",
        "prepared",
        "shadow",
        "timed_out_waiting",
    )

    def __init__(self, path: Path, conn: apsw.Connection, identity: Identity | None = None) -> None:
        self.path = path
        self.conn = conn
        # The statement of a first run that SQLite has prepared, with what it reads, while it
        # runs (see the reader's ``prepared_read_set``).
        self.prepared: tuple[object, frozenset[tuple[str, str]]] | None = None
        self.identity = identity  # the store file it has open (None: an injected source)
        # An injected source opened immutable: the content signature of the file it reads (it
        # sees no later change); None when the connection sees other programs' commits itself.
        self.frozen: tuple[object, ...] | None = None
        self.opened: Identity | None = None  # an injected source: the pinned file it has open
        # An injected source in WAL mode opened beside its program's -wal and -shm: closed
        # after each read (see the module docstring).
        self.live_wal = False
        # A store file read as it is (``files.read_as_is``): closed after the read, so that
        # the next read sees a writer that came meanwhile.
        self.as_is = False
        # R14/R41: the schema fingerprints the file was found to hold entirely, and the temp
        # shadows of what it lacks for the schema read last (see _shadows).
        self.complete: set[str] = set()
        self.shadow: ShadowState | None = None
        self.deadline = math.inf
        self.timed_out_waiting = False
        self.lock_waited_at = -math.inf  # when the busy handler last ran (see _wait_for_lock)
        # True once a read found the file in WAL mode: from then on this connection holds a
        # shared lock on it, and no runtime removes a file someone holds (see module docstring).
        self.held = False
        self.gate = Gate().install(conn)
        self._steps = 0
        self.check_every(PROGRESS_STEPS)
        conn.setbusyhandler(self._wait_for_lock)

    def check_every(self, steps: int) -> None:
        """Check the deadline every ``steps`` VM steps from now on (see ``PROGRESS_STEPS``)."""
        if steps != self._steps:
            self.conn.set_progress_handler(self._past_deadline, steps, id=PooledConnection)
            self._steps = steps

    def _past_deadline(self) -> bool:
        return time.monotonic() > self.deadline

    def _wait_for_lock(self, attempts: int) -> bool:
        # Lock waits count in the query's time (R44): wait in short sleeps up to the deadline.
        # An interrupt (the watchdog, close(), Ctrl-C) ends a wait as it ends a running
        # statement: SQLite's interrupt alone does not stop a busy handler's sleeps.
        if self.deadline == math.inf:
            # No read runs: the pool's own look at the connection after a read (its journal
            # mode, whether its file moved) waits for no lock; a wait here had no end but the
            # watchdog's, which took the read for one long step and gave up its worker.
            return False
        now = self.lock_waited_at = time.monotonic()
        remaining = self.deadline - now
        if remaining <= 0 or self.conn.is_interrupted:
            self.timed_out_waiting = True
            return False
        time.sleep(min(0.001 * (attempts + 1), _BUSY_SLEEP_MAX, remaining))
        return True

    def close(self) -> None:
        # Closing a connection another thread still uses fails: it is dropped with that thread.
        with contextlib.suppress(apsw.Error):
            self.conn.close()


def _still_serves(pooled: PooledConnection, path: Path, pins: Pins, db_id: str) -> bool:
    """Whether a pooled connection to the injected source at ``path`` may serve a read of
    handle ``db_id`` now (R60, R40): it has open the file that handle pins now (registering
    the path again may have made another file the one meant; another handle of the path may
    pin another file), and, opened ``immutable``, that file has not changed since (another
    program wrote it)."""
    try:
        if pins.check(db_id, path) != pooled.opened:
            return False
    except DiskSourceError:
        return False  # the open that follows says why
    return pooled.frozen is None or content_signature(path) == pooled.frozen


# A pooled reader holds up to three descriptors (the file, its -wal and -shm); what a runtime
# needs besides (its space files, a database attached for a write, its own -wal/-shm, the
# user's own files) is kept out of the share idle readers may take.
_FILES_PER_READER = 3
_FILES_KEPT_BACK = 64


def _idle_fitting_open_files() -> int:
    """How many idle readers the process's limit of open files leaves room for: idle ones
    are kept up to ``read_pool_size`` and closed only when it is passed, so a pool larger than
    the limit allows took every descriptor (256 on macOS by default), and later reads and first
    writes of other databases failed for good, nothing held by the user (R40, Errors)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # (no such limit here)
        return 1 << 30
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, (soft - _FILES_KEPT_BACK) // (2 * _FILES_PER_READER))


def _open_source(
    path: Path,
) -> tuple[apsw.Connection, tuple[object, ...] | None, bool, Identity | None]:
    """A read-only connection to the injected source at ``path``; opened ``immutable``, the
    content signature it reads (see :func:`source_opening`); whether it is a live WAL
    connection (``mode=ro`` beside its program's ``-wal`` and ``-shm``, judged by the file's
    header: a statement would wait for another program's lock); and the file it opened (see
    ``opened_file``; None where that is not told). A file in WAL mode is opened ``mode=ro``
    only while its ``-wal`` and ``-shm`` are there; SQLite creates them at the first read
    otherwise. They are looked for again once the connection is open (it has read nothing
    yet): gone in between (the program closed), the file is opened again, then ``immutable``,
    which creates nothing."""
    tries = _OPEN_TRIES
    while True:
        uri, frozen = source_opening(path)
        opened_file()  # (what an earlier open of this thread left)
        conn = apsw.Connection(uri, flags=SOURCE_OPEN)
        opened = opened_file()
        if frozen is not None:
            return conn, frozen, False, opened
        tries -= 1
        wal = in_wal_mode(path)
        if not wal or tries == 0 or wal_companions_present(path):
            return conn, None, wal, opened
        conn.close()


class _Checkout:
    """The ``with`` block of :meth:`ReadPool.connection` (a plain class: a generator-based
    context manager costs more, and every read takes one)."""

    __slots__ = ("_path", "_pool", "_pooled", "_source")

    def __init__(self, pool: ReadPool, path: Path, source: str | None) -> None:
        self._pool, self._path, self._source = pool, path, source
        self._pooled: PooledConnection | None = None

    def __enter__(self) -> PooledConnection:
        pool = self._pool
        pooled = pool._take(self._path)
        if pooled is not None and self._source is not None:
            if not _still_serves(pooled, self._path, pool.pins, self._source):
                pool.forget(pooled)
                pooled = None
        elif pooled is not None:
            if pooled.held:
                moved = file_identity(self._path) != pooled.identity  # one stat per checkout
            else:
                moved = has_moved(pooled.conn)
            if moved:
                pool._moved(pooled)
                pooled = None
        if pooled is None:
            pooled = pool._open(self._path, source=self._source)
        self._pooled = pooled
        return pooled

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        pooled = self._pooled
        assert pooled is not None
        pooled.deadline = math.inf
        pool = self._pool
        if pooled.live_wal or pooled.as_is:
            # A live source in WAL mode: not kept, so that no lock of ours keeps its program's
            # -wal and -shm beside it once that program is done (see the module docstring); a
            # store file read as it is: not kept either (see PooledConnection.as_is).
            pool.forget(pooled)
            return
        if kind is None or pool._rollback(pooled):
            unheld = not pooled.held and self._source is None and not pool._holds_wal(pooled)
            if unheld and has_moved(pooled.conn):  # unlinked while it read: not kept
                pool._moved(pooled)
                return
            pool._give(self._path, pooled)
        else:
            pool.forget(pooled)


class ReadPool:
    """``pinned`` gives the identity the runtime's write path pinned for a store file's path,
    if any (None: the pool checks nothing against a pin). ``pins`` are the pins of the
    injected files its reads check (R60), the runtime's (or the command's).
    ``timeout_setting`` is what its reads' deadline is called where it was set (a runtime's
    ``query_timeout``, the command line's ``--timeout``): a read past it says so by that name."""

    def __init__(
        self,
        size: int,
        *,
        length_limit: int = DEFAULT_LENGTH_LIMIT,
        pinned: Callable[[Path], Identity | None] | None = None,
        pins: Pins | None = None,
        timeout_setting: str = "query_timeout",
    ) -> None:
        if size < 1:
            raise ValueError(f"read_pool_size must be at least 1, not {size}")
        self.size = min(size, _idle_fitting_open_files())
        self.length_limit = length_limit
        self.timeout_setting = timeout_setting
        self._pinned = pinned
        self.pins = Pins() if pins is None else pins  # (a runtime's are its store's)
        # _lock guards _idle, _idle_count, _open_count, _generation and _closed.
        self._lock = threading.Lock()
        self._idle: OrderedDict[Path, list[PooledConnection]] = OrderedDict()
        self._idle_count = 0
        self._open_count = 0
        self._generation: dict[Path, int] = {}  # bumped by discard: older connections retire
        self._born: dict[int, int] = {}  # id(pooled) -> generation of its path when opened
        # Files this runtime has seen exist (opened for a read, or written by a commit): one
        # of them missing later was deleted or moved, which a read reports instead of reading
        # the declared schema empty (R41). Adding to a set is atomic; no lock.
        self._known: set[Path] = set()  # noted by a commit
        self._opened: dict[Path, Identity] = {}  # opened for a read (see opened_files)
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or in use)."""
        with self._lock:
            return self._open_count

    def note_file(self, path: Path) -> None:
        """``path`` exists (a commit wrote it)."""
        self._known.add(path)

    def disown(self, path: Path) -> None:
        """Forget that a file was seen at ``path``: the one there was another program's, not
        the database's (a database never written then reads as such once it is gone)."""
        with self._lock:
            self._known.discard(path)
            self._opened.pop(path, None)

    def knew(self, path: Path) -> bool:
        """Whether ``path`` was seen to exist by this pool or noted by a commit."""
        return path in self._known or path in self._opened

    @property
    def opened_files(self) -> dict[Path, Identity]:
        """The store's database files this pool opened (never an injected source), each with
        the identity of the file it last opened at that path."""
        return dict(self._opened)

    def connection(self, path: Path, *, source: str | None = None) -> _Checkout:
        """A read-only connection to ``path`` for the duration of the ``with`` block. ``source``
        is the handle id of an injected file (R60: the file that handle pins, opened so that
        nothing is created beside it). Raises ``FileNotFoundError`` when the file does not
        exist (it is never created here)."""
        return _Checkout(self, path, source)

    @staticmethod
    def _rollback(pooled: PooledConnection) -> bool:
        """End a failed read's transaction; False if the connection is not worth keeping."""
        try:
            if not pooled.conn.getautocommit():
                pooled.conn.execute("ROLLBACK")
        except apsw.Error:
            return False
        return True

    @staticmethod
    def _holds_wal(pooled: PooledConnection) -> bool:
        """Whether ``pooled`` (after a read) has its file open in WAL mode, so holds a shared
        lock on it from now on; remembered once true."""
        try:
            row = pooled.conn.execute("PRAGMA main.journal_mode").fetchone()
        except apsw.Error:
            return False
        pooled.held = row is not None and str(row[0]).lower() == "wal"
        return pooled.held

    def _moved(self, pooled: PooledConnection) -> None:
        """Let go of a connection whose file was unlinked or replaced under it. A file that held
        no table (the empty file of another runtime's refused first write, R7) going away is
        nothing this runtime lost: its path is no longer counted as seen (R41), so a read finds
        the file at the path again or reads the declared schema empty."""
        try:
            row = pooled.conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM main.sqlite_master)"
            ).fetchone()
            blank = row is not None and bool(row[0])
        except apsw.Error:
            blank = False
        if blank:
            self._opened.pop(pooled.path, None)
        self.forget(pooled)

    def _take(self, path: Path) -> PooledConnection | None:
        with self._lock:
            if self._closed:
                raise ClosedError("the read pool is closed (its runtime was closed)")
            idle = self._idle.get(path)
            if not idle:
                return None
            self._idle_count -= 1
            pooled = idle.pop()
            if idle:
                self._idle.move_to_end(path)
            else:  # no empty list stays behind: eviction takes the oldest path's first one
                del self._idle[path]
            return pooled

    def _open(self, path: Path, *, source: str | None) -> PooledConnection:
        identity: Identity | None = None
        as_is = False
        if source is not None:
            self.pins.check(source, path)
            conn, frozen, live_wal, found = _open_source(path)
            try:  # the file opened is the file pinned, not one swapped in between
                opened: Identity | None = self.pins.check(source, path, found)
            except DiskSourceError:
                conn.close()
                raise
        else:
            conn, identity, as_is = self._open_store_file(path)
            self._opened[path] = identity
            self._check_store_pin(path, conn, identity)
        conn.limit(apsw.SQLITE_LIMIT_LENGTH, self.length_limit)
        pooled = PooledConnection(path, conn, identity)
        pooled.as_is = as_is
        if source is not None:
            pooled.frozen, pooled.opened, pooled.live_wal = frozen, opened, live_wal
        with self._lock:
            self._open_count += 1
            self._born[id(pooled)] = self._generation.get(path, 0)
        return pooled

    def _check_store_pin(self, path: Path, conn: apsw.Connection, identity: Identity) -> None:
        """Raise :class:`StoreChanged` (closing ``conn``) if the file opened is not the one the
        runtime's write path pinned for ``path``."""
        expected = self._pinned(path) if self._pinned is not None else None
        if expected is None or expected == identity:
            return
        conn.close()
        self.discard(path)
        raise StoreChanged(
            str(path),
            "this database file was deleted or replaced while the runtime had it open; "
            f"nothing of the file now at the path was read: {CHECKED_AGAIN}",
        )

    @staticmethod
    def _open_store_file(path: Path) -> tuple[apsw.Connection, Identity, bool]:
        """A read-only connection to the store file ``path``, the identity of the file it
        has open, and whether it reads the file as it is (``files.read_as_is``: for one read),
        opened again if the file was unlinked as it was opened (another runtime removing the
        empty file its refused first write created): a connection to a removed file would run
        SQLite's clean-up of the ``-wal``/``-journal`` at the path, by name, for the wrong
        file."""
        for _attempt in range(_OPEN_TRIES):
            if not path.is_file():
                raise FileNotFoundError(str(path))
            check_not_inherited(path, "database file")  # (in a forked child)
            as_is = read_as_is(path)  # (then for this read only: see _Checkout.__exit__)
            if as_is:
                conn = open_as_is(path)
            else:
                conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
            harden(conn)
            try:
                found = os.stat(path)
            except OSError:
                found = None
            # Looked at after the stat: the file seen is the one open.
            if found is not None and stat.S_ISREG(found.st_mode) and not has_moved(conn):
                return conn, (found.st_dev, found.st_ino), as_is
            conn.close()
        raise FileNotFoundError(str(path))

    def _give(self, path: Path, pooled: PooledConnection) -> None:
        evicted: list[PooledConnection] = []
        with self._lock:
            stale = self._born.get(id(pooled)) != self._generation.get(path, 0)
            if self._closed or stale:
                evicted.append(pooled)
            else:
                self._idle.setdefault(path, []).append(pooled)
                self._idle.move_to_end(path)
                self._idle_count += 1
                while self._idle_count > self.size:
                    oldest, conns = next(iter(self._idle.items()))
                    evicted.append(conns.pop(0))
                    self._idle_count -= 1
                    if not conns:
                        del self._idle[oldest]
            self._retire_locked(evicted)
        for old in evicted:
            old.close()

    def _retire_locked(self, conns: list[PooledConnection]) -> None:
        self._open_count -= len(conns)
        for pooled in conns:
            self._born.pop(id(pooled), None)

    def forget(self, pooled: PooledConnection) -> None:
        """Close a checked-out connection instead of giving it back (a worker abandoned with it
        still in use hands it here once its statement returns)."""
        with self._lock:
            self._retire_locked([pooled])
        pooled.close()

    def discard(self, path: Path) -> None:
        """Close the idle connections to ``path`` and retire the ones in use when they come
        back (its file is going away, or changed under connections that cannot see it)."""
        with self._lock:
            conns = self._idle.pop(path, [])
            self._idle_count -= len(conns)
            self._generation[path] = self._generation.get(path, 0) + 1
            self._retire_locked(conns)
        for pooled in conns:
            pooled.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for group in self._idle.values() for c in group]
            self._idle.clear()
            self._retire_locked(conns)
            self._idle_count = 0
        for pooled in conns:
            pooled.close()

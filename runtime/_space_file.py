"""One space's SQLite file: its connections, committed-value cache, commit and catch-up.

Tables (all ``_cf_*``, R12): ``_cf_meta`` (the space id, the format, the compaction point),
``_cf_cells`` (id, JSON value, rev), ``_cf_log`` (seq, commit record), ``_cf_op_index`` (which
seqs hold ops on which target, so an extension finds the commits that touched what it owns without
scanning the log), ``_cf_named`` (ids only compacted history named) and ``_cf_names`` (the name
and kind of each top-level cell and database, recorded by the first commit of this runtime that
writes it by name: ids are one-way hashes of names, and the store's tools show names, SPEC §6).
The file is opened in WAL mode with ``synchronous=FULL``.

Every commit this process learns of — its own, or another runtime's found by catch-up — is applied
to the cache and handed to the runtime's scheduler in seq order, after it is durable (R50).

The committed-value cache is a bounded LRU: it only mirrors committed rows, so a miss re-reads
``_cf_cells``. The log is compacted by the writer right after a commit, every ``compact_every``
commits: records older than the newest ``compact_keep`` go, except the newest ``keep_per_target``
records of each op target (what crash reconciliation replays, R71) — of a target whose last op
ended it (a participant's ``ends_target``: a drop), only that op's record. It is compacted by size
too: once its records hold more bytes than the space's values, or ``compact_bytes`` when that is
more, only the newest records holding half of that stay (besides those of each op target). A
runtime whose last seen seq is older than the compaction point cannot replay what it missed; it
re-reads the cells written since from ``_cf_cells`` and publishes them as synthetic events whose
ops (made by ``whole_op``) say "this target changed as a whole".
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import apsw

from sqlite_cells.codec import (
    ClosedError,
    CommitRecord,
    ConflictError,
    DatabaseError,
    Op,
    SqliteCellsError,
    StoreChanged,
    StoredCellError,
    TransactionError,
    decode_record,
    stored_json,
)
from sqlite_cells.runtime._blocked import joining
from sqlite_cells.runtime._boundary import DAMAGED_SPACE_ADVICE, stored_json_column, translated
from sqlite_cells.runtime._commit import commit_error, holds, write_member
from sqlite_cells.runtime._file_kind import (
    check_file_kinds,
    check_not_dangling,
    file_identity,
    file_state,
    stands_at,
)
from sqlite_cells.runtime._fork import FORKED_ADVICE, generation
from sqlite_cells.runtime._format import (
    FORMAT_VERSION,
    NAMED_TABLE,
    NAMES_TABLE,
    ensure_format,
    readable_format,
)
from sqlite_cells.runtime._group import Ticket, fail_together, shared, take_batch
from sqlite_cells.runtime._harden import harden
from sqlite_cells.runtime._interrupts import interrupts_held
from sqlite_cells.runtime._lock_wait import (
    give_up_lock_waits,
    lock_waits_abandonable,
    lock_waits_abandoned,
    set_lock_wait,
)
from sqlite_cells.runtime._log import (
    TARGET_BYTES,
    compact_log,
    compaction_point,
    last_seq,
    live_bytes,
    log_bytes,
    op_index_seq,
    op_targets,
    record_size,
    shown_stored,
    stored_text_id,
)
from sqlite_cells.runtime._marks import mark, unchanged_since
from sqlite_cells.runtime._moved_files import set_aside, wal_state
from sqlite_cells.runtime._stack_room import STACK_ROOM
from sqlite_cells.runtime._turns import Turns
from sqlite_cells.runtime._tx import LENGTH_LIMIT, validate_elsewhere
from sqlite_cells.runtime._unused_files import has_moved, is_blank, remove_unused

if TYPE_CHECKING:
    from sqlite_cells.runtime._participants import CommitParticipant
    from sqlite_cells.runtime._tx import PendingOp, Transaction

__all__ = [
    "SPACE_TABLES",
    "CommitEvent",
    "Entity",
    "SpaceFile",
    "space_file_advice",
    "space_shape_problem",
]

log = logging.getLogger("sqlite_cells.runtime")

_MAIN = ("main",)

# The space whose commit the current thread leads, if any (see SpaceFile.commit).
_leading_here = threading.local()


def leading_space() -> str | None:
    """The id of the space whose commit the current thread leads (code a commit runs: a
    ``migrate`` callback), if any."""
    return getattr(_leading_here, "space", None)


BUSY_TIMEOUT_MS = 30_000


def busy_ms(seconds: float | None) -> int:
    """SQLite's busy timeout (whole milliseconds, at least 1) for a wait of ``seconds``; None:
    the runtime's own long one, ``BUSY_TIMEOUT_MS``."""
    return BUSY_TIMEOUT_MS if seconds is None else max(1, int(seconds * 1000))


# How long a body may hold the space's write lock (a handler's try that runs its body inside
# ``exclusive``, or an async one's ``LockHolder``) while another committer of this runtime waits
# for it: past that the waiter stops waiting (``ConflictError``, so a handler tries again) instead
# of waiting for good for a body that may be waiting for it — for a sync body, when it is found
# joining the waiter's thread (``joining``); any other body is waited for until it has held the
# lock ``BUSY_PATIENCE``, as long as a commit waits for another process's lock.
LOCK_PATIENCE = 0.25
BUSY_PATIENCE = BUSY_TIMEOUT_MS / 1000  # counted from when the body took the lock
# How long close() waits for a sync handler's body holding the write lock (Python code, which
# close() cannot stop) before it leaves the space's files to that block's end (see close).
CLOSE_PATIENCE = 5.0
_WAITING_LOOKS = 3  # a body seen joining one committer's thread at this many looks in a row
_JOINED_REASON = (
    "another thread's transaction holds the space's write lock (a handler that kept conflicting "
    f"runs its body holding it) and joins the thread making this commit, or has held it for over "
    f"{BUSY_PATIENCE:g} s; nothing of this one was written. If that body waits for this "
    "commit, make this commit before that body runs"
)


def _joined_conflict(space_id: str) -> ConflictError:
    return ConflictError(space_id, (), reason=_JOINED_REASON)


_LOCK_POLL = 0.05  # how often such a waiter looks at how long the body has held the lock

# Prepared statements the write connection keeps (apsw's cache; its default is 100). apsw puts
# a statement back in the cache at each use, evicting the entry used longest ago, and
# ``executemany`` does so once per row: with 100 entries one ``exec_many`` of 100 rows evicted
# every statement of the commit around it, to be prepared again at the next commit. A commit's
# own statements survive an ``exec_many`` of up to about this many rows.
WRITER_STATEMENTS = 512  # apsw's largest

CACHE_SIZE = 4096  # committed values cached per space (an LRU; a miss re-reads _cf_cells)
# Newest log records always kept, so a runtime a little behind replays them; one further behind
# re-reads the cells written since (a scan of _cf_cells), which is correct, only dearer.
COMPACT_KEEP = 256
COMPACT_EVERY = 256  # commits between compactions (amortised: one DELETE of this many records)
# Compaction by size: once the log's records above the compaction point pass this many bytes, or
# the bytes of the space's values when those are more, the log is compacted down to the newest
# records holding half of that (see _compact_now): the log never holds more than the values it
# leads to, or this floor, however large each value.
COMPACT_BYTES = 4 * 2**20
# Newest records kept per op target: at least the 256 changesets a database file's own journal
# keeps, so a database behind its space by a crash finds every commit it missed (R71).
KEEP_PER_TARGET = 256

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS _cf_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _cf_cells (
    id TEXT PRIMARY KEY, value BLOB NOT NULL, rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _cf_log (seq INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS _cf_op_index (
    target TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (target, seq)
) WITHOUT ROWID;
"""
    + NAMED_TABLE
    + ";\n"
)


# The tables every space file holds (what tells a space file from another program's database),
# with the columns of each that every version of this program made and reads.
SPACE_COLUMNS: Final = {
    "_cf_meta": ("key", "value"),
    "_cf_cells": ("id", "value", "rev"),
    "_cf_log": ("seq", "record"),
}
SPACE_TABLES = frozenset(SPACE_COLUMNS)
# Every table the schema above makes (a file of the current format holds them all).
_SCHEMA_TABLES: Final = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _SCHEMA))
# Every table the runtime makes in a space file (``_cf_names`` at a commit that names one).
_OWN_TABLES: Final = _SCHEMA_TABLES | frozenset(
    re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", NAMES_TABLE)
)
_TARGETS_SQL = f"SELECT DISTINCT {TARGET_BYTES} FROM _cf_op_index"
_NO_FILE: Final = object()  # what _fetch_one reads of a space without a file
# What a read of a space whose file was replaced is told (see SpaceFile.catch_up).
_NOT_READ: Final = (
    "this runtime reads nothing of the space any more (what it holds is the replaced file's; "
    "other runtimes commit to the new one)"
)
# Stored JSON is read as bytes, text included (see ``stored_json_column``), and so are the ids of
# a scan: text another program wrote that is not UTF-8 is then one row's error, not the scan's.
_CELL_SQL = f"SELECT {stored_json_column('value')}, rev FROM _cf_cells WHERE id = ?"
_CELLS_SINCE_SQL = (
    "SELECT CASE typeof(id) WHEN 'text' THEN CAST(id AS BLOB) END, "
    f"{stored_json_column('value')}, rev FROM _cf_cells WHERE rev > ?"
)
_RECORDS_SQL = f"SELECT {stored_json_column('record')} FROM _cf_log WHERE seq > ? ORDER BY seq"
_SPACE_ID_SQL = "SELECT value FROM _cf_meta WHERE key = 'space_id'"


def space_shape_problem(conn: apsw.Connection, names: frozenset[str]) -> str | None:
    """What keeps the SQLite database behind ``conn``, whose schema objects are ``names``, from
    being a space file, said after "is" — not one at all (a table every space file holds is
    missing: another program's file under a space file's name), or one whose own tables another
    program changed (a column is missing: every read of it would fail; an index the runtime
    never makes is on one of them: every commit computes it, see :func:`space_file_advice`) —
    or None."""
    # (SQLite's names are ASCII case-insensitive: `_CF_CELLS` is the table `_cf_cells`, and
    # `ID` its column `id`.)
    missing = sorted(SPACE_TABLES - {name.lower() for name in names})
    if missing:
        return (
            f"not a space file: an SQLite database without the table(s) {', '.join(missing)} "
            "that every space file holds (another program's file under a space file's name)"
        )
    stand_ins = sorted(
        f"{str(name).lower()} is a {kind}"
        for (name, kind) in conn.execute(_NOT_TABLES_SQL)
        if str(name).lower() in SPACE_TABLES
    )
    if stand_ins:
        # (Read through a view, cells would show another program's values; a commit would
        # fail on it with nothing to say why.)
        return (
            f"damaged: {', '.join(stand_ins)} where every space file holds a table of that "
            "name (another program put it in the table's place)"
        )
    lacking: list[str] = []
    for table, columns in SPACE_COLUMNS.items():
        found = {str(name).lower() for (name,) in conn.execute(_COLUMNS_SQL, (table,))}
        lacking.extend(f"{table}.{column}" for column in columns if column not in found)
    if lacking:
        return (
            f"damaged: its own tables lack the column(s) {', '.join(lacking)} that every space "
            "file holds (another program changed them)"
        )
    added = sorted(
        f"{_quoted(str(name))} on {str(table).lower()}"
        for (name, table) in conn.execute(_INDEXES_SQL)
        if str(table).lower() in _OWN_TABLES
    )
    if added:
        # (The runtime makes none: one another program added is computed at every commit, and
        # one SQLite cannot compute, or a UNIQUE one, fails every commit with nothing to say why.)
        return f"{_ADDED_INDEXES} ({', '.join(added)}), which every commit would have to compute"
    return None


def _quoted(name: str) -> str:
    """``name`` as an SQL identifier (what a ``DROP INDEX`` of it is to spell)."""
    return '"' + name.replace('"', '""') + '"'


def space_file_advice(problem: str) -> str:
    """What to do about a space file that :func:`space_shape_problem` says is ``problem``: drop
    the indexes another program added (they hold no data), else what a damaged space file
    needs (a backup)."""
    return ADDED_INDEX_ADVICE if problem.startswith(_ADDED_INDEXES) else DAMAGED_SPACE_ADVICE


_ADDED_INDEXES: Final = (
    "changed by another program: it holds index(es) the runtime never makes on its own tables"
)
ADDED_INDEX_ADVICE: Final = (
    "an index holds no data (SQLite makes it from its table), so nothing of the space is lost "
    "by dropping it: drop each index named with another program (`DROP INDEX name` in the "
    "`sqlite3` shell on the space file), then use the space again"
)
_COLUMNS_SQL: Final = "SELECT name FROM main.pragma_table_info(?)"
# Indexes another program made (SQLite's own, for a PRIMARY KEY or UNIQUE column, have no SQL).
_INDEXES_SQL: Final = (
    "SELECT name, tbl_name FROM main.sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"
)
_NOT_TABLES_SQL: Final = "SELECT name, type FROM main.sqlite_schema WHERE type <> 'table'"


@dataclass(frozen=True, slots=True)
class Entity:
    """A committed cell value as stored: JSON bytes (None when never written) and its rev."""

    data: bytes | None
    rev: int


ABSENT = Entity(None, 0)


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """A durable commit of one space, as delivered to the scheduler."""

    space: SpaceFile
    seq: int
    writes: dict[str, Entity]
    ops: tuple[Op, ...]


class _Landing:
    """The cells a commit of this runtime writes, from just before its ``COMMIT`` until the cache
    holds their new values: SQLite shows the commit to every reader as ``COMMIT`` returns, so a
    cell read in between (on another thread) waits for it instead of answering with the value it
    replaces — a ``get()`` made after a ``db.read`` that saw the commit's rows is never older
    than those rows (R40). The committing thread itself never waits (it takes the commit in)."""

    __slots__ = ("_held", "_owner", "ids")

    def __init__(self, records: Sequence[CommitRecord]) -> None:
        self.ids = frozenset(w.id for record in records for w in record.writes)
        self._owner = threading.get_ident()
        # Held until the commit has landed (a lock, not an Event: this is made at every commit,
        # and a wait is rare); each waiter takes it in turn once it is let go.
        self._held = threading.Lock()
        self._held.acquire()

    def wait(self) -> None:
        if threading.get_ident() != self._owner:
            with self._held:
                pass

    def end(self) -> None:
        self._held.release()


class _Bus:
    """Spaces of this process that share a file, so a commit can wake the others at once
    instead of waiting for their next poll (R53 within one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _by_path
        self._by_path: dict[Path, weakref.WeakSet[SpaceFile]] = {}

    def join(self, space: SpaceFile) -> None:
        with self._lock:
            self._by_path.setdefault(space.path, weakref.WeakSet()).add(space)

    def leave(self, space: SpaceFile) -> None:
        """``space`` is closed. The last to leave a path takes its entry with it: every runtime
        gets new paths (an ephemeral one, a new store), so entries left behind would pile up
        for the life of the process. A space joining the path meanwhile waits for the lock and
        makes a new entry."""
        with self._lock:
            peers = self._by_path.get(space.path)
            if peers is not None:
                peers.discard(space)
                if not peers:
                    del self._by_path[space.path]

    def peers(self, space: SpaceFile) -> list[SpaceFile]:
        with self._lock:
            found = self._by_path.get(space.path)
            # Most files have one space in this process: no list, no WeakSet iteration.
            if found is None or len(found) < 2:
                return []
            return [s for s in found if s is not space]


_bus = _Bus()


class LoopHolder(Protocol):
    """What ``SpaceFile.exclusive`` knows of an async handler's lock holder
    (``_lock_holder.LockHolder``): the thread running the event loop its body runs on, and how
    to have it let the lock go."""

    @property
    def loop_thread(self) -> int: ...

    def let_go(self) -> None: ...


class SpaceFile:
    """The storage of one space in one runtime.

    ``publish`` receives each :class:`CommitEvent`, in seq order, once the commit is durable.
    ``participants`` maps an op kind to the participant that applies it. ``wake`` asks the owning
    runtime to catch up at once (called by peers in this process after they commit).
    ``whole_op`` makes, for an op target, the op of a synthetic event that says the target
    changed in ways the log no longer holds (None: the target needs no op).
    ``check_committed`` judges again, at commit, a write whose cell another writer committed
    since the write was checked (``Runtime.check_committed``, R5).
    """

    def __init__(
        self,
        path: Path,
        space_id: str,
        *,
        publish: Callable[[CommitEvent], None],
        participants: Callable[[str], CommitParticipant],
        wake: Callable[[], None],
        whole_op: Callable[[str], Op | None] | None = None,
        check_committed: Callable[[str, str, bytes], None] | None = None,
    ) -> None:
        self.path = path
        self.space_id = space_id
        self._publish = publish
        self._participant = participants
        self.wake = wake
        self._whole_op = whole_op
        self.check_committed = check_committed
        # Compaction thresholds (instance attributes so tests can make them small).
        self.cache_size = CACHE_SIZE
        self.compact_keep = COMPACT_KEEP
        self.compact_every = COMPACT_EVERY
        self.compact_bytes = COMPACT_BYTES
        self.keep_per_target = KEEP_PER_TARGET
        # Guarded by _write_lock: the compaction point last seen; the bytes of the log records
        # above it as last measured, plus those applied here since (each writer's count, so
        # another process's compaction is only seen at the next measure); the bytes of the
        # space's values as last measured (0 until a log past compact_bytes asks).
        self._compacted = 0
        self._log_bytes = 0
        self._live_bytes = 0
        # _write_lock guards _writer, _seen_seq and the order in which commits are published.
        self._write_lock = threading.RLock()
        # _queue_lock guards _waiting (transactions waiting for a committer, see _group) and
        # _leading; _turn is signalled when a committer stops leading. Members of a batch wait
        # on _turn, not on _write_lock: a member committed by another thread goes on at once,
        # instead of waiting behind the next leader's whole commit just to learn it is done.
        self._queue_lock = threading.Lock()
        self._turn = threading.Condition(self._queue_lock)
        # How many committers wait on _turn (guarded by _queue_lock): a leader that stops
        # leading signals _turn only then (a notify costs more than the rest of the hand-over).
        self._turn_waiters = 0
        self._waiting: deque[Ticket] = deque()
        self._leading = False
        self._grouped = False  # the last batch had several members
        self._exclusive_owner: int | None = None  # the thread inside ``exclusive``
        # Guarded by _queue_lock: the async handler's lock holder inside ``exclusive`` (if any),
        # the threads waiting for the write lock (ident -> waits: a commit on an event loop's
        # thread lets that loop's holders go, see ``_wait_starts``), and the holders that
        # stepped back for such a commit, woken by _waits_ended when a wait ends.
        self._holder: LoopHolder | None = None
        self._lock_waits: dict[int, int] = {}
        self._stepped_back = 0
        self._waits_ended = threading.Condition(self._queue_lock)
        self._exclusive_since: float | None = None  # when it went in (time.monotonic())
        # Async handlers that keep conflicting retry one at a time (see _turns).
        self.turns = Turns()
        # _read_lock guards _rconn and _data_version.
        self._read_lock = threading.Lock()
        # _cache_lock guards the check-then-set of _cache (reads of a single entry need no lock).
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[str, Entity] = OrderedDict()
        # The targets of the ops this runtime has applied (its own commits and others'), and
        # those the op index held when the file was opened (the commits counted as seen then):
        # together, every database this space's log wrote up to _seen_seq (see ``wrote``).
        self._applied_targets: set[str] = set()
        self._indexed_targets: frozenset[str] = frozenset()
        # The ids a commit of this runtime wrote with their names for ``_cf_names`` (which keeps
        # a name recorded before as it is): a write by name of any other id has its commit
        # record the name, so a cell or database written before names were recorded gets its
        # name too, at one statement per id per runtime and none per commit after (SPEC §6).
        # Added to under _write_lock once a commit is durable; read without a lock by each
        # write (one set look-up is atomic).
        self.named: set[str] = set()
        # What this runtime calls each top-level cell and database made in the space by name
        # (cell id -> "cell 'limit'", "database 'messages'"), for the errors that name a cell
        # (a conflict): ids are one-way hashes of names (R1). Added to by one call (atomic).
        self.names: dict[str, str] = {}
        # Set by the committing thread while its commit lands (see _Landing); read without a lock.
        self._landing: _Landing | None = None
        self._exclusive = False  # guarded by _write_lock: the write transaction is already open
        self._closed = False
        self._closing = False  # close() has begun: a commit waiting for a lock gives up
        # close() gave up waiting for an exclusive block: its end closes the files (guarded by
        # _queue_lock, as _exclusive_since is cleared under it at the block's end).
        self._close_left = False
        self._made_in = generation()  # a forked child may not use it (see _fork)
        # The connections are opened when the file exists, or when the first commit creates it
        # (R7: reading a space the store does not hold creates nothing). _writer is guarded by
        # _write_lock, _rconn by _read_lock; both are set together by _open.
        self._writer: apsw.Connection | None = None
        # One cursor of _writer for the commit's own statements (a cursor per statement costs
        # as much as a small statement's step); only statements that run to their end use it.
        self._wcursor: apsw.Cursor | None = None
        self._rconn: apsw.Connection | None = None
        self._seen_seq = 0
        # The newest seq whose event is published (set after _seen_seq, write lock held): a
        # catch-up that finds nothing past it has nothing left for a settle() to wait for.
        self._published_seq = 0
        self._peer_seq = 0  # the newest seq a peer of this process said it committed here
        self.opened_seq = 0  # commits up to here were never published as events
        self._data_version: int | None = None  # None: catch up from _seen_seq at the next poll
        # The file's device and inode when opened: a commit checks the path still names it (R73).
        self._identity: tuple[int, int] | None = None
        # Another file was found at the path (by a commit, or by a catch-up's look): what this
        # runtime holds is the replaced file's, so reads, catch-ups and commits raise
        # StoreChanged from then on, even if that file is put back (R73). Set under _write_lock;
        # read without a lock (one attribute, on every read).
        self._replaced = False
        # Whether the file has been seen holding pages: a WAL file is empty until its first
        # checkpoint, but once it holds pages it never goes back to none, so an empty file then
        # was emptied under this runtime (truncated, R73).
        self._held_pages = False
        # Its -wal's and -shm's: the commits live in the -wal until a checkpoint, and the -shm is
        # what keeps the writers of the -wal apart. SQLite keeps both while any connection has
        # the file open (only the last to close removes them), so another one at the path was
        # deleted or replaced under this runtime: a commit would be acknowledged into an unlinked
        # -wal a kill loses, or written over another process's commits (R72, R73).
        # Keyed by path (a str: a commit stats them, and a Path costs more to make than a stat).
        self._companion_identity: dict[str, tuple[int, int] | None] = {}
        # The -wal as this runtime's last commit (or its open) left it, and the file found at
        # the path in its place when its companions were last looked at (see _moved_files).
        self._wal_written: tuple[int, int] | None = None
        self._looked_aside: tuple[int, int] | bool | None = False
        self._path_str = str(path)
        self._companion_paths = tuple(f"{path}{suffix}" for suffix in _COMPANIONS)
        # Guarded by _write_lock: this runtime created the file and no commit of it has been
        # seen since, so a first commit that fails removes it again (R7, see _discard_unused).
        self._created = False
        self._fresh = False  # guarded by _write_lock: the last _open_writer initialized the file
        with translated(f"space file {path}"):  # a store this user may not search
            found = stands_at(path)
        if found:
            self._open(at_start=True, create=False)
        _bus.join(self)

    # -- opening -------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        """Whether the space's file is open or exists on disk (it is created by the first
        commit, never by a read; R7)."""
        return self._writer is not None or stands_at(self.path)

    @property
    def _wconn(self) -> apsw.Connection:
        """The write connection, opening (and so creating) the file on first use. Taken with
        the write lock held, which ``close()`` takes too: a runtime closed since the caller's
        first check is a :class:`ClosedError` here, never a connection closed under it."""
        self._check_open()
        conn = self._writer
        if conn is None:
            conn = self._open(at_start=False, create=True)
            assert conn is not None
        return conn

    @property
    def open_writer(self) -> apsw.Connection | None:
        """The write connection if the file is open, else None; read without the write lock, to
        key what extensions keep per connection (never to run statements on)."""
        return self._writer

    @property
    def has_file(self) -> bool:
        """Whether this runtime has the space's file open (else it has none, or not yet)."""
        return self._writer is not None

    def _open_if_exists(self) -> bool:
        """Open the file if it exists now (another runtime may have created it); False if not."""
        if self._writer is not None:
            return True
        if not stands_at(self.path):
            return False
        return self._open(at_start=False, create=False) is not None

    def _open(self, *, at_start: bool, create: bool) -> apsw.Connection | None:
        """Open both connections (creating the file and its tables if ``create``, upgrading an
        older format; R73); None when the file is not there and ``create`` is false (a read
        never creates it, R7). Opened at start, commits already in the file count as seen;
        opened later, the next catch-up publishes every commit past ``_seen_seq``.

        A file removed while it was being opened (a first commit elsewhere that failed removes
        the file it created, see :func:`remove_unused`) is let go and the path opened again, so
        the connections never hold a file that is no longer at the path."""
        with self._write_lock:
            if self._writer is not None:
                return self._writer
            self._check_open()
            with translated(f"space file {self.path}"):
                check_file_kinds(self.path, "space file")
                if create:
                    check_not_dangling(self.path, "space file")
                for attempt in range(1, _OPEN_TRIES + 1):
                    try:
                        opened = self._open_connections(create=create)
                        break
                    except _Moved as moved:
                        if attempt == _OPEN_TRIES and isinstance(moved.__cause__, apsw.IOError):
                            raise moved.__cause__ from None
                        time.sleep(0.001 * attempt)
                else:
                    raise StoreChanged(
                        str(self.path),
                        f"the file of space {self.space_id!r} was removed or replaced each time "
                        "it was opened; nothing was committed: try again",
                    )
            if opened is None:
                return None
            writer, reader, last = opened
            targets: frozenset[str] = frozenset()
            if at_start:
                try:
                    # (Damage met here is the file's too: said as any other, R71, Errors.)
                    with translated(f"space file {self.path}"):
                        targets = frozenset(t for t, _ in op_targets(reader.execute(_TARGETS_SQL)))
                except BaseException:
                    reader.close()
                    writer.close()
                    raise
            with self._read_lock:
                self._rconn = reader
                if at_start:
                    self._seen_seq = self._published_seq = self.opened_seq = last
                    self._data_version = self._read_data_version()
                    self._indexed_targets = targets
            self._wcursor = writer.cursor()
            self._writer = writer
            return writer

    def _open_connections(
        self, *, create: bool
    ) -> tuple[apsw.Connection, apsw.Connection, int] | None:
        """The writer, the reader and the last seq; None if there is no file and ``create`` is
        false. Raises ``_Moved`` if the file opened is no longer the file at the path.

        The writer is always opened able to create (``ATTACH`` creates database files with the
        flags of the connection it runs on), so when it must not create, the reader is opened
        first, without creating, and the writer is let go if the reader's file left the path
        meanwhile (the writer may then have created a blank file, removed again)."""
        reader: apsw.Connection | None = None
        # A file this call creates is removed again if opening it fails (a full disk, an I/O
        # error while its tables are made): a refused first commit leaves no file (R7).
        creating = create and not self.path.exists()
        if not create:
            try:
                reader = harden(apsw.Connection(str(self.path), flags=apsw.SQLITE_OPEN_READONLY))
            except apsw.CantOpenError:
                if self.path.exists():
                    raise
                return None
        try:
            writer = self._open_writer(guard=reader)
        except BaseException:
            if reader is not None:
                reader.close()
            if creating:
                remove_unused(self.path, _space_unused)
            raise
        try:
            st = os.stat(self.path)
            # Looked at after the stat: the inode seen is the one open.
            if has_moved(writer) or (reader is not None and has_moved(reader)):
                raise _Moved
            if reader is None:
                reader = harden(apsw.Connection(str(self.path), flags=apsw.SQLITE_OPEN_READONLY))
            reader.setbusytimeout(BUSY_TIMEOUT_MS)
            last = last_seq(writer)
            self._compacted = compaction_point(writer)
            self._log_bytes = log_bytes(writer)
        except BaseException as exc:
            writer.close()
            if reader is not None:
                reader.close()
            if creating:
                remove_unused(self.path, _space_unused)
            if isinstance(exc, FileNotFoundError):
                raise _Moved from exc
            raise
        self._identity = (st.st_dev, st.st_ino)
        self._held_pages = st.st_size > 0
        self._companion_identity = {
            companion: file_identity(companion) for companion in self._companion_paths
        }
        self._wal_written = wal_state(self._path_str)
        if create and self._fresh:
            self._created = True
        return writer, reader, last

    def _open_writer(self, *, guard: apsw.Connection | None) -> apsw.Connection:
        """The write connection, the file's tables created if missing. With ``guard`` (a
        connection opened first on the existing file), raises ``_Moved`` before writing anything
        if that file left the path before this one was opened (this one may have created a
        blank file then: it is removed if nobody else has it open)."""
        conn = harden(apsw.Connection(str(self.path), statementcachesize=WRITER_STATEMENTS))
        if guard is not None and has_moved(guard):
            conn.close()
            remove_unused(self.path, is_blank)
            raise _Moved
        self._fresh = False
        try:
            set_lock_wait(conn, BUSY_TIMEOUT_MS)
            conn.limit(apsw.SQLITE_LIMIT_LENGTH, LENGTH_LIMIT)  # R44: nothing stored is unreadable
            names = self._refuse_foreign(conn)
            if not names:
                # A new file gives the pages compaction frees back. (Asked of a file that has
                # tables, SQLite ignores it, but only once it holds the write lock: another
                # process's commit would hold the opening back.)
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            _set_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            if names >= _SCHEMA_TABLES and self._set_up(conn):
                return conn  # nothing to write: no wait for another writer's commit (R40, R44)
            with _immediate(conn):
                conn.execute(_SCHEMA)
                row = conn.execute(_SPACE_ID_SQL).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO _cf_meta (key, value) VALUES ('space_id', ?)",
                        (self.space_id,),
                    )
                    self._fresh = True
                elif row[0] != self.space_id:
                    raise SqliteCellsError(
                        f"{self.path} belongs to space {row[0]!r}, not {self.space_id!r}: the "
                        "store is damaged or two space ids share a file name; move the file aside"
                    )
                ensure_format(conn, self.path)
        except BaseException as exc:
            # SQLite refuses to write a file unlinked while it was opened (a file another
            # runtime's refused first commit removed), or meets its -wal removed as it looks
            # at it (an I/O error): open the path again (a real I/O error repeats, and is raised
            # after the last try).
            moved = (isinstance(exc, apsw.ReadOnlyError) and has_moved(conn)) or isinstance(
                exc, apsw.IOError
            )
            older = None
            if isinstance(exc, apsw.ReadOnlyError) and not moved:
                older = self._older_format(conn)
            conn.close()
            if moved:
                raise _Moved from exc
            if older is not None:
                raise DatabaseError(
                    f"space file {self.path} is in store format {older}, and this sqlite-cells "
                    f"uses format {FORMAT_VERSION}: it upgrades the file in place when it first "
                    f"opens it (R73), which needs write access, but the file is read-only "
                    f"({exc}); nothing was changed: make the store writable, then open it again "
                    "(or run `sqlite-cells check --repair`, which upgrades it too)"
                ) from exc
            raise
        return conn

    def _older_format(self, conn: apsw.Connection) -> int | None:
        """The store format of the file behind ``conn`` when it is older than this version's
        (None otherwise, or when it cannot be read)."""
        try:
            with _deferred(conn):
                found = readable_format(conn, self.path)
        except (apsw.Error, SqliteCellsError):
            return None
        return found if found is not None and found < FORMAT_VERSION else None

    def _set_up(self, conn: apsw.Connection) -> bool:
        """Whether the file, which holds every table of the schema, is a space file of this
        space in the current format already, found by a read (a WAL reader never waits for a
        writer): then opening it writes nothing, and another process's long commit does not
        hold the opening back. Anything else (an older file, another space's) is looked at
        again under the write lock, which decides."""
        with _deferred(conn):
            row = conn.execute(_SPACE_ID_SQL).fetchone()
            return (
                row is not None
                and row[0] == self.space_id
                and readable_format(conn, self.path) == FORMAT_VERSION
            )

    def _refuse_foreign(self, conn: apsw.Connection) -> frozenset[str]:
        """Raise before anything is written if the file is an SQLite database with tables but
        without those every space file holds: another program's file under the space file's
        name, never adopted nor written into. A file with no table at all is a space file whose
        first commit was cut short (the file is made, then filled by the commit): it is used.
        Returns the names of the file's schema objects. The tables' names and their columns
        are read in one snapshot: read apart, another process making or removing the file
        between the two looks (a first commit, or a refused one taking its file back) showed
        names whose columns were gone, taken for damage."""
        with _deferred(conn):
            names = frozenset(
                str(name) for (name,) in conn.execute("SELECT name FROM sqlite_schema")
            )
            problem = space_shape_problem(conn, names) if names else None
        if problem is not None:
            raise DatabaseError(
                f"space file {self.path} is {problem}; nothing was written to it: "
                f"{space_file_advice(problem)}"
            )
        return names

    @property
    def seen_seq(self) -> int:
        """The last seq this runtime has applied and published."""
        return self._seen_seq

    def _read_data_version(self) -> int:
        assert self._rconn is not None
        row = self._rconn.execute("PRAGMA data_version").fetchone()
        assert row is not None
        return int(row[0])

    # -- reads ---------------------------------------------------------------------------------

    def entity(self, cell_id: str) -> Entity:
        """The committed value of a cell as far as this runtime knows (R50: never uncommitted;
        R40: never older than a commit this runtime's other reads already show, see _Landing).
        Raises :class:`StoreChanged` once the file was found replaced (see :meth:`catch_up`)."""
        if self._replaced:
            raise self._replaced_error()
        landing = self._landing
        if landing is not None and cell_id in landing.ids:
            if self._made_in != generation():
                # Forked while a thread of the parent was landing a commit: that thread is not
                # here to end it, and waiting for it would never return.
                self._check_open()
            landing.wait()
        cached = self._cache.get(cell_id)
        if cached is not None:
            try:  # noqa: SIM105 - the hot path of every read; suppress() costs a context manager
                self._cache.move_to_end(cell_id)
            except KeyError:  # evicted meanwhile by another thread: the value is still right
                pass
            return cached
        return self._read_entity(cell_id)

    def current_rev(self, cell_id: str) -> int:
        """The revision of ``cell_id`` committed in the file now (0: never written, or no file),
        read afresh whatever the cache holds; the cache is advanced to what was read. Used to
        validate a transaction's reads of this space when it commits to another one."""
        return self._read_entity(cell_id).rev

    def _fetch_one(self, sql: str, params: tuple[object, ...]) -> Any:
        """The first row of ``sql`` read from the file now (None: no row), or ``_NO_FILE``
        when the space has no file (yet, or any more)."""
        self._check_open()
        if self._replaced:
            raise self._replaced_error()
        if not self._open_if_exists():
            return _NO_FILE
        with self._read_lock, translated(f"space file {self.path}"):
            self._check_open()  # closed since the check above: its connections are closed
            if self._rconn is None:  # a refused first commit removed the file meanwhile
                return _NO_FILE
            return self._rconn.execute(sql, params).fetchone()

    def _read_entity(self, cell_id: str) -> Entity:
        """The committed value of a cell read from the file now, remembered in the cache."""
        row = self._fetch_one(_CELL_SQL, (cell_id,))
        if row is _NO_FILE:
            return ABSENT  # not cached: the file may appear later
        if row is None:
            return self._remember(cell_id, ABSENT)
        data, rev = row
        if type(data) is not bytes or type(rev) is not int:  # not as this library writes it
            return self._remember(cell_id, self._entity_of_row(cell_id, data, rev))
        return self._remember(cell_id, Entity(data, rev))

    def wrote(self, target: str) -> bool:
        """Whether this space's log has ops on ``target`` (a database it wrote), as far as this
        runtime has caught up: the op index as the file was opened (compaction keeps the newest
        op of each target), then the ops of every commit applied since. A set look-up: ``set``
        asks it of every cell that holds a value (R5)."""
        return target in self._applied_targets or target in self._indexed_targets

    def _entity_of_row(self, cell_id: str, data: object, rev: object) -> Entity:
        """The entity of a ``_cf_cells`` row, which another program may have written: a value
        stored as text is read as its UTF-8 bytes (the same JSON; SQLite's own JSON functions
        return text); a value of another type, or a rev that is not an integer, is a
        :class:`StoredCellError` naming the cell and the file."""
        if type(rev) is not int:
            raise StoredCellError(
                cell_id,
                str(self.path),
                "rev",
                rev,
                f"cell {cell_id} in space file {self.path} has as its revision "
                f"{shown_stored(rev)}, which is not an integer (sqlite-cells stores the seq of "
                "the commit that wrote the cell): the row was written by another program, and the "
                "cell cannot be read or written until it is repaired; restore the space file "
                "from a backup, or give the row's rev the seq of a commit again",
            )
        found = stored_json(data)
        if found is not None:
            return Entity(found, rev)
        raise StoredCellError(
            cell_id,
            str(self.path),
            "value",
            data,
            f"cell {cell_id} in space file {self.path} holds {shown_stored(data)} where its JSON "
            "value (a BLOB or UTF-8 text) belongs: the row was written by another program, and the "
            "cell cannot be read or written until it is repaired; restore the space file from "
            "a backup, or store the cell's JSON value in the row again",
        )

    def _remember(self, cell_id: str, entity: Entity) -> Entity:
        with self._cache_lock:
            held = self._cache.get(cell_id)
            # Revisions only move forward: a cache fill may have seen a newer commit than the
            # catch-up that is applying an older one.
            if held is not None and held.rev >= entity.rev:
                return held
            self._cache[cell_id] = entity
            self._cache.move_to_end(cell_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return entity

    def _refresh(self, cell_id: str, entity: Entity) -> None:
        """Advance a cached entry (a cell not cached is read from ``_cf_cells`` when asked)."""
        with self._cache_lock:
            held = self._cache.get(cell_id)
            if held is not None and held.rev < entity.rev:
                self._cache[cell_id] = entity

    @property
    def cached_count(self) -> int:
        """How many committed values the cache holds (tests and benchmarks)."""
        return len(self._cache)

    # -- commit --------------------------------------------------------------------------------

    def commit(self, tx: Transaction) -> int:
        """Commit ``tx`` as one SQLite transaction (shared with other transactions of this space
        committing at the same moment, see ``_group``) and return its seq.

        Raises :class:`StoreChanged` when the space file was deleted or replaced since it was
        opened (R73), :class:`ConflictError` when a cell it read changed since (in this space,
        checked inside the commit's SQLite transaction; in another space, checked against that
        space's file just before), and whatever a participant raised; in every failing case
        nothing of ``tx`` is written.
        """
        self._check_open()
        outer = getattr(_leading_here, "space", None)
        if outer is not None:
            # Code run by a commit this thread leads (a ``migrate`` callback) cannot commit:
            # in the same space the commit it would join is the one waiting for it, and in
            # another space two such callbacks would wait for each other's write lock.
            where = "the same space" if outer == self.space_id else f"space {outer!r}"
            raise TransactionError(
                f"space {self.space_id!r}: a transaction cannot commit from inside a commit of "
                f"{where} (for example from a migrate callback); commit it after that write "
                "has returned"
            )
        # Before any lock of this space is taken: reading another space's file may open it,
        # which takes that space's write lock, and two commits doing so in opposite spaces
        # would otherwise wait for each other.
        validate_elsewhere(tx, self)
        me = threading.get_ident()
        ticket = Ticket(tx, self._group_ops(tx.ops), thread=me)
        # The thread inside ``exclusive`` holds the write lock: it never waits for a leader,
        # who would wait for that lock.
        inside = self._exclusive_owner == me
        leads = False
        try:
            # (The queue lock itself: _turn's own enter and exit are Python calls around it.)
            with self._queue_lock:
                self._waiting.append(ticket)
                while self._leading and not ticket.done and not inside:
                    # Its caller gave up before any leader took it (see ``caller_gave_up``).
                    if lock_waits_abandoned() and self._withdraw(ticket):
                        ticket.fail(self._given_up("waited for its turn behind another commit"))
                        break
                    self._wait_turn(me)
                leads = not ticket.done and not inside
                if leads:
                    self._leading = True
        except BaseException:
            # A Ctrl-C as the ticket was queued, while it waited, or as the queue lock was let
            # go (CPython raises it after a call): a ticket no leader took goes — or the next
            # leader would commit it, though its committer was told of the interrupt — and a
            # lead taken just before is given up, or every later commit would wait for it.
            with self._queue_lock:
                self._withdraw(ticket)
                if leads:
                    self._leading = False
                    if self._turn_waiters:
                        self._turn.notify_all()
            if ticket.taken and not leads:
                self._await_outcome(ticket, me)
            raise
        if not ticket.done:
            try:
                try:
                    if leads and self._grouped:
                        time.sleep(0)  # let the other committers of the last batch queue up first
                    self._take_write_lock()
                except BaseException as exc:  # nothing of it was written: it leaves the queue
                    with self._queue_lock:
                        self._withdraw(ticket)
                    if not isinstance(exc, ConflictError):  # (a body held the lock too long)
                        raise
                    ticket.fail(exc)
                else:
                    _leading_here.space = self.space_id
                    try:
                        while not ticket.done:
                            self._lead(ticket)
                    finally:
                        _leading_here.space = None
                        if not ticket.done:  # (interrupted before a batch took it: it goes)
                            with self._queue_lock:
                                self._withdraw(ticket)
                        try:
                            if ticket.error is not None or not ticket.done:
                                # Room to roll back is certain here: this frame took the lock.
                                with STACK_ROOM:
                                    self._end_failed_transaction()
                        finally:
                            self._write_lock.release()
            except BaseException:
                # An interrupt (Ctrl-C) ended a first commit before its COMMIT: nothing of it
                # was written, and its file goes as after any failed first commit below (R7).
                if self._created and not self._seen_seq:
                    with interrupts_held():
                        self._discard_after_failure()
                raise
            finally:
                if leads:
                    # (Inline, not a method: a Ctrl-C lands where a Python function starts, and
                    # one landing before `_leading` is reset would keep every commit waiting.)
                    with self._queue_lock:
                        self._leading = False
                        if self._turn_waiters:
                            self._turn.notify_all()
        # (A file that holds commits stays: then the write lock is not waited for again.) Not
        # waited for behind an ``exclusive`` block: its body may be waiting for this very
        # committer (see _take_write_lock), and the block discards an unused file as it ends.
        if self._created and not self._seen_seq and ticket.error is not None:
            self._discard_after_failure()
        seq = ticket.result()
        for peer in _bus.peers(self):
            peer.peer_committed(seq)
        return seq

    def _await_outcome(self, ticket: Ticket, me: int) -> None:
        """Ctrl-C reached a committer whose transaction a leader (another thread) had already
        taken into its batch: it cannot leave any more, and commits or fails with that batch.
        Its caller is told of the interrupt only once that outcome is decided and taken in, as
        for an interrupt that lands while a commit runs: otherwise the write it was told was
        interrupted landed a moment later, behind its back, and its next transaction read
        the value before it and failed with a ``ConflictError`` against it. The batch ends by
        itself (its lock waits are bounded); a second Ctrl-C ends this wait."""
        with self._queue_lock:
            while not ticket.done:
                self._wait_turn(me)

    def _wait_turn(self, me: int) -> None:
        """Wait (``_queue_lock`` held) until a leader ends or hands the lead on, counted among
        the waiters it wakes, and seen by the lock-wait bookkeeping as the thread ``me``."""
        self._turn_waiters += 1
        self._wait_starts(me)
        try:
            self._turn.wait()
        finally:
            self._turn_waiters -= 1
            self._wait_ends(me)

    def peer_committed(self, seq: int) -> None:
        """A runtime of this process committed ``seq`` to this file (``_bus``): catch up soon
        (``wake``), and at once when a transaction of this runtime begins before that
        (``catch_up_with_peers``)."""
        if seq > self._peer_seq:  # (a plain int: a stale read of it only costs a wake)
            self._peer_seq = seq
        self.wake()

    def catch_up_with_peers(self) -> None:
        """Apply the commits a runtime of this process has made to this file and this runtime
        has not applied yet, before a transaction begins here: in one thread, a transaction
        begun after a peer's commit returned reads what it committed (R53), not the value
        before it (which its commit would then refuse as a conflict). Another process's commits
        are found by the poller and by the next commit, as before."""
        if self._peer_seq > self._seen_seq:
            self.catch_up()

    def _withdraw(self, ticket: Ticket) -> bool:
        """Take ``ticket`` out of the queue if no leader has taken it yet (its committer stops
        waiting: then nothing of it is committed later behind its back); say whether it was
        there. Called with the queue lock held."""
        try:
            self._waiting.remove(ticket)
        except ValueError:
            return False
        return True

    def caller_gave_up(self) -> None:
        """A committer's caller gave up (an async handler's task was cancelled: the event of
        ``abandon_lock_waits_on`` is set): wake the committers waiting for their turn, so that
        one whose transaction no leader has taken yet takes it out of the queue and ends,
        nothing of it written. One a leader has taken commits or fails with that batch; a
        leader's own wait for the space file's write lock ends (see ``_hand_back``)."""
        with self._queue_lock:
            if self._turn_waiters:
                self._turn.notify_all()

    def _given_up(self, waiting: str) -> SqliteCellsError:
        """The error of a commit whose caller gave up while it ``waiting`` (nobody hears of it:
        the caller raises its cancellation instead)."""
        return SqliteCellsError(
            f"space {self.space_id!r}: the commit's caller gave up (its task was cancelled) "
            f"while it {waiting}; nothing of it was written"
        )

    def _lead(self, own: Ticket) -> None:
        """Commit the next batch of waiting transactions (called with the write lock held).
        Every ticket of the batch is done when this returns or raises: its committer, blocked
        on the write lock, only looks at the outcome."""
        batch: list[Ticket] = []
        try:  # (from the start: a Ctrl-C as the batch is taken fails the batch too)
            # SIGINT held back while the batch is taken: the tickets taken out of the queue are
            # others' too, and a Ctrl-C between two pops would lose the ones taken (nobody's).
            with self._queue_lock, interrupts_held():
                if self._exclusive:  # the open transaction belongs to ``own`` alone
                    self._waiting.remove(own)
                    batch = [own]
                else:
                    batch = take_batch(self._waiting)
                self._grouped = len(batch) > 1
            if self._closed:  # closed while these waited: nothing of them is written
                closed = ClosedError(
                    f"space {self.space_id!r} was closed (its runtime was closed) before this "
                    "transaction could commit; nothing of it was written: open a new Runtime"
                )
                for i, ticket in enumerate(batch):
                    ticket.fail(shared(closed, first=i == 0))
                return
            # Its caller giving up ends none of the waits made for others' transactions too,
            # but the one for the space file's write lock (see ``_hand_back``).
            with lock_waits_abandonable(abandonable=batch == [own]):
                conn = self._wconn  # opens (creates) the file first, so its identity is known
                self.check_same_file()
                members, begin = self._prepare(conn, batch)
                while members:
                    members = self._commit_members(conn, own, members, begin=begin)
                    begin = True
        except BaseException as exc:
            with STACK_ROOM:
                error = self._commit_error(exc)
                fail_together([t for t in batch if not t.done], error, self.space_id)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like stop this thread too
        finally:
            for ticket in batch:
                if ticket.error is not None and ticket.groups:
                    self._rolled_back(batch)
                    break

    def _rolled_back(self, batch: list[Ticket]) -> None:
        """Tell the participants of the members that failed that nothing of them was written
        (their optional ``rolled_back(conn, ops)`` hook, run outside any transaction under the
        write lock; e.g. the ``sqlite`` participant removes a database file that the failed
        commit's ``prepare`` created, R7). A hook must not raise."""
        conn = self._writer
        try:
            if conn is None or not conn.getautocommit():
                return
        except apsw.ConnectionClosedError:
            return  # the runtime was closed meanwhile (by the failed commit's own code, even)
        for ticket in batch:
            if ticket.error is None:
                continue
            for participant, ops in ticket.groups:
                hook = getattr(participant, "rolled_back", None)
                if hook is not None:
                    _quietly(hook, conn, ops)

    def _discard_after_failure(self) -> None:
        """A failed first commit: :meth:`_discard_unused` under the write lock, waited for
        behind commits and catch-ups (they end by themselves) but not behind an ``exclusive``
        block, which discards the file itself as it ends."""
        while not self._acquire(_LOCK_POLL):
            if self._exclusive:
                return
        try:
            if self._created:
                self._discard_unused()
        finally:
            self._write_lock.release()

    def _discard_unused(self) -> None:
        """After a failed commit into the file this runtime created: if no commit has been made
        in it, by anyone, and no other connection has it open, close it and remove it, so that
        the store looks as it did before (R7: no space file until something is written there).
        Called with the write lock held, outside any transaction."""
        if self._seen_seq:
            self._created = False  # the file holds commits: it stays for good
            return
        if self._exclusive:
            return  # a handler's transaction holds the file (see ``exclusive``)
        with self._read_lock:
            if self._rconn is not None:
                self._rconn.close()
            if self._writer is not None:
                self._writer.close()
            self._rconn = self._writer = self._wcursor = None
            self._identity = None
            self._companion_identity = {}
            self._data_version = None
            self._compacted = self._log_bytes = self._live_bytes = 0
        if remove_unused(self.path, _space_unused):
            self._created = False

    def _prepare(self, conn: apsw.Connection, batch: list[Ticket]) -> tuple[list[Ticket], bool]:
        """Run each member's participants' ``prepare``; return the members that passed and
        whether a transaction must be begun."""
        with_ops = any(t.groups for t in batch)
        # The exclusive block's transaction may be over already: a commit of its own made
        # inside the block (``own_transaction``, e.g. a disk source registered there) committed
        # it. Then this commit begins one, as any other does; the read validation catches
        # whatever another process committed in between.
        open_tx = self._exclusive and not conn.getautocommit()
        if open_tx and with_ops:
            # Participants prepare outside a transaction (ATTACH cannot run inside one). The
            # exclusive transaction has written nothing yet, so it is safe to reopen it; the
            # read validation catches any commit that slipped in between.
            conn.execute("ROLLBACK")
        members = []
        for ticket in batch:
            try:
                for participant, ops in ticket.groups:
                    participant.prepare(conn, ops)
            except Exception as exc:
                ticket.fail(commit_error(exc, self.space_id, self._writer))
            else:
                members.append(ticket)
        return members, with_ops or not open_tx

    def _commit_members(
        self, conn: apsw.Connection, own: Ticket, members: list[Ticket], *, begin: bool
    ) -> list[Ticket]:
        """One SQLite transaction for ``members``, led by the committer of ``own``; returns the
        members to run again (when one member's error ended the transaction), else an empty
        list."""
        foreign: list[Found] = []
        done: list[Ticket] = []
        records: list[CommitRecord] = []
        cursor = (
            self._wcursor if conn is self._writer and self._wcursor is not None else conn.cursor()
        )
        try:
            if begin:
                try:
                    with lock_waits_abandonable(abandonable=True):
                        _begin_space_write(cursor)
                except apsw.BusyError:
                    if self._hand_back(own, members):
                        return []
                    raise
            # Nobody wrote the space file since this connection's last commit, which this
            # runtime has seen: no record to read (the usual case of a busy writer).
            if not unchanged_since(conn, self._seen_seq, _MAIN):
                # R73: another connection wrote the file since; a newer sqlite-cells may have
                # upgraded it in place (same inode), and nothing is committed into a format this
                # version cannot read. One look-up, only when the file was written elsewhere.
                readable_format(conn, self.path)
                foreign = self._since(conn, self._seen_seq, cursor)
            seq = (foreign[-1].seq if foreign else self._seen_seq) + 1
            grouped = len(members) > 1
            for ticket in members:
                record = write_member(
                    conn,
                    cursor,
                    ticket,
                    seq,
                    space=self,
                    space_id=self.space_id,
                    participant=self._participant,
                    grouped=grouped,
                    check_committed=self.check_committed,
                )
                if record is None and conn.getautocommit():
                    self._apply(foreign)  # the member's error ended the whole transaction
                    return [m for m in members if not m.done]
                if record is not None:
                    done.append(ticket)
                    records.append(record)
                    seq += 1
            if not done:
                conn.execute("ROLLBACK")
                self._apply(foreign)
                return []
        except BaseException as exc:
            with STACK_ROOM:  # the error may be the committer's stack running out
                self._commit_raised(conn, exc, foreign, members, done, records, committing=False)
            return []
        # From COMMIT until the commit is taken in, Ctrl-C waits (runtime/_interrupts.py): it
        # would otherwise land between a durable COMMIT and its bookkeeping; nor may the
        # committer's stack run out there (a commit made from deep in its caller's stack would
        # be told RecursionError though it was durable), so that stretch has STACK_ROOM too.
        # What stops the committing thread (SystemExit from a signal handler, say) that
        # arrived in a COMMIT which stands: raised once the commit is taken in.
        stopping: BaseException | None = None
        with STACK_ROOM, interrupts_held():
            self._landing = _Landing(records)
            try:
                try:
                    cursor.execute("COMMIT")
                    mark(conn, records[-1].seq)  # before anything else runs on conn
                except BaseException as exc:
                    with STACK_ROOM:
                        kept = self._commit_raised(
                            conn, exc, foreign, members, done, records, committing=True
                        )
                    if not kept:
                        return []
                    if not isinstance(exc, Exception):
                        stopping = exc
                self._apply([*foreign, *records])
            finally:
                self._landed()
            for ticket, record in zip(done, records, strict=True):
                if ticket.tx.names:  # (recorded by this commit for the ids it wrote)
                    self.named.update(w.id for w in record.writes if w.id in ticket.tx.names)
                for participant, ops in ticket.groups:
                    _quietly(participant.committed, ops, record.seq)
                ticket.succeed(record)
            self._maybe_compact(conn, records[-1].seq)
            self._wal_written = wal_state(self._path_str)
        if stopping is not None:
            raise stopping  # (the commit is durable and taken in: its committers know)
        return []

    def _hand_back(self, own: Ticket, members: list[Ticket]) -> bool:
        """The leader's caller gave up (see ``caller_gave_up``) while it waited for the space
        file's write lock, nothing of ``members`` written: its own transaction ends (leaving
        the queue if no batch took it), and the others go back to the head of the queue, in
        order, for the next leader, instead of failing with it. Whether that was the case
        (False: the wait ran out, the lock held all along)."""
        if not lock_waits_abandoned():
            return False
        # SIGINT held back, as when a batch is taken: these tickets are others' too.
        with self._queue_lock, interrupts_held():
            back = [t for t in members if t is not own]
            for ticket in back:
                ticket.taken = False
            self._waiting.extendleft(reversed(back))
            self._withdraw(own)
            if not own.done:
                own.fail(self._given_up("waited for the space file's write lock"))
        return True

    def _end_failed_transaction(self) -> None:
        """After a failed commit, end the SQLite transaction it left open, if any: the cleanup
        after its error ran out of stack before rolling back (the commit was made from deep in
        the caller's stack). Left open, it would keep the space file's write lock, and this
        runtime's next commit would fail to begin. Called with the write lock held."""
        conn = self._writer
        try:
            if conn is not None:
                _roll_back(conn)
        except apsw.ConnectionClosedError:
            pass  # the runtime was closed meanwhile (by the failed commit's own code, even)
        except apsw.Error as exc:  # the commit's own error is the one its caller gets
            log.warning("space %r: rolling back a failed commit raised %r", self.space_id, exc)

    def _landed(self) -> None:
        """The landing commit is in the cache, or failed: readers of its cells go on."""
        landing = self._landing
        if landing is not None:
            self._landing = None
            landing.end()

    def _commit_raised(
        self,
        conn: apsw.Connection,
        exc: BaseException,
        foreign: list[Found],
        members: list[Ticket],
        done: list[Ticket],
        records: list[CommitRecord],
        *,
        committing: bool,
    ) -> bool:
        """Roll back after ``exc`` and fail every member still waiting; return False. Unless
        ``COMMIT`` raised after the space file had committed: then the commit stands and this
        returns True."""
        _roll_back(conn)
        if committing:
            for ticket in done:
                for participant, ops in ticket.groups:
                    _quietly(participant.commit_failed, ops, exc)
        if committing and holds(conn, records[-1].seq):
            # COMMIT raised after the space file had committed (the attached file failed): the
            # space is the source of truth, participants have repaired what they own
            # (commit_failed above), so the commit stands and is reported as done.
            log.warning(
                "space %r: COMMIT of seqs %d-%d raised %r after the space had committed them; kept",
                self.space_id,
                records[0].seq,
                records[-1].seq,
                exc,
            )
            return True
        self._apply(foreign)
        error = self._commit_error(exc)
        fail_together([t for t in members if not t.done], error, self.space_id)
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt and the like stop the committing thread too
        return False

    def _commit_error(self, exc: BaseException) -> BaseException:
        """What the members of a commit that failed with ``exc`` (nothing written) get."""
        if self._closing and isinstance(exc, apsw.BusyError):  # its wait given up by close()
            return ClosedError(
                f"space {self.space_id!r} was closed (its runtime was closed) while this "
                "transaction waited for the space file's write lock, which another runtime or "
                "process held; nothing of it was written: open a new Runtime"
            )
        return commit_error(exc, self.space_id, self._writer)

    def check_same_file(self) -> None:
        """R73: the file at the path, its -wal and its -shm must still be the files this runtime
        opened (same device and inode); otherwise a commit would be acknowledged into an
        unlinked file, or written over what another process committed through another -shm.
        Called with the write lock held: by a commit, by an extension about to write under it
        (see :meth:`write_connection`: a repair is never made from a replaced space file), and
        by a catch-up that saw another file at the path. Another file found there is kept in
        mind (``_replaced``): from then on every read and commit raises."""
        if self._replaced:
            raise self._replaced_error("nothing was committed")
        now, size = file_state(self._path_str)
        if now is not None:
            if size:
                self._held_pages = True
            elif self._held_pages and now == self._identity:
                raise StoreChanged(
                    str(self.path),
                    f"the file of space {self.space_id!r} was emptied (truncated to no bytes) "
                    "while this runtime had it open; nothing was committed: close this runtime, "
                    "restore the space file from a backup, then open a new one "
                    "(`sqlite-cells check` says what the store holds)",
                )
        if now != self._identity:
            self._set_aside_companions(now)
            if now is None:  # (not kept in mind: the file may be put back, see catch_up)
                raise StoreChanged(
                    str(self.path),
                    f"the file of space {self.space_id!r} was deleted or moved away (its "
                    "store folder too, perhaps) while this runtime had it open; nothing was "
                    "committed: put it back at its path, or close this runtime and open one "
                    "where it is now (a runtime opened here starts the space empty)",
                )
            self._replaced = True
            raise self._replaced_error("nothing was committed")
        for companion in self._companion_paths:
            found = file_identity(companion)
            opened = self._companion_identity.get(companion)
            if opened is None:
                # None when opened: the one SQLite makes is the one.
                self._companion_identity[companion] = found
            elif found != opened:
                what = "deleted" if found is None else "replaced by another file"
                suffix = companion[len(self._path_str) :]
                raise StoreChanged(
                    companion,
                    f"the {_COMPANIONS[suffix]} of space {self.space_id!r} "
                    f"({os.path.basename(companion)}) was "
                    f"{what} while this runtime had the space open; nothing was committed: "
                    "close this runtime (closing writes the commits it holds into the space "
                    "file) and open a new one; never remove the -wal or -shm files of a store "
                    "in use",
                )

    def _replaced_error(self, outcome: str = _NOT_READ) -> StoreChanged:
        """What a use of a space whose file was found replaced raises (a new error each time:
        one raised again would carry every earlier raise in its traceback)."""
        return StoreChanged(
            str(self.path),
            f"the file of space {self.space_id!r} was replaced by another file while this "
            f"runtime had it open; {outcome}: close this runtime and open a new one",
        )

    @property
    def replaced(self) -> bool:
        """Whether the file at the path was found to be another file than the one open (R73):
        then reads, catch-ups and commits of this space raise :class:`StoreChanged`."""
        return self._replaced

    def _group_ops(
        self, ops: Sequence[PendingOp]
    ) -> list[tuple[CommitParticipant, list[PendingOp]]]:
        if len(ops) == 1:  # the usual case (one db.exec)
            return [(self._participant(ops[0].kind), [ops[0]])]
        groups: dict[str, tuple[CommitParticipant, list[PendingOp]]] = {}
        for op in ops:
            if op.kind not in groups:
                groups[op.kind] = (self._participant(op.kind), [])
            groups[op.kind][1].append(op)
        return list(groups.values())

    @contextmanager
    def exclusive(self, *, holder: LoopHolder | None = None) -> Iterator[None]:
        """Hold the space's write lock and its SQLite write lock (``BEGIN IMMEDIATE``) for the
        duration, after catching up: a transaction committed inside cannot conflict with another
        writer of any process. Used by handlers that keep conflicting. ``holder``: the block is
        an async handler's ``LockHolder``, which ends by itself within ``LOCK_PATIENCE`` plus a
        commit, so the committers waiting behind it wait it out (see ``_take_write_lock``), and
        which makes way for a commit made on its event loop's thread (see
        ``_take_for_holder``)."""
        self._check_open()
        if holder is None:
            self._take_write_lock()
        else:
            self._take_for_holder(holder)
        try:
            conn = self._wconn
            _begin_space_write(conn)
            self._exclusive = True
            self._exclusive_owner = threading.get_ident()
            self._exclusive_since = None if holder is not None else time.monotonic()
            left = False
            try:
                self._apply(self._since(conn, self._seen_seq))
                yield
            finally:
                self._exclusive = False
                with self._queue_lock:
                    self._exclusive_owner = self._exclusive_since = None
                    left = self._close_left
                try:
                    if not conn.getautocommit():
                        conn.execute("ROLLBACK")
                except apsw.ConnectionClosedError:
                    pass  # the runtime was closed inside the block (by its body): rolled back
                if self._created and not left:
                    self._discard_unused()
                if left:  # close() gave up waiting for this block: its files close now
                    self._close_files()
        finally:
            if holder is not None:
                with self._queue_lock:
                    self._holder = None
            self._write_lock.release()

    def _take_for_holder(self, holder: LoopHolder) -> None:
        """Take the write lock for ``holder``, but never while a commit made on the thread of
        its event loop waits for it: that commit blocks the loop, so the holder's body could
        not hand over its transaction before the holder's patience ran out, and a run of such
        holders, one after another, would keep that commit (and the loop) waiting for seconds.
        The holder waits until that commit is done instead; its body is blocked meanwhile."""
        while True:
            self._take_write_lock()
            with self._queue_lock:
                if holder.loop_thread not in self._lock_waits:
                    self._holder = holder
                    return
                self._write_lock.release()
                self._stepped_back += 1
                try:
                    while holder.loop_thread in self._lock_waits:
                        self._waits_ended.wait()
                finally:
                    self._stepped_back -= 1
            self._check_open()

    def _wait_starts(self, me: int) -> None:
        """Note that thread ``me`` waits for the write lock (called with the queue lock held).
        A holder of that thread's event loop lets the lock go at once: its body runs on that
        loop, which this wait blocks, so it could only wait out its patience (and no further
        holder of that loop takes the lock until the wait ends, see ``_take_for_holder``)."""
        self._lock_waits[me] = self._lock_waits.get(me, 0) + 1
        holder = self._holder
        if holder is not None and holder.loop_thread == me:
            holder.let_go()

    def _wait_ends(self, me: int) -> None:
        """Thread ``me`` no longer waits (called with the queue lock held)."""
        left = self._lock_waits.pop(me) - 1
        if left:
            self._lock_waits[me] = left
        if self._stepped_back:
            self._waits_ended.notify_all()

    @property
    def exclusive_owner(self) -> int | None:
        """The thread inside an ``exclusive`` block (a handler's try holding the write lock)."""
        return self._exclusive_owner

    def waited_by(self, thread: int) -> bool:
        """Whether thread ``thread`` waits for the write lock now (read without the queue lock:
        a look, as :func:`joining` takes)."""
        return thread in self._lock_waits

    def _committers(self, me: int) -> set[int]:
        """The threads of this caller and of the committers queued behind it."""
        with self._queue_lock:
            return {me, *(t.thread for t in self._waiting if not t.done)}

    def _give_up_queued(self, thread: int, error: ConflictError) -> None:
        """Fail the queued, untaken ticket of ``thread`` with ``error`` (nothing of it written)."""
        with self._queue_lock:
            for ticket in list(self._waiting):
                if ticket.thread == thread and not ticket.done:
                    self._withdraw(ticket)
                    ticket.fail(error)
            self._turn.notify_all()

    def _take_write_lock(self) -> None:
        """Take the write lock for a commit or an ``exclusive`` block. While another thread's
        unbounded ``exclusive`` block (a sync handler's try) holds it, wait until that block
        has held it ``LOCK_PATIENCE`` seconds and this caller has waited as long, then, if the
        body is found joining this caller's thread (``joining``, ``_WAITING_LOOKS`` looks in a
        row), raise :class:`ConflictError`: it waits for this very caller, and a handler tries
        again (SPEC §3: at most 10 tries) rather than hang. Any other body — its own work, its
        own threads, a read, a wait on a queue or an event — is waited for until it has held
        the lock ``BUSY_PATIENCE``: a blind write behind it is no conflict, and a deadlock the
        looks cannot see ends then. Behind anything else (a commit, a catch-up, an async
        handler's lock holder) the wait is not bounded here: those end by themselves."""
        if self._acquire(0.0):
            return
        began = time.monotonic()
        me = threading.get_ident()
        with self._queue_lock:
            self._wait_starts(me)
        # Looks in a row that found the body joining one committer's thread, and which.
        waiting, joined = 0, None
        try:
            while not self._acquire(_LOCK_POLL):
                if lock_waits_abandoned():  # an async commit's caller gave up: it ends here
                    raise self._given_up("waited for the space's write lock")
                since = self._exclusive_since
                if since is None:
                    waiting, joined = 0, None
                    continue
                now = time.monotonic()
                found = joining(self._exclusive_owner, self._committers(me))
                waiting = waiting + 1 if found is not None and found == joined else int(bool(found))
                joined = found
                held = min(now - since, now - began) >= LOCK_PATIENCE
                if held and waiting >= _WAITING_LOOKS and found is not None and found != me:
                    # The body joins a committer queued behind this one: that one gives up,
                    # and this one waits on (its transaction is no part of that wait).
                    self._give_up_queued(found, _joined_conflict(self.space_id))
                    waiting, joined = 0, None
                    continue
                if now - since >= BUSY_PATIENCE or (held and waiting >= _WAITING_LOOKS):
                    raise _joined_conflict(self.space_id)
        finally:
            with self._queue_lock:
                self._wait_ends(me)

    # -- catch-up ------------------------------------------------------------------------------

    @staticmethod
    def last_seq_for(conn: apsw.Connection, target: str) -> int:
        """The last seq whose ops touched ``target`` (0 if none), read through ``conn``."""
        row = conn.execute(
            "SELECT coalesce(max(seq), 0) FROM _cf_op_index WHERE target = ?", (target,)
        ).fetchone()
        return op_index_seq(row[0], target, conn.filename) if row else 0

    @staticmethod
    def ops_for(conn: apsw.Connection, target: str, after: int, upto: int) -> list[tuple[int, Op]]:
        """The ops on ``target`` of the commits in (``after``, ``upto``], in seq and op order."""
        return [
            (record.seq, op)
            for record in SpaceFile.records_for(conn, target, after, upto)
            for op in record.ops
            if op.target == target
        ]

    @staticmethod
    def records_for(
        conn: apsw.Connection, target: str, after: int, upto: int
    ) -> list[CommitRecord]:
        """The records of the commits in (``after``, ``upto``] with an op on ``target``, in seq
        order."""
        return [
            decode_record(data, where=f"of seq {seq} in space file {conn.filename}")
            for seq, data in conn.execute(
                f"SELECT l.seq, {stored_json_column('l.record')} FROM _cf_op_index i "
                "JOIN _cf_log l ON l.seq = i.seq "
                "WHERE i.target = ? AND i.seq > ? AND i.seq <= ? ORDER BY i.seq",
                (target, after, upto),
            )
        ]

    @staticmethod
    def _records_since(conn: apsw.Connection | apsw.Cursor, seq: int) -> list[CommitRecord]:
        return [decode_record(data) for (data,) in conn.execute(_RECORDS_SQL, (seq,))]

    def catch_up(self) -> bool:
        """Apply and publish commits made by other connections since the last look.
        Cheap when nothing changed (one ``stat`` and one ``PRAGMA data_version``). Returns True
        if any were found.

        Raises :class:`StoreChanged` once another file stands at the path (R73): the file open
        is not the store's any more, and nothing of it is published from then on. The
        connection open on the replaced file sees no commit of another runtime, so the path is
        looked at here, on the poller's thread, not by each read (which only looks at
        ``_replaced``). A path with nothing at it is not taken for a replacement: the file may
        be put back (a commit says it was deleted meanwhile)."""
        if self._closed or not self._open_if_exists():
            return False
        if not self._replaced:
            now = file_identity(self._path_str)
            if now is not None and now != self._identity:
                with self._write_lock, contextlib.suppress(StoreChanged):
                    if self._closed or self._writer is None:  # (let go meanwhile: reopened)
                        return False
                    self.check_same_file()  # (keeps it in mind, sets the companions aside)
        if self._replaced:
            raise self._replaced_error()
        with self._read_lock, translated(f"space file {self.path}"):
            if self._closed or self._rconn is None:  # closed, or a refused first commit
                return False  # removed the file meanwhile
            version = self._read_data_version()
            if version == self._data_version:
                return False
            # The version also moves for this runtime's own commits. The newest seq, read after
            # the version, tells whether any other commit came: seqs only grow, and every
            # commit of this runtime is applied before its committer returns. Then there is
            # nothing to take the write lock for (a writer of this runtime may be waiting).
            # Compared with what is published, not with what is applied: another catch-up
            # (another thread's settle(), the poller) may have applied a commit and not yet
            # told the scheduler, and a settle() returning here would not wait for its re-runs.
            if last_seq(self._rconn) <= self._published_seq:
                self._data_version = version
                return False
        # The version is noted only once what it announced is applied: a catch-up running
        # meanwhile (the poller's, or settle's) then waits here for that, never returns early.
        with self._write_lock:
            if self._closed:
                return False
            with self._read_lock, translated(f"space file {self.path}"):
                if self._rconn is None:
                    self._data_version = None
                    return False
                with _read_txn(self._rconn):
                    records = self._since(self._rconn, self._seen_seq)
            self._apply(records)
            with self._read_lock:
                if self._rconn is not None:
                    self._data_version = version
        return bool(records)

    def _since(
        self, conn: apsw.Connection, seen: int, cursor: apsw.Cursor | None = None
    ) -> list[Found]:
        """What happened after ``seen``, read through ``conn`` in one transaction: the log's
        records, or — when compaction has removed some of them — synthetic events rebuilt from
        ``_cf_cells`` (see :meth:`_resync`)."""
        # The records are read to their end, so ``cursor`` (of ``conn``) is left with no
        # statement running.
        records = self._records_since(conn if cursor is None else cursor, seen)
        if not records:  # the usual case at commit: nobody else committed
            last = last_seq(conn)
            if last < seen:
                # The log went back: seqs only grow, and compaction keeps the newest record.
                # The file was overwritten in place (a backup restored over it, SQLite's own
                # backup or `.restore` included): its inode is the one opened, so only its log
                # tells (R73). A commit now would take a seq given already.
                raise StoreChanged(
                    str(self.path),
                    f"the log of space {self.space_id!r} ends at seq {last}, behind seq {seen} "
                    "this runtime has seen: the space file was overwritten (restored from an "
                    "older copy?) while this runtime had it open; nothing was committed: close "
                    "this runtime, then run `sqlite-cells check` on the store before opening a "
                    "new one (its databases may hold commits the space no longer has)",
                )
            return []
        # Another writer's commits, or another space's log: a file overwritten in place by
        # another space's file (same inode) with a longer log would take this commit after
        # its own (R73); the space id is read once per look that finds records.
        owner = conn.execute(_SPACE_ID_SQL).fetchone()
        if owner is None or owner[0] != self.space_id:
            raise StoreChanged(
                str(self.path),
                f"the space file now belongs to space {None if owner is None else owner[0]!r}, "
                f"not {self.space_id!r}: it was overwritten while this runtime had it open; "
                "nothing was committed: close this runtime, put the space's own file back (from "
                "a backup), then run `sqlite-cells check` on the store",
            )
        # Seqs are given one after the other, so a gap means compaction removed records this
        # runtime has not seen (the newest record is always kept); no gap, nothing was missed.
        if all(record.seq == seen + i for i, record in enumerate(records, 1)):
            return list(records)
        return list(self._resync(conn, seen))

    def _resync(self, conn: apsw.Connection, seen: int) -> list[CommitEvent]:
        """Synthetic events for a runtime behind the compaction point: every cell whose rev is
        newer than ``seen`` with its current value, and for every op target written since, an op
        from ``whole_op`` (the ops are gone, so whatever reads the target re-runs whole).

        One event per distinct last seq of a target written since (so each carries the seq of
        the last commit that wrote its targets, as a database's watermark says), and one at the
        log's last seq; each holds the cells whose rev falls in its span."""
        last = last_seq(conn)
        targets = sorted(
            (int(seq), target)
            for target, (seq,) in op_targets(
                conn.execute(
                    f"SELECT {TARGET_BYTES}, max(seq) FROM _cf_op_index "
                    "GROUP BY target HAVING max(seq) > ?",
                    (seen,),
                )
            )
        )
        stops = sorted({seq for seq, _ in targets} | {last})
        writes: list[dict[str, Entity]] = [{} for _ in stops]
        ops: list[list[Op]] = [[] for _ in stops]
        for seq, target in targets:
            op = self._whole_op(target) if self._whole_op is not None else None
            if op is not None:
                ops[bisect.bisect_left(stops, seq)].append(op)
        for raw_id, data, rev in conn.execute(_CELLS_SINCE_SQL, (seen,)):
            cell_id = stored_text_id(raw_id)
            if cell_id is None:  # another program's row: no cell of any runtime has that id
                log.warning(
                    "space %r: skipped a cell row whose id %r is not UTF-8 text",
                    self.space_id,
                    raw_id,
                )
                continue
            try:
                entity = self._entity_of_row(cell_id, data, rev)
            except StoredCellError as exc:
                # Only this cell is unreadable: the others still catch up. Its cached value is
                # dropped, so that its next read reads the row and says what is wrong with it.
                log.warning("space %r: %s", self.space_id, exc)
                with self._cache_lock:
                    self._cache.pop(cell_id, None)
                continue
            # A rev past the log's last seq (a row another program wrote, or a commit whose log
            # record was lost, R71) goes with the last event rather than past the end.
            at = min(bisect.bisect_left(stops, entity.rev), len(stops) - 1)
            writes[at][str(cell_id)] = entity
        log.info("space %r: caught up from seq %d past the compacted log", self.space_id, seen)
        return [
            CommitEvent(self, stop, writes[i], tuple(ops[i]))
            for i, stop in enumerate(stops)
            if stop > seen
        ]

    def _apply(self, records: list[Found]) -> None:
        """Apply records (in seq order, all newer than _seen_seq) to the cache and publish them.
        Called with _write_lock held, so events leave in seq order. All of them are in the cache
        before the first is published: a reader waiting for a landing commit goes on before any
        other thread hears of it (see _Landing)."""
        events: list[CommitEvent] = []
        for record in records:
            if record.seq <= self._seen_seq:
                continue
            if isinstance(record, CommitEvent):  # synthetic (see _resync)
                for cell_id, entity in record.writes.items():
                    self._refresh(cell_id, entity)
                event = record
            else:
                self._log_bytes += record_size(record)
                writes = {w.id: Entity(bytes(w.value), record.seq) for w in record.writes}
                for cell_id, entity in writes.items():
                    self._remember(cell_id, entity)
                event = CommitEvent(self, record.seq, writes, record.ops)
            for op in event.ops:
                self._applied_targets.add(op.target)
            self._seen_seq = record.seq
            events.append(event)
        self._landed()
        for event in events:
            self._publish(event)
            self._published_seq = event.seq

    # -- compaction ----------------------------------------------------------------------------

    def _maybe_compact(self, conn: apsw.Connection, last: int) -> None:
        """Compact the log right after commit ``last`` once ``compact_every`` commits have piled
        up beyond the kept ones, or its records above the compaction point hold more bytes than
        the larger of ``compact_bytes`` and the space's values (called with the write lock held,
        outside any transaction). A compaction that fails is logged: the commit it follows
        stands."""
        if last - self._compacted < self.compact_keep + self.compact_every and (
            self._log_bytes <= max(self.compact_bytes, self._live_bytes)
        ):
            return
        if not conn.getautocommit():
            return  # never inside someone else's transaction
        try:
            self._compact_now(conn)
        except Exception as exc:
            # The commit stands whatever happened here; tried again after compact_every commits
            # or as many bytes.
            self._compacted = max(self._compacted, last - self.compact_keep)
            self._log_bytes = 0
            log.warning("space %r: compacting the log failed: %r", self.space_id, exc)

    def compact(self) -> int:
        """Compact the log now (whatever the thresholds); returns the compaction point (0 for a
        space whose file does not exist: nothing is created, R7)."""
        self._check_open()
        if not self._open_if_exists():
            return 0
        with self._write_lock, translated(f"space file {self.path}"):
            self._check_open()  # closed since the check above: its connections are closed
            if self._writer is None:  # a refused first commit removed the file meanwhile
                return 0
            self._compact_now(self._writer)
            return self._compacted

    def _compact_now(self, conn: apsw.Connection) -> None:
        """Compact in a transaction of its own (write lock held), then give freed pages back.
        Besides the records past the newest ``compact_keep``, a log above the compaction point
        holding more bytes than the larger of ``compact_bytes`` and the space's values loses
        those past the newest records holding half of that (what a database needs, R71, and
        the ids gc must know, R74, are kept all the same: see ``compact_log``)."""
        with _immediate(conn):
            held = log_bytes(conn)
            if held > self.compact_bytes:  # (the values are only summed when it can matter)
                self._live_bytes = live_bytes(conn)
            bound = max(self.compact_bytes, self._live_bytes)
            self._compacted = compact_log(
                conn,
                keep=self.compact_keep,
                keep_per_target=self.keep_per_target,
                keep_bytes=bound // 2 if held > bound else None,
                ends=self._ends_target,
            )
            self._log_bytes = log_bytes(conn)
        conn.execute("PRAGMA incremental_vacuum").fetchall()

    def _ends_target(self, kind: str) -> bool:
        """Whether an op of ``kind`` is the last its target ever has (its participant's optional
        ``ends_target``, see :class:`CommitParticipant`); False for a kind no participant
        handles here (another program's op)."""
        try:
            participant = self._participant(kind)
        except SqliteCellsError:
            return False
        return getattr(participant, "ends_target", False) is True

    # -- lifecycle -----------------------------------------------------------------------------

    @contextmanager
    def write_connection(self, timeout: float | None = None) -> Iterator[apsw.Connection]:
        """The write connection, held exclusively (for extensions that must run maintenance
        under the space's write lock, such as crash reconciliation). The lock is waited for as
        long as the commit holding it takes, or ``timeout`` seconds at most: then the builtin
        ``TimeoutError`` is raised, nothing was done, and the caller says what waited (a read
        that must end by its deadline, R44)."""
        self._check_open()
        if not self._acquire(-1.0 if timeout is None else max(0.0, timeout)):
            raise TimeoutError(f"the write lock of space {self.space_id!r} stayed held")
        try:
            yield self._wconn
        finally:
            self._write_lock.release()

    def commit_open_here(self) -> bool:
        """Whether the calling thread leads a commit of this space whose transaction is open
        (code that commit runs, such as a ``migrate`` callback): the write lock is this
        thread's, and the write connection is in the middle of that commit, which nothing else
        may use — :meth:`write_connection` would hand it over all the same (the lock is
        re-entrant), and maintenance run on it would end the commit's transaction."""
        if getattr(_leading_here, "space", None) != self.space_id:
            return False
        writer = self._writer
        return writer is not None and not writer.getautocommit()

    def write_lock_free(self) -> bool:
        """Whether no commit of this runtime holds the space's write lock at this moment, for a
        caller that gave up waiting for it (see :meth:`write_connection`) and looks again later:
        never waits, and the lock may be taken again the next moment."""
        if not self._acquire(0.0):
            return False
        self._write_lock.release()
        return True

    def _acquire(self, timeout: float) -> bool:
        """Take the write lock within ``timeout`` seconds (0: at once or not; below 0: no bound)
        and say whether it was taken. CPython raises a Ctrl-C after a call returns: one landing
        right after ``acquire`` took the lock left it held by nobody, and every later commit
        waited for ever. So each call runs with SIGINT held back (see ``interrupts_held``), and
        one that came meanwhile is raised with the lock let go; a long wait is cut into calls of
        ``_LOCK_POLL`` seconds, so Ctrl-C still ends it."""
        end = None if timeout < 0 else time.monotonic() + timeout
        lock = self._write_lock
        while True:
            step = _LOCK_POLL if end is None else min(_LOCK_POLL, end - time.monotonic())
            got = False
            try:
                with interrupts_held():
                    got = lock.acquire(True, step) if step > 0 else lock.acquire(False)
            except BaseException:
                if got:
                    lock.release()
                raise
            if got or step <= 0 or (end is not None and time.monotonic() >= end):
                return got

    @property
    def closed(self) -> bool:
        """Whether this space's runtime was closed (read on every cell access: one attribute;
        a forked child's copy is refused by :meth:`check_open`)."""
        return self._closed

    def check_open(self) -> None:
        """Raise :class:`ClosedError` if this space's runtime was closed."""
        self._check_open()

    def _check_open(self) -> None:
        if self._made_in != generation():
            raise ClosedError(f"space {self.space_id!r} cannot be used here: {FORKED_ADVICE}")
        if self._closed:
            raise ClosedError(
                f"space {self.space_id!r} is closed (its runtime was closed): open a new Runtime"
            )

    def close(self) -> None:
        if self._made_in != generation():
            self._closed = True  # in a forked child: the connections are the parent's
            return
        _bus.leave(self)
        # A commit waiting for the space file's lock, which another program holds, gives up
        # (ClosedError, nothing written) instead of holding close() back as long (30 s).
        self._closing = True
        writer = self._writer
        if writer is not None:
            give_up_lock_waits(writer)
        if not self._take_for_close():
            return
        try:
            if not self._closed:
                self._closed = True
                self._close_files()
        finally:
            self._write_lock.release()

    def _take_for_close(self) -> bool:
        """Take the write lock to close the files; False when they are left to a sync
        handler's ``exclusive`` block that held it ``CLOSE_PATIENCE`` seconds: its body runs
        Python code that close() cannot stop (the write watchdog ends its SQL statements). The
        space is marked closed then, so whatever the body reads or commits after is
        ``ClosedError``, and the block's end rolls back what it began and closes the files.
        Every commit acknowledged is durable, so nothing is lost."""
        end = time.monotonic() + CLOSE_PATIENCE
        while not self._acquire(_LOCK_POLL):
            with self._queue_lock:
                if self._exclusive_since is not None and time.monotonic() >= end:
                    self._closed = self._close_left = True
                    return False
        return True

    def _close_files(self) -> None:
        """Close the connections (with the write lock held, the space marked closed)."""
        with self._read_lock:
            if self._identity is not None and self._writer is not None:
                # (While the file is still open: a copy of it keeps them, see set_aside.)
                self._set_aside_companions(file_identity(self._path_str))
            if self._rconn is not None:
                self._rconn.close()
            if self._writer is not None:
                self._writer.close()

    def _set_aside_companions(self, now: tuple[int, int] | None) -> None:
        """The file at the path is not the one this runtime opened (``now``: the one there):
        the -wal and -shm it opened with it are set aside, so that the file put there (a
        backup restored, a new space) never reads them as its own (R73; see _moved_files)."""
        if self._identity is not None and now != self._identity and now != self._looked_aside:
            self._looked_aside = now  # (looked at once per file found there: see set_aside)
            set_aside(
                self._path_str,
                self._identity,
                self._companion_identity,
                self._wal_written,
                "space file",
            )

    def __repr__(self) -> str:
        return f"<SpaceFile {self.space_id!r} at {self.path}>"


Found = CommitRecord | CommitEvent  # what catch-up finds: log records, or synthetic events

_OPEN_TRIES = 5  # a file removed under an opener each time is raced by other processes


class _Moved(Exception):
    """The file opened is no longer the file at its path (see :meth:`SpaceFile._open`)."""


def _space_unused(conn: apsw.Connection) -> bool:
    """A space file that no commit ever wrote: no table at all (its set-up was cut short), or
    no log record, no cell, no compacted history."""
    if is_blank(conn):
        return True
    row = conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM _cf_log) AND NOT EXISTS (SELECT 1 FROM _cf_cells) "
        "AND NOT EXISTS (SELECT 1 FROM _cf_named)"
    ).fetchone()
    return row is not None and bool(row[0])


def _quietly(hook: Callable[..., None], *args: object) -> None:
    """Call a participant's after-commit hook; they must not raise, and if one does the commit
    outcome stands, so it is logged."""
    try:
        hook(*args)
    except Exception:
        log.exception("commit participant hook %r raised", hook)


def _begin_space_write(cursor: apsw.Connection | apsw.Cursor) -> None:
    """Begin a commit's transaction holding the space file's write lock (as ``BEGIN IMMEDIATE``
    would) and that one only: ``BEGIN IMMEDIATE`` also takes the lock of every database file
    attached to the connection, and waits for it as long as for the space's. A database file's
    lock is taken by the first statement that writes it, whose participant bounds the wait
    (R44: ``exec_timeout``, the space's write lock held no longer)."""
    cursor.execute("BEGIN")
    try:
        cursor.execute("UPDATE main._cf_meta SET key = key WHERE 0")
    except BaseException:
        _roll_back(cursor.connection if isinstance(cursor, apsw.Cursor) else cursor)
        raise


def _roll_back(conn: apsw.Connection) -> None:
    """End the transaction an error interrupted. An interrupt (Ctrl-C delivered in any Python
    callback SQLite makes, a deadline) may have ended it already: rolling back again would
    replace the error with "no transaction is active"."""
    if not conn.getautocommit():
        conn.execute("ROLLBACK")


@contextmanager
def _deferred(conn: apsw.Connection) -> Iterator[None]:
    """A read transaction (one snapshot), ended however the body ends."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


@contextmanager
def _immediate(conn: apsw.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        _roll_back(conn)
        raise
    conn.execute("COMMIT")


def _set_wal(conn: apsw.Connection) -> None:
    """Switch to WAL. Two processes opening a fresh file at once may both try, and the loser gets
    a BusyError that the busy handler does not always cover; it is retried, with a short busy
    timeout per try, for no longer than the usual busy timeout in all."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    conn.setbusytimeout(50)
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                return
            except apsw.BusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
    finally:
        set_lock_wait(conn, BUSY_TIMEOUT_MS)


@contextmanager
def _read_txn(conn: apsw.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


# A space file's companions SQLite keeps while the file is open, and what each one is.
_COMPANIONS = {"-wal": "write-ahead log", "-shm": "shared-memory index of the write-ahead log"}

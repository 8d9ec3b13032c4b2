"""The live-query hub of a runtime: who reads what, which commits re-run whom, and batched,
shared reads (R51, R54, R60).

* **Interest.** A query that reacts to what it reads registers its database and read set here
  when it starts a run. A scheduler commit hook turns each commit's ``sqlite`` ops into write
  sets (:mod:`._changes`) and returns exactly the queries whose read sets they meet, indexed by
  table, so a commit costs what it affects, not how many queries exist. The hook runs for
  commits of this runtime, of other runtimes and of other processes alike (the events are built
  from the commit record).
* **Sources.** A query of an injected file is re-run, whole, when the file's content signature
  changes; a watcher thread checks it every ``poll_interval`` (R60).
* **Lock waits.** A query whose run gave up waiting for its space's write lock (its file is
  repaired under it before a first read, while a commit of this runtime or of another process
  holds it: R44, R71) is re-run once this runtime's lock is seen free, looked at every
  ``poll_interval`` while such a query waits: no commit to its database may ever come to
  re-run it.
* **Batches.** Runs requested during one scheduler round are flushed together after it: the
  same (database, sql, params) runs once and its rows go to every query asking (also a query
  asking while that read is in flight, when no commit to the database came since, it asks under
  the declaration the read was sent under, and, for an injected file, no change of the file was
  seen since); the distinct statements of one database run as one job in one read transaction —
  split across the workers only when they are heavy — or, when cheap and made of short steps,
  inline on the scheduler thread (under a short deadline, guarded by the watchdog). A job's
  statement that runs long hands the ones behind it to another worker (see :mod:`._workers`), so
  a stuck statement never holds back the others of its batch (R44). Results land on the
  scheduler thread once the commit they reflect has been processed (R50).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import apsw

from sqlite_cells.codec import QueryTimeout, SqliteCellsError, WriteLockTimeout
from sqlite_cells.files import content_signature, peek
from sqlite_cells.read._changes import (
    TableColumns,
    TableShape,
    affects,
    generated_sources,
    with_hidden_rowid,
    write_sets,
)
from sqlite_cells.read._pool import ReadPool
from sqlite_cells.read._reader import (
    Kept,
    ReadMap,
    Statement,
    StatementResult,
    Tracker,
    failed_together,
    failed_unexpectedly,
    read_batch,
    short_steps,
)
from sqlite_cells.read._workers import QueryWorkers, ReadJob
from sqlite_cells.runtime import CommitEvent, Node, Scheduler, SpaceFile, Work
from sqlite_cells.schema import Declaration, SourceKind, quote_ident, stored_version
from sqlite_cells.sql import resolves_by_replace

__all__ = ["LiveQueries", "Runner"]

log = logging.getLogger("sqlite_cells.read")

_SHAPE_TIMEOUT = 1.0
# Seconds of known read time a batch may run on the scheduler thread. A batch handed to a worker
# and landed back runs on two CPUs in turn, each touching the other's objects: for 1,000 short
# statements that costs ≈ 40% more than one thread running them (bench/analysis.md, fan-out).
INLINE_BUDGET = 0.008
INLINE_TIMEOUT = 0.05  # what an inline batch may take in all before a worker runs the rest
# Bytes of one op's record past which the queries of its database it re-runs go to a worker:
# a write that large may have made values that one step of a known-cheap statement now takes
# seconds over (a comparison, max() of long text), which no deadline stops on this thread.
GROWN_WRITE = 256 * 1024
SPLIT_COST = 0.0002  # mean known seconds per statement from which a batch is split over workers
# Marks the read of runners whose rows run code of their own (see LiveQueries.request): a repr
# never holds a raw NUL, so no statement's own parameters end in it.
_OWN_CODE = "\x00own code"
_INLINE_MAX = 4096
_COSTS_SIZE = 65536
# The longest statement or parameters text a read time is kept under as it is; a longer one is
# kept as its start and digest (see _cost_key).
_COST_KEY_TEXT = 256
_MAX_RETRIES = 12  # reads done again while a database file lags its space (≈ 0.6 s in all)


def lag_delay(attempt: int) -> float:
    """Seconds before the ``attempt``-th read again of a file found behind its space."""
    return min(0.001 * 2.0 ** (attempt - 1), 0.1)


class Runner(Protocol):
    """What the hub needs of a live query's graph node: ``receive`` turns a result into the
    node's next value (and whether to tell anyone); ``landed`` follows once every node of the
    delivery has its value (a node may start its next run then)."""

    @property
    def statement(self) -> Statement: ...

    @property
    def last_read(self) -> Kept | None: ...

    @property
    def runs_own_code(self) -> bool: ...

    def receive(self, seq: int, result: StatementResult) -> tuple[Any, bool]: ...
    def build_ahead(self, result: StatementResult) -> None: ...
    def landed(self) -> None: ...
    def read_again(self, limit: int) -> int: ...
    def rerun_now(self) -> bool: ...


@dataclass(eq=False, slots=True)
class _Read:
    """One distinct statement of a batch and every runner waiting for its rows."""

    key: tuple[str, str, str]  # (database id, sql, repr(params))
    stmt: Statement
    runners: list[Runner]
    # The last commit known to have written the database when the read was sent: rows older
    # than that read a file that had not caught up with its space (see LiveQueries._land).
    due: int = 0
    # What its read time is kept under (LiveQueries._costs): the key, long texts digested.
    cost_key: tuple[str, str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.cost_key = _cost_key(self.key)

    def previous(self) -> Kept | None:
        """The rows its first runner holds now and their digest (the reader keeps them when it
        reads the same)."""
        return self.runners[0].last_read

    def build_ahead(self, result: StatementResult) -> None:
        """On the worker that read it: each runner builds its rows from ``result`` (a runner
        joining later builds them when the result lands)."""
        for runner in list(self.runners):
            try:
                runner.build_ahead(result)
            except Exception:  # a runner's failure stays its own: it builds again on landing
                log.exception("live query %r could not build its rows", runner)


def _cost_key(key: tuple[str, str, str]) -> tuple[str, str, str]:
    """What a statement's read time is kept under: its ``(database id, sql, repr(params))``
    key, with a statement or parameters text longer than ``_COST_KEY_TEXT`` kept as its start
    and a digest. The read times outlive the queries that ran them (up to ``_COSTS_SIZE``), so
    a live query whose cell parameter took a megabyte of text after another kept each of those
    texts for the runtime's life."""
    db_id, sql, params = key
    if len(sql) <= _COST_KEY_TEXT and len(params) <= _COST_KEY_TEXT:
        return key
    return db_id, _digested(sql), _digested(params)


def _digested(text: str) -> str:
    if len(text) <= _COST_KEY_TEXT:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{text[:64]}\u2026 ({len(text)} characters, blake2b {digest})"


@dataclass(slots=True)
class _Wanted:
    decl: Declaration
    file: SpaceFile
    # Makes the database ready for a read: with True only when that is quick (else False,
    # nothing done: the read goes to a worker), with False whatever it takes.
    prepare: Callable[[bool], bool] | None
    statements: dict[tuple[str, str], _Read] = field(default_factory=dict)


class LiveQueries:
    """One per runtime; see the module docstring."""

    def __init__(
        self,
        scheduler: Scheduler,
        pool: ReadPool,
        workers: QueryWorkers,
        *,
        lookup: Callable[[str], Declaration],
        poll_interval: float,
        behind: Callable[[Declaration], None] = lambda decl: None,
    ) -> None:
        self.scheduler = scheduler
        self._behind = behind  # a file stayed behind its space: reconcile it before next use
        self.pool = pool
        self.workers = workers
        self._lookup = lookup
        self._columns = TableColumns(lambda db_id: lookup(db_id).path, self._table_shape)
        # The version each watched database's last op was written at (see write_sets), or its
        # file held when a query of it was first watched; on the scheduler thread.
        self._versions: dict[str, int] = {}
        # Databases whose last commit wrote an op past GROWN_WRITE, until their next batch is
        # sent (it runs on a worker: see _is_cheap); on the scheduler thread.
        self._grown: set[str] = set()
        # Owned by the scheduler thread: interest and the batch being gathered.
        # A database is here while a query watches it: the entries of one no query watches any
        # more go (unwatch), so that watching and unwatching cost the same after thousands of
        # databases came and went.
        self._reads: dict[str, dict[Node, ReadMap | None]] = {}
        self._by_table: dict[str, dict[str, set[Node]]] = {}
        self._unknown: dict[str, set[Node]] = {}
        self._watched: dict[Node, str] = {}  # query -> the database it watches
        # Every live query of each database, whatever re-runs it (react_on included), and the
        # database each one reads: what rerun_database re-runs (R14, R71). Insertion-ordered,
        # so a re-run is scheduled in registration order.
        self._queries: dict[str, dict[Node, None]] = {}
        self._placed: dict[Node, str] = {}
        # Cell id -> the queries of a pattern input linked to that cell while it held no
        # database handle: they re-run when a commit (of any runtime or process) writes it.
        self._awaiting: dict[str, set[Node]] = {}
        # Cell id -> the queries whose pattern input reaches its database through that cell
        # (another piece's input), and the other way round (see follow_links).
        self._links: dict[str, set[Node]] = {}
        self._links_of: dict[Node, tuple[str, ...]] = {}
        # Keyed by database id (one file each), not by path: a str hashes in C, a Path in Python.
        self._batch: dict[str, _Wanted] = {}
        self._batch_work: Work | None = None  # the batch's unit of work for settle()
        # The last read time per statement, under its _cost_key.
        self._costs: dict[tuple[str, str, str], float] = {}
        # Reads sent and not landed: (db id, sql, params) -> (generation when sent, the read,
        # the scheduler epoch it was sent for, the declaration it reads under); a database's
        # generation counts the commits to it this runtime has processed.
        self._in_flight: dict[tuple[str, str, str], tuple[int, _Read, int, Declaration]] = {}
        self._generation: dict[str, int] = {}
        # The last seq known to have written each database: a read sent after that commit was
        # taken in, whose watermark is older, ran before the commit reached the file (another
        # process's commit lands in the space file first, then in the database file) and is
        # done again.
        self._written: dict[str, int] = {}
        self.reads_started = 0  # distinct statements run, on workers or inline (bench, tests)
        scheduler.add_commit_hook(self._on_commit, absorb=self._absorb)
        self._sources = _SourceWatcher(scheduler, pool, poll_interval, self._reads_of_file)
        self._lock_waits = _LockWaits(scheduler, poll_interval)

    # -- interest (scheduler thread) -----------------------------------------------------------

    def watch(self, node: Node, db_id: str, read_set: ReadMap | None) -> None:
        """Re-run ``node`` after commits to ``db_id`` that change what ``read_set`` names
        (every commit to it while the read set is not known yet)."""
        reads = self._reads.get(db_id)
        if reads is not None and node in reads and reads[node] == read_set:
            return
        if db_id not in self._versions:
            # What its queries read is as of this version at the latest: a later op that finds
            # the file at another one follows a `migrate` whose own write failed, whose rows no
            # changeset holds (see write_sets) — known even before this runtime saw an op of it.
            version = self._file_version(db_id)
            if version is not None:
                self._versions[db_id] = version
        self.unwatch(node)
        reads = self._reads.setdefault(db_id, {})
        reads[node] = read_set
        self._watched[node] = db_id
        if read_set is None:
            self._unknown.setdefault(db_id, set()).add(node)
        elif read_set:  # (one that reads no table, `SELECT ?`, has no entry: no write re-runs it)
            tables = self._by_table.setdefault(db_id, {})
            for table in read_set:
                tables.setdefault(table, set()).add(node)

    def place(self, node: Node, db_id: str) -> None:
        """``node`` is a live query of ``db_id`` now, whatever re-runs it: ``rerun_database``
        re-runs it too (a query that moved from another database is no longer one of
        that one's)."""
        placed = self._placed.get(node)
        if placed == db_id:
            return
        if placed is not None:
            self._unplace(node, placed)
        self._placed[node] = db_id
        self._queries.setdefault(db_id, {})[node] = None

    def release(self, node: Node) -> None:
        """``node`` left the graph: it reacts to nothing and is no query of its database."""
        self.unwatch(node)
        placed = self._placed.pop(node, None)
        if placed is not None:
            self._unplace(node, placed)

    def _unplace(self, node: Node, db_id: str) -> None:
        queries = self._queries.get(db_id)
        if queries is not None:
            queries.pop(node, None)
            if not queries:
                del self._queries[db_id]

    def unwatch(self, node: Node) -> None:
        db_id = self._watched.pop(node, None)
        if db_id is not None:
            self._forget_reads(node, db_id)
        if self._awaiting:
            self._stop_awaiting(node)
        self._sources.unwatch(node)

    def _forget_reads(self, node: Node, db_id: str) -> None:
        """``node`` no longer watches ``db_id``; the database's entries go with its last query."""
        reads = self._reads.get(db_id)
        read_set = _ABSENT if reads is None else reads.pop(node, _ABSENT)
        if read_set is _ABSENT:
            return
        if read_set is None:  # (registered under the unknown read set, see watch)
            unknown = self._unknown[db_id]
            unknown.discard(node)
            if not unknown:
                del self._unknown[db_id]
        elif read_set:  # (none for a read set of no table, see watch)
            tables = self._by_table[db_id]
            for table in read_set:
                tables[table].discard(node)
                if not tables[table]:
                    del tables[table]
            if not tables:
                del self._by_table[db_id]
        if not reads:
            del self._reads[db_id]

    def await_handle(self, node: Node, cell_id: str) -> None:
        """Re-run ``node`` at the next commit that writes the cell ``cell_id``: a pattern input
        of the query links to it while it holds no database handle — declared, not written yet,
        perhaps by another runtime (R53, R61). Its first ``db.exec`` writes the handle in the
        commit that creates the database; the query then resolves the link again. What the
        query watched before stays watched (it may be linked back)."""
        self._stop_awaiting(node)  # linked elsewhere since: that cell is not its source now
        self._awaiting.setdefault(cell_id, set()).add(node)

    def handle_declared(self, db_id: str) -> None:
        """This runtime now declares the database ``db_id`` (R3: ``sqlite_database``), first
        or again: the queries awaiting a handle in its cell (see ``await_handle``) re-run, as
        that database's first write would make them, and find the declaration — a database
        declared in an earlier run and never written answers as its declared tables (R41), a
        ``VmSource`` one, which is never written, fails as R62 says. Called off the scheduler
        thread once the declaration is recorded: a query that resolved its link before that
        and awaits the cell after this look re-runs itself (``_QueryNode._start``)."""
        if db_id not in self._awaiting:  # (one look-up: most declarations are awaited by none)
            return

        def wake() -> None:  # on the scheduler thread, which owns the interest
            waiting = self._awaiting.pop(db_id, ())
            nodes = [node for node in waiting if not node.released]
            if nodes:
                self.scheduler.rerun(nodes)

        self.scheduler.submit(wake)

    def follow_links(self, node: Node, cell_ids: Sequence[str]) -> None:
        """Re-run ``node`` after each commit that writes one of ``cell_ids`` (replacing what
        it followed before; none: nothing more): the query's pattern input reaches its database
        through those cells (another piece's database input, R61), so linking one of them
        anew moves the query as linking its own input does; or a database input among its
        ``react_on`` links to the database whose handle one of them is, which every write to
        that database writes (``Reaction.reached``, R51)."""
        for cell_id in self._links_of.pop(node, ()):
            followers = self._links.get(cell_id)
            if followers is not None:
                followers.discard(node)
                if not followers:
                    del self._links[cell_id]
        if cell_ids:
            self._links_of[node] = tuple(cell_ids)
            for cell_id in cell_ids:
                self._links.setdefault(cell_id, set()).add(node)

    def _stop_awaiting(self, node: Node) -> None:
        for cell_id in [c for c, waiting in self._awaiting.items() if node in waiting]:
            waiting = self._awaiting[cell_id]
            waiting.discard(node)
            if not waiting:
                del self._awaiting[cell_id]

    def rerun_database(self, db_id: str, *, failed: bool = False) -> None:
        """Every live query of the database ``db_id`` re-runs now, without waiting for a
        write: it was declared again with other tables or version (R14), or found quarantined
        or rebuilt (R71). ``failed``: only those that show an error — the file agrees with its
        space again (repaired, rebuilt, or found in sync by a later use), so what they met (a
        file gone, a passing quarantine) may be gone too; those showing rows are up to date."""
        if failed and db_id not in self._queries:
            return  # (a look from another thread: one dict look-up; a query placed since runs)

        def rerun() -> None:  # on the scheduler thread, which owns the interest
            # Every query of it, not only those that react to what they read: one made with
            # react_on=db or react_on=<cell> shows the new tables at once too (R14).
            nodes = list(self._queries.get(db_id, ()))
            if failed:
                # (One in flight shows what its run finds: most often the run whose read made
                # the check that found the file agreeing.)
                nodes = [
                    node
                    for node in nodes
                    if getattr(node.value, "error", None) is not None and not node.in_flight
                ]
            if nodes:
                self.scheduler.rerun(nodes)

        self.scheduler.submit(rerun)

    def watch_source(self, node: Node, path: Path) -> None:
        """Re-run ``node`` when the injected file at ``path`` changes (R60)."""
        self._sources.watch(node, path)

    def look_at_sources(self) -> None:
        """Look at the injected files now, as the watcher does each ``poll_interval``: a change
        another program committed before ``settle()`` began is among what it waits for."""
        self._sources.look()

    def source_repinned(self, path: Path) -> None:
        """The file at ``path`` was registered again (R60): its queries re-run at the watcher's
        next look, as after a change, though the file may not have changed since."""
        self._sources.expire(path)

    def _reads_of_file(self, path: Path) -> list[Node]:
        """(Scheduler thread.) The runners of the reads in flight of the injected file at
        ``path``, which another program changed since they were sent: those reads are shared
        no more (a query asking now reads afresh), and their runners run again (R60)."""
        found: list[Node] = []
        for key, (_generation, read, _epoch, decl) in list(self._in_flight.items()):
            if decl.path == path:
                del self._in_flight[key]
                found.extend(cast(list[Node], read.runners))  # (runners are nodes)
        return found

    def _on_commit(self, event: CommitEvent) -> list[Node]:
        self._note(event)
        woken = self._handles_written(event) if self._awaiting else []
        if self._reads:
            for db_id in self._reads.keys() & event.writes.keys():
                if all(op.target != db_id for op in event.ops):
                    # Its handle written with no op of its own: by another program, or a
                    # runtime that took the cell for a plain one (R5). Its queries read again,
                    # and say what the handle is now (a quarantine: never "no handle").
                    woken.extend(self._reads[db_id])
        if self._links:
            for cell_id in self._links.keys() & event.writes.keys():
                woken.extend(self._links[cell_id])
        ops = []
        for op in event.ops:
            if self._reads.get(op.target):
                ops.append(op)
                if len(op.body) > GROWN_WRITE:
                    self._grown.add(op.target)
            else:
                self._columns.forget(op.target)  # unread: its shape is not looked at here
        if not ops:
            return woken
        found: list[Node] = []
        columns = self._columns
        found_sets = write_sets(
            ops,
            columns,
            columns.generated,
            columns.forget,
            self._versions,
            columns.replaces,
        )
        for db_id, written in found_sets.items():
            reads = self._reads[db_id]
            if written is None:
                found.extend(reads)
                continue
            candidates = set(self._unknown.get(db_id, ()))
            tables = self._by_table.get(db_id, {})
            for table in written:
                candidates.update(tables.get(table, ()))
            # Queries of one sql share one read set object: judge each read set once.
            verdicts: dict[int, bool] = {}
            for node in candidates:
                read_set = reads.get(node)
                verdict = verdicts.get(id(read_set))
                if verdict is None:
                    verdict = verdicts[id(read_set)] = affects(written, read_set)
                if verdict:
                    found.append(node)
        # Most queries re-run by asking for their next read and nothing else: they do so here,
        # and only the others take part in the scheduler's round (a round costs about as much
        # per node as the asking itself).
        # (Every node watched here is a query's runner: only runners call watch.)
        return woken + [node for node in found if not cast(Runner, node).rerun_now()]

    def _handles_written(self, event: CommitEvent) -> list[Node]:
        """The queries awaiting a handle in a cell ``event`` writes (see ``await_handle``):
        they re-run in the commit's round, once each; a link still unresolved registers again."""
        woken: list[Node] = []
        for cell_id in self._awaiting.keys() & event.writes.keys():
            woken.extend(self._awaiting.pop(cell_id))
        return woken

    def read_caught_up(
        self, decl: Declaration, read: Callable[[], tuple[int, Any]], written: int
    ) -> tuple[int, Any]:
        """``read()`` (a one-shot read: ``(seq, result)``), read again, as a live query's run
        is, while the file's watermark is older than the last commit known to have written it:
        ``written`` (what the caller's space says, e.g. the handle's row) or a commit this hub
        has taken in before the read began (R40: a read sees the commits that finished before
        it started; one that lands while it runs is no reason to read again — it would take
        the read past its deadline, and show that commit too). The last try reconciles the
        file first (see ``_land``)."""
        written = max(written, self._written.get(decl.db_id, 0))
        seq, result = read()
        attempt = 0
        while (
            result.error is None  # (a file gone is an error to report, R41)
            and seq < written
            and attempt < _MAX_RETRIES
        ):
            attempt += 1
            time.sleep(lag_delay(attempt))
            if attempt == _MAX_RETRIES:
                self._behind(decl)
            seq, result = read()
        return seq, result

    def _note(self, event: CommitEvent) -> None:
        for op in event.ops:  # reads sent before this commit are not shared any more
            self._generation[op.target] = self._generation.get(op.target, 0) + 1
            self._written[op.target] = event.seq

    def _absorb(self, event: CommitEvent) -> bool:
        """A commit to databases no live query watches, taken in on the committing thread
        (the scheduler is idle: see ``Scheduler.add_commit_hook``)."""
        if any(self._reads.get(op.target) for op in event.ops):
            return False
        if self._awaiting and not self._awaiting.keys().isdisjoint(event.writes):
            return False  # a query awaits the handle it writes (see await_handle)
        if self._links and not self._links.keys().isdisjoint(event.writes):
            return False  # a query reaches its database through a cell it writes
        if self._reads and not self._reads.keys().isdisjoint(event.writes):
            return False  # a watched database's handle, written (see _on_commit)
        self._note(event)
        for op in event.ops:
            # Its body is not read here (it might change the schema): the shape is read again
            # when a query of the database is there to need it.
            self._columns.forget(op.target)
        return True

    def _file_version(self, db_id: str) -> int | None:
        """The version the database's file holds now; None when it has no file (or is not the
        runtime's), records none, or cannot be read at once."""
        try:
            decl = self._lookup(db_id)
        except SqliteCellsError:
            return None
        if decl.kind is not SourceKind.CELL or not decl.path.is_file():
            return None  # (a read never creates a file, R7)
        # Waiting for no lock (the scheduler thread never does): a file locked elsewhere says
        # nothing now, and the next query watched asks again; a version that is no integer
        # (damage) says nothing either.
        return peek(decl.path, lambda conn: stored_version(conn, "main", db_id))

    def _table_shape(self, path: Path, table: str) -> tuple[TableShape, int]:
        """``table``'s shape in the file at ``path`` and the file's schema cookie it was read
        at (one read transaction)."""
        with self.pool.connection(path) as pooled:
            # On the scheduler thread: never wait long for a lock (the caller falls back to
            # "every column changed" if this fails).
            pooled.deadline = time.monotonic() + _SHAPE_TIMEOUT
            conn = pooled.conn
            conn.execute("BEGIN")
            try:
                cookie = int(str(conn.execute("PRAGMA main.schema_version").fetchall()[0][0]))
                shape = self._shape_in(conn, table)
            finally:
                if not conn.getautocommit():  # a read transaction: nothing to keep
                    conn.execute("ROLLBACK")
        return shape, cookie

    @staticmethod
    def _shape_in(conn: apsw.Connection, table: str) -> TableShape:
        # main.: the file's own table, not a stand-in the connection may hold in temp for a
        # declared column the file lacks (R14) — the changeset has the file's columns.
        rows = conn.execute(f"PRAGMA main.table_xinfo({quote_ident(table)})").fetchall()
        if not rows:  # no such table: a changeset naming it says nothing known (see caller)
            raise LookupError(f"the file has no table {table!r}")
        # "hidden" 2 and 3: generated columns, which changesets leave out.
        names = [str(row[1]) for row in rows if not row[6]]
        generated = [str(row[1]) for row in rows if row[6] in (2, 3)]
        found = conn.execute(
            "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?", (table,)
        ).fetchall()
        text = str(found[0][0]) if found and found[0][0] is not None else None
        # (No text: a table SQLite made, which has no constraint of its own.)
        replaces = text is not None and resolves_by_replace(text)
        # A key other than the rowid has an index of its own (origin "pk"): the rowid is
        # hidden and the changeset leaves it out (a WITHOUT ROWID table has one too, and
        # no rowid a query could read).
        keyed_otherwise = any(
            row[3] == "pk" for row in conn.execute(f"PRAGMA main.index_list({quote_ident(table)})")
        )
        has_pk = any(row[5] for row in rows)
        computed = generated_sources(text if generated else None, names, generated)
        if keyed_otherwise:
            return names, has_pk, with_hidden_rowid(computed, names), replaces
        return names, has_pk, computed, replaces

    # -- runs (scheduler thread) ---------------------------------------------------------------

    def request(
        self,
        runner: Runner,
        decl: Declaration,
        file: SpaceFile,
        stmt: Statement,
        prepare: Callable[[bool], bool] | None,
        key: tuple[str, str] | None = None,
    ) -> None:
        """Ask for one run of ``stmt`` on ``decl``; it is sent with the others requested in the
        same scheduler round, and shared with every runner asking for the same statement —
        apart from the runners whose rows run code of their own (a row type's
        ``__post_init__``), which share one read among themselves: a read's rows are built for
        all its runners before any of them lands, so a slow row type held every query of its
        statement as long, and gave them its timeout (R44). ``key`` is
        ``(stmt.sql, repr(stmt.params))`` when the caller has it already."""
        if key is None:
            key = (stmt.sql, repr(stmt.params))
        if runner.runs_own_code:
            key = (key[0], key[1] + _OWN_CODE)
        db_id = decl.db_id
        scheduler = self.scheduler
        running = self._in_flight.get((db_id, *key))
        if (
            running is not None
            and running[0] == self._generation.get(db_id, 0)
            and running[2] <= scheduler.current_epoch
            and (running[3] is decl or running[3] == decl)
        ):
            # The same statement is being read and no commit to its database came since it
            # was sent: its rows are as fresh as a new read's would be. (Not a read sent for a
            # newer cause than this one: settle() would not wait for it, see Scheduler.settle.
            # Nor one sent under another declaration of the database: it reads the tables as
            # declared then, and a query made after a re-declaration that added a column would
            # keep rows without it until the next write, R14.)
            running[1].runners.append(runner)
            return
        batch = self._batch
        if not batch:
            self._batch_work = scheduler.begin_work()  # settle() waits for the flush
            scheduler.submit(self._flush)
        elif self._batch_work is not None:
            scheduler.lower(self._batch_work)
        wanted = batch.get(db_id)
        if wanted is None:
            wanted = batch[db_id] = _Wanted(decl, file, prepare)
        held = wanted.statements.get(key)
        if held is None:
            wanted.statements[key] = _Read((db_id, *key), stmt, [runner])
        else:
            held.runners.append(runner)

    def _flush(self) -> None:
        batch, self._batch = self._batch, {}
        work, self._batch_work = self._batch_work, None
        assert work is not None
        self.scheduler.act(work)  # (it may have been asked for by an older cause meanwhile)
        try:
            for wanted in batch.values():
                self._send(wanted)
        finally:
            self.scheduler.end_work(work)

    def _send(self, wanted: _Wanted) -> None:
        """Send one database's batch: inline when it is cheap (see ``_is_cheap``), else as one
        job (one read transaction, one landing), split across the workers only when its
        statements are heavy enough for SQLite's own work to run in parallel."""
        reads = list(wanted.statements.values())
        self.reads_started += len(reads)
        db_id = wanted.decl.db_id
        generation = self._generation.get(db_id, 0)
        due = self._written.get(db_id, 0)
        in_flight = self._in_flight
        epoch = self.scheduler.current_epoch
        for read in reads:
            in_flight[read.key] = (generation, read, epoch, wanted.decl)
            read.due = due
        known, total = self._known_cost(reads)
        # After a large write none of the batch runs inline: its costs are from before it.
        grown = bool(self._grown) and db_id in self._grown
        if grown:
            self._grown.discard(db_id)
        if known and not grown and self._is_cheap(wanted.decl, reads, total):
            self._run_inline(wanted, reads)
            return
        light = self._light(reads) if not known or total >= SPLIT_COST * len(reads) else []
        if light:
            # Statements known to be light go apart from the heavy or unknown ones, which may
            # run until query_timeout: one job of both would hold the light ones as long (R44).
            light_total = sum(self._costs[read.cost_key] for read in light)
            if not grown and self._is_cheap(wanted.decl, light, light_total):
                self._run_inline(wanted, light)
            else:
                self._submit(wanted, light, 1)
            kept = {id(read) for read in light}
            reads = [read for read in reads if id(read) not in kept]
            known, total = self._known_cost(reads)
        if known and total < SPLIT_COST * len(reads):
            # Light statements: Python's share of each dominates, and two threads taking turns
            # on the interpreter lock run them slower than one does.
            chunks = 1
        else:
            chunks = min(self.workers.count, len(reads))
        self._submit(wanted, reads, chunks)

    def _submit(self, wanted: _Wanted, reads: list[_Read], chunks: int) -> None:
        """Send ``reads`` to the workers as ``chunks`` jobs, each with the statements not known
        to be light first (never run, or slowest last time), lightest last. A statement slow
        this time hands the ones after it to another worker, and the results read before it
        to be delivered at once (``QueryWorkers._split_locked``): heavier ones begin first,
        and no light one waits for a runaway one's query_timeout either way (R44)."""
        costs = self._costs
        reads = sorted(reads, key=lambda read: -costs.get(read.cost_key, math.inf))
        for i in range(chunks):
            part = reads[i::chunks] if chunks > 1 else reads
            delivery = self._delivery(
                wanted.decl, wanted.file, len(part), self.scheduler.begin_work()
            )
            items: list[tuple[Any, Statement]] = [(read, read.stmt) for read in part]
            prepare = None if wanted.prepare is None else functools.partial(wanted.prepare, False)
            self.workers.submit(
                ReadJob(wanted.decl, items, delivery, prepare, _Read.previous, _Read.build_ahead)
            )

    def _light(self, reads: list[_Read]) -> list[_Read]:
        """The statements of a batch known to be light (each ran in under ``SPLIT_COST``), when
        the batch also holds others; else none."""
        costs = self._costs
        light = [read for read in reads if costs.get(read.cost_key, SPLIT_COST) < SPLIT_COST]
        return light if len(light) < len(reads) else []

    def _known_cost(self, reads: list[_Read]) -> tuple[bool, float]:
        """Whether every statement ran before, and their last read times added up."""
        costs = self._costs
        total = 0.0
        for read in reads:
            cost = costs.get(read.cost_key)
            if cost is None:
                return False, 0.0
            total += cost
        return True, total

    def _is_cheap(self, decl: Declaration, reads: list[_Read], total: float) -> bool:
        """Whether the statements are cheaper to run right here than to hand to a worker and
        back: each ran before, all together in under ``INLINE_BUDGET``, none calls a SQL
        function whose one call can run long on a large value (the scheduler thread cannot be
        replaced like a stuck worker), and no runner's rows run code of their row type's own
        (a ``__post_init__``: only a worker's deadline bounds it, R44). Never for injected
        files (another program's lock could make the scheduler wait)."""
        if decl.kind is not SourceKind.CELL or len(reads) > _INLINE_MAX or total > INLINE_BUDGET:
            return False
        return short_steps(decl, [read.stmt.sql for read in reads]) and not any(
            runner.runs_own_code for read in reads for runner in read.runners
        )

    def _run_inline(self, wanted: _Wanted, reads: list[_Read]) -> None:
        """Run a cheap batch on the scheduler thread and land it once its commit has been
        processed (R50). Its statements get ``INLINE_TIMEOUT`` (the progress handler keeps it,
        the watchdog stands behind it): one that runs longer this time is sent to a worker,
        with the whole ``query_timeout``, instead of holding the scheduler. So is the whole
        batch when its file needs a check first (rebuilt elsewhere, found damaged): that check
        may wait for the space's write lock, up to ``query_timeout`` (R44, R71)."""
        decl = wanted.decl
        workers = self.workers
        timeout = min(workers.timeout, INLINE_TIMEOUT)
        # The whole batch, not only each statement, holds the scheduler INLINE_TIMEOUT at most:
        # statements its known costs said were short may all have grown since.
        tracker = Tracker(until=time.monotonic() + timeout)
        workers.guard(tracker)
        try:
            if wanted.prepare is not None and not wanted.prepare(True):
                self._submit(wanted, reads, 1)
                return
            seq, results = read_batch(
                self.pool,
                decl,
                [read.stmt for read in reads],
                timeout=timeout,
                tracker=tracker,
                previous=[read.previous() for read in reads],
            )
        except SqliteCellsError as exc:
            seq, results = 0, failed_together(exc, [read.stmt for read in reads])
        except Exception as exc:  # a bug or an unexpected failure must still end the run
            error = failed_unexpectedly(decl.db_id, reads[0].stmt.sql, exc)
            seq, results = 0, failed_together(error, [read.stmt for read in reads])
        finally:
            workers.unguard(tracker)
        pairs: list[tuple[Any, StatementResult]] = []
        slow: list[_Read] = []
        for read, result in zip(reads, results, strict=True):
            if isinstance(result.error, QueryTimeout) and timeout < workers.timeout:
                slow.append(read)
            else:
                pairs.append((read, result))
        if slow:
            for read in slow:
                self._costs.pop(read.cost_key, None)  # not cheap any more: a worker runs it next
            self._submit(wanted, slow, 1)
        if pairs:
            file = wanted.file
            self.scheduler.after_commit(file, seq, lambda: self._land(decl, file, seq, pairs))

    def _land(
        self,
        decl: Declaration,
        file: SpaceFile,
        seq: int,
        results: list[tuple[Any, StatementResult]],
    ) -> None:
        """Results reach their runners (scheduler thread): one round of notifications for the
        whole delivery, then each runner may start its next run (or, having waited for the
        write lock of ``file`` in vain, its next run once that lock is free: ``_LockWaits``)."""
        told: dict[Node, Any] = {}
        runs: list[Runner] = []
        lagging: dict[int, list[Runner]] = {}
        stuck = False
        costs = self._costs
        timed_out = self.workers.timeout
        in_flight = self._in_flight
        lock_waits = self._lock_waits
        for read, result in results:
            key = read.key
            running = in_flight.get(key)
            if running is not None and running[1] is read:
                del in_flight[key]  # landed: later requests read afresh
            ok = result.error is None
            # Its cost: the time it ran, or its whole query_timeout when it timed out (a cost
            # kept from a run that was quick would send it inline, or before light statements
            # in a job, where it holds them as long: see _submit).
            cost = result.seconds if ok else None
            if isinstance(result.error, QueryTimeout):
                cost = timed_out
            if cost is not None:
                cost_key = read.cost_key
                if cost_key not in costs and len(costs) >= _COSTS_SIZE:
                    costs.pop(next(iter(costs)))
                costs[cost_key] = cost
            # Older than a commit taken in before the read was sent: the file had not caught up
            # with it. (Not one taken in while the read ran: the rows were the latest then, and
            # a commit that changed what they read has asked for another run already.)
            early = ok and seq < read.due
            for runner in read.runners:
                if early:
                    attempt = runner.read_again(_MAX_RETRIES)
                    if attempt:
                        lagging.setdefault(attempt, []).append(runner)
                    stuck = stuck or attempt == _MAX_RETRIES
                try:
                    value, notify = runner.receive(seq, result)
                except Exception:  # one query's failure stays its own: the others still land
                    log.exception("live query %r could not take its result", runner)
                    notify = False
                if notify:
                    told[runner] = value
                runs.append(runner)
            if not ok and isinstance(result.error, WriteLockTimeout):
                lock_waits.add(file, read.runners)
            elif (
                not ok
                and isinstance(result.error, QueryTimeout)
                and isinstance(result.error.__cause__, apsw.BusyError)
            ):
                # Another connection held the file past query_timeout: nothing may change the
                # file to re-run the query once it lets go (it may roll back). A source runs
                # at the watcher's next look (and waits again while the lock is held); a
                # database's file is looked at with the write-lock waits.
                if decl.kind is SourceKind.DISK:
                    self._sources.expire(decl.path)
                else:
                    lock_waits.add(decl.path, read.runners)
            elif lock_waits:  # (empty but while a query waits: no cost to the others)
                lock_waits.discard(read.runners)
        self.scheduler.set_values(told)
        for runner in runs:
            runner.landed()
        if stuck:
            # The file stayed behind its space for every earlier try: its writer was killed
            # between the two COMMITs (R71, R72). The last try repairs it first (reconcile
            # holds both files' write locks, so a writer still between them is waited for).
            self._behind(decl)
        for attempt, late in lagging.items():
            self._read_later(late, attempt)

    def _read_later(self, runners: list[Runner], attempt: int) -> None:
        """Run ``runners`` again after a short back-off: their file had not caught up with a
        commit the space already holds (see ``_written``)."""
        scheduler = self.scheduler
        nodes: list[Node] = list(runners)  # type: ignore[arg-type]  # runners are nodes
        work = scheduler.begin_work()  # settle() waits for the re-read

        def fire() -> None:
            scheduler.finish_work(lambda: scheduler.rerun(nodes), work)

        timer = threading.Timer(lag_delay(attempt), fire)
        timer.daemon = True
        try:
            timer.start()
        except RuntimeError:  # no thread to be had: read again at once, without the back-off
            fire()

    def _delivery(
        self, decl: Declaration, file: SpaceFile, count: int, unit: Work
    ) -> Callable[[int, list[tuple[Any, StatementResult]]], None]:
        """The delivery of one job of ``count`` statements: each part lands on the scheduler
        thread once commit ``seq`` is processed (R50); the job's ``unit`` of outside work ends
        with its last part (the watchdog may split a job), and every part keeps its epoch."""
        scheduler = self.scheduler
        lock = threading.Lock()  # guards outstanding: parts come from workers and the watchdog
        outstanding = [count]

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            held = [results]

            def work() -> None:
                # Taken out of the closure: the scheduler keeps its last work item referenced
                # until the next one, and the results (thousands of row tuples) should be freed
                # once landed, not when the next commit arrives.
                taken = held.pop()
                scheduler.after_commit(file, seq, lambda: self._land(decl, file, seq, taken))

            with lock:
                extra = outstanding[0] <= 0
                outstanding[0] -= len(results)
                last = outstanding[0] <= 0
            if extra:
                # More results than the job's statements (a bug): landing them again could put
                # older rows over newer ones, and ending the unit twice would stop the scheduler.
                log.error("dropped a second delivery of %d result(s) of one read", len(results))
                return
            if last:
                scheduler.finish_work(work, unit)
            else:
                scheduler.submit(work, epoch=unit.epoch)

        return deliver

    def close(self) -> None:
        self._sources.close()
        self._lock_waits.close()


_ABSENT: Any = object()


def _lock_free(file: SpaceFile | Path) -> bool:
    """Whether the lock waited for is free now (see ``_LockWaits``), never waiting for it."""
    if not isinstance(file, Path):
        return file.write_lock_free()
    locked: list[bool] = []

    def read(conn: apsw.Connection) -> None:
        try:
            conn.execute("PRAGMA main.schema_version").fetchall()
        except apsw.BusyError:
            locked.append(True)

    peek(file, read)  # (a file gone or damaged: the run says so)
    return not locked


class _LockWaits:
    """The live queries whose last run gave up waiting for a lock: their space's write lock (a
    :class:`WriteLockTimeout`: a commit of this runtime, or another connection's (another
    process's commit), held it past ``query_timeout``, and the run needed it to repair the file
    first, R44, R71), or a lock on their database's file itself (a :class:`QueryTimeout` from
    SQLite's busy error: another process holds the file, in SQLite's exclusive locking mode,
    say). Nothing else re-runs them — that commit may have written another database, or rolled
    back — so each is re-run once the lock is seen free. A ticker thread, started at the first
    such query, asks the scheduler thread to look every ``interval`` while one waits and sleeps
    otherwise. A look tries this runtime's write lock without waiting, so no run starts while a
    commit of its own holds it; another process's hold of the space's lock is not seen from
    here: the run then waits for it on a worker, up to ``query_timeout`` again, and lands
    another ``WriteLockTimeout`` while it lasts. A database file is read at once by a
    connection of the look's own that waits for no lock (``peek``): free once that read is
    not refused as busy. A query is re-run at most once per look, and not after a result of
    another kind lands (it succeeded, or failed otherwise) or once it is released."""

    def __init__(self, scheduler: Scheduler, interval: float) -> None:
        self._scheduler = scheduler
        self._interval = interval
        # Owned by the scheduler thread: the queries waiting, by the space file whose write
        # lock they wait for, or the path of the database file whose lock they wait for.
        self._waiting: dict[SpaceFile | Path, set[Node]] = {}
        self._any = threading.Event()  # set while a query waits: the ticker runs
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _thread against close

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, file: SpaceFile | Path, runners: list[Runner]) -> None:
        """(Scheduler thread.) ``runners`` waited in vain for ``file``'s write lock (a space
        file) or for a lock on the database file at ``file`` (a path)."""
        nodes: list[Node] = list(runners)  # type: ignore[arg-type]  # runners are nodes
        self._waiting.setdefault(file, set()).update(nodes)
        if self._any.is_set():
            return
        self._any.set()
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = _started(
                    self._tick, "sqlite-cells-lock-waits", "re-runs queries once a lock is free"
                )
                if self._thread is None:
                    self._any.clear()  # (the next query to wait tries again)

    def discard(self, runners: list[Runner]) -> None:
        """(Scheduler thread.) ``runners`` got a result of another kind: they wait no more."""
        for file, nodes in list(self._waiting.items()):
            nodes.difference_update(runners)  # (runners are nodes)
            if not nodes:
                del self._waiting[file]
        if not self._waiting:
            self._any.clear()

    def _tick(self) -> None:
        while self._any.wait() and not self._closed.wait(self._interval):
            if self._any.is_set():
                self._scheduler.submit(self._look)

    def _look(self) -> None:
        """(Scheduler thread.) Re-run the queries whose lock is free now, as one round."""
        free = [file for file in self._waiting if _lock_free(file)]
        nodes = [node for file in free for node in self._waiting.pop(file) if not node.released]
        if not self._waiting:
            self._any.clear()
        if nodes:
            self._scheduler.rerun(nodes)

    def close(self) -> None:
        """Stop looking; the ticker thread is waited for (it never waits but for its tick)."""
        with self._lock:
            self._closed.set()
            thread = self._thread
        self._any.set()  # wake it to see it is closed
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _started(target: Callable[[], None], name: str, what: str) -> threading.Thread | None:
    """A daemon thread running ``target``, started; None, logged, when no thread is to be had
    (the system's limit on threads or processes): the caller goes on without it and tries again
    at its next occasion, and nothing is left that ``close()`` would wait for."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:
        log.warning("could not start the thread that %s (%s); trying again later", what, exc)
        return None
    return thread


class _SourceWatcher:
    """Watches injected files for changes made by other programs (R60)."""

    def __init__(
        self,
        scheduler: Scheduler,
        pool: ReadPool,
        interval: float,
        in_flight: Callable[[Path], list[Node]],
    ) -> None:
        self._scheduler = scheduler
        self._pool = pool
        self._interval = interval
        # (Scheduler thread) the queries whose reads of a file were in flight as it changed
        self._in_flight = in_flight
        # _lock guards _nodes, _signatures and _closed.
        self._lock = threading.Lock()
        self._nodes: dict[Path, set[Node]] = {}
        self._signatures: dict[Path, object] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, node: Node, path: Path) -> None:
        with self._lock:
            nodes = self._nodes.setdefault(path, set())
            if node not in nodes:
                nodes.add(node)
                self._signatures.setdefault(path, content_signature(path))
            self._start_locked()

    def _start_locked(self) -> None:
        """Start the watcher thread if it is owed. Without a thread to be had, the files are
        looked at when ``settle()`` begins, and the start is tried again then and at the next
        ``watch``."""
        if self._thread is None and self._nodes and not self._closed.is_set():
            self._thread = _started(
                self._loop, "sqlite-cells-sources", "watches injected files for changes"
            )

    def unwatch(self, node: Node) -> None:
        with self._lock:
            for nodes in self._nodes.values():
                nodes.discard(node)

    def expire(self, path: Path) -> None:
        with self._lock:
            if path in self._signatures:
                self._signatures[path] = _ABSENT  # equal to no signature: seen as a change

    def _loop(self) -> None:
        while not self._closed.wait(self._interval):
            self.look()

    def look(self) -> None:
        """Look at every watched file once: the queries of one whose content changed since the
        last look re-run (each poll_interval, and when ``settle()`` begins)."""
        with self._lock:
            paths = {path: set(nodes) for path, nodes in self._nodes.items() if nodes}
            self._start_locked()
        for path, nodes in paths.items():
            signature = content_signature(path)
            with self._lock:
                changed = self._signatures.get(path) != signature
                self._signatures[path] = signature
            if changed:
                # Connections opened immutable cannot see the change: open new ones.
                self._pool.discard(path)
                self._scheduler.submit(functools.partial(self._rerun, path, list(nodes)))

    def _rerun(self, path: Path, nodes: list[Node]) -> None:
        """(Scheduler thread.) Re-run the queries of the file at ``path``, which changed, and
        those waiting for a read of it sent before the change: a query made since the watcher
        began its look may have joined such a read (its rows may be older than the change)."""
        self._scheduler.rerun(list(dict.fromkeys([*nodes, *self._in_flight(path)])))

    def close(self) -> None:
        """Stop watching; the watcher thread is waited for (it checks a file between waits,
        never for long), so no thread of a closed runtime is left."""
        with self._lock:
            self._closed.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

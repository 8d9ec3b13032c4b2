"""Query workers and their watchdog: reads that keep their deadline whatever they do (R44).

Reads run on a few worker threads. A statement that loops past its deadline is stopped by the
connection's progress handler, and a lock wait by its busy handler; but one long SQL function
call (``replace``/``instr``/``trim`` on megabytes of text) is a single VM step, during which
neither fires. So a watchdog thread watches every read in flight: ``GRACE`` seconds past its
statement's deadline it calls ``interrupt()`` on the connection, reports that statement as
:class:`QueryTimeout`, hands the job's other statements to a fresh job, and *abandons* the
worker: the thread finishes its call in the background (its result is dropped, its connection
goes back to the pool afterwards) while a new worker takes its place, so other queries, writes
and ``close()`` never wait for it. At most ``MAX_STUCK`` abandoned workers are replaced at once;
past that the pool keeps fewer workers until they come back (and says so in the log).

Abandoning comes only ``GRACE`` past the deadline; until then a stuck read still holds its
worker. So a read never waits behind reads that are themselves slow: when a job is queued while
every worker is busy in a statement (or a job's preparation) that has run ``SLOW`` seconds or
more, an extra worker starts — checked when the job is submitted and at each watchdog tick. The
extras and the abandoned workers together stay within ``MAX_EXTRA`` beyond ``count``; an extra
that finds no work for ``RETIRE`` seconds exits (any idle worker does while there are more than
``count``). Workers that keep up — however long their batches, as long as each statement is
short — never start one.

Nor does a statement wait behind a slow one of its own job: when the statement a worker runs
has run ``SLOW`` seconds, the watchdog hands the job's statements not begun yet to a new job
(the worker stops after the one it runs; see ``Tracker.end``), which an idle or extra worker
takes, and the results read before it to a job that only builds and delivers them
(``ReadJob.read``; ``Tracker.begin``). A batch of short statements stays one job, in one read
transaction. Likewise when one statement's rows have taken ``SLOW`` seconds to build: the
results built already go on to be delivered, those not built yet to be built elsewhere, and
the worker delivers that one alone. Nothing read is read again.

A read waiting for a lock on its file (another connection holds it: another process in
SQLite's exclusive locking mode, say) waits in its connection's busy handler, up to its
deadline, and is then :class:`QueryTimeout` saying the file stayed locked. One such wait per
file is enough: while a worker waits for a file's lock, the queued jobs of that file stay
queued (a second waiter would learn nothing more) and the workers take other files' jobs, so
a burst of reads of a locked file never holds back reads of other databases. A job held back
keeps the deadline it had in the queue: still queued at it, it fails as the waiting read did;
taken earlier, its reads end by it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from sqlite_cells.codec import ClosedError, QueryTimeout, SqliteCellsError
from sqlite_cells.read._pool import PooledConnection, ReadPool
from sqlite_cells.read._reader import (
    Kept,
    Statement,
    StatementResult,
    Tracker,
    failed_together,
    failed_unexpectedly,
    locked_past,
    prepared_read_set,
    read_batch,
)
from sqlite_cells.schema import Declaration

__all__ = [
    "CLOSE_WAIT",
    "GRACE",
    "MAX_EXTRA",
    "QUEUE_GRACE",
    "RETIRE",
    "SLOW",
    "Delivery",
    "QueryWorkers",
    "ReadJob",
    "closed_instead",
]

log = logging.getLogger("sqlite_cells.read")

GRACE = 0.25
QUEUE_GRACE = 0.5  # db.read waits this much past its timeout for a worker to take it
# A caller's wait is cut in slices this long (seconds): see wait_in_slices.
WAIT_SLICE = 0.1


def wait_in_slices(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)``, in slices of ``WAIT_SLICE``: the operating system may hand
    Ctrl-C (SIGINT) to another thread of the process, and the main thread, blocked in one long
    wait, raises ``KeyboardInterrupt`` only when that wait ends (a notebook's interrupt of a
    ``db.read`` took the whole query_timeout, or hung the cell). Between slices it is raised."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        step = WAIT_SLICE if end is None else min(WAIT_SLICE, end - time.monotonic())
        if step <= 0:
            return event.is_set()
        if event.wait(step):
            return True


MAX_STUCK = 16
SLOW = 0.02  # a statement running this long holds its worker: the reads behind it go elsewhere
MAX_EXTRA = 14  # extra and abandoned workers beyond ``count`` that extras may bring about
RETIRE = 1.0  # an idle worker beyond ``count`` exits after this long without work
_WATCH_EVERY = 0.05
CLOSE_WAIT = 1.0  # how long close() waits for interrupted workers to end (R44's slack)
_LINGER = 1.0  # how long the watchdog keeps polling after the last guarded read began
# A statement whose connection waited for a lock this recently is in a lock wait (whose sleeps
# are at most 20 ms): its job is not split (see QueryWorkers._split_locked).
_LOCK_WAIT_RECENT = 0.05

Delivery = Callable[[int, list[tuple[Any, StatementResult]]], None]


@dataclass(eq=False, slots=True)
class ReadJob:
    """Statements of one database to run in one read transaction. ``deliver(seq, results)`` is
    called exactly once per statement (possibly split over several calls when the watchdog
    steps in), from a worker or the watchdog thread. ``prepare`` runs first on the worker (e.g.
    crash reconciliation, R71); what it raises fails every statement."""

    decl: Declaration
    items: list[tuple[Any, Statement]]
    deliver: Delivery
    prepare: Callable[[], object] | None = None
    # The rows each item's statement read last time, if known (see ``read_batch``).
    previous: Callable[[Any], Kept | None] | None = None
    # Run on the worker for each item's result before delivery: a live query builds its rows
    # there, within the statement's deadline, not on the scheduler thread (R44).
    ahead: Callable[[Any, StatementResult], None] | None = None
    # The items' results, read already at this watermark seq (handed on from a job whose
    # next statement runs long, see ``_split_locked``): only their rows are built.
    read: tuple[int, list[StatementResult]] | None = None
    # Left queued while another read waited for a lock on its file (see ``_next_locked``).
    behind_lock: bool = False
    queued_at: float = 0.0  # when it was queued (a job held back that long has timed out)


@dataclass(eq=False, slots=True)
class _Worker:
    thread: threading.Thread | None = None
    abandoned: bool = False


@dataclass(slots=True)
class _InFlight:
    job: ReadJob
    started: float  # time.monotonic() when the worker took the job
    tracker: Tracker = field(default_factory=Tracker)


def closed_instead(error: SqliteCellsError) -> SqliteCellsError:
    """The error of a read of a runtime being closed: ``error``, or a :class:`ClosedError`
    when close() ended it — an interrupt (SQLite's ``InterruptError``, or the plain error
    "interrupted" that it gives when the interrupt meets the statement as it is prepared, a
    schema being read) or a lock wait given up (SQLite's busy error)."""
    cause = error.__cause__
    interrupted = isinstance(cause, apsw.InterruptError | apsw.BusyError) or (
        isinstance(cause, apsw.SQLError) and str(cause) == "interrupted"
    )
    if not interrupted:
        return error
    closed = _closed_during_read()
    closed.__cause__ = cause
    return closed


def _closed_during_read() -> ClosedError:
    return ClosedError("the runtime was closed during this read: open a new Runtime")


class QueryWorkers:
    """``count`` worker threads reading through ``pool`` with a ``timeout`` per statement."""

    def __init__(self, pool: ReadPool, *, count: int, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.count = count
        # _lock guards _queue, _in_flight, _guarded, _guarded_at, _watch_idle, _workers,
        # _stuck, _refused and _closed; _wake (idle workers) and _watch_wake (the watchdog)
        # signal on it: a job wakes one worker, not every thread.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watch_wake = threading.Condition(self._lock)
        self._watch_idle = False
        self._queue: deque[ReadJob] = deque()
        self._in_flight: dict[_Worker, _InFlight] = {}
        self._guarded: set[Tracker] = set()  # reads on other threads (inline ones), see guard()
        self._guarded_at = 0.0
        self._workers: list[_Worker] = []
        self._stuck = 0
        self._closed = False
        self.extras_started = 0  # extra workers started for reads queued behind slow ones
        self._refused = False  # (under _lock) the last worker start found no thread to be had
        self.splits = 0  # jobs whose statements not begun were handed on behind a slow one
        self._watchdog = threading.Thread(
            target=self._watch, name="sqlite-cells-query-watchdog", daemon=True
        )
        try:
            for _ in range(count):
                self._spawn_locked()
            self._watchdog.start()
        except BaseException:  # no thread to be had: the ones started stop (see close)
            self.close()
            raise

    @property
    def running(self) -> int:
        """Workers taking jobs now: ``count``, plus extras, minus abandoned ones not replaced."""
        with self._lock:
            return len(self._workers)

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, job: ReadJob) -> None:
        """Queue ``job``; after :meth:`close` it is delivered :class:`ClosedError` at once."""
        with self._lock:
            if not self._closed:
                job.queued_at = time.monotonic()
                self._queue.append(job)
                self._wake.notify()
                if len(self._in_flight) == len(self._workers):  # nobody idle: slow ones?
                    self._add_extra_locked(time.monotonic())
                return
        _fail(job, ClosedError("the runtime is closed: open a new Runtime"))

    def run(
        self,
        decl: Declaration,
        stmt: Statement,
        prepare: Callable[[], object] | None,
        ahead: Callable[[Any, StatementResult], None] | None = None,
    ) -> Any:
        """Run one statement on a worker and wait for it (``db.read``): the caller keeps the
        deadline even when the statement is one long function call, or ``ahead`` (building its
        rows, on the worker, as ``ReadJob.ahead``) runs long. Returns ``(seq, result)``."""
        done = threading.Event()
        box: list[tuple[int, StatementResult]] = []

        def deliver(seq: int, results: list[tuple[Any, StatementResult]]) -> None:
            box.append((seq, results[0][1]))
            done.set()

        job = ReadJob(decl, [(0, stmt)], deliver, prepare, ahead=ahead)
        self.submit(job)
        try:
            if not wait_in_slices(done, self.timeout + QUEUE_GRACE):
                # Still queued behind other reads past the deadline: give up on it (R44). Once
                # started, the watchdog ends it by its own deadline.
                if self._dequeue(job):
                    if job.behind_lock:  # held back behind another read's wait for that lock
                        why = locked_past(self.pool.timeout_setting, self.timeout)
                    else:
                        why = (
                            f"no query worker was free within query_timeout ({self.timeout}s): "
                            "other reads hold them all; try again, or raise query_workers"
                        )
                    error = QueryTimeout(decl.db_id, stmt.sql, why)
                    return 0, StatementResult(error=error)
                wait_in_slices(done, None)
        except BaseException:
            self._cancel(job)  # the caller left (Ctrl-C): nobody waits for the rows now
            raise
        return box[0]

    def _cancel(self, job: ReadJob) -> None:
        """Nobody waits for ``job`` any more: taken off the queue, or, running, its deadline is
        now, so its statement ends at the watchdog's next look (or SQLite's next progress
        check) instead of running on until ``query_timeout``."""
        if self._dequeue(job):
            return
        with self._lock:
            for flight in self._in_flight.values():
                if flight.job is job:
                    with flight.tracker.lock:
                        flight.tracker.until = flight.tracker.deadline = 0.0
                    self._watch_wake.notify()
                    return

    def _dequeue(self, job: ReadJob) -> bool:
        """Take ``job`` off the queue if no worker has taken it yet; whether it was there."""
        with self._lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
            return queued

    # -- workers -------------------------------------------------------------------------------

    def _spawn_locked(self) -> None:
        """Start a worker; ``RuntimeError`` when no thread is to be had, and then no worker is
        counted (it would take no job, and the reads queued would wait for it for good)."""
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), name="sqlite-cells-query", daemon=True
        )
        worker.thread.start()  # (it waits for _lock, held here, before it looks at _workers)
        self._workers.append(worker)

    def _spawn_later_locked(self, what: str) -> bool:
        """Start ``what`` (an extra worker, a replacement) once the runtime is made: when no
        thread is to be had, the reads queued wait for a running worker, and the watchdog —
        which must live on to keep every read's deadline (R44) — tries again at its next look
        while reads are queued."""
        try:
            self._spawn_locked()
        except RuntimeError as exc:
            if not self._refused:  # (said once until a worker starts again: it is tried often)
                log.warning("could not start %s query worker (%s); trying again later", what, exc)
            self._refused = True
            return False
        self._refused = False
        return True

    def _add_extra_locked(self, now: float) -> None:
        """Start an extra worker if jobs are queued (not only jobs of files in a lock wait),
        every worker is busy with a statement that has run ``SLOW`` seconds or more, and the
        bound allows one."""
        if self._closed or not self._has_work_locked():
            return
        workers = self._workers
        if len(self._in_flight) < len(workers):
            return  # a worker is idle, starting or delivering: it takes the job soon
        if len(workers) + self._stuck >= self.count + MAX_EXTRA:
            return
        timeout = self.timeout
        for flight in self._in_flight.values():
            # A statement's deadline is its start plus the timeout; before the first statement
            # (preparing, opening the file) it is inf and the job's own start counts.
            deadline = flight.tracker.deadline
            began = flight.started if deadline == math.inf else deadline - timeout
            if now - began < SLOW:
                return
        if self._spawn_later_locked("an extra"):
            self.extras_started += 1

    def _work(self, worker: _Worker) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    if len(self._workers) <= self.count:
                        self._wake.wait()
                    elif not self._wake.wait(RETIRE) and self._retire_locked(worker):
                        return
                if self._closed:
                    self._workers.remove(worker)
                    return
                job, expired = self._next_locked()
                if job is not None:
                    flight = self._in_flight[worker] = _InFlight(job, time.monotonic())
                    if job.behind_lock:
                        # It waited for that lock in the queue: its reads end by the deadline
                        # it had there, not a new one (R44: by its deadline, +1 s at most).
                        flight.tracker.until = job.queued_at + self.timeout
                    if self._watch_idle:
                        self._watch_wake.notify()  # the watchdog has something to watch
                elif not expired:  # only jobs of files in a lock wait: look again shortly
                    self._wake.wait(_LOCK_WAIT_RECENT)
                    continue
            if expired:
                self._fail_held_back(expired)
            if job is None:
                continue
            outcome = self._execute(job, flight.tracker)
            with self._lock:
                mine = self._in_flight.pop(worker, None) is flight
                if worker.abandoned:
                    self._stuck -= 1
                    if len(self._workers) < self.count and not self._closed:
                        # a replacement was owed (MAX_STUCK reached)
                        self._spawn_later_locked("a replacement")
                    return
            if mine:
                _deliver(job, *outcome)
            # Not held while idle: freeing a big batch's rows later would land on the next
            # batch's path (at the next assignment of outcome).
            del outcome, job, flight

    def _locked_files_locked(self) -> set[Path]:
        """The files whose reads in flight are waiting for a lock on them now."""
        now = time.monotonic()
        files: set[Path] = set()
        for flight in self._in_flight.values():
            pooled = flight.tracker.pooled
            if pooled is not None and now - pooled.lock_waited_at < _LOCK_WAIT_RECENT:
                files.add(flight.job.decl.path)
        return files

    def _next_locked(self) -> tuple[ReadJob | None, list[ReadJob]]:
        """Take the first queued job whose file no read in flight waits for a lock on (None
        when every queued job's file is in such a wait), and the jobs held back so for their
        whole ``query_timeout``, taken off the queue to fail as their reads would have (R44:
        by its deadline, each, not one after another)."""
        queue = self._queue
        locked = self._locked_files_locked()
        if not locked:
            return queue.popleft(), []
        found = None
        expired: list[ReadJob] = []
        now = time.monotonic()
        for job in queue:
            if job.decl.path in locked:
                job.behind_lock = True
                if now - job.queued_at >= self.timeout:
                    expired.append(job)
            elif found is None:
                found = job
        for job in expired:
            queue.remove(job)
        if found is not None:
            queue.remove(found)
        return found, expired

    def _fail_held_back(self, jobs: list[ReadJob]) -> None:
        """Fail ``jobs``, held back behind another read's wait for their file's lock for their
        whole timeout, as a read that waited for the lock itself fails (the same error, and
        the same re-run once the lock is free: its cause is SQLite's busy error)."""
        why = locked_past(self.pool.timeout_setting, self.timeout)
        for job in jobs:
            error = QueryTimeout(job.decl.db_id, job.items[0][1].sql, why)
            error.__cause__ = apsw.BusyError("database is locked")
            _fail(job, error)

    def _has_work_locked(self) -> bool:
        """Whether a queued job may be taken now (see ``_next_locked``)."""
        if not self._queue:
            return False
        locked = self._locked_files_locked()
        return not locked or any(job.decl.path not in locked for job in self._queue)

    def _retire_locked(self, worker: _Worker) -> bool:
        """After ``RETIRE`` idle seconds: exit if the pool still has more than ``count``."""
        if self._has_work_locked() or self._closed or len(self._workers) <= self.count:
            return False
        self._workers.remove(worker)
        return True

    def _execute(
        self, job: ReadJob, tracker: Tracker
    ) -> tuple[int, list[tuple[Any, StatementResult]]]:
        keys = [key for key, _ in job.items]
        try:
            if job.read is not None:
                seq, results = job.read
                with tracker.lock:  # (to be handed on again while one's rows take long)
                    tracker.read, tracker.seq = results, seq
            else:
                if job.prepare is not None:
                    job.prepare()
                statements = [stmt for _, stmt in job.items]
                last = job.previous
                seq, results = read_batch(
                    self.pool,
                    job.decl,
                    statements,
                    timeout=self.timeout,
                    tracker=tracker,
                    previous=[last(key) for key in keys] if last is not None else None,
                )
            if self._closed:
                for result in results:
                    if result.error is not None:
                        result.error = self._closed_instead(result.error)
            # Fewer results than statements: the watchdog handed the rest to another job.
            pairs = list(zip(keys, results, strict=False))
            if job.ahead is not None:
                begin, end = self._build_ahead(job.ahead, pairs, tracker)
            else:
                with tracker.lock:  # (read: nothing more is handed on)
                    begin, end = tracker.begin, tracker.end
            return seq, pairs[begin:end]
        except SqliteCellsError as exc:
            return 0, _failed(job, _kept(keys, tracker), self._closed_instead(exc))
        except Exception as exc:  # a bug or an unexpected failure must still end the read
            error = failed_unexpectedly(job.decl.db_id, job.items[0][1].sql, exc)
            return 0, _failed(job, _kept(keys, tracker), error)

    def _closed_instead(self, error: SqliteCellsError) -> SqliteCellsError:
        """A statement that close() interrupted ran no ``query_timeout`` long: it is told the
        runtime closed (ClosedError), not that it timed out. A lock wait it ended surfaces
        as SQLite's busy error."""
        return closed_instead(error) if self._closed else error

    def _build_ahead(
        self,
        ahead: Callable[[Any, StatementResult], None],
        pairs: list[tuple[Any, StatementResult]],
        tracker: Tracker,
    ) -> tuple[int, int]:
        """Build each result's rows here; a statement's run, its rows built, keeps its deadline
        (the watchdog reports it as timed out past it). The read is over: the watchdog has no
        connection to interrupt. Returns the indexes ``begin, end`` of the results this worker
        still delivers: while one result's rows take ``SLOW`` seconds to build, the watchdog
        hands the job's other statements to a new job (see ``_split_locked``)."""
        for index, (key, result) in enumerate(pairs):
            if result.unchanged or (result.error is not None and result.invalid_text is None):
                continue  # (rows the reader found unchanged need no building)
            with tracker.lock:
                if index >= tracker.end:
                    break  # the others were handed on while one was built
                if index < tracker.begin:
                    continue  # handed on, read, while a later statement ran long
                now = time.monotonic()
                tracker.pooled, tracker.index, tracker.building = None, index, True
                tracker.deadline = now - result.seconds + self.timeout
                tracker.built_since = now
            ahead(key, result)
        with tracker.lock:
            tracker.built_since = math.inf  # done: nothing is handed on any more
            return tracker.begin, tracker.end

    # -- the watchdog --------------------------------------------------------------------------

    def guard(self, tracker: Tracker) -> None:
        """Watch a read running on another thread (a cheap batch run inline on the scheduler
        thread) until :meth:`unguard`: ``GRACE`` seconds past its statement's deadline its
        connection is interrupted, so the statement ends as :class:`QueryTimeout` at its next
        step. Its thread is not replaced (it is not a worker): such reads are only of
        statements whose single steps stay short (see ``LiveQueries``)."""
        with self._lock:
            self._guarded.add(tracker)
            # Polling goes on for _LINGER after the last guarded read, so a stream of inline
            # reads wakes the watchdog once, not once per read.
            self._guarded_at = time.monotonic()
            if self._watch_idle:
                self._watch_wake.notify()

    def unguard(self, tracker: Tracker) -> None:
        with self._lock:
            self._guarded.discard(tracker)

    def _idle_locked(self) -> bool:
        return (
            not self._in_flight
            and not self._guarded
            and time.monotonic() - self._guarded_at > _LINGER
        )

    def _watch(self) -> None:
        while True:
            with self._lock:
                while not self._closed and self._idle_locked():
                    self._watch_idle = True
                    self._watch_wake.wait()
                self._watch_idle = False
                if self._closed and not self._in_flight:
                    return  # reads still in flight at close keep their deadline too
                late, overdue = self._look_locked(time.monotonic())
            self._act(late, overdue)
            # Not held while waiting: a job holds its queries, and a result its rows.
            del late, overdue
            with self._lock:
                if not self._closed or self._in_flight:
                    self._watch_wake.wait(_WATCH_EVERY)  # close() cuts the pause short

    def _look_locked(self, now: float) -> tuple[list[_InFlight], list[Tracker]]:
        """One look of the watchdog: abandon the reads past their deadline (returned, to be
        given up outside the lock), split slow jobs, start an extra worker if one is owed, and
        return the guarded reads overdue too."""
        late = [
            (worker, flight)
            for worker, flight in self._in_flight.items()
            if now > flight.tracker.deadline + GRACE
        ]
        for worker, _ in late:
            self._abandon_locked(worker)
        for flight in self._in_flight.values():
            self._split_locked(flight, now)
        if self._queue:
            self._add_extra_locked(now)
        overdue = [t for t in self._guarded if now > t.deadline + GRACE]
        return [flight for _, flight in late], overdue

    def _act(self, late: list[_InFlight], overdue: list[Tracker]) -> None:
        for gone in late:
            self._give_up(gone)
        for tracker in overdue:
            with tracker.lock:
                pooled = tracker.pooled
            _interrupt(pooled)

    def _split_locked(self, flight: _InFlight, now: float) -> None:
        """Hand the statements of ``flight``'s job not begun yet to a new job when the one
        running has run ``SLOW`` seconds, and all its other statements when one statement's
        rows have been built that long: a long statement never holds back the others of its
        batch (R44). The new job waits for an idle worker, or an extra one (see
        ``_add_extra_locked``); its results are delivered apart, in their own transaction.
        The results read *before* the slow statement go on too, at the head of the queue, to
        a job that only builds their rows and delivers them (with the watermark seq they were
        read at): they never wait for it. Not while the statement waits for a lock on its file
        (the next statement would wait for the same one: a chain of such jobs only filled
        every worker), and not after :meth:`close`, which failed the queued jobs. (Once every
        statement is read and built, none is left to hand on: the worker delivers them
        all.)"""
        tracker, job = flight.tracker, flight.job
        handed: list[ReadJob] = []

        def hand(begin: int, end: int, *, build: bool) -> bool:
            """Hand statements ``begin … end - 1`` on: their results if read (to be built when
            ``build``, else only delivered), else the statements (to be read)."""
            if begin >= end:
                return False
            items = job.items[begin:end]
            read = _read(tracker, begin, end)
            if read is None:
                handed.append(ReadJob(job.decl, items, job.deliver, None, job.previous, job.ahead))
            else:
                ahead = job.ahead if build else None
                handed.append(ReadJob(job.decl, items, job.deliver, ahead=ahead, read=read))
            return True

        with tracker.lock:
            if self._closed:
                return
            index, begin, end = tracker.index, tracker.begin, min(tracker.end, len(job.items))
            if tracker.building:
                # Every statement was read and one's rows take long to build (a row type's
                # slow __post_init__, a large result): the others go on rather than wait for
                # it (R44) — those built already to be delivered, the rest to be built.
                if now - tracker.built_since < SLOW:
                    return
                hand(begin, index, build=False)
                hand(index + 1, end, build=True)
                tracker.begin, tracker.end = index, index + 1
            elif tracker.reading and now - (tracker.deadline - self.timeout) >= SLOW:
                # (Before its first statement a job's deadline is inf: not begun, not slow.)
                if hand(begin, index, build=True):  # read: to be built and delivered now
                    tracker.begin = index
                pooled = tracker.pooled
                waits = pooled is not None and now - pooled.lock_waited_at < _LOCK_WAIT_RECENT
                if not waits and hand(index + 1, end, build=True):  # not begun: to be read
                    tracker.end = index + 1
        if not handed:
            return
        for rest in handed:
            if rest.read is not None:
                self._queue.appendleft(rest)  # read already: only built and delivered
            else:
                self._queue.append(rest)
            self._wake.notify()
        self.splits += 1

    def _abandon_locked(self, worker: _Worker) -> None:
        del self._in_flight[worker]
        worker.abandoned = True
        self._workers.remove(worker)
        self._stuck += 1
        if len(self._workers) >= self.count:
            return  # extras started meanwhile keep the pool at its size
        if self._stuck <= MAX_STUCK:
            self._spawn_later_locked("a replacement")
        else:
            log.warning(
                "%d query workers are stuck in statements past query_timeout; running with "
                "fewer workers until they return",
                self._stuck,
            )

    def _give_up(self, flight: _InFlight) -> None:
        """Report the stuck statement as timed out and re-run the job's others."""
        tracker, job = flight.tracker, flight.job
        with tracker.lock:
            pooled, index, begin, end = tracker.pooled, tracker.index, tracker.begin, tracker.end
            building, seq = tracker.building, tracker.seq
        _interrupt(pooled)
        key, stmt = job.items[index]
        if building:
            doing = "building its rows (row=): select fewer rows"
        elif pooled is None:
            doing = "opening the database file (other reads hold SQLite's locks): try again"
        else:
            doing = "in one long step (a function call on large values): narrow the query"
        error = QueryTimeout(
            job.decl.db_id,
            stmt.sql,
            f"still running {self.timeout}s (query_timeout) later, {doing}",
        )
        # What it reads, if SQLite prepared it: its query reacts to that alone (R51).
        read_set = prepared_read_set(pooled, stmt) if pooled is not None else None
        # The watermark its batch read at (0 before it read one): a state says which commit
        # its error comes from, as for a statement that fails or rows that fail to build (R42).
        _deliver(job, seq, [(key, StatementResult(error=error, read_set=read_set))])
        rest = job.items[begin:index] + job.items[index + 1 : end]  # others: handed on already
        if rest:
            self.submit(ReadJob(job.decl, rest, job.deliver, None, job.previous, job.ahead))

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers: queued jobs get :class:`ClosedError`, reads in flight are
        interrupted, and the threads that end so are waited for (at most ``CLOSE_WAIT``), so
        that once the runtime's ``close()`` returns none of its threads is left and the pool
        closes every connection. A worker stuck in one long function call is not waited for
        past that bound (R44): it finishes in the background and its connection is closed when
        it comes back. Called by a worker itself (a row type's ``__post_init__`` building its
        rows), that worker's read is given up at once like a stuck one: the watchdog watches
        the reads in flight until they end, and this one cannot end before close() returns."""
        here = threading.current_thread()
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            flights = list(self._in_flight.values())
            threads = [w.thread for w in self._workers if w.thread is not None]
            own = self._give_up_locked([w for w in self._in_flight if w.thread is here])
            self._wake.notify_all()
            self._watch_wake.notify_all()
        self._interrupt_flights(flights)
        for job in queued:
            _fail(job, ClosedError("the runtime is closed: open a new Runtime"))
        deadline = time.monotonic() + CLOSE_WAIT
        for thread in [*threads, self._watchdog]:
            if thread is not threading.current_thread() and thread.ident is not None:
                # SQLite forgets an interrupt that comes while none of the connection's
                # statements is active: a read whose statement started an instant after the
                # interrupt above (its worker had taken the job, not yet the connection) ran on
                # to its query_timeout past close(). It is interrupted again at each tick.
                while thread.is_alive() and (left := deadline - time.monotonic()) > 0:
                    thread.join(min(_WATCH_EVERY, left))
                    with self._lock:
                        flights = list(self._in_flight.values())
                    self._interrupt_flights(flights)
        # Reads still running (one long function call the interrupt cannot stop) are given up:
        # their callers are told the runtime closed now, not at their query_timeout (R44).
        with self._lock:
            stuck = self._give_up_locked(list(self._in_flight))
        for flight in [*own, *stuck]:
            keys = _kept([key for key, _ in flight.job.items], flight.tracker)
            error = _closed_during_read()
            _deliver(flight.job, 0, _failed(flight.job, keys, error))

    @staticmethod
    def _interrupt_flights(flights: list[_InFlight]) -> None:
        for flight in flights:
            with flight.tracker.lock:
                pooled = flight.tracker.pooled
            _interrupt(pooled)

    def _give_up_locked(self, workers: list[_Worker]) -> list[_InFlight]:
        """Abandon the reads of ``workers`` at close: returned, to be told the runtime closed;
        each worker ends without delivering when its read comes back (see ``_work``)."""
        flights = []
        for worker in workers:
            flights.append(self._in_flight.pop(worker))
            worker.abandoned = True
            self._stuck += 1
        return flights


def _read(tracker: Tracker, begin: int, end: int) -> tuple[int, list[StatementResult]] | None:
    """The watermark seq and the results of statements ``begin … end - 1`` of the batch
    ``tracker`` follows, read already (None when one is not; called with its lock held)."""
    read, first = tracker.read, tracker.first
    if read is None or first > begin:
        return None
    results = read[begin - first : end - first]
    return (tracker.seq, results) if len(results) == end - begin else None


def _kept(keys: list[Any], tracker: Tracker) -> list[Any]:
    """The keys of a job its worker still owns (not handed to another job by the watchdog)."""
    with tracker.lock:
        return keys[tracker.begin : tracker.end]


def _interrupt(pooled: PooledConnection | None) -> None:
    if pooled is None:
        return
    with contextlib.suppress(apsw.Error):  # already closed: nothing runs on it any more
        pooled.conn.interrupt()


def _deliver(job: ReadJob, seq: int, results: list[tuple[Any, StatementResult]]) -> None:
    try:
        job.deliver(seq, results)
    except Exception:
        log.exception("delivering the results of a read failed")


def _fail(job: ReadJob, error: SqliteCellsError) -> None:
    _deliver(job, 0, _failed(job, [key for key, _ in job.items], error))


def _failed(
    job: ReadJob, keys: list[Any], error: SqliteCellsError
) -> list[tuple[Any, StatementResult]]:
    """The results of ``keys`` of ``job``, whose read failed as a whole with ``error``."""
    statements = dict(job.items)
    return list(zip(keys, failed_together(error, [statements[key] for key in keys]), strict=True))

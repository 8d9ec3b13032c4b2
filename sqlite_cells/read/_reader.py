"""Guarded reads of a database: statements, their rows and read sets, and the watermark, in one
read transaction (R40–R44, R51).

A database reads as its declared schema even before it has a file (R41): a missing file is read
as the declared tables with no rows (in a scratch in-memory database, never creating the file).
Declared tables and columns that the file does not have yet (it was written under an older
declaration, R14) are shadowed by the connection's ``temp`` objects (see ``_shadows``); the read
set of a statement prepared against shadows is the one it has on the declared schema (taken by
preparing it in the scratch database), so that it names the declared columns it reads. An
undeclared table is a :class:`QueryError`, written or not.

Each statement is prepared under the connection's :class:`Gate` with the read policy of the
declaration's tables; the first time a statement is prepared on a file's schema the gate records
the (table, column) pairs SQLite reads — the query's *read set* (R51) — and it is kept with the
statement's key, so later runs take the statement from apsw's cache without re-preparing it.
The key holds the declared schema, the file's path and its schema cookie (read in each read
transaction): once the file's schema changes (a migration, perhaps by a newer declaration, adds
a column that ``SELECT *`` now reads) SQLite re-prepares a cached statement by itself, unseen by
the gate, so the statement is prepared afresh and its read set recorded again.
Rows come back as tuples with the column names once: dicts are built only by whoever needs them.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, overload

import apsw

from sqlite_cells.codec import DiskSourceError, QueryError, QueryTimeout, SqliteCellsError
from sqlite_cells.files import (
    changed_while_read,
    content_signature,
    damage_advice,
    hot_journal_advice,
    is_damage,
    is_hot_journal,
    note_damage,
    read_watermark,
    roll_back_interrupted,
    source_damage_advice,
    stands_instead,
    unread_wal,
    unread_wal_advice,
)
from sqlite_cells.read._pool import (
    DEFAULT_LENGTH_LIMIT,
    PROGRESS_STEPS,
    PROGRESS_STEPS_INLINE,
    PooledConnection,
    ReadPool,
)
from sqlite_cells.read._same import digest, same_values
from sqlite_cells.read._shadows import (
    copied_shadows,
    forget_complete,
    newer_version,
    sync_shadows,
)
from sqlite_cells.read._vtabs import connect_rtrees
from sqlite_cells.runtime import odd_kind, out_of_files, reading_sources
from sqlite_cells.schema import (
    Declaration,
    Schema,
    SchemaTextError,
    SourceKind,
    foreign_file,
    made_elsewhere,
    render_ddl,
)
from sqlite_cells.sql import (
    USER_PREPARE_FLAGS,
    Authorizer,
    Bound,
    Mode,
    ReadSet,
    check_read_values,
    fold_ascii,
    is_reserved_table,
    make_authorizer,
    scan_sql,
    sqlite_refusal,
)

__all__ = [
    "NEWER_DECLARATION_ADVICE",
    "SHORT_FUNCTIONS",
    "Kept",
    "ReadMap",
    "Rows",
    "Statement",
    "StatementResult",
    "Tracker",
    "failed_together",
    "failed_unexpectedly",
    "locked_past",
    "prepared_read_set",
    "read_batch",
    "read_rows",
    "short_steps",
    "stream_rows",
]

Rows = list[dict[str, Any]]
_GRACE = 0.25  # how long past its deadline a read on a helper thread is waited for
_WATCH_EVERY = 0.05
ReadMap = dict[str, frozenset[str]]  # table -> columns read ("" = the table without a column)


@dataclass(frozen=True, slots=True)
class Statement:
    """One read to run: already guarded (R20–R22) ``sql`` and its bound ``params``."""

    sql: str
    params: Bound
    # Given, the rows are handed to it in batches as they are read (names, row tuples) and the
    # result holds none (``stream_rows``).
    sink: Callable[[tuple[str, ...], list[tuple[Any, ...]]], None] | None = None


# A live query's rows of its last run and their digest (see ``_same.digest``).
Kept = tuple[list[Any], bytes | None]


@dataclass(slots=True)
class StatementResult:
    """The outcome of one statement: column names and row tuples, or an error; ``read_set`` is
    what it reads (None when unknown: it failed before SQLite prepared it)."""

    names: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    read_set: ReadMap | None = None
    error: SqliteCellsError | None = None
    dicts: Rows | None = None  # the rows as dicts, built once for all who share the result
    seconds: float = 0.0  # how long it ran (to decide where it runs next time)
    functions: frozenset[str] | None = None  # the SQL functions it calls, when just prepared
    # With an error because stored text is not UTF-8: the columns holding such text, and
    # ``rows`` hold it as bytes (a typed row reads it as no link where a link belongs, R43).
    invalid_text: frozenset[str] | None = None
    # The reader found the same values as ``previous`` held and kept that list as ``rows``.
    unchanged: bool = False
    # Read with ``previous`` given: the rows' digest, kept with them for the next comparison.
    digest: bytes | None = None

    def as_dicts(self) -> Rows:
        """The rows as ``{column: value}`` dicts (built on first use, then shared: callers
        must not modify them)."""
        if self.dicts is None:
            self.dicts = _dict_builder(self.names)(self.rows)
        return self.dicts


def failed_together(
    error: SqliteCellsError, statements: Sequence[Statement]
) -> list[StatementResult]:
    """One result per statement of a read that failed as a whole with ``error``, each naming
    its own statement (:meth:`QueryError.for_statement`)."""
    if not isinstance(error, QueryError):
        return [StatementResult(error=error) for _ in statements]
    return [StatementResult(error=error.for_statement(stmt.sql)) for stmt in statements]


def failed_unexpectedly(db_id: str, sql: str, exc: Exception) -> QueryError:
    """The error of a read that failed as no read should (a bug), or ran out of memory building
    its rows: a :class:`QueryError` caused by ``exc``, saying what to do about the latter."""
    if isinstance(exc, MemoryError):
        said = (
            "its rows do not fit in this process's memory (MemoryError): read fewer rows "
            "(LIMIT, a narrower WHERE) or fewer and smaller columns, e.g. length(x) instead of "
            "x, or substr(x, 1, n)"
        )
    else:
        said = f"{type(exc).__name__}: {exc}"
    error = QueryError(db_id, sql, said)
    error.__cause__ = exc
    return error


_BUILDERS: dict[tuple[str, ...], Callable[[list[tuple[Any, ...]]], Rows]] = {}
_BUILDERS_SIZE = 1024


def _dict_builder(names: tuple[str, ...]) -> Callable[[list[tuple[Any, ...]]], Rows]:
    """A function turning row tuples into ``{name: value}`` dicts, compiled once per column
    list: a dict display is about 4× faster than ``dict(zip(...))`` per row, and a live query
    re-run builds every row. Names enter the code only as ``repr`` literals."""
    found = _BUILDERS.get(names)
    if found is None:
        items = ", ".join(f"{name!r}: row[{i}]" for i, name in enumerate(names))
        found = eval(f"lambda rows: [{{{items}}} for row in rows]")  # names enter as literals only
        if len(_BUILDERS) >= _BUILDERS_SIZE:
            _BUILDERS.pop(next(iter(_BUILDERS)))
        _BUILDERS[names] = found
    return found


@dataclass(eq=False, slots=True)
class Tracker:
    """What a worker is doing now, for the watchdog (R44): the connection in use, the index of
    the statement running, and that statement's deadline (``time.monotonic()``). ``end`` is the
    index the batch stops before: the watchdog lowers it to hand the statements not begun yet
    to another worker while one runs long. ``lock`` pairs them: a statement begins only while
    its index is below ``end``. ``building`` once its statements are read and a statement's
    rows are being built (no connection), since ``built_since``; ``begin`` is the first index
    the batch still delivers (the watchdog raises it to hand the results read before a slow
    statement on, and with ``end`` to hand the others on while one statement's rows take long
    to build). ``read`` holds the results read so far, ``read[0]`` being statement ``first``'s,
    read at watermark ``seq``. ``until``: a deadline of the whole batch, which no statement's
    deadline passes (a batch run inline on the scheduler thread)."""

    pooled: PooledConnection | None = None
    index: int = 0
    deadline: float = float("inf")
    begin: int = 0
    end: int = sys.maxsize
    built_since: float = float("inf")
    until: float = float("inf")
    building: bool = False
    read: list[StatementResult] | None = None
    first: int = 0
    seq: int = 0
    reading: bool = False  # in the loop of the batch's statements: ``read`` may grow
    lock: threading.Lock = field(default_factory=threading.Lock)


def _interrupt(tracker: Tracker) -> None:
    with tracker.lock:
        pooled = tracker.pooled
    if pooled is not None:
        with contextlib.suppress(apsw.Error):
            pooled.conn.interrupt()


def read_rows(
    pool: ReadPool, decl: Declaration, sql: str, params: Bound, *, timeout: float
) -> tuple[Rows, int]:
    """Run the (already guarded) read ``sql`` and return its rows as dicts and the watermark seq
    read in the same transaction. Raises :class:`QueryError` / :class:`QueryTimeout`.

    For callers without query workers (the command line): the read runs on a helper thread so
    the caller keeps the deadline even through one long function call (R44) — past it (plus
    ``_GRACE``) the connection is interrupted and the helper left to finish on its own."""
    tracker = Tracker()
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(
                read_batch(pool, decl, [Statement(sql, params)], timeout=timeout, tracker=tracker)
            )
        except BaseException as exc:  # handed to the caller below
            box.append(exc)

    helper = _read_thread(run, decl.db_id, sql)
    try:
        while helper.is_alive():
            helper.join(_WATCH_EVERY)
            if helper.is_alive() and time.monotonic() > tracker.deadline + _GRACE:
                _interrupt(tracker)
                raise QueryTimeout(
                    decl.db_id,
                    sql,
                    f"still running {timeout}s ({pool.timeout_setting}) later: narrow the query",
                )
    except KeyboardInterrupt:
        # Ctrl-C: the read stops too, instead of running on behind a caller that has left
        # (and holding its connection, which closing the pool or the process would wait for).
        _interrupt(tracker)
        helper.join(_GRACE)
        raise
    found = box[0]
    if isinstance(found, BaseException):
        raise found
    seq, (result,) = found
    if result.error is not None:
        raise result.error
    return result.as_dicts(), seq


class _Stopped(Exception):
    """The receiver of a streamed read stopped taking its rows (see :func:`stream_rows`)."""


def stream_rows(
    pool: ReadPool, decl: Declaration, sql: str, params: Bound, *, timeout: float
) -> Generator[tuple[int, tuple[str, ...], Rows], None, None]:
    """:func:`read_rows` handing the rows on in batches as they are read, in the same one read
    transaction (one snapshot): yields ``(seq, names, rows)`` per batch of at most
    :data:`STREAM_BATCH` dicts, or once with no rows for a result without any, so that memory
    stays a few batches whatever the row count. An error of the read is raised where it is met,
    after the batches read before it.

    The time the read waits for the caller to take a batch (a slow reader of the output) does
    not count in ``timeout`` (R44 bounds the read's own work, as when it was read whole before
    anything was written). Leaving the iteration early (``close()``, an error of the caller)
    ends the read: its statement is reset and the transaction ended. Not for an injected file
    (R60), whose read may be made again when its program wrote it meanwhile."""
    tracker = Tracker()
    handed: queue.Queue[tuple[tuple[str, ...], Rows]] = queue.Queue(maxsize=1)
    stop = threading.Event()
    box: list[Any] = []
    waiting = [False]  # the read waits for the caller: its deadline stands still meanwhile

    def sink(names: tuple[str, ...], batch: list[tuple[Any, ...]]) -> None:
        rows = _dict_builder(names)(batch)
        with tracker.lock:
            waiting[0] = True
        began = time.monotonic()
        try:
            while True:
                if stop.is_set():
                    raise _Stopped
                try:
                    handed.put((names, rows), timeout=_WATCH_EVERY)
                    break
                except queue.Full:
                    continue
        finally:
            waited = time.monotonic() - began
            with tracker.lock:
                waiting[0] = False
                tracker.deadline += waited
                if tracker.pooled is not None:
                    tracker.pooled.deadline += waited

    def run() -> None:
        try:
            statement = Statement(sql, params, sink)
            box.append(read_batch(pool, decl, [statement], timeout=timeout, tracker=tracker))
        except BaseException as exc:  # handed to the caller below
            box.append(exc)

    helper = _read_thread(run, decl.db_id, sql)
    handed_on = False
    try:
        while True:
            try:
                names, rows = handed.get(timeout=_WATCH_EVERY)
            except queue.Empty:
                if not helper.is_alive():
                    if handed.empty():
                        break
                    continue
                with tracker.lock:
                    late = not waiting[0] and time.monotonic() > tracker.deadline + _GRACE
                if late:
                    _interrupt(tracker)
                    raise QueryTimeout(
                        decl.db_id,
                        sql,
                        f"still running {timeout}s ({pool.timeout_setting}) later: narrow the "
                        "query",
                    ) from None
                continue
            handed_on = True
            yield tracker.seq, names, rows
        found = box[0]
        if isinstance(found, BaseException):
            raise found
        seq, (result,) = found
        if result.error is not None:
            raise result.error
        if not handed_on:
            yield seq, result.names, []
    finally:
        # Done, or the caller left (Ctrl-C, a closed output): the read stops too.
        stop.set()
        if helper.is_alive():
            _interrupt(tracker)
            helper.join(_GRACE)


def read_batch(
    pool: ReadPool,
    decl: Declaration,
    statements: Sequence[Statement],
    *,
    timeout: float,
    tracker: Tracker | None = None,
    start: int = 0,
    previous: Sequence[Kept | None] | None = None,
) -> tuple[int, list[StatementResult]]:
    """Run ``statements[start:]`` in one read transaction of ``decl``'s file and return the
    watermark seq read in it and one result per statement run (each statement's errors are its
    own). Each statement gets ``timeout`` seconds, lock waits included (R44). Raises only what
    fails the whole read (the file is gone, unusable or not the one registered).

    ``previous`` (aligned with ``statements``) holds each statement's rows of its last run and
    their digest, if known: a result with the same rows (:func:`same_values`, or one digest)
    carries that list instead of the one just read, which is freed at once (cheaper for the
    allocator than thousands of row tuples kept until landing, and the receiver's comparison
    meets identical objects). Given ``previous``, each result carries its rows' digest."""
    tracker = tracker if tracker is not None else Tracker()
    decl.check_usable()
    with tracker.lock:
        if tracker.deadline == math.inf:
            # Opening the file counts too: SQLite's open can wait on a lock of its own that a
            # long call on another connection holds, and the watchdog gives up on a read stuck
            # there by this deadline as on one stuck in a statement (R44).
            tracker.deadline = min(time.monotonic() + timeout, tracker.until)
    source = decl.kind is SourceKind.DISK
    if source:
        if not decl.path.is_file():
            raise _source_gone(pool, decl, statements[start].sql)
        try:
            # A stat: cheap enough for every read of a source (R60).
            pool.pins.check(decl.db_id, decl.path)
        except DiskSourceError:
            pool.discard(decl.path)
            raise
        if unread_wal(decl.path):
            pool.discard(decl.path)  # a connection opened before would serve older rows
            raise QueryError(decl.db_id, statements[start].sql, unread_wal_advice(decl.path))

    def read_file() -> tuple[int, list[StatementResult]]:
        with pool.connection(decl.path) as pooled:
            setting = pool.timeout_setting
            return _read_file(pooled, decl, statements, setting, timeout, tracker, start, previous)

    try:
        try:
            if source:
                return _read_source(pool, decl, statements, timeout, tracker, start, previous)
            return read_file()
        except apsw.Error as exc:
            if not (is_hot_journal(exc) and decl.kind is SourceKind.CELL):
                raise
            # Another process was killed in its commit to the file in rollback mode (its first
            # one): the file is rolled back as any writer would (R71), then read once more.
            left = min(timeout, tracker.deadline - time.monotonic())
            roll_back_interrupted(decl.path, max(0.0, left))
            return read_file()
    except _ForeignFile:
        # Not the database's file: let it go, and forget that a file was seen there, so the
        # database reads as never written once that file is moved away (R41).
        pool.discard(decl.path)
        pool.disown(decl.path)
        raise QueryError(decl.db_id, statements[start].sql, foreign_file(decl.path)) from None
    except FileNotFoundError:
        if decl.schema is None:
            raise QueryError(decl.db_id, statements[start].sql, _not_there(decl.path)) from None
        kind = odd_kind(decl.path)
        if kind is not None:  # something stands there: no database never written (R41)
            raise QueryError(
                decl.db_id,
                statements[start].sql,
                f"{kind} stands where the database file {decl.path} belongs, so its rows are "
                "not served as empty: move it out of the store (a database never written has "
                "no file there)",
            ) from None
        if pool.knew(decl.path):  # it existed: not a database never written (R41)
            raise QueryError(
                decl.db_id,
                statements[start].sql,
                f"the file {decl.path} is gone: it was deleted or moved while this runtime used "
                "it; its rows are not served as empty. Run `sqlite-cells check` on the store; a "
                "new runtime rebuilds the file from its space's log",
            ) from None
        with _scratch(decl.schema) as pooled:
            _track(tracker, pooled, start, timeout)
            _note_cookie(decl.path, _NO_FILE)
            plan = _Plan(decl, pool.timeout_setting, timeout, pooled, _NO_FILE)
            return 0, _run_all(
                pooled, plan, statements, tracker, start, previous, transaction=False
            )
    except apsw.Error as exc:  # opening the file or its transaction failed
        raise _translate(
            decl, statements[start].sql, exc, pool.timeout_setting, timeout, None
        ) from exc


# Reads of a source through an ``immutable`` connection made again when the file was written
# while they ran (see _read_source), with the pause before each.
_TORN_PAUSES: Final = (0.0, 0.02, 0.05, 0.1)


def _read_source(
    pool: ReadPool,
    decl: Declaration,
    statements: Sequence[Statement],
    timeout: float,
    tracker: Tracker,
    start: int,
    previous: Sequence[Kept | None] | None,
) -> tuple[int, list[StatementResult]]:
    """:func:`_read_file` on the injected source ``decl`` (R60). A connection opened
    ``immutable`` (a WAL file without its program's ``-wal`` and ``-shm``) takes no lock: the
    program may write the file while the read runs, and its rows are then of no one commit
    (R40). Such a read is checked once done (``changed_while_read``) and made again, on a new
    connection, when the file may have changed meanwhile; a file written during every try is a
    :class:`QueryError` (nothing served), which a live query holds until its next run."""
    sql = statements[start].sql
    limit = time.monotonic() + timeout  # R44: the tries together, as one read
    until = tracker.until
    since: tuple[object, ...] | None = None  # the file when a try first met its program's change
    try:
        for attempt, pause in enumerate(_TORN_PAUSES, 1):
            last = attempt == len(_TORN_PAUSES)
            if pause:
                if time.monotonic() + pause >= min(limit, until):
                    raise QueryTimeout(
                        decl.db_id,
                        sql,
                        f"the injected file {decl.path} was written by another program while "
                        f"each read of it ran, for longer than {pool.timeout_setting} "
                        f"({timeout}s; it is "
                        "read without a lock while its program has it closed, R60): nothing was "
                        "served; read it again once that program is done",
                    )
                time.sleep(pause)
                tracker.until = min(until, limit)  # no statement of a try runs past it
                if not decl.path.is_file():  # deleted while the read before ran
                    raise _source_gone(pool, decl, sql)
            with pool.connection(decl.path, source=decl.db_id) as pooled:
                # Its program closes the file (checkpointing it, removing its -wal and -shm)
                # and opens it again (making new ones) as it likes: a read that met that can
                # find a -wal or -shm gone that SQLite may not create (R60), or pages read as
                # they were checkpointed. Such a read is made again (immutable if they are gone
                # then). The last try says what it met unless the file changed since the first
                # try met such an error: a file damaged for good is said so.
                try:
                    with reading_sources():
                        done = _read_file(
                            pooled,
                            decl,
                            statements,
                            pool.timeout_setting,
                            timeout,
                            tracker,
                            start,
                            previous,
                        )
                except (apsw.CantOpenError, apsw.CorruptError):
                    if not _beside_its_program(pooled):
                        raise
                    if last and not _still_changing(decl.path, since):
                        raise
                    since = since or content_signature(decl.path)
                    _not_again(pooled)
                    continue
                if (
                    _beside_its_program(pooled)
                    and _met_a_change(done[1])
                    and (not last or _still_changing(decl.path, since))
                ):
                    since = since or content_signature(decl.path)
                    _not_again(pooled)
                    continue
                frozen = pooled.frozen
                if frozen is None or not changed_while_read(decl.path, frozen):
                    return done
                _not_again(pooled)
    except DiskSourceError:
        if not decl.path.is_file():  # (gone between the look and the open)
            raise _source_gone(pool, decl, sql) from None
        raise
    finally:
        tracker.until = until
    raise QueryError(
        decl.db_id,
        sql,
        f"the injected file {decl.path} was written by another program while each of "
        f"{len(_TORN_PAUSES)} reads of it ran (it is read without a lock while its program has "
        "it closed, R60), so no read saw one commit of it whole; nothing was served: read it "
        "again once that program is done",
    )


def _not_again(pooled: PooledConnection) -> None:
    """Keep ``pooled`` from being used for another read (its pages may be of no one commit)."""
    if pooled.frozen is not None:
        pooled.frozen = ()  # (a signature no file has: the pool lets it go)


def _still_changing(path: Path, since: tuple[object, ...] | None) -> bool:
    """Whether the source at ``path`` was written (or closed or opened by its program) since its
    :func:`content_signature` was ``since`` (None: not taken, each try before found it
    written), or is gone."""
    now = content_signature(path)
    return now is None or since is None or now[:-1] != since[:-1]


def _beside_its_program(pooled: PooledConnection) -> bool:
    """Whether ``pooled`` reads a source in WAL mode, whose program may close and open it while
    the read runs: opened beside its ``-wal`` and ``-shm``, or ``immutable`` without them."""
    return pooled.live_wal or pooled.frozen is not None


def _met_a_change(results: Sequence[StatementResult]) -> bool:
    """Whether a statement of a read of a WAL source failed as its program's closing and
    opening make one fail: SQLite could not open a file it needed (the ``-wal`` or ``-shm``,
    gone), or found the pages it read inconsistent (read as they were checkpointed)."""
    return any(
        isinstance(result.error.__cause__, apsw.CantOpenError | apsw.CorruptError)
        for result in results
        if result.error is not None
    )


def _source_gone(pool: ReadPool, decl: Declaration, sql: str) -> QueryError:
    """R60: an injected file no longer at its path is a :class:`QueryError`; its pooled
    connections are let go (one open would still read the unlinked file)."""
    pool.discard(decl.path)
    return QueryError(decl.db_id, sql, _not_there(decl.path))


def _not_there(path: Path) -> str:
    """Why the injected file registered at ``path`` is not read: gone, or something that is
    no regular file (a directory, a named pipe, a device) stands at its path now."""
    instead = stands_instead(path)
    if instead is None:
        return (
            f"the injected file {path} is gone (deleted or moved after it was registered): put "
            "it back there, or register the file where it is now (register_disk_source, or "
            "`sqlite-cells link` again) and link the inputs that read it to it there"
        )
    return instead


class _ForeignFile(Exception):
    """The file at a database's path was made by another program (``made_elsewhere``)."""


def _read_file(
    pooled: PooledConnection,
    decl: Declaration,
    statements: Sequence[Statement],
    setting: str,
    timeout: float,
    tracker: Tracker,
    start: int,
    previous: Sequence[Kept | None] | None,
) -> tuple[int, list[StatementResult]]:
    conn = pooled.conn
    _track(tracker, pooled, start, timeout)
    own = conn.cursor()  # the runtime's statements, apart from the users' (plan.cursor)
    own.execute("BEGIN")
    try:
        cookie: object = _NO_FILE
        if decl.kind is SourceKind.DISK:  # its queries re-run whole: read sets are not used
            seq = 0
        else:
            # The schema cookie first: reading it starts the read transaction (its snapshot, or
            # in rollback mode its lock), which holds for the watermark and every statement
            # after. A watermark read first fails to prepare on a file its first write has not
            # reached yet, starting nothing: the statements then saw that write's rows, which
            # were served with seq 0 (R42).
            cookie = own.execute(_COOKIE_SQL).fetchall()[0][0]
            seq = read_watermark(own)
            if seq == 0 and made_elsewhere(own):
                raise _ForeignFile
            _note_cookie(decl.path, cookie)
        tracker.seq = seq
        plan = _Plan(decl, setting, timeout, pooled, cookie)
        try:
            plan.on_file(sync_shadows(pooled, decl, own, plan.policy))
        except SchemaTextError as exc:  # a read fails as a read (R41)
            raise QueryError(decl.db_id, statements[0].sql, str(exc)) from exc
        results = _run_all(pooled, plan, statements, tracker, start, previous, transaction=True)
    finally:
        pooled.deadline = float("inf")
        if not conn.getautocommit():
            own.execute("COMMIT")
    return seq, results


def _run_all(
    pooled: PooledConnection,
    plan: _Plan,
    statements: Sequence[Statement],
    tracker: Tracker,
    start: int,
    previous: Sequence[Kept | None] | None,
    *,
    transaction: bool,
) -> list[StatementResult]:
    """Run ``statements[start:]``, one result each; with ``transaction``, in the read
    transaction open on the connection (re-opened after an interrupt ends it)."""
    conn = pooled.conn
    results: list[StatementResult] = []
    append = results.append
    with tracker.lock:  # (results read before a slow statement may be handed on, see Tracker)
        tracker.read, tracker.first, tracker.reading = results, start, True
    timeout = plan.timeout
    now = time.monotonic()
    try:
        for index in range(start, len(statements)):
            with tracker.lock:
                if index >= tracker.end:
                    break  # the statements left were handed to another worker (see Tracker)
                tracker.index = index
                tracker.deadline = pooled.deadline = min(now + timeout, tracker.until)
            result = _run_one(pooled, plan, statements[index])
            if previous is not None and result.error is None:
                kept = result.digest = digest(result.rows)
                last = previous[index]
                if last is not None and (
                    kept == last[1] if kept is not None and last[1] is not None
                    else same_values(result.rows, last[0])
                ):  # fmt: skip
                    result.rows = last[0]  # the rows just read are freed here, memory warm
                    result.unchanged = True
            # One clock read per statement: the end of one is the start of the next.
            later = time.monotonic()
            result.seconds = later - now
            now = later
            append(result)
            if transaction and conn.getautocommit() and index + 1 < len(statements):
                conn.execute("BEGIN")  # an interrupt ended the transaction: open the next one
    finally:
        with tracker.lock:
            tracker.reading = False
    return results


def _track(tracker: Tracker, pooled: PooledConnection, index: int, timeout: float) -> None:
    deadline = min(time.monotonic() + timeout, tracker.until)
    with tracker.lock:
        tracker.pooled, tracker.index, tracker.deadline = pooled, index, deadline
    pooled.deadline = deadline
    pooled.check_every(PROGRESS_STEPS if tracker.until == math.inf else PROGRESS_STEPS_INLINE)
    pooled.timed_out_waiting = False


class _Plan:
    """What every statement of one batch shares: the declaration, the timeout, the read policy,
    the key its read sets are kept under and one cursor (worked out once per batch, not per
    statement)."""

    __slots__ = (
        "base_policy",
        "cursor",
        "decl",
        "file",
        "policy",
        "schema_key",
        "setting",
        "timeout",
    )

    def __init__(
        self,
        decl: Declaration,
        setting: str,
        timeout: float,
        pooled: PooledConnection,
        cookie: object,
    ) -> None:
        self.decl = decl
        self.setting = setting  # what the timeout is called where it was set (ReadPool)
        self.timeout = timeout
        key = _schema_key(decl)
        self.schema_key = _file_key(decl, key, cookie)
        self.policy = self.base_policy = _POLICY_BY_SCHEMA.get(key) or _read_policy(decl, key)
        self.cursor = pooled.conn.cursor()
        self.file = False  # reading the database's own file (not the scratch stand-in)

    @property
    def shadowed(self) -> bool:
        """Whether the file is read through shadows of what it lacks (R14, R41)."""
        return self.policy is not self.base_policy

    def on_file(self, shadow_policy: Authorizer | None) -> None:
        """The read runs on the file; ``shadow_policy`` is the policy of its shadows, if any."""
        self.file = True
        self.policy = self.base_policy if shadow_policy is None else shadow_policy


def _run_one(pooled: PooledConnection, plan: _Plan, stmt: Statement) -> StatementResult:
    """Run one statement of a batch (its tracker holds its index and deadline already)."""
    pooled.timed_out_waiting = False
    key = (plan.schema_key, stmt.sql)
    entry = _READ_SETS.get(key)
    known = entry[0] if entry is not None else None
    declared: ReadMap | None = None
    try:
        if known is None and plan.shadowed:
            declared = _declared_read_set(plan, stmt)
        try:
            result = _execute(pooled, plan.cursor, plan.policy, stmt, known)
        except apsw.SQLError as exc:
            result = _again(pooled, plan, stmt, known, exc)
            if known is None and plan.shadowed and declared is None:
                declared = _declared_read_set(plan, stmt)
        except apsw.AuthError as exc:
            result = _with_rtrees(pooled, plan, stmt, known, exc)
    except apsw.Error as exc:
        plan.cursor = pooled.conn.cursor()  # a fresh one after a failure, to be safe
        error = _behind_the_file(pooled, plan, stmt, exc)
        if error is None:
            error = _translate(plan.decl, stmt.sql, exc, plan.setting, plan.timeout, pooled)
        if error.__cause__ is None:
            error.__cause__ = exc
        return StatementResult(error=error, read_set=_read_set_of_failure(exc))
    except (UnicodeError, OverflowError, KeyError, TypeError) as exc:
        # Stored text that is not UTF-8, parameters SQLite cannot bind: the query fails (R43).
        # A statement stopped between two rows is reset: left open, it would keep the read
        # transaction at this snapshot, and later reads on the connection would not see commits.
        with contextlib.suppress(apsw.Error):
            plan.cursor.close(True)
        plan.cursor = pooled.conn.cursor()
        kept = (
            _with_invalid_text(pooled, plan, stmt) if isinstance(exc, UnicodeDecodeError) else None
        )
        if isinstance(exc, UnicodeDecodeError):
            columns = sorted(kept.invalid_text or ()) if kept is not None else []
            error = QueryError(
                plan.decl.db_id, stmt.sql, _invalid_text_advice(plan.decl.path, columns, exc)
            )
        else:
            error = _binding_error(plan.decl.db_id, stmt) or QueryError(
                plan.decl.db_id, stmt.sql, f"{type(exc).__name__}: {exc}"
            )
        error.__cause__ = exc
        if kept is None:
            return StatementResult(error=error)
        kept.error = error
        return kept
    if known is None and result.read_set is not None:
        if declared is not None:
            result.read_set = _with_undeclared(declared, result.read_set, plan.decl)
        if plan.file and plan.decl.schema is not None:
            undeclared = _undeclared_table_read(pooled, plan, stmt, result.read_set)
            if undeclared is not None:
                return StatementResult(error=undeclared)
        _remember_read_set(key, result.read_set, result.functions, pooled.conn)
    return result


def prepared_read_set(pooled: PooledConnection, stmt: Statement) -> ReadMap | None:
    """What ``stmt``, running on ``pooled`` (another thread's: a worker given up on as it runs
    one long step), reads, when SQLite prepared it in this read (its first: see ``_execute``);
    None when not known here. Never runs anything on the connection: a statement that joins
    by shared column names (``NATURAL``) gives None."""
    found = pooled.prepared
    if found is None or found[0] is not stmt:
        return None
    return _read_map(found[1], stmt.sql, None)


def _read_set_of_failure(exc: apsw.Error) -> ReadMap | None:
    """What a statement that failed with ``exc`` reads, when SQLite had prepared it (it failed
    as it ran: see ``_execute``); None when it failed before. Not kept with the statement (a
    run that succeeds looks at the tables it reads first, R41): given to its query only."""
    found = getattr(exc, "cf_read_set", None)
    return found if isinstance(found, dict) else None


def _computes_columns(conn: apsw.Connection, read_set: ReadMap) -> bool:
    """Whether the statement reads a VIRTUAL generated column, whose expression runs at each
    read: SQLite's authorizer reports the column but none of the functions it calls (a
    ``trim`` of two large values there is one long VM step, as in the statement's own text)."""
    for table, columns in read_set.items():
        computed = {fold_ascii(str(name)) for (name,) in conn.execute(_VIRTUAL_SQL, (table,))}
        if computed and not computed.isdisjoint(map(fold_ascii, columns)):
            return True
    return False


# hidden = 2: a VIRTUAL generated column (3 is STORED: computed when the row is written).
_VIRTUAL_SQL: Final = "SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 2"


def _binding_error(db_id: str, stmt: Statement) -> QueryError | None:
    """The parameter SQLite could not bind, said as a value given directly is at the call
    (``check_read_values``). ``db.read``/``db.query`` check every value before it gets here (a
    cell's when it is read, ``check_cell_value``); parameters given to a read by another way
    (``run_query`` of the command line) are said so too, not in apsw's words."""
    try:
        check_read_values(stmt.params, sql=stmt.sql, db_id=db_id)
    except QueryError as exc:
        return exc
    return None


def _undeclared_table_read(
    pooled: PooledConnection, plan: _Plan, stmt: Statement, read_set: ReadMap
) -> QueryError | None:
    """R41: a statement that reads a stored table the declaration does not have (a table a
    newer declaration added, or one this declaration dropped) is a :class:`QueryError`, as
    when it names one of its columns. The authorizer lets a read that names no column of its
    table (``count(*)``, ``SELECT 1 FROM u``, a join's other side) through by name, as the
    name may be a CTE's; SQLite's program for the statement (``EXPLAIN``, nothing run) says
    which tables of the file it opens. Looked at only when such a name is a stored table, once
    per statement and file schema (its read set is kept after)."""
    schema = plan.decl.schema
    assert schema is not None
    suspects = {
        table
        for table, columns in read_set.items()
        if "" in columns and table not in schema.table_names and not is_reserved_table(table)
    }
    if not suspects:
        return None
    conn = pooled.conn
    roots: dict[object, str] = {}
    for root, table in conn.execute(
        "SELECT rootpage, tbl_name FROM main.sqlite_schema WHERE type IN ('table', 'index') "
        "AND rootpage > 0"
    ).fetchall():
        folded = fold_ascii(str(table))
        if folded not in schema.table_names and not is_reserved_table(folded):
            roots[root] = str(table)
    if not {fold_ascii(t) for t in roots.values()} & suspects:
        return None  # a CTE's name, not a table of the file
    pooled.gate.enter(plan.policy)
    try:
        program = conn.cursor().execute(
            "EXPLAIN " + stmt.sql, stmt.params, can_cache=False,
            prepare_flags=USER_PREPARE_FLAGS,
        ).fetchall()  # fmt: skip
    finally:
        pooled.gate.leave()
    opened = sorted(
        {roots[row[3]] for row in program if row[1] in _OPENS and row[4] == 0 and row[3] in roots}
    )
    if not opened:
        return None
    advice = _newer_file(pooled, plan.decl) or (
        "queries may read only the database's declared tables; declare it, or leave it out of "
        "the query"
    )
    return QueryError(
        plan.decl.db_id,
        stmt.sql,
        f"the statement reads {', '.join(repr(t) for t in opened)}, a table the file holds but "
        f"the declaration does not have: {advice}",
    )


# The opcodes that open a table or index of a database for reading (EXPLAIN: p2 the root page,
# p3 the database's index, 0 for main).
_OPENS: Final = frozenset({"OpenRead", "OpenWrite", "ReopenIdx"})


def _invalid_text_advice(path: Path, columns: list[str], exc: UnicodeDecodeError) -> str:
    """What a read that met stored text that is not UTF-8 says (Errors): where, and what to do."""
    where = f"column(s) {', '.join(map(repr, columns))} of " if columns else ""
    bad = exc.object[exc.start : exc.start + 4]
    return (
        f"text in {where}the rows read from the file {path} is not valid UTF-8 ({exc.reason} at "
        f"byte {exc.start}: {bytes(bad)!r}), stored so or made so by the statement (a blob CAST "
        "AS TEXT), so it cannot be read as str: read those columns as CAST(column AS BLOB) to "
        "get their bytes, or rewrite the rows (or the expression) with valid text"
    )


def _with_invalid_text(
    pooled: PooledConnection, plan: _Plan, stmt: Statement
) -> StatementResult | None:
    """``stmt``'s rows with each text value that is not UTF-8 as its bytes (SQLite hands
    text to Python decoded, so it is read again with its text columns cast to BLOB), and the
    columns that hold such text; None when that cannot be done (columns of the same name, in
    any ASCII case; a statement that cannot be a subquery). The caller reports the error all
    the same: only a typed row that reads those columns as links takes the rows (R43)."""
    try:
        inner = _body_text(stmt.sql)
        gate = pooled.gate
        gate.enter(plan.policy, None, None)
        try:
            cursor = pooled.conn.cursor()
            cursor.execute(inner, stmt.params, prepare_flags=USER_PREPARE_FLAGS)
            names = _names(cursor.get_description())
            cursor.close()
        finally:
            gate.leave()
        if len({fold_ascii(name) for name in names}) != len(names):
            # The subquery's columns are named as they were, and SQLite takes names that
            # differ only in ASCII case as one: it would read the first for both.
            return None
        quoted = ['"' + name.replace('"', '""') + '"' for name in names]
        # Two columns for each: its text as BLOB, and any other value as it is.
        columns = ", ".join(
            f"CASE WHEN typeof({q}) = 'text' THEN CAST({q} AS BLOB) END, "
            f"CASE WHEN typeof({q}) = 'text' THEN NULL ELSE {q} END"
            for q in quoted
        )
        invalid: set[str] = set()
        rows: list[tuple[Any, ...]] = []

        def scan(_names: tuple[str, ...], batch: list[tuple[Any, ...]]) -> None:
            _as_bytes(batch, names, invalid, None)

        # A streamed read keeps no rows: only which columns hold such text is looked for.
        sink = scan if stmt.sink is not None else None
        wrapped = Statement(f"SELECT {columns} FROM ({inner}\n)", stmt.params, sink)
        plan.cursor = pooled.conn.cursor()
        result = _execute(pooled, plan.cursor, plan.policy, wrapped, None)
    except (apsw.Error, UnicodeError, OverflowError, KeyError, TypeError):
        with contextlib.suppress(apsw.Error):
            plan.cursor.close(True)  # (see _run_one)
        plan.cursor = pooled.conn.cursor()
        return None
    _as_bytes(result.rows, names, invalid, rows)
    return StatementResult(names, rows, result.read_set, invalid_text=frozenset(invalid))


def _as_bytes(
    read: list[tuple[Any, ...]],
    names: tuple[str, ...],
    invalid: set[str],
    rows: list[tuple[Any, ...]] | None,
) -> None:
    """Rows read by :func:`_with_invalid_text`'s statement (two columns per column) as rows
    with each text that is not UTF-8 as its bytes, added to ``rows`` (when given), and its
    column's name to ``invalid``."""
    for pairs in read:
        values: list[Any] = []
        for i, name in enumerate(names):
            text, other = pairs[2 * i], pairs[2 * i + 1]
            if text is None:
                values.append(other)
                continue
            try:
                values.append(bytes(text).decode("utf-8"))
            except UnicodeDecodeError:
                invalid.add(name)
                values.append(bytes(text))
        if rows is not None:
            rows.append(tuple(values))


def _body_text(sql: str) -> str:
    """``sql`` without the ``;`` that ends it and what follows (comments, whitespace), for use
    as a subquery: the guard lets a statement end with ``;`` and comments (R21), which inside
    parentheses would be a syntax error or hide the closing one."""
    scanned = scan_sql(sql)
    return sql[: scanned.tokens[scanned.body - 1][3]] if scanned.body > 0 else sql


def _again(
    pooled: PooledConnection,
    plan: _Plan,
    stmt: Statement,
    known: ReadMap | None,
    exc: apsw.SQLError,
) -> StatementResult:
    """Run ``stmt`` again after ``exc``, when shadows can help (R14, R41); else raise ``exc``."""
    if plan.shadowed and _names_rowid(exc):
        # A view has no rowid: run the statement on copies of the stored rows instead.
        plan.cursor = pooled.conn.cursor()
        try:
            with copied_shadows(pooled):
                return _execute(pooled, plan.cursor, plan.policy, stmt, known)
        except apsw.InterruptError as interrupted:
            interrupted.read_a_copy = True  # type: ignore[attr-defined]  # (see _translate)
            raise
    if not (plan.file and _lacks_something(exc)) or plan.decl.schema is None:
        raise exc
    # A file found complete for this schema lost a table or column since (a migrate of
    # another declaration): look again, and shadow what it lacks now.
    forget_complete(pooled, plan.decl)
    plan.on_file(sync_shadows(pooled, plan.decl, pooled.conn.cursor(), plan.base_policy))
    if not plan.shadowed:
        raise exc
    plan.cursor = pooled.conn.cursor()
    return _execute(pooled, plan.cursor, plan.policy, stmt, known)


def _with_rtrees(
    pooled: PooledConnection,
    plan: _Plan,
    stmt: Statement,
    known: ReadMap | None,
    exc: apsw.AuthError,
) -> StatementResult:
    """Run ``stmt`` again after the authorizer refused it, when it was a read of an injected
    file whose R*Tree tables were not connected yet (their module prepares its writes when it
    connects, see ``_vtabs``); else raise ``exc``."""
    if plan.decl.kind is not SourceKind.DISK or not connect_rtrees(pooled.conn):
        raise exc
    plan.cursor = pooled.conn.cursor()
    return _execute(pooled, plan.cursor, plan.policy, stmt, known)


def _behind_the_file(
    pooled: PooledConnection, plan: _Plan, stmt: Statement, exc: apsw.Error
) -> QueryError | None:
    """The error of a statement naming a table or column the file lacks, or a table the file
    holds that this declaration does not (the authorizer refuses it), because a newer
    declaration migrated it past this one (R14, R41: no shadow stands in for it then); None for
    any other failure."""
    if not plan.file:
        return None
    undeclared = None
    if isinstance(exc, apsw.SQLError) and _no_such_undeclared_table(plan.decl, exc):
        undeclared = "queries may read only the database's declared tables, and the declaration "
        undeclared += "has no such table"
    elif isinstance(exc, apsw.SQLError) and _no_such_undeclared_column(plan.decl, exc):
        undeclared = "neither the file nor the declaration has that column"
    if undeclared is not None:
        # Neither this declaration nor, as far as the file shows, the newer one has it: not
        # declared (R41), whatever the versions; the newer file is context, not the cause.
        stored = _stored_newer(pooled, plan.decl)
        if stored is None:
            return None
        hint = (
            f": {undeclared} (for context: the file is at version {stored}, newer than the "
            f"declared version={plan.decl.version})"
        )
        return QueryError(plan.decl.db_id, stmt.sql, sqlite_refusal(exc, hint, sql=stmt.sql))
    if isinstance(exc, apsw.SQLError) and _lacks_something(exc):
        said = f"SQLError: {exc}"
    elif isinstance(exc, apsw.AuthError) and _undeclared_table(plan.decl, exc):
        said = f"not authorized ({exc})"
    else:
        return None
    newer = _newer_file(pooled, plan.decl)
    if newer is None:
        return None
    error = QueryError(plan.decl.db_id, stmt.sql, f"{said}: {newer}")
    error.__cause__ = exc
    return error


def _stored_newer(pooled: PooledConnection, decl: Declaration) -> int | None:
    """The version of the file open on ``pooled`` when it is newer than ``decl``'s (R14);
    None when it is not, or cannot be read."""
    try:
        return newer_version(pooled.conn.cursor(), decl)
    except apsw.Error:
        return None


# What a program is told to do about a file a newer declaration migrated; the command line,
# which reads with the declaration its space recorded last, says instead what to do from there.
NEWER_DECLARATION_ADVICE: Final = "update the declaration (tables and version) to the newer one"


def _newer_file(pooled: PooledConnection, decl: Declaration) -> str | None:
    """What to say of a read that meets another declaration's tables, when the file open on
    ``pooled`` is at a version newer than ``decl``'s (R14); None when it is not."""
    stored = _stored_newer(pooled, decl)
    if stored is None:
        return None
    return (
        f"the file is at version {stored}, newer than the declared version={decl.version}: a "
        f"newer declaration migrated it, and this one no longer matches its tables; "
        f"{NEWER_DECLARATION_ADVICE}"
    )


# SQLite's words when the authorizer refuses a column read: "access to [db.]table.column is
# prohibited" (the column is empty for a table read with none of its columns).
_DENIED = re.compile(r"access to (?:main\.)?(.+)\.[^.]*? is prohibited")


def _undeclared_table(decl: Declaration, exc: apsw.AuthError) -> bool:
    """Whether ``exc`` refused a read of a table ``decl`` does not declare, and that is none
    of SQLite's or the runtime's own (another declaration's table, in the file)."""
    found = _DENIED.search(str(exc))
    if found is None or decl.table_names is None:
        return False
    table = fold_ascii(found.group(1))
    return table not in decl.table_names and not is_reserved_table(table)


_ROWID = re.compile(r"no such column: (?:.*\.)?(?:rowid|oid|_rowid_)$", re.IGNORECASE)


def _names_rowid(exc: apsw.SQLError) -> bool:
    return _ROWID.search(str(exc)) is not None


# SQLite's words for a table name that is nowhere: "no such table: [schema.]table".
_NO_SUCH_TABLE = re.compile(r"^no such table: (?:main\.)?(.+)$")


def _no_such_undeclared_table(decl: Declaration, exc: apsw.SQLError) -> bool:
    """Whether ``exc`` says the file has no table of a name ``decl`` does not declare either:
    the file holds the tables of the declaration that made its version, so none declares it
    that the file shows (a table of a newer one that no write made yet cannot be told)."""
    found = _NO_SUCH_TABLE.search(str(exc))
    if found is None or decl.table_names is None:
        return False
    table = fold_ascii(found.group(1))
    return table not in decl.table_names and not is_reserved_table(table)


# SQLite's words for a column name that is nowhere: "no such column: [table.]column".
_NO_SUCH_COLUMN = re.compile(r"^no such column: (.+)$")


def _no_such_undeclared_column(decl: Declaration, exc: apsw.SQLError) -> bool:
    """Whether ``exc`` says the statement names a column the file lacks that no table of
    ``decl`` declares either: the statement's mistake, not a declaration behind a newer file
    (a column this declaration has that a newer one's ``migrate`` renamed or dropped is the
    file's being newer)."""
    found = _NO_SUCH_COLUMN.search(str(exc))
    schema = decl.schema
    if found is None or schema is None:
        return False
    column = found.group(1).rsplit(".", 1)[-1]
    return all(table.column(column) is None for _, table in schema.tables)


def _lacks_something(exc: apsw.SQLError) -> bool:
    text = str(exc)
    return "no such table" in text or "no such column" in text


def _declared_read_set(plan: _Plan, stmt: Statement) -> ReadMap | None:
    """The read set of ``stmt`` on the declared schema (R51), for a file read through shadows:
    SQLite prepares it (``EXPLAIN`` runs nothing) in the scratch database of the declared
    tables, so the set names the declared columns the query reads, those the file lacks
    included. None when it cannot be prepared there. The stored columns the declaration does
    not name that the read reaches on the file are added to it (:func:`_with_undeclared`):
    there a ``*`` also reaches another program's columns, and a name may resolve to another
    table's column. (A shadow view's reads name every stored column it selects: the columns
    the declaration names are taken from the declared read set alone.)"""
    schema = plan.decl.schema
    if schema is None:
        return None
    record: ReadSet = set()
    functions: set[str] = set()
    with _scratch(schema) as scratch:
        scratch.gate.enter(plan.base_policy, record, functions)
        try:
            scratch.conn.cursor().execute(
                "EXPLAIN " + stmt.sql, stmt.params, can_cache=False,
                prepare_flags=USER_PREPARE_FLAGS,
            ).fetchall()  # fmt: skip
        except apsw.Error:
            return None
        finally:
            scratch.gate.leave()
        return _read_map(record, stmt.sql, scratch.conn)


def _with_undeclared(declared: ReadMap, found: ReadMap, decl: Declaration) -> ReadMap:
    """``declared`` (the read set on the declared tables) and, of what the read recorded on the
    file (``found``), the stored columns the declaration does not name: another program's
    column that a ``*`` reaches there, or a name that resolves to another table's column in
    the file than in the declaration."""
    schema = decl.schema
    assert schema is not None  # (shadows are made for declared tables only)
    joined = dict(declared)
    for table, columns in found.items():
        if is_reserved_table(table):
            continue  # (a shadow's own default row: never written)
        stored = schema.table(table)
        named = {fold_ascii(c) for c in stored.column_names} if stored is not None else set()
        extra = frozenset(c for c in columns if c and c not in named)
        if extra:
            joined[table] = joined.get(table, frozenset()) | extra
    return joined


def _execute(
    pooled: PooledConnection,
    cursor: apsw.Cursor,
    policy: Authorizer,
    stmt: Statement,
    known: ReadMap | None,
) -> StatementResult:
    """Prepare (under the gate) and run one statement. With no known read set the statement is
    prepared afresh (not from apsw's cache), so the gate sees every read and records it."""
    record: ReadSet | None = None
    functions: set[str] | None = None
    if known is None:
        record, functions = set(), set()
        seen = record

        def started(_cursor: apsw.Cursor, _sql: str, _bindings: object) -> bool:
            # apsw calls this once SQLite has prepared and bound the statement: what it reads
            # is known from here on, should it fail or be given up as it runs.
            pooled.prepared = (stmt, frozenset(seen))
            return True

        cursor.exec_trace = started
    gate = pooled.gate
    gate.enter(policy, record, functions)
    try:
        cursor.execute(
            stmt.sql, stmt.params, can_cache=record is None, prepare_flags=USER_PREPARE_FLAGS
        )
        try:
            description = cursor.get_description()
        except apsw.ExecutionCompleteError:
            names: tuple[str, ...] = ()
            rows: list[tuple[Any, ...]] = []
        else:
            names = _NAMES.get(description) or _names(description)
            rows = cursor.fetchall() if stmt.sink is None else _streamed(cursor, names, stmt.sink)
    except apsw.Error as exc:
        if record is not None and pooled.prepared is not None:
            # It failed as it ran (a function's error, its deadline), after SQLite prepared
            # it: what it reads is known all the same, and its query reacts to that alone
            # (R51), not to every write of the database (see _read_set_of_failure).
            with contextlib.suppress(apsw.Error):
                exc.cf_read_set = _read_map(record, stmt.sql, pooled.conn)  # type: ignore[attr-defined]
        raise
    finally:
        gate.leave()
        if record is not None:
            cursor.exec_trace = None
            pooled.prepared = None
    if record is None:
        return StatementResult(names, rows, known)
    result = StatementResult(names, rows, _read_map(record, stmt.sql, pooled.conn))
    result.functions = frozenset(functions or ())
    return result


# Rows per batch of a streamed read: the memory it holds is a few batches, whatever the count.
STREAM_BATCH: Final = 1000


def _streamed(
    cursor: apsw.Cursor,
    names: tuple[str, ...],
    sink: Callable[[tuple[str, ...], list[tuple[Any, ...]]], None],
) -> list[tuple[Any, ...]]:
    """Hand ``cursor``'s rows to ``sink`` in batches of :data:`STREAM_BATCH`; none kept. A
    statement that fails as it runs hands on the rows read before it failed, then raises."""
    rows = iter(cursor)
    while True:
        batch: list[tuple[Any, ...]] = []
        failed: BaseException | None = None
        try:
            for row in rows:
                batch.append(row)
                if len(batch) >= STREAM_BATCH:
                    break
        except Exception as exc:  # (an error of the statement, or text that is not UTF-8)
            failed = exc
        if batch:
            try:
                sink(names, batch)
            except BaseException:
                # The receiver gave up: the statement is reset, not left holding the snapshot.
                with contextlib.suppress(apsw.Error):
                    cursor.close(True)
                raise
        if failed is not None:
            raise failed
        if len(batch) < STREAM_BATCH:
            return []


_NAMES: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}
_NAMES_SIZE = 4096


def _names(description: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The column names of a description, one shared tuple per description (fewer objects
    made and freed per re-run)."""
    names = tuple([column[0] for column in description])
    with _read_sets_lock:  # workers add concurrently; evicting iterates
        if len(_NAMES) >= _NAMES_SIZE:
            _NAMES.pop(next(iter(_NAMES)), None)
        _NAMES[description] = names
    return names


@overload
def _read_map(record: AbstractSet[tuple[str, str]], sql: str, conn: apsw.Connection) -> ReadMap: ...
@overload
def _read_map(record: AbstractSet[tuple[str, str]], sql: str, conn: None) -> ReadMap | None: ...
def _read_map(
    record: AbstractSet[tuple[str, str]], sql: str, conn: apsw.Connection | None
) -> ReadMap | None:
    """The read set SQLite reported for ``sql`` by table, with the key columns of a join by
    column name, which it does not report (``Statement.joins_by_name``); ``conn`` (outside a
    user statement) tells which columns the tables of a ``NATURAL`` join share (without it,
    such a join's read set is not known: None)."""
    tables: dict[str, set[str]] = {}
    for table, column in record:
        tables.setdefault(table, set()).add(column)
    # The scan is cached, but not for a long text: a search of the text first.
    joins = _MAY_JOIN_BY_NAME.search(sql) and scan_sql(sql).joins_by_name()
    if joins:
        keys = set(joins.using)
        if joins.natural:
            if conn is None:
                return None
            seen: set[str] = set()
            for table in joins.tables:
                columns = {
                    fold_ascii(name)
                    for (name,) in conn.execute(
                        "SELECT name FROM main.pragma_table_xinfo(?)", (table,)
                    )
                }
                keys |= columns if table in joins.repeated else seen & columns
                seen |= columns
        for table in joins.tables:
            tables.setdefault(table, set()).update(keys)
    return {table: frozenset(columns) for table, columns in tables.items()}


_MAY_JOIN_BY_NAME: Final = re.compile("using|natural", re.IGNORECASE)


def locked_past(setting: str, timeout: float) -> str:
    """What a read that waited for a lock on its file until its deadline says (R44)."""
    return (
        f"the file stayed locked by another connection past {setting} ({timeout}s): "
        "try again when its writer is done"
    )


def _translate(
    decl: Declaration,
    sql: str,
    exc: apsw.Error,
    setting: str,
    timeout: float,
    pooled: PooledConnection | None,
) -> QueryError:
    """One apsw error of a read as the error a user sees (R44: interrupts and lock waits past
    the deadline are :class:`QueryTimeout`, naming the deadline as ``setting``)."""
    if isinstance(exc, apsw.InterruptError):
        advice = "narrow the query"
        if getattr(exc, "read_a_copy", False):
            advice = (
                "it names the rowid of a table declared with columns the file does not hold "
                "yet, so it read a copy of the whole table; the next write to the database adds "
                "them (write to it once), or leave rowid out of the statement"
            )
        error: QueryError = QueryTimeout(
            decl.db_id, sql, f"interrupted after {timeout}s ({setting}): {advice}"
        )
    elif isinstance(exc, apsw.BusyError) and (pooled is None or pooled.timed_out_waiting):
        error = QueryTimeout(decl.db_id, sql, locked_past(setting, timeout))
    elif advice := out_of_files(exc):
        error = QueryError(decl.db_id, sql, f"{decl.path} cannot be opened ({exc}): {advice}")
    elif isinstance(exc, apsw.AuthError) and decl.kind is SourceKind.DISK:  # own schema (R60)
        error = QueryError(
            decl.db_id,
            sql,
            f"not authorized ({exc}): queries of the source file {decl.path} may read its own "
            "tables and views, not SQLite's (sqlite_…, dbstat, pragma_…) or the runtime's (_cf_…), "
            "not even through one of its views; leave those out of the query",
        )
    elif isinstance(exc, apsw.AuthError):
        error = QueryError(
            decl.db_id,
            sql,
            f"not authorized ({exc}): queries may read only the database's declared tables",
        )
    elif is_damage(exc) and decl.kind is SourceKind.CELL:
        note_damage(decl.path)  # checked again before its next use (R71)
        error = QueryError(decl.db_id, sql, damage_advice(decl.path, exc))
    elif is_damage(exc):  # an injected source (R60): named, never written
        error = QueryError(decl.db_id, sql, source_damage_advice(decl.path, exc))
    elif is_hot_journal(exc) and decl.kind is SourceKind.DISK:  # left to its own program (R60)
        error = QueryError(decl.db_id, sql, hot_journal_advice(decl.path))
    elif is_hot_journal(exc):  # what read_batch could not roll back
        error = QueryError(
            decl.db_id,
            sql,
            f"a commit to {decl.path} was interrupted (its writer was killed) and SQLite must "
            "roll it back before the file can be read, which this process may not do (the "
            "file or its directory is not writable here): open the store once as a user who "
            "may write it, then read again",
        )
    elif isinstance(exc, apsw.CantOpenError | apsw.PermissionsError) and (
        decl.kind is SourceKind.DISK
    ):  # its file's permissions are its program's (R60)
        error = QueryError(
            decl.db_id,
            sql,
            f"the source file {decl.path} cannot be opened ({exc}): let this user read it and "
            "its folder (and its -wal and -shm, if it is in WAL mode), then read again",
        )
    elif isinstance(exc, apsw.SQLError):
        hint = ""
        if "no such table" in str(exc) and decl.kind is SourceKind.DISK:  # its own schema (R60)
            hint = f": the source file {decl.path} holds no such table (it is read as it is)"
        elif "no such table" in str(exc):
            hint = ": queries may read only the database's declared tables"
        elif str(exc).startswith("no such module") and decl.kind is SourceKind.DISK:
            hint = (
                f": the source file {decl.path} holds a virtual table of a module (an extension "
                "of the program that made it) that SQLite does not have here, so that table "
                "cannot be read; its other tables can"
            )
        elif decl.kind is SourceKind.DISK and (unknown := _schema_name(str(exc), sql)):
            hint = (
                f": the source file {decl.path} uses {unknown} in its own schema (a column's "
                "collation, a view, an index or a generated column), which the program that made "
                "it defines and SQLite does not have here, so what uses it cannot be read; leave "
                "those columns and views out of the query"
            )
        elif (index := _declared_index(decl, str(exc))) is not None:
            hint = (
                f": index {index} is declared, but until the database's next write brings the "
                "file to its declaration (R13, R14) a read cannot force it (the file lacks it, "
                "or reads its table through a stand-in for columns declared since); leave "
                "INDEXED BY out until then"
            )
        error = QueryError(decl.db_id, sql, sqlite_refusal(exc, hint, sql=sql))
    else:
        error = QueryError(decl.db_id, sql, sqlite_refusal(exc))
    error.__cause__ = exc
    return error


# SQLite's words for a collation or function it does not have, and what the name is of.
_UNKNOWN_NAMES: Final = (
    ("no such collation sequence: ", "collation"),
    ("no such function: ", "function"),
    ("unknown function: ", "function"),
)


def _schema_name(message: str, sql: str) -> str | None:
    """The collation or function SQLite's ``message`` says it does not have, as in "collation
    'x'", when the statement ``sql`` does not name it: then only the file's own schema does (an
    injected file's program may define its own, R60); None otherwise."""
    for prefix, what in _UNKNOWN_NAMES:
        if message.startswith(prefix):
            name = message[len(prefix) :].removesuffix("()")
            named = re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", sql, re.IGNORECASE)
            return None if named or not name else f"{what} {name!r}"
    return None


def _declared_index(decl: Declaration, message: str) -> str | None:
    """The declared index SQLite's ``no such index: name`` names, if it is one."""
    prefix = "no such index: "
    if decl.schema is None or not message.startswith(prefix):
        return None
    name = fold_ascii(message[len(prefix) :])
    for _table_name, table in decl.schema.tables:
        for index, _columns in table.indexes:
            if fold_ascii(index) == name:
                return index
    return None


# Read sets by ((schema key, file path, file schema cookie), sql): what SQLite reads depends on
# the file's schema and the text only; with each, whether its steps stay short (see short_steps).
_ReadKey = tuple[tuple[str, str, object], str]
_read_sets_lock = threading.Lock()  # guards writes to _READ_SETS (reads are single lookups)
_READ_SETS: dict[_ReadKey, tuple[ReadMap, bool]] = {}
_COOKIE_SQL = "PRAGMA main.schema_version"
_NO_FILE = -1  # the cookie of a database read before it has a file (its declared tables)
# The schema cookie each database file had at its last read (plain stores and lookups); at
# most _COOKIES_SIZE files, the oldest noted out first (a file not noted reads as _NO_FILE: its
# read sets are worked out again). Unbounded, it kept an entry per file read by any runtime of
# the process, closed ones included (≈ 2.5 MB per 1,000 ephemeral runtimes).
_COOKIES: dict[Path, object] = {}
_COOKIES_SIZE = 4096


def _note_cookie(path: Path, cookie: object) -> None:
    with _read_sets_lock:  # workers note concurrently; evicting iterates
        if path not in _COOKIES and len(_COOKIES) >= _COOKIES_SIZE:
            _COOKIES.pop(next(iter(_COOKIES)), None)
        _COOKIES[path] = cookie


_READ_SETS_SIZE = 8192
# SQL functions whose one call costs about the same whatever the size of its arguments (or one
# pass over a value at most, as min and max compare). Every other function (instr, replace,
# like, printf, json_*, ...) can spend seconds in one VM step on a large value, where the
# progress handler never fires.
SHORT_FUNCTIONS: Final = frozenset(
    {
        "abs", "avg", "changes", "coalesce", "count", "if", "ifnull", "iif", "last_insert_rowid",
        "likelihood", "likely", "max", "min", "nullif", "random", "round", "sign", "sum",
        "total", "total_changes", "typeof", "unlikely",
    }
)  # fmt: skip


# Operators whose one step copies a whole value (``||`` concatenates, ``->`` and ``->>`` parse
# JSON): on a large value a row of them runs long between two progress checks, and no
# interrupt lands inside a row of plain steps. Looked for in the text (in a string literal too:
# then the statement is only not taken for short).
_LONG_OPERATORS: Final = ("||", "->")


def _schema_key(decl: Declaration) -> str:
    return decl.schema.fingerprint if decl.schema is not None else f"disk:{decl.path}"


def _remember_read_set(
    key: _ReadKey, read_set: ReadMap, functions: frozenset[str] | None, conn: apsw.Connection
) -> None:
    """Keep the read set of a statement just prepared on ``conn``, and whether its VM steps are
    short (see :func:`short_steps`)."""
    short = (
        functions is not None
        and functions <= SHORT_FUNCTIONS
        and not any(operator in key[1] for operator in _LONG_OPERATORS)
        and not _computes_columns(conn, read_set)  # (functions it calls are not reported)
    )
    with _read_sets_lock:
        if len(_READ_SETS) >= _READ_SETS_SIZE:
            _READ_SETS.pop(next(iter(_READ_SETS)))
        _READ_SETS[key] = (read_set, short)


def _read_key(decl: Declaration, sql: str) -> _ReadKey:
    """The key of ``sql``'s read set on ``decl``'s file as the last read of it found the file."""
    return (_file_key(decl, _schema_key(decl), _COOKIES.get(decl.path, _NO_FILE)), sql)


def _file_key(decl: Declaration, schema_key: str, cookie: object) -> tuple[str, str, object]:
    """What a read set is kept under besides its statement: the schema, the file (its path as
    text, whose hash a str keeps: a ``Path`` hashes in Python, at every look-up of every
    statement of a batch) and the file's schema cookie."""
    return (schema_key, str(decl.path), cookie)


def known_read_set(decl: Declaration, sql: str) -> ReadMap | None:
    """The read set recorded for ``sql`` on ``decl``'s schema and file, if it was prepared on
    the file as the last read found it."""
    entry = _READ_SETS.get(_read_key(decl, sql))
    return entry[0] if entry is not None else None


def short_steps(decl: Declaration, sqls: Iterable[str]) -> bool:
    """Whether each of ``sqls`` was prepared on ``decl``'s schema already and calls no SQL
    function outside :data:`SHORT_FUNCTIONS`: then each of its VM steps stays short (the
    progress handler, which runs between steps, keeps its deadline), whatever the data."""
    file_key = _file_key(decl, _schema_key(decl), _COOKIES.get(decl.path, _NO_FILE))
    get = _READ_SETS.get
    for sql in sqls:
        entry = get((file_key, sql))
        if entry is None or not entry[1]:
            return False
    return True


_READ_POLICIES: dict[frozenset[str] | None, Authorizer] = {}
_POLICY_BY_SCHEMA: dict[str, Authorizer] = {}  # the same objects, by schema key (cheap to get)


def _read_policy(decl: Declaration, schema_key: str) -> Authorizer:
    """The read policy for the declaration's tables: one object per table set, so the gate
    keeps its prepared statements (see ``Gate``)."""
    tables = decl.table_names
    found = _READ_POLICIES.get(tables)
    if found is None:
        found = make_authorizer(Mode.READ, database="main", tables=tables)
        if len(_READ_POLICIES) < 1024:
            _READ_POLICIES[tables] = found
    if len(_POLICY_BY_SCHEMA) < 4096:
        _POLICY_BY_SCHEMA[schema_key] = found
    return found


_scratch_lock = threading.Lock()  # guards _scratch_conns
_scratch_conns: dict[str, tuple[threading.Lock, PooledConnection]] = {}
_SCRATCH_LIMIT = 64


@contextmanager
def _scratch(schema: Schema) -> Iterator[PooledConnection]:
    """An in-memory database with the declared tables and no rows, one kept per schema; set up
    like a pooled connection (gate, deadline, length limit), since a query on no rows can still
    run away. While the kept one is busy (perhaps with a read abandoned by the watchdog) a
    throwaway one serves, so no read ever waits for another."""
    with _scratch_lock:
        held = _scratch_conns.get(schema.fingerprint)
        if held is None:
            if len(_scratch_conns) >= _SCRATCH_LIMIT:
                _scratch_conns.pop(next(iter(_scratch_conns)))
            held = _scratch_conns[schema.fingerprint] = (threading.Lock(), _empty_copy(schema))
    lock, pooled = held
    if not lock.acquire(blocking=False):
        spare = _empty_copy(schema)
        try:
            yield spare
        finally:
            spare.close()
        return
    try:
        yield pooled
    finally:
        pooled.deadline = float("inf")
        lock.release()


def _empty_copy(schema: Schema) -> PooledConnection:
    conn = apsw.Connection(":memory:")
    for statement in render_ddl(schema, "main"):  # declared indexes too: INDEXED BY works
        conn.execute(statement)
    conn.limit(apsw.SQLITE_LIMIT_LENGTH, DEFAULT_LENGTH_LIMIT)
    return PooledConnection(Path(":memory:"), conn)


def _read_thread(run: Callable[[], None], db_id: str, sql: str) -> threading.Thread:
    """The started thread a read of the command line runs on, to keep its deadline; no thread
    to be had is a :class:`QueryError` saying nothing was read and what to do."""
    helper = threading.Thread(target=run, name="sqlite-cells-read", daemon=True)
    try:
        helper.start()
    except RuntimeError as exc:
        raise QueryError(
            db_id,
            sql,
            f"the read runs on a thread of its own, to keep its deadline, and this process may "
            f"start no more threads ({exc}: the system's limit on threads or processes); "
            "nothing was read: close programs or runtimes no longer used or raise the limit, "
            "then try again",
        ) from exc
    return helper

"""The runtime: a store, its open spaces, the scheduler and the poller (SPEC §3)."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from sqlite_cells.codec import (
    ClosedError,
    ConflictError,
    Link,
    Op,
    ParsedLink,
    SqliteCellsError,
    TransactionError,
    ValueEncodeError,
    brief_repr,
    check_link,
    encode_value,
    name_too_long,
    parse_link,
)
from sqlite_cells.runtime._boundary import (
    MAX_SECONDS,
    InvalidArgument,
    Reference,
    StorePathError,
    check_name,
    check_timeout,
    checked_arguments,
    describe,
)
from sqlite_cells.runtime._cell import Cell, Reactive
from sqlite_cells.runtime._fork import FORKED_ADVICE, generation
from sqlite_cells.runtime._interrupts import interrupts_held
from sqlite_cells.runtime._participants import CommitParticipant
from sqlite_cells.runtime._scheduler import Scheduler
from sqlite_cells.runtime._space import Space
from sqlite_cells.runtime._space_file import SpaceFile, leading_space
from sqlite_cells.runtime._store import resolve_store, space_file_name
from sqlite_cells.runtime._streams import awake
from sqlite_cells.runtime._tx import over_length_limit

__all__ = ["Runtime"]

log = logging.getLogger("sqlite_cells.runtime")

# How often a waiting ``settled()`` looks whether its caller gave up on it (seconds).
SETTLED_CHECK = 0.05
# Seconds a file-system clock may take to tick (FAT: 2 s; ext2 and ext3: 1 s): a folder changed
# more recently may change again without its modification time moving (see _catch_up).
_COARSE_CLOCK = 2.0


_P = ParamSpec("_P")
_R = TypeVar("_R")

_PARTICIPANT_HOOKS = ("prepare", "cell_writes", "apply", "committed", "commit_failed")


class Runtime(Reference):
    """Opens spaces in a store and runs what reacts to their commits.

    Commits by other runtimes on the same store are found by a poller thread that watches each
    open space file's ``PRAGMA data_version`` every ``poll_interval`` seconds (R53); runtimes of
    one process that share a space file also wake each other right after a commit.
    """

    space_class: type[Space] = Space

    @checked_arguments
    def __init__(
        self, store: str | os.PathLike[str] | None = None, *, poll_interval: float = 0.02
    ) -> None:
        if not _is_number(poll_interval) or not 0 < poll_interval <= MAX_SECONDS:
            raise InvalidArgument(
                f"poll_interval is a positive number of seconds, at most {MAX_SECONDS:,}, not "
                f"{brief_repr(poll_interval)}"
            )
        self._store: Path = resolve_store(store)
        self._poll_interval: float = poll_interval
        try:
            self.scheduler = Scheduler()
        except RuntimeError as exc:
            raise thread_refused(exc) from exc
        # (A get() waiting for a first value in a try holding a space's lock: see _settle_stuck.)
        self.scheduler.stuck_check = weakly(self._get_stuck, lambda: None)
        self._participants: dict[str, CommitParticipant] = {}
        # _lock guards _spaces and _closed.
        self._lock = threading.Lock()
        self._spaces: dict[str, Space] = {}
        self._closed = False
        # Whether a close is under way (_closing) and whether one finished (_close_finished),
        # told apart: one interrupted (Ctrl-C) is done again by the next call of close(), which
        # would otherwise find the runtime closed and leave its files open and an ephemeral
        # store in place. _close_changed (on _lock) wakes the calls waiting for a close.
        self._closing = False
        self._close_finished = False
        self._close_changed = threading.Condition(self._lock)
        self._made_in = generation()  # a forked child may not use it (see _fork)
        # _defaults_lock guards writes to _defaults: (space id, cell id) -> the encoded default
        # declared last for that id (R4). Reads are single dict lookups and take no lock.
        self._defaults_lock = threading.Lock()
        self._defaults: dict[tuple[str, str], bytes] = {}
        self._temporary: Path | None = None
        self._link_hook = self._link_of  # made once: encode() is on every write's path
        self._at_exit: Callable[[], None] | None = None  # an ephemeral store's exit cleanup
        self._at_worker_exit: Any = None  # the same, for a multiprocessing worker's exit
        self._wake = threading.Event()
        # What the last catch-up of each failing space file said (see _catch_up_failed).
        self._failing: dict[SpaceFile, str] = {}
        # Guarded by _lock (see _catch_up): the store folder at the last look, how many spaces
        # were open then, the count of changes seen, the change the last look at every space
        # covered, and which spaces had a file then.
        self._store_seen: tuple[int, int] | None = None
        self._looked_at = 0
        self._changes = 0
        self._scanned = 0
        self._with_files: list[SpaceFile] = []
        # Guarded by _lock: the space files found replaced whose readers were told (see
        # _note_replaced).
        self._replaced: set[SpaceFile] = set()
        # The poller holds the runtime weakly (see _poll): a runtime nobody refers to any more
        # is collected, and closed then (see __del__).
        self._poller = threading.Thread(
            target=_poll,
            args=(weakref.ref(self), self._wake),
            name="sqlite-cells-poller",
            daemon=True,
        )
        try:
            self._poller.start()
        except BaseException as exc:  # (Ctrl-C, or no thread to be had): nothing left running
            self.scheduler.close()
            raise thread_refused(exc) from exc

    @classmethod
    @checked_arguments
    def ephemeral(cls, **options: Any) -> Self:
        """A runtime on a store in a new temporary directory, removed on close — or, for a
        runtime never closed, when the interpreter exits (the runtime is closed then).
        ``options`` are the runtime's keyword options (``poll_interval``, …), not ``store``:
        a ``store`` given is an ``InvalidArgument`` naming ``sc.Runtime(store)`` instead."""
        if "store" in options:
            # (Passed on, it met the temporary store and was refused as a call to Runtime()
            # with two stores, whose advice was to call Runtime(store=…) — not this call.)
            raise InvalidArgument(
                f"Runtime.ephemeral() makes its own temporary store, removed on close: it does "
                f"not take store={options['store']!r}; to use that directory, call "
                f"sc.Runtime({options['store']!r}) (its other options are the same)"
            )
        path: Path | None = None
        runtime: Self | None = None
        try:
            with interrupts_held():  # (Ctrl-C between two steps left the directory behind)
                path = _temporary_folder()
                runtime = cls(path, **options)
                runtime._temporary = path
                runtime._at_exit = _closer(runtime)
                atexit.register(runtime._at_exit)
                runtime._at_worker_exit = _at_worker_exit(runtime._at_exit)
        except BaseException:  # a refused option, Ctrl-C: nothing left behind
            if runtime is not None:
                runtime.close()  # (removes the directory)
            elif path is not None:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return runtime

    # -- spaces and cells ----------------------------------------------------------------------

    @checked_arguments
    def space(self, space_id: str) -> Space:
        """The space ``space_id``. Its file is opened if the store holds it, and created by its
        first commit, never by a read (R7)."""
        space_id = check_name("space id", space_id)
        with self._lock:
            self._check_open_locked()
            space = self._spaces.get(space_id)
            if space is None:
                file = SpaceFile(
                    self.store / space_file_name(space_id),
                    space_id,
                    publish=self.scheduler.publish,
                    # (held weakly: the scheduler's thread holds the file; see weakly)
                    participants=weakly(self.participant),
                    wake=self._wake.set,
                    whole_op=weakly(self.whole_change_op),
                    check_committed=weakly(self.check_committed),
                )
                space = self._spaces[space_id] = self.space_class(self, space_id, file)
        return space

    @checked_arguments
    def cell_from_link(self, link: Link | str | bytes | bytearray | memoryview) -> Cell:
        """The cell a link (or its stored string form) names, in any space of this runtime.
        Resolving creates no file (R7); the cell reads the default declared for its id in this
        runtime, else ``None`` (R4). A malformed link — text, or a ``Link`` built by hand — raises
        ``LinkDecodeError``."""
        return self.cell_for(check_link(link) if isinstance(link, Link) else parse_link(link))

    def cell_for(self, link: Link) -> Cell:
        """The cell ``link`` names (what decoders of values and typed rows call; R4, R7)."""
        return Cell(self.space(link.space), link.id, tuple(link.path))

    def cells_for(self, links: Iterable[Link | ParsedLink | None]) -> list[Cell | None]:
        """The cells many links name, as ``cell_for`` gives them (``None`` stays ``None``), for
        decoders of whole columns: each space is resolved once per call, and the cells are
        built without ``Cell.__init__`` (there is no default to declare, and a decoded link's
        path is already a tuple), which makes a cell cost about two thirds as much."""
        spaces: dict[str, Space] = {}
        new = Cell.__new__
        cells: list[Cell | None] = []
        append = cells.append
        for link in links:
            if link is None:
                append(None)
                continue
            space = spaces.get(link.space)
            if space is None:
                if name_too_long(link.space):  # (no space has it: the link names no cell)
                    append(None)
                    continue
                space = spaces[link.space] = self.space(link.space)
            cell = new(Cell)
            cell._space = space
            cell._id = link.id
            cell._value_path = link.path
            append(cell)
        return cells

    def check_writable(self, space_id: str, cell_id: str) -> bool:
        """Extension point, called by ``Cell.set`` before every write: raise (a ``TypeError``
        that is a ``SqliteCellsError``) to refuse writes to a cell that only its owner may write,
        such as a database handle (R5). Return True when the write, judged on what this runtime
        knows, must be judged again at commit (:meth:`check_committed`) should another runtime
        or process commit that cell first. The plain runtime protects nothing: False."""
        return False

    def check_committed(self, space_id: str, cell_id: str, data: bytes) -> None:
        """Extension point, called at commit inside its SQLite transaction for a write that
        :meth:`check_writable` asked to judge again, when another writer committed the cell
        since it was checked: ``data`` is the value committed now. Raise to refuse the write
        (the commit fails, nothing of it is visible). The plain runtime refuses nothing."""

    def check_value(self, space_id: str, cell_id: str, data: bytes) -> None:
        """Extension point, called by ``Cell.set`` with the cell's whole new value (encoded)
        before it is recorded, and by ``declare_default`` with a default: raise (a
        ``TypeError`` that is a ``SqliteCellsError``) to refuse a value only its owner may
        write, such as one shaped like a database handle of that very cell (R3). The plain
        runtime refuses nothing."""

    def whole_change_op(self, target: str) -> Op | None:
        """Extension point: the op a synthetic catch-up event carries for ``target`` when this
        runtime was behind its space's compacted log, saying the target changed in ways the log
        no longer holds (so whatever reads it re-runs whole). The plain runtime writes no op
        targets: None."""
        return None

    # -- defaults (R4) -------------------------------------------------------------------------

    def declare_default(self, space_id: str, cell_id: str, default: Any) -> None:
        """Make ``default`` the value every ``Cell`` of this id reads until it is first written.
        Raises ``ValueEncodeError`` for a default that is not JSON (R6), and whatever
        ``check_value`` raises for it: a default is what the cell reads, so it may hold no value
        a write to the cell could not (R3: no default makes a plain cell a database)."""
        data = None if default is None else self.encode(default)
        if data is not None and (too_long := over_length_limit(cell_id, data)) is not None:
            raise ValueEncodeError(f"{too_long} (a default is a value the cell holds)")
        # (No default reads None: judged as that value.)
        self.check_value(space_id, cell_id, b"null" if data is None else data)
        with self._defaults_lock:
            if data is None:
                before = self._defaults.pop((space_id, cell_id), None)
            else:
                before = self._defaults.get((space_id, cell_id))
                self._defaults[(space_id, cell_id)] = data
        if before != data:
            # What reads the cell reads the new default too (an unwritten cell's observers
            # and derived cells), as get() does at once.
            with self._lock:
                space = self._spaces.get(space_id)
            if space is not None:
                space.default_changed(cell_id)

    def default_data(self, space_id: str, cell_id: str) -> bytes | None:
        """The encoded default declared last for this id in this runtime (None: no default)."""
        return self._defaults.get((space_id, cell_id))

    def encode(self, value: Any) -> bytes:
        """Encode a cell value; cells inside it become links."""
        return encode_value(value, self._link_hook)

    def _link_of(self, obj: Any) -> Link | None:
        """The link a cell inside a value is stored as. A link names a cell of this store only
        (its space id and cell id), so a cell of a runtime on another store is refused: stored
        here, its link would name this store's cell of that id, a different one."""
        if isinstance(obj, Reactive):  # (a derived cell, a live query)
            raise ValueEncodeError(
                f"the value holds {obj!r}, which is computed in memory and has no stored form: "
                "store its value (.get()), or the cells it is computed from (a pattern given "
                "those cells can derive it again)"
            )
        if not isinstance(obj, Cell):
            return None
        theirs = obj.space.runtime
        if theirs is not self and theirs.store != self.store:
            raise ValueEncodeError(
                f"the value holds {obj!r}, a cell of the runtime on {theirs.store}, but it is "
                f"stored in {self.store}: a link names a cell of its own store only; "
                f"{obj._elsewhere()}"
            )
        return obj.link()

    # -- participants --------------------------------------------------------------------------

    def register_participant(self, participant: CommitParticipant) -> None:
        """Let ``participant`` apply the ops of its ``kind`` inside commits (§1, the extension
        point; see :class:`CommitParticipant`). One participant per kind: a kind already
        handled — ``sqlite``, by the database cells — is refused, never replaced."""
        kind = getattr(participant, "kind", None)
        missing = [
            name for name in _PARTICIPANT_HOOKS if not callable(getattr(participant, name, None))
        ]
        if not isinstance(kind, str) or not kind or missing:
            raise InvalidArgument(
                f"register_participant takes a commit participant (a str `kind` and the methods "
                f"{', '.join(_PARTICIPANT_HOOKS)}), not {brief_repr(participant)}"
                + (f": it lacks {', '.join(missing)}" if missing else "")
            )
        with self._lock:
            if kind in self._participants:
                raise InvalidArgument(
                    f"ops of kind {kind!r} are handled by a participant already "
                    f"({brief_repr(self._participants[kind])}): give the new one another kind"
                )
            self._participants[kind] = participant

    def participant(self, kind: str) -> CommitParticipant:
        """The commit participant registered for ops of ``kind`` (§1, the extension point); a
        ``SqliteCellsError`` when none is."""
        try:
            return self._participants[kind]
        except KeyError:
            raise SqliteCellsError(
                f"no commit participant handles ops of kind {kind!r}: register one with "
                "Runtime.register_participant"
            ) from None

    # -- reactivity ----------------------------------------------------------------------------

    @checked_arguments
    def settle(self, timeout: float | None = None) -> bool:
        """Block until every re-run caused by past commits has delivered (including first runs
        of derived cells and queries created before the call). False on timeout.

        Past commits are those finished before the call, whoever made them: the open spaces
        take in what other runtimes and processes committed first, as the poller would at its
        next tick, so a commit another runtime returned from is never left for later (§3, R53).
        ``timeout`` is in seconds (``None``: no limit); a negative or non-number timeout is an
        ``InvalidArgument`` (a ``ValueError`` and ``TypeError``). On a closed runtime, or one
        that ``close()`` closes while it waits, it raises ``ClosedError``: nothing is delivered
        any more, so there is nothing to have settled."""
        return self._settle(check_timeout("settle(timeout=…)", timeout))

    def _settle(self, timeout: float | None, given_up: threading.Event | None = None) -> bool:
        """``settle(timeout)``; with ``given_up`` (``settled()``'s worker thread), waiting in
        steps of ``SETTLED_CHECK`` and ending, False, once its caller has given up."""
        self.check_open()
        if not self.scheduler.settles_at_once:
            self._catch_up()
        stuck = self._settle_stuck()
        if given_up is None:
            settled = self.scheduler.settle(timeout, stuck=stuck)
        else:
            while not (settled := self.scheduler.settle(SETTLED_CHECK, stuck=stuck)):
                if given_up.is_set():
                    return False
        self.check_open()
        return settled

    def _get_stuck(self) -> Callable[[], None] | None:
        """``_settle_stuck`` for a derived cell's or query's ``get()`` waiting for its first
        value, which the scheduler thread computes (``Scheduler.wait_ready``)."""
        return self._settle_stuck("get() of a derived cell or query waiting for its first value")

    def _settle_stuck(self, what: str = "settle()") -> Callable[[], None] | None:
        """For a settle (or ``what`` else waits for the scheduler thread) on a thread whose
        handler try holds a space's write lock (its earlier tries conflicted; see
        ``SpaceFile.exclusive``): a check that raises :class:`ConflictError` once the scheduler
        waits for that lock — a subscriber or derived cell committing to the space, which can
        commit only after the try ends, which waits for it to settle (each would wait out its
        patience, and the subscriber's write would be lost). The handler tries again, the lock
        let go in between, so that commit goes through. None when this thread holds no space's
        lock."""
        me = threading.get_ident()
        leading = leading_space()
        with self._lock:
            held = [s.file for s in self._spaces.values() if s.file.exclusive_owner == me]
            led = [s.file for s in self._spaces.values() if s.file.space_id == leading]
        if not held and not led:
            return None
        scheduler = self.scheduler

        def stuck() -> None:
            waiting = scheduler.thread_ident
            for file in led:
                # (Code a commit runs, a migrate callback: that commit holds the lock until the
                # callback returns, and no retry would let it go in between.)
                if waiting is not None and file.waited_by(waiting):
                    raise TransactionError(
                        f"space {file.space_id!r}: {what} inside a commit of the space (a "
                        "migrate callback) waited for a subscriber or derived cell that commits "
                        f"to the space, which waits for this commit to end; call {what} after "
                        "the write has returned"
                    )
            for file in held:
                if waiting is not None and file.waited_by(waiting):
                    raise ConflictError(
                        file.space_id,
                        (),
                        reason=(
                            f"{what} in this handler's try, which holds the space's write "
                            "lock (its earlier tries conflicted), waited for a subscriber or "
                            "derived cell that commits to the space and so waits for that lock; "
                            "the try ends here, and the next one runs once that commit is through"
                        ),
                    )

        return stuck

    @checked_arguments
    async def settled(self) -> bool:
        """``settle()`` for asyncio code: waits in a worker thread, never on the event loop.

        Cancelled (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``), it leaves no
        thread waiting behind: ``asyncio.run`` waits for its worker threads when it ends, and
        would otherwise wait for whatever re-run was still running.

        On the scheduler thread (a subscriber or derive function that runs an event loop) it
        returns True at once, as ``settle()`` does there: a worker thread would wait for the
        very thread the caller blocks, for ever. So does it where rows are built for a query
        (a row type's ``__post_init__``), which the scheduler waits for."""
        if self.scheduler.settles_at_once:
            return self._settle(None)
        abandoned = threading.Event()
        try:
            with awake():  # (a kernel's interrupt of the wait lands at once)
                return await _on_a_thread(
                    functools.partial(self._settle, None, abandoned),
                    "settled() waits on a thread of the event loop's executor, and none could "
                    "take it ({}); nothing was waited for: close runtimes no longer used or "
                    "raise the limit on threads, then call it again",
                )
        finally:
            abandoned.set()  # (a wait the executor queued all the same ends as soon as it runs)

    def _catch_up(self) -> bool:
        """Take in what other connections committed to the open spaces. False once closed.
        A space with no file yet (one a link named, say) is looked for only when the store
        folder may have changed: thousands of them cost a look at the folder, not one each."""
        folder = self._store_folder()  # (looked at outside the lock)
        with self._lock:
            seen, self._store_seen = self._store_seen, folder
            changed = (
                folder is None or folder != seen or time.time_ns() - folder[1] < _COARSE_CLOCK * 1e9
            )
            if changed or self._looked_at != len(self._spaces):
                self._changes += 1
                self._looked_at = len(self._spaces)
            # Every space, until a look at each has ended since the last change (a settle()
            # and the poller may look at once: neither takes the other's look for its own).
            wanted = self._changes
            everyone = self._scanned < wanted
            files = [s.file for s in self._spaces.values()] if everyone else self._with_files
        for file in files:
            try:
                file.catch_up()
            except ClosedError:
                return False
            except Exception as exc:
                self._catch_up_failed(file, exc)
                if file.replaced:
                    self._note_replaced(file)
            else:
                if self._failing and self._failing.pop(file, None) is not None:
                    log.warning("space %r: catching up works again", file.space_id)
        if everyone:
            with self._lock:
                if wanted > self._scanned:
                    self._scanned = wanted
                    # (and those failing: looked at again at each poll until they work)
                    failing = self._failing
                    self._with_files = [f for f in files if f.has_file or f in failing]
        return True

    def _note_replaced(self, file: SpaceFile) -> None:
        """``file`` was found replaced by another file (by a catch-up, or by a commit: the
        catch-ups raise from then on, R73). Once per file, what reads it is told, so that no
        stale value stays current: the scheduler's nodes of its cells (see
        ``Scheduler.space_replaced``) and whatever an extension keeps (:meth:`_space_replaced`).
        Called before ``settle`` waits, so it waits for those re-runs too."""
        with self._lock:
            if file in self._replaced:
                return
            self._replaced.add(file)
        self._space_replaced(file)

    def _space_replaced(self, file: SpaceFile) -> None:
        """What the runtime does once ``file`` is found replaced; an extension that reads
        what the space names (database files) re-runs those reads too."""
        self.scheduler.space_replaced(file)

    def _store_folder(self) -> tuple[int, int] | None:
        """The store folder's inode and modification time (ns), or None when it cannot
        be looked at: an entry may have been made or removed there since the last look when
        they moved — or when that time is recent, within a coarse clock's tick, when a change
        in the same tick would not move it (see _catch_up)."""
        try:
            found = os.stat(self.store)
        except OSError:
            return None
        return (found.st_ino, found.st_mtime_ns)

    def _catch_up_failed(self, file: SpaceFile, exc: Exception) -> None:
        """Log a catch-up that failed: once for as long as it fails the same way (it is tried
        again at every poll, and a line each time would bury every other), as a message that
        says what is wrong and what to do; the traceback goes to the debug level."""
        # (catch_up names its file in its errors; anything else is a fault of this library)
        said = str(exc) if isinstance(exc, SqliteCellsError) else f"{type(exc).__name__}: {exc}"
        if self._failing.get(file) == said:
            return
        self._failing[file] = said
        log.error(
            "space %r: catching up with other runtimes' commits failed (tried again at each "
            "poll; logged again when the failure changes; if it goes on, close the runtime and "
            "run `sqlite-cells check`): %s",
            file.space_id,
            said,
        )
        log.debug("the catch-up's error", exc_info=exc)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the runtime can still be used: not closed, and used in the process that
        opened it (in a forked child it cannot)."""
        return not self._closed and self._made_in == generation()

    def check_open(self) -> None:
        """Raise ``ClosedError`` (saying what to do) unless :attr:`is_open`."""
        with self._lock:
            self._check_open_locked()

    def _check_open_locked(self) -> None:
        if self._made_in != generation():
            raise ClosedError(f"the runtime on {self.store} cannot be used here: {FORKED_ADVICE}")
        if self._closed:
            raise ClosedError(f"the runtime on {self.store} is closed: open a new Runtime")

    @property
    def store(self) -> Path:
        """The store directory, resolved when the runtime opened it; read-only."""
        return self._store

    @property
    def poll_interval(self) -> float:
        """Seconds between looks for other processes' commits; set when the runtime is made."""
        return self._poll_interval

    @checked_arguments
    def close(self) -> None:
        """Stop reacting and close every file. Safe to call twice, and from several threads at
        once: a call made while another thread is closing the runtime returns once that close
        is done (so after any ``close()`` returns, no thread of the runtime runs and its files
        are closed) — except on the scheduler thread (a subscriber, a derive function), which
        that close waits for: there it returns at once. A handler's body that holds a space's
        write lock (a try after repeated conflicts) is waited for 5 s at most: past that, that
        space's files close when the body returns, and what it writes then is ``ClosedError``.
        In a forked child it only marks the runtime closed: its files and threads are the
        parent's."""
        claimed = finished = False
        try:
            # The bookkeeping runs with Ctrl-C held back: landing in it, an interrupt left a
            # close claimed by no one (every later close() waited for good, the one at exit
            # too) or waiters told of a close that had not happened.
            with interrupts_held():
                claimed = self._claim_close()
            if not claimed:
                return
            self.scheduler.closing()  # (its ClosedErrors end streams from here: see _failed)
            with self._lock:
                spaces = list(self._spaces.values())
            self._close_extensions()
            self._wake.set()
            if self._poller.is_alive():
                self._poller.join(timeout=5)
            self.scheduler.close()
            self._close_spaces(spaces)
            if self._temporary is not None:
                shutil.rmtree(self._temporary, ignore_errors=True)
            if self._at_exit is not None:
                atexit.unregister(self._at_exit)  # (a notebook may make many: none piles up)
            if self._at_worker_exit is not None:
                self._at_worker_exit.cancel()
            finished = True
        finally:
            if claimed:
                with interrupts_held(), self._lock:
                    # Interrupted: the next close() does it again (each step may repeat), or
                    # one of the calls waiting for this one.
                    self._closing = False
                    self._close_finished = finished
                    self._close_changed.notify_all()

    def __del__(self) -> None:
        """A runtime nobody refers to any more (a notebook cell run again rebinding ``rt``, a
        function that made one and returned) is closed as ``close()`` would: its threads hold
        it weakly, so that it is collected. The close runs on a thread of its own, as the
        collection may happen on any thread (one of this runtime's, holding one of its locks);
        every commit it acknowledged is durable already, so nothing is lost. A live query, a
        subscription or a cell the program still holds keeps its runtime alive."""
        if vars(self).get("_closed", True) or self._made_in != generation():
            return
        if sys.is_finalizing():  # (no thread may start: the process ends anyway)
            return
        closer = threading.Thread(target=self.close, name="sqlite-cells-close", daemon=True)
        try:
            closer.start()
        except RuntimeError:  # (no thread to be had: closed here, where it was collected)
            self.close()

    def _claim_close(self) -> bool:
        """Mark the runtime closed; True when this call is to close it, False when a close is
        done (or this is a forked child, which only marks it: its files and threads are the
        parent's, or the scheduler thread, which the closing call waits for). Waits for a close
        under way on another thread: if that one is interrupted, this call takes over."""
        with self._lock:
            self._closed = True
            if self._made_in != generation():
                return False
            while not self._close_finished:
                if not self._closing:
                    self._closing = True
                    return True
                if self.scheduler.on_thread:
                    return False
                self._close_changed.wait()
            return False

    def _close_extensions(self) -> None:
        """First step of :meth:`close`, with the runtime already marked closed: subclasses stop
        what they added (threads, connections) before the scheduler and the spaces close."""

    def _close_spaces(self, spaces: list[Space]) -> None:
        for space in spaces:
            space.file.close()

    # A runtime is a handle on its store: a copy is the same runtime (two objects closing one
    # set of files would each think the other's open); it cannot be pickled.
    def _not_pickled(self) -> str:
        return (
            f"a Runtime cannot be pickled: it holds the open files of {self.store}. Pickle the "
            "store's path and open a Runtime on it where it is needed (sc.Runtime(path))"
        )

    def __enter__(self) -> Self:
        self.check_open()  # (a closed runtime is no context to enter: ClosedError, §3)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        """``async with sc.Runtime(…) as rt:`` in asyncio code: as ``with``, and the close at
        the end runs off the event loop (it may wait for a derived function or subscriber that
        is running, which would otherwise hold the loop)."""
        self.check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            closing = _on_a_thread(self.close, "the close runs on a thread ({})")
        except SqliteCellsError:
            # No thread to be had: closed on the loop's thread, as ``with`` closes (a close
            # the executor queued all the same finds the runtime closed).
            self.close()
            return
        await closing

    def __repr__(self) -> str:
        state = "open" if not self._closed else "closed"
        return f"<Runtime {self.store} ({state})>"


def _poll(held: weakref.ref[Runtime], wake: threading.Event) -> None:
    """The poller's loop: each ``poll_interval``, or when woken, the runtime catches up with
    what other connections committed (R53). It holds the runtime only while it looks, so that
    a runtime dropped unclosed is collected (and closed: see ``Runtime.__del__``)."""
    while True:
        runtime = held()
        if runtime is None or runtime._closed:
            return
        interval = runtime._poll_interval
        del runtime
        wake.wait(interval)
        wake.clear()
        runtime = held()
        if runtime is None or runtime._closed or not runtime._catch_up():
            return
        del runtime


def weakly(method: Callable[_P, _R], gone: Callable[[], _R] | None = None) -> Callable[_P, _R]:
    """``method`` (bound to a runtime or a part of it) for a part that a thread of the runtime
    holds: it holds the method's object weakly, so that a runtime dropped unclosed is collected
    (and closed: see ``Runtime.__del__``). Once that object is gone a call returns ``gone()``,
    or raises ``ClosedError`` when no ``gone`` is given."""
    held = weakref.WeakMethod(method)

    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        found = held()
        if found is not None:
            return found(*args, **kwargs)
        if gone is None:
            raise ClosedError(
                "the runtime was closed as nobody refers to it any more: open a new Runtime"
            )
        return gone()

    return call


def _on_a_thread(work: Callable[[], _R], refused: str) -> asyncio.Future[_R]:
    """``work`` run by a thread of the running loop's default executor, as ``asyncio.to_thread``
    runs it (the caller's context copied); a :class:`SqliteCellsError` saying ``refused`` (its
    ``{}`` replaced by why) when no thread can take it: the system's limit on threads or
    processes, or an executor shut down. The executor may have queued the job all the same, for
    a thread that frees up later: only work that is harmless then is handed over here."""
    loop = asyncio.get_running_loop()
    try:
        return loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, work))
    except RuntimeError as exc:
        raise SqliteCellsError(
            refused.format(
                f"{exc}: the system's limit on threads or processes, or an executor shut down"
            )
        ) from exc


def thread_refused(exc: BaseException) -> BaseException:
    """What to raise when starting a runtime's thread raised ``exc``: Python's "can't start new
    thread" (the system's limit on threads or processes) as a :class:`SqliteCellsError` saying
    what to do; anything else (Ctrl-C) as it is."""
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return SqliteCellsError(
            "the runtime could not start its threads: this process may start no more (the "
            "system's limit on threads or processes); nothing of the runtime is left running: "
            "close runtimes no longer used, lower query_workers, or raise the limit"
        )
    return exc


def _closer(runtime: Runtime) -> Callable[[], None]:
    """``runtime.close`` for ``atexit``, holding the runtime weakly."""
    held = weakref.ref(runtime)

    def close() -> None:
        found = held()
        if found is not None:
            found.close()

    return close


def _at_worker_exit(close: Callable[[], None]) -> Any:
    """``close`` for the end of a multiprocessing worker too: a ``fork`` or ``forkserver``
    worker ends with ``os._exit``, past ``atexit``, after running multiprocessing's own
    finalizers (each runs in the process that made it only). None when multiprocessing is not
    in use: it is not imported for this."""
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return None
    return util.Finalize(None, close, exitpriority=0)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _temporary_folder() -> Path:
    """A new folder for an ephemeral store, in the system's temporary directory: one that
    cannot be made there (it was removed, is full or not writable) is a ``StorePathError``
    naming it, never a raw ``OSError`` (Errors)."""
    try:
        return Path(tempfile.mkdtemp(prefix="sqlite-cells-"))
    except (OSError, ValueError) as exc:  # (ValueError: a NUL in the directory's path)
        # (Not `gettempdir()` again: with no usable directory it raises what mkdtemp did.)
        found = tempfile.tempdir
        where = (
            "no temporary directory"
            if found is None
            else f"the temporary directory {brief_repr(found)}"
        )
        raise StorePathError(
            f"{describe(exc, where)}; an ephemeral store is made in the system's temporary "
            "directory: set $TMPDIR to a writable directory, or give sc.Runtime a store path"
        ) from exc

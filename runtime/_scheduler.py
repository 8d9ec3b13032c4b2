"""The scheduler: re-runs what depends on what changed, after each durable commit.

One thread per runtime owns the dependency graph and runs every re-computation and every
subscriber call, so a run can be reproduced: work is taken in arrival order, and within one commit
nodes re-run in dependency order (height, ties broken by registration order), each at most once
(R54). Subscribers are called on that thread with no runtime lock held; one that raises is logged
and the others still get the value.

The scheduler keeps its own *view* of committed cell values, advanced one commit at a time, so all
nodes re-run for a commit see the same state (glitch-free) even while newer commits land. The view
holds only cells that are watched, or about to be: a node registers its cell with :meth:`expect`
*before* it reads its seed, so every commit processed between that read and the node joining the
graph is kept in the view, and the node's first value is never older than what the scheduler has
already processed. A commit's own writes travel in its event, so an unwatched cell costs nothing
once its commit is processed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlite_cells.codec import ClosedError, TransactionError
from sqlite_cells.runtime._fork import FORKED_ADVICE, generation
from sqlite_cells.runtime._space_file import CommitEvent, Entity, SpaceFile

__all__ = ["Node", "Scheduler", "Subscription", "Work", "own"]

# How long one wait of ``settle`` lasts before it looks again (seconds; see Scheduler.settle).
_WAIT_SLICE = 0.1
# The scheduler of each scheduler thread, by the thread's ident, and what a scheduler thread
# waits for in ``settle`` or for a first value (a subscriber of one runtime settling another
# runtime, or reading its derived cell or query, see Scheduler.wait_ready): each changed
# by single dict operations, atomic for other threads. A wait that comes back to the waiter
# would never end (see Scheduler._check_cycle).
_SCHEDULER_OF: dict[int, Scheduler] = {}
_SETTLING: dict[int, Scheduler] = {}


# What a wait of one scheduler thread for another runtime that closes a circle raises (see
# Scheduler._check_cycle).
_SETTLE_CYCLE = (
    "settle() of one runtime, called on another runtime's scheduler thread (a subscriber or "
    "derived cell), waits for a runtime whose own subscriber waits for that one to settle: "
    "neither could ever deliver again; settle from outside subscribers and derived functions"
)
_GET_CYCLE = (
    "get() of a derived cell or query of one runtime, called on another runtime's scheduler "
    "thread (a subscriber or derive function), waits for its first value, which that runtime "
    "computes only once its own subscriber or derive function, waiting for the first runtime, "
    "returns: neither could ever deliver again; give the value as an input of a derived cell "
    "of one runtime, or read it outside subscribers and derive functions"
)


class _Building(threading.local):
    # The schedulers whose work this thread runs now off their thread (see Scheduler.building).
    schedulers: tuple[Scheduler, ...] = ()


_building = _Building()


class _BuildingFor:
    """The block of :meth:`Scheduler.building` (a small class, not a generator: it runs at each
    re-run of a live query)."""

    __slots__ = ("_before", "_scheduler")

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def __enter__(self) -> None:
        self._before = _building.schedulers
        _building.schedulers = (*self._before, self._scheduler)

    def __exit__(self, *_: object) -> None:
        _building.schedulers = self._before


# How long close() waits for the thread to complete the subscribers, then for it to end (a
# subscriber busy longer holds it: then it completes them, and ends, once back).
CLOSE_WAIT = 5.0

log = logging.getLogger("sqlite_cells.runtime")

Subscriber = Callable[[Any], None]
CommitHook = Callable[[CommitEvent], "list[Node]"]
# Takes in a commit the hook has nothing to re-run for, off the scheduler thread (see
# Scheduler.add_commit_hook); False sends the commit to the hook on the scheduler thread.
Absorber = Callable[[CommitEvent], bool]
ErrorHandler = Callable[[Exception], None]
Completer = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Observer:
    """What a subscription calls: ``on_next`` with each value, ``on_error`` when the node's
    computation raised (the error is kept on the node; a later value resumes ``on_next``), and
    ``on_completed`` when the runtime closes."""

    on_next: Subscriber
    on_error: ErrorHandler | None = None
    on_completed: Completer | None = None


class Node:
    """A vertex of the dependency graph.

    Subclasses implement :meth:`compute`, which returns ``(changed, value)``. ``deps`` are the
    nodes whose changes re-run this one. A node's ``value`` is only touched on the scheduler thread.
    """

    def __init__(self, scheduler: Scheduler, deps: tuple[Node, ...] = ()) -> None:
        self.scheduler = scheduler
        self.deps = deps
        self.height: int = 1 + max((d.height for d in deps), default=-1)
        self.order = next(scheduler.counter)
        self.dependents: list[Node] = []
        self.subscribers: list[Observer] = []
        self.value: Any = None
        # The exception of the last computation, if it raised (kept for ``get()``; cleared by the
        # next computation that succeeds). A SystemExit or KeyboardInterrupt a user's function
        # raised counts too: raised on the runtime's thread it would end the thread.
        self.error: BaseException | None = None
        self.ready = threading.Event()
        # The object a user holds for this node (a query, see own) is gone; once it has
        # no subscriber and no dependent either, the node leaves the graph (``released``).
        self.orphaned = False
        self.released = False
        self.joining = 0  # subscriptions made whose observer is not in ``subscribers`` yet
        # Whether a node at any depth of its inputs, itself included, computes off the
        # scheduler thread (a query): only then can an input be in flight (see _reflects).
        self.may_wait: bool = self.runs_off_thread or any(d.may_wait for d in deps)
        # Whether no input at any depth reflects a commit the scheduler has not processed (see
        # _ahead): true for good once true (a seed never changes, processed seqs only grow).
        self.caught_up = False

    # Whether this kind of node computes off the scheduler thread (see in_flight).
    runs_off_thread = False

    @property
    def in_flight(self) -> bool:
        """Whether a computation this node started (off the scheduler thread) has not landed:
        its dependents wait for it (see :meth:`Scheduler.landed`). Plain nodes never are."""
        return False

    # Whether the node's value also reflects a file it reads when it runs (a query's database):
    # as of the commit of that run, whatever its inputs reflect (see _waits).
    reads_file = False

    @property
    def stale(self) -> bool:
        """Whether the node's value is from an older commit than the one a computation in
        flight will land: a node made now waits for that before its first value. A first run
        in flight is not stale (its value says it has none yet)."""
        return self.in_flight

    def compute(self) -> tuple[bool, Any]:
        raise NotImplementedError

    def ahead(self) -> tuple[SpaceFile, int] | None:
        """A space and a commit of it that this node's value already reflects and the scheduler
        has not processed yet (a cell's seed read from the file), else None (scheduler thread):
        a node made from it waits for that commit, as its other inputs do (R54)."""
        return None

    def attach(self) -> None:
        """Called once on the scheduler thread when the node joins the graph."""

    def dropped(self) -> None:
        """A value given for this node with a round of :meth:`Scheduler.set_values` was not
        taken, as an input of the node changed in that same round (scheduler thread): the node
        forgets it (a query: the rows it landed with), and computes again."""

    def release(self) -> None:
        """Called once on the scheduler thread when the node leaves the graph: nothing holds
        it any more (see :func:`own`). A node never re-joins."""

    def current(self) -> Any:
        """The node's value, after its first computation: computed inline on the scheduler
        thread, waited for elsewhere (``ClosedError`` if the runtime closes meanwhile;
        ``TransactionError`` on another runtime's scheduler thread when that wait would close a
        circle of such waits, see :meth:`Scheduler.wait_ready`)."""
        if not self.ready.is_set():
            if self.scheduler.on_thread:
                self.scheduler._ensure_ready(self)
            else:
                self.scheduler.wait_ready(self)
        return self.value

    def __lt__(self, other: Node) -> bool:
        return (self.height, self.order) < (other.height, other.order)


def own(owner: object, node: Node) -> None:
    """``node`` lives as long as ``owner`` (the object a user holds: a query), a subscriber of
    it or a node depending on it: after all three are gone it stops re-running and leaves the
    graph. The node must not refer to ``owner``, or it would keep it alive. (A derived cell is
    never owned so: its function may act on each value, and nothing would hold it.)"""
    finalizer = weakref.finalize(owner, node.scheduler.orphan, node)
    finalizer.atexit = False  # at exit there is nothing left to release


class Work:
    """A unit of work running outside the scheduler thread (a read on a worker, a timer, work
    parked until a commit is processed) or held on it (a node waiting for an input in flight),
    counted for ``settle`` under the *epoch* of what caused it (see :meth:`Scheduler.settle`)."""

    __slots__ = ("epoch",)

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch


@dataclass(frozen=True, slots=True)
class Subscription:
    node: Node
    observer: Observer

    def dispose(self) -> None:
        self.node.scheduler.unsubscribe(self.node, self.observer)


class Scheduler:
    """Runs re-computations and deliveries on one thread; see the module docstring."""

    def __init__(self, name: str = "sqlite-cells-scheduler") -> None:
        self._made_in = generation()  # (a forked child has no thread of it: see check_open)
        self.counter = itertools.count()
        # Set by the runtime: for a thread about to wait for a first value (wait_ready), a
        # check that raises when the wait can never end, or None (see Runtime._settle_stuck).
        self.stuck_check: Callable[[], Callable[[], None] | None] | None = None
        # _lock guards _queue, _busy, _pending, _next_epoch, _closed and the growth of the hook
        # lists; _idle is signalled on it.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Condition(self._lock)
        # Each item is (epoch, work): the epoch of what caused it (see settle).
        self._queue: deque[tuple[int, Callable[[], None]]] = deque()
        self._busy = False
        # Work not done yet, counted by epoch: queued items, the running one, units of Work.
        self._pending: dict[int, int] = {}
        self._next_epoch = 1  # the epoch of the next work with a cause of its own
        # The epoch the running item works for (scheduler thread; None between items): lowered
        # while it runs when it takes up work an older cause left (see act), and every epoch
        # it has counted under, uncounted when it ends.
        self._current: int | None = None
        self._item_epochs: list[int] = []
        self._closed = False
        # Set once the runtime begins to close (see closing): a ClosedError from then on is
        # the runtime closing, not a computation's failure (see _ends_stream).
        self._closing = False
        # Owned by the scheduler thread: the view of committed values and who watches them.
        self._view: dict[tuple[SpaceFile, str], Entity] = {}
        self._watchers: dict[tuple[SpaceFile, str], list[Node]] = {}
        # Guarded by _lock: cells of nodes made (their seed read or about to be) that have not
        # joined the graph yet, with how many such nodes; the view keeps their commits.
        self._expected: dict[tuple[SpaceFile, str], int] = {}
        self._processed: dict[SpaceFile, int] = {}
        self._parked: dict[SpaceFile, list[tuple[int, Callable[[], None], Work]]] = {}
        # Nodes due to re-run whose dependency is in flight, by id: they re-run once it lands,
        # with every input as of that commit (R54), not now with a stale one. Each counts for
        # settle as a unit of Work under the epoch that made it due.
        self._held: dict[int, Node] = {}
        self._held_work: dict[int, Work] = {}
        # Nodes whose first value waits for an input's computation in flight (also in _held).
        self._unborn: set[int] = set()
        # What the nodes looked at by the first computations queued one after another reflect
        # (see _waits): nothing else ran in between, so nothing went in flight or was held but
        # the nodes those computations made, which nothing looked at before depends on. Each
        # node of a chain thousands deep built on a live query walked the chain back to the
        # query (its first settle grew with the square of the chain): it looks one node up.
        # None while another item runs (any may change what is in flight). Keyed by node id:
        # the nodes computed meanwhile are kept, and with them (their inputs, at any depth)
        # every node the memo names, so that no id is another node's while it lasts.
        self._init_memo: dict[int, _Reflects] | None = None
        self._init_kept: list[Node] = []
        self._commit_hooks: list[CommitHook] = []
        self._absorbers: list[Absorber | None] = []  # one per hook, same order
        self._observed: dict[int, Node] = {}  # nodes with subscribers, to complete on close
        # Guarded by _lock: subscriptions made whose observer has not joined its node yet (by
        # id): closing completes them too, and they never join after that.
        self._joining: dict[int, Observer] = {}
        # The completion of every subscriber, when close() could not wait for the thread to
        # get to it (busy in a subscriber): run by the thread once back (see _loop).
        self._late_completion: Callable[[], None] | None = None
        # Nodes whose owner is gone (see own), and subscriptions whose holder is (see orphan),
        # appended from any thread — a finalizer may run while this thread holds _lock, so no
        # lock — and looked at before the next work.
        self._orphans: deque[Node | Subscription] = deque()
        self._release_queued = False  # guarded by _lock
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- submitting work -----------------------------------------------------------------------

    def submit(self, work: Callable[[], None], *, epoch: int | None = None) -> None:
        """Run ``work`` on the scheduler thread. Its epoch (see :meth:`settle`): ``epoch`` when
        given (work a unit of :class:`Work` hands back), else the running item's when called on
        the scheduler thread (work it causes), else a new one (work with a cause of its own)."""
        with self._lock:
            if self._closed:
                return
            self._queue_item(self._epoch_here() if epoch is None else epoch, work)

    def _queue_item(self, epoch: int, work: Callable[[], None]) -> None:
        """(Under ``_lock``.)"""
        self._queue.append((epoch, work))
        self._count(epoch)
        self._wake.notify()

    def _epoch_here(self) -> int:
        """(Under ``_lock``.) The epoch of work started by the caller: the running item's on the
        scheduler thread, else a new one."""
        current = self._current
        if current is not None and threading.get_ident() == self._thread.ident:
            return current
        epoch = self._next_epoch
        self._next_epoch = epoch + 1
        return epoch

    def _count(self, epoch: int) -> None:
        """(Under ``_lock``.)"""
        self._pending[epoch] = self._pending.get(epoch, 0) + 1

    def _uncount(self, epoch: int) -> None:
        """(Under ``_lock``.) Done: ``settle`` looks again once an epoch has no work left.
        After ``close`` nothing is counted any more (closing cleared the counts)."""
        if self._closed:
            return
        left = self._pending[epoch] - 1
        if left:
            self._pending[epoch] = left
        else:
            del self._pending[epoch]
            self._idle.notify_all()

    def publish(self, event: CommitEvent) -> None:
        """Hand a durable commit to the scheduler (called by SpaceFile, in seq order).

        A quiet commit — nothing queued or running, nobody watching a cell it wrote, no result
        waiting for it, no commit hook to read its ops — is taken in right here instead of waking
        the scheduler thread: that thread only touches its state while running work, which it
        starts under ``_lock``, so with the lock held and nothing queued or running the state is
        this caller's to advance.
        No user code runs here (there is nothing to re-run or deliver)."""
        with self._lock:
            if self._closed:
                return
            if not self._queue and not self._busy and self._is_quiet(event):
                self._advance(event)
                return
            self._queue_item(self._epoch_here(), lambda: self._on_commit(event))

    def add(self, node: Node) -> None:
        """Join ``node`` to the graph and compute its first value (on the scheduler thread)."""
        self.submit(_Init(self, node))

    def add_commit_hook(self, hook: CommitHook, *, absorb: Absorber | None = None) -> None:
        """Call ``hook(event)`` on the scheduler thread for each durable commit, before the
        commit's re-runs: the nodes it returns re-run in the same round as the nodes watching
        the cells the commit wrote (dependency order, each at most once, R54). An extension
        uses it to decide from the commit's ops what must re-run; a hook that raises is logged
        and the commit is still processed.

        ``absorb(event)``, if given, lets a commit nobody watches stay on the committing thread
        (no scheduler wake-up): it is called there, under the scheduler's lock while the
        scheduler thread is idle, and returns True when the hook would return no nodes for the
        commit, having updated whatever bookkeeping the hook keeps. It must agree with the hook
        and be idempotent with it: the commit may still reach the hook (another hook declined).
        Without ``absorb`` every commit with ops wakes the scheduler."""

        def install() -> None:  # (under _lock: _is_quiet reads both lists under it)
            self._commit_hooks.append(hook)
            self._absorbers.append(absorb)

        def install_in_turn() -> None:
            with self._lock:
                install()

        with self._lock:
            if not self._queue and not self._busy:
                # Idle (an extension's hook installed as the runtime is made): no commit is
                # queued or being processed, so the hook sees exactly the commits that come
                # next, as installed in turn would — and no work is left for settle() to wait
                # for (settle(timeout=0) on a runtime just made said "not settled").
                install()
                return
        self.submit(install_in_turn)

    def rerun(self, nodes: list[Node]) -> None:
        """Re-run ``nodes`` (and what depends on them) as one round, on the scheduler thread:
        for changes the runtime does not see as commits (a file written by another program)."""
        self.submit(lambda: self._propagate(list(nodes)))

    def ended(self, on_completed: Completer | None) -> None:
        """Tell a subscriber of a closed runtime that the stream has ended, as it ended for
        those subscribed then: ``on_completed`` at once, on the caller's thread."""
        if on_completed is not None:
            _deliver([(_call_completed, on_completed)])

    def subscribe(
        self,
        node: Node,
        callback: Subscriber,
        on_error: ErrorHandler | None = None,
        on_completed: Completer | None = None,
    ) -> Subscription:
        """Call ``callback`` with the node's current value (``on_error`` with its error, if its
        computation raised), then with each change; ``on_completed`` when the runtime closes."""
        self.check_forked()
        observer = Observer(callback, on_error, on_completed)
        with self._lock:
            closed = self._closed
            if not closed:
                node.joining += 1  # it holds the node from now on (see _maybe_release)
                self._joining[id(observer)] = observer
        if closed:
            self.ended(on_completed)
            return Subscription(node, observer)

        def run() -> None:
            with self._lock:
                node.joining -= 1
                if self._joining.pop(id(observer), None) is None:
                    return  # the runtime closed first, and told it so (see _complete_all)
            unborn = id(node) in self._unborn  # then told at its first value (see _born)
            if not unborn:
                self._ensure_ready(node)
            node.subscribers.append(observer)
            self._observed[id(node)] = node
            if unborn:
                return
            if node.error is not None:
                _deliver(self._failed(node, [observer], node.error))
            else:
                _deliver([(callback, node.value)])

        self.submit(run)
        return Subscription(node, observer)

    def unsubscribe(self, node: Node, observer: Observer) -> None:
        self.submit(lambda: self._leave(node, observer))

    def _leave(self, node: Node, observer: Observer) -> None:
        if observer in node.subscribers:
            node.subscribers.remove(observer)
        if not node.subscribers:
            self._observed.pop(id(node), None)
            self._maybe_release(node)

    def orphan(self, node: Node | Subscription) -> None:
        """``node``'s owner is gone (see :func:`own`), or the holder of a subscription is (an
        async iterator dropped unclosed: see ``_streams.NodeValues``), which then ends; from any
        thread. A finalizer may run where this thread holds ``_lock`` already: then the node
        waits for the next work."""
        self._orphans.append(node)
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._queue_release()
        finally:
            self._lock.release()

    def _queue_release(self) -> None:
        """(Under ``_lock``.)"""
        if not self._closed and not self._release_queued:
            self._release_queued = True
            self._queue_item(self._epoch_here(), self._release_orphans)

    def _release_orphans(self) -> None:
        with self._lock:
            self._release_queued = False
        orphans = self._orphans
        waiting: list[Node | Subscription] = []
        while orphans:
            node = orphans.popleft()
            if isinstance(node, Subscription):
                with self._lock:
                    if id(node.observer) in self._joining:  # its joining is queued: it leaves
                        waiting.append(node)  # after it, at a release queued behind it
                        self._queue_release()
                        continue
                self._leave(node.node, node.observer)
                continue
            if not node.ready.is_set() and id(node) not in self._unborn:
                waiting.append(node)  # its first value comes first (settle waits for it, R51)
                continue
            node.orphaned = True
            self._maybe_release(node)
        orphans.extend(waiting)

    def _maybe_release(self, node: Node) -> None:
        """Release ``node`` when its owner, its subscribers and its dependents are all gone;
        then its inputs, which may have been held by it alone."""
        stack = [node]
        while stack:
            node = stack.pop()
            if (
                node.released
                or not node.orphaned
                or node.subscribers
                or node.joining
                or node.dependents
            ):
                continue
            node.released = True
            self._unhold(node)
            self._unborn.discard(id(node))
            self._observed.pop(id(node), None)
            for dep in node.deps:
                if node in dep.dependents:
                    dep.dependents.remove(node)
                stack.append(dep)
            try:
                node.release()
            except Exception:
                log.exception("release of %r failed", node)

    def set_value(self, node: Node, value: Any, *, notify: bool = True) -> None:
        """Give ``node`` a new value (scheduler thread only; from other threads submit a callable
        that calls this). With ``notify`` the change reaches its subscribers and dependents as one
        round of re-runs; without, the value is replaced silently."""
        if not notify:
            node.value = value
            return
        self._propagate([node], preset={node: value})

    def set_values(self, values: dict[Node, Any]) -> None:
        """Give several nodes new values as one round of re-runs (scheduler thread only): their
        subscribers and dependents are told once, in dependency order."""
        if values:
            self._propagate(list(values), preset=values)

    def landed(self, node: Node) -> None:
        """``node``'s computation in flight has landed (scheduler thread, after its value was
        set): its dependents held back meanwhile re-run now, unless another of their
        dependencies is still in flight."""
        held = self._held
        if not held:
            return
        # Every node held downstream of it, at any depth (one may wait for it through a node
        # that was not held itself: a derived cell over the query that did not re-run). Each is
        # computed again, in dependency order, and held again if it still waits for another.
        due = [d for d in _reachable(node.dependents, _dependents_of) if id(d) in held]
        for dependent in due:
            self._unhold(dependent)
        if due:
            self._propagate(due)

    def hold_while_waiting(self, node: Node) -> bool:
        """Whether a dependency of ``node``, at any depth, is in flight or held back (its inputs
        are not all as of one commit yet); if so ``node`` is held with it and computed again
        once it lands (:meth:`landed`). For a node whose computation ran off the thread with
        inputs that may have moved on meanwhile (a query's parameters, R54), when it lands."""
        if node.deps and _waits(node, self._held, {}):
            self._hold(node)
            return True
        return False

    def _hold(self, node: Node) -> None:
        """Hold ``node`` back (see ``_held``); it counts for ``settle`` until it is let go."""
        work = self._held_work.get(id(node))
        if work is None:
            self._held[id(node)] = node
            self._held_work[id(node)] = self.begin_work()
        else:
            self.lower(work)

    def _unhold(self, node: Node) -> None:
        """Let ``node`` go from ``_held`` (if held): the running item takes over its cause."""
        if self._held.pop(id(node), None) is not None:
            self._forget_inits()  # (what a node held reflects has changed)
        work = self._held_work.pop(id(node), None)
        if work is not None:
            self.act(work)
            self.end_work(work)

    def after_commit(self, space: SpaceFile, seq: int, work: Callable[[], None]) -> None:
        """Run ``work`` (scheduler thread) once the scheduler has processed commit ``seq`` of
        ``space`` — at once if it already has. Used to hold back results read from files that
        are ahead of what subscribers have been told (R50). Parked work counts for ``settle``
        (it is a re-run caused by a past commit), and the runtime is asked to take that commit
        in now rather than at its next poll. For a space whose file was replaced no commit
        will come: such work is dropped (see :meth:`space_replaced`)."""
        if seq <= self.processed_seq(space):
            work()
            return
        if space.replaced:
            log.debug("dropped a result read as of seq %d of replaced %r", seq, space)
            return
        self._parked.setdefault(space, []).append((seq, work, self.begin_work()))
        space.wake()

    def space_replaced(self, space: SpaceFile) -> None:
        """``space``'s file was found replaced by another file (R73), and its reads raise
        :class:`StoreChanged` from now on: on the scheduler thread, the view lets its cells go
        and the nodes watching them compute again, so that they, what derives from them and
        their subscribers get that error instead of keeping the replaced file's values as
        current. The results parked for its commits are dropped (read from a file the space
        this runtime has open never wrote that far, no commit of it will ever come, and
        ``settle`` would wait for them for ever)."""
        self.submit(lambda: self._replaced(space))

    def _replaced(self, space: SpaceFile) -> None:
        for _, _, unit in self._parked.pop(space, []):
            self.end_work(unit)
        view = self._view
        for key in [key for key in view if key[0] is space]:
            del view[key]
        nodes = [
            node
            for (file, _), watching in self._watchers.items()
            if file is space
            for node in watching
        ]
        if nodes:
            self._propagate(nodes)

    def processed_seq(self, space: SpaceFile) -> int:
        """The last seq of ``space`` whose re-runs this scheduler has started (scheduler thread)."""
        return self._processed.get(space, space.opened_seq)

    def begin_work(self) -> Work:
        """Count work running outside the scheduler thread, or held on it (``settle`` waits for
        it), under the epoch of its cause (see :meth:`submit`)."""
        with self._lock:
            work = Work(self._epoch_here())
            self._count(work.epoch)
        return work

    def end_work(self, work: Work) -> None:
        with self._lock:
            self._uncount(work.epoch)

    def finish_work(self, then: Callable[[], None], work: Work) -> None:
        """Submit ``then`` and end ``work``, atomically for ``settle``: ``then`` keeps its epoch."""
        with self._lock:
            if not self._closed:
                self._queue_item(work.epoch, then)
            self._uncount(work.epoch)

    @property
    def current_epoch(self) -> int:
        """The epoch the running item works for (scheduler thread; 0, the oldest, outside an
        item, which never happens)."""
        current = self._current
        return 0 if current is None else current

    def act(self, work: Work) -> None:
        """(Scheduler thread.) The running item takes up ``work``, left by an older cause: from
        here until it ends, it and all it starts count under that cause's epoch."""
        epoch, current = work.epoch, self._current
        if current is not None and epoch < current:
            self._enter(epoch)

    def _enter(self, epoch: int) -> None:
        """(Scheduler thread.) The running item counts under ``epoch`` too, until it ends."""
        with self._lock:
            self._count(epoch)
        self._item_epochs.append(epoch)
        self._current = epoch

    @contextmanager
    def working_for(self, epoch: int) -> Iterator[None]:
        """(Scheduler thread.) What the block starts counts under ``epoch``: work a node was
        asked for by a cause of its own while it ran (a query's next run, asked for by a newer
        commit while a read was in flight), started by the item that landed that read."""
        previous = self._current
        if previous is None:
            yield
            return
        self._enter(epoch)
        try:
            yield
        finally:
            current = self._current
            assert current is not None
            # (Lowered in the block for an older cause: the rest of the item keeps it.)
            self._current = current if current < min(epoch, previous) else previous

    def lower(self, work: Work) -> None:
        """(Scheduler thread.) The running item joins ``work`` (a read it asks for too): it
        counts from now on under the older of the two epochs."""
        current = self._current
        if current is not None and current < work.epoch:
            with self._lock:
                self._count(current)
                self._uncount(work.epoch)
                work.epoch = current

    @property
    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def building(self) -> _BuildingFor:
        """While the block runs, this thread runs work the scheduler waits for (a query
        worker building a run's rows, which calls user code: a row type's ``__post_init__``).
        A :meth:`settle` there would wait for that very work: it returns at once, as on the
        scheduler thread (see :attr:`settles_at_once`)."""
        return _BuildingFor(self)

    @property
    def settles_at_once(self) -> bool:
        """Whether :meth:`settle` called here returns at once: on the scheduler thread, or in
        work it waits for (:meth:`building`)."""
        return self.on_thread or any(s is self for s in _building.schedulers)

    @property
    def thread_ident(self) -> int | None:
        """The scheduler thread's ident."""
        return self._thread.ident

    def settle(
        self, timeout: float | None = None, *, stuck: Callable[[], None] | None = None
    ) -> bool:
        """Block until every piece of work submitted before the call, and all it caused, is
        done; work submitted later with a cause of its own (a newer commit) is not waited for,
        so a store that another thread or process writes without a pause settles too. Returns
        False on timeout. On the scheduler thread itself, or in work it waits for (rows built
        on a query worker, see :meth:`building`), it returns at once.

        Each piece of work carries the *epoch* of its cause: work with a cause of its own (a
        commit handed over, a node added, a subscription) gets a new one, work it causes gets
        its cause's (what the running item submits, reads it sends to workers and what they
        hand back, work parked until a commit, nodes held until an input lands); work taken
        up for an older cause moves to that cause's epoch. Settling waits until no work of an
        epoch older than the call is left. ``stuck`` is called at each slice of the wait: it
        raises when the wait can never end (see ``Runtime._settle``)."""
        if self.settles_at_once:
            return True
        with self._waited_by_thread() as waiter:
            end = None if timeout is None else time.monotonic() + timeout
            with self._lock:
                past = self._next_epoch
                # In slices: Ctrl-C may reach another thread of the process, and a long wait
                # here would hold it back from the main thread until the wait ended.
                while not self._settled(past):
                    step = _WAIT_SLICE if end is None else min(_WAIT_SLICE, end - time.monotonic())
                    if step <= 0:
                        return False
                    self._idle.wait(step)
                    if stuck is not None:
                        stuck()
                    if waiter is not None:
                        self._check_cycle(waiter, _SETTLE_CYCLE)
                return True

    def wait_ready(self, node: Node) -> None:
        """Wait, off this scheduler's thread, for ``node``'s first value (``ClosedError`` if
        the runtime closes meanwhile). On another runtime's scheduler thread (a subscriber or
        derive function reading this runtime's derived cell or query) the wait is recorded as
        ``settle``'s is, and raises :class:`TransactionError` when this runtime's thread waits,
        through such waits, for that one: the two first values would wait for each other for
        ever, and both runtimes with them. In a handler's try that holds a space's write lock,
        it raises :class:`ConflictError` once this thread waits for that lock (``stuck_check``),
        as ``settle`` does there."""
        check = self.stuck_check
        stuck = check() if check is not None else None
        with self._waited_by_thread() as waiter:
            while not node.ready.wait(_WAIT_SLICE):
                self.check_open()
                if stuck is not None:
                    stuck()
                if waiter is not None:
                    self._check_cycle(waiter, _GET_CYCLE)

    @contextmanager
    def _waited_by_thread(self) -> Iterator[Scheduler | None]:
        """Record, while inside, that the calling thread waits for this scheduler, when it is
        another runtime's scheduler thread; gives that runtime's scheduler (None elsewhere)."""
        me = threading.get_ident()
        waiter = _SCHEDULER_OF.get(me)  # this is another runtime's scheduler thread
        if waiter is None:
            yield None
            return
        _SETTLING[me] = self
        try:
            yield waiter
        finally:
            _SETTLING.pop(me, None)

    def _check_cycle(self, waiter: Scheduler, message: str) -> None:
        """Raise :class:`TransactionError` if this scheduler's thread waits, through the
        settles of other runtimes' subscribers, for ``waiter``, whose thread waits for this one
        to settle: none of them could ever deliver again (each settle would wait for ever, and
        a timeout would only end it with nothing delivered)."""
        at: Scheduler = self
        for _ in range(len(_SETTLING) + 1):
            ident = at._thread.ident
            nxt = _SETTLING.get(ident) if ident is not None else None
            if nxt is None:
                return
            if nxt is waiter:
                raise TransactionError(message)
            at = nxt

    def _settled(self, past: int) -> bool:
        """(Under ``_lock``.) Whether no work of an epoch before ``past`` is left."""
        return self._closed or not self._pending or min(self._pending) >= past

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run: nothing added from now on is ever computed."""
        return self._closed

    def close(self) -> None:
        """Stop: every subscriber still subscribed gets ``on_completed`` (on the scheduler
        thread, ahead of queued work), then queued work is dropped and the thread ends. A
        thread busy past the wait (in a slow subscriber) completes them once back, then ends."""
        late: Callable[[], None] | None = None
        if self.on_thread:
            self._complete_all()
        else:
            completed = threading.Event()

            def complete() -> None:
                self._complete_all()
                completed.set()

            with self._lock:
                if not self._closed:
                    self._queue.appendleft((0, complete))
                    self._count(0)
                    self._wake.notify()
                    pending = True
                else:
                    pending = False
            if pending and not completed.wait(timeout=CLOSE_WAIT):
                late = complete
        with self._lock:
            self._closed = True
            self._late_completion = late
            self._queue.clear()
            self._pending.clear()
            self._wake.notify_all()
            self._idle.notify_all()
            # Made while the thread did not get to _complete_all (busy past the wait above).
            joining = list(self._joining.values())
            self._joining.clear()
        _deliver([(_call_completed, o.on_completed) for o in joining if o.on_completed])
        if not self.on_thread:
            self._thread.join(timeout=CLOSE_WAIT)

    def closing(self) -> None:
        """The runtime begins to close (its parts close before this scheduler does): from now
        on a computation that raises :class:`ClosedError` met the close (see :meth:`_failed`)."""
        self._closing = True

    def _ends_stream(self, error: BaseException) -> bool:
        """Whether ``error``, raised by a computation, is this runtime closing under it — not a
        ``ClosedError`` of something else the computation used (another runtime closed), which
        is its failure like any other."""
        return isinstance(error, ClosedError) and (self._closing or self._closed)

    def _failed(
        self, node: Node, observers: list[Observer], error: BaseException
    ) -> list[tuple[Callable[[Any], None], Any]]:
        """What ``observers`` of ``node``, whose computation raised ``error``, are told:
        ``on_error``; but a computation that met the runtime closing failed at nothing — the
        stream has ended, as it ends for every subscriber at close, so they get
        ``on_completed`` (once: they leave the node)."""
        if not self._ends_stream(error):
            return _errors(observers, error)
        ended = list(observers)
        node.subscribers[:] = [o for o in node.subscribers if o not in ended]
        if not node.subscribers:
            self._observed.pop(id(node), None)
        return [(_call_completed, o.on_completed) for o in ended if o.on_completed is not None]

    def _complete_all(self) -> None:
        """Every subscriber gets ``on_completed``, those whose subscription has not joined its
        node yet too; from here on nothing is run, so none gets a value after it."""
        with self._lock:
            self._closed = True  # (the thread ends after this item; close() clears the rest)
            joining = list(self._joining.values())
            self._joining.clear()
        deliveries: list[tuple[Callable[[Any], None], Any]] = [
            (_call_completed, o.on_completed) for o in joining if o.on_completed is not None
        ]
        for node in self._observed.values():
            for observer in node.subscribers:
                if observer.on_completed is not None:
                    deliveries.append((_call_completed, observer.on_completed))
            node.subscribers.clear()
        self._observed.clear()
        _deliver(deliveries)

    def check_forked(self) -> None:
        """Raise :class:`ClosedError` in a process forked from the one that made this
        scheduler: its thread is the parent's, and nothing here would ever compute what a
        caller waits for (a derived cell's first value) or tell a subscriber anything."""
        if self._made_in != generation():
            raise ClosedError(f"this runtime cannot be used here: {FORKED_ADVICE}")

    def check_open(self) -> None:
        self.check_forked()
        if self._closed:
            raise ClosedError("the runtime is closed: open a new Runtime")

    # -- the view ------------------------------------------------------------------------------

    def entity(self, space: SpaceFile, cell_id: str) -> Entity:
        """The committed value of a cell as of the commit being processed (scheduler thread)."""
        key = (space, cell_id)
        held = self._view.get(key)
        if held is None:
            held = space.entity(cell_id)
            if self._keeps(key):
                self._view[key] = held
        return held

    def expect(self, space: SpaceFile, cell_id: str) -> None:
        """Announce a node that will :meth:`watch` the cell; call it (any thread) *before*
        reading the node's seed. From then on the view keeps the cell's commits, so one
        processed before the node joins the graph is not lost to it (its seed may be older)."""
        key = (space, cell_id)
        with self._lock:
            self._expected[key] = self._expected.get(key, 0) + 1

    def watch(self, space: SpaceFile, cell_id: str, node: Node, seed: Entity) -> None:
        """Re-run ``node`` after each commit that writes the cell (scheduler thread). ``seed`` is
        the committed value seen when the node was made (after :meth:`expect`); the view starts
        from it unless it already holds that cell (revisions only move forward)."""
        key = (space, cell_id)
        self._watchers.setdefault(key, []).append(node)
        with self._lock:
            left = self._expected.get(key, 0) - 1
            if left > 0:
                self._expected[key] = left
            else:
                self._expected.pop(key, None)
        held = self._view.get(key)
        if held is None or held.rev < seed.rev:
            self._view[key] = seed

    def _keeps(self, key: tuple[SpaceFile, str]) -> bool:
        """Whether the view holds ``key``: watched, or expected to be."""
        return key in self._watchers or key in self._expected

    @property
    def view_count(self) -> int:
        """How many cells the view holds (tests and benchmarks)."""
        return len(self._view)

    # -- the thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        me = threading.get_ident()
        _SCHEDULER_OF[me] = self
        try:
            self._run()
        finally:
            _SCHEDULER_OF.pop(me, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    late, self._late_completion = self._late_completion, None
                    break
                self._current, work = self._queue.popleft()
                self._item_epochs = [self._current]
                self._busy = True
            if type(work) is not _Init or self._orphans:
                self._forget_inits()
            if self._orphans:
                self._release_orphans()  # (each release's own failure is logged there)
            try:
                work()
            except BaseException:  # user code (a derive function) raising SystemExit too:
                # the thread outlives it, or nothing would re-run or settle again
                log.exception("scheduler work failed")
            finally:
                with self._lock:
                    self._busy = False
                    for epoch in self._item_epochs:
                        self._uncount(epoch)
                    self._current = None
        if late is not None:
            try:
                late()
            except BaseException:
                log.exception("completing the subscribers at close failed")

    def _init(self, node: Node) -> None:
        if node.released or node.ready.is_set() or id(node) in self._unborn:
            return  # (released: its owner was gone before it joined)
        for dep in node.deps:
            if not dep.ready.is_set() and id(dep) not in self._unborn:
                self._init(dep)
            dep.dependents.append(node)
        node.attach()
        ahead = _ahead(node) if node.deps else {}
        unborn = self._unborn
        memo = self._init_memo
        if memo is None:  # (first computations in a row: see _Init)
            memo = {}
        if (
            ahead
            or (node.deps and _waits(node, self._held, memo, stale=True))
            or any(id(dep) in unborn for dep in node.deps)  # (an input with no value yet)
        ):
            # An input holds a value older than the commit a computation in flight will land
            # (or waits for one that does), or a cell's seed is from a commit the scheduler has
            # not processed yet (another process's, read from the file): the first value waits
            # for it too, so it is never a mix of two commits (R54) — the query that commit
            # re-runs is in flight by then. Held like any node; born when released.
            self._unborn.add(id(node))
            self._hold(node)
            for space, seq in ahead.items():
                self.after_commit(space, seq, lambda: self._propagate([node]))
            return
        self._born(node)

    def _forget_inits(self) -> None:
        """End the run of first computations (see ``_init_memo``)."""
        if self._init_memo is not None:
            self._init_memo = None
            self._init_kept.clear()

    def _born(self, node: Node) -> None:
        """Compute ``node``'s first value; tell the subscribers that came while it waited."""
        try:
            _, node.value = node.compute()
        except BaseException as exc:  # the node's own failure (see Node.error)
            node.error = exc
            if not self._ends_stream(exc):  # the runtime closed first: nothing is wrong
                log.warning("first computation of %r failed: %r", node, exc)
        node.ready.set()
        if node.subscribers:
            if node.error is not None:
                _deliver(self._failed(node, node.subscribers, node.error))
            else:
                _deliver([(o.on_next, node.value) for o in node.subscribers])

    def _ensure_ready(self, node: Node) -> None:
        if node.ready.is_set():
            return
        if id(node) not in self._unborn:
            self._init(node)  # (which may hold it back: an input's re-run is in flight)
            if node.ready.is_set() or id(node) not in self._unborn:
                return
        # Its value is needed now, on this thread (a computation or a subscriber reads it):
        # computed with what its inputs hold, as before any waiting was possible — inputs
        # held back with it first, each before what reads it (a computation reads its
        # inputs' values as they are).
        for held in self._unborn_inputs(node):
            self._unborn.discard(id(held))
            self._unhold(held)
            self._born(held)

    def _unborn_inputs(self, node: Node) -> list[Node]:
        """``node`` and the inputs, at any depth, held back before their first value, each
        after its own inputs (a stack of its own: chains thousands deep)."""
        order: list[Node] = []
        seen = {id(node)}
        stack: list[tuple[Node, Iterator[Node]]] = [(node, iter(node.deps))]
        while stack:
            current, deps = stack[-1]
            for dep in deps:
                if id(dep) not in seen and id(dep) in self._unborn and not dep.ready.is_set():
                    seen.add(id(dep))
                    stack.append((dep, iter(dep.deps)))
                    break
            else:
                stack.pop()
                order.append(current)
        return order

    def _is_quiet(self, event: CommitEvent) -> bool:
        if self._parked.get(event.space):
            return False
        watchers = self._watchers
        if watchers:  # plain loops: this runs on every commit
            space = event.space
            for cell_id in event.writes:
                if watchers.get((space, cell_id)):
                    return False
        # Last, as absorbing updates the hooks' bookkeeping: a commit hook decides from the
        # ops what re-runs, here or on the scheduler thread. A commit of cells alone is
        # nothing to a hook without an absorber; one with an absorber may still want it (the
        # live queries re-run when a cell their input reaches its database through changes).
        if not event.ops:
            return all(absorb is None or absorb(event) for absorb in self._absorbers)
        return all(absorb is not None and absorb(event) for absorb in self._absorbers)

    def _advance(self, event: CommitEvent) -> list[Node]:
        """Take ``event`` into the view; return the nodes watching what changed."""
        self._forget_inits()  # (also when called off the thread: the scheduler is idle then)
        self._processed[event.space] = event.seq
        touched: list[Node] = []
        watchers = self._watchers
        expected = self._expected
        if not watchers and not expected:
            return touched
        for cell_id, entity in event.writes.items():
            key = (event.space, cell_id)
            if key not in watchers and key not in expected:
                continue
            held = self._view.get(key)
            if held is not None and held.rev >= entity.rev:
                continue
            self._view[key] = entity
            touched.extend(watchers.get(key, ()))
        return touched

    def _on_commit(self, event: CommitEvent) -> None:
        touched = self._advance(event)
        for hook in self._commit_hooks:
            try:
                touched.extend(hook(event))
            except Exception:
                log.exception("commit hook %r failed for seq %d", hook, event.seq)
        if touched:
            self._propagate(touched)
        parked = self._parked.get(event.space)
        if parked:
            due = [(work, unit) for seq, work, unit in parked if seq <= event.seq]
            parked[:] = [entry for entry in parked if entry[0] > event.seq]
            for work, unit in due:
                self.act(unit)
                try:
                    work()
                except Exception:
                    log.exception("work held for seq %d failed", event.seq)
                finally:
                    self.end_work(unit)

    def _propagate(self, start: list[Node], preset: dict[Node, Any] | None = None) -> None:
        # Keyed by (height, order) tuples: compared in C, and order is unique per node.
        heap = [(node.height, node.order, node) for node in start]
        heapq.heapify(heap)
        done: set[int] = set()
        deliveries: list[tuple[Callable[[Any], None], Any]] = []
        held = self._held
        waiting: dict[int, _Reflects] = {}  # what the nodes looked at in this round reflect
        # Nodes an input of which changed (or failed) in this round: a value given for one of
        # them (``preset``: a query's result that landed with this round) was computed from
        # that input's value before, and is dropped — it computes again, with the new one.
        moved: set[int] = set()
        while heap:
            _, _, node = heapq.heappop(heap)
            if id(node) in done or node.released:
                continue
            if not node.ready.is_set():
                if id(node) in self._unborn:  # released: its first value, unless still waiting
                    done.add(id(node))
                    unborn = self._unborn
                    if (
                        _waits(node, held, waiting)
                        or _ahead(node)
                        # An input held back before its first value has none to give (its own
                        # release came first and held it again): not "an older commit's value".
                        or any(id(dep) in unborn for dep in node.deps)
                    ):
                        self._hold(node)
                    else:
                        self._unborn.discard(id(node))
                        self._unhold(node)
                        self._born(node)
                continue
            done.add(id(node))
            given = preset is not None and node in preset
            if given and id(node) in moved:
                node.dropped()  # then computed again below, as any node whose input moved
                given = False
            if given:
                changed, value = True, preset[node]  # type: ignore[index]  # (given: a dict)
            elif node.deps and _waits(node, held, waiting):
                # A dependency, or one of its own (at any depth), is being recomputed off the
                # thread, or waits for one that is: re-run once it lands, so this node never
                # mixes that dependency's old value with the new (R54).
                self._hold(node)
                continue
            else:
                self._unhold(node)
                try:
                    changed, value = node.compute()
                except BaseException as exc:  # the node's own failure (see Node.error)
                    # Kept for get() and handed to subscribers' on_error; the last value stays.
                    if not self._ends_stream(exc):  # (the runtime closing: see _failed)
                        log.warning("re-computation of %r failed: %r", node, exc)
                    node.error = exc
                    deliveries.extend(self._failed(node, node.subscribers, exc))
                    # What derives from it is computed again too: it fails with this error (a
                    # value from before would pass for a current one, computed from an input
                    # that no longer holds it).
                    for dependent in node.dependents:
                        moved.add(id(dependent))
                        heapq.heappush(heap, (dependent.height, dependent.order, dependent))
                    continue
            recovered = node.error is not None
            node.error = None
            if not changed and not recovered:
                continue
            node.value = value
            deliveries.extend((o.on_next, value) for o in node.subscribers)
            for dependent in node.dependents:
                if preset is not None:
                    moved.add(id(dependent))
                heapq.heappush(heap, (dependent.height, dependent.order, dependent))
        _deliver(deliveries)


def _ahead(node: Node) -> dict[SpaceFile, int]:
    """The commits, by space, that inputs of ``node`` at any depth reflect and the scheduler has
    not processed yet (see :meth:`Node.ahead`). Inputs found caught up are not walked again:
    each node made on a chain thousands deep would walk it all (its first settle grew with the
    square of the chain)."""
    found: dict[SpaceFile, int] = {}
    looked: list[Node] = []
    for dep in _reachable(_deps_of(node), _deps_of):
        looked.append(dep)
        mark = dep.ahead()
        if mark is not None:
            found[mark[0]] = max(found.get(mark[0], 0), mark[1])
    if not found:
        for dep in looked:  # each one's inputs are among those looked at
            dep.caught_up = True
    return found


def _reachable(start: Iterable[Node], edges: Callable[[Node], Iterable[Node]]) -> Iterator[Node]:
    """Each node reachable from ``start`` along ``edges``, ``start`` included, once."""
    seen: set[int] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(edges(node))


def _deps_of(node: Node) -> Iterable[Node]:
    return [dep for dep in node.deps if not dep.caught_up]


def _dependents_of(node: Node) -> Iterable[Node]:
    return node.dependents


class _Init:
    """A node's first computation, queued by :meth:`Scheduler.add`: such items run one after
    another share what the nodes they look at reflect (``Scheduler._init_memo``)."""

    __slots__ = ("node", "scheduler")

    def __init__(self, scheduler: Scheduler, node: Node) -> None:
        self.scheduler = scheduler
        self.node = node

    def __call__(self) -> None:
        scheduler = self.scheduler
        if scheduler._init_memo is None:
            scheduler._init_memo = {}
        scheduler._init_kept.append(self.node)
        scheduler._init(self.node)


def _waits(
    node: Node, held: dict[int, Node], memo: dict[int, _Reflects], *, stale: bool = False
) -> bool:
    """Whether ``node``'s inputs may not all be as of one commit: a dependency at any depth is
    in flight (with ``stale``: holds a value older than its run in flight will land, see
    ``Node.stale``) or held back, and the node also reads something as of the latest commit —
    a cell (directly or through other nodes), a second such dependency, or a file of its own
    (a query, see ``Node.reads_file``) — or the dependency's value is no commit's at all (in
    flight and not stale: pending for new parameters). A node whose every input comes from one
    dependency whose value is an older commit's computes from that value: the inputs are all as
    of that commit (a cell derived from a live query follows each run that lands, even while
    commits keep coming). ``memo`` keeps what the nodes looked at in a round reflect.

    The walk keeps its own stack, so a chain of derived cells thousands deep is no deeper for
    Python than one cell (no ``RecursionError``)."""
    waiting, latest = _reflects(node, held, memo, stale)
    return bool(waiting) and (latest or len(waiting) > 1 or node.reads_file)


# What a node's value reflects: the nodes in flight (or held) it comes from, by id, and whether
# it also comes from something as of the latest commit (a cell, a file a query reads).
_Reflects = tuple[frozenset[int], bool]
_NOTHING: frozenset[int] = frozenset()
_LATEST: _Reflects = (_NOTHING, True)


def _reflects(
    node: Node, held: dict[int, Node], memo: dict[int, _Reflects], stale: bool
) -> _Reflects:
    """What ``node``'s inputs reflect together (see ``_waits``); ``memo`` keeps, by node id,
    what each dependency looked at reflects with its own value."""
    # Each frame: the node, its dependencies left to look at, and what those seen reflect.
    frames: list[tuple[Node, Iterator[Node], set[int], list[bool]]] = [
        (node, iter(node.deps), set(), [False])
    ]
    done: _Reflects | None = None  # what the frame that just ended found
    while True:
        current, deps, waiting, latest = frames[-1]
        if done is not None:  # the dependency just looked at, through its own inputs
            waiting.update(done[0])
            latest[0] = latest[0] or done[1]
            done = None
        descended = False
        for dep in deps:
            key = id(dep)
            found = memo.get(key)
            if found is None:
                if key in held or dep.stale:
                    found = memo[key] = (frozenset((key,)), False)
                elif not stale and dep.in_flight:
                    # Its value is no commit's (a query pending for new parameters, made in the
                    # same commit's round): nothing computes from it until its run lands, or a
                    # cell derived from it would run twice for that commit (R54).
                    found = memo[key] = (frozenset((key,)), True)
                elif not dep.deps or not (dep.may_wait or held):
                    # A cell, a query of fixed parameters, or a node no input of which can be
                    # in flight, with nothing held: as of the latest commit, without walking
                    # its inputs (a chain thousands deep was walked for each node made on it).
                    found = memo[key] = _LATEST
                else:
                    frames.append((dep, iter(dep.deps), set(), [dep.reads_file]))
                    descended = True
                    break
            waiting.update(found[0])
            latest[0] = latest[0] or found[1]
        if descended:
            continue
        frames.pop()
        done = (frozenset(waiting) if waiting else _NOTHING, latest[0])
        if not frames:
            return done
        memo[id(current)] = done


def _errors(
    observers: list[Observer], exc: BaseException
) -> list[tuple[Callable[[Any], None], Any]]:
    found: list[tuple[Callable[[Any], None], Any]] = []
    for observer in observers:
        if observer.on_error is not None:
            found.append((observer.on_error, exc))
        else:
            log.error("%r has no on_error; the error it would get: %r", observer.on_next, exc)
    return found


def _call_completed(on_completed: Completer) -> None:
    on_completed()


def _deliver(deliveries: list[tuple[Callable[[Any], None], Any]]) -> None:
    for callback, value in deliveries:
        try:
            callback(value)
        except Exception:
            log.exception(_RAISED, _subscriber(callback))
        except BaseException:
            # SystemExit or KeyboardInterrupt raised by the subscriber's own code (signals reach
            # the main thread only): on the runtime's thread it would end the thread, and with
            # it every later delivery and settle(). On the main thread it is the caller's.
            if threading.current_thread() is threading.main_thread():
                raise
            log.exception(_RAISED, _subscriber(callback))


_RAISED = "subscriber %r raised; other subscribers still get the value"


def _subscriber(callback: Callable[[Any], None]) -> object:
    """The function a user subscribed, for a log line: ``observe().subscribe(fn)`` hands the
    scheduler reactivex's observer, which holds ``fn`` as its ``_on_next``."""
    observer = getattr(callback, "__self__", None)
    return getattr(observer, "_on_next", callback)

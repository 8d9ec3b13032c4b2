"""``@sc.handler``: run a function in its own transaction, commit, retry on conflict."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from sqlite_cells.codec import ConflictError, SqliteCellsError, TransactionError, brief_repr
from sqlite_cells.runtime._boundary import InvalidArgument, checked_arguments
from sqlite_cells.runtime._leaving import Leaving
from sqlite_cells.runtime._lock_holder import LockHolder, settle_future
from sqlite_cells.runtime._lock_wait import abandon_lock_waits_on
from sqlite_cells.runtime._space_file import LOCK_PATIENCE, SpaceFile
from sqlite_cells.runtime._streams import AWAKE_EVERY
from sqlite_cells.runtime._tx import (
    Transaction,
    TxState,
    current_transaction,
    take,
    transaction,
    validate_elsewhere,
)

__all__ = ["DEFAULT_TRIES", "MAX_TRIES", "handler", "note_taken", "taken_by_earlier_try"]

DEFAULT_TRIES = 10
# SPEC §5: "handlers try at most 10 times in all"; a larger tries= is refused, not capped.
MAX_TRIES = 10
# Tries made optimistically before the handler runs its body holding the space's write lock
# (an async one also waits for its turn in the space first, see _turns and _lock_holder).
OPTIMISTIC_TRIES = 3
# How long an async handler waits for its turn before it goes on optimistically (a body may
# await anything, even another handler).
TURN_PATIENCE = 1.0

P = ParamSpec("P")
_T = TypeVar("_T")


class _Call:
    """One call of a handler, across its tries: the one-shot iterators its tries took items
    from (by id, each kept beside its id so that the id stays its own until the call ends),
    and the try that first took from each."""

    __slots__ = ("attempt", "taken")

    def __init__(self) -> None:
        self.attempt = 0
        self.taken: dict[int, tuple[Iterator[Any], int]] = {}


# The handler call whose body runs in this context (a nested handler joins its caller's).
_call: ContextVar[_Call | None] = ContextVar("sqlite_cells_handler_call", default=None)


def taken_by_earlier_try(source: Iterator[Any]) -> bool:
    """True when an earlier try of the handler call running now took items from ``source``, a
    one-shot iterator (see :func:`note_taken`). A handler runs its body again after a conflict
    with the same arguments, and an iterator made outside the body gives its items only once:
    the later try would find it empty (or half read) and commit without them. False outside a
    handler call."""
    call = _call.get()
    if call is None:
        return False
    taken = call.taken.get(id(source))
    return taken is not None and taken[1] < call.attempt


def note_taken(source: Iterator[Any]) -> None:
    """Note that the try of the handler call running now took items from ``source`` (one at
    least: an iterator that gave none has none to lose, and a later try finding it empty
    writes what the earlier one would have). Nothing outside a handler call."""
    call = _call.get()
    if call is not None:
        call.taken.setdefault(id(source), (source, call.attempt))


class _Decorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, None], /) -> Callable[P, int | None]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]  # (a coroutine is an object: listed first)
        self, fn: Callable[P, Coroutine[Any, Any, Any]], /
    ) -> Callable[P, Coroutine[Any, Any, int | None]]: ...
    @overload
    def __call__(self, fn: Callable[P, object], /) -> Callable[P, int | None]: ...


# A body returning None comes first: a type checker that takes the first overload an argument
# typed Any matches (pyright, for a body without a return annotation) then types the handler as
# the plain function it is, not as a coroutine. (mypy gives up on such a call: the handler is
# typed Any there; annotate the body's return, `-> None`, to have its calls checked.)
@overload
def handler(fn: Callable[P, None], /) -> Callable[P, int | None]: ...
@overload
def handler(  # type: ignore[overload-overlap]  # (as in _Decorator)
    fn: Callable[P, Coroutine[Any, Any, Any]], /
) -> Callable[P, Coroutine[Any, Any, int | None]]: ...
@overload
def handler(fn: Callable[P, object], /) -> Callable[P, int | None]: ...
@overload
def handler(*, tries: int = DEFAULT_TRIES) -> _Decorator: ...


@checked_arguments
def handler(fn: Callable[..., Any] | None = None, /, *, tries: int = DEFAULT_TRIES) -> Any:
    """Decorate a function so each call runs its body in a new transaction and commits it.

    The transaction binds to the space of its first write. On :class:`ConflictError` the body
    runs again, at most ``tries`` times in all, then the last conflict is raised. ``tries`` is
    from 1 to ``MAX_TRIES`` (10, the SPEC's limit and the default); anything else is an
    :class:`InvalidArgument` when the decorator is made, as is a ``fn`` that is not callable. The
    first tries are optimistic (reads take no lock); after ``OPTIMISTIC_TRIES`` conflicts the
    body runs while holding the space's write lock (the space it writes; for a body that only
    reads, the space of the cell that changed), where it cannot conflict, so a hot cell
    written by many threads or processes does not starve a writer, nor a reader. The call
    returns the commit's seq (None when the body wrote nothing). Called inside a transaction,
    the body joins it: nothing is committed then and the call returns None. Each try runs the
    body with the same arguments: an iterator among them is read once, so rows an earlier try
    took from it are refused by a later try's ``exec_many`` (see :func:`taken_by_earlier_try`).

    An ``async def`` body gives an async handler (SPEC §3): awaiting it runs the body on the
    event loop, then commits in a worker thread (``asyncio.to_thread``), so the fsync never
    blocks the loop. After ``OPTIMISTIC_TRIES`` conflicts it waits (without blocking the loop)
    for its turn among the async handlers retrying in that space, and keeps it until the call
    ends (see ``_turns``); each try then runs its body while a thread of its own holds the
    space's write lock and commits it there (see ``_lock_holder``), for at most
    ``LOCK_PATIENCE`` seconds of body.
    Cancelled while its commit runs, the call ends once the commit is decided (see
    ``_commit_off_loop``).
    The wrapper keeps the body's signature for type checkers (ParamSpec).
    """
    if not isinstance(tries, int) or isinstance(tries, bool) or tries < 1:
        raise InvalidArgument(
            f"tries must be an integer from 1 to {MAX_TRIES}, not {brief_repr(tries)}, such as "
            "tries=3"
        )
    if tries > MAX_TRIES:
        raise InvalidArgument(
            f"tries={brief_repr(tries)} is over the limit: a handler tries at most {MAX_TRIES} "
            f"times in all; pass tries={MAX_TRIES} or fewer, and to go on after that, catch "
            "ConflictError and call the handler again"
        )

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(body) or isinstance(body, Leaving):  # (a transact() block is no function)
            raise InvalidArgument(
                f"@sc.handler decorates a function, not {brief_repr(body)}: write @sc.handler "
                "above a def, "
                "or sc.handler(fn) with a function"
            )
        if inspect.isgeneratorfunction(body) or inspect.isasyncgenfunction(body):
            raise InvalidArgument(
                f"@sc.handler runs a function's body when it is called, but {_named(body)} is a "
                "generator function: calling it runs none of its body, so nothing would be "
                "written; return instead of yield"
            )
        if inspect.iscoroutinefunction(body):
            return _async_handler(body, tries)
        return _sync_handler(body, tries)

    return decorate if fn is None else decorate(fn)


def _sync_handler(body: Callable[..., Any], tries: int) -> Callable[..., int | None]:
    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> int | None:
        outer = current_transaction()
        if outer is not None and outer.state is TxState.OPEN:
            with transaction(None):  # joined: a body that raises writes nothing
                _ran(body, body(*args, **kwargs))
            return None
        space: SpaceFile | None = None
        call = _Call()
        token = _call.set(call)
        try:
            for attempt in range(tries):
                call.attempt = attempt
                exclusive = space is not None and attempt >= OPTIMISTIC_TRIES
                # Each try is a new transaction, bound by its first write as a fresh call's is:
                # the body, reading fresh state, may write another space than the try before
                # (the async handler's tries do the same).
                try:
                    if exclusive and space:
                        with space.exclusive(), transaction(None) as tx:
                            _run_body(body, args, kwargs, tx)
                    else:
                        with transaction(None) as tx:
                            _run_body(body, args, kwargs, tx)
                    return tx.seq
                except ConflictError as conflict:
                    if attempt == tries - 1:
                        raise _gave_up(conflict, body, tries) from conflict.__cause__ or conflict
                    space = _space_to_hold(tx, conflict) or space
                    # A short random pause spreads writers that keep colliding.
                    time.sleep(random.uniform(0, 0.001 * 2**attempt))
        finally:
            _call.reset(token)
        raise AssertionError("unreachable")

    _named_as_body(run, body)
    return checked_arguments(run, shape=body)


def _ended_under(body: Callable[..., Any], outer: Transaction) -> TransactionError:
    """The transaction an async handler joined ended while the handler's body ran: the body
    was awaited in a task that outlived the block that made it (``asyncio.create_task`` inside
    ``with space.transact():``), so what it wrote went with that transaction, or nowhere."""
    return TransactionError(
        f"handler {_named(body)} joined the transaction open where its task was made, and that "
        f"transaction was {outer.state.value} before the handler's body ended: what the body "
        "wrote was not committed by it (a rolled-back block takes it along). Await the handler "
        "inside the block, or make the task outside any transaction: it then commits on its own"
    )


def _run_body(
    body: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], tx: Transaction
) -> None:
    try:
        _ran(body, body(*args, **kwargs))
    except ConflictError:
        raise
    except Exception as exc:
        _check_reads(tx, exc)
        raise


def _check_reads(tx: Transaction, exc: Exception) -> None:
    """A body that raised ``exc`` may have met cells of two commits: reads are checked at
    commit (§2), and a commit made between two of its reads shows it a state no commit had,
    which its own checks can take for an error. When a cell it read has changed since, its
    error is a :class:`ConflictError` (caused by ``exc``), so the handler runs the body again
    as for any conflict — and says so if the tries run out. The body's own error stands when
    what it read is still current (or cannot be checked)."""
    if not tx.reads:
        return
    try:
        validate_elsewhere(tx, None)
    except ConflictError as conflict:
        raise conflict from exc
    except Exception:
        return


def _ran(body: Callable[..., Any], result: object, *, awaited: bool = False) -> None:
    """Refuse a body that returned a coroutine (a callable that is not an ``async def``
    function itself, such as an object with an ``async def __call__``; or an ``async def``
    body that returned another coroutine, ``return other_handler()`` without ``await``): its
    writes would never happen, so rather than commit nothing in silence the call raises, and
    the transaction writes nothing. Any other result is ignored (a returned generator is a
    value: the body ran)."""
    if not inspect.iscoroutine(result):
        return
    result.close()  # never run: closed so that Python does not warn it was never awaited
    if awaited:
        raise InvalidArgument(
            f"@sc.handler: {_named(body)} returned a coroutine it did not await "
            f"({brief_repr(result)}; `return other()` for `return await other()`?): what it "
            "would write never happens, so nothing was written; await it in the body"
        )
    raise InvalidArgument(
        f"@sc.handler: {_named(body)} returned a coroutine instead of running its body: a "
        "handler of awaitable work must be an `async def` function (then "
        "`await handler(...)`)"
    )


def _space_to_hold(tx: Transaction | None, conflict: ConflictError) -> SpaceFile | None:
    """The space whose write lock the next try holds once the optimistic tries are spent: the
    one ``tx`` (the try that ``conflict`` ended) wrote, else — a try that wrote nothing, a body
    that only reads — the space of a cell it read that changed, so that a reader of a cell
    others keep writing is not starved either: no writer of any process commits there while
    the body runs, and its reads stay current. None when neither is known (a conflict raised
    by the body itself, or one naming no cell) or that space's runtime is closed."""
    if tx is None:
        return None
    if tx.space is not None:
        return tx.space
    changed = set(conflict.cell_ids)
    for read_space, cell_id in tx.reads:
        if cell_id in changed and read_space.space_id == conflict.space_id:
            return None if read_space.closed else read_space
    return None


def _gave_up(conflict: ConflictError, body: Callable[..., Any], tries: int) -> ConflictError:
    """The error of a handler whose every try conflicted: the last conflict, said as what the
    handler did (its own message tells a transaction to run again, which the handler did).
    Raised from what the last conflict was raised from (a body's error met on a mixed view),
    else from that conflict."""
    error = ConflictError(conflict.space_id, conflict.cell_ids, reason="(see below)")
    error.args = (
        f"handler {_named(body)} ran its body {tries} time(s) (all its tries), and each try "
        f"conflicted with another commit; nothing was written. The last conflict: {conflict}. "
        "Call the handler again later (catch ConflictError), or have it read fewer cells that "
        "others keep writing",
    )
    return error


def _named(body: Callable[..., Any]) -> str:
    """How messages name a handler's body: its qualified name; for a ``functools.partial``,
    its function's; for a callable object, its class's ``__call__``."""
    name = getattr(body, "__qualname__", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(body, functools.partial):
        return _named(body.func)
    return f"{type(body).__qualname__}.__call__"


def _named_as_body(run: Callable[..., Any], body: Callable[..., Any]) -> None:
    """Name ``run`` as its body: ``functools.wraps`` leaves the wrapper's own name (``run``)
    where the body has none (a partial, a callable object), and a refused call would say
    ``run() does not take these arguments``."""
    if not isinstance(getattr(body, "__qualname__", None), str):
        name = _named(body)
        run.__qualname__ = name
        run.__name__ = name.rpartition(".")[2]


def _async_handler(
    body: Callable[..., Awaitable[Any]], tries: int
) -> Callable[..., Coroutine[Any, Any, int | None]]:
    @functools.wraps(body)
    async def run(*args: Any, **kwargs: Any) -> int | None:
        outer = current_transaction()
        if outer is not None and outer.state is TxState.OPEN:
            with transaction(None):  # joined: a body that raises writes nothing
                _ran(body, await body(*args, **kwargs), awaited=True)
            if outer.state is not TxState.OPEN:
                raise _ended_under(body, outer)
            return None
        space: SpaceFile | None = None
        turn: SpaceFile | None = None  # the space whose turn this call holds (see _turns)
        call = _Call()
        token = _call.set(call)
        try:
            for attempt in range(tries):
                call.attempt = attempt
                holder: LockHolder | None = None
                if space is not None and attempt >= OPTIMISTIC_TRIES:
                    if turn is None and attempt == OPTIMISTIC_TRIES:
                        turn = space if await space.turns.take(TURN_PATIENCE) else None
                    holder = LockHolder(space, LOCK_PATIENCE)
                collecting: Transaction | None = None
                taken: Transaction | None = None  # what the try commits (see take)
                try:
                    if holder is not None:
                        await holder.held()
                    # A ConflictError from the body is retried as the sync handler's is.
                    with transaction(None) as collecting:
                        try:
                            _ran(body, await body(*args, **kwargs), awaited=True)
                        except ConflictError:
                            raise
                        except Exception as exc:
                            _check_reads(collecting, exc)
                            raise
                        taken = take(collecting)  # leaves nothing for the block to commit
                    return await _commit_off_loop(taken, holder)
                except ConflictError as conflict:
                    if attempt == tries - 1:
                        raise _gave_up(conflict, body, tries) from conflict.__cause__ or conflict
                    space = (
                        _space_to_hold(collecting if taken is None else taken, conflict) or space
                    )
                    await asyncio.sleep(random.uniform(0, 0.001 * 2**attempt))
                finally:
                    if holder is not None:
                        holder.let_go()
        finally:
            # (A coroutine dropped unfinished is closed wherever it is collected: that
            # context's variable was never set by this call.)
            with contextlib.suppress(ValueError):
                _call.reset(token)
            if turn is not None:
                turn.turns.give_back()
        raise AssertionError("unreachable")

    _named_as_body(run, body)
    return checked_arguments(run, shape=body)


async def _commit_off_loop(tx: Transaction, holder: LockHolder | None = None) -> int | None:
    """Commit ``tx`` in a worker thread (``holder``'s, when it still holds the space's write
    lock); the event loop keeps running meanwhile.

    Once begun, the commit is decided (committed whole, or not at all) before the caller hears
    anything: a cancellation (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``)
    that arrives meanwhile takes effect when the commit has ended, so after the
    ``CancelledError`` a read tells what became of it, and nothing of it is still running."""
    space = tx.space
    if space is None or tx.is_empty:
        if tx.reads:  # nothing to commit, but what it read must be one state (§2)
            try:
                await _off_loop(functools.partial(validate_elsewhere, tx, None))
            except BaseException:
                tx.state = TxState.ABORTED
                raise
        tx.state = TxState.COMMITTED
        return None
    commit = holder.commit(tx) if holder is not None else None
    abandon = threading.Event()
    if commit is None:
        context = contextvars.copy_context()
        context.run(abandon_lock_waits_on, abandon)
        try:
            commit = _off_loop(functools.partial(context.run, space.commit, tx))
        except BaseException:
            tx.state = TxState.ABORTED
            raise
    try:
        tx.seq = await _awake_until(commit)
    except asyncio.CancelledError:
        # A wait for another program's lock (before anything is written) ends now, as a
        # Ctrl-C ends a sync commit's: the commit fails, nothing of it written, instead of
        # going through once that program lets go, up to the busy timeout later; a commit
        # queued behind another leaves the queue. The other commits of its batch go on.
        abandon.set()
        space.caller_gave_up()
        await _ended(commit)
        tx.state = TxState.COMMITTED if _succeeded(commit) else TxState.ABORTED
        if tx.state is TxState.COMMITTED:
            tx.seq = commit.result()
        raise
    except BaseException:
        tx.state = TxState.ABORTED
        raise
    tx.state = TxState.COMMITTED
    return tx.seq


def _off_loop(work: Callable[[], _T]) -> asyncio.Future[_T]:
    """The future of ``work``, run by a thread of the running loop's default executor. When no
    thread can take it (the system's limit on threads or processes, or an executor shut down),
    the executor has queued it all the same, for whichever of its threads frees up later: a
    commit the caller was told had failed would then be made after all. So the job runs only
    if it is claimed before that refusal is; refused first, it does nothing when it runs, and a
    ``SqliteCellsError`` says that nothing of the call was committed (a thread that took it in
    between gives its outcome as any other)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[_T] = loop.create_future()
    claim = threading.Lock()

    def run() -> None:
        if not claim.acquire(blocking=False):
            return  # refused when it was handed over: the caller was told so
        try:
            result: object = work()
        except BaseException as exc:
            result = exc
        with contextlib.suppress(RuntimeError):  # (a loop closed meanwhile: nobody to tell)
            loop.call_soon_threadsafe(settle_future, outcome, result)

    try:
        loop.run_in_executor(None, run)
    except RuntimeError as exc:
        if claim.acquire(blocking=False):
            raise SqliteCellsError(
                "an async handler's commit runs on a thread of the event loop's executor, and "
                f"none could take it ({exc}: the system's limit on threads or processes, or "
                "an executor shut down); nothing of this call was committed: close runtimes "
                "no longer used or raise the limit on threads, then call it again"
            ) from exc
    return outcome


async def _awake_until(work: asyncio.Future[Any]) -> Any:
    """``work``'s result, as ``await asyncio.shield(work)`` gives it (a cancellation of the
    caller leaves ``work`` running), the loop woken every :data:`AWAKE_EVERY` seconds
    meanwhile (a kernel's interrupt, noted without waking the loop, lands at once)."""
    while not work.done():
        await asyncio.wait({work}, timeout=AWAKE_EVERY)
    return work.result()


async def _ended(work: asyncio.Future[Any]) -> None:
    """Wait until ``work`` is done, through any further cancellation."""
    while not work.done():
        try:
            await asyncio.wait({work})
        except asyncio.CancelledError:
            continue


def _succeeded(work: asyncio.Future[Any]) -> bool:
    """Whether ``work`` (done) returned; its error, if any, is taken (it is superseded by the
    cancellation the caller raises instead)."""
    return not work.cancelled() and work.exception() is None

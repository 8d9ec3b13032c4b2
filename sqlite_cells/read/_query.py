"""Live queries (R42, R50–R52): a query cell whose value is a :class:`QueryState`.

By default a query reacts to what it reads (R51): it registers its read set with the runtime's
:class:`LiveQueries` hub, which re-runs it after exactly the commits whose write sets meet it
(and, for an injected file, after the file changes). ``react_on`` given explicitly replaces that
by the graph dependency on what it names (``react_on=db``: every commit to the database, whose
handle ``rev`` changes). Cells among ``params`` always re-run it. Runs go through the hub
(batched, shared between identical queries, on the query workers); results land on the scheduler
thread, never before the commit they reflect has been delivered (R50). A re-run whose rows equal
the previous rows updates ``seq`` but notifies nobody (R42).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol

# typing_extensions (installed with reactivex) for a TypeVar default: a bare ``QueryState`` in
# an annotation means ``QueryState[Any]``, as before it was generic.
from typing_extensions import TypeVar

from sqlite_cells.codec import (
    ClosedError,
    PendingValue,
    QueryArgumentError,
    QueryError,
    SqliteCellsError,
    brief_repr,
)
from sqlite_cells.read._live import LiveQueries
from sqlite_cells.read._reader import Kept, Statement, StatementResult, known_read_set
from sqlite_cells.read._rows import RowDecoder, build_rows
from sqlite_cells.read._same import same_values
from sqlite_cells.runtime import (
    Cell,
    Node,
    Reactive,
    Scheduler,
    Space,
    Work,
    checked_arguments,
    exception_text,
    node_of,
    node_values,
    observe_node,
    own,
    showing_cells,
)
from sqlite_cells.schema import Declaration, SourceKind
from sqlite_cells.sql import (
    ONE_VALUE,
    Bound,
    MayBePending,
    check_cell_value,
    is_params_list,
    is_pending,
)

if TYPE_CHECKING:
    from reactivex import Observable
else:  # what typing.get_type_hints reads
    from sqlite_cells.runtime import OBSERVABLE as Observable

__all__ = [
    "LINKS_FOLLOWED",
    "Query",
    "QueryHost",
    "QueryState",
    "Reaction",
    "Readable",
    "react_on_members",
    "resolve_params",
]

# How many links a database input follows to its handle (another piece's input, and so on):
# the runtime's resolution (``SqliteDb``) and the command line's (``query`` by an input) alike.
LINKS_FOLLOWED: Final = 16

T = TypeVar("T", default=Any)
_SHOWN_ROWS = 10


class Readable(Protocol):
    """What a live query reads: a database handle (``SqliteDb``)."""

    @property
    def id(self) -> str: ...
    @property
    def space(self) -> Space: ...
    @property
    def declaration(self) -> Declaration: ...
    def _linked_id(self) -> str | None: ...
    def _links_passed(self) -> list[str]: ...


class QueryHost(Protocol):
    """What a live query needs of its runtime."""

    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def live_queries(self) -> LiveQueries: ...

    def space(self, space_id: str) -> Space: ...
    def ready_to_read(self, decl: Declaration, sql: str, quick: bool = False) -> bool: ...
    def declares(self, db_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Reaction:
    """How a query re-runs besides its params: ``by_reads`` — after commits that change what it
    reads (R51) and after changes of an injected file (R60); ``on`` — a value whose changes
    re-run it (the database handle for ``react_on=db``, a linked pattern input, any cell, or a
    list, tuple or dict of them, as for params); ``whole`` — after every commit that writes the
    database it reads, whichever that is now (``react_on=`` a pattern's database input);
    ``follows`` — a pattern's database input whose relinking re-runs it whatever else it
    reacts to (R61); ``reached`` — asked at each run, the cells whose writes re-run it: the
    handles of the databases the pattern's database inputs among ``on`` (not the query's own,
    see ``whole``) link to now, and the cells passed on the way, so that such an input stands
    for every write to its database, as a handle does by its rev (``react_on=db``), and moves
    with a relink."""

    by_reads: bool
    on: Any = None
    source_changes: bool = False
    whole: bool = False
    follows: Any = None
    reached: Callable[[], list[str]] | None = None


# Not slotted: a slotted frozen dataclass's __setattr__ calls super() on the class before
# slots, which raises a raw TypeError when ``QueryState[Msg](…)`` sets ``__orig_class__``
# (Python 3.11); without slots that is the FrozenInstanceError typing expects and ignores.
@dataclass(frozen=True, repr=False)
class QueryState(MayBePending, Generic[T]):
    """``pending`` until the first result for the current sql/params; ``result`` the rows (None
    while pending with nothing to show, or on error); ``error`` a :class:`SqliteCellsError`;
    ``seq`` the commit the rows reflect (the database's watermark)."""

    pending: bool = True
    result: list[T] | None = None
    error: SqliteCellsError | None = None
    seq: int = 0

    def __hash__(self) -> int:
        # The fields' hash fails on a list of rows; equal states agree on these (a state of
        # rows hashes as one of none did).
        return hash((self.pending, self.seq))

    def same_rows(self, other: QueryState[Any]) -> bool:
        """Whether ``other`` holds the same outcome: pending alike, equal rows, the same error
        (False for anything but a ``QueryState``). Rows that cannot be compared (a row type's
        ``==`` raising) count as changed, as a derived cell's values do (``same_value``)."""
        if not isinstance(other, QueryState):
            return False
        if self.pending != other.pending or not _same_error(self.error, other.error):
            return False
        try:
            return self.result is other.result or bool(self.result == other.result)
        except Exception:
            return False

    def __repr__(self) -> str:
        from sqlite_cells.read._display import shown_row

        result = self.result
        if result is None:
            rows = "None"
        elif not isinstance(result, list):  # a state a caller built: shown, never raising
            rows = brief_repr(result)
        else:
            with showing_cells():  # (a cell linked from many rows is looked at once)
                shown = ", ".join(map(shown_row, result[:_SHOWN_ROWS]))
            more = f", ... ({len(result)} rows)" if len(result) > _SHOWN_ROWS else ""
            rows = f"[{shown}{more}]"
        return (
            f"QueryState(pending={self.pending!r}, result={rows}, error={self.error!r}, "
            f"seq={self.seq!r})"
        )

    def _repr_html_(self) -> str:
        from sqlite_cells.read._display import query_state_html

        return query_state_html(self)


def _same_error(a: BaseException | None, b: BaseException | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and type(a) is type(b) and str(a) == str(b)
    )


def resolve_params(params: Any, *, sql: str, db_id: str, seen: bool = False) -> Bound:
    """``params`` as bindings (a dict for named parameters, else a tuple; a lone value is one
    positional parameter), with each cell or reactive value replaced by its current value. Each
    such value is checked here, when it is read, as a value given directly is at the call
    (``check_cell_value``); a cell whose last computation failed has no value to bind. Either is
    a :class:`QueryArgumentError`: ``db.read`` raises it, ``db.query`` holds it as its error.

    A live query binds what the scheduler holds for the commit it reacts to. ``seen`` (a
    one-shot ``db.read``) binds a stored cell as ``cell.get()`` reads it now: the committed value,
    or inside a transaction what the transaction sees, its own writes included, with the read
    recorded so that a commit to the cell before the transaction's is a conflict. The
    scheduler's value may still be the one before the newest commit."""
    if isinstance(params, Mapping):
        return {k: _current(v, k, sql, db_id, seen) for k, v in params.items()}
    return tuple(_current(v, i, sql, db_id, seen) for i, v in enumerate(_members(params), 1))


def react_on_members(react_on: Any, *, sql: str, db_id: str) -> tuple[Any, ...]:
    """What ``react_on`` names (R51: "any cell or value"): itself alone, or the members of its
    list, tuple or dict (``None``: nothing); each cell, derived cell, query or handle among
    them re-runs the query, and a plain value of any shape is a constant. A cell deeper than
    that — in a collection among the members, or in a set — would never re-run the query, and
    a one-shot iterator (a generator) cannot be looked into without being used up: both are a
    :class:`QueryArgumentError` at the call, as the same shapes are among ``params``; so is
    one whose own code raises as it is read (a mapping or sequence of the caller's class)."""
    try:
        members = tuple(_members(react_on))
        if isinstance(react_on, Mapping) or is_params_list(react_on):
            keyed: Iterable[tuple[Any, Any]] = (
                react_on.items() if isinstance(react_on, Mapping) else enumerate(members)
            )
            where = "under key" if isinstance(react_on, Mapping) else "at position"
            for key, member in keyed:
                if _hides_cells(member):
                    what = f"holds a {type(member).__name__} {where} {key!r}"
                    raise _refused_react_on(what, db_id, sql)
        elif _hides_cells(react_on):
            raise _refused_react_on(f"is a {type(react_on).__name__}", db_id, sql)
    except QueryArgumentError:
        raise
    except Exception as exc:  # the caller's own class, raising as it is read (Errors)
        raise QueryArgumentError(
            db_id,
            sql,
            f"reading react_on (a {type(react_on).__name__}) raised {type(exc).__name__}: "
            f"{exc}; give a cell, a plain value, or a list, tuple or dict of them",
        ) from exc
    return members


def _hides_cells(value: Any) -> bool:
    """Whether ``value`` (not itself a cell) holds a cell at any depth, where it would never
    re-run a query, or is (or holds) a one-shot iterator that cannot be looked into without
    being used up. Each container is looked into once (a value holding itself ends)."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, ONE_VALUE):  # (text, as in params: one value)
            continue
        if node_of(item) is not None:
            return item is not value  # (the value itself a cell: what react_on names)
        if isinstance(item, Iterator):
            return True
        if not isinstance(item, Collection) or id(item) in seen:
            continue  # (another object is a constant, as it is)
        seen.add(id(item))  # (a dict view, a deque, a Sequence of the caller's: looked into)
        stack.extend(item.values() if isinstance(item, Mapping) else item)
    return False


def _refused_react_on(what: str, db_id: str, sql: str) -> QueryArgumentError:
    return QueryArgumentError(
        db_id,
        sql,
        f"react_on {what}, which holds cells that would never re-run the query (or cannot be "
        "looked into without being used up): react_on takes a cell (or derived cell, query, "
        "database), a plain value or None, or a list, tuple or dict of them one level deep, as "
        "params does; list each cell at the top level, e.g. react_on=[a, b]",
    )


def _params_key(params: Bound) -> str:
    """What a live query's parameters ask SQLite for, as text: the key of its run (a change of
    key is new parameters, R42) and of its statement for the hub. A value of a subclass of int,
    float, str or bytes is keyed by its base type's value, the one SQLite binds: its class's own
    ``__repr__`` may raise, or say nothing of the value (Errors: ``db.read`` takes it)."""
    if all(type(value) in _KEYED_AS_IS for value in _members(params)):
        return repr(params)
    if isinstance(params, Mapping):
        return repr({name: _bound_as(value) for name, value in params.items()})
    return repr(tuple(map(_bound_as, params)))


_KEYED_AS_IS: Final = frozenset({type(None), bool, int, float, str, bytes})


def _bound_as(value: Any) -> Any:
    """``value`` as the plain value SQLite binds for it, read with its base type's own
    methods (a subclass may override its own)."""
    if type(value) in _KEYED_AS_IS:
        return value
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(memoryview(value))
    return value


def _members(params: Any) -> Iterable[Any]:
    """The parameter values of ``params`` in any of the forms ``db.query`` accepts."""
    if params is None:
        return ()
    if isinstance(params, Mapping):
        return params.values()
    if is_params_list(params):
        return params
    return (params,)


def _current(value: Any, key: object, sql: str, db_id: str, seen: bool) -> Any:
    if seen and type(value) is Cell:  # (its node is looked up there, once)
        current = _seen_value(value, key, sql, db_id)
        check_cell_value(current, key, sql=sql, db_id=db_id)
        return current
    node = node_of(value)
    if node is None:
        return value
    if node.ready.is_set():
        current = node.value
    else:
        try:
            current = value.get()  # waits for its first computation
        except Exception:
            if node.error is None:
                raise
    error = node.error
    if error is not None:  # (its value is the None it holds, not a value it computed)
        raise _no_value(value, key, sql, db_id, error) from error
    check_cell_value(current, key, sql=sql, db_id=db_id)
    return current


def _seen_value(cell: Cell, key: object, sql: str, db_id: str) -> Any:
    try:
        return cell.looked_at()
    except SqliteCellsError as exc:
        raise _no_value(cell, key, sql, db_id, exc) from exc


def _no_value(
    value: Any, key: object, sql: str, db_id: str, error: BaseException
) -> QueryArgumentError:
    if isinstance(value, Cell):  # a stored cell: no function of it failed
        what = "a cell whose value could not be read"
        todo = (
            "do what that error says (a cell of a closed runtime: take the same cell from an "
            "open one, rt.cell_from_link(cell.link())), then read again"
        )
    else:
        what = "a derived cell whose last computation failed"
        todo = (
            "fix what made it fail (its function, or its inputs); it binds again once a "
            "computation succeeds"
        )
    return QueryArgumentError(
        db_id,
        sql,
        f"parameter {key} is {what} ({exception_text(error)}), so it has no value to bind: {todo}",
    )


_new_object = object.__new__


def _moved_to(state: QueryState[T], seq: int) -> QueryState[T]:
    """``state``'s rows as of ``seq`` (a re-run that read the same rows). Made as the frozen
    dataclass's ``__init__`` would, without its four ``object.__setattr__`` calls: this runs
    once per re-run of every live query a commit affects, at twice the cost otherwise."""
    moved: QueryState[T] = _new_object(QueryState)
    fields = moved.__dict__
    fields["pending"], fields["result"], fields["error"], fields["seq"] = (
        False,
        state.result,
        None,
        seq,
    )
    return moved


def _param_nodes(params: Any) -> list[Node]:
    return [n for n in map(node_of, _members(params)) if n is not None]


class Query(Reactive, Generic[T]):
    """A live query of a database cell (``db.query``); typed ``Query[Msg]`` for ``row=Msg``."""

    def __init__(
        self,
        db: Readable,
        sql: str,
        params: Any,
        decode: RowDecoder,
        reaction: Reaction,
        *,
        host: QueryHost,
        own_code: bool = False,
    ) -> None:
        # What the node runs is held by the node, not by this object (see own): the query's
        # attributes below read it there.
        self._spec = spec = _Spec(db, host, sql, params, decode, reaction, own_code)
        # react_on, like params, may hold its cells in a list, tuple or dict: each re-runs it.
        deps = (
            tuple(_param_nodes(params))
            + tuple(_param_nodes(reaction.on))
            + tuple(_param_nodes(reaction.follows))
        )
        scheduler = host.scheduler
        if any(n.scheduler is not scheduler for n in deps):
            # As derive/lift refuse: its runs follow the commits this runtime processes, and a
            # cell of another runtime moves with that one's (two runs per commit, a state no
            # commit had between them, and none at all once that runtime closes: R54).
            raise QueryArgumentError(
                db.id,
                sql,
                "params or react_on hold a cell (or derived cell, or query) of another Runtime: "
                "a live query re-runs after the commits of its own runtime; give it cells of "
                "that runtime (open the other space from the same Runtime)",
            )
        self._graph_node = _QueryNode(scheduler, spec, deps)
        own(self, self._graph_node)
        scheduler.add(self._graph_node)

    @property
    def db(self) -> Readable:
        """The database the query reads (a pattern input's is resolved at each run, R61)."""
        return self._spec.db

    @property
    def sql(self) -> str:
        """The statement, as given."""
        return self._spec.sql

    @property
    def params(self) -> Any:
        """The parameters, as given (cells among them are read at each run)."""
        return self._spec.params

    @property
    def reaction(self) -> Reaction:
        """What re-runs the query (``react_on=``; by default, writes to what it reads, R51)."""
        return self._spec.reaction

    def _node(self) -> Node:
        return self._graph_node

    @checked_arguments
    def get(self) -> QueryState[T]:
        """The current state; waits for the query's first scheduling (not for its rows). Once
        the runtime is closed, the last state it had; ``ClosedError`` if it never had one but
        pending (the runtime closed before the query ran): no result comes any more."""
        node = self._graph_node
        state: QueryState[T] = node.current()
        never_ran = state.pending and state.result is None and state.error is None
        if never_ran and node.scheduler.closed:
            raise ClosedError(
                "Query.get(): the runtime closed before the query ran, so it has no "
                "result and none comes; open a new Runtime to read it"
            )
        return state

    @checked_arguments
    def observe(self) -> Observable[QueryState[T]]:
        """A reactivex Observable of the query's states: the current one, then each new one
        after a durable commit changes its rows (R50, R52); completed when the runtime closes."""
        return observe_node(self)

    @checked_arguments
    async def first(self) -> QueryState[T]:
        """The first state that is not pending (rows or an error), without blocking the loop.
        ``ClosedError`` if the runtime is closed, or closes before such a state comes. On the
        scheduler thread (a subscriber or derive function running an event loop) nothing is
        delivered while it waits: it returns the current state at once if it is not pending,
        else raises ``TransactionError``."""
        # Closed here, on return: left to the loop's finalizer, its subscription stayed until
        # the loop's shutdown — for ever on a loop run by hand (run_until_complete, close).
        values = node_values(
            self, "Query.first()", "a state that is not pending (the query is pending now)"
        )
        async with contextlib.aclosing(values):
            async for state in values:
                if not state.pending:
                    return state  # type: ignore[no-any-return]
        raise AssertionError("unreachable: node_values() never ends")  # pragma: no cover

    @checked_arguments
    def states(self) -> AsyncIterator[QueryState[T]]:
        """The current state, then each change, as an async iterator (stop by leaving the
        loop: its subscription ends when the iterator is dropped — as ``async for s in
        q.states()`` is left, by ``break`` or ``return`` too — or at ``aclose()``). States are
        handed over from the scheduler thread to the running event loop. The runtime closing
        (or closed at the call) ends it with ``ClosedError``: a loop that waits for the next
        state never waits for ever. On the scheduler thread it yields the current state only,
        then raises ``TransactionError``: nothing is delivered there while it waits."""
        return node_values(self, "Query.states()", "the query's next state")

    @checked_arguments
    def display(self) -> Any:
        """Show the query in a notebook output that updates in place after each change; returns
        a handle whose ``stop()`` ends the updates. On a closed runtime it raises
        ``ClosedError``, as other calls that would follow the query anew do: nothing would
        update the output."""
        from sqlite_cells.read._display import display_query

        self._graph_node.scheduler.check_open()
        return display_query(self)

    def _repr_html_(self) -> str:
        # (Not get(): a query its closed runtime never ran shows as pending, never raises.)
        state: QueryState[Any] = self._graph_node.current()
        return state._repr_html_()

    def __repr__(self) -> str:
        node = self._graph_node
        if node.ready.is_set():
            state: QueryState[Any] = node.value
            if state.error is not None:
                status = f"error {type(state.error).__name__}"
            elif state.result is None:
                status = "pending"
            else:
                status = f"{len(state.result)} row(s), seq {state.seq}"
                status = "pending, " + status if state.pending else status
        else:
            status = "not run yet"
        return f"<Query {brief_repr(self.sql)} on {self.db.id}: {status}>"


def _sources_among(on: Any) -> list[Path]:
    """The files of the injected files' handles that ``on`` (a query's ``react_on``) is or holds
    in a list, tuple or dict; a pattern input linked to nothing yet, or to no injected file,
    adds none."""
    if on is None:
        return []
    members = (
        on.values() if isinstance(on, Mapping) else on if isinstance(on, list | tuple) else [on]
    )
    paths = []
    for member in members:
        if not isinstance(getattr(type(member), "declaration", None), property):
            continue  # not a database handle (a cell, a value)
        try:
            decl = member.declaration
        except SqliteCellsError:
            continue
        if decl.kind is SourceKind.DISK:
            paths.append(decl.path)
    return paths


@dataclass(frozen=True, slots=True, eq=False)
class _Spec:
    """What a query's node runs: the :class:`Query`'s arguments, without the ``Query`` (a node
    lives as long as the object a user holds, see ``own``)."""

    db: Readable
    host: QueryHost
    sql: str
    params: Any
    _decode: RowDecoder
    reaction: Reaction
    own_code: bool  # building its rows runs the row type's code (``runs_own_code``)

    def __repr__(self) -> str:
        return f"<Query {brief_repr(self.sql)} on {self.db.id}>"


class _QueryNode(Node):
    reads_file = True  # its database, as of each run's read (see Scheduler: _waits)
    runs_off_thread = True  # its runs read on the query workers (see in_flight)

    def __init__(self, scheduler: Scheduler, query: _Spec, deps: tuple[Node, ...]) -> None:
        super().__init__(scheduler, deps)
        self.query = query
        self._request = query.host.live_queries.request
        # Owned by the scheduler thread: whether a run is in flight, whether another run is
        # wanted once it lands, and the database the last run read.
        self._running = False
        # While another run is wanted (see _again): a unit of scheduler work under the oldest
        # cause that wanted it, so settle() waits for that run (the run in flight may count
        # under a newer cause than the one it leaves unserved: see _want_again).
        self._again_work: Work | None = None
        self._follows = False  # whether the hub re-runs it when a linked input changes
        self._params_key: Any = None
        # Counts the parameter changes; a run remembers the count it started with, so a run
        # whose parameters changed and changed back meanwhile (K1, K0, K1) is still known stale.
        self._params_changes = 0
        self._run_changes = 0
        self._db_id: str | None = None
        # The database whose watermark the current state's seq was read from: a failing run
        # keeps the higher seq of the same database only, never one of the database before a
        # relink (see receive).
        self._seq_db: str | None = None
        self.statement = Statement(query.sql, ())  # the last one requested
        self._key: tuple[str, str] = (query.sql, "()")  # its (sql, _params_key(params)) for the hub
        self._read_set: Any = None  # the read set last registered
        self._watched: Declaration | None = None  # the declaration it was registered for
        # What the current result was decoded from: statement, column names, row tuples.
        self._rows_stmt: Statement | None = None
        self._rows_names: tuple[str, ...] = ()
        self._rows_list: list[Any] | None = None
        self._rows_digest: bytes | None = None  # the digest of _rows_list, if the reader made one
        # The four above as they were before the last result landed (see dropped).
        self._taken: tuple[Statement | None, tuple[str, ...], list[Any] | None, bytes | None] = (
            None,
            (),
            None,
            None,
        )
        self._prepare: tuple[Declaration, Any] | None = None  # (decl, its reconcile step)
        self._retries = 0  # reads done again in a row because the file lagged (read_again)
        self._lagging = False
        # A run that read the file before a commit reached it is to be done again (read_again):
        # until that run starts, the query counts as in flight.
        self._reread = False
        self._file: tuple[str, Any] | None = None  # (space id, its SpaceFile)
        # Set by a query worker (build_ahead): a result and its rows built there (or the error
        # building them raised); taken by receive when that result lands.
        self._ahead: tuple[StatementResult, list[Any] | SqliteCellsError] | None = None
        fixed = None
        if not _param_nodes(query.params):  # (no cell: its values were checked at the call)
            params = resolve_params(query.params, sql=query.sql, db_id=query.db.id)
            if not any(map(is_pending, _members(params))):
                fixed = (params, _params_key(params))
                self.statement = Statement(query.sql, params)  # the same object every run
                self._key = (query.sql, fixed[1])
        self._fixed: tuple[Bound, str] | None = fixed
        self.value = QueryState()

    def compute(self) -> tuple[bool, Any]:
        self._reread = False  # this is the run done again, if one was due
        state: QueryState[Any] = self.value
        if self._fixed is not None:  # no cells among the params: nothing to resolve again
            params, key = self._fixed
        else:
            try:
                params = self._resolved()
            except QueryArgumentError as exc:
                return self._refused(state, exc)
            if any(map(is_pending, _members(params))):
                # Not ready (R31, R42): pending until they are.
                self._forget_params()
                pending = QueryState(True, state.result, None, state.seq)
                return (not pending.same_rows(state), pending)
            key = _params_key(params)
        try:
            linked = self.query.db._linked_id()
        except SqliteCellsError:
            linked = None
        if linked is not None:
            # A pattern input's database is part of what the query is: linked anew, the query
            # is pending until the new database's first result, as for new params (R42, R61),
            # and a run in flight for the database before is dropped when it lands.
            key = f"{key}\x00{linked}"
        changed_params = key != self._params_key
        if changed_params:
            self._params_changes += 1
            changed_params = self.ready.is_set()
        self._params_key = key
        if self._running:
            self._want_again()
        else:
            self._start(params, key)
        if changed_params and not state.pending:
            # New sql/params: pending again until their first result, keeping the old rows visible.
            pending = QueryState(True, state.result, state.error, state.seq)
            return (True, pending)
        return (False, state)

    def _resolved(self) -> Bound:
        query = self.query
        return resolve_params(query.params, sql=query.sql, db_id=query.db.id)

    def _refused(
        self, state: QueryState[Any], error: QueryArgumentError
    ) -> tuple[bool, QueryState[Any]]:
        """A cell among the parameters holds a value that cannot be bound (or failed): the
        query's error, with no rows, until its cells change. A run in flight for the former
        parameters is dropped when it lands (see receive), and the next good parameters count
        as new ones."""
        self._forget_params()
        refused = QueryState(False, None, error, state.seq)
        return (not refused.same_rows(state), refused)

    def _forget_params(self) -> None:
        """The parameters cannot be read with now: a run in flight for the former ones is
        dropped when it lands (see receive), and the next ones count as new, whatever they
        are."""
        self._params_key = None
        self._params_changes += 1
        if self._running:
            self._want_again()

    @property
    def runs_own_code(self) -> bool:
        return self.query.own_code

    def rerun_now(self) -> bool:
        """On the scheduler thread, after a commit that changed what it reads: ask for its next
        run here when that is all :meth:`compute` would do — fixed parameters, no inputs (so no
        round order to keep, R54), a first value already, no error kept — and return True;
        False when it must re-run in the scheduler's round."""
        if (
            self._fixed is None
            or self.deps
            or self.error is not None
            or self.released
            or not self.ready.is_set()
        ):
            return False
        self._reread = False
        if self._running:
            self._want_again()
        else:
            self._start(*self._fixed)
        return True

    def _start(self, params: Bound, key: str) -> None:
        if self.released:
            return
        query = self.query
        self._running = True
        self._run_changes = self._params_changes
        try:
            try:
                decl = query.db.declaration
            finally:
                self._follow_links()  # (the links that resolution followed)
        except PendingValue:  # a pattern input not linked to a database yet (R61)
            awaited = self._await_handle()  # (through another piece's input: re-run when linked)
            state = QueryState(True, self.value.result, None, self.value.seq)
            self.scheduler.submit(lambda: self._finish(state))
            if awaited is not None and query.host.declares(awaited):
                # Declared by this runtime since the link was resolved above (on another
                # thread): its wake-up may have looked before this query awaited the cell
                # (LiveQueries.handle_declared). The link resolves to the declaration now.
                self.scheduler.rerun([self])
            return
        except SqliteCellsError as exc:
            self._await_handle()
            state = QueryState(False, None, exc, self.value.seq)
            self.scheduler.submit(lambda: self._finish(state))
            return
        if self._read_set is None or decl is not self._watched:
            self._interest(decl, None)  # else registered already (the common case of a re-run)
        if self._fixed is None:
            self.statement = Statement(query.sql, params)
            self._key = (query.sql, key)
        prepare = self._prepare
        if prepare is None or prepare[0] is not decl:
            host = query.host
            sql = query.sql
            prepare = self._prepare = (
                decl,
                lambda quick: host.ready_to_read(decl, sql, quick),
            )
        held = self._file
        file = held[1] if held is not None and held[0] == decl.space_id else self._space_file(decl)
        self._request(self, decl, file, self.statement, prepare[1], self._key)

    def _await_handle(self) -> str | None:
        """The database could not be resolved: a pattern input links to a cell that holds no
        handle (yet). That cell's first handle may come from a commit of another runtime or
        process (R53, R61), which writes no cell this query depends on: the query re-runs when
        the cell is next written, or when this runtime declares its database
        (``LiveQueries.handle_declared``), not only when the input is linked again. Returns
        the id of the cell awaited (None: none)."""
        if self.released:
            return None
        try:
            linked = self.query.db._linked_id()
        except SqliteCellsError:  # the input itself cannot be read: its own change re-runs it
            return None
        if linked is not None:
            self.query.host.live_queries.await_handle(self, linked)
        return linked

    def _follow_links(self) -> None:
        """Have the hub re-run this query when a cell its pattern input reaches its database
        through (another piece's input) is linked anew (see ``LiveQueries.follow_links``), and
        after each write to a database a database input among its ``react_on`` links to now
        (``Reaction.reached``: that database's handle is written by each)."""
        passed = self.query.db._links_passed()
        reached = self.query.reaction.reached
        if reached is not None:  # (react_on's database inputs: see Reaction.reached)
            passed = [*passed, *reached()]
        if passed or self._follows:
            self.query.host.live_queries.follow_links(self, passed)
            self._follows = bool(passed)

    def _space_file(self, decl: Declaration) -> Any:
        """The database's space file (not a linked input's): results wait for its commits."""
        held = self._file
        if held is None or held[0] != decl.space_id:
            held = self._file = (decl.space_id, self.query.host.space(decl.space_id).file)
        return held[1]

    def _interest(self, decl: Declaration, read_set: Any) -> None:
        """Tell the hub what this query reacts to on ``decl`` (R51, R60); a query that moved to
        another database (a relinked pattern input) stops reacting to the old one. A released
        query reacts to nothing: a run in flight when it was released lands here too."""
        if self.released:
            return
        reaction = self.query.reaction
        hub = self.query.host.live_queries
        if self._db_id != decl.db_id:
            hub.unwatch(self)
            self._db_id, self._read_set = decl.db_id, None
        hub.place(self, decl.db_id)
        for path in _sources_among(reaction.on):
            # An injected file's handle among react_on: its rev never moves (R5), a change of
            # the file stands for a write to it (R60), as for react_on=db on its own query.
            hub.watch_source(self, path)
        if decl.kind is SourceKind.DISK:
            if reaction.by_reads or reaction.source_changes or reaction.whole:
                hub.watch_source(self, decl.path)
            return
        if reaction.whole:  # every commit to the database (no read set: every write meets it)
            self._watched = decl
            hub.watch(self, decl.db_id, None)
            return
        if not reaction.by_reads:
            return
        if read_set is None:
            read_set = known_read_set(decl, self.query.sql)
        if read_set is not None and read_set is self._read_set:
            return  # registered already (the common case of a re-run)
        self._read_set = read_set
        self._watched = decl
        hub.watch(self, decl.db_id, read_set)

    @property
    def last_read(self) -> Kept | None:
        """The row tuples behind the current result and their digest (None after an error)."""
        rows = self._rows_list
        return None if rows is None else (rows, self._rows_digest)

    def build_ahead(self, result: StatementResult) -> None:
        """On the query worker that read ``result``, before it lands: build its rows there, so
        the scheduler thread never spends a large result's building and the time counts against
        ``query_timeout`` (R44). Rows the reader found unchanged (the list this query holds)
        need no building."""
        if result.rows is self._rows_list:
            return
        try:
            with self.scheduler.building():  # (a settle() in a row type returns at once)
                built: list[Any] | SqliteCellsError = build_rows(self.query._decode, result)
        except SqliteCellsError as exc:
            built = exc
        except Exception as exc:  # never into the worker: this query's error (R42)
            built = self._build_error(exc, result)
        self._ahead = (result, built)

    def _build_error(self, exc: Exception, result: StatementResult) -> QueryError:
        error = QueryError(
            self._db_id or "?",
            self.query.sql,
            f"its rows could not be built ({exception_text(exc)}); check the type given as row=",
        )
        error.__cause__ = exc
        return error

    def _rows_of(self, result: StatementResult, ahead: Any) -> list[Any]:
        """The rows of ``result``: built already by a worker, or built here."""
        if ahead is not None and ahead[0] is result:
            built = ahead[1]
            if isinstance(built, SqliteCellsError):
                raise built
            return built  # type: ignore[no-any-return]
        return self.query._decode(result)

    def receive(self, seq: int, result: StatementResult) -> tuple[QueryState[Any], bool]:
        """A run's result, on the scheduler thread: the next state and whether it is news
        (equal rows update ``seq`` silently, R42). See :class:`LiveQueries`."""
        previous: QueryState[Any] = self.value
        ahead, self._ahead = self._ahead, None
        stmt = self.statement
        self._running = False
        if self._fixed is None and self.scheduler.hold_while_waiting(self):
            # A parameter is not as of the latest commit yet: it is derived from a query whose
            # run is in flight (or from a cell held for one). The rows pair parameters of an
            # older commit with a file that may hold a newer one, under that commit's seq — a
            # state no commit had (R42, R54). Dropped; the query is held and runs again, with
            # the parameters as of that commit, once what they wait for lands.
            return previous, False
        if self._again and self._run_changes != self._params_changes:
            # The parameters changed while this run was in flight, or its pattern input was
            # linked to another database (fixed parameters too): its rows pair the old
            # parameters or database with a file that may be newer — a state no commit had
            # (R42, R54). Dropped; the next run, already wanted, reads with the new ones, and
            # delivers for this run's cause too (settle waits for it, Scheduler.settle).
            self._want_again()
            return previous, False
        if self._lagging:
            self._lagging = False
            if self._reread:
                # The file had not caught up with a commit its space holds (another process's
                # commit reaches the space file first): the rows are older than the parameters
                # and cells the scheduler holds now, a state no commit had when this run was
                # for new parameters (R54). Kept back: the run done again, due shortly, lands.
                return previous, False
        else:
            self._retries = 0
        read_set = result.read_set
        if self.query.reaction.by_reads and (
            self._read_set is None if read_set is None else read_set is not self._read_set
        ):
            # A result with no read set (an error: its rows took past query_timeout to build,
            # its one long step did) still has one recorded if SQLite prepared its statement:
            # registered, so that a write to no column it reads re-runs it no more than a good
            # result's query (R51). Relinked meanwhile (an error here): the next run registers.
            with contextlib.suppress(SqliteCellsError):
                self._interest(self.query.db.declaration, read_set)
        if isinstance(result.error, ClosedError):
            # The runtime closed under this run: its subscribers are told the stream ended
            # (on_completed), as those of a computation that meets the close are — not given a
            # state whose rows are gone and whose error says the runtime closed.
            return previous, False
        same_db, self._seq_db = self._seq_db == self._db_id, self._db_id
        # The same SQLite values (1 and 1.0 are different rows, though Python finds them equal,
        # and so may the rows decoded from them: the rows read decide, R42).
        same = result.names == self._rows_names and same_values(result.rows, self._rows_list)
        # What the rows compared with were, should this result not be taken (see dropped).
        self._taken = (self._rows_stmt, self._rows_names, self._rows_list, self._rows_digest)
        if result.error is not None and result.invalid_text is None:
            # (Else the decoder raises it, unless the row type reads past it: R43.) Its seq is
            # the commit the run read at, as for rows that fail to build (R42); a read that
            # failed before it read the watermark (seq 0) keeps the previous one — of the same
            # database: after a relink, the seq is the new database's (a source's is 0).
            self._rows_list = None
            if same_db and previous.seq > seq:
                seq = previous.seq
            state: QueryState[Any] = QueryState(False, None, result.error, seq)
        elif (
            same
            and (stmt is self._rows_stmt or stmt == self._rows_stmt)
            and not previous.pending
            and previous.error is None
        ):
            # The same statement read the same values: the same rows, so no decoding and no
            # news (R42), only the seq moves.
            self.value = _moved_to(previous, seq)
            return self.value, False
        else:
            self._rows_stmt, self._rows_names, self._rows_list = stmt, result.names, result.rows
            self._rows_digest = result.digest
            try:
                state = QueryState(False, self._rows_of(result, ahead), None, seq)
            except SqliteCellsError as exc:
                state = QueryState(False, None, exc, seq)
                self._rows_list = None
            except Exception as exc:  # never into the scheduler: this query's error (R42)
                state = QueryState(False, None, self._build_error(exc, result), seq)
                self._rows_list = None
        notify = not state.same_rows(previous) or (state.error is None and not same)
        if not notify:
            self.value = state
        return state, notify

    def dropped(self) -> None:
        # The result that landed was not taken (an input changed in the same round): the next
        # one is compared with the rows taken before it, what subscribers were told, not with
        # these — else a run reading these rows again would pass for no news (R42).
        self._rows_stmt, self._rows_names, self._rows_list, self._rows_digest = self._taken

    def read_again(self, limit: int) -> int:
        """The run read the file before a commit the hub knows of reached it: returns how many
        times in a row that happened when the hub is to run it again (at most ``limit`` times
        in a row), or 0 when a re-run is due anyway or the limit is past. Until the run done
        again starts, the query counts as in flight: a cell derived from it and from a cell the
        missed commit wrote waits for rows as of that commit, never pairing the two (R54)."""
        if self._again:
            return 0
        self._retries += 1
        self._lagging = True
        self._reread = self._retries <= limit
        return self._retries if self._reread else 0

    @property
    def stale(self) -> bool:
        # A first run (or one for new parameters) in flight: the state says "pending", which
        # pairs honestly with anything. A re-run in flight: the rows are an older commit's.
        return self.in_flight and not self.value.pending

    @property
    def in_flight(self) -> bool:
        # Also while a result lands that a newer commit has already asked to read again: its
        # rows are older than the cells the scheduler holds now (see landed).
        return self._running or self._again or self._reread

    def landed(self) -> None:
        # When a commit processed while this run was in flight wants another run, that run
        # starts first: the result that landed is older than the cells the scheduler holds now,
        # so dependents held back stay held until a result as of the latest commit lands (R54:
        # a derived cell never pairs this query's rows of one commit with a cell of a later
        # one). Otherwise they re-run now, with this result.
        work, self._again_work = self._again_work, None
        if work is not None:
            scheduler = self.scheduler
            try:
                with scheduler.working_for(work.epoch):  # (its own cause: see settle)
                    self._run_again()
            finally:
                scheduler.end_work(work)
        self.scheduler.landed(self)

    @property
    def _again(self) -> bool:
        """Whether another run is wanted once the one in flight lands."""
        return self._again_work is not None

    def _want_again(self) -> None:
        """Another run is wanted once the one in flight lands, for the running item's cause.
        That cause is counted as work until the run starts (Scheduler.settle): the run in
        flight may count under a newer cause — started by a later commit while a read done again
        was still due — and settle() must not take its landing, older rows, for the last word."""
        work = self._again_work
        if work is None:
            self._again_work = self.scheduler.begin_work()
        else:
            self.scheduler.lower(work)

    def _run_again(self) -> None:
        if self._fixed is not None:
            self._start(*self._fixed)
        elif self.scheduler.hold_while_waiting(self):
            pass  # its parameters wait for a run in flight: computed again once it lands
        else:
            try:
                params = self._resolved()
            except QueryArgumentError:  # refused: compute has said so (no run to start)
                params = None
            if params is not None and not any(map(is_pending, _members(params))):
                self._start(params, _params_key(params))

    def _finish(self, state: QueryState[Any]) -> None:
        state, notify = self._receive_state(state)
        if notify:
            self.scheduler.set_value(self, state)
        self.landed()

    def _receive_state(self, state: QueryState[Any]) -> tuple[QueryState[Any], bool]:
        self._running = False
        notify = not state.same_rows(self.value)
        if not notify:
            self.value = state
        return state, notify

    def release(self) -> None:
        work, self._again_work = self._again_work, None
        if work is not None:
            self.scheduler.end_work(work)
        if self._follows:
            self.query.host.live_queries.follow_links(self, ())
        self.query.host.live_queries.release(self)

    def __repr__(self) -> str:
        return repr(self.query)

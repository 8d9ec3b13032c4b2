"""Live queries (R42, R50–R52): a query cell whose value is a :class:`QueryState`.

The query re-runs on a worker thread after each change of what it reacts to (by default the
database handle, whose ``rev`` changes with each committed write). Results are delivered on the
scheduler thread, and never before the commit they reflect has been delivered (R50). A re-run whose
rows equal the previous rows updates ``seq`` but notifies nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from reactivex import Observable

from sqlite_cells.codec import PendingValue, QueryError, SqliteCellsError
from sqlite_cells.read._pool import ReadPool
from sqlite_cells.read._reader import read_rows
from sqlite_cells.read._rows import RowDecoder
from sqlite_cells.runtime import Node, Reactive, Scheduler, Space, node_of, observe_node
from sqlite_cells.schema import Declaration
from sqlite_cells.sql import Bound, is_pending

__all__ = ["Query", "QueryHost", "QueryState", "Readable", "resolve_params"]


class Readable(Protocol):
    """What a live query reads: a database handle (``SqliteDb``)."""

    @property
    def id(self) -> str: ...
    @property
    def space(self) -> Space: ...
    @property
    def declaration(self) -> Declaration: ...


class QueryHost(Protocol):
    """What a live query needs of its runtime."""

    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def read_pool(self) -> ReadPool: ...
    @property
    def query_timeout(self) -> float: ...
    @property
    def query_executor(self) -> Executor: ...

    def ensure_reconciled(self, decl: Declaration) -> None: ...


@dataclass(frozen=True, slots=True)
class QueryState:
    """``pending`` until the first result for the current sql/params; ``result`` the rows (None
    while pending with nothing to show, or on error); ``error`` a :class:`SqliteCellsError`;
    ``seq`` the commit the rows reflect (the database's watermark)."""

    pending: bool = True
    result: list[Any] | None = None
    error: SqliteCellsError | None = None
    seq: int = 0

    def same_rows(self, other: QueryState) -> bool:
        return (
            self.pending == other.pending
            and self.result == other.result
            and _same_error(self.error, other.error)
        )

    def _repr_html_(self) -> str:
        from sqlite_cells.read._display import query_state_html

        return query_state_html(self)


def _same_error(a: BaseException | None, b: BaseException | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and type(a) is type(b) and str(a) == str(b)
    )


def resolve_params(params: Any) -> Bound:
    """``params`` as bindings (a dict for named parameters, else a tuple; a lone value is one
    positional parameter), with each cell or reactive value replaced by its current value."""
    if isinstance(params, Mapping):
        return {k: _current(v) for k, v in params.items()}
    return tuple(_current(v) for v in _members(params))


def _members(params: Any) -> Iterable[Any]:
    """The parameter values of ``params`` in any of the forms ``db.query`` accepts."""
    if params is None:
        return ()
    if isinstance(params, Mapping):
        return params.values()
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        return params
    return (params,)


def _current(value: Any) -> Any:
    node = node_of(value)
    if node is None:
        return value
    if node.ready.is_set():
        return node.value
    return value.get()


def _param_nodes(params: Any) -> list[Node]:
    return [n for n in map(node_of, _members(params)) if n is not None]


class Query(Reactive):
    """A live query of a database cell (``db.query``)."""

    def __init__(
        self,
        db: Readable,
        sql: str,
        params: Any,
        decode: RowDecoder,
        react_on: Any,
        *,
        host: QueryHost,
    ) -> None:
        self.db = db
        self.host = host
        self.sql = sql
        self.params = params
        self._decode = decode
        react_node = node_of(react_on)
        param_nodes = _param_nodes(params)
        deps = tuple(param_nodes) + ((react_node,) if react_node is not None else ())
        scheduler = host.scheduler
        self._graph_node = _QueryNode(scheduler, self, deps)
        scheduler.add(self._graph_node)

    def _node(self) -> Node:
        return self._graph_node

    def get(self) -> QueryState:
        """The current state; waits for the query's first scheduling (not for its rows)."""
        state: QueryState = self._graph_node.current()
        return state

    def observe(self) -> Observable[Any]:
        return observe_node(self._graph_node)

    def display(self) -> None:
        """Show the query in a notebook output that updates in place after each change."""
        from sqlite_cells.read._display import display_query

        display_query(self)

    def __repr__(self) -> str:
        return f"<Query {self.sql!r} on {self.db.id}>"


class _QueryNode(Node):
    def __init__(self, scheduler: Scheduler, query: Query, deps: tuple[Node, ...]) -> None:
        super().__init__(scheduler, deps)
        self.query = query
        # Owned by the scheduler thread: whether a run is in flight, and whether another run is
        # wanted once it lands.
        self._running = False
        self._again = False
        self._params_key: Any = None
        self.value = QueryState()

    def compute(self) -> tuple[bool, Any]:
        state: QueryState = self.value
        params = resolve_params(self.query.params)
        if any(map(is_pending, _members(params))):
            pending = QueryState(True, state.result, None, state.seq)
            return (not pending.same_rows(state), pending)
        key = repr(params)
        changed_params = self.ready.is_set() and key != self._params_key
        self._params_key = key
        if self._running:
            self._again = True
        else:
            self._start(params)
        if changed_params and not state.pending:
            # New sql/params: pending again until their first result, keeping the old rows visible.
            pending = QueryState(True, state.result, state.error, state.seq)
            return (True, pending)
        return (False, state)

    def _start(self, params: Any) -> None:
        self._running = True
        self.scheduler.begin_work()
        runtime = self.query.host
        try:
            runtime.query_executor.submit(self._run, params)
        except RuntimeError:  # the executor is shut down: the runtime is closing
            self._running = False
            self.scheduler.end_work()

    def _run(self, params: Any) -> None:
        query = self.query
        runtime = query.host
        seq: int | None = None
        try:
            runtime.ensure_reconciled(query.db.declaration)
            rows, seq = read_rows(
                runtime.read_pool,
                query.db.declaration,
                query.sql,
                params,
                timeout=runtime.query_timeout,
            )
            state = QueryState(False, query._decode(rows), None, seq)
        except PendingValue:  # a pattern input not linked to a database yet (R61)
            state = QueryState(True, self.value.result, None, self.value.seq)
        except SqliteCellsError as exc:
            state = QueryState(False, None, exc, self.value.seq)
        except Exception as exc:  # a bug or an unexpected failure must still end the run
            error = QueryError(query.db.id, query.sql, f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
            state = QueryState(False, None, error, self.value.seq)
        file = query.db.space.file
        self.scheduler.finish_work(
            lambda: self.scheduler.after_commit(file, state.seq, lambda: self._land(state))
        )

    def _land(self, state: QueryState) -> None:
        previous: QueryState = self.value
        self._running = False
        self.scheduler.set_value(self, state, notify=not state.same_rows(previous))
        if self._again:
            self._again = False
            self._start(resolve_params(self.query.params))

    def __repr__(self) -> str:
        return repr(self.query)

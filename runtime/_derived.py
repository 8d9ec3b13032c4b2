"""Derived cells: in-memory values computed from cells and other derived values (``sc.derive``,
``sc.lift``), re-computed on the scheduler thread after the commits they depend on (R54)."""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlite_cells.codec import ClosedError, brief_repr
from sqlite_cells.runtime._boundary import InvalidArgument, checked_arguments
from sqlite_cells.runtime._cell import Cell, Reactive, same_value
from sqlite_cells.runtime._scheduler import Node, Scheduler
from sqlite_cells.runtime._streams import observe_node

if TYPE_CHECKING:
    from reactivex import Observable
else:  # what typing.get_type_hints reads
    from sqlite_cells.runtime._observable import OBSERVABLE as Observable

__all__ = ["Derived", "derive", "lift", "node_of"]

T = TypeVar("T")


def node_of(value: Any) -> Node | None:
    """The graph node behind a cell or reactive value, None for a constant."""
    if isinstance(value, Cell | Reactive):
        return value._node()
    return None


class Derived(Reactive, Generic[T]):
    """A derived cell: ``fn`` applied to the current values of ``inputs``; ``T`` is what ``fn``
    returns (for type checkers: ``sc.lift(add)(a, b).get()`` is an ``int`` when ``add`` is)."""

    def __init__(self, inputs: tuple[Any, ...], fn: Callable[..., T]) -> None:
        _check_function(fn)
        _check_arity(fn, len(inputs))
        nodes = tuple(n for n in map(node_of, inputs) if n is not None)
        if not nodes:
            raise InvalidArgument(
                f"derive/lift of {brief_repr(fn)} needs at least one cell or derived input to "
                "react to"
            )
        if any(n.scheduler is not nodes[0].scheduler for n in nodes):
            raise InvalidArgument(
                f"derive/lift of {brief_repr(fn)} has inputs of different runtimes: a derived cell "
                "re-runs after the commits of one runtime; give it cells of one runtime (open "
                "the other space from the same Runtime)"
            )
        if nodes[0].scheduler.closed:  # it would never be computed: say so now, as others do
            raise ClosedError("the runtime is closed: open a new Runtime")
        self._fn = fn
        self._inputs = inputs
        # Never released (unlike a query, see ``own``): its function may act on each value
        # (``sc.derive(c, print)``), so it runs while the runtime does.
        self._graph_node = _DerivedNode(nodes[0].scheduler, fn, inputs, nodes)
        nodes[0].scheduler.add(self._graph_node)

    def _node(self) -> Node:
        return self._graph_node

    @checked_arguments
    def get(self) -> T:
        """The current value; waits for the first computation if it has not run yet. If the
        last computation raised, that error is raised again (subscribers got it as
        ``on_error``)."""
        value: T = self._graph_node.current()
        error = self._graph_node.error
        if error is not None:
            raise error
        return value

    @checked_arguments
    def observe(self) -> Observable[T]:
        return observe_node(self)

    def _shown(self) -> str:
        node = self._graph_node
        if node.error is not None:
            return f"error {node.error!r}"
        if not node.ready.is_set():
            return "not computed yet"
        text = repr(node.value)
        return text if len(text) <= 200 else text[:199] + "…"

    def __repr__(self) -> str:
        return f"<Derived {_name(self._fn)} = {self._shown()}>"

    def _repr_html_(self) -> str:
        name = html.escape(str(getattr(self._fn, "__name__", self._fn)))
        return (
            f"<div><b>Derived</b> <code>{name}</code><pre>{html.escape(self._shown())}</pre></div>"
        )


class _DerivedNode(Node):
    """Holds the function and the inputs, not the :class:`Derived`."""

    def __init__(
        self,
        scheduler: Scheduler,
        fn: Callable[..., Any],
        inputs: tuple[Any, ...],
        deps: tuple[Node, ...],
    ) -> None:
        super().__init__(scheduler, deps)
        self.fn = fn
        self.inputs = inputs

    def compute(self) -> tuple[bool, Any]:
        value = self.fn(*[_current(i) for i in self.inputs])
        return (not self.ready.is_set() or not same_value(value, self.value), value)

    def __repr__(self) -> str:
        return f"<Derived {_name(self.fn)}>"


def _current(value: Any) -> Any:
    """An input's value for a computation; an input whose own last computation failed (a
    stored cell that cannot be read) fails this one with its error, rather than passing on
    the ``None`` it holds as if that were its value."""
    node = node_of(value)
    if node is None:
        return value
    if node.error is not None:
        raise node.error
    return node.value


@checked_arguments
def derive(source: Any, fn: Callable[[Any], T]) -> Derived[T]:
    """A derived cell holding ``fn(source's value)``."""
    return Derived((source,), fn)


@checked_arguments
def lift(fn: Callable[..., T]) -> Callable[..., Derived[T]]:
    """Turn ``fn`` into a builder of derived cells: ``lift(f)(a, b)`` holds ``f(a's value, b's
    value)``; constants are passed through. A ``fn`` that is not callable is an
    :class:`InvalidArgument` at once, where ``lift`` is called, not when its builder is."""
    _check_function(fn)

    def build(*inputs: Any, **named: Any) -> Derived[T]:
        if named:
            raise InvalidArgument(
                f"lift({_name(fn)}) takes its inputs by position, "
                f"one per argument of the function, in order; {', '.join(map(repr, named))} "
                "given by name: pass each in its place"
            )
        return Derived(inputs, fn)

    build.__name__ = getattr(fn, "__name__", "lifted")
    return build


def _check_function(fn: object) -> None:
    if not callable(fn):
        raise InvalidArgument(f"derive/lift takes a function, not {brief_repr(fn)}")
    if (
        inspect.iscoroutinefunction(fn)
        or inspect.isasyncgenfunction(fn)
        or inspect.iscoroutinefunction(type(fn).__call__)  # an object with async __call__
    ):
        raise InvalidArgument(
            f"derive/lift takes a plain function, not the async function {brief_repr(fn)}: a "
            "derived value is computed on the runtime's thread, where nothing awaits it, so its "
            "value would be a coroutine that never runs; compute it in a plain def (await in an "
            "async handler, and write the result to a cell)"
        )


def _check_arity(fn: Callable[..., Any], count: int) -> None:
    """Refuse, where the derived cell is made, a function that cannot take ``count`` values
    positionally: it would fail at each computation, on the scheduler's thread. A callable
    without a signature (some builtins) is taken on trust."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*range(count))
    except TypeError as exc:
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise InvalidArgument(
            f"derive/lift of {name}{signature} is given {count} input(s) but the function "
            f"cannot take them ({exc}): give it a function of {count} argument(s), one per "
            "input, in order"
        ) from None


def _name(fn: object) -> str:
    """How a message or a repr names the function ``fn``: its ``__name__``, quoted, else its
    repr as :func:`brief_repr` shows it (never raising, whatever the object)."""
    try:
        name = getattr(fn, "__name__", None)
    except Exception:
        name = None
    return repr(name) if isinstance(name, str) else brief_repr(fn)

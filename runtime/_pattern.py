"""Patterns and pieces: a pattern is a function that builds a reactive graph from input cells; a
piece is one instance of it with a stable id, so re-running a program rebinds the same cells (R1).

While a pattern body runs, builders ask :func:`causal_cause` for the cause of the entity they
create: the piece id plus the builder's kind and name, or its position among unnamed builders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlite_cells.runtime._boundary import InvalidArgument

if TYPE_CHECKING:
    from sqlite_cells.runtime._cell import Cell
    from sqlite_cells.runtime._space import Space

__all__ = ["Pattern", "Piece", "building", "causal_cause", "pattern"]


class _Build:
    __slots__ = ("counters", "piece_id")

    def __init__(self, piece_id: str) -> None:
        self.piece_id = piece_id
        self.counters: dict[str, int] = {}


_KINDS = {"sqlite": "database", "cell": "cell"}  # kind of cause -> what a message calls it

_build: ContextVar[_Build | None] = ContextVar("sqlite_cells_build", default=None)


@contextmanager
def building(piece_id: str) -> Iterator[None]:
    token = _build.set(_Build(piece_id))
    try:
        yield
    finally:
        _build.reset(token)


def causal_cause(space_id: str, kind: str, name: str | None) -> tuple[str | int, ...]:
    """The cause an entity id is derived from (R1): ``(kind, space id, name)`` outside a
    pattern; inside one ``(kind, piece id, name)``, or the builder's position when unnamed."""
    build = _build.get()
    if build is None:
        if name is None:
            raise InvalidArgument(
                f"a {_KINDS.get(kind, kind)} outside a pattern needs a name: its id derives from it"
            )
        return (kind, space_id, name)
    if name is not None:
        return (kind, "piece", build.piece_id, name)
    position = build.counters.get(kind, 0)
    build.counters[kind] = position + 1
    return (kind, "piece", build.piece_id, "#", position)


class Pattern:
    """A function decorated with ``@sc.pattern``; instantiate it with ``space.run``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<pattern {self.name}>"


def pattern(fn: Callable[..., Any]) -> Pattern:
    return Pattern(fn)


@dataclass(frozen=True)
class Piece:
    """One instance of a pattern: ``inputs`` are its input cells (each holds the value or a link
    to the cell it was given), ``outputs`` what the pattern body returned."""

    id: str
    space: Space
    pattern: Pattern
    inputs: dict[str, Cell] = field(default_factory=dict)
    outputs: Any = None

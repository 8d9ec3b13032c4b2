"""Patterns and pieces: a pattern is a function that builds a reactive graph from input cells; a
piece is one instance of it with a stable id, so re-running a program rebinds the same cells (R1).

While a pattern body runs, builders ask :func:`causal_cause` for the cause of the entity they
create: the piece id plus the builder's kind and name, or its position among unnamed builders.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlite_cells.codec import brief_repr
from sqlite_cells.runtime._boundary import (
    InvalidArgument,
    Reference,
    UnknownInput,
    checked_arguments,
)

if TYPE_CHECKING:
    from sqlite_cells.runtime._cell import Cell
    from sqlite_cells.runtime._space import Space

__all__ = ["Pattern", "Piece", "building", "causal_cause", "pattern", "piece_cause"]


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


# The pattern whose function is being called directly (not through space.run), if any.
_called_directly: ContextVar[str | None] = ContextVar("sqlite_cells_called_directly", default=None)


def top_level_name(cause: tuple[str | int, ...]) -> str | None:
    """The name in a cause :func:`causal_cause` made outside a pattern (``(kind, space id,
    name)``), else None: a piece's entities are named by its record, not by a name alone."""
    if len(cause) == 3 and isinstance(cause[2], str):
        return cause[2]
    return None


def causal_cause(space_id: str, kind: str, name: str | None) -> tuple[str | int, ...]:
    """The cause an entity id is derived from (R1): ``(kind, space id, name)`` outside a
    pattern; inside one ``(kind, piece id, name)``, or the builder's position when unnamed —
    whatever space it is built in (a database of one cause in two spaces is refused where it
    is declared: its file is named by its id, R2)."""
    build = _build.get()
    if build is None:
        if name is None:
            called = _called_directly.get()
            if called is not None:  # the pattern's function called as a plain function
                raise InvalidArgument(
                    f"a {_KINDS.get(kind, kind)} outside a pattern needs a name: pattern "
                    f"{called} was called directly, so its body runs outside any piece; run a "
                    f"pattern with space.run({called.rpartition('.')[2]}, key=…, …) instead"
                )
            raise InvalidArgument(
                f"a {_KINDS.get(kind, kind)} outside a pattern needs a name: its id derives from "
                "it (a thread a pattern's body starts is outside the pattern: Python's threads "
                "do not take their starter's context; build there with names, or start the "
                "thread's function with contextvars.copy_context().run)"
            )
        return (kind, space_id, name)
    if name is not None:
        return (kind, "piece", build.piece_id, name)
    # The position is taken once what was built with it is accepted (see taken): a call
    # refused for a bad argument takes none, so the ids after it do not depend on it.
    return (kind, "piece", build.piece_id, "#", build.counters.get(kind, 0))


def taken(cause: tuple[str | int, ...]) -> None:
    """The builder given ``cause`` by :func:`causal_cause` has built its entity: an unnamed
    one's position is taken, and the next unnamed builder of its kind gets the next."""
    if len(cause) == 5 and cause[3] == "#":
        build = _build.get()
        if build is not None and build.piece_id == cause[2]:
            kind, position = str(cause[0]), int(cause[4])
            build.counters[kind] = max(build.counters.get(kind, 0), position + 1)


def piece_cause(space_id: str, pattern_name: str, key: str) -> tuple[str | int, ...]:
    """The cause a piece id is derived from (R1): ``("piece", space id, pattern name, key)``
    for ``space.run`` outside a pattern; inside a pattern body the piece being built is the
    cause instead of the space, so a pattern that runs another one gives each of its own pieces
    its own nested piece (two parents running a child with one key do not share it)."""
    build = _build.get()
    if build is None:
        return ("piece", space_id, pattern_name, key)
    return ("piece", "piece", build.piece_id, pattern_name, key)


class Pattern:
    """A function decorated with ``@sc.pattern``; instantiate it with ``space.run``.

    A piece's inputs are given by name (``space.run(p, key=…, me=cell)``), so every parameter
    must be one a name can give: a positional-only parameter, ``*args`` or ``**kwargs`` is an
    :class:`InvalidArgument` here, when the pattern is declared. ``inputs`` are the parameter
    names, in order."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise InvalidArgument(f"@sc.pattern decorates a function, not {brief_repr(fn)}")
        module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise InvalidArgument(
                f"@sc.pattern decorates a function defined with def, not {brief_repr(fn)}: a "
                "piece's id derives from the pattern's module and qualified name, which it lacks"
            )
        if qualname.rpartition(".")[2] == "<lambda>":
            # Every lambda of a module has one qualified name: two would share their pieces.
            raise InvalidArgument(
                "@sc.pattern decorates a function defined with def, not the lambda "
                f"{brief_repr(fn)}: a piece's id derives from the pattern's module and qualified "
                "name, and every lambda there is called <lambda>, so two would share their "
                "pieces (R1)"
            )
        if (
            inspect.iscoroutinefunction(fn)
            or inspect.isgeneratorfunction(fn)
            or inspect.isasyncgenfunction(fn)
        ):
            raise InvalidArgument(
                f"@sc.pattern decorates a plain function, not the async or generator function "
                f"{module}.{qualname}: its body would run after space.run returned, outside the "
                "piece, so its builders would not get the piece's ids (R1); build the graph in "
                "a plain def (handlers may be async)"
            )
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"@sc.pattern cannot read the parameters of {brief_repr(fn)} ({exc}): decorate a "
                "function defined with def"
            ) from None
        for parameter in signature.parameters.values():
            if parameter.kind not in _BY_NAME:
                raise InvalidArgument(
                    f"pattern {module}.{qualname}: its parameter {_shown(parameter)} "
                    f"{_KIND_SAID[parameter.kind]}, but space.run gives a piece its inputs by "
                    "name; make it an ordinary parameter (remove the '/', or the * / ** form)"
                )
            if parameter.name in _RUN_TAKES:
                raise InvalidArgument(
                    f"pattern {module}.{qualname}: its parameter {parameter.name!r} cannot be "
                    f"given as an input, since space.run(pattern, *, key, **inputs) takes "
                    f"{parameter.name!r} itself; rename the parameter"
                )
        self.fn = fn
        # A program's main script is `__main__`, and `__mp_main__` in its own multiprocessing
        # workers (spawn, forkserver): one program, one pattern, the same pieces (R1).
        self.name = f"{_MAIN.get(module, module)}.{qualname}"
        self.signature = signature
        self.inputs = tuple(signature.parameters)
        functools.update_wrapper(self, fn)

    def check_inputs(self, names: Iterable[str]) -> None:
        """Refuse input names the pattern has no parameter for (:class:`InvalidArgument`),
        before ``space.run`` records anything."""
        unknown = [name for name in names if name not in self.signature.parameters]
        if unknown:
            takes = ", ".join(self.inputs) if self.inputs else "no inputs"
            said = ", ".join(repr(name) for name in unknown)
            alike = "".join(spelled_apart(name, self.inputs) for name in unknown)
            raise InvalidArgument(
                f"pattern {self.name} has no input {said}: it takes {takes}; nothing was "
                f"recorded — pass only those (by name){alike}"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _build.get() is not None:  # (space.run builds its body by calling fn itself)
            return self.fn(*args, **kwargs)
        token = _called_directly.set(self.name)  # what a builder's refusal tells the caller
        try:
            return self.fn(*args, **kwargs)
        finally:
            _called_directly.reset(token)

    def __reduce__(self) -> tuple[Any, ...]:
        """A pattern pickles by its module and qualified name — what its pieces' ids derive
        from (R1) — and unpickles as the pattern found there (for a ``spawn`` process pool).
        Pickling its function by reference fails (the pattern stands at that name, not the
        function), and one defined inside a function has no name to be found by."""
        module, qualname = _MAIN.get(self.fn.__module__, self.fn.__module__), self.fn.__qualname__
        if "<locals>" in qualname.split("."):
            raise InvalidArgument(
                f"pattern {self.name} cannot be pickled: it is defined inside a function, so no "
                "other process can find it by its name; define it at the top level of a module"
            )
        return (_pattern_named, (module, qualname))

    def __repr__(self) -> str:
        return f"<pattern {self.name}>"


_MAIN: Final = {"__mp_main__": "__main__"}


def _pattern_named(module: str, qualname: str) -> Pattern:
    """The pattern ``module.qualname`` (how a pickled pattern is found again)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, Pattern):
        raise InvalidArgument(
            f"no pattern {module}.{qualname} to unpickle: that name holds {brief_repr(found)}; "
            "the process that unpickles it must define the pattern as the one that pickled it"
        )
    return found


_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# The names space.run takes for itself: no input of those names can be given to it.
_RUN_TAKES = frozenset({"self", "pattern", "key"})
_KIND_SAID = {
    inspect.Parameter.POSITIONAL_ONLY: "is positional-only",
    inspect.Parameter.VAR_POSITIONAL: "collects positional arguments",
    inspect.Parameter.VAR_KEYWORD: "collects arbitrary keyword arguments",
}


def _shown(parameter: inspect.Parameter) -> str:
    prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(parameter.kind.name, "")
    return repr(prefix + parameter.name)


@checked_arguments
def pattern(fn: Callable[..., Any]) -> Pattern:
    """Make ``fn`` a pattern (see :class:`Pattern`); a non-callable, or a parameter that cannot
    be given by name, is an :class:`InvalidArgument` (a ``TypeError``) at once."""
    return Pattern(fn)


class Inputs(dict[str, "Cell"]):
    """A piece's input cells by input name. A name the pattern does not take is an
    :class:`UnknownInput` (a ``KeyError`` too) that lists the names it does take; ``get`` and
    ``in`` answer for any name (one that is no text names no input). Read-only:
    an input is given a value or a link through its cell (``set``, ``link``), never replaced
    in this mapping (an int put there made a later ``link`` a raw ``AttributeError``)."""

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise InvalidArgument(
            "a piece's inputs are its input cells, fixed by its pattern: give an input a value "
            "with piece.inputs[name].set(value) in a transaction, or a database with "
            "piece.inputs[name].link(handle); nothing was changed"
        )

    __setitem__ = __delitem__ = __ior__ = _refuse
    pop = popitem = setdefault = update = clear = _refuse

    def __getitem__(self, name: object) -> Cell:
        key = _input_name(name)
        if key is None:  # (an unhashable one would be Python's TypeError)
            return self.__missing__(name)
        return super().__getitem__(key)

    @checked_arguments
    def get(self, name: object, default: Any = None) -> Any:
        """The input cell of that name, else ``default``: also for a name that is no text (a
        list, a dict), which names no input, as ``in`` says."""
        key = _input_name(name)
        return default if key is None else super().get(key, default)

    def __contains__(self, name: object) -> bool:
        key = _input_name(name)
        return key is not None and super().__contains__(key)

    def __copy__(self) -> Inputs:
        return self  # read-only, and its cells are the piece's: a copy is this mapping

    def __deepcopy__(self, memo: dict[int, Any]) -> Inputs:
        return self

    def __missing__(self, name: object) -> Cell:
        takes = ", ".join(repr(n) for n in self) if self else "no inputs"
        alike = spelled_apart(name, self) if isinstance(name, str) else ""
        raise UnknownInput(
            f"this piece has no input {name!r}: its pattern takes {takes}; "
            f"use one of those names, as the pattern's parameters spell them{alike}"
        )


def spelled_apart(name: str, inputs: Iterable[str]) -> str:
    """What to add to the refusal of input ``name`` when it is a parameter's name in another
    Unicode form (``'cafe\\u0301'`` for ``'café'``): Python stores a parameter's name in NFKC
    form, and the two look alike in a message, which would list the name it refuses."""
    folded = unicodedata.normalize("NFKC", str.__str__(name))
    for known in inputs:
        if known != name and unicodedata.normalize("NFKC", known) == folded:
            return (
                f" ({str.__str__(name)!a} is the input {known!a} written with other "
                "Unicode code points: Python spells a parameter's name in NFKC form; pass "
                "unicodedata.normalize('NFKC', name))"
            )
    return ""


def _input_name(name: object) -> str | None:
    """``name`` as the key of an input (a ``str`` subclass as its plain text, whatever its own
    hash says), or None for anything else, which names no input."""
    if type(name) is str:
        return name
    return str.__str__(name) if isinstance(name, str) else None


@dataclass(frozen=True, eq=False)
class Piece(Reference):
    """One instance of a pattern: ``inputs`` are its input cells (each holds the value or a link
    to the cell it was given), ``outputs`` what the pattern body returned.

    A piece is its id in its space: two runs with the same key are the same piece (equal, one
    hash) — in runtimes on one store too, whose cells are shared (a cell's rule) — and a copy of
    one is itself, as a cell's is. Like a cell, it cannot be pickled (its space, inputs and
    outputs belong to an open runtime): running its pattern again with its key gives it back."""

    id: str
    space: Space
    pattern: Pattern
    inputs: Inputs = field(default_factory=Inputs)
    outputs: Any = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Piece):
            return NotImplemented
        if self.id != other.id:
            return False
        mine, theirs = self.space, other.space
        return mine is theirs or (
            mine.id == theirs.id and mine.runtime.store == theirs.runtime.store
        )

    def __hash__(self) -> int:
        return hash((Piece, self.id))

    def _not_pickled(self) -> str:
        space = getattr(self.space, "id", None)
        name = getattr(self.pattern, "name", None)
        return (
            f"piece {self.id} (pattern {name}, in space {space!r}) cannot be pickled: its "
            "space, input cells and outputs belong to an open Runtime. Pickle the space id and "
            "the key it was run with, and run the pattern again where it is needed "
            "(rt.space(space_id).run(pattern, key=key, ...)): the same key is the same piece"
        )

    def __repr__(self) -> str:
        """Short, as a cell's is (a notebook shows it): the outputs cut, the inputs by name."""
        return (
            f"Piece(id={self.id!r}, space={brief_repr(getattr(self.space, 'id', None))}, "
            f"pattern={getattr(self.pattern, 'name', None)!r}, "
            f"inputs={brief_repr(list(self.inputs))}, "
            f"outputs={brief_repr(self.outputs)})"
        )

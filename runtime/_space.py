"""Spaces: named, durable namespaces of cells with a commit log (SPEC §2)."""

from __future__ import annotations

import inspect
import threading
import types
import typing
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlite_cells.codec import Link, SqliteCellsError, ValueEncodeError, brief_repr, derive_id
from sqlite_cells.runtime._boundary import (
    InvalidArgument,
    Reference,
    check_name,
    checked_arguments,
)
from sqlite_cells.runtime._cell import NO_DEFAULT, Cell, CellSource
from sqlite_cells.runtime._pattern import (
    Inputs,
    Pattern,
    Piece,
    building,
    causal_cause,
    piece_cause,
    taken,
    top_level_name,
)
from sqlite_cells.runtime._scheduler import Node
from sqlite_cells.runtime._space_file import SpaceFile
from sqlite_cells.runtime._tx import Transaction, current_transaction, own_scope, transaction

if TYPE_CHECKING:
    from sqlite_cells.runtime._runtime import Runtime

__all__ = ["Space"]

# What an input cell holds when it holds nothing: never written, or null (R61, §6).
_HOLDS_NOTHING = (None, b"null")


def own_transaction(space: Space) -> AbstractContextManager[Transaction]:
    """A transaction on ``space`` of its own, even inside another transaction, which it neither
    joins nor touches: its writes commit at the end of the block whatever becomes of the outer
    one. For writes that record a fact of the world rather than a user's change (the handle of
    a registered disk source, R60), which must not depend on the caller's transaction."""
    space.runtime.check_open()
    if not isinstance(space.file, SpaceFile):  # first met through a link (R7): create it now
        space.runtime.space(space.id)
    assert isinstance(space.file, SpaceFile)
    return own_scope(space.file)


class Space(Reference):
    """A space of one runtime. ``space.id`` is the id it was opened with."""

    def __init__(self, runtime: Runtime, space_id: str, file: SpaceFile) -> None:
        self._runtime = runtime
        self._id = space_id
        self._file = file
        # _sources_lock guards _sources (graph nodes of stored cells: by cell id, one per path).
        self._sources_lock = threading.Lock()
        self._sources: dict[str, dict[tuple[str | int, ...], CellSource]] = {}

    # Read-only: cells, links and files of the space derive from them (a space whose id was
    # reassigned would commit values under ids and links of another space, into its own file).
    @property
    def id(self) -> str:
        """The space's id, as given to ``rt.space``."""
        return self._id

    @property
    def runtime(self) -> Runtime:
        """The runtime that opened the space."""
        return self._runtime

    @property
    def file(self) -> SpaceFile:
        """The space's store file and its commit log (the runtime's own; for tooling)."""
        return self._file

    @checked_arguments
    def cell(self, name: str | None = None, *, default: Any = NO_DEFAULT) -> Cell:
        """The persisted cell named ``name`` (its id derives from the space id and the name, or
        inside a pattern from the piece; R1). ``default`` is its value until first written; it
        belongs to the id, for every ``Cell`` of it in this runtime (R4). Without ``default``
        the id keeps the default declared last (``None`` if none was). A default that is not
        JSON raises ``ValueEncodeError`` (R6)."""
        if name is not None:
            name = check_name("cell name", name)
        self.runtime.check_open()
        cause = causal_cause(self.id, "cell", name)
        try:
            cell = Cell(self, derive_id(*cause), (), default)
        except ValueEncodeError as exc:  # (the default: the error names the cell)
            shown = f"cell {name!r}" if name is not None else "the cell"
            raise ValueEncodeError(f"the default of {shown}: {exc}") from exc.__cause__
        cell._name = top_level_name(cause)  # recorded by a commit that writes it (SPEC §6)
        if cell._name is not None:
            self.file.names[cell.id] = f"cell {cell._name!r}"
        taken(cause)
        return cell

    @checked_arguments
    def transact(self) -> AbstractContextManager[Transaction]:
        """A transaction on this space: commits on normal exit, discards on an exception.
        Inside another transaction it joins the outer one."""
        self.runtime.check_open()
        if not isinstance(self.file, SpaceFile):  # first met through a link (R7): create it now
            self.runtime.space(self.id)
        return transaction(self.file)

    @checked_arguments
    def run(self, pattern: Pattern, *, key: str, **inputs: Any) -> Piece:
        """Instantiate ``pattern`` as the piece identified by (space, pattern name, ``key``);
        inside another pattern's body by (that piece, pattern name, ``key``) (R1).

        The first run records the piece in the cell of its id (``{"piece": pattern name,
        "key": key, "inputs": [names]}``). Every parameter of the pattern has an input cell in
        the piece. A given input is kept in it (a cell as a link), written only when it
        changed; the body gets what :meth:`given_input` makes of it (the cell given, or the
        input cell of a plain value); a ``Link`` given stands for the cell it names. A
        parameter given nothing gets what :meth:`unbound_input` makes of its input cell (which
        may be linked later and keeps its value across restarts) — its Python default only
        while that cell holds nothing (never written, or null). An input the pattern has no
        parameter for, or one its annotation refuses (:meth:`check_input`), is an
        :class:`InvalidArgument` before anything is recorded."""
        if not isinstance(pattern, Pattern):
            raise InvalidArgument(
                f"space.run takes an @sc.pattern function, not {brief_repr(pattern)}"
            )
        key = check_name("piece key", key)
        self.runtime.check_open()  # (a run it made before is no answer of a closed runtime)
        inputs = {check_name("pattern input name", name): value for name, value in inputs.items()}
        # A link given is the reference it serializes: the cell it names, exactly as if that
        # cell had been given (checked, kept and passed to the body as a cell).
        inputs = {
            name: self.runtime.cell_from_link(value) if isinstance(value, Link) else value
            for name, value in inputs.items()
        }
        pattern.check_inputs(inputs)
        hints = _hints(pattern)
        piece_id = derive_id(*piece_cause(self.id, pattern.name, key))
        names = sorted(pattern.inputs)
        cells = {name: Cell(self, derive_id("input", piece_id, name)) for name in names}
        for name, value in inputs.items():
            self.check_input(pattern, name, value, hints.get(name), cells[name])
        if current_transaction() is None and isinstance(self.file, SpaceFile):
            # Compared with what is committed now, not with what this runtime last saw: another
            # runtime's or process's change of an input since the last poll would otherwise
            # make the value given look unchanged, and the piece keep the other one (R1, R53).
            self.file.catch_up()
        seen = self._seen_data
        changed = {}
        for name, value in inputs.items():
            try:
                encoded = self.runtime.encode(value)
            except ValueEncodeError as exc:  # (where: the pattern and its input)
                raise ValueEncodeError(f"pattern {pattern.name!r}, input {name!r}: {exc}") from exc
            if encoded != seen(cells[name].id):
                changed[name] = value
        # The piece's record (its pattern, key and inputs) lives in the cell of the piece's
        # own id, so tools can tell a piece and its inputs from ids that name nothing.
        record = {"piece": pattern.name, "key": key, "inputs": names}
        stale = self.runtime.encode(record) != seen(piece_id)
        if changed or stale:
            with self.transact():
                if stale:
                    Cell(self, piece_id).set(record)
                for name, value in changed.items():
                    try:
                        cells[name].set(value)
                    except ValueEncodeError as exc:  # (too long to store: where, as above)
                        raise ValueEncodeError(
                            f"pattern {pattern.name!r}, input {name!r}: {exc}"
                        ) from exc
        args = {
            name: self.given_input(cells[name], value, hints.get(name))
            for name, value in inputs.items()
        }
        for name, parameter in pattern.signature.parameters.items():
            if name in args:
                continue
            # A Python default stands in for an input nobody gave, so long as its input cell
            # holds nothing: one linked or set before this run (``sqlite-cells link``, a link
            # made in a previous run) is what the piece was given, and the body gets it. A
            # null holds nothing either: an input cleared by ``set(None)``, or given ``None``
            # at an earlier run, is back to its default.
            held = seen(cells[name].id) not in _HOLDS_NOTHING
            if held or parameter.default is inspect.Parameter.empty:
                args[name] = self.unbound_input(cells[name], hints.get(name))
        with building(piece_id):
            outputs = pattern.fn(**args)
        return Piece(
            id=piece_id, space=self, pattern=pattern, inputs=Inputs(cells), outputs=outputs
        )

    def _seen_data(self, cell_id: str) -> bytes | None:
        """The stored value of ``cell_id`` as the current transaction sees it (its own write,
        if it wrote the cell), else as committed: what ``space.run`` compares its inputs with
        (§3: inside a transaction a cell reads what the transaction sees)."""
        tx = current_transaction()
        written = None if tx is None else tx.written(self.file, cell_id)
        return written if written is not None else self.file.entity(cell_id).data

    def check_input(
        self, pattern: Pattern, name: str, value: Any, annotation: Any, cell: Cell
    ) -> None:
        """Refuse, with an :class:`InvalidArgument`, a value given for input ``name`` (whose
        input cell is ``cell``) that the parameter's ``annotation`` cannot take; called before
        ``run`` records anything. The plain runtime takes any value R6 allows (an extension may
        refuse more)."""

    def check_link(self, cell: Cell, target: Cell) -> None:
        """Refuse, with an :class:`InvalidArgument`, linking ``cell`` to ``target`` when ``cell``
        takes only some cells (an extension's typed pattern inputs); called by ``Cell.link``
        before anything is written. The plain runtime takes any cell."""

    def given_input(self, cell: Cell, value: Any, annotation: Any) -> Any:
        """What a pattern body gets for a parameter given ``value`` (already kept in its input
        ``cell``): a cell given, else the input cell (an extension may wrap it according to the
        parameter's annotation). A cell of another runtime on this store is this runtime's
        cell of that id and path, as a run given nothing gets it (§2): the piece's graph must
        not follow, nor stop with, a runtime other than its own."""
        if not isinstance(value, Cell):
            return cell
        if type(value) is Cell and value.space.runtime is not self.runtime:
            return self.runtime.cell_for(value.link())
        return value

    def unbound_input(self, cell: Cell, annotation: Any) -> Any:
        """What a pattern body gets for a parameter nobody gave a value: the cell its input cell
        links to, as the run that gave that cell got it (§2: re-running rebinds to the same
        cells); else its input cell (an extension may wrap it according to the parameter's
        annotation)."""
        try:
            linked = cell.get()
        except SqliteCellsError:  # (what it holds cannot be read: the input cell says so)
            return cell
        return linked if isinstance(linked, Cell) else cell

    def source_for(self, cell: Cell) -> CellSource:
        """The graph node that tracks ``cell`` (shared by every Cell object naming the same cell
        and path; the default belongs to the id, R4)."""
        with self._sources_lock:
            paths = self._sources.setdefault(cell.id, {})
            node = paths.get(cell.value_path)
            if node is None:
                node = paths[cell.value_path] = CellSource(cell)
                self.runtime.scheduler.add(node)
        return node

    def default_changed(self, cell_id: str) -> None:
        """The default of ``cell_id`` was declared anew (R4): its graph nodes (every path)
        compute again, so observers and derived cells of a cell not yet written move to the new
        default as ``get()`` does; a written cell's nodes find nothing changed."""
        with self._sources_lock:
            nodes: list[Node] = list(self._sources.get(cell_id, {}).values())
        if nodes:
            self.runtime.scheduler.rerun(nodes)

    # A space is its runtime's: a copy is the same space; it cannot be pickled.
    def _not_pickled(self) -> str:
        return (
            f"space {self.id!r} cannot be pickled: it belongs to an open Runtime. Pickle its id "
            "and open it again where it is needed (rt.space(space_id))"
        )

    def __repr__(self) -> str:
        return f"<Space {brief_repr(self.id)}>"


def _hints(pattern: Pattern) -> dict[str, Any]:
    """The resolved annotations of the pattern's parameters. One that cannot be resolved (a
    name imported for type checkers only, or local to a function, under postponed annotations)
    is left as written (its text): it never fails the run, nor the wrapping of the others (a
    database input typed ``sc.SqliteDb``, R61), and an extension may read its text."""
    fn = pattern.fn
    try:
        return typing.get_type_hints(fn)
    except Exception:  # any failure to resolve: resolve them one at a time below
        pass
    hints: dict[str, Any] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        alone = types.FunctionType(_no_body.__code__, fn.__globals__)
        alone.__annotations__ = {name: annotation}
        try:
            hints.update(typing.get_type_hints(alone))
        except Exception:  # this one stays unresolved, as written
            hints[name] = annotation
    return hints


def _no_body() -> None:
    """The code object of a stand-in function that carries one annotation to resolve."""

"""Cells: durable JSON values (with links to other cells) addressed by id and path."""

from __future__ import annotations

import enum
import html
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Never, overload

import msgspec

from sqlite_cells.codec import (
    MAX_DEPTH,
    EncodingError,
    Link,
    SqliteCellsError,
    StoredCellError,
    ValueEncodeError,
    brief_repr,
    decode_value,
    encode_link,
)
from sqlite_cells.runtime._boundary import (
    InvalidArgument,
    Reference,
    checked_arguments,
    refusal_of,
    surrogate_at,
)
from sqlite_cells.runtime._scheduler import Node, Scheduler
from sqlite_cells.runtime._shown import (
    SHOWN_DECODED,
    cut_repr,
    large_value,
    short,
    showing,
    shown_once,
)
from sqlite_cells.runtime._streams import observe_node
from sqlite_cells.runtime._tx import (
    TxState,
    check_read,
    current_transaction,
    forget_read,
    note_read,
    over_length_limit,
    record_write,
    require_transaction,
)

if TYPE_CHECKING:
    from reactivex import Observable

    from sqlite_cells.runtime._space import Space
    from sqlite_cells.runtime._space_file import SpaceFile
else:  # what typing.get_type_hints reads (the package binds Space and SpaceFile once loaded)
    from sqlite_cells.runtime._observable import OBSERVABLE as Observable

__all__ = [
    "NO_DEFAULT",
    "NO_VALUE",
    "Cell",
    "CellSource",
    "Reactive",
    "refuse_get",
    "refuse_set",
    "value_at",
    "with_value_at",
]

PathElement = str | int


class _NoDefault(enum.Enum):
    NO_DEFAULT = "NO_DEFAULT"

    def __repr__(self) -> str:
        return "sc.runtime.NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault.NO_DEFAULT  # "no default declared here": keep the id's default


class _NoValue(enum.Enum):
    NO_VALUE = "NO_VALUE"

    def __repr__(self) -> str:  # (help() shows it as link()'s default)
        return "<not given>"


NO_VALUE: Any = _NoValue.NO_VALUE  # set() called without a value


def _get(self: Cell) -> Any:
    """Cell.get's public signature."""


def _set(self: Cell, value: Any) -> None:
    """Cell.set's public signature."""


_get.__qualname__, _set.__qualname__ = "Cell.get", "Cell.set"
refuse_get, refuse_set = refusal_of(_get), refusal_of(_set)


# Ids up to this length (a derived one has 55 characters, R1) are taken as they are when they
# have the form of one; a longer one is checked whole, as a link would hold it (R30: at most
# ``MAX_NAME_BYTES``), so no cell is made that no link can name.
_SHORT_ID: Final = 64


class Cell(Reference):
    """A cell of a space, or a path inside its value (``cell.key("a").key(0)``).

    ``get`` returns the committed value (inside a transaction: what the transaction sees, and the
    revision seen is recorded for conflict checks); ``set``/``update`` write inside a transaction.
    Cells stored inside a value are stored as links and read back as ``Cell``s.

    The default belongs to the id within the runtime (R4): passing ``default`` declares it for
    every ``Cell`` of that id (however it was obtained) until the cell is first written; without
    it, the default most recently declared in this runtime applies (``None`` if none was).
    """

    # ``__weakref__``: a caller's cache keyed weakly takes a cell, as it takes a query (8 bytes).
    __slots__ = ("__weakref__", "_id", "_name", "_space", "_value_path")

    # The name ``space.cell(name)`` gave a cell outside a pattern (kept by the Cells ``key``
    # makes of it), else None; read at a write (see ``_named``). Cells decoded from
    # links in bulk (``Runtime.cells_for``) leave it unset, so they cost nothing more.
    _name: str | None

    def __init__(
        self,
        space: Space,
        cell_id: str,
        path: tuple[PathElement, ...] = (),
        default: Any = NO_DEFAULT,
    ) -> None:
        if type(path) is not tuple:
            if not isinstance(path, tuple | list):
                raise InvalidArgument(
                    f"Cell(space, cell_id, path): path must be a tuple or list of keys, not "
                    f"{brief_repr(path)}; get cells at a path with cell.key(…)"
                )
            try:
                path = tuple(path)
            except Exception as exc:  # (a list of the caller's own class: its error, said)
                raise InvalidArgument(
                    f"Cell(space, cell_id, path): reading the path given raised "
                    f"{type(exc).__name__}: {exc}; give the path as a plain tuple or list of "
                    "keys, or get cells at a path with cell.key(…)"
                ) from exc
        if type(cell_id) is not str and isinstance(cell_id, str):
            cell_id = str.__str__(cell_id)  # (a str of a class of the caller's names its text)
        if (
            path
            or type(cell_id) is not str
            or not cell_id.startswith("of:")
            or not (cell_id.isascii() and cell_id.isprintable())
            or not 4 <= len(cell_id) <= _SHORT_ID
            or not _is_space(space)
        ):
            _check_cell(space, cell_id, path)  # (an id derived here, R1, passes the above)
        self._space = space
        self._id = cell_id
        self._value_path = path
        self._name = None
        if default is not NO_DEFAULT:
            if self._value_path:
                raise InvalidArgument(
                    f"a default belongs to a whole cell (R4), not to a path inside it: a "
                    f"default given with the path {brief_repr(self._value_path)} would replace "
                    f"the default of all of cell {cell_id}; nothing was declared: give the "
                    "default to the cell without a path, as a value that holds this one"
                )
            space.runtime.declare_default(space.id, cell_id, default)

    @property
    def id(self) -> str:
        """The cell's id (R1); read-only: a ``Cell`` names one cell for its whole life."""
        return self._id

    @property
    def value_path(self) -> tuple[PathElement, ...]:
        """The path inside the cell's value this ``Cell`` reads and writes (``()``: the whole
        value); read-only, like the id: ``key`` gives a ``Cell`` at a longer path."""
        return self._value_path

    @property
    def default(self) -> Any:
        """The default of this cell's id in this runtime (R4), at this cell's path."""
        return value_at(self._root_default(link_cells=True), self._value_path)

    def _root_default(self, *, link_cells: bool) -> Any:
        data = self._space.runtime.default_data(self._space.id, self._id)
        if data is None:
            return None
        return decode_value(data, self._space.runtime.cell_for if link_cells else None)

    @property
    def space(self) -> Space:
        """The space the cell belongs to (its id derives from that space's id, R1)."""
        return self._space

    # -- reading -------------------------------------------------------------------------------

    def _entity_data(self) -> bytes | None:
        file = self._space.file
        tx = current_transaction()
        if tx is None or tx.state is not TxState.OPEN:
            return file.entity(self._id).data
        note_read(tx, self._id, self._value_path)
        written = tx.written(file, self._id)
        if written is not None:
            return written
        entity = file.entity(self._id)
        tx.record_read(file, self._id, entity.rev)
        return entity.data

    def looked_at(self) -> Any:
        """What :meth:`get` returns, the read recorded alike, for a caller that only looks at
        the value (``db.read`` binds it as a parameter) and never changes it: the value the
        scheduler computed from the same stored bytes when the cell's node has one — a cell at
        a path of a large value otherwise decodes the whole value at each call."""
        data = self._entity_data()
        if data is not None:
            node = self._space.source_for(self)
            computed_from, value = node.computed
            if computed_from is data or computed_from == data:
                return value
        return self.decode(data)

    def decode(self, data: bytes | None) -> Any:
        """The value at this cell's path in the stored entity ``data`` (the default if absent)."""
        if data is None:
            root = self._root_default(link_cells=True)
        else:
            root = self._decode_stored(data, link_cells=True)
        return value_at(root, self._value_path)

    def _decode_stored(self, data: bytes, *, link_cells: bool) -> Any:
        """The stored entity ``data`` decoded; bytes another program stored that cannot be read
        (not JSON, nested too deeply) are a :class:`StoredCellError` naming this cell and its
        space file."""
        try:
            return decode_value(data, self._space.runtime.cell_for if link_cells else None)
        except StoredCellError:
            raise
        except EncodingError as exc:
            path = str(self._space.file.path)
            raise StoredCellError(
                self._id, path, "value", data, f"cell {self._id} in space file {path}: {exc}"
            ) from exc

    @refuse_get.shown
    def get(self, *extra: Never, **named: Never) -> Any:
        """The committed value (R50: never an uncommitted one); inside a transaction, what the
        transaction sees, its own writes included. Its default (R4) until first written; links
        in it read back as ``Cell`` objects."""
        # Stray arguments are refused here, not by checked_arguments: get is hot (see refusal_of).
        if extra or named:
            refuse_get(self, *extra, **named)
        return self.decode(self._entity_data())

    # -- writing -------------------------------------------------------------------------------

    # The overloads are the signature a type checker sees: a value, given by position or by
    # name. The function itself takes anything, to refuse a wrong call with our own error.
    @overload
    def set(self, value: Any, /) -> None: ...
    @overload
    def set(self, *, value: Any) -> None: ...
    @refuse_set.shown
    def set(self, value: Any = NO_VALUE, *extra: Never, **named: Never) -> None:
        """Write ``value`` at this cell's path (inside a transaction; ``NoTransaction`` otherwise).
        A write at a path reads the rest of the value, so concurrent writers conflict. A value
        that is not JSON raises ``ValueEncodeError`` before anything is recorded (R6); a cell the
        runtime protects (a database handle, R5) raises a ``TypeError``."""
        # Missing or stray arguments are refused here: set is hot (see refusal_of).
        if value is NO_VALUE or extra or named:
            given = () if value is NO_VALUE else (value,)
            refuse_set(self, *given, *extra, **named)
        # The seq seen before the check: a commit applied after it is judged again at commit.
        seen = self._space.file.seen_seq
        again = self._space.runtime.check_writable(self._space.id, self._id)
        self._write(value, checked=True, seen=seen if again else None)

    def _encoded(self, value: Any) -> bytes:
        """``value`` (this cell's whole new value) encoded; a ``ValueEncodeError`` names the
        cell, as the write's other errors do: a handler writing several cells says which."""
        try:
            data = self._space.runtime.encode(value)
        except ValueEncodeError as exc:
            raise ValueEncodeError(f"writing {self._shown()}: {exc}") from exc.__cause__
        too_long = over_length_limit(self._id, data, shown=f"writing {self._shown()}")
        if too_long is not None:  # (refused here, before anything is recorded, R6, R44)
            raise too_long
        return data

    def _shown(self) -> str:
        """The cell as an error names it: its name when it has one, its id, and its path."""
        name = getattr(self, "_name", None)
        shown = f"cell {name!r} ({self._id})" if name else f"cell {self._id}"
        return f"{shown} at path {list(self._value_path)!r}" if self._value_path else shown

    def _write(self, value: Any, *, checked: bool = False, seen: int | None = None) -> None:
        """``set`` without the runtime's writability checks (for the owner of a protected cell);
        ``checked``: the runtime also judges the cell's whole new value (``check_value``);
        ``seen``: the space's seq the writability check saw, when the runtime asked to judge
        the write again at commit should another writer commit the cell after that seq."""
        tx = require_transaction(f"writing cell {self._id}", self._space.file)
        file = self._space.file
        runtime = self._space.runtime
        if not self._value_path:
            whole = self._encoded(value)
            if checked:
                runtime.check_value(self._space.id, self._id, whole)
            record_write(tx, file, self._id, whole, guard=seen, name=self._named(file))
            return
        # A write at a path reads the rest of the value; the read is recorded only once the
        # write is (a path that does not fit the value, or a value that does not encode, leaves
        # the transaction as it was: R31).
        if len(self._value_path) >= MAX_DEPTH:
            # (Refused before the value is rebuilt along the path, one call per key: a path
            # some thousands of keys deep ran out of Python's stack doing so.)
            raise ValueEncodeError(
                f"cell {self._id}: a value set at a path {len(self._value_path)} keys deep nests "
                f"lists and dicts more than {MAX_DEPTH} levels deep (R6): set it at a shallower "
                "path"
            )
        read: int | None = None
        data = tx.written(file, self._id)
        if data is None:
            entity = file.entity(self._id)
            data, read = entity.data, entity.rev
        root = (
            self._root_default(link_cells=False)
            if data is None
            else self._decode_stored(data, link_cells=False)
        )
        value = with_value_at(root, self._value_path, value)
        whole = self._encoded(value)
        if checked:
            runtime.check_value(self._space.id, self._id, whole)
        if read is not None:
            # The rest of the value is of a commit after the one this transaction read the cell
            # at: a conflict, raised before the write is recorded (R32: a refused call records
            # nothing), else the write would stand on the newer value with no read to refuse it.
            check_read(tx, file, self._id, read)
        record_write(tx, file, self._id, whole, name=self._named(file), path=self._value_path)
        if read is not None and tx.state is TxState.OPEN:
            tx.record_read(file, self._id, read)

    def _named(self, file: SpaceFile) -> tuple[str, str] | None:
        """The name for the commit to record, so the store's tools can show it (SPEC §6; an id
        is a one-way hash of its name, R1): when this ``Cell`` knows its name and no commit of
        this runtime recorded it yet in ``file`` — also for a cell first written before names
        were recorded (an older store, R73), which its first write here names."""
        name = getattr(self, "_name", None)
        if name is None or self._id in file.named:
            return None
        return (name, "cell")

    @checked_arguments
    def update(self, fn: Callable[[Any], Any]) -> None:
        """Set the value to ``fn(current value)``; ``fn`` that is not callable is an
        ``InvalidArgument`` (nothing is recorded). Outside a transaction it is ``NoTransaction``
        before ``fn`` runs, and a cell the runtime protects (a database handle, R5) or of
        another space than the one the transaction writes (``CrossSpaceWrite``) is refused
        before it runs too: a write that cannot be recorded does not run the caller's code."""
        if not callable(fn):
            raise InvalidArgument(
                f"update takes a function of the current value, not {type(fn).__name__}: write "
                "cell.update(lambda value: ...), or cell.set(value)"
            )
        tx = require_transaction(f"writing cell {self._id}", self._space.file)
        # A cell the runtime protects (a database handle reached by id or link, R5) is refused
        # before ``fn`` runs, as ``set`` would refuse the result: no code of the caller's runs
        # and no read is recorded (a read of a handle conflicts with its database's writes).
        self._space.runtime.check_writable(self._space.id, self._id)
        if tx.space is not None:
            # A cell of another space than the one the transaction writes: CrossSpaceWrite
            # before ``fn`` runs too (binding a bound transaction to its own space records
            # nothing).
            tx.bind(self._space.file)
        read_before = (self._space.file, self._id) in tx.reads
        written_before = tx.written(self._space.file, self._id)
        value = fn(self.get())
        try:
            if inspect.iscoroutine(value):  # an async function: its body has not run
                value.close()  # (never awaited: closed, so Python warns of nothing)
                raise InvalidArgument(
                    f"update takes a plain function of the current value, not the async "
                    f"function {brief_repr(fn)}: nothing awaits it here; await what it computes "
                    "in an async handler, then cell.set(value)"
                )
            self.set(value)
        except SqliteCellsError:
            # A result refused (not JSON, a path it cannot be set at) records nothing (R32):
            # the read this call made goes too, so a later commit to the cell is no conflict.
            # (What ``fn`` raises itself keeps it: that outcome depended on the value.) Kept
            # too when ``fn`` wrote the cell itself: that write was made from the value read.
            if not read_before and tx.written(self._space.file, self._id) is written_before:
                forget_read(tx, self._space.file, self._id)
            raise

    @checked_arguments
    def key(self, key: PathElement) -> Cell:
        """The cell at ``key`` (an object key or a list index) inside this cell's value. A key
        of another type or an index past 64 bits is an ``InvalidArgument``, text that cannot be
        stored (a lone surrogate) a ``ValueEncodeError``; both are ``ValueError``s and
        ``TypeError``s."""
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise InvalidArgument(
                f"a cell path key is a string or an integer, not {brief_repr(key)}"
            )
        if isinstance(key, int) and not -(2**63) <= key < 2**63:
            raise InvalidArgument(
                f"a cell path index is a 64-bit integer (R6), not {brief_repr(key)}: no value "
                "holds a list that long, and no link could name the cell"
            )
        position = surrogate_at(key) if isinstance(key, str) else None
        if position is not None:
            raise ValueEncodeError(
                f"the cell path key {brief_repr(key)} is not valid Unicode text (a lone surrogate "
                f"at position {position}): decode the text properly first"
            )
        if type(key) is not str and type(key) is not int:
            # A subclass (an enum member, a str or int of a class of the caller's) names what
            # its text or number names: kept as that, the path is what links encode and values
            # compare (it stays hashable and equal to the plain key either way).
            key = str.__str__(key) if isinstance(key, str) else int.__index__(key)
        inside = Cell.__new__(Cell)  # (its space, id and keys are checked already)
        inside._space, inside._id = self._space, self._id
        inside._value_path = (*self._value_path, key)
        inside._name = getattr(self, "_name", None)  # a write at a path names the cell too
        return inside

    # -- links and reactivity ------------------------------------------------------------------

    @overload
    def link(self) -> Link: ...
    @overload
    def link(self, target: Cell) -> Link: ...
    @checked_arguments
    def link(self, target: Any = NO_VALUE) -> Link:
        """This cell's link. Given a ``target``, first make this cell hold a link to it: a
        committed write (in the current transaction, or in one of its own). A target that is
        not a ``Cell`` is an ``InvalidArgument``: to store a plain value, ``set`` it. ``None``
        too: it links nothing, and a variable that happens to hold ``None`` must not clear
        what the cell holds unasked (``set(None)`` does that, in a transaction)."""
        if target is None:
            raise InvalidArgument(
                f"link(None) on cell {self._id} links nothing: to clear what the cell holds "
                "(unlink a pattern input), set(None) in a transaction; link() with no argument "
                "returns this cell's own link"
            )
        if target is not NO_VALUE and not isinstance(target, Cell):
            raise InvalidArgument(
                f"link(target) takes a Cell to link to, not {type(target).__name__} "
                f"({brief_repr(target)}): use set() to store a value"
            )
        if target is not NO_VALUE:
            self._space.check_link(self, target)
            with self._space.transact():
                self.set(target)
        return Link(id=self._id, space=self._space.id, scope="space", path=self._value_path)

    @checked_arguments
    def link_str(self) -> str:
        """The link to this cell as stored text (what a ``*_cf_link`` column holds, R30):
        ``rt.cell_from_link`` and ``sc.decode_cf_link`` give the cell back."""
        return encode_link(self.link()).decode("utf-8")

    def _node(self) -> Node:
        return self._space.source_for(self)

    def _scheduler(self) -> Scheduler:
        # Without making the node: one made on a closed runtime would read the closed file.
        return self._space.runtime.scheduler

    @checked_arguments
    def observe(self) -> Observable[Any]:
        """The current committed value, then each change (delivered on the scheduler thread,
        only after the commit is durable)."""
        return observe_node(self)

    # -- identity ------------------------------------------------------------------------------

    def _key(self) -> tuple[str, str, tuple[PathElement, ...]]:
        return (self._space.id, self._id, self._value_path)

    def __eq__(self, other: object) -> bool:
        # One cell is one (space, id, path) of one store: the same names in another store's
        # file name another cell (its runtime's store, resolved, tells; runtimes on one store
        # share their cells). The hash leaves the store out: equal cells hash alike still.
        return (
            isinstance(other, Cell)
            and self._key() == other._key()
            and (
                self._space is other._space
                or self._space.runtime.store == other._space.runtime.store
            )
        )

    def __hash__(self) -> int:
        return hash(self._key())

    # A cell is a reference, as its link is: a copy of a value holding one (the advice for the
    # shared values subscribers get) holds the same cell. It cannot be pickled: it belongs to
    # an open runtime; its link can (``link_str()``, back with ``rt.cell_from_link``).

    def _not_pickled(self) -> str:
        return (
            f"cell {self._id} cannot be pickled: it belongs to an open Runtime. Pickle its link "
            "(cell.link_str()) and get the cell back with rt.cell_from_link(text)"
        )

    def _elsewhere(self) -> str:
        """What to do instead, when this cell is held in a value stored in a runtime on
        another store, which a link cannot name (``Runtime._link_of``): a cell can be copied
        by its value. A cell that has no value to copy (a database handle) says its own."""
        return "store its value (cell.get()), or open both spaces from one store"

    def _shown_value(self) -> str:
        """The committed value for display (no transaction read is recorded), or why not: cut
        to ``SHOWN_CHARACTERS`` as it is built, looked at once per rendering (``showing_cells``),
        and a stored value over ``SHOWN_DECODED`` bytes shown by its size and the beginning of
        its JSON, not decoded. Cells inside it are shown by what they name, not by their values:
        a value may link to its own cell (``a.set(a)``) or to a cell that links back."""
        return shown_once(self._space, self._key(), self._shown_now)

    def _shown_now(self) -> str:
        try:
            data = self._space.file.entity(self._id).data
            if data is not None and len(data) > SHOWN_DECODED:
                return large_value(data, whole=not self._value_path)
            value = self.decode(data)
        except SqliteCellsError as exc:
            return f"<{type(exc).__name__}>"
        if showing.nested:
            return cut_repr(value)
        showing.nested = True
        try:
            return cut_repr(value)
        finally:
            showing.nested = False

    def __repr__(self) -> str:
        head = f"<Cell {self._id}{self._shown_path()} in {brief_repr(self._space.id)}"
        if showing.nested:  # inside another cell's value: a link, shown as what it names
            return head + ">"
        return f"{head} = {self._shown_value()}>"

    def _shown_path(self) -> str:
        """The cell's path as its repr shows it, each key cut as refusals cut what they show
        (a path key of megabytes, from a link another program wrote, made a repr as long)."""
        return "".join(f"[{brief_repr(p)}]" for p in self._value_path)

    def _repr_html_(self) -> str:
        path = self._shown_path()
        return (
            f"<div><b>Cell</b> <code>{html.escape(self._id + path)}</code> in "
            f"<code>{html.escape(brief_repr(self._space.id))}</code>"
            f"<pre>{html.escape(self._shown_value())}</pre></div>"
        )


class Reactive(Reference):
    """Marker base for in-memory reactive values that expose a graph node (derived cells,
    queries). Like a cell, a reference: a copy is the same object; it cannot be pickled (it
    lives in its runtime's graph)."""

    def _node(self) -> Node:
        raise NotImplementedError

    def _scheduler(self) -> Scheduler:
        return self._node().scheduler

    def _not_pickled(self) -> str:
        return (
            f"a {type(self).__name__} cannot be pickled: it lives in its runtime's graph. Pickle "
            "what it holds (its .get(), a query's .get().result), or make it again where it "
            "is needed"
        )


class CellSource(Node):
    """The graph node of a stored cell at a path: re-computed from the scheduler's view after
    each commit that writes the cell; changed only when the value at the path changed."""

    def __init__(self, cell: Cell) -> None:
        super().__init__(cell.space.runtime.scheduler)
        self.cell = cell
        # Announced first: a commit the scheduler processes between the seed read and attach()
        # stays in its view, so the first value is never older than what it has processed.
        self.scheduler.expect(cell.space.file, cell.id)
        # The committed value when the node was made: its first value must be the one current
        # at that call, not whatever has been committed by the time the scheduler gets to it.
        self.seed = cell.space.file.entity(cell.id)
        # The stored bytes of its last computation and the value computed from them (see
        # Cell.looked_at).
        self.computed: tuple[bytes | None, Any] = (None, None)

    def attach(self) -> None:
        self.scheduler.watch(self.cell.space.file, self.cell.id, self, self.seed)

    def ahead(self) -> tuple[SpaceFile, int] | None:
        file = self.cell.space.file
        rev = self.seed.rev
        return (file, rev) if rev > self.scheduler.processed_seq(file) else None

    def compute(self) -> tuple[bool, Any]:
        cell = self.cell
        data = self.scheduler.entity(cell.space.file, cell.id).data
        if data is None or not cell._value_path:
            value = cell.decode(data)
        else:
            # The nodes of one cell's key paths share one decoding of each stored value (each
            # decoded the whole value for its path, and 8,000 watched keys of one dict made a
            # commit to it take 8 s); each takes a copy of its part, so that a subscriber that
            # changes its value in place changes no other node's.
            if _decoded.data is not data:
                _decoded.data, _decoded.root = None, None  # (a failed decode is not kept)
                _decoded.root = cell._decode_stored(data, link_cells=True)
                _decoded.data = data
            value = _copied(value_at(_decoded.root, cell._value_path))
        # (one attribute, set whole: a reader on another thread sees a pair that belongs)
        self.computed = (data, value)
        return (not self.ready.is_set() or not same_value(value, self.value), value)

    def __repr__(self) -> str:
        return f"<CellSource {self.cell!r}>"


class _Decoded(threading.local):
    """The stored value a key-path node decoded last on this (scheduler) thread, and what it
    decoded to: the object the scheduler's view holds for the cell (one per commit), so a
    value is known by its identity."""

    data: bytes | None = None
    root: Any = None


_decoded = _Decoded()


def _copied(value: Any) -> Any:
    """``value`` with its lists and dicts copied (what they hold otherwise shared: cells,
    numbers, text)."""
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) is list:
        return [_copied(item) for item in value]
    return value


def _is_space(space: object) -> bool:
    if not _SPACE_TYPE:
        from sqlite_cells.runtime._space import Space  # (that module builds cells: imported late)

        _SPACE_TYPE.append(Space)
    return isinstance(space, _SPACE_TYPE[0])


_SPACE_TYPE: list[type] = []  # runtime._space.Space, once imported (see _is_space)


def _check_cell(space: object, cell_id: object, path: tuple[Any, ...]) -> None:
    """``Cell(space, cell_id, path)`` made by a caller: a space of a runtime, and an id and path
    that a link can name (R30; ids are derived from causes, R1) — else ``InvalidArgument``,
    nothing made."""
    get = "get cells from space.cell(name), cell.key(…) or rt.cell_from_link(link)"
    if not _is_space(space):
        raise InvalidArgument(
            f"Cell(space, cell_id): space must be a space of a runtime (rt.space(…)), not "
            f"{brief_repr(space)}; {get}"
        )
    if not isinstance(cell_id, str):
        raise InvalidArgument(
            f"Cell(space, cell_id): cell_id must be a cell id (str), not {brief_repr(cell_id)}; "
            f"{get}"
        )
    try:
        encode_link(Link(id=cell_id, space=space.id, scope="space", path=path))  # type: ignore[attr-defined]
    except (SqliteCellsError, TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"Cell(space, cell_id, path): {brief_repr(cell_id)} with path {brief_repr(path)} "
            'names no cell: an id is "of:…" (derived from its cause, R1) and a path holds '
            f"strings and 64-bit integers; {get}"
        ) from exc


def same_value(a: Any, b: Any) -> bool:
    """Equality for the change cut-off; values that cannot be compared count as changed.

    Python's ``==`` finds ``[1]`` equal to ``[1.0]`` and ``0.0`` to ``-0.0``, which a stored
    value (JSON) and SQLite tell apart: values ``==`` finds equal are the same when their JSON
    encodings are too (values that do not encode as JSON are judged by ``==`` alone). The keys
    of a dict are compared in sorted order, as a stored value keeps them: a JSON object has no
    order, so an equal dict built in another key order is no change."""
    if a is b:
        return True
    try:
        if type(a) is not type(b) or not bool(a == b):
            return False
    except Exception:
        return False
    try:
        if _AS_GIVEN.encode(a) == _AS_GIVEN.encode(b):
            return True  # (the usual case, at the cost it always had)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return True
    try:
        return _SORTED.encode(a) == _SORTED.encode(b)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return False  # (keys that are not all str cannot be sorted: as given, they differ)


def _cell_key(value: Any) -> Any:
    """A ``Cell`` inside a compared value as what its ``==`` compares (any other object that is
    not JSON stops the comparison: TypeError)."""
    if isinstance(value, Cell):
        space_id, cell_id, path = value._key()
        return ["\x00cell", space_id, cell_id, list(path)]
    raise TypeError(f"{type(value).__name__} is not JSON")


# What ``same_value`` encodes: JSON, with the cells a value holds (R6) as what they name; dict
# keys as given, then, for values whose encodings differ so, sorted (as stored values keep them).
_AS_GIVEN: Final = msgspec.json.Encoder(enc_hook=_cell_key)
_SORTED: Final = msgspec.json.Encoder(enc_hook=_cell_key, order="deterministic")


def value_at(root: Any, path: tuple[PathElement, ...]) -> Any:
    value = root
    for key in path:
        if isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        elif isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def with_value_at(root: Any, path: tuple[PathElement, ...], value: Any) -> Any:
    """A copy of ``root`` with ``value`` at ``path``; missing string keys create objects."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(root, Link):
        raise InvalidArgument(
            f"cannot set {'key' if isinstance(key, str) else 'index'} {brief_repr(key)} "
            f"inside a link: the value at that path is a cell (cell {root.id} of space "
            f"{brief_repr(root.space)}), and a write at a path does not follow links; write "
            "that cell itself (what .get() returns at that path is it), or replace the value "
            "whole"
        )
    if isinstance(key, str):
        base = dict(root) if isinstance(root, dict) else ({} if root is None else None)
        if base is None:
            raise InvalidArgument(
                f"cannot set key {brief_repr(key)} inside a {type(root).__name__}: the value at "
                "that path is not an object; set the path of an object, or replace the value whole"
            )
        base[key] = with_value_at(base.get(key), rest, value)
        return base
    if not isinstance(root, list) or not -len(root) <= key < len(root):
        raise InvalidArgument(
            f"cannot set index {key} of {short(repr(root))}: indexes must name an existing "
            "list element; set the whole list to add one"
        )
    items = list(root)
    items[key] = with_value_at(items[key], rest, value)
    return items

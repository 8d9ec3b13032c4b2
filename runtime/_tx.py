"""Transactions: the reads (with the revisions seen) and writes of one unit of work.

The current transaction lives in a ``ContextVar``, and belongs to the thread that began it: a
thread that inherits a copy of the context (``asyncio.to_thread``, ``copy_context().run``) sees
no transaction, as a plain ``threading.Thread`` does, so its ``space.transact()`` is a
transaction of its own and one ``Transaction`` is never changed by two threads. Tasks of the
same thread share it (``asyncio.gather`` of handlers inside a handler is one commit); a handler
that joined a transaction which ended before the handler did says so (see ``_handler``).
A transaction is bound to one space: the one given to ``space.transact()``, or for a handler
the space of its first write. It commits all or nothing as one SQLite transaction (see
``_space_file.SpaceFile.commit``).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import threading
from collections.abc import Container, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NoReturn

from sqlite_cells.codec import (
    ConflictError,
    CrossSpaceWrite,
    NoTransaction,
    SqliteCellsError,
    TransactionError,
    ValueEncodeError,
    brief_repr,
)
from sqlite_cells.runtime._boundary import InvalidArgument, Reference
from sqlite_cells.runtime._leaving import Leaving

if TYPE_CHECKING:
    from sqlite_cells.runtime._space_file import SpaceFile

# A path inside a cell's value (``()``: the whole value), as ``Cell.value_path``.
ValuePath = tuple[str | int, ...]

__all__ = [
    "LENGTH_LIMIT",
    "ROW_SLACK",
    "PendingOp",
    "Transaction",
    "TxState",
    "check_read",
    "conflict",
    "current_transaction",
    "forget_read",
    "keep_no_reads",
    "keep_reads_if_accepted",
    "note_read",
    "over_length_limit",
    "record_name",
    "record_write",
    "require_transaction",
    "take",
    "transaction",
    "validate_elsewhere",
]

# SQLite's length limit on the write connection (R44): no string or blob over it is stored, so
# every stored value can be read back by connections that keep SQLite's default of 64 MiB.
LENGTH_LIMIT: Final = 64 * 1024 * 1024
# The limit caps a whole row, not only one value: what a cell's row and its commit record add to
# its value beside its id (the record's JSON framing and seq, SQLite's record header), at most.
ROW_SLACK: Final = 64


def over_length_limit(
    cell_id: str, data: bytes, *, shown: str | None = None
) -> ValueEncodeError | None:
    """The error of a cell value too long to store under ``cell_id`` (R6, R44): its row, or the
    commit record holding it, would be over SQLite's length limit. None when it fits.
    ``shown``: how the error names the cell (its name too, when the caller knows it)."""
    if len(data) + len(cell_id) + ROW_SLACK <= LENGTH_LIMIT:
        return None
    return ValueEncodeError(
        f"{shown or f'cell {cell_id}'}: its encoded value is {len(data)} bytes; with its id and "
        f"the commit record around it, that is over SQLite's length limit of {LENGTH_LIMIT} "
        f"bytes (a cell's value may be up to {LENGTH_LIMIT - len(cell_id) - ROW_SLACK} bytes): "
        "store large data elsewhere and keep a reference in the cell"
    )


@dataclass(frozen=True, slots=True)
class PendingOp:
    """An op recorded on a transaction, not yet applied: its ``kind`` (which commit participant
    applies it), its ``target`` (what it changes, e.g. a database id) and an opaque ``payload``
    (the participant's own in-memory request). At commit the participant turns it into the
    :class:`~sqlite_cells.codec.Op` kept in the commit record."""

    kind: str
    target: str
    payload: object = None


class TxState(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ABORTED = "aborted"


class Transaction(Reference):
    """Reads and writes collected for one commit.

    ``reads`` maps ``(space file, cell id)`` to the revision seen (0 for a cell never written);
    ``writes`` maps a cell id of the bound space to its new encoded value; ``ops`` are the
    pending ops (:class:`PendingOp`) for commit participants, applied after the cell writes, in
    order. All three, and ``guards`` and ``names``, are read-only views: a transaction is
    changed only through the runtime's checked calls (``cell.set``, ``db.exec``, ``add_op`` for
    a commit participant), never by storing into it, so a user holding it cannot record bytes
    unchecked (R5, R6). What changes them lives in this module.
    """

    __slots__ = (
        "__weakref__",  # (a caller may key a cache by the transaction, weakly)
        "_broken",
        "_by",
        "_guards",
        "_names",
        "_nested",
        "_open",
        "_ops",
        "_reads",
        "_seen",
        "_versions",
        "_writes",
        "seq",
        "space",
        "state",
        "thread",
    )

    def __init__(self, space: SpaceFile | None = None) -> None:
        self.space: SpaceFile | None = space
        self._reads: dict[tuple[SpaceFile, str], int] = {}
        self._writes: dict[str, bytes] = {}
        self._ops: list[PendingOp] = []
        # Writes judged on this runtime's view of their cell, to be judged again at commit if
        # another writer committed the cell meanwhile: cell id -> the space's seq seen before
        # the check (see Runtime.check_writable, R5).
        self._guards: dict[str, int] = {}
        # Names to record with the commit's writes (cell id -> (name, kind)): a cell or database
        # whose name the caller gave (``space.cell(name)``) and no commit of this runtime
        # recorded yet; the store keeps them in ``_cf_names`` for its tools (SPEC §6).
        self._names: dict[str, tuple[str, str]] = {}
        # While a nested scope is open (``_nested`` of them): who recorded each write, op and
        # name since, in order — the nested scopes (by id, outermost first) open in the
        # recording task (see _Scope). A nested scope that raises takes back what it recorded,
        # if it recorded everything since it began. Nothing is noted while none is open (the
        # common case, a commit's path).
        self._nested = 0
        self._open: set[int] = set()  # the ids of the nested scopes open (see _scopes)
        self._by: list[tuple[int, ...]] = []
        # While a nested scope is open, too: the writes of each cell since one opened, in
        # order — the path inside the value written (``()``: the whole value) and the nested
        # scopes that wrote it (see _scopes) — and, for each scope and cell, what it last saw
        # at each path it read (how many of those writes there were then; a dict replaced, never
        # changed, so a copy of ``_seen`` keeps it). A scope that writes where a scope running
        # beside it wrote after it read there would lose that write (see ``_check_race``).
        self._versions: dict[str, list[tuple[ValuePath, tuple[int, ...]]]] = {}
        self._seen: dict[tuple[tuple[int, ...], str], dict[ValuePath, int]] = {}
        # Set when that could not be done (another task recorded in between): the transaction
        # commits nothing, and says why (see whole).
        self._broken: TransactionError | None = None
        self.seq: int | None = None
        self.state = TxState.OPEN
        self.thread = threading.get_ident()  # the thread it belongs to (see the module's doc)

    def __repr__(self) -> str:
        where = (
            f"space {brief_repr(self.space.space_id)}" if self.space is not None else "no space yet"
        )
        done = f", seq {self.seq}" if self.seq is not None else ""
        return (
            f"<Transaction of {where}: {self.state.value}{done}, {len(self._reads)} read(s), "
            f"{len(self._writes)} write(s), {len(self._ops)} op(s)>"
        )

    def _not_pickled(self) -> str:
        return (
            "a transaction cannot be pickled: it is the open work of one thread of a Runtime, "
            "committed where it began. Pickle the values it writes, and write them in a "
            "transaction where they are needed"
        )

    @property
    def reads(self) -> Mapping[tuple[SpaceFile, str], int]:
        return MappingProxyType(self._reads)

    @property
    def writes(self) -> Mapping[str, bytes]:
        return MappingProxyType(self._writes)

    @property
    def ops(self) -> tuple[PendingOp, ...]:
        return tuple(self._ops)

    @property
    def guards(self) -> Mapping[str, int]:
        return MappingProxyType(self._guards)

    @property
    def names(self) -> Mapping[str, tuple[str, str]]:
        return MappingProxyType(self._names)

    def written(self, space: SpaceFile, cell_id: str) -> bytes | None:
        """The value this transaction wrote to ``cell_id`` of ``space``, if it did."""
        return self._writes.get(cell_id) if self.space is space else None

    def first_op(self, kinds: Container[str]) -> PendingOp | None:
        """The first op of one of ``kinds``, if any (without copying ``ops``: asked at each
        ``db.exec``)."""
        for op in self._ops:
            if op.kind in kinds:
                return op
        return None

    def bind(self, space: SpaceFile, *, joining: bool = False) -> None:
        """Bind to ``space`` (first write), or check that the transaction already is;
        ``joining``: for a ``space.transact()`` block nested in it, which writes nothing yet."""
        if self.space is None:
            self.space = space
        elif self.space is not space:
            if joining and space.space_id != self.space.space_id:
                raise CrossSpaceWrite(
                    f"this transaction belongs to space {self.space.space_id!r} (its "
                    "space.transact() or its first write); a transaction of space "
                    f"{space.space_id!r} cannot be opened inside it: open it after this one "
                    "(reading another space's cells needs no transaction of its own)"
                )
            raise _cross_space(self.space, space)

    def record_read(self, space: SpaceFile, cell_id: str, rev: int) -> None:
        """Note that the transaction read ``cell_id`` at ``rev``. Read again at a later rev (a
        commit changed the cell since): :class:`ConflictError` here, as its commit would raise
        it — the code in the transaction never sees two values of one cell (§3: inside a
        transaction, ``get`` is what it sees), and a handler runs again at once."""
        key = (space, cell_id)
        seen = self._reads.get(key)
        if seen is None:
            self._reads[key] = rev
        elif rev > seen:
            raise conflict(space, [cell_id])

    def add_op(self, space: SpaceFile, op: PendingOp) -> None:
        """Record an op for a commit participant; it runs after the cell writes, in order."""
        self._check_open()
        self.bind(space)
        self._ops.append(op)
        _note_recorder(self)

    @property
    def is_empty(self) -> bool:
        return not self._writes and not self._ops

    def _check_open(self) -> None:
        if self.state is not TxState.OPEN:
            raise NoTransaction(
                f"this transaction is already {self.state.value}: start a new one with "
                "space.transact()"
            )


def record_write(
    tx: Transaction,
    space: SpaceFile,
    cell_id: str,
    data: bytes,
    *,
    guard: int | None = None,
    name: tuple[str, str] | None = None,
    path: ValuePath = (),
) -> None:
    """Record the encoded value of a cell on ``tx``: for the runtime's cells and the layers
    above, which encode and check the value first (R5, R6) — not a method of the transaction a
    user holds, so no public API stores bytes unchecked. A value longer than SQLite's length
    limit could not be stored (nor read back): :class:`ValueEncodeError` here, before anything
    is recorded (R6, R44). ``guard``: the space's seq a writability check saw, to judge the
    write again at commit (see ``Transaction.guards``); ``name``: the name to record with it;
    ``path``: the path inside the value the caller wrote at (the rest of ``data`` was made from
    the transaction's latest value just now, so it loses no other write)."""
    tx._check_open()
    if len(data) > LENGTH_LIMIT - ROW_SLACK - len(cell_id):
        too_long = over_length_limit(cell_id, data)
        if too_long is not None:
            raise too_long
    tx.bind(space)
    if tx._nested:
        _check_race(tx, cell_id, path)
    tx._writes[cell_id] = data
    _note_recorder(tx)
    if guard is not None:
        tx._guards.setdefault(cell_id, guard)
    if name is not None:
        tx._names[cell_id] = name


def record_name(tx: Transaction, target: str, name: tuple[str, str]) -> None:
    """Have the commit of ``tx`` record ``name`` for ``target`` (a database whose name no
    commit of this runtime recorded yet: its handle is written at commit)."""
    tx._names[target] = name
    _note_recorder(tx)


def note_read(tx: Transaction, cell_id: str, path: ValuePath = ()) -> None:
    """Note what the current nested scope saw of ``cell_id`` at ``path``, while one is open
    (see ``_check_race``) — and the scopes it runs in: their code read it too, through it."""
    if tx._nested:
        scopes = _scopes.get()
        count = len(tx._versions.get(cell_id, ()))
        for depth in range(1, len(scopes) + 1):
            key = (scopes[:depth], cell_id)
            seen = tx._seen.get(key)
            if seen is None:
                tx._seen[key] = {path: count}
            elif seen.get(path) != count:
                tx._seen[key] = {**seen, path: count}


def check_read(tx: Transaction, space: SpaceFile, cell_id: str, rev: int) -> None:
    """Raise the :class:`ConflictError` ``tx.record_read`` would raise for a read of
    ``cell_id`` at ``rev``, recording nothing: for a call that reads and writes a cell (a write
    at a path), so that it records neither when its read is refused (R32)."""
    seen = tx._reads.get((space, cell_id))
    if seen is not None and rev > seen:
        raise conflict(space, [cell_id])


def forget_read(tx: Transaction, space: SpaceFile, cell_id: str) -> None:
    """Take back the read of ``cell_id`` recorded on ``tx``: for a call that read the cell
    first, then was refused (``cell.update`` whose result cannot be written), which records
    nothing (R32)."""
    tx._reads.pop((space, cell_id), None)


def keep_reads_if_accepted(tx: Transaction | None) -> _ReadsTaken:
    """Take back the reads recorded on ``tx`` in the block if it raises: a call refused (its
    checks raise after it looked cells up) records nothing (R32), so a later commit to a cell it
    looked at is no conflict of the transaction. Reads recorded before the block stay."""
    return _ReadsTaken(tx, always=False)


def keep_no_reads(tx: Transaction | None) -> _ReadsTaken:
    """Take back the reads recorded on ``tx`` in the block, whatever its outcome: for a call
    that looks at cells (a database's handle, a pattern input's link) only to check it, and
    whose result is no transactional read — a live query's value joins no conflict check (R32
    names ``db.read``). What the block sees is unchanged: the transaction's own writes."""
    return _ReadsTaken(tx, always=True)


class _ReadsTaken:
    """A block after which the reads recorded on ``tx`` since it began are taken back (when it
    raises, or ``always``). A cell is recorded once, at its first read, so the reads recorded
    since are the last ones in insertion order. (A small class, not a generator: it runs at
    each ``db.read`` and ``db.query``.)"""

    __slots__ = ("_always", "_before", "_reads", "_seen", "_tx")

    def __init__(self, tx: Transaction | None, *, always: bool) -> None:
        self._tx = tx
        self._always = always

    def __enter__(self) -> None:
        tx = self._tx
        if tx is None:
            return
        self._reads = tx._reads  # (``take`` may give the transaction another dict)
        self._before = len(self._reads)
        # What the nested scopes saw (see note_read): copied only while one is open.
        self._seen = dict(tx._seen) if tx._nested else None

    def __exit__(self, kind: type[BaseException] | None, *_exc: object) -> None:
        if self._tx is None or (kind is None and not self._always):
            return
        reads = self._reads
        for _ in range(len(reads) - self._before):
            reads.popitem()  # the newest first: a dict keeps the order of insertion
        if self._seen is not None:
            self._tx._seen = self._seen


def _check_race(tx: Transaction, cell_id: str, path: ValuePath) -> None:
    """Refuse a write that would lose another scope's: handlers run together with
    ``asyncio.gather`` inside a handler share its transaction, so one that read a cell, awaited,
    and writes it back after a handler running beside it wrote the cell in between would
    overwrite that write unseen — an update lost with no conflict, as no other commit is
    involved. Scopes one inside the other (a handler and one it awaits, directly or in a task
    of its own) run one after the other: the outer one writing after the inner one wrote is
    code in sequence, as without any nested scope. Not the other way round: an outer scope
    that wrote while an inner one it made a task of was waiting, after reading the cell, ran
    beside it, and the inner one's write would lose it. A write made in a scope nested in the
    one that read (a handler awaited by it, a ``transact()`` block in it) is that scope's write
    too: the value it writes may come from that read.

    Paths count as parts of the value: this write conflicts with another scope's write at the
    same path, one inside or around it (the whole value is around every path), made after this
    scope read at such a path too; a write at a path disjoint from what was read there, or from
    what was written beside it, loses nothing. Another scope's write this scope saw since,
    reading a path around the part the two writes share, is no longer lost."""
    scopes = _scopes.get()
    writes = tx._versions.setdefault(cell_id, [])
    for depth in range(len(scopes), 0, -1):  # this scope, then those it runs in
        chain = scopes[:depth]
        seen = tx._seen.get((chain, cell_id))
        if seen is not None and _loses_a_write(seen, writes, chain, path):
            raise TransactionError(
                f"cell {cell_id}{_at(path)} was written by another handler of this transaction "
                "after this one read it (handlers run together with asyncio.gather inside a "
                "handler share one transaction): writing it now would lose that write. "
                "Read and write it without awaiting in between (cell.update), or run the "
                "handlers one at a time"
            )
    writes.append((path, scopes))


def _loses_a_write(
    seen: dict[ValuePath, int],
    writes: list[tuple[ValuePath, tuple[int, ...]]],
    chain: tuple[int, ...],
    path: ValuePath,
) -> bool:
    """Whether a write at ``path`` by the scope ``chain`` (which saw ``seen``: path read -> how
    many of ``writes`` there were then) would lose one of ``writes`` made beside it: one that
    overlaps this write, made by a scope not inside ``chain`` after a read of ``chain``'s that
    overlaps this write too, and not seen since through a read of a path around their common
    part."""
    first = min((count for read, count in seen.items() if _overlap(read, path)), default=None)
    if first is None:
        return False  # (a blind write, as far as this scope's reads go)
    depth = len(chain)
    for index in range(first, len(writes)):
        written, writer = writes[index]
        if writer[:depth] == chain or not _overlap(written, path):
            continue
        common = max(written, path, key=len)  # (the inner of the two)
        if not any(
            later > index and common[: len(around)] == around for around, later in seen.items()
        ):
            return True
    return False


def _overlap(one: ValuePath, other: ValuePath) -> bool:
    """Whether two paths inside a value name parts that overlap (one is inside the other)."""
    shorter = min(len(one), len(other))
    return one[:shorter] == other[:shorter]


def _at(path: ValuePath) -> str:
    return f" at path {list(path)!r}" if path else ""


def _note_recorder(tx: Transaction) -> None:
    """Note who recorded what ``tx`` just recorded, while a nested scope may take it back."""
    if tx._nested:
        tx._by.append(_scopes.get())


def whole(tx: Transaction) -> None:
    """Raise the :class:`TransactionError` of a transaction that cannot commit what its code
    meant: a nested scope raised after another task recorded writes in it (see ``_Scope``), or
    one still open recorded some (a task made inside the block that outlived it, half done: its
    writes cannot be committed without the rest of its block, nor taken back if it raises)."""
    if tx._broken is not None:
        raise tx._broken
    if tx._nested and tx._by:
        still = tx._open
        if any(not still.isdisjoint(by) for by in tx._by):
            if not still.isdisjoint(_scopes.get()):  # a block of this very code, still open
                raise TransactionError(
                    "a transaction block was left before a block nested in it, which had "
                    "written and was still open (exits out of order: a block must end after "
                    "the blocks nested in it): nothing of the transaction was committed. Leave "
                    "nested blocks first — with `with` statements, or an ExitStack, they are"
                )
            raise TransactionError(
                "a handler or transact() block that joined this transaction from an asyncio "
                "task made inside it had written and not ended when the transaction was to "
                "commit: its writes cannot be committed without the rest of its block, so "
                "nothing of the transaction was committed. Await the task inside the block, "
                "or make it outside any transaction (it then commits on its own)"
            )


def take(collecting: Transaction) -> Transaction:
    """Move what ``collecting`` recorded into a new transaction, to be committed elsewhere (an
    async handler commits off the event loop), and empty ``collecting`` (so leaving its block
    commits nothing). A transaction that cannot commit raises instead (see ``whole``)."""
    whole(collecting)
    tx = Transaction(collecting.space)
    tx._reads, tx._writes, tx._ops = collecting._reads, collecting._writes, collecting._ops
    tx._guards, tx._names = collecting._guards, collecting._names  # (judged again at commit)
    collecting._reads, collecting._writes, collecting._ops = {}, {}, []
    collecting._guards, collecting._names, collecting._by = {}, {}, []
    return tx


def _cross_space(bound: SpaceFile, other: SpaceFile) -> CrossSpaceWrite:
    if other.space_id != bound.space_id:
        return CrossSpaceWrite(
            f"this transaction belongs to space {bound.space_id!r} (its space.transact() or "
            f"its first write); it cannot also write space {other.space_id!r}: use one "
            "transaction per space"
        )
    # The same id opened by two Runtime objects: two files (or two connections to one file),
    # each committing on its own, so one transaction cannot span them either.
    where = (
        f"on the same store ({other.path.parent})"
        if other.path == bound.path
        else f"on another store ({bound.path.parent} and {other.path.parent})"
    )
    return CrossSpaceWrite(
        f"this transaction writes space {bound.space_id!r} through one Runtime object; it "
        f"cannot also write space {other.space_id!r} through another Runtime object {where}: "
        "a transaction writes one space through one Runtime. Take every cell this transaction "
        "writes from the same Runtime, or commit the other Runtime's write on its own, outside "
        "this transaction"
    )


_current: ContextVar[Transaction | None] = ContextVar("sqlite_cells_transaction", default=None)
# The nested scopes open in this context (ids, outermost first): a task made inside one
# inherits them, and what it records counts as recorded inside them (see _Scope).
_scopes: ContextVar[tuple[int, ...]] = ContextVar("sqlite_cells_scopes", default=())
_scope_ids = itertools.count(1)


def current_transaction() -> Transaction | None:
    """The transaction this thread began in this context, if any. Not one whose runtime was
    closed while its block was open (a block entered by hand and never left): it can commit
    nothing, and a later transaction of another runtime in this thread is not part of it."""
    tx = _current.get()
    if tx is None or tx.thread != threading.get_ident():
        return None
    space = tx.space
    return None if space is not None and space.closed else tx


def require_transaction(what: str, space: SpaceFile) -> Transaction:
    """The current transaction, or :class:`NoTransaction` naming ``what`` was attempted — or
    :class:`ClosedError` when ``space``'s runtime is closed, since no transaction could help:
    also inside another runtime's open transaction, where the write was otherwise refused as
    another Runtime object's (``CrossSpaceWrite``) or by the closed runtime's read pool."""
    space.check_open()
    tx = current_transaction()
    if tx is None or tx.state is not TxState.OPEN:
        if tx is not None:  # the context's transaction ended under this code
            raise NoTransaction(
                f"{what} needs a transaction, and the one this code runs in was already "
                f"{tx.state.value} (this code runs in a task made inside a `with "
                "space.transact():` block, or a handler, that outlived it): await the task "
                "inside the block, or make it outside any transaction"
            )
        elsewhere = _current.get()
        if (
            elsewhere is not None
            and elsewhere.state is TxState.OPEN
            and elsewhere.thread not in (0, threading.get_ident())
        ):
            # The context was handed to this thread (asyncio.to_thread, copy_context().run)
            # from one with a transaction open: that one is not this thread's (module doc).
            raise NoTransaction(
                f"{what} needs a transaction, and the one open where this code was called from "
                "belongs to another thread (this code runs in a thread it was handed to, such as "
                "asyncio.to_thread or an executor): a transaction is written only by the thread "
                "that began it. Return the values from this thread and write them there, or "
                "begin a transaction of this thread here (`with space.transact():`)"
            )
        raise NoTransaction(
            f"{what} needs a transaction: wrap it in `with space.transact():` or call it from an "
            "@sc.handler"
        )
    return tx


def transaction(space: SpaceFile | None) -> _Scope:
    """Run the body in a transaction, committing on normal exit and discarding on an exception.
    Inside another transaction this joins the outer one (which must be for the same space)."""
    return _Scope(space)


def own_scope(space: SpaceFile) -> _Scope:
    """Run the body in a transaction of its own, even inside another one, which it neither
    joins nor touches: the body's writes commit (or are discarded) at the end of the block,
    whatever becomes of the outer transaction, and the outer one is current again after it.
    Used through ``own_transaction`` (``_space.py``)."""
    return _Scope(space, alone=True)


class _Scope(Leaving, Reference):
    """The scope of :func:`transaction`. A plain class rather than a generator context manager:
    it is entered and left once per commit, and the generator machinery costs more than the
    rest of the scope. One object may be entered again before it is left — inside itself (the
    inner ``with`` joins the outer, as a second ``transact()`` would) or by several threads or
    asyncio tasks at once (each its own transaction) — so each entry keeps its own state, and a
    block that is left takes the entry its own context made. The list of entries is changed
    only by single calls (``append``, ``remove``) and read from a copy, each atomic for other
    threads, so it needs no lock.

    A Ctrl-C lands where CPython checks for signals: where a Python function starts and after
    each call. Entering makes the transaction current last and undoes all if interrupted.
    Leaving is ``__exit__`` in C (``Leaving``, ``runtime/_leaving.c``), which no interrupt can
    stop before it starts: it calls ``_leaving`` (again, when interrupted) for the entry, then
    ``_end``, which undoes first what makes the transaction current; an interrupt anywhere in
    that still ends the block (``_ended_anyway``, called until it is through), and is raised
    after."""

    __slots__ = ("__weakref__", "_alone", "_entries", "_space")

    def __init__(self, space: SpaceFile | None, *, alone: bool = False) -> None:
        self._space = space
        self._alone = alone  # never joins an outer transaction (own_transaction)
        self._entries: list[_Entry] = []  # the entries not left yet, oldest first

    def __enter__(self) -> Transaction:
        outer = None if self._alone else current_transaction()
        if outer is not None and outer.state is TxState.OPEN:
            return self._join(outer)
        if self._space is not None:
            self._space.catch_up_with_peers()
        tx = Transaction(self._space)
        entry = _Entry(tx, None, None, None)
        before = _current.get()
        try:  # (an interrupt anywhere here leaves nothing entered behind)
            self._entries.append(entry)
            entry.token = _current.set(tx)
        except BaseException:
            if _current.get() is tx:
                _current.set(before)
            self._drop(entry)
            raise
        return tx

    def __call__(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise InvalidArgument(
            "space.transact() is a `with` block, not a decorator: write `with space.transact():` "
            "around the writes, or decorate the function with @sc.handler (which runs it in a "
            "transaction, commits and retries on conflicts)"
        )

    async def __aenter__(self) -> NoReturn:
        raise InvalidArgument(
            "space.transact() is a `with` block, not an `async with` one: write "
            "`with space.transact():` around the writes (its commit, at the end of the block, "
            "waits for the disk on the event loop's thread), or put them in an `async def` "
            "decorated with @sc.handler, whose commit runs off the event loop"
        )

    async def __aexit__(self, *_exc: object) -> None:  # (never reached: __aenter__ raises)
        return None

    def _not_pickled(self) -> str:
        # (A copy is the block itself, as a transaction's is: ``Reference``.)
        space = "" if self._space is None else f" of space {self._space.space_id!r}"
        return (
            f"a space.transact() block{space} cannot be pickled: it begins transactions of an "
            "open Runtime. Pickle the space id and write `with rt.space(space_id).transact():` "
            "where it is needed"
        )

    def _join(self, outer: Transaction) -> Transaction:
        """Join ``outer``: the outer scope commits. Kept so that this block's writes can be
        taken back if it raises (a savepoint of the transaction's own record, taken before the
        block binds the transaction to its space: taking it back unbinds it too)."""
        joined = _Joined(
            outer,
            dict(outer._writes),
            len(outer._ops),
            outer.space,
            len(outer._by),
            next(_scope_ids),
            {cell_id: len(writes) for cell_id, writes in outer._versions.items()},
        )
        entry = _Entry(None, None, joined, None)
        scopes = _scopes.get()
        try:  # (as in __enter__; binding to another space's is refused here too)
            self._entries.append(entry)
            entry.scope_token = _scopes.set((*scopes, joined.scope))
            outer._open.add(joined.scope)
            outer._nested = len(outer._open)
            if self._space is not None:
                outer.bind(self._space, joining=True)
        except BaseException:
            if _scopes.get() != scopes:
                _scopes.set(scopes)
            outer._open.discard(joined.scope)
            outer._nested = len(outer._open)
            outer.space = joined.space  # (nothing was recorded since)
            self._drop(entry)
            raise
        return outer

    # What ending a block raises as itself (see ``_end``); anything else is an interrupt, or
    # an error of the runtime's own, after which the block is ended all the same.
    _expected = (SqliteCellsError,)

    def _end(self, entry: _Entry, failed: bool) -> None:
        """End the block ``entry`` is of (called by ``__exit__``, in C: ``runtime/_leaving.c``,
        with the entry ``_leaving`` found): commit it, or roll it back if it raised (``failed``,
        also when an interrupt came as it was being found)."""
        if entry.joined is not None:
            self._leave_joined(entry, failed=failed)
        else:
            self._leave_began(entry, failed=failed)

    def _leave_began(self, entry: _Entry, *, failed: bool) -> None:
        """Leave a block that began its transaction: commit it, or roll it back if it raised."""
        tx, token = entry.tx, entry.token
        assert tx is not None and token is not None
        try:
            _current.reset(token)
        except ValueError:
            # Left from another thread or task than the one that entered it (only that one's
            # context can reset it): rolled back, and a thread of no one, so it is nobody's
            # current transaction any more. The entry stays for its own block's exit to say so.
            if entry.left:
                raise _left_elsewhere("it was rolled back already") from None
            entry.left = True
            tx.state = TxState.ABORTED
            tx.thread = 0
            raise _left_elsewhere("it is rolled back: nothing of it was committed") from None
        self._drop(entry)
        if entry.left:
            raise _left_before("it was rolled back then: nothing of it was committed")
        if failed:
            tx.state = TxState.ABORTED
            return
        try:
            whole(tx)
            if tx.space is not None and not tx.is_empty:
                tx.seq = tx.space.commit(tx)
            elif tx.reads:
                # Nothing to commit, but what it read must still be one state (§2: a transaction
                # fails with a conflict when a cell it read changed since), or a block reading
                # two cells could see one from before a commit and one from after it.
                validate_elsewhere(tx, None)
        except BaseException:
            tx.state = TxState.ABORTED
            raise
        tx.state = TxState.COMMITTED

    def _leave_joined(self, entry: _Entry, *, failed: bool) -> None:
        """Leave a block that joined an outer transaction: its writes are taken back if it
        raised. Left from elsewhere, they are taken back and the block stays open for its own
        exit, which takes back what it wrote since too, and says so."""
        joined, scope_token = entry.joined, entry.scope_token
        assert joined is not None and scope_token is not None
        try:
            _scopes.reset(scope_token)
        except ValueError:
            if entry.left:
                raise _left_elsewhere("its writes were taken back already") from None
            entry.left = True
            joined.take_back()
            raise _left_elsewhere(
                "its writes are taken back from the transaction it joined"
            ) from None
        self._drop(entry)
        _close(joined, take_back=failed or entry.left)
        tx = joined.tx
        if joined.space is None and not tx._writes and not tx._ops:
            # A block that wrote nothing in a transaction that had not written binds it to no
            # space: its first write does (§3), wherever that is.
            tx.space = None
        if entry.left:
            raise _left_before("its writes were taken back")
        if joined.tx.state is TxState.ABORTED and not failed:
            raise TransactionError(
                "the transaction this block joined was rolled back before the block ended (the "
                "block it is nested in was left first, or failed): nothing this block wrote was "
                "committed. Leave nested blocks first — with `with` statements they are"
            )

    def _leaving(self) -> _Entry | None:
        """The entry the block being left made: the newest one this context entered (its
        innermost joined scope, or its current transaction). None entered here (a block
        left from another thread or task than the one that entered it): the newest not left
        from elsewhere yet, whose ending then says so — never one whose own block was left
        already. Nothing is changed here."""
        scopes, current = _scopes.get(), _current.get()
        innermost = scopes[-1] if scopes else None
        entries = self._entries.copy()  # (other threads may enter or leave meanwhile)
        for entry in reversed(entries):
            joined = entry.joined
            if (entry.tx is current) if joined is None else (joined.scope == innermost):
                return entry
        for entry in reversed(entries):
            if not entry.left:
                return entry
        return None

    def _ended_anyway(self, entry: _Entry | None) -> None:
        """An interrupt came while the block was being left (``entry``: the one being ended,
        None when not found yet): this context's entry is ended here all the same — rolled
        back, or its writes taken back — so that no transaction stays current with no block
        left to end it. Whatever of that was done already is not done twice."""
        if entry is None:
            entry = self._leaving()
            if entry is None:
                return
        if entry.joined is not None and entry.scope_token is not None:
            if not _reset_once(_scopes, entry.scope_token):
                return  # another context's block: not this exit's to end
            self._drop(entry)
            _close(entry.joined, take_back=True)
        elif entry.tx is not None and entry.token is not None:
            if not _reset_once(_current, entry.token):
                return
            self._drop(entry)
            if entry.tx.state is TxState.OPEN:
                entry.tx.state = TxState.ABORTED

    def _drop(self, entry: _Entry) -> None:
        with contextlib.suppress(ValueError):  # (removed already: before an interrupt)
            self._entries.remove(entry)  # (found by identity: entries compare so)


def _close(joined: _Joined, *, take_back: bool) -> None:
    """A nested scope ends (done at most once in effect: an interrupt may have it done again)."""
    tx = joined.tx
    if take_back:
        joined.take_back()
    tx._open.discard(joined.scope)
    tx._nested = len(tx._open)
    if not tx._nested:
        tx._by.clear()  # (nothing left to take back)
        tx._versions.clear()  # (no task of a nested scope left)
        tx._seen.clear()


@dataclass(slots=True, eq=False)
class _Entry:
    """One ``with`` of a :class:`_Scope`: the transaction it began and the token that made it
    current, or the transaction it joined and the token of its scope id; ``left``: left from
    another thread or task than its own already (its own block's exit says so)."""

    tx: Transaction | None
    token: Token[Transaction | None] | None
    joined: _Joined | None
    scope_token: Token[tuple[int, ...]] | None
    left: bool = False


def _reset_once(var: ContextVar[Any], token: Token[Any]) -> bool:
    """``var.reset(token)`` if not done yet; False when ``token`` is another context's."""
    try:
        var.reset(token)
    except ValueError:
        return False
    except RuntimeError:  # used already: reset before the interrupt came
        pass
    return True


def _left_elsewhere(outcome: str) -> TransactionError:
    return TransactionError(
        "a transaction block was left from another thread or asyncio task than the one that "
        f"entered it; {outcome}: leave a block where it was entered (its `with` statement does)"
    )


def _left_before(outcome: str) -> TransactionError:
    return TransactionError(
        "this transaction block had been left from another thread or asyncio task before "
        f"its own exit; {outcome}: leave a block where it was entered (its `with` statement "
        "does)"
    )


@dataclass(slots=True)
class _Joined:
    """A nested scope's savepoint of the transaction it joined (see ``_Scope``)."""

    tx: Transaction
    writes: dict[str, bytes]
    ops: int
    space: SpaceFile | None
    recorded: int  # len(tx._by) when the scope began
    scope: int
    versions: dict[str, int]  # how many writes of each cell tx._versions held when it began

    def take_back(self) -> None:
        """The scope raised: what it recorded is taken back, even if the outer block catches
        the error and commits the rest (its reads stay: they only make the commit more
        careful). Only when all recorded since it began is its own, or its nested scopes':
        a task of the same transaction (``asyncio.gather`` of handlers inside a handler) may
        have recorded in between, and the savepoint would take that back too — then the
        transaction commits nothing at all, and says so. A scope that recorded nothing has
        nothing to take back: what the others recorded stays, as it would beside a scope
        that never began."""
        tx, scope = self.tx, self.scope
        if tx.state is not TxState.OPEN:
            return
        since = tx._by[self.recorded :]
        if since and not any(scope in by for by in since):
            return  # (its error, caught by the caller, leaves the transaction as it was)
        if all(scope in by for by in since):
            tx._writes = dict(self.writes)  # (kept: the scope may be taken back again)
            del tx._ops[self.ops :]
            del tx._by[self.recorded :]
            # Its writes no longer count as writes a task running beside it could lose: one
            # that read a cell before this scope wrote it may write it (see ``_check_race``).
            tx._versions = {
                cell_id: tx._versions.get(cell_id, [])[:count]
                for cell_id, count in self.versions.items()
            }
            if not self.writes and not tx._ops:
                tx.space = self.space
        elif tx._broken is None:
            tx._broken = TransactionError(
                "a nested handler or transact() block raised while another task wrote in the "
                "same transaction (handlers run together with asyncio.gather inside a handler): "
                "what it wrote cannot be taken back without what the others wrote since, so "
                "nothing of the transaction was committed. Catch the error inside the nested "
                "handler, or run the nested handlers one at a time"
            )


def conflict(space: SpaceFile, cell_ids: list[str]) -> ConflictError:
    """The :class:`ConflictError` of cells of ``space`` a transaction read that changed since,
    naming each as this runtime calls it where it knows (``SpaceFile.names``)."""
    return ConflictError(space.space_id, cell_ids, names=space.names)


def validate_elsewhere(tx: Transaction, space: object) -> None:
    """Raise :class:`ConflictError` when a cell ``tx`` read in a space other than ``space`` (the
    one it commits to; None for a transaction that commits nothing: every space it read) has
    changed since it was read (§2: a transaction fails with a conflict when a cell it read
    changed since). Each such read is compared with that space's file as it is now, so a commit
    another runtime or process made there before this one is never lost under it; the other
    space is not locked, so a write there that commits after this check is ordered after this
    transaction."""
    changed: dict[SpaceFile, list[str]] = {}
    for (read_space, cell_id), rev in tx.reads.items():
        if read_space is not space and read_space.current_rev(cell_id) != rev:
            changed.setdefault(read_space, []).append(cell_id)
    for read_space, cell_ids in changed.items():
        raise conflict(read_space, cell_ids)

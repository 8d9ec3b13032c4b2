"""The database cell handle: ``SqliteDb`` (SPEC §4).

A ``SqliteDb`` is a cell whose value is ``{"id", "tables", "rev"}`` (R2). ``exec``/``exec_many``
record a ``sqlite`` op on the caller's transaction (R31–R36); ``query`` makes a live query and
``read`` runs a one-shot snapshot read (R40–R43).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Never, TypeVar, overload

import apsw

from sqlite_cells.codec import (
    ConflictError,
    EncodingError,
    ExecArgumentError,
    LinkEncodeError,
    PendingValue,
    ReadAfterWriteUnsupported,
    SourceError,
    SqliteCellsError,
    TooManyDatabases,
    TransactionError,
    brief_repr,
    of_statement,
)
from sqlite_cells.files import (
    DROP_KIND,
    KIND,
    HandleNotWritable,
    check_handle,
    decode_handle,
    dropped_database,
    dropped_here,
    handle_not_writable,
    is_dropped,
    unreadable_handle,
    unwritten_handle,
)
from sqlite_cells.read import (
    LINKS_FOLLOWED,
    Query,
    Reaction,
    Statement,
    StatementResult,
    build_rows,
    react_on_members,
    resolve_params,
    row_decoder,
    runs_own_code,
)
from sqlite_cells.runtime import (
    NO_VALUE,
    Cell,
    InvalidArgument,
    PendingOp,
    SpaceFile,
    Transaction,
    checked_arguments,
    current_transaction,
    keep_no_reads,
    keep_reads_if_accepted,
    note_taken,
    plain_text,
    record_name,
    record_write,
    refusal_of,
    refuse_get,
    refuse_set,
    require_transaction,
    taken_by_earlier_try,
)
from sqlite_cells.runtime import (
    Space as BaseSpace,
)
from sqlite_cells.schema import Declaration, SourceKind, Table, fill_orders
from sqlite_cells.sql import (
    Mode,
    ParamTargets,
    bind_rows,
    check_read_values,
    check_statement,
    fold_ascii,
    given_params,
    is_pending,
    map_params,
    parameter_rows,
)
from sqlite_cells.write import ExecRequest, check_prepare_time, written_database

__all__ = ["DEFAULT", "SqliteDb", "sqlite_query"]


class _WhatItReads:
    """The mark of "react_on not given": react to what the query reads (R51). Its repr is what
    a call shown with its defaults (an argument error's advice) says of it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<what it reads>"


DEFAULT: Any = _WhatItReads()

T = TypeVar("T")
_KINDS = (KIND, DROP_KIND)  # the ops of a database write (R33: one database per transaction)


def _exec(self: SqliteDb, sql: str, params: Any = None) -> None:
    """SqliteDb.exec's public signature."""


_exec.__qualname__ = "SqliteDb.exec"
_refuse_exec = refusal_of(_exec)


class SqliteDb(Cell):
    """A cell that owns a SQLite database: its declared tables, its file, its revision.

    The handle is not a writable cell (R5): ``set``, ``update`` and ``key`` raise a ``TypeError``
    (:class:`HandleNotWritable`); only ``exec``/``exec_many`` (the rev bump) and ``drop`` write
    its value, through :meth:`_write_handle`. A stored handle value that does not decode makes
    the database fail with ``Quarantined``.
    """

    __slots__ = ("_decl",)

    @checked_arguments
    def __init__(self, space: Space, decl: Declaration) -> None:
        if not isinstance(space, BaseSpace) or not isinstance(decl, Declaration):
            raise InvalidArgument(
                f"sc.SqliteDb(space, declaration) was given a {type(space).__name__} and a "
                f"{type(decl).__name__} (R3: no API points a database at a cell or file of "
                "the caller's choosing); get handles from space.sqlite_database(...) or "
                "space.register_disk_source(...)"
            )
        if not space.runtime.declared(decl):
            # R3: a handle comes from the runtime, never from a declaration given to it.
            raise InvalidArgument(
                f"database {decl.db_id}: this declaration was not made by this runtime (R3: no "
                "API points a database at a cell or file of the caller's choosing); get "
                "handles from space.sqlite_database(...) or space.register_disk_source(...)"
            )
        if decl.space_id != space.id:
            # Its handle cell lives in the space it was declared in (R2): the same id in
            # another space is a plain cell, never that database (R3).
            raise InvalidArgument(
                f"database {decl.db_id} belongs to space {decl.space_id!r}, not to space "
                f"{space.id!r} given to sc.SqliteDb (R3: no API points a database at a cell or "
                "file of the caller's choosing); use the handle that space's "
                "sqlite_database(...) or register_disk_source(...) returned, or declare a "
                f"database of space {space.id!r} there"
            )
        super().__init__(space, decl.db_id, (), unwritten_handle(decl))
        self._decl = decl

    @property
    def space(self) -> Space:
        """The space whose database this is (its handle cell lives there, R2)."""
        return self._space  # type: ignore[return-value]  # always a sqlite_cells Space

    def _not_pickled(self) -> str:
        # A link gives back a plain cell (rt.cell_from_link), not the database: what names
        # the database is its space and name (or, for an injected file, its path).
        decl = self.declaration
        if decl.kind is SourceKind.DISK:
            again = (
                "the file's path; where it is needed, register the file again "
                f"(space.register_disk_source({str(decl.path)!r})): the same handle"
            )
        else:
            again = (
                "name; where it is needed, declare it again with the same name and tables "
                "(rt.space(space_id).sqlite_database(name, tables=…)): the same database, its "
                "file and rows"
            )
        return (
            f"{_named(self.space.file, self.id)} of space {self.space.id!r} cannot be pickled: "
            f"it belongs to an open Runtime. Pickle its space id and {again}"
        )

    def _elsewhere(self) -> str:
        # Held in a value stored in a runtime on another store (R6): a database has no value
        # to copy in place of its link (its value is its handle), so what is left is one store
        # for both spaces, or its file read there as an injected source (R60).
        try:
            path = repr(str(self.path))
        except SqliteCellsError:  # (an input with nothing linked yet: no file to name)
            path = "its file's path"
        return (
            "a database has no value to store in its place: open both spaces from one store, "
            f"or register its file as a disk source where it is used "
            f"(space.register_disk_source({path}))"
        )

    @property
    def declaration(self) -> Declaration:
        """What this runtime declared for the database most recently: a re-declaration of its
        id replaces the earlier one for every handle of that id, this one included (R14; as a
        default belongs to its id, R4)."""
        return self.space.runtime.latest_declaration(self._decl)

    @property
    def tables(self) -> Mapping[str, Table]:
        """The declared tables (empty for an injected source, which uses its own schema)."""
        schema = self.declaration.schema
        return MappingProxyType(dict(schema.tables) if schema is not None else {})

    @property
    def rev(self) -> int:
        """How many committed transactions wrote this database (0 before the first write)."""
        return int(self.get()["rev"])

    @refuse_get.shown
    def get(self, *extra: Never, **named: Never) -> Any:
        """The handle value ``{"id", "tables", "rev"}`` (R2); ``Quarantined`` if the stored value
        is not one (written by an older or foreign program; R5)."""
        if extra or named:  # the signature of Cell.get, which is hot (see refusal_of)
            refuse_get(self, *extra, **named)
        return check_handle(self.id, self._stored())

    def _stored(self) -> Any:
        """The handle cell's committed value (its read recorded in an open transaction); one
        that cannot be read — not JSON, a row another program wrote — is ``Quarantined`` (R5)."""
        data = None
        try:
            data = self._entity_data()
            return self.decode(data)
        except EncodingError as exc:
            raise unreadable_handle(self.id, data, exc) from exc

    @refuse_set.shown
    def set(self, value: Any = NO_VALUE, *extra: Never, **named: Never) -> None:
        """Refused: a database handle is not a writable cell (R5, ``HandleNotWritable``, a
        ``TypeError``); its rows change through ``db.exec``/``exec_many``."""
        raise handle_not_writable(self.id)

    @checked_arguments
    def update(self, fn: Any) -> None:
        """Refused, as ``set`` is (R5)."""
        raise handle_not_writable(self.id)

    @checked_arguments
    def key(self, key: Any) -> Cell:
        """Refused: a handle has no paths (R5); read its rows with ``read``/``query``."""
        raise HandleNotWritable(
            f"database {self.id} has no paths (R5): read it with db.read(...)/db.query(...), or "
            "read db.get() for its handle value"
        )

    def _write_handle(self, value: dict[str, Any]) -> None:
        """Write the handle value in the current transaction: the one internal way, for the rev
        bump of a write (R32), ``drop()`` and the registration of a disk source (R5)."""
        self._write(value)

    def _linked_id(self) -> str | None:
        """The cell whose next write may make a live query's database resolvable: none, a
        handle made by this runtime is its own database (see ``LinkedDb``)."""
        return None

    def _links_passed(self) -> list[str]:
        """The cells linked on the way to this database (see ``LinkedDb``): none."""
        return []

    @property
    def path(self) -> Path:
        """The sibling file (for tooling; R2). It may not exist before the first write."""
        return self.declaration.path

    # -- writes --------------------------------------------------------------------------------

    # As ``Cell.set``: the overloads are what a type checker sees, the function refuses the rest.
    @overload
    def exec(self, sql: str, /, params: Any = None) -> None: ...
    @overload
    def exec(self, *, sql: str, params: Any = None) -> None: ...
    @_refuse_exec.shown
    def exec(self, sql: str = NO_VALUE, params: Any = None, *extra: Never, **named: Never) -> None:
        """Record one write statement on the current transaction; it runs when the transaction
        commits, in the same SQLite transaction as the cell writes (R31–R34), and returns
        ``None`` (abort-only: there is no per-write result).

        ``sql`` is one ``INSERT``/``REPLACE``/``UPDATE``/``DELETE`` (optionally after ``WITH``,
        no ``RETURNING``); ``params`` a list or tuple (for ``?``) or a mapping (for ``:name``). A
        ``Cell`` bound to a ``*_cf_link`` column is stored as its link; ``None`` binds NULL.
        Raised at the call, recording nothing and leaving the transaction usable (R32):
        ``NoTransaction`` outside a transaction, ``GuardViolation`` (R20–R24),
        ``LinkEncodeError`` and ``PendingValue`` (R31), ``TooManyDatabases`` (R33),
        ``ReadOnlySource`` for an injected file (R60). At commit, an SQL error rolls back the
        whole transaction as ``ExecError`` (``ExecTimeout`` past ``exec_timeout``, R44)."""
        # Missing or stray arguments are refused here: exec is hot (see refusal_of).
        if sql is NO_VALUE or extra or named:
            given = () if sql is NO_VALUE else (sql, params)
            _refuse_exec(self, *given, *extra, **named)
        self._record(sql, [params], many=False)

    @checked_arguments
    def exec_many(self, sql: str, rows: Iterable[Any]) -> None:
        """``exec`` for many parameter rows: one op, one guard check (R36). ``rows`` is an
        iterable of rows; anything else, or an iterable that raises while it is read, is an
        ``ExecError`` (and ``TypeError``) at the call. No rows run no statement: the call
        checks it and records nothing (no op, no rev bump). The statement is checked before a
        row is taken: a refused one leaves a generator of rows as it was (R24, R36). In a
        handler's later try, an iterator an earlier try took rows from is an ``ExecError``
        (and ``TypeError``): it has no rows left to give (§3)."""
        self._record(sql, rows, many=True)

    def _record(self, sql: str, params: Any, *, many: bool) -> None:
        """Record ``sql`` with ``params``: exec's one parameter list in a list, or exec_many's
        rows as given."""
        tx = require_transaction(f"db.exec on {self.id}", self._space.file)
        # The guard's verdict comes first, on every handle: a refused statement could never
        # run, whatever the database (a read-only source, a dropped one) (R20, R24).
        # `checked` holds the scan while the parameters are mapped: a long text is scanned once
        checked = check_statement(sql, Mode.WRITE)
        sql = checked.sql
        decl = self.declaration
        decl.check_writable()
        self._check_live_committed()
        if self._pending(tx, DROP_KIND):  # dropped earlier in this very transaction
            raise dropped_here(self.id)
        self._check_declared_since(tx, decl)
        if many:
            # Refused before a row is taken too: another space's database (§2), a second
            # database (R33) — the caller's generator is left as it was (see _claim: no bind).
            self._claim(tx, bind=False)
            one_shot = isinstance(params, Iterator)
            if one_shot and taken_by_earlier_try(params):
                raise _taken_before(params, self.id, sql)
            rows = parameter_rows(params, sql=sql, db_id=self.id)
            if one_shot and rows:
                note_taken(params)
        else:
            rows = [given_params(params[0], sql=sql, db_id=self.id, write=True)]
        if self._pending(tx, DROP_KIND):  # dropped by the rows' own code, as they were read
            raise dropped_here(self.id)
        runtime = self.space.runtime
        targets, fills = _targets(sql, decl, runtime)
        try:
            bound = bind_rows(targets, rows, sql=sql, db_id=self.id, many=many, store=runtime.store)
        except (LinkEncodeError, PendingValue) as exc:  # (refused by a value: which statement)
            raise of_statement(exc, self.id, sql) from exc.__cause__
        if not bound:
            # exec_many with no rows runs no statement: it writes nothing, so nothing is
            # recorded — no op, no rev bump (R32), no commit or file made for it (R7). A
            # database of another space than the transaction's is refused all the same (§2);
            # an unbound transaction stays unbound (it wrote nothing).
            if tx.space is not None:
                tx.bind(self.space.file)
            return
        check_prepare_time(decl, sql, bound[0] if bound else None, runtime.exec_timeout)
        self._claim(tx)
        self._record_name(tx, decl)
        # The op carries its request; it is turned into the recorded op when applied (R32).
        request = ExecRequest(decl, sql, bound, many, fills)
        tx.add_op(self.space.file, PendingOp(KIND, self.id, request))

    def _check_declared_since(self, tx: Transaction, decl: Declaration) -> None:
        """R14, R32: refuse a write under ``decl``, a newer version with ``migrate``, when
        ``tx`` already wrote this database under an older version's declaration (it was
        declared anew in between). The migration commits on its own before the transaction's
        writes, and the older write cannot commit after it: refused at the call, before
        anything migrates, rather than at commit after the migration stayed. The first write
        tells: declarations of an id only replace each other, so it holds the oldest. A
        ``ConflictError``, as for a write recorded before its runtime declared the database
        anew: run again, every write is recorded under the new declaration."""
        if decl.migrate is None:
            return
        op = tx.first_op(_KINDS)
        if op is None or op.kind != KIND or op.target != self.id:
            return
        earlier = op.payload.decl if isinstance(op.payload, ExecRequest) else decl
        if earlier.version >= decl.version:
            return
        raise ConflictError(
            decl.space_id,
            (),
            reason=(
                f"{_named(self.space.file, self.id)} was declared anew at version "
                f"{decl.version}, with migrate=, after this transaction wrote it under its "
                f"declaration at version {earlier.version}, and that write could not commit "
                "after the migration, which commits on its own before the transaction (R14); "
                "this call recorded nothing and nothing was migrated (declare the new version "
                "before the transaction first writes the database)"
            ),
        )

    def _record_name(self, tx: Transaction, decl: Declaration) -> None:
        """Have the commit of ``tx``, which writes this database's handle (a write or a drop),
        record the database's name when no commit of this runtime recorded it yet: the store
        records it (SPEC §6), as a cell's ``set`` does — also for a database first written
        before names were recorded (R73), or dropped before its first write."""
        if decl.name is not None and self.id not in self.space.file.named:
            record_name(tx, self.id, (decl.name, "database"))

    def _claim(self, tx: Transaction, *, bind: bool = True) -> None:
        """Make ``tx`` the writer of this database: one database per transaction (R33). The
        handle's rev is bumped at commit by the write participant (R32), so claiming reads and
        writes nothing: transactions that only write a database never conflict. The space is
        checked first: a database of another space is a write to that space, refused as
        ``CrossSpaceWrite`` whatever else the transaction writes (§2, one space per
        transaction)."""
        if bind or (tx.space is not None and tx.space is not self.space.file):
            tx.bind(self.space.file)  # (bound to another space: refused, nothing bound)
        writing = written_database(tx)
        if writing is not None and writing != self.id:
            file = self._space.file
            raise TooManyDatabases(
                f"this transaction already writes {_named(file, writing)}; it cannot also write "
                f"{_named(file, self.id)}: write each database in its own transaction (R33)"
            )

    @checked_arguments
    def drop(self) -> None:
        """Drop this database inside the current transaction: the handle is marked dropped, and
        once the commit is durable the database can no longer be read or written. Its file is
        kept until ``sqlite-cells gc --yes`` (or ``space.gc()``) removes it (R74)."""
        tx = require_transaction(f"dropping database {self.id}", self._space.file)
        decl = self.declaration
        decl.check_writable("drop")
        if self._pending(tx, DROP_KIND):  # dropped earlier in this very transaction
            raise dropped_here(self.id)
        # A drop refused below records nothing (R32): not the read of the handle, which would
        # make a commit to this database a conflict of a transaction that does not drop it.
        with keep_reads_if_accepted(tx):
            self._check_live()
            if self._pending(tx, KIND):
                raise TransactionError(
                    f"database {self.id} is written by this transaction (db.exec) and cannot "
                    "also be dropped by it: drop it in a transaction of its own (this call "
                    "recorded nothing)"
                )
            self._claim(tx)
            # Reading the handle first makes a concurrent write of this database a conflict.
            value = self.get()
        # Written through the transaction, not ``set`` (a handle is not a writable cell, R5).
        dropped = self.space.runtime.encode({**value, "dropped": True})
        record_write(tx, self.space.file, self.id, dropped)
        self._record_name(tx, decl)
        tx.add_op(self.space.file, PendingOp(DROP_KIND, self.id, decl))

    def _pending(self, tx: Transaction, kind: str) -> bool:
        """Whether ``tx`` holds an op of ``kind`` on this database already. Its first write or
        drop tells (one database per transaction, R33, and never both a write and a drop of it):
        a check that stays as cheap on the ten-thousandth ``exec`` of a transaction as on the
        first."""
        op = tx.first_op(_KINDS)
        return op is not None and op.kind == kind and op.target == self.id

    def _check_live(self) -> None:
        # The raw value: a handle that is not a handle, or does not decode, is reported where
        # the database is used (Quarantined from reads, query runs and writes), not by this check.
        try:
            data = self._entity_data()  # (in a transaction, its read is recorded: R32)
        except EncodingError:
            return
        if data is None or (b"dropped" not in data and b"\\" not in data):
            # Never written (it reads its declared handle), or holding no drop: not decoded,
            # as the handle holds every declared table (1,000 tables: 1 ms for each read).
            return
        try:
            value = self.decode(data)
        except EncodingError:
            return
        if is_dropped(value):
            check_handle(self.id, value)  # one that only says "dropped" is no handle (R5)
            raise dropped_database(self.id, self._decl)

    def _check_live_committed(self) -> None:
        """``_check_live`` without recording a read of the handle: a write must not conflict
        with other writes of this database (R32); a drop committed meanwhile is caught at
        commit, where the rev is bumped. A committed value that is not a handle is
        ``Quarantined`` here, at the call (R5): it is never written over."""
        try:
            data = self.space.file.entity(self.id).data
        except EncodingError as exc:  # a row another program wrote
            raise unreadable_handle(self.id, None, exc) from exc
        if data is not None and is_dropped(decode_handle(self.id, data)):
            raise dropped_database(self.id, self._decl)

    # -- reads ---------------------------------------------------------------------------------

    def _check_read(self, sql: str, params: Any) -> Any:
        """Refuse a read the call itself makes wrong; the parameters to read with (see
        ``check_read_values``)."""
        params = _checked_read_values(self, sql, params)
        self._check_read_target()
        return params

    def _check_read_target(self) -> None:
        """Refuse a read of this database now (R35, dropped). In a transaction, the handle's
        read is recorded (R32): ``db.read`` keeps it once the call is accepted, ``db.query``
        never does."""
        self._check_unwritten()
        self._check_live()

    def _check_unwritten(self) -> None:
        """R35: a read of a database this transaction writes (or drops) is refused: reads see
        committed rows only."""
        tx = current_transaction()
        if tx is None:
            return
        if self._pending(tx, DROP_KIND):
            named = _named(self._space.file, self.id)
            raise ReadAfterWriteUnsupported(
                f"this transaction drops {named} (db.drop() earlier in it); reads see committed "
                "rows only, so read before dropping it (R35)"
            )
        if written_database(tx) == self.id:
            named = _named(self._space.file, self.id)
            raise ReadAfterWriteUnsupported(
                f"this transaction has a pending db.exec on {named}; reads see committed rows "
                "only, so read before writing or after the transaction commits (R35)"
            )

    @overload
    def query(
        self, sql: str, params: Any = None, *, row: None = None, react_on: Any = DEFAULT
    ) -> Query[dict[str, Any]]: ...
    @overload
    def query(
        self, sql: str, params: Any = None, *, row: type[T], react_on: Any = DEFAULT
    ) -> Query[T]: ...
    @checked_arguments
    def query(
        self, sql: str, params: Any = None, *, row: type[Any] | None = None, react_on: Any = DEFAULT
    ) -> Query[Any]:
        """A live query: a cell whose value is a ``QueryState(pending, result, error, seq)``
        (R42), its rows dicts by column name, or instances of ``row`` (a msgspec Struct, a
        dataclass or a TypedDict; ``sc.Cell`` fields decode links, R43). ``sql`` is one
        ``SELECT``, ``VALUES`` or ``WITH … SELECT`` (else ``GuardViolation``, raised here);
        ``params`` a list (for ``?``), a mapping (for ``:name``) or the one ``?``'s value; a
        cell among them stands for its value. A failing run sets ``error``; it never raises
        into the scheduler. By default it re-runs after each committed write that changes
        what it reads (R51); ``react_on=db`` after every committed write to this database; any
        other cell or value replaces that (cells in a list, tuple or dict each count, as in
        ``params``; a cell nested deeper or in a set, or a generator, is a ``QueryError``
        and a ``TypeError``, as there; a plain value of any shape is a constant);
        ``react_on=None`` runs it once per sql/params. A
        pattern's database input in ``react_on`` stands for the database it links to now.
        Cells among ``params`` re-run it too."""
        sql = plain_text(sql)
        # Made or refused, a live query records no read in the transaction: its value is no
        # transactional read and joins no conflict check (R32 names db.read); its checks look
        # at the handle (dropped?) and a pattern input's link as the transaction sees them.
        with keep_no_reads(current_transaction()):
            params = self._check_read(sql, params)
            decode = row_decoder(row, self.space.runtime, db_id=self.id, sql=sql)
            host = self.space.runtime
            members = react_on_members(react_on, sql=sql, db_id=self.id)
            reaction = self._reaction(react_on, members)
            own_code = runs_own_code(row)
            return Query(self, sql, params, decode, reaction, host=host, own_code=own_code)

    def _reaction(self, react_on: Any, members: tuple[Any, ...]) -> Reaction:
        """What re-runs a query of this database given ``react_on`` and what it names
        (``react_on_members``)."""
        if react_on is DEFAULT:
            return Reaction(by_reads=True)
        if react_on is self:
            return Reaction(by_reads=False, on=self, source_changes=True)
        return Reaction(by_reads=False, on=react_on, reached=_inputs_reached(members, self))

    @overload
    def read(self, sql: str, params: Any = None, *, row: None = None) -> list[dict[str, Any]]: ...
    @overload
    def read(self, sql: str, params: Any = None, *, row: type[T]) -> list[T]: ...
    @checked_arguments
    def read(self, sql: str, params: Any = None, *, row: type[Any] | None = None) -> list[Any]:
        """A one-shot snapshot read. It runs on a query worker while the caller waits, and its
        rows are built there, so it keeps ``query_timeout`` even through one long function call
        or a row type's slow ``__post_init__`` (R44)."""
        sql = plain_text(sql)
        params = _checked_read_values(self, sql, params)
        decode = row_decoder(row, self.space.runtime, db_id=self.id, sql=sql)
        tx = current_transaction()
        # A read refused at the call, or failing as it runs (an error SQLite raises while
        # stepping, a row that does not fit, its deadline), records nothing (R32): not the cells
        # given as parameters, looked up before a later check refuses it (R35, a value not
        # ready, a dropped database), nor the handle's revision, which would make a commit to
        # this database a conflict of a transaction that read nothing of it.
        with keep_reads_if_accepted(tx):
            return self._read(sql, params, tx, decode)

    def _read(
        self, sql: str, params: Any, tx: Transaction | None, decode: Callable[[Any], list[Any]]
    ) -> list[Any]:
        runtime: Runtime = self.space.runtime
        bound = resolve_params(params, sql=sql, db_id=self.id, seen=True)
        _refuse_pending(bound, self.id, sql)
        self._check_read_target()
        if tx is not None:
            # R32: reading the handle records its revision, so a commit to this database
            # between this read and the transaction's commit is a conflict (read-then-write).
            self.get()
        stmt = Statement(sql, bound)
        decl = self.declaration

        built: list[tuple[StatementResult, Any]] = []  # the last result read, its rows

        def build(_key: Any, result: StatementResult) -> None:
            # On the worker, as a live query's rows (ReadJob.ahead): building counts against
            # the statement's query_timeout, and past it the watchdog reports QueryTimeout.
            try:
                with runtime.scheduler.building():  # (as a live query's: see Query.build_ahead)
                    rows: Any = build_rows(decode, result)
            except Exception as exc:  # raised to the caller, as building there would
                rows = exc
            built[:] = [(result, rows)]

        def read() -> tuple[int, Any]:
            # Here: the caller may hold the space's write lock.
            runtime.ready_to_read(decl, sql)
            return runtime.query_workers.run(decl, stmt, None, build)  # type: ignore[no-any-return]

        # A file behind a commit this runtime saw in its space is read again (R40, R71).
        _, result = runtime.live_queries.read_caught_up(decl, read, self._last_write())
        if result.error is not None and result.invalid_text is None:
            raise result.error
        if built and built[0][0] is result:
            rows = built[0][1]
            if isinstance(rows, Exception):
                raise rows  # the error, unless the row type reads past it (R43)
            return rows  # type: ignore[no-any-return]
        return decode(result)

    def _last_write(self) -> int:
        """The seq of the last commit that wrote this database, as its handle's row says (0
        when it cannot say: a row another program wrote is reported where it is read)."""
        if self.declaration.kind is not SourceKind.CELL:
            return 0
        try:
            return self.space.file.entity(self.id).rev
        except SqliteCellsError:
            return 0

    def __repr__(self) -> str:
        return f"<SqliteDb {self.id} in {brief_repr(self._space.id)}>"

    def _repr_html_(self) -> str:
        """The database in a notebook: which one, its rev and its tables — as its text repr
        says, not the handle cell's raw value (a handle is no ordinary cell, R5)."""
        try:
            detail = f"rev {self.rev}; tables {', '.join(self.tables) or '(none)'}"
        except SqliteCellsError as exc:  # not linked yet, quarantined: say which
            detail = f"{type(exc).__name__}: {exc}"
        return (
            f"<div><code>{html.escape(repr(self)[1:-1])}</code>"
            f"<pre>{html.escape(detail)}</pre></div>"
        )


_TARGETS: dict[tuple[str, str], ParamTargets] = {}  # (sql, schema fingerprint) -> targets
_TARGETS_SIZE = 1024


def _targets(
    sql: str, decl: Declaration, runtime: Runtime
) -> tuple[ParamTargets, tuple[tuple[str, tuple[str, ...]], ...]]:
    """``map_params`` for ``sql`` on ``decl``'s tables, and the columns it took from the file
    for an INSERT without a column list (checked again at commit). A mapping that took none
    depends on nothing but (sql, schema) and is kept: it is on the path of every write; one
    that did depends on the file, which any migration may change, and is made at each call."""
    key = (sql, decl.schema.fingerprint if decl.schema is not None else "")
    found = _TARGETS.get(key)
    if found is not None:
        return found, ()
    columns = _FileColumns(decl, runtime)
    found = map_params(sql, columns)
    if columns.fills:
        return found, tuple(columns.fills.items())
    if len(_TARGETS) >= _TARGETS_SIZE:
        _TARGETS.pop(next(iter(_TARGETS), key), None)
    _TARGETS[key] = found
    return found, ()


class _FileColumns:
    """``columns_of`` for :func:`map_params`: the columns ``INSERT INTO table VALUES (…)``
    fills, in the order the file will have when the write runs — migrated first, so the stored
    columns, then the declared ones it lacks (``fill_orders``, R13, R31). The file is read at
    the call (once per table), as another runtime or process may have migrated it; a file that
    does not exist yet, or cannot be read now, will be created (or is taken) as declared, and
    the commit checks the columns again either way. ``fills`` holds what was found, by the
    table name the statement used."""

    __slots__ = ("_decl", "_runtime", "fills")

    def __init__(self, decl: Declaration, runtime: Runtime) -> None:
        self._decl = decl
        self._runtime = runtime
        self.fills: dict[str, tuple[str, ...]] = {}

    def __call__(self, table: str) -> tuple[str, ...]:
        found = self.fills.get(table)
        if found is not None:
            return found
        schema = self._decl.schema
        if schema is None:
            raise LookupError(table)
        runtime = self._runtime
        try:
            with runtime.read_pool.connection(self._decl.path) as pooled:
                pooled.deadline = time.monotonic() + runtime.query_timeout
                orders = fill_orders(pooled.conn, "main", schema, [table])
        except (FileNotFoundError, apsw.Error):
            orders = fill_orders(None, "main", schema, [table])
        found = orders.get(fold_ascii(table))
        if found is None:
            raise LookupError(table)  # not a declared table: the authorizer refuses it
        self.fills[table] = found
        return found


def _never_written(cell: Cell) -> bool:
    """Whether ``cell`` was never written and has no default here (it reads None). A row
    another program wrote is no such cell: what it holds is judged where it is used (R5)."""
    try:
        return cell.space.file.entity(cell.id).rev == 0 and cell.get() is None
    except EncodingError:
        return False


def _links_on(runtime: Runtime, cell: Cell) -> bool:
    """Whether the whole cell ``cell`` holds no database handle but a link to another cell (a
    chain of database inputs going on past it)."""
    if cell.value_path or runtime.holds_handle(cell):
        return False
    try:
        return isinstance(cell.get(), Cell)
    except EncodingError:  # (what it holds is said where it is used)
        return False


class LinkedDb(SqliteDb):
    """A pattern input typed ``sc.SqliteDb`` (R61): the database its input cell links to,
    resolved at each use. Until a handle is linked its queries are pending and its writes raise
    :class:`PendingValue`. As a cell it *is* the input cell, so queries re-run when it is linked."""

    __slots__ = ("_input", "_passed")

    def __init__(self, space: Space, input_cell: Cell) -> None:
        Cell.__init__(self, space, input_cell.id)
        self._input = input_cell
        self._passed: list[str] = []  # the cells the last resolution followed (see _follow)

    def target(self) -> SqliteDb:
        """The linked database (``PendingValue`` while nothing is linked)."""
        self._passed, linked = self._follow()
        if isinstance(linked, SqliteDb):
            return linked
        if linked is not None and not isinstance(linked, Cell):
            # A value, not a link (set on the input, or left there by an older program): no
            # handle will ever come of it, so it is said, not waited for (R61).
            raise SourceError(
                f"pattern input {self._input.id} holds {brief_repr(linked)} where a link to a "
                "database is expected: link a handle returned by sqlite_database() or "
                "register_disk_source() with piece.inputs[name].link(handle)"
            )
        if not isinstance(linked, Cell):
            raise PendingValue(
                f"pattern input {self._input.id} is not linked to a database yet: link one with "
                "piece.inputs[name].link(handle) or `sqlite-cells link`"
            )
        runtime = self.space.runtime
        if len(self._passed) >= LINKS_FOLLOWED and _links_on(runtime, linked):
            # The links go on past the last cell followed: what they reach is never read, so
            # "holds no database handle" would blame a cell that holds a link (R61).
            raise SourceError(
                f"pattern input {self._input.id} follows links through more than "
                f"{LINKS_FOLLOWED} other pattern inputs without reaching a database (the most "
                "a database input follows): link the database itself, or an input nearer to "
                "it, with piece.inputs[name].link(handle)"
            )
        if linked.id in runtime.database_inputs and linked.get() is None:
            # Another piece's database input, linked to nothing yet: nothing is linked here
            # either (R61), until that one is.
            raise PendingValue(
                f"pattern input {self._input.id} links to pattern input {linked.id}, which is "
                "not linked to a database yet: link one to either with "
                "piece.inputs[name].link(handle) or `sqlite-cells link`"
            )
        if not runtime.declares(linked.id) and _never_written(linked):
            # A cell never written, with no default here: a database another runtime or
            # process declared has no handle before its first write, and this runtime cannot
            # tell its cell from any other. Nothing is linked here yet (R61): the query re-runs
            # when the cell is written (see LiveQueries.await_handle); written with no handle,
            # it is an error. (An id this runtime declared is judged by declaration_for: in
            # another space, a cell that holds no handle, R3; so is a cell with a default.)
            raise PendingValue(
                f"pattern input {self._input.id} links to cell {linked.id} of space "
                f"{linked.space.id!r}, which holds no database handle yet (a database declared "
                "by another runtime or process has none before its first write, which that "
                "runtime makes): its queries run once it is written"
            )
        decl = runtime.declaration_for(linked)
        return runtime.handle(linked.space, decl)  # type: ignore[arg-type]  # a sqlite_cells Space

    def _follow(self) -> tuple[list[str], Any]:
        """(The cells passed on the way, what the input leads to.) The input may link to another
        piece's database input (given at ``space.run``, or linked so), which links to the
        handle in turn: links are followed to the handle, ``LINKS_FOLLOWED`` deep at most (a
        cycle ends where it meets a cell twice)."""
        linked = self._input.get()
        passed: list[str] = []
        runtime = self.space.runtime
        while (
            isinstance(linked, Cell)
            and not isinstance(linked, SqliteDb)
            and not linked.value_path
            and linked.id != self._input.id
            and linked.id not in passed
            and len(passed) < LINKS_FOLLOWED
            and not runtime.holds_handle(linked)
        ):
            onward = linked.get()
            if not isinstance(onward, Cell):
                break  # no handle, no link: declaration_for says what it holds
            passed.append(linked.id)
            linked = onward
        return passed, linked

    @refuse_get.shown
    def get(self, *extra: Never, **named: Never) -> Any:
        """The input cell's value (a link to the database, or None while nothing is linked)."""
        return Cell.get(self, *extra, **named)

    def _linked_id(self) -> str | None:
        """The id of the cell the input leads to now (None while nothing is linked): a live
        query that found no handle there re-runs when that cell is written (R53, R61)."""
        _, linked = self._follow()
        return linked.id if isinstance(linked, Cell) else None

    def _links_passed(self) -> list[str]:
        """The cells whose links the input followed to its database (another piece's input) at
        its last resolution: a live query re-runs when one of them is linked anew, as when its
        own input is."""
        return self._passed

    @property
    def declaration(self) -> Declaration:
        return self.target().declaration

    @property
    def _decl(self) -> Declaration:  # type: ignore[override]  # resolved, not stored
        return self.declaration

    @property
    def tables(self) -> Mapping[str, Table]:
        return self.target().tables

    @property
    def rev(self) -> int:
        return self.target().rev

    @property
    def path(self) -> Path:
        return self.target().path

    @overload
    def exec(self, sql: str, /, params: Any = None) -> None: ...
    @overload
    def exec(self, *, sql: str, params: Any = None) -> None: ...
    @_refuse_exec.shown
    def exec(self, sql: str = NO_VALUE, params: Any = None, *extra: Never, **named: Never) -> None:
        # The input cell is read to find the database: a call refused records nothing (R32).
        with keep_reads_if_accepted(current_transaction()):
            self._target_for(sql, Mode.WRITE).exec(sql, params, *extra, **named)

    @checked_arguments
    def exec_many(self, sql: str, rows: Iterable[Any]) -> None:
        with keep_reads_if_accepted(current_transaction()):
            self._target_for(sql, Mode.WRITE).exec_many(sql, rows)

    def _target_for(self, sql: Any, mode: Mode) -> SqliteDb:
        """The database linked now, for a statement ``sql``. With none linked (or none to be
        had), a statement the guard refuses is refused as such first: it could never run,
        whatever is linked later (R20, R24), so "not linked yet" would send the caller waiting
        for nothing. ``query`` checks the guard before anything else for the same reason."""
        try:
            return self.target()
        except SqliteCellsError:
            if isinstance(sql, str):
                check_statement(plain_text(sql), mode)
            raise

    @checked_arguments
    def drop(self) -> None:
        with keep_reads_if_accepted(current_transaction()):
            self.target().drop()

    @checked_arguments
    def read(self, sql: str, params: Any = None, *, row: type[Any] | None = None) -> list[Any]:
        with keep_reads_if_accepted(current_transaction()):
            return self._target_for(sql, Mode.READ).read(sql, params, row=row)

    def _reaction(self, react_on: Any, members: tuple[Any, ...]) -> Reaction:
        # The input cell always: linking (or relinking) re-runs it, whatever it reacts to (R61).
        if react_on is DEFAULT:  # what it reads in the database linked now
            return Reaction(by_reads=True, follows=self)
        if react_on is self:  # every write to the database linked now (R51: react_on=db)
            return Reaction(by_reads=False, whole=True, follows=self)
        # Among the cells of a list, tuple or dict, the input stands for its database too, as a
        # handle does there (its rev moves with every write): every write re-runs the query.
        whole = any(m is self for m in members)
        reached = _inputs_reached(members, self)
        return Reaction(by_reads=False, on=react_on, whole=whole, follows=self, reached=reached)

    def _check_read_target(self) -> None:
        # The rest is checked against the target at each run.
        if current_transaction() is not None:
            # R35 for the database linked now, as for that database itself (nothing linked
            # yet: nothing this transaction can have written through it).
            try:
                target = self.target()
            except SqliteCellsError:
                return
            target._check_unwritten()

    def __repr__(self) -> str:
        return f"<LinkedDb following {self._input.id}>"


def _inputs_reached(members: tuple[Any, ...], own: SqliteDb) -> Callable[[], list[str]] | None:
    """``Reaction.reached`` for a ``react_on`` that names ``members``: the pattern database
    inputs among them but ``own`` (the query's database: ``Reaction.whole``) stand for the
    database each links to now, as a handle there does (R51: every write to it re-runs the
    query). None when it names none."""
    inputs = [m for m in members if isinstance(m, LinkedDb) and m is not own]
    if not inputs:
        return None

    def reached() -> list[str]:
        cells: list[str] = []
        for linked_db in inputs:
            try:
                passed, linked = linked_db._follow()
            except SqliteCellsError:  # its input cannot be read: its own change re-runs it
                continue
            cells += passed
            if isinstance(linked, Cell):
                cells.append(linked.id)
        return cells

    return reached


def _checked_read_values(db: SqliteDb, sql: str, params: Any) -> Any:
    """The parameters of a read of ``db`` to read with (see ``check_read_values``), once the
    runtime is open and the statement passes the guard."""
    # A closed runtime runs nothing: said at the call, whether or not the handle is cached.
    db.space.runtime.check_open()
    # `checked` holds the scan while the values are checked: a long text is scanned once
    checked = check_statement(sql, Mode.READ)
    return check_read_values(params, sql=checked.sql, db_id=db.id)


def _taken_before(rows: Iterator[Any], db_id: str, sql: str) -> ExecArgumentError:
    """The error of ``exec_many`` rows an earlier try of the running handler call took from
    an iterator (see ``taken_by_earlier_try``): this try would write none of them, or only the
    rest (§3, R36)."""
    return ExecArgumentError(
        db_id,
        sql,
        f"exec_many's rows are an iterator (a {type(rows).__name__}) that an earlier try of "
        "this handler call already read: the handler ran its body again after a conflict, and "
        "an iterator gives its rows only once, so this try would have written none of them "
        "(nothing of the call was written). Give the rows as a list (list(rows) before calling "
        "the handler), or make the iterator inside the handler's body",
    )


def _refuse_pending(bound: Any, db_id: str, sql: str) -> None:
    """A one-shot read has no later run to wait for its parameters: one not ready yet
    (``sc.PENDING``, a pending query state, directly or as a cell's value) is refused at the call
    (R31's rule for writes), where a live query would stay pending until it is ready."""
    items = bound.items() if isinstance(bound, Mapping) else enumerate(bound, 1)
    for key, value in items:
        if is_pending(value):
            error = PendingValue(
                f"database {db_id}: parameter {key} of db.read is not ready yet (sc.PENDING, or "
                f"a query with no result yet) in {brief_repr(sql)}: wait for it (rt.settle()) "
                "before reading, or use db.query, which runs once its parameters are ready"
            )
            error.db_id, error.sql = db_id, sql
            raise error


@overload
def sqlite_query(
    *, db: SqliteDb, sql: str, params: Any = None, row: None = None, react_on: Any = DEFAULT
) -> Query[dict[str, Any]]: ...
@overload
def sqlite_query(
    *, db: SqliteDb, sql: str, params: Any = None, row: type[T], react_on: Any = DEFAULT
) -> Query[T]: ...
@checked_arguments
def sqlite_query(
    *,
    db: SqliteDb,
    sql: str,
    params: Any = None,
    row: type[Any] | None = None,
    react_on: Any = DEFAULT,
) -> Query[Any]:
    """The same live query node as ``db.query``."""
    if not isinstance(db, SqliteDb):
        raise InvalidArgument(
            f"sqlite_query(db=...) takes a database (space.sqlite_database(...), "
            f"register_disk_source(...) or a pattern's database input), not {brief_repr(db)}"
        )
    return db.query(sql, params, row=row, react_on=react_on)


def _named(file: SpaceFile, db_id: str) -> str:
    """``db_id`` as a message shows it: by the name this runtime gave it, when it knows one
    (``database 'orders' (of:…)``), as a conflict does."""
    named = file.names.get(db_id)
    return f"{named} ({db_id})" if named is not None else f"database {db_id}"


# Last, as sqlite_cells/_runtime.py imports this module last: each module of the cycle is whole
# before the other one's names are taken from it, whichever is imported first. Bound at run time
# for typing.get_type_hints, which resolves the annotations that name them (§3).
from sqlite_cells._runtime import Runtime, Space  # noqa: E402 (an import cycle, see above)

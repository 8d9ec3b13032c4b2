"""The database cell handle: ``SqliteDb`` (SPEC §4).

A ``SqliteDb`` is a cell whose value is ``{"id", "tables", "rev"}`` (R2). ``exec``/``exec_many``
record a ``sqlite`` op on the caller's transaction (R31–R36); ``query`` makes a live query and
``read`` runs a one-shot snapshot read (R40–R43).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlite_cells.codec import (
    PendingValue,
    ReadAfterWriteUnsupported,
    SqliteCellsError,
    TooManyDatabases,
)
from sqlite_cells.files import (
    DROP_KIND,
    KIND,
    HandleNotWritable,
    check_handle,
    handle_not_writable,
    is_dropped,
)
from sqlite_cells.read import Query, read_rows, resolve_params, row_decoder
from sqlite_cells.runtime import Cell, Transaction, current_transaction, require_transaction
from sqlite_cells.schema import Declaration, Table
from sqlite_cells.sql import Mode, ParamTargets, bind_rows, check_statement, map_params
from sqlite_cells.write import REQUESTS, ExecRequest

if TYPE_CHECKING:
    from sqlite_cells._runtime import Runtime, Space

from sqlite_cells.codec import Op

__all__ = ["DEFAULT", "SqliteDb", "sqlite_query"]

WRITING = "sqlite.writing"  # tx.extras key: the id of the database this transaction writes

DEFAULT: Any = object()  # marks "react_on not given": react to the database itself


class SqliteDb(Cell):
    """A cell that owns a SQLite database: its declared tables, its file, its revision.

    The handle is not a writable cell (R5): ``set``, ``update`` and ``key`` raise a ``TypeError``
    (:class:`HandleNotWritable`); only ``exec``/``exec_many`` (the rev bump) and ``drop`` write
    its value, through :meth:`_write_handle`. A stored handle value that does not decode makes
    the database fail with ``Quarantined``.
    """

    __slots__ = ("_decl",)

    def __init__(self, space: Space, decl: Declaration) -> None:
        tables = decl.schema.to_json() if decl.schema is not None else {}
        super().__init__(space, decl.db_id, (), {"id": decl.db_id, "tables": tables, "rev": 0})
        self._decl = decl

    @property
    def space(self) -> Space:
        return self._space  # type: ignore[return-value]  # always a sqlite_cells Space

    @property
    def declaration(self) -> Declaration:
        return self._decl

    @property
    def tables(self) -> Mapping[str, Table]:
        """The declared tables (empty for an injected source, which uses its own schema)."""
        schema = self._decl.schema
        return MappingProxyType(dict(schema.tables) if schema is not None else {})

    @property
    def rev(self) -> int:
        """How many committed transactions wrote this database (0 before the first write)."""
        return int(self.get()["rev"])

    def get(self) -> Any:
        """The handle value ``{"id", "tables", "rev"}`` (R2); ``Quarantined`` if the stored value
        is not one (written by an older or foreign program; R5)."""
        value = super().get()
        return check_handle(self.id, value)

    def set(self, value: Any) -> None:
        raise handle_not_writable(self.id)

    def update(self, fn: Any) -> None:
        raise handle_not_writable(self.id)

    def key(self, key: Any) -> Cell:
        raise HandleNotWritable(
            f"database {self.id} has no paths (R5): read it with db.read(...)/db.query(...), or "
            "read db.get() for its handle value"
        )

    def _write_handle(self, value: dict[str, Any]) -> None:
        """Write the handle value in the current transaction: the one internal way, for the rev
        bump of a write (R32), ``drop()`` and the registration of a disk source (R5)."""
        self._write(value)

    @property
    def path(self) -> Path:
        """The sibling file (for tooling; R2). It may not exist before the first write."""
        return self._decl.path

    # -- writes --------------------------------------------------------------------------------

    def exec(self, sql: str, params: Any = None) -> None:
        """Record one write statement on the current transaction; it runs when the transaction
        commits, in the same SQLite transaction as the cell writes (R31–R34)."""
        self._record(sql, [params], many=False)

    def exec_many(self, sql: str, rows: Iterable[Any]) -> None:
        """``exec`` for many parameter rows: one op, one guard check (R36)."""
        self._record(sql, list(rows), many=True)

    def _record(self, sql: str, rows: list[Any], *, many: bool) -> None:
        tx = require_transaction(f"db.exec on {self.id}")
        self.declaration.check_writable()
        self._check_live()
        check_statement(sql, Mode.WRITE)
        targets = _targets(sql, self._decl)
        bound = bind_rows(targets, rows, sql=sql, db_id=self.id)
        self._claim(tx)
        request = ExecRequest(self._decl, sql, bound, many)
        op = Op(KIND, self.id)  # its body is written when it is applied (see _fold)
        tx.extras.setdefault(REQUESTS, {})[id(op)] = request
        tx.add_op(self.space.file, op)

    def _claim(self, tx: Transaction) -> None:
        """Make ``tx`` the writer of this database: one database per transaction (R33), and the
        handle's rev bumped once per transaction (R32)."""
        writing = tx.extras.get(WRITING)
        if writing is not None and writing != self.id:
            raise TooManyDatabases(
                f"this transaction already writes database {writing}; it cannot also write "
                f"{self.id}: write each database in its own transaction (R33)"
            )
        tx.bind(self.space.file)
        if writing is None:
            handle = self.get()
            self._write_handle({**handle, "rev": int(handle["rev"]) + 1})
            tx.extras[WRITING] = self.id

    def drop(self) -> None:
        """Delete this database inside the current transaction: the handle is marked dropped,
        and once the commit is durable the file (and its -wal/-shm) is removed."""
        tx = require_transaction(f"dropping database {self.id}")
        self.declaration.check_writable()
        self._check_live()
        self._claim(tx)
        self._write_handle({**self.get(), "dropped": True})
        tx.add_op(self.space.file, Op(DROP_KIND, self.id))

    def _check_live(self) -> None:
        # The raw value: a handle that does not decode is reported where the database is used
        # (Quarantined from reads, query runs and writes), not by this check.
        if is_dropped(Cell.get(self)):
            raise SqliteCellsError(
                f"database {self.id} was dropped: declare a new one (another name) instead"
            )

    # -- reads ---------------------------------------------------------------------------------

    def _check_read(self, sql: str) -> None:
        check_statement(sql, Mode.READ)
        self._check_live()
        tx = current_transaction()
        if tx is not None and tx.extras.get(WRITING) == self.id:
            raise ReadAfterWriteUnsupported(
                f"this transaction has a pending db.exec on {self.id}; reads see committed rows "
                "only, so read before writing or after the transaction commits (R35)"
            )

    def query(
        self, sql: str, params: Any = None, *, row: type | None = None, react_on: Any = DEFAULT
    ) -> Query:
        """A live query: its value is a ``QueryState`` re-computed after each committed write to
        this database (or each change of ``react_on`` / of cells among ``params``)."""
        self._check_read(sql)
        decode = row_decoder(row, self.space.runtime, db_id=self.id, sql=sql)
        host = self.space.runtime
        return Query(
            self, sql, params, decode, self if react_on is DEFAULT else react_on, host=host
        )

    def read(self, sql: str, params: Any = None, *, row: type | None = None) -> list[Any]:
        """A one-shot snapshot read on the calling thread."""
        self._check_read(sql)
        runtime: Runtime = self.space.runtime
        decode = row_decoder(row, runtime, db_id=self.id, sql=sql)
        runtime.ensure_reconciled(self._decl)
        rows, _ = read_rows(
            runtime.read_pool,
            self._decl,
            sql,
            resolve_params(params),
            timeout=runtime.query_timeout,
        )
        return decode(rows)

    def __repr__(self) -> str:
        return f"<SqliteDb {self.id} in {self._space.id!r}>"


_TARGETS: dict[tuple[str, str], ParamTargets] = {}  # (sql, schema fingerprint) -> targets
_TARGETS_SIZE = 1024


def _targets(sql: str, decl: Declaration) -> ParamTargets:
    """``map_params`` for ``sql`` on ``decl``'s tables, kept per (sql, schema): the mapping
    depends on nothing else, and it is on the path of every write."""
    key = (sql, decl.schema.fingerprint if decl.schema is not None else "")
    found = _TARGETS.get(key)
    if found is None:
        found = map_params(sql, decl.columns_of)
        if len(_TARGETS) >= _TARGETS_SIZE:
            _TARGETS.pop(next(iter(_TARGETS), key), None)
        _TARGETS[key] = found
    return found


class LinkedDb(SqliteDb):
    """A pattern input typed ``sc.SqliteDb`` (R61): the database its input cell links to,
    resolved at each use. Until a handle is linked its queries are pending and its writes raise
    :class:`PendingValue`. As a cell it *is* the input cell, so queries re-run when it is linked."""

    __slots__ = ("_input",)

    def __init__(self, space: Space, input_cell: Cell) -> None:
        Cell.__init__(self, space, input_cell.id)
        self._input = input_cell

    def target(self) -> SqliteDb:
        """The linked database (``PendingValue`` while nothing is linked)."""
        linked = self._input.get()
        if isinstance(linked, SqliteDb):
            return linked
        if not isinstance(linked, Cell):
            raise PendingValue(
                f"pattern input {self._input.id} is not linked to a database yet: link one with "
                "piece.inputs[name].link(handle) or `sqlite-cells link`"
            )
        decl = self.space.runtime.declaration_for(linked)
        return SqliteDb(linked.space, decl)  # type: ignore[arg-type]  # a sqlite_cells Space

    def get(self) -> Any:
        """The input cell's value (a link to the database, or None while nothing is linked)."""
        return Cell.get(self)

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

    def exec(self, sql: str, params: Any = None) -> None:
        self.target().exec(sql, params)

    def exec_many(self, sql: str, rows: Iterable[Any]) -> None:
        self.target().exec_many(sql, rows)

    def drop(self) -> None:
        self.target().drop()

    def read(self, sql: str, params: Any = None, *, row: type | None = None) -> list[Any]:
        return self.target().read(sql, params, row=row)

    def _check_read(self, sql: str) -> None:
        check_statement(sql, Mode.READ)  # the rest is checked against the target at each run

    def __repr__(self) -> str:
        return f"<LinkedDb following {self._input.id}>"


def sqlite_query(
    *,
    db: SqliteDb,
    sql: str,
    params: Any = None,
    row: type | None = None,
    react_on: Any = DEFAULT,
) -> Query:
    """The same live query node as ``db.query``."""
    return db.query(sql, params, row=row, react_on=react_on)

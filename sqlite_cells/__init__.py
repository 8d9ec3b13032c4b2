"""sqlite-cells: a reactive cell/dataflow runtime whose state lives in SQLite.

``import sqlite_cells as sc`` is the one import a user needs.

The public names are imported on first use (PEP 562): ``import sqlite_cells`` itself costs next
to nothing, so the ``sqlite-cells`` command can take charge of Ctrl-C before the heavy imports
run (SPEC §6: Ctrl-C exits 130 and prints no traceback, at any moment).
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing takes ≈ 9 ms, during which a Ctrl-C of
# the command would still be Python's (a traceback); type checkers read this name as true. For
# the same reason importlib is imported when a name is first used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from sqlite_cells._db import SqliteDb as SqliteDb
    from sqlite_cells._db import sqlite_query as sqlite_query
    from sqlite_cells._runtime import Runtime as Runtime
    from sqlite_cells._runtime import Space as Space
    from sqlite_cells.codec import ClosedError as ClosedError
    from sqlite_cells.codec import ConflictError as ConflictError
    from sqlite_cells.codec import CrossSpaceWrite as CrossSpaceWrite
    from sqlite_cells.codec import DatabaseError as DatabaseError
    from sqlite_cells.codec import DeclarationError as DeclarationError
    from sqlite_cells.codec import DiskSourceError as DiskSourceError
    from sqlite_cells.codec import EncodingError as EncodingError
    from sqlite_cells.codec import ExecError as ExecError
    from sqlite_cells.codec import ExecTimeout as ExecTimeout
    from sqlite_cells.codec import GuardViolation as GuardViolation
    from sqlite_cells.codec import LinkDecodeError as LinkDecodeError
    from sqlite_cells.codec import LinkEncodeError as LinkEncodeError
    from sqlite_cells.codec import MigrationError as MigrationError
    from sqlite_cells.codec import NotImplementedSource as NotImplementedSource
    from sqlite_cells.codec import NoTransaction as NoTransaction
    from sqlite_cells.codec import PendingValue as PendingValue
    from sqlite_cells.codec import Quarantined as Quarantined
    from sqlite_cells.codec import QueryError as QueryError
    from sqlite_cells.codec import QueryTimeout as QueryTimeout
    from sqlite_cells.codec import ReadAfterWriteUnsupported as ReadAfterWriteUnsupported
    from sqlite_cells.codec import ReadOnlySource as ReadOnlySource
    from sqlite_cells.codec import SchemaError as SchemaError
    from sqlite_cells.codec import SourceError as SourceError
    from sqlite_cells.codec import SqliteCellsError as SqliteCellsError
    from sqlite_cells.codec import StatementError as StatementError
    from sqlite_cells.codec import StoreChanged as StoreChanged
    from sqlite_cells.codec import TooManyDatabases as TooManyDatabases
    from sqlite_cells.codec import TransactionError as TransactionError
    from sqlite_cells.codec import UnsupportedMigration as UnsupportedMigration
    from sqlite_cells.codec import ValueEncodeError as ValueEncodeError
    from sqlite_cells.read import Query as Query
    from sqlite_cells.read import QueryState as QueryState
    from sqlite_cells.read import decode_cf_link as decode_cf_link
    from sqlite_cells.runtime import PENDING as PENDING
    from sqlite_cells.runtime import Cell as Cell
    from sqlite_cells.runtime import Piece as Piece
    from sqlite_cells.runtime import Transaction as Transaction
    from sqlite_cells.runtime import derive as derive
    from sqlite_cells.runtime import handler as handler
    from sqlite_cells.runtime import lift as lift
    from sqlite_cells.runtime import pattern as pattern
    from sqlite_cells.schema import VmSource as VmSource
    from sqlite_cells.schema import cf_link as cf_link
    from sqlite_cells.schema import table as table

# Where each public name is defined.
_WHERE = {
    "Cell": "sqlite_cells.runtime",
    "ClosedError": "sqlite_cells.codec",
    "ConflictError": "sqlite_cells.codec",
    "CrossSpaceWrite": "sqlite_cells.codec",
    "DatabaseError": "sqlite_cells.codec",
    "DeclarationError": "sqlite_cells.codec",
    "DiskSourceError": "sqlite_cells.codec",
    "EncodingError": "sqlite_cells.codec",
    "ExecError": "sqlite_cells.codec",
    "ExecTimeout": "sqlite_cells.codec",
    "GuardViolation": "sqlite_cells.codec",
    "LinkDecodeError": "sqlite_cells.codec",
    "LinkEncodeError": "sqlite_cells.codec",
    "MigrationError": "sqlite_cells.codec",
    "NoTransaction": "sqlite_cells.codec",
    "NotImplementedSource": "sqlite_cells.codec",
    "PENDING": "sqlite_cells.runtime",
    "PendingValue": "sqlite_cells.codec",
    "Piece": "sqlite_cells.runtime",
    "Quarantined": "sqlite_cells.codec",
    "Query": "sqlite_cells.read",
    "QueryError": "sqlite_cells.codec",
    "QueryState": "sqlite_cells.read",
    "QueryTimeout": "sqlite_cells.codec",
    "ReadAfterWriteUnsupported": "sqlite_cells.codec",
    "ReadOnlySource": "sqlite_cells.codec",
    "Runtime": "sqlite_cells._runtime",
    "SchemaError": "sqlite_cells.codec",
    "SourceError": "sqlite_cells.codec",
    "Space": "sqlite_cells._runtime",
    "SqliteCellsError": "sqlite_cells.codec",
    "SqliteDb": "sqlite_cells._db",
    "StatementError": "sqlite_cells.codec",
    "StoreChanged": "sqlite_cells.codec",
    "TooManyDatabases": "sqlite_cells.codec",
    "Transaction": "sqlite_cells.runtime",
    "TransactionError": "sqlite_cells.codec",
    "UnsupportedMigration": "sqlite_cells.codec",
    "ValueEncodeError": "sqlite_cells.codec",
    "VmSource": "sqlite_cells.schema",
    "cf_link": "sqlite_cells.schema",
    "decode_cf_link": "sqlite_cells.read",
    "derive": "sqlite_cells.runtime",
    "handler": "sqlite_cells.runtime",
    "lift": "sqlite_cells.runtime",
    "pattern": "sqlite_cells.runtime",
    "sqlite_query": "sqlite_cells._db",
    "table": "sqlite_cells.schema",
}

__all__ = [
    "PENDING",
    "Cell",
    "ClosedError",
    "ConflictError",
    "CrossSpaceWrite",
    "DatabaseError",
    "DeclarationError",
    "DiskSourceError",
    "EncodingError",
    "ExecError",
    "ExecTimeout",
    "GuardViolation",
    "LinkDecodeError",
    "LinkEncodeError",
    "MigrationError",
    "NoTransaction",
    "NotImplementedSource",
    "PendingValue",
    "Piece",
    "Quarantined",
    "Query",
    "QueryError",
    "QueryState",
    "QueryTimeout",
    "ReadAfterWriteUnsupported",
    "ReadOnlySource",
    "Runtime",
    "SchemaError",
    "SourceError",
    "Space",
    "SqliteCellsError",
    "SqliteDb",
    "StatementError",
    "StoreChanged",
    "TooManyDatabases",
    "Transaction",
    "TransactionError",
    "UnsupportedMigration",
    "ValueEncodeError",
    "VmSource",
    "cf_link",
    "decode_cf_link",
    "derive",
    "handler",
    "lift",
    "pattern",
    "sqlite_query",
    "table",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sqlite_cells' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is an ordinary global
    return value


def __dir__() -> list[str]:
    """The public names and the module's dunders: not its internals (``TYPE_CHECKING``, the
    table above, a submodule once imported)."""
    return sorted({*(n for n in globals() if n.startswith("__") and n.endswith("__")), *__all__})

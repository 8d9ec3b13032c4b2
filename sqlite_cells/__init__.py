"""sqlite-cells: a reactive cell/dataflow runtime whose state lives in SQLite.

``import sqlite_cells as sc`` is the one import a user needs.
"""

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

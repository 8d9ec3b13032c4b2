"""sqlite-cells: a reactive cell/dataflow runtime whose state lives in SQLite.

``import sqlite_cells as sc`` is the one import a user needs.
"""

from codec import ConflictError as ConflictError
from codec import CrossSpaceWrite as CrossSpaceWrite
from codec import DiskSourceError as DiskSourceError
from codec import ExecError as ExecError
from codec import GuardViolation as GuardViolation
from codec import LinkDecodeError as LinkDecodeError
from codec import LinkEncodeError as LinkEncodeError
from codec import MigrationError as MigrationError
from codec import NotImplementedSource as NotImplementedSource
from codec import NoTransaction as NoTransaction
from codec import PendingValue as PendingValue
from codec import Quarantined as Quarantined
from codec import QueryError as QueryError
from codec import QueryTimeout as QueryTimeout
from codec import ReadAfterWriteUnsupported as ReadAfterWriteUnsupported
from codec import ReadOnlySource as ReadOnlySource
from codec import SchemaError as SchemaError
from codec import SqliteCellsError as SqliteCellsError
from codec import TooManyDatabases as TooManyDatabases
from codec import UnsupportedMigration as UnsupportedMigration
from runtime import PENDING as PENDING
from runtime import Cell as Cell
from runtime import derive as derive
from runtime import handler as handler
from runtime import lift as lift
from runtime import pattern as pattern
from sqlite_cells._db import SqliteDb as SqliteDb
from sqlite_cells._db import sqlite_query as sqlite_query
from sqlite_cells._declaration import VmSource as VmSource
from sqlite_cells._query import QueryState as QueryState
from sqlite_cells._rows import decode_cf_link as decode_cf_link
from sqlite_cells._runtime import Runtime as Runtime
from sqlite_cells._schema import cf_link as cf_link
from sqlite_cells._schema import table as table

__all__ = [
    "PENDING",
    "Cell",
    "ConflictError",
    "CrossSpaceWrite",
    "DiskSourceError",
    "ExecError",
    "GuardViolation",
    "LinkDecodeError",
    "LinkEncodeError",
    "MigrationError",
    "NoTransaction",
    "NotImplementedSource",
    "PendingValue",
    "Quarantined",
    "QueryError",
    "QueryState",
    "QueryTimeout",
    "ReadAfterWriteUnsupported",
    "ReadOnlySource",
    "Runtime",
    "SchemaError",
    "SqliteCellsError",
    "SqliteDb",
    "TooManyDatabases",
    "UnsupportedMigration",
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

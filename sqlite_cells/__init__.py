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
from runtime import Cell as Cell
from runtime import Runtime as Runtime
from runtime import derive as derive
from runtime import handler as handler
from runtime import lift as lift
from runtime import pattern as pattern

__all__ = [
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
    "QueryTimeout",
    "ReadAfterWriteUnsupported",
    "ReadOnlySource",
    "Runtime",
    "SchemaError",
    "SqliteCellsError",
    "TooManyDatabases",
    "UnsupportedMigration",
    "derive",
    "handler",
    "lift",
    "pattern",
]

"""Encoding only: links, entity ids, cell values, commit records, and the error tree.

Imports nothing of the project's other packages.
"""

from sqlite_cells.codec._errors import ClosedError as ClosedError
from sqlite_cells.codec._errors import ConflictError as ConflictError
from sqlite_cells.codec._errors import CrossSpaceWrite as CrossSpaceWrite
from sqlite_cells.codec._errors import DatabaseError as DatabaseError
from sqlite_cells.codec._errors import DeclarationError as DeclarationError
from sqlite_cells.codec._errors import DiskSourceError as DiskSourceError
from sqlite_cells.codec._errors import EncodingError as EncodingError
from sqlite_cells.codec._errors import ExecArgumentError as ExecArgumentError
from sqlite_cells.codec._errors import ExecError as ExecError
from sqlite_cells.codec._errors import ExecTimeout as ExecTimeout
from sqlite_cells.codec._errors import GuardViolation as GuardViolation
from sqlite_cells.codec._errors import LinkDecodeError as LinkDecodeError
from sqlite_cells.codec._errors import LinkEncodeError as LinkEncodeError
from sqlite_cells.codec._errors import MigrationError as MigrationError
from sqlite_cells.codec._errors import NotImplementedSource as NotImplementedSource
from sqlite_cells.codec._errors import NoTransaction as NoTransaction
from sqlite_cells.codec._errors import PendingValue as PendingValue
from sqlite_cells.codec._errors import Quarantined as Quarantined
from sqlite_cells.codec._errors import QueryArgumentError as QueryArgumentError
from sqlite_cells.codec._errors import QueryError as QueryError
from sqlite_cells.codec._errors import QueryTimeout as QueryTimeout
from sqlite_cells.codec._errors import ReadAfterWriteUnsupported as ReadAfterWriteUnsupported
from sqlite_cells.codec._errors import ReadOnlySource as ReadOnlySource
from sqlite_cells.codec._errors import SchemaError as SchemaError
from sqlite_cells.codec._errors import SourceError as SourceError
from sqlite_cells.codec._errors import SqliteCellsError as SqliteCellsError
from sqlite_cells.codec._errors import StatementError as StatementError
from sqlite_cells.codec._errors import StoreChanged as StoreChanged
from sqlite_cells.codec._errors import StoredCellError as StoredCellError
from sqlite_cells.codec._errors import TooManyDatabases as TooManyDatabases
from sqlite_cells.codec._errors import TransactionError as TransactionError
from sqlite_cells.codec._errors import UnsupportedMigration as UnsupportedMigration
from sqlite_cells.codec._errors import ValueEncodeError as ValueEncodeError
from sqlite_cells.codec._errors import WriteLockTimeout as WriteLockTimeout
from sqlite_cells.codec._errors import brief_repr as brief_repr
from sqlite_cells.codec._errors import of_statement as of_statement
from sqlite_cells.codec._ids import MAX_NAME_BYTES as MAX_NAME_BYTES
from sqlite_cells.codec._ids import derive_id as derive_id
from sqlite_cells.codec._ids import is_derived_id as is_derived_id
from sqlite_cells.codec._ids import name_too_long as name_too_long
from sqlite_cells.codec._ids import short_hash as short_hash
from sqlite_cells.codec._links import Link as Link
from sqlite_cells.codec._links import ParsedLink as ParsedLink
from sqlite_cells.codec._links import check_link as check_link
from sqlite_cells.codec._links import decode_sigil as decode_sigil
from sqlite_cells.codec._links import encode_link as encode_link
from sqlite_cells.codec._links import is_link_sigil as is_link_sigil
from sqlite_cells.codec._links import link_from_sigil as link_from_sigil
from sqlite_cells.codec._links import link_text_problem as link_text_problem
from sqlite_cells.codec._links import parse_link as parse_link
from sqlite_cells.codec._links import parse_links as parse_links
from sqlite_cells.codec._records import CellWrite as CellWrite
from sqlite_cells.codec._records import CommitRecord as CommitRecord
from sqlite_cells.codec._records import Op as Op
from sqlite_cells.codec._records import UnreadableRecord as UnreadableRecord
from sqlite_cells.codec._records import decode_record as decode_record
from sqlite_cells.codec._records import encode_record as encode_record
from sqlite_cells.codec._records import stored_json as stored_json
from sqlite_cells.codec._values import MAX_DEPTH as MAX_DEPTH
from sqlite_cells.codec._values import decode_value as decode_value
from sqlite_cells.codec._values import encode_plain as encode_plain
from sqlite_cells.codec._values import encode_value as encode_value
from sqlite_cells.codec._values import has_links as has_links

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "CellWrite",
    "ClosedError",
    "CommitRecord",
    "ConflictError",
    "CrossSpaceWrite",
    "DatabaseError",
    "DeclarationError",
    "DiskSourceError",
    "EncodingError",
    "ExecArgumentError",
    "ExecError",
    "ExecTimeout",
    "GuardViolation",
    "Link",
    "LinkDecodeError",
    "LinkEncodeError",
    "MigrationError",
    "NoTransaction",
    "NotImplementedSource",
    "Op",
    "ParsedLink",
    "PendingValue",
    "Quarantined",
    "QueryArgumentError",
    "QueryError",
    "QueryTimeout",
    "ReadAfterWriteUnsupported",
    "ReadOnlySource",
    "SchemaError",
    "SourceError",
    "SqliteCellsError",
    "StatementError",
    "StoreChanged",
    "StoredCellError",
    "TooManyDatabases",
    "TransactionError",
    "UnreadableRecord",
    "UnsupportedMigration",
    "ValueEncodeError",
    "brief_repr",
    "check_link",
    "decode_record",
    "decode_sigil",
    "decode_value",
    "derive_id",
    "encode_link",
    "encode_plain",
    "encode_record",
    "encode_value",
    "has_links",
    "is_derived_id",
    "is_link_sigil",
    "link_from_sigil",
    "link_text_problem",
    "name_too_long",
    "of_statement",
    "parse_link",
    "parse_links",
    "short_hash",
    "stored_json",
]

"""The error tree of sqlite-cells.

Every error the project raises derives from :class:`SqliteCellsError`, and also from the builtin a
caller would expect, so ``except ValueError`` keeps working for code that does not know us::

    SqliteCellsError(Exception)
    ├── GuardViolation(ValueError)            kind, sql, offset
    ├── SchemaError(ValueError)
    ├── UnsupportedMigration(ValueError)      differences
    ├── LinkEncodeError(ValueError)
    ├── LinkDecodeError(ValueError)
    ├── NoTransaction(RuntimeError)
    ├── ConflictError(RuntimeError)           space_id, cell_ids
    ├── CrossSpaceWrite(RuntimeError)
    ├── TooManyDatabases(RuntimeError)
    ├── ReadAfterWriteUnsupported(RuntimeError)
    ├── PendingValue(RuntimeError)
    ├── ExecError(RuntimeError)               db_id, sql
    ├── MigrationError(RuntimeError)          db_id
    ├── QueryError(RuntimeError)              db_id, sql
    │   └── QueryTimeout(TimeoutError)
    ├── Quarantined(RuntimeError)             db_id, db_seq, space_seq
    ├── DiskSourceError(ValueError)           rule, path
    ├── ReadOnlySource(RuntimeError)
    ├── NotImplementedSource(NotImplementedError)
    └── ClosedError(RuntimeError)

Messages say what was wrong, where, and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence


class SqliteCellsError(Exception):
    """Root of every error raised by sqlite-cells."""


class GuardViolation(SqliteCellsError, ValueError):
    """A statement from user code was refused by the statement guard (R20–R24)."""

    def __init__(self, kind: str, sql: str, offset: int, message: str) -> None:
        self.kind = kind
        self.sql = sql
        self.offset = offset
        super().__init__(f"{kind} at offset {offset}: {message}")


class SchemaError(SqliteCellsError, ValueError):
    """A table declaration breaks R10–R12."""


class UnsupportedMigration(SqliteCellsError, ValueError):
    """The declared schema differs from the stored one in a way that is not additive (R13)."""

    def __init__(self, db_id: str, differences: Sequence[str]) -> None:
        self.db_id = db_id
        self.differences = tuple(differences)
        listed = "; ".join(self.differences)
        super().__init__(
            f"database {db_id}: the declared schema cannot be reached by adding tables, nullable "
            f"columns or indexes: {listed}. Bump version= and pass migrate= to change it."
        )


class LinkEncodeError(SqliteCellsError, ValueError):
    """A value cannot be encoded where a link (or a non-link) was expected (R31)."""


class LinkDecodeError(SqliteCellsError, ValueError):
    """A string or value is not exactly one ``link@1`` sigil (R30)."""


class NoTransaction(SqliteCellsError, RuntimeError):
    """A write was attempted outside a transaction."""


class ConflictError(SqliteCellsError, RuntimeError):
    """A cell read by the transaction changed before it could commit."""

    def __init__(self, space_id: str, cell_ids: Sequence[str]) -> None:
        self.space_id = space_id
        self.cell_ids = tuple(cell_ids)
        super().__init__(
            f"space {space_id!r}: {len(self.cell_ids)} cell(s) read by this transaction changed "
            f"before it committed ({', '.join(self.cell_ids[:3])}…): run it again "
            f"(@sc.handler does so for you)"
        )


class CrossSpaceWrite(SqliteCellsError, RuntimeError):
    """A transaction bound to one space tried to write to another."""


class TooManyDatabases(SqliteCellsError, RuntimeError):
    """A transaction tried to write a second database cell (R33)."""


class ReadAfterWriteUnsupported(SqliteCellsError, RuntimeError):
    """A database was read in a transaction that has a pending write to it (R35)."""


class PendingValue(SqliteCellsError, RuntimeError):
    """A value that is not ready yet (``sc.PENDING`` or a pending query) was used (R31)."""


class ExecError(SqliteCellsError, RuntimeError):
    """SQLite refused a ``db.exec`` statement while the transaction committed (R34)."""

    def __init__(self, db_id: str, sql: str, message: str, *, rolled_back: bool = True) -> None:
        self.db_id = db_id
        self.sql = sql
        outcome = (
            "the whole transaction was rolled back"
            if rolled_back
            else "nothing was recorded and the transaction is still usable"
        )
        super().__init__(f"database {db_id}: {message} in {sql!r}; {outcome}")


class MigrationError(SqliteCellsError, RuntimeError):
    """A ``migrate`` callback raised; the original exception is the cause (R34)."""

    def __init__(self, db_id: str, message: str) -> None:
        self.db_id = db_id
        super().__init__(f"database {db_id}: {message}")


class QueryError(SqliteCellsError, RuntimeError):
    """A read failed (R41)."""

    def __init__(self, db_id: str, sql: str, message: str) -> None:
        self.db_id = db_id
        self.sql = sql
        super().__init__(f"database {db_id}: {message} in {sql!r}")


class QueryTimeout(QueryError, TimeoutError):
    """A read ran past ``query_timeout`` and was interrupted (R44)."""


class Quarantined(SqliteCellsError, RuntimeError):
    """A database disagrees with its space and could not be repaired (R71)."""

    def __init__(self, db_id: str, db_seq: int, space_seq: int) -> None:
        self.db_id = db_id
        self.db_seq = db_seq
        self.space_seq = space_seq
        super().__init__(
            f"database {db_id} is quarantined: its watermark is seq {db_seq} but its space's log "
            f"says {space_seq}, and it could not be repaired; run `sqlite-cells check --repair`"
        )


class DiskSourceError(SqliteCellsError, ValueError):
    """A path given to ``register_disk_source`` breaks a rule of R60."""

    def __init__(self, rule: str, path: str, message: str) -> None:
        self.rule = rule
        self.path = path
        super().__init__(f"{rule}: {path!r}: {message}")


class ReadOnlySource(SqliteCellsError, RuntimeError):
    """A write was attempted on an injected, read-only database (R60)."""


class NotImplementedSource(SqliteCellsError, NotImplementedError):
    """The database's source kind is declared but not supported yet (R62)."""


class ClosedError(SqliteCellsError, RuntimeError):
    """The runtime (or an object of it) was used after ``close()``."""

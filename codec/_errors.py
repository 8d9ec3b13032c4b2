"""The error tree of sqlite-cells.

Every error the project raises derives from :class:`SqliteCellsError`, and also from the builtin a
caller would expect, so ``except ValueError`` keeps working for code that does not know us. The
tree is grouped into families a caller can catch as one::

    SqliteCellsError(Exception)
    ├── StatementError(ValueError)               a statement refused before it ran
    │   └── GuardViolation                       kind, sql, offset
    ├── DeclarationError(ValueError)             a table declaration or schema change refused
    │   ├── SchemaError
    │   └── UnsupportedMigration                 differences
    ├── EncodingError(ValueError)                a value that cannot be stored or read back
    │   ├── LinkEncodeError
    │   ├── LinkDecodeError
    │   ├── ValueEncodeError(TypeError)
    │   └── StoredCellError                      cell_id, path, column, stored
    ├── TransactionError(RuntimeError)           how a transaction was used
    │   ├── NoTransaction
    │   ├── ConflictError                        space_id, cell_ids
    │   ├── CrossSpaceWrite
    │   ├── TooManyDatabases
    │   ├── ReadAfterWriteUnsupported
    │   └── PendingValue
    ├── DatabaseError(RuntimeError)              a database (or space) file and what ran on it
    │   ├── ExecError                            db_id, sql
    │   │   ├── ExecTimeout(TimeoutError)
    │   │   └── ExecArgumentError(TypeError, ValueError)   refused at the call
    │   ├── MigrationError                       db_id
    │   ├── QueryError                           db_id, sql
    │   │   └── QueryTimeout(TimeoutError)
    │   ├── Quarantined                          db_id, db_seq, space_seq
    │   └── StoreChanged                         path
    ├── SourceError                              injected and other sources (R60–R62)
    │   ├── DiskSourceError(ValueError)          rule, path
    │   ├── ReadOnlySource(RuntimeError)
    │   └── NotImplementedSource(NotImplementedError)
    └── ClosedError(RuntimeError)

Messages say what was wrong, where, and what to do next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SqliteCellsError(Exception):
    """Root of every error raised by sqlite-cells.

    Errors pickle (for ``multiprocessing`` and ``concurrent.futures``) whatever their
    constructor's signature: an unpickled error has the same class, message (``args``) and
    attributes, without its constructor running again."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[SqliteCellsError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = _blank(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def _blank(cls: type[SqliteCellsError]) -> Any:
    """An instance of the error class ``cls`` made without its constructor. An ``OSError`` is
    laid out apart from other exceptions, and ``cls.__new__`` of a class that mixes one
    (``TimeoutError``) into a ``RuntimeError`` finds ``RuntimeError``'s, which refuses it."""
    return OSError.__new__(cls) if issubclass(cls, OSError) else cls.__new__(cls)


class StatementError(SqliteCellsError, ValueError):
    """A statement from user code was refused before SQLite ran it."""


class DeclarationError(SqliteCellsError, ValueError):
    """A table declaration, or a change of one, was refused."""


class EncodingError(SqliteCellsError, ValueError):
    """A value cannot be stored as given, or a stored value cannot be read back."""


class TransactionError(SqliteCellsError, RuntimeError):
    """A transaction was used in a way it does not allow; nothing was recorded by that call."""


class DatabaseError(SqliteCellsError, RuntimeError):
    """A database or space file, or a statement run on it, failed."""


class SourceError(SqliteCellsError):
    """An injected or other source of a database cell refused what was asked (R60–R62)."""


class GuardViolation(StatementError):
    """A statement from user code was refused by the statement guard (R20–R24)."""

    def __init__(self, kind: str, sql: str, offset: int, message: str) -> None:
        self.kind = kind
        self.sql = sql
        self.offset = offset
        super().__init__(f"{kind} at offset {offset}: {message}")


class SchemaError(DeclarationError):
    """A table declaration breaks R10–R12."""


class UnsupportedMigration(DeclarationError):
    """The declared schema differs from the stored one in a way that is not additive (R13)."""

    def __init__(
        self,
        db_id: str,
        differences: Sequence[str],
        *,
        advice: str | None = None,
        bumped: tuple[int, int] | None = None,
    ) -> None:
        """``advice`` replaces the usual one (to bump ``version=`` with a ``migrate``) where
        that is not the way out: a file newer than the declaration. ``bumped``: the file's
        version and the declared one, newer, when the declaration gives no ``migrate``: the
        advice then asks for that alone."""
        self.db_id = db_id
        self.differences = tuple(differences)
        listed = "; ".join(self.differences)
        if advice is None:
            if bumped is None:
                todo = "Bump version= and pass migrate= to change it."
            else:
                stored, declared = bumped
                todo = (
                    f"version={declared} is declared without migrate= (the file is at version "
                    f"{stored}): pass migrate=, a function that brings the file from version "
                    f"{stored} to the declared tables."
                )
            super().__init__(
                f"database {db_id}: the declared schema cannot be reached by adding tables, "
                f"nullable columns or indexes: {listed}. {todo}"
            )
        else:
            super().__init__(f"database {db_id}: {listed}. {advice}")


class LinkEncodeError(EncodingError):
    """A value cannot be encoded where a link (or a non-link) was expected (R31). Raised by a
    write, it carries the database's id and the statement (``db_id``, ``sql``) as an
    :class:`ExecError` does; None where no database is concerned (a cell value)."""

    db_id: str | None = None
    sql: str | None = None


class LinkDecodeError(EncodingError):
    """A string or value is not exactly one ``link@1`` sigil (R30)."""


class ValueEncodeError(EncodingError, TypeError):
    """A cell value is not JSON (R6): refused at ``set``, before anything is recorded."""


class StoredCellError(EncodingError):
    """A cell's row in a space file holds what sqlite-cells never writes there — a value that is
    neither JSON bytes nor JSON text, or a rev that is not an integer — so the cell cannot be
    read: the row was written by another program. ``cell_id`` and ``path`` (the space file) say
    where, ``column`` (``"value"`` or ``"rev"``) and ``stored`` (what SQLite returned) what."""

    def __init__(self, cell_id: str, path: str, column: str, stored: Any, message: str) -> None:
        self.cell_id = cell_id
        self.path = path
        self.column = column
        self.stored = stored
        super().__init__(message)


class NoTransaction(TransactionError):
    """A write was attempted outside a transaction."""


class ConflictError(TransactionError):
    """A cell read by the transaction changed before it could commit."""

    def __init__(
        self,
        space_id: str = "",
        cell_ids: Sequence[str] = (),
        *,
        reason: str = "",
        names: Mapping[str, str] | None = None,
    ) -> None:
        if not cell_ids and not reason:
            # Raised by user code to ask for another try (``raise sc.ConflictError("busy")`` in
            # a handler's body): its one argument is its message.
            self.space_id = ""
            self.cell_ids: tuple[str, ...] = ()
            super().__init__(space_id or "a conflict: run it again (@sc.handler does so for you)")
            return
        self.space_id = space_id
        self.cell_ids = tuple(cell_ids)
        # ``reason``: what stood in the way when it was not a changed cell (no cell_ids then).
        what = reason or _changed(self.cell_ids, names or {})
        super().__init__(f"space {space_id!r}: {what}: run it again (@sc.handler does so for you)")


def _changed(cell_ids: tuple[str, ...], names: Mapping[str, str]) -> str:
    """The cells a conflict names: the first three, each as the runtime calls it when it knows
    (``names``: cell id -> "database 'messages'", "cell 'limit'"), and its id whole."""
    shown = [f"{names[i]} ({i})" if i in names else i for i in cell_ids[:3]]
    more = f" and {len(cell_ids) - 3} more" if len(cell_ids) > 3 else ""
    return (
        f"{len(cell_ids)} cell(s) read by this transaction changed before it committed: "
        f"{', '.join(shown)}{more}"
    )


class CrossSpaceWrite(TransactionError):
    """A transaction bound to one space tried to write to another."""


class TooManyDatabases(TransactionError):
    """A transaction tried to write a second database cell (R33)."""


class ReadAfterWriteUnsupported(TransactionError):
    """A database was read in a transaction that has a pending write to it (R35)."""


class PendingValue(TransactionError):
    """A value that is not ready yet (``sc.PENDING`` or a pending query) was used (R31). Raised
    by ``db.exec``, it carries the database's id and the statement (``db_id``, ``sql``); None
    where they are not known."""

    db_id: str | None = None
    sql: str | None = None


_SQL_SHOWN = 200  # characters of a statement a message quotes; the error's ``sql`` keeps it all
_VALUE_SHOWN = 200  # characters of a value's repr a message quotes


def brief_repr(value: object) -> str:
    """``repr(value)`` as an error message shows a value the caller gave: cut to its beginning
    and its length when long, and never raising — Python refuses to print an integer of more
    than 4,300 digits (``sys.get_int_max_str_digits``), and another object's ``__repr__`` may
    raise; either would replace the message with Python's own error."""
    if type(value) is int and value.bit_length() > 4_000:  # (≈ 1,204 digits: past any limit shown)
        return f"<about {int(value.bit_length() * 0.30103):,} digits>"
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__} that cannot be shown"
    if len(text) <= _VALUE_SHOWN:
        return text
    return f"{text[:_VALUE_SHOWN]}… ({len(text):,} characters)"


def _quoted_sql(sql: str) -> str:
    """``sql`` as an error message quotes it: whole when short, else its beginning and its
    length (a statement of megabytes would bury the message; ``.sql`` holds the whole text)."""
    if len(sql) <= _SQL_SHOWN:
        return repr(sql)
    return f"{sql[:_SQL_SHOWN]!r}… ({len(sql):,} characters)"


def of_statement(
    error: LinkEncodeError | PendingValue, db_id: str, sql: str
) -> LinkEncodeError | PendingValue:
    """``error``, refused by a write's call where the database and statement were not known,
    again: of the same class, its message naming them and saying that nothing was recorded,
    carrying ``db_id`` and ``sql`` as an :class:`ExecError` refused at the call does."""
    again: LinkEncodeError | PendingValue = _blank(type(error))
    again.args = (
        f"database {db_id}: {error} in {_quoted_sql(sql)}; nothing was recorded and the "
        "transaction is still usable",
    )
    again.__dict__.update(error.__dict__)
    again.db_id, again.sql = db_id, sql
    return again


class ExecError(DatabaseError):
    """SQLite refused a ``db.exec`` statement while the transaction committed (R34).

    ``db_id`` and ``sql`` say where; ``sqlite_error`` is SQLite's own message (``"UNIQUE
    constraint failed: t.id"``) and ``sqlite_code`` its extended result code (e.g. 2067,
    ``SQLITE_CONSTRAINT_UNIQUE``) when SQLite raised it, else None."""

    def __init__(
        self,
        db_id: str,
        sql: str,
        message: str,
        *,
        rolled_back: bool = True,
        sqlite_error: str | None = None,
        sqlite_code: int | None = None,
        migrated: int | None = None,
    ) -> None:
        self.db_id = db_id
        self.sql = sql
        self.sqlite_error = sqlite_error
        self.sqlite_code = sqlite_code
        self.detail = message
        outcome = (
            "the whole transaction was rolled back"
            if rolled_back
            else "nothing was recorded and the transaction is still usable"
        )
        if migrated is not None:
            # R14: a migration commits in the database file before the write it ran for.
            outcome += (
                f", but not the migration of this database to version {migrated}, which "
                "committed on its own before the write and stays"
            )
        where = f" in {_quoted_sql(sql)}" if sql else ""
        super().__init__(f"database {db_id}: {message}{where}; {outcome}")

    def after_migration(self, version: int) -> ExecError:
        """The same error, of the same class, saying that the migration to ``version`` that
        ran before the write stays (the transaction it failed was rolled back)."""
        again = ExecError.__new__(type(self))
        ExecError.__init__(
            again,
            self.db_id,
            self.sql,
            self.detail,
            sqlite_error=self.sqlite_error,
            sqlite_code=self.sqlite_code,
            migrated=version,
        )
        return again


class ExecTimeout(ExecError, TimeoutError):
    """A write statement ran past ``exec_timeout`` and was interrupted; the commit rolled back
    (R44)."""


class ExecArgumentError(ExecError, TypeError, ValueError):
    """``db.exec``/``exec_many`` parameters that cannot be bound (a value of another type, an
    integer outside SQLite's 64 bits, text with a lone surrogate, the wrong count or shape),
    refused at the call: nothing was recorded and the transaction is still usable (R31). Not
    exported by name: callers catch ``ExecError``, ``ValueError`` or ``TypeError``."""

    def __init__(self, db_id: str, sql: str, message: str) -> None:
        super().__init__(db_id, sql, message, rolled_back=False)


class MigrationError(DatabaseError):
    """A ``migrate`` callback raised; the original exception is the cause (R34)."""

    def __init__(self, db_id: str, message: str) -> None:
        self.db_id = db_id
        super().__init__(f"database {db_id}: {message}")


class QueryError(DatabaseError):
    """A read failed (R41)."""

    def __init__(self, db_id: str, sql: str, message: str) -> None:
        self.db_id = db_id
        self.sql = sql
        super().__init__(f"database {db_id}: {message} in {_quoted_sql(sql)}")

    def for_statement(self, sql: str) -> QueryError:
        """This error said of ``sql``: a read of several statements that failed as a whole (its
        file gone, unopenable) fails each statement with its own text and ``sql``."""
        said = f" in {_quoted_sql(self.sql)}"
        text = str(self)
        if sql == self.sql or not text.endswith(said):
            return self
        other: QueryError = _blank(type(self))
        other.__dict__.update(self.__dict__)
        other.sql = sql
        other.args = (f"{text[: -len(said)]} in {_quoted_sql(sql)}",)
        other.__cause__ = self.__cause__
        return other


class QueryArgumentError(QueryError, TypeError, ValueError):
    """``db.read``/``db.query`` parameters that SQLite cannot bind (a value of another type, an
    integer outside its 64 bits, text with a lone surrogate, a value over the length limit),
    refused at the call. Not exported by name: callers catch ``QueryError``, ``ValueError`` or
    ``TypeError``."""


class QueryTimeout(QueryError, TimeoutError):
    """A read ran past ``query_timeout`` and was interrupted (R44)."""


class WriteLockTimeout(QueryTimeout):
    """A first read waited ``query_timeout`` for its space's write lock, which the repair of its
    file (behind or ahead of its space, R71) needs, while a commit of this runtime or another
    connection (another process's commit) held it: nothing was read (R44). A live query shows it,
    then runs again once the lock is free, as no commit to its database may come to re-run it.
    Not exported by name: callers catch ``QueryTimeout``."""


class Quarantined(DatabaseError):
    """A database disagrees with its space and could not be repaired (R71). ``path`` (its file)
    and ``reason`` (what was found), when known, are named too; a file whose watermark could
    not be read (``db_seq`` 0: missing, damaged, not a file) is described by ``reason`` alone.
    ``transient``: the repair was stopped by what says nothing of the file (a full disk, a
    copy it could not write), and the runtime tries it again at the next use (the ``reason``
    says so), rather than keeping the quarantine until it is opened again."""

    def __init__(
        self,
        db_id: str,
        db_seq: int,
        space_seq: int,
        *,
        path: object = None,
        reason: str = "",
        transient: bool = False,
    ) -> None:
        self.db_id = db_id
        self.db_seq = db_seq
        self.space_seq = space_seq
        self.path = path
        self.reason = reason
        self.transient = transient
        where = f" ({path})" if path is not None else ""
        if db_seq == space_seq:  # (the seqs agree: what was found is the whole story)
            what = f"its watermark and its space's log are both at seq {db_seq}"
        else:
            what = f"its watermark is seq {db_seq} but its space's log says {space_seq}"
        if reason:
            what = reason if db_seq == 0 else f"{what}: {reason}"
        lasting = (
            ""
            if transient
            else " (a runtime that was running when the file was repaired keeps it quarantined "
            "until it is opened again)"
        )
        super().__init__(
            f"database {db_id}{where} is quarantined: {what}; it could not be repaired: "
            f"`sqlite-cells check` says why and what to do{lasting}"
        )


class StoreChanged(DatabaseError):
    """A space or database file was deleted or replaced while a runtime had it open (R73); the
    commit that noticed it committed nothing."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class DiskSourceError(SourceError, ValueError):
    """A path given to ``register_disk_source`` breaks a rule of R60."""

    def __init__(self, rule: str, path: str, message: str) -> None:
        self.rule = rule
        self.path = path
        super().__init__(f"{rule}: {path!r}: {message}")


class ReadOnlySource(SourceError, RuntimeError):
    """A write was attempted on an injected, read-only database (R60)."""


class NotImplementedSource(SourceError, NotImplementedError):
    """The database's source kind is declared but not supported yet (R62)."""


class ClosedError(SqliteCellsError, RuntimeError):
    """The runtime (or an object of it) was used after ``close()``."""

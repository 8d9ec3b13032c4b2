"""Database handle values and the lifecycle of database files: rebuilding a declaration from a
handle after a restart, dropping a database, and collecting files no handle refers to.

A runtime-owned database's handle value is ``{"id", "tables", "rev"}`` (R2), with ``"dropped":
true`` once dropped; an injected file's is ``{"id", "tables": {}, "rev": 0, "source": {"kind":
"disk", "path": …, "pin": [device, inode]}}`` (R60: the pin is the file registered; a
value written before pins were recorded has none).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import apsw
import msgspec

from sqlite_cells.codec import (
    DatabaseError,
    DiskSourceError,
    EncodingError,
    Quarantined,
    SchemaError,
    SqliteCellsError,
    StoredCellError,
    TransactionError,
    UnreadableRecord,
    UnsupportedMigration,
    decode_record,
)
from sqlite_cells.files._damage import quick_check
from sqlite_cells.files._held_files import read_head
from sqlite_cells.files._layout import (
    DROP_KIND,
    REBUILD,
    may_write,
    open_unwritable,
    peek,
    read_as_is,
    stored_json,
)
from sqlite_cells.files._reconcile import (
    Action,
    Outcome,
    UnreadableFile,
    database_seq,
    migrated_past_log,
    rebuild_refusal,
    reconcile,
    recorded_space_id,
    recorded_version,
    remove_database_files,
    schema_from_json,
    table_differences,
    unopenable,
    unreadable_outcome,
)
from sqlite_cells.files._sources import (
    SQLITE_HEADER,
    Pin,
    check_place,
    decode_pin,
    disk_source_id,
    encode_pin,
    validate_disk_source,
)
from sqlite_cells.files._watermark import read_watermark
from sqlite_cells.runtime import (
    BUSY_TIMEOUT_MS,
    FORMAT_VERSION,
    SPACE_FILES,
    TARGET_BYTES,
    harden,
    interrupts_held,
    is_current_format,
    odd_kind,
    op_targets,
    op_targets_by_seq,
    readable_format,
    remove_unused,
    space_file_advice,
    space_file_name,
    space_shape_problem,
    stored_json_column,
    surrogate_at,
    translated,
    upgrade_space_file,
    wait_for_locks,
)
from sqlite_cells.schema import (
    Declaration,
    Schema,
    SchemaTextError,
    SourceKind,
    db_file_name,
    meta_text,
    quote_ident,
    stored_id,
    stored_owner,
    stored_version,
    write_refusal,
)

T = TypeVar("T")

__all__ = [
    "DROP_KIND",
    "KEPT_IN_USE",
    "CheckFinished",
    "DamagedSpace",
    "DatabaseDropped",
    "Garbage",
    "GcPlan",
    "HandleNotWritable",
    "HandleQuarantined",
    "check_handle",
    "check_store",
    "collect_garbage",
    "damaged_spaces",
    "declaration_from_handle",
    "decode_handle",
    "disk_handle_value",
    "dropped_database",
    "dropped_here",
    "find_garbage",
    "gc_plan",
    "handle_not_writable",
    "handle_schema",
    "handle_shaped",
    "handle_value",
    "holds_handle",
    "io_failure",
    "is_dropped",
    "owned_databases",
    "recorded_pin",
    "refused_writes",
    "remember_handle",
    "remove_garbage",
    "source_path",
    "space_damage",
    "unreadable_advice",
    "unreadable_handle",
    "why_kept",
    "write_refused_by_file",
    "writes_refused",
]


def disk_handle_value(decl: Declaration, pin: Pin) -> dict[str, Any]:
    return {
        "id": decl.db_id,
        "tables": {},
        "rev": 0,
        "source": {"kind": SourceKind.DISK.value, "path": str(decl.path), "pin": encode_pin(pin)},
    }


def is_dropped(value: Any) -> bool:
    return isinstance(value, dict) and value.get("dropped") is True


class DatabaseDropped(DatabaseError):
    """A database was used after a commit dropped it (``db.drop()``): it can no longer be read
    or written."""


def dropped_database(db_id: str, decl: Declaration | None = None) -> DatabaseDropped:
    """The error of every use of a database whose handle ``db.drop()`` marked dropped. A
    database ``decl`` declares with no top-level name — built in a pattern, whose id comes from
    the piece — has no name to change where it is declared: the advice says what to change.
    One rebuilt from its handle (``decl.rebuilt``: reached through a link, such as a piece's
    database input) is named by that link too: the advice says to link the new one there."""
    advice = "declare a new one (another name) instead"
    if decl is not None and decl.rebuilt:
        # (Reached through a link to its handle: a top-level database or a pattern's, of this
        # space or another; the link still names the dropped one.)
        advice += (
            ", and link the new one where this one was linked (a piece's database input: "
            "piece.inputs[name].link(db)); the link still names the dropped database"
        )
    elif decl is not None and decl.name is None and decl.kind is SourceKind.CELL:
        advice += (
            "; a database a pattern builds takes its id from the piece and its name (or place) "
            "in the pattern's body, so running the piece again declares the dropped one: give "
            "it a name not used before there, or run the piece with another key"
        )
    return DatabaseDropped(f"database {db_id} was dropped: {advice}")


def dropped_in(space_conn: apsw.Connection, db_id: str) -> bool:
    """Whether the handle of ``db_id`` committed in the space file behind ``space_conn`` (read
    from the file now, not from a runtime's cache, which may not have caught up with another
    process's commits) is dropped; :class:`HandleQuarantined` when its value is no handle (R5).
    Asked before a database's file is made from the log, or where a commit found its file gone:
    a dropped database is never brought back (R74)."""
    row = space_conn.execute(
        f"SELECT {stored_json_column('value')} FROM main._cf_cells WHERE id = ?", (db_id,)
    ).fetchone()
    if row is None:
        return False
    return is_dropped(decode_handle(db_id, stored_json(row[0]) or b""))


def dropped_here(db_id: str) -> TransactionError:
    """The error of a use of a database that the current transaction drops (not committed)."""
    return TransactionError(
        f"database {db_id} is dropped by this transaction (db.drop() earlier in it): nothing "
        "else can be done to it in the same transaction (this call recorded nothing); to keep "
        "the database, do not drop it"
    )


def handle_value(cell_id: str, data: bytes) -> dict[str, Any] | None:
    """The handle value (R2) if the stored JSON ``data`` of cell ``cell_id`` is one, else None
    (see :func:`decode_handle`). Besides ``id``, ``tables`` and ``rev`` a handle may say
    ``"dropped": true`` or name an injected ``source``. The value returned is shared: read it,
    copy it to change it."""
    known = _known.get(cell_id)
    if known is not None and known[0] == data:
        return known[1]  # the handle last seen or written: every write reads it several times
    if b'"tables"' not in data:
        return None  # cheap: most cells are not handles
    try:
        return decode_handle(cell_id, data)
    except HandleQuarantined:
        return None


def decode_handle(db_id: str, data: bytes) -> dict[str, Any]:
    """The handle value stored as ``data`` in the handle cell of ``db_id``, or
    :class:`HandleQuarantined` when it is not one (:func:`check_handle`): the one rule, for
    every path that reaches a database (R5). Shared like :func:`handle_value`'s."""
    known = _known.get(db_id)
    if known is not None and known[0] == data:
        return known[1]
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply to read
        raise HandleQuarantined(db_id, data) from None
    handle = check_handle(db_id, value)
    remember_handle(db_id, data, handle)
    return handle


def unwritten_handle(decl: Declaration) -> dict[str, Any]:
    """The handle value a database reads until its first write (R2, R32): its declared
    tables, rev 0. It is the handle cell's default (R4), and no other default is (R5)."""
    tables = decl.schema.to_json() if decl.schema is not None else {}
    return {"id": decl.db_id, "tables": tables, "rev": 0}


def handle_shaped(cell_id: str, data: bytes) -> bool:
    """Whether the stored ``data`` of cell ``cell_id`` has the shape of that cell's handle
    (``{"id": cell_id, "tables": {…}, "rev": n}``), whether or not its tables declare anything
    (:func:`check_handle`): no ``Cell`` writes such a cell or makes one (R3, R5); a handle that
    quarantines its database stays one."""
    if handle_value(cell_id, data) is not None:
        return True
    if b'"tables"' not in data:
        return False
    try:
        return _shaped(cell_id, msgspec.json.decode(data))
    except (msgspec.DecodeError, RecursionError):
        return False


# The newest handle value seen per database id, with its stored bytes (bounded: oldest out).
_known: dict[str, tuple[bytes, dict[str, Any]]] = {}
_known_lock = threading.Lock()  # guards evictions from _known (lookups need no lock)
_KNOWN_SIZE = 256


def remember_handle(db_id: str, data: bytes, handle: dict[str, Any]) -> None:
    """Let ``handle_value(db_id, data)`` answer ``handle`` without decoding (the writer calls it
    with the handle it just encoded). ``handle`` must be what decoding ``data`` gives."""
    with _known_lock:
        if db_id not in _known and len(_known) >= _KNOWN_SIZE:
            _known.pop(next(iter(_known)), None)
        _known[db_id] = (data, handle)


class HandleNotWritable(TransactionError, TypeError):
    """A write to a database handle other than through ``db.exec``/``exec_many``/``drop``
    (R5): ``set``, ``update`` and ``key`` on a ``SqliteDb``, or ``set`` on any ``Cell`` of a
    handle's id."""


def handle_not_writable(db_id: str, why: str | None = None) -> HandleNotWritable:
    if why is not None:
        return HandleNotWritable(f"cell {db_id} cannot be set to this value (R3): {why}")
    return HandleNotWritable(
        f"database {db_id} is not a writable cell (R5): write rows with db.exec(...) or "
        "db.exec_many(...) inside a transaction, or delete it with db.drop()"
    )


class HandleQuarantined(Quarantined):
    """A database whose handle cell holds a value that is not a handle (R5): written by an older
    or foreign program. It is never treated as "no handle"; its queries and writes fail.
    ``why``, when given, says what is wrong with the stored row instead of its value."""

    def __init__(self, db_id: str, value: Any, why: str | None = None) -> None:
        if why is None:
            why = (
                f"its handle cell holds {_shown(value)}, which is not a database handle "
                '{"id", "tables", "rev"} (written by an older or foreign program, or set '
                "through a link to the cell by a runtime that did not know it as a database, "
                "before the database's first write)"
            )
        DatabaseError.__init__(
            self,
            f"database {db_id} is quarantined: {why}; its file, if it has one, is kept: restore "
            "the handle value from a backup (a copy of the space file made before that value "
            "was written; `sqlite-cells check --repair` cannot rebuild it, and `sqlite-cells "
            "check` lists each database so quarantined); a database never written lost "
            "nothing: declare it under another name",
        )
        self.db_id = db_id
        self.db_seq = 0
        self.space_seq = 0
        self.path = None  # (the handle is wrong, not the file: no file is named)
        self.reason = why
        self.transient = False


def _shown(value: Any) -> str:
    """A stored handle value as a message shows it: the JSON the store holds (its bytes as
    text), not a Python literal; cut to a readable length."""
    if isinstance(value, bytes):
        shown = value.decode("utf-8", "backslashreplace")
    else:
        try:
            shown = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):  # (not a JSON value: decoded from no JSON the store holds)
            shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def unreadable_handle(db_id: str, data: bytes | None, exc: EncodingError) -> HandleQuarantined:
    """The error for a handle cell whose stored value could not be read (R5): ``data``, its
    stored bytes when they were read (they do not decode), or ``exc`` a
    :class:`StoredCellError` (a row another program wrote). Never "no handle", never an
    encoding error of a cell the caller did not name."""
    if isinstance(exc, StoredCellError):
        if exc.column == "rev":
            return HandleQuarantined(
                db_id,
                exc.stored,
                why=f"its handle cell's row in {exc.path} has the revision {exc.stored!r}, "
                "which is not an integer (written by another program)",
            )
        return HandleQuarantined(db_id, exc.stored)
    return HandleQuarantined(db_id, data)


def check_handle(db_id: str, value: Any) -> dict[str, Any]:
    """``value`` (a decoded handle cell value) if it is the handle of ``db_id``, else
    :class:`HandleQuarantined` (R5): its shape (``id``, ``tables``, ``rev``) and, for a database
    the runtime owns, ``tables`` that decode as a declaration (R10–R12)."""
    if not _shaped(db_id, value):
        raise HandleQuarantined(db_id, value)
    if "source" not in value:
        handle_schema(db_id, value)
    elif source_path(value) is None:
        # Only an injected file is ever recorded as a source: anything else there is not one,
        # and never the runtime's own database with no tables.
        raise HandleQuarantined(
            db_id,
            value,
            why=f"its handle names the source {_shown(value['source'])}, which is not an "
            "injected file (written by an older or foreign program)",
        )
    return value  # type: ignore[no-any-return]  # a dict, as _shaped says


# How each of `check`'s details about a database's handle value (not its file) begins.
HANDLE_FINDING: Final = "its handle "


def foreign_source(db_id: str, space_id: str | None, value: Any) -> str | None:
    """Why the handle value ``value`` of ``db_id`` (a database of space ``space_id``) names an
    injected file that is not its own (R5, R60), or None. An injected file's handle id derives
    from its space and the path it records (``disk_source_id``), and a database the runtime owns
    derives its id from its name: a ``source`` written into a runtime-owned database's handle by
    another program makes a value that is not this database's handle, never a way to point it
    at a file (R3)."""
    path = source_path(value) if isinstance(value, dict) else None
    if path is None or space_id is None or disk_source_id(space_id, path) == db_id:
        return None
    return (
        f"its handle names the injected file {str(path)!r}, but registering that file gives "
        "another handle id: the value of another database's handle, or one written by another "
        "program"
    )


def check_foreign_source(db_id: str, space_id: str, value: Any) -> None:
    """:class:`HandleQuarantined` when the handle value ``value`` of ``db_id`` names an injected
    file that is not its own (:func:`foreign_source`)."""
    why = foreign_source(db_id, space_id, value)
    if why is not None:
        raise HandleQuarantined(db_id, value, why=why)


def holds_handle(db_id: str, value: Any) -> bool:
    """Whether the decoded ``value`` of cell ``db_id`` is its database's handle, perhaps one
    that quarantines it: a handle's whole shape (see :func:`handle_shaped`: no plain cell holds
    one, R3), or an injected file's handle gone wrong (its ``rev`` no count, its ``tables`` no
    mapping), known by its own id, ``tables`` and the ``source`` only a registration writes
    (R5: never "no handle")."""
    return _shaped(db_id, value) or (
        isinstance(value, dict)
        and value.get("id") == db_id
        and "tables" in value
        and "source" in value
    )


def _shaped(db_id: str, value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("id") == db_id
        and isinstance(value.get("tables"), dict)
        and type(value.get("rev")) is int
        # A count of commits, one more at the next write: never negative, and still an SQLite
        # integer after that write (R6).
        and 0 <= value["rev"] < _MAX_REV
    )


_MAX_REV = 2**63 - 1


def handle_schema(db_id: str, value: dict[str, Any]) -> Schema:
    """The declaration the ``tables`` of handle value ``value`` make, or
    :class:`HandleQuarantined` when they do not make one (R5): tables another program wrote
    are never served, nor reported as the caller's own ``SchemaError``."""
    try:
        key = msgspec.json.encode(value["tables"])
    except (TypeError, ValueError) as exc:  # not JSON through and through (a link decoded)
        raise HandleQuarantined(db_id, value, why=_undeclarable(exc)) from exc
    found = _schemas.get(key)
    if found is None:
        try:
            found = schema_from_json(value["tables"])
        except SchemaError as exc:
            raise HandleQuarantined(db_id, value, why=_undeclarable(exc)) from exc
        with _known_lock:
            if len(_schemas) >= _KNOWN_SIZE:
                _schemas.pop(next(iter(_schemas)), None)
            _schemas[key] = found
    return found


def _undeclarable(exc: Exception) -> str:
    return (
        f"its handle cell's tables do not declare tables ({exc}), so it was written by an older "
        "or foreign program"
    )


# Schemas of the handle tables already decoded, by their JSON bytes (bounded: oldest out; the
# check builds the tables in SQLite, so each distinct declaration is judged once).
_schemas: dict[bytes, Schema] = {}


def recorded_pin(value: Any) -> Pin | None:
    """The pin a decoded handle value of an injected file records (R60), or None (not such a
    value, no pin, or one that does not decode)."""
    source = value.get("source") if isinstance(value, dict) else None
    if not isinstance(source, dict) or source.get("kind") != SourceKind.DISK.value:
        return None
    if "pin" not in source:
        return None
    try:
        return decode_pin(source["pin"], Path(str(source.get("path"))))
    except DiskSourceError:
        return None


def source_path(handle: dict[str, Any]) -> Path | None:
    """The injected file a handle names (R60), or None for a database the runtime owns."""
    source = handle.get("source")
    if isinstance(source, dict) and source.get("kind") == SourceKind.DISK.value:
        path = source.get("path")
        return Path(path) if isinstance(path, str) else None
    return None


def owned_databases(conn: apsw.Connection) -> list[str]:
    """Ids of the live (not dropped), runtime-owned databases whose handles the space behind
    ``conn`` holds."""
    found = []
    for cell_id, data in conn.execute(
        f"SELECT id, {stored_json_column('value')} FROM _cf_cells "
        "WHERE instr(value, '\"tables\"') > 0"
    ):
        value = handle_value(cell_id, stored_json(data) or b"")
        if value is not None and not is_dropped(value) and source_path(value) is None:
            found.append(str(cell_id))
    return found


def declaration_from_handle(
    value: Any,
    db_id: str,
    space_id: str,
    *,
    store: Path,
    roots: Sequence[str | os.PathLike[str]] | None,
) -> Declaration:
    """Rebuild what a runtime knows of a database from its committed handle value. An injected
    file is checked against R60 again, and its id must be the one derived from its path, so a
    forged handle value gains nothing ``register_disk_source`` would not give; a pin it records
    must decode (the caller makes it its pin of the handle, ``Pins.adopt``, R60)."""
    check_handle(db_id, value)  # a handle of db_id, or HandleQuarantined (R5)
    path = source_path(value)
    if path is not None:
        source = value["source"]
        try:
            resolved = validate_disk_source(str(path), store=store, roots=roots)
        except DiskSourceError as exc:
            # A file registered, then gone — or something that is no regular file put in its
            # place (a directory, a named pipe): its reads say so, as a QueryError (R60: a file
            # that disappears later), as they do in the runtime that registered it, and read
            # the file again once it is back — the path is the one registered (the id derives
            # from it) and stays checked: nothing is read until a file is there, and only the
            # file pinned.
            gone = exc.rule == "exists" and not os.path.lexists(path)
            # (a link that loops fails to resolve: "exists")
            replaced = exc.rule in ("exists", "regular-file") and odd_kind(path) is not None
            if not (gone or replaced) or not path.is_absolute():
                raise
            try:
                check_place(str(path), path, store=store, roots=roots)
            except DiskSourceError:
                raise exc from None
            resolved = path
        if disk_source_id(space_id, resolved) != db_id:
            raise SqliteCellsError(
                f"handle {db_id} names {resolved}, whose handle id differs: register the file "
                "again with register_disk_source()"
            )
        # No "pin" at all: written before pins were recorded (R73), pinned at its first read.
        if "pin" in source:
            decode_pin(source["pin"], resolved)
        return Declaration(db_id, space_id, resolved, None, kind=SourceKind.DISK)
    schema = handle_schema(db_id, value)
    path = store / db_file_name(db_id)
    version = _handle_version(store / space_file_name(space_id), path, db_id)
    return Declaration(db_id, space_id, path, schema, version=version, rebuilt=True)


def _handle_version(space_file: Path, path: Path, db_id: str) -> int:
    """The version of the declaration a handle records: the file's (:func:`_file_version`),
    unless the space's last write to the database recorded an older one. A ``migrate`` then
    ran since and stays though the write it ran for failed (R14): the handle's tables are
    still the older version's, and taken at the file's version they would read the file as
    one not yet migrated to them, a column the migration renamed or dropped made up as NULL
    on every row (R41). At the recorded version the file is newer: it reads as it is, and a
    statement naming what it no longer has fails saying both versions."""
    found = _file_version(path, db_id)
    recorded = peek(space_file, lambda conn: recorded_version(conn, db_id))
    return recorded if recorded is not None and 1 <= recorded < found else found


def _file_version(path: Path, db_id: str) -> int:
    """The version the database file at ``path`` stores (R14), which a runtime that did not
    declare the database takes as its own: its handle records none, and declared at version 1
    such a runtime could never write a file a ``migrate`` took further. 1 (the default) when
    the file has none, or cannot be read at once (its writes then say what is wrong)."""
    found = peek(path, lambda conn: stored_version(conn, "main", db_id))
    return found if found is not None and found >= 1 else 1


@dataclass(frozen=True, slots=True)
class Garbage:
    """A database file gc may remove (R74): one a dropped handle gave up (``dropped``: removed
    whatever it holds, with its -wal and -shm; or such a companion it left without the file, a
    :class:`Stray`), one no space names that held no commit when it was listed, or the
    unfinished rebuild of a damaged file (``rebuild``: a ``check --repair`` stopped before its
    end left it; the database is rebuilt from its space's log, so it holds nothing else)."""

    path: Path
    dropped: bool
    rebuild: bool = False
    # The id of the database whose file it is, when a space names it (a dropped database's,
    # or the one an unfinished rebuild was for); None for a file no space names.
    db_id: str | None = None


# The files SQLite writes beside a database file: gc lists one left without its file (a stray).
COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class Stray:
    """A ``cell-*.sqlite-wal``, ``-shm`` or ``-journal`` with no database file beside it (its
    file was removed or moved without it): SQLite reads a -wal only beside its own file, and
    deletes it when a new, empty file of that name is opened. gc removes one whose database
    was dropped, with the rest of that database's files; it keeps any other (a -wal may hold
    rows a user wants), and gc and ``inspect`` list it (:func:`strays`)."""

    path: Path
    # The database whose file it belongs beside, when a space names it (None: none does).
    db_id: str | None = None

    @property
    def suffix(self) -> str:
        return next(s for s in COMPANION_SUFFIXES if self.path.name.endswith(s))


def database_of(companion: Path) -> Path:
    """The database file a -wal, -shm or -journal ``companion`` belongs beside (the path
    itself when it is none of those)."""
    for suffix in COMPANION_SUFFIXES:
        if companion.name.endswith(suffix):
            return companion.with_name(companion.name.removesuffix(suffix))
    return companion


def _strays(store: Path, ids: dict[str, str]) -> list[Stray]:
    """The store's strays (see :class:`Stray`), in name order; ``ids``: database file name ->
    the id of the database a space names by it."""
    found = [
        p
        for suffix in COMPANION_SUFFIXES
        for p in _files_named(store, f"cell-*.sqlite{suffix}")
        if not os.path.lexists(database_of(p))
    ]
    return [Stray(p, ids.get(database_of(p).name)) for p in sorted(found)]


def strays(store: Path) -> list[Stray]:
    """The strays gc keeps (:class:`Stray`): all but those of dropped databases, which gc
    lists to remove (:func:`find_garbage`); all of them while a space file is damaged (it may
    name any, with a live handle)."""
    store = Path(store)
    with translated(f"the store {store}"):
        return _kept_strays(store, _store_names(store))


def _kept_strays(store: Path, names: tuple[set[str], set[str], list[DamagedSpace]]) -> list[Stray]:
    given_up, ids = _given_up(names)
    return [s for s in _strays(store, ids) if database_of(s.path).name not in given_up]


def _given_up(
    names: tuple[set[str], set[str], list[DamagedSpace]],
) -> tuple[set[str], dict[str, str]]:
    """The database file names a drop gave up (none while a space file is damaged: it may name
    any with a live handle), and each named file's database id, from :func:`_store_names`."""
    named, dropped, damaged = names
    given_up = set() if damaged else {db_file_name(cell_id) for cell_id in dropped}
    return given_up, {db_file_name(cell_id): cell_id for cell_id in named | dropped}


KEPT_IN_USE = (
    "kept: another connection has it open or a commit reached it since it was listed (a first "
    "write to a new database may be running); run gc again once no runtime is writing it"
)


def why_kept(path: Path) -> str:
    """Why :func:`remove_garbage` kept the unused file ``path`` (it says no more than that): a
    file this user may not read, or in a folder it may not write, is kept for that
    permission; a file it may not write, which a WAL file must be for the check that no
    connection has it open, for that; any other for :data:`KEPT_IN_USE`."""
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK) or not os.access(path, os.R_OK):
        return (
            f"{os.strerror(errno.EACCES)}: this user may not remove it (it needs to read the "
            f"file and to write {folder}); run gc as a user who may"
        )
    try:
        wal = read_head(path, 20)[18:20] == b"\x02\x02"
    except OSError:
        wal = False
    if wal and not os.access(path, os.W_OK):
        return (
            f"{os.strerror(errno.EACCES)}: this user may not write it, and gc must, to make sure "
            "no connection has a WAL file open before it removes it: make it writable "
            "(chmod u+w), then run gc again"
        )
    return KEPT_IN_USE


def find_garbage(store: Path) -> list[Garbage]:
    """The ``cell-*.sqlite`` files of ``store`` that gc may remove (R74), nothing removed.

    A file is kept if any cell id of any space — in any commit record ever, in the current
    cells, or as an op target — derives its name, whatever that cell holds now (a handle value
    that does not decode still protects its file, R5); a handle whose current value says it
    was dropped with ``db.drop()`` gives its file up. A file no space names is listed only when
    it holds no commit (a first write that never committed, or one still running: see
    :func:`remove_garbage`): one holding commits belongs to a space the store no longer holds
    (its space file lost or replaced), and is kept — ``check`` reports it (:func:`orphans`).
    Only regular files are listed. While a space file is damaged (:func:`damaged_spaces`) no
    file is listed: it may name any, with a live handle (two spaces may hold one id, and one's
    drop is not the other's). A space file
    that cannot be read for another reason makes gc refuse (``DatabaseError``): it never
    guesses."""
    store = Path(store)
    with translated(f"the store {store}"):
        return _garbage(store, _store_names(store))


@dataclass(frozen=True, slots=True)
class GcPlan:
    """What gc finds in a store, from one reading of its space files: the files it may remove
    (:func:`find_garbage`), the files no readable space names that it keeps, each with its
    watermark (0: no commit; None: it cannot be read as a database) — none while a space file
    is damaged —, those of them another connection held when gc read them (``in_use``: their
    watermark says nothing of them; a new database's first write may be under way, which names
    the file in its space as it commits, R74), and the damaged space files
    (:func:`damaged_spaces`)."""

    garbage: list[Garbage]
    kept: list[tuple[Path, int | None]]
    damaged: list[DamagedSpace]
    in_use: frozenset[Path] = frozenset()
    strays: tuple[Stray, ...] = ()  # the strays it keeps (:func:`strays`)


def gc_plan(store: Path) -> GcPlan:
    """:class:`GcPlan` of ``store``, nothing removed."""
    store = Path(store)
    with translated(f"the store {store}"):
        names = _store_names(store)
        busy: set[Path] = set()  # the files a read of gc's found held by another connection
        garbage = _garbage(store, names, busy)
        listed = {g.path for g in garbage}
        damaged = names[2]
        kept = [] if damaged else _orphans(store, names[0], every=True, busy=busy)
        kept = [(p, mark) for p, mark in kept if p not in listed]
        in_use = frozenset(p for p, _ in kept if p in busy)
        return GcPlan(garbage, kept, damaged, in_use, tuple(_kept_strays(store, names)))


def _garbage(
    store: Path,
    names: tuple[set[str], set[str], list[DamagedSpace]],
    busy: set[Path] | None = None,
) -> list[Garbage]:
    named, dropped, damaged = names
    # (``dropped``: ids no readable space names with a live handle, see _store_names.)
    # While a space file cannot be read, it may name any file with a live handle: a drop
    # elsewhere gives up none.
    protected = {db_file_name(cell_id) for cell_id in named - dropped}
    given_up, ids = _given_up(names)
    # What a dropped database left without its file (a removal by an older version cut
    # short, or the file moved away) is given up with it.
    left = [
        Garbage(stray.path, True, db_id=stray.db_id)
        for stray in _strays(store, ids)
        if database_of(stray.path).name in given_up
    ]
    found = [
        Garbage(p, p.name in given_up, db_id=ids.get(p.name))
        for p in _database_files(store)
        if p.name in given_up
        or (not damaged and p.name not in protected and _answer(p, holds_nothing, busy) is True)
    ] + [
        Garbage(p, False, rebuild=True, db_id=ids.get(p.name.removesuffix(REBUILD)))
        for p in _files_named(store, f"cell-*.sqlite{REBUILD}")
    ]
    return found + left


def holds_nothing(conn: apsw.Connection) -> bool:
    """Whether the database file behind ``conn``, which no space names, holds nothing gc may
    not remove: no commit of a runtime (watermark 0: a first write that never committed, or
    one still running, whose schema and rows are in its one transaction) and no row in a
    table of its own (another program's file under a database file's name is kept: its rows
    are nobody's to delete; the runtime's ``_cf_`` tables hold no user's rows). A table SQLite
    cannot read (a virtual table of a module it lacks) counts as holding rows. Bytes that do
    not begin as an SQLite database does are no database of ours, whatever SQLite makes of them
    (it reads a file of one byte as an empty database): kept."""
    if not _begins_as_a_database(conn.db_filename("main")):
        return False
    if read_watermark(conn) != 0:
        return False
    tables = conn.execute(
        # (`substr … =` compares case by case: `_CF_notes` is not one of the runtime's tables.)
        "SELECT name FROM main.sqlite_schema WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' AND substr(name, 1, 4) != '_cf_'"
    ).fetchall()
    for (name,) in tables:
        try:
            found = conn.execute(f"SELECT 1 FROM main.{quote_ident(str(name))} LIMIT 1")
            if found.fetchall():
                return False
        except apsw.Error:
            return False
    return True


def _begins_as_a_database(path: str) -> bool:
    """Whether the file at ``path`` is empty (a first write's, not begun yet) or begins with
    SQLite's header."""
    try:
        start = read_head(Path(path), len(SQLITE_HEADER))
    except OSError:
        return False
    return start in (b"", SQLITE_HEADER)


def remove_garbage(found: Garbage) -> bool:
    """Remove a file :func:`find_garbage` listed, with its -wal/-shm; True if removed, False if
    it was kept (:data:`KEPT_IN_USE`). Raises ``OSError`` when a dropped database's file
    cannot be unlinked.

    A dropped database's file is removed as it is: no write reaches a dropped handle. A file
    no space names is the one a new database's first write creates before its commit names it
    (R74, R73: removing it then would acknowledge that commit into an unlinked file). It is
    removed only by :func:`sqlite_cells.runtime.remove_unused`: when no connection of any
    process has it open — the writer keeps it attached, with its shared lock, from before its
    first statement to past its commit — and, under an exclusive lock, it is still the file at
    the path and still holds no commit."""
    if found.dropped:  # (a stray of a dropped database: with whatever else is left of it)
        remove_database_files(database_of(found.path))
        return True
    if found.rebuild:  # (not while a repair still writes it: it has it open)
        return remove_unused(found.path, lambda _conn: True)
    return remove_unused(found.path, holds_nothing)


def collect_garbage(store: Path, *, remove: bool = False) -> list[Path]:
    """The files :func:`find_garbage` lists, or with ``remove`` those :func:`remove_garbage`
    removed (what ``space.gc()`` runs; the CLI lists first and removes with ``gc --yes``)."""
    found = find_garbage(store)
    if not remove:
        return [g.path for g in found]
    with translated(f"the store {store}"):
        return [g.path for g in found if remove_garbage(g)]


def orphans(store: Path, busy: set[Path] | None = None) -> list[tuple[Path, int | None]]:
    """The store's database files that no space names but that hold commits (their watermark;
    None when the file cannot be read): their space file is missing or was replaced. gc keeps
    them; ``check`` reports them. ``busy`` gains those of them another connection held all
    through the wait (their watermark None: nothing is known of them, see ``IN_USE_UNNAMED``)."""
    store = Path(store)
    with translated(f"the store {store}"):
        return _orphans(store, _store_names(store)[0], busy=busy)


@dataclass(frozen=True, slots=True)
class DamagedSpace:
    """A space file SQLite cannot read (corrupt pages, not a database): the source of truth of
    its space, so nothing in the store can rebuild it. It is reported and kept as found.
    ``unreadable``: SQLite could not open it for a reason that says nothing of its contents
    (this user's permissions, an I/O error: :func:`_space_unreadable`); then its advice is
    :func:`unreadable_advice`, not a restore."""

    path: Path
    reason: str  # what SQLite said
    unreadable: bool = False

    @property
    def advice(self) -> str:
        return unreadable_advice(self.reason) if self.unreadable else space_file_advice(self.reason)


UNREADABLE_SPACE_ADVICE = (
    "nothing of it was read or changed: let this user read and write the space file, its -wal "
    "and -shm and their folder (SQLite writes a -shm beside a file it reads), then run the "
    "command again; meanwhile `sqlite-cells gc` removes no database file it may name"
)
IO_ERROR_SPACE_ADVICE = (
    "nothing of it was read or changed: the file system refused a read or a write — a full "
    "disk, a file size limit, a failing device (SQLite writes a -shm beside a file it reads): "
    "free space or check the disk, then run the command again; meanwhile `sqlite-cells gc` "
    "removes no database file it may name"
)


def io_failure(reason: str) -> bool:
    """Whether SQLite's ``reason`` for not opening a file is an I/O error (a full disk, a
    failing device), not this user's permissions."""
    return "I/O error" in reason


def unreadable_advice(reason: str) -> str:
    """What to do about a space file SQLite could not open for ``reason``."""
    return IO_ERROR_SPACE_ADVICE if io_failure(reason) else UNREADABLE_SPACE_ADVICE


def _listed_problem(path: Path, exc: DatabaseError | UnreadableRecord) -> DamagedSpace | None:
    """What to report of the space file ``path``, listed a moment ago, that reading failed with
    ``exc``: nothing when it is gone now (a space's failed first commit removes the file it
    made, R7, and a store is read while runtimes use it: it never held a commit), else its
    :func:`space_problem`; ``exc`` itself is raised when it says no such problem."""
    if not os.path.lexists(path):
        return None
    problem = space_problem(path, exc)
    if problem is None:
        raise exc
    return problem


def space_problem(path: Path, exc: BaseException) -> DamagedSpace | None:
    """The space file ``path`` as reading it failed with ``exc``: damaged
    (:func:`space_damage`), unreadable by this user (:func:`_space_unreadable`), or None when
    ``exc`` says neither (a lock, a full disk: the caller raises it)."""
    reason = space_damage(exc)
    if reason is not None:
        return DamagedSpace(path, reason)
    reason = _space_unreadable(path, exc)
    return None if reason is None else DamagedSpace(path, reason, unreadable=True)


def _space_unreadable(path: Path, exc: BaseException) -> str | None:
    """What SQLite said when it could not open the space file ``path`` (``exc``, or the error
    it was translated from) for a reason that says nothing of its contents — this user's
    permissions, an I/O error, a process out of files — else None (damage, a lock: see
    :func:`space_damage`)."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else exc
    if isinstance(cause, apsw.CantOpenError | apsw.PermissionsError | apsw.IOError) and (
        not unopenable(path, cause)
    ):
        return str(cause)
    return None


class NotASpaceFile(DatabaseError):
    """A file named like a space file is an SQLite database without a space's tables (another
    program's file): reported as a space file that cannot be read, never written."""


def _require_space_tables(conn: apsw.Connection, space_file: Path) -> None:
    names = frozenset(str(name) for (name,) in conn.execute("SELECT name FROM sqlite_schema"))
    problem = space_shape_problem(conn, names)
    if problem is not None:
        raise NotASpaceFile(problem)
    problem = foreign_owner(conn, space_file)
    if problem is not None:
        raise NotASpaceFile(problem)


def foreign_owner(conn: apsw.Connection, space_file: Path) -> str | None:
    """What to say of the space file ``space_file`` (open as ``conn``, which holds a
    ``_cf_meta`` table) when the space id it records is not the one its name is for — another
    space's file under this name (copied over it, or two files swapped) — else None. The
    runtime refuses to open such a file as the space its name is for, and what it names is not
    this space's either: every command that reads a space file refuses it with this. (Text that
    is not UTF-8, another program's row, is said where it is read.)"""
    owner = meta_text(conn, "_cf_meta", "space_id")
    if owner is None or space_file_name(owner) == space_file.name:
        return None
    return (
        f"the file of space {owner!r} under another space's file name (copied over it?): "
        "move it aside, or put back the file that belongs there"
    )


def space_damage(exc: BaseException) -> str | None:
    """What SQLite said when ``exc`` (or the error it was translated from) says a file is
    damaged — corrupt pages, not a database at all, or another program's database under a
    space file's name — else None (a lock, a full disk, a permission: not damage)."""
    for found in (exc, exc.__cause__):
        if isinstance(found, apsw.CorruptError | apsw.NotADBError | NotASpaceFile):
            return str(found)
        if isinstance(found, UnreadableRecord):  # damage SQLite reads without an error
            return found.reason
    return None


def damaged_spaces(store: Path) -> list[DamagedSpace]:
    """The space files of ``store`` that cannot be read for damage (read as gc reads them)."""
    store = Path(store)
    with translated(f"the store {store}"):
        return _store_names(store)[2]


# What is said of a database file no space names yet that another connection held while it was
# read: no more can be known of it then (`check`, `inspect`, `gc`).
IN_USE_UNNAMED: Final = (
    "no space names it yet, and another connection held it while it was read: it may be a new "
    "database's first write under way, which names it in its space as it commits; nothing of "
    "it was decided or changed: look again once that write is done"
)


def _orphans(
    store: Path, named: set[str], *, every: bool = False, busy: set[Path] | None = None
) -> list[tuple[Path, int | None]]:
    """The database files no name in ``named`` (read from the space files before) names and
    that hold commits (``every``: and those that hold none). A database's first write may have
    committed since those names were read: its space file commits before it (SQLite commits a
    transaction's files in order, ``main`` first), so names read again after a file's watermark
    hold its id if a space wrote it. ``busy`` gains the files another connection held (see
    :func:`_answer`)."""
    known = {db_file_name(cell_id) for cell_id in named}
    found = []
    for path in _database_files(store):
        if path.name not in known:
            seq = _commits_in(path, busy)
            if seq != 0 or every:
                found.append((path, seq))
    if found:
        known |= {db_file_name(cell_id) for cell_id in _store_names(store)[0]}
        found = [(path, seq) for path, seq in found if path.name not in known]
    return found


def space_files(store: Path) -> list[Path]:
    """The store's space files, blank ones left out: a file with no schema at all is what a
    first commit cut short by a crash can leave (the file is made, then filled by the commit).
    It holds nothing; the space's next commit fills it."""
    return [p for p in _named_as(Path(store), SPACE_FILES) if not _blank(p)]


def _named_as(store: Path, pattern: str) -> list[Path]:
    """The entries of ``store`` whose names match ``pattern``, in name order, without those
    whose name is not valid text (an undecodable byte): SQLite opens files by their UTF-8
    names, and the runtime names its files in hex, so such a name is none of its files."""
    return [p for p in sorted(store.glob(pattern)) if surrogate_at(p.name) is None]


def _blank(path: Path) -> bool:
    if not path.is_file():
        return True  # not a file: nothing of ours to read
    tables = _answer(
        path, lambda conn: conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    )
    return bool(tables == (0,))  # unreadable (None): the caller says what is wrong with it


def _database_files(store: Path) -> list[Path]:
    return _files_named(store, "cell-*.sqlite")


def _files_named(store: Path, pattern: str) -> list[Path]:
    # Only files: something else under a database file's name (a directory, a symbolic link —
    # to a file or to nothing: the runtime never makes one) is not ours to judge, and is left
    # where it is.
    return [p for p in _named_as(store, pattern) if p.is_file() and not p.is_symlink()]


def _commits_in(path: Path, busy: set[Path] | None = None) -> int | None:
    """The watermark of a database file (0: it never held a commit), or None when it cannot
    be read as a database — then nobody can tell, and it is treated as holding data."""
    return _answer(path, read_watermark, busy)


def _answer(
    path: Path, ask: Callable[[apsw.Connection], T], busy: set[Path] | None = None
) -> T | None:
    """``ask``'s answer on a read-only connection to ``path``, or None when the file cannot be
    opened or read as a database. ``busy`` gains ``path`` when that was because another
    connection held the file past the lock wait (a write under way: the file may be readable
    the next time)."""
    try:
        conn = _open_read_only(path)
        try:
            return ask(conn)
        finally:
            conn.close()
    except apsw.Error as exc:
        if busy is not None and isinstance(exc, apsw.BusyError | apsw.LockedError):
            busy.add(path)
        return None


def _store_names(
    store: Path, locked: list[Outcome] | None = None
) -> tuple[set[str], set[str], list[DamagedSpace]]:
    """(every cell id any readable space of the store ever held, those whose handle is dropped
    in every space that holds them — two spaces may hold one id, a pattern's database declared
    in another space than its piece's, and one's drop is not the other's —, the space files
    that cannot be read for damage). With ``locked``, a space file another program holds
    locked all through the wait is added to it (:func:`_space_locked`) and left out; any other
    failure is raised."""
    named: set[str] = set()
    dropped: set[str] = set()
    kept: set[str] = set()  # ids some space holds and did not drop
    damaged: list[DamagedSpace] = []
    for entry in _named_as(store, SPACE_FILES):
        kind = odd_kind(entry)  # never opened: a named pipe would block SQLite for ever
        if kind is not None:
            damaged.append(DamagedSpace(entry, f"{kind} stands where a space file belongs"))
    for space_file in space_files(store):
        here: set[str] = set()
        dropped_here: set[str] = set()
        try:
            _names_in_space(space_file, here, dropped_here)
        except (DatabaseError, UnreadableRecord) as exc:
            held = _space_locked(space_file, exc) if locked is not None else None
            if held is not None and locked is not None:
                locked.append(held)
                continue
            problem = _listed_problem(space_file, exc)
            if problem is not None:
                damaged.append(problem)
            continue
        named |= here
        dropped |= dropped_here
        kept |= here - dropped_here
    return named, dropped - kept, damaged


def _names_in_space(space_file: Path, named: set[str], dropped: set[str]) -> None:
    """Add to ``named`` every cell id the space file ever held, and to ``dropped`` those whose
    current value is a dropped handle: the current cells, the log's records, and the ids that
    only compacted history named (``_cf_named``). Read-only, in one read transaction."""
    with translated(f"space file {space_file}"):
        conn = _open_read_only(space_file)
        try:
            _require_space_tables(conn, space_file)
            conn.execute("BEGIN")
            # Pages SQLite reads without an error can still be damaged: rows of NULLs where
            # the ids gc must keep were (R74: nothing is removed on what such a file says).
            problem = quick_check(conn)
            if problem is not None:
                raise apsw.CorruptError(problem)
            # A newer format may name files in ways this version cannot read (R73, R74).
            readable_format(conn, space_file)
            for cell_id, data in conn.execute(
                f"SELECT id, {stored_json_column('value')} FROM _cf_cells"
            ):
                named.add(str(cell_id))
                value = handle_value(str(cell_id), stored_json(data) or b"")
                if value is not None and is_dropped(value):
                    dropped.add(str(cell_id))
            for seq, data in conn.execute(
                f"SELECT seq, {stored_json_column('record')} FROM _cf_log"
            ):
                record = decode_record(data, where=f"of seq {seq} in space file {space_file}")
                named.update(w.id for w in record.writes)
                named.update(op.target for op in record.ops)
            if _has_table(conn, "_cf_named"):  # format 3 on; older logs were never compacted
                named.update(str(i) for (i,) in conn.execute("SELECT id FROM _cf_named"))
            conn.execute("COMMIT")
        finally:
            conn.close()


def _has_table(conn: apsw.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (name,)).fetchone()
    return found is not None


def _open_read_only(path: Path) -> apsw.Connection:
    conn = open_unwritable(path)
    wait_for_locks(conn, BUSY_TIMEOUT_MS)
    return conn


def _check_into(
    outcomes: list[Outcome],
    store: Path,
    space_file: Path,
    pending: _Pending,
    *,
    repair: bool,
    verify: bool,
    lost: str | None = None,
) -> None:
    """:func:`_check_space`, its outcomes added to ``outcomes`` once it is through — and those
    made before a Ctrl-C that stops it (what was repaired before it), or before its space file
    stayed locked, before that goes on. A space file's other errors (``DatabaseError``,
    ``UnreadableRecord``) add none and are raised."""
    checked: list[Outcome] = []
    try:
        pending.due()
        _check_space(store, space_file, checked, pending, repair=repair, verify=verify, lost=lost)
    except (KeyboardInterrupt, _StayedLocked):
        outcomes.extend(checked)  # (the space's lock stops the rest of it: see _reconciled)
        raise
    outcomes.extend(checked)


def check_store(
    store: Path, *, repair: bool, verify: bool = True, found: list[Outcome] | None = None
) -> list[Outcome]:
    """Run :func:`reconcile` for every runtime-owned database of every space in ``store`` (what
    ``sqlite-cells check`` does), with SQLite's integrity check on each file (``verify``).

    Without ``repair`` every file is opened read-only and nothing is created or written. With
    ``repair`` a space file of an older store format is upgraded first (R73). A database whose
    handle cell holds something that is not a handle is reported as quarantined (R5). Injected
    and dropped databases are skipped. A database file that holds commits but that no space
    names (:func:`orphans`) is reported as orphaned: kept as found, never repaired. A space file
    that cannot be read for damage is reported (``Action.SPACE_DAMAGED``, its path and what
    SQLite said), one this user may not open likewise (``Action.SPACE_UNREADABLE``), and the
    rest of the store is checked all the same; nothing of it is written. A space file another
    program holds locked all through the wait stops the check of its space alone
    (``Action.SPACE_LOCKED``): the outcomes of its databases looked at before are kept, and the
    other spaces are checked (and repaired) all the same.

    ``found``: the list the outcomes are added to as they are made (and which is returned), so
    that a caller stopped by Ctrl-C knows what was repaired before it (SPEC §6). With
    ``repair``, Ctrl-C is held back while one database is looked at and repaired, until its
    outcome is in ``found``: a repair is never made without being reported."""
    store = Path(store)
    outcomes = found if found is not None else []
    pending = _Pending()
    with translated(f"the store {store}"):
        for space_file in space_files(store):
            try:
                _check_into(outcomes, store, space_file, pending, repair=repair, verify=verify)
            except (DatabaseError, UnreadableRecord) as exc:
                held = _space_locked(space_file, exc)
                if held is not None:
                    outcomes.append(held)
                    continue
                problem = _listed_problem(space_file, exc)
                if problem is not None:
                    outcomes.append(_damaged_space(problem))
        locked: list[Outcome] = []
        named, _dropped, damaged = _store_names(store, locked)
    reported = {o.path for o in outcomes}
    outcomes.extend(_damaged_space(d) for d in damaged if d.path not in reported)
    outcomes.extend(o for o in locked if o.path not in reported)
    # A database file of a space that could not be read is no orphan: none is looked for then.
    busy: set[Path] = set()
    for path, seq in _orphans(store, named, busy=busy) if not locked else ():
        if path in busy:
            # Held by another connection all through the wait: nothing said of it (R74: a new
            # database's file exists before its first commit names it in its space).
            outcomes.append(Outcome(path.stem, path, 0, 0, Action.LOCKED, detail=IN_USE_UNNAMED))
            continue
        if path in reported:
            # Compared with its space above, whose file the look for names then found damaged
            # elsewhere (SQLite's check of the whole file): reported once, as that look said.
            continue
        lost = _first_write_lost(store, path)
        if lost is not None:
            # The file says whose database it is: checked against that space as a runtime
            # declaring it does (R71: the space lost the commit that named it, e.g. restored
            # from a copy taken before; one commit ahead is that commit in flight, undone).
            space_file, db_id = lost
            try:
                _check_into(
                    outcomes, store, space_file, pending, repair=repair, verify=verify, lost=db_id
                )
            except (DatabaseError, UnreadableRecord):
                pass  # its space file's problem is reported above: the file is kept as found
            else:
                continue
        shown = "cannot be read" if seq is None else f"holds commits up to seq {seq}"
        outcomes.append(
            Outcome(
                path.stem,
                path,
                seq or 0,
                0,
                Action.ORPHANED,
                detail=(
                    f"the file {shown} but no readable space of the store names it: the space "
                    "file that wrote it is missing, was emptied or replaced, or is damaged"
                ),
            )
        )
    if pending.interrupt is not None:
        raise CheckFinished from pending.interrupt
    return outcomes


class CheckFinished(KeyboardInterrupt):
    """Ctrl-C that :func:`check_store` held back while it repaired its last database: every
    database was looked at, and the interrupt is delivered as the check ends (a Ctrl-C raised
    as such, a plain ``KeyboardInterrupt``, left some unchecked)."""


class _Pending:
    """A Ctrl-C held back during one database's repair, delivered (:meth:`due`) as the next
    database's look begins — or, when none is left, as :class:`CheckFinished`."""

    __slots__ = ("interrupt",)

    def __init__(self) -> None:
        self.interrupt: KeyboardInterrupt | None = None

    def due(self) -> None:
        if self.interrupt is not None:
            raise self.interrupt

    @contextmanager
    def held(self, repair: bool, conn: apsw.Connection) -> Iterator[None]:
        """One database looked at (and, with ``repair``, repaired) with Ctrl-C held back (see
        :func:`check_store`): one that came meanwhile is kept for :meth:`due`. The wait for
        the write lock of the space behind ``conn``, which another program may hold for long,
        comes first, where a Ctrl-C ends it at once: nothing is written while it waits."""
        self.due()
        if not repair:
            yield
            return
        _space_lock_free(conn)
        try:
            with interrupts_held():
                yield
        except KeyboardInterrupt as exc:  # delivered as the hold ended: its outcome is added
            self.interrupt = exc


def _space_lock_free(conn: apsw.Connection) -> None:
    """Wait (as ``conn``'s busy handler says) until no other connection holds the write lock
    of its space file, taking it and letting it go at once. A lock that stays held is left for
    the look that follows to report (its wait then gives up at once under the command line's
    limits, see ``lock_waits``)."""
    if not conn.getautocommit():
        return  # (a transaction of the caller's own: its lock is taken already)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except (apsw.BusyError, apsw.LockedError):
        return
    conn.execute("ROLLBACK")


def _space_locked(space_file: Path, exc: DatabaseError | UnreadableRecord) -> Outcome | None:
    """The outcome of the space file ``space_file`` whose check ``exc`` ended because another
    program held it locked all through the wait (``Action.SPACE_LOCKED``: the outcomes of its
    databases checked before it are kept); None when ``exc`` says something else."""
    if not isinstance(exc, _StayedLocked) and not isinstance(
        exc.__cause__, apsw.BusyError | apsw.LockedError
    ):
        return None
    return Outcome(space_file.stem, space_file, 0, 0, Action.SPACE_LOCKED, detail=str(exc))


def _damaged_space(space: DamagedSpace) -> Outcome:
    action = Action.SPACE_UNREADABLE if space.unreadable else Action.SPACE_DAMAGED
    return Outcome(space.path.stem, space.path, 0, 0, action, detail=space.reason)


def _first_write_lost(store: Path, path: Path) -> tuple[Path, str] | None:
    """For a database file no space names: the file of the space it records as its own and the
    database id it records, when both are recorded, the id names this file and that space's
    file is in the store (its log lost the commit that first wrote the database); else None."""
    found = _answer(path, lambda conn: (stored_owner(conn), stored_id(conn)))
    owner, db_id = found if found is not None else (None, None)
    if owner is None or db_id is None:
        return None
    space_file = store / space_file_name(owner)
    if db_file_name(db_id) != path.name or not space_file.is_file():
        return None
    return space_file, db_id


def _check_space(
    store: Path,
    space_file: Path,
    outcomes: list[Outcome],
    pending: _Pending,
    *,
    repair: bool,
    verify: bool,
    lost: str | None = None,
) -> None:
    """Add to ``outcomes`` those of the databases of the space file ``space_file``; with
    ``lost``, of that database alone, whose handle the space's log does not hold
    (:func:`_first_write_lost`). While ``repair`` looks at and repairs one database, Ctrl-C is
    held back until its outcome is added (see :func:`check_store`)."""
    # A space file this user may not write is looked at as `check` does: nothing of it can be
    # repaired, and opening it to write would leave a -wal and -shm behind (see read_as_is);
    # likewise a database file (its outcome says what a repair would do, with advice to run it
    # as a user who may).
    repair = repair and may_write(space_file) and not read_as_is(space_file)
    with translated(f"space file {space_file}"):
        if repair:
            conn = harden(apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READWRITE))
            wait_for_locks(conn, BUSY_TIMEOUT_MS)
            try:
                _require_space_tables(conn, space_file)  # another program's file: left as is
                _upgrade(conn, space_file)
            except BaseException:
                conn.close()
                raise
        else:
            conn = _open_read_only(space_file)
        try:
            _require_space_tables(conn, space_file)
            readable_format(conn, space_file)  # never repaired by a version that cannot read it
            if lost is not None:
                path = store / db_file_name(lost)
                with pending.held(repair, conn):
                    outcomes.append(
                        _reconciled(conn, lost, path, space_file, repair=repair, verify=verify)
                    )
                return
            written = _written_databases(conn)
            for db_id in sorted(written):
                with pending.held(repair, conn):
                    _check_database(store, conn, db_id, space_file, outcomes, repair, verify)
        finally:
            conn.close()


def _check_database(
    store: Path,
    conn: apsw.Connection,
    db_id: str,
    space_file: Path,
    outcomes: list[Outcome],
    repair: bool,
    verify: bool,
) -> None:
    """Add the outcome of the database ``db_id`` of the space behind ``conn`` to ``outcomes``."""
    path = store / db_file_name(db_id)
    row = conn.execute(
        f"SELECT {stored_json_column('value')}, rev FROM _cf_cells WHERE id = ?",
        (db_id,),
    ).fetchone()
    stored, rev = row if row is not None else (None, 0)
    data = stored_json(stored)
    value = handle_value(db_id, data) if data is not None else None
    foreign = foreign_source(db_id, recorded_space_id(conn), value)
    if value is None:
        outcomes.append(_bad_handle(db_id, path, database_seq(conn, db_id), stored))
    elif type(rev) is not int:  # as a runtime refuses it (StoredCellError)
        last = database_seq(conn, db_id)
        outcomes.append(_bad_handle(db_id, path, last, rev, "revision"))
    elif foreign is not None:  # as a runtime refuses it (R5)
        last = database_seq(conn, db_id)
        outcomes.append(Outcome(db_id, path, 0, last, Action.QUARANTINED, detail=foreign))
    elif not is_dropped(value) and source_path(value) is None:
        outcome = _reconciled(conn, db_id, path, space_file, repair=repair, verify=verify)
        if outcome.action is Action.IN_SYNC:
            outcome = writes_refused(outcome, value["tables"], space_file)
        outcomes.append(outcome)


def _reconciled(
    conn: apsw.Connection, db_id: str, path: Path, space_file: Path, *, repair: bool, verify: bool
) -> Outcome:
    """:func:`reconcile` of ``db_id`` against the space behind ``conn`` (of ``space_file``);
    a file that cannot be opened is reported (the other databases are checked)."""
    try:
        return reconcile(conn, db_id, path, repair=repair and may_write(path), verify=verify)
    except UnreadableFile as exc:
        return unreadable_outcome(db_id, path, database_seq(conn, db_id), exc)
    except (apsw.BusyError, apsw.LockedError) as exc:
        locked = _stayed_locked(db_id, path, space_file, exc)
        if locked.held != path:
            # The space file: none of its databases can be checked, and the check of this
            # space stops there (check_store reports it, and checks the other spaces).
            raise locked from exc
        # This database's file alone: a finding, and the space's other databases are checked
        # (and repaired) all the same.
        return Outcome(db_id, path, 0, database_seq(conn, db_id), Action.LOCKED, detail=str(locked))


def writes_refused(outcome: Outcome, tables: dict[str, Any], space_file: Path) -> Outcome:
    """``outcome``, of a database in sync with its space (``space_file``), as
    ``Action.WRITES_REFUSED`` when its file holds what its handle's declaration (``tables``)
    does not, in ways no write adds (a table or a trigger another program added): its rows agree
    with its space and are read, but a write first brings the file to the declaration and
    refuses it with these differences (``UnsupportedMigration``, R13), as the finding says it
    (:func:`refused_writes`). Read only."""
    why = _answer(
        outcome.path, lambda conn: refused_writes(conn, outcome.db_id, tables, space_file)
    )
    if why is None:
        return outcome
    # Whether moving the file out for a rebuild would work (the advice says it only if so).
    refusal = _answer(
        space_file, lambda conn: rebuild_refusal(conn, outcome.db_id, outcome.space_seq)
    )
    return replace(outcome, action=Action.WRITES_REFUSED, detail=why, rebuild_refusal=refusal or "")


def refused_writes(
    conn: apsw.Connection, db_id: str, tables: dict[str, Any], space_file: Path
) -> str | None:
    """Why every write of database ``db_id`` is refused when its file, open as ``conn``, holds
    what its handle's declaration (``tables``) does not, in ways no write adds: the write's
    own message (``UnsupportedMigration``, R13); None when its file holds nothing such, or when
    a ``migrate`` brought it past the declaration its space's last write recorded (read from
    ``space_file``, only then): it then holds the newer declaration's tables, which its next
    write brings (R14: a migration stays though the write it ran for failed)."""
    differences = table_differences(conn, tables)
    if not differences or _answer(
        space_file, lambda space_conn: migrated_past_log(space_conn, conn, db_id)
    ):
        return None
    return str(UnsupportedMigration(db_id, differences))


def write_refused_by_file(decl: Declaration) -> str | None:
    """Why the next write of the database declared as ``decl`` would be refused by its file
    as it stands — the write's own message (``UnsupportedMigration``: a file another program
    made, a version newer than the declared one, tables no write adds) — read without writing
    or waiting; None when the file finds none, is not there yet, or cannot be read at once (a
    write then says what is wrong)."""
    schema = decl.schema
    if schema is None:
        return None

    def refusal(conn: apsw.Connection) -> str | None:
        try:
            found = write_refusal(conn, "main", schema, db_id=decl.db_id, version=decl.version)
        except (SchemaError, SchemaTextError) as exc:
            return str(exc)
        return None if found is None else str(found)

    return peek(decl.path, refusal)


class _StayedLocked(DatabaseError):
    """A check of a database that waited in vain for a lock; ``held``: the file held."""

    def __init__(self, message: str, held: Path) -> None:
        super().__init__(message)
        self.held = held


def _stayed_locked(db_id: str, path: Path, space_file: Path, exc: apsw.Error) -> _StayedLocked:
    """The error for a check of ``db_id`` that waited in vain for a lock, naming the file held
    and how: the database file when a read or a write of it cannot begin now, else its space
    file."""
    how = _held_elsewhere(path)
    held = path if how is not None else space_file
    return _StayedLocked(
        f"{held} stayed locked by another connection ({exc}) while database {db_id} was "
        f"checked (a program holding it in {how or 'a transaction'})",
        held,
    )


def _held_elsewhere(path: Path) -> str | None:
    """How another connection holds ``path`` now: in an exclusive transaction (no read of it
    can begin), in a write transaction (no write can begin), or None. The probe of a write
    begins one and ends it, changing nothing."""
    try:
        conn = open_unwritable(path)
    except (SqliteCellsError, apsw.Error):
        return None
    try:
        for how, probe in (
            ("an exclusive transaction", "SELECT count(*) FROM sqlite_schema"),
            ("a write transaction", "PRAGMA query_only = 0; BEGIN IMMEDIATE; ROLLBACK"),
        ):
            try:
                conn.execute(probe).fetchall()
            except (apsw.BusyError, apsw.LockedError):
                return how
            if conn.readonly("main"):
                return None  # opened read-only: no write to probe
    except apsw.Error:
        return None
    finally:
        conn.close()
    return None


def _written_databases(conn: apsw.Connection) -> set[str]:
    """Ids of the databases the space's log shows written, and of the live handles it holds."""
    found = set(owned_databases(conn))
    if is_current_format(conn):
        found.update(
            t
            for t, _ in op_targets(
                conn.execute(f"SELECT DISTINCT {TARGET_BYTES} FROM _cf_op_index")
            )
        )
    else:
        found.update(target for target, _ in op_targets_by_seq(conn))
    return found


def _bad_handle(
    db_id: str, path: Path, space_seq: int, stored: object, column: str = "value"
) -> Outcome:
    """The outcome for a database whose handle cell holds no handle (R5); ``space_seq``: the
    last commit of the space's log that wrote it (the handle's own ``rev`` cannot be read)."""
    shown = "nothing" if stored is None else _shown(stored)
    detail = (
        f"its handle cell holds {shown}, which is not a database handle (R5)"
        if column == "value"
        else f"its handle cell has the revision {shown}, which is not an integer (R5)"
    )
    return Outcome(db_id, path, 0, space_seq, Action.QUARANTINED, detail=detail)


def _upgrade(conn: apsw.Connection, space_file: Path) -> None:
    """Bring a space file of an older store format to the current one (R73), in one
    transaction; a no-op for a current file. A newer one is refused (R73)."""
    if readable_format(conn, space_file) in (None, FORMAT_VERSION):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        upgrade_space_file(conn, space_file)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

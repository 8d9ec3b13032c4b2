"""Database handle values and the lifecycle of database files: rebuilding a declaration from a
handle after a restart, dropping a database, and collecting files no handle refers to.

A runtime-owned database's handle value is ``{"id", "tables", "rev"}`` (R2), with ``"dropped":
true`` once dropped; an injected file's is ``{"id", "tables": {}, "rev": 0, "source": {"kind":
"disk", "path": …}}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw
import msgspec

from sqlite_cells.codec import SqliteCellsError
from sqlite_cells.files._reconcile import BUSY_TIMEOUT_MS, Outcome, reconcile, schema_from_json
from sqlite_cells.files._sources import disk_source_id, validate_disk_source
from sqlite_cells.runtime import SpaceFile
from sqlite_cells.schema import Declaration, SourceKind, db_file_name

__all__ = [
    "DROP_KIND",
    "check_store",
    "collect_garbage",
    "declaration_from_handle",
    "disk_handle_value",
    "handle_value",
    "is_dropped",
    "owned_databases",
    "remove_database_files",
    "source_path",
]

DROP_KIND = "sqlite-drop"


def disk_handle_value(decl: Declaration) -> dict[str, Any]:
    return {
        "id": decl.db_id,
        "tables": {},
        "rev": 0,
        "source": {"kind": SourceKind.DISK.value, "path": str(decl.path)},
    }


def is_dropped(value: Any) -> bool:
    return isinstance(value, dict) and value.get("dropped") is True


def handle_value(cell_id: str, data: bytes) -> dict[str, Any] | None:
    """The handle value (R2) if the stored JSON ``data`` of cell ``cell_id`` is one, else None.
    Besides ``id``, ``tables`` and ``rev`` a handle may say ``"dropped": true`` or name an
    injected ``source``."""
    if b'"tables"' not in data:
        return None  # cheap: most cells are not handles
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    if (
        isinstance(value, dict)
        and {"id", "tables", "rev"} <= set(value)
        and value["id"] == cell_id
        and isinstance(value["tables"], dict)
        and isinstance(value["rev"], int)
    ):
        return value
    return None


def source_path(handle: dict[str, Any]) -> Path | None:
    """The injected file a handle names (R60), or None for a database the runtime owns."""
    source = handle.get("source")
    if isinstance(source, dict) and source.get("kind") == SourceKind.DISK.value:
        return Path(str(source.get("path")))
    return None


def owned_databases(conn: apsw.Connection) -> list[str]:
    """Ids of the live (not dropped), runtime-owned databases whose handles the space behind
    ``conn`` holds."""
    found = []
    for cell_id, data in conn.execute(
        "SELECT id, value FROM _cf_cells WHERE instr(value, '\"tables\"') > 0"
    ):
        value = handle_value(cell_id, bytes(data))
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
    forged handle value gains nothing ``register_disk_source`` would not give."""
    if not isinstance(value, dict) or value.get("id") != db_id or "tables" not in value:
        raise SqliteCellsError(
            f"cell {db_id} does not hold a database handle (its value is {value!r}): link a "
            "handle returned by sqlite_database() or register_disk_source()"
        )
    source = value.get("source")
    if isinstance(source, dict) and source.get("kind") == SourceKind.DISK.value:
        resolved = validate_disk_source(str(source.get("path")), store=store, roots=roots)
        if disk_source_id(space_id, resolved) != db_id:
            raise SqliteCellsError(
                f"handle {db_id} names {resolved}, whose handle id differs: register the file "
                "again with register_disk_source()"
            )
        return Declaration(db_id, space_id, resolved, None, kind=SourceKind.DISK)
    schema = schema_from_json(value["tables"])
    return Declaration(db_id, space_id, store / db_file_name(db_id), schema)


def remove_database_files(path: Path) -> bool:
    """Delete a database file and its -wal and -shm; True if the file existed."""
    existed = path.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


def collect_garbage(store: Path) -> list[Path]:
    """Remove ``cell-*.sqlite`` files that no live handle of any space in ``store`` refers to.
    Run it while no runtime is writing a first row to a new database (whose file exists a moment
    before its handle is committed)."""
    referenced: set[str] = set()
    for space_file in sorted(store.glob("space-*.sqlite")):
        conn = apsw.Connection(str(space_file), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            referenced.update(db_file_name(db_id) for db_id in owned_databases(conn))
        finally:
            conn.close()
    removed = []
    for path in sorted(store.glob("cell-*.sqlite")):
        if path.name not in referenced and remove_database_files(path):
            removed.append(path)
    return removed


def check_store(store: Path, *, repair: bool) -> list[Outcome]:
    """Run :func:`reconcile` for every runtime-owned database of every space in ``store`` (what
    ``sqlite-cells check`` does). Injected and dropped databases are skipped."""
    outcomes = []
    for space_file in sorted(store.glob("space-*.sqlite")):
        conn = apsw.Connection(str(space_file))
        conn.setbusytimeout(BUSY_TIMEOUT_MS)
        try:
            for db_id in owned_databases(conn):
                if SpaceFile.last_seq_for(conn, db_id):  # ever written
                    path = store / db_file_name(db_id)
                    outcomes.append(reconcile(conn, db_id, path, repair=repair))
        finally:
            conn.close()
    return outcomes

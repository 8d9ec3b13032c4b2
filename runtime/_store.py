"""Where a runtime keeps its files (SPEC §2: Store).

A store is a directory holding one SQLite file per space (``space-<hash>.sqlite``) and one sibling
file per database cell (``cell-<hash>.sqlite``, written by ``sqlite_cells``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlite_cells.codec import short_hash
from sqlite_cells.runtime._boundary import StorePathError, describe

__all__ = ["DEFAULT_STORE", "STORE_ENV", "resolve_store", "space_file_name"]

STORE_ENV = "SQLITE_CELLS_STORE"
DEFAULT_STORE = ".sqlite-cells"


def resolve_store(store: str | os.PathLike[str] | None) -> Path:
    """The store directory: ``store`` if given, else ``$SQLITE_CELLS_STORE``, else
    ``./.sqlite-cells/``. Created if missing; always returned resolved (absolute, no links).

    Raises ``StorePathError`` (a ``SqliteCellsError`` and ``ValueError``) for an empty path, a
    path that is a file, or a directory that cannot be created."""
    if store is None:
        store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    if not isinstance(store, str | os.PathLike) or not os.fspath(store):
        raise StorePathError(
            f"a store is a directory path, not {store!r}: pass a path, or None for the default "
            f"(${STORE_ENV} or ./{DEFAULT_STORE})"
        )
    path = Path(store).expanduser()
    if path.exists() and not path.is_dir():
        raise StorePathError(
            f"the store {path} is a file, not a directory: give the directory that holds the "
            "space-*.sqlite files (or a path where one may be created)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise StorePathError(describe(exc, f"the store {path}")) from exc


def space_file_name(space_id: str) -> str:
    return f"space-{short_hash(space_id)}.sqlite"

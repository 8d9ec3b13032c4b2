"""Where a runtime keeps its files (SPEC §2: Store).

A store is a directory holding one SQLite file per space (``space-<hash>.sqlite``) and one sibling
file per database cell (``cell-<hash>.sqlite``, written by ``sqlite_cells``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlite_cells.codec import short_hash

__all__ = ["DEFAULT_STORE", "STORE_ENV", "resolve_store", "space_file_name"]

STORE_ENV = "SQLITE_CELLS_STORE"
DEFAULT_STORE = ".sqlite-cells"


def resolve_store(store: str | os.PathLike[str] | None) -> Path:
    """The store directory: ``store`` if given, else ``$SQLITE_CELLS_STORE``, else
    ``./.sqlite-cells/``. Created if missing; always returned resolved (absolute, no links)."""
    if store is None:
        store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    path = Path(store).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def space_file_name(space_id: str) -> str:
    return f"space-{short_hash(space_id)}.sqlite"

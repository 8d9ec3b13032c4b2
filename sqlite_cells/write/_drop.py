"""``db.drop()``: the ``sqlite-drop`` commit participant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import apsw

from sqlite_cells.codec import Op
from sqlite_cells.files import DROP_KIND, attached, detach, remove_database_files
from sqlite_cells.runtime import Transaction
from sqlite_cells.schema import Declaration

__all__ = ["DropParticipant"]


class DropParticipant:
    """Applies ``sqlite-drop`` ops: the handle was rewritten as dropped in the same commit; the
    file is detached before the commit and removed once it is durable (no reader is then handed
    the file: the pool's idle connections to it are closed first)."""

    kind = DROP_KIND

    def __init__(
        self, lookup: Callable[[str], Declaration], *, forget: Callable[[Path], None]
    ) -> None:
        self._lookup = lookup
        self._forget = forget  # closes the read pool's idle connections to a file

    def prepare(self, conn: apsw.Connection, ops: Sequence[Op]) -> None:
        paths = {str(self._lookup(op.target).path) for op in ops}
        if attached(conn) in paths:
            detach(conn)

    def apply(self, conn: apsw.Connection, op: Op, seq: int, tx: Transaction) -> Op:
        return op

    def committed(self, ops: Sequence[Op], seq: int) -> None:
        for op in ops:
            path = self._lookup(op.target).path
            self._forget(path)
            remove_database_files(path)

    def commit_failed(self, ops: Sequence[Op], exc: BaseException) -> None:
        """Nothing was removed; the handle's drop was rolled back with the commit."""

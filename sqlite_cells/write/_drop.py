"""``db.drop()``: the ``sqlite-drop`` commit participant."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import apsw

from sqlite_cells.codec import Op, SqliteCellsError
from sqlite_cells.files import DROP_KIND, attached, detach, remove_database_files
from sqlite_cells.runtime import PendingOp
from sqlite_cells.schema import Declaration

__all__ = ["DropParticipant"]


def _decl(op: PendingOp) -> Declaration:
    if not isinstance(op.payload, Declaration):
        raise SqliteCellsError(
            f"a {DROP_KIND} op on {op.target} carries no declaration: record it with db.drop()"
        )
    return op.payload


class DropParticipant:
    """Applies ``sqlite-drop`` ops (payload: the dropped database's declaration): the handle was
    rewritten as dropped in the same commit; the file is detached before the commit and removed
    once it is durable (no reader is then handed the file: the pool's idle connections to it are
    closed first)."""

    kind = DROP_KIND

    def __init__(self, *, forget: Callable[[Path], None]) -> None:
        self._forget = forget  # closes the read pool's idle connections to a file

    def prepare(self, conn: apsw.Connection, ops: Sequence[PendingOp]) -> None:
        paths = {str(_decl(op).path) for op in ops}
        if attached(conn) in paths:
            detach(conn)

    def cell_writes(
        self, conn: apsw.Connection, ops: Sequence[PendingOp], writes: Mapping[str, bytes]
    ) -> Mapping[str, bytes]:
        return {}  # the handle's "dropped" mark is an ordinary write of the transaction

    def apply(self, conn: apsw.Connection, op: PendingOp, seq: int) -> Op:
        return Op(op.kind, op.target)

    def committed(self, ops: Sequence[PendingOp], seq: int) -> None:
        for op in ops:
            path = _decl(op).path
            self._forget(path)
            remove_database_files(path)

    def commit_failed(self, ops: Sequence[PendingOp], exc: BaseException) -> None:
        """Nothing was removed; the handle's drop was rolled back with the commit."""

"""``db.drop()``: the ``sqlite-drop`` commit participant."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import apsw

from sqlite_cells.codec import Op, SqliteCellsError
from sqlite_cells.files import DROP_KIND, attached, detach
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
    rewritten as dropped in the same commit; the file is detached before the commit, and once it
    is durable the read pool lets go of it. The file itself stays where it is: a drop is the first
    of the two requests R74 asks for before anything is deleted; ``gc`` lists the file from then
    on and removes it with ``--yes`` (``space.gc()``), the second."""

    kind = DROP_KIND
    # Nothing writes a dropped database again: compaction lets go of its older records (R74
    # still finds the handle, dropped, in the cells; reconcile never replays a dropped file).
    ends_target = True

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
            self._forget(_decl(op).path)

    def commit_failed(self, ops: Sequence[PendingOp], exc: BaseException) -> None:
        """Nothing was removed; the handle's drop was rolled back with the commit."""

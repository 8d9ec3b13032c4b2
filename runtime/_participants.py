"""The extension point for other kinds of commit operation.

``runtime`` knows nothing of SQL written by users; ``sqlite_cells`` plugs its ``sqlite`` op in here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import apsw

from sqlite_cells.codec import Op

if TYPE_CHECKING:
    from sqlite_cells.runtime._tx import PendingOp

__all__ = ["CommitParticipant"]


class CommitParticipant(Protocol):
    """Applies one kind of op inside the commit's SQLite transaction.

    A transaction records pending ops (:class:`~sqlite_cells.runtime.PendingOp`: kind, target, the
    participant's own payload). Call order, for one commit of one space, all under the space's
    write lock, each hook receiving the participant's pending ops in the order recorded:

    1. ``prepare(conn, ops)`` *before* ``BEGIN IMMEDIATE``: the place for what SQLite forbids
       inside a transaction (``ATTACH``, ``journal_mode``) and for work on other connections.
       Raising aborts the commit before anything is written.
    2. ``BEGIN IMMEDIATE`` on the space's write connection; read revisions are validated.
    3. ``cell_writes(conn, ops, writes)``: cell values the participant writes in this commit,
       computed from the committed state read through ``conn`` (and ``writes``, the transaction's
       own pending cell writes): e.g. a revision counter bumped at commit, so that transactions
       that only append never conflict. They are written with the transaction's cells (and win
       over them) and kept in the commit record.
    4. ``apply(conn, op, seq)`` for each op of the transaction, in the order recorded, after the
       cell writes. It returns the :class:`~sqlite_cells.codec.Op` kept in the commit record.
       Raising at 3 or 4 rolls back the whole commit, cells included, and the exception reaches
       the caller as it is.
    5. The commit record is written and ``COMMIT`` runs. If ``COMMIT`` itself raises,
       ``commit_failed(ops, exc)`` is called for every participant that applied an op, before the
       error reaches the caller; it must not raise. If it succeeds, ``committed(ops, seq)`` is
       called (it must not raise either).

    Optional: ``ends_target = True`` on a participant whose op is the last its target ever has
    (e.g. a drop: nothing applies an op to that target after it). Log compaction then keeps,
    of a target whose newest op is one of these, only that op's record, instead of the newest
    records a target keeps for replay; the ids go to ``_cf_named`` as for any removed record.
    """

    @property
    def kind(self) -> str: ...

    def prepare(self, conn: apsw.Connection, ops: Sequence[PendingOp]) -> None: ...

    def cell_writes(
        self, conn: apsw.Connection, ops: Sequence[PendingOp], writes: Mapping[str, bytes]
    ) -> Mapping[str, bytes]: ...

    def apply(self, conn: apsw.Connection, op: PendingOp, seq: int) -> Op: ...

    def committed(self, ops: Sequence[PendingOp], seq: int) -> None: ...

    def commit_failed(self, ops: Sequence[PendingOp], exc: BaseException) -> None: ...

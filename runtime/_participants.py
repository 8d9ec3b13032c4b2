"""The extension point for other kinds of commit operation.

``runtime`` knows nothing of SQL written by users; ``sqlite_cells`` plugs its ``sqlite`` op in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import apsw

from sqlite_cells.codec import Op

if TYPE_CHECKING:
    from sqlite_cells.runtime._tx import Transaction

__all__ = ["CommitParticipant"]


class CommitParticipant(Protocol):
    """Applies one kind of op inside the commit's SQLite transaction.

    Call order, for one commit of one space, all under the space's write lock:

    1. ``prepare(conn, ops)`` with the participant's ops, *before* ``BEGIN IMMEDIATE``: the place
       for what SQLite forbids inside a transaction (``ATTACH``, ``journal_mode``). Raising aborts
       the commit before anything is written.
    2. ``BEGIN IMMEDIATE`` on the space's write connection; read revisions are validated and the
       cells are written.
    3. ``apply(conn, op, seq, tx)`` for each op of the transaction, in the order they were recorded.
       It returns the op to keep in the commit record (the same op, or one enriched with what a
       replay needs). Raising rolls back the whole commit, cells included, and the exception reaches
       the caller as it is.
    4. The commit record is written and ``COMMIT`` runs. If ``COMMIT`` itself raises,
       ``commit_failed(ops, exc)`` is called for every participant that applied an op, before the
       error reaches the caller; it must not raise. If it succeeds, ``committed(ops, seq)`` is
       called (it must not raise either).
    """

    @property
    def kind(self) -> str: ...

    def prepare(self, conn: apsw.Connection, ops: Sequence[Op]) -> None: ...

    def apply(self, conn: apsw.Connection, op: Op, seq: int, tx: Transaction) -> Op: ...

    def committed(self, ops: Sequence[Op], seq: int) -> None: ...

    def commit_failed(self, ops: Sequence[Op], exc: BaseException) -> None: ...

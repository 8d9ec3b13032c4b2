"""Group commit: transactions of one space that reach ``commit`` while another commit of that
space is running wait in a queue; the next committer to take the space's write lock commits
them all in one SQLite transaction (one fsync), each in its own savepoint, in arrival order.

A member that fails (a conflict, a participant's error) is rolled back to its savepoint and gets
its own error; the others commit. If a member's error ends the whole SQLite transaction (an
interrupt, ``INSERT OR ROLLBACK``), the transaction is run again without it. A failure of the
transaction itself (``BEGIN``, ``COMMIT``) reaches every member, but for one: a leader whose
caller gave up (an async handler's task cancelled) while it waited for the write lock ends its
own transaction alone, and the others go back to the queue (``SpaceFile._hand_back``). Each
member gets its own seq and commit record and is published in order, exactly as if it had
committed alone.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlite_cells.codec import CommitRecord, ConflictError

if TYPE_CHECKING:
    from sqlite_cells.runtime._participants import CommitParticipant
    from sqlite_cells.runtime._tx import PendingOp, Transaction

__all__ = ["Ticket", "fail_together", "take_batch"]

Groups = list[tuple["CommitParticipant", list["PendingOp"]]]


@dataclass(eq=False)
class Ticket:
    """One transaction waiting to commit; filled in by whichever committer commits it."""

    tx: Transaction
    groups: Groups
    record: CommitRecord | None = None
    error: BaseException | None = None
    done: bool = False
    thread: int = 0  # the committing thread's ident (see SpaceFile._take_write_lock)
    # Taken into a leader's batch (set under the queue lock; cleared if handed back): from then
    # on its outcome is that batch's, whatever happens to its committer meanwhile.
    taken: bool = False

    @functools.cached_property
    def targets(self) -> frozenset[tuple[str, str]]:
        # Only looked at when tickets wait together (``take_batch``): not made for a lone one.
        return frozenset((op.kind, op.target) for op in self.tx.ops)

    def succeed(self, record: CommitRecord) -> None:
        self.record, self.done = record, True

    def fail(self, exc: BaseException) -> None:
        self.error, self.done = exc, True

    def result(self) -> int:
        """The seq, or the error raised in the committing thread."""
        if self.error is not None:
            raise self.error
        assert self.record is not None
        return self.record.seq


def take_batch(waiting: deque[Ticket], limit: int = 64) -> list[Ticket]:
    """Remove and return the first waiting ticket and those after it that may share its
    transaction: participants prepare outside the transaction (e.g. attach one database file),
    so every member with ops must have the same ops' kinds and targets as the first one that has
    any; members without ops (cells only) always fit."""
    if len(waiting) == 1:  # the usual case: nobody else is committing
        ticket = waiting.popleft()
        ticket.taken = True
        return [ticket]
    batch: list[Ticket] = []
    targets: frozenset[tuple[str, str]] | None = None
    kept: deque[Ticket] = deque()
    while waiting and len(batch) < limit:
        ticket = waiting.popleft()
        if ticket.targets and targets is not None and ticket.targets != targets:
            kept.append(ticket)
            continue
        if ticket.targets and targets is None:
            targets = ticket.targets
        ticket.taken = True
        batch.append(ticket)
    waiting.extendleft(reversed(kept))
    return batch


def fail_together(tickets: list[Ticket], error: BaseException, space_id: str) -> None:
    """Fail ``tickets``, members of one batch, with ``error``. An interrupt (Ctrl-C), which
    only the committing thread is sent, is that thread's own: it fails its ticket, and every
    other member — committed by it on another thread's behalf, nothing of it written — gets a
    :class:`ConflictError`, which a handler runs again (§3): the interrupt raised in a thread
    it was never sent to stopped that thread (a worker's loop, an event loop's)."""
    if isinstance(error, Exception):
        for i, ticket in enumerate(tickets):
            ticket.fail(shared(error, first=i == 0))
        return
    me, first = threading.get_ident(), True
    for ticket in tickets:
        if ticket.thread == me:
            ticket.fail(shared(error, first=first))
            first = False
        else:
            ticket.fail(
                ConflictError(
                    space_id,
                    reason=(
                        "the thread that was committing it with other transactions was "
                        "interrupted (Ctrl-C) before their COMMIT; nothing of it was written"
                    ),
                )
            )


def shared(exc: BaseException, *, first: bool) -> BaseException:
    """``exc`` for the first member that meets it, a copy for each other (an exception object
    is raised in one thread only: its traceback is its own)."""
    if first:
        return exc
    twin = copy.copy(exc)
    twin.__cause__ = exc.__cause__
    return twin

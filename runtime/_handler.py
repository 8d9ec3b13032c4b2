"""``@sc.handler``: run a function in its own transaction, commit, retry on conflict."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, overload

from sqlite_cells.codec import ConflictError
from sqlite_cells.runtime._space_file import SpaceFile
from sqlite_cells.runtime._tx import TxState, current_transaction, transaction

__all__ = ["DEFAULT_TRIES", "handler"]

DEFAULT_TRIES = 10
# Tries made optimistically before the handler runs its body holding the space's write lock.
OPTIMISTIC_TRIES = 3


@overload
def handler(fn: Callable[..., Any], /) -> Callable[..., int | None]: ...
@overload
def handler(
    *, tries: int = DEFAULT_TRIES
) -> Callable[[Callable[..., Any]], Callable[..., int | None]]: ...


def handler(fn: Callable[..., Any] | None = None, /, *, tries: int = DEFAULT_TRIES) -> Any:
    """Decorate a function so each call runs its body in a new transaction and commits it.

    The transaction binds to the space of its first write. On :class:`ConflictError` the body
    runs again, at most ``tries`` times in all, then the last conflict is raised. The first
    tries are optimistic (reads take no lock); after ``OPTIMISTIC_TRIES`` conflicts the body runs
    while holding the space's write lock, where it cannot conflict, so a hot cell written by many
    threads or processes does not starve a writer. The call
    returns the commit's seq (None when the body wrote nothing). Called inside a transaction,
    the body joins it: nothing is committed then and the call returns None.
    """
    if tries < 1:
        raise ValueError(f"tries must be at least 1, not {tries}")

    def decorate(body: Callable[..., Any]) -> Callable[..., int | None]:
        @functools.wraps(body)
        def run(*args: Any, **kwargs: Any) -> int | None:
            outer = current_transaction()
            if outer is not None and outer.state is TxState.OPEN:
                body(*args, **kwargs)
                return None
            space: SpaceFile | None = None
            for attempt in range(tries):
                exclusive = space is not None and attempt >= OPTIMISTIC_TRIES
                try:
                    with (
                        space.exclusive() if exclusive and space else nullcontext(),
                        transaction(space) as tx,
                    ):
                        body(*args, **kwargs)
                    return tx.seq
                except ConflictError:
                    if attempt == tries - 1:
                        raise
                    space = tx.space
                    # A short random pause spreads writers that keep colliding.
                    time.sleep(random.uniform(0, 0.001 * 2**attempt))
            raise AssertionError("unreachable")

        return run

    return decorate if fn is None else decorate(fn)

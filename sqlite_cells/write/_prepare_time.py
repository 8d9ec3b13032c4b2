"""A long write statement is prepared once before it is recorded, to bound the time its commit
spends preparing it (R44).

SQLite compiles a statement before it runs it, and neither the progress handler that ends a
write at ``exec_timeout`` nor an interrupt reaches into that compilation. For most text it is
microseconds, but a few shapes grow faster than their text (a ``CASE`` of 40,000 ``WHEN``
branches, 0.9 MB, takes ≈ 2 s; 70,000 ≈ 7 s), and at commit that time is spent holding the
space's write lock. So a statement longer than :data:`CHECKED_CHARS` is prepared at the call,
off any lock, on a private in-memory database holding its declared tables (``EXPLAIN``: the
same compilation, nothing run), on a thread of its own: one still compiling after
``exec_timeout`` is refused with :class:`ExecTimeout` at the call (nothing is recorded; the
thread is left to finish on its own). A statement that compiled in time compiles as fast at
commit, where that time counts against the same ``exec_timeout`` as its run (the deadline is set
before the statement is prepared), so the commit holds the lock no longer than that. Texts found
quick are remembered (per declared schema), so a statement made again costs one look-up.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Final

import apsw

from sqlite_cells.codec import ExecError, ExecTimeout
from sqlite_cells.schema import Declaration, create_table_sql

__all__ = ["CHECKED_CHARS", "check_prepare_time"]

# Shorter statements compile in well under a millisecond whatever their shape.
CHECKED_CHARS: Final = 16_384
_REMEMBERED: Final = 64  # quick texts remembered, per process
_quick: OrderedDict[tuple[str, str], None] = OrderedDict()  # (schema fingerprint, sql)
_quick_lock = threading.Lock()


def check_prepare_time(decl: Declaration, sql: str, bindings: Any, timeout: float) -> None:
    """:class:`ExecTimeout` when SQLite takes longer than ``timeout`` seconds to compile ``sql``
    (a write of ``decl``'s database, ``bindings`` its first parameter row) — checked only for a
    statement longer than :data:`CHECKED_CHARS`. Anything else SQLite says about it is left to
    the commit, which reports it as it does for every statement."""
    schema = decl.schema
    if len(sql) <= CHECKED_CHARS or schema is None:
        return
    key = (schema.fingerprint, sql)
    with _quick_lock:
        if key in _quick:
            _quick.move_to_end(key)
            return
    started = time.monotonic()
    done = threading.Event()

    def compile_it() -> None:
        try:
            conn = apsw.Connection(":memory:")
            try:
                for name, table in schema.tables:
                    conn.execute(create_table_sql("main", name, table))
                conn.execute(f"EXPLAIN {sql}", bindings).fetchone()
            finally:
                conn.close()
        except apsw.Error:
            pass  # (a statement SQLite refuses: the commit says why)
        finally:
            done.set()

    try:
        threading.Thread(target=compile_it, name="sqlite-cells prepare check", daemon=True).start()
    except RuntimeError as exc:  # no thread to be had: the statement's time cannot be bounded
        raise ExecError(
            decl.db_id,
            sql,
            f"the statement ({len(sql):,} characters) is prepared on a thread of its own before "
            f"it is recorded, to keep exec_timeout, and this process may start no more threads "
            f"({exc}: the system's limit on threads or processes); close runtimes no longer "
            "used or raise the limit, then try again",
            rolled_back=False,
        ) from exc
    if not done.wait(timeout):
        raise ExecTimeout(
            decl.db_id,
            sql,
            f"SQLite took longer than exec_timeout={timeout}s only to prepare the statement "
            f"({len(sql):,} characters), before running any of it; simplify it (a long CASE or "
            "IN list belongs in a table, or in parameters)",
            rolled_back=False,
        )
    if time.monotonic() - started < timeout:
        with _quick_lock:
            _quick[key] = None
            while len(_quick) > _REMEMBERED:
                _quick.popitem(last=False)

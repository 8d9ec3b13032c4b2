"""The read pool: read-only connections keyed by file path, least recently used first out (R40).

A connection is used by one thread at a time (checked out, then given back); idle connections are
kept up to ``size`` in all and closed when evicted. Connections are opened with
``SQLITE_OPEN_READONLY``, so a write to the file through them is impossible (``query_only`` is not
set: it would also forbid the temporary tables of R41's shadows), with SQLite's length limit
lowered (R44).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from sqlite_cells.codec import ClosedError

__all__ = ["DEFAULT_LENGTH_LIMIT", "ReadPool"]

DEFAULT_LENGTH_LIMIT = 64 * 1024 * 1024
BUSY_TIMEOUT_MS = 5_000


class ReadPool:
    def __init__(self, size: int, *, length_limit: int = DEFAULT_LENGTH_LIMIT) -> None:
        if size < 1:
            raise ValueError(f"read_pool_size must be at least 1, not {size}")
        self.size = size
        self.length_limit = length_limit
        # _lock guards _idle, _idle_count, _open_count and _closed.
        self._lock = threading.Lock()
        self._idle: OrderedDict[Path, list[apsw.Connection]] = OrderedDict()
        self._idle_count = 0
        self._open_count = 0
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or in use)."""
        with self._lock:
            return self._open_count

    @contextmanager
    def connection(self, path: Path) -> Iterator[apsw.Connection]:
        """A read-only connection to ``path`` for the duration of the block.
        Raises ``FileNotFoundError`` when the file does not exist (it is never created here)."""
        conn = self._take(path) or self._open(path)
        try:
            yield conn
        except BaseException:
            # A connection whose read failed oddly is not worth keeping.
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
        finally:
            self._give(path, conn)

    def _take(self, path: Path) -> apsw.Connection | None:
        with self._lock:
            if self._closed:
                raise ClosedError("the read pool is closed (its runtime was closed)")
            idle = self._idle.get(path)
            if not idle:
                return None
            self._idle_count -= 1
            self._idle.move_to_end(path)
            return idle.pop()

    def _open(self, path: Path) -> apsw.Connection:
        if not path.is_file():
            raise FileNotFoundError(str(path))
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        conn.setbusytimeout(BUSY_TIMEOUT_MS)
        conn.limit(apsw.SQLITE_LIMIT_LENGTH, self.length_limit)
        with self._lock:
            self._open_count += 1
        return conn

    def _give(self, path: Path, conn: apsw.Connection) -> None:
        evicted: list[apsw.Connection] = []
        with self._lock:
            if self._closed:
                evicted.append(conn)
            else:
                self._idle.setdefault(path, []).append(conn)
                self._idle.move_to_end(path)
                self._idle_count += 1
                while self._idle_count > self.size:
                    oldest, conns = next(iter(self._idle.items()))
                    evicted.append(conns.pop(0))
                    self._idle_count -= 1
                    if not conns:
                        del self._idle[oldest]
            self._open_count -= len(evicted)
        for old in evicted:
            old.close()

    def discard(self, path: Path) -> None:
        """Close the idle connections to ``path`` (its file is going away)."""
        with self._lock:
            conns = self._idle.pop(path, [])
            self._idle_count -= len(conns)
            self._open_count -= len(conns)
        for conn in conns:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for group in self._idle.values() for c in group]
            self._idle.clear()
            self._open_count -= len(conns)
            self._idle_count = 0
        for conn in conns:
            conn.close()

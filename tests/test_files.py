"""The tests' own reads, writes and copies of SQLite files (``tests/_files.py``) keep the locks
a connection of this process holds on them, as another process sees them."""

from __future__ import annotations

from pathlib import Path

import apsw

from . import _files
from .sqlite_cells.test_locks_kept import _SHARED_FIRST, _SHM_DMS, _held


def test_reads_writes_and_copies_keep_a_wal_connections_locks(tmp_path: Path) -> None:
    path = tmp_path / "own.db"
    shm = Path(f"{path}-shm")
    conn = apsw.Connection(str(path))
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        size = path.stat().st_size
        header = _files.read_bytes(path)[:16]
        assert header == b"SQLite format 3\x00" and len(_files.read_bytes(shm)) > 0
        _files.copy_file(path, tmp_path / "copy.db")
        _files.copy_file(path, path)  # the same bytes written back over the file
        _files.write_at(path, size, b"\0" * 10)
        _files.write_bytes(path, _files.read_bytes(tmp_path / "copy.db"))
        assert _held(shm, _SHM_DMS)
        assert _held(path, _SHARED_FIRST, 510)
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
    finally:
        conn.close()
    assert _files.read_bytes(tmp_path / "copy.db")[:16] == header

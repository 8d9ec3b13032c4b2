"""The runtime never drops a lock that a connection of its own process holds on an SQLite file.

A process loses all its POSIX locks on a file when it closes any descriptor of that file; SQLite
locks the database file and its ``-shm`` that way. Were the runtime to read a header or copy a
file with a plain open and close, the locks of every connection of the process to that file — a
program's own ``sqlite3`` connection to a source it registered, the runtime's own write
transaction during a repair — would be gone: another process would reset the ``-shm`` this one
has mapped (a bus error at the next access) or write under a transaction (see
``sqlite_cells/files/_held_files.py``). The locks are looked at from another process, where
SQLite's own locks show (``F_GETLK``), so each test fails at once when one is dropped."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import sqlite_cells as sc
from sqlite_cells.files import copy_file, keep_copy, read_head

from .test_sources import _wait_for

# SQLite's lock bytes (os_unix.c): on the database file, RESERVED and the SHARED range sit just
# past the PENDING byte at 1 GiB; on the -shm, the "dead man switch" byte follows the eight
# WAL locks at byte 120. Every connection to a WAL file holds a read lock on both while open.
_PENDING = 0x40000000
_RESERVED = _PENDING + 1
_SHARED_FIRST = _PENDING + 2
_SHM_DMS = 120 + 8

_LOCK_QUERY = """
import fcntl, os, struct, sys
path, start, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, query))
print(pid if kind != fcntl.F_UNLCK else 0)  # an OFD lock's pid is -1
"""


def _holder(path: Path, start: int, length: int = 1) -> int:
    """Who holds a lock that conflicts with a write lock on the bytes, as another process sees
    it: a pid for a process's own (classic) lock, -1 for an open file description lock (how
    this process holds SQLite's, see ``runtime/_file_locks.py``), 0 for none."""
    out = subprocess.run(
        [sys.executable, "-c", _LOCK_QUERY, str(path), str(start), str(length)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def _held(path: Path, start: int, length: int = 1) -> bool:
    """Whether this process holds a lock on the bytes (the only one that opened the file)."""
    return _holder(path, start, length) in (os.getpid(), -1)


def test_the_lock_query_sees_a_lock_and_its_absence(tmp_path: Path) -> None:
    path = tmp_path / "plain.bin"
    path.write_bytes(b"\0" * 16)
    assert _holder(path, 4) == 0
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, 4, 1, 0))
        assert _holder(path, 4) == os.getpid()
    finally:
        os.close(fd)
    assert _holder(path, 4) == 0


@pytest.fixture
def written(tmp_path: Path) -> Iterator[apsw.Connection]:
    """A program's own WAL connection to the file it writes, open (as a notebook's would be)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    conn = apsw.Connection(str(outside / "own.db"))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (v INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("SELECT count(*) FROM t").fetchall()
    yield conn
    conn.close()


def test_registering_and_reading_a_source_keeps_the_programs_own_locks(
    rt: sc.Runtime, written: apsw.Connection
) -> None:
    path = Path(written.filename)
    shm = Path(f"{path}-shm")
    assert _held(shm, _SHM_DMS)
    assert _held(path, _SHARED_FIRST, 510)
    db = rt.space("demo").register_disk_source(str(path))
    assert db.read("SELECT v FROM t") == [{"v": 1}]
    written.execute("INSERT INTO t VALUES (2)")  # the read pool looks at the file again
    assert db.read("SELECT v FROM t ORDER BY v") == [{"v": 1}, {"v": 2}]
    live = db.query("SELECT count(*) AS n FROM t")
    rt.settle()
    assert live.get().result == [{"n": 2}]
    written.execute("INSERT INTO t VALUES (3)")  # seen by polling the file (its -shm included)
    _wait_for(live, lambda state: state.result == [{"n": 3}])
    assert _held(shm, _SHM_DMS)
    assert _held(path, _SHARED_FIRST, 510)


def test_a_copy_kept_before_a_repair_keeps_the_repairs_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "cell-x.sqlite"
    conn = apsw.Connection(str(path))
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("BEGIN IMMEDIATE")
        assert _held(Path(f"{path}-shm"), 120)  # the WAL write lock
        kept = keep_copy(path, "damaged")
        assert _held(Path(f"{path}-shm"), 120)
        assert _held(Path(f"{path}-shm"), _SHM_DMS)
        assert _held(path, _SHARED_FIRST, 510)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    copy = apsw.Connection(str(kept), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert copy.execute("SELECT v FROM t").fetchall() == [(1,)]
    finally:
        copy.close()


def _descriptors_of(path: Path) -> int:
    """How many descriptors of this process have the file at ``path`` open."""
    target = os.stat(path)
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            found = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        count += (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino)
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_file_read_again_is_read_through_the_one_descriptor_kept(tmp_path: Path) -> None:
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(b"first file")
    second.write_bytes(b"second file")
    assert read_head(first, 5) == b"first"
    assert read_head(first, 64) == b"first file"
    assert _descriptors_of(first) == 1
    copy_file(first, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"first file"
    assert _descriptors_of(first) == 1
    kept = os.open(first, os.O_RDONLY)  # the unlinked file, seen through a descriptor of ours
    try:
        first.unlink()
        before = len(os.listdir("/proc/self/fd"))
        assert read_head(second, 6) == b"second"  # the next file opened closes the unlinked one
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(kept)


def test_a_copy_of_a_file_that_cannot_be_read_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        copy_file(tmp_path / "missing.sqlite", tmp_path / "copy.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_cut_short_leaves_no_copy_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R71: a repair keeps a copy before it removes rows. A copy cut short (a full disk: found
    with a file size limit) was left in the quarantine folder, truncated, looking like a kept
    copy; now nothing of it is left, and the error stops the repair."""
    import sqlite_cells.files._reconcile as reconcile_module

    path = tmp_path / "cell-x.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (zeroblob(100000))")
    conn.close()

    def cut_short(source: Path, dest: Path) -> None:
        dest.write_bytes(source.read_bytes()[:4096])
        raise OSError(27, "File too large")

    monkeypatch.setattr(reconcile_module, "copy_file", cut_short)
    with pytest.raises(reconcile_module._CopyFailed) as failed:
        keep_copy(path, "ahead-4-of-3")
    assert f"(File too large: a full disk or a file size limit) while {path} was copied to " in (
        str(failed.value)
    )
    assert isinstance(failed.value.__cause__, OSError)
    assert list((tmp_path / "quarantine").iterdir()) == []


def test_a_quarantine_folder_that_is_a_symbolic_link_is_not_written_through(
    tmp_path: Path,
) -> None:
    """R71: a repair keeps its copies in the store's own quarantine folder. A symbolic link
    planted there made `check --repair` write the copy, its -wal and its note wherever the
    link pointed, outside the store. It is refused, naming the link, and nothing is written."""
    import sqlite_cells.files._reconcile as reconcile_module

    store = tmp_path / "store"
    store.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store / "quarantine").symlink_to(elsewhere)
    path = store / "cell-x.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    conn.close()
    with pytest.raises(reconcile_module._NoCopyFolder, match="is a symbolic link"):
        keep_copy(path, "ahead-4-of-3")
    assert list(elsewhere.iterdir()) == []

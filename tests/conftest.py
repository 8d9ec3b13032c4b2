from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlite_cells as sc


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def rt(store: Path) -> Iterator[sc.Runtime]:
    runtime = sc.Runtime(store, poll_interval=0.01)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def woken(rt: sc.Runtime, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs of the commits that woke ``rt``'s scheduler thread (quiet ones do not)."""
    seqs: list[int] = []
    on_commit = rt.scheduler._on_commit

    def counting(event: Any) -> None:
        seqs.append(event.seq)
        on_commit(event)

    monkeypatch.setattr(rt.scheduler, "_on_commit", counting)
    return seqs

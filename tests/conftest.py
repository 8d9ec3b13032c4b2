from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

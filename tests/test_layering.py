"""Layers point down only: codec ← runtime ← sqlite_cells (CONVENTIONS: shape of the house)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "codec": set(),
    "runtime": {"codec"},
    "sqlite_cells": {"codec", "runtime"},
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_only(package: str) -> None:
    ours = set(ALLOWED)
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    offending = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in _imports(path) & ours
        if name != package and name not in ALLOWED[package]
    }
    assert not offending


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from sqlite_cells import table\nimport runtime.x\n")
    assert _imports(bad) == {"sqlite_cells", "runtime"}

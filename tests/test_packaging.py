"""The installed distribution claims one import name, ``sqlite_cells`` (SPEC §1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_users_runtime_and_codec_modules_do_not_shadow_ours(tmp_path: Path) -> None:
    for name in ("runtime", "codec", "sql", "schema"):
        (tmp_path / f"{name}.py").write_text("raise ImportError('the user module was imported')\n")
    script = (
        "import sqlite_cells as sc\n"
        "with sc.Runtime.ephemeral() as rt:\n"
        "    c = rt.space('demo').cell('n', default=1)\n"
        "    print(c.get(), sc.Runtime.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "sqlite_cells._runtime"]


def test_no_module_of_ours_is_loaded_under_a_generic_name(tmp_path: Path) -> None:
    script = (
        "import sys, sqlite_cells\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'codec', 'runtime'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_install_puts_no_other_name_of_the_repository_on_the_path(tmp_path: Path) -> None:
    """The editable install links the package's files (``make``: strict mode), not the
    repository: ``runtime``, ``codec``, ``bench``, ``examples`` and ``tests`` are not importable
    from elsewhere, though ``sqlite_cells`` and its compiled modules are."""
    script = (
        "import importlib.util, sqlite_cells.runtime._locks\n"
        "names = ('runtime', 'codec', 'bench', 'examples', 'tests', 'sql', 'schema')\n"
        "print([n for n in names if importlib.util.find_spec(n) is not None])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

"""The arrows of the house point down only (docs/architecture.md).

Layers, lowest first: ``codec`` ← ``runtime`` ← ``sql`` ← ``schema`` ← ``files`` ← ``read`` and
``write`` ← the package's own modules (``sqlite_cells/_*.py``, which put the pieces together) ←
``cli``. A module may import its own layer and the layers below; ``read`` and ``write`` do not
import each other. Every import counts, type-only and relative ones included. No module imports a
``_private`` name of another module, and across layers a module imports a layer's public face
(``sqlite_cells.sql``), not its private modules (``sqlite_cells.sql._guard``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("codec", "runtime", "sql", "schema", "files", "read", "write", "top", "cli")
# What each layer may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "codec": set(),
    "runtime": {"codec"},
    "sql": {"codec", "runtime"},
    "schema": {"codec", "runtime", "sql"},
    "files": {"codec", "runtime", "sql", "schema"},
    "read": {"codec", "runtime", "sql", "schema", "files"},
    "write": {"codec", "runtime", "sql", "schema", "files"},
    "top": {"codec", "runtime", "sql", "schema", "files", "read", "write"},
    "cli": {"codec", "runtime", "sql", "schema", "files", "read", "write", "top"},
}
GENERIC = {"codec", "runtime"}  # import names the distribution must not claim (SPEC §1)


def layer_of_file(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    if parts[0] in GENERIC:
        return parts[0]
    return parts[1] if len(parts) > 2 else "top"


def layer_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "sqlite_cells":
        return None
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "top"


def package_of(path: Path) -> list[str]:
    """The package a file is imported in (``codec/x.py`` is in ``sqlite_cells.codec``)."""
    parts = list(path.relative_to(ROOT).parent.parts)
    return parts if parts[0] == "sqlite_cells" else ["sqlite_cells", *parts]


def imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each imported name; name is "" for ``import module``. A relative
    import counts as the absolute one it stands for (``from ..read import x`` in ``sql/``
    reaches ``sqlite_cells.read``)."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
            else:
                package = package_of(path)
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            found.extend((module, alias.name) for alias in node.names)
    return found


def source_files() -> list[Path]:
    files = [*ROOT.glob("codec/**/*.py"), *ROOT.glob("runtime/**/*.py")]
    files += [
        p for p in ROOT.glob("sqlite_cells/**/*.py") if p.relative_to(ROOT).parts[1] not in GENERIC
    ]
    return sorted(files)


def target_layer(module: str, name: str) -> str | None:
    """The layer an import reaches (``from sqlite_cells import sql`` reaches ``sql``)."""
    if module == "sqlite_cells" and name in LAYERS:
        return name
    return layer_of_module(module)


def violations(path: Path) -> list[str]:
    layer = layer_of_file(path)
    found = []
    for module, name in imports(path):
        top = module.split(".")[0]
        if top in GENERIC:
            found.append(f"imports {module}: write sqlite_cells.{module}")
            continue
        target = target_layer(module, name)
        if target is None:
            continue
        if target != layer and target not in ALLOWED[layer]:
            found.append(f"imports {module} ({target}), above or beside {layer}")
        if name.startswith("_") and name != "__future__":
            found.append(f"imports the private name {name} from {module}")
        private_module = any(part.startswith("_") for part in module.split(".")[1:])
        if target != layer and private_module and target not in GENERIC:
            found.append(f"imports {module}: import the {target} layer's public face")
    return found


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_only(path: Path) -> None:
    assert violations(path) == []


def test_every_layer_has_modules() -> None:
    layers = {layer_of_file(p) for p in source_files()}
    assert layers == set(LAYERS)


def test_the_checker_sees_each_kind_of_violation(tmp_path: Path) -> None:
    bad = ROOT / "sqlite_cells" / "sql" / "_zz_layering_probe.py"
    bad.write_text(
        "from sqlite_cells.read._pool import ReadPool\n"
        "from sqlite_cells.sql._guard import _private\n"
        "import runtime\n"
    )
    try:
        found = violations(bad)
    finally:
        bad.unlink()
    assert found == [
        "imports sqlite_cells.read._pool (read), above or beside sql",
        "imports sqlite_cells.read._pool: import the read layer's public face",
        "imports the private name _private from sqlite_cells.sql._guard",
        "imports runtime: write sqlite_cells.runtime",
    ]


def test_the_checker_reads_relative_imports() -> None:
    bad = ROOT / "sqlite_cells" / "sql" / "_zz_layering_relative_probe.py"
    bad.write_text(
        "from ..read._pool import ReadPool\nfrom .._db import SqliteDb\nfrom . import x\n"
    )
    try:
        found = violations(bad)
    finally:
        bad.unlink()
    assert found == [
        "imports sqlite_cells.read._pool (read), above or beside sql",
        "imports sqlite_cells.read._pool: import the read layer's public face",
        "imports sqlite_cells._db (top), above or beside sql",
        "imports sqlite_cells._db: import the top layer's public face",
    ]
    codec_file = ROOT / "codec" / "_values.py"
    assert package_of(codec_file) == ["sqlite_cells", "codec"]

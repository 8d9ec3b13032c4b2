"""The repository explains itself: every rule number cited in code or tests is in docs/rules.md,
and every module of the package is on docs/architecture.md's module map."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULE = re.compile(r"\bR(\d{1,3})\b")
FOLDERS = ("codec", "runtime", "sqlite_cells", "tests", "bench", "examples")


def _explained() -> set[str]:
    text = (ROOT / "docs" / "rules.md").read_text()
    return set(re.findall(r"^- \*\*(R\d+) ", text, re.M))


def test_every_cited_rule_is_explained() -> None:
    cited: dict[str, str] = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.relative_to(ROOT).parts[:2] in {
                ("sqlite_cells", "codec"),
                ("sqlite_cells", "runtime"),
            }:
                continue  # links to codec/ and runtime/, read once already
            for number in RULE.findall(path.read_text()):
                cited.setdefault(f"R{number}", str(path.relative_to(ROOT)))
    missing = {rule: where for rule, where in cited.items() if rule not in _explained()}
    assert missing == {}


def test_the_rule_list_is_well_formed() -> None:
    explained = _explained()
    assert {"R1", "R24", "R51", "R74"} <= explained
    assert len(explained) == len(set(explained))


def _mapped() -> dict[str, set[str]]:
    """The module map's entries: package folder → module file names listed under it."""
    text = (ROOT / "docs" / "architecture.md").read_text().split("## Module map", 1)[1]
    mapped: dict[str, set[str]] = {}
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        folder = re.match(r"`([\w/]+)/`", section)
        assert folder is not None, section[:60]
        mapped[folder.group(1)] = set(re.findall(r"^- `(\w+\.py)` — \S", section, re.M))
    return mapped


def _modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for top in ("codec", "runtime", "sqlite_cells"):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] in {("sqlite_cells", "codec"), ("sqlite_cells", "runtime")}:
                continue
            if path.name in {"__init__.py", "__main__.py"} or "__pycache__" in rel.parts:
                continue
            found.setdefault(str(rel.parent), set()).add(path.name)
    return found


def test_the_module_map_lists_every_module_and_no_other() -> None:
    mapped, modules = _mapped(), _modules()
    assert {"codec", "runtime", "sqlite_cells/sql", "sqlite_cells/cli"} <= set(modules)
    assert mapped == modules


def test_each_function_the_rule_map_names_is_in_the_file_it_names() -> None:
    """The rule map's ``file (`name`, …)`` entries: each name is defined or used in that file
    (the map pointed to ``runtime/_locks.c`` for ``opened_file``, which is in another file)."""
    text = (ROOT / "docs" / "architecture.md").read_text().split("## Module map", 1)[0]
    wrong = []
    for path, names in re.findall(r"`([\w/]+\.(?:py|c))` \(([^)]*)\)", text):
        found = [p for p in (ROOT / path, ROOT / "sqlite_cells" / path) if p.is_file()]
        if not found:
            wrong.append((path, "no such file"))
            continue
        source = found[0].read_text()
        for name in re.findall(r"`([\w.]+)`", names):
            if not re.search(rf"\b{re.escape(name.split('.')[-1])}\b", source):
                wrong.append((path, name))
    assert wrong == []

"""The repository explains itself: every rule number cited in code or tests is in docs/rules.md."""

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

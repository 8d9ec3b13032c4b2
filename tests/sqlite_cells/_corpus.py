"""The hostile corpus (tests/fixtures/hostile.sql), shared by the guard and authorizer tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlite_cells.sql._guard import Mode

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "hostile.sql"

_LINE = re.compile(r"^(read|write) \| ([a-z-]+) \| (runs|denied|error|none) \|(?: (.*))?$")
_ESCAPE = re.compile(r"\\(?:([nrtfv0\\])|x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4}))")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v", "0": "\0", "\\": "\\"}


@dataclass(frozen=True)
class Case:
    line: int
    mode: Mode
    kind: str
    auth: str
    sql: str


def _unescape(match: re.Match[str]) -> str:
    simple, byte, unit = match.groups()
    if simple is not None:
        return _SIMPLE_ESCAPES[simple]
    return chr(int(byte or unit, 16))


def load_corpus() -> list[Case]:
    """The cases of tests/fixtures/hostile.sql, in the format its header describes."""
    cases = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        line = line.rstrip()
        if not line or line.startswith("--"):
            continue
        match = _LINE.match(line)
        assert match is not None, f"hostile.sql:{number}: not 'MODE | KIND | AUTH | SQL': {line}"
        mode, kind, auth, raw = match.groups()
        cases.append(Case(number, Mode(mode), kind, auth, _ESCAPE.sub(_unescape, raw or "")))
    return cases

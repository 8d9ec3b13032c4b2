"""Types of the C module ``sqlite_cells/sql/_tokenloop.c`` (see ``sql/_lexer.py``)."""

from collections.abc import Set

WORD: int
NUMBER: int
PARAM: int
OP: int

def build(
    lexer: object, failed: bool, operators: Set[str], literal_types: Set[object], /
) -> None: ...

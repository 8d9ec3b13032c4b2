"""An ``os.PathLike`` for tests of path arguments: its ``__fspath__`` returns whatever it was given
(bytes, an int, None, another PathLike) or, given an exception, raises it."""

from __future__ import annotations

from typing import Any


class Fspath:
    def __init__(self, value: object) -> None:
        self.value = value

    def __fspath__(self) -> Any:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value

    def __repr__(self) -> str:
        return f"Fspath({self.value!r})"

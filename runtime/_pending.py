"""``sc.PENDING``: the value of something that is not ready yet."""

from __future__ import annotations

import enum

__all__ = ["PENDING", "Pending"]


class Pending(enum.Enum):
    """Sentinel type of :data:`PENDING` (an enum so it pickles, compares by identity and has a
    readable repr)."""

    PENDING = "PENDING"

    def __repr__(self) -> str:
        return "sc.PENDING"

    def __bool__(self) -> bool:
        return False


PENDING = Pending.PENDING

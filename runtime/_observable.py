"""``Observable`` as the runtime's annotations name it at run time, without importing reactivex.

reactivex is imported at the first ``observe()`` only (a program that never observes, the
command, never loads it), so the modules whose methods return ``Observable[...]`` import it for
type checkers only. ``typing.get_type_hints`` evaluates those annotations in the module's
namespace, where :data:`OBSERVABLE` stands for the name: subscripting it imports reactivex then
and gives reactivex's own ``Observable[...]``, so a caller's tools see the real type.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OBSERVABLE"]


class _LazyObservable:
    """Stands for ``reactivex.Observable`` in an annotation; every annotation subscripts it."""

    __slots__ = ()

    def __getitem__(self, item: Any) -> Any:
        import reactivex

        return reactivex.Observable[item]

    def __repr__(self) -> str:
        return "reactivex.Observable (imported when subscripted)"


OBSERVABLE: Final = _LazyObservable()

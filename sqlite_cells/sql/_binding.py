"""Parameters of ``db.exec``: mapped to their target columns and encoded (R31).

A ``Cell`` bound to a ``*_cf_link`` column is stored as its link string; a ``Cell`` anywhere else,
or anything but a cell or ``None`` bound to a link column, is a :class:`LinkEncodeError`; a value
that is not ready is :class:`PendingValue`. Every check runs at the call, before anything is
recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

from sqlite_cells.codec import ExecError, LinkEncodeError, PendingValue
from sqlite_cells.runtime import PENDING, Cell
from sqlite_cells.sql._names import LINK_SUFFIX, is_link_column
from sqlite_cells.sql._params import ParamTargets

__all__ = ["Bound", "bind_rows", "is_pending"]

Bound = tuple[Any, ...] | dict[str, Any]


def is_pending(value: Any) -> bool:
    """True for ``sc.PENDING`` and for a query state that has no result yet."""
    return value is PENDING or bool(getattr(value, "pending", False) is True)


def bind_rows(targets: ParamTargets, rows: Sequence[Any], *, sql: str, db_id: str) -> list[Bound]:
    """Encode each parameter row (a sequence for positional parameters, a mapping for named ones)
    for ``sql`` whose parameters target the columns described by ``targets``."""
    if targets.named or any(_is_link(t) for t in targets.positional):
        return [_bind(targets, row, sql=sql, db_id=db_id) for row in rows]
    # No link column among the targets: rows of plain values need no per-value decision, and
    # whether all rows are such is answered by passes that run in C (exec_many's hot path).
    if (
        _SEQUENCES.issuperset(map(type, rows))
        and set(map(len, rows)) <= {targets.count}
        and _PLAIN.issuperset(map(type, chain.from_iterable(rows)))
    ):
        return list(map(tuple, rows))
    return [_bind(targets, row, sql=sql, db_id=db_id) for row in rows]


_PLAIN = frozenset({type(None), int, float, str, bytes})
_SEQUENCES = frozenset({tuple, list})


_is_link = is_link_column


def _bind(targets: ParamTargets, row: Any, *, sql: str, db_id: str) -> Bound:
    def fail(message: str) -> ExecError:
        return ExecError(db_id, sql, message, rolled_back=False)

    if row is None:
        row = ()
    if isinstance(row, Mapping):
        missing = [name for name in targets.named if name not in row]
        if missing:
            raise fail(f"no value for the named parameter(s) {', '.join(missing)}")
        if len(targets.named) != targets.count:
            raise fail("positional parameters need a list of values, not a mapping")
        return {
            name: _encode(row[name], target, f":{name}", fail)
            for name, target in targets.named.items()
        }
    if isinstance(row, str | bytes) or not isinstance(row, Sequence):
        raise fail(f"parameters are a list, a tuple or a mapping, not {type(row).__name__}")
    if targets.named and len(targets.named) == targets.count:
        raise fail("named parameters need a mapping of values, not a list")
    if len(row) != targets.count:
        raise fail(f"the statement has {targets.count} parameter(s) but {len(row)} were given")
    return tuple(
        _encode(value, target, f"parameter {i + 1}", fail)
        for i, (value, target) in enumerate(zip(row, targets.positional, strict=True))
    )


def _encode(value: Any, target: str | None, where: str, fail: Callable[[str], ExecError]) -> Any:
    if is_pending(value):
        raise PendingValue(
            f"{where} is not ready yet ({value!r}): wait for it (rt.settle()) or react to it"
        )
    is_link = _is_link(target)
    if isinstance(value, Cell):
        if not is_link:
            raise LinkEncodeError(
                f"{where} is a cell but targets {target or 'no column'}: cells can only be "
                f"bound to *{LINK_SUFFIX} columns; bind cell.get() for its value"
            )
        return value.link_str()
    if is_link:
        if value is None:
            return None
        raise LinkEncodeError(
            f"{where} targets the link column {target} but is a {type(value).__name__}: bind a "
            "Cell (stored as its link) or None"
        )
    if value is None or isinstance(value, int | float | str | bytes):
        return int(value) if isinstance(value, bool) else value
    raise fail(f"{where} is a {type(value).__name__}: bind None, int, float, str, bytes or a Cell")

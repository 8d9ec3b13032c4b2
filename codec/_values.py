"""Cell values: JSON with embedded links (R6).

``encode_value`` turns a Python value into canonical JSON bytes. Only JSON is accepted — ``None``,
bool, 64-bit int, finite float, str, list/tuple, dict with str keys — plus :class:`Link`s and
whatever ``enc_hook`` maps to a link (a runtime ``Cell``). Everything else is refused with
:class:`ValueEncodeError`; nothing is converted silently (msgspec alone would turn NaN into
``null``, bytes into base64, a datetime into a string and a set into a list).
``decode_value`` reads the bytes back, handing each embedded link to ``link_hook``.

A dict that ``decode_value`` would read as a link — one whose only key is ``"/"``, holding a dict
whose only key is ``"link@1"`` (``is_link_sigil``, the decoder's own test) — is refused too: it
would come back as a ``Cell`` (or not decode at all), not as the dict that was stored.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import msgspec

from sqlite_cells.codec._errors import (
    EncodingError,
    LinkEncodeError,
    ValueEncodeError,
    brief_repr,
)
from sqlite_cells.codec._links import Link, is_link_sigil, link_from_sigil

__all__ = ["MAX_DEPTH", "decode_value", "encode_plain", "encode_value", "has_links"]

T = TypeVar("T")

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder(order="deterministic")
_SIGIL_MARK = b'"link@1"'
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# How deeply lists and dicts may nest in a cell value (R6): a fixed bound, so that whether a
# value is stored does not depend on how deep the caller's stack is, and every stored value
# reads back from any stack (see _on_fresh_stack).
MAX_DEPTH: Final = 256
_JSON_HELP = (
    "cell values are JSON (None, bool, 64-bit int, finite float, str, list, tuple, dict with str "
    "keys) and cells, which are stored as links"
)


def encode_value(value: Any, enc_hook: Callable[[Any], Link | None] | None = None) -> bytes:
    """Encode ``value`` as canonical JSON (R6). ``enc_hook(obj)`` maps non-JSON objects to links
    (or returns None to refuse them). Raises :class:`ValueEncodeError` for anything else,
    naming where in the value it sits."""
    try:
        return _on_any_stack(_encode, value, enc_hook)
    except _TooDeep as exc:
        raise _unencodable(exc.error) from None


def _encode(value: Any, enc_hook: Callable[[Any], Link | None] | None) -> bytes:
    try:
        if not _is_plain(value, 0):
            return _encoder.encode(_plain(value, enc_hook, "", 0))
        return _encoder.encode(value)
    except UnicodeEncodeError as exc:
        raise _unencodable(exc) from exc


class _TooDeep(Exception):
    """A ``RecursionError`` met on a new thread's empty stack: the value's own depth."""

    def __init__(self, error: RecursionError) -> None:
        super().__init__(str(error))
        self.error = error


def _on_any_stack(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``, and again on a new thread, whose stack starts empty, if the caller's
    stack was too deep for it (``RecursionError``): a value within :data:`MAX_DEPTH` is encoded
    and decoded whatever the depth of the caller's own stack (a handler called from deep in an
    application, a notebook's frames). A ``RecursionError`` there too is the value's own, and is
    raised as :class:`_TooDeep`. A ``RecursionError`` raised while that thread is being started
    is the caller's own stack running out (a caller at the very limit): it reaches the caller
    as it is, never as a value too deeply nested (``int`` 7 is not)."""
    try:
        return work(*args)
    except RecursionError:
        pass
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work(*args)))
        except RecursionError as exc:
            outcome.append((False, _TooDeep(exc)))
        except BaseException as exc:  # handed to the caller as it is
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="sqlite-cells-deep-value")
    thread.start()
    thread.join()
    ok, result = outcome[0]
    if ok:
        return result  # type: ignore[no-any-return]
    raise result


def encode_plain(value: Any) -> bytes:
    """The canonical JSON of ``value``, which the caller guarantees is strict JSON already (built
    by the runtime from parts that were checked or decoded from JSON): ``encode_value`` without
    the walk that checks it, for values written on every commit (a database handle)."""
    try:
        return _on_any_stack(_encoder.encode, value)
    except _TooDeep as exc:
        raise _unencodable(exc.error) from None
    except UnicodeEncodeError as exc:
        raise _unencodable(exc) from exc


def _unencodable(exc: RecursionError | UnicodeEncodeError) -> ValueEncodeError:
    if isinstance(exc, RecursionError):
        return ValueEncodeError(
            "the value is nested too deeply (or contains itself) to be stored as JSON"
        )
    return ValueEncodeError(
        f"the value holds a str that is not valid Unicode text ({exc.reason} at position "
        f"{exc.start} of {exc.object[max(0, exc.start - 10) : exc.end + 10]!r}): lone "
        "surrogates cannot be stored; decode the text properly first"
    )


_SCALARS = frozenset({str, bool, type(None)})


def _is_plain(value: Any, depth: int) -> bool:
    """True when ``value`` is strict JSON as it is — no links, tuples or anything msgspec would
    convert — so it can be encoded without being rebuilt (the common case, checked without
    allocating)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        return bool(INT_MIN <= value <= INT_MAX)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        # A dict whose only key is "/" may be a link's shape: ``_plain`` judges it, and the
        # depth past MAX_DEPTH.
        return (
            depth < MAX_DEPTH
            and (len(value) != 1 or "/" not in value)
            and all(type(k) is str and _is_plain(v, depth + 1) for k, v in value.items())
        )
    if kind is list:
        return depth < MAX_DEPTH and all(_is_plain(v, depth + 1) for v in value)
    return False


def _plain(value: Any, hook: Callable[[Any], Link | None] | None, where: str, depth: int) -> Any:
    """``value`` as msgspec-ready JSON (links as sigils, tuples as lists), checked strictly."""
    kind = type(value)
    if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
        raise ValueEncodeError(
            f"the value nests lists and dicts more than {MAX_DEPTH} levels deep (or contains "
            "itself); store a flatter value"
        )
    if kind in _SCALARS:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise ValueEncodeError(
                f"{_at(where)}: the integer {brief_repr(value)} does not fit in 64 bits; store it "
                "as a str"
            )
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueEncodeError(
                f"{_at(where)}: {value!r} is not a finite number and has no JSON form; "
                "store None or a str instead"
            )
        return value
    if isinstance(value, dict):  # a dict subclass (OrderedDict, defaultdict) is stored as a dict
        out = {}
        for key, item in (
            value.items() if kind is dict else _read(lambda: _pairs(value), kind.__name__, where)
        ):
            if type(key) is not str:
                raise ValueEncodeError(
                    f"{_at(where)}: dict keys must be str, not {type(key).__name__} "
                    f"({brief_repr(key)})"
                )
            out[key] = _plain(item, hook, f"{where}[{key!r}]", depth + 1)
        if len(out) == 1 and is_link_sigil(out):  # a Cell's own link is a LinkSigil, not a dict
            raise _sigil_shaped(where)
        return out
    if isinstance(value, list | tuple):
        items = (
            value if kind is list or kind is tuple else _read(lambda: value, kind.__name__, where)
        )
        return [_plain(item, hook, f"{where}[{i}]", depth + 1) for i, item in enumerate(items)]
    link = value if isinstance(value, Link) else hook(value) if hook is not None else None
    if link is None:
        raise ValueEncodeError(f"{_at(where)}: cannot store a {kind.__name__}; {_JSON_HELP}")
    try:
        return link.sigil()
    except LinkEncodeError as exc:  # a cell no stored link can name (R6: refused at set)
        raise ValueEncodeError(f"{_at(where)}: {exc}") from exc


def _read(items: Callable[[], Iterable[Any]], kind: str, where: str) -> list[Any]:
    """The items of a dict, list or tuple of the caller's own class, read once: what its own
    code raises (a ``KeyError`` from ``__iter__``, say) is a :class:`ValueEncodeError`, never a
    raw error (Errors)."""
    try:
        return list(items())
    except Exception as exc:
        raise ValueEncodeError(
            f"{_at(where)}: reading the {kind} given raised {type(exc).__name__}: {exc}; store "
            "a plain list or dict"
        ) from exc


def _pairs(value: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """The (key, item) pairs the ``items()`` of a dict of the caller's own class gives, each
    checked to be a pair (what does not unpack raises here, inside ``_read``) and each key
    given once: a key given twice would keep only its last item, silently. (A key that is no
    ``str`` is refused by the caller, naming it.)"""
    pairs = [(key, item) for key, item in value.items()]
    seen: set[str] = set()
    for key, _ in pairs:
        if type(key) is str:
            if key in seen:
                raise ValueError(f"its items() gave the key {brief_repr(key)} twice")
            seen.add(key)
    return pairs


def _sigil_shaped(where: str) -> ValueEncodeError:
    return ValueEncodeError(
        f'{_at(where)}: a dict whose only key is "/" holding a dict whose only key is "link@1" '
        "is how a link to a cell is stored, so it would read back as a Cell (or fail to read), "
        "not as this dict: to store a link, put the Cell itself in the value "
        '(rt.cell_from_link(text) gives it); to store data, use another key than "/"'
    )


def _at(where: str) -> str:
    return f"at value{where}" if where else "the value"


def has_links(data: bytes) -> bool:
    """Cheap pre-check: could ``data`` hold a link at all?"""
    return _SIGIL_MARK in data


def decode_value(data: bytes, link_hook: Callable[[Link], Any] | None = None) -> Any:
    """Decode JSON bytes; each embedded link sigil becomes ``link_hook(link)`` (the Link itself
    when no hook is given). Bytes that are not JSON, and a value nested past :data:`MAX_DEPTH`
    (one ``set`` refuses), raise :class:`EncodingError`."""
    try:
        return _on_any_stack(_decode, data, link_hook)
    except _TooDeep:
        raise _too_deep(data) from None


def _decode(data: bytes, link_hook: Callable[[Link], Any] | None) -> Any:
    try:
        value = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        shown = bytes(data[:60])
        raise EncodingError(
            f"a stored cell value is not JSON ({exc}; it starts {shown!r}): it was not written "
            "by sqlite-cells; write the cell again or restore the space file"
        ) from exc
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:  # (fewer cannot nest past the bound)
        _check_depth(value, data)
    if has_links(data):  # (first: a bad link says so, a link's index past 64 bits too)
        value = _walk(value, link_hook if link_hook is not None else _identity)
    if _MAY_OVERFLOW.search(data) is not None:
        _check_ints(value, data)
    return value


# Nineteen digits in a row: the fewest an integer past 64 bits has (2**63 has 19). Only such
# text is walked for one (digits in a string or a float's fraction match too: walked for none).
_MAY_OVERFLOW: Final = re.compile(rb"[0-9]{19}")


def _check_ints(value: Any, data: bytes) -> None:
    """R6: a cell value's integers are 64-bit. JSON has no limit, and another program may have
    stored a larger one: read back, it is refused as ``set`` would refuse it (a value ``get``
    returned and ``update`` could not write back), not returned. No recursion (any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is int and not INT_MIN <= item <= INT_MAX:
            shown = bytes(data[:60])
            raise EncodingError(
                f"a stored cell value holds the integer {brief_repr(item)}, which does not fit "
                f"in 64 bits (it starts {shown!r}): it was not written by sqlite-cells; write "
                "the cell again or restore the space file"
            )
        if kind is list:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.values())


def _check_depth(value: Any, data: bytes) -> None:
    """R6: a cell value nests at most :data:`MAX_DEPTH` lists and dicts, as ``set`` counts them
    (a link, stored as a sigil, counts as the cell it is). Another program may have stored a
    deeper one that the JSON decoder still reads: it is refused as a value nested too deeply,
    as ``set`` would refuse it — not returned, to fail later where it is walked (a key path's
    node, a subscriber, the command line) with a raw ``RecursionError``, or to be one that
    ``update`` cannot write back. No recursion (any depth)."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:  # (one level at a time: half the cost of a stack of (item, depth) pairs)
        if depth >= MAX_DEPTH and not all(is_link_sigil(item) for item in level):
            raise _too_deep(data)  # (a cell at the bottom level is no level of its own)
        deeper: list[Any] = []
        add = deeper.extend
        for item in level:
            if type(item) is dict:
                if len(item) == 1 and is_link_sigil(item):
                    continue
                add([c for c in item.values() if type(c) is dict or type(c) is list])
            else:
                add([c for c in item if type(c) is dict or type(c) is list])
        level = deeper
        depth += 1


def _too_deep(data: bytes) -> EncodingError:
    # Only another program can store such a value: encoding one this deep fails at set.
    shown = bytes(data[:60])
    return EncodingError(
        f"a stored cell value is nested too deeply to be read (it starts {shown!r}): it was not "
        "written by sqlite-cells; write the cell again or restore the space file"
    )


def _identity(link: Link) -> Any:
    return link


def _walk(value: Any, convert: Callable[[Link], Any]) -> Any:
    if type(value) is dict:
        if is_link_sigil(value):
            return convert(link_from_sigil(value))
        return {k: _walk(v, convert) for k, v in value.items()}
    if type(value) is list:
        return [_walk(v, convert) for v in value]
    return value

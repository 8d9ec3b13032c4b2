"""Cell values: JSON with embedded links.

``encode_value`` turns a Python value into canonical JSON bytes; objects that are not JSON (for
example a runtime ``Cell``) go through ``enc_hook``, which returns a :class:`Link`. ``decode_value``
reads the bytes back, handing each embedded link to ``link_hook``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from sqlite_cells.codec._errors import LinkEncodeError
from sqlite_cells.codec._links import Link, is_link_sigil, link_from_sigil

__all__ = ["decode_value", "encode_value", "has_links"]

_decoder = msgspec.json.Decoder()
_SIGIL_MARK = b'"link@1"'
# Every encoded link, bare or wrapped, holds one `"scope":"space"`; a wrapped one also one
# `"link@1":`. More scopes than sigils means a bare Link struct was encoded as its fields.
_SCOPE_MARK = b'"scope":"space"'


def encode_value(value: Any, enc_hook: Callable[[Any], Link | None] | None = None) -> bytes:
    """Encode ``value`` as JSON. ``enc_hook(obj)`` maps non-JSON objects to links (or returns
    None to refuse them). Raises :class:`LinkEncodeError` for anything it cannot encode."""

    def hook(obj: Any) -> Any:
        if isinstance(obj, Link):
            return obj.sigil()
        link = enc_hook(obj) if enc_hook is not None else None
        if link is None:
            raise LinkEncodeError(
                f"cannot store a {type(obj).__name__} in a cell: values are JSON (dict, list, str, "
                "int, float, bool, None) and cells, which are stored as links"
            )
        return link.sigil()

    try:
        data = msgspec.json.encode(value, enc_hook=hook, order="deterministic")
        if data.count(_SCOPE_MARK) != data.count(_SIGIL_MARK):
            # msgspec encodes a Link struct as its bare fields (hooks only see unknown types), so
            # a value that may hold one is rewritten with sigils and encoded again.
            data = msgspec.json.encode(_wrap_links(value), enc_hook=hook, order="deterministic")
    except LinkEncodeError:
        raise
    except (TypeError, msgspec.EncodeError) as exc:
        raise LinkEncodeError(f"cannot encode {value!r} as a cell value: {exc}") from exc
    return data


def _wrap_links(value: Any) -> Any:
    if isinstance(value, Link):
        return value.sigil()
    if isinstance(value, dict):
        return {k: _wrap_links(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wrap_links(v) for v in value]
    return value


def has_links(data: bytes) -> bool:
    """Cheap pre-check: could ``data`` hold a link at all?"""
    return _SIGIL_MARK in data


def decode_value(data: bytes, link_hook: Callable[[Link], Any] | None = None) -> Any:
    """Decode JSON bytes; each embedded link sigil becomes ``link_hook(link)`` (the Link itself
    when no hook is given)."""
    value = _decoder.decode(data)
    if not has_links(data):
        return value
    convert = link_hook if link_hook is not None else _identity
    return _walk(value, convert)


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

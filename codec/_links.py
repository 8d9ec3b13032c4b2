"""Links: the serialized reference to a cell (R30).

A link is the JSON text of ``{"/": {"link@1": {"id": "of:…", "space": "…", "scope": "space",
"path": [..]}}}``. It is absolute (id, space and scope always present); ``path`` is present only
when non-empty. Encoding is canonical: the same cell always gives the same bytes.

A link is *well-formed* when, besides that shape, its id is ``of:`` followed by at least one
character and no control character (Unicode ``Cc``: U+0000–U+001F, U+007F–U+009F; ids derived
here are ``of:`` and lowercase base32, R1, and no cause yields a newline or a NUL), and each path
element is a string or a 64-bit integer (R6; a negative index counts from the end of a list, as
``cell.key(-1)`` reads it, and stores written by earlier versions hold such links, R73).
These rules are the field types below, written once: every link read (``parse_link``,
``link_from_sigil``, ``parse_links``) is decoded against them, and every link written
(``encode_link``, ``Link.sigil``) is checked by the same decoder, so a link this library
writes is one it reads back. Link text with a key given twice in one object (``"id"``, ``"/"``,
``"link@1"``…) is not a link: it names two cells, and readers disagree on which (msgspec keeps
the last, SQLite's JSON functions the first).
"""

from __future__ import annotations

import json
import re
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Final, Literal, cast

import msgspec

from sqlite_cells.codec._errors import LinkDecodeError, LinkEncodeError, brief_repr
from sqlite_cells.codec._ids import MAX_NAME_BYTES, name_too_long

__all__ = [
    "Link",
    "LinkSigil",
    "ParsedLink",
    "check_link",
    "encode_link",
    "is_link_sigil",
    "link_from_sigil",
    "link_text_problem",
    "parse_link",
    "parse_links",
]

INT64_MAX: Final = 2**63 - 1
# A character an id may hold after "of:": anything but a control character (see the docstring).
_ID_CHAR: Final = r"[^\x00-\x1f\x7f-\x9f]"
# msgspec searches a pattern: anchored at both ends (\Z, not $, which passes a final newline).
_ID_PATTERN: Final = rf"^of:{_ID_CHAR}+\Z"

# An id is bounded as a name is: the runtime's own are short (derived), and one of megabytes
# named no cell, yet was carried into messages, reprs and statements whole.
LinkId = Annotated[str, msgspec.Meta(pattern=_ID_PATTERN, max_length=MAX_NAME_BYTES)]
INT64_MIN: Final = -(2**63)
PathIndex = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
PathElement = str | PathIndex
# A space id is a name: at most MAX_NAME_BYTES of UTF-8. msgspec counts characters (in C, at no
# cost per link); the bytes of one of more than a quarter of that many are counted apart
# (``_space_fits``).
SpaceId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_BYTES)]


class Link(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """An absolute reference to a cell (or a path inside its value). Built directly it is not
    validated; decoded (``parse_link``) the rules of R30 are checked by msgspec in the same pass
    (no Python runs per link), and encoded (``encode_link``, ``sigil``) it is checked by that
    same decoder: :class:`LinkEncodeError` when it is not well-formed."""

    id: LinkId
    space: SpaceId
    scope: Literal["space"]
    path: tuple[PathElement, ...] = ()

    def sigil(self) -> LinkSigil:
        sigil = LinkSigil(_LinkBody(self))
        _check_written(self, _encoded(self, sigil))
        return sigil

    def encode(self) -> bytes:
        return encode_link(self)


class _LinkBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    link: Link = msgspec.field(name="link@1")


class LinkSigil(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``{"/": {"link@1": …}}`` wrapper as it appears inside stored JSON."""

    body: _LinkBody = msgspec.field(name="/")


_encoder = msgspec.json.Encoder()
_sigil_decoder = msgspec.json.Decoder(LinkSigil)
decode_sigil = _sigil_decoder.decode  # for hot loops that handle msgspec.DecodeError themselves


def encode_link(link: Link) -> bytes:
    """The canonical JSON bytes of ``link``; :class:`LinkEncodeError` when it is not
    well-formed (see the module docstring), so that nothing writes a link no reader accepts."""
    data = _encoded(link, LinkSigil(_LinkBody(link)))
    _check_written(link, data)
    return data


def _encoded(link: Link, sigil: LinkSigil) -> bytes:
    try:
        return _encoder.encode(sigil)
    except UnicodeEncodeError as exc:  # a lone surrogate in its space id or path
        raise LinkEncodeError(
            f"cannot write a link to cell {brief_repr(link.id)} of space "
            f"{brief_repr(link.space)} at path {brief_repr(list(link.path))}: it holds text that "
            f"is not valid Unicode ({exc.reason}); links are stored as UTF-8"
        ) from exc


def _check_written(link: Link, data: bytes) -> None:
    """Decode ``data``, the encoding of ``link``, with the decoder that reads links: the one
    statement of what a well-formed link is."""
    try:
        _space_fits(_sigil_decoder.decode(data).body.link)
    except (msgspec.ValidationError, LinkDecodeError) as exc:
        raise LinkEncodeError(
            f"cannot write a link to cell {brief_repr(link.id)} at path "
            f"{brief_repr(list(link.path))}: {exc}. A link names its cell by an id without "
            "control characters, a space id of at most "
            f"{MAX_NAME_BYTES:,} bytes of UTF-8 and a path of strings and 64-bit integer indexes"
        ) from exc


# A name of at most this many characters is at most MAX_NAME_BYTES of UTF-8 (4 bytes a character).
_FITS_ANYWAY: Final = MAX_NAME_BYTES // 4


def _space_fits(link: Link) -> Link:
    """``link``, unless its space id or its cell id is over :data:`MAX_NAME_BYTES` in UTF-8
    (which no space or cell the runtime makes can have; msgspec bounds both in characters):
    then :class:`LinkDecodeError`."""
    if len(link.space) <= _FITS_ANYWAY and len(link.id) <= _FITS_ANYWAY:
        return link  # (what nearly every link is: decided without a call per name)
    for what, text in (("space id", link.space), ("cell id", link.id)):
        if name_too_long(text):
            raise LinkDecodeError(
                f"the link's {what} is {len(text.encode('utf-8')):,} bytes of UTF-8, over the "
                f"limit of {MAX_NAME_BYTES:,} for a name: no {what.split()[0]} has it"
            )
    return link


def check_link(link: Link) -> Link:
    """``link`` itself when it is well-formed — what :func:`parse_link` returns for its stored
    text — else :class:`LinkDecodeError`: a ``Link`` built directly is not validated, and one
    that no reader accepts names no cell (an id that is not ``of:…``, a control character, a
    scope other than ``space``, a path element that is not a str or a 64-bit integer)."""
    try:
        _space_fits(_sigil_decoder.decode(_encoder.encode(LinkSigil(_LinkBody(link)))).body.link)
    except (msgspec.MsgspecError, TypeError, ValueError, OverflowError) as exc:
        raise LinkDecodeError(
            f"not a link: {brief_repr(link)} ({exc}); a link names its cell by an id "
            '"of:…" without control characters, a space id, the scope "space" and a path of '
            "strings and "
            "64-bit integers — get links from cell.link() or parse them with parse_link"
        ) from exc
    return link


def parse_link(text: str | bytes | bytearray | memoryview) -> Link:
    """Parse the stored string form of a link — text, or its UTF-8 bytes in any of the forms a
    column value takes (``bytes``, ``bytearray``, ``memoryview``); anything but exactly one
    ``link@1`` sigil is a :class:`LinkDecodeError`."""
    if not isinstance(text, str | bytes | bytearray | memoryview):
        raise LinkDecodeError(
            f"expected a link string, got {type(text).__name__}: store links as their JSON text"
        )
    if type(text) is not str and type(text) is not bytes:  # a subclass names what its text does
        text = str.__str__(text) if isinstance(text, str) else _bytes_of(text)
    try:
        link = _space_fits(_sigil_decoder.decode(text).body.link)
        if (key := _key_given_twice(text, link)) is not None:
            raise LinkDecodeError(
                f"the key {key!r} is given twice in one object, so the text names two cells "
                "(SQLite's JSON functions read the first, msgspec the last); store the link "
                "as cell.link_str() gives it"
            )
        return link
    except (
        msgspec.DecodeError,
        UnicodeError,
        LinkDecodeError,
    ) as exc:  # UnicodeError: a lone surrogate
        shown = text if len(text) < 80 else text[:77]
        raise LinkDecodeError(
            f"not a link: {shown!r} ({exc}); a link is the JSON text "
            '{"/": {"link@1": {"id": "of:…", "space": …, "scope": "space"}}}'
        ) from exc


def _bytes_of(text: bytes | bytearray | memoryview) -> bytes:
    """The bytes a bytes-like value holds (not what a subclass's ``__bytes__`` says)."""
    try:
        return memoryview(text).tobytes()
    except ValueError as exc:  # a released memoryview
        raise LinkDecodeError(
            f"expected a link string, got a {type(text).__name__} whose bytes cannot be read "
            f"({exc}): pass the link's text, or bytes that are still held"
        ) from exc


# -- a key given twice ------------------------------------------------------------------------
#
# Finding a repeated key takes a JSON parse in Python, so it is done only where counting the
# text's quote characters (one scan in C) cannot rule one out. Each string of JSON text has two
# quotes, more when it holds escaped ones; text with no key twice that decodes to ``link`` holds
# 8 strings (the keys "/", "link@1", "id", "space", "scope" and the values of the last three),
# the key "path" when the path is not empty, and each str element of the path. A key given twice
# is one string more than that, so a count equal to ``_quotes_of(link)`` proves no key is given
# twice (a count above it, as for an explicit empty "path" or an escaped quote, is looked at).
_LINK_QUOTES: Final = 16  # _quotes_of a link with an empty path


def _quotes_of(link: Link | ParsedLink) -> int:
    """The quote characters in the canonical text of ``link``: the fewest any text of it has."""
    if not link.path:
        return _LINK_QUOTES
    return _LINK_QUOTES + 2 + 2 * sum(type(element) is str for element in link.path)


def _repeated_key(text: str | bytes) -> str | None:
    """A key that the JSON ``text`` (which msgspec has read) gives twice in one object, if any."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(items)
        if len(value) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    repeated.append(key)
                    break
                seen.add(key)
        return value

    try:
        json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # (never for text msgspec read; its reading stands)
        return None
    return repeated[0] if repeated else None


def _key_given_twice(text: str | bytes, link: Link | ParsedLink) -> str | None:
    """A key the link ``text`` (decoded as ``link``) gives twice in one object, if any; looked
    for only when its count of quote characters cannot rule one out (see ``_quotes_of``)."""
    quotes = text.count('"') if isinstance(text, str) else text.count(b'"')
    if quotes == _LINK_QUOTES or quotes == _quotes_of(link):
        return None
    return _repeated_key(text)


def _repeats_key(text: str | bytes, link: Link | ParsedLink) -> bool:
    return _key_given_twice(text, link) is not None


def link_text_problem(text: bytes) -> str:
    """What the UTF-8 ``text`` stored in a link column is instead of a link (R31): ``""`` when
    it is a well-formed link in its canonical form, the bytes :func:`encode_link` writes for
    that link (R30: one cell, one stored form, so a query comparing the column with a bound
    ``Cell`` finds every row that links to it). The one rule for a stored link value, used by
    the commit's check of link columns and by the check after a ``migrate`` callback."""
    try:
        sigil = _sigil_decoder.decode(text)
    except msgspec.DecodeError:  # not JSON, not a link, or not UTF-8
        return "text that is not a link"
    if name_too_long(sigil.body.link.space) or name_too_long(sigil.body.link.id):
        return f"a link to a space or cell id over the limit of {MAX_NAME_BYTES:,} bytes for a name"
    # Re-encoding what the decoder accepted is encode_link(parse_link(text)), without the second
    # decode encode_link makes to check what it writes (the decoder has just accepted it).
    canonical = _encoder.encode(sigil)
    if canonical != text:
        return f"a link not in its canonical form {brief_repr(canonical.decode())}"
    return ""


def is_link_sigil(value: Any) -> bool:
    """True when a decoded JSON value has the shape of a link sigil (a dict whose only key is
    ``"/"`` holding a dict whose only key is ``"link@1"``)."""
    if type(value) is not dict or len(value) != 1:
        return False
    inner = value.get("/")
    return type(inner) is dict and len(inner) == 1 and "link@1" in inner


def link_from_sigil(value: dict[str, Any]) -> Link:
    """Convert an already decoded sigil dict into a :class:`Link` (validated)."""
    try:
        return _space_fits(msgspec.convert(value, LinkSigil).body.link)
    except (msgspec.ValidationError, LinkDecodeError) as exc:
        raise LinkDecodeError(f"malformed link {brief_repr(value)}: {exc}") from exc


# -- many links at once ----------------------------------------------------------------------


class ParsedLink(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """The id, space and path of one stored link, as :func:`parse_links` returns them.

    The same fields and rules as :class:`Link` but for the id's pattern, which is checked (the
    same pattern) for a whole column at once after decoding: msgspec runs a ``pattern``
    through Python's ``re`` for every value, which costs more than the rest of the decode. Not
    tracked by the cycle collector (it holds strings and a tuple of strings and ints only),
    which halves the cost of allocating it."""

    id: Annotated[str, msgspec.Meta(max_length=MAX_NAME_BYTES)]
    space: SpaceId
    scope: Literal["space"]
    path: tuple[PathElement, ...] = ()


class _ParsedBody(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    link: ParsedLink = msgspec.field(name="link@1")


class _ParsedSigil(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    body: _ParsedBody = msgspec.field(name="/")


_decode_parsed = msgspec.json.Decoder(_ParsedSigil).decode
_link_of = attrgetter("body.link")
_id_of = attrgetter("id")
_path_of = attrgetter("path")
# Link.id's pattern, anchored by ``match``.
_id_fits = re.compile(_ID_PATTERN).match
# The same rule for many ids joined by NUL, in one pass of the regex engine instead of one call
# per id: no id may hold a NUL, so the joined text splits back into exactly those ids.
_ids_fit = re.compile(rf"(?:of:{_ID_CHAR}+\x00)*").fullmatch
# ValidationError is a DecodeError; UnicodeError: bytes that are not UTF-8, a lone surrogate.
_NOT_A_LINK = (msgspec.DecodeError, TypeError, UnicodeError)
_TEXT_TYPES = frozenset((str, bytes))
_TEXT_OR_NULL = frozenset((str, bytes, type(None)))


def parse_links(texts: list[Any]) -> list[ParsedLink | None]:
    """Parse many stored link strings: for each, its link where :func:`parse_link` would return
    one, else ``None`` (NULL, a value that is not text or bytes, anything but exactly one
    link). No Python runs per link when every value is a link or NULL; a column holding
    anything else is parsed value by value."""
    kinds = set(map(type, texts))
    if kinds <= _TEXT_TYPES:
        links = _parse_all(texts)
        if links is not None:
            return links
    elif kinds <= _TEXT_OR_NULL:
        links = _parse_all([text for text in texts if text is not None])
        if links is not None:
            found = iter(links)
            return [None if text is None else next(found) for text in texts]
    return [_parse_or_none(text) for text in texts]


def _parse_all(texts: list[str | bytes]) -> list[ParsedLink | None] | None:
    """The links of ``texts`` when every one is a link, else None."""
    try:
        links: list[ParsedLink | None] = list(map(_link_of, map(_decode_parsed, texts)))
    except _NOT_A_LINK:
        return None
    joined = "\x00".join(map(_id_of, links)) + "\x00"
    if links and not _ids_fit(joined):
        return None
    if (
        len(joined) > _FITS_ANYWAY
        and max(map(len, map(_id_of, links))) > _FITS_ANYWAY
        and any(name_too_long(link.id) for link in links if link is not None)
    ):
        return None  # (an id over the limit in UTF-8 bytes: looked at value by value)
    # The column holds at least the sum of _quotes_of its links; exactly that, no key is given
    # twice in any of them (see _quotes_of); else each link is looked at.
    quotes = _column_quotes(texts)
    if (
        quotes != _LINK_QUOTES * len(links)
        and quotes != _column_quotes_of(links)
        and any(map(_repeats_key, texts, cast("list[ParsedLink]", links)))  # (none is None)
    ):
        return None
    return links


def _column_quotes_of(links: list[ParsedLink | None]) -> int:
    """The sum of ``_quotes_of`` the (decoded) ``links``, without Python per link."""
    paths = list(map(_path_of, links))
    with_path = len(paths) - paths.count(())
    in_paths = list(map(type, chain.from_iterable(paths))).count(str)
    return _LINK_QUOTES * len(paths) + 2 * with_path + 2 * in_paths


def _column_quotes(texts: list[str | bytes]) -> int:
    """The quote characters in all of ``texts``; -1 when they mix text and bytes."""
    try:
        return "".join(texts).count('"')  # type: ignore[arg-type]  # (bytes: TypeError)
    except TypeError:
        try:
            return b"".join(texts).count(b'"')  # type: ignore[arg-type]  # (str: TypeError)
        except TypeError:
            return -1


def _parse_or_none(text: Any) -> ParsedLink | None:
    if not isinstance(text, str | bytes):
        if not isinstance(text, bytearray | memoryview):
            return None
        try:  # (the bytes-like forms parse_link takes: read as their bytes)
            text = memoryview(text).tobytes()
        except ValueError:  # a released memoryview
            return None
    try:
        link = _decode_parsed(text).body.link
    except _NOT_A_LINK:
        return None
    if not _id_fits(link.id) or name_too_long(link.id) or _repeats_key(text, link):
        return None
    return link

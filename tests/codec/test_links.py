from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlite_cells.codec import (
    MAX_NAME_BYTES,
    Link,
    LinkDecodeError,
    LinkEncodeError,
    ValueEncodeError,
    decode_value,
    derive_id,
    encode_link,
    encode_value,
    link_from_sigil,
    link_text_problem,
    parse_link,
    parse_links,
)

ids = st.builds(lambda s: derive_id("cell", s), st.text(max_size=20))
paths = st.lists(
    st.one_of(st.text(max_size=8), st.integers(0, 1000), st.just(2**63 - 1)), max_size=4
).map(tuple)
links = st.builds(
    Link, id=ids, space=st.text(min_size=1, max_size=30), scope=st.just("space"), path=paths
)


@given(links)
def test_link_round_trips_and_is_canonical(link: Link) -> None:
    data = encode_link(link)
    assert parse_link(data) == link
    assert parse_link(data.decode()) == link
    assert encode_link(parse_link(data)) == data


def test_link_json_shape_matches_r30() -> None:
    link = Link(id="of:abc", space="did:key:z6Mk1", scope="space", path=("a", 0))
    assert json.loads(encode_link(link)) == {
        "/": {
            "link@1": {"id": "of:abc", "space": "did:key:z6Mk1", "scope": "space", "path": ["a", 0]}
        }
    }
    bare = Link(id="of:abc", space="demo", scope="space")
    assert encode_link(bare) == b'{"/":{"link@1":{"id":"of:abc","space":"demo","scope":"space"}}}'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "{}",
        "[]",
        '"of:abc"',
        '{"/": {}}',
        '{"/": {"link@1": {"id": "of:a", "space": "s"}}}',  # no scope
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "space", "x": 1}}}',
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "space"}}, "x": 1}',
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "space"}, "link@2": {}}}',
        '{"/": {"link@1": {"id": "abc", "space": "s", "scope": "space"}}}',
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "global"}}}',
        '{"/": {"link@1": {"id": "of:a", "space": "", "scope": "space"}}}',
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "space", "path": [true]}}}',
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "space", "path": [1.5]}}}',
        '{"/": {"link@1": {"id": "of:a", "space": "s", "scope": "space"}}',  # truncated
    ],
)
def test_anything_but_one_link_sigil_is_refused(text: str) -> None:
    with pytest.raises(LinkDecodeError) as info:
        parse_link(text)
    assert "link" in str(info.value)


def test_non_string_is_refused() -> None:
    with pytest.raises(LinkDecodeError, match="expected a link string"):
        parse_link(42)  # type: ignore[arg-type]  # the wrong type on purpose


def test_ids_are_deterministic_and_content_addressed() -> None:
    a = derive_id("cell", "demo", "counter")
    assert a == derive_id("cell", "demo", "counter")
    assert a.startswith("of:") and len(a) == 3 + 52
    assert a != derive_id("cell", "demo", "counter2")
    assert a != derive_id("cell", "demo2", "counter")
    # The cause is structured: joining parts differently gives another id.
    assert derive_id("ab", "c") != derive_id("a", "bc")
    with pytest.raises(TypeError):
        derive_id("cell", True)


# -- well-formed links: one rule for every reader and writer (R1, R6, R30) ----------------------


def _link_text(**fields: object) -> str:
    inner = {"id": "of:abc", "space": "demo", "scope": "space", **fields}
    return json.dumps({"/": {"link@1": inner}}, separators=(",", ":"), ensure_ascii=False)


MALFORMED = [
    pytest.param({"path": [2**63]}, id="index-past-64-bits"),
    pytest.param({"path": ["a", -(2**63) - 1]}, id="index-below-64-bits"),
    pytest.param({"path": [10**30]}, id="huge-index"),
    pytest.param({"path": [1.0]}, id="float-index"),
    pytest.param({"path": [None]}, id="null-element"),
    pytest.param({"id": "of:a\nb"}, id="id-newline"),
    pytest.param({"id": "of:\n"}, id="id-only-newline"),
    pytest.param({"id": "of:abc\n"}, id="id-final-newline"),
    pytest.param({"id": "of:a\u0000"}, id="id-nul"),
    pytest.param({"id": "of:a\tb"}, id="id-tab"),
    pytest.param({"id": "of:a\u007f"}, id="id-del"),
    pytest.param({"id": "of:a\u0085"}, id="id-c1-control"),
    pytest.param({"id": "of:"}, id="id-empty"),
]
WELL_FORMED = [
    pytest.param({"path": [0]}, id="index-0"),
    pytest.param({"path": [2**63 - 1]}, id="index-64-bit-max"),
    pytest.param({"path": ["a\nb", "\u0000", ""]}, id="any-text-key"),
    pytest.param({"id": "of:é ü-_.~"}, id="id-printable-unicode"),
    pytest.param({"id": "of:a b"}, id="id-space"),
]


@pytest.mark.parametrize("fields", MALFORMED)
def test_malformed_links_are_refused_by_every_reader(fields: dict[str, object]) -> None:
    text = _link_text(**fields)
    with pytest.raises(LinkDecodeError):
        parse_link(text)
    with pytest.raises(LinkDecodeError):
        link_from_sigil(json.loads(text))
    with pytest.raises(LinkDecodeError):
        decode_value(json.dumps({"who": json.loads(text)}).encode())
    assert parse_links([text]) == [None]
    good = _link_text()
    assert parse_links([good, text, None]) == [parse_links([good])[0], None, None]


@pytest.mark.parametrize("fields", WELL_FORMED)
def test_well_formed_links_are_read_by_every_reader(fields: dict[str, object]) -> None:
    text = _link_text(**fields)
    link = parse_link(text)
    assert link_from_sigil(json.loads(text)) == link
    parsed = parse_links([text, text])
    assert parsed[0] is not None and (parsed[0].id, parsed[0].path) == (link.id, link.path)
    assert encode_link(link).decode() == text


@pytest.mark.parametrize(
    "link",
    [
        Link(id="of:abc", space="demo", scope="space", path=(-(2**63) - 1,)),
        Link(id="of:abc", space="demo", scope="space", path=(2**63,)),
        Link(id="of:a\nb", space="demo", scope="space"),
        Link(id="of:a\x00", space="demo", scope="space"),
        Link(id="abc", space="demo", scope="space"),
        # A space id no space can have (R30: a name), in characters and in UTF-8 bytes.
        Link(id="of:abc", space="s" * (MAX_NAME_BYTES + 1), scope="space"),
        Link(id="of:abc", space="é" * (MAX_NAME_BYTES // 2) + "x", scope="space"),
        # Text that is not valid Unicode (a lone surrogate) was a raw UnicodeEncodeError.
        Link(id="of:abc", space="demo\ud800", scope="space"),
        Link(id="of:abc", space="demo", scope="space", path=("\udc80",)),
    ],
    ids=lambda link: None,
)
def test_a_malformed_link_is_never_written(link: Link) -> None:
    with pytest.raises(LinkEncodeError, match="cannot write a link"):
        encode_link(link)
    with pytest.raises(ValueEncodeError, match=r"at value\['who'\]: cannot write a link"):
        encode_value({"who": link})
    with pytest.raises(LinkEncodeError, match="cannot write a link"):
        link.sigil()


@pytest.mark.parametrize(
    "space",
    ["s" * (MAX_NAME_BYTES + 1), "é" * (MAX_NAME_BYTES // 2) + "x"],
    ids=["characters", "utf-8-bytes"],
)
def test_a_link_to_a_space_id_over_the_name_limit_names_no_cell(space: str) -> None:
    """R30, R31, R43: no space has such an id (names are at most MAX_NAME_BYTES of UTF-8). The
    codec read and stored it as a link; resolving it then failed with a ValueEncodeError, so a
    typed query of a column holding one failed whole."""
    text = _link_text(space=space)
    with pytest.raises(LinkDecodeError, match="not a link"):
        parse_link(text)
    with pytest.raises(LinkDecodeError):
        link_from_sigil(json.loads(text))
    assert link_text_problem(text.encode()) != ""  # refused in a link column
    if len(space) > MAX_NAME_BYTES:
        assert parse_links([text, _link_text()])[0] is None


@given(
    st.text(st.characters(max_codepoint=0x2FF), max_size=6),
    st.one_of(
        st.integers(-(2**64), 2**64),
        st.sampled_from([-(2**63) - 1, -(2**63), -1, 0, 2**63 - 1, 2**63]),
    ),
)
def test_one_rule_for_one_link_and_for_many(tail: str, index: int) -> None:
    """``parse_link`` (one value) and ``parse_links`` (a column at once) accept the same
    links — those with an id of printable characters and a 64-bit index — and what
    they accept is what ``encode_link`` writes."""
    text = _link_text(id="of:" + tail, path=[index])
    printable = not any(unicodedata.category(c) == "Cc" for c in tail)
    well_formed = tail != "" and printable and -(2**63) <= index <= 2**63 - 1
    try:
        link = parse_link(text)
    except LinkDecodeError:
        assert not well_formed
        assert parse_links([text]) == [None]
        assert parse_links([_link_text(), text]) == [parse_links([_link_text()])[0], None]
        return
    assert well_formed
    found = parse_links([text])[0]
    assert found is not None and (found.id, found.path) == (link.id, link.path)
    assert encode_link(link).decode() == text


def test_a_link_to_a_cell_id_over_the_name_limit_names_no_cell() -> None:
    """A cell id of megabytes names no cell (the runtime's are derived, short): it was decoded,
    then carried whole into messages (70 MB), reprs and a statement that failed at commit. It
    is bounded as a name is, and a malformed link is shown cut in messages."""
    huge = "of:" + "a" * (MAX_NAME_BYTES + 1)
    text = json.dumps({"/": {"link@1": {"id": huge, "space": "s", "scope": "space"}}})
    with pytest.raises(LinkDecodeError, match="not a link") as info:
        parse_link(text)
    assert len(str(info.value)) < 2_000
    with pytest.raises(LinkDecodeError, match="malformed link") as info:
        link_from_sigil(json.loads(text))
    assert len(str(info.value)) < 2_000
    assert link_text_problem(text.encode()) != ""  # refused in a link column
    with pytest.raises(LinkEncodeError, match="cannot write a link"):
        encode_link(Link(id=huge, space="s", scope="space"))
    # Over the limit in UTF-8 bytes, under it in characters: refused on every path too.
    wide = "of:" + "\U0001f600" * (MAX_NAME_BYTES // 4 + 1)
    text = json.dumps(
        {"/": {"link@1": {"id": wide, "space": "s", "scope": "space"}}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    with pytest.raises(LinkDecodeError):
        parse_link(text)
    assert parse_links([text])[0] is None and parse_links([text, None])[0] is None
    assert "over the limit" in link_text_problem(text.encode())


_FIRST = '{"id":"of:first","space":"s","scope":"space"}'
_SECOND = '{"id":"of:second","space":"s","scope":"space"}'
REPEATED_KEYS = [
    pytest.param(
        '{"/": {"link@1": {"id":"of:first","id":"of:second","space":"s","scope":"space"}}}',
        "id",
        id="id",
    ),
    pytest.param(f'{{"/":{{"link@1":{_FIRST}}},"/":{{"link@1":{_SECOND}}}}}', "/", id="slash"),
    pytest.param(f'{{"/":{{"link@1":{_FIRST},"link@1":{_SECOND}}}}}', "link@1", id="link@1"),
    pytest.param(
        '{"/":{"link@1":{"id":"of:a","space":"s","space":"t","scope":"space"}}}',
        "space",
        id="space",
    ),
    pytest.param(
        '{"/":{"link@1":{"id":"of:a","space":"s","scope":"space","scope":"space"}}}',
        "scope",
        id="same-value-twice",
    ),
    pytest.param(
        '{"/":{"link@1":{"id":"of:a","space":"s","scope":"space","path":["x"],"path":["y"]}}}',
        "path",
        id="path",
    ),
    pytest.param(
        '{"/":{"link@1":{"id":"of:a","space":"s","scope":"space","path":[1],"path":[]}}}',
        "path",
        id="path-then-empty",
    ),
    pytest.param(
        '{"/":{"link@1":{"id":"of:a","id":"of:\\"b","space":"s","scope":"space"}}}',
        "id",
        id="escaped-quote",
    ),
]


@pytest.mark.parametrize(("text", "key"), REPEATED_KEYS)
def test_link_text_with_a_key_given_twice_is_not_a_link(text: str, key: str) -> None:
    """R30: such text names two cells — msgspec kept the last value of the key, SQLite's JSON
    functions take the first — so no reader takes it for a link (a write already refused it),
    as text or as bytes, one value or a column."""
    for stored in (text, text.encode()):
        with pytest.raises(LinkDecodeError, match="not a link") as info:
            parse_link(stored)
        assert f"the key {key!r} is given twice" in str(info.value)
        assert "cell.link_str()" in str(info.value)
        assert parse_links([stored]) == [None]
        good = _link_text().encode() if isinstance(stored, bytes) else _link_text()
        assert [link is None for link in parse_links([good, stored, None, good])] == [
            False,
            True,
            True,
            False,
        ]
    assert link_text_problem(text.encode()) != ""  # (a write refuses it too)


@pytest.mark.parametrize(
    "text",
    [
        _link_text(),
        _link_text(path=["a", 0, 'b"c']),
        _link_text(path=[]),  # an explicit empty path
        _link_text(id='of:a"b', space='s"\\'),  # escaped quotes and backslashes
        _link_text(id="of:\u00e9", space="\u00e9"),
        json.dumps({"/": {"link@1": {"scope": "space", "space": "demo", "id": "of:abc"}}}),
        ' {"/" : {"link@1" :\n{"id":"of:abc","space":"demo","scope":"space","path":["k"]}}} ',
        '{"/":{"link@1":{"id":"of:\\u0061","space":"\\"","scope":"space"}}}',
    ],
    ids=[
        "canonical",
        "path",
        "empty-path",
        "escapes",
        "non-ascii",
        "other-order",
        "spaced",
        "u-escape",
    ],
)
def test_links_with_each_key_once_still_decode(text: str) -> None:
    link = parse_link(text)
    assert parse_link(text.encode()) == link
    found = parse_links([text, text.encode(), None])
    assert [(p.id, p.space, p.path) for p in found if p is not None] == [
        (link.id, link.space, link.path)
    ] * 2
    assert [
        (p.id, p.path) for p in parse_links([text, encode_link(link).decode()]) if p is not None
    ] == [(link.id, link.path)] * 2

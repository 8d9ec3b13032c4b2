from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlite_cells.codec import Link, LinkDecodeError, derive_id, encode_link, parse_link

ids = st.builds(lambda s: derive_id("cell", s), st.text(max_size=20))
paths = st.lists(st.one_of(st.text(max_size=8), st.integers(-5, 1000)), max_size=4).map(tuple)
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

"""R6: a dict the decoder would read as a link is refused when encoded, so every value that
encodes reads back as it was given (a link comes back only from a ``Link``/``Cell``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlite_cells.codec import Link, ValueEncodeError, decode_value, encode_value, is_link_sigil

LINK = Link(id="of:x", space="demo", scope="space")
WELL_FORMED = {"/": {"link@1": {"id": "of:x", "space": "demo", "scope": "space"}}}


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (WELL_FORMED, "the value"),
        ({"v": WELL_FORMED}, r"at value\['v'\]"),
        ({"v": {"/": {"link@1": {"id": "of:x"}}}}, r"at value\['v'\]"),  # malformed link
        ([1, {"/": {"link@1": 5}}], r"at value\[1\]"),
        ((0, {"a": {"/": {"link@1": None}}}), r"at value\[1\]\['a'\]"),  # through the slow walk
        ({"v": {"/": {"link@1": LINK}}}, r"at value\['v'\]"),  # a Link inside the shape
        ({"v": OrderedDict({"/": OrderedDict({"link@1": {}})})}, r"at value\['v'\]"),
    ],
)
def test_r6_a_dict_shaped_like_a_link_is_refused(value: Any, where: str) -> None:
    with pytest.raises(ValueEncodeError, match=where) as info:
        encode_value(value)
    message = str(info.value)
    assert "read back as a Cell" in message
    assert "put the Cell itself in the value" in message and 'another key than "/"' in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "value",
    [
        {"/": "x"},
        {"/": {"link@9": {}}},
        {"/": {"link@1": {}, "more": 1}},
        {"/": {}, "b": 2},
        {"link@1": {"id": "of:x", "space": "demo", "scope": "space"}},
        {"/": [{"link@1": {}}]},
        {"k": "link@1", "/": "link@1"},
        ["/", "link@1"],
    ],
)
def test_r6_near_misses_are_stored_and_read_back_as_given(value: Any) -> None:
    assert decode_value(encode_value(value)) == value


def test_r6_real_links_still_encode_as_links() -> None:
    data = encode_value({"who": LINK, "all": [LINK, {"/": "x"}]})
    assert decode_value(data) == {"who": LINK, "all": [LINK, {"/": "x"}]}
    assert isinstance(decode_value(data)["who"], Link)


# Keys drawn from the sigil's own, and the link's shape planted, so that it (and near misses:
# another key beside it, another key inside) comes up often.
keys = st.sampled_from(["/", "link@1", "id", "x"])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["of:x", "demo"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(keys, inner, min_size=1, max_size=2),
        st.builds(lambda body: {"/": body}, st.dictionaries(keys, inner, min_size=1, max_size=2)),
    ),
    max_leaves=12,
)


def _holds_link_shape(value: Any) -> bool:
    if isinstance(value, dict):
        return is_link_sigil(value) or any(_holds_link_shape(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_link_shape(v) for v in value)
    return False


@given(json_values)
def test_r6_every_json_value_round_trips_or_is_refused(value: Any) -> None:
    """Nothing is converted silently: a value that encodes decodes to itself."""
    try:
        data = encode_value(value)
    except ValueEncodeError:
        assert _holds_link_shape(value)
        return
    assert not _holds_link_shape(value)
    assert decode_value(data) == value

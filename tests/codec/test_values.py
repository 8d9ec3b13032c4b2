from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import sys
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlite_cells.codec import (
    MAX_DEPTH,
    CellWrite,
    CommitRecord,
    EncodingError,
    Link,
    Op,
    ValueEncodeError,
    decode_record,
    decode_value,
    derive_id,
    encode_plain,
    encode_record,
    encode_value,
)


class Color(enum.Enum):
    RED = 1


class Named(enum.StrEnum):
    X = "x"


@dataclasses.dataclass
class Point:
    x: int
    y: int


links = st.builds(
    Link,
    id=st.builds(lambda s: derive_id("cell", s), st.text(max_size=5)),
    space=st.text(min_size=1, max_size=10),
    scope=st.just("space"),
    path=st.lists(st.one_of(st.text(max_size=4), st.integers(0, 9)), max_size=2).map(tuple),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
values = st.recursive(
    st.one_of(scalars, links),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_values_with_links_round_trip(value: Any) -> None:
    data = encode_value(value)
    assert decode_value(data) == value
    assert encode_value(decode_value(data)) == data  # canonical


def test_links_decode_through_the_hook() -> None:
    link = Link(id="of:x", space="s", scope="space")
    data = encode_value({"who": link, "n": 1})
    assert decode_value(data, lambda link: ("cell", link.id)) == {"who": ("cell", "of:x"), "n": 1}


def test_unencodable_values_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueEncodeError, match=r"at value\['x'\]: cannot store a object"):
        encode_value({"x": object()})
    with pytest.raises(ValueEncodeError, match="dict keys must be str"):
        encode_value({1: "non-string key"})


@pytest.mark.parametrize(
    "value",
    [
        b"bytes",
        bytearray(b"x"),
        float("nan"),
        float("inf"),
        -float("inf"),
        {1, 2},
        frozenset(),
        datetime.datetime(2020, 1, 1),
        datetime.date(2020, 1, 1),
        decimal.Decimal("1.5"),
        uuid.UUID(int=0),
        2**70,
        -(2**63) - 1,
        2**63,
        Color.RED,
        Named.X,
        [1, [2, {"a": {3}}]],
        {"k": float("nan")},
        {("t",): 1},
        "\ud800",
        {"\udfff": 1},
        object(),
        Point(1, 2),
    ],
)
def test_r6_non_json_values_raise_value_encode_error(value: Any) -> None:
    with pytest.raises(ValueEncodeError) as info:
        encode_value(value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_r6_limits_of_json_values_are_kept_exactly() -> None:
    for value in [2**63 - 1, -(2**63), 1.5, -0.0, "", [], {}, (1, "a"), True, None]:
        back = decode_value(encode_value(value))
        assert back == (list(value) if isinstance(value, tuple) else value)


def test_r6_self_containing_values_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueEncodeError, match="more than 256 levels deep"):
        encode_value(loop)
    mapping: dict[str, Any] = {}
    mapping["self"] = mapping
    with pytest.raises(ValueEncodeError, match=r"more than 256 levels deep \(or contains itself"):
        encode_value(mapping)


def _nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def _from_frames(frames: int, work: Any) -> Any:
    """``work()`` called ``frames`` Python frames deeper than the caller."""
    return work() if frames == 0 else _from_frames(frames - 1, work)


def test_r6_nesting_is_bounded_by_a_fixed_depth_not_by_the_caller_s_stack() -> None:
    """A value nests at most MAX_DEPTH (256) lists and dicts, whatever the stack of the code
    storing it; a value within it is encoded and decoded from any depth of the caller's stack
    (it was judged against the stack: 331 levels stored from the top, then unreadable from 550
    frames deep, blamed on "another program")."""
    assert MAX_DEPTH == 256
    deepest = _nested(MAX_DEPTH, "leaf")
    data = encode_value(deepest)
    assert decode_value(data) == deepest
    with pytest.raises(ValueEncodeError, match="more than 256 levels deep") as info:
        encode_value(_nested(MAX_DEPTH + 1, "leaf"))
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueEncodeError, match="more than 256 levels deep"):
        encode_value([_nested(MAX_DEPTH, "leaf")])  # the bound counts from the top
    depth = sys.getrecursionlimit() - 100
    assert _from_frames(depth, lambda: encode_value(deepest)) == data
    assert _from_frames(depth, lambda: decode_value(data)) == deepest


def _stack_depth() -> int:
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@pytest.mark.parametrize(
    ("work", "expected"),
    [
        (lambda: encode_value(7), b"7"),
        (lambda: encode_value([{"k": 7}]), b'[{"k":7}]'),
        (lambda: encode_plain({"k": [7]}), b'{"k":[7]}'),
        (lambda: decode_value(b'[{"k":7}]'), [{"k": 7}]),
    ],
    ids=["int", "nested", "plain", "decode"],
)
def test_r6_the_caller_s_stack_running_out_is_not_a_value_nested_too_deeply(
    work: Any, expected: Any
) -> None:
    """From every depth up to the recursion limit, a shallow value is encoded (decoded) or the
    caller gets a ``RecursionError``: 9-10 frames short of the limit, ``encode_value(7)`` raised
    ``ValueEncodeError`` "nested too deeply" (and ``decode_value`` an ``EncodingError`` blaming
    another program), the new thread that gives a deep value an empty stack failing to start."""
    room = sys.getrecursionlimit() - _stack_depth()
    outcomes = []
    for frames in range(room - 40, room + 1):
        try:
            assert _from_frames(frames, work) == expected
            outcomes.append("done")
        except RecursionError:
            outcomes.append("out of stack")
    assert "done" in outcomes and "out of stack" in outcomes


def test_stored_bytes_that_are_not_json_raise_an_encoding_error() -> None:
    with pytest.raises(EncodingError, match="not JSON"):
        decode_value(b"\xff{nope")


def test_dict_key_order_does_not_change_the_bytes() -> None:
    assert encode_value({"b": 1, "a": 2}) == encode_value({"a": 2, "b": 1})


def test_commit_records_round_trip() -> None:
    import msgspec

    record = CommitRecord(
        seq=7,
        writes=(CellWrite("of:a", msgspec.Raw(b'{"x":1}')),),
        ops=(Op("sqlite", "of:db", msgspec.Raw(b'["INSERT", 1]')),),
    )
    back = decode_record(encode_record(record))
    assert back.seq == 7
    assert bytes(back.writes[0].value) == b'{"x":1}'
    assert back.ops[0].kind == "sqlite" and bytes(back.ops[0].body) == b'["INSERT", 1]'


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_encode_plain_is_encode_value_without_the_check(value: Any) -> None:
    assert encode_plain(value) == encode_value(value)


def test_encode_plain_refuses_lone_surrogates_like_encode_value() -> None:
    with pytest.raises(ValueEncodeError, match="surrogates"):
        encode_plain({"tables": {"t\ud800": {}}})

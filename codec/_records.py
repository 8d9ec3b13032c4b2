"""Commit records: what each seq of a space's log holds.

A record lists the cell writes of the commit (id, the new JSON value, verbatim) and a generic list
of typed ops that other packages define (``kind`` names the commit participant that applies it,
``target`` what it touches, ``body`` its own JSON payload, kept verbatim). Records are JSON, so
cell values are spliced in as they were written, never re-encoded.
"""

from __future__ import annotations

import msgspec

__all__ = ["CellWrite", "CommitRecord", "Op", "decode_record", "encode_record"]


class CellWrite(msgspec.Struct, frozen=True, array_like=True):
    id: str
    value: msgspec.Raw


class Op(msgspec.Struct, frozen=True, array_like=True):
    """One typed operation of a commit, applied by the participant registered for ``kind``."""

    kind: str
    target: str
    body: msgspec.Raw = msgspec.Raw(b"null")


class CommitRecord(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    writes: tuple[CellWrite, ...] = ()
    ops: tuple[Op, ...] = ()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CommitRecord)


def encode_record(record: CommitRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> CommitRecord:
    return _decoder.decode(data)

"""Commit records: what each seq of a space's log holds.

A record lists the cell writes of the commit (id, the new JSON value, verbatim) and a generic list
of typed ops that other packages define (``kind`` names the commit participant that applies it,
``target`` what it touches, ``body`` its own JSON payload, kept verbatim). Records are JSON, so
cell values are spliced in as they were written, never re-encoded.
"""

from __future__ import annotations

import msgspec

from sqlite_cells.codec._errors import EncodingError

__all__ = ["CellWrite", "CommitRecord", "Op", "decode_record", "encode_record", "stored_json"]


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


class UnreadableRecord(EncodingError):
    """A record of a space's commit log that does not decode (:func:`decode_record`): the space
    file is damaged in a way SQLite itself does not see. ``reason`` is what was wrong with it,
    without the advice."""

    def __init__(self, why: str, where: str | None) -> None:
        which = "a record of a space's commit log" if where is None else f"the log record {where}"
        self.reason = f"{which} cannot be read ({why})"
        super().__init__(_unreadable(why, where))


def decode_record(data: object, *, where: str | None = None) -> CommitRecord:
    """The record ``data`` holds, as SQLite returns it from ``_cf_log.record``: JSON bytes, or
    JSON text (another program may store it as text). Anything else, or JSON that is not a
    record, is an :class:`UnreadableRecord` (never a raw decoding error: a runtime reading the log
    and every command line tool report it as such). ``where`` says which record it is (its seq
    and space file: ``"of seq 3 in space file /s/space-….sqlite"``), for the message.

    Text that is not valid UTF-8 never reaches here as ``str``: apsw fails to fetch it. A
    query that may meet it selects the column as bytes (``runtime.stored_json_column``), and
    the JSON decoder refuses the bytes, naming the record."""
    found = stored_json(data)
    if found is None:
        raise UnreadableRecord(f"a stored {type(data).__name__}, not JSON", where)
    try:
        return _decoder.decode(found)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UnreadableRecord(str(exc) or type(exc).__name__, where) from exc


def stored_json(data: object) -> bytes | None:
    """A stored JSON value (a cell's value, a commit record) as SQLite returns it, as bytes to
    decode: a BLOB as it is, text (another program may store JSON as text) as its UTF-8 bytes;
    None for anything else (a number, NULL), which holds no JSON — and must not become
    ``bytes(n)``, n zero bytes."""
    if type(data) is bytes:
        return data
    if type(data) is str:
        return data.encode("utf-8")
    return None


def _unreadable(why: str, where: str | None) -> str:
    which = "a record of a space's commit log" if where is None else f"the log record {where}"
    return (
        f"{which} cannot be read ({why}): sqlite-cells did not write "
        "it, or the space file is damaged; nothing was done with it: run `sqlite-cells check` "
        "and restore the space file from a backup"
    )

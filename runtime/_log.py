"""The commit log in a space file: its newest seq, the hash of a record a database file's journal
follows (R71), compaction, and the integers the runtime stores there (read back strictly: another
program may have written the file)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import apsw

from sqlite_cells.codec import CommitRecord, EncodingError, decode_record
from sqlite_cells.runtime._boundary import stored_json_column
from sqlite_cells.runtime._marks import known_head, record_hash

__all__ = [
    "compact_log",
    "compaction_point",
    "last_seq",
    "live_bytes",
    "log_bytes",
    "log_head",
    "op_index_seq",
    "op_targets",
    "record_size",
    "shown_stored",
    "stored_int",
    "stored_text_id",
]

_KINDS = {int: "the integer", float: "the real number", str: "the text", bytes: "the blob"}


def shown_stored(stored: object) -> str:
    """A value SQLite returned, as a message shows it (its storage class, a short repr)."""
    if stored is None:
        return "NULL"
    text = repr(stored)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{_KINDS.get(type(stored), type(stored).__name__)} {text}"


def last_seq(conn: apsw.Connection) -> int:
    """The space's last seq: compaction always keeps the newest record, so it is the log's."""
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM _cf_log").fetchone()
    assert row is not None
    return stored_int(row[0], "the commit log's newest seq")


def compaction_point(conn: apsw.Connection) -> int:
    """The seq up to which the log behind ``conn`` may have lost records (0: none lost). It only
    tells when to compact next, so a value another program wrote there is refused with advice
    to delete the row (text as its bytes: text that is not UTF-8 is refused as such, naming the
    row, not as apsw's raw decoding error)."""
    row = conn.execute(
        f"SELECT {stored_json_column('value')} FROM _cf_meta WHERE key = 'compacted'"
    ).fetchone()
    if row is None:
        return 0
    return stored_int(
        row[0],
        "the log's compaction point (the _cf_meta row 'compacted')",
        remedy=(
            "delete that row with another tool (it only records how far the log was compacted: "
            "the next compaction writes it again), or restore the space file from a backup"
        ),
        text_as_bytes=True,
        file=conn.filename,
    )


# What to do about a seq of the op index that is not an integer: the index only lists which
# commits wrote which target, and a check rebuilds the rows it misses from the log (R71).
OP_INDEX_SEQ_REMEDY = (
    "delete that row with another tool (`DELETE FROM _cf_op_index WHERE typeof(seq) <> "
    "'integer'`: the index only lists which commits wrote what), then run `sqlite-cells check "
    "--repair`, which rebuilds the rows the index misses from the space's log"
)


def op_index_seq(value: object, target: str, file: str) -> int:
    """``value``, a seq read from the op index row(s) of ``target``; anything else there is an
    :class:`EncodingError` naming the row, the space file and what to do."""
    return stored_int(
        value,
        f"a seq of the op index (a _cf_op_index row of target {target})",
        remedy=OP_INDEX_SEQ_REMEDY,
        file=file,
    )


def op_targets(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The rows of a scan of ``_cf_op_index`` whose first column is a target selected with
    :data:`TARGET_BYTES`, each as (target, the other columns). A target that is not UTF-8 text
    (another program's row: every id the runtime writes is ASCII, so no database has it) is
    skipped, as a scan of the cells skips such an id, instead of failing the whole scan in
    apsw's decoding; a database whose row it replaced is missed by the index, which its check
    finds and rebuilds from the log (R71)."""
    for raw, *rest in rows:
        target = stored_text_id(raw)
        if target is not None:
            yield target, tuple(rest)


# An op target, text as its bytes (see ``op_targets``).
TARGET_BYTES: Final = "CASE typeof(target) WHEN 'text' THEN CAST(target AS BLOB) END"


def stored_text_id(raw: object) -> str | None:
    """An id read as bytes by a scan, as text; None for a row another program wrote whose id
    is no UTF-8 text (no runtime can name it)."""
    if type(raw) is not bytes:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def log_bytes(conn: apsw.Connection) -> int:
    """The bytes of the log records above the compaction point (what compaction by size bounds;
    SQLite reads a blob's length from the row's header, not from its overflow pages)."""
    row = conn.execute(
        "SELECT coalesce(sum(length(record)), 0) FROM _cf_log WHERE seq > ?",
        (compaction_point(conn),),
    ).fetchone()
    return int(row[0]) if row is not None else 0


def live_bytes(conn: apsw.Connection) -> int:
    """The bytes of the space's current values (``_cf_cells``): what its log is bounded by."""
    row = conn.execute("SELECT coalesce(sum(length(value)), 0) FROM _cf_cells").fetchone()
    return int(row[0]) if row is not None else 0


def record_size(record: CommitRecord) -> int:
    """About the bytes ``record`` takes in the log, without encoding it again: its values and op
    bodies are spliced into the JSON verbatim, plus a little framing each."""
    return (
        16
        + sum(len(w.id) + len(w.value) + 8 for w in record.writes)
        + sum(len(op.kind) + len(op.target) + len(op.body) + 12 for op in record.ops)
    )


def compact_log(
    conn: apsw.Connection,
    *,
    keep: int,
    keep_per_target: int,
    keep_bytes: int | None = None,
    ends: Callable[[str], bool] = lambda kind: False,
) -> int:
    """Remove the log records older than the newest ``keep`` (at least the newest one is always
    kept: it holds the space's last seq) — and, with ``keep_bytes``, those older than the newest
    records that fit in that many bytes — except the newest ``keep_per_target`` records of each
    op target — and of a target whose last op ends it (``ends(kind)``: a dropped database),
    only that op's record; ids that only the removed records named go to ``_cf_named``. Runs
    inside the caller's write transaction; returns the new compaction point."""
    done = compaction_point(conn)
    last = last_seq(conn)
    upto = last - max(keep, 1)
    if keep_bytes is not None:
        # The newest record whose bytes, with those of the records after it, pass keep_bytes.
        row = conn.execute(
            "SELECT seq FROM (SELECT seq, sum(length(record)) OVER (ORDER BY seq DESC) AS held "
            "FROM _cf_log WHERE seq > ?) WHERE held > ? ORDER BY seq DESC LIMIT 1",
            (done, keep_bytes),
        ).fetchone()
        if row is not None:
            upto = max(upto, min(int(row[0]), last - 1))
    if upto <= done:
        return done
    targets: dict[str, int] = {}  # op target -> the newest seq of its removed records
    written: dict[str, int] = {}  # cell id -> the newest removed record that wrote it
    # A target ended by an op old enough to compact gets no op again: nothing replays its older
    # ones. Each target's newest op is looked at once, by the compaction that passes its seq.
    ended = op_targets(
        conn.execute(
            f"SELECT {TARGET_BYTES}, max(seq) FROM _cf_op_index GROUP BY target "
            "HAVING count(*) > 1 AND max(seq) > ? AND max(seq) <= ?",
            (done, upto),
        ).fetchall()
    )
    for target, (newest,) in ended:
        if not _ends(conn, target, op_index_seq(newest, target, conn.filename), ends):
            continue
        gone = conn.execute(
            "SELECT max(seq) FROM _cf_op_index WHERE target = ? AND seq < ?", (target, newest)
        ).fetchone()
        if gone is None or gone[0] is None:
            continue
        conn.execute("DELETE FROM _cf_op_index WHERE target = ? AND seq < ?", (target, newest))
        targets[target] = int(gone[0])
    per_target = max(keep_per_target, 1)
    # Only a target with more records than it keeps, some of them old enough, loses any.
    old = [
        target
        for target, _ in op_targets(
            conn.execute(
                f"SELECT {TARGET_BYTES} FROM _cf_op_index "
                "GROUP BY target HAVING count(*) > ? AND min(seq) <= ?",
                (per_target, upto),
            )
        )
    ]
    for target in old:
        row = conn.execute(
            "SELECT seq FROM _cf_op_index WHERE target = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (target, per_target - 1),
        ).fetchone()
        if row is None:
            continue  # fewer than keep_per_target commits wrote it: all kept
        below = min(op_index_seq(row[0], target, conn.filename), upto + 1)
        gone = conn.execute(
            "SELECT max(seq) FROM _cf_op_index WHERE target = ? AND seq < ?", (target, below)
        ).fetchone()
        if gone is None or gone[0] is None:
            continue
        conn.execute("DELETE FROM _cf_op_index WHERE target = ? AND seq < ?", (target, below))
        targets[target] = int(gone[0])
    removed = "FROM _cf_log WHERE seq <= ? AND seq NOT IN (SELECT seq FROM _cf_op_index)"
    for seq, data in conn.execute(f"SELECT seq, {stored_json_column('record')} {removed}", (upto,)):
        record = decode_record(data, where=f"of seq {seq} in space file {conn.filename}")
        for write in record.writes:
            written[write.id] = max(written.get(write.id, 0), record.seq)
    # A removed write needs no entry while its cell's row names the id (rows are never deleted);
    # an op target always gets one: reconcile reads it to know its history is incomplete.
    conn.executemany(
        "INSERT INTO _cf_named (id, seq) SELECT ?1, ?2 "
        "WHERE ?3 OR NOT EXISTS (SELECT 1 FROM _cf_cells WHERE id = ?1) "
        "ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)",
        [(name, seq, True) for name, seq in targets.items()]
        + [(name, seq, False) for name, seq in written.items()],
    )
    conn.execute(f"DELETE {removed}", (upto,))
    conn.execute(
        "INSERT INTO _cf_meta (key, value) VALUES ('compacted', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (upto,),
    )
    return upto


def _ends(conn: apsw.Connection, target: str, seq: int, ends: Callable[[str], bool]) -> bool:
    """Whether every op on ``target`` of the record ``seq`` is of a kind that ends it (False
    when the record cannot be read: its target's records are then kept, as any other's)."""
    row = conn.execute(
        f"SELECT {stored_json_column('record')} FROM _cf_log WHERE seq = ?", (seq,)
    ).fetchone()
    if row is None:
        return False
    try:
        record = decode_record(row[0], where=f"of seq {seq} in space file {conn.filename}")
    except EncodingError:
        return False
    kinds = {op.kind for op in record.ops if op.target == target}
    return bool(kinds) and all(ends(kind) for kind in kinds)


def log_head(conn: apsw.Connection, seq: int, schema: str = "main") -> int | None:
    """The ``record_hash`` of the stored bytes of the log record ``seq`` of the space file
    behind ``conn`` (attached as ``schema``); None when the log holds no such record (seq 0, a
    record compacted away, or a space that never made it). A database file's journal row of
    commit ``seq + 1`` records it, so reconcile can tell the commit a crash left in flight (the
    log still holds the record it followed) from a space restored from an older copy (R71).
    Not read back when ``conn`` wrote that record in its last commit (``known_head``)."""
    if seq <= 0:
        return None
    if schema == "main":
        known = known_head(conn, seq)
        if known is not None:
            return known
    # As bytes: a record stored as text is hashed as its bytes, valid UTF-8 or not.
    row = conn.execute(
        f"SELECT {stored_json_column('record')} FROM {schema}._cf_log WHERE seq = ?", (seq,)
    ).fetchone()
    if row is None:
        return None
    data = row[0]
    found = bytes(data) if isinstance(data, bytes) else str(data).encode("utf-8", "surrogatepass")
    return record_hash(found)


def stored_int(
    value: object,
    what: str,
    *,
    remedy: str = "run `sqlite-cells check` and restore the space file from a backup",
    text_as_bytes: bool = False,
    file: str = "",
) -> int:
    """``value``, an integer the runtime wrote into a space file; anything else there (another
    program wrote it) is an :class:`EncodingError` saying ``what`` it should be and ``remedy``,
    never a raw ``ValueError``. ``text_as_bytes``: the value was selected with
    ``stored_json_column``, so bytes are text (which may not be UTF-8); ``file``: the space
    file's path, when known."""
    if type(value) is int:
        return value
    shown = shown_stored(value)
    if text_as_bytes and type(value) is bytes:
        try:
            shown = shown_stored(value.decode("utf-8"))
        except UnicodeDecodeError:
            shown = f"text that is not valid UTF-8 (x'{value[:32].hex()}')"
    where = f"space file {file}" if file else "the space file"
    raise EncodingError(
        f"{what} in {where} is {shown}, not an integer: sqlite-cells did not "
        f"write it, or the file is damaged; nothing was done: {remedy}"
    )

"""Figure 6 — link decode: typed rows per second for rows with a ``*_cf_link`` column decoded into
``sc.Cell`` fields (``sqlite_cells.read._rows.row_decoder``, msgspec underneath) vs the same
decode done
with the stdlib ``json`` module (``json.loads`` of each link string, the sigil's shape checked,
the same ``Link``, ``Cell`` and row objects built). Every link is distinct and each decoder is
fresh, so the decoder's small link → Cell cache never hits; a second line shows repeated links.
Two more lines put the headline in context: the same decode from row tuples (how a query hands
its rows over: no dict per row), and the decode against a stricter baseline that builds its
cells with ``Runtime.cells_for`` (what the decoder uses) instead of one ``cell_for`` per link.

    python -m bench.link_decode [--quick] [--runs N] [--json PATH] [--profile]
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

import sqlite_cells as sc
from bench._common import Figure, Row, median, p, parse, profile
from sqlite_cells.codec import Link, encode_link, parse_link
from sqlite_cells.codec._links import LinkSigil
from sqlite_cells.read._reader import StatementResult
from sqlite_cells.read._rows import row_decoder


class Msg(msgspec.Struct):
    id: int
    body: str
    author_cf_link: sc.Cell | None


def stdlib_decoder(rt: sc.Runtime) -> Callable[[list[dict[str, Any]]], list[Msg]]:
    """The baseline: what the decode does, written with json.loads."""
    wanted = set(Msg.__struct_fields__)

    def as_cell(text: Any) -> sc.Cell | None:
        link = stdlib_link(text)
        return None if link is None else rt.cell_for(link)

    def decode(rows: list[dict[str, Any]]) -> list[Msg]:
        out = []
        for values in rows:
            kept = {k: v for k, v in values.items() if k in wanted}
            if "author_cf_link" in kept:
                kept["author_cf_link"] = as_cell(kept["author_cf_link"])
            out.append(Msg(**kept))
        return out

    return decode


def stdlib_link(text: Any) -> Link | None:
    """The baseline's link check: ``json.loads`` and the sigil's shape, checked by hand."""
    if not isinstance(text, str | bytes):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if type(value) is not dict or len(value) != 1 or type(value.get("/")) is not dict:
        return None
    inner = value["/"]
    body = inner.get("link@1")
    if (
        len(inner) != 1
        or type(body) is not dict
        or not set(body) <= {"id", "space", "scope", "path"}
    ):
        return None
    ident, space, scope = body.get("id"), body.get("space"), body.get("scope")
    path = body.get("path", [])
    if not (isinstance(ident, str) and ident.startswith("of:") and len(ident) > 3):
        return None
    if scope != "space" or not isinstance(space, str) or not space:
        return None
    if type(path) is not list or any(type(x) not in (str, int) for x in path):
        return None
    return Link(ident, space, scope, tuple(path))


def stdlib_batch_decoder(rt: sc.Runtime) -> Callable[[list[dict[str, Any]]], list[Msg]]:
    """A stricter baseline: json.loads per link as above, but the cells of the whole column
    built by one ``Runtime.cells_for`` call, as the decoder builds them."""
    wanted = set(Msg.__struct_fields__)

    def decode(rows: list[dict[str, Any]]) -> list[Msg]:
        kept = [{k: v for k, v in values.items() if k in wanted} for values in rows]
        cells = rt.cells_for([stdlib_link(values.get("author_cf_link")) for values in kept])
        for values, cell in zip(kept, cells, strict=True):
            if "author_cf_link" in values:
                values["author_cf_link"] = cell
        return [Msg(**values) for values in kept]

    return decode


def as_result(rows: list[dict[str, Any]]) -> StatementResult:
    """The same rows as a query hands them over: column names and row tuples."""
    names = tuple(rows[0])
    return StatementResult(names, [tuple(r.values()) for r in rows])


def make_rows(n: int, salt: str, *, distinct: bool) -> list[dict[str, Any]]:
    links = [
        encode_link(Link(f"of:{salt}-{i if distinct else i % 50:08d}", "bench", "space")).decode()
        for i in range(n)
    ]
    return [{"id": i, "body": "hello", "author_cf_link": links[i]} for i in range(n)]


def parse_only(rows: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Links/s of ``parse_link``, of the bare msgspec decode into ``LinkSigil`` and of
    ``json.loads``, each alone on the same link strings."""
    links = [r["author_cf_link"] for r in rows]
    rates = []
    for decode in (parse_link, msgspec.json.Decoder(LinkSigil).decode, json.loads):
        start = time.perf_counter()
        for text in links:
            decode(text)
        rates.append(len(links) / (time.perf_counter() - start))
    return rates[0], rates[1], rates[2]


def rows_per_s(decode: Callable[[Any], list[Any]], rows: list[Any] | StatementResult) -> float:
    count = len(rows.rows if isinstance(rows, StatementResult) else rows)
    gc.collect()  # each run starts from the same heap, so collections land alike in both
    start = time.perf_counter()
    out = decode(rows)
    elapsed = time.perf_counter() - start
    assert len(out) == count
    return count / elapsed


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    n = 2_000 if args.quick else 20_000
    runs = 2 if args.quick else max(7, args.runs)
    fig = Figure("link_decode", "6. Link decode (typed rows)", "python -m bench.link_decode")
    with sc.Runtime.ephemeral() as rt:
        rt.space("bench")
        check = make_rows(3, "check", distinct=True)
        ours_rows = row_decoder(Msg, rt, db_id="x", sql="q")(check)
        assert ours_rows == stdlib_decoder(rt)(check)  # the same objects, or the figure is moot
        for distinct in (True, False):
            ours, base = [], []
            for r in range(runs):
                rows = make_rows(n, f"{distinct}{r}", distinct=distinct)
                base.append(rows_per_s(stdlib_decoder(rt), rows))
                ours.append(rows_per_s(row_decoder(Msg, rt, db_id="x", sql="q"), rows))
            ratio = median(ours) / median(base)
            label = "distinct links" if distinct else "50 links repeated (decoder cache hits)"
            row = fig.add(
                Row(
                    f"typed rows/s, {label}",
                    "/s",
                    median(ours),
                    p(ours, 0.1),
                    baseline=median(base),
                    ratio=ratio,
                    target="≥ 5× (vs stdlib json)" if distinct else "",
                    met=ratio >= 5 if distinct else None,
                )
            )
            if args.profile and row.met is False:
                rows = make_rows(n, "profile", distinct=True)
                decode = row_decoder(Msg, rt, db_id="x", sql="q")
                fig.profiles["row_decoder, distinct links"] = profile(
                    lambda decode=decode, rows=rows: decode(rows)
                )
                fig.profiles["stdlib json baseline, distinct links"] = profile(
                    lambda rows=rows: stdlib_decoder(rt)(rows)
                )
        assert stdlib_batch_decoder(rt)(check) == ours_rows
        assert row_decoder(Msg, rt, db_id="x", sql="q")(as_result(check)) == ours_rows
        ours_t, base_t, strict_base, ours_s = [], [], [], []
        for r in range(runs):
            rows = make_rows(n, f"tuples{r}", distinct=True)
            result = as_result(rows)
            base_t.append(rows_per_s(stdlib_decoder(rt), rows))
            ours_t.append(rows_per_s(row_decoder(Msg, rt, db_id="x", sql="q"), result))
            strict_base.append(rows_per_s(stdlib_batch_decoder(rt), rows))
            ours_s.append(rows_per_s(row_decoder(Msg, rt, db_id="x", sql="q"), rows))
        fig.add(
            Row(
                "typed rows/s, distinct links, from row tuples (the baseline gets dicts for free)",
                "/s",
                median(ours_t),
                p(ours_t, 0.1),
                baseline=median(base_t),
                ratio=median(ours_t) / median(base_t),
            )
        )
        fig.add(
            Row(
                "typed rows/s, distinct links, vs a stdlib baseline building cells by cells_for",
                "/s",
                median(ours_s),
                p(ours_s, 0.1),
                baseline=median(strict_base),
                ratio=median(ours_s) / median(strict_base),
            )
        )
        ours_p, bare_p, base_p = [], [], []
        for r in range(runs):
            a, b, c = parse_only(make_rows(n, f"parse{r}", distinct=True))
            ours_p.append(a)
            bare_p.append(b)
            base_p.append(c)
        fig.add(
            Row(
                "links/s, parse only: codec.parse_link vs json.loads (no shape check)",
                "/s",
                median(ours_p),
                p(ours_p, 0.1),
                baseline=median(base_p),
                ratio=median(ours_p) / median(base_p),
            )
        )
        fig.add(
            Row(
                "links/s, parse only: bare msgspec decode into LinkSigil vs json.loads",
                "/s",
                median(bare_p),
                p(bare_p, 0.1),
                baseline=median(base_p),
                ratio=median(bare_p) / median(base_p),
            )
        )
    fig.notes.append(
        f"{n:,} rows (id, body, one link column) per run × {runs} runs; p90 column is the 10th "
        "percentile of the rates. The repeated-links line's baseline has no cache, so its ratio "
        "mostly measures the decoder's cache."
    )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

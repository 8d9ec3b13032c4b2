"""Figure 5 — the statement guard: time per statement, cold (first sight of the text, the cache
cleared and every text distinct) and cached (the same text again), for ~100-character statements
in READ and WRITE mode. Baseline for cold: sqlglot's SQLite tokenizer alone on the same texts
(the floor for a token-based guard) and apsw preparing the statement (what SQLite itself pays).

    python -m bench.guard [--quick] [--runs N] [--json PATH] [--profile]
"""

from __future__ import annotations

import time
from collections.abc import Callable

import apsw
from sqlglot.dialects.sqlite import SQLite

import sqlite_cells.sql._guard as guard
from bench._common import Figure, Row, median, p, parse, profile
from sqlite_cells.sql._guard import Mode, check_statement


def texts(n: int, mode: Mode, salt: str) -> list[str]:
    """``n`` distinct statements of exactly 100 characters."""
    out = []
    for i in range(n):
        if mode is Mode.READ:
            sql = f"SELECT id, body, ts FROM messages WHERE ts > {i} AND body LIKE 'x{salt}%' "
            sql += "ORDER BY ts DESC LIMIT 20"
        else:
            sql = f"INSERT INTO messages (author_cf_link, body, ts) VALUES (?, ?, {i}) -- {salt} "
        out.append(sql.ljust(100)[:100] if len(sql) >= 100 else sql + " " * (100 - len(sql)))
    assert all(len(s) == 100 for s in out)
    return out


def per_call_us(work: Callable[[str], object], sqls: list[str]) -> float:
    start = time.perf_counter()
    for sql in sqls:
        work(sql)
    return (time.perf_counter() - start) / len(sqls) * 1e6


def main() -> None:
    args = parse(__doc__ or "")
    started = time.perf_counter()
    n = 200 if args.quick else 2000
    runs = 2 if args.quick else max(7, args.runs)
    fig = Figure("guard", "5. Statement guard (100-character statements)", "python -m bench.guard")
    tokenizer = SQLite.Tokenizer()
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, author_cf_link, body, ts)")
    for mode in (Mode.READ, Mode.WRITE):
        cold, cached, tok, prep = [], [], [], []
        for r in range(runs):
            sqls = texts(n, mode, f"{mode.value}{r}")
            guard._CACHE.clear()
            cold.append(per_call_us(lambda s, m=mode: check_statement(s, m), sqls))
            hot = sqls[: min(len(sqls), guard.CACHE_MAX_ENTRIES // 2)]
            cached.append(per_call_us(lambda s, m=mode: check_statement(s, m), hot * 5))
            tok.append(per_call_us(tokenizer.tokenize, sqls))
            prep.append(per_call_us(lambda s: conn.execute(s, (None,) * s.count("?")), sqls))
        row = fig.add(
            Row(
                f"{mode.name} cold (first sight)",
                "µs",
                median(cold),
                p(cold, 0.9),
                baseline=median(tok),
                ratio=median(tok) / median(cold),
                target="≤ 30 µs",
                met=median(cold) <= 30,
            )
        )
        fig.add(
            Row(
                f"{mode.name} cached",
                "µs",
                median(cached),
                p(cached, 0.9),
                target="≤ 2 µs",
                met=median(cached) <= 2,
            )
        )
        fig.add(Row(f"{mode.name}: apsw execute of the same text (reference)", "µs", median(prep)))
        if args.profile and not row.met:
            sqls = texts(n, mode, "profile")
            guard._CACHE.clear()
            fig.profiles[f"{mode.name} cold"] = profile(
                lambda sqls=sqls, m=mode: [check_statement(s, m) for s in sqls]
            )
    fig.notes.append(
        f"{n} distinct texts per run × {runs} runs; per-run figure = mean µs per call. Baseline "
        "column = sqlglot's SQLite tokenizer alone on the same texts; ratio = baseline / ours "
        "(the guard tokenizes twice — SQLite's scanner and sqlglot — then scans the rules)."
    )
    fig.finish(args, started)


if __name__ == "__main__":
    main()

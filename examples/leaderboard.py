"""A leaderboard: ``python -m examples.leaderboard [STORE]``.

Scores are rows whose ``player_cf_link`` column links to the player's cell. The live query
projects ``player_cf_link AS player``: the alias hides the ``_cf_link`` suffix, and it is the
typed row (``player: sc.Cell``) that decodes the stored link into a live cell (R43). Without
``row=`` the same query returns the stored link text.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import msgspec

import sqlite_cells as sc

TABLES = {
    "scores": sc.table(
        id="integer primary key",
        player_cf_link=sc.cf_link(),
        score="integer not null",
        indexes={"by_score": ["score"]},
    ),
}
TOP = (
    "SELECT player_cf_link AS player, max(score) AS score FROM scores "
    "GROUP BY player_cf_link ORDER BY score DESC LIMIT 3"
)
PLAYERS = {"ann": "Ann", "ben": "Ben", "cat": "Cat"}
GAMES = [("ann", 10), ("ben", 25), ("cat", 15), ("ann", 30), ("ben", 5)]


class Entry(msgspec.Struct):
    player: sc.Cell
    score: int


def _board(entries: list[Entry]) -> list[tuple[str, int]]:
    return [(str(e.player.key("name").get()), e.score) for e in entries]


def main(store: str | None = None) -> list[tuple[str, int]]:
    """Record the games, print the board after each commit, return the final board as
    ``[(name, best score), …]``."""
    with sc.Runtime(store) if store is not None else sc.Runtime.ephemeral() as rt:
        space = rt.space("leaderboard")
        db = space.sqlite_database("scores", tables=TABLES)
        players = {key: space.cell(key) for key in PLAYERS}
        with space.transact():
            for key, name in PLAYERS.items():
                players[key].set({"name": name})

        top = db.query(TOP, row=Entry)
        boards: list[sc.QueryState] = []
        lock = threading.Lock()  # guards boards (appended on the scheduler thread)

        def collect(state: sc.QueryState) -> None:
            with lock:
                boards.append(state)

        top.observe().subscribe(collect)

        @sc.handler
        def record(score: int, *, player: sc.Cell) -> None:
            db.exec("INSERT INTO scores (player_cf_link, score) VALUES (?, ?)", [player, score])

        rt.settle()
        for key, score in GAMES:
            with lock:
                seen = len(boards)
            seq = record(score, player=players[key])
            rt.settle()
            with lock:
                fresh = boards[seen:]
            line = f"{PLAYERS[key]} scored {score:>2} (seq {seq}): "
            if fresh:
                board = _board(fresh[-1].result or [])
                places = ", ".join(f"{i}. {n} {s}" for i, (n, s) in enumerate(board, 1))
                print(line + f"board at seq {fresh[-1].seq}: {places}")
            else:
                print(
                    line + f"the re-run at seq {top.get().seq} found the same rows, "
                    "so no subscriber was told (R42)"
                )

        state = top.get()
        assert state.result is not None  # (settled: the first result is in)
        first = state.result[0]
        print(f"row type: {type(first).__name__}; player field: {first.player!r}")
        raw = db.read(TOP)[0]
        print(f"untyped, the same column is the stored link text: {raw['player']}")
        return _board(state.result)


if __name__ == "__main__":
    if __package__ != "examples":  # run as a file: find its package from the repository root
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import store_argument

    main(store_argument("leaderboard", __doc__))

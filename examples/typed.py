"""Typed rows: ``python -m examples.typed``. The test suite runs ``mypy --strict`` on this file.

A ``row=`` msgspec Struct types each row; its ``sc.Cell`` field is decoded from the stored link
into a live cell (R43). The README shows this file.
"""

from __future__ import annotations

import msgspec

import sqlite_cells as sc


class Score(msgspec.Struct):
    player: sc.Cell  # decoded from player_cf_link (the alias hides the suffix)
    points: int


def leaders(rt: sc.Runtime, db: sc.SqliteDb) -> list[Score]:
    """The rows of a live query once every commit so far has reached it, typed."""
    query = db.query(
        "SELECT player_cf_link AS player, points FROM scores ORDER BY points DESC", row=Score
    )
    rt.settle()
    rows: list[Score] = query.get().result or []
    return rows


def main() -> list[tuple[str, int]]:
    with sc.Runtime.ephemeral() as rt:
        space = rt.space("games")
        ada = space.cell("ada")
        db = space.sqlite_database(
            "scores",
            tables={"scores": sc.table(player_cf_link=sc.cf_link(), points="integer not null")},
        )

        @sc.handler
        def score(points: int, *, player: sc.Cell) -> None:
            db.exec("INSERT INTO scores (player_cf_link, points) VALUES (?, ?)", [player, points])

        with space.transact():
            ada.set({"name": "Ada"})
        score(3, player=ada)
        score(5, player=ada)
        return [(row.player.key("name").get(), row.points) for row in leaders(rt, db)]


if __name__ == "__main__":
    print(main())

"""One pattern, two pieces, two databases: ``python -m examples.notes_patterns [STORE]``.

``notebook`` is a ``@sc.pattern``: each ``space.run(notebook, key=…)`` makes a piece whose cells
and database derive their ids from the piece (R1). Inside the body the database is declared
without a name, so its id is causal (the piece id and its position). Opening a new runtime on the
same store and running the pattern with the same key binds the same ids, the same file, the
same rows — that is how a program finds its state again after a restart.

Without a store argument it uses a temporary directory (not ``Runtime.ephemeral()``, whose
store is removed when its runtime closes, which would defeat the restart).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

import sqlite_cells as sc

TABLES = {
    "notes": sc.table(id="integer primary key", owner_cf_link=sc.cf_link(), body="text not null")
}


class Note(msgspec.Struct):
    id: int
    body: str
    owner: sc.Cell


@sc.pattern
def notebook(owner: sc.Cell) -> dict[str, Any]:
    """A notebook for ``owner``: its database, a live query of its notes and a handler."""
    space: Any = owner.space  # the space comes from an input cell
    db = space.sqlite_database(tables=TABLES)  # no name: the id derives from the piece
    notes = db.query("SELECT id, body, owner_cf_link AS owner FROM notes ORDER BY id", row=Note)

    @sc.handler
    def add(body: str) -> None:
        db.exec("INSERT INTO notes (owner_cf_link, body) VALUES (?, ?)", [owner, body])

    return {"db": db, "notes": notes, "add": add}


@dataclass
class NotesRun:
    piece_ids: dict[str, str] = field(default_factory=dict)
    db_ids: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    rebound_piece_id: str = ""
    rebound_db_id: str = ""
    rebound_file: str = ""
    rebound_notes: list[str] = field(default_factory=list)


def _bodies(piece: Any) -> list[str]:
    state: sc.QueryState = piece.outputs["notes"].get()
    return [note.body for note in state.result or []]


def _run(store: str) -> NotesRun:
    run = NotesRun()
    with sc.Runtime(store) as rt:
        space = rt.space("notes")
        people = {"alice": space.cell("alice"), "bob": space.cell("bob")}
        with space.transact():
            for key, cell in people.items():
                cell.set({"name": key.title()})
        pieces = {key: space.run(notebook, key=key, owner=cell) for key, cell in people.items()}
        pieces["alice"].outputs["add"]("buy milk")
        pieces["alice"].outputs["add"]("call Bob")
        pieces["bob"].outputs["add"]("water the plants")
        rt.settle()
        for key, piece in pieces.items():
            db = piece.outputs["db"]
            run.piece_ids[key], run.db_ids[key], run.files[key] = piece.id, db.id, db.path.name
            run.notes[key] = _bodies(piece)
            print(f"piece {key!r}: {piece.id}")
            print(f"  database {db.id} in {db.path.name}")
            print(f"  notes at seq {piece.outputs['notes'].get().seq}: {run.notes[key]}")

    print("\nrestart: a new runtime on the same store runs the pattern with key 'alice' again")
    with sc.Runtime(store) as rt:
        space = rt.space("notes")
        piece = space.run(notebook, key="alice", owner=space.cell("alice"))
        rt.settle()
        db = piece.outputs["db"]
        run.rebound_piece_id, run.rebound_db_id = piece.id, db.id
        run.rebound_file, run.rebound_notes = db.path.name, _bodies(piece)
        same = (piece.id, db.id) == (run.piece_ids["alice"], run.db_ids["alice"])
        print(f"piece {piece.id} ({'the same ids' if same else 'NEW ids'})")
        print(f"  database {db.id} in {db.path.name}")
        print(f"  notes still there: {run.rebound_notes}")
    return run


def main(store: str | None = None) -> NotesRun:
    """Run two pieces, add notes, restart and rebind; print each step and return the ids."""
    if store is not None:
        return _run(store)
    with tempfile.TemporaryDirectory(prefix="sqlite-cells-notes-") as tmp:
        return _run(tmp)


if __name__ == "__main__":
    if __package__ != "examples":  # run as a file: find its package from the repository root
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import store_argument

    # A pattern's identity includes its module name: import it by its real name so that running
    # the file (as __main__) binds the same pieces as importing examples.notes_patterns does.
    from examples.notes_patterns import main as run_main

    run_main(store_argument("notes_patterns", __doc__))

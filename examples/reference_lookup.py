"""A pattern that waits for a reference database: ``python -m examples.reference_lookup [STORE]``.

The pattern's ``ref`` parameter is typed ``sc.SqliteDb`` and nothing is given for it, so its
queries are pending. An operator then registers an existing SQLite file (outside the store) as a
read-only source and links it to the piece's input — as ``sqlite-cells link`` does — and the
lookups answer. Changing the code being looked up re-runs the query.

With a STORE, the reference file is kept beside it (``STORE-reference/countries.db``), so the
store never names a file that is gone, and a run again links the same file; without one, both
are temporary.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import apsw

import sqlite_cells as sc

COUNTRIES = [("fr", "France"), ("jp", "Japan"), ("ke", "Kenya"), ("pe", "Peru")]


@sc.pattern
def country_lookup(ref: sc.SqliteDb, code: sc.Cell) -> Any:
    return ref.query("SELECT name FROM countries WHERE code = ?", params=[code])


def make_reference(folder: Path) -> Path:
    """An SQLite file made by some other tool: it has its own schema (made once). It is built in
    memory and put in place whole: a run stopped while making it (Ctrl-C, a kill) leaves no
    half-made file that a run again would take as made (rows missing, or a hot journal)."""
    path = folder / "countries.db"
    if path.exists():
        return path
    folder.mkdir(exist_ok=True)
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE countries (code TEXT PRIMARY KEY, name TEXT NOT NULL)")
    conn.executemany("INSERT INTO countries VALUES (?, ?)", COUNTRIES)
    image = conn.serialize("main")
    conn.close()
    part = folder / f".countries.db.{os.getpid()}.part"  # written whole, then linked in place
    try:
        with part.open("wb") as out:
            out.write(image)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another run on this store made it first
            os.link(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def _show(step: str, state: sc.QueryState) -> str:
    if state.error is not None:
        answer = f"{type(state.error).__name__}: {state.error}"
    elif state.pending:
        answer = "pending"
    else:
        answer = (state.result or [{"name": None}])[0]["name"]
    line = f"{step:<40} -> {answer}"
    print(line)
    return line


def main(store: str | None = None) -> list[str]:
    lines = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        sc.Runtime(store) if store is not None else sc.Runtime.ephemeral() as rt,
    ):
        outside = Path(scratch) if store is None else rt.store.parent / f"{rt.store.name}-reference"
        space = rt.space("lookup")
        code = space.cell("code", default="jp")
        with space.transact():
            code.set("jp")
        # ref=None: nothing linked yet (a run before on this store linked it: it starts over).
        piece = space.run(country_lookup, key="countries", code=code, ref=None)
        rt.settle()
        lines.append(_show("before a reference database is linked", piece.outputs.get()))

        handle = space.register_disk_source(make_reference(outside))
        piece.inputs["ref"].link(handle)  # a committed write: it survives a restart
        rt.settle()
        lines.append(_show("after linking countries.db", piece.outputs.get()))

        with space.transact():
            code.set("pe")
        rt.settle()
        lines.append(_show("after changing the code to 'pe'", piece.outputs.get()))
        try:
            with space.transact():
                handle.exec("DELETE FROM countries")
        except sc.ReadOnlySource as exc:
            lines.append(f"writing the source is refused: {type(exc).__name__}")
            print(lines[-1])
    return lines


if __name__ == "__main__":
    if __package__ != "examples":  # run as a file: find its package from the repository root
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import store_argument

    # A pattern's identity includes its module name: import it by its real name so that running
    # the file (as __main__) binds the same piece as importing examples.reference_lookup does.
    from examples.reference_lookup import main as run_main

    run_main(store_argument("reference_lookup", __doc__))

"""The chat app that ``sqlite-cells demo`` runs: ``python -m examples.chat [STORE]``.

A database cell holds the messages, each with a link to its author's cell; a live query shows the
latest messages after each commit; renaming a user updates the decoded author cell without
re-running the query (R52); a failing write rolls back the cell writes of its transaction (R34).

The code lives in ``sqlite_cells/cli/_demo.py`` (read it there: it uses only the public ``sc`` API)
because the ``sqlite-cells`` command is installed without this folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlite_cells as sc
from sqlite_cells.cli import ChatRun, run_chat


def main(store: str | None = None) -> ChatRun:
    """Run the chat on ``store`` (a temporary store when None) and print what happens."""
    with sc.Runtime(store) if store is not None else sc.Runtime.ephemeral() as rt:
        return run_chat(rt, out=sys.stdout)


if __name__ == "__main__":
    if __package__ != "examples":  # run as a file: find its package from the repository root
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import store_argument

    main(store_argument("chat", __doc__))

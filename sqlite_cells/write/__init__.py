"""Writes: the ``sqlite`` and ``sqlite-drop`` commit participants (the write fold)."""

from sqlite_cells.write._drop import DropParticipant as DropParticipant
from sqlite_cells.write._fold import REQUESTS as REQUESTS
from sqlite_cells.write._fold import ExecRequest as ExecRequest
from sqlite_cells.write._fold import SqliteParticipant as SqliteParticipant

__all__ = [
    "REQUESTS",
    "DropParticipant",
    "ExecRequest",
    "SqliteParticipant",
]

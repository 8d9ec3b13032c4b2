"""Writes: the ``sqlite`` and ``sqlite-drop`` commit participants (the write fold)."""

from sqlite_cells.write._drop import DropParticipant as DropParticipant
from sqlite_cells.write._fold import DEFAULT_EXEC_TIMEOUT as DEFAULT_EXEC_TIMEOUT
from sqlite_cells.write._fold import ExecRequest as ExecRequest
from sqlite_cells.write._fold import SqliteParticipant as SqliteParticipant
from sqlite_cells.write._fold import written_database as written_database
from sqlite_cells.write._prepare_time import check_prepare_time as check_prepare_time

__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "DropParticipant",
    "ExecRequest",
    "SqliteParticipant",
    "check_prepare_time",
    "written_database",
]

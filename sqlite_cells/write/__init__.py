"""Writes: the ``sqlite`` and ``sqlite-drop`` commit participants (the write fold)."""

from sqlite_cells.schema import use_long_calls
from sqlite_cells.write._calls import override_long_calls
from sqlite_cells.write._drop import DropParticipant as DropParticipant
from sqlite_cells.write._fold import DEFAULT_EXEC_TIMEOUT as DEFAULT_EXEC_TIMEOUT
from sqlite_cells.write._fold import ExecRequest as ExecRequest
from sqlite_cells.write._fold import SqliteParticipant as SqliteParticipant
from sqlite_cells.write._fold import written_database as written_database
from sqlite_cells.write._prepare_time import check_prepare_time as check_prepare_time

# R44: a declared default is computed with the long calls' overrides, under a deadline, as a
# write's statements are (see sqlite_cells.schema._schema, use_long_calls).
use_long_calls(override_long_calls)

__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "DropParticipant",
    "ExecRequest",
    "SqliteParticipant",
    "check_prepare_time",
    "written_database",
]

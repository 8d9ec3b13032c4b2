"""Reads: the read pool, guarded reads, typed rows, live queries and their display."""

from sqlite_cells.read._display import LINK_MARK as LINK_MARK
from sqlite_cells.read._display import LinkText as LinkText
from sqlite_cells.read._display import QueryDisplay as QueryDisplay
from sqlite_cells.read._display import escape_character as escape_character
from sqlite_cells.read._display import escaped as escaped
from sqlite_cells.read._display import shown_as_is as shown_as_is
from sqlite_cells.read._display import text_table as text_table
from sqlite_cells.read._live import LiveQueries as LiveQueries
from sqlite_cells.read._pool import ReadPool as ReadPool
from sqlite_cells.read._query import LINKS_FOLLOWED as LINKS_FOLLOWED
from sqlite_cells.read._query import Query as Query
from sqlite_cells.read._query import QueryState as QueryState
from sqlite_cells.read._query import Reaction as Reaction
from sqlite_cells.read._query import react_on_members as react_on_members
from sqlite_cells.read._query import resolve_params as resolve_params
from sqlite_cells.read._reader import NEWER_DECLARATION_ADVICE as NEWER_DECLARATION_ADVICE
from sqlite_cells.read._reader import Rows as Rows
from sqlite_cells.read._reader import Statement as Statement
from sqlite_cells.read._reader import StatementResult as StatementResult
from sqlite_cells.read._reader import read_rows as read_rows
from sqlite_cells.read._reader import stream_rows as stream_rows
from sqlite_cells.read._rows import build_rows as build_rows
from sqlite_cells.read._rows import decode_cf_link as decode_cf_link
from sqlite_cells.read._rows import row_decoder as row_decoder
from sqlite_cells.read._rows import runs_own_code as runs_own_code
from sqlite_cells.read._workers import QueryWorkers as QueryWorkers

__all__ = [
    "LINKS_FOLLOWED",
    "LINK_MARK",
    "NEWER_DECLARATION_ADVICE",
    "LinkText",
    "LiveQueries",
    "Query",
    "QueryDisplay",
    "QueryState",
    "QueryWorkers",
    "Reaction",
    "ReadPool",
    "Rows",
    "Statement",
    "StatementResult",
    "build_rows",
    "decode_cf_link",
    "escape_character",
    "escaped",
    "react_on_members",
    "read_rows",
    "resolve_params",
    "row_decoder",
    "runs_own_code",
    "shown_as_is",
    "stream_rows",
    "text_table",
]

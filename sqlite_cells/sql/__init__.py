"""The SQL front end: one scan per statement (``scan_sql``), the guard, parameters and their
binding, the authorizer, reserved names."""

from sqlite_cells.sql._authorizer import REWRITTEN_PREPARE_FLAGS as REWRITTEN_PREPARE_FLAGS
from sqlite_cells.sql._authorizer import USER_PREPARE_FLAGS as USER_PREPARE_FLAGS
from sqlite_cells.sql._authorizer import Authorizer as Authorizer
from sqlite_cells.sql._authorizer import Gate as Gate
from sqlite_cells.sql._authorizer import ReadSet as ReadSet
from sqlite_cells.sql._authorizer import make_authorizer as make_authorizer
from sqlite_cells.sql._binding import ONE_VALUE as ONE_VALUE
from sqlite_cells.sql._binding import Bound as Bound
from sqlite_cells.sql._binding import MayBePending as MayBePending
from sqlite_cells.sql._binding import bind_rows as bind_rows
from sqlite_cells.sql._binding import check_cell_value as check_cell_value
from sqlite_cells.sql._binding import check_read_values as check_read_values
from sqlite_cells.sql._binding import compared_links as compared_links
from sqlite_cells.sql._binding import given_params as given_params
from sqlite_cells.sql._binding import is_params_list as is_params_list
from sqlite_cells.sql._binding import is_pending as is_pending
from sqlite_cells.sql._binding import parameter_rows as parameter_rows
from sqlite_cells.sql._guard import CheckedStatement as CheckedStatement
from sqlite_cells.sql._guard import Mode as Mode
from sqlite_cells.sql._guard import check_statement as check_statement
from sqlite_cells.sql._json_calls import split_json_calls as split_json_calls
from sqlite_cells.sql._names import ALLOWED_SQLITE_FUNCTIONS as ALLOWED_SQLITE_FUNCTIONS
from sqlite_cells.sql._names import DATABASE_ALIAS as DATABASE_ALIAS
from sqlite_cells.sql._names import DATABASE_NAMES as DATABASE_NAMES
from sqlite_cells.sql._names import JSON_CALL_PREFIX as JSON_CALL_PREFIX
from sqlite_cells.sql._names import JSON_CALLS as JSON_CALLS
from sqlite_cells.sql._names import LINK_SUFFIX as LINK_SUFFIX
from sqlite_cells.sql._names import RESERVED_PREFIXES as RESERVED_PREFIXES
from sqlite_cells.sql._names import REWRITTEN_JSON_FUNCTIONS as REWRITTEN_JSON_FUNCTIONS
from sqlite_cells.sql._names import WRITE_VERBS as WRITE_VERBS
from sqlite_cells.sql._names import fold_ascii as fold_ascii
from sqlite_cells.sql._names import is_forbidden_function as is_forbidden_function
from sqlite_cells.sql._names import is_link_column as is_link_column
from sqlite_cells.sql._names import is_reserved as is_reserved
from sqlite_cells.sql._names import is_reserved_table as is_reserved_table
from sqlite_cells.sql._params import ParamTargets as ParamTargets
from sqlite_cells.sql._params import map_params as map_params
from sqlite_cells.sql._refusals import sqlite_refusal as sqlite_refusal
from sqlite_cells.sql._refusals import sqlite_words as sqlite_words
from sqlite_cells.sql._refusals import write_hint as write_hint
from sqlite_cells.sql._statement import BLOB as BLOB
from sqlite_cells.sql._statement import NUMBER as NUMBER
from sqlite_cells.sql._statement import OP as OP
from sqlite_cells.sql._statement import PARAM as PARAM
from sqlite_cells.sql._statement import QUOTED as QUOTED
from sqlite_cells.sql._statement import STRING as STRING
from sqlite_cells.sql._statement import WORD as WORD
from sqlite_cells.sql._statement import Statement as Statement
from sqlite_cells.sql._statement import Word as Word
from sqlite_cells.sql._statement import first_keyword as first_keyword
from sqlite_cells.sql._statement import reads_nothing_after as reads_nothing_after
from sqlite_cells.sql._statement import resolves_by_replace as resolves_by_replace
from sqlite_cells.sql._statement import scan_sql as scan_sql
from sqlite_cells.sql._statement import unquote as unquote

__all__ = [
    "ALLOWED_SQLITE_FUNCTIONS",
    "BLOB",
    "DATABASE_ALIAS",
    "DATABASE_NAMES",
    "JSON_CALLS",
    "JSON_CALL_PREFIX",
    "LINK_SUFFIX",
    "NUMBER",
    "ONE_VALUE",
    "OP",
    "PARAM",
    "QUOTED",
    "RESERVED_PREFIXES",
    "REWRITTEN_JSON_FUNCTIONS",
    "REWRITTEN_PREPARE_FLAGS",
    "STRING",
    "USER_PREPARE_FLAGS",
    "WORD",
    "WRITE_VERBS",
    "Authorizer",
    "Bound",
    "CheckedStatement",
    "Gate",
    "MayBePending",
    "Mode",
    "ParamTargets",
    "ReadSet",
    "Statement",
    "Word",
    "bind_rows",
    "check_cell_value",
    "check_read_values",
    "check_statement",
    "compared_links",
    "first_keyword",
    "fold_ascii",
    "given_params",
    "is_forbidden_function",
    "is_link_column",
    "is_params_list",
    "is_pending",
    "is_reserved",
    "is_reserved_table",
    "make_authorizer",
    "map_params",
    "parameter_rows",
    "reads_nothing_after",
    "resolves_by_replace",
    "scan_sql",
    "split_json_calls",
    "sqlite_refusal",
    "sqlite_words",
    "unquote",
    "write_hint",
]

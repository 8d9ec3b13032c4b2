"""The SQL front end: statement scanning, the guard, parameters and their binding, the authorizer,
reserved names."""

from sqlite_cells.sql._authorizer import USER_PREPARE_FLAGS as USER_PREPARE_FLAGS
from sqlite_cells.sql._authorizer import Authorizer as Authorizer
from sqlite_cells.sql._authorizer import Gate as Gate
from sqlite_cells.sql._authorizer import ReadSet as ReadSet
from sqlite_cells.sql._authorizer import make_authorizer as make_authorizer
from sqlite_cells.sql._binding import Bound as Bound
from sqlite_cells.sql._binding import bind_rows as bind_rows
from sqlite_cells.sql._binding import is_pending as is_pending
from sqlite_cells.sql._guard import Mode as Mode
from sqlite_cells.sql._guard import check_statement as check_statement
from sqlite_cells.sql._names import LINK_SUFFIX as LINK_SUFFIX
from sqlite_cells.sql._names import RESERVED_PREFIXES as RESERVED_PREFIXES
from sqlite_cells.sql._params import COMMENT as COMMENT
from sqlite_cells.sql._params import IDENT as IDENT
from sqlite_cells.sql._params import PUNCT as PUNCT
from sqlite_cells.sql._params import QUOTED as QUOTED
from sqlite_cells.sql._params import STRING as STRING
from sqlite_cells.sql._params import WS as WS
from sqlite_cells.sql._params import ParamTargets as ParamTargets
from sqlite_cells.sql._params import Token as Token
from sqlite_cells.sql._params import map_params as map_params
from sqlite_cells.sql._params import scan_sql as scan_sql
from sqlite_cells.sql._params import unquote as unquote

__all__ = [
    "COMMENT",
    "IDENT",
    "LINK_SUFFIX",
    "PUNCT",
    "QUOTED",
    "RESERVED_PREFIXES",
    "STRING",
    "USER_PREPARE_FLAGS",
    "WS",
    "Authorizer",
    "Bound",
    "Gate",
    "Mode",
    "ParamTargets",
    "ReadSet",
    "Token",
    "bind_rows",
    "check_statement",
    "is_pending",
    "make_authorizer",
    "map_params",
    "scan_sql",
    "unquote",
]

"""Table declarations, the schema diff and additive migration, and what the runtime knows of a
database cell."""

from sqlite_cells.schema._declaration import MAX_VERSION as MAX_VERSION
from sqlite_cells.schema._declaration import Declaration as Declaration
from sqlite_cells.schema._declaration import Migrate as Migrate
from sqlite_cells.schema._declaration import SourceKind as SourceKind
from sqlite_cells.schema._declaration import VmSource as VmSource
from sqlite_cells.schema._declaration import check_options as check_options
from sqlite_cells.schema._declaration import db_file_name as db_file_name
from sqlite_cells.schema._migrate import DamagedVersion as DamagedVersion
from sqlite_cells.schema._migrate import add_missing as add_missing
from sqlite_cells.schema._migrate import create_meta_table as create_meta_table
from sqlite_cells.schema._migrate import ensure_runtime_tables as ensure_runtime_tables
from sqlite_cells.schema._migrate import ensure_schema as ensure_schema
from sqlite_cells.schema._migrate import foreign_file as foreign_file
from sqlite_cells.schema._migrate import made_elsewhere as made_elsewhere
from sqlite_cells.schema._migrate import meta_text as meta_text
from sqlite_cells.schema._migrate import migrate_file as migrate_file
from sqlite_cells.schema._migrate import plan_migration as plan_migration
from sqlite_cells.schema._migrate import store_owner as store_owner
from sqlite_cells.schema._migrate import store_version as store_version
from sqlite_cells.schema._migrate import stored_id as stored_id
from sqlite_cells.schema._migrate import stored_owner as stored_owner
from sqlite_cells.schema._migrate import stored_version as stored_version
from sqlite_cells.schema._migrate import version_sql as version_sql
from sqlite_cells.schema._migrate import write_refusal as write_refusal
from sqlite_cells.schema._null_keys import null_key_condition as null_key_condition
from sqlite_cells.schema._null_keys import nullable_key_columns as nullable_key_columns
from sqlite_cells.schema._order import fill_orders as fill_orders
from sqlite_cells.schema._schema import CfLink as CfLink
from sqlite_cells.schema._schema import Schema as Schema
from sqlite_cells.schema._schema import Table as Table
from sqlite_cells.schema._schema import cf_link as cf_link
from sqlite_cells.schema._schema import create_table_sql as create_table_sql
from sqlite_cells.schema._schema import declare_tables as declare_tables
from sqlite_cells.schema._schema import quote_ident as quote_ident
from sqlite_cells.schema._schema import render_ddl as render_ddl
from sqlite_cells.schema._schema import table as table
from sqlite_cells.schema._schema import use_long_calls as use_long_calls
from sqlite_cells.schema._schema_diff import SchemaTextError as SchemaTextError
from sqlite_cells.schema._schema_diff import declared_report as declared_report
from sqlite_cells.schema._schema_diff import diff_of as diff_of
from sqlite_cells.schema._shadow import NO_SHADOWS as NO_SHADOWS
from sqlite_cells.schema._shadow import SHADOW_PREFIX as SHADOW_PREFIX
from sqlite_cells.schema._shadow import Shadows as Shadows
from sqlite_cells.schema._shadow import plan_shadows as plan_shadows
from sqlite_cells.schema._table_text import index_where as index_where
from sqlite_cells.schema._table_text import read_table_text as read_table_text

__all__ = [
    "MAX_VERSION",
    "NO_SHADOWS",
    "SHADOW_PREFIX",
    "CfLink",
    "DamagedVersion",
    "Declaration",
    "Migrate",
    "Schema",
    "SchemaTextError",
    "Shadows",
    "SourceKind",
    "Table",
    "VmSource",
    "add_missing",
    "cf_link",
    "check_options",
    "create_meta_table",
    "create_table_sql",
    "db_file_name",
    "declare_tables",
    "declared_report",
    "diff_of",
    "ensure_runtime_tables",
    "ensure_schema",
    "fill_orders",
    "foreign_file",
    "index_where",
    "made_elsewhere",
    "meta_text",
    "migrate_file",
    "null_key_condition",
    "nullable_key_columns",
    "plan_migration",
    "plan_shadows",
    "quote_ident",
    "read_table_text",
    "render_ddl",
    "store_owner",
    "store_version",
    "stored_id",
    "stored_owner",
    "stored_version",
    "table",
    "use_long_calls",
    "version_sql",
    "write_refusal",
]

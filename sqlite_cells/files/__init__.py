"""The files of a store: the runtime's tables in them, handles, injected sources, crash
reconciliation, gc."""

from sqlite_cells.files._changesets import same_value as same_value
from sqlite_cells.files._damage import damage_advice as damage_advice
from sqlite_cells.files._damage import damage_noted as damage_noted
from sqlite_cells.files._damage import is_damage as is_damage
from sqlite_cells.files._damage import note_damage as note_damage
from sqlite_cells.files._damage import quick_check as quick_check
from sqlite_cells.files._damage import source_damage_advice as source_damage_advice
from sqlite_cells.files._handles import DROP_KIND as DROP_KIND
from sqlite_cells.files._handles import HANDLE_FINDING as HANDLE_FINDING
from sqlite_cells.files._handles import IN_USE_UNNAMED as IN_USE_UNNAMED
from sqlite_cells.files._handles import KEPT_IN_USE as KEPT_IN_USE
from sqlite_cells.files._handles import CheckFinished as CheckFinished
from sqlite_cells.files._handles import DamagedSpace as DamagedSpace
from sqlite_cells.files._handles import DatabaseDropped as DatabaseDropped
from sqlite_cells.files._handles import Garbage as Garbage
from sqlite_cells.files._handles import HandleNotWritable as HandleNotWritable
from sqlite_cells.files._handles import HandleQuarantined as HandleQuarantined
from sqlite_cells.files._handles import Stray as Stray
from sqlite_cells.files._handles import check_foreign_source as check_foreign_source
from sqlite_cells.files._handles import check_handle as check_handle
from sqlite_cells.files._handles import check_store as check_store
from sqlite_cells.files._handles import collect_garbage as collect_garbage
from sqlite_cells.files._handles import damaged_spaces as damaged_spaces
from sqlite_cells.files._handles import database_of as database_of
from sqlite_cells.files._handles import declaration_from_handle as declaration_from_handle
from sqlite_cells.files._handles import decode_handle as decode_handle
from sqlite_cells.files._handles import disk_handle_value as disk_handle_value
from sqlite_cells.files._handles import dropped_database as dropped_database
from sqlite_cells.files._handles import dropped_here as dropped_here
from sqlite_cells.files._handles import dropped_in as dropped_in
from sqlite_cells.files._handles import find_garbage as find_garbage
from sqlite_cells.files._handles import foreign_owner as foreign_owner
from sqlite_cells.files._handles import foreign_source as foreign_source
from sqlite_cells.files._handles import gc_plan as gc_plan
from sqlite_cells.files._handles import handle_not_writable as handle_not_writable
from sqlite_cells.files._handles import handle_schema as handle_schema
from sqlite_cells.files._handles import handle_shaped as handle_shaped
from sqlite_cells.files._handles import handle_value as handle_value
from sqlite_cells.files._handles import holds_handle as holds_handle
from sqlite_cells.files._handles import io_failure as io_failure
from sqlite_cells.files._handles import is_dropped as is_dropped
from sqlite_cells.files._handles import orphans as orphans
from sqlite_cells.files._handles import recorded_pin as recorded_pin
from sqlite_cells.files._handles import refused_writes as refused_writes
from sqlite_cells.files._handles import remember_handle as remember_handle
from sqlite_cells.files._handles import remove_garbage as remove_garbage
from sqlite_cells.files._handles import source_path as source_path
from sqlite_cells.files._handles import space_damage as space_damage
from sqlite_cells.files._handles import space_files as space_files
from sqlite_cells.files._handles import strays as strays
from sqlite_cells.files._handles import unreadable_advice as unreadable_advice
from sqlite_cells.files._handles import unreadable_handle as unreadable_handle
from sqlite_cells.files._handles import unwritten_handle as unwritten_handle
from sqlite_cells.files._handles import why_kept as why_kept
from sqlite_cells.files._handles import write_refused_by_file as write_refused_by_file
from sqlite_cells.files._handles import writes_refused as writes_refused
from sqlite_cells.files._held_files import copy_file as copy_file
from sqlite_cells.files._held_files import hold_open as hold_open
from sqlite_cells.files._held_files import read_head as read_head
from sqlite_cells.files._held_files import release_hold as release_hold
from sqlite_cells.files._layout import ALIAS as ALIAS
from sqlite_cells.files._layout import CHECKED_AGAIN as CHECKED_AGAIN
from sqlite_cells.files._layout import KIND as KIND
from sqlite_cells.files._layout import Identity as Identity
from sqlite_cells.files._layout import OpBody as OpBody
from sqlite_cells.files._layout import Pinned as Pinned
from sqlite_cells.files._layout import attach as attach
from sqlite_cells.files._layout import attached as attached
from sqlite_cells.files._layout import check_pinned as check_pinned
from sqlite_cells.files._layout import decode_op_body as decode_op_body
from sqlite_cells.files._layout import detach as detach
from sqlite_cells.files._layout import encode_op_body as encode_op_body
from sqlite_cells.files._layout import file_identity as file_identity
from sqlite_cells.files._layout import let_go as let_go
from sqlite_cells.files._layout import note_committed as note_committed
from sqlite_cells.files._layout import on_read_only_file_system as on_read_only_file_system
from sqlite_cells.files._layout import open_as_is as open_as_is
from sqlite_cells.files._layout import open_unwritable as open_unwritable
from sqlite_cells.files._layout import peek as peek
from sqlite_cells.files._layout import pin as pin
from sqlite_cells.files._layout import pinned as pinned
from sqlite_cells.files._layout import pinned_files as pinned_files
from sqlite_cells.files._layout import read_as_is as read_as_is
from sqlite_cells.files._layout import remove_unused_database as remove_unused_database
from sqlite_cells.files._layout import roll_back_interrupted as roll_back_interrupted
from sqlite_cells.files._layout import set_aside_moved as set_aside_moved
from sqlite_cells.files._layout import stored_json as stored_json
from sqlite_cells.files._layout import unpin as unpin
from sqlite_cells.files._reconcile import COPY_FAILED as COPY_FAILED
from sqlite_cells.files._reconcile import COPY_FOLDER as COPY_FOLDER
from sqlite_cells.files._reconcile import DAMAGED_FILE as DAMAGED_FILE
from sqlite_cells.files._reconcile import DISK_REFUSED as DISK_REFUSED
from sqlite_cells.files._reconcile import INDEX_PAST_LOG as INDEX_PAST_LOG
from sqlite_cells.files._reconcile import NO_FILE as NO_FILE
from sqlite_cells.files._reconcile import OTHER_HISTORY as OTHER_HISTORY
from sqlite_cells.files._reconcile import QUARANTINE_DIR as QUARANTINE_DIR
from sqlite_cells.files._reconcile import TABLES_DIFFER as TABLES_DIFFER
from sqlite_cells.files._reconcile import Action as Action
from sqlite_cells.files._reconcile import Outcome as Outcome
from sqlite_cells.files._reconcile import SpaceFileDamaged as SpaceFileDamaged
from sqlite_cells.files._reconcile import UnreadableFile as UnreadableFile
from sqlite_cells.files._reconcile import database_seq as database_seq
from sqlite_cells.files._reconcile import declares_alike as declares_alike
from sqlite_cells.files._reconcile import keep_copy as keep_copy
from sqlite_cells.files._reconcile import look_again as look_again
from sqlite_cells.files._reconcile import look_unlocked as look_unlocked
from sqlite_cells.files._reconcile import orphan_outcome as orphan_outcome
from sqlite_cells.files._reconcile import owned_elsewhere as owned_elsewhere
from sqlite_cells.files._reconcile import rebuild_refusal as rebuild_refusal
from sqlite_cells.files._reconcile import reconcile as reconcile
from sqlite_cells.files._reconcile import recorded_space_id as recorded_space_id
from sqlite_cells.files._reconcile import remove_database_files as remove_database_files
from sqlite_cells.files._reconcile import table_differences as table_differences
from sqlite_cells.files._reconcile import unopenable as unopenable
from sqlite_cells.files._reconcile import unreadable_outcome as unreadable_outcome
from sqlite_cells.files._sources import READ_ONLY_URI as READ_ONLY_URI
from sqlite_cells.files._sources import SOURCE_OPEN as SOURCE_OPEN
from sqlite_cells.files._sources import Pins as Pins
from sqlite_cells.files._sources import changed_while_read as changed_while_read
from sqlite_cells.files._sources import companions_gone as companions_gone
from sqlite_cells.files._sources import content_signature as content_signature
from sqlite_cells.files._sources import disk_source_id as disk_source_id
from sqlite_cells.files._sources import hot_journal_advice as hot_journal_advice
from sqlite_cells.files._sources import in_wal_mode as in_wal_mode
from sqlite_cells.files._sources import is_hot_journal as is_hot_journal
from sqlite_cells.files._sources import register_disk_file as register_disk_file
from sqlite_cells.files._sources import source_opening as source_opening
from sqlite_cells.files._sources import source_uri as source_uri
from sqlite_cells.files._sources import stands_instead as stands_instead
from sqlite_cells.files._sources import store_pins as store_pins
from sqlite_cells.files._sources import unread_wal as unread_wal
from sqlite_cells.files._sources import unread_wal_advice as unread_wal_advice
from sqlite_cells.files._sources import validate_disk_source as validate_disk_source
from sqlite_cells.files._sources import wal_companions_present as wal_companions_present
from sqlite_cells.files._watermark import WATERMARK_SQL as WATERMARK_SQL
from sqlite_cells.files._watermark import read_watermark as read_watermark
from sqlite_cells.files._watermark import set_watermark as set_watermark
from sqlite_cells.files._watermark import watermark_sql as watermark_sql

__all__ = [
    "ALIAS",
    "CHECKED_AGAIN",
    "COPY_FAILED",
    "COPY_FOLDER",
    "DAMAGED_FILE",
    "DISK_REFUSED",
    "DROP_KIND",
    "HANDLE_FINDING",
    "INDEX_PAST_LOG",
    "IN_USE_UNNAMED",
    "KEPT_IN_USE",
    "KIND",
    "NO_FILE",
    "OTHER_HISTORY",
    "QUARANTINE_DIR",
    "READ_ONLY_URI",
    "SOURCE_OPEN",
    "TABLES_DIFFER",
    "WATERMARK_SQL",
    "Action",
    "CheckFinished",
    "DamagedSpace",
    "DatabaseDropped",
    "Garbage",
    "HandleNotWritable",
    "HandleQuarantined",
    "Identity",
    "OpBody",
    "Outcome",
    "Pinned",
    "Pins",
    "SpaceFileDamaged",
    "Stray",
    "UnreadableFile",
    "attach",
    "attached",
    "changed_while_read",
    "check_foreign_source",
    "check_handle",
    "check_pinned",
    "check_store",
    "collect_garbage",
    "companions_gone",
    "content_signature",
    "copy_file",
    "damage_advice",
    "damage_noted",
    "damaged_spaces",
    "database_of",
    "database_seq",
    "declaration_from_handle",
    "declares_alike",
    "decode_handle",
    "decode_op_body",
    "detach",
    "disk_handle_value",
    "disk_source_id",
    "dropped_database",
    "dropped_here",
    "dropped_in",
    "encode_op_body",
    "file_identity",
    "find_garbage",
    "foreign_owner",
    "foreign_source",
    "gc_plan",
    "handle_not_writable",
    "handle_schema",
    "handle_shaped",
    "handle_value",
    "hold_open",
    "holds_handle",
    "hot_journal_advice",
    "in_wal_mode",
    "io_failure",
    "is_damage",
    "is_dropped",
    "is_hot_journal",
    "keep_copy",
    "let_go",
    "look_again",
    "look_unlocked",
    "note_committed",
    "note_damage",
    "on_read_only_file_system",
    "open_as_is",
    "open_unwritable",
    "orphan_outcome",
    "orphans",
    "owned_elsewhere",
    "peek",
    "pin",
    "pinned",
    "pinned_files",
    "quick_check",
    "read_as_is",
    "read_head",
    "read_watermark",
    "rebuild_refusal",
    "reconcile",
    "recorded_pin",
    "recorded_space_id",
    "refused_writes",
    "register_disk_file",
    "release_hold",
    "remember_handle",
    "remove_database_files",
    "remove_garbage",
    "remove_unused_database",
    "roll_back_interrupted",
    "same_value",
    "set_aside_moved",
    "set_watermark",
    "source_damage_advice",
    "source_opening",
    "source_path",
    "source_uri",
    "space_damage",
    "space_files",
    "stands_instead",
    "store_pins",
    "stored_json",
    "strays",
    "table_differences",
    "unopenable",
    "unpin",
    "unread_wal",
    "unread_wal_advice",
    "unreadable_advice",
    "unreadable_handle",
    "unreadable_outcome",
    "unwritten_handle",
    "validate_disk_source",
    "wal_companions_present",
    "watermark_sql",
    "why_kept",
    "write_refused_by_file",
    "writes_refused",
]

"""The reactive runtime: store, spaces, cells, transactions, commit log, scheduler, builders.

Imports ``codec`` only and knows nothing of SQL written by users; other kinds of commit operation
plug in through :class:`CommitParticipant`.
"""

from sqlite_cells.runtime._boundary import DAMAGED_SPACE_ADVICE as DAMAGED_SPACE_ADVICE
from sqlite_cells.runtime._boundary import MAX_SECONDS as MAX_SECONDS
from sqlite_cells.runtime._boundary import InvalidArgument as InvalidArgument
from sqlite_cells.runtime._boundary import StorePathError as StorePathError
from sqlite_cells.runtime._boundary import UnknownInput as UnknownInput
from sqlite_cells.runtime._boundary import check_name as check_name
from sqlite_cells.runtime._boundary import check_timeout as check_timeout
from sqlite_cells.runtime._boundary import checked_arguments as checked_arguments
from sqlite_cells.runtime._boundary import describe as describe
from sqlite_cells.runtime._boundary import exception_text as exception_text
from sqlite_cells.runtime._boundary import locale_decoded as locale_decoded
from sqlite_cells.runtime._boundary import out_of_files as out_of_files
from sqlite_cells.runtime._boundary import path_text as path_text
from sqlite_cells.runtime._boundary import plain_text as plain_text
from sqlite_cells.runtime._boundary import printable as printable
from sqlite_cells.runtime._boundary import refusal_of as refusal_of
from sqlite_cells.runtime._boundary import stored_json_column as stored_json_column
from sqlite_cells.runtime._boundary import surrogate_at as surrogate_at
from sqlite_cells.runtime._boundary import translated as translated
from sqlite_cells.runtime._boundary import waited_for_lock as waited_for_lock
from sqlite_cells.runtime._cell import NO_VALUE as NO_VALUE
from sqlite_cells.runtime._cell import Cell as Cell
from sqlite_cells.runtime._cell import Reactive as Reactive
from sqlite_cells.runtime._cell import refuse_get as refuse_get
from sqlite_cells.runtime._cell import refuse_set as refuse_set
from sqlite_cells.runtime._commit import TOO_BIG_ADVICE as TOO_BIG_ADVICE
from sqlite_cells.runtime._commit import RecordTooBig as RecordTooBig
from sqlite_cells.runtime._derived import Derived as Derived
from sqlite_cells.runtime._derived import derive as derive
from sqlite_cells.runtime._derived import lift as lift
from sqlite_cells.runtime._derived import node_of as node_of
from sqlite_cells.runtime._file_kind import check_companions as check_companions
from sqlite_cells.runtime._file_kind import check_file_kinds as check_file_kinds
from sqlite_cells.runtime._file_kind import check_not_dangling as check_not_dangling
from sqlite_cells.runtime._file_kind import check_not_inherited as check_not_inherited
from sqlite_cells.runtime._file_kind import dangling_link as dangling_link
from sqlite_cells.runtime._file_kind import file_identity as file_identity
from sqlite_cells.runtime._file_kind import file_state as file_state
from sqlite_cells.runtime._file_kind import odd_kind as odd_kind
from sqlite_cells.runtime._file_kind import quick_check as quick_check
from sqlite_cells.runtime._file_locks import forbid_companions as forbid_companions
from sqlite_cells.runtime._file_locks import hold_locks as hold_locks
from sqlite_cells.runtime._file_locks import locks_held as locks_held
from sqlite_cells.runtime._file_locks import opened_file as opened_file
from sqlite_cells.runtime._file_locks import reading_sources as reading_sources
from sqlite_cells.runtime._file_locks import use_held_locks as use_held_locks
from sqlite_cells.runtime._format import FORMAT_VERSION as FORMAT_VERSION
from sqlite_cells.runtime._format import index_ops as index_ops
from sqlite_cells.runtime._format import is_current_format as is_current_format
from sqlite_cells.runtime._format import op_targets_by_seq as op_targets_by_seq
from sqlite_cells.runtime._format import readable_format as readable_format
from sqlite_cells.runtime._format import stored_format as stored_format
from sqlite_cells.runtime._format import upgrade_space_file as upgrade_space_file
from sqlite_cells.runtime._handler import handler as handler
from sqlite_cells.runtime._handler import note_taken as note_taken
from sqlite_cells.runtime._handler import taken_by_earlier_try as taken_by_earlier_try
from sqlite_cells.runtime._harden import harden as harden
from sqlite_cells.runtime._interrupts import interrupts_held as interrupts_held
from sqlite_cells.runtime._lock_wait import lock_waits as lock_waits
from sqlite_cells.runtime._lock_wait import lock_waits_given_up as lock_waits_given_up
from sqlite_cells.runtime._lock_wait import set_lock_wait as set_lock_wait
from sqlite_cells.runtime._lock_wait import wait_for_locks as wait_for_locks
from sqlite_cells.runtime._log import TARGET_BYTES as TARGET_BYTES
from sqlite_cells.runtime._log import last_seq as last_seq
from sqlite_cells.runtime._log import log_head as log_head
from sqlite_cells.runtime._log import op_targets as op_targets
from sqlite_cells.runtime._log import stored_int as stored_int
from sqlite_cells.runtime._marks import forget as forget_marks
from sqlite_cells.runtime._marks import unchanged_since as unchanged_since
from sqlite_cells.runtime._moved_files import QUARANTINE_DIR as QUARANTINE_DIR
from sqlite_cells.runtime._moved_files import set_aside as set_aside
from sqlite_cells.runtime._moved_files import wal_state as wal_state
from sqlite_cells.runtime._observable import OBSERVABLE as OBSERVABLE
from sqlite_cells.runtime._participants import CommitParticipant as CommitParticipant
from sqlite_cells.runtime._pattern import Pattern as Pattern
from sqlite_cells.runtime._pattern import Piece as Piece
from sqlite_cells.runtime._pattern import causal_cause as causal_cause
from sqlite_cells.runtime._pattern import pattern as pattern
from sqlite_cells.runtime._pattern import spelled_apart as spelled_apart
from sqlite_cells.runtime._pattern import taken as taken
from sqlite_cells.runtime._pattern import top_level_name as top_level_name
from sqlite_cells.runtime._pending import PENDING as PENDING
from sqlite_cells.runtime._pending import Pending as Pending
from sqlite_cells.runtime._runtime import Runtime as Runtime
from sqlite_cells.runtime._runtime import thread_refused as thread_refused
from sqlite_cells.runtime._runtime import weakly as weakly
from sqlite_cells.runtime._scheduler import Node as Node
from sqlite_cells.runtime._scheduler import Scheduler as Scheduler
from sqlite_cells.runtime._scheduler import Work as Work
from sqlite_cells.runtime._scheduler import own as own
from sqlite_cells.runtime._shown import showing_cells as showing_cells
from sqlite_cells.runtime._space import Space as Space
from sqlite_cells.runtime._space import own_transaction as own_transaction
from sqlite_cells.runtime._space_file import BUSY_TIMEOUT_MS as BUSY_TIMEOUT_MS
from sqlite_cells.runtime._space_file import SPACE_TABLES as SPACE_TABLES
from sqlite_cells.runtime._space_file import CommitEvent as CommitEvent
from sqlite_cells.runtime._space_file import SpaceFile as SpaceFile
from sqlite_cells.runtime._space_file import busy_ms as busy_ms
from sqlite_cells.runtime._space_file import space_file_advice as space_file_advice
from sqlite_cells.runtime._space_file import space_shape_problem as space_shape_problem
from sqlite_cells.runtime._store import DEFAULT_STORE as DEFAULT_STORE
from sqlite_cells.runtime._store import LONGEST_SQLITE_PATH as LONGEST_SQLITE_PATH
from sqlite_cells.runtime._store import SPACE_FILES as SPACE_FILES
from sqlite_cells.runtime._store import STORE_ENV as STORE_ENV
from sqlite_cells.runtime._store import check_cwd as check_cwd
from sqlite_cells.runtime._store import home_expanded as home_expanded
from sqlite_cells.runtime._store import shown_path as shown_path
from sqlite_cells.runtime._store import space_file_name as space_file_name
from sqlite_cells.runtime._streams import node_values as node_values
from sqlite_cells.runtime._streams import observe_node as observe_node
from sqlite_cells.runtime._tx import LENGTH_LIMIT as LENGTH_LIMIT
from sqlite_cells.runtime._tx import ROW_SLACK as ROW_SLACK
from sqlite_cells.runtime._tx import PendingOp as PendingOp
from sqlite_cells.runtime._tx import Transaction as Transaction
from sqlite_cells.runtime._tx import current_transaction as current_transaction
from sqlite_cells.runtime._tx import keep_no_reads as keep_no_reads
from sqlite_cells.runtime._tx import keep_reads_if_accepted as keep_reads_if_accepted
from sqlite_cells.runtime._tx import record_name as record_name
from sqlite_cells.runtime._tx import record_write as record_write
from sqlite_cells.runtime._tx import require_transaction as require_transaction
from sqlite_cells.runtime._unused_files import has_moved as has_moved
from sqlite_cells.runtime._unused_files import remove_unused as remove_unused

# Before any connection of this process is opened (see _file_locks).
hold_locks()


def _bind_names_for_annotations() -> None:
    """Binds in each module the names it imports for type checkers only — each defined by a
    module that imports it, a cycle — now that all are loaded, so that ``typing.get_type_hints``
    resolves the annotations of the public classes at run time (§3) as a type checker does."""
    import sys

    from sqlite_cells.runtime._scheduler import Subscription

    bound: dict[str, dict[str, object]] = {
        "_cell": {"Space": Space, "SpaceFile": SpaceFile},
        "_commit": {"CommitParticipant": CommitParticipant, "Transaction": Transaction},
        "_group": {
            "CommitParticipant": CommitParticipant,
            "PendingOp": PendingOp,
            "Transaction": Transaction,
        },
        "_lock_holder": {"SpaceFile": SpaceFile, "Transaction": Transaction},
        "_participants": {"PendingOp": PendingOp},
        "_pattern": {"Cell": Cell, "Space": Space},
        "_space": {"Runtime": Runtime},
        "_space_file": {
            "CommitParticipant": CommitParticipant,
            "PendingOp": PendingOp,
            "Transaction": Transaction,
        },
        "_streams": {
            "Cell": Cell,
            "Node": Node,
            "Reactive": Reactive,
            "Subscription": Subscription,
        },
        "_tx": {"SpaceFile": SpaceFile},
    }
    for module, names in bound.items():
        vars(sys.modules[f"{__name__}.{module}"]).update(names)


_bind_names_for_annotations()

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DAMAGED_SPACE_ADVICE",
    "DEFAULT_STORE",
    "FORMAT_VERSION",
    "LENGTH_LIMIT",
    "LONGEST_SQLITE_PATH",
    "MAX_SECONDS",
    "NO_VALUE",
    "OBSERVABLE",
    "PENDING",
    "QUARANTINE_DIR",
    "ROW_SLACK",
    "SPACE_FILES",
    "SPACE_TABLES",
    "STORE_ENV",
    "TARGET_BYTES",
    "TOO_BIG_ADVICE",
    "Cell",
    "CommitEvent",
    "CommitParticipant",
    "Derived",
    "InvalidArgument",
    "Node",
    "Pattern",
    "Pending",
    "PendingOp",
    "Piece",
    "Reactive",
    "RecordTooBig",
    "Runtime",
    "Scheduler",
    "Space",
    "SpaceFile",
    "StorePathError",
    "Transaction",
    "UnknownInput",
    "Work",
    "busy_ms",
    "causal_cause",
    "check_companions",
    "check_cwd",
    "check_file_kinds",
    "check_name",
    "check_not_dangling",
    "check_not_inherited",
    "check_timeout",
    "checked_arguments",
    "current_transaction",
    "dangling_link",
    "derive",
    "describe",
    "exception_text",
    "file_identity",
    "file_state",
    "forbid_companions",
    "forget_marks",
    "handler",
    "harden",
    "has_moved",
    "hold_locks",
    "home_expanded",
    "index_ops",
    "interrupts_held",
    "is_current_format",
    "keep_no_reads",
    "keep_reads_if_accepted",
    "last_seq",
    "lift",
    "locale_decoded",
    "lock_waits",
    "lock_waits_given_up",
    "locks_held",
    "log_head",
    "node_of",
    "node_values",
    "note_taken",
    "observe_node",
    "odd_kind",
    "op_targets",
    "op_targets_by_seq",
    "opened_file",
    "out_of_files",
    "own",
    "own_transaction",
    "path_text",
    "pattern",
    "plain_text",
    "printable",
    "quick_check",
    "readable_format",
    "reading_sources",
    "record_name",
    "record_write",
    "refusal_of",
    "refuse_get",
    "refuse_set",
    "remove_unused",
    "require_transaction",
    "set_aside",
    "set_lock_wait",
    "showing_cells",
    "shown_path",
    "space_file_advice",
    "space_file_name",
    "space_shape_problem",
    "spelled_apart",
    "stored_format",
    "stored_int",
    "stored_json_column",
    "surrogate_at",
    "taken",
    "taken_by_earlier_try",
    "thread_refused",
    "top_level_name",
    "translated",
    "unchanged_since",
    "upgrade_space_file",
    "use_held_locks",
    "wait_for_locks",
    "waited_for_lock",
    "wal_state",
]

"""The reactive runtime: store, spaces, cells, transactions, commit log, scheduler, builders.

Imports ``codec`` only and knows nothing of SQL written by users; other kinds of commit operation
plug in through :class:`CommitParticipant`.
"""

from runtime._cell import Cell as Cell
from runtime._cell import Reactive as Reactive
from runtime._derived import Derived as Derived
from runtime._derived import derive as derive
from runtime._derived import lift as lift
from runtime._derived import node_of as node_of
from runtime._handler import handler as handler
from runtime._participants import CommitParticipant as CommitParticipant
from runtime._pattern import Pattern as Pattern
from runtime._pattern import Piece as Piece
from runtime._pattern import causal_cause as causal_cause
from runtime._pattern import pattern as pattern
from runtime._pending import PENDING as PENDING
from runtime._pending import Pending as Pending
from runtime._runtime import Runtime as Runtime
from runtime._scheduler import Node as Node
from runtime._scheduler import Scheduler as Scheduler
from runtime._space import Space as Space
from runtime._space_file import CommitEvent as CommitEvent
from runtime._space_file import SpaceFile as SpaceFile
from runtime._tx import Transaction as Transaction
from runtime._tx import current_transaction as current_transaction
from runtime._tx import require_transaction as require_transaction

__all__ = [
    "PENDING",
    "Cell",
    "CommitEvent",
    "CommitParticipant",
    "Derived",
    "Node",
    "Pattern",
    "Pending",
    "Piece",
    "Reactive",
    "Runtime",
    "Scheduler",
    "Space",
    "SpaceFile",
    "Transaction",
    "causal_cause",
    "current_transaction",
    "derive",
    "handler",
    "lift",
    "node_of",
    "pattern",
    "require_transaction",
]

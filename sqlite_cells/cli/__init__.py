"""The ``sqlite-cells`` command: commands, inspection and the demo."""

from sqlite_cells.cli._cli import main as main
from sqlite_cells.cli._demo import ChatRun as ChatRun
from sqlite_cells.cli._demo import run_chat as run_chat

__all__ = ["ChatRun", "main", "run_chat"]

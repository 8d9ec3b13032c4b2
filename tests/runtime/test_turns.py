"""§3: async handlers that keep conflicting in a space take turns there (``runtime/_turns.py``).
A task holding the turn on an event loop closed while it was pending never ended its turn: every
later async handler of that space that conflicted three times waited the whole patience (1 s)
for it, for the runtime's life. A turn held from a closed loop is taken from it, and the held
task's late give-back (its coroutine collected) gives back nothing."""

from __future__ import annotations

import asyncio

from sqlite_cells.runtime._turns import Turns


def test_a_turn_held_from_a_closed_loop_is_taken_from_it() -> None:
    turns = Turns()
    dead = asyncio.new_event_loop()
    assert dead.run_until_complete(turns.take(1.0)) is True
    dead.close()  # (its holder never gives back)
    live = asyncio.new_event_loop()
    try:
        assert live.run_until_complete(turns.take(5.0)) is True  # at once, not after 5 s
        turns.give_back()  # the dead holder's, from no loop: not the turn's any more
        other = asyncio.new_event_loop()
        try:
            assert other.run_until_complete(turns.take(0.05)) is False  # still the live one's
        finally:
            other.close()

        async def give_back() -> None:
            turns.give_back()

        live.run_until_complete(give_back())
        assert asyncio.run(turns.take(0.05)) is True
    finally:
        live.close()

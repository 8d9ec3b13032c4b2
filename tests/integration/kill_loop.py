"""Kill a writer at random instants, again and again, and check the store after each (R72).

    python tests/integration/kill_loop.py --loops 1000 [--store DIR] [--seed N]

Each loop forks a writer (``crashkit writer``: bump a counter cell and insert one row per commit)
on the same store, SIGKILLs it 30–300 ms after it is ready, reopens the store with a runtime and
checks that the files agree once reconciled, that rows == counter, and that no commit whose call
returned was lost. Exit status 0 when every loop passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crashkit  # found through the path above


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=100)
    parser.add_argument("--store", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--seed", type=int, default=20240501)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kill-loop-") as scratch:
        store = args.store or Path(scratch) / "store"
        store.mkdir(parents=True, exist_ok=True)
        forks = crashkit.ForkServer(Path(scratch) / "writers.stderr")
        started = time.perf_counter()
        try:
            stats = crashkit.kill_loop(
                forks, store, args.loops, random.Random(args.seed), crashkit.LoopStats()
            )
        finally:
            forks.close()
        elapsed = time.perf_counter() - started
    print(f"loops run: {stats.loops}")
    print(f"commits returned before the kills: {stats.commits_seen}")
    print(f"divergences found before reconcile: {stats.diverged_before}")
    print(f"divergences left after reconcile: {stats.diverged_after}")
    print(f"failed checks: {len(stats.broken)}")
    for line in stats.broken:
        print(f"  {line}")
    print(f"elapsed: {elapsed:.1f} s")
    return 0 if stats.diverged_after == 0 and not stats.broken else 1


if __name__ == "__main__":
    sys.exit(main())

"""Runnable example apps: ``python -m examples.<name> [STORE]`` from the repository root.

Each module has a ``main(store=None)`` that the test suite calls; without a store it runs on a
temporary one (``sc.Runtime.ephemeral()``) that is removed when it ends.
"""

"""The metadata cache: retry policy as immutable values (policy), which lookup
goes out when (scheduler), both pure and driven by the ``now`` they are given;
and the store, the threaded shell that keeps entries and runs lookups. Knows
nothing of HTTP: its source is any object with ``pod`` and ``namespace``."""

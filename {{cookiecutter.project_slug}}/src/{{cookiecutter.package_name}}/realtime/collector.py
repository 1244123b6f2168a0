"""The garbage collector's settings for a process that holds many idle connections.

Every open WebSocket keeps a few hundred Python objects alive for hours.
CPython's default thresholds (700, 10, 10) make it collect the oldest
generation, a pass over every object of every connection, each time the
live objects have grown by a quarter: at 5,000 connections one such pass
took 200 ms, a pause every client feels, and full passes were a third of
the CPU spent accepting connections (the benchmarks' capacity scenario).
Thresholds a few times larger make young collections rarer and the full
ones rarer still; freezing what exists at startup (modules, classes, the
app) takes it out of every later pass.
"""

from __future__ import annotations

import gc

# Allocations between young collections, and young (then middle) collections
# between older ones: 10,000 x 20 x 20 lets about four million objects be
# allocated between chances of a full collection (CPython's default: 70,000).
THRESHOLDS = (10_000, 20, 20)


def tune_garbage_collector() -> None:
    """Raise the collector's thresholds and freeze the objects alive now; idempotent."""
    gc.set_threshold(*THRESHOLDS)
    gc.freeze()

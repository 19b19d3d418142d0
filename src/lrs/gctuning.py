"""The cyclic garbage collector, tuned for processes that parse statements in bulk."""

from __future__ import annotations

import gc

# Allocations between collections of the youngest objects: in the server, and in a command.
SERVER_YOUNG = 50_000
COMMAND_YOUNG = 500_000


def collect_less(young: int = SERVER_YOUNG) -> None:
    """Leave what start-up built out of the collector's scans, and collect the youngest
    objects less often.

    Call once start-up is done. A batch of parsed statements is tens of thousands of dicts;
    with the default thresholds the collector rescans them (and every module) again and
    again while the batch is parsed, which cost a bulk import a fifth of its CPU. A command
    collects ten times less often still (an import's statements are then mostly freed
    before a scan reaches them); the server does not, since every request waits while a
    scan runs.
    """
    gc.freeze()
    gc.set_threshold(young, 20, 20)

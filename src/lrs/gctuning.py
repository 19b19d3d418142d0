"""The cyclic garbage collector, tuned for processes that parse statements in bulk."""

from __future__ import annotations

import gc


def collect_less() -> None:
    """Leave what start-up built out of the collector's scans, and collect the youngest
    objects less often.

    Call once start-up is done. A batch of parsed statements is tens of thousands of dicts;
    with the default thresholds the collector rescans them (and every module) again and
    again while the batch is parsed, which cost a bulk import a fifth of its CPU.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)

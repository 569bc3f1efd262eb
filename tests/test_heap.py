"""cds.heap.settle in a fresh interpreter (it changes process-wide collector state, so not in this one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import gc
from cds import heap
from cds.evaluation import Evaluator
ev = Evaluator()
before = gc.get_freeze_count()
heap.settle()
print(before, gc.get_freeze_count(), gc.get_threshold()[0], len(gc.get_objects()))
"""


def test_settle_freezes_the_long_lived_heap_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    before, frozen, threshold, tracked = map(int, out)
    assert before == 0
    assert frozen > 10_000  # the knowledge, the compiled rules and the modules
    assert threshold == 5000
    assert tracked < frozen // 10  # what is left to the collector is small

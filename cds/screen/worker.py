"""Evaluate one patient's bulk-export lines into a screening row. Shared by the local runner and Spark.

Each process holds exactly one Evaluator, built on first use inside that process (after fork, never
inherited): a local pool worker or a Spark Python worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import date

from cds import heap
from cds.errors import CdsError
from cds.evaluation import Evaluator
from cds.fhir.bulk import add_shared
from cds.fhir.reader import read_lines
from cds.screen.row import Row, error_row, row_from_evaluation

_EVALUATOR: Evaluator | None = None
_EVALUATOR_PID: int | None = None


def evaluator() -> Evaluator:
    """This process's Evaluator (rebuilt if the process was forked from one that already had one); once built,
    the process's long-lived heap is settled out of the garbage collector's way (cds/heap.py)."""
    global _EVALUATOR, _EVALUATOR_PID
    if _EVALUATOR is None or os.getpid() != _EVALUATOR_PID:
        _EVALUATOR, _EVALUATOR_PID = Evaluator(), os.getpid()
        heap.settle()
    return _EVALUATOR


def adopt_inherited() -> None:
    """In a child forked (cds.screen.supervise) from a process that holds its Evaluator and is not evaluating:
    use that Evaluator instead of building another. Safe because an evaluation deletes its durable_rules sessions
    before it returns, so none is open at the fork, and the process has one thread, so the evaluator's lock is
    free."""
    global _EVALUATOR_PID
    if _EVALUATOR is not None:
        _EVALUATOR_PID = os.getpid()


def evaluate_patient(
    patient_id: str, lines: Iterable[bytes], now: date, shared: Mapping[str, bytes] | None = None
) -> Row:
    """One row, with the shared resources (cds.fhir.bulk.load_shared) the patient's resources reference; an
    input the engine cannot use, or an engine failure, gives an error row, never an exception."""
    ev = evaluator()
    # Sorted by content: the engine sees the same order whatever the partitioning or shuffle order was. Empty
    # lines stand for resources of types no rule reads (cds.fhir.bulk.PRESENT).
    ordered = sorted(line for line in lines if line)
    if not ordered:
        message = "InputError: the export holds only resources of types no rule reads for this patient"
        return error_row(patient_id, message, ev.knowledge.version, now.isoformat())
    try:
        raw = read_lines(ordered)
        if shared:
            add_shared(raw, shared)
        return row_from_evaluation(patient_id, ev.evaluate_raw(raw, now))
    except CdsError as exc:
        message = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug for one patient must not stop a population run; it is reported per row
        message = f"internal {type(exc).__name__}: {exc}"
    return error_row(patient_id, message, ev.knowledge.version, now.isoformat())

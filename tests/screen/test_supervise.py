"""Patients evaluated in forked children: a patient that kills its process gets an error row, the rest their
rows, in order."""

from __future__ import annotations

import os
from pathlib import Path

from cds.screen.supervise import supervised

ITEMS = [(f"p{i}", i) for i in range(8)]


def _rows(evaluate, items=ITEMS):  # type: ignore[no-untyped-def]
    return list(supervised(items, evaluate, lambda pid, code: f"crash {pid} {code}".encode()))


def test_rows_in_order_without_a_crash() -> None:
    assert _rows(lambda pid, i: f"{pid}:{i * i}".encode()) == [(p, f"{p}:{i * i}".encode()) for p, i in ITEMS]


def test_a_patient_that_kills_its_process_twice_gets_a_crash_row() -> None:
    def evaluate(pid: str, i: int) -> bytes:
        if pid == "p3":
            os._exit(70)
        return pid.encode()

    rows = _rows(evaluate)
    assert rows == [(p, b"crash p3 70" if p == "p3" else p.encode()) for p, _ in ITEMS]


def test_a_death_that_does_not_recur_costs_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The first child dies on p5 (say, killed); p5 alone succeeds: every row is the normal one."""
    marker = tmp_path / "died-once"

    def evaluate(pid: str, i: int) -> bytes:
        if pid == "p5" and not marker.exists():
            marker.write_text("x")
            os._exit(9)
        return pid.encode()

    assert _rows(evaluate) == [(p, p.encode()) for p, _ in ITEMS]


def test_an_exception_escaping_evaluate_is_treated_like_a_crash() -> None:
    def evaluate(pid: str, i: int) -> bytes:
        if i in (0, 7):
            raise RuntimeError("boom")
        return pid.encode()

    rows = dict(_rows(evaluate))
    assert rows["p0"] == b"crash p0 70" and rows["p7"] == b"crash p7 70"
    assert [rows[f"p{i}"] for i in range(1, 7)] == [f"p{i}".encode() for i in range(1, 7)]


def test_a_large_row_and_an_empty_list() -> None:
    big = b"x" * 300_000  # more than a pipe buffer: the child blocks until the parent reads
    assert _rows(lambda pid, i: big, ITEMS[:2]) == [("p0", big), ("p1", big)]
    assert _rows(lambda pid, i: b"", []) == []


def _children() -> set[str]:
    return {c for f in Path("/proc/self/task").glob("*/children") for c in f.read_text().split()}


def test_a_consumer_that_stops_early_leaves_no_child() -> None:
    before = _children()
    gen = supervised(ITEMS, lambda pid, i: pid.encode(), lambda pid, code: b"")
    assert next(gen) == ("p0", b"p0")
    assert len(_children() - before) == 1
    gen.close()
    assert _children() - before == set()  # killed and reaped

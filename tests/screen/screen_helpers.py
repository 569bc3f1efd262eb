"""Constants and helpers shared by the screening tests (fixtures are in conftest.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

N_PATIENTS = 40
NOW = date(2026, 1, 15)


def read_bytes(out: Path) -> tuple[bytes, bytes]:
    return (out / "screening.parquet").read_bytes(), (out / "screening.csv").read_bytes()

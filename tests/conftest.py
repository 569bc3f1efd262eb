from __future__ import annotations

import os

# Every trusted construction is also validated, and must agree (cds.facts.construct); before cds is imported.
os.environ["CDS_CHECK_CONSTRUCTION"] = "1"

from datetime import date
from pathlib import Path

import pytest

from cds.evaluation import Evaluator
from cds.knowledge import Knowledge, cached_knowledge

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED_DATA = ROOT.parent / "shared" / "data"
NOW = date(2026, 1, 15)


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return cached_knowledge()


@pytest.fixture(scope="session")
def durable(knowledge: Knowledge) -> Evaluator:
    return Evaluator(knowledge, kind="durable")


@pytest.fixture(scope="session")
def reference(knowledge: Knowledge) -> Evaluator:
    return Evaluator(knowledge, kind="reference")


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("[0-9]*.json"))

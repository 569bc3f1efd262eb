from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cds.knowledge.loader import default_rules_dir

ROOT = Path(__file__).resolve().parents[2]
RULES = default_rules_dir()
PATIENTS = ROOT / "tests" / "patients"


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A private copy of rules/ that a test may break."""
    dest = tmp_path / "rules"
    shutil.copytree(RULES, dest)
    return dest

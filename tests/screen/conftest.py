"""A small generated bulk export (plain and gzip) and one reference local run, shared by the screening tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from screen_helpers import N_PATIENTS, NOW

from cds.screen import screen_local
from cds.synthetic import write_bulk_export

# Some patients have doses given on a ward or in a clinic (MedicationAdministration.ndjson), so that every local
# and Spark comparison covers that file too.
ADMINISTRATION_RATE = 0.25


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    write_bulk_export(out, N_PATIENTS, seed=3, broken_line_rate=0.02, administration_rate=ADMINISTRATION_RATE)
    return out


@pytest.fixture(scope="session")
def export_gz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export-gz")
    write_bulk_export(
        out, N_PATIENTS, seed=3, broken_line_rate=0.02, administration_rate=ADMINISTRATION_RATE, gzip_files=True
    )
    return out


@pytest.fixture(scope="session")
def reference_run(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process local run every other run is compared with."""
    out = tmp_path_factory.mktemp("ref")
    result = screen_local(export_dir, out, NOW, processes=1, progress=False)
    assert result.complete
    return out

"""The Spark job (local[2]) writes exactly the table of the local run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from screen_helpers import NOW, read_bytes

pytest.importorskip("pyspark")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from cds.screen.spark import spark_session

    session = spark_session("local[2]", app_name="cds-screen-tests")
    yield session
    session.stop()


def test_spark_table_identical_to_local(spark: Any, export_dir: Path, reference_run: Path, tmp_path: Path) -> None:
    from cds.screen.spark import screen_spark

    result = screen_spark(export_dir, tmp_path, NOW, spark=spark, partitions=3)
    assert result.complete
    assert read_bytes(tmp_path) == read_bytes(reference_run)
    local = orjson.loads((reference_run / "summary.json").read_bytes())
    remote = orjson.loads((tmp_path / "summary.json").read_bytes())
    for key in ("patients", "trd_status", "failed_adequate_trials", "data_quality", "input"):
        assert remote[key] == local[key], key


def test_spark_gzip(spark: Any, export_gz: Path, reference_run: Path, tmp_path: Path) -> None:
    from cds.screen.spark import screen_spark

    screen_spark(export_gz, tmp_path, NOW, spark=spark)
    assert read_bytes(tmp_path) == read_bytes(reference_run)


def test_spark_interleaved_patients_and_files(spark: Any, tmp_path: Path) -> None:
    """Lines of a patient scattered over a file and over two files of one type (plain and gzip): the Spark table
    equals the local one, and the line counts too."""
    import gzip

    import pyarrow.parquet as pq

    from cds.fhir.reader import BOM
    from cds.screen import screen_local
    from cds.screen.spark import screen_spark

    export = tmp_path / "export"
    export.mkdir()
    patients = [b'{"resourceType":"Patient","id":"p%d","birthDate":"1980-01-01"}' % i for i in range(6)]
    # a byte order mark first, as tools on Windows write it
    (export / "Patient.ndjson").write_bytes(BOM + b"\n".join(patients) + b"\n\n")
    cond = b'{"resourceType":"Condition","id":"c%d","subject":{"reference":"Patient/p%d"},"code":{"text":"x"}}'
    (export / "Condition.ndjson").write_bytes(b"\n".join(cond % (i, i % 6) for i in range(30)) + b"\n{broken\n")
    with gzip.open(export / "Condition.ndjson.gz", "wb") as fh:
        fh.write(b"\n".join(cond % (100 + i, i % 4) for i in range(12)) + b"\n[1]\n")
    # a type no rule reads, p7 having nothing else: presence markers cross split ranges and the shuffle
    enc = b'{"resourceType":"Encounter","id":"e%d","subject":{"reference":"Patient/p%d"}}'
    (export / "Encounter.ndjson").write_bytes(b"\n".join(enc % (i, 7 if i % 3 else i % 6) for i in range(40)) + b"\n")
    local, remote = tmp_path / "local", tmp_path / "spark"
    screen_local(export, local, NOW, processes=1, progress=False)
    screen_spark(export, remote, NOW, spark=spark, partitions=4, split_bytes=200)  # plain files in many ranges
    assert read_bytes(remote) == read_bytes(local)
    a, b = (orjson.loads((d / "summary.json").read_bytes())["input"] for d in (local, remote))
    assert a == b and a["bad_lines"] == {"not_json": 1, "not_object": 1} and a["unread_resources"] == 40
    assert a["patient_resources"] == 6  # the first Patient, behind the byte order mark, too
    rows = pq.read_table(remote / "screening.parquet").to_pylist()
    assert [r["patient_id"] for r in rows] == [f"p{i}" for i in (0, 1, 2, 3, 4, 5, 7)]
    assert rows[-1]["evaluated"] is False


VICTIM = "syn-3000007"


def _crashing_evaluate(patient_id: str, *args: Any) -> Any:
    """evaluate_patient, except that one patient kills its process (as a crash in the engine's C core would)."""
    import os

    from cds.screen.worker import evaluate_patient

    if patient_id == VICTIM:
        os._exit(70)
    return evaluate_patient(patient_id, *args)


def test_spark_a_patient_that_crashes_the_engine_gets_an_error_row(
    spark: Any, export_dir: Path, reference_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without supervision the dead Python worker fails the task, each retry dies the same way, and the job fails.
    Here the patient gets an EngineCrash row and every other row equals the local run's."""
    import sys

    import pyarrow.parquet as pq
    from pyspark import cloudpickle

    from cds.screen import spark as spark_module

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the executors cannot import this test module
    try:
        monkeypatch.setattr(spark_module, "evaluate_patient", _crashing_evaluate)  # shipped with the job's closure
        result = spark_module.screen_spark(export_dir, tmp_path, NOW, spark=spark, partitions=3)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert result.complete and result.report is not None
    assert result.report["not_evaluated"] == {"EngineCrash": 1}
    rows = pq.read_table(tmp_path / "screening.parquet").to_pylist()
    expected = pq.read_table(reference_run / "screening.parquet").to_pylist()
    (crashed,) = [r for r in rows if r["patient_id"] == VICTIM]
    assert crashed["evaluated"] is False and "died twice" in crashed["error"]
    assert [r for r in rows if r["patient_id"] != VICTIM] == [r for r in expected if r["patient_id"] != VICTIM]

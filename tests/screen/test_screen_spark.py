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

"""Write the screening table (Parquet and CSV) from rows already sorted by patient id, in batches.

Both the local runner and the Spark job write through here, so their files are identical byte for byte.
CSV cells: lists joined with ``;``, maps as compact JSON objects, null as an empty cell.

pyarrow is imported only when a table is written. Importing it imports numpy, whose OpenBLAS starts threads;
once a process has had a second thread, glibc's malloc and free take the arena lock on every call, in that
process and in every process forked from it. The screening workers are forked from the driver, so the driver
must not import pyarrow before they are.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from cds.screen.row import COLUMNS, Row
from cds.screen.summary import SummaryBuilder

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

PARQUET_NAME = "screening.parquet"
CSV_NAME = "screening.csv"
BATCH_ROWS = 4096


@cache
def schema() -> pa.Schema:
    """The table's Arrow schema, from the column kinds of cds.screen.row.COLUMNS."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "list<string>": pa.list_(pa.string()),
        "map<string,int64>": pa.map_(pa.string(), pa.int64()),
    }
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS.items()])


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _batch(rows: list[Row]) -> pa.RecordBatch:
    import pyarrow as pa

    columns = []
    for name in COLUMNS:
        values = [r[name] for r in rows]
        if COLUMNS[name].startswith("map"):
            values = [None if v is None else list(v.items()) for v in values]
        columns.append(values)
    table_schema = schema()
    return pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, table_schema, strict=True)], schema=table_schema
    )


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_table(rows: Iterable[Row], out_dir: Path, summary: SummaryBuilder) -> int:
    """Write ``screening.parquet`` and ``screening.csv`` atomically; rows must come sorted by patient id
    without duplicates (checked). Every row is also added to ``summary``. Returns the number of rows."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    out_dir.mkdir(parents=True, exist_ok=True)
    pq_tmp, csv_tmp = out_dir / f".{PARQUET_NAME}.tmp", out_dir / f".{CSV_NAME}.tmp"
    n, last = 0, None
    with pq.ParquetWriter(pq_tmp, schema(), compression="zstd") as pw, csv_tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for batch in _batches(rows, BATCH_ROWS):
            for row in batch:
                pid = row["patient_id"]
                if last is not None and pid <= last:
                    raise RuntimeError(f"screening rows out of order or duplicated at patient {pid!r}")
                last = pid
                writer.writerow([_csv_cell(row[c]) for c in COLUMNS])
                summary.add(row)
            pw.write_batch(_batch(batch))
            n += len(batch)
    os.replace(pq_tmp, out_dir / PARQUET_NAME)
    os.replace(csv_tmp, out_dir / CSV_NAME)
    return n

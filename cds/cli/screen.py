"""`cds screen`: a FHIR Bulk Data export -> one row per patient (Parquet and CSV) and a summary report."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cds.cli.common import err as _err
from cds.cli.common import parse_now
from cds.errors import CdsError
from cds.screen.local import ScreenResult, screen_local
from cds.screen.summary import render_summary


class Engine(StrEnum):
    local = "local"
    spark = "spark"


def screen(
    export_dir: Annotated[Path, typer.Argument(help="bulk export folder: one NDJSON(.gz) file per resource type")],
    out: Annotated[Path, typer.Option("--out", help="result folder: screening.parquet, screening.csv, summary")],
    now: Annotated[str | None, typer.Option(help="evaluation date YYYY-MM-DD (default: today)")] = None,
    engine: Annotated[Engine, typer.Option(help="local processes, or a Spark job")] = Engine.local,
    processes: Annotated[int | None, typer.Option(help="local worker processes (default: all cores)")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL, e.g. local[4], spark://host:7077")] = None,
    partitions: Annotated[
        int | None, typer.Option(help="Spark partitions (default: about 32 MB of NDJSON each, at least 2 per core)")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="discard an unfinished earlier run instead of resuming it")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after this many patients (resume later)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Screen every patient of a bulk export: TRD status, trials, flags, options, data quality."""
    when = parse_now(now)
    if not export_dir.is_dir():
        _err.print(f"[red]error:[/red] {export_dir} is not a folder")
        raise typer.Exit(1)
    try:
        if engine is Engine.spark:
            from cds.screen.spark import screen_spark

            result: ScreenResult = screen_spark(export_dir, out, when, master=master, partitions=partitions)
        else:
            result = screen_local(
                export_dir, out, when, processes=processes, limit=limit, fresh=fresh, progress=progress, console=_err
            )
    except OSError as exc:  # a file not found or not readable, a full disk
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except CdsError as exc:
        _err.print(f"[red]error in the rules or knowledge files:[/red] {exc}")
        raise typer.Exit(2) from None
    if not result.complete or result.report is None:
        _err.print(f"stopped after {result.evaluated_now:,} patients; run the same command again to resume")
        raise typer.Exit(3)
    render_summary(result.report, Console(stderr=False))
    _err.print(f"wrote {out / 'screening.parquet'} and {out / 'screening.csv'} ({result.patients:,} rows)")

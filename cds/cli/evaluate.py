"""`cds evaluate`: one patient's record -> trials, adequacy, TRD status, findings."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from cds.cli.common import err as _err
from cds.cli.common import parse_now
from cds.errors import CdsError
from cds.evaluation import Evaluator
from cds.render.json_contract import to_contract
from cds.render.text import render_text


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class EvaluatorChoice(StrEnum):
    durable = "durable"
    reference = "reference"


def _inputs(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(
                f
                for f in p.iterdir()
                if f.suffix in (".json", ".ndjson") and f.is_file() and not f.name.startswith(("expected", "."))
            )
        else:
            files.append(p)
    return files


def evaluate(
    paths: Annotated[list[Path], typer.Argument(help="FHIR Bundle / NDJSON files of one patient each, or folders")],
    now: Annotated[str | None, typer.Option(help="evaluation date YYYY-MM-DD (default: today)")] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="text for people, json for programs")
    ] = OutputFormat.text,
    evaluator: Annotated[EvaluatorChoice, typer.Option(help="rules engine")] = EvaluatorChoice.durable,
) -> None:
    """Evaluate each patient: trials, adequacy gaps, outcomes and TRD status, with reasons."""
    when = parse_now(now)
    files = _inputs(paths)
    if not files:
        _err.print("[red]error:[/red] no input files found")
        raise typer.Exit(1)
    try:
        engine = Evaluator(kind=evaluator.value)
    except CdsError as exc:
        _err.print(f"[red]error in the rules or knowledge files:[/red] {exc}")
        raise typer.Exit(2) from None
    console = Console(width=160 if not sys.stdout.isatty() else None)
    failures = 0
    for path in files:
        try:
            result = engine.evaluate_bytes(path.read_bytes(), when)
        except OSError as exc:
            failures += 1
            _err.print(f"[red]error:[/red] {path}: cannot read ({exc.strerror})")
            continue
        except CdsError as exc:
            failures += 1
            _err.print(f"[red]error:[/red] {path}: {exc}")
            continue
        except Exception as exc:
            failures += 1
            _err.print(f"[red]internal error:[/red] {path}: {type(exc).__name__}: {exc} (please report this)")
            continue
        if fmt is OutputFormat.json:
            sys.stdout.buffer.write(
                orjson.dumps(
                    to_contract(result, engine.knowledge), option=orjson.OPT_INDENT_2 if len(files) == 1 else 0
                )
                + b"\n"
            )
        else:
            if len(files) > 1:
                console.rule(str(path))
            render_text(result, console)
    if failures == len(files):
        raise typer.Exit(1)

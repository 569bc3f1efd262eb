"""`cds validate [PATH…]`: run a test-patient case library, show expected vs actual, report rule coverage."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cds.authoring.cases import CaseRun, load_cases, run_case
from cds.authoring.coverage import measure
from cds.authoring.report import render_coverage, render_run, write_junit
from cds.cli.common import err
from cds.errors import CdsError
from cds.evaluation import Evaluator
from cds.knowledge import load_knowledge
from cds.knowledge.loader import PROJECT_ROOT


class EvaluatorChoice(StrEnum):
    durable = "durable"
    reference = "reference"
    both = "both"


def default_case_dir() -> Path:
    local = Path("tests/patients")
    return local if local.is_dir() else PROJECT_ROOT / "tests" / "patients"


def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="case files or folders (default: tests/patients)")] = None,
    evaluator: Annotated[
        EvaluatorChoice, typer.Option(help="rules engine to run the cases on")
    ] = EvaluatorChoice.durable,
    rules: Annotated[Path | None, typer.Option(help="rules directory (default: the configured one)")] = None,
    junit: Annotated[Path | None, typer.Option(help="write JUnit XML here (for CI)")] = None,
    coverage: Annotated[bool, typer.Option(help="print the rule coverage report")] = True,
    fail_on_uncovered: Annotated[
        bool, typer.Option(help="exit non-zero when a rule never fired or has no near-miss case")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show every check, also of passing cases")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="show failures only")] = False,
) -> None:
    """Run test-patient cases against the rules; exit 1 if any fails."""
    cases, load_errors = load_cases(paths or [default_case_dir()])
    if not cases and not load_errors:
        err.print("[red]error:[/red] no case files found")
        raise typer.Exit(2)
    try:
        knowledge = load_knowledge(rules)
        kinds = ["durable", "reference"] if evaluator is EvaluatorChoice.both else [evaluator.value]
        evaluators = [Evaluator(knowledge, kind=k) for k in kinds]  # type: ignore[arg-type]
    except CdsError as exc:
        err.print(f"[red]error in the rules or knowledge files:[/red] {exc}")
        raise typer.Exit(2) from None
    console = Console(width=160 if not sys.stdout.isatty() else None, highlight=False)
    for path, message in load_errors:
        console.print(f"[red]ERROR[/red] {path}: {message}")
    runs: list[CaseRun] = []
    for case in cases:
        for ev in evaluators:
            run = CaseRun(case=case, evaluator=ev.engine.kind) if case.data.skip else run_case(case, ev)
            runs.append(run)
            if not (quiet and (run.passed or run.skipped)):
                render_run(console, run, verbose)
    failed = [r for r in runs if r.counts_as_failure]
    skipped = sum(1 for r in runs if r.skipped)
    xfailed = sum(1 for r in runs if not r.skipped and not r.passed and r.xfail_reason)
    passed = len(runs) - len(failed) - skipped - xfailed
    colour = "red" if failed or load_errors else "green"
    console.print(
        f"[{colour}]{passed} passed, {len(failed)} failed, {xfailed} known failures, {skipped} skipped, "
        f"{len(load_errors)} unreadable[/{colour}]"
        f" ({len(cases)} cases × {len(evaluators)} evaluator(s))"
    )
    cov = None
    if coverage:
        cov = measure([r for r in runs if r.evaluator == evaluators[0].engine.kind], evaluators[0].engine)
        render_coverage(console, cov)
    if junit is not None:
        write_junit(junit, runs, load_errors)
        console.print(f"JUnit XML written to {junit}")
    if failed or load_errors:
        raise typer.Exit(1)
    if fail_on_uncovered and cov is not None and (cov.never_fired() or cov.without_near_miss()):
        raise typer.Exit(1)

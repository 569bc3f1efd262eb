"""`cds rules lint | diff | catalog`: check rule files, see what a change does, publish the catalog."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cds.authoring.cases import load_cases
from cds.authoring.catalog import catalog as build_catalog
from cds.authoring.diff import PatientDiff, diff_rules
from cds.authoring.lint import lint as lint_rules
from cds.cli.common import err
from cds.cli.validate import default_case_dir
from cds.errors import CdsError
from cds.knowledge.loader import default_rules_dir

rules_app = typer.Typer(no_args_is_help=True, help="Author rules: lint them, diff two versions, publish the catalog.")


def _console() -> Console:
    return Console(width=160 if not sys.stdout.isatty() else None, highlight=False)


@rules_app.command()
def lint(
    rules_dir: Annotated[Path | None, typer.Argument(help="rules directory (default: the configured one)")] = None,
    strict: Annotated[bool, typer.Option(help="treat warnings as errors")] = False,
    compile_rules: Annotated[
        bool, typer.Option("--compile/--no-compile", help="dry-compile on both evaluators")
    ] = True,
) -> None:
    """Check every rule file: schema, fields, settings, ranges, sources, codes, contradictions, compilation."""
    directory = rules_dir or default_rules_dir()
    problems = lint_rules(directory, compile_rules=compile_rules)
    console = _console()
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        hint = f" [dim](did you mean {p.suggestion!r}?)[/dim]" if p.suggestion else ""
        where = f"{p.path}:{p.line}" if p.line else str(p.path)
        console.print(f"{escape(where)}: [{colour}]{p.severity}[/{colour}] {escape(f'[{p.kind}] {p.message}')}{hint}")
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    console.print(f"{errors} error(s), {warnings} warning(s) in {directory}")
    if errors or (strict and warnings):
        raise typer.Exit(1)


def _render_diff(console: Console, d: PatientDiff) -> None:
    console.print(f"[bold]{d.case}[/bold]")
    for e in d.errors:
        console.print(f"  [red]error[/red] {e}")
    if d.trd_status:
        console.print(f"  TRD status: {d.trd_status[0]} → [bold]{d.trd_status[1]}[/bold]")
    for label, old, new in d.trials:
        console.print(f"  trial {label}: {old} → [bold]{new}[/bold]")
    for code, subject, summary in d.added:
        console.print(f"  [green]+ {code}[/green] ({subject}): {summary}")
    for code, subject, summary in d.removed:
        console.print(f"  [red]- {code}[/red] ({subject}): {summary}")
    for code, subject, old, new in d.reworded:
        console.print(f"  [yellow]~ {code}[/yellow] ({subject}): {old}\n      → {new}")
    for name, old, new in d.staging:
        console.print(f"  staging {name}: {old} → [bold]{new}[/bold]")
    if d.expectations:
        state = "now FAILS" if not d.expectations[1] else "now passes"
        console.print(f"  the case's expectations {state} (update the case if the change is intended)")


@rules_app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="rules directory before the change")],
    new: Annotated[Path, typer.Argument(help="rules directory after the change")],
    patients: Annotated[list[Path] | None, typer.Option(help="case files or folders (default: tests/patients)")] = None,
    evaluator: Annotated[str, typer.Option(help="durable or reference")] = "durable",
    show_unchanged: Annotated[bool, typer.Option(help="list patients whose results did not change")] = False,
) -> None:
    """Evaluate every case with OLD and NEW rules and show what changed per patient."""
    cases, errors = load_cases(patients or [default_case_dir()])
    for path, message in errors:
        err.print(f"[yellow]skipped[/yellow] {path}: {message}")
    if evaluator not in ("durable", "reference"):
        raise typer.BadParameter("durable or reference", param_hint="--evaluator")
    try:
        diffs = diff_rules(old, new, cases, evaluator)  # type: ignore[arg-type]
    except CdsError as exc:
        err.print(f"[red]error in the rules or knowledge files:[/red] {exc}")
        raise typer.Exit(2) from None
    console = _console()
    changed = [d for d in diffs if d.changed]
    for d in diffs:
        if d.changed:
            _render_diff(console, d)
        elif show_unchanged:
            console.print(f"[dim]{d.case}: unchanged[/dim]")
    status = sum(1 for d in changed if d.trd_status)
    broken = sum(1 for d in changed if d.expectations and not d.expectations[1])
    console.print(
        f"{len(changed)} of {len(diffs)} patient(s) changed; TRD status changed for {status}; "
        f"{broken} case(s) no longer meet their expectations."
    )


class CatalogFormat(StrEnum):
    md = "md"
    html = "html"


@rules_app.command()
def catalog(
    fmt: Annotated[CatalogFormat, typer.Option("--format", help="md or html")] = CatalogFormat.md,
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
    rules_dir: Annotated[
        Path | None, typer.Option("--rules", help="rules directory (default: the configured one)")
    ] = None,
    patients: Annotated[
        list[Path] | None, typer.Option(help="case folders that cover the rules (default: tests/patients)")
    ] = None,
) -> None:
    """A browsable catalog of every rule: source, confidence, thresholds and the cases that cover it."""
    cases, _ = load_cases(patients or [default_case_dir()])
    try:
        text = build_catalog(rules_dir, cases, fmt.value)
    except CdsError as exc:
        err.print(f"[red]error in the rules or knowledge files:[/red] {exc}")
        raise typer.Exit(2) from None
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        err.print(f"catalog written to {out}")

"""`cds explain PATIENT --rule ID`: why one rule fired for one patient, or why it did not.

PATIENT is a test-patient case (.yaml, its `now` is used unless --now is given) or a FHIR Bundle/NDJSON file.
The explanation follows the reference evaluator's semantics (cds/engine/explain.py)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cds.authoring.cases import CaseError, load_case
from cds.cli.common import err, parse_now
from cds.engine.explain import Explanation, describe_test, fmt, trace
from cds.engine.explain import explain as explain_rule
from cds.errors import CdsError
from cds.evaluation import Evaluator
from cds.knowledge import load_knowledge


def render_explanation(console: Console, ex: Explanation) -> None:
    rule = ex.rule
    console.print(f"[bold]{rule.id}[/bold] v{rule.version} ({ex.stage}): {rule.title}")
    if ex.fired:
        console.print(f"[green]FIRED[/green] {len(ex.activations)} time(s).")
        for n, bound in enumerate(ex.activations, start=1):
            console.print(f"  activation {n}:")
            for b in bound:
                fields = ", ".join(f"{k}={fmt(v)}" for k, v in b.fact.items() if k not in ("id", "type"))
                console.print(f"    {b.bind} = {b.fact.get('type')} {b.fact.get('id')}: {fields}")
                if b.evidence:
                    console.print(f"      evidence: {', '.join(b.evidence)}")
        if any(not c.matched for rep in ex.patterns for c in rep.candidates):
            console.print("  facts it did not match:")
            _patterns(console, ex, only_failed=True)
        return
    console.print("[yellow]DID NOT FIRE[/yellow].")
    _patterns(console, ex, only_failed=False)


def _patterns(console: Console, ex: Explanation, only_failed: bool) -> None:
    for rep in ex.patterns:
        if only_failed and all(c.matched for c in rep.candidates):
            continue
        p = rep.pattern
        console.print(f"  pattern {rep.index + 1}: {p.bind} = {p.type}")
        if not rep.reached:
            console.print("    not tried: an earlier pattern matched no fact")
            continue
        if not rep.candidates:
            console.print(f"    no fact of type {p.type!r} in this patient's record")
            continue
        for cand in rep.candidates:
            prior = f" (with {', '.join(f'{k}={v}' for k, v in cand.prior.items())})" if cand.prior else ""
            head = f"    {cand.fact.get('id')}{prior}: "
            if cand.matched:
                if not only_failed:
                    console.print(head + "[green]matches[/green]")
                continue
            failed = [r for r in cand.results if r.group == "all" and not r.passed]
            any_results = [r for r in cand.results if r.group == "any"]
            reasons = [
                f"{describe_test(r.test)} is false (saw {r.test.field}={fmt(r.seen)}"
                + (f", compared with {fmt(r.expected)}" if r.test.op not in ("exists", "missing") else "")
                + ")"
                for r in failed
            ]
            if any_results and not any(r.passed for r in any_results):
                alts = "; ".join(f"{describe_test(r.test)} (saw {fmt(r.seen)})" for r in any_results)
                reasons.append(f"none of the `any` tests holds: {alts}")
            console.print(head + "[red]no[/red] — " + "; ".join(reasons))


def explain(
    patient: Annotated[Path, typer.Argument(help="a case .yaml or a FHIR Bundle / NDJSON file")],
    rule: Annotated[str, typer.Option("--rule", help="rule id, e.g. adequacy.dose-below-minimum")],
    now: Annotated[
        str | None, typer.Option(help="evaluation date YYYY-MM-DD (default: the case's, else today)")
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="rules directory (default: the configured one)")] = None,
) -> None:
    """Explain why a rule fired for a patient (facts and FHIR evidence), or which condition failed."""
    try:
        evaluator = Evaluator(load_knowledge(rules), kind="reference")
        if patient.suffix in (".yaml", ".yml"):
            case = load_case(patient)
            facts = evaluator.facts(case.bundle_bytes(), parse_now(now) if now else case.data.now)
        else:
            facts = evaluator.facts(patient.read_bytes(), parse_now(now))
    except (CdsError, CaseError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] {patient}: cannot read ({exc.strerror})")
        raise typer.Exit(2) from None
    engine = evaluator.engine
    all_rules = {r.id: (s, r) for s, rs in engine.stages.items() for r in rs.rules}
    if rule not in all_rules:
        close = difflib.get_close_matches(rule, list(all_rules), n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        err.print(f"[red]error:[/red] no active rule {rule!r}.{hint}")
        raise typer.Exit(2)
    stage, r = all_rules[rule]
    traces = trace(engine, facts)
    console = Console(width=160 if not sys.stdout.isatty() else None, highlight=False)
    render_explanation(console, explain_rule(r, traces[stage]))

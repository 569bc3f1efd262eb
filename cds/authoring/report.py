"""How case runs and coverage are shown: plain text (pytest), rich tables (`cds validate`), JUnit XML (CI)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cds.authoring.cases import CaseRun
from cds.authoring.coverage import Coverage


def failure_text(run: CaseRun) -> str:
    """Expected vs actual, side by side, for one failed run (plain text, for pytest and JUnit)."""
    head = f"case {run.case.name} [{run.evaluator}]: {run.case.data.description.strip()}"
    if run.error is not None:
        return f"{head}\n  error: {run.error}"
    rows = [("check", "expected", "actual", "")] + [
        (c.what, c.expected, c.actual, "ok" if c.ok else "FAIL") for c in run.checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [head]
    for r in rows:
        lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return "\n".join(lines)


def render_run(console: Console, run: CaseRun, verbose: bool = False) -> None:
    if run.skipped:
        console.print(f"[yellow]SKIP[/yellow] {run.case.name} [dim]({run.evaluator})[/dim]")
        return
    if not run.passed and run.xfail_reason:
        console.print(f"[yellow]XFAIL[/yellow] {run.case.name} [dim]({run.evaluator}: {run.xfail_reason})[/dim]")
        return
    mark = "[green]PASS[/green]" if run.passed else "[red]FAIL[/red]"
    console.print(f"{mark} {run.case.name} [dim]({run.evaluator})[/dim]")
    if run.error is not None:
        console.print(f"     [red]error:[/red] {run.error}")
        return
    if run.passed and not verbose:
        return
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2))
    table.add_column("check")
    table.add_column("expected")
    table.add_column("actual")
    table.add_column("")
    for c in run.checks:
        if c.ok and not verbose:
            continue
        style = "" if c.ok else "red"
        table.add_row(
            c.what, c.expected, f"[{style}]{c.actual}[/{style}]" if style else c.actual, "ok" if c.ok else "✗"
        )
    console.print(table, style=None)


def render_coverage(console: Console, cov: Coverage, show_conditions: int = 40) -> None:
    console.rule("rule coverage")
    total = len(cov.rules)
    never = cov.never_fired()
    nomiss = cov.without_near_miss()
    undecided = cov.never_decisive()
    console.print(
        f"{total - len(never)}/{total} rules fired in some case; {total - len(nomiss)}/{total} have a near-miss case; "
        f"{len(cov.conditions) - len(undecided)}/{len(cov.conditions)} conditions decisive (seen true and false) "
        f"over {cov.cases} case(s)."
    )
    if never:
        console.print("[yellow]Rules that never fired:[/yellow] " + ", ".join(never))
    if nomiss:
        console.print(
            "[yellow]Rules with no near-miss case (listed in not_fired, did not fire):[/yellow] " + ", ".join(nomiss)
        )
    if undecided:
        console.print("[yellow]Conditions never decisive:[/yellow]")
        for cond, stat in undecided[:show_conditions]:
            console.print(f"  {cond.label()} — {stat.verdict()}")
        if len(undecided) > show_conditions:
            console.print(f"  … and {len(undecided) - show_conditions} more")


def write_junit(path: Path, runs: Sequence[CaseRun], load_errors: Sequence[tuple[Path, str]] = ()) -> None:
    failures = sum(1 for r in runs if r.counts_as_failure and r.error is None)
    errors = sum(1 for r in runs if r.counts_as_failure and r.error is not None) + len(load_errors)
    skipped = sum(1 for r in runs if r.skipped or (not r.passed and r.xfail_reason))
    suite = ET.Element(
        "testsuite",
        name="cds validate",
        tests=str(len(runs) + len(load_errors)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
    )
    for r in runs:
        folder, _, stem = r.case.name.rpartition("/")
        tc = ET.SubElement(
            suite,
            "testcase",
            classname=(folder.replace("/", ".") or "cases") + f".{r.evaluator}",
            name=stem,
            file=str(r.case.path),
        )
        if r.skipped:
            ET.SubElement(tc, "skipped", message=str(r.case.data.skip))
        elif not r.passed and r.xfail_reason:
            ET.SubElement(tc, "skipped", message=f"expected failure: {r.xfail_reason}")
        elif r.error is not None:
            ET.SubElement(tc, "error", message=r.error).text = failure_text(r)
        elif not r.passed:
            msg = "; ".join(f"{c.what}: expected {c.expected}, got {c.actual}" for c in r.failures())
            ET.SubElement(tc, "failure", message=msg).text = failure_text(r)
    for path, message in load_errors:
        tc = ET.SubElement(suite, "testcase", classname="cases", name=path.stem, file=str(path))
        ET.SubElement(tc, "error", message=message)
    ET.indent(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)

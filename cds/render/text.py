"""A clinician-readable rendering of one Evaluation: TRD status, a table of trials, findings with reasons."""

from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cds.evaluation import Evaluation
from cds.findings import fmt_value

_STATUS = {
    "meets": ("MEETS the TRD definition", "bold red"),
    "does_not_meet": ("does not meet the TRD definition", "bold green"),
    "insufficient_data": ("TRD status UNDETERMINED (missing data)", "bold yellow"),
}
_INDICATOR = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_ADEQUACY = {
    "adequate": "green",
    "inadequate_dose": "yellow",
    "inadequate_duration": "yellow",
    "unknown": "magenta",
}


def _trials_table(ev: Evaluation) -> Table:
    table = Table(title="Antidepressant trials", show_lines=False, expand=False)
    for col in (
        "drug",
        "class",
        "from",
        "to",
        "max mg/day",
        "min adequate",
        "weeks adequate",
        "adequacy",
        "outcome",
        "improvement",
    ):
        table.add_column(col)
    for tr in ev.trials:
        t = tr.trial
        drug = t.ingredient + ("" if t.in_current_episode else " (earlier episode)")
        if t.augmentations:
            drug += " + " + ", ".join(a.ingredient for a in t.augmentations)
        table.add_row(
            drug,
            t.drug_class,
            fmt_value(t.start.isoformat() if t.start else None),
            ("ongoing" if t.ongoing else fmt_value(t.end.isoformat() if t.end else None)),
            fmt_value(t.max_daily_dose_mg),
            fmt_value(t.min_adequate_dose_mg),
            f"{fmt_value(t.weeks_at_adequate_dose)}"
            + (f" (+{fmt_value(t.weeks_dose_unknown)} undocumented)" if t.weeks_dose_unknown else ""),
            Text(tr.adequacy.replace("_", " "), style=_ADEQUACY.get(tr.adequacy, "")),
            t.outcome.outcome.replace("_", " ") + (" (then lost)" if t.outcome.response_lost else ""),
            f"{fmt_value(t.outcome.improvement_pct)}%" if t.outcome.improvement_pct is not None else "unknown",
        )
    return table


_MODELS = (
    ("thase_rush", "Thase-Rush"),
    ("mgh", "MGH staging"),
    ("european", "European Staging Model"),
    ("maudsley", "Maudsley Staging Method"),
    ("dm_trd", "DM-TRD"),
)


def _staging_table(ev: Evaluation) -> Table:
    table = Table(title="Treatment-resistance staging (current episode)")
    for _, title in _MODELS:
        table.add_column(title)
    cells = []
    for model, _ in _MODELS:
        r = ev.staging.get(model)
        if r is None:
            cells.append("not loaded")
        elif not r.computed:
            cells.append(f"[dim]not computed: {escape(r.reason or '')}[/dim]")
        elif model == "thase_rush":
            cells.append(f"stage {r.label}")
        elif model == "european":
            weeks = r.details.get("cumulative_adequate_weeks")
            note = f"\n{fmt_value(weeks)} adequate weeks"
            if r.details.get("levels_disagree"):
                note += f" (weeks alone: {r.details.get('level_by_weeks')})"
            cells.append(f"{r.label}{note}")
        elif model == "maudsley":
            cells.append(f"{fmt_value(r.value)} ({r.category})")
        else:
            cells.append(fmt_value(r.value))
    table.add_row(*cells)
    return table


def render_text(ev: Evaluation, console: Console) -> None:
    label, style = _STATUS.get(ev.trd_status, (ev.trd_status, ""))
    header = Text.assemble(
        (f"{ev.patient or 'patient (no Patient resource)'}", "bold"),
        f"  evaluated {ev.now.isoformat()}  knowledge {ev.knowledge_version}\n",
        ("Current episode: ", "bold"),
        f"{ev.episode.start.isoformat() if ev.episode.start else 'start unknown'} ({ev.episode.basis})\n",
        (label, style),
        f" — {ev.failed_adequate_trials} adequate failed trial(s) in the current episode",
    )
    parts: list[Table | Text | Panel] = [Panel(header, title="TRD review", expand=False)]
    if ev.trials:
        parts.append(_trials_table(ev))
    else:
        parts.append(Text("No antidepressant trials found in the record."))
    for ex in ev.excluded:
        parts.append(
            Text(
                f"Not counted as a trial: {ex.ingredient} up to {fmt_value(ex.max_daily_dose_mg)} mg/day ({ex.reason})",
                style="dim",
            )
        )
    console.print(Group(*parts))
    if ev.staging:
        console.print(_staging_table(ev))
        for model, title in _MODELS:
            r = ev.staging.get(model)
            if r is None or not r.components:
                continue
            console.print(Text(f"  {title}", style="bold"))
            for c in r.components:
                console.print(f"    {fmt_value(c.points):>4}  {escape(c.summary)}", highlight=False)
                if c.evidence:
                    console.print(f"          [dim]evidence: {escape(', '.join(c.evidence))}[/dim]", highlight=False)
    findings = [f for f in ev.findings if f.category not in ("staging", "next-step")]  # shown in their sections
    if findings:
        console.print(Text("\nFindings", style="bold underline"))
    for f in findings:
        review = " [needs clinical review]" if f.needs_clinical_review else ""
        console.print(Text.assemble((f"{f.indicator.upper():8}", _INDICATOR[f.indicator]), f" {f.summary}"))
        console.print(f"         [dim]{escape(f.detail)}[/dim]", highlight=False)
        console.print(
            f"         [dim]rule {f.rule} v{f.rule_version}; source: {escape(f.source.label)}{review}[/dim]",
            highlight=False,
        )
        if f.evidence:
            console.print(f"         [dim]evidence: {escape(', '.join(f.evidence))}[/dim]", highlight=False)
    options = [f for f in ev.findings if f.category == "next-step"]
    if options:
        console.print(Text("\nNext-step options (guideline order)", style="bold underline"))
        n = 0
        for f in options:
            eligible = f.attributes.get("eligible", True) is not False
            n += 1 if eligible else 0
            mark = f"{n:>2}." if eligible else " --"
            line = f.attributes.get("line")
            tag = f" [{line} line]" if line and eligible else ""
            style = "bold" if f.attributes.get("priority") == "urgent" else ("dim" if not eligible else "")
            console.print(Text.assemble((f"{mark} {f.summary}{tag}", style)))
            console.print(f"     [dim]{escape(f.detail)}[/dim]", highlight=False)
            console.print(
                f"     [dim]rule {f.rule} v{f.rule_version}; source: {escape(f.source.label)}[/dim]", highlight=False
            )
    if ev.settings_needing_review:
        names = ", ".join(f"{r.name}={fmt_value(r.value)} [{r.confidence}]" for r in ev.settings_needing_review)
        console.print(Text(f"\nSettings needing clinical review (rules/config.yaml): {names}", style="dim"))
    if ev.data_quality:
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ev.data_quality.items())
        console.print(Text(f"\nData quality: {counts} (see findings above)", style="dim"))

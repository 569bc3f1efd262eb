"""The summary report of a screening run: counts and distributions over the rows, and what the input held."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from cds import BUILD
from cds.fhir.bulk import FileStats
from cds.screen.row import COLUMNS, STAGING, Row

UNIDENTIFIED_CODE = "trd-unidentified-medications"  # the finding of rules/trd_status.yaml
# The table's staging columns that hold labels (not scores), counted per value (null: the model could not be
# computed), by name without the prefix.
STAGING_LABELS = {c: c.removeprefix("staging_") for c in STAGING if COLUMNS[c] == "string"}
NOT_COMPUTED = "not computed"
_BROKEN_FILE = (
    "Its lines before the break were screened and the rest is missing, so its patients may lack resources: "
    "fetch the file again and run again"
)


def _top(counter: Counter[str], n: int = 10) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


@dataclass
class SummaryBuilder:
    patients: int = 0
    evaluated: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    trd_status: Counter[str] = field(default_factory=Counter)
    failed_adequate_trials: Counter[str] = field(default_factory=Counter)
    confounder_flags: Counter[str] = field(default_factory=Counter)
    safety_flags: Counter[str] = field(default_factory=Counter)
    top_options: Counter[str] = field(default_factory=Counter)
    data_quality: Counter[str] = field(default_factory=Counter)
    staging: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in STAGING_LABELS.values()})
    unresolved_patients: int = 0  # patients with a reference not found in their record
    undetermined_by_unidentified: int = 0  # patients whose TRD status is open only because drugs are unnamed

    def add(self, row: Row) -> None:
        self.patients += 1
        if not row["evaluated"]:
            self.errors[str(row["error"]).split(":")[0]] += 1
            return
        self.evaluated += 1
        self.trd_status[row["trd_status"]] += 1
        self.failed_adequate_trials[str(row["failed_adequate_trials"])] += 1
        self.confounder_flags.update(row["confounder_flags"])
        self.safety_flags.update(row["safety_flags"])
        self.top_options.update(row["top_options"][:1])
        self.data_quality.update(row["data_quality"])
        for column, name in STAGING_LABELS.items():
            value = row[column]
            self.staging[name][NOT_COMPUTED if value is None else str(value)] += 1
        self.unresolved_patients += bool(row["data_quality"].get("unresolved_reference"))
        self.undetermined_by_unidentified += UNIDENTIFIED_CODE in row["finding_codes"]

    def warnings(self) -> list[str]:
        """What a reader of the table must know before trusting its counts."""
        out = []
        if self.undetermined_by_unidentified:
            out.append(
                f"{self.undetermined_by_unidentified:,} patients read insufficient_data only because medication "
                f"records name no drug ({UNIDENTIFIED_CODE}): identifying those drugs decides their TRD status."
            )
        if self.unresolved_patients:
            out.append(
                f"{self.unresolved_patients:,} patients have references to resources not in the export "
                "(unresolved_reference). If the export left out Medication.ndjson, drugs named only by reference "
                "are unknown to the screen: re-export with Medication included."
            )
        return out

    def report(self, files: list[FileStats], engine: str) -> dict[str, Any]:
        bad: Counter[str] = Counter()
        for f in files:
            bad.update(f.bad)
        return {
            "engine": engine,
            "build": BUILD.note,  # compiled or from the sources (cds/_build.py): speed figures depend on it
            "patients": self.patients,
            "evaluated": self.evaluated,
            "not_evaluated": dict(sorted(self.errors.items())),
            "trd_status": dict(sorted(self.trd_status.items())),
            "failed_adequate_trials": dict(sorted(self.failed_adequate_trials.items(), key=lambda kv: int(kv[0]))),
            "confounder_flags": _top(self.confounder_flags),
            "safety_flags": _top(self.safety_flags),
            "first_option": _top(self.top_options),
            "data_quality": _top(self.data_quality, 50),
            "staging": {name: dict(sorted(counts.items())) for name, counts in self.staging.items()},
            "warnings": self.warnings() + [f"{f.name}: {f.error}. {_BROKEN_FILE}" for f in files if f.error],
            "input": {
                "lines": sum(f.lines for f in files),
                "resources": sum(f.resources for f in files),
                "patient_resources": sum(f.patients for f in files),
                "shared_resources": sum(f.shared for f in files),
                "unread_resources": sum(f.unread for f in files),
                "bad_lines": dict(sorted(bad.items())),
                "files": [f.to_json() for f in files],
            },
        }


def _table(title: str, values: dict[str, int], total: int | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    for key, n in values.items():
        share = f"{100 * n / total:5.1f} %" if total else ""
        table.add_row(key, f"{n:,}", share)
    return table


def render_summary(report: dict[str, Any], console: Console) -> None:
    inp = report["input"]
    console.print(
        f"[bold]{report['patients']:,}[/bold] patients screened ({report['engine']}), "
        f"{report['evaluated']:,} evaluated; input: {inp['lines']:,} lines, {inp['resources']:,} resources"
        + (f", {inp['shared_resources']:,} shared (Medication)" if inp["shared_resources"] else "")
        + (f", {inp['unread_resources']:,} of types no rule reads (not evaluated)" if inp["unread_resources"] else "")
    )
    if report["not_evaluated"]:
        console.print(_table("Not evaluated", report["not_evaluated"], report["patients"]))
    console.print(_table("TRD status", report["trd_status"], report["evaluated"]))
    console.print(_table("Failed adequate trials", report["failed_adequate_trials"], report["evaluated"]))
    for key, title in (
        ("confounder_flags", "Confounder flags"),
        ("safety_flags", "Safety flags"),
        ("first_option", "First next-step option"),
    ):
        if report[key]:
            console.print(_table(title, report[key], report["evaluated"]))
    titles = {
        "thase_rush_stage": "Thase-Rush stage",
        "european_level": "European staging level",
        "maudsley_category": "Maudsley staging",
    }
    for name, counts in report.get("staging", {}).items():
        if counts:
            console.print(_table(titles.get(name, name), counts, report["evaluated"]))
    if report["data_quality"]:
        console.print(_table("Data-quality issues (all patients)", dict(list(report["data_quality"].items())[:10])))
    bad = {f"{f['name']}: {reason}": n for f in inp["files"] for reason, n in f["bad"].items()}
    if bad:
        console.print(_table("Input lines skipped (not attributable to a patient)", bad))
    for warning in report.get("warnings", ()):
        console.print(f"[bold yellow]Warning:[/bold yellow] {warning}", highlight=False)

"""`cds feedback report`: acceptance and override reasons per rule, from the CDS Hooks feedback store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from cds.cli.common import err
from cds.hooks.settings import load_settings

feedback_app = typer.Typer(no_args_is_help=True, add_completion=False, help="CDS Hooks feedback.")


@feedback_app.command("report")
def report(
    db_url: Annotated[
        str | None, typer.Option(help="database URL (default: feedback_db_url from the settings)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="service settings file (TOML or JSON)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
) -> None:
    """Summarise clinicians' feedback: cards issued, accepted, overridden and why, per rule."""
    try:
        url = db_url or load_settings(config).feedback_db_url
        from cds.hooks.feedback_store import FeedbackStore  # SQLAlchemy: half a second every other command would pay

        store = FeedbackStore(url)
        store.create_schema()
        rows = store.report()
        store.close()
    except Exception as exc:
        err.print(f"[red]error:[/red] cannot read the feedback store ({type(exc).__name__}: {exc})")
        raise typer.Exit(1) from None
    if as_json:
        data = [
            {
                "rule": r.rule,
                "code": r.code,
                "cards_issued": r.cards_issued,
                "accepted": r.accepted,
                "overridden": r.overridden,
                "acceptance_rate": r.acceptance_rate,
                "override_reasons": dict(r.reasons.most_common()),
            }
            for r in rows
        ]
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="CDS Hooks feedback per rule")
    for column in ("rule", "code", "cards", "accepted", "overridden", "acceptance", "override reasons"):
        table.add_column(column)
    for r in rows:
        rate = f"{r.acceptance_rate:.0%}" if r.acceptance_rate is not None else "-"
        reasons = ", ".join(f"{reason} ({n})" for reason, n in r.reasons.most_common())
        table.add_row(r.rule, r.code, str(r.cards_issued), str(r.accepted), str(r.overridden), rate, reasons or "-")
    Console(width=200).print(table)

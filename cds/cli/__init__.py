"""`cds` command line: one module per command (group). Errors are one clear line, never a traceback."""

from __future__ import annotations

import typer

from cds.cli.evaluate import evaluate
from cds.cli.explain import explain
from cds.cli.feedback import feedback_app
from cds.cli.rules import rules_app
from cds.cli.screen import screen
from cds.cli.serve import serve
from cds.cli.validate import validate

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Decision support for treatment-resistant depression."
)


@app.callback()
def main() -> None:
    """TRD decision support: read FHIR R4 records, explain trials, adequacy and TRD status."""


app.command()(evaluate)
app.command()(validate)
app.command()(explain)
app.add_typer(rules_app, name="rules")
app.command("serve")(serve)
app.add_typer(feedback_app, name="feedback")
# Further commands register here, one line each, from their own modules.
app.command("screen")(screen)

"""Shared pieces of the command line: the error console and `--now` parsing."""

from __future__ import annotations

from datetime import date

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True, highlight=False)


def parse_now(value: str | None) -> date:
    if value is None:
        return date.today()  # the CLI is the edge: below it, `now` is always an argument
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--now") from None

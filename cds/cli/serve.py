"""`cds serve`: run the CDS Hooks 2.0 service (FastAPI app under uvicorn, one Evaluator per worker process)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from cds.cli.common import err
from cds.hooks.settings import CONFIG_ENV, load_settings


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    config: Annotated[
        Path | None, typer.Option(help="settings file (TOML or JSON); environment variables CDS_HOOKS_* override it")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes (each loads the rules once)")] = 1,
    dev: Annotated[
        bool, typer.Option("--dev", help="DEVELOPMENT ONLY: no client authentication (loudly logged)")
    ] = False,
    examples: Annotated[
        Path | None, typer.Option(help="with --dev: serve these FHIR bundles as a FHIR server at /dev-fhir")
    ] = None,
) -> None:
    """Serve CDS Hooks: discovery, patient-view, order-select, order-sign and feedback."""
    if config is not None and not config.is_file():
        err.print(f"[red]error:[/red] settings file {config} not found")
        raise typer.Exit(2)
    if examples is not None and not dev:
        err.print("[red]error:[/red] --examples needs --dev")
        raise typer.Exit(2)
    if dev:
        os.environ["CDS_HOOKS_AUTH"] = "disabled-dev"
        os.environ.setdefault("CDS_HOOKS_PUBLIC_BASE_URL", f"http://{host}:{port}")
    if examples is not None:
        os.environ["CDS_HOOKS_DEV_EXAMPLES"] = str(examples.resolve())
    try:
        settings = load_settings(config)  # validated here once, so a bad file fails before any worker starts
    except Exception as exc:
        err.print(f"[red]error in the settings:[/red] {exc}")
        raise typer.Exit(2) from None
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    if settings.dev_mode:
        err.print("[bold red]DEVELOPMENT MODE: client authentication is OFF. Never expose this to a network.[/]")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        "cds.hooks.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,  # our own access log carries request ids and no query strings
        proxy_headers=True,
    )

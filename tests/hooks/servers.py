"""Real servers for the CDS Hooks tests: the service under uvicorn in a subprocess, a FHIR-like server and a
JWKS server in threads, and a PostgreSQL cluster from the machine's binaries in a temp directory."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a service subprocess: it imports `cds` from this work tree (first on PYTHONPATH),
    whatever an editable install elsewhere on the machine points to, and its working directory is a temp dir."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def service_process(settings: dict[str, Any], workdir: Path, workers: int = 1) -> Iterator[tuple[str, Path]]:
    """The real ASGI app under uvicorn in a subprocess; yields (base URL, log file)."""
    port = free_port()
    config = workdir / f"settings-{port}.json"
    config.write_text(json.dumps(settings), encoding="utf-8")
    log = workdir / f"service-{port}.log"
    env = child_env(CDS_HOOKS_CONFIG=str(config))
    env.pop("CDS_HOOKS_AUTH", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "cds.hooks.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/healthz", process=proc)
            yield base, log
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def thread_server(app: FastAPI) -> Iterator[str]:
    """A small ASGI app under uvicorn in a background thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("thread server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres_cluster(workdir: Path) -> Iterator[str]:
    """Init and start a throwaway PostgreSQL cluster; yields its SQLAlchemy URL. Fails (never skips) when the
    server binaries are missing: CI installs them with .ci/setup-postgres.sh."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: run .ci/setup-postgres.sh")
    root = Path(tempfile.mkdtemp(prefix="cds-pg-", dir=workdir if os.geteuid() != 0 else None))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir(parents=True)
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as `postgres` in a dir it owns
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

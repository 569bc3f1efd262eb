"""Load benchmark of the CDS Hooks service (a script, not a test).

Starts the real service (`cds.hooks.app:create_app` under uvicorn, N worker processes, JWT authentication on
with an ES384 key, SQLite feedback/jti store) on loopback, then sends patient-view requests whose prefetch is
built from generated patients (`cds.synthetic.generate_patient`), from C concurrent httpx async clients:

* closed loop: every client sends its next request as soon as the previous answer arrives (saturation);
* open loop (`--rate R ...`): requests start on a fixed schedule of R per second spread over the C clients, the
  way independent EHR users open charts; latency includes any queueing.

Reports p50 / p99 / max latency, errors, requests/s and requests/s per worker, and the ratio of the service
latency (p50) to the in-process `Evaluator.evaluate_resources` time (median) on the same prefetch.
JWTs are signed before the timed run (each with its own jti), so signing does not load the client.

    python benchmarks/bench_hooks.py --requests 2000 --concurrency 32 --workers 2 --rate 40 80
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds.evaluation import Evaluator  # noqa: E402
from cds.synthetic import generate_patient  # noqa: E402

BASE_PUBLIC = "https://cds.bench.example"
ISS = "https://ehr.bench.example"
PATH = "/cds-services/trd-patient-review"
KEYS = {
    "Patient": "patient",
    "MedicationStatement": "medicationStatements",
    "MedicationRequest": "medicationRequests",
    "MedicationDispense": "medicationDispenses",
    "Observation": "observations",
    "Condition": "conditions",
    "AllergyIntolerance": "allergies",
}


def prefetch_for(bundle: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resources = [e["resource"] for e in bundle["entry"] if isinstance(e.get("resource"), dict)]
    patient = next(r for r in resources if r.get("resourceType") == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for rtype, key in KEYS.items():
        if rtype != "Patient":
            found = [{"resource": r} for r in resources if r.get("resourceType") == rtype]
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": found}
    return str(patient["id"]), prefetch


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the uvicorn supervisor and its worker processes, from /proc (Linux)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    for p in [str(pid), *children]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def start_service(workers: int, workdir: Path, key: ECKey) -> tuple[subprocess.Popen[bytes], str]:
    jwks = workdir / "jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    config = workdir / "settings.json"
    config.write_text(
        json.dumps(
            {
                "public_base_url": BASE_PUBLIC,
                "issuers": [{"iss": ISS, "jwks_file": str(jwks)}],
                "feedback_db_url": f"sqlite:///{workdir / 'feedback.sqlite3'}",
                "log_level": "WARNING",
            }
        )
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "uvicorn", "cds.hooks.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "CDS_HOOKS_CONFIG": str(config), "PYTHONPATH": pythonpath}  # this tree's `cds`
    proc = subprocess.Popen(cmd, env=env, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before answering")
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the service did not answer /healthz within 90 s")


async def run_load(
    base: str, bodies: list[bytes], tokens: list[str], concurrency: int, rate: float | None
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.perf_counter()

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            scheduled = start + i / rate if rate else None
            if scheduled is not None:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            t0 = scheduled if scheduled is not None else time.perf_counter()
            headers = {"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/json"}
            try:
                response = await client.post(base + PATH, content=bodies[i], headers=headers)
                ok = response.status_code == 200 and "cards" in response.json()
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - max(t0, start)) * 1000)
            errors += 0 if ok else 1

    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--patients", type=int, default=0, help="distinct generated patients (default: --requests)")
    parser.add_argument("--rate", type=float, nargs="*", default=[40.0, 80.0], help="open-loop requests/s to run")
    args = parser.parse_args()

    print(f"generating {args.patients or args.requests} patients ...", flush=True)
    patients = [prefetch_for(generate_patient(seed)) for seed in range(args.patients or args.requests)]
    bodies_by_patient = [
        json.dumps(
            {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/bench", "patientId": pid},
                "prefetch": prefetch,
            }
        ).encode()
        for pid, prefetch in patients
    ]
    evaluator = Evaluator()
    today = date.today()
    for _, prefetch in patients[:20]:
        evaluator.evaluate_resources(list(prefetch.values()), today)
    inproc: list[float] = []
    for _, prefetch in patients:
        t0 = time.perf_counter()
        evaluator.evaluate_resources(list(prefetch.values()), today)
        inproc.append((time.perf_counter() - t0) * 1000)
    inproc_median = statistics.median(inproc)
    size_kb = statistics.median(len(b) for b in bodies_by_patient) / 1024
    print(f"in-process evaluate_resources: median {inproc_median:.2f} ms, p99 {percentile(inproc, 0.99):.2f} ms")
    print(f"request body: median {size_kb:.0f} KB")

    key = ECKey.generate_key("P-384", parameters={"kid": "bench", "alg": "ES384"})
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_service(args.workers, Path(tmp), key)
        try:
            modes: list[tuple[str, float | None]] = [(f"open loop {r:g}/s", r) for r in args.rate or []]
            modes.append(("closed loop", None))
            for label, rate in modes:
                now = int(time.time())
                claims = {"iss": ISS, "aud": BASE_PUBLIC + PATH, "iat": now, "exp": now + 600}
                header = {"alg": "ES384", "typ": "JWT", "kid": "bench"}
                warm = 100
                n = args.requests + warm
                tokens = [
                    jwt.encode(header, claims | {"jti": str(uuid.uuid4())}, key, algorithms=["ES384"]) for _ in range(n)
                ]
                bodies = [bodies_by_patient[i % len(bodies_by_patient)] for i in range(n)]
                asyncio.run(run_load(base, bodies[:warm], tokens[:warm], args.concurrency, None))  # warm-up
                cpu0 = server_cpu_seconds(proc.pid)
                latencies, errors, elapsed = asyncio.run(
                    run_load(base, bodies[warm:], tokens[warm:], args.concurrency, rate)
                )
                cpu_ms = (server_cpu_seconds(proc.pid) - cpu0) * 1000 / len(latencies)
                rps = len(latencies) / elapsed
                p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                print(
                    f"{label:>18}: {len(latencies)} requests, {args.concurrency} clients, {args.workers} workers | "
                    f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max(latencies):.1f} ms | errors {errors} | "
                    f"{rps:.0f} req/s ({rps / args.workers:.0f} per worker) | "
                    f"service p50 / in-process median = {p50 / inproc_median:.1f}x | "
                    f"server CPU {cpu_ms:.1f} ms/request ({cpu_ms / inproc_median:.1f}x in-process)"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()

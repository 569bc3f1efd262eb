"""Load benchmark of the CDS Hooks service (a script, not a test).

Starts the real service (`cds.hooks.app:create_app` under uvicorn, N worker processes, JWT authentication on
with an ES384 key, SQLite feedback/jti store, rule hot reload off so that edits to rules/ by someone else during
the run cannot trigger a rebuild) on loopback, then sends patient-view requests whose prefetch is built from
generated patients (`cds.synthetic.generate_patient`, a distinct patient per request) from C concurrent clients.

Modes (all of them for every connection style in `--connections`):

* open loop (`--rate R ...`): R requests/s in aggregate, arrival times drawn in advance (Poisson by default:
  independent EHR users opening charts; `--arrivals uniform` for a fixed spacing) and served by C clients. A
  request whose time has come waits for a free client if all C are busy, and its latency is counted from its
  scheduled time, so queueing anywhere (client, kernel, worker) is in the figures. This is what a fleet of C
  EHR sessions at R requests/s looks like; it is the mode the p99 target is about.
* closed loop: each of the C clients sends its next request as soon as the previous answer arrives (no think
  time). This measures saturation throughput. Its mean latency is C / throughput (Little's law) whatever the
  service does: with S ms of server CPU per request on 2 cores, throughput <= 2000 / S per second, so the mean
  latency is at least C * S / 2 ms, 16 * S with 32 clients; it could be under 50 ms only if S < 3.2 ms.

Connection styles: `keepalive` (each client keeps one HTTP/1.1 connection; uvicorn's workers share one
listening socket and a connection stays with the worker that accepted it) and `per-request` (a new connection
for every request, `Connection: close`: the worker that is free accepts it).

The load generator is a minimal HTTP/1.1 client on asyncio streams (uvloop when installed): request heads and
bodies are built before the timed run, and JWTs are signed before it too (each request has its own jti, so
a token can not be reused; signing cost is measured and reported, it is the EHR's cost, not the service's).
Every mode starts with `--warmup` requests (patients not in the timed set, closed loop, a connection per request
so that every worker gets some) that are left out of the statistics. Every mode sends the same records under
patient ids of its own, so its cards are new to the service (and written to the issued-card table) as in the
first mode.

Reported per mode: p50 / p90 / p99 / max latency, errors (anything but 200 with a `cards` array), requests/s
and requests/s per worker, each worker's share of the server CPU, server CPU per request (user + system of the
uvicorn processes, from /proc) and its ratio to the in-process `Evaluator.evaluate_resources` CPU on the same
prefetch, latency p50 over in-process median, the load generator's own CPU per request, and the machine's CPU
use by everything else during the run (other jobs on a shared machine distort latency; the figure says how
much). `--lock FILE` takes an exclusive flock on FILE around each timed part only. `--profile FILE` runs one
worker (in uvicorn's own process) under cProfile and writes its statistics to FILE when the run ends.

    python benchmarks/bench_hooks.py --requests 2000 --concurrency 32 --workers 2 --rate 40 80
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds.evaluation import Evaluator  # noqa: E402
from cds.synthetic import generate_patient  # noqa: E402

BASE_PUBLIC = "https://cds.bench.example"
ISS = "https://ehr.bench.example"
PATH = "/cds-services/trd-patient-review"
TIMEOUT_SECONDS = 30.0
KEYS = {
    "Patient": "patient",
    "MedicationStatement": "medicationStatements",
    "MedicationRequest": "medicationRequests",
    "MedicationDispense": "medicationDispenses",
    "MedicationAdministration": "medicationAdministrations",
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


# -- measuring ---------------------------------------------------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def worker_pids(pid: int) -> list[int]:
    """uvicorn's worker processes: the supervisor's children but multiprocessing's resource tracker."""
    try:
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [p for p in children if b"resource_tracker" not in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_seconds(pid: int, system_only: bool = False) -> float:
    """User + system (or only system: the kernel's share, e.g. TCP) CPU of one process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[12]) + (0 if system_only else int(fields[11]))) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def exclusive(lock: Path | None) -> Iterator[None]:
    """Hold an flock on `lock` (shared by everyone's timed runs on this machine) for the block."""
    if lock is None:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- the service -------------------------------------------------------------------------------------------------
def start_service(
    workers: int, workdir: Path, key: ECKey, profile: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    jwks = workdir / "jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    config = workdir / "settings.json"
    config.write_text(
        json.dumps(
            {
                "public_base_url": BASE_PUBLIC,
                "issuers": [{"iss": ISS, "jwks_file": str(jwks)}],
                "feedback_db_url": f"sqlite:///{workdir / 'feedback.sqlite3'}",
                "rules_reload_seconds": 0,
                "log_level": "WARNING",
            }
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "uvicorn", "cds.hooks.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if profile is not None:  # one worker, in uvicorn's own process, under cProfile (written at shutdown)
        cmd[1:2] = ["-m", "cProfile", "-o", str(profile), "-m"]
        cmd[cmd.index("--workers") + 1] = "1"
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "CDS_HOOKS_CONFIG": str(config), "PYTHONPATH": pythonpath}  # this tree's `cds`
    proc = subprocess.Popen(cmd, env=env, cwd=workdir)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before answering")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if profile is not None or len(worker_pids(proc.pid)) >= workers:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the service did not answer /healthz within 90 s")


# -- the load generator ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    head: bytes  # request line and headers (with this request's JWT)
    body: bytes


def build_calls(port: int, bodies: list[bytes], tokens: list[str], close: bool) -> list[Call]:
    connection = b"Connection: close\r\n" if close else b""
    return [
        Call(
            (
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            ).encode()
            + connection
            + b"\r\n",
            body,
        )
        for body, token in zip(bodies, tokens, strict=True)
    ]


class Connection:
    """One HTTP/1.1 client connection: send a prepared request, read one response (Content-Length framed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, call: Call, keep: bool) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._call(call, keep)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
        return await self._call(call, keep)  # the server had closed the idle connection: one retry, as clients do

    async def _call(self, call: Call, keep: bool) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.writelines((call.head, call.body))
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length, closing = 0, not keep
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    closing = True
            body = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if closing:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def answered(status: int, body: bytes) -> bool:
    if status != 200:
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("cards"), list)


@dataclass
class Run:
    latencies: list[float]
    errors: int
    elapsed: float
    late_starts: int  # open loop: requests that found all clients busy and started > 5 ms after their time


async def run_load(port: int, calls: list[Call], concurrency: int, keep: bool, schedule: list[float] | None) -> Run:
    latencies: list[float] = []
    errors = late = 0
    next_index = 0
    start = time.perf_counter()

    async def client() -> None:
        nonlocal errors, late, next_index
        connection = Connection(port)
        while next_index < len(calls):
            i = next_index
            next_index += 1
            if schedule is not None:
                due = start + schedule[i]
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.005:
                    late += 1
                t0 = due
            else:
                t0 = time.perf_counter()
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    status, body = await connection.call(calls[i], keep)
                ok = answered(status, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
                ok = False
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += 0 if ok else 1
        connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Run(latencies, errors, time.perf_counter() - start, late)


def arrival_schedule(n: int, rate: float, poisson: bool, seed: int) -> list[float]:
    if not poisson:
        return [i / rate for i in range(n)]
    rng, t, out = random.Random(seed), 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


def new_loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


# -- main --------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per mode")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--rate", type=float, nargs="*", default=[40.0, 80.0], help="open-loop requests/s to run")
    parser.add_argument("--no-closed-loop", action="store_true", help="run the open-loop modes only")
    parser.add_argument("--connections", choices=["keepalive", "per-request", "both"], default="both")
    parser.add_argument("--arrivals", choices=["poisson", "uniform"], default="poisson")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests before each mode")
    parser.add_argument("--lock", type=Path, default=None, help="flock this file around each timed part")
    parser.add_argument(
        "--profile", type=Path, default=None, help="run ONE worker under cProfile and write its stats here"
    )
    args = parser.parse_args()

    n_patients = args.requests + args.warmup
    t0 = time.perf_counter()
    patients = [prefetch_for(generate_patient(seed)) for seed in range(n_patients)]
    bodies = [
        orjson.dumps(
            {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/bench", "patientId": pid},
                "prefetch": prefetch,
            }
        )
        for pid, prefetch in patients
    ]
    print(f"{n_patients} generated patients in {time.perf_counter() - t0:.0f} s", flush=True)
    # The generated data lives as long as the script: keep it out of every collection, as the service does with
    # its rules, so that neither the in-process reference nor the client pays for collecting it.
    gc.collect()
    gc.freeze()

    evaluator = Evaluator()
    today = date.today()
    with exclusive(args.lock):
        for _, prefetch in patients[args.requests : args.requests + 20]:
            evaluator.evaluate_resources(list(prefetch.values()), today)
        inproc_ms: list[float] = []
        cpu0 = time.process_time()
        for _, prefetch in patients[: args.requests]:
            t1 = time.perf_counter()
            evaluator.evaluate_resources(list(prefetch.values()), today)
            inproc_ms.append((time.perf_counter() - t1) * 1000)
        inproc_cpu = (time.process_time() - cpu0) * 1000 / args.requests
    inproc_median = statistics.median(inproc_ms)
    size_kb = statistics.median(len(b) for b in bodies) / 1024
    print(
        f"in-process evaluate_resources on the same prefetch: median {inproc_median:.2f} ms, "
        f"p99 {percentile(inproc_ms, 0.99):.2f} ms, CPU {inproc_cpu:.2f} ms/patient | "
        f"request body median {size_kb:.0f} KB"
    )

    key = ECKey.generate_key("P-384", parameters={"kid": "bench", "alg": "ES384"})
    header = {"alg": "ES384", "typ": "JWT", "kid": "bench"}

    def sign(n: int) -> list[str]:
        now = int(time.time())
        claims = {"iss": ISS, "aud": BASE_PUBLIC + PATH, "iat": now, "exp": now + 900}
        return [jwt.encode(header, claims | {"jti": str(uuid.uuid4())}, key, algorithms=["ES384"]) for _ in range(n)]

    t1 = time.process_time()
    sign(200)
    print(f"ES384 JWT signing (client side, a fresh jti per request): {(time.process_time() - t1) * 5:.2f} ms CPU")

    styles = ["keepalive", "per-request"] if args.connections == "both" else [args.connections]
    modes: list[tuple[str, float | None]] = [(f"open {r:g}/s", r) for r in args.rate or []]
    if not args.no_closed_loop:
        modes.append(("closed", None))
    pids = [pid.encode() for pid, _ in patients]

    def renamed(first: int, last: int, run_number: int) -> list[bytes]:
        """The bodies of patients first..last-1 with their ids made unique to this run: the same records, but
        new card uuids, so that every mode writes its issued cards like the first one does."""
        return [bodies[i].replace(pids[i], pids[i] + b".%d" % run_number) for i in range(first, last)]

    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as tmp, new_loop_runner() as runner:
        if args.profile is not None:
            args.workers = 1
        proc, port = start_service(args.workers, Path(tmp), key, args.profile)
        try:
            workers = worker_pids(proc.pid) or [proc.pid]
            print(
                f"service: {len(workers)} uvicorn workers, JWT ES384, SQLite jti cache | load: {args.concurrency} "
                f"clients, {args.requests} timed requests per mode after {args.warmup} warm-up requests | "
                f"open-loop arrivals {args.arrivals} | CPU ms are per request | "
                f"load average before: {os.getloadavg()[0]:.2f}"
            )
            for run_number, (style, (label, rate)) in enumerate(((s, m) for s in styles for m in modes), 1):
                keep = style == "keepalive"
                tokens = sign(args.requests + args.warmup)
                timed_bodies = renamed(0, args.requests, run_number)
                warm_bodies = renamed(args.requests, n_patients, run_number)
                calls = build_calls(port, timed_bodies, tokens[: args.requests], close=not keep)
                warm = build_calls(port, warm_bodies, tokens[args.requests :], close=True)
                schedule = arrival_schedule(len(calls), rate, args.arrivals == "poisson", 1) if rate else None
                with exclusive(args.lock):
                    runner.run(run_load(port, warm, args.concurrency, False, None))  # reaches every worker
                    workers = worker_pids(proc.pid) or [proc.pid]
                    cpu_before = {p: cpu_seconds(p) for p in {proc.pid, *workers}}
                    sys_before = sum(cpu_seconds(p, system_only=True) for p in cpu_before)
                    busy0, self0 = machine_busy_seconds(), self_cpu_seconds()
                    run = runner.run(run_load(port, calls, args.concurrency, keep, schedule))
                    busy1, self1 = machine_busy_seconds(), self_cpu_seconds()
                    cpu_after = {p: cpu_seconds(p) for p in cpu_before}
                    kernel = sum(cpu_seconds(p, system_only=True) for p in cpu_before) - sys_before
                server = {p: cpu_after[p] - cpu_before[p] for p in cpu_before}
                print(
                    f"{style:>11} {label:>10}: "
                    + summary(run, server, kernel, workers, busy1 - busy0, self1 - self0, inproc_median, inproc_cpu),
                    flush=True,
                )
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            proc.send_signal(signal.SIGINT)  # a graceful stop: uvicorn drains, cProfile writes its stats
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def summary(
    run: Run,
    server_cpu: dict[int, float],
    server_kernel: float,
    workers: list[int],
    machine_busy: float,
    client_cpu: float,
    inproc_median: float,
    inproc_cpu: float,
) -> str:
    n = len(run.latencies)
    server = sum(server_cpu.values())
    per_worker = [server_cpu[p] for p in workers]
    shares = "/".join(f"{100 * w / max(sum(per_worker), 1e-9):.0f}" for w in per_worker)
    rps = n / run.elapsed
    others = max(0.0, machine_busy - server - client_cpu) / run.elapsed / (os.cpu_count() or 1)
    p50, p99 = percentile(run.latencies, 0.5), percentile(run.latencies, 0.99)
    server_ms = server * 1000 / n
    return (
        f"p50 {p50:.1f} ms, p90 {percentile(run.latencies, 0.9):.1f}, p99 {p99:.1f}, max {max(run.latencies):.1f} | "
        f"errors {run.errors}/{n} | {rps:.1f} req/s = {rps / len(workers):.1f} per worker (worker CPU split "
        f"{shares} %) | server CPU {server_ms:.2f} ms/request (kernel {server_kernel * 1000 / n:.2f}) = "
        f"{server_ms / inproc_cpu:.2f}x in-process CPU | "
        f"p50 = {p50 / inproc_median:.1f}x in-process median | client CPU {client_cpu * 1000 / n:.2f} ms/request | "
        f"other jobs used {100 * others:.0f} % of the machine"
        + (f" | {run.late_starts} late starts" if run.late_starts else "")
    )


if __name__ == "__main__":
    main()

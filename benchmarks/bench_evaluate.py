"""Per-patient evaluation cost: FHIR JSON bytes -> findings, over synthetic patients.

Run from the repository root:
    python benchmarks/bench_evaluate.py      # defaults: 500/100/10 patients at scale 1/10/100
    python benchmarks/bench_evaluate.py --evaluator durable --scales 1 --patients 200 --json out.json

Single process. Patients are generated and serialised with json.dumps before any timing; each evaluator is
warmed up on 20 patients first. Times use time.perf_counter_ns.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cds import BUILD, heap
from cds.evaluation import Evaluator
from cds.synthetic import DEFAULT_NOW, generate_population

WARMUP = 20


def summarise(ns: list[int]) -> dict[str, float]:
    ms = sorted(x / 1e6 for x in ns)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]

    mean = statistics.fmean(ms)
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": mean,
        "patients_per_s": 1000 / mean if mean else float("inf"),
    }


CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


def time_interleaved(
    items: list[bytes], fns: list[Callable[[bytes], object]], clock: Callable[[], int]
) -> list[list[int]]:
    """Time every function on every item, item by item, so that a burst of load from other processes on a
    shared machine falls on all the measures of the same patients alike and their ratios stay meaningful."""
    out: list[list[int]] = [[] for _ in fns]
    for data in items:
        for fn, times in zip(fns, out, strict=True):
            t0 = clock()
            fn(data)
            times.append(clock() - t0)
    return out


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def bench_scale(
    evaluator: Evaluator, kind: str, scale: int, n: int, now: date, clock: Callable[[], int]
) -> dict[str, Any]:
    warm = [json.dumps(p).encode() for p in generate_population(WARMUP, seed=999, history_scale=scale)]
    data = [json.dumps(p).encode() for p in generate_population(n, seed=scale, history_scale=scale)]
    for item in warm:
        evaluator.evaluate_bytes(item, now)
    total, parse, facts = time_interleaved(
        data, [lambda b: evaluator.evaluate_bytes(b, now), json.loads, lambda b: evaluator.facts(b, now)], clock
    )
    rules = [max(0, t - f) for t, f in zip(total, facts, strict=True)]
    row = {
        "evaluator": kind,
        "history_scale": scale,
        "mean_bytes": statistics.fmean(len(b) for b in data),
        "total": summarise(total),
        "json_loads": summarise(parse),
        "facts": summarise(facts),
        "rules": summarise(rules),
    }
    row["ratio_evaluate_over_json_loads"] = row["total"]["median_ms"] / row["json_loads"]["median_ms"]
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'evaluator':<10} {'scale':>5} {'n':>4} {'KB':>7} {'stage':<10} {'median':>9} {'p90':>9} "
        f"{'p99':>9} {'mean':>9} {'pat/s':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        for stage in ("total", "json_loads", "facts", "rules"):
            s = r[stage]
            print(
                f"{r['evaluator']:<10} {r['history_scale']:>5} {s['n']:>4} {r['mean_bytes'] / 1024:>7.1f} "
                f"{stage:<10} {s['median_ms']:>9.2f} {s['p90_ms']:>9.2f} {s['p99_ms']:>9.2f} "
                f"{s['mean_ms']:>9.2f} {s['patients_per_s']:>9.1f}"
            )
        print(f"{'':<10} evaluate/json.loads (median) = {r['ratio_evaluate_over_json_loads']:.1f}x")
    print()
    print("Scaling (median ms; ratio = median(scale k) / median(scale 1) / k, <= 1 means no worse than linear)")
    for kind in dict.fromkeys(r["evaluator"] for r in rows):
        mine = {r["history_scale"]: r for r in rows if r["evaluator"] == kind}
        base = mine.get(1)
        for k, r in sorted(mine.items()):
            ratio = r["total"]["median_ms"] / base["total"]["median_ms"] / k if base else float("nan")
            r["scaling_ratio"] = ratio
            print(f"  {kind:<10} scale {k:>3}: {r['total']['median_ms']:>10.2f} ms   ratio/k = {ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluator", choices=("durable", "reference", "both"), default="both")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100], help="history_scale values")
    ap.add_argument("--patients", type=int, nargs="+", default=[500, 100, 10], help="patients per scale (same order)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (excludes waiting for a core on a busy machine)",
    )
    ap.add_argument(
        "--gc",
        choices=("default", "settled"),
        default="default",
        help="default: CPython's collector as a library caller has it; settled: as the CDS Hooks and screening "
        "workers run it (cds/heap.py: the long-lived heap frozen after the evaluator is built, young threshold 5000)",
    )
    args = ap.parse_args()
    counts = (args.patients + [args.patients[-1]] * len(args.scales))[: len(args.scales)]
    kinds = ["durable", "reference"] if args.evaluator == "both" else [args.evaluator]
    now = DEFAULT_NOW
    rows = []
    for kind in kinds:
        t0 = time.perf_counter()
        evaluator = Evaluator(kind=kind)  # type: ignore[arg-type]
        load_s = time.perf_counter() - t0
        if args.gc == "settled":
            heap.settle()
        print(f"[{kind}] evaluator built in {load_s * 1000:.0f} ms", file=sys.stderr)
        for scale, n in zip(args.scales, counts, strict=True):
            print(f"[{kind}] scale {scale}: {n} patients ...", file=sys.stderr)
            row = bench_scale(evaluator, kind, scale, n, now, CLOCKS[args.clock])
            row["evaluator_build_ms"] = load_s * 1000
            rows.append(row)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, now={now}, warm-up {WARMUP} patients, "
        f"{args.clock} clock, gc {args.gc}, {BUILD.note}"
    )
    print_table(rows)
    print(f"\npeak RSS: {peak_rss_mb():.0f} MB")
    if args.json:
        out = {
            "command": " ".join(sys.argv),
            "clock": args.clock,
            "gc": args.gc,
            "python": platform.python_version(),
            "build": BUILD.note,
            "peak_rss_mb": peak_rss_mb(),
            "results": rows,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

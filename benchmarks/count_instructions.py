"""Count instructions with valgrind's callgrind: deterministic figures for changes too small to time on a shared
machine (the same program, inputs, binaries and hash seed give the same count whatever else the machine is
doing; the runs here fix PYTHONHASHSEED).

    python benchmarks/count_instructions.py evaluate --patients 10            # per patient, evaluate_bytes
    python benchmarks/count_instructions.py partition EXPORT                  # per patient, partitioning
    python benchmarks/count_instructions.py worker EXPORT --patients 150      # per patient, a screening worker's
    python benchmarks/count_instructions.py screen EXPORT                     # a whole one-process `cds screen`

`evaluate`, `partition` and `worker` run the work twice under callgrind, once without the measured part (start-up,
imports, warm-up) and once with it, and print the difference divided by the patients: what the measured part
alone costs. `screen` prints the total of one `cds screen --processes 1` run, start-up included, over all its
processes (patients are evaluated in forked children, one per bucket). Compare two trees by running the command
with PYTHONPATH set to each. Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WARM_UP = 60
NOW = "2026-01-15"


def _inner(mode: str, arg: str, patients: int, measured: bool) -> None:
    """The measured program (run under valgrind by _count); without ``measured`` it stops before the measured
    part, having done everything else the same."""
    if mode == "evaluate":
        import json

        from cds.evaluation import Evaluator
        from cds.synthetic import DEFAULT_NOW, generate_population

        ev = Evaluator()
        data = [json.dumps(p).encode() for p in generate_population(WARM_UP + patients, seed=1)]
        for d in data[: WARM_UP + patients if measured else WARM_UP]:
            ev.evaluate_bytes(d, DEFAULT_NOW)
    elif mode == "worker":
        # What a screening worker does per patient (cds.screen.worker.evaluate_patient: sort, parse, evaluate, row)
        # on an export's patients, after as many warm-up patients as `evaluate` has.
        from datetime import date

        from cds.fhir.bulk import export_files, partition_file, read_bucket
        from cds.screen.worker import evaluate_patient

        with tempfile.TemporaryDirectory() as tmp:
            for p in export_files(Path(arg)):
                partition_file(p, Path(tmp), 8)
            people = [pair for b in sorted(Path(tmp).iterdir()) for pair in read_bucket(b)]
        if len(people) < WARM_UP + patients:
            raise SystemExit(f"the export holds {len(people)} patients, fewer than {WARM_UP} + {patients}")
        for pid, lines in people[: WARM_UP + patients if measured else WARM_UP]:
            evaluate_patient(pid, lines, date.fromisoformat(NOW))
    elif mode == "partition":
        from cds.fhir.bulk import export_files, partition_file

        files = export_files(Path(arg))
        with tempfile.TemporaryDirectory() as tmp:
            for p in files if measured else []:
                partition_file(p, Path(tmp), 16)


def _count(argv: list[str]) -> int:
    """Instructions of the program and of every process it forks. A forked child starts with a copy of its
    parent's counts: they are zeroed where CPython starts a child after fork, so each instruction counts once."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/cg.out.%p",
                "--zero-before=PyOS_AfterFork_Child",
                sys.executable,
                *argv,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # str hashes, and so set and dict layouts, fixed per run
        )
    if out.returncode != 0:
        raise SystemExit(f"the measured run failed:\n{out.stderr[-3000:]}")
    # One total per process: `cds screen` evaluates each bucket in a forked child (cds/screen/supervise.py).
    found = re.findall(r"Collected : (\d+)", out.stderr)
    if not found:
        raise SystemExit(f"no callgrind total in the output:\n{out.stderr[-2000:]}")
    return sum(int(n) for n in found)


def _patients(export: Path) -> int:
    from cds.fhir.bulk import export_files, iter_lines

    return sum(1 for p in export_files(export) if p.name.startswith("Patient.") for _ in iter_lines(p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["evaluate", "partition", "worker", "screen"])
    ap.add_argument("export", nargs="?", default="", help="a bulk export directory (partition, worker, screen)")
    ap.add_argument("--patients", type=int, default=10, help="patients to evaluate (evaluate, worker)")
    ap.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner is not None:
        _inner(args.mode, args.export, args.patients, bool(args.inner))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    me = [str(Path(__file__).resolve()), args.mode, args.export, "--patients", str(args.patients)]
    if args.mode == "screen":
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["-m", "cds.cli", "screen", args.export, "--out", tmp, "--now", NOW, "--processes", "1"]
            total = _count([*cmd, "--no-progress"])
        print(f"screen {args.export}: {total:,} instructions (one process, start-up included)")
        return
    n = args.patients if args.mode in ("evaluate", "worker") else _patients(Path(args.export))
    base = _count([*me, "--inner", "0"])
    full = _count([*me, "--inner", "1"])
    print(f"{args.mode}: {(full - base) / n / 1e6:.2f}M instructions per patient ({n} patients)")


if __name__ == "__main__":
    main()

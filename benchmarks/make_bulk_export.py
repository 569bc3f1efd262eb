"""Write a synthetic FHIR Bulk Data export (one NDJSON file per resource type) of N generated patients.

    python benchmarks/make_bulk_export.py /tmp/export-10k --patients 10000 [--gzip] [--seed 0]

Patients are those of ``cds.synthetic.generate_population`` (deterministic per seed); see
``cds.synthetic.write_bulk_export`` for what is broken on purpose.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cds.synthetic import write_bulk_export


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="directory to write the NDJSON files into")
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--history-scale", type=int, default=1)
    ap.add_argument("--gzip", action="store_true", help="write .ndjson.gz")
    ap.add_argument("--broken-line-rate", type=float, default=0.002)
    ap.add_argument(
        "--shared-medication-rate",
        type=float,
        default=0.1,
        help="share of medication resources "
        "that reference a Medication in Medication.ndjson instead of naming the drug inline",
    )
    ap.add_argument(
        "--encounters-per-patient",
        type=int,
        default=0,
        help="Encounters per patient in Encounter.ndjson (a type no rule reads, as in an export without _type)",
    )
    ap.add_argument(
        "--administration-rate",
        type=float,
        default=0.0,
        help="share of patients with doses given on a ward or in a clinic (MedicationAdministration.ndjson)",
    )
    args = ap.parse_args()
    start = time.perf_counter()
    counts = write_bulk_export(
        args.out,
        args.patients,
        seed=args.seed,
        history_scale=args.history_scale,
        gzip_files=args.gzip,
        broken_line_rate=args.broken_line_rate,
        shared_medication_rate=args.shared_medication_rate,
        encounters_per_patient=args.encounters_per_patient,
        administration_rate=args.administration_rate,
    )
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    for name, lines in counts.items():
        print(f"{name:36} {lines:>10,} lines")
    print(f"{args.patients:,} patients, {size / 1e6:,.1f} MB in {time.perf_counter() - start:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()

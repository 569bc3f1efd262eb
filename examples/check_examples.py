"""Validate the example bundles: JSON, unique ids, references, fhir.resources R4B models.

Run from the repository root:  python examples/check_examples.py
Resources listed under "deliberately_invalid_entries" in expected.json (example 08) are
expected to FAIL model validation; everything else must pass.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

HERE = Path(__file__).resolve().parent
NOW = "2026-01-15"


def refs(obj, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                refs(v, out)
    elif isinstance(obj, list):
        for v in obj:
            refs(v, out)
    return out


def main() -> int:
    expected = json.loads((HERE / "expected.json").read_text())
    problems = 0
    for fname, exp in expected.items():
        bundle = json.loads((HERE / fname).read_text())
        broken = set(exp.get("deliberately_invalid_entries", []))
        ids, n_ok, n_fail = set(), 0, []
        for i, entry in enumerate(bundle["entry"]):
            res = entry.get("resource")
            if res is None:
                n_fail.append(f"entry[{i}] has no resource")
                continue
            key = f"{res['resourceType']}/{res['id']}"
            assert key not in ids, (fname, key)
            ids.add(key)
            try:
                get_fhir_model_class(res["resourceType"]).model_validate(res)
                n_ok += 1
                if key in broken:
                    print(f"  {fname}: {key} was expected to fail validation but passed")
                    problems += 1
            except Exception as e:
                msg = str(e).splitlines()[0]
                n_fail.append(f"{key}: {msg}")
                if key not in broken:
                    print(f"  {fname}: {key} FAILED: {e}")
                    problems += 1
        # whole-bundle validation for the clean bundles
        if not broken:
            try:
                get_fhir_model_class("Bundle").model_validate(bundle)
            except Exception as e:
                print(f"  {fname}: Bundle FAILED: {e}")
                problems += 1
        # every Type/id reference resolves (except the deliberate dangling one in 08)
        for r in refs(bundle, []):
            if r.startswith("#"):
                continue
            if r not in ids and "not-in-bundle" not in r:
                print(f"  {fname}: unresolved reference {r}")
                problems += 1
        assert exp["patient"] in ids, fname
        print(
            f"{fname}: type={bundle['type']} resources ok={n_ok} "
            f"expected-invalid={len(n_fail)} {n_fail if n_fail else ''}"
        )
    print("OK" if not problems else f"{problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

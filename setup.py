"""Build: the modules each evaluation runs through are compiled to C extensions with mypyc.

They are ordinary, strictly typed Python (mypy --strict clean); mypyc turns each into a C extension that runs the
same code faster (figures in docs/performance.md, "Compiled build"). The sources stay the reference:

* ``CDS_PURE_PYTHON=1`` at install time compiles nothing;
* the build writes ``cds/_compiled.json``, the hash of every source of the package; at import, ``cds/_build.py``
  loads the sources instead of the extensions when any source has changed since (an edited editable install) or
  when ``CDS_PURE_PYTHON=1`` is set, so stale compiled code never runs.

A module can be compiled only if it defines no pydantic model (mypyc cannot compile those classes); keep the
hot path's models in ``cds/facts/models.py`` and friends, and its code here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # cds._build, which writes the manifest, without importing the rest of cds

COMPILED = [
    "cds/fhir/dosage.py",
    "cds/fhir/elements.py",
    "cds/fhir/index.py",
    "cds/fhir/memo.py",
    "cds/fhir/medications.py",
    "cds/fhir/partition.py",
    "cds/fhir/reader.py",
    "cds/fhir/record.py",
    "cds/facts/builder.py",
    "cds/facts/construct.py",
    "cds/facts/courses.py",
    "cds/facts/episode.py",
    "cds/facts/outcome.py",
    "cds/facts/trials.py",
    "cds/engine/base.py",
    "cds/engine/durable.py",
    "cds/engine/prefilter.py",
    "cds/engine/recommend_inputs.py",
    "cds/engine/runner.py",
    "cds/engine/screen_inputs.py",
    "cds/engine/staging.py",
    "cds/engine/staging_inputs.py",
    "cds/engine/views.py",
    "cds/render/json_contract.py",
    "cds/screen/row.py",
    "cds/screen/worker.py",
    "cds/templates.py",
]


# The setup commands that build extensions. The others (egg_info, dist_info: pip asks for metadata two or three
# times per install) skip the half minute mypyc spends type-checking and generating C, and leave the manifest alone.
_BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install", "bdist"}


def _ext_modules() -> list[object]:
    from cds._build import write_manifest

    if not _BUILDS.intersection(sys.argv[1:]):
        return []
    if os.environ.get("CDS_PURE_PYTHON"):
        write_manifest(ROOT / "cds", [])
        return []
    from mypyc.build import mypycify

    modules = mypycify(COMPILED, opt_level="3", group_name="cds")
    write_manifest(ROOT / "cds", [p.removesuffix(".py").replace("/", ".") for p in COMPILED])
    return list(modules)


setup(ext_modules=_ext_modules())

"""TRD clinical decision support: FHIR R4 record -> typed facts -> declarative rules -> explained findings."""

from pathlib import Path

from cds._build import select as _select_build

__version__ = "0.1.0"

# Compiled or from the sources (cds/_build.py): decided before any other module of the package is imported.
BUILD = _select_build(Path(__file__).resolve().parent)

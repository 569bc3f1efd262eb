"""Which build of the package runs: the compiled extensions (mypyc, see setup.py) or the Python sources.

The install compiles the modules each evaluation runs through and writes ``_compiled.json`` beside this file: the
compiled modules and a hash of every source of the package. An editable install leaves the extensions next to the
sources, where Python would import them even after a source is edited. So at import (``cds/__init__.py`` calls
:func:`select` before any other module loads) the sources are checked against the manifest, and when any has
changed, or ``CDS_PURE_PYTHON`` is set, every compiled module is loaded from its source instead: stale compiled
code never runs, and compiled and source modules are never mixed (compiled modules call each other directly).

This module imports only the standard library: setup.py uses it before the package's dependencies exist.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

MANIFEST = "_compiled.json"
PURE_ENV = "CDS_PURE_PYTHON"
_log = logging.getLogger("cds")


class BuildStatus(NamedTuple):
    """``compiled``: the modules that run as C extensions (empty for the sources); ``note``: why, in one line."""

    compiled: tuple[str, ...]
    note: str


def source_hashes(package: Path, files: Iterable[str] | None = None) -> dict[str, str]:
    """SHA-256 of each source, by path relative to ``package`` (all ``*.py`` below it unless ``files`` given)."""
    paths = sorted(package.rglob("*.py")) if files is None else [package / f for f in files]
    out: dict[str, str] = {}
    for p in paths:
        try:
            out[p.relative_to(package).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            out[p.relative_to(package).as_posix()] = "missing"
    return out


def write_manifest(package: Path, compiled: Sequence[str]) -> None:
    """Called by setup.py: record the compiled modules and the sources they were compiled from. Extensions an
    earlier build left in the tree for modules this one does not compile are removed, so they cannot load."""
    keep = set(compiled)
    for ext in package.rglob("*.so"):
        parts = ext.relative_to(package).parts
        if ".".join((package.name, *parts[:-1], parts[-1].split(".")[0])) not in keep:
            ext.unlink()
    if not compiled:
        for lib in package.parent.glob(f"{package.name}__mypyc*.so"):
            lib.unlink()
    doc = {"compiled": list(compiled), "sources": source_hashes(package)}
    (package / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def changed_sources(package: Path, manifest: dict[str, object]) -> list[str]:
    """Sources whose content differs from the build's (relative paths, sorted)."""
    recorded = manifest.get("sources")
    if not isinstance(recorded, dict):
        return ["(manifest without source hashes)"]
    now = source_hashes(package, recorded)
    return sorted(f for f, digest in recorded.items() if now.get(f) != digest)


class _FromSource(MetaPathFinder):
    """Finds the named modules as their ``.py`` sources, ahead of the extensions beside them."""

    def __init__(self, package: Path, names: frozenset[str]) -> None:
        self._package = package
        self._names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self._names:
            return None
        source = self._package.joinpath(*fullname.split(".")[1:]).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, source)


def select(
    package: Path, environ: Mapping[str, str] | None = None, meta_path: list[MetaPathFinder] | None = None
) -> BuildStatus:
    """Decide which build runs, and make the import system (``sys.meta_path`` unless given) follow it."""
    env = os.environ if environ is None else environ
    try:
        manifest = json.loads((package / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return BuildStatus((), "Python sources (not compiled)")
    compiled = tuple(str(m) for m in manifest.get("compiled", []))
    if not compiled:
        return BuildStatus((), "Python sources (installed without compiling)")
    if env.get(PURE_ENV):
        reason = f"Python sources ({PURE_ENV} is set)"
    else:
        changed = changed_sources(package, manifest)
        if not changed:
            return BuildStatus(compiled, f"compiled ({len(compiled)} modules)")
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        reason = (
            f"Python sources: {', '.join(changed[:3])}{more} changed since the compiled build "
            "(reinstall, e.g. `pip install -e .`, to compile again)"
        )
        _log.warning("cds runs from its %s", reason.removeprefix("Python "))
    (sys.meta_path if meta_path is None else meta_path).insert(0, _FromSource(package, frozenset(compiled)))
    return BuildStatus((), reason)

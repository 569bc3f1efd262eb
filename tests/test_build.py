"""The compiled build (setup.py, cds/_build.py): it is the one under test, it gives the sources' output exactly,
and stale or unwanted compiled code never runs."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.abc import MetaPathFinder
from pathlib import Path

import pytest

import cds
from cds._build import MANIFEST, PURE_ENV, changed_sources, select, write_manifest
from cds.evaluation import Evaluator
from cds.render.json_contract import to_contract
from cds.synthetic import DEFAULT_NOW, generate_population
from tests.mutation import mutated_population

PACKAGE = Path(cds.__file__).resolve().parent
EXAMPLES = sorted((PACKAGE.parent / "examples").glob("[0-9]*.json"))


def _manifest() -> dict[str, object] | None:
    try:
        return dict(json.loads((PACKAGE / MANIFEST).read_text()))
    except OSError:
        return None


def test_the_compiled_modules_are_the_ones_running() -> None:
    """After a normal install every listed module is a C extension, so the suite tests what a site runs."""
    manifest = _manifest()
    assert manifest is not None, "cds was not installed through setup.py: run `pip install -e .` (README)"
    if not manifest["compiled"]:
        pytest.skip("installed with CDS_PURE_PYTHON set: nothing compiled, deliberately")
    if not cds.BUILD.compiled:
        pytest.skip(cds.BUILD.note)  # an edited checkout, or CDS_PURE_PYTHON set now
    assert isinstance(manifest["compiled"], list)
    for name in manifest["compiled"]:
        module = importlib.import_module(name)
        assert Path(str(module.__file__)).suffix == ".so", name


# The generated patients cover what the examples do not (dose changes, augmentations, scores, labs, bad records);
# the mutated ones the paths where compiled code checks types that Python does not (a value of the wrong type
# where a `str` is declared raises in compiled code: the same record must still read the same).
_SOURCES_RUN = """
import json, sys
sys.path.insert(0, sys.argv.pop(1))
from tests.mutation import mutated_population
from cds import BUILD
from cds.evaluation import Evaluator
from cds.render.json_contract import to_contract
from cds.synthetic import DEFAULT_NOW, generate_population
from tests.mutation import mutated_population
assert not BUILD.compiled, BUILD
ev = Evaluator()
inputs = [open(p, "rb").read() for p in sys.argv[1:]]
inputs += [json.dumps(p).encode() for p in generate_population(40, seed=11)]
inputs += [json.dumps(p).encode() for p in mutated_population(150, seed=7, mutations=10)]
for data in inputs:
    print(json.dumps(to_contract(ev.evaluate_bytes(data, DEFAULT_NOW), ev.knowledge), sort_keys=True, default=str))
"""


def test_sources_and_compiled_build_give_the_same_output() -> None:
    """Byte for byte: mypyc must change speed only (it once turned an empty sum's `0` into `0.0`)."""
    env = {**os.environ, PURE_ENV: "1"}
    run = subprocess.run(
        [sys.executable, "-c", _SOURCES_RUN, str(PACKAGE.parent), *map(str, EXAMPLES)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    ev = Evaluator()
    inputs = [p.read_bytes() for p in EXAMPLES] + [json.dumps(p).encode() for p in generate_population(40, seed=11)]
    inputs += [json.dumps(p).encode() for p in mutated_population(150, seed=7, mutations=10)]
    here = [
        json.dumps(to_contract(ev.evaluate_bytes(d, DEFAULT_NOW), ev.knowledge), sort_keys=True, default=str)
        for d in inputs
    ]
    assert run.stdout.splitlines() == here


# ------------------------------------------------------------------------------ selecting the build


def _package(tmp_path: Path, compiled: list[str]) -> Path:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "hot.py").write_text("X = 1\n")
    (package / "sub" / "hot.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not really")
    (tmp_path / "pkg__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not really")
    write_manifest(package, compiled)
    return package


def test_an_unchanged_compiled_build_runs_compiled(tmp_path: Path) -> None:
    package = _package(tmp_path, ["pkg.sub.hot"])
    finders: list[MetaPathFinder] = []
    status = select(package, {}, finders)
    assert status.compiled == ("pkg.sub.hot",) and not finders
    assert status.note == "compiled (1 modules)"


def test_an_edited_source_makes_every_compiled_module_load_from_source(tmp_path: Path) -> None:
    package = _package(tmp_path, ["pkg.sub.hot"])
    (package / "__init__.py").write_text("# edited\n")  # not itself compiled: compiled code may depend on it
    assert changed_sources(package, json.loads((package / MANIFEST).read_text())) == ["__init__.py"]
    finders: list[MetaPathFinder] = []
    status = select(package, {}, finders)
    assert status.compiled == () and "__init__.py" in status.note and "pip install -e ." in status.note
    spec = finders[0].find_spec("pkg.sub.hot", None)
    assert spec is not None and spec.origin == str(package / "sub" / "hot.py")
    assert finders[0].find_spec("pkg.sub", None) is None  # everything else is found as usual


def test_the_environment_forces_the_sources(tmp_path: Path) -> None:
    package = _package(tmp_path, ["pkg.sub.hot"])
    finders: list[MetaPathFinder] = []
    status = select(package, {PURE_ENV: "1"}, finders)
    assert status.compiled == () and PURE_ENV in status.note and len(finders) == 1


def test_a_build_without_compiling_removes_extensions_left_by_an_earlier_one(tmp_path: Path) -> None:
    package = _package(tmp_path, [])
    assert not list(tmp_path.rglob("*.so"))
    finders: list[MetaPathFinder] = []
    assert select(package, {}, finders).compiled == () and not finders


def test_a_build_removes_extensions_of_modules_it_no_longer_compiles(tmp_path: Path) -> None:
    package = _package(tmp_path, ["pkg.sub.hot"])
    (package / "cold.cpython-311-x86_64-linux-gnu.so").write_bytes(b"left by an earlier build")
    write_manifest(package, ["pkg.sub.hot"])
    assert sorted(p.name for p in tmp_path.rglob("*.so")) == [
        "hot.cpython-311-x86_64-linux-gnu.so",
        "pkg__mypyc.cpython-311-x86_64-linux-gnu.so",
    ]


def test_no_manifest_means_the_sources(tmp_path: Path) -> None:
    package = tmp_path / "bare"
    package.mkdir()
    finders: list[MetaPathFinder] = []
    assert select(package, {}, finders) == (((), "Python sources (not compiled)")) and not finders

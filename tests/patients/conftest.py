"""Collect every test-patient case (tests/patients/**/*.yaml) as its own pytest item.

Each case runs on both evaluators (durable_rules and the reference); the failure message shows expected and
actual side by side. `skip: reason` skips a case; `only: true` on any case runs only the cases marked so.
The case format is cds/authoring/cases.py, documented in docs/writing-test-cases.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from cds.authoring.cases import Case, CaseError, CaseRun, load_case, run_case
from cds.authoring.report import failure_text
from cds.evaluation import Evaluator
from cds.knowledge import cached_knowledge

ROOT = Path(__file__).resolve().parent


@cache
def _evaluator(kind: str) -> Evaluator:
    return Evaluator(cached_knowledge(), kind=kind)  # type: ignore[arg-type]


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and file_path.is_relative_to(ROOT) and not file_path.name.startswith("_"):
        return CaseFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cases = [i for i in items if isinstance(i, CaseItem)]
    if any(i.case.data.only for i in cases):
        deselected = [i for i in cases if not i.case.data.only]
        config.hook.pytest_deselected(items=deselected)
        items[:] = [i for i in items if i not in deselected]


class CaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            case = load_case(self.path, ROOT)
        except CaseError as exc:
            yield BrokenCase.from_parent(self, name=self.path.stem, message=str(exc))
            return
        yield CaseItem.from_parent(self, name=self.path.stem, case=case)


class BrokenCase(pytest.Item):
    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise CaseError(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return self.message


class CaseFailed(Exception):
    def __init__(self, runs: list[CaseRun]) -> None:
        super().__init__("case failed")
        self.runs = runs


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        if case.data.skip:
            reason = case.data.skip if isinstance(case.data.skip, str) else "skip: true in the case"
            self.add_marker(pytest.mark.skip(reason=reason))

    def runtest(self) -> None:
        runs = [run_case(self.case, _evaluator(kind)) for kind in ("durable", "reference")]
        failed = [r for r in runs if r.counts_as_failure]
        if failed:
            raise CaseFailed(failed)
        known = [r for r in runs if not r.passed and r.xfail_reason]
        if known:
            pytest.xfail("; ".join(f"{r.evaluator}: {r.xfail_reason}" for r in known))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed):
            return "\n".join(failure_text(r) for r in excinfo.value.runs)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"case {self.case.name}: {self.case.data.description.strip()[:80]}"

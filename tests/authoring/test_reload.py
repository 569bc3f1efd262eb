"""Hot reload: a valid edit swaps in a new versioned ruleset; an invalid edit keeps the old one serving;
retired rulesets are freed once no evaluation uses them."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

from cds.authoring.cases import load_case
from cds.engine.reload import ReloadError, RulesetManager

from .conftest import PATIENTS
from .util import edit

SEVEN_WEEKS = PATIENTS / "adequacy" / "duration-too-short" / "out-citalopram-20mg-7-weeks.yaml"


def _adequacy(manager: RulesetManager) -> str:
    case = load_case(SEVEN_WEEKS)
    with manager.lease() as ev:
        result = ev.evaluate_bytes(case.bundle_bytes(), case.data.now)
    return result.trials[0].adequacy


def test_valid_edit_swaps_and_releases_the_old_ruleset(rules_copy: Path) -> None:
    manager = RulesetManager(rules_copy, kind="reference", grace_seconds=0)
    try:
        assert manager.version == 1 and _adequacy(manager) == "adequate"
        assert manager.reload_if_changed() is False  # nothing changed
        old = manager.active
        edit(rules_copy / "config.yaml", "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 8")
        assert manager.reload_if_changed() is True
        assert manager.version == 2 and manager.last_error is None
        assert _adequacy(manager) == "inadequate_duration"
        assert old.closed and manager.retired() == []
    finally:
        manager.close()


def test_invalid_edit_is_rejected_and_the_old_rules_keep_serving(rules_copy: Path) -> None:
    errors: list[ReloadError] = []
    manager = RulesetManager(rules_copy, kind="reference", grace_seconds=0, on_error=errors.append)
    try:
        edit(
            rules_copy / "adequacy.yaml",
            '{field: weeks_at_adequate_dose, op: ">="',
            '{field: weeks_at_adequat_dose, op: ">="',
        )
        assert manager.reload_if_changed() is False
        assert manager.version == 1
        assert manager.last_error is not None and errors == [manager.last_error]
        assert any("weeks_at_adequat_dose" in p for p in manager.last_error.problems)
        assert _adequacy(manager) == "adequate"  # still the old rules
        assert manager.reload_if_changed() is False and len(errors) == 1  # the same broken files: not retried
        edit(rules_copy / "adequacy.yaml", "weeks_at_adequat_dose", "weeks_at_adequate_dose")
        assert manager.reload_if_changed() is True and manager.last_error is None and manager.version == 2
    finally:
        manager.close()


def test_durable_manager_swaps(rules_copy: Path) -> None:
    manager = RulesetManager(rules_copy, kind="durable", grace_seconds=0)
    assert manager.current().engine.kind == "durable"
    edit(rules_copy / "config.yaml", "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 8")
    assert manager.reload_if_changed() is True and manager.current().engine.kind == "durable"
    assert manager.version == 2


def test_broken_yaml_is_rejected(rules_copy: Path) -> None:
    manager = RulesetManager(rules_copy, kind="reference", grace_seconds=0)
    (rules_copy / "trd_status.yaml").write_text("module: [unclosed\n")
    assert manager.reload_if_changed() is False
    assert manager.last_error is not None and manager.version == 1
    manager.close()


def test_a_leased_ruleset_is_not_freed_until_the_lease_ends(rules_copy: Path) -> None:
    freed: list[int] = []
    manager = RulesetManager(rules_copy, kind="reference", grace_seconds=0, free_retired=True)
    manager.collect = _spy(manager, freed)  # type: ignore[method-assign]
    try:
        with manager.lease() as ev:
            first = manager.active
            edit(rules_copy / "config.yaml", "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 8")
            assert manager.reload_if_changed() is True
            assert not first.closed  # in use
            case = load_case(SEVEN_WEEKS)
            assert ev.evaluate_bytes(case.bundle_bytes(), date(2026, 1, 15)).trials[0].adequacy == "adequate"
        assert first.closed and freed
    finally:
        manager.close()


def _spy(manager: RulesetManager, freed: list[int]):  # type: ignore[no-untyped-def]
    inner = manager.collect

    def collect() -> int:
        n = inner()
        freed.extend([n] if n else [])
        return n

    return collect


def test_grace_period_protects_evaluators_handed_out_by_current(rules_copy: Path) -> None:
    manager = RulesetManager(rules_copy, kind="reference", grace_seconds=3600)
    edit(rules_copy / "config.yaml", "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 8")
    assert manager.reload_if_changed() is True
    (old,) = manager.retired()
    assert not old.closed  # still within the grace period
    manager.grace_seconds = 0
    assert manager.collect() == 1 and old.closed


def test_background_polling_picks_up_an_edit(rules_copy: Path) -> None:
    swapped = threading.Event()
    manager = RulesetManager(rules_copy, kind="reference", grace_seconds=0)
    try:
        manager.start(interval=0.05)
        edit(rules_copy / "config.yaml", "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 8")
        for _ in range(100):
            if manager.version == 2:
                swapped.set()
                break
            threading.Event().wait(0.05)
        assert swapped.is_set()
    finally:
        manager.close()

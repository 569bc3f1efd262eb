"""Finding templates: values read the same however often they are rendered."""

from __future__ import annotations

import pytest

from cds.findings import fmt_value, render_template


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "unknown"),
        (True, "yes"),
        (False, "no"),
        (3, "3"),
        (100.0, "100"),
        (8.5, "8.5"),
        (12.345, "12.3"),
        (99.99, "100"),
        (-0.0, "0"),
        (2.00000000001, "2"),
        (-7.25, "-7.2"),
        ("sertraline", "sertraline"),
    ],
)
def test_fmt_value(value: object, text: str) -> None:
    assert fmt_value(value) == text
    assert fmt_value(value) == text  # the second time from the cache of float texts


def test_render_template() -> None:
    scopes = {"config": {"min": 4}, "trial": {"ingredient": "sertraline", "weeks": 8.0}}
    template = "  {trial.ingredient} for {trial.weeks}\n   weeks (min {config.min}); {trial.dose} mg, {other.x}  "
    assert render_template(template, scopes) == "sertraline for 8 weeks (min 4); unknown mg, {other.x}"

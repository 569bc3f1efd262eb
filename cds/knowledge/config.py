"""Site settings from rules/config.yaml: every threshold the fact builder and the rules use."""

from __future__ import annotations

from cds.errors import KnowledgeError
from cds.knowledge.models import Setting, SiteConfigFile

REQUIRED_SETTINGS = (
    "min_trial_weeks",
    "early_stop_weeks",
    "failure_max_improvement_pct",
    "response_min_improvement_pct",
    "partial_response_min_improvement_pct",
    "madrs_remission_max",
    "trd_min_failed_trials",
    "trial_gap_days",
    "episode_gap_days",
    "baseline_days_before_start",
    "baseline_days_after_start",
    "end_score_days_before_end",
    "end_score_days_after_end",
    "implausible_dose_factor",
    "future_tolerance_days",
    "ect_course_gap_days",
    "psychotherapy_course_gap_days",
    "combination_min_overlap_days",
    "trsm_tca_double_count",
    "esm_crd_months",
    "adverse_reaction_days_after_end",
    "suicide_item_days",
)


class SiteConfig:
    def __init__(self, data: SiteConfigFile, path: str) -> None:
        missing = [name for name in REQUIRED_SETTINGS if name not in data.settings]
        if missing:
            raise KnowledgeError(f"missing settings: {', '.join(missing)}", path)
        self.version = data.version
        self.settings: dict[str, Setting] = dict(data.settings)
        self.local_instrument_codes = data.local_instrument_codes
        self.valuesets = data.valuesets
        self.thresholds: dict[str, float] = {}  # "<analyte>.<name>" from the observation catalog
        self.maudsley_severity = data.maudsley_severity

    def __getitem__(self, name: str) -> float:
        try:
            return self.settings[name].value
        except KeyError:
            raise KnowledgeError(f"unknown setting {name!r}") from None

    def setting(self, name: str) -> Setting:
        return self.settings[name]

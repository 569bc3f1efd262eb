"""Validate feedback bodies (`{"feedback": [...]}`) into typed items; 400 with a clear message when wrong.

Tolerates what real clients send: an override `reason` without `system` (the sandbox), and the early sandbox
shape `overrideReason: {code, system}` without the `reason` wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cds.hooks.errors import BadRequest


@dataclass(frozen=True)
class FeedbackItem:
    card: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    reason_code: str | None
    reason_system: str | None
    reason_display: str | None
    user_comment: str | None
    outcome_timestamp: datetime
    raw: dict[str, Any]


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise BadRequest(f"{where}.outcomeTimestamp is required (ISO 8601 UTC time)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{where}.outcomeTimestamp {value!r} is not an ISO 8601 time") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _item(value: Any, where: str) -> FeedbackItem:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    card = value.get("card")
    if not isinstance(card, str) or not card:
        raise BadRequest(f"{where}.card (the card's uuid) is required")
    outcome = value.get("outcome")
    if outcome not in ("accepted", "overridden"):
        raise BadRequest(f"{where}.outcome must be 'accepted' or 'overridden'")
    accepted: list[str] = []
    suggestions = value.get("acceptedSuggestions")
    if suggestions is not None:
        if not isinstance(suggestions, list) or not all(
            isinstance(s, dict) and isinstance(s.get("id"), str) for s in suggestions
        ):
            raise BadRequest(f"{where}.acceptedSuggestions must be an array of {{'id': suggestion uuid}}")
        accepted = [s["id"] for s in suggestions]
    if outcome == "accepted" and not accepted:
        raise BadRequest(f"{where}.acceptedSuggestions is required when the outcome is 'accepted'")
    code = system = display = comment = None
    override = value.get("overrideReason")
    if override is not None:
        if not isinstance(override, dict):
            raise BadRequest(f"{where}.overrideReason must be an object")
        reason = override.get("reason", override if "code" in override else None)
        if reason is not None:
            if not isinstance(reason, dict) or not isinstance(reason.get("code"), str):
                raise BadRequest(f"{where}.overrideReason.reason must be a Coding with a code")
            code = reason["code"]
            system = reason.get("system") if isinstance(reason.get("system"), str) else None
            display = reason.get("display") if isinstance(reason.get("display"), str) else None
        if isinstance(override.get("userComment"), str):
            comment = override["userComment"]
    return FeedbackItem(
        card=card,
        outcome=outcome,
        accepted_suggestions=tuple(accepted),
        reason_code=code,
        reason_system=system,
        reason_display=display,
        user_comment=comment,
        outcome_timestamp=_timestamp(value.get("outcomeTimestamp"), where),
        raw=value,
    )


def parse_feedback(body: Any) -> list[FeedbackItem]:
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise BadRequest('the body must be {"feedback": [ ... ]} with at least one item')
    return [_item(v, f"feedback[{i}]") for i, v in enumerate(body["feedback"])]

"""Feedback through the real server, stored idempotently in SQLite and in a real PostgreSQL; the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from typer.testing import CliRunner

from cds.cli import app as cli
from cds.hooks.feedback_store import FeedbackStore
from tests.hooks.conftest import SPEC, MockEhr, fixture_json, hook_body, prefetch_from_example

PV = "/cds-services/trd-patient-review"
FEEDBACK = f"{PV}/feedback"
SPEC_FEEDBACK = ("feedback-accepted.json", "feedback-overridden.json", "feedback-overridden-with-reason.json")


def _send(client: httpx.Client, base: str, ehr: MockEhr, body: Any) -> httpx.Response:
    return client.post(base + FEEDBACK, json=body, headers=ehr.headers(FEEDBACK))


def _exercise(base: str, db_url: str, client: httpx.Client, ehr: MockEhr) -> None:
    store = FeedbackStore(db_url)
    start = store.feedback_count()
    for name in SPEC_FEEDBACK:  # the spec's own feedback bodies
        response = _send(client, base, ehr, fixture_json(SPEC / name))
        assert response.status_code == 200, response.text
        assert response.json() == {"stored": 1, "duplicates": 0}
    for name in SPEC_FEEDBACK:  # replayed: stored once
        assert _send(client, base, ehr, fixture_json(SPEC / name)).json() == {"stored": 0, "duplicates": 1}
    assert store.feedback_count() == start + 3
    # feedback on cards we issued: joined to their rule in the report
    body = hook_body("patient-view", "ex01-patient", prefetch_from_example("01-trd-two-adequate-failures.json"))
    cards = client.post(base + PV, json=body, headers=ehr.headers(PV)).json()["cards"]
    met = next(c for c in cards if c["source"]["topic"]["code"] == "trd-criteria-met")
    reason = met["overrideReasons"][0]
    items = {
        "feedback": [
            {
                "card": met["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason, "userComment": "seen"},
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            },
            {"card": met["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-21T10:05:00.5Z"},
        ]
    }
    assert _send(client, base, ehr, items).json() == {"stored": 2, "duplicates": 0}
    assert _send(client, base, ehr, items).json() == {"stored": 0, "duplicates": 2}
    bad = {"feedback": [{"card": met["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]}
    response = _send(client, base, ehr, bad)
    assert response.status_code == 400 and "acceptedSuggestions" in response.text
    unknown = client.post(
        f"{base}/cds-services/nope/feedback", json=items, headers=ehr.headers("/cds-services/nope/feedback")
    )
    assert unknown.status_code == 404
    # the cards are recorded just after the response is sent: poll briefly for the report to see them
    deadline = time.monotonic() + 10
    while True:
        result = CliRunner().invoke(cli, ["feedback", "report", "--db-url", db_url, "--json"])
        assert result.exit_code == 0, result.output
        rows = {r["rule"]: r for r in orjson.loads(result.output)}
        if "trd.criteria-met" in rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows["trd.criteria-met"]["overridden"] >= 2
    assert rows["trd.criteria-met"]["override_reasons"][reason["display"]] >= 1
    assert rows["(unknown card)"]["accepted"] >= 1  # the spec's examples name cards we never issued
    table = CliRunner().invoke(cli, ["feedback", "report", "--db-url", db_url])
    assert table.exit_code == 0 and "trd.criteria-met" in table.output
    store.close()


def test_feedback_sqlite(service: tuple[str, Path], sqlite_url: str, client: httpx.Client, spec_ehr: MockEhr) -> None:
    _exercise(service[0], sqlite_url, client, spec_ehr)


def test_feedback_postgresql(
    pg_service: tuple[str, Path], postgres_url: str, client: httpx.Client, spec_ehr: MockEhr
) -> None:
    _exercise(pg_service[0], postgres_url, client, spec_ehr)

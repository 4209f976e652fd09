"""Alert rules at work: the HTTP API, evaluation in the batch transaction, Alert entities and
their history through the NGSI-LD API, a webhook target delivered by the real notifier, and
the dry run over stored history. Real PostgreSQL, real HTTP receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.engine import AlertEngine
from alerts.notifier import Notifier, NotifierOptions
from ngsi.vocabulary import IngestVocabulary
from storage.backend import detect_backend
from storage.database import connect
from storage.records import Batch, EntityFragment
from storage.writer import BatchWriter
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

VOCABULARY = IngestVocabulary()
AIR = VOCABULARY.entity_type("AirQualityObserved")
PM25 = VOCABULARY.attribute("AirQualityObserved", "pm25")
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
RULES = "/alerts/v1/rules"
ALERT_CONTEXT = "https://smart-data-models.github.io/dataModel.Alert/context.jsonld"
ALERT_LINK = {
    "Link": f'<{ALERT_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context";'
    ' type="application/ld+json"'
}


def pm25_rule(**changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": "pm25-high",
        "name": "PM2.5 above 25",
        "kind": "threshold",
        "scope": {"entity_type": "AirQualityObserved"},
        "attribute": "pm25",
        "operator": "above",
        "level": 25,
        "clear_level": 20,
        "severity": "medium",
        "category": "environment",
        "sub_category": "airPollution",
    }
    rule.update(changes)
    return rule


def write_pm25(database_url: str, tenant: str, values: list[float]) -> None:
    """One batch per value, 10 minutes apart, through the writer with the alert engine."""
    engine = AlertEngine(reload_seconds=0)
    with connect(database_url) as conn:
        writer = BatchWriter(detect_backend(conn, "auto"))
        for index, value in enumerate(values):
            at = START + timedelta(minutes=10 * index)
            stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            entity = "urn:ngsi-ld:AirQualityObserved:station-1"
            row = (tenant, entity, AIR, PM25, "", at, value, None, "GQ")
            fragment = EntityFragment(
                tenant,
                entity,
                AIR,
                {PM25: {"type": "Property", "value": value, "observedAt": stamp}},
                at,
                at,
            )
            batch = Batch(observations=[row], entities=[fragment])
            rows = batch.observations
            writer.write(conn, batch, also=lambda cursor, rows=rows: engine.on_batch(cursor, rows))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_rule_crud_and_errors(api: TestClient) -> None:
    assert api.post(RULES, json=pm25_rule()).status_code == 201
    assert api.post(RULES, json=pm25_rule()).status_code == 409
    assert api.get(f"{RULES}/pm25-high").json()["level"] == 25
    assert [rule["id"] for rule in api.get(RULES).json()] == ["pm25-high"]
    assert api.put(f"{RULES}/pm25-high", json=pm25_rule(level=30)).status_code == 204
    assert api.get(f"{RULES}/pm25-high").json()["level"] == 30
    bad = api.post(RULES, json=pm25_rule(id="other", clear_level=40))
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("BadRequestData")
    assert "clear_level" in bad.json()["detail"]
    assert api.get(f"{RULES}/nothing").status_code == 404
    assert api.delete(f"{RULES}/pm25-high").status_code == 204
    assert api.delete(f"{RULES}/pm25-high").status_code == 404


def test_a_batch_raises_and_resolves_an_alert_entity_with_history(
    api: TestClient, api_database: str, tenant: str
) -> None:
    assert api.post(RULES, json=pm25_rule()).status_code == 201
    write_pm25(api_database, tenant, [12, 31, 38, 22, 18])
    events = api.get(f"{RULES}/pm25-high/events").json()
    assert [event["change"] for event in reversed(events)] == ["raised", "updated", "resolved"]
    alerts = api.get("/ngsi-ld/v1/entities", params={"type": "Alert"}, headers=ALERT_LINK).json()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["alertSource"]["object"] == "urn:ngsi-ld:AirQualityObserved:station-1"
    assert alert["subCategory"]["value"] == "airPollution"
    assert alert["severity"]["value"] == "medium"
    assert alert["validFrom"]["value"]["@value"].startswith("2026-11-02T06:10:00")
    assert alert["validTo"]["value"]["@value"].startswith("2026-11-02T06:40:00")
    history = api.get(
        f"/ngsi-ld/v1/temporal/entities/{alert['id']}",
        params={"attrs": "alertState", "options": "temporalValues"},
        headers=ALERT_LINK,
    ).json()
    states = [value for value, _ in history["alertState"]["values"]]
    assert states == ["raised", "updated", "resolved"]


def test_webhook_target_is_notified_through_the_outbox(
    api: TestClient, api_database: str, tenant: str, receiver: Receiver
) -> None:
    rule = pm25_rule(notify=[{"webhook": receiver.url, "headers": {"X-City": "Mechelen"}}])
    assert api.post(RULES, json=rule).status_code == 201
    write_pm25(api_database, tenant, [30, 10])
    options = NotifierOptions(poll_seconds=0.05, max_backoff_seconds=0.5)
    notifier = Notifier(api_database, options)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    try:
        bodies = receiver.wait_for(lambda b: len(b) >= 2)
    finally:
        stop.set()
        thread.join(15)
    assert [body["alertChange"] for body in bodies] == ["raised", "resolved"]
    assert bodies[0]["data"][0]["type"] == "Alert"
    assert receiver.received[0].headers["X-City"] == "Mechelen"


def test_dry_run_replays_history(api: TestClient, api_database: str, tenant: str) -> None:
    write_pm25(api_database, tenant, [10, 30, 10, 40, 35, 5])
    assert api.post(RULES, json=pm25_rule(enabled=False)).status_code == 201
    response = api.post(
        f"{RULES}/pm25-high/dry-run",
        params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-03T00:00:00Z"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["timesFired"] == 2
    assert [e["raisedAt"][:16] for e in result["episodes"]] == [
        "2026-11-02T06:10",
        "2026-11-02T06:30",
    ]
    assert result["episodes"][1]["peak"] == 40
    # A trial threshold, without changing the stored rule.
    trial = api.post(
        f"{RULES}/pm25-high/dry-run",
        params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-03T00:00:00Z"},
        json={"level": 35, "clear_level": 30},
    )
    assert trial.status_code == 200, trial.text
    assert trial.json()["timesFired"] == 1
    assert api.get(f"{RULES}/pm25-high").json()["level"] == 25
    bad = api.post(f"{RULES}/pm25-high/dry-run", params={"from": "x", "to": "y"})
    assert bad.status_code == 400
    # Disabled: nothing was raised live.
    live = api.get("/ngsi-ld/v1/entities", params={"type": "Alert"}, headers=ALERT_LINK)
    assert live.json() == []


def test_silence_timer_raises_and_a_reading_resolves(
    api: TestClient, api_database: str, tenant: str
) -> None:
    rule = {
        "id": "station-silent",
        "name": "Station silent",
        "kind": "silence",
        "scope": {"entity_type": "AirQualityObserved"},
        "silent_for": "PT30M",
        "severity": "low",
        "category": "environment",
        "sub_category": "airPollution",
    }
    assert api.post(RULES, json=rule).status_code == 201
    write_pm25(api_database, tenant, [10])
    timer = AlertEngine(reload_seconds=0, clock=lambda: START + timedelta(hours=2))
    with connect(api_database) as conn:
        assert timer.check_silence(conn) == 1
        assert timer.check_silence(conn) == 0  # raised once, not again
    write_pm25(api_database, tenant, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    events = api.get(f"{RULES}/station-silent/events").json()
    assert [event["change"] for event in reversed(events)] == ["raised", "resolved"]
    assert events[-1]["at"].startswith("2026-11-02T06:30:00")

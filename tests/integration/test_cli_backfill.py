"""`stadspuls backfill` against the real PostgreSQL, read back through the temporal API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stadspuls.cli import app
from storage.database import connect

pytestmark = pytest.mark.integration

ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
LINK = f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
STATION = "urn:ngsi-ld:AirQualityObserved:bf-1"
CSV = """entity_id,entity_type,attribute,observed_at,value,unit_code,dataset_id
urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,pm25,2026-03-01T10:00:00Z,12.5,GQ,
urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,pm25,2026-03-01T11:00:00+01:00,13,GQ,
urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,pm25,2026-03-01T12:00:00Z,14.5,GQ,
urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,no2,2026-03-01T10:00:00Z,40,,urn:ngsi-ld:Dataset:raw
urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,state,2026-03-01T10:00:00Z,ok,,
urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,state,2026-03-01T11:00:00Z,"""
CSV += '"""12"""' + ",,\n"


def backfill(database_url: str, *args: str):
    """Run `stadspuls backfill` in-process; the result."""
    env = {"STADSPULS_DATABASE_URL": database_url, "COLUMNS": "200"}
    return CliRunner().invoke(app, ["backfill", *args], env=env)


def history(api, entity_id: str = STATION, **params: str) -> dict:
    response = api.get(
        f"/ngsi-ld/v1/temporal/entities/{entity_id}", params=params, headers={"Link": LINK}
    )
    assert response.status_code == 200, response.text
    return response.json()


def observation_count(database_url: str, tenant: str) -> int:
    with connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM observations WHERE tenant = %s", [tenant])
        return int(row.fetchone()[0])


def test_csv_backfill_writes_history_and_latest_state(api, api_database, tenant, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    result = backfill(api_database, str(path), "--tenant", tenant, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    # 11:00+01:00 is 10:00 UTC: the later line of one instant wins.
    assert "backfilled 5 instances of 1 entities" in result.output
    body = history(api, options="temporalValues")
    assert body["type"] == "AirQualityObserved"
    assert body["pm25"]["values"] == [
        [13.0, "2026-03-01T10:00:00.000000Z"],
        [14.5, "2026-03-01T12:00:00.000000Z"],
    ]
    assert body["no2"] == {
        "type": "Property",
        "values": [[40.0, "2026-03-01T10:00:00.000000Z"]],
        "datasetId": "urn:ngsi-ld:Dataset:raw",
    }
    assert [v[0] for v in body["state"]["values"]] == ["ok", "12"]
    assert history(api, attrs="pm25")["pm25"][0]["unitCode"] == "GQ"
    latest = api.get(f"/ngsi-ld/v1/entities/{STATION}", headers={"Link": LINK}).json()
    assert latest["pm25"]["value"] == 14.5
    # Running it again changes nothing: instances are keyed by their time.
    assert backfill(api_database, str(path), "--tenant", tenant).exit_code == 0
    assert observation_count(api_database, tenant) == 5


def test_json_backfill_with_and_without_context(api, api_database, tenant, tmp_path):
    entities = [
        {
            "id": STATION,
            "type": "AirQualityObserved",
            "pm25": [
                {"type": "Property", "value": 1.0, "observedAt": "2026-03-01T10:00:00Z"},
                {"type": "Property", "value": 2.0, "observedAt": "2026-03-01T11:00:00Z"},
            ],
        },
        {
            "@context": ENVIRONMENT,
            "id": "urn:ngsi-ld:AirQualityObserved:bf-2",
            "type": "AirQualityObserved",
            "pm25": {"value": 5.0, "observedAt": "2026-03-01T10:00:00Z"},
        },
    ]
    path = tmp_path / "history.json"
    path.write_text(json.dumps(entities, indent=2))
    result = backfill(api_database, str(path), "--tenant", tenant)
    assert result.exit_code == 0, result.output
    assert [v[0] for v in history(api, options="temporalValues")["pm25"]["values"]] == [1.0, 2.0]
    second = history(api, "urn:ngsi-ld:AirQualityObserved:bf-2", options="temporalValues")
    assert second["pm25"]["values"] == [[5.0, "2026-03-01T10:00:00.000000Z"]]


def test_an_invalid_csv_reports_every_line_and_writes_nothing(api_database, tenant, tmp_path):
    lines = CSV.splitlines()
    lines[2] = lines[2].replace("2026-03-01T11:00:00+01:00", "yesterday")
    lines[4] = lines[4].replace("urn:ngsi-ld:AirQualityObserved:bf-1", "not an id")
    lines.append("urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,pm25,2026-03-01T13:00:00Z")
    lines.append("urn:ngsi-ld:AirQualityObserved:bf-1,AirQualityObserved,pm25,2026-03-01T14:00Z,,")
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    result = backfill(api_database, str(path), "--tenant", tenant)
    assert result.exit_code == 1
    output = result.output
    for line in ("line 3: observed_at", "line 5: entity_id", "line 8: expected", "line 9: value"):
        assert line in output, output
    assert "line 2:" not in output and "nothing written" in output
    assert observation_count(api_database, tenant) == 0
    skipping = backfill(api_database, str(path), "--tenant", tenant, "--skip-invalid")
    assert skipping.exit_code == 0, skipping.output
    assert "skipped 4 invalid lines" in skipping.output
    assert observation_count(api_database, tenant) == 4  # lines 2, 4, 6 and 7


def test_an_invalid_json_file_reports_the_line_of_each_entity(api_database, tenant, tmp_path):
    good = {"id": STATION, "type": "AirQualityObserved",
            "pm25": [{"value": 1.0, "observedAt": "2026-03-01T10:00:00Z"}]}  # fmt: skip
    no_time = {**good, "id": "urn:ngsi-ld:AirQualityObserved:bf-2", "pm25": [{"value": 1.0}]}
    path = tmp_path / "bad.json"
    path.write_text("[\n" + json.dumps(good) + ",\n\n" + json.dumps(no_time) + "\n]\n")
    result = backfill(api_database, str(path), "--tenant", tenant)
    assert result.exit_code == 1
    assert "line 4:" in result.output and "observedAt" in result.output
    assert observation_count(api_database, tenant) == 0
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"id": "urn:x:1",\n "type": }\n]')
    result = backfill(api_database, str(broken), "--tenant", tenant)
    assert result.exit_code == 1 and "line 3: not valid JSON" in result.output


def test_a_csv_without_the_header_is_refused(api_database, tenant, tmp_path):
    path = tmp_path / "no-header.csv"
    path.write_text("\n".join(CSV.splitlines()[1:]) + "\n")
    result = backfill(api_database, str(path), "--tenant", tenant)
    assert result.exit_code == 1 and "line 1: the header must name" in result.output
    assert Path(path).exists()

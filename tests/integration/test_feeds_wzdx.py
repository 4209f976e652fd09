"""WZDx, Waze and the catalogue over HTTP (in-process), the MQTT push and the CLI export, with
CityWork entities created through the NGSI-LD API on the real PostgreSQL (and Mosquitto)."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import typer
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from rdflib import RDF, Graph, Namespace
from typer.testing import CliRunner

from feeds import routes_feeds
from feeds.cli_wzdx import export_waze, export_wzdx
from feeds.publication import Publication
from feeds.push import FeedPublisher, feed_topic, tenant_segment
from feeds.roadworks import Roadwork, roadwork_entity
from stadspuls.api import create_app
from storage.database import connect
from tests.support.api import api_settings
from tests.support.wzdx_schema import assert_valid_wzdx

pytestmark = pytest.mark.integration

TRANSPORTATION = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld"
)
LINK = f'<{TRANSPORTATION}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
DCAT = Namespace("http://www.w3.org/ns/dcat#")
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
ZONE = [[[3.70, 51.05], [3.71, 51.05], [3.71, 51.0501], [3.70, 51.0501], [3.70, 51.05]]]
CLOSED = Roadwork(
    id="urn:ngsi-ld:CityWork:test-closed",
    name="Veldstraat",
    geometry={"type": "LineString", "coordinates": [[3.7201, 51.0501], [3.7212, 51.0507]]},
    start=START,
    end=START + timedelta(days=3),
    description="Volledig afgesloten",
    state="open",
    closure="full",
)
OPEN_ENDED = Roadwork(
    id="urn:ngsi-ld:CityWork:test-zones",
    name="Kouter",
    geometry={"type": "MultiPolygon", "coordinates": [ZONE, ZONE]},
    start=START,
    closure="partial",
    lanes_closed=1,
    dispositions=({"disposition": "laneReduction"},),
)


@pytest.fixture
def feeds_api(api_database: str, tenant: str) -> Iterator[TestClient]:
    """The API with the feeds router (included here until create_app includes it)."""
    app = create_app(api_settings(api_database))
    if not any(getattr(route, "path", None) == "/feeds/wzdx" for route in app.routes):
        app.include_router(routes_feeds.router)
    with TestClient(app) as client:
        client.headers["NGSILD-Tenant"] = tenant
        yield client


def create(api: TestClient, roadwork: Roadwork) -> None:
    """POST the roadwork's CityWork entity with the SDM Transportation context."""
    response = api.post(
        "/ngsi-ld/v1/entities", json=roadwork_entity(roadwork), headers={"Link": LINK}
    )
    assert response.status_code == 201, response.text


def test_wzdx_feed_of_the_tenants_citywork_entities(feeds_api: TestClient) -> None:
    empty = feeds_api.get("/feeds/wzdx")
    assert empty.status_code == 200
    assert_valid_wzdx(empty.json())
    assert empty.json()["features"] == []
    create(feeds_api, CLOSED)
    create(feeds_api, OPEN_ENDED)
    response = feeds_api.get("/feeds/wzdx")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    feed = response.json()
    assert_valid_wzdx(feed)
    by_id = {feature["id"]: feature["properties"] for feature in feed["features"]}
    assert by_id.keys() == {CLOSED.id, OPEN_ENDED.id + "#1", OPEN_ENDED.id + "#2"}
    assert by_id[CLOSED.id]["vehicle_impact"] == "all-lanes-closed"
    assert by_id[CLOSED.id]["end_date"] == "2026-03-05T07:00:00Z"
    assert by_id[OPEN_ENDED.id + "#1"]["vehicle_impact"] == "some-lanes-closed"
    assert by_id[OPEN_ENDED.id + "#1"]["is_end_date_verified"] is False
    assert by_id[CLOSED.id]["core_details"]["road_names"] == ["Veldstraat"]


def test_waze_feed_has_only_the_closures(feeds_api: TestClient) -> None:
    create(feeds_api, CLOSED)
    create(feeds_api, OPEN_ENDED)
    response = feeds_api.get("/feeds/waze")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    (incident,) = response.json()["incidents"]
    assert incident["id"] == CLOSED.id
    assert incident["type"] == "ROAD_CLOSED"
    assert incident["polyline"] == "51.0501 3.7201 51.0507 3.7212"


@pytest.mark.parametrize("path", ["/feeds/wzdx", "/feeds/waze"])
def test_conditional_get(feeds_api: TestClient, path: str) -> None:
    create(feeds_api, CLOSED)
    first = feeds_api.get(path)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    assert "NGSILD-Tenant" in first.headers["vary"]
    again = feeds_api.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert feeds_api.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)
    assert feeds_api.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    response = feeds_api.patch(
        f"/ngsi-ld/v1/entities/{CLOSED.id}/attrs",
        json={"description": {"type": "Property", "value": "Tot vrijdag afgesloten"}},
        headers={"Link": LINK},
    )
    assert response.status_code == 204, response.text
    changed = feeds_api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def test_other_tenants_roadworks_are_not_in_the_feed(feeds_api: TestClient) -> None:
    create(feeds_api, CLOSED)
    other = feeds_api.get("/feeds/wzdx", headers={"NGSILD-Tenant": f"other-{uuid.uuid4().hex[:8]}"})
    assert other.status_code == 200
    assert other.json()["features"] == []


def test_catalog_content_negotiation_and_conditional_get(feeds_api: TestClient) -> None:
    create(feeds_api, CLOSED)
    response = feeds_api.get("/catalog", headers={"Accept": "text/turtle"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/turtle")
    graph = Graph().parse(data=response.text, format="turtle")
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert any(str(d).endswith("#dataset-entities-CityWork") for d in datasets)
    assert all(str(d).startswith("http://testserver/catalog#") for d in datasets)
    etag = response.headers["etag"]
    assert (
        feeds_api.get(
            "/catalog", headers={"Accept": "text/turtle", "If-None-Match": etag}
        ).status_code
        == 304
    )
    json_ld = feeds_api.get("/catalog")
    assert json_ld.headers["content-type"] == "application/ld+json"
    assert json_ld.headers["etag"] != etag  # another representation, another tag
    assert Graph().parse(data=json_ld.text, format="json-ld")
    refused = feeds_api.get("/catalog", headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert refused.json()["type"] == "urn:stadspuls:errors:NotAcceptable"


def _retained(mqtt_url: str, topic: str) -> dict:
    """The retained message on `topic`, as JSON (waits at most 10 s)."""
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    received: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _client, _data, message: received.put(bytes(message.payload))
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(host, int(port))
    client.loop_start()
    try:
        return json.loads(received.get(timeout=10))
    finally:
        client.loop_stop()
        client.disconnect()


def test_push_publishes_retained_feeds_when_roadworks_change(
    feeds_api: TestClient, api_database: str, tenant: str, mqtt_url: str
) -> None:
    create(feeds_api, CLOSED)
    publisher = FeedPublisher(Publication("Stad Gent"))
    with connect(api_database) as conn:
        assert publisher.run_once(conn, mqtt_url) >= 1
        assert tenant not in publisher.changed_tenants(conn)
        conn.rollback()
    feed = _retained(mqtt_url, feed_topic(tenant, "wzdx"))
    assert_valid_wzdx(feed)
    assert [f["id"] for f in feed["features"]] == [CLOSED.id]
    assert feed["feed_info"]["publisher"] == "Stad Gent"
    waze = _retained(mqtt_url, f"stadspuls/feeds/{tenant}/waze")
    assert [i["id"] for i in waze["incidents"]] == [CLOSED.id]

    create(feeds_api, OPEN_ENDED)
    with connect(api_database) as conn:
        assert tenant in publisher.changed_tenants(conn)
        publisher.run_once(conn, mqtt_url)
    feed = _retained(mqtt_url, feed_topic(tenant, "wzdx"))
    assert_valid_wzdx(feed)
    assert len(feed["features"]) == 3


@pytest.mark.parametrize(
    ("tenant_name", "segment"),
    [("", "default"), ("gent", "gent"), ("a/b+c#d%", "a%2Fb%2Bc%23d%25")],
)
def test_tenant_topic_segment(tenant_name: str, segment: str) -> None:
    assert tenant_segment(tenant_name) == segment


def test_cli_exports(
    feeds_api: TestClient,
    api_database: str,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create(feeds_api, CLOSED)
    create(feeds_api, OPEN_ENDED)
    monkeypatch.setenv("STADSPULS_DATABASE_URL", api_database)
    cli = typer.Typer()
    cli.command("export-wzdx")(export_wzdx)
    cli.command("export-waze")(export_waze)
    runner = CliRunner()
    wzdx_path, waze_path = tmp_path / "out" / "wzdx.geojson", tmp_path / "waze.json"
    result = runner.invoke(cli, ["export-wzdx", str(wzdx_path), "--tenant", tenant])
    assert result.exit_code == 0, result.output
    feed = json.loads(wzdx_path.read_text())
    assert_valid_wzdx(feed)
    assert len(feed["features"]) == 3
    result = runner.invoke(cli, ["export-waze", str(waze_path), "--tenant", tenant])
    assert result.exit_code == 0, result.output
    assert [i["id"] for i in json.loads(waze_path.read_text())["incidents"]] == [CLOSED.id]

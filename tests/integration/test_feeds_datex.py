"""The DATEX II feeds over HTTP (in-process) against the real PostgreSQL: roadworks created as
CityWork entities through the NGSI-LD API, traffic written by the real ingest path (simulator
messages through BatchBuilder and BatchWriter); every document valid against the XSDs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from fastapi.testclient import TestClient
from lxml import etree
from typer.testing import CliRunner

from devices.model import DeviceConfig
from devices.registry import DeviceRegistry
from feeds import routes_datex
from feeds.datex2_export import export_datex2, write_datex2
from feeds.datex2_xml import NAMESPACES
from feeds.roadworks import Roadwork, roadwork_entity
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from stadspuls.api import create_app
from stadspuls.settings import Settings
from stadspuls.simulator import Message, miv_record, sample_groups, telraam_report
from storage.backend import detect_backend
from storage.database import connect
from storage.writer import BatchWriter
from tests.support.api import api_settings
from tests.support.datex2_schema import assert_valid

pytestmark = pytest.mark.integration

TRANSPORTATION = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld"
)
LINK = f'<{TRANSPORTATION}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
MINUTE = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SQUARE = [[3.70, 51.00], [3.71, 51.00], [3.71, 51.01], [3.70, 51.01], [3.70, 51.00]]
ZONE = {"type": "MultiPolygon", "coordinates": [[SQUARE], [[[x + 0.1, y] for x, y in SQUARE]]]}
LOOP_PLACE = (3.7251, 51.0412)
SEGMENT = "urn:ngsi-ld:RoadSegment:telraam-348917"
SEGMENT_LINE = {"type": "LineString", "coordinates": [[3.72, 51.05], [3.73, 51.051]]}


@pytest.fixture
def client(api_database: str, tenant: str) -> Iterator[TestClient]:
    """The API with the DATEX II routes (added here until create_app includes them)."""
    app = create_app(api_settings(api_database))
    if not any(getattr(r, "path", "") == "/feeds/datex2/situations" for r in app.routes):
        app.include_router(routes_datex.router)
    with TestClient(app) as test_client:
        test_client.headers["NGSILD-Tenant"] = tenant
        yield test_client


def create(client: TestClient, entity: dict[str, Any]) -> None:
    response = client.post("/ngsi-ld/v1/entities", json=entity, headers={"Link": LINK})
    assert response.status_code == 201, response.text


def roadworks() -> list[Roadwork]:
    return [
        Roadwork("urn:ngsi-ld:CityWork:kouter", "Kouter", {"type": "Point",
                 "coordinates": [3.7223, 51.0521]}, START, START + timedelta(days=4)),
        Roadwork("urn:ngsi-ld:CityWork:zone", "Zone", ZONE, START, None, closure="full",
                 state="open"),
        Roadwork("urn:ngsi-ld:CityWork:lane", "Lane", SEGMENT_LINE, START, START +
                 timedelta(days=1), lanes_closed=1),
    ]  # fmt: skip


def ingest(database_url: str, tenant: str, messages: list[Message]) -> None:
    """Write `messages` through the real pipeline: decode, map, COPY, latest-state upsert."""
    devices = [
        ("miv-0", DeviceConfig("miv-0", "traffic-loop", tenant, "miv-bridge", location=LOOP_PLACE))
    ]
    registry = DeviceRegistry(devices, sample_groups(tenant))
    received = datetime.now(UTC)
    raw = [RawMessage(m.topic, m.payload, 0, 1, received, 0.0) for m in messages]
    batch = BatchBuilder(lambda: registry, 256 * 1024).build(raw).batch
    assert not batch.dead_letters, batch.dead_letters[:2]
    with connect(database_url) as conn:
        backend = detect_backend(conn, Settings(database_url=database_url).storage_backend)
        BatchWriter(backend).write(conn, batch)


def traffic(minute: datetime, seed: int = 1) -> list[Message]:
    """Two loop sites of a located bridge, one of an unlocated bridge, a Telraam segment."""
    rng = random.Random(seed)
    return [
        miv_record("miv-0", 2, minute, rng),
        miv_record("miv-9", 1, minute, rng),
        telraam_report(348917, minute, rng),
    ]


def find(document: bytes, path: str) -> list[Any]:
    return etree.fromstring(document).xpath(path, namespaces=NAMESPACES)


def test_roadworks_created_through_the_api_are_a_valid_situation_publication(client):
    for work in roadworks():
        create(client, roadwork_entity(work))
    response = client.get("/feeds/datex2/situations")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert {"etag", "last-modified", "cache-control"} <= set(response.headers)
    assert_valid(response.content)
    assert find(response.content, "//sit:situation/@id") == [w.id for w in sorted(
        roadworks(), key=lambda w: w.id)]  # fmt: skip
    closures = find(response.content, "//sit:roadOrCarriagewayOrLaneManagementType/text()")
    assert closures == ["laneClosures", "roadClosed"]
    zone = "//sit:situation[@id='urn:ngsi-ld:CityWork:zone']"
    assert find(response.content, zone + "//com:overallEndTime") == []
    assert len(find(response.content, zone + "//loc:gmlPolygon")) == 2 * 2  # two records


def test_conditional_get_of_the_situations(client):
    create(client, roadwork_entity(roadworks()[0]))
    first = client.get("/feeds/datex2/situations")
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    again = client.get("/feeds/datex2/situations", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    since = client.get("/feeds/datex2/situations", headers={"If-Modified-Since": last_modified})
    assert since.status_code == 304
    # The same revision gives the same bytes (publicationTime is the newest change).
    assert client.get("/feeds/datex2/situations").content == first.content

    create(client, roadwork_entity(roadworks()[1]))
    changed = client.get("/feeds/datex2/situations", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert_valid(changed.content)
    assert len(find(changed.content, "//sit:situation")) == 2


def test_the_traffic_state_from_ingest_is_valid_measured_data_and_site_table(
    client, api_database, tenant
):
    create(client, {"id": SEGMENT, "type": "RoadSegment",
                    "name": {"type": "Property", "value": "Kortrijksesteenweg"},
                    "location": {"type": "GeoProperty", "value": SEGMENT_LINE}})  # fmt: skip
    ingest(api_database, tenant, traffic(MINUTE - timedelta(minutes=1), seed=2))
    latest = traffic(MINUTE)
    ingest(api_database, tenant, latest)

    sites = client.get("/feeds/datex2/measurement-sites")
    assert sites.status_code == 200, sites.text
    assert_valid(sites.content)
    loops = [f"urn:ngsi-ld:TrafficFlowObserved:miv-0-H00{n}L10" for n in (0, 1)]
    # By site id; the loops of the bridge without a location (miv-9) cannot be placed.
    assert find(sites.content, "//roa:measurementSite/@id") == [SEGMENT, *loops]
    names = find(sites.content, "//roa:measurementSiteName//com:value/text()")
    assert names[0] == "Kortrijksesteenweg"
    assert find(sites.content, "//roa:measurementSite[2]//loc:longitude/text()") == ["3.7251"]

    data = client.get("/feeds/datex2/measured-data")
    assert data.status_code == 200, data.text
    assert_valid(data.content)
    record = orjson.loads(latest[0].payload)["meetpunt"][0]
    count = sum(int(c["verkeersintensiteit"][0]) for c in record["meetdata"])
    occupancy = record["rekendata"][0]["bezettingsgraad"][0]
    site = f"//roa:siteMeasurements[roa:measurementSiteReference/@id='{loops[0]}']"
    assert find(data.content, site + "/roa:physicalQuantity[@index='1']//com:vehicleFlowRate"
                "/text()") == [str(count * 60)]  # fmt: skip
    assert find(data.content, site + "//roa:occupancy/com:percentage/text()") == [occupancy]
    assert find(data.content, site + "//roa:measurementTimeDefault/roa:timeValue/text()") == [
        "2025-03-01T08:00:00Z"
    ]
    telraam = orjson.loads(latest[2].payload)
    segment = f"//roa:siteMeasurements[roa:measurementSiteReference/@id='{SEGMENT}']"
    rates = find(data.content, segment + "/roa:physicalQuantity[@index='1']//com:vehicleFlowRate")
    assert rates[0].text == str(round(telraam["car"] + telraam["heavy"]))
    v85 = find(data.content, segment + "//roa:speedPercentile/roa:speedPercentile/com:speed")
    assert [float(v.text) for v in v85] == [telraam["v85"]]
    # Telraam measures no average speed and no occupancy: no speed, no traffic status.
    assert find(data.content, segment + "//roa:averageVehicleSpeed") == []
    assert find(data.content, segment + "//roa:trafficStatus") == []


def test_conditional_get_of_the_traffic_feeds(client, api_database, tenant):
    ingest(api_database, tenant, traffic(MINUTE))
    for path in ("/feeds/datex2/measured-data", "/feeds/datex2/measurement-sites"):
        first = client.get(path)
        etag = first.headers["etag"]
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
        since = client.get(path, headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304
    before = client.get("/feeds/datex2/measured-data")
    ingest(api_database, tenant, traffic(MINUTE + timedelta(minutes=1), seed=3))
    after = client.get(
        "/feeds/datex2/measured-data", headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert_valid(after.content)
    assert set(find(after.content, "//roa:measurementTimeDefault/roa:timeValue/text()")) == {
        "2025-03-01T08:01:00Z"
    }


def test_a_tenant_without_data(client):
    situations = client.get("/feeds/datex2/situations")
    assert situations.status_code == 200
    assert_valid(situations.content)
    assert find(situations.content, "//sit:situation") == []
    for path in ("/feeds/datex2/measured-data", "/feeds/datex2/measurement-sites"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["type"].endswith("/ResourceNotFound")


def test_export_writes_the_three_files(client, api_database, tenant, tmp_path: Path):
    create(client, roadwork_entity(roadworks()[1]))
    ingest(api_database, tenant, traffic(MINUTE))
    with connect(api_database) as conn:
        written, skipped = write_datex2(conn, tmp_path / "out", tenant)
    assert skipped == {}
    assert sorted(path.name for path in written) == [
        "measured-data.xml", "measurement-sites.xml", "situations.xml",
    ]  # fmt: skip
    for path in written:
        assert_valid(path.read_bytes())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)


def test_the_export_command_reports_what_it_skipped(client, api_database, tenant, tmp_path):
    create(client, roadwork_entity(roadworks()[0]))
    app = typer.Typer()
    app.command()(export_datex2)
    result = CliRunner().invoke(
        app,
        [str(tmp_path), "--tenant", tenant],
        env={"STADSPULS_DATABASE_URL": api_database, "STADSPULS_METRICS_PORT": "0"},
    )
    assert result.exit_code == 0, result.output
    assert "situations.xml" in result.output
    assert "skipped measured-data: no measurement site" in result.output
    assert_valid((tmp_path / "situations.xml").read_bytes())
    assert not (tmp_path / "measured-data.xml").exists()


def test_the_traffic_state_as_geojson(client, api_database, tenant):
    ingest(api_database, tenant, traffic(MINUTE))
    response = client.get("/feeds/traffic-state")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    features = {f["id"]: f for f in response.json()["features"]}
    loop = features["urn:ngsi-ld:TrafficFlowObserved:miv-0-H000L10"]
    assert loop["geometry"]["type"] == "Point"
    assert loop["properties"]["congestionLevel"] in ("freeFlow", "heavy", "congested", "stationary")
    assert loop["properties"]["occupancy"] is not None
    # The bridge without a location cannot be drawn.
    assert not any(site.startswith("urn:ngsi-ld:TrafficFlowObserved:miv-9") for site in features)
    again = client.get("/feeds/traffic-state", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304

"""The LDES over HTTP, on readings written by the real ingest path (BatchBuilder and
BatchWriter) and on CityWork entities: stream, view, fragments and their relations, cache
headers and conditional GET, retention, content negotiation, and members in OSLO/SOSA terms;
the roadworks stream keeps every version of a CityWork (migration 0015's triggers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, PROV, RDF, XSD

import storage.migrate
from devices.registry import DeviceRegistry
from feeds import routes_ldes
from feeds.ldes import LDES, TREE, LdesSettings, window_start, window_token
from feeds.ldes_members import (
    ACTIVITY_STREAMS,
    FEATURE_TYPES,
    IMPL,
    SOSA,
    STREAM_READINGS,
    TRANSPORTATION,
    VEHICLE_TYPES,
    VKM,
    timestamp_literal,
)
from feeds.roadworks import CITYWORK_TYPE, Roadwork, roadwork_entity
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from ngsi.vocabulary import IngestVocabulary
from stadspuls.api import create_app
from stadspuls.simulator import message_stream, sample_devices, sample_groups
from storage.backend import detect_backend
from storage.database import connect, create_database_if_missing, drop_database
from storage.migrate import migrate
from storage.records import ObservationRow
from storage.writer import BatchWriter
from tests.support.api import api_settings
from tests.support.fixtures import scratch_database_url

pytestmark = pytest.mark.integration

SETTINGS = LdesSettings(page_size=7, retention_days=3, settle_seconds=300, open_max_age=5)
NOW = datetime.now(UTC)
#: Ten closed hours, two days ago, and readings in the current (open) hour.
HOURS = [window_start(NOW, SETTINGS) - timedelta(hours=48 - hour) for hour in range(10)]
OPEN_HOUR = window_start(NOW, SETTINGS)
#: The Smart Data Models context of CityWork, as a Link header of an NGSI-LD request.
TRANSPORTATION_CONTEXT = {
    "Link": "<https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/"
    'master/context.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; '
    'type="application/ld+json"'
}
FULL = {"type": "Property", "value": "full"}
POINT_GEOMETRY = {"type": "Point", "coordinates": [3.72, 51.05]}
ONGOING = {"type": "Property", "value": "ongoing"}


def ingest(database_url: str, tenant: str, moments: list[datetime]) -> list[ObservationRow]:
    """Simulator messages (one per profile) at each moment, through BatchBuilder and
    BatchWriter as ingest writes them; the observation rows written."""
    registry = DeviceRegistry(sample_devices(tenant), sample_groups(tenant))
    raw = [
        RawMessage(message.topic, message.payload, 0, 1, moment, 0.0)
        for moment in moments
        for message in message_stream(5, moment, devices_per_profile=1)
    ]
    batch = BatchBuilder(lambda: registry, 256 * 1024).build(raw).batch
    assert not batch.dead_letters, batch.dead_letters[:2]
    with connect(database_url) as conn:
        BatchWriter(detect_backend(conn)).write(conn, batch)
    return [ObservationRow(*row) for row in batch.observations]


def stream_rows(rows: list[ObservationRow], stream: str) -> list[ObservationRow]:
    """The rows a stream publishes: its types and attributes, numeric values."""
    vocabulary = IngestVocabulary()
    selected = {
        (vocabulary.entity_type(kind), vocabulary.attribute(kind, attribute))
        for kind, attributes in STREAM_READINGS[stream].items()
        for attribute in attributes
    }
    return [
        row
        for row in rows
        if (row.entity_type, row.attribute) in selected and row.value_num is not None
    ]


def ldes_app(database_url: str, settings: LdesSettings = SETTINGS) -> Any:
    """The API app with the LDES router (once stadspuls/api.py includes it, as it is)."""
    app = create_app(api_settings(database_url))
    if not any(getattr(route, "path", "").startswith("/ldes") for route in app.routes):
        app.include_router(routes_ldes.router)
    app.state.ldes_settings = settings
    return app


@pytest.fixture(scope="module")
def readings(api_database: str) -> tuple[str, list[ObservationRow]]:
    """A tenant of this module with ten closed hours and one open hour of readings."""
    tenant = f"ldes-{uuid.uuid4().hex[:8]}"
    rows = ingest(api_database, tenant, HOURS + [NOW - timedelta(seconds=1)])
    return tenant, rows


@pytest.fixture
def client(api_database: str) -> Iterator[TestClient]:
    """An in-process client of the API with the LDES."""
    with TestClient(ldes_app(api_database), base_url="http://ldes.test") as test_client:
        yield test_client


def graph_of(response: Any) -> Graph:
    """The RDF graph of an LDES answer, parsed by its Content-Type."""
    media = response.headers["content-type"].split(";")[0]
    formats = {"application/ld+json": "json-ld", "text/turtle": "turtle"}
    formats |= {"application/n-quads": "nquads", "application/n-triples": "nt"}
    graph = Graph()
    graph.parse(data=response.content, format=formats[media])
    return graph


def base(tenant: str) -> str:
    return f"http://ldes.test/ldes/tenants/{tenant}"


def members(graph: Graph, stream: URIRef) -> list[URIRef]:
    return [URIRef(str(member)) for member in graph.objects(stream, TREE.member)]


def relations(graph: Graph, node: URIRef) -> dict[str, dict[URIRef, Any]]:
    """Target → {relation type: value} of a node's relations."""
    found: dict[str, dict[URIRef, Any]] = {}
    for relation in graph.objects(node, TREE.relation):
        target = str(graph.value(relation, TREE.node))
        kind = graph.value(relation, RDF.type)
        assert graph.value(relation, TREE.value).datatype == XSD.dateTime
        found.setdefault(target, {})[kind] = graph.value(relation, TREE.value).toPython()
        found[target]["path"] = graph.value(relation, TREE.path)
    return found


def all_pages(
    client: TestClient, first: str, stream: URIRef, path: URIRef = PROV.generatedAtTime
) -> tuple[list[URIRef], Graph]:
    """Follow a window's pages from `first`; every member (in page order) and their union."""
    seen: list[URIRef] = []
    union = Graph()
    url: str | None = first
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        graph = graph_of(response)
        union += graph
        page_members = members(graph, stream)
        found = relations(graph, URIRef(url))
        url = None
        for target, bounds in found.items():
            start = bounds[TREE.GreaterThanOrEqualToRelation]
            url = target
            next_graph = graph_of(client.get(target))
            times = [next_graph.value(m, path) for m in members(next_graph, stream)]
            assert all(time.toPython() >= start for time in times)
        seen += page_members
    return seen, union


def test_the_stream_names_its_paths_view_and_retention(client, readings):
    tenant, _ = readings
    response = client.get(f"/ldes/tenants/{tenant}/traffic")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert "@context" in orjson.loads(response.content)
    graph = graph_of(response)
    stream = URIRef(f"{base(tenant)}/traffic")
    assert (stream, RDF.type, LDES.EventStream) in graph
    assert graph.value(stream, LDES.timestampPath) == PROV.generatedAtTime
    assert graph.value(stream, LDES.versionOfPath) == DCTERMS.isVersionOf
    view = graph.value(stream, TREE.view)
    assert view == URIRef(f"{base(tenant)}/traffic/view")
    policy = graph.value(graph.value(view, TREE.viewDescription), LDES.retentionPolicy)
    assert (policy, RDF.type, LDES.DurationAgoPolicy) in graph
    assert graph.value(policy, TREE.value) == Literal("P3D", datatype=XSD.duration)


def test_the_view_links_every_window_with_members(client, readings):
    tenant, _ = readings
    graph = graph_of(client.get(f"/ldes/tenants/{tenant}/traffic/view"))
    found = relations(graph, URIRef(f"{base(tenant)}/traffic/view"))
    expected = {f"{base(tenant)}/traffic/fragments/{window_token(h)}": h for h in HOURS}
    expected[f"{base(tenant)}/traffic/fragments/{window_token(OPEN_HOUR)}"] = OPEN_HOUR
    assert set(found) == set(expected)
    for target, start in expected.items():
        assert found[target][TREE.GreaterThanOrEqualToRelation] == start
        assert found[target][TREE.LessThanRelation] == start + timedelta(hours=1)
        assert found[target]["path"] == PROV.generatedAtTime


@pytest.mark.parametrize("stream", ["traffic", "air-quality"])
def test_pages_hold_every_reading_of_their_window_once(client, readings, stream):
    tenant, rows = readings
    hour = HOURS[3]
    expected = [
        r for r in stream_rows(rows, stream) if hour <= r.observed_at < hour + timedelta(hours=1)
    ]
    assert len(expected) > SETTINGS.page_size, "the window must need several pages"
    first = f"{base(tenant)}/{stream}/fragments/{window_token(hour)}"
    path = PROV.generatedAtTime if stream == "traffic" else SOSA.resultTime
    seen, union = all_pages(client, first, URIRef(f"{base(tenant)}/{stream}"), path)
    assert len(seen) == len(set(seen)) == len(expected)
    times = [union.value(member, path).toPython() for member in seen]
    assert times == sorted(times)
    assert {r.observed_at for r in expected} == set(times)


def test_traffic_members_are_oslo_counts_and_speeds(client, readings):
    tenant, _ = readings
    url = f"/ldes/tenants/{tenant}/traffic/fragments/{window_token(HOURS[0])}"
    _, graph = all_pages(client, f"http://ldes.test{url}", URIRef(f"{base(tenant)}/traffic"))
    count = URIRef(
        "urn:ngsi-ld:TrafficFlowObserved:telraam-348917-car/intensity/lft/"
        + HOURS[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert (count, RDF.type, IMPL.Verkeerstelling) in graph
    assert (count, RDF.type, VKM.Verkeersmeting) in graph
    feature = graph.value(count, VKM.geobserveerdKenmerk)
    assert graph.value(feature, VKM.voertuigType) == VEHICLE_TYPES.auto
    assert graph.value(feature, IMPL["Verkeerstellingkenmerk.kenmerktype"]) == FEATURE_TYPES.aantal
    assert graph.value(count, IMPL["Verkeerstelling.tellingresultaat"]).datatype == XSD.double
    assert graph.value(count, DCTERMS.isVersionOf) == URIRef(str(count).rsplit("/", 1)[0])
    speeds = list(graph.subjects(RDF.type, IMPL.Verkeerssnelheidsmeting))
    kinds = {
        graph.value(
            graph.value(s, VKM.geobserveerdKenmerk),
            IMPL["Verkeerssnelheidsmetingkenmerk.kenmerktype"],
        )
        for s in speeds
    }
    assert {FEATURE_TYPES.V85, FEATURE_TYPES.gemiddeldeSnelheid} <= kinds


def test_air_quality_members_are_sosa_observations(client, readings):
    tenant, _ = readings
    url = f"http://ldes.test/ldes/tenants/{tenant}/air-quality/fragments/{window_token(HOURS[0])}"
    _, graph = all_pages(client, url, URIRef(f"{base(tenant)}/air-quality"), SOSA.resultTime)
    pm25 = URIRef("https://smartdatamodels.org/dataModel.Environment/pm25")
    observation = next(graph.subjects(SOSA.observedProperty, pm25))
    assert (observation, RDF.type, SOSA.Observation) in graph
    assert graph.value(observation, SOSA.hasSimpleResult).datatype == XSD.double
    assert graph.value(observation, SOSA.madeBySensor) is not None
    assert graph.value(observation, SOSA.hasFeatureOfInterest) is not None
    unit = graph.value(
        graph.value(observation, SOSA.hasResult), URIRef("http://qudt.org/schema/qudt/unit")
    )
    assert unit == URIRef("http://qudt.org/vocab/unit/MicroGM-PER-M3")


def test_closed_pages_are_immutable_and_open_pages_short_lived(client, readings):
    tenant, _ = readings
    closed = client.get(f"/ldes/tenants/{tenant}/traffic/fragments/{window_token(HOURS[0])}")
    assert closed.headers["cache-control"] == "public, max-age=31536000, immutable"
    opened = client.get(f"/ldes/tenants/{tenant}/traffic/fragments/{window_token(OPEN_HOUR)}")
    assert opened.status_code == 200
    assert opened.headers["cache-control"] == "public, max-age=5"
    view = client.get(f"/ldes/tenants/{tenant}/traffic/view")
    assert view.headers["cache-control"] == "public, max-age=5"
    assert all(r.headers["vary"] == "Accept" for r in (closed, opened, view))


@pytest.mark.parametrize("path", ["view", f"fragments/{window_token(HOURS[1])}"])
def test_conditional_get_answers_304(client, readings, path):
    tenant, _ = readings
    url = f"/ldes/tenants/{tenant}/traffic/{path}"
    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == first.headers["cache-control"]
    turtle = client.get(url, headers={"Accept": "text/turtle"})
    assert turtle.headers["etag"] != first.headers["etag"], "one tag per representation"


@pytest.mark.parametrize(
    ("window", "status"),
    [
        (window_token(window_start(NOW - timedelta(days=4), SETTINGS)), 410),
        (window_token(OPEN_HOUR + timedelta(hours=2)), 404),
        (window_token(HOURS[0] + timedelta(minutes=30)), 404),
        ("yesterday", 404),
    ],
)
def test_windows_past_retention_are_gone_and_others_unknown(client, readings, window, status):
    tenant, _ = readings
    response = client.get(f"/ldes/tenants/{tenant}/traffic/fragments/{window}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == status


def test_a_page_beyond_the_last_is_not_found(client, readings):
    tenant, _ = readings
    response = client.get(
        f"/ldes/tenants/{tenant}/traffic/fragments/{window_token(HOURS[0])}", params={"page": 99}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("text/turtle", "text/turtle"),
        ("application/n-quads", "application/n-quads"),
        ("application/n-triples", "application/n-triples"),
        ("application/n-quads;q=0.5, text/turtle;q=0.9", "text/turtle"),
        ("*/*", "application/ld+json"),
    ],
)
def test_content_negotiation_gives_the_same_graph(client, readings, accept, media):
    tenant, _ = readings
    url = f"/ldes/tenants/{tenant}/air-quality/fragments/{window_token(HOURS[2])}"
    default = graph_of(client.get(url))
    response = client.get(url, headers={"Accept": accept})
    assert response.headers["content-type"].startswith(media)
    assert isomorphic(graph_of(response), default)


def test_unsupported_media_types_are_406_problem_details(client, readings):
    tenant, _ = readings
    response = client.get(f"/ldes/tenants/{tenant}/traffic/view", headers={"Accept": "text/html"})
    assert response.status_code == 406
    assert response.json()["type"] == "urn:stadspuls:errors:NotAcceptable"


def test_unknown_streams_are_404(client, readings):
    tenant, _ = readings
    assert client.get(f"/ldes/tenants/{tenant}/parking/view").status_code == 404


def save_roadwork(
    database_url: str, tenant: str, roadwork: Roadwork, modified_at: datetime
) -> None:
    """Store a CityWork entity as the API does (expanded names), modified at `modified_at`."""
    vocabulary = IngestVocabulary()
    entity = roadwork_entity(roadwork)
    document = {
        vocabulary.attribute(CITYWORK_TYPE, name): value
        for name, value in entity.items()
        if name not in ("id", "type")
    }
    with connect(database_url) as conn:
        conn.execute(
            "INSERT INTO entities (tenant, id, type, entity, created_at, modified_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant, id) DO UPDATE"
            " SET entity = EXCLUDED.entity, modified_at = EXCLUDED.modified_at",
            (
                tenant, roadwork.id, vocabulary.entity_type(CITYWORK_TYPE),
                orjson.dumps(document).decode(), modified_at, modified_at,
            ),
        )  # fmt: skip


def roadwork_pages(client: TestClient, tenant: str) -> list[tuple[str, str, list[URIRef]]]:
    """Every page of the roadworks stream, window by window (as the view links them) and
    page by page: its URL, ETag and members."""
    stream = URIRef(f"{base(tenant)}/roadworks")
    view = graph_of(client.get(f"/ldes/tenants/{tenant}/roadworks/view"))
    windows = relations(view, URIRef(f"{base(tenant)}/roadworks/view"))
    pages = []
    for first in sorted(
        windows, key=lambda target: windows[target][TREE.GreaterThanOrEqualToRelation]
    ):
        url: str | None = first
        while url is not None:
            response = client.get(url)
            assert response.status_code == 200, response.text
            graph = graph_of(response)
            pages.append((url, response.headers["etag"], members(graph, stream)))
            url = next(iter(relations(graph, URIRef(url))), None)
    return pages


def test_roadworks_are_versions_of_their_citywork(client, api_database):
    tenant = f"ldes-rw-{uuid.uuid4().hex[:8]}"
    square = [[[3.72, 51.05], [3.73, 51.05], [3.73, 51.06], [3.72, 51.05]]]
    roadwork = Roadwork(
        id="urn:ngsi-ld:CityWork:gipod-1",
        name="Rioleringswerken",
        geometry={"type": "MultiPolygon", "coordinates": [square]},
        start=HOURS[0],
        closure="full",
    )
    created = HOURS[1] + timedelta(minutes=10)
    save_roadwork(api_database, tenant, roadwork, created)
    stream = URIRef(f"{base(tenant)}/roadworks")
    described = graph_of(client.get(f"/ldes/tenants/{tenant}/roadworks"))
    assert described.value(stream, LDES.versionDeleteObject) == ACTIVITY_STREAMS.Delete
    view = graph_of(client.get(f"/ldes/tenants/{tenant}/roadworks/view"))
    assert view.value(URIRef(f"{base(tenant)}/roadworks/view"), LDES.retentionPolicy) is not None
    assert not list(view.subjects(RDF.type, LDES.LatestVersionSubset))
    targets = set(relations(view, URIRef(f"{base(tenant)}/roadworks/view")))
    first_window = f"{base(tenant)}/roadworks/fragments/{window_token(HOURS[1])}"
    assert targets == {first_window}
    first_page = client.get(first_window)
    page = graph_of(first_page)
    [member] = members(page, stream)
    assert member == URIRef(f"{roadwork.id}#{created.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    assert page.value(member, DCTERMS.isVersionOf) == URIRef(roadwork.id)
    assert page.value(member, PROV.generatedAtTime).toPython() == created
    assert page.value(member, URIRef("http://data.europa.eu/m8g/endTime")) is None
    wkt = str(next(page.objects(None, URIRef("http://www.opengis.net/ont/geosparql#asWKT"))))
    assert "MULTIPOLYGON" in wkt

    moved = HOURS[2] + timedelta(minutes=5)
    save_roadwork(api_database, tenant, replace(roadwork, closure="partial"), moved)
    view = graph_of(client.get(f"/ldes/tenants/{tenant}/roadworks/view"))
    targets = set(relations(view, URIRef(f"{base(tenant)}/roadworks/view")))
    second_window = f"{base(tenant)}/roadworks/fragments/{window_token(HOURS[2])}"
    assert targets == {first_window, second_window}, "the first version stays in the stream"
    again = client.get(first_window, headers={"If-None-Match": first_page.headers["etag"]})
    assert again.status_code == 304, "a closed page never changes"
    [later] = members(graph_of(client.get(second_window)), stream)
    assert later != member


def test_create_two_changes_and_a_delete_are_four_members_appended_in_order(
    api_database: str,
) -> None:
    tenant = f"ldes-rw-{uuid.uuid4().hex[:8]}"
    entity_id = f"urn:ngsi-ld:CityWork:api-{uuid.uuid4().hex[:6]}"
    square = [[[3.72, 51.05], [3.73, 51.05], [3.73, 51.06], [3.72, 51.05]]]
    body = roadwork_entity(
        Roadwork(entity_id, "Nutswerken", {"type": "Polygon", "coordinates": square}, NOW)
    )
    headers = {"NGSILD-Tenant": tenant, **TRANSPORTATION_CONTEXT}
    settings = replace(SETTINGS, page_size=1)
    steps = [
        ("POST", "/ngsi-ld/v1/entities", body, 201),
        ("PATCH", f"/ngsi-ld/v1/entities/{entity_id}/attrs", {"closure": FULL}, 204),
        ("PATCH", f"/ngsi-ld/v1/entities/{entity_id}/attrs", {"workState": ONGOING}, 204),
        ("DELETE", f"/ngsi-ld/v1/entities/{entity_id}", None, 204),
    ]
    stable: dict[str, str] = {}
    with TestClient(ldes_app(api_database, settings), base_url="http://ldes.test") as client:
        for method, path, payload, status in steps:
            response = client.request(method, path, json=payload, headers=headers)
            assert response.status_code == status, response.text
            pages = roadwork_pages(client, tenant)
            for url, etag, _ in pages[:-1]:
                # A page followed by another is complete: nothing added later changes it.
                assert stable.setdefault(url, etag) == etag, f"{url} changed"
        union = Graph()
        for url, _, _ in pages:
            union += graph_of(client.get(url))
    assert len(stable) == 3, "with one member a page, three pages are followed by another"
    found = [member for _, _, page_members in pages for member in page_members]
    assert len(found) == len(set(found)) == 4
    times = [union.value(member, PROV.generatedAtTime).toPython() for member in found]
    assert times == sorted(times) and len(set(times)) == 4
    assert found == [URIRef(f"{entity_id}#{timestamp_literal(time)}") for time in times]
    assert {union.value(member, DCTERMS.isVersionOf) for member in found} == {URIRef(entity_id)}
    closures = [union.value(member, TRANSPORTATION.closure) for member in found]
    assert closures == [Literal("partial"), Literal("full"), Literal("full"), None]
    states = [union.value(member, TRANSPORTATION.workState) for member in found]
    assert states == [Literal("planned"), Literal("planned"), Literal("ongoing"), None]
    assert [(member, RDF.type, ACTIVITY_STREAMS.Delete) in union for member in found] == [
        False, False, False, True,
    ]  # fmt: skip


def test_the_migration_back_fills_the_roadworks_stored_before_it(monkeypatch):
    url = scratch_database_url("stadspuls_ldes_backfill")
    create_database_if_missing(url)
    every = storage.migrate.available_migrations
    earlier = [m for m in every("postgres") if m.version < "0015"]
    roadwork = Roadwork("urn:ngsi-ld:CityWork:old", "Old", POINT_GEOMETRY, HOURS[0])
    try:
        with connect(url) as conn:
            backend = detect_backend(conn, "postgres")
            monkeypatch.setattr(storage.migrate, "available_migrations", lambda name: earlier)
            migrate(conn, backend)
            monkeypatch.undo()
        save_roadwork(url, "old", roadwork, HOURS[3])
        with connect(url) as conn:
            assert "0015_roadwork_versions.sql" in migrate(conn, backend)
            rows = conn.execute(
                "SELECT tenant, entity_id, version_at, deleted, document ->> 'type'"
                " FROM roadwork_versions"
            ).fetchall()
    finally:
        drop_database(url)
    citywork = IngestVocabulary().entity_type(CITYWORK_TYPE)
    assert rows == [("old", roadwork.id, HOURS[3], False, citywork)]


def test_a_transaction_records_its_last_state_and_only_citywork_changes_count(api_database):
    tenant = f"ldes-tx-{uuid.uuid4().hex[:8]}"
    citywork = IngestVocabulary().entity_type(CITYWORK_TYPE)
    insert = "INSERT INTO entities (tenant, id, type, entity) VALUES (%s, %s, %s, %s)"
    update = "UPDATE entities SET entity = %s, modified_at = now() WHERE tenant = %s AND id = %s"
    with connect(api_database) as conn:
        with conn.transaction():
            conn.execute(insert, (tenant, "urn:x:CityWork:1", citywork, '{"step": 1}'))
            conn.execute(update, ('{"step": 2}', tenant, "urn:x:CityWork:1"))
            conn.execute(insert, (tenant, "urn:x:Other:1", "urn:x:Other", "{}"))
        # The same document again (a rewrite that changes nothing) is no new version.
        conn.execute(update, ('{"step": 2}', tenant, "urn:x:CityWork:1"))
        conn.commit()
        rows = conn.execute(
            "SELECT entity_id, document -> 'entity', deleted FROM roadwork_versions"
            " WHERE tenant = %s ORDER BY version_at, position",
            (tenant,),
        ).fetchall()
    assert rows == [("urn:x:CityWork:1", {"step": 2}, False)]

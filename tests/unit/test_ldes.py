"""The pure LDES parts: windows, settings, content negotiation, the graphs and the members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, PROV, RDF, XSD

from feeds.ldes import (
    LDES,
    STREAMS,
    TREE,
    LdesSettings,
    StreamUrls,
    add_member,
    cache_control,
    event_stream_graph,
    fragment_graph,
    is_closed,
    is_expired,
    parse_window,
    view_graph,
    window_start,
    window_token,
)
from feeds.ldes_formats import JSON_LD, N_QUADS, N_TRIPLES, TURTLE, negotiate, serialize
from feeds.ldes_members import (
    ACTIVITY_STREAMS,
    FEATURE_TYPES,
    GEO,
    IMPL,
    M8G,
    MOBILITEIT,
    OM,
    SOSA,
    TIME,
    VEHICLE_TYPES,
    VKM,
    EntityContext,
    ObservationRecord,
    RoadworkVersion,
    air_quality_member,
    roadwork_member,
    timestamp_literal,
    traffic_member,
    wkt_literal,
)
from feeds.roadworks import Roadwork

HOURLY = LdesSettings()
AT = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
URLS = StreamUrls("http://x/ldes", "traffic")
POINT = {"type": "Point", "coordinates": [3.7, 51.0]}
SDM = "https://smartdatamodels.org/dataModel.Transportation/"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON_LD),
        ("", JSON_LD),
        ("*/*", JSON_LD),
        ("application/json", JSON_LD),
        ("text/turtle", TURTLE),
        ("text/*", TURTLE),
        ("application/n-quads,application/ld+json;q=0.9", N_QUADS),
        ("application/n-triples;q=1, application/*;q=0.1", N_TRIPLES),
        ("text/turtle;q=0.5, */*;q=0.9", JSON_LD),
        ("application/ld+json;q=0, text/turtle;q=0.2", TURTLE),
        ("text/html", None),
        ("application/xml, text/html;q=0.9", None),
        ("*/*;q=0", None),
        ("text/turtle;q=abc", None),
    ],
)
def test_negotiate(accept, chosen):
    assert negotiate(accept) == chosen


@pytest.mark.parametrize(
    ("token", "settings", "start"),
    [
        ("20240501T100000Z", HOURLY, AT),
        ("20240501T103000Z", HOURLY, None),
        ("20240501T000000Z", LdesSettings(fragment_seconds=86400), AT.replace(hour=0)),
        ("2024-05-01T10:00:00Z", HOURLY, None),
        ("soon", HOURLY, None),
    ],
)
def test_parse_window(token, settings, start):
    assert parse_window(token, settings) == start
    if start is not None:
        assert window_token(start) == token


@pytest.mark.parametrize(
    ("moment", "start"),
    [
        (AT, AT),
        (AT + timedelta(minutes=59, seconds=59), AT),
        (AT - timedelta(microseconds=1), AT - timedelta(hours=1)),
    ],
)
def test_window_start(moment, start):
    assert window_start(moment, HOURLY) == start


@pytest.mark.parametrize(
    ("now", "closed", "expired"),
    [
        (AT + timedelta(minutes=30), False, False),
        (AT + timedelta(hours=1, minutes=4), False, False),
        (AT + timedelta(hours=1, minutes=5), True, False),
        (AT + timedelta(days=30, hours=1) - timedelta(seconds=1), True, False),
        (AT + timedelta(days=30, hours=1), True, True),
    ],
)
def test_closed_and_expired_windows(now, closed, expired):
    assert is_closed(AT, now, HOURLY) is closed
    assert is_expired(AT, now, HOURLY) is expired


@pytest.mark.parametrize(
    ("closed", "header"),
    [(True, "public, max-age=31536000, immutable"), (False, "public, max-age=5")],
)
def test_cache_control(closed, header):
    assert cache_control(closed, HOURLY) == header


def test_settings_come_from_the_app_settings_where_present():
    settings = LdesSettings.from_settings(SimpleNamespace(ldes_page_size=9, ldes_retention_days=2))
    assert (settings.page_size, settings.retention_days) == (9, 2)
    assert settings.fragment_seconds == LdesSettings().fragment_seconds


def record(attribute: str, **context: object) -> ObservationRecord:
    return ObservationRecord(
        entity_id="urn:ngsi-ld:TrafficFlowObserved:telraam-1-car",
        entity_type="TrafficFlowObserved",
        attribute=attribute,
        attribute_iri=f"https://smartdatamodels.org/dataModel.Transportation/{attribute}",
        dataset_id="urn:ngsi-ld:Dataset:lft" if attribute == "intensity" else "",
        observed_at=AT,
        value=42.0,
        unit_code=None if attribute == "intensity" else "KMH",
        context=EntityContext(**context),  # type: ignore[arg-type]
    )


def test_a_count_is_a_verkeerstelling():
    graph = Graph()
    context = {
        "vehicle_type": "car",
        "device": "urn:ngsi-ld:Device:1",
        "period": timedelta(hours=1),
    }
    member = traffic_member(graph, record("intensity", **context))
    assert member == URIRef(
        "urn:ngsi-ld:TrafficFlowObserved:telraam-1-car/intensity/lft/2024-05-01T10:00:00Z"
    )
    assert {VKM.Verkeersmeting, IMPL.Verkeerstelling} <= set(graph.objects(member, RDF.type))
    feature = graph.value(member, VKM.geobserveerdKenmerk)
    assert graph.value(feature, VKM.voertuigType) == VEHICLE_TYPES.auto
    assert graph.value(feature, IMPL["Verkeerstellingkenmerk.kenmerktype"]) == FEATURE_TYPES.aantal
    assert graph.value(member, IMPL["Verkeerstelling.tellingresultaat"]) == Literal(
        42.0, datatype=XSD.double
    )
    assert graph.value(member, PROV.generatedAtTime) == timestamp_literal(AT)
    point = graph.value(member, VKM.geobserveerdObject)
    direction = graph.value(point, VKM["Verkeersmeetpunt.rijrichting"])
    assert str(direction).endswith("/inDirection")
    period = graph.value(member, OM["OM_Observation.phenomenonTime"])
    end = graph.value(graph.value(period, TIME.hasEnd), TIME.inXSDDateTimeStamp)
    assert end == timestamp_literal(AT + timedelta(hours=1))


@pytest.mark.parametrize(
    ("attribute", "code"),
    [("v85", "V85"), ("averageVehicleSpeed", "gemiddeldeSnelheid")],
)
def test_speeds_are_verkeerssnelheidsmetingen(attribute, code):
    graph = Graph()
    member = traffic_member(graph, record(attribute))  # no vehicle type: every vehicle
    assert (member, RDF.type, IMPL.Verkeerssnelheidsmeting) in graph
    feature = graph.value(member, VKM.geobserveerdKenmerk)
    kind = graph.value(feature, IMPL["Verkeerssnelheidsmetingkenmerk.kenmerktype"])
    assert kind == FEATURE_TYPES[code]
    assert graph.value(feature, VKM.voertuigType) == VEHICLE_TYPES.alle


def test_an_air_quality_reading_is_a_sosa_observation():
    graph = Graph()
    reading = ObservationRecord(
        "urn:ngsi-ld:AirQualityObserved:a", "AirQualityObserved", "pm25",
        "https://smartdatamodels.org/dataModel.Environment/pm25", "", AT, 10.5, "GQ",
        EntityContext(device="urn:ngsi-ld:Device:a", location=POINT),
    )  # fmt: skip
    member = air_quality_member(graph, reading)
    assert graph.value(member, SOSA.observedProperty) == URIRef(reading.attribute_iri)
    assert graph.value(member, SOSA.resultTime) == timestamp_literal(AT)
    assert graph.value(member, SOSA.madeBySensor) == URIRef("urn:ngsi-ld:Device:a")
    result = graph.value(member, SOSA.hasResult)
    assert graph.value(result, URIRef("http://qudt.org/schema/qudt/unit")) == URIRef(
        "http://qudt.org/vocab/unit/MicroGM-PER-M3"
    )


@pytest.mark.parametrize(
    ("geometry", "end", "wkt_start"),
    [
        ({"type": "LineString", "coordinates": [[3.7, 51.0], [3.8, 51.1]]}, AT, "LINESTRING"),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [[[[3.7, 51], [3.8, 51], [3.8, 51.1], [3.7, 51]]]],
            },
            None,
            "MULTIPOLYGON",
        ),
    ],
)
def test_a_roadwork_version(geometry, end, wkt_start):
    graph = Graph()
    modified = AT + timedelta(minutes=3)
    roadwork = Roadwork("urn:ngsi-ld:CityWork:1", "Works", geometry, AT, end, modified_at=modified)
    member = roadwork_member(graph, RoadworkVersion(roadwork.id, modified, roadwork))
    assert member == URIRef("urn:ngsi-ld:CityWork:1#2024-05-01T10:03:00Z")
    assert graph.value(member, DCTERMS.isVersionOf) == URIRef(roadwork.id)
    assert (member, RDF.type, MOBILITEIT.Mobiliteitshinder) in graph
    assert graph.value(member, PROV.generatedAtTime) == timestamp_literal(modified)
    period = graph.value(member, MOBILITEIT.periode)
    assert (graph.value(period, M8G.endTime) is None) is (end is None)
    wkt = next(graph.objects(None, GEO.asWKT))
    assert str(wkt).split("> ", 1)[1].startswith(wkt_start)


@pytest.mark.parametrize(
    ("deleted", "kinds"),
    [
        (True, {ACTIVITY_STREAMS.Delete}),
        (False, {MOBILITEIT.Mobiliteitshinder, URIRef(f"{SDM}CityWork")}),
    ],
)
def test_a_version_without_a_roadwork_is_a_deletion_or_a_bare_version(deleted, kinds):
    graph = Graph()
    moment = AT + timedelta(seconds=1, microseconds=5)
    member = roadwork_member(graph, RoadworkVersion("urn:x:CityWork:2", moment, None, deleted))
    assert member == URIRef("urn:x:CityWork:2#2024-05-01T10:00:01.000005Z")
    assert set(graph.objects(member, RDF.type)) == kinds
    assert graph.value(member, DCTERMS.isVersionOf) == URIRef("urn:x:CityWork:2")
    assert graph.value(member, PROV.generatedAtTime) == timestamp_literal(moment)
    assert graph.value(member, DCTERMS.title) is None
    assert graph.value(member, MOBILITEIT.zone) is None


@pytest.mark.parametrize(
    ("stream", "deletes"), [("traffic", False), ("air-quality", False), ("roadworks", True)]
)
def test_only_the_roadworks_stream_declares_deletions_and_no_stream_drops_versions(stream, deletes):
    urls = StreamUrls("http://x/ldes", stream)
    graph = event_stream_graph(STREAMS[stream], urls, HOURLY)
    delete_object = graph.value(urls.event_stream, LDES.versionDeleteObject)
    assert delete_object == (ACTIVITY_STREAMS.Delete if deletes else None)
    assert not list(graph.subjects(RDF.type, LDES.LatestVersionSubset))
    policies = set(graph.objects(urls.view, LDES.retentionPolicy))
    assert [graph.value(policy, RDF.type) for policy in policies] == [LDES.DurationAgoPolicy]


def test_an_unusable_geometry_has_no_wkt():
    assert wkt_literal({"type": "Polygon", "coordinates": "nonsense"}) is None


def test_the_view_relates_each_window_both_ways():
    windows = [AT, AT + timedelta(hours=2)]
    graph = view_graph(STREAMS["traffic"], URLS, HOURLY, windows)
    assert graph.value(URLS.view, LDES.retentionPolicy) is not None
    bounds: dict[URIRef, set[tuple[URIRef, Literal]]] = {}
    for relation in graph.objects(URLS.view, TREE.relation):
        assert graph.value(relation, TREE.path) == PROV.generatedAtTime
        target = graph.value(relation, TREE.node)
        bounds.setdefault(target, set()).add(
            (graph.value(relation, RDF.type), graph.value(relation, TREE.value))
        )
    assert bounds == {
        URLS.fragment(start): {
            (TREE.GreaterThanOrEqualToRelation, timestamp_literal(start)),
            (TREE.LessThanRelation, timestamp_literal(start + timedelta(hours=1))),
        }
        for start in windows
    }


@pytest.mark.parametrize("following", [None, AT + timedelta(minutes=20)])
def test_a_page_links_the_next_page_only_when_there_is_one(following):
    graph = fragment_graph(STREAMS["traffic"], URLS, HOURLY, AT, 1, following)
    add_member(graph, URLS, URIRef("urn:member"))
    assert list(graph.objects(URLS.event_stream, TREE.member)) == [URIRef("urn:member")]
    nodes = {graph.value(r, TREE.node) for r in graph.objects(URLS.fragment(AT), TREE.relation)}
    assert nodes == (set() if following is None else {URLS.fragment(AT, 2)})


@pytest.mark.parametrize(
    ("media", "rdflib_format"),
    [(JSON_LD, "json-ld"), (TURTLE, "turtle"), (N_QUADS, "nquads"), (N_TRIPLES, "nt")],
)
def test_every_format_carries_the_same_graph(media, rdflib_format):
    graph = fragment_graph(STREAMS["roadworks"], URLS, HOURLY, AT, 1, AT)
    roadwork = Roadwork(
        "urn:ngsi-ld:CityWork:1", "W", {"type": "Point", "coordinates": [3, 51]}, AT
    )
    add_member(graph, URLS, roadwork_member(graph, RoadworkVersion(roadwork.id, AT, roadwork)))
    add_member(graph, URLS, roadwork_member(graph, RoadworkVersion(roadwork.id, AT, None, True)))
    parsed = Graph().parse(data=serialize(graph, media), format=rdflib_format)
    # Parsing normalizes literals ("...Z" becomes "...+00:00"): compare parsed with parsed.
    reference = Graph().parse(data=serialize(graph, N_TRIPLES), format="nt")
    assert len(parsed) == len(graph)
    assert isomorphic(parsed, reference)

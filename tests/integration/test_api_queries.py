"""Queries over HTTP: q, geo-queries (PostGIS and Python paths), tenant isolation, fuzzing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stadspuls.api import create_app
from tests.support.api import api_settings

pytestmark = pytest.mark.integration

ENTITIES = "/ngsi-ld/v1/entities"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
# Ghent: the Belfry, Sint-Pieters station (about 2 km south-west), and a stretch of the Leie.
BELFRY = [3.7249, 51.0536]
STATION = [3.7106, 51.0357]
SENSORS = [
    {
        "id": "urn:x:belfry",
        "type": "Counter",
        "intensity": {"value": 120},
        "lane": {"value": "a"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": BELFRY}},
    },
    {
        "id": "urn:x:station",
        "type": "Counter",
        "intensity": {"value": 80},
        "name": {"value": "Sint-Pieters"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": STATION}},
    },
    {
        "id": "urn:x:river",
        "type": "Segment",
        "intensity": {"value": 300, "unitCode": "E50"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "LineString", "coordinates": [[3.715, 51.05], [3.725, 51.06]]},
        },
    },
]
CENTRE = {  # a polygon around the historic centre: holds the Belfry, not the station
    "type": "Polygon",
    "coordinates": [
        [[3.715, 51.048], [3.735, 51.048], [3.735, 51.062], [3.715, 51.062], [3.715, 51.048]]
    ],
}


def load(client: TestClient) -> None:
    for entity in SENSORS:
        assert client.post(ENTITIES, json=entity).status_code == 201


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entity["id"] for entity in response.json()]


@pytest.fixture(params=["postgis", "python"])
def geo_api(request, api_database: str, tenant: str) -> Iterator[TestClient]:
    """A client whose geo-queries run in PostGIS, or in Python (shapely) as without it."""
    with TestClient(create_app(api_settings(api_database))) as client:
        if request.param == "postgis" and not client.app.state.postgis:
            pytest.skip("PostGIS is not installed in this PostgreSQL (.ci/run installs it)")
        client.app.state.postgis = request.param == "postgis"
        client.headers["NGSILD-Tenant"] = tenant
        load(client)
        yield client


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("intensity>100", ["urn:x:belfry", "urn:x:river"]),
        ("intensity>=80;intensity<300", ["urn:x:belfry", "urn:x:station"]),
        ('intensity==80|lane=="a"', ["urn:x:belfry", "urn:x:station"]),
        ("intensity==100..300", ["urn:x:belfry", "urn:x:river"]),
        ("intensity==80,300", ["urn:x:river", "urn:x:station"]),
        ("name~=Sint.*", ["urn:x:station"]),
        ("name", ["urn:x:station"]),
        ('intensity.unitCode=="E50"', ["urn:x:river"]),
        ("(intensity<100|intensity>200);location", ["urn:x:river", "urn:x:station"]),
    ],
)
def test_q_over_http(api, q, expected):
    load(api)
    assert ids(api.get(ENTITIES, params={"q": q})) == sorted(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"georel": "near;maxDistance==2500", "geometry": "Point", "coordinates": str(BELFRY)},
            ["urn:x:belfry", "urn:x:river", "urn:x:station"],
        ),
        (
            {"georel": "near;maxDistance==1000", "geometry": "Point", "coordinates": str(BELFRY)},
            ["urn:x:belfry", "urn:x:river"],
        ),
        (
            {"georel": "near;minDistance==1000", "geometry": "Point", "coordinates": str(BELFRY)},
            ["urn:x:station"],
        ),
        (
            {"georel": "within", "geometry": "Polygon", "coordinates": str(CENTRE["coordinates"])},
            ["urn:x:belfry", "urn:x:river"],
        ),
        (
            {
                "georel": "disjoint",
                "geometry": "Polygon",
                "coordinates": str(CENTRE["coordinates"]),
            },
            ["urn:x:station"],
        ),
        (
            {
                "georel": "intersects",
                "geometry": "LineString",
                "coordinates": "[[3.714,51.055],[3.73,51.055]]",
            },
            ["urn:x:river"],
        ),
    ],
)
def test_geo_queries_agree_on_both_paths(geo_api, params, expected):
    assert ids(geo_api.get(ENTITIES, params=params)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"georel": "near", "geometry": "Point", "coordinates": "[3.7,51.0]"},
        {"georel": "within", "geometry": "Polygon", "coordinates": "[[[3.7,51.0],[3.8,51.0]]]"},
        {"georel": "near;maxDistance==10", "geometry": "Circle", "coordinates": "[3.7,51.0]"},
        {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": "[300,51.0]"},
        {"georel": "near;maxDistance==10", "geometry": "Point"},
    ],
)
def test_bad_geo_queries_are_bad_request_data(api, params):
    load(api)
    response = api.get(ENTITIES, params=params)
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "BadRequestData"


@pytest.mark.parametrize("q", ["intensity>", "(intensity==1", "intensity===1", "a;;b", "~=x"])
def test_invalid_q_is_invalid_request(api, q):
    load(api)
    response = api.get(ENTITIES, params={"q": q})
    assert response.status_code == 400, response.text
    assert response.json()["type"] == ERRORS + "InvalidRequest"


def test_tenants_never_see_each_other(api_database):
    first, second = (f"iso-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with TestClient(create_app(api_settings(api_database))) as client:
        client.headers["NGSILD-Tenant"] = first
        load(client)
        client.headers["NGSILD-Tenant"] = second
        other = {"id": "urn:x:other", "type": "Counter", "intensity": {"value": 5}}
        assert client.post(ENTITIES, json=other).status_code == 201
        near = {"georel": "near;maxDistance==5000", "geometry": "Point", "coordinates": str(BELFRY)}
        for params in ({"type": "Counter"}, {"q": "intensity>0"}, near, {"attrs": "intensity"}):
            assert ids(client.get(ENTITIES, params=params)) in ([], ["urn:x:other"]), params
        assert client.get(f"{ENTITIES}/urn:x:belfry").status_code == 404
        client.headers["NGSILD-Tenant"] = first
        assert "urn:x:other" not in ids(client.get(ENTITIES, params={"q": "intensity>0"}))
        default_tenant = client.get(
            ENTITIES, params={"type": "Counter"}, headers={"NGSILD-Tenant": ""}
        )
        assert not {"urn:x:other", "urn:x:belfry"} & set(ids(default_tenant))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    q=st.text(alphabet=st.sampled_from(list("ab.[]()\";|=!<>~,.0123456789 :-Tz\\'")), max_size=40)
    | st.text(max_size=30)
)
def test_random_q_never_causes_a_server_error(api, q):
    for entity in SENSORS:  # once per test: later examples find them there (409)
        assert api.post(ENTITIES, json=entity).status_code in (201, 409)
    response = api.get(ENTITIES, params={"q": q, "type": "Counter"})
    assert response.status_code in (200, 400, 403), (q, response.text)
    if response.status_code != 200:
        assert response.json()["type"].startswith(ERRORS)


def test_too_complex_a_query_is_too_complex_query(api):
    load(api)
    response = api.get(ENTITIES, params={"q": ";".join(["intensity>1"] * 100)})
    assert response.status_code == 403, response.text
    assert response.json()["type"] == ERRORS + "TooComplexQuery"

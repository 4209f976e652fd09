"""Drive a running `stadspuls api` with the third-party NGSI-LD client `ngsildclient`.

Run by the client's own virtual environment (Python >= 3.12), never by the project's: it
imports nothing from Stadspuls. Every step uses the client library as its users do and checks
what comes back; the library has no call for the attribute endpoints (5.6.2-5.6.5), so those
go through its configured session (`client.session`: its headers, tenant and credentials).
Prints one JSON summary on stdout: per step, whether its checks held, plus every HTTP
exchange the client made. The client's own chatter goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

import requests
from ngsildclient import Client, Entity, __version__
from ngsildclient.api.exceptions import (
    NgsiAlreadyExistsError,
    NgsiNotConnectedError,
    NgsiResourceNotFoundError,
)

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
DEVICE_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
)
ENVIRONMENT_VOCAB = "https://smartdatamodels.org/dataModel.Environment/"
AIR_QUALITY_IRI = ENVIRONMENT_VOCAB + "AirQualityObserved"
OBSERVED = "2026-11-29T08:00:00Z"
DEVICE_ID = "urn:ngsi-ld:Device:e2e-dl-1"
#: The stations the driver creates: id suffix, pm25, pm10, air quality level, (lat, lon).
STATIONS = [
    ("e2e-1", 12.5, 20.0, "good", (51.03, 3.71)),  # Gent, Sint-Pieters
    ("e2e-2", 31.0, 44.0, "moderate", (51.05, 3.72)),  # Gent, centre
    ("e2e-3", 7.0, 9.5, "good", (51.22, 4.40)),  # Antwerpen
]
STATION_IDS = [f"urn:ngsi-ld:AirQualityObserved:{suffix}" for suffix, *_ in STATIONS]
BATCH_IDS = [
    "urn:ngsi-ld:AirQualityObserved:e2e-batch-1",
    "urn:ngsi-ld:AirQualityObserved:e2e-batch-2",
]


class ApiKeyAuth(requests.auth.AuthBase):
    """The `X-API-Key` header on every request: the client's `custom_auth` hook."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-API-Key"] = self.key
        return request


class Run:
    """The steps of one drive and the HTTP exchanges the client made."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.exchanges: list[str] = []

    def record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A requests response hook: note `METHOD path?query -> status` (redirects too)."""
        url = response.request.url or ""
        path = url.split("://", 1)[-1].partition("/")[2]
        self.exchanges.append(f"{response.request.method} /{path} -> {response.status_code}")

    def step(self, name: str, action: Callable[[dict[str, Any]], None]) -> bool:
        """Run one step; its facts and whether every check held go into the summary."""
        facts: dict[str, Any] = {}
        try:
            action(facts)
            facts["ok"] = True
        except Exception as error:  # a failed step must not hide the steps after it
            facts.update(ok=False, error=f"{type(error).__name__}: {error}")
            facts["traceback"] = traceback.format_exc(limit=4)
        self.steps[name] = facts
        return bool(facts["ok"])


def check(condition: bool, message: str) -> None:
    """Fail the current step with `message` unless `condition` holds."""
    if not condition:
        raise AssertionError(message)


def http_status(error: BaseException) -> int | None:
    """The HTTP status behind a client exception, found along its cause/context chain."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if response is not None:
            return int(response.status_code)
        problem = getattr(seen, "problemdetails", None)
        if problem is not None:
            return int(problem.status)
        seen = seen.__cause__ or seen.__context__
    return None


def missing_endpoint(error: BaseException) -> dict[str, Any] | None:
    """How the server said it has no such endpoint (404, "no such resource"), else None."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        problem = getattr(seen, "problemdetails", None)
        text = response.text if response is not None else str(problem.detail if problem else "")
        if http_status(seen) == 404 and "no such resource" in text:
            return {"supported": False, "status": 404, "error": str(error)}
        seen = seen.__cause__ or seen.__context__
    return None


def refused(action: Callable[[], object]) -> dict[str, Any]:
    """Run `action`, which must fail; how it failed (exception class and HTTP status)."""
    try:
        action()
    except Exception as error:
        return {"exception": type(error).__name__, "status": http_status(error)}
    raise AssertionError("the call succeeded but should have been refused")


def station(
    suffix: str, pm25: float, pm10: float, level: str, where: tuple[float, float] = (51.0, 3.7)
) -> Entity:
    """An AirQualityObserved entity, Smart Data Models style, built with the client's model."""
    entity = Entity("AirQualityObserved", suffix, ctx=[ENVIRONMENT, CORE])
    entity.prop("pm25", pm25, unitcode="GQ", observedat=OBSERVED)
    entity.prop("pm10", pm10, unitcode="GQ", observedat=OBSERVED)
    entity.prop("temperature", 6.5, unitcode="CEL", observedat=OBSERVED)
    entity.prop("airQualityLevel", level)
    entity.tprop("dateObserved", OBSERVED)
    entity.rel("refDevice", DEVICE_ID)
    entity.loc(*where)  # the client takes (lat, lon) and writes GeoJSON [lon, lat]
    return entity


def device() -> Entity:
    """The Device the stations refer to."""
    entity = Entity("Device", "e2e-dl-1", ctx=[DEVICE_CONTEXT, CORE])
    entity.prop("controlledProperty", ["pm25", "pm10", "temperature"])
    entity.prop("serialNumber", "DL-PM-0001")
    return entity


def connect(args: argparse.Namespace, run: Run, key: str | None) -> Client:
    """A client of the server under test, connected (it checks at once), recording exchanges."""
    client = Client(
        hostname=args.host,
        port=args.port,
        tenant=args.tenant,
        # The client's fallback for a failed connection check creates the tenant through
        # /entityOperations/upsert with a `__NGSILD-Tenant__` entity: never wanted here.
        tenant_autocreate=False,
        custom_auth=ApiKeyAuth(key) if key else None,
        verbose=False,
    )
    client.session.hooks["response"].append(run.record)
    return client


def values(client: Client, entity_id: str) -> dict[str, Any]:
    """The entity as the client retrieves it with the Environment context, as a dict."""
    return dict(client.get(entity_id, ctx=ENVIRONMENT, asdict=True))


def ids(entities: list[Entity]) -> list[str]:
    """The ids of entities, in the order the server gave them."""
    return [entity.id for entity in entities]


def drive(client: Client, run: Run) -> None:
    """Every step of the scenario, in order; each records its own outcome."""
    stations = [station(*values_) for values_ in STATIONS]
    attrs_url = f"{client.url}/ngsi-ld/v1/entities/{STATION_IDS[0]}/attrs"

    def create(facts: dict[str, Any]) -> None:
        facts["results"] = [client.create(entity) for entity in [device(), *stations]]
        check(facts["results"] == [True] * 4, f"create returned {facts['results']}")

    def create_duplicate(facts: dict[str, Any]) -> None:
        facts.update(refused(lambda: client.create(stations[0])))
        check(facts["exception"] == NgsiAlreadyExistsError.__name__, f"got {facts}")
        check(facts["status"] == 409, f"status {facts['status']}")

    def retrieve(facts: dict[str, Any]) -> None:
        entity = client.get(STATION_IDS[0], ctx=ENVIRONMENT)
        body = entity.to_dict()
        facts["entity"] = body
        check(entity.type == "AirQualityObserved", f"type {entity.type}")
        check(body["pm25"]["value"] == 12.5 and body["pm25"]["unitCode"] == "GQ", "pm25")
        check(body["pm25"]["observedAt"].startswith("2026-11-29T08:00:00"), "observedAt")
        check(body["refDevice"] == {"type": "Relationship", "object": DEVICE_ID}, "refDevice")
        check(body["location"]["value"] == {"type": "Point", "coordinates": [3.71, 51.03]}, "loc")
        check(body["dateObserved"]["value"]["@value"].startswith("2026-11-29T08:00:00"), "date")
        check(body["@context"] in (ENVIRONMENT, [ENVIRONMENT], [ENVIRONMENT, CORE]), "@context")
        expanded = client.get(STATION_IDS[0], asdict=True)  # no Link: the core context only
        check(expanded["type"] == AIR_QUALITY_IRI, f"expanded type {expanded['type']}")
        check(ENVIRONMENT_VOCAB + "pm25" in expanded, "expanded pm25")

    def exists(facts: dict[str, Any]) -> None:
        facts["existing"] = client.exists(STATION_IDS[1])
        facts["missing"] = client.exists("urn:ngsi-ld:AirQualityObserved:no-such")
        check(facts["existing"] is True and facts["missing"] is False, f"{facts}")

    def query_by_type(facts: dict[str, Any]) -> None:
        facts["ids"] = ids(client.query(type="AirQualityObserved", ctx=ENVIRONMENT))
        check(facts["ids"] == STATION_IDS, f"ids {facts['ids']}")
        facts["head"] = ids(client.query_head(type="AirQualityObserved", ctx=ENVIRONMENT, n=2))
        check(facts["head"] == STATION_IDS[:2], f"head {facts['head']}")
        facts["count"] = client.entities.count(type="AirQualityObserved", ctx=ENVIRONMENT)
        # Client.count() takes no @context: the type is given as its full IRI.
        facts["count_by_iri"] = client.count(type=AIR_QUALITY_IRI)
        facts["count_core_context"] = client.count(type="AirQualityObserved")
        check(facts["count"] == facts["count_by_iri"] == 3, f"counts {facts}")
        check(facts["count_core_context"] == 0, "a short name without its @context is another type")

    def query_by_q(facts: dict[str, Any]) -> None:
        queries = {
            "pm25>10": STATION_IDS[:2],
            "pm25>10;pm10<30": STATION_IDS[:1],
            'airQualityLevel=="good"': [STATION_IDS[0], STATION_IDS[2]],
            f'refDevice=="{DEVICE_ID}"': STATION_IDS,
            "pm25>100": [],
        }
        facts["results"] = {
            q: ids(client.query(type="AirQualityObserved", q=q, ctx=ENVIRONMENT)) for q in queries
        }
        check(facts["results"] == queries, f"results {facts['results']}")
        facts["q_only"] = ids(client.query(q="pm25>30", ctx=ENVIRONMENT))
        check(facts["q_only"] == [STATION_IDS[1]], f"q without type: {facts['q_only']}")

    def query_by_geometry(facts: dict[str, Any]) -> None:
        # The client has no geo-query parameters: its `gq` goes out as `geoQ=`, which is not
        # a parameter of GET /entities (6.4.3.2); the standard ones go through its session.
        near = {"georel": "near;maxDistance==5000", "geometry": "Point"}
        near["coordinates"] = "[3.71,51.04]"
        response = client.session.get(
            client.entities.url,
            params={"type": "AirQualityObserved", **near},
            headers={"Link": link(ENVIRONMENT), "Accept": "application/json"},
        )
        facts["status"] = response.status_code
        facts["ids"] = [entity["id"] for entity in response.json()]
        check(facts["ids"] == STATION_IDS[:2], f"near: {facts['ids']}")
        gq = "&".join(f"{name}={value}" for name, value in near.items())
        facts["client_gq_ids"] = ids(
            client.query(type="AirQualityObserved", gq=gq, ctx=ENVIRONMENT)
        )

    def query_by_post(facts: dict[str, Any]) -> None:
        query = {"type": "Query", "entities": [{"type": "AirQualityObserved"}], "q": "pm25>10"}
        try:
            found = client.alt.query(query, ctx=ENVIRONMENT)
        except requests.HTTPError as error:  # the client's count_alt lets it through raw
            facts.update(missing_endpoint(error) or {})
            if facts.get("supported") is False:
                return
            raise
        facts.update(supported=True, ids=ids(found))
        check(facts["ids"] == STATION_IDS[:2], f"ids {facts['ids']}")

    def types(facts: dict[str, Any]) -> None:
        facts["types"] = client.types.list()
        check(AIR_QUALITY_IRI in facts["types"], f"types {facts['types']}")

    def update_attribute(facts: dict[str, Any]) -> None:
        # The client's update(): GET to see it exists, DELETE, then POST the whole entity.
        entity = client.get(STATION_IDS[0], ctx=ENVIRONMENT)
        entity["pm25.value"] = 41.0
        facts["result"] = client.update(entity)
        after = values(client, STATION_IDS[0])
        check(facts["result"] is True, f"update returned {facts['result']}")
        check(after["pm25"]["value"] == 41.0, f"pm25 {after['pm25']}")
        check(after["pm10"]["value"] == 20.0 and "refDevice" in after, "the rest was kept")

    def append_attribute(facts: dict[str, Any]) -> None:
        # The client's single-entity upsert(): POST, and on 409 DELETE then POST again.
        entity = client.get(STATION_IDS[0], ctx=ENVIRONMENT)
        entity.prop("no2", 22.0, unitcode="GQ", observedat=OBSERVED)
        facts["result"] = client.upsert(entity)
        after = values(client, STATION_IDS[0])
        check(after["no2"]["value"] == 22.0 and after["pm25"]["value"] == 41.0, f"{after}")

    def delete_attribute(facts: dict[str, Any]) -> None:
        entity = client.get(STATION_IDS[0], ctx=ENVIRONMENT)
        entity.rm("temperature")
        facts["result"] = client.update(entity)
        after = values(client, STATION_IDS[0])
        check("temperature" not in after and "no2" in after, f"attributes {sorted(after)}")

    def attribute_endpoints(facts: dict[str, Any]) -> None:
        session, ctx = client.session, [ENVIRONMENT, CORE]
        patch = session.patch(f"{attrs_url}/pm25", json={"value": 55.0, "@context": ctx})
        append = session.post(
            attrs_url,
            json={"o3": {"type": "Property", "value": 60.0, "unitCode": "GQ"}, "@context": ctx},
        )
        update = session.patch(
            attrs_url, json={"pm10": {"type": "Property", "value": 25.0}, "@context": ctx}
        )
        delete = session.delete(f"{attrs_url}/no2", headers={"Link": link(ENVIRONMENT)})
        missing = session.delete(f"{attrs_url}/no2", headers={"Link": link(ENVIRONMENT)})
        statuses = [r.status_code for r in (patch, append, update, delete, missing)]
        facts["statuses"] = dict(
            zip(["patch", "append", "update", "delete", "delete_again"], statuses, strict=True)
        )
        facts["delete_again_type"] = missing.json().get("type")
        check(statuses == [204, 204, 204, 204, 404], f"statuses {facts['statuses']}")
        after = values(client, STATION_IDS[0])
        check(after["pm25"]["value"] == 55.0 and after["pm10"]["value"] == 25.0, "patched")
        check(after["o3"]["value"] == 60.0 and "no2" not in after, f"attributes {sorted(after)}")

    def batch(facts: dict[str, Any]) -> None:
        fresh = [station(i.rsplit(":", 1)[1], 5.0, 6.0, "good") for i in BATCH_IDS]
        try:
            created = client.create(fresh)
        except NgsiResourceNotFoundError as error:
            facts.update(missing_endpoint(error) or {})
            if facts.get("supported") is False:
                return
            raise
        facts["supported"] = True
        facts["create"] = repr(created)
        check(created.ok and sorted(created.success) == BATCH_IDS, f"create {created!r}")
        for entity in fresh:
            entity["pm25.value"] = 8.0
        upserted = client.upsert(fresh, update=True)
        facts["upsert"] = repr(upserted)
        check(upserted.ok, f"upsert {upserted!r}")
        check(values(client, BATCH_IDS[0])["pm25"]["value"] == 8.0, "upserted value")
        appended = Entity("AirQualityObserved", "e2e-batch-1", ctx=[ENVIRONMENT, CORE])
        appended.prop("so2", 1.5)
        updated = client.update([appended])
        facts["update"] = repr(updated)
        after = values(client, BATCH_IDS[0])
        check(updated.ok and after["so2"]["value"] == 1.5 and "pm25" in after, f"update {after}")
        deleted = client.delete(fresh)  # Entities, not ids: on 204 the client reads `.id`
        facts["delete"] = repr(deleted)
        check(deleted.ok and not client.exists(BATCH_IDS[0]), f"delete {deleted!r}")

    def delete_entity(facts: dict[str, Any]) -> None:
        facts["result"] = client.delete(stations[1])
        check(facts["result"] is True, f"delete returned {facts['result']}")
        facts["get_after"] = refused(lambda: client.get(STATION_IDS[1], ctx=ENVIRONMENT))
        # Client.delete() hands a lone id (a str) to the batch delete, character by
        # character; Entities.delete() is the single-entity call that takes an id.
        facts["delete_again"] = refused(lambda: client.entities.delete(STATION_IDS[1]))
        for outcome in (facts["get_after"], facts["delete_again"]):
            check(outcome == {"exception": "NgsiResourceNotFoundError", "status": 404}, f"{facts}")
        check(not client.exists(STATION_IDS[1]), "still exists")

    steps: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("create", create),
        ("create_duplicate", create_duplicate),
        ("retrieve", retrieve),
        ("exists", exists),
        ("query_by_type", query_by_type),
        ("query_by_q", query_by_q),
        ("query_by_geometry", query_by_geometry),
        ("query_by_post", query_by_post),
        ("types", types),
        ("update_attribute", update_attribute),
        ("append_attribute", append_attribute),
        ("delete_attribute", delete_attribute),
        ("attribute_endpoints", attribute_endpoints),
        ("batch", batch),
        ("delete_entity", delete_entity),
    ]
    for name, action in steps:
        run.step(name, action)


def link(url: str) -> str:
    """A JSON-LD context Link header value."""
    return f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def drive_access(run: Run, args: argparse.Namespace) -> None:
    """With access control on: no credentials and a read-only key are refused writes."""

    def anonymous(facts: dict[str, Any]) -> None:
        # The connection check (a GET /entities) is refused, so the constructor raises.
        facts.update(refused(lambda: connect(args, run, None)))
        check(facts["exception"] == NgsiNotConnectedError.__name__, f"got {facts}")
        check(facts["status"] == 401, f"status {facts['status']}")

    def read_only(facts: dict[str, Any]) -> None:
        with contextlib.closing(connect(args, run, args.read_key)) as reader:
            facts["ids"] = ids(reader.query(type="AirQualityObserved", ctx=ENVIRONMENT))
            facts["create"] = refused(lambda: reader.create(station("e2e-ro", 1.0, 1.0, "good")))
        check(STATION_IDS[0] in facts["ids"], f"the reader sees {facts['ids']}")
        # The client raises TypeError here, not an NgsiError: it maps ProblemDetails types
        # to the ETSI error types only, and 403 `.../errors/Forbidden` is not one of them.
        check(facts["create"]["status"] == 403, f"create by a reader: {facts['create']}")

    run.step("anonymous_refused", anonymous)
    if args.read_key:
        run.step("read_key_cannot_write", read_only)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenant", default=None, help="NGSILD-Tenant; the default if omitted")
    parser.add_argument("--api-key", default=None, help="sent as X-API-Key (a write key)")
    parser.add_argument("--read-key", default=None, help="a read-only key, to check refusals")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the client logs every ProblemDetails at INFO
    run = Run()
    broker: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))  # batch results are printed
        clients: list[Client] = []

        def connected(facts: dict[str, Any]) -> None:
            client = stack.enter_context(contextlib.closing(connect(args, run, args.api_key)))
            clients.append(client)
            broker.update(vendor=client.broker.vendor.value, version=client.broker.version)

        if run.step("connect", connected):
            drive(clients[0], run)
        if args.api_key:
            drive_access(run, args)
    summary = {
        "client": {"name": "ngsildclient", "version": __version__, "python": sys.version},
        "broker": broker,
        "steps": run.steps,
        "failed": [name for name, facts in run.steps.items() if not facts["ok"]],
        "exchanges": run.exchanges,
    }
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

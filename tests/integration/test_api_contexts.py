"""/ngsi-ld/v1/jsonldContexts over HTTP (in-process), against the real PostgreSQL; Cached
contexts come from a real HTTP server on a local socket."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fastapi.testclient import TestClient

from ngsi.context import CORE_CONTEXT_URL, bundled
from ngsi.errors import error_uri

pytestmark = pytest.mark.integration

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CONTEXTS = "/ngsi-ld/v1/jsonldContexts"
CORE_ID = "ngsi-ld-core-context-v1.8"
REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
UNREACHABLE = "http://127.0.0.1:9/nothing.jsonld"


def problem(response: Any, status: int, error: str) -> dict[str, Any]:
    """Assert a ProblemDetails answer and return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == error_uri(error), body
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def link(url: str) -> dict[str, str]:
    """A Link header naming `url` as the @context."""
    return {"Link": f"<{url}>; {REL}"}


def vocabulary() -> tuple[str, dict[str, str]]:
    """A namespace of this test's own and a context mapping Lamp and brightness into it."""
    base = f"https://example.org/{uuid.uuid4().hex[:8]}/"
    return base, {"Lamp": base + "Lamp", "brightness": base + "brightness"}


def add(api: TestClient, local: Any) -> str:
    """POST a context; its Location."""
    response = api.post(CONTEXTS, json={"@context": local})
    assert response.status_code == 201, response.text
    location: str = response.headers["Location"]
    assert re.fullmatch(rf"{CONTEXTS}/[0-9a-f]{{32}}", location)
    return location


LAMP = {
    "id": "urn:ngsi-ld:Lamp:1",
    "type": "Lamp",
    "brightness": {"type": "Property", "value": 80},
}


def test_a_hosted_context_works_in_link_headers_and_compacts_back(api):
    base, local = vocabulary()
    location = add(api, local)
    url = "http://testserver" + location  # resolved from the database, never fetched
    created = api.post("/ngsi-ld/v1/entities", json=LAMP, headers=link(url))
    assert created.status_code == 201, created.text
    body = api.get(f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=link(url)).json()
    assert body["type"] == "Lamp"
    assert body["brightness"]["value"] == 80
    expanded = api.get(f"/ngsi-ld/v1/entities/{LAMP['id']}").json()
    assert expanded["type"] == base + "Lamp"
    assert base + "brightness" in expanded
    # Another host in the URL names the same hosted context: the path decides.
    elsewhere = api.get(
        f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=link("https://broker.invalid" + location)
    )
    assert elsewhere.json()["type"] == "Lamp"
    details = api.get(location, params={"details": "true"}).json()
    assert details["numberOfHits"] >= 1
    assert details["lastUsage"].endswith("Z")


def test_serve_a_hosted_context_and_its_details(api):
    _, local = vocabulary()
    location = add(api, local)
    served = api.get(location)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert served.json() == {"@context": local}
    details = api.get(location, params={"details": "true"}).json()
    assert details["URL"] == "http://testserver" + location
    assert details["localId"] == location.rsplit("/", 1)[1]
    assert details["kind"] == "Hosted"
    assert details["createdAt"].endswith("Z")
    assert details["numberOfHits"] == 0
    assert "lastUsage" not in details


def test_array_and_url_forms_are_hosted_too(api):
    _, local = vocabulary()
    array_location = add(api, [local, CORE_CONTEXT_URL])
    url_location = add(api, "http://testserver" + array_location)
    assert api.get(url_location).json() == {"@context": "http://testserver" + array_location}
    created = api.post(
        "/ngsi-ld/v1/entities", json=LAMP, headers=link("http://testserver" + url_location)
    )
    assert created.status_code == 201, created.text
    body = api.get(
        f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=link("http://testserver" + array_location)
    ).json()
    assert body["type"] == "Lamp"


def test_list_with_and_without_details_and_by_kind(api):
    _, local = vocabulary()
    location = add(api, local)
    url = "http://testserver" + location
    urls = api.get(CONTEXTS).json()
    assert CORE_CONTEXT_URL in urls and url in urls
    detailed = api.get(CONTEXTS, params={"details": "true"}).json()
    mine = [item for item in detailed if item["URL"] == url]
    assert mine and mine[0]["kind"] == "Hosted"
    assert set(mine[0]) <= {"URL", "localId", "kind", "createdAt", "lastUsage", "numberOfHits"}
    hosted = api.get(CONTEXTS, params={"kind": "Hosted"}).json()
    assert url in hosted and CORE_CONTEXT_URL not in hosted
    assert api.get(CONTEXTS, params={"kind": "ImplicitlyCreated"}).json() == [CORE_CONTEXT_URL]
    assert api.get(CONTEXTS, params={"kind": "Cached"}).json() == []
    problem(api.get(CONTEXTS, params={"kind": "Borrowed"}), 400, "BadRequestData")
    problem(api.get(CONTEXTS, params={"details": "maybe"}), 400, "BadRequestData")


def test_delete_a_hosted_context(api):
    _, local = vocabulary()
    location = add(api, local)
    url = "http://testserver" + location
    assert api.post("/ngsi-ld/v1/entities", json=LAMP, headers=link(url)).status_code == 201
    problem(api.delete(location, params={"reload": "true"}), 400, "BadRequestData")
    assert api.delete(location).status_code == 204
    problem(api.get(location), 404, "ResourceNotFound")
    problem(api.delete(location), 404, "ResourceNotFound")
    assert url not in api.get(CONTEXTS).json()
    # Gone from the database, the URL would have to be fetched, and cannot be.
    again = api.get(f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=link(url))
    problem(again, 503, "LdContextNotAvailable")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b"[1, 2]", "application/json", 400, "BadRequestData"),
        (b'{"terms": {"a": "https://example.org/a"}}', "application/json", 400, "BadRequestData"),
        (b'{"@context": 5}', "application/json", 400, "BadRequestData"),
        (b'{"@context": {"a": {"@id": 5}}}', "application/ld+json", 400, "BadRequestData"),
        (b'{"@context": {"@version": 2.0}}', "application/json", 400, "BadRequestData"),
        (b'{"@context": ', "application/json", 400, "InvalidRequest"),
        (b'{"@context": {}}', "text/plain", 415, "UnsupportedMediaType"),
        (
            f'{{"@context": ["{UNREACHABLE}"]}}'.encode(),
            "application/json",
            503,
            "LdContextNotAvailable",
        ),
    ],
)
def test_add_refuses_what_is_not_a_valid_context(api, content, content_type, status, error):
    response = api.post(CONTEXTS, content=content, headers={"Content-Type": content_type})
    problem(response, status, error)


def test_the_core_context_is_served_and_cannot_be_deleted(api):
    core = bundled(CORE_CONTEXT_URL)
    assert api.get(f"{CONTEXTS}/{CORE_ID}").json() == core
    assert api.get(f"{CONTEXTS}/{quote(CORE_CONTEXT_URL, safe='')}").json() == core
    served_here = quote(f"http://testserver{CONTEXTS}/{CORE_ID}", safe="")
    assert api.get(f"{CONTEXTS}/{served_here}").json() == core
    # The served URL works in a Link header without a fetch (testserver has no socket).
    by_link = api.post("/ngsi-ld/v1/entities", json=LAMP, headers=link(unquote(served_here)))
    assert by_link.status_code == 201, by_link.text
    details = api.get(f"{CONTEXTS}/{CORE_ID}", params={"details": "true"}).json()
    assert details["URL"] == CORE_CONTEXT_URL
    assert details["localId"] == CORE_ID
    assert details["kind"] == "ImplicitlyCreated"
    problem(api.delete(f"{CONTEXTS}/{CORE_ID}"), 400, "BadRequestData")
    problem(api.delete(f"{CONTEXTS}/{CORE_ID}", params={"reload": "false"}), 400, "BadRequestData")
    assert api.delete(f"{CONTEXTS}/{CORE_ID}", params={"reload": "true"}).status_code == 204
    assert api.get(f"{CONTEXTS}/{CORE_ID}").json() == core


def test_unknown_contexts_are_not_found(api):
    problem(api.get(f"{CONTEXTS}/{uuid.uuid4().hex}"), 404, "ResourceNotFound")
    problem(api.delete(f"{CONTEXTS}/{uuid.uuid4().hex}"), 404, "ResourceNotFound")
    problem(api.get(f"{CONTEXTS}/{quote(UNREACHABLE, safe='')}"), 404, "ResourceNotFound")
    # `/jsonldContexts/` is `/jsonldContexts` (trailing slashes are ignored): no DELETE there
    problem(api.delete(f"{CONTEXTS}/"), 405, "MethodNotAllowed")


def test_a_link_to_an_unreachable_context_is_ld_context_not_available(api):
    problem(api.get("/ngsi-ld/v1/types", headers=link(UNREACHABLE)), 503, "LdContextNotAvailable")


class ContextServer:
    """A real HTTP server on a local port serving one context document that tests change."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {}
        self.requests = 0
        self.failing = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                status = 500 if owner.failing else 200
                payload = json.dumps(owner.document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/ld+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/city.jsonld"


@pytest.fixture
def context_server() -> Iterator[ContextServer]:
    """A context server of this test, on a free port."""
    served = ContextServer()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_a_fetched_context_is_cached_reloaded_and_deleted(api, context_server):
    base, local = vocabulary()
    context_server.document = {"@context": local}
    url = context_server.url
    path = f"{CONTEXTS}/{quote(url, safe='')}"
    assert api.post("/ngsi-ld/v1/entities", json=LAMP, headers=link(url)).status_code == 201
    assert api.get(CONTEXTS, params={"kind": "Cached"}).json() == [url]
    details = api.get(path, params={"details": "true"}).json()
    assert details["kind"] == "Cached"
    assert details["localId"] == url
    assert details["createdAt"].endswith("Z")
    problem(api.get(path), 422, "OperationNotSupported")
    assert context_server.requests == 1

    renamed = {"Lamp": base + "StreetLamp", "brightness": base + "brightness"}
    context_server.document = {"@context": renamed}
    assert api.delete(path, params={"reload": "true"}).status_code == 204
    assert context_server.requests >= 2
    body = api.get(f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=link(url)).json()
    assert body["type"] == base + "Lamp"  # "Lamp" now names another IRI

    context_server.failing = True
    problem(api.delete(path, params={"reload": "true"}), 503, "LdContextNotAvailable")
    assert url in api.get(CONTEXTS, params={"kind": "Cached"}).json()  # the old copy stays
    still = api.get(f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=link(url)).json()
    assert still["type"] == base + "Lamp"

    assert api.delete(path).status_code == 204
    assert url not in api.get(CONTEXTS).json()
    problem(api.get(path, params={"details": "true"}), 404, "ResourceNotFound")

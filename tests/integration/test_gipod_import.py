"""The GIPOD importer against the real PostgreSQL: files, a local LDES over HTTP, the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from feeds.cli_gipod import import_gipod
from feeds.gipod import parse_members
from feeds.gipod_import import import_file, import_ldes
from feeds.roadwork_alerts import roadwork_alert
from feeds.roadworks import roadwork_entity
from storage.database import connect
from tests.support.gipod import member_text, page_text, reference_text

pytestmark = pytest.mark.integration

SDM = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"
REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
TRANSPORTATION = {"Link": f"<{SDM.format('Transportation')}>; {REL}"}
ALERT = {"Link": f"<{SDM.format('Alert')}>; {REL}"}
CITY_WORK = "urn:ngsi-ld:CityWork:gipod:10810464"
ALERT_ID = "urn:ngsi-ld:Alert:CityWork:gipod:10810464"


class _Pages(BaseHTTPRequestHandler):
    """Serves `server.pages` (path → N-Quads) and records every path asked for."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server: Any = self.server
        server.requested.append(self.path)
        body = server.pages.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/n-quads")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def ldes() -> Iterator[Any]:
    """A local LDES server on 127.0.0.1: set `.pages`, read `.requested`, `.url(path)`."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.pages, server.requested = {}, []
    server.url = lambda path: f"http://127.0.0.1:{server.server_port}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _serve(ldes: Any, path: str, members: list[str], onward: str | None = None, since: str = ""):
    """Publish a page at `path` with a relation to the page at `onward` (members from `since`)."""
    ldes.pages[path] = page_text(members, ldes.url(path), onward and ldes.url(onward), since)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def _entity(api: TestClient, entity_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = api.get(f"/ngsi-ld/v1/entities/{entity_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _stored(database: str, tenant: str, entity_id: str) -> tuple[dict[str, Any], Any]:
    with connect(database) as conn:
        row = conn.execute(
            "SELECT entity, modified_at FROM entities WHERE tenant = %s AND id = %s",
            (tenant, entity_id),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def _without_times(document: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in value.items() if k not in ("createdAt", "modifiedAt")}
        for name, value in document.items()
    }


def test_a_file_import_is_visible_through_the_api_and_idempotent(
    tmp_path: Path, api: TestClient, api_database: str, tenant: str
) -> None:
    path = _write(tmp_path, "member.nq", reference_text())
    with connect(api_database) as conn:
        report = import_file(conn, path, tenant)
    assert (report.members, report.created, report.problems) == (1, 1, [])
    work = _entity(api, CITY_WORK, TRANSPORTATION)
    assert work["type"] == "CityWork"
    assert work["workState"]["value"] == "planned"
    assert work["startDate"]["value"]["@value"] == "2022-05-27T07:00:00.000000Z"
    assert work["endDate"]["value"]["@value"] == "2022-05-27T17:00:00.000000Z"
    assert work["location"]["value"]["type"] == "Polygon"
    assert work["closure"]["value"] == "none"
    alert = _entity(api, ALERT_ID, ALERT)
    assert (alert["category"]["value"], alert["subCategory"]["value"]) == ("traffic", "roadWorks")
    assert alert["alertSource"] == {"type": "Relationship", "object": CITY_WORK}
    assert alert["alertState"]["value"] == "raised"
    assert alert["validTo"]["value"]["@value"] == "2022-05-27T17:00:00.000000Z"
    _, modified = _stored(api_database, tenant, CITY_WORK)
    with connect(api_database) as conn:
        again = import_file(conn, path, tenant)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    assert _stored(api_database, tenant, CITY_WORK)[1] == modified


def test_imported_entities_are_stored_as_the_api_stores_a_post(
    tmp_path: Path, api: TestClient, api_database: str, tenant: str
) -> None:
    with connect(api_database) as conn:
        import_file(conn, _write(tmp_path, "member.nq", reference_text()), tenant)
    [version], _ = parse_members(reference_text(), "nquads")
    posted_work = roadwork_entity(replace(version.roadwork, id="urn:ngsi-ld:CityWork:posted"))
    posted_alert = roadwork_alert(version.roadwork, version.created_at or version.generated_at)
    posted_alert["id"] = "urn:ngsi-ld:Alert:posted"
    for body, headers in ((posted_work, TRANSPORTATION), (posted_alert, ALERT)):
        response = api.post("/ngsi-ld/v1/entities", json=body, headers=headers)
        assert response.status_code == 201, response.text
    imported_work, _ = _stored(api_database, tenant, CITY_WORK)
    api_work, _ = _stored(api_database, tenant, "urn:ngsi-ld:CityWork:posted")
    assert _without_times(imported_work) == _without_times(api_work)
    imported_alert, _ = _stored(api_database, tenant, ALERT_ID)
    api_alert, _ = _stored(api_database, tenant, "urn:ngsi-ld:Alert:posted")
    assert _without_times(imported_alert) == _without_times(api_alert)


def test_versions_apply_in_order_and_an_older_one_is_ignored(
    tmp_path: Path, api: TestClient, api_database: str, tenant: str
) -> None:
    versions = {
        "created.nq": member_text(1, "2022-05-20T10:00:00Z"),
        "moved.nq": member_text(2, "2022-05-21T10:00:00Z", shift_metres=(800.0, 0.0)),
        "cancelled.nq": member_text(3, "2022-05-22T10:00:00Z", status="Geannuleerd"),
    }
    files = [_write(tmp_path, name, text) for name, text in versions.items()]
    seen = []
    with connect(api_database) as conn:
        for path in files:
            report = import_file(conn, path, tenant)
            assert report.problems == []
            work = _entity(api, CITY_WORK, TRANSPORTATION)
            longitude = work["location"]["value"]["coordinates"][0][0][0]
            seen.append((report.created, report.updated, work["workState"]["value"], longitude))
        late = import_file(conn, files[1], tenant)  # the moved version, delivered again late
    assert [item[:3] for item in seen] == [
        (1, 0, "planned"),
        (0, 1, "planned"),
        (0, 1, "cancelled"),
    ]
    # Version 2 moved the zone 800 m east; version 3 (built from the original) moved it back.
    assert seen[1][3] - seen[0][3] == pytest.approx(800 / 70_400, rel=0.1)
    assert seen[2][3] == pytest.approx(seen[0][3])
    assert (late.older, late.updated, late.created) == (1, 0, 0)
    work = _entity(api, CITY_WORK, TRANSPORTATION)
    assert work["workState"]["value"] == "cancelled"
    assert work["version"]["value"].endswith("/mobility-hindrances/10810464/3")
    alert = _entity(api, ALERT_ID, ALERT)
    assert alert["alertState"]["value"] == "resolved"
    # Cancelled on 22 May, before the works were to begin on 27 May: valid for no time.
    assert alert["validTo"] == alert["validFrom"]
    assert alert["dateIssued"]["value"]["@value"].startswith("2022-05-20T09:58:15")


def test_an_ldes_is_followed_page_by_page_and_read_incrementally(
    ldes: Any, api: TestClient, api_database: str, tenant: str
) -> None:
    first = member_text(1, "2022-05-20T10:00:00Z")
    other = member_text(1, "2022-05-20T11:00:00Z", number="42")
    moved = member_text(2, "2022-05-21T10:00:00Z", shift_metres=(800.0, 0.0))
    _serve(ldes, "/ldes/page-1", [first, other], "/ldes/page-2", "2022-05-21T00:00:00Z")
    _serve(ldes, "/ldes/page-2", [moved])
    view = ldes.url("/ldes/page-1")
    with connect(api_database) as conn, httpx.Client(timeout=5) as client:
        report = import_ldes(conn, view, tenant, client=client)
        assert ldes.requested == ["/ldes/page-1", "/ldes/page-2"]
        assert (report.pages, report.members, report.created, report.updated) == (2, 3, 2, 1)
        ldes.requested.clear()
        again = import_ldes(conn, view, tenant, client=client)
        # Only the page that held the newest member is read again, and nothing is written.
        assert ldes.requested == ["/ldes/page-2"]
        assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
        cancelled = member_text(3, "2022-05-22T10:00:00Z", status="Geannuleerd")
        _serve(ldes, "/ldes/page-2", [moved], "/ldes/page-3", "2022-05-22T00:00:00Z")
        _serve(ldes, "/ldes/page-3", [cancelled])
        ldes.requested.clear()
        more = import_ldes(conn, view, tenant, client=client)
    assert ldes.requested == ["/ldes/page-2", "/ldes/page-3"]
    assert (more.created, more.updated) == (0, 1)
    assert _entity(api, CITY_WORK, TRANSPORTATION)["workState"]["value"] == "cancelled"
    assert _entity(api, ALERT_ID, ALERT)["alertState"]["value"] == "resolved"
    other_work = _entity(api, "urn:ngsi-ld:CityWork:gipod:42", TRANSPORTATION)
    assert other_work["workState"]["value"] == "planned"
    listed = api.get("/ngsi-ld/v1/entities", params={"type": "CityWork"}, headers=TRANSPORTATION)
    assert sorted(item["id"] for item in listed.json()) == [
        "urn:ngsi-ld:CityWork:gipod:10810464",
        "urn:ngsi-ld:CityWork:gipod:42",
    ]


def test_attributes_added_through_the_api_survive_a_new_version(
    tmp_path: Path, api: TestClient, api_database: str, tenant: str
) -> None:
    with connect(api_database) as conn:
        import_file(conn, _write(tmp_path, "v1.nq", member_text(1, "2022-05-20T10:00:00Z")), tenant)
    note = {"contactPoint": {"type": "Property", "value": "wegen@example.be"}}
    response = api.post(
        f"/ngsi-ld/v1/entities/{CITY_WORK}/attrs", json=note, headers=TRANSPORTATION
    )
    assert response.status_code == 204, response.text
    with connect(api_database) as conn:
        open_ended = member_text(2, "2022-05-21T10:00:00Z", period=("2022-06-01T06:00:00Z", None))
        report = import_file(conn, _write(tmp_path, "v2.nq", open_ended), tenant)
    assert report.updated == 1
    work = _entity(api, CITY_WORK, TRANSPORTATION)
    assert work["contactPoint"]["value"] == "wegen@example.be"
    assert "endDate" not in work  # the new version has no end: the old endDate went
    assert _entity(api, ALERT_ID, ALERT).get("validTo") is None


def test_a_missing_resume_page_restarts_from_the_view(
    ldes: Any, api_database: str, tenant: str
) -> None:
    _serve(ldes, "/view", [member_text(1, "2022-05-20T10:00:00Z")], "/p2", "2022-05-21T00:00:00Z")
    _serve(ldes, "/p2", [member_text(2, "2022-05-21T10:00:00Z")])
    with connect(api_database) as conn, httpx.Client(timeout=5) as client:
        import_ldes(conn, ldes.url("/view"), tenant, client=client)
        del ldes.pages["/p2"]  # a retention policy removed it
        ldes.requested.clear()
        report = import_ldes(conn, ldes.url("/view"), tenant, client=client)
    assert ldes.requested == ["/p2", "/view"]
    assert (report.pages, report.created, report.updated) == (1, 0, 0)


def test_the_command_imports_and_reports(tmp_path: Path, api_database: str, tenant: str) -> None:
    # Registered as stadspuls/cli_feeds.py registers it under `stadspuls feeds`.
    feeds = typer.Typer()
    feeds.command("import-gipod")(import_gipod)
    feeds.command("noop")(lambda: None)  # a second command keeps the sub-command name
    path = _write(tmp_path, "member.nq", reference_text())
    arguments = ["import-gipod", str(path), "--tenant", tenant]
    environment = {"STADSPULS_DATABASE_URL": api_database}
    first = CliRunner().invoke(feeds, arguments, env=environment)
    assert first.exit_code == 0, first.output
    assert "1 created" in first.output
    second = CliRunner().invoke(feeds, arguments, env=environment)
    assert "0 created, 0 updated, 1 unchanged" in second.output
    missing = CliRunner().invoke(
        feeds, ["import-gipod", str(tmp_path / "nope.nq")], env=environment
    )
    assert missing.exit_code == 1
    assert "cannot read" in missing.output

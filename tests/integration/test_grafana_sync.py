"""`stadspuls grafana sync` against a stand-in for Grafana's HTTP API.

No Grafana server can run on these machines. The tests therefore run grafana-client against a
small threaded HTTP server on 127.0.0.1 that records every request and answers the way
Grafana's API does (data sources, folders, dashboards; 404 for what does not exist, 401 for a
wrong token). What they prove is what we send Grafana, not how Grafana takes it.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from stadspuls.cli_grafana import grafana_app
from stadspuls.grafana import (
    DATASOURCE_NAME,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FOLDER_UID,
    DatabaseFacts,
    connect_grafana,
    datasource_payload,
    shipped_dashboards,
    sync,
)
from tests.support.fixtures import MAINTENANCE_URL

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOKEN = "glsa_test_token"
DATABASE_URL = "postgresql://reader:s3cret@timescaledb:5432/stadspuls"
FACTS = DatabaseFacts(timescaledb=True, postgres_version=1600)


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    """The state behind the stand-in: what Grafana would have stored."""

    token: str
    requests: list[Recorded] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self) -> list[tuple[str, str]]:
        return [(request.method, request.path) for request in self.requests]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Grafana's answer to one API call (only the calls sync makes)."""
        parts = path.removeprefix("/api/").split("/")
        by_name = {source["name"]: source for source in self.datasources.values()}
        match method, parts:
            case "GET", ["datasources", "uid", uid] if uid in self.datasources:
                return 200, self.datasources[uid]
            case "GET", ["datasources", "name", name] if name in by_name:
                return 200, by_name[name]
            case "GET", ["datasources", *_]:
                return 404, {"message": "Data source not found"}
            case "POST", ["datasources"]:
                if body["name"] in by_name or body["uid"] in self.datasources:
                    return 409, {"message": "data source with the same name already exists"}
                stored = {**body, "id": len(self.datasources) + 1}
                self.datasources[body["uid"]] = stored
                return 200, {
                    "datasource": stored,
                    "id": stored["id"],
                    "message": "Datasource added",
                }
            case "PUT", ["datasources", "uid", uid] if uid in self.datasources:
                stored = {**body, "id": self.datasources[uid]["id"]}
                self.datasources[uid] = stored
                return 200, {
                    "datasource": stored,
                    "id": stored["id"],
                    "message": "Datasource updated",
                }
            case "GET", ["folders", uid] if uid in self.folders:
                return 200, self.folders[uid]
            case "GET", ["folders", _]:
                return 404, {"message": "folder not found", "status": "not-found"}
            case "POST", ["folders"]:
                if body.get("uid") in self.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                folder = {"id": len(self.folders) + 1, "version": 1, **body}
                self.folders[body["uid"]] = folder
                return 200, folder
            case "PUT", ["folders", uid] if uid in self.folders:
                self.folders[uid].update(title=body["title"])
                return 200, self.folders[uid]
            case "POST", ["dashboards", "db"]:
                return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        dashboard = body["dashboard"]
        current = self.dashboards.get(dashboard["uid"])
        if current is not None and not body.get("overwrite"):
            return 412, {"message": "The dashboard has been changed by someone else"}
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            return 400, {"message": "folder not found"}
        version = current["version"] + 1 if current else 1
        self.dashboards[dashboard["uid"]] = {"version": version, "body": body}
        uid = dashboard["uid"]
        return 200, {
            "id": 1,
            "uid": uid,
            "url": f"/d/{uid}",
            "status": "success",
            "version": version,
        }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = unquote(urlsplit(self.path).path)
        grafana = self.server.grafana
        with grafana.lock:
            grafana.requests.append(Recorded(self.command, path, dict(self.headers), body))
            if self.headers.get("Authorization") != f"Bearer {grafana.token}":
                status, answer = 401, {"message": "Unauthorized"}
            else:
                status, answer = grafana.answer(self.command, path, copy.deepcopy(body))
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    grafana: FakeGrafana


@pytest.fixture
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    """The stand-in on a free port of 127.0.0.1: (base URL, state)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.grafana = FakeGrafana(TOKEN)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.grafana
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def bodies(grafana: FakeGrafana, method: str, path: str) -> list[Any]:
    return [r.body for r in grafana.requests if (r.method, r.path) == (method, path)]


def datasource_references(node: Any) -> list[dict[str, Any]]:
    """Every {"type", "uid"} data source reference inside a dashboard."""
    if isinstance(node, dict):
        found = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return found + [ref for value in node.values() for ref in datasource_references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in datasource_references(item)]
    return []


def test_first_sync_creates_the_datasource_the_folder_and_every_dashboard(grafana):
    url, state = grafana
    report = sync(connect_grafana(url, TOKEN), DATABASE_URL, FACTS)

    assert (report.datasource_uid, report.datasource_created, report.folder_created) == (
        DATASOURCE_UID,
        True,
        True,
    )
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in state.requests)
    (created,) = bodies(state, "POST", "/api/datasources")
    assert created == datasource_payload(DATABASE_URL, FACTS)
    assert created["type"] == DATASOURCE_TYPE
    assert (created["url"], created["user"]) == ("timescaledb:5432", "reader")
    assert created["jsonData"]["database"] == "stadspuls"
    assert created["jsonData"]["timescaledb"] is True
    assert created["jsonData"]["postgresVersion"] == 1600
    assert created["secureJsonData"] == {"password": "s3cret"}
    assert bodies(state, "POST", "/api/folders") == [{"title": "Stadspuls", "uid": FOLDER_UID}]

    uploads = bodies(state, "POST", "/api/dashboards/db")
    expected = {board["uid"]: board for board in shipped_dashboards()}
    assert sorted(upload["dashboard"]["uid"] for upload in uploads) == sorted(expected)
    for upload in uploads:
        assert (upload["overwrite"], upload["folderUid"]) == (True, FOLDER_UID)
        assert "id" not in upload["dashboard"]
        assert upload["dashboard"] == expected[upload["dashboard"]["uid"]]
        references = datasource_references(upload["dashboard"])
        assert references and all(ref["uid"] == DATASOURCE_UID for ref in references)


def test_a_second_sync_updates_instead_of_duplicating(grafana):
    url, state = grafana
    api = connect_grafana(url, TOKEN)
    sync(api, DATABASE_URL, FACTS)
    first = len(state.requests)
    report = sync(api, DATABASE_URL, DatabaseFacts(timescaledb=False, postgres_version=1600))

    assert (report.datasource_created, report.folder_created) == (False, False)
    second = [(r.method, r.path) for r in state.requests[first:]]
    assert ("POST", "/api/datasources") not in second
    assert ("POST", "/api/folders") not in second
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in second
    assert list(state.datasources) == [DATASOURCE_UID]
    assert state.datasources[DATASOURCE_UID]["jsonData"]["timescaledb"] is False
    assert list(state.folders) == [FOLDER_UID]
    assert len(state.dashboards) == 4
    assert {saved["version"] for saved in state.dashboards.values()} == {2}


def test_a_datasource_of_that_name_keeps_its_uid_and_the_dashboards_follow_it(grafana):
    url, state = grafana
    state.datasources["made-by-hand"] = {"id": 7, "uid": "made-by-hand", "name": DATASOURCE_NAME}
    report = sync(connect_grafana(url, TOKEN), DATABASE_URL, FACTS)

    assert (report.datasource_uid, report.datasource_created) == ("made-by-hand", False)
    assert ("PUT", "/api/datasources/uid/made-by-hand") in state.calls()
    assert list(state.datasources) == ["made-by-hand"]
    for saved in state.dashboards.values():
        references = datasource_references(saved["body"]["dashboard"])
        assert {ref["uid"] for ref in references} == {"made-by-hand"}


def test_a_renamed_folder_gets_its_title_back(grafana):
    url, state = grafana
    state.folders[FOLDER_UID] = {"id": 3, "uid": FOLDER_UID, "title": "Old", "version": 4}
    sync(connect_grafana(url, TOKEN), DATABASE_URL, FACTS, folder_title="Stad")

    (update,) = bodies(state, "PUT", f"/api/folders/{FOLDER_UID}")
    assert (update["title"], update["overwrite"]) == ("Stad", True)
    assert state.folders[FOLDER_UID]["title"] == "Stad"


@pytest.mark.parametrize(
    ("database_url", "address", "user", "database", "ssl_mode", "secure"),
    [
        (DATABASE_URL, "timescaledb:5432", "reader", "stadspuls", "disable",
         {"password": "s3cret"}),
        ("postgresql://db.example:6432/city?sslmode=require", "db.example:6432", "postgres",
         "city", "require", None),
        ("postgresql://u@h/d?sslmode=prefer", "h:5432", "u", "d", "disable", None),
        ("host=h port=5433 dbname=d user=u password=p sslmode=verify-full", "h:5433", "u", "d",
         "verify-full", {"password": "p"}),
    ],
)  # fmt: skip
def test_datasource_payload_from_the_database_url(
    database_url, address, user, database, ssl_mode, secure
):
    payload = datasource_payload(database_url, DatabaseFacts())
    assert (payload["url"], payload["user"], payload["jsonData"]["database"]) == (
        address,
        user,
        database,
    )
    assert payload["jsonData"]["sslmode"] == ssl_mode
    assert payload.get("secureJsonData") == secure
    assert "postgresVersion" not in payload["jsonData"]


def test_the_cli_syncs_with_the_database_of_the_settings(grafana, monkeypatch):
    url, state = grafana
    # The real PostgreSQL of this machine (trust auth ignores the password): sync asks it
    # for its version and whether TimescaleDB is installed.
    base = MAINTENANCE_URL.rsplit("/", 1)[0].replace("postgres@", "postgres:pw@")
    monkeypatch.setenv("STADSPULS_DATABASE_URL", f"{base}/postgres")
    result = CliRunner().invoke(grafana_app, ["sync", "--url", url, "--token", TOKEN])

    assert result.exit_code == 0, result.output
    assert "data source stadspuls-postgres: created" in result.output
    (created,) = bodies(state, "POST", "/api/datasources")
    assert created["jsonData"]["database"] == "postgres"
    assert created["jsonData"]["timescaledb"] is False
    assert created["jsonData"]["postgresVersion"] >= 1500
    assert created["secureJsonData"] == {"password": "pw"}
    assert len(state.dashboards) == 4


def test_the_cli_reports_a_refused_token_and_fails(grafana, monkeypatch):
    url, state = grafana
    monkeypatch.setenv("STADSPULS_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    result = CliRunner().invoke(
        grafana_app, ["sync", "--url", url, "--token", "wrong", "--no-timescaledb"]
    )

    assert result.exit_code == 1
    assert "Unauthorized" in result.output
    assert state.requests and not state.datasources


def test_provisioning_files_match_what_sync_creates():
    datasources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/stadspuls.yaml").read_text()
    )
    (source,) = datasources["datasources"]
    assert (source["uid"], source["name"], source["type"]) == (
        DATASOURCE_UID,
        DATASOURCE_NAME,
        DATASOURCE_TYPE,
    )
    providers = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/stadspuls.yaml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["folderUid"] == FOLDER_UID
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    environment = compose["services"]["grafana"]["environment"]
    assert {"STADSPULS_GRAFANA_DATABASE_USER", "STADSPULS_GRAFANA_DATABASE_PASSWORD"} <= set(
        environment
    )

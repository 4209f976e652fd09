"""Grafana: the PostgreSQL data source and the Stadspuls dashboards, synced with grafana-client.

The dashboards live as JSON in deploy/grafana/dashboards (the same files docker-compose
provisions); `sync` uploads them through Grafana's HTTP API instead, for a Grafana that is
not provisioned from files. Every step is create-or-update, so running it twice changes
nothing the second time but the dashboard versions:
https://grafana.com/docs/grafana/latest/developers/http_api/data_source/
https://grafana.com/docs/grafana/latest/developers/http_api/folder/
https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError
from psycopg.conninfo import conninfo_to_dict

#: The shipped dashboards (deploy/grafana/dashboards in the repository).
DASHBOARD_DIRECTORY = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
#: The data source every panel names by uid; the provisioning file uses the same uid.
DATASOURCE_UID = "stadspuls-postgres"
DATASOURCE_NAME = "Stadspuls PostgreSQL"
#: The PostgreSQL plugin id since Grafana 10.3 (earlier versions call it "postgres").
DATASOURCE_TYPE = "grafana-postgresql-datasource"
FOLDER_UID = "stadspuls"
FOLDER_TITLE = "Stadspuls"
AIR_QUALITY_DASHBOARD_UID = "stadspuls-air-quality"
#: Grafana's PostgreSQL data source offers these sslmode values only.
GRAFANA_SSL_MODES = ("disable", "require", "verify-ca", "verify-full")


@dataclass(frozen=True, slots=True)
class AirQualityLimit:
    """An EU limit value drawn as a threshold on one panel of the air-quality dashboard."""

    #: Short NGSI-LD attribute name (AirQualityObserved) the panel plots.
    attribute: str
    label: str
    #: µg/m³ (UN/CEFACT GQ), over the averaging period the panel groups by.
    limit: float
    averaging: str
    #: Panel id in the air-quality dashboard.
    panel_id: int


#: EU limit values: PM10 50 µg/m³ as a 24-hour mean and NO2 200 µg/m³ as a 1-hour mean
#: (Directive 2008/50/EC, Annex XI); PM2.5 25 µg/m³ as a 24-hour mean (Directive (EU)
#: 2024/2881, Annex I, from 2030). The one place these numbers live:
#: `apply_air_quality_limits` writes them into the dashboard; the alert rules may supply
#: them later.
AIR_QUALITY_LIMITS: tuple[AirQualityLimit, ...] = (
    AirQualityLimit("pm25", "PM2.5", 25.0, "daily mean", 1),
    AirQualityLimit("pm10", "PM10", 50.0, "daily mean", 2),
    AirQualityLimit("no2", "NO2", 200.0, "hourly mean", 3),
)


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """What the data source needs to know about the database beyond its address."""

    timescaledb: bool = False
    #: Grafana's postgresVersion: major * 100 (1500 for PostgreSQL 15); None when unknown.
    postgres_version: int | None = None


@dataclass(slots=True)
class SyncReport:
    """What one sync did, for the CLI to print."""

    datasource_uid: str = ""
    datasource_created: bool = False
    folder_created: bool = False
    dashboards: list[str] = field(default_factory=list)


def probe_database(database_url: str, timeout: int = 5) -> DatabaseFacts:
    """Ask the database whether TimescaleDB is installed and which PostgreSQL version it runs."""
    with psycopg.connect(database_url, connect_timeout=timeout, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int,"
            " EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone()
    assert row is not None
    return DatabaseFacts(timescaledb=bool(row[1]), postgres_version=int(row[0]) // 10000 * 100)


def datasource_payload(
    database_url: str,
    facts: DatabaseFacts,
    *,
    uid: str = DATASOURCE_UID,
    name: str = DATASOURCE_NAME,
) -> dict[str, Any]:
    """The body of POST/PUT /api/datasources for the database `database_url` names."""
    parts = conninfo_to_dict(database_url)
    host = str(parts.get("host") or "127.0.0.1")
    port = str(parts.get("port") or "5432")
    database = str(parts.get("dbname") or "stadspuls")
    # libpq's default "prefer" has no Grafana equivalent; ask for TLS in the URL to get it.
    ssl_mode = str(parts.get("sslmode") or "disable")
    json_data: dict[str, Any] = {
        "database": database,
        "sslmode": ssl_mode if ssl_mode in GRAFANA_SSL_MODES else "disable",
        "timescaledb": facts.timescaledb,
        "maxOpenConns": 10,
        "maxIdleConns": 2,
        "connMaxLifetime": 14400,
    }
    if facts.postgres_version is not None:
        json_data["postgresVersion"] = facts.postgres_version
    payload: dict[str, Any] = {
        "uid": uid,
        "name": name,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": f"{host}:{port}",
        "user": str(parts.get("user") or "postgres"),
        # Grafana before 9 reads the top-level field, later versions jsonData.database.
        "database": database,
        "isDefault": False,
        "jsonData": json_data,
    }
    if parts.get("password"):
        payload["secureJsonData"] = {"password": str(parts["password"])}
    return payload


def load_dashboards(directory: Path = DASHBOARD_DIRECTORY) -> list[dict[str, Any]]:
    """Every dashboard JSON file of `directory`, in file name order."""
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def apply_air_quality_limits(
    dashboard: dict[str, Any], limits: tuple[AirQualityLimit, ...] = AIR_QUALITY_LIMITS
) -> dict[str, Any]:
    """A copy of `dashboard` with each limit drawn as a threshold line on its panel."""
    result = copy.deepcopy(dashboard)
    if result.get("uid") != AIR_QUALITY_DASHBOARD_UID:
        return result
    panels = {panel["id"]: panel for panel in result.get("panels", [])}
    for limit in limits:
        panel = panels[limit.panel_id]
        defaults = panel.setdefault("fieldConfig", {}).setdefault("defaults", {})
        defaults["unit"] = "conμgm3"
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [
                {"color": "green", "value": None},
                {"color": "red", "value": limit.limit},
            ],
        }
        defaults.setdefault("custom", {})["thresholdsStyle"] = {"mode": "line+area"}
        panel["description"] = (
            f"{limit.label} {limit.averaging} per station; the red line is the EU limit of "
            f"{limit.limit:g} µg/m³ ({limit.averaging})."
        )
    return result


def shipped_dashboards(directory: Path = DASHBOARD_DIRECTORY) -> list[dict[str, Any]]:
    """The dashboards as `sync` uploads them: the files with the air-quality limits applied."""
    return [apply_air_quality_limits(dashboard) for dashboard in load_dashboards(directory)]


def export_dashboards(directory: Path = DASHBOARD_DIRECTORY) -> list[Path]:
    """Rewrite the dashboard files with the current limits (keeps provisioning in step)."""
    written = []
    for path in sorted(directory.glob("*.json")):
        dashboard = apply_air_quality_limits(json.loads(path.read_text()))
        path.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def connect_grafana(url: str, token: str, timeout: float = 10.0) -> GrafanaApi:
    """A grafana-client API object for `url`, authenticating with a service-account token."""
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def _not_found(error: GrafanaClientError) -> bool:
    return error.status_code == 404


def _lookup(getter: Any, key: str) -> dict[str, Any] | None:
    """The object `getter(key)` returns, or None when Grafana answers 404."""
    try:
        found = getter(key)
    except GrafanaClientError as error:
        if _not_found(error):
            return None
        raise
    return found if isinstance(found, dict) else None


def sync_datasource(api: GrafanaApi, payload: dict[str, Any]) -> tuple[str, bool]:
    """Create the data source or update it in place (by uid, else by name); (uid, created)."""
    existing = _lookup(api.datasource.get_datasource_by_uid, payload["uid"])
    if existing is None:
        existing = _lookup(api.datasource.get_datasource_by_name, payload["name"])
    if existing is None:
        api.datasource.create_datasource(payload)
        return payload["uid"], True
    # A data source of that name made by hand keeps its uid; the dashboards follow it.
    uid = str(existing.get("uid") or payload["uid"])
    api.datasource.update_datasource_by_uid(uid, {**payload, "uid": uid})
    return uid, False


def sync_folder(api: GrafanaApi, title: str, uid: str = FOLDER_UID) -> bool:
    """Create the folder unless it exists (renaming it to `title` if needed); True if created."""
    existing = _lookup(api.folder.get_folder, uid)
    if existing is None:
        api.folder.create_folder(title, uid=uid)
        return True
    if existing.get("title") != title:
        api.folder.update_folder(uid, title=title, overwrite=True)
    return False


def with_datasource_uid(node: Any, uid: str) -> Any:
    """A copy of a dashboard (or part) whose data source references point at `uid`."""
    if isinstance(node, dict):
        result = {key: with_datasource_uid(value, uid) for key, value in node.items()}
        reference = result.get("datasource")
        if isinstance(reference, dict) and reference.get("uid") == DATASOURCE_UID:
            result["datasource"] = {**reference, "uid": uid}
        return result
    if isinstance(node, list):
        return [with_datasource_uid(item, uid) for item in node]
    return node


def sync(
    api: GrafanaApi,
    database_url: str,
    facts: DatabaseFacts,
    *,
    folder_title: str = FOLDER_TITLE,
    dashboards: list[dict[str, Any]] | None = None,
) -> SyncReport:
    """Create or update the data source, the folder and every dashboard (overwriting them)."""
    report = SyncReport()
    report.datasource_uid, report.datasource_created = sync_datasource(
        api, datasource_payload(database_url, facts)
    )
    report.folder_created = sync_folder(api, folder_title)
    for dashboard in shipped_dashboards() if dashboards is None else dashboards:
        body = with_datasource_uid(dashboard, report.datasource_uid)
        # Without "id" Grafana matches the dashboard by uid; overwrite replaces older versions.
        body.pop("id", None)
        api.dashboard.update_dashboard(
            {
                "dashboard": body,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "stadspuls grafana sync",
            }
        )
        report.dashboards.append(str(body["uid"]))
    return report

"""`stadspuls devices` (the sub-app) against a real, migrated scratch database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from devices.registry import DeviceRegistry
from ingest.message import RawMessage
from ingest.pipeline import BatchBuilder
from stadspuls import cli_devices
from storage.backend import detect_backend
from storage.database import connect
from storage.writer import BatchWriter, load_registry

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(api_database: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose commands use the module's database, with wide tables."""
    monkeypatch.setenv("STADSPULS_DATABASE_URL", api_database)
    monkeypatch.setattr(cli_devices, "console", Console(width=250))
    monkeypatch.setattr(cli_devices, "errors", Console(width=250, stderr=True))
    return CliRunner()


@pytest.fixture
def apikey() -> str:
    """An apikey of this test only."""
    return f"cli{uuid.uuid4().hex[:12]}"


def device_file(tmp_path: Path, tenant: str, apikey: str, autoprovision: bool = True) -> Path:
    """A YAML file with one IoT Agent group of `tenant` and two devices of it."""
    path = tmp_path / "devices.yaml"
    path.write_text(
        f"""\
groups:
  - name: {apikey}
    profile: iotagent-json
    key_prefix: "{apikey}/"
    apikey: {apikey}
    tenant: {tenant}
    entity_type: AirQualityObserved
    autoprovision: {str(autoprovision).lower()}
    attributes:
      - {{source: n, name: no2, unit_code: GQ, type: Number}}
devices:
  - {{device_id: {apikey}-1, model: {apikey}, location: [3.7174, 51.0543]}}
  - {{device_id: {apikey}-2, model: {apikey}}}
""",
        encoding="utf-8",
    )
    return path


def test_import_list_and_show(runner: CliRunner, tmp_path: Path, tenant: str, apikey: str):
    imported = runner.invoke(
        cli_devices.devices_app, ["import", str(device_file(tmp_path, tenant, apikey))]
    )
    assert imported.exit_code == 0, imported.output
    assert "registered 1 groups and 2 devices" in imported.stdout
    listed = runner.invoke(cli_devices.devices_app, ["list", "--tenant", tenant])
    assert f"{apikey}/{apikey}-1" in listed.stdout and "2 devices" in listed.stdout
    shown = runner.invoke(cli_devices.devices_app, ["show", f"{apikey}-1", "--tenant", tenant])
    assert shown.exit_code == 0, shown.output
    assert '"entity_name": "urn:ngsi-ld:AirQualityObserved:' in shown.stdout
    assert "51.0543, 3.7174" in shown.stdout  # the location, as an IoT Agent geo:point


def test_a_csv_with_errors_imports_nothing_and_names_every_line(
    runner: CliRunner, tmp_path: Path, tenant: str, apikey: str
):
    runner.invoke(cli_devices.devices_app, ["import", str(device_file(tmp_path, tenant, apikey))])
    path = tmp_path / "more.csv"
    path.write_text(
        "device_id,model,longitude,latitude\n"
        f"{apikey}-3,{apikey},3.72,51.05\n"
        f"{apikey}-4,no-such-group,,\n"
        f"{apikey}-5,{apikey},3.72,\n",
        encoding="utf-8",
    )
    refused = runner.invoke(cli_devices.devices_app, ["import", str(path)])
    assert refused.exit_code == 1
    assert f"{path}:3: row 2.model: no group named 'no-such-group'" in refused.stderr
    assert f"{path}:4: row 3.longitude and latitude go together" in refused.stderr
    listed = runner.invoke(cli_devices.devices_app, ["list", "--model", apikey])
    assert "2 devices" in listed.stdout
    partial = runner.invoke(cli_devices.devices_app, ["import", str(path), "--partial"])
    assert partial.exit_code == 0, partial.output
    assert "1 devices" in partial.stdout and "skipped 2 invalid lines" in partial.stdout


def test_silent_lists_registered_devices_never_heard_from(
    runner: CliRunner, tmp_path: Path, tenant: str, apikey: str
):
    runner.invoke(cli_devices.devices_app, ["import", str(device_file(tmp_path, tenant, apikey))])
    silent = runner.invoke(cli_devices.devices_app, ["silent", "--since", "1h", "--tenant", tenant])
    assert silent.exit_code == 0, silent.output
    assert f"{apikey}-1" in silent.stdout and "never" in silent.stdout
    assert "2 devices silent for more than 1h" in silent.stdout
    wrong = runner.invoke(cli_devices.devices_app, ["silent", "--since", "soon"])
    assert wrong.exit_code == 2 and "not a duration" in wrong.output


def test_quarantine_and_adopt(
    runner: CliRunner, tmp_path: Path, tenant: str, apikey: str, api_database: str
):
    runner.invoke(
        cli_devices.devices_app,
        ["import", str(device_file(tmp_path, tenant, apikey, autoprovision=False))],
    )
    with connect(api_database) as conn:
        backend = detect_backend(conn, "auto")
        conn.commit()
        devices, groups = load_registry(conn)
        conn.commit()
        registry = DeviceRegistry(devices, groups)
        message = RawMessage(
            f"/json/{apikey}/newcomer/attrs", b'{"n": 7.5}', 1, 1, datetime.now(UTC), 0.0
        )
        batch = BatchBuilder(lambda: registry, 1024).build([message]).batch
        BatchWriter(backend).write(conn, batch)
    quarantined = runner.invoke(cli_devices.devices_app, ["quarantine"])
    assert f"{apikey}/newcomer" in quarantined.stdout and '{"n": 7.5}' in quarantined.stdout
    adopted = runner.invoke(
        cli_devices.devices_app,
        ["adopt", f"{apikey}/newcomer", "--profile", "iotagent-json", "--group", apikey],
    )
    assert adopted.exit_code == 0, adopted.output
    assert "1 messages replayed, 1 observations stored" in adopted.stdout
    assert f"{apikey}/newcomer" not in runner.invoke(cli_devices.devices_app, ["quarantine"]).stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("1w", 604800)],
)
def test_durations(text: str, expected: int):
    assert cli_devices.parse_duration(text).total_seconds() == expected

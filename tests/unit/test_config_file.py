"""Loading the YAML device file: values, defaults, and errors that name their place."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.config_file import load_device_file, parse_device_file
from devices.model import AttributeMapping, DeviceConfig, DeviceGroup
from devices.registry import DeviceRegistry

FULL = """
groups:
  - name: dl-pm
    profile: ttn-v3
    key_prefix: "city-air/"
    tenant: gent
    entity_type: AirQualityObserved
    autoprovision: true
    location: [3.72, 51.05]
    apikey: group-key
    static_attributes: {owner: Stad Gent}
    attributes:
      - {source: pm2_5_mass_concentration, name: pm25, unit_code: GQ}
      - {source: barometric_pressure, name: atmosphericPressure, unit_code: A97, scale: 0.01}
devices:
  - key: "city-air/dl-pm-001"
    device_id: dl-pm-001
    profile: ttn-v3
    model: dl-pm
    entity_name: gent-kouter
    location: [3.7174, 51.0543]
    attributes:
      - {source: battery_voltage, name: batteryVoltage, unit_code: VLT}
  - key: "4jggokgpepnvsb2uv4s40d59ov/sensor01"
    device_id: sensor01
    profile: iotagent-json
    tenant: leuven
    entity_type: WeatherObserved
    apikey: 4jggokgpepnvsb2uv4s40d59ov
    static_attributes: {name: Ladeuzeplein, floors: [1, 2]}
    attributes:
      - {source: t, name: temperature, unit_code: CEL, type: Number}
      - {source: l, name: location, type: "geo:point"}
"""


def test_full_file_gives_devices_and_groups(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(FULL, encoding="utf-8")
    devices, groups = load_device_file(path)
    assert [key for key, _device in devices] == [
        "city-air/dl-pm-001",
        "4jggokgpepnvsb2uv4s40d59ov/sensor01",
    ]
    pm, json_device = devices[0][1], devices[1][1]
    assert pm == DeviceConfig(
        device_id="dl-pm-001",
        profile="ttn-v3",
        model="dl-pm",
        entity_name="gent-kouter",
        location=(3.7174, 51.0543),
        attributes={
            "battery_voltage": AttributeMapping("battery_voltage", "batteryVoltage", "VLT")
        },
        static_attributes={},
    )
    assert json_device.tenant == "leuven"
    assert json_device.apikey == "4jggokgpepnvsb2uv4s40d59ov"
    assert json_device.entity_type == "WeatherObserved"
    assert dict(json_device.static_attributes) == {"name": "Ladeuzeplein", "floors": [1, 2]}
    assert json_device.attributes["t"] == AttributeMapping("t", "temperature", "CEL", "Number")
    assert json_device.attributes["l"].type == "geo:point"
    assert groups == [
        DeviceGroup(
            name="dl-pm",
            profile="ttn-v3",
            key_prefix="city-air/",
            tenant="gent",
            entity_type="AirQualityObserved",
            attributes={
                "pm2_5_mass_concentration": AttributeMapping(
                    "pm2_5_mass_concentration", "pm25", "GQ"
                ),
                "barometric_pressure": AttributeMapping(
                    "barometric_pressure", "atmosphericPressure", "A97", scale=0.01
                ),
            },
            static_attributes={"owner": "Stad Gent"},
            location=(3.72, 51.05),
            apikey="group-key",
            autoprovision=True,
        )
    ]


def test_loaded_config_feeds_the_registry() -> None:
    registry = DeviceRegistry(*parse_device_file(FULL))
    device = registry.resolve("ttn-v3", "city-air/dl-pm-001")
    assert device is not None
    assert device.tenant == "gent"
    assert set(device.attributes) == {
        "pm2_5_mass_concentration",
        "barometric_pressure",
        "battery_voltage",
    }
    assert registry.resolve("ttn-v3", "city-air/dl-pm-777") is not None
    assert registry.resolve("iotagent-json", "4jggokgpepnvsb2uv4s40d59ov/sensor01") is not None


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "groups: []\ndevices: []\n"])
def test_empty_files_hold_nothing(text: str) -> None:
    assert parse_device_file(text) == ([], [])


DEVICE = "devices:\n  - {key: k, device_id: d, profile: telraam"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("devices: [", r"not valid YAML"),
        ("- just\n- a list\n", r"\(top level\): Input should be a valid dictionary"),
        ("sensors: []\n", r"sensors: Extra inputs are not permitted"),
        (DEVICE + ", colour: red}\n", r"devices\[0\]\.colour: Extra inputs"),
        ("devices:\n  - {key: k, profile: telraam}\n", r"devices\[0\]\.device_id: Field required"),
        (DEVICE.replace("telraam", "lorawan") + "}\n", r"devices\[0\]\.profile: .*'lorawan'"),
        (DEVICE + ", location: [51.05, 103.7]}\n", r"devices\[0\]\.location: .*longitude"),
        (DEVICE + ", location: [3.7]}\n", r"devices\[0\]\.location"),
        (DEVICE + ", key: ''}\n", r"devices\[0\]\.key"),
        (
            DEVICE + ", attributes: [{source: a, name: x, scale: big}]}\n",
            r"devices\[0\]\.attributes\[0\]\.scale",
        ),
        (
            DEVICE + ", attributes: [{source: a, name: x}, {source: a, name: y}]}\n",
            r"devices\[0\]\.attributes: .*source mapped twice: a",
        ),
        (DEVICE + ", model: ghost}\n", r"devices\[0\]\.model: no group named 'ghost'"),
        (
            "groups:\n  - {name: g, profile: ttn-v3}\n" + DEVICE + ", model: g}\n",
            r"devices\[0\]\.model: group 'g' is for ttn-v3",
        ),
        (
            "groups:\n  - {name: g, profile: ttn-v3}\n  - {name: g, profile: telraam}\n",
            r"groups\[1\]\.name: 'g' is defined twice",
        ),
        (DEVICE + "}\n  - {key: k, device_id: e, profile: telraam}\n", r"devices\[1\]\.key"),
        ("groups:\n  - {profile: ttn-v3}\n", r"groups\[0\]\.name: Field required"),
    ],
)
def test_errors_name_the_place_in_the_document(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^devices\.yaml: .*{message}"):
        parse_device_file(text, "devices.yaml")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("devices:\n  - {key: k}\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"broken\.yaml: .*devices\[0\]\.device_id: Field required"
    ):
        load_device_file(path)

"""Realistic MQTT messages for every device profile, for tests, benchmarks and the demo.

The payload shapes are those of the real examples in shared/reference/payloads: a The Things
Stack v3 uplink carrying a Decentlab DL-PM decoded payload, an airRohr custom-push body, a
Telraam hourly traffic report, FIWARE IoT Agent JSON measures and a Flemish MIV record.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from devices.model import AttributeMapping, DeviceConfig, DeviceGroup

IOTA_APIKEY = "4jggokgpepnvsb2uv4s40d59ov"
TTN_APPLICATION = "city-air"

DL_PM_ATTRIBUTES = {
    m.source: m
    for m in (
        AttributeMapping("pm1_0_mass_concentration", "pm1", "GQ"),
        AttributeMapping("pm2_5_mass_concentration", "pm25", "GQ"),
        AttributeMapping("pm4_mass_concentration", "pm4", "GQ"),
        AttributeMapping("pm10_mass_concentration", "pm10", "GQ"),
        AttributeMapping("air_temperature", "temperature", "CEL"),
        AttributeMapping("air_humidity", "relativeHumidity", "P1"),
        AttributeMapping("barometric_pressure", "atmosphericPressure", "A97", scale=0.01),
        AttributeMapping("battery_voltage", "batteryVoltage", "VLT"),
    )
}
IOTA_ATTRIBUTES = {
    m.source: m
    for m in (
        AttributeMapping("n", "no2", "GQ", "Number"),
        AttributeMapping("o", "o3", "GQ", "Number"),
        AttributeMapping("t", "temperature", "CEL", "Number"),
    )
}


def sample_groups(tenant: str = "") -> list[DeviceGroup]:
    """Device groups that accept every simulated device (autoprovisioned by key prefix)."""
    return [
        DeviceGroup(
            "decentlab-dl-pm",
            "ttn-v3",
            f"{TTN_APPLICATION}/",
            tenant,
            "AirQualityObserved",
            DL_PM_ATTRIBUTES,
            autoprovision=True,
        ),
        DeviceGroup("airrohr", "sensor-community", "", tenant, autoprovision=True),
        DeviceGroup("telraam-s2", "telraam", "", tenant, autoprovision=True),
        DeviceGroup(
            "iota-no2",
            "iotagent-json",
            f"{IOTA_APIKEY}/",
            tenant,
            "AirQualityObserved",
            IOTA_ATTRIBUTES,
            static_attributes={"source": "IoT Agent JSON"},
            apikey=IOTA_APIKEY,
            autoprovision=True,
        ),
        DeviceGroup("miv-bridge", "traffic-loop", "", tenant, autoprovision=True),
    ]


def sample_devices(tenant: str = "") -> list[tuple[str, DeviceConfig]]:
    """A few explicitly registered devices with a location (the rest are autoprovisioned)."""
    return [
        (
            f"{TTN_APPLICATION}/dl-pm-0",
            DeviceConfig(
                "dl-pm-0", "ttn-v3", tenant, model="decentlab-dl-pm", location=(3.7250, 51.0538)
            ),
        ),
    ]


@dataclass(frozen=True, slots=True)
class Message:
    """One simulated MQTT message."""

    profile: str
    topic: str
    payload: bytes


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _diurnal(moment: datetime) -> float:
    """0..1 traffic shape with morning and evening rush hours (local time ≈ UTC+1)."""
    hour = (moment.hour + 1 + moment.minute / 60) % 24
    rush = math.exp(-((hour - 8) ** 2) / 2) + math.exp(-((hour - 17.5) ** 2) / 3)
    return 0.15 + rush


def ttn_uplink(device: str, moment: datetime, rng: random.Random) -> Message:
    """A TTS v3 uplink with a Decentlab DL-PM decoded payload."""
    pm = max(0.5, rng.gauss(12, 6))
    decoded = {
        "air_humidity": {"displayName": "Air humidity", "unit": "%", "value": rng.uniform(40, 90)},
        "air_temperature": {
            "displayName": "Air temperature",
            "unit": "°C",
            "value": rng.uniform(2, 25),
        },
        "barometric_pressure": {
            "displayName": "Barometric pressure",
            "unit": "Pa",
            "value": 101300,
        },
        "battery_voltage": {"displayName": "Battery voltage", "unit": "V", "value": 3.1},
        "device_id": 6992,
        "pm1_0_mass_concentration": {"unit": "µg⋅m⁻³", "value": round(pm * 0.6, 1)},
        "pm2_5_mass_concentration": {"unit": "µg⋅m⁻³", "value": round(pm, 1)},
        "pm4_mass_concentration": {"unit": "µg⋅m⁻³", "value": round(pm * 1.2, 1)},
        "pm10_mass_concentration": {"unit": "µg⋅m⁻³", "value": round(pm * 1.5, 1)},
        "protocol_version": 2,
    }
    body = {
        "end_device_ids": {
            "device_id": device,
            "application_ids": {"application_id": TTN_APPLICATION},
            "dev_eui": "0004A30B001C0530",
        },
        "received_at": _iso(moment),
        "uplink_message": {
            "f_port": 1,
            "f_cnt": rng.randrange(1, 60000),
            "decoded_payload": decoded,
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "gent-gw-01"},
                    "time": _iso(moment),
                    "rssi": rng.randrange(-120, -60),
                    "snr": 7.5,
                }
            ],
        },
    }
    topic = f"v3/{TTN_APPLICATION}@ttn/devices/{device}/up"
    return Message("ttn-v3", topic, orjson.dumps(body))


def sensor_community_push(chip: str, moment: datetime, rng: random.Random) -> Message:
    """An airRohr custom-push body (string values, prefixed value types)."""
    pm10 = max(0.5, rng.gauss(18, 8))
    values = [
        ("SDS_P1", f"{pm10:.2f}"),
        ("SDS_P2", f"{pm10 * 0.6:.2f}"),
        ("BME280_temperature", f"{rng.uniform(0, 28):.2f}"),
        ("BME280_pressure", f"{rng.uniform(99000, 102500):.2f}"),
        ("BME280_humidity", f"{rng.uniform(35, 95):.2f}"),
        ("samples", "4222662"),
        ("signal", str(rng.randrange(-95, -50))),
    ]
    body = {
        "esp8266id": chip,
        "software_version": "NRZ-2020-129",
        "timestamp": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "sensordatavalues": [{"value_type": k, "value": v} for k, v in values],
    }
    return Message("sensor-community", f"sensor-community/{chip}", orjson.dumps(body))


def telraam_report(segment: int, moment: datetime, rng: random.Random) -> Message:
    """A Telraam hourly traffic report record with rush-hour shaped counts."""
    shape = _diurnal(moment)
    record: dict[str, object] = {
        "instance_id": -1,
        "segment_id": segment,
        "date": _iso(moment),
        "interval": "hourly",
        "uptime": round(rng.uniform(0.5, 0.95), 3),
        "direction": 1,
        "timezone": "Europe/Brussels",
        "v85": round(rng.uniform(25, 55), 1),
        "car_speed_hist_0to120plus": [round(rng.uniform(0, 20), 2) for _ in range(25)],
    }
    for mode, scale in (("pedestrian", 60), ("bike", 250), ("car", 600), ("heavy", 70)):
        left = shape * scale * rng.uniform(0.4, 0.6)
        right = shape * scale * rng.uniform(0.4, 0.6)
        record[f"{mode}_lft"], record[f"{mode}_rgt"], record[mode] = left, right, left + right
    return Message("telraam", f"telraam/{segment}/traffic", orjson.dumps(record))


def iotagent_measures(device: str, moment: datetime, rng: random.Random) -> Message:
    """IoT Agent JSON measures on /json/{apikey}/{device}/attrs."""
    body = {
        "n": round(max(1.0, rng.gauss(30, 15)), 1),
        "o": round(rng.uniform(20, 90), 1),
        "t": round(rng.uniform(0, 28), 1),
        "TimeInstant": _iso(moment),
    }
    return Message("iotagent-json", f"/json/{IOTA_APIKEY}/{device}/attrs", orjson.dumps(body))


def gateway_samples(
    device: str, moment: datetime, rng: random.Random, samples: int = 10
) -> Message:
    """IoT Agent JSON multi-measure message: a gateway forwarding `samples` buffered samples.

    Each sample carries NO2 and O3 with its own TimeInstant, so the message holds
    2 × `samples` readings (20 by default): the "gateway style" load of the benchmark.
    """
    body = [
        {
            "n": round(max(1.0, rng.gauss(30, 15)), 1),
            "o": round(rng.uniform(20, 90), 1),
            "TimeInstant": _iso(moment + timedelta(milliseconds=100 * k)),
        }
        for k in range(samples)
    ]
    return Message("iotagent-json", f"/json/{IOTA_APIKEY}/{device}/attrs", orjson.dumps(body))


def miv_record(bridge: str, sites: int, moment: datetime, rng: random.Random) -> Message:
    """An MIV-style record (xml2js arrays) of `sites` loop detectors, 5 vehicle classes each."""
    shape = _diurnal(moment)
    local = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    points = []
    for site in range(sites):
        classes = []
        for klasse in range(1, 6):
            count = int(rng.random() < 0.9) * max(0, int(rng.gauss(shape * 8 / klasse, 2)))
            speed = str(rng.randrange(60, 120)) if count else "0"
            classes.append(
                {
                    "$": {"klasse_id": str(klasse)},
                    "verkeersintensiteit": [str(count)],
                    "voertuigsnelheid_rekenkundig": [speed],
                    "voertuigsnelheid_harmonisch": [speed if count else "252"],
                }
            )
        points.append(
            {
                "$": {"beschrijvende_id": f"{bridge}-H{site:03d}L10", "unieke_id": str(site)},
                "tijd_waarneming": [local],
                "beschikbaar": ["1"],
                "defect": ["0"],
                "geldig": ["0"],
                "meetdata": classes,
                "rekendata": [{"bezettingsgraad": [str(rng.randrange(0, 40))]}],
            }
        )
    return Message("traffic-loop", f"traffic-loop/{bridge}", orjson.dumps({"meetpunt": points}))


def message_stream(
    count: int,
    start: datetime,
    *,
    seed: int = 7,
    devices_per_profile: int = 10,
    miv_sites: int = 1,
    profiles: tuple[str, ...] = (
        "ttn-v3",
        "sensor-community",
        "telraam",
        "iotagent-json",
        "traffic-loop",
    ),
) -> Iterator[Message]:
    """`count` messages cycling through the profiles; every message has its own time.

    Device i of a profile reports at start + k seconds for its k-th message, so no two
    messages of one device share an observation time (each is a distinct observation).
    """
    rng = random.Random(seed)
    builders = {
        "ttn-v3": lambda i, t: ttn_uplink(f"dl-pm-{i}", t, rng),
        "sensor-community": lambda i, t: sensor_community_push(str(12331981 + i), t, rng),
        "telraam": lambda i, t: telraam_report(348917 + i, t, rng),
        "iotagent-json": lambda i, t: iotagent_measures(f"no2-{i}", t, rng),
        "traffic-loop": lambda i, t: miv_record(f"miv-{i}", miv_sites, t, rng),
        "gateway": lambda i, t: gateway_samples(f"gateway-{i}", t, rng),
    }
    per_profile = len(profiles)
    for n in range(count):
        profile = profiles[n % per_profile]
        round_number = n // per_profile
        device = round_number % devices_per_profile
        moment = start + timedelta(seconds=round_number // devices_per_profile)
        yield builders[profile](device, moment)

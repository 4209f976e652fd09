"""The demo town, Mechelen: its devices in every profile, where they stand, and their messages.

Payload shapes are those of stadspuls/simulator.py (the real examples in
shared/reference/payloads); the values come from stadspuls/demo_patterns.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from devices.model import DeviceConfig, DeviceGroup

from . import demo_patterns as patterns
from .simulator import IOTA_APIKEY, TTN_APPLICATION, Message, sample_groups

TOWN = "Mechelen"


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """One device of the demo town and how it reports."""

    profile: str
    #: The external device key (what the profile reads from the topic).
    key: str
    device_id: str
    name: str
    #: (longitude, latitude) in WGS84.
    location: tuple[float, float]
    #: Seconds between two messages (the interval a message covers, for counters).
    cadence: int
    #: Entity ids (one per profile's main entity) to show in the printed examples.
    entity_id: str
    #: Falls silent this long after the demo first started (negative: before it).
    silent_after: timedelta | None = None
    #: 0 (park) to 2 (street canyon) for air quality; per-mode hourly rush counts for Telraam.
    exposure: float = 1.0
    scales: dict[str, float] = field(default_factory=dict)
    #: Lanes of a loop-detector bridge: (site id, morning weight, evening weight).
    lanes: tuple[tuple[str, float, float], ...] = ()


def _telraam(segment: int, street: str, location: tuple[float, float], **extra) -> DemoDevice:
    return DemoDevice(
        "telraam",
        str(segment),
        str(segment),
        f"Telraam {street}",
        location,
        3600,
        f"urn:ngsi-ld:ItemFlowObserved:telraam-{segment}-bike",
        **extra,
    )


def _air(profile: str, key: str, device_id: str, name: str, location, cadence, **extra):
    return DemoDevice(
        profile,
        key,
        device_id,
        name,
        location,
        cadence,
        f"urn:ngsi-ld:AirQualityObserved:{device_id}",
        **extra,
    )


def _bridge(bridge: str, name: str, location, lanes) -> DemoDevice:
    return DemoDevice(
        "traffic-loop",
        bridge,
        bridge,
        name,
        location,
        60,
        f"urn:ngsi-ld:TrafficFlowObserved:{lanes[0][0]}",
        lanes=lanes,
    )


COMMUTER_STREET = {"pedestrian": 90.0, "bike": 320.0, "car": 260.0, "heavy": 14.0}
SHOPPING_STREET = {"pedestrian": 650.0, "bike": 180.0, "car": 20.0, "heavy": 2.0}
ARTERIAL_ROAD = {"pedestrian": 40.0, "bike": 150.0, "car": 700.0, "heavy": 60.0}

DEVICES: tuple[DemoDevice, ...] = (
    _telraam(9000001841, "Bruul", (4.4779, 51.0259), scales=SHOPPING_STREET),
    _telraam(9000001842, "Adegemstraat", (4.4829, 51.0312), scales=COMMUTER_STREET),
    _telraam(9000001843, "Hoogstraat", (4.4712, 51.0239), scales=COMMUTER_STREET),
    _telraam(
        9000001844,
        "Leuvensesteenweg",
        (4.4935, 51.0196),
        scales=ARTERIAL_ROAD,
        silent_after=timedelta(minutes=10),
    ),
    _air(
        "sensor-community",
        "3947201",
        "airrohr-nekkerspoel",
        "airRohr Nekkerspoel",
        (4.4921, 51.0316),
        150,
        exposure=0.8,
    ),
    _air(
        "sensor-community",
        "3947202",
        "airrohr-battel",
        "airRohr Battel",
        (4.4498, 51.0483),
        150,
        exposure=0.3,
        silent_after=timedelta(hours=-3),
    ),
    _air(
        "sensor-community",
        "3947203",
        "airrohr-muizen",
        "airRohr Muizen",
        (4.5128, 51.0088),
        150,
        exposure=0.5,
    ),
    _air(
        "ttn-v3",
        f"{TTN_APPLICATION}/dl-pm-grote-markt",
        "dl-pm-grote-markt",
        "Decentlab DL-PM Grote Markt",
        (4.4804, 51.0281),
        300,
        exposure=0.6,
    ),
    _air(
        "ttn-v3",
        f"{TTN_APPLICATION}/dl-pm-station",
        "dl-pm-station",
        "Decentlab DL-PM Station Mechelen",
        (4.4829, 51.0177),
        300,
        exposure=1.4,
    ),
    _air(
        "iotagent-json",
        f"{IOTA_APIKEY}/no2-astridlaan",
        "no2-astridlaan",
        "NO2 Koningin Astridlaan",
        (4.4652, 51.0262),
        60,
        exposure=1.8,
    ),
    _air(
        "iotagent-json",
        f"{IOTA_APIKEY}/no2-liersesteenweg",
        "no2-liersesteenweg",
        "NO2 Liersesteenweg",
        (4.4957, 51.0334),
        60,
        exposure=1.3,
    ),
    _air(
        "iotagent-json",
        f"{IOTA_APIKEY}/no2-brusselpoort",
        "no2-brusselpoort",
        "NO2 Brusselpoort",
        (4.4703, 51.0199),
        60,
        exposure=1.5,
        silent_after=timedelta(minutes=30),
    ),
    # Loops on the motorway: towards Brussels the morning peak jams, towards Antwerp the evening.
    _bridge(
        "e19-mechelen-noord",
        "E19 Mechelen-Noord",
        (4.4562, 51.0561),
        (
            ("e19-mechelen-noord-brussel-L10", 1.0, 0.55),
            ("e19-mechelen-noord-brussel-L20", 0.9, 0.5),
            ("e19-mechelen-noord-antwerpen-L10", 0.55, 1.0),
            ("e19-mechelen-noord-antwerpen-L20", 0.5, 0.9),
        ),
    ),
    _bridge(
        "r6-mechelen-zuid",
        "R6 Mechelen-Zuid",
        (4.4841, 51.0012),
        (
            ("r6-mechelen-zuid-oost-L10", 0.9, 0.9),
            ("r6-mechelen-zuid-west-L10", 0.8, 1.0),
        ),
    ),
)


def demo_groups(tenant: str = "") -> list[DeviceGroup]:
    """The device groups (models) the demo devices belong to: the simulator's."""
    return sample_groups(tenant)


MODELS = {
    "ttn-v3": "decentlab-dl-pm",
    "sensor-community": "airrohr",
    "telraam": "telraam-s2",
    "iotagent-json": "iota-no2",
    "traffic-loop": "miv-bridge",
}


def demo_devices(tenant: str = "") -> list[tuple[str, DeviceConfig]]:
    """Every demo device registered with its model, a readable entity name and its location."""
    return [
        (
            device.key,
            DeviceConfig(
                device.device_id,
                device.profile,
                tenant,
                model=MODELS[device.profile],
                entity_name=device.device_id,
                location=device.location,
            ),
        )
        for device in DEVICES
    ]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def device_message(device: DemoDevice, moment: datetime, rng: random.Random) -> Message:
    """The message `device` sends for the interval (or sample) that starts at `moment`."""
    builder = {
        "telraam": _telraam_report,
        "sensor-community": _airrohr_push,
        "ttn-v3": _decentlab_uplink,
        "iotagent-json": _iota_measures,
        "traffic-loop": _miv_record,
    }[device.profile]
    return builder(device, moment, rng)


def _telraam_report(device: DemoDevice, moment: datetime, rng: random.Random) -> Message:
    record: dict[str, object] = {
        "instance_id": -1,
        "segment_id": int(device.key),
        "date": _iso(moment),
        "interval": "hourly",
        "uptime": round(rng.uniform(0.7, 0.95) if 6 <= patterns.local_hour(moment) < 21 else 0, 3),
        "direction": 1,
        "timezone": "Europe/Brussels",
        "v85": patterns.car_speed_v85(moment, rng),
        "car_speed_hist_0to120plus": _speed_histogram(rng),
    }
    for mode, (left, right) in patterns.counter_counts(moment, device.scales, rng).items():
        record[f"{mode}_lft"], record[f"{mode}_rgt"], record[mode] = left, right, left + right
    topic = f"telraam/{device.key}/traffic"
    return Message("telraam", topic, orjson.dumps(record))


def _speed_histogram(rng: random.Random) -> list[float]:
    """Share of cars per 5 km/h bin (0 to 120+): most between 25 and 50 km/h in town."""
    weights = [
        max(0.0, 10 - abs(bin_index - 7) * 2.2 + rng.uniform(0, 1)) for bin_index in range(25)
    ]
    total = sum(weights) or 1.0
    return [round(100 * weight / total, 2) for weight in weights]


def _airrohr_push(device: DemoDevice, moment: datetime, rng: random.Random) -> Message:
    sample = patterns.air_quality(moment, rng, device.exposure)
    values = [
        ("SDS_P1", f"{sample.pm10:.2f}"),
        ("SDS_P2", f"{sample.pm25:.2f}"),
        ("BME280_temperature", f"{patterns.temperature(moment, rng):.2f}"),
        ("BME280_pressure", f"{rng.uniform(100500, 102000):.2f}"),
        ("BME280_humidity", f"{rng.uniform(55, 92):.2f}"),
        ("samples", "4222662"),
        ("signal", str(rng.randrange(-90, -55))),
    ]
    body = {
        "esp8266id": device.key,
        "software_version": "NRZ-2020-129",
        "timestamp": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "sensordatavalues": [{"value_type": k, "value": v} for k, v in values],
    }
    return Message("sensor-community", f"sensor-community/{device.key}", orjson.dumps(body))


def _decentlab_uplink(device: DemoDevice, moment: datetime, rng: random.Random) -> Message:
    sample = patterns.air_quality(moment, rng, device.exposure)

    def measured(value: float, unit: str = "µg⋅m⁻³") -> dict[str, object]:
        return {"unit": unit, "value": value}

    decoded = {
        "air_humidity": measured(round(rng.uniform(55, 92), 1), "%"),
        "air_temperature": measured(round(patterns.temperature(moment, rng), 1), "°C"),
        "barometric_pressure": measured(round(rng.uniform(100500, 102000)), "Pa"),
        "battery_voltage": measured(3.05, "V"),
        "device_id": 6992,
        "pm1_0_mass_concentration": measured(round(sample.pm25 * 0.65, 1)),
        "pm2_5_mass_concentration": measured(sample.pm25),
        "pm4_mass_concentration": measured(round((sample.pm25 + sample.pm10) / 2, 1)),
        "pm10_mass_concentration": measured(sample.pm10),
        "protocol_version": 2,
    }
    body = {
        "end_device_ids": {
            "device_id": device.device_id,
            "application_ids": {"application_id": TTN_APPLICATION},
        },
        "received_at": _iso(moment),
        "uplink_message": {
            "f_port": 1,
            "f_cnt": int(moment.timestamp() // device.cadence) % 65536,
            "decoded_payload": decoded,
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "mechelen-stadhuis-gw"},
                    "time": _iso(moment),
                    "rssi": rng.randrange(-115, -70),
                    "snr": round(rng.uniform(2, 9), 1),
                }
            ],
        },
    }
    topic = f"v3/{TTN_APPLICATION}@ttn/devices/{device.device_id}/up"
    return Message("ttn-v3", topic, orjson.dumps(body))


def _iota_measures(device: DemoDevice, moment: datetime, rng: random.Random) -> Message:
    sample = patterns.air_quality(moment, rng, device.exposure)
    # Ozone is used up by the NO that comes with NO2 at busy hours.
    ozone = max(2.0, 70.0 - 0.35 * sample.no2 + rng.gauss(0, 4))
    body = {
        "n": sample.no2,
        "o": round(ozone, 1),
        "t": round(patterns.temperature(moment, rng), 1),
        "TimeInstant": _iso(moment),
    }
    topic = f"/json/{IOTA_APIKEY}/{device.device_id}/attrs"
    return Message("iotagent-json", topic, orjson.dumps(body))


def _miv_record(device: DemoDevice, moment: datetime, rng: random.Random) -> Message:
    points = []
    for unique, (site, morning, evening) in enumerate(device.lanes):
        lane = patterns.lane_minute(moment, rng, morning=morning, evening=evening)
        classes = [
            {
                "$": {"klasse_id": klasse},
                "verkeersintensiteit": [str(count)],
                "voertuigsnelheid_rekenkundig": [str(round(lane.speeds[klasse])) if count else "0"],
                "voertuigsnelheid_harmonisch": [
                    str(round(lane.speeds[klasse])) if count else "252"
                ],
            }
            for klasse, count in lane.counts.items()
        ]
        points.append(
            {
                "$": {"beschrijvende_id": site, "unieke_id": str(3100 + unique)},
                "tijd_waarneming": [moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")],
                "beschikbaar": ["1"],
                "defect": ["0"],
                "geldig": ["0"],
                "meetdata": classes,
                "rekendata": [{"bezettingsgraad": [str(round(lane.occupancy))]}],
            }
        )
    topic = f"traffic-loop/{device.key}"
    return Message("traffic-loop", topic, orjson.dumps({"meetpunt": points}))

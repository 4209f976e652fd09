"""traffic-loop profile: the real MIV meetpunt record (xml2js), plain variants and MIV flags."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from devices.model import Decoded, DecodeError, DeviceConfig
from devices.profiles.traffic_loop import PROFILE

PAYLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "payloads"
MIV = orjson.loads((PAYLOADS / "vlaanderen_miv_meetpunt_xml2js.json").read_bytes())
SITE = MIV["meetpunt"][0]
RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOPIC = "traffic-loop/lve-55"
DEVICE = DeviceConfig("lve-55", "traffic-loop")
OBSERVED = datetime(2023, 8, 1, 9, 10, tzinfo=UTC)
TYPES = {1: "motorcycle", 2: "car", 3: "van", 4: "lorry", 5: "articulatedVehicle"}


def decode(document: Any) -> Decoded:
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    return PROFILE.decode(TOPIC, payload, DEVICE, RECEIVED)


def table(decoded: Decoded) -> dict[tuple[str, str], tuple[Any, str | None]]:
    """(entity key, attribute) → (value, unit)."""
    return {(r.entity_key, r.attribute): (r.value, r.unit_code) for r in decoded.readings}


def plain(value: Any) -> Any:
    """The xml2js record with every one-element array unwrapped and "$" attributes inlined."""
    if isinstance(value, list):
        return (
            plain(value[0])
            if len(value) == 1 and not isinstance(value[0], dict)
            else [plain(item) for item in value]
        )
    if isinstance(value, dict):
        flat = {key: plain(item) for key, item in value.items() if key != "$"}
        flat.update(value.get("$", {}))
        return flat
    return value


def site(classes: dict[int, tuple[str, str, str]] | None = None, **flags: Any) -> dict[str, Any]:
    """A copy of the real site with (count, mean, harmonic) per class and flags changed."""
    record = copy.deepcopy(SITE)
    for data in record["meetdata"]:
        class_id = int(data["$"]["klasse_id"])
        if classes and class_id in classes:
            count, mean, harmonic = classes[class_id]
            data["verkeersintensiteit"] = [count]
            data["voertuigsnelheid_rekenkundig"] = [mean]
            data["voertuigsnelheid_harmonisch"] = [harmonic]
    for name, value in flags.items():
        if value is ...:
            del record[name]
        else:
            record[name] = [value]
    return record


BUSY = {2: ("12", "98", "95"), 4: ("3", "85", "84")}
BUSY_READINGS = {
    ("H222L10-class1", "intensity"): (0.0, None),
    ("H222L10-class2", "intensity"): (12.0, None),
    ("H222L10-class2", "averageVehicleSpeed"): (98.0, "KMH"),
    ("H222L10-class2", "harmonicMeanSpeed"): (95.0, "KMH"),
    ("H222L10-class3", "intensity"): (0.0, None),
    ("H222L10-class4", "intensity"): (3.0, None),
    ("H222L10-class4", "averageVehicleSpeed"): (85.0, "KMH"),
    ("H222L10-class4", "harmonicMeanSpeed"): (84.0, "KMH"),
    ("H222L10-class5", "intensity"): (0.0, None),
    ("H222L10", "intensity"): (15.0, None),
    ("H222L10", "occupancy"): (0.07, None),
}
COUNTS_ONLY = {key: value for key, value in BUSY_READINGS.items() if value[1] != "KMH"}


def busy(**flags: Any) -> dict[str, Any]:
    record = site(BUSY, **flags)
    record["rekendata"][0]["bezettingsgraad"] = ["7"]
    return {"meetpunt": [record]}


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        ("traffic-loop/lve-55", "lve-55"),
        ("traffic-loop/", None),
        ("traffic-loop/a/b", None),
        ("sensor-community/lve-55", None),
    ],
)
def test_device_key_is_the_last_level(topic: str, key: str | None) -> None:
    assert PROFILE.device_key(topic) == key


@pytest.mark.parametrize(
    "document",
    [MIV, {"meetpunt": SITE}, SITE, [SITE], plain(MIV), plain(SITE)],
    ids=["xml2js", "lone-meetpunt", "one-site", "array", "plain", "plain-site"],
)
def test_empty_minute_counts_zero_and_drops_sentinel_speeds(document: Any) -> None:
    decoded = decode(document)
    expected = {(f"H222L10-class{k}", "intensity"): (0.0, None) for k in range(1, 6)}
    expected[("H222L10", "intensity")] = (0.0, None)
    expected[("H222L10", "occupancy")] = (0.0, None)
    assert table(decoded) == expected
    assert {r.observed_at for r in decoded.readings} == {OBSERVED}
    assert decoded.observed_at == OBSERVED
    assert {r.entity_type for r in decoded.readings} == {"TrafficFlowObserved"}


def test_context_of_class_and_site_entities() -> None:
    properties = decode(MIV).entity_properties
    minute = {
        "dateObservedFrom": "2023-08-01T09:10:00Z",
        "dateObservedTo": "2023-08-01T09:11:00Z",
        "laneId": 10,
    }
    parent = {"type": "Relationship", "object": "urn:ngsi-ld:TrafficFlowObserved:H222L10"}
    expected = {
        ("TrafficFlowObserved", f"H222L10-class{k}"): {
            **minute,
            "vehicleType": vehicle_type,
            "refTrafficFlowObserved": parent,
        }
        for k, vehicle_type in TYPES.items()
    }
    expected[("TrafficFlowObserved", "H222L10")] = {**minute, "vehicleType": "anyVehicle"}
    assert properties == expected


@pytest.mark.parametrize("shape", [lambda d: d, plain], ids=["xml2js", "plain"])
def test_busy_minute_gives_counts_speeds_total_and_occupancy(shape: Any) -> None:
    assert table(decode(shape(busy()))) == BUSY_READINGS


@pytest.mark.parametrize(
    ("speeds", "kept"),
    [
        (("251", "251"), set()),
        (("252", "252"), set()),
        (("253", "90"), {"harmonicMeanSpeed"}),
        (("254", "254"), set()),
        (("255", "88"), {"harmonicMeanSpeed"}),
        (("250", "200"), {"averageVehicleSpeed", "harmonicMeanSpeed"}),
        (("0", "0"), {"averageVehicleSpeed", "harmonicMeanSpeed"}),
    ],
)
def test_sentinel_speeds_are_missing(speeds: tuple[str, str], kept: set[str]) -> None:
    decoded = decode({"meetpunt": [site({2: ("4", *speeds)})]})
    got = {attribute for key, attribute in table(decoded) if key == "H222L10-class2"}
    assert got == {"intensity", *kept}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"beschikbaar": "0"}, {}),
        ({"defect": "2"}, {}),
        ({"geldig": "3"}, {}),
        ({"defect": "1"}, COUNTS_ONLY),
        ({"geldig": "1"}, BUSY_READINGS),
        ({"geldig": "2"}, BUSY_READINGS),
        ({"beschikbaar": ..., "defect": ..., "geldig": ...}, BUSY_READINGS),
    ],
    ids=[
        "unavailable",
        "severe-defect",
        "defect-irregular",
        "one-loop",
        "irregular",
        "extreme",
        "no-flags",
    ],
)
def test_miv_status_flags(flags: dict[str, Any], expected: dict) -> None:
    assert table(decode(busy(**flags))) == expected


def test_unieke_id_when_there_is_no_descriptive_id() -> None:
    record = copy.deepcopy(SITE)
    del record["$"]["beschrijvende_id"]
    decoded = decode({"meetpunt": [record]})
    assert {r.entity_key for r in decoded.readings} == {"29"} | {f"29-class{k}" for k in TYPES}
    assert "laneId" not in decoded.entity_properties[("TrafficFlowObserved", "29")]


def test_missing_observation_time_uses_reception_time() -> None:
    decoded = decode({"meetpunt": [site(tijd_waarneming=...)]})
    assert decoded.observed_at == RECEIVED
    assert {r.observed_at for r in decoded.readings} == {RECEIVED}


def test_missing_counts_leave_the_total_to_the_others() -> None:
    record = site(BUSY)
    del record["meetdata"][3]["verkeersintensiteit"]  # class 4
    readings = table(decode({"meetpunt": [record]}))
    assert readings[("H222L10", "intensity")] == (12.0, None)
    assert ("H222L10-class4", "intensity") not in readings


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"<miv/>", "invalid_json"),
        (b"17", "invalid_payload"),
        (b'{"meetpunt": "H222L10"}', "invalid_payload"),
        (b'{"meetpunt": [{"meetdata": []}]}', "invalid_payload"),
        (orjson.dumps({"meetpunt": [{**SITE, "meetdata": {"x": 1}}]}), "invalid_payload"),
        (orjson.dumps(site({2: ("veel", "90", "90")})), "wrong_type"),
        (orjson.dumps(site({2: ("3", "snel", "90")})), "wrong_type"),
        (orjson.dumps(site(tijd_waarneming="01/08/2023 10:10")), "invalid_time"),
    ],
)
def test_bad_records_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=f"^{reason}"):
        decode(payload)


def test_unknown_vehicle_class_is_refused() -> None:
    record = copy.deepcopy(SITE)
    record["meetdata"][0]["$"]["klasse_id"] = "7"
    with pytest.raises(DecodeError, match="^invalid_payload: meetdata.0.: unknown klasse_id 7"):
        decode({"meetpunt": [record]})


def test_a_lone_meetdata_object_is_one_class() -> None:
    record = plain(SITE)
    record["meetdata"] = record["meetdata"][1]
    assert table(decode(record)) == {
        ("H222L10-class2", "intensity"): (0.0, None),
        ("H222L10", "intensity"): (0.0, None),
        ("H222L10", "occupancy"): (0.0, None),
    }

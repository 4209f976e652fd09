"""Readings → NGSI-LD observation rows and latest-state fragments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from devices.model import Decoded, DeviceConfig, Reading
from ngsi.mapping import BatchMapper, entity_id, format_datetime
from storage.records import ObservationRow

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
DEVICE = DeviceConfig(
    device_id="aq-001",
    profile="sensor-community",
    tenant="gent",
    model="airrohr",
    location=(3.7174, 51.0543),
    static_attributes={"source": "sensor.community"},
)


def aq(attribute: str, value, at: datetime = T0, unit: str | None = "GQ", dataset=None):
    return Reading("AirQualityObserved", "aq-001", attribute, value, at, unit, dataset)


def term(iri: str) -> str:
    """The last path segment of an IRI: the term it was expanded from, in these tests."""
    return iri.rsplit("/", 1)[-1]


def fragments_by_id(mapper: BatchMapper) -> dict[str, dict]:
    """Attributes of each fragment, keyed by term rather than IRI for readability."""
    return {
        f.entity_id: {term(name): value for name, value in f.attributes.items()}
        for f in mapper.fragments()
    }


def test_types_and_attribute_names_are_expanded_with_the_domain_context_of_the_type():
    mapper = BatchMapper()
    decoded = Decoded([aq("pm25", 4.0), aq("refDevice", "x", unit=None), aq("madeUp", 1)])
    mapper.add(DEVICE, decoded, T0)
    by_type = {f.entity_type: set(f.attributes) for f in mapper.fragments()}
    environment = "https://smartdatamodels.org/dataModel.Environment/"
    assert by_type[environment + "AirQualityObserved"] >= {
        environment + "pm25",
        environment + "refDevice",
        "https://uri.etsi.org/ngsi-ld/location",
        "https://uri.etsi.org/ngsi-ld/default-context/madeUp",
    }
    assert (
        "https://smartdatamodels.org/dataModel.Device/deviceState"
        in (by_type["https://smartdatamodels.org/dataModel.Device/Device"])
    )
    assert {ObservationRow(*row).attribute for row in mapper.observations} == {
        environment + "pm25",
        environment + "refDevice",
        "https://uri.etsi.org/ngsi-ld/default-context/madeUp",
    }


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (
            datetime(2026, 7, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-07-01T00:00:00.000000Z",
        ),
        (datetime(2026, 7, 1, 0, 0, 0, 123456, tzinfo=UTC), "2026-07-01T00:00:00.123456Z"),
    ],
)
def test_datetimes_are_formatted_in_one_fixed_width_utc_form(moment, text):
    assert format_datetime(moment) == text


@pytest.mark.parametrize(
    ("value", "value_num", "value_json"),
    [
        (4.48, 4.48, None),
        (7, 7.0, None),
        (True, None, True),
        ("bicycle", None, "bicycle"),
        ([1.5, 2.5], None, [1.5, 2.5]),
    ],
)
def test_numbers_go_to_the_numeric_column_and_the_rest_to_json(value, value_num, value_json):
    mapper = BatchMapper()
    mapper.add(DEVICE, Decoded([aq("pm25", value)]), T0)
    (row,) = [ObservationRow(*row) for row in mapper.observations]
    assert (row.value_num, row.value_json) == (value_num, value_json)
    assert row.entity_id == "urn:ngsi-ld:AirQualityObserved:aq-001"
    assert (row.tenant, term(row.attribute), row.dataset_id, row.unit_code) == (
        "gent",
        "pm25",
        "",
        "GQ",
    )


def test_entity_fragment_carries_observed_at_unit_location_ref_device_and_static_attributes():
    mapper = BatchMapper()
    mapper.add(DEVICE, Decoded([aq("pm25", 4.48), aq("pm10", 6.73)]), T0)
    attrs = fragments_by_id(mapper)[entity_id("AirQualityObserved", "aq-001")]
    assert attrs["pm25"] == {
        "type": "Property",
        "value": 4.48,
        "observedAt": "2026-03-29T00:30:00.000000Z",
        "unitCode": "GQ",
    }
    assert attrs["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:aq-001"}
    assert attrs["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [3.7174, 51.0543]},
    }
    assert attrs["source"] == {"type": "Property", "value": "sensor.community"}


def test_the_newest_reading_of_an_attribute_wins_within_a_batch_whatever_the_order():
    mapper = BatchMapper()
    later = T0 + timedelta(minutes=5)
    mapper.add(DEVICE, Decoded([aq("pm25", 9.0, later)]), later)
    mapper.add(DEVICE, Decoded([aq("pm25", 4.0, T0)]), later)
    attrs = fragments_by_id(mapper)[entity_id("AirQualityObserved", "aq-001")]
    assert attrs["pm25"]["value"] == 9.0
    assert len(mapper.observations) == 2


def test_dataset_instances_become_a_list_of_attribute_objects():
    mapper = BatchMapper()
    readings = [
        aq("intensity", 10, unit=None),
        aq("intensity", 4, unit=None, dataset="urn:ngsi-ld:Dataset:lft"),
        aq("intensity", 6, unit=None, dataset="urn:ngsi-ld:Dataset:rgt"),
    ]
    mapper.add(DEVICE, Decoded(readings), T0)
    instances = fragments_by_id(mapper)[entity_id("AirQualityObserved", "aq-001")]["intensity"]
    assert sorted((i.get("datasetId", ""), i["value"]) for i in instances) == [
        ("", 10),
        ("urn:ngsi-ld:Dataset:lft", 4),
        ("urn:ngsi-ld:Dataset:rgt", 6),
    ]
    assert {ObservationRow(*row).dataset_id for row in mapper.observations} == {
        "",
        "urn:ngsi-ld:Dataset:lft",
        "urn:ngsi-ld:Dataset:rgt",
    }


def test_device_entity_reports_last_value_time_state_model_and_profile_properties():
    mapper = BatchMapper()
    decoded = Decoded([aq("pm25", 4.48)], device_properties={"rssi": -94}, observed_at=T0)
    mapper.add(DEVICE, decoded, T0 + timedelta(seconds=3))
    device = fragments_by_id(mapper)["urn:ngsi-ld:Device:aq-001"]
    assert device["dateLastValueReported"]["value"] == {
        "@type": "DateTime",
        "@value": "2026-03-29T00:30:00.000000Z",
    }
    assert device["deviceState"]["value"] == "ok"
    assert device["refDeviceModel"]["object"] == "urn:ngsi-ld:DeviceModel:airrohr"
    assert device["rssi"] == {"type": "Property", "value": -94}


def test_profile_entity_properties_pass_full_attribute_objects_through():
    mapper = BatchMapper()
    segment = {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:telraam-1"}
    properties = {
        ("ItemFlowObserved", "telraam-1-bike"): {"refRoadSegment": segment, "itemType": "bicycle"}
    }
    reading = Reading("ItemFlowObserved", "telraam-1-bike", "intensity", 3.0, T0)
    mapper.add(DEVICE, Decoded([reading], entity_properties=properties), T0)
    attrs = fragments_by_id(mapper)["urn:ngsi-ld:ItemFlowObserved:telraam-1-bike"]
    assert attrs["refRoadSegment"] == segment
    assert attrs["itemType"] == {"type": "Property", "value": "bicycle"}


def test_activity_counts_messages_and_readings_per_device():
    mapper = BatchMapper()
    mapper.add(DEVICE, Decoded([aq("pm25", 1.0), aq("pm10", 2.0)]), T0)
    mapper.add(
        DEVICE, Decoded([aq("pm25", 3.0, T0 + timedelta(minutes=1))]), T0 + timedelta(minutes=1)
    )
    (activity,) = mapper.activity()
    assert activity == ("gent", "aq-001", 2, 3, T0 + timedelta(minutes=1))


def test_an_older_message_later_in_the_batch_does_not_overwrite_newer_context():
    mapper = BatchMapper()
    newer, older = T0 + timedelta(hours=1), T0
    for moment, rssi, name in ((newer, -60, "newer"), (older, -90, "older")):
        decoded = Decoded(
            [aq("pm25", 1.0, moment)],
            entity_properties={("AirQualityObserved", "aq-001"): {"name": name}},
            device_properties={"rssi": rssi},
            observed_at=moment,
        )
        mapper.add(DEVICE, decoded, moment)
    fragments = fragments_by_id(mapper)
    assert fragments["urn:ngsi-ld:AirQualityObserved:aq-001"]["name"]["value"] == "newer"
    device = fragments["urn:ngsi-ld:Device:aq-001"]
    assert device["rssi"]["value"] == -60
    assert device["dateLastValueReported"]["value"]["@value"].startswith("2026-03-29T01:30")


def test_a_fragment_spans_its_oldest_observation_to_its_newest_observation_or_context():
    mapper = BatchMapper()
    resent = T0 - timedelta(days=1)  # a buffered reading sent again in a new message
    decoded = Decoded([aq("pm25", 1.0, resent)], observed_at=T0)
    mapper.add(DEVICE, decoded, T0)
    fragment = next(f for f in mapper.fragments() if term(f.entity_type) == "AirQualityObserved")
    assert (fragment.oldest_observed_at, fragment.newest_observed_at) == (resent, T0)
    device = next(f for f in mapper.fragments() if term(f.entity_type) == "Device")
    assert (device.oldest_observed_at, device.newest_observed_at) == (T0, T0)

"""sensor.community (airRohr) stations: API data records and the firmware's custom push.

Formats: the sensor.community API (`/static/v2/data.json` records: `sensordatavalues`,
`timestamp` in UTC without zone, `location`) and the airRohr firmware's "send to own API"
body (`esp8266id`, `software_version`, value types prefixed with the sensor: `SDS_P1`,
`BME280_temperature`, ...). P1 is PM10, P2 PM2.5, P0 PM1 (sensor.community FAQ).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devices.model import DecodeError, DeviceConfig, EntityRef, Reading
from devices.profiles.common import (
    Collector,
    RecordProfile,
    mapping_at,
    object_list,
    parse_time,
    point_from,
    to_float,
)

ENTITY_TYPE = "AirQualityObserved"

#: Value type without its sensor prefix → (attribute, UN/CEFACT unit, divisor).
#: BME280/BMP280 report pressure in Pa; AirQualityObserved uses hPa (A97).
QUANTITIES: dict[str, tuple[str, str, float]] = {
    "P0": ("pm1", "GQ", 1.0),
    "P1": ("pm10", "GQ", 1.0),
    "P2": ("pm25", "GQ", 1.0),
    "temperature": ("temperature", "CEL", 1.0),
    "humidity": ("relativeHumidity", "P1", 1.0),
    "pressure": ("atmosphericPressure", "A97", 100.0),
}


class SensorCommunityProfile(RecordProfile):
    """Decodes airRohr records published on `sensor-community/{chip id}`: one record, an
    array of records, or a custom-push body → AirQualityObserved."""

    name: str = "sensor-community"
    topic_filters: tuple[str, ...] = ("sensor-community/+",)

    def add_record(
        self, out: Collector, device: DeviceConfig, record: Any, received_at: datetime
    ) -> None:
        """One record's values into the device's AirQualityObserved entity."""
        _record(out, (ENTITY_TYPE, device.entity_key), record, received_at)


def _record(out: Collector, entity: EntityRef, record: dict[str, Any], default: datetime) -> None:
    if "sensordatavalues" not in record:
        raise DecodeError("invalid_payload", "no sensordatavalues")
    stamp = record.get("timestamp")
    observed = parse_time(stamp) if stamp else default
    out.times.append(observed)
    position: dict[str, Any] = {}
    seen: set[str] = set()
    entity_type, entity_key = entity
    append = out.readings.append
    for index, item in enumerate(object_list(record["sensordatavalues"], "sensordatavalues")):
        value_type = item.get("value_type")
        if not isinstance(value_type, str):
            raise DecodeError("invalid_payload", f"sensordatavalues[{index}]: no value_type")
        # The custom push prefixes the sensor ("SDS_P1"); the API record does not ("P1").
        quantity = value_type.rpartition("_")[2]
        spec = QUANTITIES.get(quantity)
        if spec is not None:
            attribute, unit, divisor = spec
            number = to_float(item.get("value"), value_type)
            # Two sensors measuring the same quantity: the first one listed wins, so a
            # message never holds two values of one attribute at one time.
            if number is not None and attribute not in seen:
                seen.add(attribute)
                append(
                    Reading(entity_type, entity_key, attribute, number / divisor, observed, unit)
                )
        elif value_type == "signal":
            rssi = to_float(item.get("value"), value_type)
            if rssi is not None:
                out.device["rssi"] = int(rssi) if rssi.is_integer() else rssi
        elif quantity in ("lat", "lon"):  # GPS_lat / GPS_lon from a NEO-6M module
            position[quantity] = item.get("value")
        # samples, min_micro, max_micro, interval: firmware loop statistics, not observations.
    location = mapping_at(record, "location")
    found = point_from(
        location.get("latitude", position.get("lat")),
        location.get("longitude", position.get("lon")),
    )
    if found is not None:
        out.context(entity)["location"] = found
    _station(out.device, record)


def _station(properties: dict[str, Any], record: dict[str, Any]) -> None:
    """Firmware version and sensor model names (from the API record's sensor block)."""
    if record.get("software_version"):
        properties["softwareVersion"] = record["software_version"]
    sensor_type = mapping_at(mapping_at(record, "sensor"), "sensor_type").get("name")
    if sensor_type:
        names = properties.setdefault("sensorType", [])
        if sensor_type not in names:
            names.append(sensor_type)


PROFILE = SensorCommunityProfile()

"""Telraam passer-by counters (`telraam/{segment}/traffic`).

Formats: Telraam API v1 `/reports/traffic` records (counts per mode, `_lft`/`_rgt` per
direction, `v85`, `car_speed_hist_0to120plus`, `uptime`, interval start in `date`) and the
live snapshot (`/reports/traffic_snapshot_live`, GeoJSON features with the same totals).
People and bicycles become ItemFlowObserved, cars and heavy vehicles TrafficFlowObserved
(Smart Data Models, dataModel.Transportation).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from devices.model import DecodeError, DeviceConfig, Reading
from devices.profiles.common import (
    Collector,
    RecordProfile,
    as_records,
    mapping_at,
    object_list,
    parse_time,
    to_float,
    to_iso,
)

KMH = "KMH"

#: Telraam splits counts by direction of travel, "lft" and "rgt" as the camera sees them.
LEFT = "urn:ngsi-ld:Dataset:lft"
RIGHT = "urn:ngsi-ld:Dataset:rgt"
#: Telraam mode → (entity type, context property, its Smart Data Models value,
#: (record key, dataset id) of the total and of the two directions).
MODES: tuple[tuple[str, str, str, str, tuple[tuple[str, str | None], ...]], ...] = tuple(
    (mode, entity_type, kind, value, ((mode, None), (f"{mode}_lft", LEFT), (f"{mode}_rgt", RIGHT)))
    for mode, entity_type, kind, value in (
        ("pedestrian", "ItemFlowObserved", "itemType", "pedestrian"),
        ("bike", "ItemFlowObserved", "itemType", "bicycle"),
        ("car", "TrafficFlowObserved", "vehicleType", "car"),
        ("heavy", "TrafficFlowObserved", "vehicleType", "lorry"),
    )
)
#: Report `interval` / snapshot `period` → length of the counting interval.
INTERVALS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


class TelraamProfile(RecordProfile):
    """Decodes Telraam traffic reports and live snapshots: one record, a report response,
    a record array, or a GeoJSON Feature(Collection)."""

    name: str = "telraam"
    topic_filters: tuple[str, ...] = ("telraam/+/traffic",)
    list_key = "report"

    def records(self, document: Any) -> list[Any]:
        """(record, geometry or None) pairs from any of the accepted shapes."""
        if isinstance(document, dict) and document.get("type") == "FeatureCollection":
            document = object_list(document.get("features"), "features")
        pairs = []
        for item in as_records(document, self.list_key):
            if item.get("type") == "Feature":
                pairs.append((mapping_at(item, "properties"), item.get("geometry")))
            else:
                pairs.append((item, None))
        return pairs

    def add_record(
        self, out: Collector, device: DeviceConfig, record: Any, received_at: datetime
    ) -> None:
        """One interval of one segment: a flow entity per mode, uptime on the Device."""
        _record(out, device, record[0], record[1], received_at)


def _record(
    out: Collector, device: DeviceConfig, record: Any, geometry: Any, default: datetime
) -> None:
    start = parse_time(record["date"]) if record.get("date") else default
    out.times.append(start)
    segment = record.get("segment_id")
    segment_key = device.entity_key if segment is None else str(segment)
    context: dict[str, Any] = {
        "dateObservedFrom": to_iso(start),
        "refRoadSegment": {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:RoadSegment:telraam-{segment_key}",
        },
    }
    period = record.get("interval") or record.get("period")
    interval = INTERVALS.get(period) if isinstance(period, str) else None
    if interval is not None:
        context["dateObservedTo"] = to_iso(start + interval)
    if isinstance(geometry, dict):
        context["location"] = geometry
    readings = out.readings
    append = readings.append
    for mode, entity_type, kind, value, counts in MODES:
        entity_key = f"telraam-{segment_key}-{mode}"
        entity = (entity_type, entity_key)
        before = len(readings)
        for source, dataset in counts:
            count = to_float(record.get(source), source)
            if count is not None:
                append(Reading(entity_type, entity_key, "intensity", count, start, None, dataset))
        if mode == "car":
            out.add(entity, "v85", to_float(record.get("v85"), "v85"), start, KMH)
            out.add(entity, "speedHistogram", _histogram(record), start)
        if len(readings) > before:
            # Records of one message come in time order, so the newest interval's context wins.
            properties = out.context(entity)
            properties.update(context)
            properties[kind] = value
    uptime = to_float(record.get("uptime"), "uptime")
    out.add(("Device", device.device_id), "uptime", uptime, start)


def _histogram(record: dict[str, Any]) -> list[Any] | None:
    """Share of cars per 5 km/h bin, 0 to 120+ km/h (Telraam `car_speed_hist_0to120plus`)."""
    histogram = record.get("car_speed_hist_0to120plus")
    if histogram is None or isinstance(histogram, list):
        return histogram or None
    raise DecodeError("wrong_type", "car_speed_hist_0to120plus: expected an array")


PROFILE = TelraamProfile()

"""Alert transitions as Smart Data Models `Alert` entities, history rows and notifications.

Pure. One Alert entity per episode (rule, source entity, raising time): raised and updated
transitions set its severity, description and the value that caused them; resolved sets
`validTo`. `alertState` and `triggerValue` carry observedAt, so the temporal API shows every
transition of an alert.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ngsi.mapping import format_datetime
from ngsi.vocabulary import IngestVocabulary
from storage.records import EntityFragment

from .readings import EntityInfo
from .state import Transition

ALERT_TYPE = "Alert"


def alert_id(transition: Transition) -> str:
    """The id of the Alert entity of the transition's episode."""
    source = transition.entity_id.removeprefix("urn:ngsi-ld:")
    raised = transition.raised_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"urn:ngsi-ld:Alert:{transition.rule_id}:{source}:{raised}"


def _date_time(moment: datetime) -> dict[str, Any]:
    return {"type": "Property", "value": {"@type": "DateTime", "@value": format_datetime(moment)}}


def alert_attributes(
    transition: Transition, rule_name: str, info: EntityInfo | None
) -> dict[str, Any]:
    """The Alert's attributes under their short names (normalized NGSI-LD)."""
    observed = format_datetime(transition.at)
    attributes: dict[str, Any] = {
        "name": {"type": "Property", "value": rule_name},
        "alertRule": {"type": "Property", "value": transition.rule_id},
        "category": {"type": "Property", "value": transition.category},
        "subCategory": {"type": "Property", "value": transition.sub_category},
        "severity": {"type": "Property", "value": transition.severity},
        "description": {"type": "Property", "value": transition.detail},
        "alertSource": {"type": "Relationship", "object": transition.entity_id},
        "validFrom": _date_time(transition.raised_at),
        "dateIssued": _date_time(transition.raised_at),
        "alertState": {"type": "Property", "value": transition.change, "observedAt": observed},
    }
    if math.isfinite(transition.value):
        attributes["triggerValue"] = {
            "type": "Property",
            "value": transition.value,
            "observedAt": observed,
        }
    if math.isfinite(transition.peak):
        attributes["peakValue"] = {"type": "Property", "value": transition.peak}
    if transition.change == "resolved":
        attributes["validTo"] = _date_time(transition.at)
    if info is not None and info.longitude is not None and info.latitude is not None:
        attributes["location"] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [info.longitude, info.latitude]},
        }
    return attributes


class AlertWriter:
    """Turns transitions into storage rows (IRIs, as ingest stores them)."""

    def __init__(self, vocabulary: IngestVocabulary | None = None) -> None:
        self._vocabulary = vocabulary or IngestVocabulary()
        self.type_iri = self._vocabulary.entity_type(ALERT_TYPE)

    def rows(
        self, transition: Transition, short: dict[str, Any]
    ) -> tuple[EntityFragment, list[tuple[Any, ...]]]:
        """The entity fragment and the observation rows of one transition."""
        expand = self._vocabulary.attribute
        attributes = {expand(ALERT_TYPE, name): value for name, value in short.items()}
        entity = alert_id(transition)
        fragment = EntityFragment(
            transition.tenant, entity, self.type_iri, attributes, transition.at, transition.at
        )
        observations: list[tuple[Any, ...]] = [
            (transition.tenant, entity, self.type_iri, expand(ALERT_TYPE, "alertState"), "",
             transition.at, None, transition.change, None),
        ]  # fmt: skip
        if math.isfinite(transition.value):
            observations.append(
                (transition.tenant, entity, self.type_iri, expand(ALERT_TYPE, "triggerValue"),
                 "", transition.at, float(transition.value), None, None)
            )  # fmt: skip
        return fragment, observations


def alert_notification(
    transition: Transition, short: dict[str, Any], notification_id: str, now: datetime
) -> dict[str, Any]:
    """The body sent to an alert rule's own targets: an NGSI-LD-style Notification."""
    return {
        "id": notification_id,
        "type": "Notification",
        "subscriptionId": f"rule:{transition.rule_id}",
        "notifiedAt": format_datetime(now),
        "alertChange": transition.change,
        "data": [{"id": alert_id(transition), "type": ALERT_TYPE, **short}],
    }

"""GIPOD hindrance consequences (`mobiliteit:gevolg` labels, Dutch) → closure and dispositions.

Pure. GIPOD names each consequence with a taxonomy entry whose `skos:prefLabel` says who is
affected and how ("Beperkte doorgang voor voetgangers", "Afgesloten in 1 rijrichting",
"Geen doorgang voor gemotoriseerd verkeer"...); the labels are matched on their words, so
an entry added to the taxonomy still lands somewhere sensible (an unknown one becomes the
disposition `other` with the label as comment). docs/gipod.md lists the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from feeds.roadworks import Closure

#: Words naming only people on foot or on a bike (their hindrance does not close the road).
SOFT_TARGETS = ("voetganger", "fietser", "voetpad", "fietspad", "trottoir", "mindervaliden")
#: Words naming motor traffic or all traffic.
ROAD_TARGETS = (
    "gemotoriseerd", "alle verkeer", "alle weggebruikers", "rijbaan", "rijweg", "voertuigen",
    "auto", "vrachtverkeer", "doorgaand verkeer", "wegverkeer",
)  # fmt: skip
_LANES = re.compile(r"(\d+)\s*rijstro(?:ok|ken)")


@dataclass(frozen=True)
class Consequences:
    """What a hindrance does to the road, in the roadwork contract's terms."""

    closure: Closure
    lanes_closed: int | None
    dispositions: tuple[dict[str, Any], ...]


def _disposition(label: str) -> tuple[str, Closure]:
    """The disposition of one consequence label and how much of the road it closes."""
    text = label.lower()
    soft = any(word in text for word in SOFT_TARGETS)
    road = any(word in text for word in ROAD_TARGETS) or not soft
    closed = any(word in text for word in ("afgesloten", "geen doorgang", "onderbroken"))
    if "parkeer" in text:
        return "parkingReduction", "none"
    if "omleiding" in text:
        return "detour", "partial"
    if "verkeerslicht" in text:
        return "alternatingLights", "partial"
    if "afwisselend" in text:
        return "alternatingTraffic", "partial"
    if "snelheid" in text:
        return "speedReduction", "partial"
    if soft and not road:
        if "fiets" in text:
            return ("cyclewayClosed" if closed else "cyclewayReduction"), "none"
        return ("sidewalkClosed" if closed else "sidewalkReduction"), "none"
    if closed and ("rijrichting" in text or "richting" in text):
        return "directionClosed", "partial"
    if closed and "rijstro" in text and "alle rijstroken" not in text:
        return "laneClosed", "partial"
    if closed or "volledig" in text:
        return "roadClosed", "full"
    if any(word in text for word in ("beperkt", "versmal", "rijstro", "hinder")):
        return "laneReduction", "partial"
    return "other", "partial"


_SEVERITY = {"none": 0, "partial": 1, "full": 2}


def consequences_of(labels: list[str]) -> Consequences:
    """The closure (the worst of all consequences), lanes closed and dispositions of a
    hindrance; without any consequence the road is taken as partly obstructed."""
    if not labels:
        return Consequences("partial", None, ())
    closure: Closure = "none"
    lanes: int | None = None
    dispositions: list[dict[str, Any]] = []
    for label in dict.fromkeys(labels):  # one disposition per distinct label, in order
        disposition, impact = _disposition(label)
        if _SEVERITY[impact] > _SEVERITY[closure]:
            closure = impact
        if (match := _LANES.search(label.lower())) and disposition in ("laneClosed",):
            lanes = max(lanes or 0, int(match.group(1)))
        dispositions.append({"disposition": disposition, "comment": label})
    return Consequences(closure, lanes, tuple(dispositions))

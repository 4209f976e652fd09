"""Rule durations: ISO 8601 (`PT10M`, `PT1H`, `P1D`, `P1W`) or a number of seconds.

Only fixed-length designators are accepted: a month or a year has no fixed number of seconds,
so `P1M` or `P1Y` is refused with a message that says what to write instead (`P30D`, `P365D`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_ISO_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<years>\d+(?:[.,]\d+)?)Y)?(?:(?P<months>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?"
)
_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
#: Longest duration a rule may name: a year of days keeps microsecond arithmetic exact.
LONGEST = timedelta(days=3660)


def parse_duration(value: Any) -> timedelta:
    """A timedelta from ISO 8601 text, a number of seconds or a timedelta; ValueError if not."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, bool):
        raise ValueError("a duration is ISO 8601 text such as PT10M, or a number of seconds")
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number of seconds, not {value}")
        duration = timedelta(seconds=value)
    elif isinstance(value, str):
        duration = _parse_iso(value.strip())
    else:
        raise ValueError("a duration is ISO 8601 text such as PT10M, or a number of seconds")
    if duration < timedelta(0):
        raise ValueError("a duration cannot be negative")
    if duration > LONGEST:
        raise ValueError(f"a duration can be at most {format_duration(LONGEST)}")
    return duration


def _parse_iso(text: str) -> timedelta:
    found = _ISO_DURATION.fullmatch(text.upper())
    if not found or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration: write e.g. PT30S, PT10M, PT1H, P1D or P1W,"
            " or a number of seconds"
        )
    parts = found.groupdict()
    if parts["years"] or parts["months"]:
        raise ValueError(
            f"{text!r} names months or years, which have no fixed length: use days instead"
            " (P30D, P365D); note that M means months before the T and minutes after it (PT10M)"
        )
    seconds = sum(
        float(parts[name].replace(",", ".")) * factor
        for name, factor in _SECONDS.items()
        if parts[name]
    )
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """The canonical ISO 8601 text of a duration: P1D, PT1H30M, PT0.5S, PT0S."""
    microseconds = duration // timedelta(microseconds=1)
    days, rest = divmod(microseconds, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    whole, fraction = divmod(rest, 1_000_000)
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if rest:
        time += f"{whole}.{fraction:06d}".rstrip("0") + "S" if fraction else f"{whole}S"
    text = "P" + (f"{days}D" if days else "")
    if time:
        text += "T" + time
    return text if text != "P" else "PT0S"


def describe_duration(duration: timedelta) -> str:
    """A short human form for alert details: '45 s', '10 min', '1 h 30 min', '2 d'."""
    seconds = round(duration.total_seconds())
    if seconds < 60:
        return f"{duration.total_seconds():g} s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts[:2])


#: A rule duration field: accepts ISO 8601 or seconds, serialises to ISO 8601 in JSON and YAML.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]

"""The parameters of a temporal read, checked into a HistoryRequest and rendering options:
pure (the caller passes the settings and the clock).

The same parameters come from the query string (GET) or from a Query body's `temporalQ`
(POST /temporal/entityOperations/query, clause 5.2.21), where lists and numbers may be JSON.
Choices beyond ngsi/temporal_params.py:
- `aggrMethods`, `aggrPeriodDuration` and `gapFill` without aggregatedValues, and `lastN`
  with it, are BadRequestData: silently ignoring them would answer another question.
- `timeproperty` other than observedAt is OperationNotSupported: the history is kept by
  observedAt only (createdAt/modifiedAt of instances are not stored).
- `timezone` (Stadspuls extension): the IANA zone of calendar periods, default the setting.
- `gapFill` (Stadspuls extension): null, previous or linear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ngsi.context import ActiveContext
from ngsi.errors import ErrorType, NgsiError, bad_request
from ngsi.temporal_history import HistoryRequest
from ngsi.temporal_output import AGGREGATED_VALUES, TemporalOptions, parse_temporal_options
from ngsi.temporal_params import (
    GAP_FILLS,
    parse_aggregation,
    parse_gap_fill,
    parse_last_n,
    parse_time_window,
)

#: The members of a TemporalQuery (table 5.2.21-1) this broker reads.
TEMPORAL_QUERY_MEMBERS = (
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "aggrMethods",
    "aggrPeriodDuration",
)


class TemporalParameters:
    """The temporal parameters of one request, as given (query string or temporalQ)."""

    def __init__(self, **given: Any) -> None:
        self.given = given

    def text(self, name: str) -> str | None:
        """One parameter as text (lists joined with commas, integers as written)."""
        value = self.given.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ",".join(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise bad_request(f"{name} must be a string")


def split_names(value: str | None) -> list[str]:
    """A comma-separated list of names (empty items dropped)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone; BadRequestData when there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(
            f"timezone must be an IANA time zone such as Europe/Brussels, not {name!r}"
        ) from None


def parse_history_request(
    params: TemporalParameters,
    context: ActiveContext,
    attrs: str | None,
    *,
    default_zone: str,
    max_instances: int,
    now: datetime,
) -> tuple[HistoryRequest, TemporalOptions]:
    """The checked history request and how to render it (see the module docstring)."""
    text = params.text
    window = parse_time_window(
        text("timerel"), text("timeAt"), text("endTimeAt"), text("timeproperty")
    )
    if window is not None and window.timeproperty != "observedAt":
        raise NgsiError(
            ErrorType.OPERATION_NOT_SUPPORTED,
            f"timeproperty={window.timeproperty}: this broker keeps history by observedAt only",
        )
    shape, sys_attrs = parse_temporal_options(text("options"), text("format"))
    aggregated = shape == AGGREGATED_VALUES
    for name in ("aggrMethods", "aggrPeriodDuration", "gapFill"):
        if text(name) is not None and not aggregated:
            raise bad_request(f"{name} needs options=aggregatedValues (or format=aggregatedValues)")
    last_n = parse_last_n(text("lastN"))
    if aggregated and last_n is not None:
        raise bad_request("lastN does not apply to aggregatedValues: aggregate a time window")
    gap_fill = text("gapFill")
    if gap_fill is not None and gap_fill not in GAP_FILLS:
        raise bad_request(f"gapFill must be one of {', '.join(GAP_FILLS)}, not {gap_fill!r}")
    names = split_names(attrs)
    history = HistoryRequest(
        window=window,
        attributes=tuple(context.expand(name) for name in names) if names else None,
        now=now,
        zone=parse_zone(text("timezone") or default_zone),
        max_instances=max_instances,
        last_n=last_n,
        aggregation=(
            parse_aggregation(text("aggrMethods"), text("aggrPeriodDuration"))
            if aggregated
            else None
        ),
        gap_fill=parse_gap_fill(gap_fill),
    )
    return history, render_options(context, shape, sys_attrs, text)


def render_options(
    context: ActiveContext, shape: str, sys_attrs: bool, text: Any
) -> TemporalOptions:
    """Representation, sysAttrs, `lang`, `pick` and `omit` (names expanded)."""
    pick, omit = text("pick"), text("omit")
    if pick is not None and omit is not None:
        raise bad_request("pick and omit cannot be used together")

    def members(names: str) -> frozenset[str]:
        return frozenset(
            n if n in ("id", "type") else context.expand(n) for n in split_names(names)
        )

    return TemporalOptions(
        format=shape,
        sys_attrs=sys_attrs,
        lang=text("lang"),
        pick=members(pick) if pick is not None else None,
        omit=members(omit) if omit is not None else frozenset(),
    )

"""Grafana's interpolation of a PostgreSQL panel query, for the tests of the dashboards' SQL.

No Grafana server runs on these machines. Before Grafana's PostgreSQL data source runs a
panel's rawSql, the frontend interpolates the dashboard variables (`$name`, `${name}`,
`${name:sqlstring}`, the global `$__interval`) and the backend then expands the macros
(pkg/tsdb/grafana-postgresql-datasource/macros.go in grafana/grafana): `expand` does both,
for the subset the shipped dashboards use, and raises ValueError on anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MACRO = re.compile(r"\$(\w+)\(([^)]*)\)")
VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
INTERVAL_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it runs a panel: time range, $__interval, variables, backend."""

    time_from: datetime
    time_to: datetime
    interval: timedelta
    variables: dict[str, str]
    #: The data source's "TimescaleDB" switch: $__timeGroup becomes time_bucket().
    timescaledb: bool = False


def grafana_interval(interval: timedelta) -> str:
    """$__interval as Grafana writes it: the largest whole unit (1d, 1h, 5m, 30s)."""
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC, as Grafana formats $__timeFrom and $__timeFilter."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def go_number(value: float) -> str:
    """A float as Go's %v prints it (3600, not 3600.0)."""
    return str(int(value)) if value == int(value) else repr(value)


def _interpolate_variables(sql: str, context: QueryContext) -> str:
    """Dashboard variables; unknown names stay as they are, as Grafana leaves them."""
    values = {
        **context.variables,
        "__interval": grafana_interval(context.interval),
        "__interval_ms": str(int(context.interval.total_seconds() * 1000)),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in values:
            return match.group(0)
        value, style = values[name], match.group(2)
        if style == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        if style not in (None, "raw"):
            raise ValueError(f"variable format {style!r} is not implemented here")
        return value

    return VARIABLE.sub(replace, sql)


def _macro(name: str, args: list[str], context: QueryContext) -> str:
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{rfc3339(context.time_from)}' AND '{rfc3339(context.time_to)}'"
    if name == "__timeFrom":
        return f"'{rfc3339(context.time_from)}'"
    if name == "__timeTo":
        return f"'{rfc3339(context.time_to)}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        found = INTERVAL.match(args[1].strip("'"))
        if found is None or len(args) > 2:
            raise ValueError(f"interval {args[1]!r} (or a fill mode) is not implemented here")
        seconds = int(found.group(1)) * INTERVAL_SECONDS[found.group(2)]
        if context.timescaledb:
            group = f"time_bucket('{seconds:.3f}s',{args[0]})"
        else:
            step = go_number(seconds)
            group = f"floor(extract(epoch from {args[0]})/{step})*{step}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    raise ValueError(f"unknown macro ${name}")


def expand(sql: str, context: QueryContext) -> str:
    """A panel's rawSql as Grafana's PostgreSQL data source sends it to the database."""
    sql = _interpolate_variables(sql, context)

    def replace(match: re.Match[str]) -> str:
        name, args = match.group(1), [arg.strip() for arg in match.group(2).split(",")]
        # Grafana: $__timeGroup directly followed by ',' is the pre-5.3 form with an alias.
        if name == "__timeGroup" and sql[match.end() : match.end() + 1] == ",":
            name = "__timeGroupAlias"
        return _macro(name, args, context)

    return MACRO.sub(replace, sql)

"""A dry run over stored history: fetch the rule's readings, replay them (alerts/dryrun.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from ngsi.errors import ErrorType, NgsiError

from .dryrun import dry_run
from .engine import AlertEngine
from .readings import EntityInfo, Readings
from .rules import Rule, SilenceRule, WindowRule

#: The most readings one dry run replays; more is refused with a hint to narrow it.
MAX_READINGS = 2_000_000

_HISTORY = """
SELECT tenant, entity_id, entity_type, attribute, dataset_id, observed_at, value_num,
       value_json, unit_code
FROM observations
WHERE tenant = %(tenant)s AND observed_at > %(start)s AND observed_at <= %(end)s
  AND (%(any_attribute)s OR attribute = ANY(%(attributes)s))
  AND (%(entity)s::text IS NULL OR entity_id = %(entity)s)
  AND (%(entity_type)s::text IS NULL OR entity_type = %(entity_type)s)
ORDER BY observed_at
LIMIT %(limit)s
"""


def load_history(
    conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime
) -> dict[str, Any]:
    """Replay `rule` over the stored readings between start and end; the JSON answer."""
    engine = AlertEngine()
    expanded = engine.expanded(rule)
    lead = expanded.window if isinstance(expanded, WindowRule) else timedelta(hours=1)
    rows = conn.execute(
        _HISTORY,
        {
            "tenant": rule.tenant,
            "start": start - lead,
            "end": end,
            "any_attribute": isinstance(expanded, SilenceRule) and not expanded.attributes(),
            "attributes": list(expanded.attributes()),
            "entity": expanded.scope.entity,
            "entity_type": expanded.scope.entity_type,
            "limit": MAX_READINGS + 1,
        },
    ).fetchall()
    if len(rows) > MAX_READINGS:
        raise NgsiError(
            ErrorType.BAD_REQUEST_DATA,
            f"more than {MAX_READINGS} readings to replay: choose a shorter period",
        )
    readings = Readings.from_rows(rows)
    entities: dict[str, EntityInfo] = {}
    if rule.scope.device_model or rule.scope.area:
        entities = engine.places(conn, readings)
    result = dry_run(expanded, readings, entities, start, end)
    return {
        "rule": rule.id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "readings": len(readings),
        "timesFired": result.times_fired,
        "episodes": [
            {
                "entity": episode.entity_id,
                "raisedAt": episode.raised_at.isoformat(),
                "resolvedAt": episode.resolved_at.isoformat() if episode.resolved_at else None,
                "peak": episode.peak,
            }
            for episode in result.episodes
        ],
    }

"""What the temporal writes and reads need from the database beyond storage/temporal_store.py.

`fetch_first_n` is a stopgap: it belongs in storage/temporal_store.py next to `fetch_last_n`
(it reuses that module's series walk and array decoding, which are private there).
`merge_latest_state` keeps `entities` in step with temporal writes (the API's and
`stadspuls backfill`'s), as ingest does for its readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from ngsi.temporal_input import TemporalFragment, merge_newest
from storage.entity_store import EntityStore, StoredEntity
from storage.temporal_store import (
    _SERIES_ARRAYS,
    _SERIES_OF_ATTRIBUTES,
    _SERIES_OF_ENTITIES,
    Series,
    SeriesKey,
    _fetch_arrays,
    _series,
)

#: As storage/temporal_store.py's `_NEWEST_OF_SERIES`, oldest first.
_OLDEST_OF_SERIES = """
SELECT s.entity_id, s.attribute, s.dataset_id, oldest.* FROM series AS s
CROSS JOIN LATERAL (SELECT {arrays} FROM (
  SELECT * FROM observations
  WHERE tenant = %(tenant)s AND entity_id = s.entity_id AND attribute = s.attribute
    AND dataset_id = s.dataset_id
    AND observed_at >= %(start)s::timestamptz AND observed_at < %(end)s::timestamptz
  ORDER BY observed_at LIMIT %(n)s) AS first) AS oldest
WHERE oldest.times IS NOT NULL ORDER BY 1, 2, 3
"""


async def fetch_first_n(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_ids: Sequence[str],
    attributes: Sequence[str] | None,
    n: int,
    start: datetime | None,
    end: datetime | None,
) -> dict[SeriesKey, Series]:
    """Per series the `n` oldest instances in [start, end), oldest first (forward paging)."""
    series = _SERIES_OF_ENTITIES if attributes is None else _SERIES_OF_ATTRIBUTES
    query = sql.SQL(series + _OLDEST_OF_SERIES).format(arrays=sql.SQL(_SERIES_ARRAYS))
    params = {
        "tenant": tenant,
        "ids": list(dict.fromkeys(entity_ids)),
        "attributes": list(dict.fromkeys(attributes or ())),
        "start": start if start is not None else "-infinity",
        "end": end if end is not None else "infinity",
        "n": n,
    }
    rows = await _fetch_arrays(conn, query, params)
    return {(row[0], row[1], row[2]): _series(row[3:]) for row in rows}


async def history_entity_type(
    conn: AsyncConnection[Any], tenant: str, entity_id: str
) -> str | None:
    """The entity type of an entity's history, or None when it has none."""
    cursor = await conn.execute(
        "SELECT entity_type FROM observations WHERE tenant = %s AND entity_id = %s LIMIT 1",
        (tenant, entity_id),
    )
    row = await cursor.fetchone()
    return str(row[0]) if row else None


async def rollup_backend(conn: AsyncConnection[Any]) -> str:
    """The backend name fetch_rollups needs: "timescaledb" when `observations_hourly`
    exists, else "postgres" (`observation_rollups`)."""
    cursor = await conn.execute("SELECT to_regclass('observations_hourly') IS NOT NULL")
    row = await cursor.fetchone()
    return "timescaledb" if row and row[0] else "postgres"


async def merge_latest_state(
    store: EntityStore, tenant: str, fragment: TemporalFragment, *, create: bool
) -> bool:
    """Merge the fragment's newest instances into the entity's latest state (an instance
    replaces one of its datasetId that is not newer), creating the entity when `create` and
    absent; whether the entity existed before."""
    entity = await store.get(tenant, fragment.entity_id, lock=True)
    if entity is None and create:
        new = StoredEntity(fragment.entity_id, fragment.types, {}, fragment.scope)
        merge_newest(new.attributes, fragment.attributes())
        if await store.create(tenant, new):
            return False
        entity = await store.get(tenant, fragment.entity_id, lock=True)  # created meanwhile
    if entity is None:
        return False
    changed = merge_newest(entity.attributes, fragment.attributes())
    types = list(dict.fromkeys(entity.types + fragment.types))
    if changed or types != entity.types:
        entity.types = types
        await store.save(tenant, entity)
    return True

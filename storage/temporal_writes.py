"""Writes of the observation history for the temporal API and `stadspuls backfill`.

Writes record the time ranges they change in `rollup_pending` in the caller's transaction
(storage/rollups.py). Deleting a whole entity's or attribute's history removes its
`observation_rollups`, `observation_daily_rollups` and `observation_hour_packs` rows
directly instead: recomputing years of hours would cost far more.
`merge_latest_state` keeps `entities` in step with these writes, as ingest does for its
readings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from ngsi.temporal_input import TemporalFragment, merge_newest
from storage.entity_store import EntityStore, StoredEntity, jsonb
from storage.partitions import months_of, partition_name
from storage.records import ObservationRow
from storage.rollups import (
    MICROSECOND,
    lock_tenant_rollups_async,
    record_pending_async,
    tenant_ranges,
)

_MISSING_PARTITIONS = """
SELECT c.relkind = 'p', ARRAY(SELECT n FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL)
FROM pg_class AS c WHERE c.oid = 'observations'::regclass
"""


async def ensure_partitions(conn: AsyncConnection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    """Create the monthly partitions `rows` need (plain PostgreSQL; storage/partitions.py).

    Call it (or insert_instances) on an idle connection where possible: the partitions are
    then created and committed in a short transaction of their own. Inside a transaction it
    is a savepoint, and the ACCESS EXCLUSIVE lock of CREATE ... PARTITION OF on
    `observations` is held until that transaction ends.
    """
    months = months_of(rows)
    if not months:
        return
    async with conn.transaction():  # its own transaction when idle, else a savepoint
        cursor = await conn.execute(_MISSING_PARTITIONS, [[partition_name(m) for m in months]])
        found = await cursor.fetchone()
        if found is None or not found[0]:
            return  # not partitioned: TimescaleDB
        for month in months:
            if partition_name(month) in found[1]:
                await _create_partition(conn, month)


async def _create_partition(conn: AsyncConnection[Any], month: tuple[int, int]) -> None:
    following = (month[0] + month[1] // 12, month[1] % 12 + 1)
    statement = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF observations FOR VALUES FROM ({}) TO ({})"
    ).format(
        sql.Identifier(partition_name(month)),
        sql.Literal(datetime(*month, 1, tzinfo=UTC)),
        sql.Literal(datetime(*following, 1, tzinfo=UTC)),
    )
    try:
        async with conn.transaction():
            await conn.execute(statement)
    except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
        pass  # another writer created it meanwhile
    except psycopg.errors.InvalidObjectDefinition:
        pass  # a partition of another name covers the month


_UPSERT = """
INSERT INTO observations (tenant, entity_id, entity_type, attribute, dataset_id, observed_at,
                          value_num, value_json, unit_code)
SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
                         %s::float8[], %s::jsonb[], %s::text[])
ON CONFLICT (tenant, entity_id, attribute, dataset_id, observed_at) DO UPDATE
SET entity_type = EXCLUDED.entity_type, value_num = EXCLUDED.value_num,
    value_json = EXCLUDED.value_json, unit_code = EXCLUDED.unit_code
"""


async def insert_instances(
    conn: AsyncConnection[Any], tenant: str, rows: Iterable[tuple[Any, ...]]
) -> int:
    """Write instances (ObservationRow order; `tenant` wins), replacing stored ones; the count.

    Of several rows with one key the last is written (a statement may change a row once).
    """
    latest: dict[tuple[Any, ...], ObservationRow] = {}
    for row in rows:
        stored = ObservationRow(tenant, *row[1:])
        latest[(stored[1], stored[3], stored[4], stored[5])] = stored
    written = [latest[key] for key in sorted(latest)]  # key order: no deadlocks between writers
    if not written:
        return 0
    await ensure_partitions(conn, written)
    columns = [list(column) for column in zip(*written, strict=True)][1:]
    columns[5] = [None if value is None else float(value) for value in columns[5]]
    columns[6] = [None if value is None else jsonb(value) for value in columns[6]]
    await conn.execute(_UPSERT, [tenant, *columns])
    await record_pending_async(conn, tenant_ranges(written))
    return len(written)


#: The plain PostgreSQL rollups of a series, deleted with its history.
_ROLLUP_TABLES = ("observation_rollups", "observation_daily_rollups", "observation_hour_packs")


async def _has_rollup_table(conn: AsyncConnection[Any]) -> bool:
    cursor = await conn.execute("SELECT to_regclass('observation_rollups') IS NOT NULL")
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _delete_history(
    conn: AsyncConnection[Any], tenant: str, condition: str, params: Sequence[Any]
) -> int:
    """Delete a whole entity's or attribute's rows and the rollups that summarize them."""
    table = await _has_rollup_table(conn)
    if table:
        # Serialized with refresh_rollups for this tenant, so that it cannot write back
        # rollups computed from rows deleted here.
        await lock_tenant_rollups_async(conn, tenant)
    cursor = await conn.execute(
        f"WITH gone AS (DELETE FROM observations WHERE tenant = %s AND {condition}"
        " RETURNING observed_at) SELECT count(*), min(observed_at), max(observed_at) FROM gone",
        [tenant, *params],
    )
    row = await cursor.fetchone()
    count, oldest, newest = row if row else (0, None, None)
    if table:
        for rollups in _ROLLUP_TABLES:
            await conn.execute(
                f"DELETE FROM {rollups} WHERE tenant = %s AND {condition}", [tenant, *params]
            )
    elif count and oldest is not None and newest is not None:
        await record_pending_async(conn, [(tenant, oldest, newest + MICROSECOND)])
    return int(count)


async def delete_entity_history(conn: AsyncConnection[Any], tenant: str, entity_id: str) -> int:
    """Delete every instance of an entity (temporal entity delete, clause 5.6.12); the count."""
    return await _delete_history(conn, tenant, "entity_id = %s", [entity_id])


async def delete_attribute_history(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_id: str,
    attribute: str,
    dataset_id: str | None = None,
    delete_all: bool = False,
) -> int:
    """Delete an attribute's instances (clause 5.6.14): of every datasetId with `delete_all`,
    else of `dataset_id` (None: the default instance); the count."""
    if delete_all:
        return await _delete_history(
            conn, tenant, "entity_id = %s AND attribute = %s", [entity_id, attribute]
        )
    return await _delete_history(
        conn,
        tenant,
        "entity_id = %s AND attribute = %s AND dataset_id = %s",
        [entity_id, attribute, dataset_id or ""],
    )


def _split_value(value: Any) -> tuple[float | None, Any]:
    """(value_num, value_json) as ingest stores them: numbers apart, anything else as jsonb."""
    if type(value) is int or type(value) is float:
        try:
            return float(value), None
        except OverflowError:
            pass
    return None, jsonb(value)


async def update_instance(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_id: str,
    attribute: str,
    observed_at: datetime,
    dataset_id: str | None,
    value: Any,
    unit_code: str | None = None,
) -> bool:
    """Replace one instance's value (and unit code, when given) (clause 5.6.15); False if none."""
    number, other = _split_value(value)
    cursor = await conn.execute(
        "UPDATE observations SET value_num = %s, value_json = %s,"
        " unit_code = coalesce(%s, unit_code) WHERE tenant = %s AND entity_id = %s"
        " AND attribute = %s AND dataset_id = %s AND observed_at = %s",
        [number, other, unit_code, tenant, entity_id, attribute, dataset_id or "", observed_at],
    )
    if cursor.rowcount:
        await record_pending_async(conn, [(tenant, observed_at, observed_at + MICROSECOND)])
    return cursor.rowcount > 0


async def delete_instance(
    conn: AsyncConnection[Any],
    tenant: str,
    entity_id: str,
    attribute: str,
    observed_at: datetime,
    dataset_id: str | None,
) -> bool:
    """Delete one instance (clause 5.6.16); False if there was none."""
    cursor = await conn.execute(
        "DELETE FROM observations WHERE tenant = %s AND entity_id = %s AND attribute = %s"
        " AND dataset_id = %s AND observed_at = %s",
        [tenant, entity_id, attribute, dataset_id or "", observed_at],
    )
    if cursor.rowcount:
        await record_pending_async(conn, [(tenant, observed_at, observed_at + MICROSECOND)])
    return cursor.rowcount > 0


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

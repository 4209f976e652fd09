"""Latest-state upsert: merge each batch's entity fragments into `entities`.

Every batch touches the latest state of every entity it carries, so this is most of what
the database does per message. The common case takes a shortcut: when every observed
attribute of a fragment is at least as new as anything the stored entity holds
(`oldest_observed_at >= entities.newest_observed_at`) and it carries every datasetId
instance the stored entity has (`instance_keys` contains the stored ones), a plain
`jsonb ||` is the correct merge. Late data, fragments with fewer instances, and fragments
that do not say how old they are take the full merge (`stadspuls_merge_attributes`), which
keeps the newer instance of each attribute and datasetId.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from storage.records import EntityFragment

STAGING_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS stadspuls_entities_staging
    (ordinal int4, tenant text COLLATE "C", id text COLLATE "C", type text,
     entity jsonb, instance_keys text[], oldest timestamptz, newest timestamptz)
    ON COMMIT DELETE ROWS;
"""
_COPY = (
    "COPY stadspuls_entities_staging (ordinal, tenant, id, type, entity, instance_keys, oldest,"
    " newest) FROM STDIN (FORMAT BINARY)"
)
_TYPES = ["int4", "text", "text", "text", "jsonb", "text[]", "timestamptz", "timestamptz"]

# Lock the rows in key order first, so two workers updating overlapping entities queue
# behind each other instead of deadlocking.
_LOCK = """
SELECT 1 FROM entities AS current JOIN stadspuls_entities_staging AS staged
    ON current.tenant = staged.tenant AND current.id = staged.id
ORDER BY current.tenant, current.id FOR UPDATE OF current
"""
_SHORTCUT = """
    (staged.oldest >= current.newest_observed_at
     OR (staged.oldest IS NOT NULL AND current.newest_observed_at IS NULL))
    AND staged.instance_keys @> current.instance_keys
"""
_UPDATE = f"""
UPDATE entities AS current SET
    entity = CASE
        WHEN {_SHORTCUT} THEN current.entity || staged.entity
        -- Entirely older than the stored state: its context properties (no observedAt:
        -- location, dateLastValueReported, rssi...) are older too, so only its observations
        -- are merged.
        WHEN staged.newest < current.newest_observed_at
        THEN stadspuls_merge_attributes(current.entity, stadspuls_observed_only(staged.entity))
        ELSE stadspuls_merge_attributes(current.entity, staged.entity)
    END,
    instance_keys = CASE WHEN staged.instance_keys @> current.instance_keys
                         THEN staged.instance_keys
                         ELSE stadspuls_union_keys(current.instance_keys, staged.instance_keys) END,
    newest_observed_at = greatest(current.newest_observed_at, staged.newest),
    modified_at = now()
FROM stadspuls_entities_staging AS staged
WHERE current.tenant = staged.tenant AND current.id = staged.id
"""
# New entities; one inserted meanwhile by another worker is merged in full.
_INSERT = """
INSERT INTO entities AS current (tenant, id, type, entity, instance_keys, newest_observed_at)
SELECT tenant, id, type, entity, instance_keys, newest FROM stadspuls_entities_staging AS staged
WHERE NOT EXISTS (SELECT 1 FROM entities AS e WHERE e.tenant = staged.tenant AND e.id = staged.id)
ORDER BY tenant, id
ON CONFLICT (tenant, id) DO UPDATE
SET entity = stadspuls_merge_attributes(current.entity, EXCLUDED.entity),
    instance_keys = stadspuls_union_keys(current.instance_keys, EXCLUDED.instance_keys),
    newest_observed_at = greatest(current.newest_observed_at, EXCLUDED.newest_observed_at),
    modified_at = now()
"""
# Several fragments of one entity in a batch (not what the mapper makes, but allowed): fold
# them in batch order, because one statement cannot update the same row twice.
_FOLD = """
CREATE TEMP TABLE stadspuls_entities_folded ON COMMIT DROP AS
SELECT min(ordinal) AS ordinal, tenant, id, (array_agg(type ORDER BY ordinal DESC))[1] AS type,
       stadspuls_merge_attributes_agg(entity ORDER BY ordinal) AS entity,
       stadspuls_union_keys_agg(instance_keys) AS instance_keys,
       NULL::timestamptz AS oldest, max(newest) AS newest
FROM stadspuls_entities_staging GROUP BY tenant, id;
TRUNCATE stadspuls_entities_staging;
INSERT INTO stadspuls_entities_staging SELECT * FROM stadspuls_entities_folded;
"""


def instance_keys(attributes: dict[str, Any]) -> tuple[list[str], bool]:
    """`instance_keys` of an entity document, and whether each listed attribute has a default.

    A key is "attribute datasetId" for every instance of every multi-instance attribute (a
    space cannot occur in an attribute name or an IRI). Whoever writes `entities` (ingest
    and the API) keeps the column true, or the `||` shortcut could drop instances.
    """
    keys: list[str] = []
    defaults = True
    for name, value in attributes.items():
        if type(value) is list:
            datasets = [instance.get("datasetId", "") for instance in value]
            keys.extend(f"{name} {dataset}" for dataset in datasets)
            defaults = defaults and "" in datasets
    keys.sort()
    return keys, defaults


def _row(ordinal: int, fragment: EntityFragment) -> tuple[Any, ...]:
    keys, defaults = instance_keys(fragment.attributes)
    # A stored default instance is a plain object, not listed in instance_keys: without its
    # own default instance a multi-instance attribute needs the instance-wise merge.
    oldest = fragment.oldest_observed_at if defaults else None
    return (
        ordinal,
        fragment.tenant,
        fragment.entity_id,
        fragment.entity_type,
        fragment.attributes,
        keys,
        oldest,
        fragment.newest_observed_at,
    )


def reset_staging(cursor: psycopg.Cursor) -> None:
    """Empty the staging table before a second write_entities in the same transaction
    (it is emptied at commit, so a batch's own fragments are still staged), or create it on a
    connection that has not written a batch."""
    cursor.execute(STAGING_TABLE)
    cursor.execute("DELETE FROM stadspuls_entities_staging")


def write_entities(cursor: psycopg.Cursor, fragments: Sequence[EntityFragment]) -> int:
    """Merge `fragments` into the latest state; the number of entities written."""
    if not fragments:
        return 0
    with cursor.copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for ordinal, fragment in enumerate(fragments):
            copy.write_row(_row(ordinal, fragment))
    staged = len({(f.tenant, f.entity_id) for f in fragments})
    if staged != len(fragments):
        cursor.execute(_FOLD)
    cursor.execute(_LOCK)
    cursor.execute(_UPDATE)
    updated = cursor.rowcount
    if updated == staged:  # every entity existed: nothing to insert
        return updated
    cursor.execute(_INSERT)
    return updated + cursor.rowcount

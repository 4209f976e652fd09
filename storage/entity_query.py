"""Runs an entity query (ngsi/query.py) against `entities`.

Everything is SQL when it can be: type, id, idPattern, attrs and q always; the geo-query too
when the database has PostGIS. Without PostGIS a bounding-box prefilter runs in SQL and the
exact geometry test in Python (shapely), so the answer is the same, only slower.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ngsi.errors import bad_request
from ngsi.geo import entity_matches
from ngsi.query import EntityQuery
from storage.entity_store import EntityFilter, EntityStore, StoredEntity
from storage.geosql import compile_geo, prefilter_without_postgis
from storage.qsql import compile_q


def entity_filter(query: EntityQuery, *, postgis: bool) -> EntityFilter:
    """The SQL side of a query; the geo-query is left out without PostGIS."""
    conditions: list[sql.Composable] = []
    if query.q is not None:
        conditions.append(compile_q(query.q, query.expand))
    if query.geo is not None:
        if postgis:
            conditions.append(compile_geo(query.geo, query.expand))
        else:
            prefilter = prefilter_without_postgis(query.geo, query.expand)
            if prefilter is not None:
                conditions.append(prefilter)
    return EntityFilter(
        types=query.types,
        expand=query.expand,
        ids=query.ids,
        id_pattern=query.id_pattern,
        any_attributes=sorted(query.attributes or ()),
        conditions=conditions,
    )


async def run_query(
    store: EntityStore,
    tenant: str,
    query: EntityQuery,
    limit: int,
    offset: int,
    count: bool,
    *,
    postgis: bool,
) -> tuple[list[StoredEntity], int | None]:
    """One page of the query's entities (ordered by id) and, if asked, how many in all."""
    selection = entity_filter(query, postgis=postgis)
    try:
        if query.geo is not None and not postgis:
            matching = [
                entity
                for entity in await store.stream(tenant, selection)
                if entity_matches(query.geo, entity.attributes, query.expand)
            ]
            return matching[offset : offset + limit], len(matching) if count else None
        page = await store.query(tenant, selection, limit, offset) if limit else []
        total = await store.count(tenant, selection) if count else None
    except psycopg.errors.InvalidRegularExpression as error:
        raise bad_request(f"invalid regular expression: {error.diag.message_primary}") from None
    return page, total

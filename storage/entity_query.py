"""Runs an entity query (ngsi/query.py) against `entities`.

Everything is SQL when it can be: type, id, idPattern, attrs and q always; the geo-query too
when the database has PostGIS. Without PostGIS a bounding-box prefilter runs in SQL and the
exact geometry test in Python (shapely), so the answer is the same, only slower.
Several selectors OR'ed (the `entities` of a Query body) run as one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import psycopg
from psycopg import sql

from ngsi.errors import bad_request
from ngsi.geo import entity_matches
from ngsi.query import EntityQuery
from storage.entity_store import EntityFilter, EntityStore, StoredEntity, selector_parts
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


def union_filter(queries: Sequence[EntityQuery], *, postgis: bool) -> EntityFilter:
    """The SQL side of one query, or of several that share attrs, q and geo but no single
    EntityQuery can express: one filter whose WHERE ORs their type, id and idPattern."""
    if len(queries) == 1:
        return entity_filter(queries[0], postgis=postgis)
    shared = replace(queries[0], ids=(), id_pattern=None, types=None)
    selection = entity_filter(shared, postgis=postgis)
    alternatives = [
        sql.SQL("({})").format(
            sql.SQL(" AND ").join(selector_parts(q.types, q.expand, q.ids, q.id_pattern))
        )
        for q in queries
    ]
    selection.conditions.append(sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives)))
    return selection


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
    return await run_queries(store, tenant, [query], limit, offset, count, postgis=postgis)


async def run_queries(
    store: EntityStore,
    tenant: str,
    queries: Sequence[EntityQuery],
    limit: int,
    offset: int,
    count: bool,
    *,
    postgis: bool,
) -> tuple[list[StoredEntity], int | None]:
    """One page of the entities any of `queries` selects (ordered by id; see union_filter)
    and, if asked, how many in all."""
    selection = union_filter(queries, postgis=postgis)
    geo, expand = queries[0].geo, queries[0].expand
    try:
        if geo is not None and not postgis:
            matching = [
                entity
                for entity in await store.stream(tenant, selection)
                if entity_matches(geo, entity.attributes, expand)
            ]
            return matching[offset : offset + limit], len(matching) if count else None
        page = await store.query(tenant, selection, limit, offset) if limit else []
        total = await store.count(tenant, selection) if count else None
    except psycopg.errors.InvalidRegularExpression as error:
        raise bad_request(f"invalid regular expression: {error.diag.message_primary}") from None
    return page, total

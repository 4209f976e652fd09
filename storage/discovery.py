"""What entity types and attributes one tenant holds, for the discovery endpoints (ETSI GS CIM
009, 5.7.5-5.7.8), computed in SQL over `entities`.

An entity's types are `type` plus `extra_types`; its attribute names are the keys of `entity`;
an attribute is one instance (a JSON object) or a JSON array of instances, each with a `type`
member (Property, Relationship, GeoProperty, ...). Everything here is in the stored, expanded
form (docs/ngsi-api.md); the router compacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

#: Every type of an entity `e`, as `t.type`.
_TYPES_OF_E = sql.SQL("CROSS JOIN LATERAL unnest(array_prepend(e.type, e.extra_types)) AS t(type)")
#: Every instance of an attribute value `a.value` (one object, or an array of them).
_INSTANCES_OF_A = sql.SQL(
    "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(a.value) = 'array'"
    " THEN a.value ELSE jsonb_build_array(a.value) END) AS i(instance)"
)
#: The distinct attribute types of the instances `i`, sorted.
_ATTRIBUTE_TYPES = sql.SQL(
    "array_agg(DISTINCT i.instance ->> 'type' ORDER BY i.instance ->> 'type')"
    " FILTER (WHERE i.instance ->> 'type' IS NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class TypeSummary:
    """An entity type and the names of the attributes its entities have (IRIs)."""

    type: str
    attribute_names: list[str]


@dataclass(frozen=True, slots=True)
class AttributeTypes:
    """An attribute name and the attribute types of its instances."""

    name: str
    attribute_types: list[str]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """An entity type: how many entities have it, and their attributes."""

    type: str
    entity_count: int
    attributes: list[AttributeTypes]


@dataclass(frozen=True, slots=True)
class AttributeSummary:
    """An attribute name: its instance count, attribute types and the entity types having it."""

    name: str
    instance_count: int
    attribute_types: list[str]
    type_names: list[str]


async def entity_types(conn: AsyncConnection[Any], tenant: str) -> list[str]:
    """The distinct entity types of the tenant's entities."""
    query = sql.SQL(
        "SELECT DISTINCT t.type FROM entities AS e {types} WHERE e.tenant = %s ORDER BY t.type"
    ).format(types=_TYPES_OF_E)
    cursor = await conn.execute(query, (tenant,))
    return [row[0] for row in await cursor.fetchall()]


async def entity_type_summaries(conn: AsyncConnection[Any], tenant: str) -> list[TypeSummary]:
    """Each entity type with the attribute names found on its entities."""
    query = sql.SQL(
        "SELECT t.type, coalesce(array_agg(DISTINCT a.key ORDER BY a.key)"
        " FILTER (WHERE a.key IS NOT NULL), '{{}}')"
        " FROM entities AS e {types}"
        " LEFT JOIN LATERAL jsonb_object_keys(e.entity) AS a(key) ON true"
        " WHERE e.tenant = %s GROUP BY t.type ORDER BY t.type"
    ).format(types=_TYPES_OF_E)
    cursor = await conn.execute(query, (tenant,))
    return [TypeSummary(type_, list(names)) for type_, names in await cursor.fetchall()]


async def entity_type_info(
    conn: AsyncConnection[Any], tenant: str, entity_type: str
) -> TypeInfo | None:
    """The entities of one type: their count and attributes; None when there are none."""
    parameters = {"tenant": tenant, "type": entity_type}
    of_type = sql.SQL(
        "e.tenant = %(tenant)s AND (e.type = %(type)s OR %(type)s = ANY(e.extra_types))"
    )
    cursor = await conn.execute(
        sql.SQL("SELECT count(*) FROM entities AS e WHERE {}").format(of_type), parameters
    )
    row = await cursor.fetchone()
    count = int(row[0]) if row else 0
    if count == 0:
        return None
    query = sql.SQL(
        "SELECT a.key, coalesce({attribute_types}, '{{}}')"
        " FROM entities AS e CROSS JOIN LATERAL jsonb_each(e.entity) AS a(key, value)"
        " {instances} WHERE {of_type} GROUP BY a.key ORDER BY a.key"
    ).format(attribute_types=_ATTRIBUTE_TYPES, instances=_INSTANCES_OF_A, of_type=of_type)
    cursor = await conn.execute(query, parameters)
    attributes = [AttributeTypes(name, list(types)) for name, types in await cursor.fetchall()]
    return TypeInfo(entity_type, count, attributes)


async def attribute_names(conn: AsyncConnection[Any], tenant: str) -> list[str]:
    """The distinct attribute names of the tenant's entities."""
    cursor = await conn.execute(
        "SELECT DISTINCT a.key FROM entities AS e"
        " CROSS JOIN LATERAL jsonb_object_keys(e.entity) AS a(key)"
        " WHERE e.tenant = %s ORDER BY a.key",
        (tenant,),
    )
    return [row[0] for row in await cursor.fetchall()]


async def attribute_summaries(
    conn: AsyncConnection[Any], tenant: str, attribute: str | None = None
) -> list[AttributeSummary]:
    """Every attribute of the tenant (or only `attribute`): instances, types, entity types."""
    if attribute is None:
        source = sql.SQL(
            "SELECT a.key, a.value, array_prepend(e.type, e.extra_types) AS types"
            " FROM entities AS e CROSS JOIN LATERAL jsonb_each(e.entity) AS a(key, value)"
            " WHERE e.tenant = %(tenant)s"
        )
    else:  # one key: no need to expand every document
        source = sql.SQL(
            "SELECT %(attribute)s::text AS key, e.entity -> %(attribute)s AS value,"
            " array_prepend(e.type, e.extra_types) AS types"
            " FROM entities AS e WHERE e.tenant = %(tenant)s AND e.entity ? %(attribute)s"
        )
    query = sql.SQL(
        "WITH a AS ({source}),"
        " instances AS (SELECT a.key, count(*) AS instance_count,"
        " {attribute_types} AS attribute_types FROM a {instances} GROUP BY a.key),"
        " typed AS (SELECT a.key, array_agg(DISTINCT t.type ORDER BY t.type) AS type_names"
        " FROM a CROSS JOIN LATERAL unnest(a.types) AS t(type) GROUP BY a.key)"
        " SELECT typed.key, coalesce(instances.instance_count, 0),"
        " coalesce(instances.attribute_types, '{{}}'), typed.type_names"
        " FROM typed LEFT JOIN instances ON instances.key = typed.key ORDER BY typed.key"
    ).format(source=source, attribute_types=_ATTRIBUTE_TYPES, instances=_INSTANCES_OF_A)
    cursor = await conn.execute(query, {"tenant": tenant, "attribute": attribute})
    return [
        AttributeSummary(name, int(count), list(types), list(type_names))
        for name, count, types, type_names in await cursor.fetchall()
    ]

"""Reads and writes of the latest-state table (`entities`) for the NGSI-LD API.

The API works on whole entity documents in the stored form (docs/ngsi-api.md): it reads an
entity, changes it in Python and writes it back under a row lock, so its merges never race
with ingest's (storage/entities.py), which locks the same rows. Every write keeps
`instance_keys` and `newest_observed_at` true, since ingest's merge shortcut relies on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from ngsi.typeselect import AllOf, AnyOf, TypeName, TypeSelection
from storage.entities import instance_keys

_COLUMNS = sql.SQL("e.id, e.type, e.extra_types, e.entity, e.scope, e.created_at, e.modified_at")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def jsonb(value: Any) -> Jsonb:
    """A jsonb parameter, serialized with orjson."""
    return Jsonb(value, dumps=_dumps)


@dataclass(slots=True)
class StoredEntity:
    """One entity in the stored form: types and attribute names are IRIs."""

    id: str
    types: list[str]
    attributes: dict[str, Any]
    scope: list[str] | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None


@dataclass(slots=True)
class EntityFilter:
    """Which entities a query selects; every part is optional and they all must hold."""

    types: TypeSelection | None = None
    #: Expands the type names of `types` (the caller's @context).
    expand: Callable[[str], str] = str
    ids: Sequence[str] = ()
    id_pattern: str | None = None
    #: The entity must carry at least one of these attributes (IRIs).
    any_attributes: Sequence[str] = ()
    #: Further boolean SQL over `e` (compiled q, geo, scope).
    conditions: list[sql.Composable] = field(default_factory=list)


def _row_entity(row: Sequence[Any]) -> StoredEntity:
    entity_id, first_type, extra_types, attributes, scope, created, modified = row
    return StoredEntity(
        entity_id, [first_type, *extra_types], attributes or {}, scope, created, modified
    )


def _newest_observed_at(attributes: dict[str, Any]) -> str | None:
    newest: str | None = None
    for value in attributes.values():
        for instance in value if isinstance(value, list) else (value,):
            if isinstance(instance, dict):
                observed = instance.get("observedAt")
                if isinstance(observed, str) and (newest is None or observed > newest):
                    newest = observed
    return newest


def _write_values(entity: StoredEntity) -> tuple[Any, ...]:
    keys, _ = instance_keys(entity.attributes)
    return (
        entity.types[0],
        entity.types[1:],
        jsonb(entity.attributes),
        jsonb(entity.scope) if entity.scope is not None else None,
        keys,
        _newest_observed_at(entity.attributes),
    )


def type_condition(selection: TypeSelection, expand: Callable[[str], str]) -> sql.Composable:
    """SQL over `e` for a type selection; a single type uses the (tenant, type) index."""
    if isinstance(selection, TypeName):
        iri = expand(selection.name)
        return sql.SQL("(e.type = {0} OR {0} = ANY(e.extra_types))").format(sql.Literal(iri))
    children = selection.alternatives if isinstance(selection, AnyOf) else selection.parts
    joiner = " OR " if isinstance(selection, AnyOf) else " AND "
    if isinstance(selection, AnyOf) and all(isinstance(c, TypeName) for c in children):
        iris = [expand(c.name) for c in children if isinstance(c, TypeName)]
        return sql.SQL("(e.type = ANY({0}) OR e.extra_types && {0})").format(sql.Literal(iris))
    assert isinstance(selection, AnyOf | AllOf)
    joined = sql.SQL(joiner).join(type_condition(c, expand) for c in children)
    return sql.SQL("({})").format(joined)


def selector_parts(
    types: TypeSelection | None,
    expand: Callable[[str], str],
    ids: Sequence[str] = (),
    id_pattern: str | None = None,
) -> list[sql.Composable]:
    """SQL over `e` for an entity selector (type, id, idPattern), to be AND-ed."""
    parts: list[sql.Composable] = []
    if types is not None:
        parts.append(type_condition(types, expand))
    if ids:
        parts.append(sql.SQL("e.id = ANY({})").format(sql.Literal(list(ids))))
    if id_pattern is not None:
        parts.append(sql.SQL("e.id ~ {}").format(sql.Literal(id_pattern)))
    return parts


def _where(tenant: str, selection: EntityFilter) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL("e.tenant = {}").format(sql.Literal(tenant))]
    parts += selector_parts(selection.types, selection.expand, selection.ids, selection.id_pattern)
    if selection.any_attributes:
        parts.append(sql.SQL("e.entity ?| {}").format(sql.Literal(list(selection.any_attributes))))
    parts.extend(selection.conditions)
    return sql.SQL(" AND ").join(parts)


class EntityStore:
    """The API's access to `entities` on one connection."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn

    async def tenant_exists(self, tenant: str) -> bool:
        """Whether `tenant` was created through the API or holds entities."""
        cursor = await self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM tenants WHERE name = %s)"
            " OR EXISTS (SELECT 1 FROM entities WHERE tenant = %s)",
            (tenant, tenant),
        )
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def ensure_tenant(self, tenant: str) -> None:
        """Create `tenant` if it does not exist (creating an entity creates its tenant)."""
        await self.conn.execute(
            "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
        )

    async def get(self, tenant: str, entity_id: str, *, lock: bool = False) -> StoredEntity | None:
        """One entity, or None; `lock` holds its row until the transaction ends."""
        query = sql.SQL("SELECT {} FROM entities AS e WHERE e.tenant = %s AND e.id = %s").format(
            _COLUMNS
        )
        if lock:
            query += sql.SQL(" FOR UPDATE")
        cursor = await self.conn.execute(query, (tenant, entity_id))
        row = await cursor.fetchone()
        return _row_entity(row) if row else None

    async def create(self, tenant: str, entity: StoredEntity) -> bool:
        """Insert a new entity; False when one with its id exists."""
        cursor = await self.conn.execute(
            "INSERT INTO entities (tenant, id, type, extra_types, entity, scope, instance_keys,"
            " newest_observed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant, id) DO NOTHING",
            (tenant, entity.id, *_write_values(entity)),
        )
        return cursor.rowcount == 1

    async def save(self, tenant: str, entity: StoredEntity) -> None:
        """Write back an entity read (and locked) in this transaction."""
        await self.conn.execute(
            "UPDATE entities SET type = %s, extra_types = %s, entity = %s, scope = %s,"
            " instance_keys = %s,"
            " newest_observed_at = greatest(newest_observed_at, %s::timestamptz),"
            " modified_at = now() WHERE tenant = %s AND id = %s",
            (*_write_values(entity), tenant, entity.id),
        )

    async def delete(self, tenant: str, entity_id: str) -> bool:
        """Delete an entity; False when there was none."""
        cursor = await self.conn.execute(
            "DELETE FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id)
        )
        return cursor.rowcount == 1

    async def query(
        self, tenant: str, selection: EntityFilter, limit: int | None, offset: int = 0
    ) -> list[StoredEntity]:
        """The selected entities ordered by id; `limit` None for all of them."""
        if isinstance(selection.types, TypeName) and limit is not None:
            return await self._page_of_type(tenant, selection, selection.types, limit, offset)
        query = sql.SQL("SELECT {} FROM entities AS e WHERE {} ORDER BY e.id").format(
            _COLUMNS, _where(tenant, selection)
        )
        if limit is not None:
            query += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
        if offset:
            query += sql.SQL(" OFFSET {}").format(sql.Literal(offset))
        cursor = await self.conn.execute(query)
        return [_row_entity(row) for row in await cursor.fetchall()]

    async def _page_of_type(
        self, tenant: str, selection: EntityFilter, name: TypeName, limit: int, offset: int
    ) -> list[StoredEntity]:
        """A page of one type's entities: those whose first type it is, from the (tenant,
        type, id) index in id order, merged with the few that have it as a further type
        (type_condition's OR would make PostgreSQL walk every entity of the tenant)."""
        iri = sql.Literal(selection.expand(name.name))
        rest = _where(tenant, replace(selection, types=None))
        first = sql.Literal(limit + offset)
        query = sql.SQL(
            "SELECT {columns} FROM ("
            "(SELECT {columns} FROM entities AS e WHERE {rest} AND e.type = {iri}"
            " ORDER BY e.id LIMIT {first})"
            " UNION ALL (SELECT {columns} FROM entities AS e WHERE {rest}"
            " AND e.extra_types <> '{{}}' AND e.type <> {iri} AND {iri} = ANY(e.extra_types)"
            " ORDER BY e.id LIMIT {first})) AS e ORDER BY e.id LIMIT {limit} OFFSET {offset}"
        ).format(
            columns=_COLUMNS,
            rest=rest,
            iri=iri,
            first=first,
            limit=sql.Literal(limit),
            offset=sql.Literal(offset),
        )
        cursor = await self.conn.execute(query)
        return [_row_entity(row) for row in await cursor.fetchall()]

    async def stream(self, tenant: str, selection: EntityFilter) -> Iterable[StoredEntity]:
        """Every selected entity ordered by id (for filters that finish in Python)."""
        return await self.query(tenant, selection, None)

    async def count(self, tenant: str, selection: EntityFilter) -> int:
        """How many entities the selection holds."""
        query = sql.SQL("SELECT count(*) FROM entities AS e WHERE {}").format(
            _where(tenant, selection)
        )
        cursor = await self.conn.execute(query)
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def existing_ids(self, tenant: str, ids: Sequence[str]) -> set[str]:
        """Which of `ids` exist."""
        cursor = await self.conn.execute(
            "SELECT id FROM entities WHERE tenant = %s AND id = ANY(%s)", (tenant, list(ids))
        )
        return {row[0] for row in await cursor.fetchall()}

    async def get_many(
        self, tenant: str, ids: Sequence[str], *, lock: bool = False
    ) -> dict[str, StoredEntity]:
        """The entities of `ids` that exist, by id; `lock` holds their rows (in id order, as
        ingest locks them, so the two never deadlock) until the transaction ends."""
        query = sql.SQL(
            "SELECT {} FROM entities AS e WHERE e.tenant = %s AND e.id = ANY(%s) ORDER BY e.id"
        ).format(_COLUMNS)
        if lock:
            query += sql.SQL(" FOR UPDATE")
        cursor = await self.conn.execute(query, (tenant, sorted(set(ids))))
        return {row[0]: _row_entity(row) for row in await cursor.fetchall()}

    async def save_many(self, tenant: str, entities: Sequence[StoredEntity]) -> None:
        """Write back entities read (and locked) in this transaction, in one statement."""
        entities = _last_of_each(entities)
        if not entities:
            return
        await self.conn.execute(
            "UPDATE entities AS e SET type = u.type, extra_types = string_to_array(u.extra, ' '),"
            " entity = u.entity, scope = u.scope,"
            " instance_keys = stadspuls_instance_keys(u.entity),"
            " newest_observed_at = greatest(e.newest_observed_at, u.newest), modified_at = now()"
            f" FROM {_UNNEST} WHERE e.tenant = %s AND e.id = u.id",
            (*_columns(entities), tenant),
        )

    async def insert_many(self, tenant: str, entities: Sequence[StoredEntity]) -> set[str]:
        """Insert the entities that do not exist yet; the ids inserted.

        Of several entities with one id only the first is inserted (clause 5.5.11.1).
        """
        first: dict[str, StoredEntity] = {}
        for entity in entities:
            first.setdefault(entity.id, entity)
        return await self._write_many(tenant, list(first.values()), "DO NOTHING")

    async def upsert_many(
        self, tenant: str, entities: Sequence[StoredEntity], *, replace: bool
    ) -> set[str]:
        """Create or change entities in one statement; the ids that were created.

        `replace` swaps the whole entity, scope included (upsert's default, clause 5.6.8),
        and keeps only its createdAt; otherwise each attribute given replaces the stored one
        of that name whole (no per-datasetId merge: the API's options=update merges in
        Python, ngsi/routers/batch.py), the others stay, types given are added and a scope
        given replaces the stored one. Several entities with one id are applied in order.
        """
        if replace:
            entities = _last_of_each(entities)
            merged = "EXCLUDED.entity"
            action = (
                "DO UPDATE SET type = EXCLUDED.type, extra_types = EXCLUDED.extra_types,"
                " entity = EXCLUDED.entity, scope = EXCLUDED.scope,"
            )
        else:
            entities = _folded(entities, overwrite=True)
            merged = "current.entity || EXCLUDED.entity"
            action = (
                f"DO UPDATE SET extra_types = {_ADDED_TYPES}, entity = {merged},"
                " scope = coalesce(EXCLUDED.scope, current.scope),"
            )
        action += (
            f" instance_keys = stadspuls_instance_keys({merged}),"
            " newest_observed_at = greatest(current.newest_observed_at,"
            " EXCLUDED.newest_observed_at), modified_at = now()"
        )
        return await self._write_many(tenant, entities, action)

    async def _write_many(
        self, tenant: str, entities: Sequence[StoredEntity], conflict_action: str
    ) -> set[str]:
        if not entities:
            return set()
        # Rows in id order: concurrent writers (ingest too) lock in that order, so never
        # deadlock. xmax = 0 only on rows this statement inserted (not on updated ones).
        statement = (
            "INSERT INTO entities AS current (tenant, id, type, extra_types, entity, scope,"
            " instance_keys, newest_observed_at)"
            " SELECT %s, u.id, u.type, string_to_array(u.extra, ' '), u.entity, u.scope,"
            f" stadspuls_instance_keys(u.entity), u.newest FROM {_UNNEST} ORDER BY u.id"
            f" ON CONFLICT (tenant, id) {conflict_action}"
            " RETURNING current.id, (current.xmax = 0) AS inserted"
        )
        cursor = await self.conn.execute(statement, (tenant, *_columns(entities)))
        return {row[0] for row in await cursor.fetchall() if row[1]}

    async def update_many(
        self, tenant: str, entities: Sequence[StoredEntity], *, overwrite: bool
    ) -> set[str]:
        """Merge attributes into existing entities; the ids that existed and were updated.

        Each attribute given replaces the stored one of that name whole (or, without
        `overwrite`, only fills in a missing one); several entities with one id are applied
        in order. Types, scope and the per-datasetId merge of clause 5.6.3 are left to the
        caller (the API reads, merges in Python and calls save_many).
        """
        entities = sorted(_folded(entities, overwrite=overwrite), key=lambda e: e.id)
        if not entities:
            return set()
        merged = "e.entity || u.entity" if overwrite else "u.entity || e.entity"
        cursor = await self.conn.execute(
            f"UPDATE entities AS e SET entity = {merged},"
            f" instance_keys = stadspuls_instance_keys({merged}),"
            " newest_observed_at = greatest(e.newest_observed_at, u.newest), modified_at = now()"
            " FROM unnest(%b::text[], %b::jsonb[], %b::timestamptz[]) AS u (id, entity, newest)"
            " WHERE e.tenant = %s AND e.id = u.id RETURNING e.id",
            (
                [e.id for e in entities],
                [jsonb(e.attributes) for e in entities],
                [_newest_observed_at(e.attributes) for e in entities],
                tenant,
            ),
        )
        return {row[0] for row in await cursor.fetchall()}

    async def delete_many(self, tenant: str, ids: Sequence[str]) -> set[str]:
        """Delete entities; the ids that existed."""
        cursor = await self.conn.execute(
            "DELETE FROM entities WHERE tenant = %s AND id = ANY(%s) RETURNING id",
            (tenant, sorted(set(ids))),
        )
        return {row[0] for row in await cursor.fetchall()}


#: The rows of `_columns` as a table `u`. The arrays go in binary: psycopg quotes every
#: element of a text-format array with a regular expression, which took 2/3 of the time of
#: a 2,000-entity upsert (documents of 1 kB are full of quotes).
_UNNEST = (
    "unnest(%b::text[], %b::text[], %b::text[], %b::jsonb[], %b::jsonb[], %b::timestamptz[])"
    " AS u (id, type, extra, entity, scope, newest)"
)
#: The stored types plus those of EXCLUDED, first occurrence first, the first type kept.
_ADDED_TYPES = (
    "ARRAY(SELECT t.name FROM unnest(current.extra_types || EXCLUDED.type"
    " || EXCLUDED.extra_types) WITH ORDINALITY AS t (name, position)"
    " WHERE t.name <> current.type GROUP BY t.name ORDER BY min(t.position))"
)


def _columns(entities: Sequence[StoredEntity]) -> tuple[list[Any], ...]:
    """The parameters of `_UNNEST`, one array per column."""
    return (
        [e.id for e in entities],
        [e.types[0] for e in entities],
        [" ".join(e.types[1:]) for e in entities],
        [jsonb(e.attributes) for e in entities],
        [jsonb(e.scope) if e.scope is not None else None for e in entities],
        [_newest_observed_at(e.attributes) for e in entities],
    )


def _last_of_each(entities: Sequence[StoredEntity]) -> list[StoredEntity]:
    """One entity per id, the last given (a statement may change a row only once)."""
    return list({entity.id: entity for entity in entities}.values())


def _folded(entities: Sequence[StoredEntity], *, overwrite: bool) -> list[StoredEntity]:
    """One entity per id: later ones merged attribute by attribute into the first, their
    types added and scope (if any) taken (without `overwrite`, present attributes stay)."""
    folded: dict[str, StoredEntity] = {}
    for entity in entities:
        seen = folded.get(entity.id)
        if seen is None:
            folded[entity.id] = StoredEntity(
                entity.id, list(entity.types), dict(entity.attributes), entity.scope
            )
            continue
        seen.types = list(dict.fromkeys(seen.types + entity.types))
        if overwrite:
            seen.attributes.update(entity.attributes)
        else:
            seen.attributes = {**entity.attributes, **seen.attributes}
        seen.scope = entity.scope if entity.scope is not None else seen.scope
    return list(folded.values())

"""`/ngsi-ld/v1/entityOperations`: batch create, upsert, update and delete (ETSI GS CIM 009
v1.8, 5.6.7-5.6.10; HTTP binding 6.14-6.18); query by POST is in query_operation.py.

A batch is one transaction with one timestamp for all its entities (5.5.11.0) and takes a
handful of statements whatever its size. Each entity succeeds or fails alone: one that is
invalid, exists (create) or does not (update, delete) becomes a BatchEntityError (5.2.17) in
a 207 answer while the others are written. An id given more than once is handled as clause
5.5.11 says, as if the occurrences had come in separate requests in array order: create
keeps the first and reports AlreadyExists for the others; upsert replaces with each in turn
(the last wins) or, with options=update, merges them in turn; update merges them in turn
(with noOverwrite the first value of an attribute wins); delete deletes with the first and
reports ResourceNotFound for the others. Orion-LD does the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import write_access
from ngsi.context import ActiveContext
from ngsi.entity_input import (
    AttributeReader,
    is_uri,
    now_iso,
    read_attributes,
    read_scope,
    read_types,
)
from ngsi.entity_update import append_attributes
from ngsi.errors import ErrorType, NgsiError, bad_request, invalid_request, not_found
from ngsi.routers.common import (
    JSON,
    JSON_LD,
    read_body,
    require_tenant,
    resolver,
    tenant_of,
)
from ngsi.routers.entities import store_of
from ngsi.routers.openapi import (
    BATCH_ANSWERS,
    BATCH_CHANGE_ANSWERS,
    ENTITY_ARRAY,
    ID_ARRAY,
    request_body,
)
from storage.entity_store import EntityStore, StoredEntity

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Batch operations"])
Writer = Depends(write_access)
OptionalText = Annotated[str | None, Query()]


@dataclass(slots=True)
class Outcome:
    """What a batch did: the ids it handled and the BatchEntityErrors, both in array order."""

    success: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, Any, dict[str, Any]]] = field(default_factory=list)

    def succeed(self, index: int, entity_id: str) -> None:
        """Entity `index` of the array was handled."""
        self.success.append((index, entity_id))

    def fail(self, index: int, entity_id: Any, error: NgsiError) -> None:
        """Entity `index` of the array failed with `error`."""
        self.errors.append((index, entity_id, error.problem()))

    def answer(self, created: list[str] | None = None) -> Response:
        """201 with `created` when given, else 204; 207 with BatchOperationResult (5.2.16)
        as soon as one entity failed."""
        if self.errors:
            body = {
                "success": [entity_id for _, entity_id in sorted(self.success)],
                "errors": [
                    {"entityId": entity_id, "error": problem}
                    for _, entity_id, problem in sorted(self.errors, key=lambda e: e[0])
                ],
            }
            return Response(orjson.dumps(body), 207, media_type=JSON)
        if created is not None:
            return Response(orjson.dumps(created), 201, media_type=JSON)
        return Response(status_code=204)


@dataclass(slots=True)
class Item:
    """One valid entity of the array and where it was."""

    index: int
    entity: StoredEntity


def _claimed_id(item: Any) -> Any:
    """The id an array item says it has, for its BatchEntityError (null when it has none)."""
    return item.get("id") if isinstance(item, dict) else item if isinstance(item, str) else None


def _array(request: Request, body: Any, what: str) -> list[Any]:
    """The batch array: non-empty, no nulls, at most api_max_batch_entities (5.6.7.4)."""
    if not isinstance(body, list):
        raise bad_request(f"the body must be a JSON array of {what}")
    if not body:
        raise bad_request(f"the array of {what} is empty")
    if any(item is None for item in body):
        raise bad_request(f"the array of {what} holds a null")
    limit: int = request.app.state.settings.api_max_batch_entities
    if len(body) > limit:
        raise NgsiError(
            ErrorType.PAYLOAD_TOO_LARGE,
            f"{len(body)} {what} in one batch; at most {limit} are allowed",
        )
    return body


async def _read_items(request: Request, outcome: Outcome, *, need_type: bool) -> list[Item]:
    """The valid entities of the body in the stored form; the invalid ones fail in `outcome`."""
    body, context = await read_body(request)
    items = _array(request, body, "entities")
    now = now_iso()
    contexts: dict[bytes, ActiveContext] = {}
    valid: list[Item] = []
    for index, raw in enumerate(items):
        try:
            expand = (await _own_context(request, raw, context, contexts)).expand
            entity = _read_entity(raw, expand, now, need_type=need_type)
        except NgsiError as error:
            outcome.fail(index, _claimed_id(raw), error)
            continue
        valid.append(Item(index, entity))
    return valid


async def _own_context(
    request: Request, raw: Any, first: ActiveContext, seen: dict[bytes, ActiveContext]
) -> ActiveContext:
    """The context of one entity: in a JSON-LD array each one carries its own @context
    (read_body resolved only the first's)."""
    if not isinstance(raw, dict) or "@context" not in raw:
        return first
    key = orjson.dumps(raw["@context"])
    if key not in seen:
        seen[key] = await resolver(request).resolve(raw["@context"])
    return seen[key]


def _read_entity(raw: Any, expand: Any, now: str, *, need_type: bool) -> StoredEntity:
    """An entity of the array in the stored form; the type may be absent for an update."""
    if not isinstance(raw, dict):
        raise bad_request("an entity must be a JSON object")
    entity_id = raw.get("id")
    if not is_uri(entity_id):
        raise bad_request(f"entity id must be a URI, not {entity_id!r}")
    if need_type and "type" not in raw:
        raise bad_request(f"entity {entity_id} has no type")
    return StoredEntity(
        str(entity_id),
        read_types(raw["type"], expand) if "type" in raw else [],
        read_attributes(raw, AttributeReader(expand, now)),
        read_scope(raw.get("scope")),
    )


def _merge(target: StoredEntity, incoming: StoredEntity, *, overwrite: bool) -> None:
    """Append `incoming` to `target` as clause 5.6.3 does (instance by instance, createdAt
    kept); its types are added and its scope, if any, replaces the target's (`overwrite`)
    or fills in a missing one."""
    append_attributes(target, incoming.attributes, overwrite=overwrite)
    target.types = list(dict.fromkeys(target.types + incoming.types))
    if incoming.scope is not None and (overwrite or target.scope is None):
        target.scope = incoming.scope


def _folded(items: Iterable[Item], *, overwrite: bool) -> dict[str, Item]:
    """One item per id, the first: later occurrences merged into it in array order."""
    folded: dict[str, Item] = {}
    for item in items:
        first = folded.setdefault(item.entity.id, item)
        if first is not item:
            _merge(first.entity, item.entity, overwrite=overwrite)
    return folded


async def _writable_tenant(request: Request, store: EntityStore) -> str:
    """The request's tenant, created if new (writing an entity creates its tenant, 5.5.10)."""
    tenant = tenant_of(request)
    await store.ensure_tenant(tenant)
    return tenant


@router.post(
    "/entityOperations/create",
    dependencies=[Writer],
    summary="Batch entity creation",
    status_code=201,
    openapi_extra=request_body(ENTITY_ARRAY),
    responses=BATCH_ANSWERS,
)
async def batch_create(request: Request) -> Response:
    """Create entities (5.6.7): 201 with their ids, or 207 naming those that failed."""
    tenant_of(request)
    outcome = Outcome()
    first: dict[str, Item] = {}
    for item in await _read_items(request, outcome, need_type=True):
        if item.entity.id in first:
            problem = NgsiError(
                ErrorType.ALREADY_EXISTS,
                f"entity {item.entity.id} is created by an earlier item of this batch",
            )
            outcome.fail(item.index, item.entity.id, problem)
        else:
            first[item.entity.id] = item
    created: set[str] = set()
    if first:
        async with store_of(request, write=True) as store:
            tenant = await _writable_tenant(request, store)
            created = await store.insert_many(tenant, [i.entity for i in first.values()])
        request.app.state.known_tenants.add(tenant)
    for entity_id, item in first.items():
        if entity_id in created:
            outcome.succeed(item.index, entity_id)
        else:
            exists = NgsiError(ErrorType.ALREADY_EXISTS, f"entity {entity_id} already exists")
            outcome.fail(item.index, entity_id, exists)
    return outcome.answer(created=[entity_id for _, entity_id in sorted(outcome.success)])


@router.post(
    "/entityOperations/upsert",
    dependencies=[Writer],
    summary="Batch entity upsert",
    status_code=201,
    openapi_extra=request_body(ENTITY_ARRAY),
    responses=BATCH_ANSWERS,
)
async def batch_upsert(request: Request, options: OptionalText = None) -> Response:
    """Create or change entities (5.6.8): 201 with the ids created, 204 when every one
    existed, 207 naming those that failed. By default (options=replace) an existing entity
    is replaced whole, keeping its createdAt; with options=update the attributes given are
    appended to it as clause 5.6.3 does (Orion-LD and Stellio do the same), its types
    extended and its scope replaced if one is given."""
    chosen = {o.strip() for o in (options or "").split(",") if o.strip()}
    if not chosen <= {"update", "replace"} or len(chosen) > 1:
        raise bad_request("options of upsert must be either update or replace")
    tenant_of(request)
    outcome = Outcome()
    items = await _read_items(request, outcome, need_type=True)
    handled: dict[str, int] = {}
    for item in items:
        handled.setdefault(item.entity.id, item.index)
    created: set[str] = set()
    if handled:
        async with store_of(request, write=True) as store:
            tenant = await _writable_tenant(request, store)
            if "update" in chosen:
                folded = [item.entity for item in _folded(items, overwrite=True).values()]
                created = await _upsert_merging(store, tenant, folded)
            else:
                latest = {item.entity.id: item.entity for item in items}
                created = await store.upsert_many(tenant, list(latest.values()), replace=True)
        request.app.state.known_tenants.add(tenant)
    for entity_id, index in handled.items():
        outcome.succeed(index, entity_id)
    ids = [entity_id for _, entity_id in sorted(outcome.success) if entity_id in created]
    return outcome.answer(created=ids if ids else None)


async def _upsert_merging(
    store: EntityStore, tenant: str, entities: list[StoredEntity]
) -> set[str]:
    """Insert the new entities, merge the others into the stored ones; the ids created."""
    created = await store.insert_many(tenant, entities)
    rest = [entity for entity in entities if entity.id not in created]
    current = await store.get_many(tenant, [entity.id for entity in rest], lock=True)
    gone = [entity for entity in rest if entity.id not in current]
    if gone:  # deleted by someone else between the two statements
        created |= await store.insert_many(tenant, gone)
    for entity in rest:
        if entity.id in current:
            _merge(current[entity.id], entity, overwrite=True)
    await store.save_many(tenant, list(current.values()))
    return created


@router.post(
    "/entityOperations/update",
    dependencies=[Writer],
    summary="Batch entity update",
    status_code=204,
    openapi_extra=request_body(ENTITY_ARRAY),
    responses=BATCH_CHANGE_ANSWERS,
)
async def batch_update(request: Request, options: OptionalText = None) -> Response:
    """Append attributes to existing entities (5.6.9, as 5.6.3 does for one): 204, or 207
    naming those that failed (ResourceNotFound for an entity that does not exist). With
    options=noOverwrite existing attributes stay as they are; the entity still succeeds.
    The type may be left out; types given are added to the entity's."""
    chosen = {o.strip() for o in (options or "").split(",") if o.strip()}
    if not chosen <= {"noOverwrite"}:
        raise bad_request(f"unknown options {sorted(chosen - {'noOverwrite'})} for update")
    overwrite = "noOverwrite" not in chosen
    outcome = Outcome()
    folded = _folded(await _read_items(request, outcome, need_type=False), overwrite=overwrite)
    async with store_of(request, write=True) as store:
        tenant = await require_tenant(request, store)
        current = await store.get_many(tenant, list(folded), lock=True)
        for entity_id, item in folded.items():
            if entity_id in current:
                _merge(current[entity_id], item.entity, overwrite=overwrite)
                outcome.succeed(item.index, entity_id)
            else:
                outcome.fail(item.index, entity_id, not_found(f"entity {entity_id} does not exist"))
        await store.save_many(tenant, list(current.values()))
    return outcome.answer()


@router.post(
    "/entityOperations/delete",
    dependencies=[Writer],
    summary="Batch entity delete",
    status_code=204,
    openapi_extra=request_body(ID_ARRAY),
    responses=BATCH_CHANGE_ANSWERS,
)
async def batch_delete(request: Request) -> Response:
    """Delete entities by id (5.6.10): 204, or 207 with ResourceNotFound for each id that
    does not exist (or was deleted by an earlier item of the array)."""
    outcome = Outcome()
    first: dict[str, int] = {}
    for index, entity_id in enumerate(await _read_ids(request)):
        if not is_uri(entity_id):
            outcome.fail(
                index, entity_id, bad_request(f"entity id must be a URI, not {entity_id!r}")
            )
        elif entity_id in first:
            outcome.fail(
                index, entity_id, not_found(f"entity {entity_id} is deleted by an earlier item")
            )
        else:
            first[entity_id] = index
    async with store_of(request, write=True) as store:
        tenant = await require_tenant(request, store)
        deleted = await store.delete_many(tenant, list(first)) if first else set()
    for entity_id, index in first.items():
        if entity_id in deleted:
            outcome.succeed(index, entity_id)
        else:
            outcome.fail(index, entity_id, not_found(f"entity {entity_id} does not exist"))
    return outcome.answer()


async def _read_ids(request: Request) -> list[Any]:
    """The array of entity ids of a delete; as JSON-LD too, though ids carry no @context."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != JSON_LD:
        body, _ = await read_body(request)
        return _array(request, body, "entity ids")
    limit: int = request.app.state.settings.api_max_body_bytes
    raw = await request.body()
    if len(raw) > limit:
        raise NgsiError(ErrorType.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise invalid_request(f"the body is not valid JSON: {error}") from None
    return _array(request, body, "entity ids")

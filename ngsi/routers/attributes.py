"""`/ngsi-ld/v1/entities/{id}/attrs`: append, update, partially update, replace and delete
attributes of an entity (ETSI GS CIM 009, 5.6.2-5.6.5 and 5.6.19; HTTP binding 6.6-6.7)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ngsi.entity_input import AttributeReader, is_uri, read_attributes
from ngsi.entity_update import (
    UpdateResult,
    append_attributes,
    delete_attribute,
    patch_attribute,
    replace_attribute,
    update_attributes,
)
from ngsi.errors import bad_request
from ngsi.routers.common import json_response, link_context, read_body
from ngsi.routers.entities import (
    WRITE_ERRORS,
    OptionalText,
    Writer,
    attributes_body,
    change_entity,
    check_id,
)
from ngsi.routers.openapi import ATTRIBUTE, ATTRIBUTES, UPDATE_RESULT, errors, request_body, success
from storage.entity_store import StoredEntity

router = APIRouter(prefix="/ngsi-ld/v1", tags=["Entities"])


@router.post(
    "/entities/{entity_id}/attrs",
    dependencies=[Writer],
    summary="Append entity attributes",
    status_code=204,
    openapi_extra=request_body(ATTRIBUTES),
    responses={
        **success(204, "All appended"),
        **success(207, "Some left alone (noOverwrite)", UPDATE_RESULT),
        **errors(400, 401, 403, 404, 413, 415, 503),
    },
)
async def append_attrs(request: Request, entity_id: str, options: OptionalText = None) -> Response:
    """Append attributes (5.6.3): 204, or 207 with what `noOverwrite` left alone."""
    overwrite = "noOverwrite" not in (options or "").split(",")
    return await _change_attributes(request, entity_id, append=True, overwrite=overwrite)


@router.patch(
    "/entities/{entity_id}/attrs",
    dependencies=[Writer],
    summary="Update entity attributes",
    status_code=204,
    openapi_extra=request_body(ATTRIBUTES),
    responses={
        **success(204, "All updated"),
        **success(207, "Some do not exist", UPDATE_RESULT),
        **errors(400, 401, 403, 404, 413, 415, 503),
    },
)
async def update_attrs(request: Request, entity_id: str) -> Response:
    """Update existing attributes (5.6.2): 204, or 207 naming those that do not exist."""
    return await _change_attributes(request, entity_id, append=False, overwrite=True)


async def _change_attributes(
    request: Request, entity_id: str, *, append: bool, overwrite: bool
) -> Response:
    check_id(entity_id)
    raw, context = await read_body(request)
    incoming = read_attributes(attributes_body(raw, entity_id), AttributeReader(context.expand))
    results: list[UpdateResult] = []

    def change(entity: StoredEntity) -> bool:
        if append:
            results.append(append_attributes(entity, incoming, overwrite=overwrite))
        else:
            results.append(update_attributes(entity, incoming))
        return bool(results[0].updated)

    await change_entity(request, entity_id, change)
    (result,) = results
    if result.not_updated:
        return json_response(result.body(context.compact), request, context, status=207)
    return Response(status_code=204)


@router.patch(
    "/entities/{entity_id}/attrs/{attribute}",
    status_code=204,
    dependencies=[Writer],
    openapi_extra=request_body(ATTRIBUTE),
    responses=WRITE_ERRORS,
    summary="Partial attribute update",
)
async def patch_attr(request: Request, entity_id: str, attribute: str) -> Response:
    """Partial update of one attribute instance (5.6.4)."""
    check_id(entity_id)
    body, context = await read_body(request)
    reader = AttributeReader(context.expand)
    name = context.expand(attribute)
    await change_entity(
        request, entity_id, lambda e: patch_attribute(e, name, attribute, body, reader)
    )
    return Response(status_code=204)


@router.put(
    "/entities/{entity_id}/attrs/{attribute}",
    status_code=204,
    dependencies=[Writer],
    openapi_extra=request_body(ATTRIBUTE),
    responses=WRITE_ERRORS,
    summary="Replace attribute",
)
async def put_attr(request: Request, entity_id: str, attribute: str) -> Response:
    """Replace one attribute (5.6.19)."""
    check_id(entity_id)
    body, context = await read_body(request)
    new = AttributeReader(context.expand).attribute(attribute, body)
    name = context.expand(attribute)
    await change_entity(request, entity_id, lambda e: replace_attribute(e, name, attribute, new))
    return Response(status_code=204)


@router.delete(
    "/entities/{entity_id}/attrs/{attribute}",
    status_code=204,
    dependencies=[Writer],
    responses=errors(400, 401, 403, 404),
    summary="Delete attribute",
)
async def delete_attr(
    request: Request,
    entity_id: str,
    attribute: str,
    datasetId: OptionalText = None,
    deleteAll: bool = False,
) -> Response:
    """Delete an attribute: its default instance, one datasetId, or all (5.6.5)."""
    check_id(entity_id)
    if datasetId is not None and not is_uri(datasetId):
        raise bad_request(f"datasetId must be a URI, not {datasetId!r}")
    context = await link_context(request)
    name = context.expand(attribute)
    await change_entity(
        request, entity_id, lambda e: delete_attribute(e, name, attribute, datasetId, deleteAll)
    )
    return Response(status_code=204)

"""The alert rules HTTP API, `/alerts/v1/rules` (docs/alerts.md), per NGSILD-Tenant tenant.

Reads need read access, changes write access, as the entity routes. The rule store is
synchronous (the CLI and the ingest writer share it): the routes run it in a worker thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response

from ngsi.access import read_access, write_access
from ngsi.errors import ErrorType, NgsiError
from ngsi.routers.common import tenant_of
from ngsi.routers.iot_common import json_response, with_connection
from ngsi.routers.openapi import errors, request_body, success
from storage.alert_store import (
    delete_rule,
    list_events,
    load_rules,
    reset_states,
    save_rule,
)

from .history import load_history
from .rules import Rule, RuleError, parse_rule, rule_document

router = APIRouter(prefix="/alerts/v1", tags=["alerts"])
RULE_SCHEMA: dict[str, Any] = {"type": "object", "description": "An alert rule (docs/alerts.md)"}
RULE_BODY = request_body(RULE_SCHEMA)
#: The dry run's optional body: fields that replace the stored rule's for this replay only.
TRIAL_BODY = {"requestBody": {**RULE_BODY["requestBody"], "required": False}}
READ_ERRORS = errors(400, 401, 403, 404)
WRITE_ERRORS = errors(400, 401, 403, 404, 409, 415)
Reader = Depends(read_access)
Writer = Depends(write_access)


def _rule(body: Any, tenant: str, rule_id: str | None = None) -> Rule:
    if isinstance(body, dict) and rule_id is not None:
        if body.get("id", rule_id) != rule_id:
            raise NgsiError(
                ErrorType.BAD_REQUEST_DATA, f"the body's id {body['id']!r} is not {rule_id!r}"
            )
        body = {**body, "id": rule_id}
    try:
        return parse_rule(body, tenant)
    except RuleError as error:
        raise NgsiError(ErrorType.BAD_REQUEST_DATA, "; ".join(error.problems)) from None


def _not_found(rule_id: str) -> NgsiError:
    return NgsiError(ErrorType.RESOURCE_NOT_FOUND, f"no alert rule {rule_id!r}")


def _find(conn: psycopg.Connection, tenant: str, rule_id: str) -> dict[str, Any] | None:
    return next((r.document for r in load_rules(conn, tenant) if r.id == rule_id), None)


@router.get(
    "/rules",
    summary="List the tenant's alert rules",
    dependencies=[Reader],
    responses={**success(200, "The rules", {"type": "array", "items": RULE_SCHEMA}), **READ_ERRORS},
)
async def list_rules(request: Request) -> Response:
    """Every rule of the tenant, in id order."""
    tenant = tenant_of(request)
    rules = await with_connection(request, lambda conn: load_rules(conn, tenant))
    return json_response([rule.document for rule in rules])


@router.post(
    "/rules",
    status_code=201,
    summary="Create an alert rule",
    dependencies=[Writer],
    openapi_extra=RULE_BODY,
    responses={**success(201, "Created (Location names it)"), **WRITE_ERRORS},
)
async def create_rule(request: Request) -> Response:
    """Create a rule; 409 AlreadyExists when its id is taken."""
    tenant = tenant_of(request)
    rule = _rule(await _body(request), tenant)
    document = rule_document(rule)

    def create(conn: psycopg.Connection) -> bool:
        if _find(conn, tenant, rule.id) is not None:
            return False
        return save_rule(conn, tenant, rule.id, document, rule.enabled)

    if not await with_connection(request, create):
        raise NgsiError(ErrorType.ALREADY_EXISTS, f"alert rule {rule.id!r} already exists")
    location = f"/alerts/v1/rules/{rule.id}"
    return Response(status_code=201, headers={"Location": location})


@router.get(
    "/rules/{rule_id}",
    summary="Retrieve an alert rule",
    dependencies=[Reader],
    responses={**success(200, "The rule", RULE_SCHEMA), **READ_ERRORS},
)
async def get_rule(request: Request, rule_id: str) -> Response:
    """One rule, in its JSON form."""
    tenant = tenant_of(request)
    document = await with_connection(request, lambda conn: _find(conn, tenant, rule_id))
    if document is None:
        raise _not_found(rule_id)
    return json_response(document)


@router.put(
    "/rules/{rule_id}",
    status_code=204,
    summary="Create or replace an alert rule",
    dependencies=[Writer],
    openapi_extra=RULE_BODY,
    responses={**success(204, "Stored"), **WRITE_ERRORS},
)
async def replace_rule(request: Request, rule_id: str) -> Response:
    """Create or replace a rule; a replaced rule starts afresh on every entity."""
    tenant = tenant_of(request)
    rule = _rule(await _body(request), tenant, rule_id)

    def replace(conn: psycopg.Connection) -> None:
        save_rule(conn, tenant, rule.id, rule_document(rule), rule.enabled)
        reset_states(conn, tenant, rule.id)

    await with_connection(request, replace)
    return Response(status_code=204)


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    summary="Delete an alert rule",
    dependencies=[Writer],
    responses={**success(204, "Deleted"), **READ_ERRORS},
)
async def remove_rule(request: Request, rule_id: str) -> Response:
    """Delete a rule and its states (its Alert entities and events stay)."""
    tenant = tenant_of(request)
    if not await with_connection(request, lambda conn: delete_rule(conn, tenant, rule_id)):
        raise _not_found(rule_id)
    return Response(status_code=204)


@router.get(
    "/rules/{rule_id}/events",
    summary="A rule's recent transitions",
    dependencies=[Reader],
    responses={**success(200, "Transitions, newest first", {"type": "array"}), **READ_ERRORS},
)
async def rule_events(
    request: Request, rule_id: str, limit: int = Query(100, ge=1, le=1000)
) -> Response:
    """Raised, updated and resolved transitions of a rule, newest first."""
    tenant = tenant_of(request)
    events = await with_connection(request, lambda conn: list_events(conn, tenant, rule_id, limit))
    return json_response(
        [
            {
                "entity": e.entity_id,
                "alert": e.alert_id,
                "change": e.change,
                "at": e.at.isoformat(),
                "value": e.value,
                "detail": e.detail,
            }
            for e in events
        ]  # fmt: skip
    )


@router.post(
    "/rules/{rule_id}/dry-run",
    summary="Replay a rule over history",
    dependencies=[Reader],
    openapi_extra=TRIAL_BODY,
    responses={
        **success(200, "How often and when it would have fired", {"type": "object"}),
        **READ_ERRORS,
    },
)
async def dry_run_rule(
    request: Request,
    rule_id: str,
    start: Annotated[datetime, Query(alias="from", description="ISO 8601 start")],
    end: Annotated[datetime, Query(alias="to", description="ISO 8601 end")],
) -> Response:
    """How often and when the stored rule would have fired between `from` and `to`.

    A JSON object in the body replaces fields of the stored rule for this replay only (try
    `{"level": 30}` before changing the rule).
    """
    tenant = tenant_of(request)
    if start.tzinfo is None or end.tzinfo is None:
        raise NgsiError(ErrorType.BAD_REQUEST_DATA, "from and to need a time zone (Z or +01:00)")
    if end <= start:
        raise NgsiError(ErrorType.BAD_REQUEST_DATA, "to must be after from")
    if end - start > timedelta(days=366):
        raise NgsiError(ErrorType.BAD_REQUEST_DATA, "a dry run covers at most 366 days")
    document = await with_connection(request, lambda conn: _find(conn, tenant, rule_id))
    if document is None:
        raise _not_found(rule_id)
    trial = await request.body()
    if trial.strip():
        changes = await _body(request)
        if not isinstance(changes, dict):
            raise NgsiError(ErrorType.BAD_REQUEST_DATA, "the body must be an object of fields")
        document = {**document, **changes, "id": rule_id}
    rule = _rule(document, tenant)
    result = await with_connection(request, lambda conn: load_history(conn, rule, start, end))
    return json_response(result)


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise NgsiError(ErrorType.INVALID_REQUEST, f"the body is not valid JSON: {error}") from None

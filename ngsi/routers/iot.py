"""`/iot`: the FIWARE IoT Agent provisioning API (config groups and devices) over the registry.

The payloads are those of iotagent-node-lib ("Config group API", "Device API"), so
existing provisioning scripts keep working: `POST/GET/PUT/DELETE /iot/groups` (and the
legacy `/iot/services`), `POST/GET /iot/devices`, `GET/PUT/DELETE /iot/devices/{device_id}`.
A config group is named by its apikey (`resource` is accepted and not kept: MQTT topics
carry none); creating answers 201, changing and removing 204. The conversion rules are in
devices/iota_provisioning.py, headers and errors in ngsi/routers/iot_common.py. The
quarantine of unknown devices is under `/iot/quarantine` (ngsi/routers/iot_quarantine.py).

Workers pick registry changes up on their next registry reload (at once for a device they
have just seen as unknown, else within `registry_refresh_seconds`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response

from devices.iota_provisioning import (
    IOTA_PROFILE,
    ProvisioningError,
    device_to_iota,
    device_update,
    group_apikey,
    group_to_iota,
    group_update,
    parse_devices,
    parse_groups,
)
from devices.model import DeviceGroup
from ngsi.routers.iot_common import (
    OBJECT_BODY,
    from_provisioning,
    iot_admin,
    iota_error,
    json_response,
    read_json,
    service_of,
    with_connection,
)
from ngsi.routers.iot_quarantine import router as quarantine_router
from ngsi.routers.openapi import errors, success
from storage.registry import (
    DuplicateDevice,
    GroupInUse,
    delete_device,
    delete_group,
    get_device,
    insert_devices,
    list_devices,
    list_groups,
    write_registry,
)

router = APIRouter(
    prefix="/iot", tags=["IoT Agent provisioning"], dependencies=[Depends(iot_admin)]
)
router.include_router(quarantine_router)
GROUP_PATHS = ("/groups", "/services")
#: The member a group list is under: `groups` on /iot/groups, `services` on /iot/services.
MEMBERS = {"/groups": "groups", "/services": "services"}
MAX_PAGE = 1000


def _group_of_apikey(groups: list[DeviceGroup], apikey: str) -> DeviceGroup | None:
    return next((g for g in groups if group_apikey(g) == apikey), None)


def _groups_by_name(conn: psycopg.Connection, tenant: str) -> dict[str, DeviceGroup]:
    return {g.name: g for g in list_groups(conn, tenant=tenant)}


# ---------------------------------------------------------------- config groups


async def create_groups(request: Request) -> Response:
    """Provision config groups; 409 DUPLICATE_GROUP when an apikey is in use."""
    tenant = service_of(request)
    try:
        groups = parse_groups(await read_json(request), tenant)
    except ProvisioningError as error:
        raise from_provisioning(error) from None

    def store(conn: psycopg.Connection) -> None:
        existing = list_groups(conn, profile=IOTA_PROFILE)
        names = {g.name for g in list_groups(conn)}
        for group in groups:
            taken = _group_of_apikey(existing, group_apikey(group))
            if taken is not None or group.name in names:
                raise iota_error(
                    "DUPLICATE_GROUP", f"a config group with apikey {group.apikey!r} exists"
                )
        write_registry(conn, [], groups)

    await with_connection(request, store)
    return json_response({}, 201)


async def read_groups(
    request: Request,
    limit: int = Query(20, ge=1, le=MAX_PAGE),
    offset: int = Query(0, ge=0),
) -> Response:
    """The config groups of the service: `{"count", "groups"|"services"}`."""
    tenant = service_of(request)

    def load(conn: psycopg.Connection) -> list[DeviceGroup]:
        return list_groups(conn, tenant=tenant, profile=IOTA_PROFILE)

    groups = await with_connection(request, load)
    member = MEMBERS[request.url.path.removeprefix("/iot")]
    chosen = groups[offset : offset + limit]
    return json_response({"count": len(groups), member: [group_to_iota(g) for g in chosen]})


async def update_group(
    request: Request, apikey: str = Query(...), resource: str | None = Query(None)
) -> Response:
    """Change a config group named by its apikey (`resource` is not kept, so not compared)."""
    tenant = service_of(request)
    changes = await read_json(request)

    def store(conn: psycopg.Connection) -> None:
        group = _group_of_apikey(list_groups(conn, tenant=tenant, profile=IOTA_PROFILE), apikey)
        if group is None:
            raise iota_error("DEVICE_GROUP_NOT_FOUND", f"no config group with apikey {apikey!r}")
        try:
            write_registry(conn, [], [group_update(group, changes)])
        except ProvisioningError as error:
            raise from_provisioning(error) from None

    await with_connection(request, store)
    return Response(status_code=204)


async def remove_group(
    request: Request,
    apikey: str = Query(...),
    resource: str | None = Query(None),
    device: bool = Query(False, description="Also remove the devices of the group."),
) -> Response:
    """Remove a config group; with `device=true` its devices too, else 409 while it has any."""
    tenant = service_of(request)

    def remove(conn: psycopg.Connection) -> None:
        group = _group_of_apikey(list_groups(conn, tenant=tenant, profile=IOTA_PROFILE), apikey)
        if group is None:
            raise iota_error("DEVICE_GROUP_NOT_FOUND", f"no config group with apikey {apikey!r}")
        if device:
            _, members = list_devices(conn, tenant=tenant, model=group.name)
            for _, member in members:
                delete_device(conn, member.tenant, member.device_id)
        try:
            delete_group(conn, group.name)
        except GroupInUse as error:
            raise iota_error(
                "GROUP_IN_USE",
                f"{error}; remove them first, or add device=true to remove them with it",
            ) from None

    await with_connection(request, remove)
    return Response(status_code=204)


GROUP_ERRORS = errors(400, 401, 403, 404, 409, 413, 415)
for path in GROUP_PATHS:
    router.add_api_route(
        path,
        create_groups,
        methods=["POST"],
        status_code=201,
        summary=f"Provision config groups ({path})",
        openapi_extra=OBJECT_BODY,
        responses={**success(201, "Created"), **GROUP_ERRORS},
    )
    router.add_api_route(
        path,
        read_groups,
        methods=["GET"],
        summary=f"List config groups ({path})",
        responses={**success(200, "The groups"), **errors(400, 401, 403)},
    )
    router.add_api_route(
        path,
        update_group,
        methods=["PUT"],
        status_code=204,
        summary=f"Change a config group ({path})",
        openapi_extra=OBJECT_BODY,
        responses={**success(204, "Changed"), **GROUP_ERRORS},
    )
    router.add_api_route(
        path,
        remove_group,
        methods=["DELETE"],
        status_code=204,
        summary=f"Remove a config group ({path})",
        responses={**success(204, "Removed"), **errors(400, 401, 403, 404, 409)},
    )


# ---------------------------------------------------------------- devices


@router.post(
    "/devices",
    status_code=201,
    summary="Provision devices",
    openapi_extra=OBJECT_BODY,
    responses={**success(201, "Created"), **GROUP_ERRORS},
)
async def create_devices(request: Request) -> Response:
    """Provision devices, all or none; 409 DUPLICATE_DEVICE_ID when one is registered."""
    tenant = service_of(request)
    body = await read_json(request)

    def store(conn: psycopg.Connection) -> None:
        try:
            devices = parse_devices(body, tenant, list_groups(conn, profile=IOTA_PROFILE))
            insert_devices(conn, devices)
        except ProvisioningError as error:
            raise from_provisioning(error) from None
        except DuplicateDevice as error:
            raise iota_error("DUPLICATE_DEVICE_ID", str(error)) from None

    await with_connection(request, store)
    return json_response({}, 201)


@router.get(
    "/devices",
    summary="List devices",
    responses={**success(200, "The devices"), **errors(400, 401, 403)},
)
async def read_devices(
    request: Request,
    limit: int = Query(20, ge=1, le=MAX_PAGE),
    offset: int = Query(0, ge=0),
) -> Response:
    """The devices of the service, a page at a time: `{"count", "devices"}`."""
    tenant = service_of(request)

    def load(conn: psycopg.Connection) -> dict[str, Any]:
        count, devices = list_devices(conn, tenant=tenant, limit=limit, offset=offset)
        groups = _groups_by_name(conn, tenant)
        shown = [device_to_iota(k, d, groups.get(d.model or "")) for k, d in devices]
        return {"count": count, "devices": shown}

    return json_response(await with_connection(request, load))


@router.get(
    "/devices/{device_id}",
    summary="Read a device",
    responses={**success(200, "The device"), **errors(400, 401, 403, 404)},
)
async def read_device(request: Request, device_id: str) -> Response:
    """One device of the service; 404 DEVICE_NOT_FOUND."""
    tenant = service_of(request)

    def load(conn: psycopg.Connection) -> dict[str, Any]:
        found = get_device(conn, tenant, device_id)
        if found is None:
            raise iota_error("DEVICE_NOT_FOUND", f"no device {device_id!r} in this service")
        key, device = found
        return device_to_iota(key, device, _groups_by_name(conn, tenant).get(device.model or ""))

    return json_response(await with_connection(request, load))


@router.put(
    "/devices/{device_id}",
    status_code=204,
    summary="Change a device",
    openapi_extra=OBJECT_BODY,
    responses={**success(204, "Changed"), **GROUP_ERRORS},
)
async def update_device(request: Request, device_id: str) -> Response:
    """Change a device's mappings, static attributes or entity; id and apikey stay."""
    tenant = service_of(request)
    changes = await read_json(request)

    def store(conn: psycopg.Connection) -> None:
        found = get_device(conn, tenant, device_id)
        if found is None:
            raise iota_error("DEVICE_NOT_FOUND", f"no device {device_id!r} in this service")
        key, device = found
        try:
            updated = device_update(key, device, changes, list_groups(conn, profile=IOTA_PROFILE))
        except ProvisioningError as error:
            raise from_provisioning(error) from None
        write_registry(conn, [(key, updated)], [])

    await with_connection(request, store)
    return Response(status_code=204)


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    summary="Remove a device",
    responses={**success(204, "Removed"), **errors(400, 401, 403, 404)},
)
async def remove_device(request: Request, device_id: str) -> Response:
    """Remove a device from the registry (its history stays); 404 DEVICE_NOT_FOUND."""
    tenant = service_of(request)

    def remove(conn: psycopg.Connection) -> None:
        if not delete_device(conn, tenant, device_id):
            raise iota_error("DEVICE_NOT_FOUND", f"no device {device_id!r} in this service")

    await with_connection(request, remove)
    return Response(status_code=204)

"""`/iot/quarantine`: unknown devices with what they sent, and their adoption.

`GET /iot/quarantine` lists the unknown devices a tenant may see (those whose key a group of
the tenant claims; the default tenant also sees those nobody claims), `GET
/iot/quarantine/{profile}/{key}` their messages with payloads, and `POST
/iot/quarantine/{profile}/{key}/adopt` registers the device and replays what it sent
(storage/quarantine.py). Mounted under the `/iot` router, which requires admin access.
"""

from __future__ import annotations

import base64
from typing import Any

import psycopg
from fastapi import APIRouter, Query, Request, Response

from devices.iota_provisioning import device_to_iota
from devices.model import DeviceConfig, DeviceGroup
from ngsi.routers.iot_common import (
    OBJECT_BODY,
    iota_error,
    json_response,
    read_json,
    service_of,
    with_connection,
)
from ngsi.routers.openapi import errors, success
from storage.backend import Backend, detect_backend
from storage.quarantine import (
    QuarantinedDevice,
    adopt,
    claiming_group,
    device_for_group,
    list_quarantine,
    quarantined_messages,
)
from storage.registry import get_group, list_groups

router = APIRouter()
ADOPT_FIELDS = frozenset({"group", "device_id", "entity_type", "entity_name", "location"})


def payload_fields(payload: bytes) -> dict[str, str]:
    """A payload as text when it is UTF-8, else as base64."""
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"payloadBase64": base64.b64encode(payload).decode("ascii")}


def _summary(device: QuarantinedDevice) -> dict[str, Any]:
    return {
        "profile": device.profile,
        "key": device.device_key,
        "group": device.group.name if device.group else None,
        "topics": device.topics,
        "messages": device.messages,
        "timesReceived": device.times_received,
        "firstReceivedAt": device.first_received_at.isoformat(),
        "lastReceivedAt": device.last_received_at.isoformat(),
        **payload_fields(device.latest_payload),
    }


@router.get(
    "/quarantine",
    summary="List unknown devices",
    responses={**success(200, "Unknown devices, most recent first"), **errors(400, 401, 403)},
)
async def read_quarantine(
    request: Request, limit: int = Query(20, ge=1, le=1000), offset: int = Query(0, ge=0)
) -> Response:
    """Unknown devices of the service with their latest payload: `{"count", "devices"}`."""
    tenant = service_of(request)
    found = await with_connection(request, lambda conn: list_quarantine(conn, tenant))
    page = [_summary(device) for device in found[offset : offset + limit]]
    return json_response({"count": len(found), "devices": page})


def _visible(conn: psycopg.Connection, tenant: str, profile: str, key: str) -> DeviceGroup | None:
    """The group claiming the key; QUARANTINE_NOT_FOUND when the tenant may not see it."""
    group = claiming_group(list_groups(conn, profile=profile), profile, key)
    if (group.tenant if group else "") != tenant:
        raise iota_error("QUARANTINE_NOT_FOUND", f"no quarantined {profile} device {key!r}")
    return group


@router.get(
    "/quarantine/{profile}/{key:path}",
    summary="Messages of an unknown device",
    responses={**success(200, "Its messages, oldest first"), **errors(400, 401, 403, 404)},
)
async def read_quarantined(
    request: Request, profile: str, key: str, limit: int = Query(100, ge=1, le=1000)
) -> Response:
    """What one unknown device sent, payloads included."""
    tenant = service_of(request)

    def load(conn: psycopg.Connection) -> list[dict[str, Any]]:
        _visible(conn, tenant, profile, key)
        return [
            {
                "topic": message.topic,
                **payload_fields(message.payload),
                "firstReceivedAt": message.first_received_at.isoformat(),
                "lastReceivedAt": message.last_received_at.isoformat(),
                "timesReceived": message.times_received,
            }
            for message in quarantined_messages(conn, profile, key, limit)
        ]

    messages = await with_connection(request, load)
    if not messages:
        raise iota_error("QUARANTINE_NOT_FOUND", f"no quarantined {profile} device {key!r}")
    return json_response({"profile": profile, "key": key, "messages": messages})


def _adopted_config(
    body: dict[str, Any], group: DeviceGroup, key: str, tenant: str
) -> DeviceConfig:
    """The device to register: the group's settings, the key's id, the body's overrides."""
    if group.tenant != tenant:
        raise iota_error("DEVICE_GROUP_NOT_FOUND", f"no device group {group.name!r} here")
    for name in ("device_id", "entity_type", "entity_name"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise iota_error("BAD_REQUEST", f"body.{name}: expected a string")
    location = body.get("location")
    if location is not None and not (
        isinstance(location, list)
        and len(location) == 2
        and all(isinstance(c, int | float) and not isinstance(c, bool) for c in location)
        and -180 <= location[0] <= 180
        and -90 <= location[1] <= 90
    ):
        raise iota_error("BAD_REQUEST", "body.location: expected [longitude, latitude]")
    try:
        device = device_for_group(group, key, body.get("device_id"))
    except ValueError as error:
        raise iota_error("BAD_REQUEST", str(error)) from None
    return DeviceConfig(
        device_id=device.device_id,
        profile=device.profile,
        tenant=device.tenant,
        model=device.model,
        entity_type=body.get("entity_type"),
        entity_name=body.get("entity_name"),
        location=(float(location[0]), float(location[1])) if location else None,
    )


def _backend(request: Request, conn: psycopg.Connection) -> Backend:
    """The storage backend, detected once per app (the writer needs it)."""
    backend: Backend | None = getattr(request.app.state, "iot_backend", None)
    if backend is None:
        backend = detect_backend(conn, request.app.state.settings.storage_backend)
        request.app.state.iot_backend = backend
    return backend


@router.post(
    "/quarantine/{profile}/{key:path}/adopt",
    summary="Adopt an unknown device",
    openapi_extra=OBJECT_BODY,
    responses={
        **success(200, "Registered; its quarantined messages stored"),
        **errors(400, 401, 403, 404, 409, 413, 415),
    },
)
async def adopt_device(request: Request, profile: str, key: str) -> Response:
    """Register the device (in the named group, else the one claiming its key) and replay
    its quarantined messages: `{"group"?, "device_id"?, "entity_type"?, "entity_name"?,
    "location"?: [lon, lat]}`."""
    tenant = service_of(request)
    raw = await read_json(request) if await request.body() else {}
    if not isinstance(raw, dict) or set(raw) - ADOPT_FIELDS:
        raise iota_error("BAD_REQUEST", f"body: an object with {', '.join(sorted(ADOPT_FIELDS))}")

    def run(conn: psycopg.Connection) -> dict[str, Any]:
        name = raw.get("group")
        group = (
            get_group(conn, name) if isinstance(name, str) else _visible(conn, tenant, profile, key)
        )
        if group is None or group.profile != profile:
            raise iota_error(
                "DEVICE_GROUP_NOT_FOUND", f"name a {profile} device group to adopt {key!r} into"
            )
        device = _adopted_config(raw, group, key, tenant)
        backend = _backend(request, conn)
        conn.commit()
        try:
            adoption = adopt(conn, backend, profile, key, device)
        except ValueError as error:
            raise iota_error("BAD_REQUEST", str(error)) from None
        except psycopg.errors.UniqueViolation as error:
            detail = error.diag.message_detail or str(error)
            raise iota_error("DUPLICATE_DEVICE_ID", f"already registered: {detail}") from None
        return {
            "device": device_to_iota(key, adoption.device, group),
            "replayed": adoption.replayed,
            "readings": adoption.readings,
            "observationsInserted": adoption.observations_inserted,
            "refused": adoption.refused,
        }

    return json_response(await with_connection(request, run))

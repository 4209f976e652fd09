"""OpenAPI descriptions of what the routes read and answer, so /docs shows them accurately.

The routes read their bodies themselves (the @context rules of 6.3.5 need the raw body and
headers), so FastAPI cannot infer the request bodies; they are declared here instead.
"""

from __future__ import annotations

from typing import Any

PROBLEM_DETAILS = {
    "type": "object",
    "required": ["type", "title"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "example": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
        },
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}
ATTRIBUTE = {
    "description": "An attribute: normalized ({type, value|object|languageMap, observedAt, "
    "unitCode, datasetId, sub-attributes}), concise, or an array of datasetId instances.",
    "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
}
ENTITY = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": {"type": "string", "format": "uri"},
        "type": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "scope": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "@context": {"description": "Only with Content-Type application/ld+json."},
    },
    "additionalProperties": ATTRIBUTE,
}
ATTRIBUTES = {"type": "object", "additionalProperties": ATTRIBUTE}
ENTITY_EXAMPLE = {
    "id": "urn:ngsi-ld:AirQualityObserved:gent-1",
    "type": "AirQualityObserved",
    "pm25": {
        "type": "Property",
        "value": 12.5,
        "unitCode": "GQ",
        "observedAt": "2026-11-29T08:00:00Z",
    },
    "location": {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [3.7249, 51.0536]},
    },
}
UPDATE_RESULT = {
    "type": "object",
    "properties": {
        "updated": {"type": "array", "items": {"type": "string"}},
        "notUpdated": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"attributeName": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}
_ERROR_MEANINGS = {
    400: "InvalidRequest or BadRequestData",
    401: "No or invalid credentials",
    403: "Forbidden, TooManyResults or TooComplexQuery",
    404: "ResourceNotFound or NonexistentTenant",
    406: "The Accept header asks for nothing this resource offers",
    409: "AlreadyExists",
    413: "The body is too large",
    415: "The Content-Type is neither application/json nor application/ld+json",
    503: "LdContextNotAvailable, or the database is unavailable",
}


def request_body(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON / JSON-LD request body."""
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": content, "application/ld+json": content},
        }
    }


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses` entries for the ProblemDetails errors a route can answer."""
    return {
        status: {
            "description": _ERROR_MEANINGS[status],
            "content": {"application/json": {"schema": PROBLEM_DETAILS}},
        }
        for status in statuses
    }


def success(
    status: int, description: str, schema: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A `responses` entry for a success answer."""
    entry: dict[str, Any] = {"description": description}
    if schema is not None:
        entry["content"] = {
            "application/json": {"schema": schema},
            "application/ld+json": {"schema": schema},
        }
    return {status: entry}


BATCH_RESULT = {
    "type": "object",
    "description": "BatchOperationResult (5.2.16)",
    "properties": {
        "success": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"entityId": {"type": "string"}, "error": PROBLEM_DETAILS},
            },
        },
    },
}
ENTITY_ARRAY = {"type": "array", "items": ENTITY}
ID_ARRAY = {"type": "array", "items": {"type": "string", "format": "uri"}}
QUERY = {
    "type": "object",
    "description": "Query (5.2.23): entities selectors, attrs, q, geoQ ...",
    "required": ["type"],
    "properties": {
        "type": {"const": "Query"},
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "idPattern": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
        "attrs": {"type": "array", "items": {"type": "string"}},
        "q": {"type": "string"},
        "geoQ": {
            "type": "object",
            "properties": {
                "geometry": {"type": "string"},
                "coordinates": {},
                "georel": {"type": "string"},
                "geoproperty": {"type": "string"},
            },
        },
    },
}
CONTEXT_DOCUMENT = {
    "type": "object",
    "required": ["@context"],
    "properties": {"@context": {"description": "An object, a URL or an array of them"}},
}
DISCOVERY = {
    "type": "object",
    "description": "EntityTypeList / EntityType / EntityTypeInfo / "
    "AttributeList / Attribute (5.2.24-5.2.28); an array of them with details=true",
}
#: update and delete: 204 or 207; create and upsert also answer 201 with the ids created.
BATCH_CHANGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    **success(204, "Every entity succeeded"),
    **success(207, "Some failed: BatchOperationResult", BATCH_RESULT),
    **errors(400, 401, 403, 404, 413, 415, 503),
}
BATCH_ANSWERS = {**success(201, "The ids created", ID_ARRAY), **BATCH_CHANGE_ANSWERS}
READ_ANSWERS = errors(400, 401, 403, 404, 406, 503)

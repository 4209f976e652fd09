"""NGSI-LD errors as ProblemDetails (IETF RFC 7807; ETSI GS CIM 009, clause 5.5.2).

Every failure of the API is raised as an `NgsiError` and answered as
`application/json` ProblemDetails with the ETSI error type URI, a title and a detail
that tells the caller what to fix.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"
#: HTTP failures that are not ETSI error types get a name of this service's own, not one
#: under ETSI's namespace (RFC 7807, 3.1: a type URI identifies the problem type).
LOCAL_ERROR_BASE = "urn:stadspuls:errors:"


class ErrorType(Enum):
    """The error types of clause 5.5.2 (and their HTTP status, clause 6.3.2)."""

    INVALID_REQUEST = ("InvalidRequest", 400)
    BAD_REQUEST_DATA = ("BadRequestData", 400)
    ALREADY_EXISTS = ("AlreadyExists", 409)
    OPERATION_NOT_SUPPORTED = ("OperationNotSupported", 422)
    RESOURCE_NOT_FOUND = ("ResourceNotFound", 404)
    INTERNAL_ERROR = ("InternalError", 500)
    TOO_COMPLEX_QUERY = ("TooComplexQuery", 403)
    TOO_MANY_RESULTS = ("TooManyResults", 403)
    LD_CONTEXT_NOT_AVAILABLE = ("LdContextNotAvailable", 503)
    NO_MULTI_TENANT_SUPPORT = ("NoMultiTenantSupport", 501)
    NONEXISTENT_TENANT = ("NonexistentTenant", 404)
    # Not ETSI error types, but HTTP failures the binding (clause 6.3) also answers; they
    # share the ProblemDetails shape so every error body looks alike (LOCAL_ERROR_BASE).
    UNAUTHORIZED = ("Unauthorized", 401)
    FORBIDDEN = ("Forbidden", 403)
    NOT_ACCEPTABLE = ("NotAcceptable", 406)
    UNSUPPORTED_MEDIA_TYPE = ("UnsupportedMediaType", 415)
    PAYLOAD_TOO_LARGE = ("PayloadTooLarge", 413)
    METHOD_NOT_ALLOWED = ("MethodNotAllowed", 405)

    @property
    def uri(self) -> str:
        """The error type URI placed in ProblemDetails `type`."""
        return error_uri(self.value[0])

    @property
    def status(self) -> int:
        """The HTTP status code of this error type."""
        return self.value[1]

    @property
    def title(self) -> str:
        """A short human title: the type name split into words."""
        name = self.value[0]
        return "".join(" " + c.lower() if c.isupper() and i else c for i, c in enumerate(name))


_LOCAL_TYPES = frozenset(
    {
        "Unauthorized",
        "Forbidden",
        "NotAcceptable",
        "UnsupportedMediaType",
        "PayloadTooLarge",
        "MethodNotAllowed",
    }
)


def error_uri(name: str) -> str:
    """The ProblemDetails `type` of an error type name (ETSI's, or this service's own)."""
    return (LOCAL_ERROR_BASE if name in _LOCAL_TYPES else ERROR_BASE) + name


class NgsiError(Exception):
    """An API failure that becomes a ProblemDetails response."""

    def __init__(
        self,
        error_type: ErrorType,
        detail: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.detail = detail
        self.status = status or error_type.status
        self.headers = headers or {}
        self.extra = extra or {}

    def problem(self) -> dict[str, Any]:
        """The ProblemDetails body."""
        body: dict[str, Any] = {
            "type": self.error_type.uri,
            "title": self.error_type.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


def bad_request(detail: str) -> NgsiError:
    """BadRequestData: the request is well formed but its content is not acceptable."""
    return NgsiError(ErrorType.BAD_REQUEST_DATA, detail)


def invalid_request(detail: str) -> NgsiError:
    """InvalidRequest: the request itself (syntax, parameters) is invalid."""
    return NgsiError(ErrorType.INVALID_REQUEST, detail)


def not_found(detail: str) -> NgsiError:
    """ResourceNotFound."""
    return NgsiError(ErrorType.RESOURCE_NOT_FOUND, detail)

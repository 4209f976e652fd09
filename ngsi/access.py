"""Who may call the API: API keys, OpenID Connect bearer tokens and public read per tenant.

Routers declare what an endpoint needs with one of three FastAPI dependencies,
`read_access`, `write_access` or `admin_access`. Each one authenticates the caller (once per
request), decides for the request's tenant (the `NGSILD-Tenant` header, `""` when absent),
stores the resulting `Principal` in `request.state.principal` and returns it, or raises
`NgsiError` Unauthorized (401, with `WWW-Authenticate`) when credentials are missing or
invalid, Forbidden (403) when they do not grant enough on that tenant.

Credentials: an API key in `X-API-Key`, `Authorization: ApiKey <key>` or
`Authorization: Bearer <key>` (for clients that can only send bearer tokens; a key starts
with `sp_`, a JWT never does), or an OpenID Connect access token as `Authorization: Bearer`,
verified against the provider's JWKS. Anonymous callers may only read, and only tenants
whose public read is on (`Settings.auth_public_read_tenants` or `stadspuls keys
public-read`). With `Settings.auth_enabled` False every request passes as an admin.

The per-process state (key and public-read caches, the JWKS client) is an `AccessControl`
kept in `app.state.access`; it is made from `app.state.settings` on first use when the app
factory did not put one there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from fastapi import FastAPI, Request
from psycopg_pool import AsyncConnectionPool
from starlette.concurrency import run_in_threadpool

from ngsi.errors import ErrorType, NgsiError
from stadspuls.settings import Settings
from storage.api_keys import (
    KEY_PREFIX,
    KeyCache,
    Role,
    StoredKey,
    fetch_key,
    fetch_public_read,
    parse_key,
    touch_key,
)

__all__ = [
    "AccessControl",
    "Principal",
    "Role",
    "access_control",
    "admin_access",
    "read_access",
    "write_access",
]

TENANT_HEADER = "NGSILD-Tenant"
API_KEY_HEADER = "X-API-Key"
REALM = "stadspuls"
JWT_ALGORITHMS = ("RS256", "ES256")
#: Seconds of clock difference with the identity provider tolerated on exp, nbf and iat.
TOKEN_LEEWAY_SECONDS = 30
#: Seconds the provider's key set is trusted before it is fetched again (an unknown key id
#: fetches it sooner, at most every 30 s: PyJWKClient's cooldown).
JWKS_LIFESPAN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling (`api-key:<id>`, `oidc:<sub>`, `anonymous`), on which tenant, as what."""

    who: str
    tenant: str
    role: Role


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller before a tenant is considered.

    `role` is None when the caller holds no role at all (a token without our scopes);
    `tenants` None means every tenant.
    """

    who: str
    kind: Literal["anonymous", "api_key", "oidc"]
    role: Role | None
    tenants: frozenset[str] | None


ANONYMOUS = Identity("anonymous", "anonymous", None, frozenset())


def tenant_name(tenant: str) -> str:
    """A tenant as error messages name it."""
    return f"tenant {tenant!r}" if tenant else "the default tenant"


def _quoted(value: str) -> str:
    # An RFC 7230 quoted-string: printable ASCII, without the quote and backslash that would
    # end or escape it (the values are our own messages, so replacing is harmless).
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in value)
    return f'"{safe}"'


def challenge(scheme: str, **params: str) -> str:
    """One WWW-Authenticate challenge, e.g. `Bearer realm="stadspuls", error="invalid_token"`."""
    pairs = {"realm": REALM, **params}
    return scheme + " " + ", ".join(f"{name}={_quoted(value)}" for name, value in pairs.items())


def unauthorized(detail: str, challenges: str) -> NgsiError:
    """A 401 naming the schemes the caller can use."""
    return NgsiError(ErrorType.UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenges})


def invalid_token(detail: str) -> NgsiError:
    """A 401 for a bearer token that cannot be accepted (RFC 6750 `invalid_token`)."""
    return unauthorized(
        detail, challenge("Bearer", error="invalid_token", error_description=detail)
    )


def read_credential(headers: Mapping[str, str]) -> tuple[Literal["api_key", "bearer"], str] | None:
    """The caller's credential from the headers: ("api_key", key), ("bearer", jwt) or None."""
    api_key = headers.get(API_KEY_HEADER)
    authorization = headers.get("Authorization")
    if api_key is not None and authorization is not None:
        raise unauthorized(
            f"send one credential: either {API_KEY_HEADER} or Authorization, not both",
            challenge("ApiKey"),
        )
    if api_key is not None:
        return "api_key", api_key.strip()
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "apikey" and value:
        return "api_key", value
    if scheme.lower() == "bearer" and value:
        return ("api_key" if value.startswith(KEY_PREFIX + "_") else "bearer"), value
    raise unauthorized(
        "the Authorization header must read `ApiKey <key>` or `Bearer <token>`",
        challenge("ApiKey"),
    )


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes of a token: `scope` and `scp`, each a space-separated string or a list."""
    scopes: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(item for item in value if isinstance(item, str))
    return frozenset(scopes)


def role_for_scopes(scopes: frozenset[str], scope_names: Mapping[Role, str]) -> Role | None:
    """The highest role whose scope is among `scopes`; None when there is none."""
    granted = [role for role, name in scope_names.items() if name in scopes]
    return max(granted) if granted else None


def tenants_of(claims: Mapping[str, Any], claim: str) -> frozenset[str] | None:
    """The tenants a token is limited to by its tenant claim; None (all) when it has none."""
    if claim not in claims:
        return None
    value = claims[claim]
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def granted_role(identity: Identity, tenant: str) -> Role | None:
    """The role `identity` holds on `tenant`, not counting public read."""
    if identity.tenants is not None and tenant not in identity.tenants:
        return None
    return identity.role


def refusal(identity: Identity, tenant: str, needed: Role, settings: Settings) -> NgsiError:
    """The error for `identity` lacking `needed` on `tenant`: 401 if anonymous, else 403."""
    if identity.kind == "anonymous":
        schemes = [challenge("ApiKey")] + ([challenge("Bearer")] if settings.oidc_jwks_url else [])
        how = f"an API key ({API_KEY_HEADER} header)"
        if settings.oidc_jwks_url:
            how += " or an OpenID Connect bearer token"
        what = "reading" if needed == Role.READ else f"{needed.label} access"
        return unauthorized(f"{what} on {tenant_name(tenant)} needs {how}", ", ".join(schemes))
    headers: dict[str, str] = {}
    if identity.tenants is not None and tenant not in identity.tenants:
        detail = f"the credentials of {identity.who} are not valid for {tenant_name(tenant)}"
    elif identity.role is None:
        detail = f"the token of {identity.who} carries none of the stadspuls scopes"
    else:
        detail = (
            f"{identity.who} may {identity.role.label} on {tenant_name(tenant)},"
            f" this request needs {needed.label}"
        )
    if identity.kind == "oidc":
        scope = scope_names(settings)[needed]
        headers["WWW-Authenticate"] = challenge("Bearer", error="insufficient_scope", scope=scope)
    return NgsiError(ErrorType.FORBIDDEN, detail, headers=headers)


def scope_names(settings: Settings) -> dict[Role, str]:
    """The OAuth scope that grants each role."""
    return {
        Role.READ: settings.oidc_read_scope,
        Role.WRITE: settings.oidc_write_scope,
        Role.ADMIN: settings.oidc_admin_scope,
    }


class TokenVerifier:
    """Verifies OpenID Connect access tokens against the provider's JWKS."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_jwks_url is not None
        self.settings = settings
        self.scopes = scope_names(settings)
        self.client = jwt.PyJWKClient(
            settings.oidc_jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_LIFESPAN_SECONDS,
            timeout=settings.oidc_jwks_timeout,
        )

    async def _signing_key(self, kid: str) -> jwt.PyJWK:
        cache = self.client.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if cached is not None:
            for key in cached.keys:
                if key.key_id == kid and key.public_key_use in ("sig", None):
                    return key
        # Fetching the key set blocks (urllib), so it runs off the event loop.
        try:
            return await run_in_threadpool(self.client.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as error:
            raise NgsiError(
                ErrorType.INTERNAL_ERROR,
                f"the identity provider's keys could not be fetched, try again later: {error}",
                status=503,
            ) from error
        except jwt.PyJWKClientError as error:
            raise invalid_token(f"the token is signed with an unknown key: {error}") from error

    async def identity(self, token: str) -> Identity:
        """The verified caller of `token`; NgsiError 401 when the token is not acceptable."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise invalid_token(f"the bearer token is not a JWT: {error}") from error
        algorithm = header.get("alg")
        if algorithm not in JWT_ALGORITHMS:
            raise invalid_token(f"tokens signed with {algorithm!r} are not accepted (RS256, ES256)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise invalid_token("the token header names no signing key (kid)")
        key = await self._signing_key(kid)
        settings = self.settings
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(JWT_ALGORITHMS),
                audience=settings.oidc_audience,
                issuer=settings.oidc_issuer,
                leeway=TOKEN_LEEWAY_SECONDS,
                options={"require": ["exp"], "verify_aud": settings.oidc_audience is not None},
            )
        except jwt.ExpiredSignatureError as error:
            raise invalid_token("the token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise invalid_token("the token is not valid yet (nbf/iat)") from error
        except jwt.InvalidIssuerError as error:
            raise invalid_token(f"the token was not issued by {settings.oidc_issuer}") from error
        except jwt.InvalidAudienceError as error:
            raise invalid_token(f"the token is not meant for {settings.oidc_audience}") from error
        except jwt.MissingRequiredClaimError as error:
            raise invalid_token(f"the token has no {error.claim!r} claim") from error
        except jwt.PyJWTError as error:
            raise invalid_token(f"the token is not valid: {error}") from error
        return Identity(
            f"oidc:{claims.get('sub', '?')}",
            "oidc",
            role_for_scopes(scopes_of(claims), self.scopes),
            tenants_of(claims, settings.oidc_tenant_claim),
        )


class AccessControl:
    """The state access control keeps in one API process: caches and the JWKS client."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        seconds = settings.auth_cache_seconds
        self.keys: KeyCache[str, StoredKey | None] = KeyCache(seconds, clock=clock)
        self.public: KeyCache[str, bool] = KeyCache(seconds, clock=clock)
        self.public_tenants = frozenset(settings.auth_public_read_tenants)
        self.tokens = TokenVerifier(settings) if settings.oidc_jwks_url else None

    async def key_identity(self, pool: AsyncConnectionPool, key: str) -> Identity:
        """The caller holding API key `key`; 401 when it is malformed, unknown or revoked."""
        try:
            key_id, secret = parse_key(key)
        except ValueError as error:
            raise unauthorized(f"the API key is malformed: {error}", challenge("ApiKey")) from None
        found, stored = self.keys.get(key_id)
        if not found:
            async with pool.connection() as conn:
                stored = await fetch_key(conn, key_id)
                if stored is not None and not stored.revoked and stored.matches(secret):
                    await touch_key(conn, stored, datetime.now(UTC))
            self.keys.put(key_id, stored)
        if stored is None or stored.revoked or not stored.matches(secret):
            raise unauthorized("the API key is unknown or revoked", challenge("ApiKey"))
        return Identity(
            f"api-key:{stored.key_id}", "api_key", stored.role, frozenset([stored.tenant])
        )

    async def identity(self, request: Request) -> Identity:
        """Who sent `request` (authenticated once per request, then kept on request.state)."""
        known = getattr(request.state, "access_identity", None)
        if known is not None:
            return known
        credential = read_credential(request.headers)
        if credential is None:
            identity = ANONYMOUS
        elif credential[0] == "api_key":
            identity = await self.key_identity(request.app.state.pool, credential[1])
        elif self.tokens is None:
            raise unauthorized(
                "bearer tokens are not accepted here (OpenID Connect is not configured);"
                f" send an API key in {API_KEY_HEADER}",
                challenge("ApiKey"),
            )
        else:
            identity = await self.tokens.identity(credential[1])
        request.state.access_identity = identity
        return identity

    async def public_read(self, pool: AsyncConnectionPool, tenant: str) -> bool:
        """Whether anyone may read `tenant` (settings, then the database, cached)."""
        if tenant in self.public_tenants:
            return True
        found, public = self.public.get(tenant)
        if not found:
            async with pool.connection() as conn:
                public = await fetch_public_read(conn, tenant)
            self.public.put(tenant, public)
        return bool(public)

    async def authorize(self, request: Request, tenant: str, needed: Role) -> Principal:
        """The principal of `request` on `tenant` if it holds `needed`, else NgsiError."""
        identity = await self.identity(request)
        role = granted_role(identity, tenant)
        if role is not None and role >= needed:
            return Principal(identity.who, tenant, role)
        if needed == Role.READ and await self.public_read(request.app.state.pool, tenant):
            return Principal(identity.who, tenant, Role.READ)
        raise refusal(identity, tenant, needed, self.settings)


def access_control(app: FastAPI) -> AccessControl:
    """The app's AccessControl, made from app.state.settings on first use."""
    control = getattr(app.state, "access", None)
    if control is None:
        control = AccessControl(app.state.settings)
        app.state.access = control
    return control


async def _require(request: Request, needed: Role) -> Principal:
    settings: Settings = request.app.state.settings
    tenant = request.headers.get(TENANT_HEADER, "")
    if settings.auth_enabled:
        principal = await access_control(request.app).authorize(request, tenant, needed)
    else:
        principal = Principal("anonymous (access control off)", tenant, Role.ADMIN)
    request.state.principal = principal
    return principal


async def read_access(request: Request) -> Principal:
    """Dependency: the caller may read the request's tenant (or it is publicly readable)."""
    return await _require(request, Role.READ)


async def write_access(request: Request) -> Principal:
    """Dependency: the caller holds write (or admin) on the request's tenant."""
    return await _require(request, Role.WRITE)


async def admin_access(request: Request) -> Principal:
    """Dependency: the caller holds admin on the request's tenant."""
    return await _require(request, Role.ADMIN)

"""Access control end to end: API keys in PostgreSQL, OIDC tokens from a real JWKS server.

A tiny FastAPI app with one route per dependency stands in for the API; it is called
in-process over httpx's ASGI transport, with a real AsyncConnectionPool on a migrated scratch
database. Every test works on tenants of its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from ngsi.access import AccessControl, Principal, admin_access, read_access, write_access
from ngsi.errors import ErrorType, NgsiError
from stadspuls.cli import app as cli_app
from stadspuls.embedded import free_port
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.api_keys import Role, create_key, list_keys, revoke_key, set_public_read
from storage.database import connect, drop_database
from tests.support.fixtures import scratch_database_url

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ISSUER = "https://idp.example.test/realms/city"
AUDIENCE = "stadspuls-api"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def build_app(settings: Settings, pool: AsyncConnectionPool) -> FastAPI:
    """One route per dependency, answering with the principal it got."""
    app = FastAPI()
    app.state.settings = settings
    app.state.pool = pool

    @app.exception_handler(NgsiError)
    async def problem(request: Request, error: NgsiError) -> JSONResponse:
        return JSONResponse(error.problem(), status_code=error.status, headers=error.headers)

    def answer(principal: Principal, request: Request) -> dict[str, Any]:
        assert request.state.principal == principal
        return {"who": principal.who, "tenant": principal.tenant, "role": principal.role.label}

    @app.get("/read")
    async def read(request: Request, principal: Annotated[Principal, Depends(read_access)]) -> dict:
        return answer(principal, request)

    @app.post("/write")
    async def write(
        request: Request, principal: Annotated[Principal, Depends(write_access)]
    ) -> dict:
        return answer(principal, request)

    @app.delete("/admin")
    async def admin(
        request: Request, principal: Annotated[Principal, Depends(admin_access)]
    ) -> dict:
        return answer(principal, request)

    return app


class Api:
    """The test app behind an httpx client: `call("write", tenant, key=...)`."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        self.client = client
        self.app = app

    async def call(
        self,
        access: str,
        tenant: str | None = None,
        *,
        key: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if tenant is not None:
            sent["NGSILD-Tenant"] = tenant
        if key is not None:
            sent["X-API-Key"] = key
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        method = {"read": "GET", "write": "POST", "admin": "DELETE"}[access]
        return await self.client.request(method, f"/{access}", headers=sent)


@asynccontextmanager
async def serving(settings: Settings, access: AccessControl | None = None) -> AsyncIterator[Api]:
    """The test app on a pool of its own (closed afterwards)."""
    pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=2, open=False)
    await pool.open()
    try:
        app = build_app(settings, pool)
        if access is not None:
            app.state.access = access
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Api(client, app)
    finally:
        await pool.close()


def assert_problem(response: httpx.Response, error_type: ErrorType, detail: str = "") -> None:
    """The response is ProblemDetails of `error_type`, its detail containing `detail`."""
    assert response.status_code == error_type.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == error_type.uri
    assert body["status"] == error_type.status
    assert detail in body["detail"]
    if error_type == ErrorType.UNAUTHORIZED:
        assert response.headers["WWW-Authenticate"]


def assert_allowed(response: httpx.Response, who: str, role: str) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["who"].startswith(who)
    assert response.json()["role"] == role


@pytest.fixture(scope="module")
def access_database() -> Iterator[str]:
    """A database of this module, migrated (storage.migrate) for the detected backend.

    Access control is the same on every backend, so unlike the storage tests these run once.
    """
    url = scratch_database_url("stadspuls_access")
    prepare_database(Settings(database_url=url, metrics_port=0))
    yield url
    drop_database(url)


@pytest.fixture
def settings(access_database: str) -> Settings:
    """Settings on the module's database; OpenID Connect off."""
    return Settings(database_url=access_database, metrics_port=0)


def new_key(database_url: str, tenant: str, role: Role) -> str:
    with connect(database_url) as conn:
        return create_key(conn, tenant=tenant, role=role, name=f"test {role.label}").key


def key_id_of(key: str) -> str:
    return key.split("_")[1]


# --- API keys and public read ----------------------------------------------------------


async def test_anonymous_callers_are_refused_unless_the_tenant_is_publicly_readable(
    settings, tenant
):
    async with serving(settings) as api:
        assert_problem(await api.call("write", tenant), ErrorType.UNAUTHORIZED, "needs an API key")
        assert_problem(await api.call("read", tenant), ErrorType.UNAUTHORIZED, "reading on")
        with connect(settings.database_url) as conn:
            set_public_read(conn, tenant, True)
        # A fresh AccessControl: the refusal above cached "not public" for the window.
        api.app.state.access = AccessControl(settings)
        assert_allowed(await api.call("read", tenant), "anonymous", "read")
        assert_problem(await api.call("write", tenant), ErrorType.UNAUTHORIZED, "write access")
        assert_problem(await api.call("admin", tenant), ErrorType.UNAUTHORIZED, "admin access")
        assert_problem(await api.call("read", tenant + "-other"), ErrorType.UNAUTHORIZED)


async def test_tenants_listed_in_settings_are_publicly_readable(settings, tenant):
    public = settings.model_copy(update={"auth_public_read_tenants": [tenant]})
    async with serving(public) as api:
        assert_allowed(await api.call("read", tenant), "anonymous", "read")
        assert_problem(await api.call("write", tenant), ErrorType.UNAUTHORIZED)
        assert_problem(await api.call("read", tenant + "-other"), ErrorType.UNAUTHORIZED)


async def test_a_read_key_reads_but_may_not_write(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.READ)
    async with serving(settings) as api:
        assert_allowed(await api.call("read", tenant, key=key), f"api-key:{key_id_of(key)}", "read")
        assert_problem(await api.call("write", tenant, key=key), ErrorType.FORBIDDEN, "needs write")
        assert_problem(await api.call("admin", tenant, key=key), ErrorType.FORBIDDEN, "needs admin")


async def test_a_write_key_writes_but_is_no_admin(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.WRITE)
    async with serving(settings) as api:
        assert_allowed(await api.call("read", tenant, key=key), "api-key:", "write")
        assert_allowed(await api.call("write", tenant, key=key), "api-key:", "write")
        assert_problem(await api.call("admin", tenant, key=key), ErrorType.FORBIDDEN)


async def test_an_admin_key_may_do_everything_on_its_tenant(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.ADMIN)
    async with serving(settings) as api:
        for access in ("read", "write", "admin"):
            assert_allowed(await api.call(access, tenant, key=key), "api-key:", "admin")


async def test_a_key_of_one_tenant_is_refused_on_another(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.ADMIN)
    async with serving(settings) as api:
        for access in ("read", "write", "admin"):
            response = await api.call(access, tenant + "-b", key=key)
            assert_problem(response, ErrorType.FORBIDDEN, f"not valid for tenant '{tenant}-b'")
        # No NGSILD-Tenant header: the default tenant, which is another tenant too.
        assert_problem(await api.call("read", key=key), ErrorType.FORBIDDEN, "default tenant")


async def test_a_key_of_another_tenant_may_read_a_public_tenant_but_not_write(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.ADMIN)
    with connect(settings.database_url) as conn:
        set_public_read(conn, tenant + "-open", True)
    async with serving(settings) as api:
        assert_allowed(await api.call("read", tenant + "-open", key=key), "api-key:", "read")
        assert_problem(await api.call("write", tenant + "-open", key=key), ErrorType.FORBIDDEN)


async def test_a_key_of_the_default_tenant_works_without_a_tenant_header(settings, tenant):
    key = new_key(settings.database_url, "", Role.WRITE)
    async with serving(settings) as api:
        response = await api.call("write", key=key)
        assert_allowed(response, "api-key:", "write")
        assert response.json()["tenant"] == ""
        assert_problem(await api.call("write", tenant, key=key), ErrorType.FORBIDDEN)


@pytest.mark.parametrize(
    "header",
    [
        lambda key: {"X-API-Key": key},
        lambda key: {"Authorization": f"ApiKey {key}"},
        lambda key: {"Authorization": f"Bearer {key}"},
    ],
    ids=["x-api-key", "authorization-apikey", "authorization-bearer"],
)
async def test_a_key_is_accepted_in_each_header_form(settings, tenant, header):
    key = new_key(settings.database_url, tenant, Role.WRITE)
    async with serving(settings) as api:
        assert_allowed(await api.call("write", tenant, headers=header(key)), "api-key:", "write")


async def test_wrong_unknown_and_malformed_keys_are_refused(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.ADMIN)
    wrong_secret = key[:-4] + ("0000" if not key.endswith("0000") else "1111")
    unknown_id = "sp_" + "0" * 16 + key[19:]
    async with serving(settings) as api:
        # The genuine key first, so the wrong secret is also refused from the cache.
        assert_allowed(await api.call("read", tenant, key=key), "api-key:", "admin")
        for bad in (wrong_secret, unknown_id):
            response = await api.call("read", tenant, key=bad)
            assert_problem(response, ErrorType.UNAUTHORIZED, "unknown or revoked")
            assert response.headers["WWW-Authenticate"] == 'ApiKey realm="stadspuls"'
        response = await api.call("read", tenant, key="let-me-in")
        assert_problem(response, ErrorType.UNAUTHORIZED, "malformed")
        response = await api.call("read", tenant, headers={"Authorization": "Basic YTpi"})
        assert_problem(response, ErrorType.UNAUTHORIZED, "must read")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_key_stops_working_when_the_cache_window_ends(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.WRITE)
    clock = FakeClock()
    window = settings.model_copy(update={"auth_cache_seconds": 5.0})
    async with serving(window, AccessControl(window, clock=clock)) as api:
        assert_allowed(await api.call("write", tenant, key=key), "api-key:", "write")
        with connect(settings.database_url) as conn:
            assert revoke_key(conn, key_id_of(key)) is not None
        clock.now += 4.9
        # Within the window the process still trusts what it read: documented behaviour.
        assert_allowed(await api.call("write", tenant, key=key), "api-key:", "write")
        clock.now += 0.1
        assert_problem(await api.call("write", tenant, key=key), ErrorType.UNAUTHORIZED, "revoked")
        assert_problem(await api.call("read", tenant, key=key), ErrorType.UNAUTHORIZED, "revoked")


async def test_a_revoked_key_is_refused_at_once_without_a_cache(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.READ)
    uncached = settings.model_copy(update={"auth_cache_seconds": 0.0})
    async with serving(uncached) as api:
        assert_allowed(await api.call("read", tenant, key=key), "api-key:", "read")
        with connect(settings.database_url) as conn:
            revoke_key(conn, key_id_of(key))
        assert_problem(await api.call("read", tenant, key=key), ErrorType.UNAUTHORIZED, "revoked")


async def test_using_a_key_records_its_last_use(settings, tenant):
    key = new_key(settings.database_url, tenant, Role.READ)
    async with serving(settings) as api:
        assert_allowed(await api.call("read", tenant, key=key), "api-key:", "read")
    with connect(settings.database_url) as conn:
        [info] = list_keys(conn, tenant)
    assert info.last_used_at is not None
    assert info.revoked_at is None


async def test_with_access_control_off_everything_passes(settings, tenant):
    open_settings = settings.model_copy(update={"auth_enabled": False})
    async with serving(open_settings) as api:
        for access in ("read", "write", "admin"):
            assert_allowed(await api.call(access, tenant), "anonymous", "admin")
        assert_allowed(await api.call("write", tenant, key="not-even-a-key"), "anonymous", "admin")


# --- OpenID Connect ------------------------------------------------------------------------


@dataclass
class IdentityProvider:
    """Signing keys and the URL of a JWKS served over HTTP on 127.0.0.1."""

    jwks_url: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey

    def token(
        self,
        *,
        key: Any = None,
        kid: str = "rsa-1",
        algorithm: str = "RS256",
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """A signed access token; claims default to a valid one without scopes."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
        }
        body.update(claims)
        for name in drop:
            body.pop(name)
        return jwt.encode(body, key or self.rsa_key, algorithm=algorithm, headers={"kid": kid})


def _jwk(public_key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(public_key))
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[IdentityProvider]:
    """A JWKS endpoint with one RSA and one P-256 key, on a free local port."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    document = json.dumps(
        {
            "keys": [
                _jwk(rsa_key.public_key(), "rsa-1", "RS256"),
                _jwk(ec_key.public_key(), "ec-1", "ES256"),
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    # Port 0: the kernel picks a free port at bind time, so no other process can take it first.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield IdentityProvider(f"http://127.0.0.1:{server.server_port}/certs", rsa_key, ec_key)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def oidc_settings(settings: Settings, identity_provider: IdentityProvider) -> Settings:
    return settings.model_copy(
        update={
            "oidc_jwks_url": identity_provider.jwks_url,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
        }
    )


async def test_a_token_grants_the_role_of_its_highest_scope(
    oidc_settings, identity_provider, tenant
):
    idp = identity_provider
    writer = idp.token(scope="openid stadspuls:write")
    admin = idp.token(scp=["stadspuls:read", "stadspuls:admin"])
    async with serving(oidc_settings) as api:
        assert_allowed(await api.call("read", tenant, token=writer), "oidc:user-1", "write")
        assert_allowed(await api.call("write", tenant, token=writer), "oidc:user-1", "write")
        response = await api.call("admin", tenant, token=writer)
        assert_problem(response, ErrorType.FORBIDDEN, "needs admin")
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert 'scope="stadspuls:admin"' in response.headers["WWW-Authenticate"]
        assert_allowed(await api.call("admin", tenant, token=admin), "oidc:user-1", "admin")


async def test_an_es256_token_is_accepted(oidc_settings, identity_provider, tenant):
    token = identity_provider.token(
        key=identity_provider.ec_key, kid="ec-1", algorithm="ES256", scope="stadspuls:read"
    )
    async with serving(oidc_settings) as api:
        assert_allowed(await api.call("read", tenant, token=token), "oidc:", "read")


async def test_a_token_without_our_scopes_reads_public_tenants_only(
    oidc_settings, identity_provider, tenant
):
    token = identity_provider.token(scope="openid profile")
    public = oidc_settings.model_copy(update={"auth_public_read_tenants": [tenant + "-open"]})
    async with serving(public) as api:
        response = await api.call("read", tenant, token=token)
        assert_problem(response, ErrorType.FORBIDDEN, "none of the stadspuls scopes")
        assert_allowed(await api.call("read", tenant + "-open", token=token), "oidc:", "read")
        assert_problem(await api.call("write", tenant + "-open", token=token), ErrorType.FORBIDDEN)


async def test_the_tenant_claim_limits_a_token_to_its_tenants(
    oidc_settings, identity_provider, tenant
):
    one = identity_provider.token(scope="stadspuls:write", tenant=tenant)
    several = identity_provider.token(scope="stadspuls:write", tenant=[tenant, tenant + "-2"])
    async with serving(oidc_settings) as api:
        assert_allowed(await api.call("write", tenant, token=one), "oidc:", "write")
        response = await api.call("write", tenant + "-2", token=one)
        assert_problem(response, ErrorType.FORBIDDEN, "not valid for tenant")
        assert_problem(await api.call("read", token=one), ErrorType.FORBIDDEN, "default tenant")
        assert_allowed(await api.call("write", tenant + "-2", token=several), "oidc:", "write")
        assert_problem(await api.call("write", tenant + "-3", token=several), ErrorType.FORBIDDEN)


async def test_a_custom_tenant_claim_is_read(oidc_settings, identity_provider, tenant):
    custom = oidc_settings.model_copy(update={"oidc_tenant_claim": "city"})
    token = identity_provider.token(scope="stadspuls:read", city=tenant, tenant="ignored")
    async with serving(custom) as api:
        assert_allowed(await api.call("read", tenant, token=token), "oidc:", "read")
        assert_problem(await api.call("read", "ignored", token=token), ErrorType.FORBIDDEN)


def _other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make_token", "detail"),
    [
        (lambda idp: idp.token(scope="stadspuls:admin", iss="https://evil.test/"), "not issued by"),
        (lambda idp: idp.token(scope="stadspuls:admin", aud="another-app"), "not meant for"),
        (
            lambda idp: idp.token(scope="stadspuls:admin", exp=int(time.time()) - 120),
            "has expired",
        ),
        (
            lambda idp: idp.token(scope="stadspuls:admin", nbf=int(time.time()) + 600),
            "not valid yet",
        ),
        (lambda idp: idp.token(scope="stadspuls:admin", drop=("exp",)), "no 'exp' claim"),
        (lambda idp: idp.token(scope="stadspuls:admin", drop=("iss",)), "no 'iss' claim"),
        (
            lambda idp: idp.token(scope="stadspuls:admin", key=_other_rsa_key()),
            "Signature verification failed",
        ),
        (lambda idp: idp.token(scope="stadspuls:admin", kid="rotated-away"), "unknown key"),
        (
            lambda idp: jwt.encode(
                {"scope": "stadspuls:admin", "exp": int(time.time()) + 60},
                "a shared secret of thirty-two bytes!",
                algorithm="HS256",
                headers={"kid": "rsa-1"},
            ),
            "'HS256' are not accepted",
        ),
        (lambda idp: "not.a.jwt", "not a JWT"),
    ],
    ids=[
        "wrong-issuer",
        "wrong-audience",
        "expired",
        "not-yet-valid",
        "no-exp",
        "no-iss",
        "wrong-signature",
        "unknown-kid",
        "hs256",
        "garbage",
    ],
)
async def test_unacceptable_tokens_are_refused(
    oidc_settings, identity_provider, tenant, make_token, detail
):
    async with serving(oidc_settings) as api:
        response = await api.call("read", tenant, token=make_token(identity_provider))
    assert_problem(response, ErrorType.UNAUTHORIZED, detail)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_bearer_tokens_are_refused_when_oidc_is_not_configured(
    settings, identity_provider, tenant
):
    token = identity_provider.token(scope="stadspuls:admin")
    async with serving(settings) as api:
        response = await api.call("read", tenant, token=token)
    assert_problem(response, ErrorType.UNAUTHORIZED, "OpenID Connect is not configured")


async def test_an_unreachable_identity_provider_is_a_503(oidc_settings, identity_provider, tenant):
    down = oidc_settings.model_copy(
        update={"oidc_jwks_url": f"http://127.0.0.1:{free_port()}/certs", "oidc_jwks_timeout": 2}
    )
    token = identity_provider.token(scope="stadspuls:read")
    async with serving(down) as api:
        response = await api.call("read", tenant, token=token)
    assert response.status_code == 503
    assert response.json()["type"] == ErrorType.INTERNAL_ERROR.uri
    assert "could not be fetched" in response.json()["detail"]


# --- the CLI -------------------------------------------------------------------------------


def run_cli(settings: Settings, *args: str) -> Any:
    env = {
        "STADSPULS_DATABASE_URL": settings.database_url,
        "STADSPULS_STORAGE_BACKEND": settings.storage_backend,
    }
    return CliRunner().invoke(cli_app, ["keys", *args], env=env)


async def test_keys_created_listed_and_revoked_with_the_cli(settings, tenant):
    created = run_cli(settings, "create", "--tenant", tenant, "--role", "write", "--name", "ci")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("sp_")
    assert "cannot be shown again" in created.stderr
    key_id = key_id_of(key)

    listed = run_cli(settings, "list", "--tenant", tenant)
    assert listed.exit_code == 0, listed.output
    assert key_id in listed.stdout
    assert "ci" in listed.stdout
    assert key.split("_")[2] not in listed.stdout

    uncached = settings.model_copy(update={"auth_cache_seconds": 0.0})
    async with serving(uncached) as api:
        assert_allowed(await api.call("write", tenant, key=key), f"api-key:{key_id}", "write")
        revoked = run_cli(settings, "revoke", key_id)
        assert revoked.exit_code == 0, revoked.output
        assert f"key {key_id}" in revoked.stdout
        assert_problem(await api.call("write", tenant, key=key), ErrorType.UNAUTHORIZED, "revoked")


def test_the_cli_refuses_unknown_roles_and_keys(settings):
    bad_role = run_cli(settings, "create", "--role", "owner", "--name", "x")
    assert bad_role.exit_code != 0
    assert "use read, write or admin" in bad_role.output
    unknown = run_cli(settings, "revoke", "0000000000000000")
    assert unknown.exit_code == 1
    assert "no API key with id" in unknown.stderr


async def test_public_read_switched_with_the_cli(settings, tenant):
    uncached = settings.model_copy(update={"auth_cache_seconds": 0.0})
    async with serving(uncached) as api:
        assert_problem(await api.call("read", tenant), ErrorType.UNAUTHORIZED)
        switched_on = run_cli(settings, "public-read", tenant, "--on")
        assert switched_on.exit_code == 0, switched_on.output
        assert_allowed(await api.call("read", tenant), "anonymous", "read")
        assert_problem(await api.call("write", tenant), ErrorType.UNAUTHORIZED)
        switched_off = run_cli(settings, "public-read", tenant, "--off")
        assert switched_off.exit_code == 0, switched_off.output
        assert_problem(await api.call("read", tenant), ErrorType.UNAUTHORIZED)

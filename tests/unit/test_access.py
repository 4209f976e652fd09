"""The pure parts of access control: key format, roles, scopes, credentials, decisions."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from ngsi.access import (
    ANONYMOUS,
    Identity,
    granted_role,
    read_credential,
    refusal,
    role_for_scopes,
    scope_names,
    scopes_of,
    tenants_of,
)
from ngsi.errors import ErrorType, NgsiError
from stadspuls.settings import Settings
from storage.api_keys import (
    KeyCache,
    Role,
    StoredKey,
    format_key,
    generate_key,
    parse_key,
    secret_digest,
)

KEY_ID = "0123456789abcdef"
SECRET_HEX = "ab" * 32
KEY = f"sp_{KEY_ID}_{SECRET_HEX}"


def test_a_generated_key_formats_and_parses_back():
    key_id, secret = generate_key()
    key = format_key(key_id, secret)
    assert len(secret) == 32
    assert key.startswith("sp_")
    assert parse_key(key) == (key_id, secret)


@pytest.mark.parametrize(
    "text",
    [KEY, f"  {KEY}\n"],
)
def test_parse_key_splits_id_and_secret(text):
    assert parse_key(text) == (KEY_ID, bytes.fromhex(SECRET_HEX))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sp_",
        f"sk_{KEY_ID}_{SECRET_HEX}",  # wrong prefix
        f"sp_{KEY_ID}{SECRET_HEX}",  # no separator
        f"sp_{KEY_ID[:-1]}_{SECRET_HEX}",  # short id
        f"sp_{KEY_ID}_{SECRET_HEX[:-2]}",  # short secret
        f"sp_{KEY_ID}_{SECRET_HEX}00",  # long secret
        f"sp_{KEY_ID.upper()}_{SECRET_HEX}",  # upper-case hex is not what we issue
        f"sp_{KEY_ID}_{'zz' * 32}",
        "eyJhbGciOiJSUzI1NiJ9.e30.sig",
    ],
)
def test_parse_key_refuses_other_forms(text):
    with pytest.raises(ValueError, match="sp_<16 hex digits>_<64 hex digits>"):
        parse_key(text)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [(bytes.fromhex(SECRET_HEX), True), (b"\x00" * 32, False), (b"", False)],
)
def test_a_stored_key_matches_only_its_secret(secret, expected):
    stored = StoredKey(KEY_ID, "", Role.READ, secret_digest(bytes.fromhex(SECRET_HEX)), False, None)
    assert stored.matches(secret) is expected


def test_roles_are_ordered_read_write_admin():
    assert Role.READ < Role.WRITE < Role.ADMIN
    assert sorted([Role.ADMIN, Role.READ, Role.WRITE]) == [Role.READ, Role.WRITE, Role.ADMIN]


@pytest.mark.parametrize(
    ("name", "role"),
    [("read", Role.READ), ("write", Role.WRITE), ("admin", Role.ADMIN), (" Admin ", Role.ADMIN)],
)
def test_role_parse(name, role):
    assert Role.parse(name) == role
    assert role.label == name.strip().lower()


@pytest.mark.parametrize("name", ["", "owner", "readwrite", "1"])
def test_role_parse_refuses_unknown_roles(name):
    with pytest.raises(ValueError, match="use read, write or admin"):
        Role.parse(name)


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({}, set()),
        ({"scope": "openid stadspuls:read"}, {"openid", "stadspuls:read"}),
        ({"scope": "  a   b "}, {"a", "b"}),
        ({"scp": "a b"}, {"a", "b"}),
        ({"scp": ["a", "b", 3]}, {"a", "b"}),
        ({"scope": "a", "scp": ["b"]}, {"a", "b"}),
        ({"scope": 17}, set()),
    ],
)
def test_scopes_of(claims, scopes):
    assert scopes_of(claims) == scopes


NAMES = scope_names(Settings())


@pytest.mark.parametrize(
    ("scopes", "role"),
    [
        (set(), None),
        ({"openid", "profile"}, None),
        ({"stadspuls:read"}, Role.READ),
        ({"stadspuls:write"}, Role.WRITE),
        ({"stadspuls:read", "stadspuls:admin"}, Role.ADMIN),
        ({"stadspuls:write", "stadspuls:read"}, Role.WRITE),
        ({"STADSPULS:ADMIN"}, None),
    ],
)
def test_role_for_scopes_takes_the_highest(scopes, role):
    assert role_for_scopes(frozenset(scopes), NAMES) == role


@pytest.mark.parametrize(
    ("claims", "tenants"),
    [
        ({}, None),
        ({"tenant": "gent"}, {"gent"}),
        ({"tenant": ""}, {""}),
        ({"tenant": ["gent", "leuven", 5]}, {"gent", "leuven"}),
        ({"tenant": []}, set()),
        ({"tenant": 5}, set()),
    ],
)
def test_tenants_of(claims, tenants):
    expected = None if tenants is None else frozenset(tenants)
    assert tenants_of(claims, "tenant") == expected


@pytest.mark.parametrize(
    ("headers", "credential"),
    [
        ({}, None),
        ({"X-API-Key": KEY}, ("api_key", KEY)),
        ({"x-api-key": f" {KEY} "}, ("api_key", KEY)),
        ({"Authorization": f"ApiKey {KEY}"}, ("api_key", KEY)),
        ({"Authorization": f"apikey  {KEY}"}, ("api_key", KEY)),
        ({"Authorization": f"Bearer {KEY}"}, ("api_key", KEY)),
        ({"Authorization": "Bearer eyJ.a.b"}, ("bearer", "eyJ.a.b")),
        ({"Authorization": "bearer eyJ.a.b"}, ("bearer", "eyJ.a.b")),
    ],
)
def test_read_credential(headers, credential):
    assert read_credential(Headers(headers)) == credential


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-API-Key": KEY, "Authorization": f"ApiKey {KEY}"}, "not both"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must read"),
        ({"Authorization": "Bearer"}, "must read"),
        ({"Authorization": "ApiKey "}, "must read"),
    ],
)
def test_read_credential_refuses_unclear_credentials(headers, message):
    with pytest.raises(NgsiError, match=message) as caught:
        read_credential(Headers(headers))
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("ApiKey realm=")


KEY_OF_GENT = Identity("api-key:k", "api_key", Role.WRITE, frozenset(["gent"]))
TOKEN_FOR_ALL = Identity("oidc:u", "oidc", Role.READ, None)
TOKEN_NO_SCOPE = Identity("oidc:u", "oidc", None, None)


@pytest.mark.parametrize(
    ("identity", "tenant", "role"),
    [
        (ANONYMOUS, "", None),
        (KEY_OF_GENT, "gent", Role.WRITE),
        (KEY_OF_GENT, "leuven", None),
        (KEY_OF_GENT, "", None),
        (TOKEN_FOR_ALL, "leuven", Role.READ),
        (TOKEN_NO_SCOPE, "gent", None),
    ],
)
def test_granted_role(identity, tenant, role):
    assert granted_role(identity, tenant) == role


@pytest.mark.parametrize(
    ("identity", "tenant", "needed", "error_type", "detail"),
    [
        (ANONYMOUS, "gent", Role.READ, ErrorType.UNAUTHORIZED, "reading on tenant 'gent' needs"),
        (ANONYMOUS, "", Role.WRITE, ErrorType.UNAUTHORIZED, "write access on the default tenant"),
        (KEY_OF_GENT, "leuven", Role.READ, ErrorType.FORBIDDEN, "not valid for tenant 'leuven'"),
        (KEY_OF_GENT, "gent", Role.ADMIN, ErrorType.FORBIDDEN, "may write on tenant 'gent'"),
        (TOKEN_NO_SCOPE, "gent", Role.READ, ErrorType.FORBIDDEN, "none of the stadspuls scopes"),
        (TOKEN_FOR_ALL, "gent", Role.WRITE, ErrorType.FORBIDDEN, "this request needs write"),
    ],
)
def test_refusal(identity, tenant, needed, error_type, detail):
    error = refusal(identity, tenant, needed, Settings())
    assert error.error_type == error_type
    assert error.status == error_type.status
    assert detail in error.detail
    assert error.problem()["type"] == error_type.uri


@pytest.mark.parametrize(
    ("jwks_url", "challenge"),
    [
        (None, 'ApiKey realm="stadspuls"'),
        ("http://idp/jwks", 'ApiKey realm="stadspuls", Bearer realm="stadspuls"'),
    ],
)
def test_an_anonymous_refusal_names_the_schemes_on_offer(jwks_url, challenge):
    error = refusal(ANONYMOUS, "", Role.WRITE, Settings(oidc_jwks_url=jwks_url))
    assert error.headers == {"WWW-Authenticate": challenge}


def test_a_token_lacking_scope_is_told_which_scope_it_needs():
    error = refusal(TOKEN_FOR_ALL, "gent", Role.ADMIN, Settings())
    assert 'error="insufficient_scope"' in error.headers["WWW-Authenticate"]
    assert 'scope="stadspuls:admin"' in error.headers["WWW-Authenticate"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_key_cache_entries_expire_after_their_window():
    clock = FakeClock()
    cache: KeyCache[str, int | None] = KeyCache(5.0, clock=clock)
    cache.put("a", 1)
    cache.put("none", None)
    clock.now += 4.9
    assert cache.get("a") == (True, 1)
    assert cache.get("none") == (True, None)
    clock.now += 0.1
    assert cache.get("a") == (False, None)
    assert cache.get("missing") == (False, None)


def test_key_cache_is_bounded_and_drops_the_oldest():
    cache: KeyCache[int, int] = KeyCache(60.0, max_entries=3, clock=FakeClock())
    for number in range(5):
        cache.put(number, number)
    assert len(cache) == 3
    assert [cache.get(n)[0] for n in range(5)] == [False, False, True, True, True]


def test_a_zero_window_caches_nothing():
    cache: KeyCache[str, int] = KeyCache(0.0, clock=FakeClock())
    cache.put("a", 1)
    assert cache.get("a") == (False, None)

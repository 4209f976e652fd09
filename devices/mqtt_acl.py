"""Mosquitto password file and ACL file for per-device MQTT credentials (pure: no I/O).

Password hashes are written the way `mosquitto_passwd` of Mosquitto 2.0 writes them
(apps/mosquitto_passwd.c `output_new_password`, src/password_mosq.h):
`$7$<iterations>$<base64 salt>$<base64 hash>`, where 7 is PBKDF2-HMAC-SHA512, the salt
is 12 random bytes, the hash is 64 bytes, both in standard base64 with padding, and 101
iterations is Mosquitto 2.0's default (PW_DEFAULT_ITERATIONS).

ACL semantics relied on (mosquitto.conf(5) of Mosquitto 2.0, "acl_file"; src/security_default.c):
- once an ACL file is loaded, a user may do only what a `topic` line under its
  `user <name>` line grants; topic lines before any `user` line would apply to anonymous
  clients, so the file has none (and the broker runs with `allow_anonymous false`);
- `topic write <filter>` grants PUBLISH to topics the filter matches, with `+` and `#`
  wildcards as in subscriptions; `topic read <filter>` grants receiving messages whose
  topic the filter matches;
- `#` does not match topics that start with `$` (an ACL must itself start with `$` to
  match those), so `topic read #` gives the ingest workers every device topic but not `$SYS`;
- Mosquitto 2.0's acl_file check allows every SUBSCRIBE and checks `read` per message at
  delivery, against the message's topic: a `$share/<group>/<filter>` subscription of the
  ingest workers therefore needs no `$share` line, and a device that subscribes is sent
  nothing, as it has no `read` grant;
- a denied QoS 1 PUBLISH is answered, under MQTT 5, with PUBACK reason code 135 (Not
  authorized) and is not delivered to anyone.
The parser reads one line per entry and trims surrounding whitespace, so names and topics
with whitespace or control characters are refused here rather than written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

#: Mosquitto's hash type number for PBKDF2-HMAC-SHA512 (`pw_sha512_pbkdf2`).
HASH_TYPE = 7
#: Mosquitto 2.0's default PBKDF2 iteration count (PW_DEFAULT_ITERATIONS).
ITERATIONS = 101
SALT_BYTES = 12
#: Mosquitto 1.x read password lines into 256 bytes; a hash line is 113 bytes plus the name.
MAX_USERNAME_LENGTH = 120
#: What an ingest (service) user may read: every topic outside `$SYS`.
SERVICE_READ_TOPICS = ("#",)
PASSWORD_FILE_NAME = "passwd"
ACL_FILE_NAME = "acl"

_USERNAME = re.compile(r"[^\s:+#\x00-\x1f\x7f-\x9f]+")
_LEVEL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_BASE64 = r"[A-Za-z0-9+/]+={0,2}"
_HASH = re.compile(
    rf"\$7\$(?P<iterations>[1-9][0-9]{{0,8}})\$(?P<salt>{_BASE64})\$(?P<hash>{_BASE64})"
)


@dataclass(frozen=True, slots=True)
class MqttUser:
    """One broker login: its password hash and the topics it may publish and receive."""

    username: str
    password_hash: str
    write_topics: tuple[str, ...] = ()
    read_topics: tuple[str, ...] = ()


def generate_password() -> str:
    """A fresh password: 32 URL-safe characters (192 bits) from the OS CSPRNG."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The password in mosquitto_passwd's `$7$` form; a fresh 12-byte salt unless given."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    chosen = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), chosen, iterations)
    return f"${HASH_TYPE}${iterations}${_b64(chosen)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches a `$7$` hash (constant-time comparison)."""
    match = _HASH.fullmatch(encoded)
    if match is None:
        raise ValueError("not a Mosquitto $7$ (PBKDF2-SHA512) password hash")
    try:
        salt = base64.b64decode(match["salt"], validate=True)
        expected = base64.b64decode(match["hash"], validate=True)
    except binascii.Error:
        raise ValueError("the password hash is not valid base64") from None
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(match["iterations"]))
    return hmac.compare_digest(digest, expected)


def check_username(username: str) -> str:
    """`username` checked to fit a password-file and ACL line; ValueError otherwise."""
    if len(username) > MAX_USERNAME_LENGTH:
        raise ValueError(f"MQTT username longer than {MAX_USERNAME_LENGTH}: {username!r}")
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            "an MQTT username needs at least one character and no whitespace, control"
            f" characters, ':', '+' or '#': {username!r}"
        )
    return username


def device_username(profile: str, device_key: str) -> str:
    """The login of a device: `{profile}/{device_key}`, unique as (profile, key) is."""
    return check_username(f"{profile}/{device_key}")


def check_acl_topic(topic: str) -> str:
    """A topic filter checked as Mosquitto checks ACL topics, plus no whitespace."""
    if not topic or _LEVEL_FORBIDDEN.search(topic):
        raise ValueError(f"ACL topic empty or holding whitespace or control characters: {topic!r}")
    levels = topic.split("/")
    for index, level in enumerate(levels):
        wildcard_inside = ("+" in level or "#" in level) and len(level) > 1
        hash_not_last = level == "#" and index != len(levels) - 1
        if wildcard_inside or hash_not_last:
            raise ValueError(f"wildcards must fill a whole level, '#' only the last: {topic!r}")
    return topic


def render_password_file(users: Iterable[MqttUser]) -> str:
    """The `password_file` text: `username:hash` lines, sorted by username."""
    lines = []
    for user in _sorted_unique(users):
        match = _HASH.fullmatch(user.password_hash)
        if match is None:
            raise ValueError(f"{user.username}: not a Mosquitto $7$ password hash")
        lines.append(f"{user.username}:{user.password_hash}\n")
    return "".join(lines)


def render_acl(users: Iterable[MqttUser]) -> str:
    """The `acl_file` text: a `user` block per user with its write and read topics."""
    blocks = [
        "# Written by `stadspuls mqtt export-acl`; edits are lost at the next export.\n"
        "# No topic lines before the first `user` line: anonymous clients get nothing.\n"
    ]
    for user in _sorted_unique(users):
        grants = [f"topic write {check_acl_topic(topic)}\n" for topic in user.write_topics]
        grants += [f"topic read {check_acl_topic(topic)}\n" for topic in user.read_topics]
        if grants:
            blocks.append(f"\nuser {user.username}\n" + "".join(grants))
    return "".join(blocks)


def broker_config_lines(directory: PurePath) -> list[str]:
    """The mosquitto.conf lines that put the exported files in force."""
    return [
        f"password_file {directory / PASSWORD_FILE_NAME}",
        f"acl_file {directory / ACL_FILE_NAME}",
        "allow_anonymous false",
    ]


def _sorted_unique(users: Iterable[MqttUser]) -> list[MqttUser]:
    ordered = sorted(users, key=lambda user: user.username)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.username == after.username:
            raise ValueError(f"MQTT username listed twice: {before.username!r}")
    for user in ordered:
        check_username(user.username)
    return ordered


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

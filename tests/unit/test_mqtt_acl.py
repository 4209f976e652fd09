"""Mosquitto password hashes and the rendering of the password and ACL files (pure)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from devices.mqtt_acl import (
    MqttUser,
    broker_config_lines,
    check_acl_topic,
    check_username,
    device_username,
    generate_password,
    hash_password,
    render_acl,
    render_password_file,
    verify_password,
)
from stadspuls.embedded import broker_config

#: Written by `mosquitto_passwd -b` of Mosquitto 2.0.11 for user alice, password "secret".
MOSQUITTO_LINE = (
    "alice:$7$101$TvVHx7SoCwgVM4Ri$rP/nW5JE03Y+UjCPvu8n08/rEemYTnP8qjgPGWJ7b4QgE3s1J+tFFo+"
    "RtW2A7uE2de8EcES/gSL/fbR7moWcrw=="
)
#: `$7$`, 101 iterations, 12 salt bytes (16 base64 characters), 64 hash bytes (88).
HASH_FORM = re.compile(r"\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==")


def test_hash_matches_what_mosquitto_passwd_wrote() -> None:
    stored = MOSQUITTO_LINE.split(":", 1)[1]
    salt = base64.b64decode(stored.split("$")[3])
    assert hash_password("secret", salt=salt) == stored
    assert verify_password("secret", stored)
    assert not verify_password("Secret", stored)


def test_hash_matches_the_installed_mosquitto_passwd(tmp_path: Path) -> None:
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        pytest.skip("mosquitto_passwd is not installed: only the recorded line is checked")
    password = generate_password()
    file = tmp_path / "passwd"
    subprocess.run([binary, "-c", "-b", str(file), "bob", password], check=True, timeout=10)
    stored = file.read_text().strip().split(":", 1)[1]
    assert HASH_FORM.fullmatch(stored)
    assert verify_password(password, stored)
    assert hash_password(password, salt=base64.b64decode(stored.split("$")[3])) == stored


def test_hashes_are_salted_and_in_mosquitto_form() -> None:
    password = generate_password()
    first, second = hash_password(password), hash_password(password)
    assert first != second
    assert HASH_FORM.fullmatch(first) and HASH_FORM.fullmatch(second)
    assert verify_password(password, first) and verify_password(password, second)
    assert len(password) == 32 and password != generate_password()


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("$6$c2FsdA==$aGFzaA==", r"not a Mosquitto \$7\$"),
        ("$7$0$c2FsdA==$aGFzaA==", r"not a Mosquitto \$7\$"),
        ("$7$101$c2FsdA==", r"not a Mosquitto \$7\$"),
        ("$7$101$!!!$aGFzaA==", r"not a Mosquitto \$7\$"),
        ("$7$101$c2FsdA=$aGFzaA==", "not valid base64"),
        ("$7$101$c2FsdA==$aGFzaA==\nb", r"not a Mosquitto \$7\$"),
        ("plain", r"not a Mosquitto \$7\$"),
    ],
)
def test_verify_refuses_other_forms(encoded: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify_password("secret", encoded)


@pytest.mark.parametrize(
    ("username", "valid"),
    [
        ("stadspuls-ingest", True),
        ("ttn-v3/city-air/eui-70b3d57ed005c2a1", True),
        ("iotagent-json/4jggokgpepnvsb2uv4s40d59ov/sensor01", True),
        ("", False),
        ("has space", False),
        ("colon:inside", False),
        ("line\nbreak", False),
        ("tab\there", False),
        ("plus+", False),
        ("hash#", False),
        ("x" * 120, True),
        ("x" * 121, False),
    ],
)
def test_check_username(username: str, valid: bool) -> None:
    if valid:
        assert check_username(username) == username
    else:
        with pytest.raises(ValueError, match="MQTT username"):
            check_username(username)


def test_device_username_is_profile_and_key() -> None:
    assert device_username("telraam", "9000001234") == "telraam/9000001234"
    with pytest.raises(ValueError, match="MQTT username"):
        device_username("telraam", "a:b")


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        ("#", True),
        ("/json/key/dev/attrs/+", True),
        ("v3/app/devices/dev/up", True),
        ("a/#/b", False),
        ("a/b#", False),
        ("a/+b", False),
        ("", False),
        ("a b", False),
        ("a\nuser x", False),
    ],
)
def test_check_acl_topic(topic: str, valid: bool) -> None:
    if valid:
        assert check_acl_topic(topic) == topic
    else:
        with pytest.raises(ValueError, match="ACL topic|wildcards"):
            check_acl_topic(topic)


HASH_A = hash_password("a", salt=b"0" * 12)
HASH_B = hash_password("b", salt=b"1" * 12)
USERS = [
    MqttUser("telraam/9000001234", HASH_B, write_topics=("telraam/9000001234/traffic",)),
    MqttUser("stadspuls-ingest", HASH_A, read_topics=("#",)),
    MqttUser(
        "iotagent-json/k/s1",
        HASH_A,
        write_topics=("/json/k/s1/attrs", "/json/k/s1/attrs/+"),
    ),
]


def test_password_file_has_one_sorted_line_per_user() -> None:
    assert render_password_file(USERS) == (
        f"iotagent-json/k/s1:{HASH_A}\nstadspuls-ingest:{HASH_A}\ntelraam/9000001234:{HASH_B}\n"
    )


def test_acl_gives_each_user_only_its_grants_and_anonymous_nothing() -> None:
    text = render_acl(USERS)
    grants = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert grants == [
        "user iotagent-json/k/s1",
        "topic write /json/k/s1/attrs",
        "topic write /json/k/s1/attrs/+",
        "user stadspuls-ingest",
        "topic read #",
        "user telraam/9000001234",
        "topic write telraam/9000001234/traffic",
    ]


@pytest.mark.parametrize(
    ("render", "users", "message"),
    [
        (render_password_file, [MqttUser("a", HASH_A), MqttUser("a", HASH_B)], "listed twice"),
        (render_acl, [MqttUser("a", HASH_A), MqttUser("a", HASH_B)], "listed twice"),
        (render_password_file, [MqttUser("a b", HASH_A)], "MQTT username"),
        (render_acl, [MqttUser("a\nuser b", HASH_A)], "MQTT username"),
        (render_acl, [MqttUser("a", HASH_A, write_topics=("x\ntopic read #",))], "ACL topic"),
        (render_acl, [MqttUser("a", HASH_A, read_topics=("a/#/b",))], "wildcards"),
        (render_password_file, [MqttUser("a", "$6$c2FsdA==$aGFzaA==")], r"not a Mosquitto \$7\$"),
        (render_password_file, [MqttUser("a", f"{HASH_A}\nb:{HASH_B}")], r"not a Mosquitto \$7\$"),
        (render_password_file, [MqttUser("a", f"{HASH_A}\nb")], r"not a Mosquitto \$7\$"),
    ],
)
def test_rendering_refuses_what_would_corrupt_the_files(
    render: Callable[[list[MqttUser]], str], users: list[MqttUser], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render(users)


def test_user_without_grants_gets_no_acl_block() -> None:
    assert "user lonely" not in render_acl([MqttUser("lonely", HASH_A)])


def test_broker_config_lines() -> None:
    assert broker_config_lines(PurePosixPath("/etc/mosquitto/stadspuls")) == [
        "password_file /etc/mosquitto/stadspuls/passwd",
        "acl_file /etc/mosquitto/stadspuls/acl",
        "allow_anonymous false",
    ]


def test_extra_broker_config_replaces_the_shipped_option(tmp_path: Path) -> None:
    text = broker_config(1884, tmp_path, extra_config="allow_anonymous false\nacl_file /x/acl")
    lines = text.splitlines()
    assert "allow_anonymous true" not in lines
    assert lines[-2:] == ["allow_anonymous false", "acl_file /x/acl"]
    assert "listener 1884 127.0.0.1" in lines
    assert broker_config(1884, tmp_path).splitlines().count("allow_anonymous true") == 1

"""Per-device MQTT logins, exported by `stadspuls mqtt` and enforced by a real Mosquitto.

Each broker here is a second Mosquitto of the test's own, on a free port, started from the
shipped configuration plus the exported password_file and acl_file and
`allow_anonymous false`; the clients are paho-mqtt 2 over MQTT 5.
"""

from __future__ import annotations

import os
import queue
import signal
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from typer.testing import CliRunner

from devices.model import DeviceConfig
from devices.profiles.registry import default_topic_filters
from ingest.mqtt import subscription_filters
from stadspuls.cli_mqtt import mqtt_app
from stadspuls.embedded import Mosquitto
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import connect, drop_database
from storage.writer import write_registry
from tests.support.fixtures import scratch_database_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WAIT = 5.0
#: MQTT 5.0 reason code 0x87 (§2.4), in CONNACK and PUBACK.
NOT_AUTHORIZED = 135
ACCEPTED = 0


@dataclass(frozen=True)
class Login:
    username: str
    password: str


class BrokerClient:
    """A paho MQTT 5 client whose CONNACK, SUBACK, PUBACKs and messages can be awaited."""

    def __init__(self, port: int, login: Login | None) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        if login is not None:
            self.client.username_pw_set(login.username, login.password)
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.suback: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.acked = threading.Condition()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, code, _p: self.connack.put(code)
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.suback.put(codes)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_publish = self._on_publish
        self.running = False

    def _on_publish(self, _client, _userdata, mid: int, code: ReasonCode, _properties) -> None:
        with self.acked:
            self.pubacks[mid] = code
            self.acked.notify_all()

    def connect(self) -> int:
        """Connect and return the CONNACK reason code; the network thread runs if accepted."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        # The loop is driven here until the CONNACK: a network thread would go on retrying
        # a refused login, and stopping it waits out its reconnect back-off.
        deadline = time.monotonic() + WAIT
        while self.connack.empty() and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        code = self.connack.get_nowait()
        if not code.is_failure:
            self.client.loop_start()
            self.running = True
        return code.value

    def subscribe(self, filters: list[str]) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        self.client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        self.suback.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, WAIT), topic
            return self.pubacks[info.mid].value

    def next_message(self) -> tuple[str, bytes]:
        """The next message received, within WAIT seconds."""
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        if self.running:
            self.client.loop_stop()


@dataclass
class Secured:
    """A database with two registered devices and their logins, and a broker enforcing them."""

    database_url: str
    workdir: Path
    broker: Mosquitto
    device_a: Login
    device_b: Login
    ingest: Login
    topic_a: str
    topic_b: str
    clients: list[BrokerClient]

    def client(self, login: Login | None) -> BrokerClient:
        """A client of this broker, closed at the end of the test."""
        made = BrokerClient(self.broker.port, login)
        self.clients.append(made)
        return made

    def cli(self, *args: str):
        """Run `stadspuls mqtt ...` against this database."""
        env = {"STADSPULS_DATABASE_URL": self.database_url, "STADSPULS_POSTGIS": "off"}
        return CliRunner().invoke(mqtt_app, list(args), env=env)

    def issue(self, *args: str) -> Login:
        """Issue a login with the CLI and read it from its output."""
        result = self.cli(*args)
        assert result.exit_code == 0, result.output
        fields = dict(line.split(": ", 1) for line in result.stdout.splitlines())
        return Login(fields["username"], fields["password"])

    def export(self) -> None:
        """Export the files into the broker's configuration directory."""
        result = self.cli("export-acl", "--out", str(self.workdir / "acl"))
        assert result.exit_code == 0, result.output

    def reload(self) -> None:
        """Make the broker read the password and ACL files again (SIGHUP)."""
        assert self.broker.process is not None
        self.broker.process.send_signal(signal.SIGHUP)


def _broker_user_line() -> str:
    """`user root` when the tests run as root, so that Mosquitto can read the 0600 files.

    Started as root, Mosquitto would drop to the `mosquitto` user, which can neither enter
    pytest's 0700 temporary directories nor read root's 0600 files. In production the files
    are given to the broker's user (docs/mqtt-credentials.md).
    """
    return "user root" if os.geteuid() == 0 else ""


def _register(database_url: str, tag: str) -> tuple[str, str]:
    """Register an iotagent-json device and a ttn-v3 device; return their keys."""
    iot_key = f"apikey{tag}/sensor-a"
    ttn_key = f"app-{tag}/eui-b"
    devices = [
        (iot_key, DeviceConfig(device_id=f"a-{tag}", profile="iotagent-json")),
        (ttn_key, DeviceConfig(device_id=f"b-{tag}", profile="ttn-v3")),
    ]
    with connect(database_url) as conn:
        write_registry(conn, devices, [])
        conn.commit()
    return iot_key, ttn_key


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    """Devices A (iotagent-json) and B (ttn-v3), an ingest login, and a broker with the ACL."""
    url = scratch_database_url("stadspuls_mqtt_acl")
    prepare_database(Settings(database_url=url, metrics_port=0, postgis="off"))
    tag = uuid.uuid4().hex[:8]
    iot_key, ttn_key = _register(url, tag)
    directory = tmp_path / "acl"
    extra = "\n".join(
        [
            f"password_file {directory / 'passwd'}",
            f"acl_file {directory / 'acl'}",
            "allow_anonymous false",
            _broker_user_line(),
        ]
    )
    broker = Mosquitto(tmp_path, persistence=False, extra_config=extra)
    setup = Secured(url, tmp_path, broker, Login("", ""), Login("", ""), Login("", ""), "", "", [])
    setup.device_a = setup.issue("credentials", iot_key, "--profile", "iotagent-json")
    setup.device_b = setup.issue("credentials", ttn_key, "--profile", "ttn-v3")
    setup.ingest = setup.issue("service-user", f"ingest-{tag}")
    setup.topic_a = f"/json/{iot_key}/attrs"
    setup.topic_b = f"v3/{ttn_key.replace('/', '/devices/')}/up"
    setup.export()
    broker.start()
    try:
        yield setup
    finally:
        for client in setup.clients:
            client.close()
        broker.stop()
        drop_database(url)


def _ingest_subscriber(secured: Secured) -> BrokerClient:
    """The ingest login subscribed as the workers subscribe: shared, every profile's filter."""
    subscriber = secured.client(secured.ingest)
    assert subscriber.connect() == ACCEPTED
    subscriber.subscribe(subscription_filters(default_topic_filters(), "stadspuls"))
    return subscriber


def test_export_writes_private_files_and_prints_the_broker_lines(secured: Secured) -> None:
    result = secured.cli("export-acl", "--out", str(secured.workdir / "acl"))
    assert result.exit_code == 0, result.output
    directory = (secured.workdir / "acl").resolve()
    assert result.stdout.splitlines() == [
        f"password_file {directory / 'passwd'}",
        f"acl_file {directory / 'acl'}",
        "allow_anonymous false",
    ]
    for name in ("passwd", "acl"):
        assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o600
    acl = (directory / "acl").read_text()
    assert f"user {secured.device_a.username}\ntopic write {secured.topic_a}\n" in acl
    assert f"user {secured.ingest.username}\ntopic read #\n" in acl
    assert secured.device_a.password not in (directory / "passwd").read_text()


def test_a_device_reaches_ingest_on_its_own_topic_only(secured: Secured) -> None:
    subscriber = _ingest_subscriber(secured)
    device = secured.client(secured.device_a)
    assert device.connect() == ACCEPTED

    assert device.publish(secured.topic_a, b'{"t": 1}') == ACCEPTED
    assert subscriber.next_message() == (secured.topic_a, b'{"t": 1}')

    # B's topic: refused with PUBACK 135, and never delivered. Mosquitto handles one
    # client's publishes in order, so the allowed marker after it arrives only after it would.
    assert device.publish(secured.topic_b, b'{"forged": true}') == NOT_AUTHORIZED
    assert device.publish(secured.topic_a, b"marker") == ACCEPTED
    assert subscriber.next_message() == (secured.topic_a, b"marker")
    assert subscriber.messages.empty()


def test_a_device_cannot_publish_as_another_profile_or_read(secured: Secured) -> None:
    subscriber = _ingest_subscriber(secured)
    device_b = secured.client(secured.device_b)
    assert device_b.connect() == ACCEPTED
    device_b.subscribe(["#"])  # allowed by Mosquitto 2.0, but B may read nothing
    device_a = secured.client(secured.device_a)
    assert device_a.connect() == ACCEPTED

    assert device_b.publish(secured.topic_a, b"forged") == NOT_AUTHORIZED
    assert device_b.publish("sensor-community/esp8266-1", b"forged") == NOT_AUTHORIZED
    assert device_a.publish(f"{secured.topic_a}/temperature", b"21.5") == ACCEPTED
    assert device_b.publish(secured.topic_b, b"{}") == ACCEPTED
    received = {subscriber.next_message(), subscriber.next_message()}
    assert received == {(f"{secured.topic_a}/temperature", b"21.5"), (secured.topic_b, b"{}")}
    assert device_b.messages.empty()


@pytest.mark.parametrize("login", ["wrong password", "unknown user", "anonymous"])
def test_the_broker_refuses_bad_logins_at_connect(secured: Secured, login: str) -> None:
    chosen = {
        "wrong password": Login(secured.device_a.username, secured.device_b.password),
        "unknown user": Login("nobody", secured.device_a.password),
        "anonymous": None,
    }[login]
    # Mosquitto 2.0 answers every refused login with 135, never 134 (Bad user name or
    # password): a client cannot tell a wrong password from an unknown user.
    assert secured.client(chosen).connect() == NOT_AUTHORIZED


def test_rotation_and_revocation_take_effect_at_export_and_reload(secured: Secured) -> None:
    old = secured.device_a
    iot_key = old.username.split("/", 1)[1]
    refused = secured.cli("credentials", iot_key, "--profile", "iotagent-json")
    assert refused.exit_code == 1
    assert "use --rotate" in refused.stderr

    new = secured.issue("credentials", iot_key, "--profile", "iotagent-json", "--rotate")
    assert new.username == old.username and new.password != old.password
    secured.export()
    secured.reload()
    # The reload is asynchronous: wait until the new password is accepted.
    assert _eventually_accepted(secured, new)
    assert secured.client(old).connect() == NOT_AUTHORIZED

    revoked = secured.cli("revoke", old.username)
    assert revoked.exit_code == 0, revoked.output
    secured.export()
    secured.reload()
    assert _eventually_refused(secured, new)


def test_the_cli_refuses_unregistered_devices_and_unusable_names(secured: Secured) -> None:
    unknown = secured.cli("credentials", "nokey/nodevice", "--profile", "iotagent-json")
    assert unknown.exit_code == 1
    assert "no registered iotagent-json device" in unknown.stderr
    bad_key = secured.cli("credentials", "a/b", "--profile", "sensor-community")
    assert bad_key.exit_code == 1
    assert "'/' is not allowed" in bad_key.stderr
    bad_service = secured.cli("service-user", "ingest/1")
    assert bad_service.exit_code == 1
    assert "holds no '/'" in bad_service.stderr
    listed = secured.cli("list")
    assert listed.exit_code == 0, listed.output
    assert secured.ingest.username in listed.stdout
    assert secured.device_a.password not in listed.stdout


def _eventually_accepted(secured: Secured, login: Login) -> bool:
    return _poll_connect(secured, login, ACCEPTED)


def _eventually_refused(secured: Secured, login: Login) -> bool:
    return _poll_connect(secured, login, NOT_AUTHORIZED)


def _poll_connect(secured: Secured, login: Login, wanted: int, attempts: int = 50) -> bool:
    """Connect until the CONNACK is `wanted` (a SIGHUP reload takes a moment); bounded."""
    for _ in range(attempts):
        client = secured.client(login)
        if client.connect() == wanted:
            return True
        time.sleep(0.1)
    return False

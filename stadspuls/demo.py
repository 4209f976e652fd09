"""The demo simulator of `stadspuls up --demo`: a day of Mechelen, then Mechelen live.

It registers the demo town's devices (stadspuls/demo_town.py), backfills the hours before
now quickly so charts have history at once, then publishes each device's messages as their
intervals complete (loops every minute, air quality every few minutes, Telraam hourly) at
QoS 1 through the broker, as real devices would. A few devices fall silent. What was
published is remembered in `<data dir>/demo.json`, so a restart only fills the gap.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from storage.database import connect
from storage.registry import write_registry

from .demo_town import DEVICES, DemoDevice, demo_devices, demo_groups, device_message
from .settings import parse_mqtt_url
from .simulator import Message

log = logging.getLogger("stadspuls.demo")

STATE_FILE = "demo.json"
#: Unacknowledged messages the publisher keeps before it waits for PUBACKs.
PUBLISH_WINDOW = 500
PUBLISH_TIMEOUT = 30.0


def register_demo(database_url: str, tenant: str = "") -> int:
    """Register the demo town's device groups and devices; return how many devices."""
    devices = demo_devices(tenant)
    with connect(database_url) as conn:
        write_registry(conn, devices, demo_groups(tenant))
        conn.commit()
    return len(devices)


def example_entity_ids() -> dict[str, str]:
    """One entity id per profile, of a device that keeps reporting (for the printed examples)."""
    examples: dict[str, str] = {}
    for device in DEVICES:
        if device.silent_after is None:
            examples.setdefault(device.profile, device.entity_id)
    return examples


def due_slots(device: DemoDevice, after: datetime, until: datetime) -> list[datetime]:
    """Starts of the device's intervals that completed in (after, until], oldest first.

    Intervals are aligned to the epoch (a loop minute starts on the minute, a Telraam hour
    on the hour); one is sent once it is over.
    """
    cadence = device.cadence
    first = (int(after.timestamp()) - cadence) // cadence + 1
    last = (int(until.timestamp()) - cadence) // cadence
    return [datetime.fromtimestamp(k * cadence, UTC) for k in range(first, last + 1)]


def is_silent(device: DemoDevice, moment: datetime, first_started: datetime) -> bool:
    """Whether the device has fallen silent by `moment`."""
    return device.silent_after is not None and moment >= first_started + device.silent_after


def messages_between(
    after: datetime, until: datetime, first_started: datetime, seed: int = 0
) -> Iterator[Message]:
    """Every message the town sends for intervals that completed in (after, until], in time order.

    The values of a message depend only on its device, its time and the seed, so a
    message sent again (after a crash) is the same message.
    """
    slots = [
        (slot, index)
        for index, device in enumerate(DEVICES)
        for slot in due_slots(device, after, until)
        if not is_silent(device, slot, first_started)
    ]
    slots.sort()
    for slot, index in slots:
        device = DEVICES[index]
        rng = random.Random(f"{seed}/{device.key}/{int(slot.timestamp())}")
        yield device_message(device, slot, rng)


@dataclass
class DemoState:
    """What the demo remembers between runs."""

    first_started: datetime
    published_until: datetime | None = None

    @classmethod
    def load(cls, path: Path, now: datetime) -> DemoState:
        """The state in `path`, or a fresh one that starts now."""
        if not path.exists():
            return cls(now)
        data = json.loads(path.read_text())
        until = data.get("published_until")
        return cls(
            datetime.fromisoformat(data["first_started"]),
            datetime.fromisoformat(until) if until else None,
        )

    def save(self, path: Path) -> None:
        """Write the state (atomically: a crash never leaves half a file)."""
        data = {
            "first_started": self.first_started.isoformat(),
            "published_until": self.published_until.isoformat() if self.published_until else None,
        }
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(data))
        scratch.replace(path)


class DemoPublisher:
    """Publishes the demo town's messages: a backfill first, then live until stopped."""

    def __init__(
        self, mqtt_url: str, data_dir: Path, backfill_hours: float = 24.0, seed: int = 0
    ) -> None:
        self.mqtt_url = mqtt_url
        self.state_path = data_dir / STATE_FILE
        self.backfill = timedelta(hours=backfill_hours)
        self.seed = seed
        self.published = 0
        #: Set once the backfill is acknowledged by the broker.
        self.caught_up = threading.Event()

    def run(self, stop: threading.Event, tick: float = 1.0) -> None:
        """Backfill, then publish what falls due every `tick` seconds until `stop` is set."""
        now = datetime.now(UTC)
        state = DemoState.load(self.state_path, now)
        earliest = now - self.backfill
        after = max(state.published_until or earliest, earliest)
        client = _connected_client(self.mqtt_url)
        try:
            while not stop.is_set():
                until = datetime.now(UTC)
                try:
                    self.published += _publish(
                        client, messages_between(after, until, state.first_started, self.seed), stop
                    )
                except TimeoutError as error:
                    # The broker is gone for now; the same interval is sent again next tick.
                    log.warning("demo: %s; retrying", error)
                    stop.wait(5)
                    continue
                if stop.is_set():
                    break
                after = state.published_until = until
                state.save(self.state_path)
                self.caught_up.set()
                stop.wait(tick)
        finally:
            client.loop_stop()
            client.disconnect()


def _connected_client(url: str) -> mqtt.Client:
    """An MQTT 3.1.1 client (the pure-Python broker speaks nothing newer) with its loop running."""
    endpoint = parse_mqtt_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"stadspuls-demo-{random.randrange(1 << 30):x}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set()
    client.max_inflight_messages_set(PUBLISH_WINDOW)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    return client


def _publish(client: mqtt.Client, messages: Iterable[Message], stop: threading.Event) -> int:
    """Publish at QoS 1 and return once the broker acknowledged each one (or stop is set)."""
    pending: deque[mqtt.MQTTMessageInfo] = deque()
    published = 0
    for message in messages:
        if stop.is_set():
            return published
        if len(pending) >= PUBLISH_WINDOW:
            _confirm(pending.popleft())
        pending.append(client.publish(message.topic, message.payload, qos=1))
        published += 1
    while pending:
        _confirm(pending.popleft())
    return published


def _confirm(info: mqtt.MQTTMessageInfo) -> None:
    try:
        info.wait_for_publish(PUBLISH_TIMEOUT)
    except RuntimeError as error:  # published while disconnected
        raise TimeoutError(f"message {info.mid} not sent: {error}") from error
    if not info.is_published():
        raise TimeoutError(f"message {info.mid} not acknowledged within {PUBLISH_TIMEOUT} s")

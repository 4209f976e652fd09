"""Consumers the ingest benchmark runs as child processes, each reporting JSON on stdout.

- `bare`: a paho subscriber that only decodes (orjson) and counts, acking automatically:
  the ceiling a Python MQTT consumer reaches on this machine.
- `pipeline`: the real ingest worker (MQTT process + writer process), acking after commit.
Both first create their persistent session (`--prepare`) so a backlog can be queued for them.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.mqtt import MqttConsumer, subscription_filters
from ingest.runtime import tune_garbage_collector
from stadspuls.settings import Settings
from stadspuls.wiring import build_worker, default_topics
from storage.backend import detect_backend
from storage.database import connect


def _topics(shared_group: str | None) -> list[str]:
    return subscription_filters(default_topics(), shared_group)


def run_bare(url_port: int, client_id: str, expect: int, shared: str | None) -> dict:
    """Drain `expect` messages with a bare paho subscriber; the time from first to last."""
    done = threading.Event()
    state = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client, userdata, message) -> None:
        if not state["count"]:
            state["first"] = time.monotonic()
        orjson.loads(message.payload)
        state["count"] += 1
        if state["count"] >= expect:
            state["last"] = time.monotonic()
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = Settings().mqtt_receive_maximum  # as the pipeline
    client.connect("127.0.0.1", url_port, clean_start=False, properties=properties)
    client.subscribe([(t, SubscribeOptions(qos=1)) for t in _topics(shared)])
    tune_garbage_collector()  # the same process tuning as the pipeline: a fair baseline
    client.loop_start()
    if expect:
        done.wait(1800)
    else:  # --prepare: the session and its subscriptions exist once SUBACK is back
        time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    return {"messages": state["count"], "first": state["first"], "last": state["last"]}


def prepare_session(settings: Settings) -> None:
    """Connect once with the worker's client id and subscriptions, then leave."""
    consumer = MqttConsumer(
        settings.mqtt,
        settings.mqtt_client_id,
        subscription_filters(default_topics(), settings.mqtt_shared_group),
        lambda message: None,
        session_expiry=3600,
        receive_maximum=settings.mqtt_receive_maximum,
    )
    consumer.start()
    consumer.wait_connected(10)
    time.sleep(0.5)
    consumer.stop()


def run_pipeline(settings: Settings, expect: int, commit_times: str | None) -> dict:
    """Run the real worker until `expect` messages are committed."""
    with connect(settings.database_url) as conn:
        backend = detect_backend(conn, settings.storage_backend)
    done = threading.Event()
    state = {"count": 0, "first": float("inf"), "last": 0.0}
    committed: list[np.ndarray] = []

    def on_commit(arrived: list[float], at: float) -> None:
        state["first"] = min(state["first"], arrived[0])
        state["count"] += len(arrived)
        state["last"] = at
        if commit_times:
            committed.append(np.full(len(arrived), at))
        if state["count"] >= expect:
            done.set()

    worker = build_worker(settings, backend, on_commit=on_commit)
    worker.start()
    tune_garbage_collector()
    done.wait(1800)
    readings = worker.stats.readings
    worker.stop()
    if commit_times:
        np.save(commit_times, np.concatenate(committed) if committed else np.empty(0))
    return {"messages": state["count"], "readings": readings, **state}


def main() -> None:
    """Parse arguments, run one consumer, print its report as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["bare", "pipeline"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--shared-group", default=None)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--commit-times", default=None)
    args = parser.parse_args()
    if args.mode == "bare":
        if args.prepare:
            run_bare(args.port, args.client_id, 0, args.shared_group)
            report: dict = {}
        else:
            report = run_bare(args.port, args.client_id, args.expect, args.shared_group)
    else:
        settings = Settings(
            database_url=args.database_url,
            mqtt_url=f"mqtt://127.0.0.1:{args.port}",
            mqtt_client_id=args.client_id,
            mqtt_shared_group=args.shared_group,
            metrics_port=0,
            log_level="WARNING",
        )
        if args.prepare:
            prepare_session(settings)
            report = {}
        else:
            report = run_pipeline(settings, args.expect, args.commit_times)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()

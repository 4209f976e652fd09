"""The writer process: decodes, maps and commits batches handed over by the MQTT process.

paho's network loop is pure Python and keeps one core busy at full rate; decoding and the
COPY must not share its interpreter lock. The MQTT process sends each batch as one pickled
message over a pipe and acknowledges its MQTT messages when this process answers that the
batch is committed. Batches are handled strictly in order, so acknowledgements go out in
the order the messages arrived (MQTT 3.1.1 §4.6, MQTT 5 §4.6).
"""

from __future__ import annotations

import logging
import pickle
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from .committer import BatchCommitter
from .message import RawMessage
from .runtime import tune_garbage_collector

#: One message on the wire: (topic, payload, qos, received_at as POSIX seconds).
WireMessage = tuple[str, bytes, int, float]


#: Sent instead of a batch to tell the writer to finish: closing the pipe is not enough while
#: the other process's acknowledger thread still blocks reading its end.
STOP = b""


def encode_batch(sequence: int, messages: list[WireMessage]) -> bytes:
    """The bytes the MQTT process sends for one batch."""
    return pickle.dumps((sequence, messages), protocol=pickle.HIGHEST_PROTOCOL)


def decode_batch(data: bytes) -> tuple[int, list[RawMessage]]:
    """The batch sequence number and its messages, as the pipeline takes them."""
    sequence, wire = pickle.loads(data)
    stamp = datetime.fromtimestamp
    return sequence, [
        RawMessage(topic, payload, 0, qos, stamp(received, UTC), 0.0)
        for topic, payload, qos, received in wire
    ]


def serve(channel: Connection, make_committer: Callable[[], BatchCommitter], level: str) -> None:
    """Commit batches from `channel` until it closes; answer each with (sequence, report)."""
    # The MQTT process owns shutdown: Ctrl-C reaches the whole process group, but this
    # process must finish the batch in hand and exit when the pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    committer = make_committer()
    tune_garbage_collector()
    try:
        while True:
            try:
                data = channel.recv_bytes()
            except (EOFError, OSError):
                return
            if data == STOP:
                return
            sequence, messages = decode_batch(data)
            channel.send((sequence, committer.commit(messages)))
    finally:
        committer.close()

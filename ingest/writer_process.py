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
import queue
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from .committer import BatchCommitter
from .message import RawMessage
from .pipeline import BuiltBatch
from .runtime import tune_garbage_collector

#: Built batches waiting for the committer thread; None tells it to finish.
Handoff = queue.Queue[tuple[int, BuiltBatch] | None]

#: One message on the wire: (topic, payload, qos, received_at as POSIX seconds).
WireMessage = tuple[str, bytes, int, float]


#: Sent by the writer once it can take batches (registry loaded, database reachable).
READY = b"ready"
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
    """Commit batches from `channel` until told to stop; answer each with (sequence, report).

    Two threads, so the database works on one batch while the next is decoded: this one
    receives and builds, the committer thread writes and answers, in batch order.
    """
    # The MQTT process owns shutdown: Ctrl-C reaches the whole process group, but this
    # process must finish the batch in hand and exit when told to.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    committer = make_committer()
    # Rollups are refreshed by a thread of this process with its own connection; close()
    # stops it (on STOP, or when the MQTT side is gone).
    committer.start_rollup_refresh()
    built: Handoff = queue.Queue(maxsize=1)
    writer = threading.Thread(
        target=_commit_loop, args=(channel, committer, built), name="committer", daemon=True
    )
    tune_garbage_collector()
    writer.start()
    channel.send_bytes(READY)
    try:
        while True:
            try:
                data = channel.recv_bytes()
            except (EOFError, OSError):
                break
            if data == STOP:
                break
            sequence, messages = decode_batch(data)
            if not _hand_over(built, (sequence, committer.build(messages)), writer):
                break
    finally:
        _hand_over(built, None, writer)
        writer.join()
        committer.close()


def _hand_over(
    built: Handoff, item: tuple[int, BuiltBatch] | None, writer: threading.Thread
) -> bool:
    """Queue `item` for the committer thread; False if that thread has ended (MQTT side gone)."""
    while writer.is_alive():
        try:
            built.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def _commit_loop(
    channel: Connection,
    committer: BatchCommitter,
    built: queue.Queue[tuple[int, BuiltBatch] | None],
) -> None:
    while (item := built.get()) is not None:
        sequence, batch = item
        report = committer.commit(batch)
        try:
            channel.send((sequence, report))
        except OSError:
            return  # the MQTT process is gone; its broker session redelivers the rest

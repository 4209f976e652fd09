"""A real HTTP notification receiver on 127.0.0.1 that records what it is sent.

It can be taken down and brought back on the same port (`stop()`/`start()`), and told to
answer with an error status, so tests can prove that delivery waits and retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from stadspuls.embedded import free_port


@dataclass(frozen=True, slots=True)
class Received:
    """One request the receiver took."""

    path: str
    headers: dict[str, str]
    body: Any


class Receiver:
    """Records POSTed JSON bodies; `status` is what it answers (200 by default)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        #: Seconds to wait before answering (a slow receiver).
        self.delay = 0.0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL notifications are posted to."""
        return f"http://127.0.0.1:{self.port}/notify"

    def start(self) -> Receiver:
        """Listen (again) on the receiver's port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                length = int(self.headers.get("Content-Length", "0"))
                body = orjson.loads(self.rfile.read(length)) if length else None
                status = receiver.status
                if receiver.delay:
                    time.sleep(receiver.delay)
                if status < 300:
                    with receiver._lock:
                        receiver.received.append(
                            Received(self.path, dict(self.headers.items()), body)
                        )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: senders get connection refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[Any]:
        """The bodies received so far, in arrival order."""
        with self._lock:
            return [item.body for item in self.received]

    def wait_for(self, condition: Callable[[list[Any]], bool], timeout: float = 20.0) -> list[Any]:
        """Wait until `condition(bodies)` holds; the bodies (the test asserts on them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bodies = self.bodies()
            if condition(bodies):
                return bodies
            time.sleep(0.05)
        return self.bodies()

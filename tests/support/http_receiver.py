"""A real HTTP server on 127.0.0.1 (port 0, its own thread) that records requests.

For tests that drive the service over gRPC from synchronous code: an endpoint a
webhook channel posts to, or a stand-in for an internet API speaking its wire
format. ``reply`` decides each answer; ``wait_for(n)`` blocks until n requests
arrived (a condition variable, no sleeping).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]     # names in lower case
    body: bytes


Reply = Callable[[Request], tuple[int, dict[str, str], bytes]]


def no_content(_: Request) -> tuple[int, dict[str, str], bytes]:
    return 204, {}, b""


class Receiver:
    """The recording server; ``url`` is its base (``http://127.0.0.1:<port>``)."""

    def __init__(self, reply: Reply = no_content) -> None:
        self.reply = reply
        self.requests: list[Request] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                req = Request("POST", self.path,
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length))
                with receiver._changed:
                    receiver.requests.append(req)
                    receiver._changed.notify_all()
                status, headers, body = receiver.reply(req)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.requests) >= count, timeout), \
                f"{len(self.requests)} of {count} requests arrived"
            return list(self.requests)


@contextmanager
def receiving(reply: Reply = no_content) -> Iterator[Receiver]:
    receiver = Receiver(reply)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(10)

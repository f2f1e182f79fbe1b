"""A real webhook endpoint for the delivery fault tests: aiohttp on 127.0.0.1, its own thread.

``WebhookReceiver`` verifies every request with the official ``standardwebhooks``
package, records it, and answers as its ``behaviour`` says: accept (204), fail
(500), slow down (429 with ``Retry-After``), answer slowly, or be down (the port
closed, connections refused). It deduplicates by ``webhook-id`` as a real
receiver would, and checks that no alert ever arrives under two message ids.
Tests wait on ``wait_for`` (a condition with a timeout), never on sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Behaviour:
    """How the endpoint answers: ``status`` (after ``delay_s``), with ``retry_after``."""

    status: int = 204
    delay_s: float = 0.0
    retry_after: str | None = None
    fail_first: int = 0      # per message id: answer `status` this many times, then 204


ACCEPT = Behaviour()


@dataclass
class Arrival:
    alert_id: int
    message_id: str
    at: float                # time.monotonic()
    status: int              # what the receiver answered
    text: str = ""           # the channel's rendered text (data.text)


@dataclass
class WebhookReceiver:
    """A Standard Webhooks endpoint; start() binds a free port, down()/up() close and reopen it."""

    secret: str = field(default_factory=new_secret)
    behaviour: Behaviour = ACCEPT
    arrivals: list[Arrival] = field(default_factory=list)
    bad_signatures: int = 0
    started: int = 0         # requests that reached the handler (answered or not)
    port: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _seen_per_message: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._serve())
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)

    def down(self) -> None:
        """Close the port: attempts now fail with connection refused."""
        assert self._site is not None
        self._call(self._site.stop())

    def up(self) -> None:
        """Listen on the same port again."""
        self._call(self._listen())

    def _call(self, coro):  # type: ignore[no-untyped-def]
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        if not self.port:
            with socket.socket() as probe:      # a free port, kept across down()/up()
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    # -- requests ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            with self._cond:
                self.bad_signatures += 1
                self._cond.notify_all()
            return web.Response(status=401)
        message_id = headers["webhook-id"]
        data = json.loads(body)["data"]
        alert_id = int(data["alert_id"])
        behaviour = self.behaviour
        with self._cond:
            self.started += 1
            self._cond.notify_all()
            seen = self._seen_per_message.get(message_id, 0)
            self._seen_per_message[message_id] = seen + 1
        if behaviour.fail_first and seen >= behaviour.fail_first:
            behaviour = ACCEPT
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)   # the endpoint being slow, not a sync
        with self._cond:
            self.arrivals.append(Arrival(alert_id, message_id, time.monotonic(),
                                         behaviour.status, data.get("text", "")))
            self._cond.notify_all()
        response_headers = {}
        if behaviour.retry_after is not None:
            response_headers["Retry-After"] = behaviour.retry_after
        return web.Response(status=behaviour.status, headers=response_headers)

    # -- what arrived ------------------------------------------------------------------------------

    def accepted_ids(self) -> set[int]:
        """Alert ids this endpoint accepted (2xx) at least once."""
        with self._cond:
            return {a.alert_id for a in self.arrivals if 200 <= a.status < 300}

    def wait_for(self, predicate: Callable[[WebhookReceiver], bool], timeout: float = 30.0
                 ) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"timed out after {timeout} s; accepted {sorted(self.accepted_ids_locked())}")

    def accepted_ids_locked(self) -> set[int]:
        return {a.alert_id for a in self.arrivals if 200 <= a.status < 300}

    def wait_accepted(self, ids: set[int], timeout: float = 30.0) -> None:
        self.wait_for(lambda r: ids <= r.accepted_ids_locked(), timeout)

    def check_one_id_per_alert(self) -> None:
        """Every alert arrived under one message id, and every message id carried one alert."""
        with self._cond:
            ids_of_alert: dict[int, set[str]] = {}
            alerts_of_id: dict[str, set[int]] = {}
            for a in self.arrivals:
                ids_of_alert.setdefault(a.alert_id, set()).add(a.message_id)
                alerts_of_id.setdefault(a.message_id, set()).add(a.alert_id)
            assert self.bad_signatures == 0
        assert all(len(v) == 1 for v in ids_of_alert.values()), ids_of_alert
        assert all(len(v) == 1 for v in alerts_of_id.values()), alerts_of_id

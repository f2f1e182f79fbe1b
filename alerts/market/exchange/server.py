"""``ReplayExchange``: the Binance-compatible server (WebSocket streams and REST on one port).

One websockets server answers both: a request asking for a WebSocket upgrade
on ``/ws[/<stream>[/<stream>...]]`` or ``/stream?streams=a/b/c`` becomes a
stream connection (raw or combined frames); any other request is answered as
REST (``/api/v3/...``, or ``/fapi/v1/...`` for the ``usdm`` venue) from
websockets' ``process_request`` hook, one request per TCP connection
(``Connection: close``). A stream URL with an invalid stream name, or more
streams than the cap, is refused with HTTP 400 and a code-2 body.
The replay loop, the kline updates and every connection are owned tasks,
cancelled by ``stop()``, which first sends every connection
``serverShutdown`` and closes it with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from alerts.market.exchange.connection import LimitedConnection, SessionLimits, StreamSession
from alerts.market.exchange.control import ControlResult, Subscriptions
from alerts.market.exchange.faults import Faults, FaultTarget
from alerts.market.exchange.limits import MessageRate, WeightLimiter
from alerts.market.exchange.replay import ReplayEngine, ReplayProgress
from alerts.market.exchange.rest import PREFIXES, HttpAnswer, RestApi
from alerts.market.exchange.streams import (
    SHUTDOWN_STREAM,
    Stream,
    combined_frame,
    dumps,
    parse_stream,
    shutdown_payload,
)
from alerts.market.exchange.synthetic import SyntheticFeed
from alerts.market.exchange.trades import RecordedFeed, TradeFeed

log = logging.getLogger(__name__)

_BACKPRESSURE_FRAMES = 1000


@dataclass(frozen=True)
class ExchangeConfig:
    """Everything about an exchange but its data; defaults are Binance's values."""

    host: str = "127.0.0.1"
    port: int = 0
    venue: str = "spot"                  # "spot" (/api/v3) or "usdm" (/fapi/v1)
    speed: float = 1.0                   # 1.0 real time, 10 ten times faster, 0 as fast as read
    paused: bool = False                 # start with the clock stopped (resume() / run_until())
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_lifetime_s: float = 24 * 3600.0
    max_incoming_per_s: int = 5
    max_streams: int = 1024
    max_backlog: int = 10_000            # frames a reader may fall behind (speed > 0) before it is cut
    kline_update_s: float = 2.0
    weight_limit: int = 6000             # REST request weight per minute and IP
    ban_after: int = 3                   # requests inside a Retry-After before a 418 ban
    ban_s: float = 120.0
    drop_after_messages: int | None = None   # cut every connection after this many stream frames
    progress_every_s: float = 5.0
    shutdown_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if self.venue not in PREFIXES:
            raise ValueError(f"venue must be one of {', '.join(PREFIXES)}, not {self.venue!r}")
        if self.speed < 0:
            raise ValueError("speed must be >= 0")


def _http_response(answer: HttpAnswer) -> Response:
    body = answer.body.encode()
    headers = Headers([("Content-Type", "application/json;charset=UTF-8"),
                       ("Content-Length", str(len(body))), ("Connection", "close")])
    for name, value in answer.headers.items():
        headers[name] = value
    return Response(answer.status, http.HTTPStatus(answer.status).phrase, headers, body)


def _stream_request(path: str, max_streams: int) -> tuple[bool, list[Stream]] | HttpAnswer:
    """(combined, streams) of a stream URL, or the HTTP refusal."""
    parts = urlsplit(path)
    if parts.path == "/stream":
        names = "/".join(parse_qs(parts.query).get("streams", []))
        combined = True
    elif parts.path == "/ws" or parts.path.startswith("/ws/"):
        names = parts.path[len("/ws/"):]
        combined = False
    else:
        return HttpAnswer(404, dumps({"code": -1000, "msg": "Not found."}))
    streams: list[Stream] = []
    for name in filter(None, names.split("/")):
        stream = parse_stream(name)
        if stream is None:
            return HttpAnswer(400, dumps({"code": 2, "msg": "Invalid request: invalid stream"}))
        if all(s.name != name for s in streams):
            streams.append(stream)
    if len(streams) > max_streams:
        return HttpAnswer(400, dumps({"code": 2, "msg": "Invalid request: too many streams"}))
    return combined, streams


class ReplayExchange:
    """A local Binance: streams and REST over a feed of trades on a replay clock.

    ``async with ReplayExchange(feed, speed=0, paused=True) as ex:`` starts it on
    ``ex.ws_url`` / ``ex.rest_url``; keyword settings override ``config``
    (see ``ExchangeConfig``). ``wall_clock`` (seconds) times the REST weight
    minutes, so tests can pin it.
    """

    def __init__(self, feed: TradeFeed, config: ExchangeConfig | None = None, *,
                 progress: Callable[[ReplayProgress], None] | None = None,
                 wall_clock: Callable[[], float] = time.time, **settings: Any) -> None:
        self.config = replace(config or ExchangeConfig(), **settings)
        cfg = self.config
        self._engine = ReplayEngine(feed, self, venue=cfg.venue, speed=cfg.speed,
                                    paused=cfg.paused, kline_update_s=cfg.kline_update_s,
                                    progress=progress, progress_every_s=cfg.progress_every_s)
        self._limiter = WeightLimiter(cfg.weight_limit, ban_after=cfg.ban_after, ban_s=cfg.ban_s,
                                      clock=wall_clock)
        self._rest = RestApi(cfg.venue, self._engine.books, lambda: self._engine.now_ms,
                             self._limiter)
        self._limits = SessionLimits(cfg.ping_interval_s, cfg.pong_timeout_s,
                                     cfg.max_lifetime_s, cfg.max_backlog,
                                     cfg.drop_after_messages)
        self._index: dict[str, set[StreamSession]] = {}
        self._sessions: set[StreamSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._port = 0
        self._wall_clock = wall_clock
        self._refuse_until = 0.0
        self.faults = Faults(self)

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], config: ExchangeConfig | None = None,
                   **kwargs: Any) -> ReplayExchange:
        """Replay recorded trade files (raises ``TradeFileError`` on bad input)."""
        return cls(RecordedFeed.from_files(paths), config, **kwargs)

    @classmethod
    def synthetic(cls, symbols: int | Sequence[str], *, seed: int = 0, rate: float = 10.0,
                  start_ms: int | None = None, config: ExchangeConfig | None = None,
                  **kwargs: Any) -> ReplayExchange:
        """A seeded random walk of ``rate`` trades per second over ``symbols``."""
        return cls(SyntheticFeed(symbols, seed=seed, rate=rate, start_ms=start_ms), config,
                   **kwargs)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen and start the replay clock (unless ``paused``)."""
        self._engine.prepare(int(self._wall_clock() * 1000))
        self._server = await serve(
            self._handle, self.config.host, self.config.port,
            process_request=self._process_request, create_connection=LimitedConnection,
            ping_interval=None, ping_timeout=None, compression=None, close_timeout=2,
            max_size=2 ** 20)
        self._port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._engine.run())
        self._spawn(self._engine.run_kline_updates())

    async def stop(self) -> None:
        """Announce ``serverShutdown`` to every connection, close them, stop every task."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        await self.shutdown_connections()
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown_connections(self) -> None:
        """Send ``serverShutdown`` on every connection and close them (1001); keep serving."""
        sessions = list(self._sessions)
        payload = dumps(shutdown_payload(self._engine.now_ms))
        for session in sessions:
            session.shutdown(combined_frame(SHUTDOWN_STREAM, payload) if session.subs.combined
                             else payload)
        with contextlib.suppress(TimeoutError):
            await self._engine.wait_for(lambda: not (self._sessions & set(sessions)),
                                        self.config.shutdown_grace_s)

    # ------------------------------------------------------------------ addresses and state

    @property
    def port(self) -> int:
        return self._port

    @property
    def ws_url(self) -> str:
        """Stream base URL: append ``/ws/<stream>`` or ``/stream?streams=...``."""
        return f"ws://{self.config.host}:{self._port}"

    @property
    def rest_url(self) -> str:
        """REST base URL: append ``/api/v3/...`` (spot) or ``/fapi/v1/...`` (usdm)."""
        return f"http://{self.config.host}:{self._port}"

    @property
    def now_ms(self) -> int:
        """The exchange's clock: the replay time."""
        return self._engine.now_ms

    @property
    def symbols(self) -> list[str]:
        return list(self._engine.books)

    @property
    def speed(self) -> float:
        return self._engine.speed

    @property
    def finished(self) -> bool:
        """True once a finite feed has been published entirely."""
        return self._engine.finished

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def subscribers(self, stream: str) -> int:
        return len(self._index.get(stream, ()))

    def progress(self) -> ReplayProgress:
        return self._engine.progress()

    # ------------------------------------------------------------------ replay control

    def pause(self) -> None:
        self._engine.pause()

    def resume(self) -> None:
        self._engine.resume()

    def set_speed(self, speed: float) -> None:
        self._engine.set_speed(speed)

    async def run_until(self, time_ms: int) -> None:
        """Pause and publish everything up to ``time_ms`` (the clock ends there)."""
        await self._engine.run_until(time_ms)

    async def wait_until(self, time_ms: int, timeout: float | None = None) -> None:
        """Wait until the clock reaches ``time_ms``."""
        await self._engine.wait_for(lambda: self._engine.now_ms >= time_ms, timeout)

    async def wait_finished(self, timeout: float | None = None) -> None:
        """Wait until a finite feed has been published entirely."""
        await self._engine.wait_for(lambda: self._engine.finished, timeout)

    async def wait_subscribed(self, stream: str, count: int = 1,
                              timeout: float | None = None) -> None:
        """Wait until ``stream`` has at least ``count`` subscribed connections."""
        await self._engine.wait_for(lambda: self.subscribers(stream) >= count, timeout)

    async def wait_connections(self, count: int, timeout: float | None = None) -> None:
        """Wait until exactly ``count`` stream connections are open."""
        await self._engine.wait_for(lambda: len(self._sessions) == count, timeout)

    # ------------------------------------------------------------------ publisher (replay)

    def has_subscribers(self, stream: str) -> bool:
        return stream in self._index

    def publish(self, stream: str, payload: dict[str, Any]) -> None:
        raw = dumps(payload)
        wrapped: str | None = None
        for session in self._index.get(stream, ()):
            if session.subs.combined:
                wrapped = wrapped or combined_frame(stream, raw)
                session.send_stream(wrapped)
            else:
                session.send_stream(raw)

    async def backpressure(self) -> None:
        for session in list(self._sessions):
            if session.backlog > _BACKPRESSURE_FRAMES and not session.stalled:
                await session.drained.wait()

    # ------------------------------------------------------------------ sessions

    def backpressure_on(self) -> bool:
        return self._engine.speed == 0

    def apply(self, session: StreamSession, result: ControlResult) -> None:
        for stream in result.added:
            self._index.setdefault(stream.name, set()).add(session)
            if stream.kind == "kline" and stream.symbol and stream.interval:
                self._engine.add_kline(stream.symbol, stream.interval)
        for stream in result.removed:
            self._unsubscribe(session, stream)
        self._engine.changed()

    def _unsubscribe(self, session: StreamSession, stream: Stream) -> None:
        holders = self._index.get(stream.name)
        if holders is None:
            return
        holders.discard(session)
        if not holders:
            del self._index[stream.name]
            if stream.kind == "kline" and stream.symbol and stream.interval:
                self._engine.remove_kline(stream.symbol, stream.interval)

    def fault_targets(self) -> list[FaultTarget]:
        return list(self._sessions)

    def force_rate_limit(self, seconds: float) -> None:
        self._limiter.force(seconds)

    def refuse_connections(self, seconds: float) -> None:
        self._refuse_until = asyncio.get_running_loop().time() + seconds

    def _process_request(self, connection: ServerConnection,
                         request: Request) -> Response | None:
        assert isinstance(connection, LimitedConnection)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if connection.loop.time() < self._refuse_until:
                return _http_response(HttpAnswer(503, dumps(
                    {"code": -1008, "msg": "Server is currently overloaded with other requests. "
                                           "Please try again in a few minutes."})))
            parsed = _stream_request(request.path, self.config.max_streams)
            if isinstance(parsed, HttpAnswer):
                return _http_response(parsed)
            connection.initial = parsed
            return None
        client_ip = str(connection.remote_address[0]) if connection.remote_address else ""
        return _http_response(self._rest.answer(request.path, client_ip))

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, LimitedConnection)
        combined, streams = ws.initial
        ws.rate = MessageRate(self.config.max_incoming_per_s)
        subs = Subscriptions(combined, self.config.max_streams, {s.name: s for s in streams})
        session = StreamSession(ws, subs, _SessionHost(self), self._limits)
        self._sessions.add(session)
        self.apply(session, ControlResult("", added=tuple(streams)))
        try:
            await session.run()
        except Exception:
            log.exception("stream connection failed")
        finally:
            for stream in list(subs.streams.values()):
                self._unsubscribe(session, stream)
            self._sessions.discard(session)
            session.drained.set()
            self._engine.changed()


class _SessionHost:
    """The exchange as a session sees it."""

    def __init__(self, exchange: ReplayExchange) -> None:
        self._exchange = exchange

    def apply(self, session: StreamSession, result: ControlResult) -> None:
        self._exchange.apply(session, result)

    def backpressure_on(self) -> bool:
        return self._exchange.backpressure_on()

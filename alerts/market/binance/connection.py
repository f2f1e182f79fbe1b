"""One combined-stream connection slot: its streams, its WebSocket, its lifecycle.

A ``StreamConnection`` owns a set of stream names and keeps one WebSocket
(``Link``) open for them: it connects (``/stream?streams=a/b``), reconnects
with full-jitter backoff when the socket drops or goes silent, and rotates to
a fresh socket before ``max_age_s`` or on ``serverShutdown`` with no gap: the
new socket is opened and subscribed while the old one still delivers, its
frames are held, the old one is closed (every frame it read is handed on),
then the held frames follow (duplicates are dropped downstream by aggregate
id). Live SUBSCRIBE/UNSUBSCRIBE go out paced (``SlidingWindowLimiter``) and
wait for their reply by id. Frames are handed to a ``FrameHandler`` (the
source) synchronously, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from alerts.market.binance.errors import BinanceRequestError, BinanceUnavailableError
from alerts.market.binance.limits import SlidingWindowLimiter, full_jitter
from alerts.market.binance.messages import Reply, control

log = structlog.get_logger(__name__)

_request_ids = itertools.count(1)


@dataclass
class LinkState:
    """What the source tracks per socket: last id seen per symbol, clock, pending replies."""

    number: int
    opened_at: float = field(default_factory=time.monotonic)
    last_message: float = field(default_factory=time.monotonic)
    max_event_ms: int = 0
    last_seen: dict[str, int] = field(default_factory=dict)
    shutdown_notice: asyncio.Event = field(default_factory=asyncio.Event)
    replies: dict[int | str, asyncio.Future[Reply]] = field(default_factory=dict)

    def resolve(self, reply: Reply) -> bool:
        """Hand a reply to its waiter; False when nobody asked (unknown id)."""
        fut = self.replies.pop(reply.id, None) if reply.id is not None else None
        if fut is None:
            return False
        if not fut.done():
            fut.set_result(reply)
        return True

    def fail_waiters(self, exc: BaseException) -> None:
        for fut in self.replies.values():
            if not fut.done():
                fut.set_exception(exc)
        self.replies.clear()


class FrameHandler(Protocol):
    """The receiver of every frame (the source); ``backlog_full`` asks the reader to wait."""

    def on_frame(self, state: LinkState, raw: str | bytes) -> bool:
        """Handle one frame; True when the backlog is full and the reader should wait."""

    async def wait_room(self) -> None: ...

    async def on_connected(self, conn: StreamConnection, *, first: bool) -> None: ...

    async def on_lost(self, conn: StreamConnection, why: str, *, stale: bool) -> None: ...

    async def on_rotated(self, conn: StreamConnection, why: str) -> None: ...


@dataclass(frozen=True)
class ConnectionSettings:
    """Timing and limits of every connection of a source."""

    ws_url: str
    max_age_s: float = 23 * 3600.0
    stale_after_s: float = 30.0
    reply_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    control_per_s: int = 4          # of Binance's 5 incoming messages/s, one left for pongs
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    stable_after_s: float = 30.0    # a socket that lived this long resets the backoff
    ping_interval_s: float | None = 20.0


class _Link:
    """An open WebSocket, its reader task, and frames held while it is not yet current."""

    def __init__(self, ws: ClientConnection, state: LinkState, handler: FrameHandler) -> None:
        self.ws = ws
        self.state = state
        self._handler = handler
        self._held: list[str | bytes] | None = None
        self.reader: asyncio.Task[None] | None = None

    def start(self, *, hold: bool) -> None:
        self._held = [] if hold else None
        self.reader = asyncio.create_task(self._read(), name=f"binance-link-{self.state.number}")

    def release(self) -> None:
        """Hand on the frames held so far; later frames go straight through."""
        held, self._held = self._held, None
        for raw in held or ():
            self._handler.on_frame(self.state, raw)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if self._held is not None:
                    self._held.append(raw)
                elif self._handler.on_frame(self.state, raw):
                    await self._handler.wait_room()
        except ConnectionClosed:
            pass
        finally:
            self.state.fail_waiters(BinanceUnavailableError("connection closed"))

    async def close(self, *, abort: bool = False) -> None:
        """Close politely, or (``abort``: the peer is not listening) drop the TCP connection."""
        if abort and self.ws.transport is not None:
            self.ws.transport.abort()
        await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


class StreamConnection:
    """A slot of up to ``capacity`` streams kept on one live WebSocket."""

    def __init__(self, number: int, settings: ConnectionSettings, handler: FrameHandler,
                 attempts: SlidingWindowLimiter, capacity: int) -> None:
        self.number = number
        self.settings = settings
        self.capacity = capacity
        self.streams: set[str] = set()
        self._handler = handler
        self._attempts = attempts
        self._pacer = SlidingWindowLimiter(settings.control_per_s, 1.0)
        self._lock = asyncio.Lock()
        self._link: _Link | None = None
        self._progress = 0               # latest event time of the sockets already closed
        self._task: asyncio.Task[None] | None = None
        self.failures = 0                # consecutive failed or short-lived sockets (the backoff)
        self.connected = asyncio.Event()
        self.settled = asyncio.Event()   # connected once, or refused
        self.refused: BinanceRequestError | None = None

    @property
    def state(self) -> LinkState | None:
        return None if self._link is None else self._link.state

    @property
    def progress_ms(self) -> int:
        """Latest event time seen on this slot, over all its sockets (0: none yet)."""
        link = self._link
        return max(self._progress, link.state.max_event_ms if link is not None else 0)

    def _retire(self, link: _Link) -> None:
        self._progress = max(self._progress, link.state.max_event_ms)

    @property
    def room(self) -> int:
        return self.capacity - len(self.streams)

    def start(self, streams: Iterable[str]) -> None:
        self.streams.update(streams)
        self._task = asyncio.create_task(self._run(), name=f"binance-conn-{self.number}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._link is not None:
            await self._link.close()
            self._link = None
        self.connected.clear()

    # -- control messages ------------------------------------------------------------
    async def subscribe(self, streams: list[str]) -> None:
        """Add streams; sent live when connected (else they go in the next URL)."""
        async with self._lock:
            self.streams.update(streams)
            try:
                await self._control("SUBSCRIBE", streams)
            except BinanceRequestError:
                self.streams.difference_update(streams)
                raise

    async def unsubscribe(self, streams: list[str]) -> None:
        async with self._lock:
            self.streams.difference_update(streams)
            if self.streams:
                await self._control("UNSUBSCRIBE", streams)

    async def list_subscriptions(self) -> list[str]:
        """The server's view of this connection's streams (LIST_SUBSCRIPTIONS)."""
        async with self._lock:
            reply = await self._control("LIST_SUBSCRIPTIONS", [])
        return list(reply.result or []) if reply is not None else []

    async def _control(self, method: str, params: list[str]) -> Reply | None:
        link = self._link
        if link is None:
            return None
        await self._pacer.acquire()
        rid = next(_request_ids)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        link.state.replies[rid] = fut
        try:
            await link.ws.send(control(method, params, rid).decode())
            reply = await asyncio.wait_for(fut, self.settings.reply_timeout_s)
        except (ConnectionClosed, BinanceUnavailableError, TimeoutError) as exc:
            # The socket is going away; the next one subscribes through its URL.
            link.state.replies.pop(rid, None)
            log.warning("binance_control_unanswered", method=method, connection=self.number,
                        error=repr(exc))
            return None
        if reply.error is not None:
            code, msg = reply.error
            raise BinanceRequestError(f"Binance refused {method} {params}: {msg} (code {code})",
                                      code=code)
        return reply

    # -- lifecycle --------------------------------------------------------------------
    def _url(self) -> str:
        base = self.settings.ws_url.rstrip("/")
        return f"{base}/stream?streams={'/'.join(sorted(self.streams))}"

    async def _open(self) -> _Link:
        await self._attempts.acquire()
        ws = await websockets.connect(
            self._url(), open_timeout=self.settings.open_timeout_s, compression=None,
            ping_interval=self.settings.ping_interval_s, ping_timeout=self.settings.ping_interval_s,
            close_timeout=2.0, max_queue=1024)
        return _Link(ws, LinkState(self.number), self._handler)

    async def _run(self) -> None:
        self.failures = attempt = 0
        first = True
        link: _Link | None = None
        while self.streams:
            if link is None:
                try:
                    async with self._lock:
                        link = await self._open()
                        await self._handler.on_connected(self, first=first)
                        self._link = link
                        link.start(hold=False)
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if 400 <= status < 500 and status not in (418, 429):
                        raw = exc.response.body or b""
                        body = raw.decode(errors="replace")[:200]
                        self.refused = BinanceRequestError(
                            f"Binance refused the stream connection: HTTP {status} {body}",
                            status=status)
                        log.error("binance_connection_refused", connection=self.number,
                                  status=status, body=body)
                        self.settled.set()
                        return
                    attempt = await self._backoff(attempt, exc)
                    continue
                except (OSError, WebSocketException, TimeoutError) as exc:
                    attempt = await self._backoff(attempt, exc)
                    continue
                first = False
                self.connected.set()
                self.settled.set()
            outcome = await self._watch(link)
            if outcome in ("rotate", "shutdown"):
                new = await self._rotate(link, outcome)
                if new is not None:
                    link = new
                    attempt = 0
                    continue
                outcome = "closed" if link.reader is None or link.reader.done() else outcome
                if outcome != "closed":
                    continue
            lived = time.monotonic() - link.state.opened_at
            self.connected.clear()
            self._retire(link)
            self._link = None
            await link.close(abort=outcome == "stale")
            link = None
            await self._handler.on_lost(self, outcome, stale=outcome == "stale")
            if lived >= self.settings.stable_after_s:
                attempt = 0                 # it had worked: start the backoff over
            attempt = await self._backoff(attempt, outcome)

    async def _backoff(self, attempt: int, why: BaseException | str) -> int:
        """Sleep the full-jitter delay of ``attempt``; returns the next attempt number."""
        delay = full_jitter(attempt, base_s=self.settings.backoff_base_s,
                            cap_s=self.settings.backoff_cap_s)
        log.warning("binance_reconnect_backoff", connection=self.number,
                    why=why if isinstance(why, str) else repr(why), attempt=attempt,
                    retry_in_s=round(delay, 3))
        self.failures = attempt + 1
        await asyncio.sleep(delay)
        return attempt + 1

    async def _watch(self, link: _Link) -> str:
        """Serve ``link`` until it closes, goes stale, must rotate or the server says shutdown."""
        st = link.state
        assert link.reader is not None
        while True:
            now = time.monotonic()
            rotate_at = st.opened_at + self.settings.max_age_s
            stale_at = st.last_message + self.settings.stale_after_s
            notice = asyncio.create_task(st.shutdown_notice.wait())
            try:
                await asyncio.wait({link.reader, notice},
                                   timeout=max(0.0, min(rotate_at, stale_at) - now),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                notice.cancel()
            if link.reader.done():
                return "closed"
            if st.shutdown_notice.is_set():
                return "shutdown"
            now = time.monotonic()
            if now >= rotate_at:
                return "rotate"
            if now >= st.last_message + self.settings.stale_after_s:
                return "stale"

    async def _rotate(self, old: _Link, why: str) -> _Link | None:
        """Open a successor, hold its frames, close ``old``, then release: no gap."""
        try:
            async with self._lock:
                new = await self._open()
                new.start(hold=True)
                self._retire(old)
                self._link = new
                await old.close()
                self._retire(old)
                new.release()
        except (OSError, WebSocketException, TimeoutError) as exc:
            log.warning("binance_rotate_failed", connection=self.number, error=repr(exc))
            # Try again shortly; the old socket keeps serving until it is closed.
            old.state.opened_at = time.monotonic() - self.settings.max_age_s + 1.0
            old.state.shutdown_notice.clear()
            return None
        await self._handler.on_rotated(self, why)
        return new

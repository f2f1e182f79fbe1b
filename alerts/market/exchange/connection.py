"""One stream connection of the exchange: control messages in, stream frames out, Binance's limits.

``LimitedConnection`` (a websockets ``ServerConnection``) counts every
incoming text, binary, ping and pong frame; more than the limit within any
second disconnects (close 1008). ``StreamSession`` runs the connection as
four owned tasks: the reader (control messages), the writer (a per-connection
backlog; a connection that falls more than ``max_backlog`` frames behind at
speed > 0 is cut, as Binance cuts slow readers), the pinger (a ping with the
wall-clock milliseconds as payload every ``ping_interval_s``; no matching pong within
``pong_timeout_s`` cuts the connection) and a watchdog (lifetime: close 1001
after ``max_lifetime_s``; the rate limit; stalls). Faults act through the
attributes of ``faults.FaultTarget``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from alerts.market.exchange.control import ControlResult, Subscriptions, handle_control
from alerts.market.exchange.faults import corrupt
from alerts.market.exchange.limits import MessageRate
from alerts.market.exchange.streams import Stream

_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)
_HOLD_S = 0.5   # a frame held back to be swapped waits at most this long for the next one


class LimitedConnection(ServerConnection):
    """A server connection that enforces the incoming-message rate once ``rate`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate: MessageRate | None = None
        self.initial: tuple[bool, list[Stream]] = (False, [])   # from the URL: combined, streams
        self.over_limit = asyncio.Event()
        self.frames_in = 0

    def process_event(self, event: Any) -> None:
        if self.request is not None and isinstance(event, Frame) and event.opcode in _COUNTED:
            self.frames_in += 1
            if self.over_limit.is_set():
                return
            if self.rate is not None and not self.rate.arrive(self.loop.time()):
                self.over_limit.set()
                return
        super().process_event(event)


@dataclass(frozen=True)
class SessionLimits:
    """Per-connection limits (Binance's values by default)."""

    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_lifetime_s: float = 24 * 3600.0
    max_backlog: int = 10_000
    drop_after_messages: int | None = None


class SessionHost(Protocol):
    """What a session needs from the exchange."""

    def apply(self, session: StreamSession, result: ControlResult) -> None: ...

    def backpressure_on(self) -> bool: ...


class StreamSession:
    """The life of one stream connection (see the module docstring)."""

    def __init__(self, ws: LimitedConnection, subs: Subscriptions, host: SessionHost,
                 limits: SessionLimits) -> None:
        self.ws = ws
        self.subs = subs
        self._host = host
        self._limits = limits
        self._backlog: deque[tuple[str, bool]] = deque()
        self._has_data = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self._finish: asyncio.Future[Callable[[], Any]] = asyncio.get_running_loop().create_future()
        self._stall_started = asyncio.Event()
        self._stalled_until = 0.0
        self._held: str | None = None
        self.sent = 0
        # fault switches (faults.FaultTarget)
        self.drop_after: int | None = limits.drop_after_messages
        self.bad_frames: list[str] = []
        self.swaps = 0

    # ------------------------------------------------------------------ sending

    @property
    def stalled(self) -> bool:
        return self.ws.loop.time() < self._stalled_until

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def send_stream(self, text: str) -> None:
        """Queue one stream frame (lost while stalled; a hopeless backlog cuts the connection)."""
        if self._finish.done() or self.stalled:
            return
        self._backlog.append((text, True))
        self._has_data.set()
        self.drained.clear()
        if len(self._backlog) > self._limits.max_backlog and not self._host.backpressure_on():
            self._end(self._abort)

    def send_reply(self, text: str) -> None:
        self._backlog.append((text, False))
        self._has_data.set()
        self.drained.clear()

    # ------------------------------------------------------------------ faults

    def abort(self) -> None:
        self._end(self._abort)

    def stall(self, seconds: float) -> None:
        self._stalled_until = self.ws.loop.time() + seconds
        transport = self.ws.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._stall_started.set()

    def shutdown(self, frame: str) -> None:
        """Send ``frame`` (the serverShutdown event) and close with 1001."""
        async def finish() -> None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(frame)
            await self.ws.close(1001, "server shutdown")
        self._end(finish)

    def _end(self, action: Callable[[], Any]) -> None:
        if not self._finish.done():
            self._finish.set_result(action)

    def _abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    def _closer(self, code: int, reason: str) -> Callable[[], Any]:
        return lambda: self.ws.close(code, reason)

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        """Serve the connection until it ends (closed by either side or by a fault)."""
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._reader()), tg.create_task(self._writer()),
                     tg.create_task(self._pinger()), tg.create_task(self._watchdog())]
            action = await self._finish
            for task in tasks:
                task.cancel()
        result = action()
        if asyncio.iscoroutine(result):
            await result

    async def _reader(self) -> None:
        try:
            async for message in self.ws:
                result = handle_control(message, self.subs)
                self.send_reply(result.reply)
                self._host.apply(self, result)
        except ConnectionClosed:
            pass
        self._end(lambda: None)

    async def _writer(self) -> None:
        try:
            while True:
                while not self._backlog or self.stalled:
                    if not self._backlog:
                        self._has_data.clear()
                        self.drained.set()
                        await self._wait_for_data()
                    else:
                        await asyncio.sleep(max(0.0, self._stalled_until - self.ws.loop.time()))
                text, is_stream = self._backlog.popleft()
                if not is_stream:
                    await self.ws.send(text)
                    continue
                await self._send_stream(text)
                if self.drop_after is not None and self.drop_after <= 0:
                    self._end(self._abort)
                    return
        except ConnectionClosed:
            self._end(lambda: None)

    async def _wait_for_data(self) -> None:
        """Wait for frames; a frame held back for a swap goes out alone after ``_HOLD_S``."""
        if self._held is None:
            await self._has_data.wait()
            return
        try:
            async with asyncio.timeout(_HOLD_S):
                await self._has_data.wait()
        except TimeoutError:
            held, self._held = self._held, None
            self.swaps -= 1
            await self.ws.send(held)
            self._count(1)

    async def _send_stream(self, text: str) -> None:
        if self.bad_frames:
            await self.ws.send(corrupt(self.bad_frames.pop(0), text))
        if self._held is not None:
            held, self._held = self._held, None
            await self.ws.send(text)
            await self.ws.send(held)
            self.swaps -= 1
            self._count(2)
        elif self.swaps > 0:
            self._held = text
        else:
            await self.ws.send(text)
            self._count(1)

    def _count(self, frames: int) -> None:
        self.sent += frames
        if self.drop_after is not None:
            self.drop_after -= frames

    async def _pinger(self) -> None:
        loop = self.ws.loop
        interval, timeout = self._limits.ping_interval_s, self._limits.pong_timeout_s
        pending: list[tuple[float, asyncio.Future[float]]] = []
        next_ping = loop.time() + interval
        last_payload = 0
        try:
            while True:
                now = loop.time()
                if self.stalled:
                    pending.clear()
                    next_ping = self._stalled_until + interval
                    await asyncio.sleep(self._stalled_until - now)
                    continue
                if now >= next_ping:
                    last_payload = max(last_payload + 1, int(time.time() * 1000))
                    waiter = await self.ws.ping(str(last_payload).encode())
                    pending.append((now, waiter))  # type: ignore[arg-type]
                    next_ping = now + interval
                pending = [(sent, w) for sent, w in pending if not w.done()]
                if pending and now - pending[0][0] >= timeout:
                    self._end(self._abort)
                    return
                wake = next_ping if not pending else min(next_ping, pending[0][0] + timeout)
                await asyncio.sleep(max(0.0, wake - loop.time()))
        except ConnectionClosed:
            self._end(lambda: None)

    async def _watchdog(self) -> None:
        loop = self.ws.loop
        deadline = loop.time() + self._limits.max_lifetime_s
        over_limit = asyncio.ensure_future(self.ws.over_limit.wait())
        stall: asyncio.Future[Any] | None = None
        try:
            while True:
                stall = asyncio.ensure_future(self._stall_started.wait())
                done, _ = await asyncio.wait({over_limit, stall},
                                             timeout=max(0.0, deadline - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if over_limit in done:
                    self._end(self._closer(1008, "too many messages"))
                    return
                if not done:
                    self._end(self._closer(1001, "connection lifetime exceeded"))
                    return
                self._stall_started.clear()
                while (left := self._stalled_until - loop.time()) > 0:
                    await asyncio.sleep(left)
                transport = self.ws.transport
                if transport is not None and not transport.is_closing():
                    transport.resume_reading()
        finally:
            over_limit.cancel()
            if stall is not None:
                stall.cancel()

"""Running an exchange from a terminal: the listen address, the start line, signals, stopping.

``serve_exchange`` starts the exchange, hands ``say`` one line with its
WebSocket and REST base URLs, then waits for SIGINT/SIGTERM and stops it (every
connection gets ``serverShutdown`` first). A port that cannot be bound is an
``InvalidArgumentError`` with one clear line.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from alerts.errors import InvalidArgumentError
from alerts.market.exchange.server import ReplayExchange


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); port 0 means any free port."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgumentError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9443")
    return host.strip("[]"), int(port)


def start_line(exchange: ReplayExchange) -> str:
    cfg = exchange.config
    return (f"exchange: ws {exchange.ws_url} rest {exchange.rest_url} "
            f"({cfg.venue}, {len(exchange.symbols)} symbols, speed {cfg.speed:g})")


async def serve_exchange(exchange: ReplayExchange, say: Callable[[str], None]) -> None:
    """Run ``exchange`` until SIGINT or SIGTERM."""
    try:
        await exchange.start()
    except OSError as exc:
        cfg = exchange.config
        raise InvalidArgumentError(f"cannot listen on {cfg.host}:{cfg.port}: "
                                   f"{exc.strerror or exc}") from None
    say(start_line(exchange))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        say("exchange: stopping")
        await exchange.stop()

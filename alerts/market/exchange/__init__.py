"""A Binance-compatible exchange on loopback, fed by recorded trades or a seeded random walk.

It is the product's demo source and the test exchange of the Binance source:
the WebSocket market streams and the REST market data of
``../shared/protocols/binance.md``, served on one port, on a replay clock.

Public API (stable)::

    from alerts.market.exchange import ReplayExchange, ExchangeConfig

    async with ReplayExchange.from_files(["trades.csv.gz"], speed=0, paused=True) as ex:
        ex.ws_url            # "ws://127.0.0.1:PORT": + "/ws/btcusdt@trade" or
                             #   "/stream?streams=btcusdt@trade/ethusdt@aggTrade"
        ex.rest_url          # "http://127.0.0.1:PORT": + "/api/v3/klines?..." ("/fapi/v1" for usdm)
        ex.now_ms            # the exchange's clock (replay time)
        ex.symbols           # ["BTCUSDT", "ETHUSDT"]
        await ex.wait_subscribed("btcusdt@trade")   # a client subscribed
        await ex.run_until(t)                       # publish everything up to t, then pause
        ex.resume(); ex.pause(); ex.set_speed(10)
        await ex.wait_until(t); await ex.wait_finished()
        await ex.wait_connections(n); ex.connections; ex.subscribers(stream)
        ex.progress()        # ReplayProgress(published, total, now_ms, done); .line()
        ex.faults.drop(after_messages=0)           # cut every connection (now or after N frames)
        ex.faults.stall(seconds)                   # silent: no frames, no pings, nothing read
        ex.faults.malformed_json(n); ex.faults.wrong_fields(n)   # extra bad frames
        ex.faults.reorder(pairs)                   # swap consecutive stream frames
        ex.faults.rate_limit(seconds)              # REST 429 (-1003, Retry-After); ignored: 418
        ex.faults.refuse_connections(seconds)      # new stream connections get HTTP 503
        await ex.shutdown_connections()            # serverShutdown event, close 1001

    ReplayExchange.synthetic(symbols=100, seed=7, rate=50.0)  # endless seeded random walk
    ReplayExchange(feed, config=ExchangeConfig(...), **overrides)  # any ``TradeFeed``

``ExchangeConfig`` holds the speed (1.0 real time, 0 as fast as clients read),
``paused``, the venue (``spot`` or ``usdm``), Binance's limits (ping interval
20 s, pong timeout 60 s, lifetime 24 h, 5 incoming messages/s, 1024 streams,
6000 weight/minute) and ``drop_after_messages``. Bad trade files raise
``TradeFileError`` (an ``InvalidArgumentError``). The modules: ``trades``
(files, feeds), ``synthetic``, ``intervals``, ``book`` (per-symbol history,
klines), ``streams`` (names, payloads), ``control`` (control messages),
``rest``, ``limits``, ``faults``, ``connection``, ``replay`` (clock), ``server``.
"""

from alerts.market.exchange.faults import Faults
from alerts.market.exchange.replay import ReplayProgress
from alerts.market.exchange.server import ExchangeConfig, ReplayExchange
from alerts.market.exchange.synthetic import SyntheticFeed
from alerts.market.exchange.trades import RecordedFeed, TradeChunk, TradeFeed, TradeFileError

__all__ = [
    "ExchangeConfig", "Faults", "RecordedFeed", "ReplayExchange", "ReplayProgress",
    "SyntheticFeed", "TradeChunk", "TradeFeed", "TradeFileError",
]

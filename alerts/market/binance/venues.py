"""The two Binance venues this source speaks: spot and USDⓈ-M futures.

A venue fixes the symbol prefix (``binance:BTCUSDT``), the default WebSocket
and REST hosts and the REST path prefix; everything else (message shapes,
limits) is the same for both as far as this source is concerned.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Venue:
    """One Binance market: its name in symbols and its endpoints."""

    name: str              # symbol prefix and default source name
    ws_url: str            # WebSocket base (combined streams live under /stream)
    rest_url: str          # REST base
    rest_prefix: str       # path prefix of the market-data endpoints
    weight_limit: int      # REST request weight per minute per IP
    klines_weight: int     # weight of GET klines with limit=1000
    agg_trades_weight: int  # weight of GET aggTrades


# Spot figures from the protocol notes; USDⓈ-M ones from Binance's futures docs
# (2400 per minute; klines with limit 1000 weigh 5, aggTrades 20).
SPOT = Venue("binance", "wss://stream.binance.com:9443", "https://api.binance.com", "/api/v3",
             weight_limit=6000, klines_weight=2, agg_trades_weight=4)
USDM = Venue("binance-usdm", "wss://fstream.binance.com", "https://fapi.binance.com", "/fapi/v1",
             weight_limit=2400, klines_weight=5, agg_trades_weight=20)

KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                   "1d", "3d", "1w", "1M")
"""Binance's kline intervals (case-sensitive)."""

VENUES: dict[str, Venue] = {v.name: v for v in (SPOT, USDM)}

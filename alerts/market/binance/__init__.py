"""Binance spot and USDⓈ-M futures market data: combined WebSocket streams with REST backfill.

``BinanceSource`` is the ``MarketSource``; ``BinanceRestClient`` the REST half
(klines for warm-up, aggregate trades for backfill); ``SPOT`` and ``USDM`` the
venues (``binance:``, ``binance-usdm:``).
"""

from alerts.market.binance.errors import (
    BinanceRateLimitError,
    BinanceRequestError,
    BinanceUnavailableError,
)
from alerts.market.binance.rest import BinanceRestClient
from alerts.market.binance.source import BinanceSource
from alerts.market.binance.venues import SPOT, USDM, VENUES, Venue

__all__ = [
    "SPOT",
    "USDM",
    "VENUES",
    "BinanceRateLimitError",
    "BinanceRequestError",
    "BinanceRestClient",
    "BinanceSource",
    "BinanceUnavailableError",
    "Venue",
]

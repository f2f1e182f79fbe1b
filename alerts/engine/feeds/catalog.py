"""The market sources this build can make, by the names ``market_routes`` uses.

Source packages (``alerts/market/...``) never import the engine or the
configuration, so the engine side lists them here: each entry makes one source
from the configuration (base URLs, keys). A route naming a source missing here
is a configuration error at start, said in one line.
"""

from __future__ import annotations

from collections.abc import Callable

from alerts.config import Config
from alerts.engine.feeds.routes import parse_routes
from alerts.errors import InvalidArgumentError
from alerts.market.alphavantage import AlphaVantageSource
from alerts.market.base import MarketSource
from alerts.market.binance import SPOT, USDM, BinanceSource
from alerts.market.yahoo import YahooSource

SourceFactory = Callable[[Config], MarketSource]

FACTORIES: dict[str, SourceFactory] = {
    "binance": lambda c: BinanceSource(SPOT, ws_url=c.binance_ws_url,
                                       rest_url=c.binance_rest_url, name="binance"),
    "binance-usdm": lambda c: BinanceSource(USDM, ws_url=c.binance_usdm_ws_url,
                                            rest_url=c.binance_usdm_rest_url,
                                            name="binance-usdm"),
    "yahoo": lambda c: YahooSource(base_url=c.yahoo_url, name="yahoo"),
    "alphavantage": lambda c: AlphaVantageSource(api_key=c.alphavantage_key,
                                                 base_url=c.alphavantage_url,
                                                 name="alphavantage"),
}
"""Source name -> factory."""


def build_sources(config: Config) -> dict[str, MarketSource]:
    """One source per name the routes use."""
    names = [n for route in parse_routes(config.market_routes) for n in route.sources]
    missing = [n for n in names if n not in FACTORIES]
    if missing:
        raise InvalidArgumentError(
            f"market_routes names source(s) this build cannot make: {', '.join(missing)} "
            f"(available: {', '.join(sorted(FACTORIES)) or 'none'})")
    sources: dict[str, MarketSource] = {}
    for name in names:
        try:
            sources[name] = FACTORIES[name](config)
        except ValueError as exc:   # a setting the source refuses (e.g. no API key)
            raise InvalidArgumentError(f"market source {name}: {exc}") from None
    return sources

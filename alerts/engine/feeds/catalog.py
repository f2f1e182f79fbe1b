"""The market sources this build can make, by the names ``market_routes`` uses.

Source packages (``alerts/market/...``) never import the engine or the
configuration, so the engine side lists them here: each entry makes one source
from the configuration (base URLs, keys, poll settings, request budgets). A
route naming a source missing here is a configuration error at start, said in
one line.
"""

from __future__ import annotations

from collections.abc import Callable

from alerts.config import Config
from alerts.engine.feeds.routes import parse_routes
from alerts.errors import InvalidArgumentError
from alerts.market.alphavantage import AlphaVantageSource
from alerts.market.base import MarketSource
from alerts.market.binance import SPOT, USDM, BinanceSource
from alerts.market.budget import BudgetLimits
from alerts.market.polling import PollSettings
from alerts.market.yahoo import YahooSource

SourceFactory = Callable[[Config], MarketSource]


def _limit(config: Config, key: str) -> int | None:
    """A request limit setting: a count, or None for 0 (no limit)."""
    value: int = getattr(config, key)
    if value < 0:
        raise ValueError(f"{key} must be >= 0 (0: no limit), not {value}")
    return value or None


def _yahoo(c: Config) -> YahooSource:
    return YahooSource(
        base_url=c.yahoo_url, name="yahoo",
        limits=BudgetLimits(per_minute=_limit(c, "yahoo_requests_per_minute"),
                            min_interval_s=YahooSource.default_limits.min_interval_s),
        settings=PollSettings(poll_interval_s=c.yahoo_poll_interval_s,
                              settle_s=c.yahoo_settle_s))


def _alphavantage(c: Config) -> AlphaVantageSource:
    return AlphaVantageSource(
        api_key=c.alphavantage_key, base_url=c.alphavantage_url, name="alphavantage",
        limits=BudgetLimits(per_minute=_limit(c, "alphavantage_requests_per_minute"),
                            per_day=_limit(c, "alphavantage_requests_per_day"),
                            min_interval_s=AlphaVantageSource.default_limits.min_interval_s),
        settings=PollSettings(poll_interval_s=c.alphavantage_poll_interval_s,
                              settle_s=c.alphavantage_settle_s))


FACTORIES: dict[str, SourceFactory] = {
    "binance": lambda c: BinanceSource(SPOT, ws_url=c.binance_ws_url,
                                       rest_url=c.binance_rest_url, name="binance"),
    "binance-usdm": lambda c: BinanceSource(USDM, ws_url=c.binance_usdm_ws_url,
                                            rest_url=c.binance_usdm_rest_url,
                                            name="binance-usdm"),
    "yahoo": _yahoo,
    "alphavantage": _alphavantage,
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

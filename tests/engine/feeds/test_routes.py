"""The ``market_routes`` setting and building the configured sources."""

from __future__ import annotations

import re
from typing import Any

import pytest

from alerts.config import Config
from alerts.engine.feeds import Route, build_sources, catalog, parse_routes
from alerts.engine.feeds.routes import parse_venue_times
from alerts.errors import InvalidArgumentError
from alerts.market.alphavantage import AlphaVantageSource
from alerts.market.budget import BudgetLimits
from alerts.market.polling import PollSettings
from alerts.market.yahoo import YahooSource


def test_routes_parse_in_order_of_preference() -> None:
    routes = parse_routes(" binance=binance-ws, binance-rest ; us=yahoo,alphavantage;")
    assert routes == (Route("binance", ("binance-ws", "binance-rest")),
                      Route("us", ("yahoo", "alphavantage")))
    assert routes[0].clock == "feed:binance"
    assert parse_routes("") == ()


@pytest.mark.parametrize("text, words", [
    ("binance", "venue=source"),
    ("binance=", "venue=source"),
    ("binance=a;binance=b", "venue binance appears twice"),
    ("binance=a;us=a", "source a appears twice"),
    ("Bin ance=a", "venue=source"),
    ("binance=a b", "bad name 'a b'"),
])
def test_bad_routes_are_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        parse_routes(text)


def test_the_default_routes_are_valid_and_sources_are_off_by_default() -> None:
    config = Config()
    assert not config.market_sources
    assert [r.venue for r in parse_routes(config.market_routes)] == [
        "binance", "binance-usdm", "us"]


def test_settings_come_from_the_environment() -> None:
    config = Config.load(env={"ALERTS_MARKET_SOURCES": "true",
                              "ALERTS_MARKET_ROUTES": "binance=replay",
                              "ALERTS_FEED_STALE_AFTER_MS": "5000"})
    assert config.market_sources and config.market_routes == "binance=replay"
    assert config.feed_stale_after_ms == 5000


def test_a_route_naming_a_source_this_build_lacks_is_a_configuration_error() -> None:
    with pytest.raises(InvalidArgumentError, match="cannot make: nowhere"):
        build_sources(Config(market_sources=True, market_routes="binance=nowhere"))


def test_the_binance_sources_are_made_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(market_sources=True, market_routes="binance=binance;binance-usdm=binance-usdm",
                    binance_ws_url="ws://127.0.0.1:9", binance_rest_url="http://127.0.0.1:9",
                    binance_usdm_ws_url="ws://127.0.0.1:8")
    sources = build_sources(config)
    assert sorted(sources) == ["binance", "binance-usdm"]
    assert [s.name for s in sources.values()] == ["binance", "binance-usdm"]
    assert all(s.fill_gaps for s in sources.values())

    def refuse(_: Config) -> object:
        raise ValueError("an API key is required")

    monkeypatch.setitem(catalog.FACTORIES, "keyed", refuse)
    with pytest.raises(InvalidArgumentError, match="market source keyed: an API key is required"):
        build_sources(Config(market_routes="us=keyed"))


def test_the_stock_sources_are_made_from_the_settings() -> None:
    sources = build_sources(Config(market_sources=True))      # the default routes
    assert sorted(sources) == ["binance", "binance-usdm", "yahoo"]
    assert not sources["yahoo"].fill_gaps                     # no bars for nights and weekends
    assert sources["yahoo"].grace_ms == 0                     # its watermarks are exact
    assert sources["binance"].grace_ms is None                # the service's grace_ms
    keyed = build_sources(Config(market_routes="us=yahoo,alphavantage", alphavantage_key="k",
                                 alphavantage_url="http://127.0.0.1:9"))
    assert [s.name for s in keyed.values()] == ["yahoo", "alphavantage"]
    with pytest.raises(InvalidArgumentError,
                       match="market source alphavantage: an Alpha Vantage API key is required"):
        build_sources(Config(market_routes="us=yahoo,alphavantage"))


def test_the_stock_sources_poll_and_spend_as_configured() -> None:
    routes = "us=yahoo,alphavantage"
    default = build_sources(Config(market_routes=routes, alphavantage_key="k"))
    yahoo, av = default["yahoo"], default["alphavantage"]
    assert isinstance(yahoo, YahooSource) and isinstance(av, AlphaVantageSource)
    assert yahoo.settings == av.settings == PollSettings()
    assert yahoo.budget.limits == YahooSource.default_limits
    assert av.budget.limits == AlphaVantageSource.default_limits

    config = Config.load(env={
        "ALERTS_MARKET_ROUTES": routes, "ALERTS_ALPHAVANTAGE_KEY": "k",
        "ALERTS_YAHOO_POLL_INTERVAL_S": "5", "ALERTS_YAHOO_SETTLE_S": "0",
        "ALERTS_YAHOO_REQUESTS_PER_MINUTE": "0", "ALERTS_ALPHAVANTAGE_POLL_INTERVAL_S": "2.5",
        "ALERTS_ALPHAVANTAGE_SETTLE_S": "90", "ALERTS_ALPHAVANTAGE_REQUESTS_PER_MINUTE": "75",
        "ALERTS_ALPHAVANTAGE_REQUESTS_PER_DAY": "0"})
    tuned = build_sources(config)
    yahoo, av = tuned["yahoo"], tuned["alphavantage"]
    assert isinstance(yahoo, YahooSource) and isinstance(av, AlphaVantageSource)
    assert (yahoo.settings.poll_interval_s, yahoo.settings.settle_s) == (5.0, 0.0)
    assert (av.settings.poll_interval_s, av.settings.settle_s) == (2.5, 90.0)
    assert yahoo.budget.limits == BudgetLimits(min_interval_s=0.5)          # 0: no limit
    assert av.budget.limits == BudgetLimits(per_minute=75, min_interval_s=1.0)


@pytest.mark.parametrize(("setting", "message"), [
    ({"yahoo_requests_per_minute": -1},
     "market source yahoo: yahoo_requests_per_minute must be >= 0 (0: no limit), not -1"),
    ({"alphavantage_requests_per_day": -5},
     "market source alphavantage: alphavantage_requests_per_day must be >= 0"),
    ({"yahoo_poll_interval_s": 0.0},
     "market source yahoo: poll_interval_s and timeout_s must be > 0"),
    ({"alphavantage_settle_s": -1.0}, "market source alphavantage: settle_s must be >= 0"),
])
def test_bad_poll_settings_are_refused_in_one_line(setting: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        build_sources(Config(market_routes="us=yahoo,alphavantage", alphavantage_key="k",
                             **setting))


def test_per_venue_times_parse_and_bad_ones_are_refused() -> None:
    assert parse_venue_times("us=180000; binance=5000", "k") == {"us": 180_000, "binance": 5000}
    for bad in ("us", "us=x", "us=-1", "us=1;us=2"):
        with pytest.raises(InvalidArgumentError, match="k: .* is not venue=milliseconds"):
            parse_venue_times(bad, "k")

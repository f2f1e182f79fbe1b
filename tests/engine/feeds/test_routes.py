"""The ``market_routes`` setting and building the configured sources."""

from __future__ import annotations

import pytest

from alerts.config import Config
from alerts.engine.feeds import Route, build_sources, catalog, parse_routes
from alerts.engine.feeds.routes import parse_venue_times
from alerts.errors import InvalidArgumentError


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
    keyed = build_sources(Config(market_routes="us=yahoo,alphavantage", alphavantage_key="k",
                                 alphavantage_url="http://127.0.0.1:9"))
    assert [s.name for s in keyed.values()] == ["yahoo", "alphavantage"]
    with pytest.raises(InvalidArgumentError,
                       match="market source alphavantage: an Alpha Vantage API key is required"):
        build_sources(Config(market_routes="us=yahoo,alphavantage"))


def test_per_venue_times_parse_and_bad_ones_are_refused() -> None:
    assert parse_venue_times("us=180000; binance=5000", "k") == {"us": 180_000, "binance": 5000}
    for bad in ("us", "us=x", "us=-1", "us=1;us=2"):
        with pytest.raises(InvalidArgumentError, match="k: .* is not venue=milliseconds"):
            parse_venue_times(bad, "k")

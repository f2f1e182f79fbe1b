"""Parsing of Binance frames and REST rows (shapes from the protocol notes)."""

from __future__ import annotations

import math

import orjson
import pytest

from alerts.market.binance.messages import (
    AggTrade,
    MalformedMessage,
    Reply,
    ServerShutdown,
    StreamEvent,
    agg_trade,
    control,
    kline_bar,
    parse_frame,
)

AGG = {"e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001",
       "q": "100", "f": 100, "l": 105, "T": 1672515782130, "m": True, "M": True}


def frame(stream: str, data: object) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def test_agg_trade_frame_is_normalised() -> None:
    t = parse_frame(frame("bnbbtc@aggTrade", AGG))
    assert t == AggTrade("BNBBTC", 12345, 0.001, 100.0, 1672515782130, 1672515782136)


def test_kline_frame_gives_its_event_time() -> None:
    kline = {"e": "kline", "E": 1672515782136, "s": "BNBBTC",
             "k": {"t": 1672515780000, "T": 1672515839999, "i": "1m", "x": False}}
    assert parse_frame(frame("bnbbtc@kline_1m", kline)) == StreamEvent("bnbbtc@kline_1m",
                                                                       1672515782136)


@pytest.mark.parametrize("raw", [
    b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}',
    b'{"e":"serverShutdown","E":1770123456789}',
])
def test_server_shutdown_both_shapes(raw: bytes) -> None:
    assert parse_frame(raw) == ServerShutdown(1770123456789)


def test_replies_and_wrapped_errors() -> None:
    assert parse_frame(b'{"result":null,"id":1}') == Reply(1, None, None)
    assert parse_frame(b'{"result":["btcusdt@aggTrade"],"id":"x7"}') == Reply(
        "x7", ["btcusdt@aggTrade"], None)
    assert parse_frame(b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}'
                       ) == Reply(2, None, (2, "Invalid request: invalid stream"))


@pytest.mark.parametrize("raw, why", [
    (b"{not json", "not JSON"),
    (b"[1,2]", "must be an object"),
    (b'{"hello":1}', "neither"),
    (frame("bnbbtc@aggTrade", {**AGG, "p": 0.001}), "'p' must be a decimal string"),
    (frame("bnbbtc@aggTrade", {**AGG, "p": "abc"}), "not a number"),
    (frame("bnbbtc@aggTrade", {**AGG, "p": "NaN"}), "not finite"),
    (frame("bnbbtc@aggTrade", {**AGG, "p": "0"}), "price must be > 0"),
    (frame("bnbbtc@aggTrade", {**AGG, "q": "-1"}), "quantity must be >= 0"),
    (frame("bnbbtc@aggTrade", {**AGG, "a": "12"}), "'a' must be an integer"),
    (frame("bnbbtc@aggTrade", {k: v for k, v in AGG.items() if k != "T"}), "'T'"),
    (frame("bnbbtc@aggTrade", {**AGG, "s": ""}), "'s' must be a symbol"),
    (frame("bnbbtc@kline_1m", AGG), "aggTrade payload on stream"),
    (frame("bnbbtc@aggTrade", [AGG]), "'data' must be an object"),
    (frame("bnbbtc@depth", {"u": 1}), "no event type"),
    (b'{"result":null,"id":[1]}', "reply id"),
])
def test_malformed_frames_say_why(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why.replace("(", r"\(")):
        parse_frame(raw)


def test_rest_agg_trade_row_takes_symbol_and_time_as_event() -> None:
    row = {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
           "T": 1498793709153, "m": True, "M": True}
    t = agg_trade(row, symbol="LTCBTC")
    assert (t.symbol, t.agg_id, t.event_ms, t.time_ms) == ("LTCBTC", 26129, 1498793709153,
                                                           1498793709153)
    assert math.isclose(t.price, 0.01633102) and math.isclose(t.qty, 4.70443515)


def test_kline_row() -> None:
    row = [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
           "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
           "28.46694368", "0"]
    bar, close_ms = kline_bar(row, "binance:LTCBTC", "1m")
    assert close_ms == 1499644799999
    assert (bar.symbol, bar.open_ms, bar.open, bar.high, bar.low, bar.close, bar.trades) == (
        "binance:LTCBTC", 1499040000000, 0.0163479, 0.8, 0.015758, 0.015771, 308)
    assert bar.volume == 148976.11427815 and bar.quote_volume == 2434.19055334
    with pytest.raises(MalformedMessage):
        kline_bar(row[:5], "binance:LTCBTC", "1m")
    with pytest.raises(MalformedMessage):
        kline_bar([*row[:8], "308", *row[9:]], "binance:LTCBTC", "1m")


def test_control_message_shape() -> None:
    assert orjson.loads(control("SUBSCRIBE", ["btcusdt@aggTrade"], 7)) == {
        "method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 7}
    assert orjson.loads(control("LIST_SUBSCRIPTIONS", [], 3)) == {
        "method": "LIST_SUBSCRIPTIONS", "id": 3}

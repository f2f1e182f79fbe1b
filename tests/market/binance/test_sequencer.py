"""Aggregate-id sequencing: accept, duplicate, gap, hold, and the merge with REST rows."""

from __future__ import annotations

import pytest

from alerts.market.binance.messages import AggTrade
from alerts.market.binance.sequencer import Offer, Sequencer


def t(i: int, sym: str = "BTCUSDT") -> AggTrade:
    return AggTrade(sym, i, 100.0 + i, 1.0, 1_000 + i, 1_000 + i)


def test_contiguous_ids_are_accepted_and_repeats_are_duplicates() -> None:
    s = Sequencer()
    assert [s.offer(t(i)) for i in (5, 6, 7)] == [Offer.ACCEPT] * 3
    assert s.offer(t(6)) is Offer.DUPLICATE
    assert s.offer(t(7)) is Offer.DUPLICATE
    assert s.last_id("BTCUSDT") == 7


def test_symbols_are_independent() -> None:
    s = Sequencer()
    assert s.offer(t(5)) is Offer.ACCEPT
    assert s.offer(t(900, "ETHUSDT")) is Offer.ACCEPT
    assert s.offer(t(6)) is Offer.ACCEPT


def test_gap_holds_later_trades_until_rest_fills_the_hole() -> None:
    s = Sequencer()
    s.offer(t(10))
    assert s.offer(t(14)) is Offer.GAP
    assert s.recovering("BTCUSDT")
    assert s.offer(t(15)) is Offer.HOLD
    assert s.offer(t(14)) is Offer.HOLD             # held once
    assert s.held_ids("BTCUSDT") == [14, 15]
    # REST returns 11..16 (overlapping the held ones): merged, deduplicated, in order
    out = s.absorb("BTCUSDT", [t(i) for i in range(11, 17)])
    assert [x.agg_id for x in out] == [11, 12, 13, 14, 15, 16]
    assert s.held_ids("BTCUSDT") == []
    assert s.end("BTCUSDT") == 4                     # 11, 12, 13 and 16 came from REST only
    assert s.offer(t(16)) is Offer.DUPLICATE
    assert s.offer(t(17)) is Offer.ACCEPT


def test_a_short_rest_page_drains_only_what_is_contiguous() -> None:
    s = Sequencer()
    s.offer(t(1))
    s.offer(t(5))
    s.offer(t(9))
    out = s.absorb("BTCUSDT", [t(2), t(3)])
    assert [x.agg_id for x in out] == [2, 3]
    assert s.held_ids("BTCUSDT") == [5, 9]
    out = s.absorb("BTCUSDT", [t(4), t(5), t(6), t(7), t(8)])
    assert [x.agg_id for x in out] == [4, 5, 6, 7, 8, 9]
    s.end("BTCUSDT")


def test_ending_with_trades_still_held_is_a_bug() -> None:
    s = Sequencer()
    s.offer(t(1))
    s.offer(t(5))
    with pytest.raises(RuntimeError, match="still held"):
        s.end("BTCUSDT")


def test_skip_jumps_to_the_first_held_trade() -> None:
    s = Sequencer()
    s.offer(t(1))
    s.offer(t(5))
    s.offer(t(6))
    missing, drained = s.skip("BTCUSDT")
    assert missing == 2
    assert [x.agg_id for x in drained] == [5, 6]
    s.end("BTCUSDT")
    assert s.offer(t(7)) is Offer.ACCEPT


def test_begin_needs_a_known_last_id() -> None:
    s = Sequencer()
    assert not s.begin("BTCUSDT")
    s.offer(t(3))
    assert s.begin("BTCUSDT")
    assert s.offer(t(4)) is Offer.HOLD
    assert [x.agg_id for x in s.absorb("BTCUSDT", [t(4)])] == [4]
    assert s.end("BTCUSDT") == 0                     # REST had nothing the stream missed


def test_forget_resets_a_symbol() -> None:
    s = Sequencer()
    s.offer(t(3))
    s.forget("BTCUSDT")
    assert s.offer(t(100)) is Offer.ACCEPT

"""``hysteresis`` in the core: after a fire, a rule re-arms only once its condition
is false by more than the band.

The engine keeps no new state for it: a disarmed rule with a band also runs its
*relaxed* condition (each comparison's threshold moved by the band toward keeping
the condition true; see ``alerts_core.engine.Engine._run``), and only a non-true
evaluation whose relaxed condition is not true either re-arms it. Hand-made ticks
pin each operator; property tests check the kernel against a plain Python model
and against equivalent forms of the same condition on random data.
"""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine.kernel import Kernel
from alerts.errors import InvalidArgumentError
from alerts_core import MODES, OPS, Engine
from tests.core.test_engine import random_ticks
from tests.core.test_hold_for import run, times

SEC = 1_000
MIN = 60_000


def fires(condition: str, prices: list[float], **settings: object) -> list[int]:
    """Indices of the prices (one tick per second) at which the rule fires."""
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", condition, **settings)  # type: ignore[arg-type]
    return [t // SEC for t in times(run(kernel, src, [(i * SEC, p) for i, p in
                                                       enumerate(prices)]))]


def test_on_true_re_arms_only_beyond_the_band() -> None:
    prices = [99, 101, 99, 101, 97.9, 101, 98.5, 101]
    assert fires("price > 100", prices, hysteresis=2.0) == [1, 5]
    assert fires("price > 100", prices) == [1, 3, 5, 7]            # no band
    # ``a > b`` relaxes to ``a > b - h``: exactly at 98 it is false by the band
    assert fires("price > 100", [101, 98.01, 101, 98, 101], hysteresis=2.0) == [0, 4]


def test_below_a_threshold_the_band_lies_above_it() -> None:
    prices = [101, 99, 101.5, 99, 102.5, 99]
    assert fires("price < 100", prices, hysteresis=2.0) == [1, 5]
    assert fires("price <= 100", [100, 101, 100, 102.1, 100], hysteresis=2.0) == [0, 4]


def test_equality_is_relaxed_to_a_distance() -> None:
    prices = [100, 100.4, 100, 99.6, 100, 100.6, 100]
    assert fires("price == 100", prices, hysteresis=0.5) == [0, 6]
    assert fires("price == 100", prices) == [0, 2, 4, 6]


def test_under_not_the_threshold_moves_the_other_way() -> None:
    # not (price < 100) is price >= 100: the band lies below 100, not above it
    prices = [99, 100, 98.5, 100, 97.5, 100]
    assert fires("not (price < 100)", prices, hysteresis=2.0) == [1, 5]
    assert fires("not not (price >= 100)", prices, hysteresis=2.0) == [1, 5]
    # with a wrongly moved threshold (price < 102) 98.5 would re-arm it


def test_and_or_relax_every_comparison() -> None:
    cond = "price > 100 and volume(1m) >= 0"
    assert fires(cond, [101, 99, 101, 97, 101], hysteresis=2.0) == [0, 4]
    cond = "price > 100 or price < 50"
    # 51 is in the band of ``price < 50`` (51 < 52): no re-arm; 60 is in neither band
    assert fires(cond, [101, 99, 101, 51, 101, 49, 53, 49], hysteresis=2.0) == [0, 7]
    assert fires(cond, [101, 99, 101, 60, 101, 49, 53, 49], hysteresis=2.0) == [0, 4, 7]


def test_crosses_above_needs_to_go_back_below_by_more_than_the_band() -> None:
    prices = [99, 101, 99.5, 101, 98, 101, 97.5, 101]
    # 98 is exactly 2 below: not *more* than the band, so only 97.5 re-arms it
    assert fires("price crosses_above 100", prices, hysteresis=2.0) == [1, 7]
    assert fires("price crosses_above 100", prices) == [1, 3, 5, 7]


def test_crosses_below_needs_to_go_back_above_by_more_than_the_band() -> None:
    prices = [101, 99, 100.5, 99, 102.5, 99]
    assert fires("price crosses_below 100", prices, hysteresis=2.0) == [1, 5]


def test_crosses_either_way_counts_after_being_beyond_by_more_than_the_band() -> None:
    # up through 100 (fires); to 100, down through it and up again, all within the
    # band (no re-arm, no fire); 103 is beyond it (re-arms): down through 100 fires;
    # 97 is beyond it: up through 100 fires
    prices = [99, 101, 100, 99, 99.5, 101, 103, 99, 97, 101]
    assert fires("price crosses 100", prices, hysteresis=2.0) == [1, 7, 9]
    assert fires("price crosses 100", prices) == [1, 3, 5, 7, 9]
    # as without a band, only an evaluation that is not a crossing re-arms
    assert fires("price crosses 100", [99, 101, 97, 101], hysteresis=2.0) == [1]


def test_channels_widen_for_inside_and_narrow_for_outside() -> None:
    inside = [105, 99, 95.5, 99, 94, 99]                 # channel [96, 104], band 1
    assert fires("price inside [96, 104]", inside, hysteresis=1.0) == [1, 5]
    assert fires("price enters [96, 104]", inside, hysteresis=1.0) == [1, 5]
    assert fires("price inside [96, 104]", inside) == [1, 3, 5]
    outside = [100, 105, 103.5, 105, 102.5, 105]
    assert fires("price outside [96, 104]", outside, hysteresis=1.0) == [1, 5]
    assert fires("price exits [96, 104]", outside, hysteresis=1.0) == [1, 5]
    assert fires("price outside [96, 104]", outside) == [1, 3, 5]


def test_an_undefined_relaxed_evaluation_re_arms() -> None:
    # price / (price - 2) > 3: true between 2 and 3; 3.5 gives 2.33, within a band of
    # 1; at exactly 2 undefined (division by zero); 5 gives 1.67, beyond the band
    cond = "price / (price - 2) > 3"
    assert fires(cond, [2.5, 3.5, 2.5, 3.5, 2.5], hysteresis=1.0) == [0]
    assert fires(cond, [2.5, 3.5, 2.5, 2, 2.5], hysteresis=1.0) == [0, 4]
    assert fires(cond, [2.5, 3.5, 2.5, 5, 2.5], hysteresis=1.0) == [0, 4]


def test_once_per_bar_disarms_after_a_fire_and_re_arms_beyond_the_band() -> None:
    settings = {"mode": "ONCE_PER_BAR", "timeframe": "1m", "hysteresis": 2.0}
    ticks = [(10 * SEC, 101), (70 * SEC, 101), (80 * SEC, 99), (90 * SEC, 97),
             (100 * SEC, 101), (110 * SEC, 97), (115 * SEC, 101), (130 * SEC, 101)]
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 100", **settings)  # type: ignore[arg-type]
    # bar 0 fires; bar 1 waits for 97 to re-arm, then fires once (115 s: used up,
    # though re-armed at 110 s); bar 2 fires
    assert times(run(kernel, src, ticks)) == [10 * SEC, 100 * SEC, 130 * SEC]
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 100", mode="ONCE_PER_BAR", timeframe="1m")
    assert times(run(kernel, src, ticks)) == [10 * SEC, 70 * SEC, 130 * SEC]
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 100", **settings)  # type: ignore[arg-type]
    assert times(run(kernel, src, [*ticks[:5], (110 * SEC, 99), *ticks[6:]])) == [
        10 * SEC, 100 * SEC]


def test_a_band_is_refused_where_a_rule_never_re_arms_and_when_not_finite() -> None:
    for mode in ("EVERY_TIME", "ONCE_PER_BAR_CLOSE"):
        with pytest.raises(InvalidArgumentError, match="hysteresis") as err:
            fires("close(1m) > 1", [2], mode=mode, hysteresis=0.5)
        assert err.value.violations[0].field == "rule.hysteresis"
    for band in (-0.1, float("nan"), float("inf")):
        with pytest.raises(InvalidArgumentError, match="finite and >= 0"):
            fires("price > 1", [2], hysteresis=band)
    assert fires("price > 1", [2], mode="ONCE", hysteresis=0.5) == [0]
    # the core refuses them too, with a ValueError
    engine = Engine()
    ops = [(OPS["load"], 0, 0, 0, 0.0), (OPS["const"], 0, 0, 0, 1.0), (OPS[">"], 0, 0, 0, 0.0)]
    operand = [(1, 0, -1, 0, 0, 0, 0.0, 0, 0)]
    with pytest.raises(ValueError, match="finite"):
        engine.add_rule(0, MODES["ON_TRUE"], -1, 0, None, 0, ops, operand, 0, [], False, 0, -1.0)
    with pytest.raises(ValueError, match="ON_TRUE and ONCE_PER_BAR"):
        engine.add_rule(0, MODES["EVERY_TIME"], -1, 0, None, 0, ops, operand, 0, [], False, 0,
                        1.0)
    idx = engine.add_rule(0, MODES["ON_TRUE"], -1, 0, None, 0, ops, operand, 0, [], False, 0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        engine.set_rule_limits(idx, cooldown_ms=0, expire_ms=None, max_fires=0,
                               hysteresis=float("nan"))
    assert engine.rule_state(idx)["hysteresis"] == 1.0


def _limits(kernel: Kernel, band: float | None) -> None:
    kernel.set_limits("r", cooldown_ms=0, expire_time_ms=None, max_fires=0, hysteresis=band)


def test_changing_the_band_keeps_the_trigger_state() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 100")
    assert times(run(kernel, src, [(0, 101)])) == [0]
    _limits(kernel, 2.0)                       # disarmed: now re-arms only below 98
    assert run(kernel, src, [(1 * SEC, 99), (2 * SEC, 101)]) == []
    _limits(kernel, None)                      # None: unchanged
    assert kernel.rule_state("r")["hysteresis"] == 2.0
    _limits(kernel, 0.5)                       # narrowed: 99 is now beyond it
    assert times(run(kernel, src, [(3 * SEC, 99), (4 * SEC, 101)])) == [4 * SEC]


def test_removing_the_band_of_a_once_per_bar_rule_re_arms_it() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 100", mode="ONCE_PER_BAR", timeframe="1m",
                    hysteresis=2.0)
    assert times(run(kernel, src, [(0, 101)])) == [0]
    assert kernel.rule_state("r")["armed"] is False
    _limits(kernel, 0.0)
    assert kernel.rule_state("r")["armed"] is True
    assert times(run(kernel, src, [(61 * SEC, 101)])) == [61 * SEC]


def test_a_checkpoint_keeps_a_disarmed_rule_disarmed() -> None:
    settings = {"hysteresis": 2.0}
    original = Kernel()
    src = original.add_source()
    original.add_rule("r", "t:A", "price crosses_above 100", **settings)  # type: ignore[arg-type]
    assert times(run(original, src, [(0, 99), (1 * SEC, 101)])) == [1 * SEC]
    blob = original.checkpoint()
    restored = Kernel()
    restored.prepare_restore(blob)
    restored.add_rule("r", "t:A", "price crosses_above 100", **settings)  # type: ignore[arg-type]
    assert restored.restore(blob) > 0
    rest = [(2 * SEC, 99), (3 * SEC, 101), (4 * SEC, 97), (5 * SEC, 101)]
    assert times(run(restored, 0, rest)) == [5 * SEC] == times(run(original, src, rest))


# ------------------------------------------------------------- the models --

def model(condition: str, mode: str, level: float, band: float,
          ticks: list[tuple[int, float]]) -> list[int]:
    """``price > level``, ``price crosses_above level`` or ``price crosses level``
    with a band, as the README words it, one evaluation per tick (ONCE_PER_BAR in
    1-minute bars)."""
    out: list[int] = []
    armed, prev, last_bucket = True, None, None
    for t, x in ticks:
        up = prev is not None and prev <= level < x
        down = prev is not None and prev >= level > x
        if condition == ">":
            true, relaxed = x > level, x > level - band
        elif condition == "crosses_above":
            true, relaxed = up, x >= level - band
        else:
            true, relaxed = up or down, abs(x - level) <= band
        prev = x
        if true and armed and (mode == "ON_TRUE" or t // MIN != last_bucket):
            last_bucket = t // MIN
            out.append(t)
            armed = mode != "ON_TRUE" and band == 0
        elif not true and not (band and relaxed):
            armed = True
    return out


def _run_random(condition: str, ticks: list[tuple[int, float]], **settings: object
                ) -> list[int]:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", condition, **settings)  # type: ignore[arg-type]
    got: list[int] = []
    for s in range(0, len(ticks), 333):            # batches do not matter
        got += times(run(kernel, src, ticks[s:s + 333]))
    return got


def _walk(seed: int) -> tuple[list[tuple[int, float]], float]:
    data = random_ticks(4_000, ["t:A"], seed=seed)
    ticks = list(zip(data["time_ms"].tolist(), data["price"].tolist(), strict=True))
    return ticks, float(np.median(data["price"]))


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize("mode", ["ON_TRUE", "ONCE_PER_BAR"])
@pytest.mark.parametrize("condition", [">", "crosses_above", "crosses"])
@pytest.mark.parametrize("band", [0.0, 0.5, 2.0])
def test_the_kernel_matches_the_model_on_random_ticks(seed: int, mode: str, condition: str,
                                                       band: float) -> None:
    ticks, level = _walk(seed)
    text = f"price {condition} {level!r}"
    settings = {"mode": mode, "hysteresis": band}
    if mode == "ONCE_PER_BAR":
        settings["timeframe"] = "1m"
    got = _run_random(text, ticks, **settings)
    expected = model(condition, mode, level, band, ticks)
    assert len(expected) >= 2, "the data should fire a few times"
    if band == 2.0:
        assert expected != model(condition, mode, level, 0.0, ticks), "the band should matter"
    assert got == expected


EQUIVALENT = [
    ("price > {m}", "not (price <= {m})"),
    ("price < {m}", "not (price >= {m})"),
    ("price inside [{lo}, {hi}]", "price >= {lo} and price <= {hi}"),
    ("price outside [{lo}, {hi}]", "price < {lo} or price > {hi}"),
    ("not (price inside [{lo}, {hi}])", "price outside [{lo}, {hi}]"),
    ("not (price outside [{lo}, {hi}])", "price inside [{lo}, {hi}]"),
    ("not (price > {lo} and price < {hi})", "price <= {lo} or price >= {hi}"),
]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_equivalent_conditions_fire_alike_with_a_band(left: str, right: str) -> None:
    ticks, median = _walk(5)
    values = {"m": repr(median), "lo": repr(median - 2.0), "hi": repr(median + 2.0)}
    a = _run_random(left.format(**values), ticks, hysteresis=0.5)
    b = _run_random(right.format(**values), ticks, hysteresis=0.5)
    assert len(a) >= 2, "the data should fire a few times"
    assert a != _run_random(left.format(**values), ticks), "the band should matter"
    assert a == b

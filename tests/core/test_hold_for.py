"""``hold_for`` in the core: a rule fires only once its condition has held.

Per rule the engine keeps ``hold_start``, the event time of the first true
evaluation of the current run of true ones (a false or undefined evaluation
clears it); a true evaluation at E is held when ``E - hold_start >= hold``, and
only held evaluations count as true for the trigger mode. Ticks are given at
chosen event times; one property test checks the kernel against a plain Python
model of the rule on random data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from alerts.engine.kernel import Fired, Kernel
from alerts.errors import InvalidArgumentError
from alerts_core import MODES, OPS, Engine
from tests.core.test_engine import random_ticks

SEC = 1_000
MIN = 60_000


def run(kernel: Kernel, src: int, ticks: list[tuple[int, float]],
        symbol: str = "t:A") -> list[Fired]:
    """One tick per (event time, price) of ``symbol``, in one batch."""
    n = len(ticks)
    ids = kernel.intern([symbol] * n)
    return kernel.process(src, ids, [t for t, _ in ticks], [p for _, p in ticks],
                          [1.0] * n, [0] * n)


def times(fired: list[Fired], rule_id: str | None = None) -> list[int]:
    return [f.time_ms for f in fired if rule_id is None or f.rule_id == rule_id]


def one_rule(condition: str = "price > 1", **settings: object) -> tuple[Kernel, int]:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", condition, **settings)  # type: ignore[arg-type]
    return kernel, src


T, F = 2.0, 0.5     # prices making ``price > 1`` true, false


def test_without_a_hold_the_first_true_evaluation_fires() -> None:
    for settings in ({}, {"hold_ms": 0}):
        kernel, src = one_rule(mode="ON_TRUE", **settings)
        assert times(run(kernel, src, [(0, F), (1 * SEC, T), (2 * SEC, T)])) == [1 * SEC]


def test_on_true_fires_once_the_condition_has_held_and_stays_armed_meanwhile() -> None:
    kernel, src = one_rule(mode="ON_TRUE", hold_ms=3 * SEC)
    assert run(kernel, src, [(0, T), (1 * SEC, T), (2 * SEC, T)]) == []
    state = kernel.rule_state("r")
    assert state["armed"] is True and state["hold_start_ms"] == 0 and state["hold_ms"] == 3 * SEC
    # held exactly 3 s: fires and disarms; the run goes on, nothing more
    assert times(run(kernel, src, [(3 * SEC, T), (9 * SEC, T)])) == [3 * SEC]
    assert kernel.rule_state("r")["armed"] is False
    # a false tick re-arms and restarts the hold; 3 s of true after it fire again
    fired = run(kernel, src, [(10 * SEC, F), (11 * SEC, T), (13 * SEC, T), (14 * SEC, T)])
    assert times(fired) == [14 * SEC]


def test_a_false_tick_restarts_the_hold() -> None:
    kernel, src = one_rule(mode="ON_TRUE", hold_ms=3 * SEC)
    fired = run(kernel, src, [(0, T), (2 * SEC, T), (2_500, F), (3 * SEC, T), (5 * SEC, T),
                              (5_999, T), (6 * SEC, T)])
    assert times(fired) == [6 * SEC]          # 3 s after the first true tick after the false one


def test_an_undefined_evaluation_restarts_the_hold() -> None:
    # 1 / (price - 2) > 0: true above 2, false below, undefined at 2 (division by zero)
    condition = "1 / (price - 2) > 0"
    ticks = [(0, 3.0), (1_500, 2.0), (2 * SEC, 3.0), (3 * SEC, 3.0), (4 * SEC, 3.0),
             (5 * SEC, 3.0)]
    kernel, src = one_rule(condition, mode="ON_TRUE", hold_ms=3 * SEC)
    assert run(kernel, src, ticks[:2]) == []
    assert kernel.rule_state("r")["hold_start_ms"] is None
    assert times(run(kernel, src, ticks[2:])) == [5 * SEC]
    # the same ticks with a true one in place of the undefined one fire at 3 s
    kernel, src = one_rule(condition, mode="ON_TRUE", hold_ms=3 * SEC)
    assert times(run(kernel, src, [ticks[0], (1_500, 3.0), *ticks[2:]])) == [3 * SEC]


def test_every_time_fires_each_held_evaluation_within_the_cooldown() -> None:
    kernel, src = one_rule(mode="EVERY_TIME", hold_ms=2 * SEC, cooldown_ms=1_500)
    fired = run(kernel, src, [(0, T), (1 * SEC, T), (2 * SEC, T), (3 * SEC, T), (4 * SEC, T),
                              (5 * SEC, F), (6 * SEC, T), (7 * SEC, T), (8 * SEC, T)])
    # 3 s is held but 1 s after the 2 s fire (cooldown 1.5 s); 6 s restarts the hold
    assert times(fired) == [2 * SEC, 4 * SEC, 8 * SEC]


def test_on_true_a_held_evaluation_dropped_by_the_cooldown_still_disarms() -> None:
    kernel, src = one_rule(mode="ON_TRUE", hold_ms=1 * SEC, cooldown_ms=10 * SEC)
    fired = run(kernel, src, [(0, T), (1 * SEC, T), (2 * SEC, F), (3 * SEC, T), (4 * SEC, T),
                              (5 * SEC, T), (10 * SEC, F), (11 * SEC, T), (12 * SEC, T)])
    # 4 s is held and armed but within the cooldown of the 1 s fire: dropped, disarmed,
    # so 5 s does not fire; 12 s is held, re-armed by 10 s, past the cooldown
    assert times(fired) == [1 * SEC, 12 * SEC]


def test_once_per_bar_fires_the_first_held_evaluation_of_each_bar() -> None:
    kernel, src = one_rule(mode="ONCE_PER_BAR", timeframe="1m", hold_ms=30 * SEC,
                           cooldown_ms=0)
    fired = run(kernel, src, [
        (10 * SEC, T), (20 * SEC, T), (40 * SEC, T), (50 * SEC, T),   # bar 0: held at 40 s
        (70 * SEC, T),                                                # bar 1: held at once
        (80 * SEC, F), (90 * SEC, T), (110 * SEC, T),                 # restart: not held in bar 1
        (125 * SEC, T),                                               # bar 2: held (35 s)
    ])
    assert times(fired) == [40 * SEC, 70 * SEC, 125 * SEC]
    assert [f.kind for f in fired] == ["tick"] * 3


def test_once_per_bar_a_bar_with_true_but_unheld_evaluations_is_not_used_up() -> None:
    kernel, src = one_rule(mode="ONCE_PER_BAR", timeframe="1m", hold_ms=50 * SEC,
                           cooldown_ms=0)
    fired = run(kernel, src, [(30 * SEC, T), (50 * SEC, T), (80 * SEC, T), (90 * SEC, T)])
    assert times(fired) == [80 * SEC]


def test_once_per_bar_close_counts_the_hold_over_closes() -> None:
    kernel, src = one_rule("close(1m) > 1", mode="ONCE_PER_BAR_CLOSE", hold_ms=2 * MIN)
    closes = [T, T, T, T, F, T, T, T]       # bar k is [k, k + 1) minutes
    ticks = [(k * MIN + 30 * SEC, p) for k, p in enumerate(closes)]
    ticks.append((len(closes) * MIN + 30 * SEC, F))    # closes the last bar (grace 1 s)
    fired = run(kernel, src, ticks)
    # true closes end at 1, 2, 3, 4 min: held (2 min) at 3 and 4; false at 5 min;
    # true again at 6, 7, 8: held at 8
    assert [(f.time_ms, f.kind, f.bar_open_ms) for f in fired] == [
        (3 * MIN, "bar_close", 2 * MIN), (4 * MIN, "bar_close", 3 * MIN),
        (8 * MIN, "bar_close", 7 * MIN)]


def test_once_is_on_true_with_max_fires_one() -> None:
    kernel, src = one_rule(mode="ONCE", hold_ms=2 * SEC)
    fired = run(kernel, src, [(0, T), (1 * SEC, T), (2 * SEC, T), (3 * SEC, F), (4 * SEC, T),
                              (6 * SEC, T)])
    assert times(fired) == [2 * SEC]
    assert kernel.rule_state("r")["completed"] is True


def test_paused_evaluations_leave_the_hold_and_resuming_restarts_it() -> None:
    kernel, src = one_rule(mode="ON_TRUE", hold_ms=3 * SEC)
    run(kernel, src, [(0, T)])
    kernel.set_paused("r", True)
    run(kernel, src, [(1 * SEC, F)])        # not watched: the hold is left as it is
    assert kernel.rule_state("r")["hold_start_ms"] == 0
    kernel.set_paused("r", True)            # pausing again changes nothing
    assert kernel.rule_state("r")["hold_start_ms"] == 0
    kernel.set_paused("r", False)           # resuming: the skipped ticks cannot count
    assert kernel.rule_state("r")["hold_start_ms"] is None
    assert times(run(kernel, src, [(4 * SEC, T), (6 * SEC, T), (7 * SEC, T)])) == [7 * SEC]


def test_changing_the_hold_keeps_the_hold_in_progress() -> None:
    kernel, src = one_rule(mode="ON_TRUE", hold_ms=10 * SEC)
    run(kernel, src, [(0, T), (3 * SEC, T)])
    # shortened below the time already held: the next true tick fires
    kernel.set_limits("r", cooldown_ms=0, expire_time_ms=None, max_fires=0, hold_ms=4 * SEC)
    assert kernel.rule_state("r")["hold_start_ms"] == 0
    assert times(run(kernel, src, [(4 * SEC, T)])) == [4 * SEC]
    # lengthened mid-hold: measured from the same start
    run(kernel, src, [(5 * SEC, F), (6 * SEC, T)])
    kernel.set_limits("r", cooldown_ms=0, expire_time_ms=None, max_fires=0, hold_ms=5 * SEC)
    assert run(kernel, src, [(10 * SEC, T)]) == []
    # hold_ms None: unchanged
    kernel.set_limits("r", cooldown_ms=0, expire_time_ms=None, max_fires=0)
    assert kernel.rule_state("r")["hold_ms"] == 5 * SEC
    assert times(run(kernel, src, [(11 * SEC, T)])) == [11 * SEC]


def test_a_stored_trigger_state_has_no_hold_in_progress() -> None:
    kernel, src = one_rule(mode="ON_TRUE", hold_ms=3 * SEC)
    run(kernel, src, [(0, T)])
    kernel.restore_state("r", fires=0, last_fire_ms=None, armed=True, completed=False,
                         expired=False)
    assert kernel.rule_state("r")["hold_start_ms"] is None
    assert times(run(kernel, src, [(3 * SEC, T), (6 * SEC, T)])) == [6 * SEC]


def _restored(blob: bytes, **settings: object) -> tuple[Kernel, int]:
    kernel = Kernel()
    kernel.prepare_restore(blob)
    kernel.add_rule("r", "t:A", "price > 1", **settings)  # type: ignore[arg-type]
    assert kernel.restore(blob) > 0
    return kernel, 0


def test_a_checkpoint_mid_hold_resumes_it() -> None:
    settings = {"mode": "ON_TRUE", "hold_ms": 5 * SEC}
    original, src = one_rule(**settings)
    assert run(original, src, [(0, T), (2 * SEC, T)]) == []
    blob = original.checkpoint()
    restored, src2 = _restored(blob, **settings)
    assert restored.rule_state("r")["hold_start_ms"] == 0
    rest = [(4 * SEC, T), (5 * SEC, T), (6 * SEC, T)]
    assert times(run(restored, src2, rest)) == [5 * SEC] == times(run(original, src, rest))
    # and without the checkpoint the hold would start over at 4 s
    fresh, src3 = one_rule(**settings)
    assert times(run(fresh, src3, [*rest, (9 * SEC, T)])) == [9 * SEC]


def _split_records(state: bytes) -> tuple[bytes, list[tuple[bytes, bytes, bytes]]]:
    """An engine checkpoint as its magic and (tag, key, payload) records."""
    out, pos = [], 4
    while pos < len(state):
        tag = state[pos:pos + 1]
        kl = int.from_bytes(state[pos + 1:pos + 5], "little")
        key = state[pos + 5:pos + 5 + kl]
        pl = int.from_bytes(state[pos + 5 + kl:pos + 9 + kl], "little")
        out.append((tag, key, state[pos + 9 + kl:pos + 9 + kl + pl]))
        pos += 9 + kl + pl
    return state[:4], out


def _as_ack2(blob: bytes) -> bytes:
    """The checkpoint the engine wrote before hold_for ran: ACK2, rule records without
    hold_start (8 bytes after the 52 of armed .. last_closed_eval)."""
    n = int.from_bytes(blob[4:8], "little")
    head, state = blob[:8 + n], blob[8 + n:]
    magic, records = _split_records(state)
    assert magic == b"ACK3"
    body = bytearray(b"ACK2")
    for tag, key, payload in records:
        if tag == b"R":
            payload = payload[:52] + payload[60:]
        body += tag + len(key).to_bytes(4, "little") + key
        body += len(payload).to_bytes(4, "little") + payload
    return head + bytes(body)


def test_a_checkpoint_of_the_previous_format_is_read_with_no_hold_in_progress() -> None:
    settings = {"mode": "ON_TRUE", "hold_ms": 5 * SEC, "max_fires": 3}
    original, src = one_rule(**settings)
    run(original, src, [(0, T), (1 * SEC, F), (2 * SEC, T), (7 * SEC, T), (8 * SEC, F),
                        (9 * SEC, T)])
    state = original.rule_state("r")
    assert state["fires"] == 1 and state["hold_start_ms"] == 9 * SEC
    old = _as_ack2(original.checkpoint())
    header = json.loads(old[8:8 + int.from_bytes(old[4:8], "little")])
    assert header["symbols"] == ["t:A"]
    restored, src2 = _restored(old, **settings)
    got = restored.rule_state("r")
    assert got["hold_start_ms"] is None                  # not in an ACK2 checkpoint
    assert (got["fires"], got["armed"], got["last_fire_ms"]) == (1, True, 7 * SEC)
    # the hold starts over at the first true tick after the restore
    assert times(run(restored, src2, [(14 * SEC, T), (19 * SEC, T)])) == [19 * SEC]
    assert times(run(original, src, [(14 * SEC, T)])) == [14 * SEC]
    with pytest.raises(ValueError, match="not an alerts_core checkpoint"):
        Kernel().engine.restore(b"ACK1" + old[12:], {})


def test_negative_holds_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="hold_for"):
        one_rule(mode="ON_TRUE", hold_ms=-1)
    engine = Engine()
    ops = [(OPS["load"], 0, 0, 0, 0.0), (OPS["const"], 0, 0, 0, 1.0), (OPS[">"], 0, 0, 0, 0.0)]
    operand = [(1, 0, -1, 0, 0, 0, 0.0, 0, 0)]
    with pytest.raises(ValueError, match="negative"):
        engine.add_rule(0, MODES["ON_TRUE"], -1, 0, None, 0, ops, operand, 0, [], False, -5)
    idx = engine.add_rule(0, MODES["ON_TRUE"], -1, 0, None, 0, ops, operand, 0, [], False, 5)
    with pytest.raises(ValueError, match="negative"):
        engine.set_rule_limits(idx, cooldown_ms=0, expire_ms=None, max_fires=0, hold_ms=-1)
    assert engine.rule_state(idx)["hold_ms"] == 5


# ------------------------------------------------------------- the model --

def model(mode: str, hold: int, cooldown: int, level: float, tf_ms: int,
          ticks: list[tuple[int, float]]) -> list[int]:
    """``price > level`` with a hold, as the README words it, one evaluation per tick."""
    out: list[int] = []
    armed, start, last_fire, last_bucket = True, None, None, None
    for t, price in ticks:
        true = price > level
        if not true:
            start = None
        elif start is None:
            start = t
        held = true and start is not None and t - start >= hold
        fire = False
        if mode == "ON_TRUE":
            if held:
                fire, armed = armed, False
            elif not true:
                armed = True
        elif mode == "ONCE_PER_BAR":
            if held and t // tf_ms != last_bucket:
                last_bucket, fire = t // tf_ms, True
        else:
            fire = held
        if fire and (last_fire is None or t - last_fire >= cooldown or cooldown == 0):
            out.append(t)
            last_fire = t
    return out


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize("mode", ["ON_TRUE", "EVERY_TIME", "ONCE_PER_BAR"])
@pytest.mark.parametrize("hold", [0, 700, 4_000, 30_000])
def test_the_kernel_matches_the_model_on_random_ticks(seed: int, mode: str, hold: int) -> None:
    data = random_ticks(4_000, ["t:A"], seed=seed)
    level = float(np.median(data["price"]))
    cooldown = 1_500 if mode == "EVERY_TIME" else 0
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", f"price > {level!r}", mode=mode, hold_ms=hold,
                    cooldown_ms=cooldown, timeframe="1m" if mode == "ONCE_PER_BAR" else None)
    ticks = list(zip(data["time_ms"].tolist(), data["price"].tolist(), strict=True))
    got: list[int] = []
    for s in range(0, len(ticks), 333):            # batches do not matter
        got += times(run(kernel, src, ticks[s:s + 333]))
    expected = model(mode, hold, cooldown, level, MIN, ticks)
    assert len(expected) >= 2, "the data should fire a few times"
    if hold:
        assert expected != model(mode, 0, cooldown, level, MIN, ticks), "the hold should matter"
    assert got == expected

"""Typing stub of the Cython module alerts_core.engine (see engine.pyx for the semantics)."""

from typing import Any

import numpy as np
import numpy.typing as npt

KINDS: dict[str, int]
EVENTS: dict[str, int]
MODES: dict[str, int]
OPS: dict[str, int]
N_OUTPUTS: dict[int, int]

class Engine:
    enable_1s: bool
    def __init__(self, *, enable_1s: bool = ..., event_capacity: int = ...) -> None: ...
    def add_source(self, *, fill_gaps: bool = ..., grace_ms: int = ...) -> int: ...
    def source_clock(self, source: int) -> int | None: ...
    def process(
        self,
        source: int,
        symbol: npt.NDArray[np.int32],
        time_ms: npt.NDArray[np.int64],
        price: npt.NDArray[np.float64],
        qty: npt.NDArray[np.float64],
        trade_id: npt.NDArray[np.int64],
    ) -> tuple[int, int, int, int]: ...
    def process_bars(
        self,
        source: int,
        timeframe: int,
        symbol: npt.NDArray[np.int32],
        open_time_ms: npt.NDArray[np.int64],
        open: npt.NDArray[np.float64],
        high: npt.NDArray[np.float64],
        low: npt.NDArray[np.float64],
        close: npt.NDArray[np.float64],
        volume: npt.NDArray[np.float64],
        quote_volume: npt.NDArray[np.float64],
        trades: npt.NDArray[np.int64],
    ) -> tuple[int, int, int]: ...
    def advance_clock(self, source: int, clock_ms: int) -> None: ...
    def pending_timeframes(self, sid: int) -> list[int]: ...
    def tape_from(self, sid: int) -> int | None: ...
    def seed(self, sid: int, segments: list[tuple[Any, ...]]) -> int: ...
    @property
    def n_events(self) -> int: ...
    def clear_events(self) -> None: ...
    def events(self) -> dict[str, npt.NDArray[Any]]: ...
    def add_rule(
        self,
        symbol: int,
        mode: int,
        timeframe: int,
        cooldown_ms: int,
        expire_ms: int | None,
        max_fires: int,
        ops: list[tuple[int, int, int, int, float]],
        operands: list[tuple[int, int, int, int, int, int, float, int, int]],
        n_slots: int,
        moves: list[int],
        paused: bool = ...,
        hold_ms: int = ...,
        hysteresis: float = ...,
    ) -> int: ...
    def remove_rule(self, idx: int) -> None: ...
    def set_rule_limits(
        self, idx: int, *, cooldown_ms: int, expire_ms: int | None, max_fires: int,
        hold_ms: int | None = ..., hysteresis: float | None = ...
    ) -> None: ...
    def set_rule_trigger_state(
        self, idx: int, *, fires: int, last_fire_ms: int | None, armed: bool, completed: bool,
        expired: bool
    ) -> None: ...
    def set_rule_paused(self, idx: int, paused: bool) -> None: ...
    def rule_state(self, idx: int) -> dict[str, Any]: ...
    def snapshot(self, sid: int, closed_bars: int = ...) -> dict[str, Any] | None: ...
    def checkpoint(self, rule_keys: dict[int, str]) -> bytes: ...
    def restore(self, blob: bytes, rule_index: dict[str, int]) -> int: ...
    def stats(self) -> dict[str, int]: ...

"""The hot path: bars, incremental indicators and compiled rule programs in Cython.

``Engine`` is the batch kernel (see ``alerts_core.engine``). This package
imports nothing from ``alerts``; ``alerts.engine.kernel`` owns an Engine and
speaks names (symbols, rule ids, condition text) to the rest of the service.
"""

from alerts_core.engine import EVENTS, KINDS, MODES, N_OUTPUTS, OPS, Engine

#: Timeframe ids used by the core, finest first.
TIMEFRAMES = ("1s", "1m", "5m", "15m", "1h", "4h", "1d")

__all__ = ["EVENTS", "KINDS", "MODES", "N_OUTPUTS", "OPS", "TIMEFRAMES", "Engine"]

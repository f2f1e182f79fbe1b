"""Text and structured conditions compile to identical programs, and load into the core alike."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from alerts.api.conditions import condition_from_proto, condition_to_proto
from alerts.engine.kernel import Kernel
from alerts.errors import AlertsError
from alerts.rules import ast
from alerts.rules.compiler import compile_rule
from alerts.rules.format import format_condition
from alerts.rules.parser import parse_condition
from tests.rules.strategies import condition_nodes


def _compile(tree: ast.Condition, mode: str) -> object:
    try:
        return compile_rule(tree, symbol="binance:BTCUSDT", mode=mode, timeframe="1h")
    except AlertsError as exc:
        # a structured condition has no text positions: compare the reason only
        return ("refused", type(exc).__name__, getattr(exc, "reason_text", str(exc)))


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition_nodes(max_depth=3))
def test_text_and_structured_forms_compile_identically(tree: ast.Condition) -> None:
    from_text = parse_condition(format_condition(tree))
    from_proto = condition_from_proto(condition_to_proto(tree))
    for mode in ("ON_TRUE", "ONCE_PER_BAR_CLOSE"):
        compiled_text = _compile(from_text, mode)
        assert compiled_text == _compile(from_proto, mode)
    if not isinstance(compiled_text, tuple):
        # every compiled program is accepted by the core's own program check
        kernel = Kernel()
        kernel.load("r", compiled_text)  # type: ignore[arg-type]
        assert kernel.stats()["rules"] == 1

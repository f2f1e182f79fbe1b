"""Every worked case of ../shared/conformance through the core, whole and tick by tick."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.conformance import case_params, run_case


@pytest.mark.parametrize("case", case_params())
def test_conformance_case(case: dict[str, Any]) -> None:
    assert run_case(case) == sorted(case["expected"]), case["why"]


@pytest.mark.parametrize("case", case_params())
def test_conformance_case_one_tick_per_batch(case: dict[str, Any]) -> None:
    assert run_case(case, batch_size=1) == sorted(case["expected"]), case["why"]

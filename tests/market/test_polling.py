"""The shared poll loop's settings (its behaviour is tested through both providers)."""

from __future__ import annotations

import pytest

from alerts.market.polling import PollSettings, floor_minute


def test_bad_poll_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="poll_interval_s"):
        PollSettings(poll_interval_s=0)
    with pytest.raises(ValueError, match="settle_s"):
        PollSettings(settle_s=-1)
    with pytest.raises(ValueError, match="stale_after_s"):
        PollSettings(stale_after_s=0)


def test_floor_minute() -> None:
    assert floor_minute(1_381_239_059_999) == 1_381_239_000_000
    assert floor_minute(1_381_239_000_000) == 1_381_239_000_000

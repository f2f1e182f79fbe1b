"""One typed configuration for ``alerts serve``: defaults < TOML file < environment < flags.

Environment variables are ``ALERTS_<FIELD>`` in upper case (``ALERTS_STORE_URL``,
``ALERTS_GRPC_LISTEN`` ...). Addresses are ``host:port``; port 0 picks a free one.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from alerts.errors import InvalidArgumentError


@dataclass(frozen=True)
class Config:
    grpc_listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9108"     # empty: no metrics endpoint
    store_url: str = "sqlite:///alerts.db"
    default_venue: str = "binance"
    default_owner: str = "local"
    grace_ms: int = 1000
    checkpoint_interval_ms: int = 60_000    # of source time; and before every rule change
    enable_1s: bool = False
    subscriber_queue: int = 10_000
    shutdown_grace_s: float = 5.0
    log_level: str = "info"
    ws_listen: str = "127.0.0.1:8765"           # WebSocket alerts; empty: none
    ws_jwt_secret: str = ""                     # HS256 key of client tokens (>= 32 bytes)
    ws_queue: int = 10_000                      # live alerts a client may fall behind
    ws_write_limit: int = 1 << 20               # bytes held for a client (past the OS buffers)
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    ws_close_timeout_s: float = 5.0
    ws_replay_limit: int = 1000                 # a websocket channel's replay when its own is 0
    webhook_allow: str = ""                 # comma-separated networks, addresses, host names
    webhook_secret_overlap_s: float = 86_400.0  # a rotated-out signing secret stays valid
    delivery_retry_period_s: float = 3 * 24 * 3600.0   # then a failing delivery is dead
    delivery_first_retry_s: float = 2.0     # backoff ceiling after the first failure
    delivery_max_retry_s: float = 4 * 3600.0  # largest backoff ceiling
    delivery_max_attempts: int = 0          # 0: only the retry period ends retries
    delivery_max_in_flight: int = 4         # attempts under way per channel
    delivery_attempt_timeout_s: float = 60.0  # the outbox's bound on one attempt
    webhook_rate_per_s: float = 20.0        # requests per second per webhook endpoint
    webhook_max_concurrency: int = 4        # requests in flight per webhook endpoint
    # the channel senders' settings, named as DeliverySettings names them
    default_timeout_s: float = 10.0         # one delivery attempt, when a channel sets none
    webhook_ca_file: str = ""               # extra CAs for https endpoints; empty: the system's
    discord_api_base: str = "https://discord.com/api"
    telegram_api_base: str = "https://api.telegram.org"
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""                   # E.164 sender number, or ...
    twilio_messaging_service_sid: str = ""  # ... a messaging service
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str = ""                 # empty: no AUTH
    smtp_password: str = ""
    smtp_from: str = "alerts@localhost"
    smtp_starttls: bool = True
    smtp_implicit_tls: bool = False         # TLS from the first byte (port 465)
    smtp_ca_file: str = ""
    smtp_verify_tls: bool = True

    def webhook_allow_list(self) -> tuple[str, ...]:
        """``webhook_allow`` as its entries."""
        return tuple(e.strip() for e in self.webhook_allow.split(",") if e.strip())
    # market sources (the DataManager); off by default: `alerts serve` needs no network
    market_sources: bool = False
    market_routes: str = "binance=binance;binance-usdm=binance-usdm;us=yahoo"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    binance_usdm_ws_url: str = "wss://fstream.binance.com"
    binance_usdm_rest_url: str = "https://fapi.binance.com"
    alphavantage_url: str = "https://www.alphavantage.co"
    alphavantage_key: str = ""
    yahoo_url: str = "https://query1.finance.yahoo.com"
    # the polled stock sources: how often, how late a bar is final, the request budget (0: no limit)
    yahoo_poll_interval_s: float = 60.0
    yahoo_settle_s: float = 60.0
    yahoo_requests_per_minute: int = 30
    alphavantage_poll_interval_s: float = 60.0
    alphavantage_settle_s: float = 60.0
    alphavantage_requests_per_minute: int = 0
    alphavantage_requests_per_day: int = 25    # the free key's limit
    feed_stale_after_ms: int = 30_000      # the active source failed: down or silent this long
    feed_stale_after_by_venue: str = "us=180000"  # per venue: stock sources poll minute bars
    feed_recover_after_ms: int = 10_000    # a better source healthy this long: switch back
    feed_check_interval_ms: int = 1_000
    feed_standby_ticks: int = 100_000      # ticks a recovering source may hold for a switch back
    warmup_bars: int = 500                 # history bars per timeframe a new symbol warms up on
    warmup_wait_ms: int = 5_000            # wait this long for a first tick to date the history

    @classmethod
    def load(cls, path: str | None = None, env: Mapping[str, str] | None = None,
             **overrides: Any) -> Config:
        cfg = cls()
        if path:
            try:
                data = tomllib.loads(Path(path).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise InvalidArgumentError(f"config file {path}: {exc}") from exc
            cfg = cfg._with(data, f"config file {path}")
        environ: Mapping[str, str] = os.environ if env is None else env
        from_env = {f.name: environ[f"ALERTS_{f.name.upper()}"] for f in fields(cls)
                    if f"ALERTS_{f.name.upper()}" in environ}
        cfg = cfg._with(from_env, "environment")
        return cfg._with({k: v for k, v in overrides.items() if v is not None}, "flags")

    def _with(self, data: dict[str, Any], where: str) -> Config:
        known = {f.name: f for f in fields(self)}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            key = key.replace("-", "_")
            if key not in known:
                raise InvalidArgumentError(f"{where}: unknown setting {key!r}")
            default = getattr(Config, key)
            try:
                if isinstance(default, bool):
                    value: Any = raw if isinstance(raw, bool) else str(raw).lower() in (
                        "1", "true", "yes", "on")
                else:
                    value = type(default)(raw)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"{where}: {key} = {raw!r} is not a "
                                           f"{type(default).__name__}") from None
            values[key] = value
        return replace(self, **values)

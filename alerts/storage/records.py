"""The plain records a ``Store`` takes and gives back.

Frozen dataclasses of built-in types only: no protobuf, no grpc, so every domain
package can use them. All times are integer epoch milliseconds, UTC. Fields are
keyword-only; the ones a caller usually leaves alone have defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RULE_MODES = ("ON_TRUE", "ONCE", "EVERY_TIME", "ONCE_PER_BAR", "ONCE_PER_BAR_CLOSE")
"""Accepted values of ``RuleRecord.mode``."""

ALERT_KINDS = ("RULE", "DATA_QUALITY", "SYSTEM")
"""Accepted values of ``NewAlert.kind``."""

DELIVERY_STATES = ("PENDING", "DELIVERED", "DEAD")
"""Values of ``DeliveryRecord.state``: waiting for an attempt, done, or a dead letter."""

CHANNEL_KINDS = ("webhook", "websocket", "email", "sms", "discord", "telegram")
"""Accepted values of ``ChannelRecord.kind`` (the settings class decides it)."""


@dataclass(frozen=True, kw_only=True)
class RuleRecord:
    """A stored rule. The store sets the last four fields on create and on update."""

    rule_id: str
    owner: str
    display_name: str = ""
    symbol: str
    condition_text: str              # canonical text
    mode: str = "ON_TRUE"            # one of RULE_MODES
    timeframe: str | None = None     # as given by the client; None: derived from the condition
    cooldown_ms: int | None = None   # None: the mode's default
    expire_time_ms: int | None = None
    max_fires: int = 0               # 0: unlimited
    hysteresis: float = 0.0
    hold_for_ms: int = 0
    message_template: str = ""
    channels: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    paused: bool = False
    create_time_ms: int = 0
    update_time_ms: int = 0
    etag: str = ""
    revision: int = 0                # 1 on create, bumped by every update


@dataclass(frozen=True, kw_only=True)
class TriggerState:
    """A rule's trigger state, committed with the alerts of the batch that changed it."""

    rule_id: str
    owner: str
    fires: int = 0
    last_fire_ms: int | None = None
    armed: bool = True
    completed: bool = False
    expired: bool = False


@dataclass(frozen=True, kw_only=True)
class NewAlert:
    """An alert the engine decided on, not yet stored (so without an id).

    Its identity is (owner, rule_id, symbol, event_time_ms, rank): the store keeps
    the first alert with a given identity and skips any repeat.
    """

    owner: str
    rule_id: str
    symbol: str
    kind: str = "RULE"               # one of ALERT_KINDS
    timeframe: str | None = None     # set for bar-close fires
    bar_open_ms: int | None = None   # set for bar-close fires
    values: tuple[tuple[str, float], ...] = ()  # (operand label, value); NaN allowed
    message: str = ""
    condition_text: str = ""
    rule_display_name: str = ""      # the rule's, at fire time
    rule_labels: tuple[tuple[str, str], ...] = ()  # the rule's at fire time, sorted by key
    event_time_ms: int
    receive_time_ms: int = 0
    decide_time_ms: int = 0
    trade_id: int = 0
    rank: int = 0                    # among this rule's fires at the same event time
    price: float | None = None
    details: dict[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] = ()   # channel ids to deliver to (the rule's, at fire time)

    @property
    def fire_rank(self) -> int:
        """The rank clients see: a SYSTEM alert's rank only keeps its identity apart
        from fires (see ``alerts.engine.system_alerts``), so it shows as 0."""
        return 0 if self.kind == "SYSTEM" else self.rank


@dataclass(frozen=True, kw_only=True)
class AlertRecord(NewAlert):
    """A stored alert: ``alert_id`` increases in commit order and is never reused."""

    alert_id: int
    commit_time_ms: int


@dataclass(frozen=True, kw_only=True)
class SubscriptionRecord:
    """A durable subscription's cursor: everything up to ``acked_id`` was acknowledged."""

    subscription_id: str
    owner: str
    acked_id: int = 0
    filters: dict[str, str] = field(default_factory=dict)
    max_unacked: int = 0
    update_time_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """The engine's serialised state with each source's watermark at that instant."""

    blob: bytes
    watermarks: dict[str, int] = field(default_factory=dict)  # source name -> watermark ms
    create_time_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class DeliveryAttempt:
    """One attempt to deliver an alert to a channel, as recorded."""

    seq: int                         # 1, 2, ... over the delivery's whole life (redeliveries too)
    time_ms: int                     # when the attempt started
    ok: bool
    status: int = 0                  # HTTP (or SMTP) status; 0: no answer
    latency_ms: float = 0.0
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class DeliveryRecord:
    """The delivery of one alert to one channel: the outbox's durable state.

    ``attempts`` counts since the delivery was created or last redelivered;
    ``attempt_seq`` counts every attempt ever. ``next_attempt_ms`` matters while
    PENDING; ``first_attempt_ms`` starts the retry period; ``done_time_ms`` is when
    it became DELIVERED or DEAD. ``history`` is filled by ``list_deliveries`` only.
    """

    owner: str
    channel_id: str
    alert_id: int
    state: str = "PENDING"           # one of DELIVERY_STATES
    attempts: int = 0
    attempt_seq: int = 0
    create_time_ms: int
    next_attempt_ms: int
    first_attempt_ms: int | None = None
    last_attempt_ms: int | None = None
    last_status: int = 0
    last_error: str = ""
    done_time_ms: int | None = None
    history: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AttemptOutcome:
    """What ``record_attempts`` stores for one attempt: it, and where the delivery goes next."""

    owner: str
    channel_id: str
    alert_id: int
    attempt: DeliveryAttempt
    state: str                       # one of DELIVERY_STATES
    next_attempt_ms: int             # when PENDING: the next attempt's due time


@dataclass(frozen=True, kw_only=True)
class DueDelivery:
    """A PENDING delivery whose next attempt is due, with the alert it carries."""

    delivery: DeliveryRecord
    alert: AlertRecord


@dataclass(frozen=True, kw_only=True)
class ChannelDeliveryStats:
    """A channel's delivery summary (the Channel resource's output-only fields)."""

    pending: int = 0
    dead_letters: int = 0
    last_delivered_alert_id: int = 0
    last_delivery_time_ms: int | None = None
    last_error: str = ""             # of the channel's latest attempt; empty if it succeeded
    last_error_time_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    """A webhook channel: signed POSTs to ``url`` (the signing secrets are on the record)."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()  # extra HTTP headers, sorted by name
    timeout_ms: int | None = None              # None: the sender's default
    max_attempts: int = 0                      # 0: the outbox's default


@dataclass(frozen=True, kw_only=True)
class WebSocketSettings:
    """A WebSocket channel: clients of the service's WebSocket server that subscribe to it."""

    replay_limit: int = 0                      # 0: the server's default


@dataclass(frozen=True, kw_only=True)
class EmailSettings:
    """An email channel."""

    to_addresses: tuple[str, ...]
    subject_template: str = ""                 # empty: the sender's default


@dataclass(frozen=True, kw_only=True)
class SmsSettings:
    """An SMS channel; numbers in E.164 form."""

    phone_numbers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class DiscordSettings:
    """A Discord channel (the webhook URL, which embeds a token, is the record's ``secret``)."""

    username: str = ""


@dataclass(frozen=True, kw_only=True)
class TelegramSettings:
    """A Telegram channel (the bot token is the record's ``secret``)."""

    chat_id: str                               # a number or ``@channelusername``


ChannelSettings = (
    WebhookSettings | WebSocketSettings | EmailSettings | SmsSettings | DiscordSettings
    | TelegramSettings
)
"""The kind-specific part of a channel; never holds a secret."""

SETTINGS_KINDS: dict[type, str] = {
    WebhookSettings: "webhook", WebSocketSettings: "websocket", EmailSettings: "email",
    SmsSettings: "sms", DiscordSettings: "discord", TelegramSettings: "telegram",
}
"""The ``CHANNEL_KINDS`` name of each settings class."""


@dataclass(frozen=True, kw_only=True)
class ChannelRecord:
    """A stored delivery channel. The store sets the last four fields on create and update.

    ``secret`` is the kind's credential: the webhook signing secret (``whsec_`` and
    base64), the Discord webhook URL or the Telegram bot token; empty for the other
    kinds. A webhook secret rotation keeps the replaced secret in ``previous_secret``
    until ``previous_secret_expire_ms``; ``signing_secrets`` says which ones are valid.
    Secrets are stored, never returned by the API.
    """

    channel_id: str
    owner: str
    display_name: str = ""
    settings: ChannelSettings
    secret: str = ""
    previous_secret: str = ""
    previous_secret_expire_ms: int | None = None
    message_template: str = ""
    paused: bool = False
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    create_time_ms: int = 0
    update_time_ms: int = 0
    etag: str = ""
    revision: int = 0                # 1 on create, bumped by every update

    @property
    def kind(self) -> str:
        """One of ``CHANNEL_KINDS``."""
        return SETTINGS_KINDS[type(self.settings)]

    def signing_secrets(self, now_ms: int) -> tuple[str, ...]:
        """The webhook secrets to sign with at ``now_ms``: the current one first, then the
        previous one while its rotation overlap lasts (Standard Webhooks receivers accept
        a request when any listed signature matches)."""
        out: tuple[str, ...] = (self.secret,) if self.secret else ()
        if self.previous_secret and (self.previous_secret_expire_ms or 0) > now_ms:
            out += (self.previous_secret,)
        return out

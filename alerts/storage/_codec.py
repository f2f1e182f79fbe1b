"""Records <-> SQL rows, shared by both back ends.

Column lists, the parameter tuples written for a record, the records read back
from a row (any row type indexable by column name: ``sqlite3.Row``,
``asyncpg.Record``), the JSON encodings of the composite fields and the etag.
Operand values are JSON too, with non-finite floats written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` so the text stays standard JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, Protocol

from alerts.storage.records import (
    SETTINGS_KINDS,
    AlertRecord,
    ChannelRecord,
    ChannelSettings,
    Checkpoint,
    DeliveryAttempt,
    DeliveryRecord,
    NewAlert,
    RuleRecord,
    SubscriptionRecord,
    TriggerState,
)


class Row(Protocol):
    """A result row, read by column name (or position)."""

    def __getitem__(self, key: str | int, /) -> Any: ...


RULE_COLUMNS = (
    "owner, rule_id, display_name, symbol, condition_text, trigger_mode, timeframe, cooldown_ms,"
    " expire_time_ms, max_fires, hysteresis, hold_for_ms, message_template, channels, labels,"
    " paused, create_time_ms, update_time_ms, etag, revision"
)
ALERT_COLUMNS = (
    "alert_id, owner, rule_id, symbol, kind, timeframe, bar_open_ms, operand_values, message,"
    " condition_text, event_time_ms, receive_time_ms, decide_time_ms, trade_id, fire_rank, price,"
    " details, rule_display_name, rule_labels, channels, commit_time_ms"
)
DELIVERY_COLUMNS = (
    "owner, channel_id, alert_id, state, attempts, attempt_seq, create_time_ms, next_attempt_ms,"
    " first_attempt_ms, last_attempt_ms, last_status, last_error, done_time_ms"
)
ATTEMPT_COLUMNS = "seq, time_ms, ok, status, latency_ms, error"
STATE_COLUMNS = "owner, rule_id, fires, last_fire_ms, armed, completed, expired"
CHANNEL_COLUMNS = (
    "owner, channel_id, display_name, kind, settings, secret, previous_secret,"
    " previous_secret_expire_ms, message_template, paused, labels, create_time_ms,"
    " update_time_ms, etag, revision"
)
SUBSCRIPTION_COLUMNS = (
    "owner, subscription_id, acked_id, filters, max_unacked, update_time_ms"
)

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def sorted_labels(labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Labels in key order (the form every stored ``RuleRecord`` has)."""
    return tuple(sorted((str(k), str(v)) for k, v in labels))


def rule_etag(rec: RuleRecord) -> str:
    """A checksum of the rule's client-settable fields and revision (AIP-154)."""
    content = [
        rec.owner, rec.rule_id, rec.display_name, rec.symbol, rec.condition_text, rec.mode,
        rec.timeframe, rec.cooldown_ms, rec.expire_time_ms, rec.max_fires, repr(rec.hysteresis),
        rec.hold_for_ms, rec.message_template, list(rec.channels), dict(rec.labels), rec.paused,
        rec.revision, rec.update_time_ms,
    ]
    return hashlib.sha256(_dumps(content).encode()).hexdigest()[:20]


def rule_params(rec: RuleRecord) -> tuple[object, ...]:
    """Parameters in ``RULE_COLUMNS`` order."""
    return (
        rec.owner, rec.rule_id, rec.display_name, rec.symbol, rec.condition_text, rec.mode,
        rec.timeframe, rec.cooldown_ms, rec.expire_time_ms, rec.max_fires, float(rec.hysteresis),
        rec.hold_for_ms, rec.message_template, _dumps(list(rec.channels)),
        _dumps(dict(rec.labels)), bool(rec.paused), rec.create_time_ms, rec.update_time_ms,
        rec.etag, rec.revision,
    )


def rule_from_row(row: Row) -> RuleRecord:
    labels: dict[str, str] = json.loads(row["labels"])
    return RuleRecord(
        owner=row["owner"],
        rule_id=row["rule_id"],
        display_name=row["display_name"],
        symbol=row["symbol"],
        condition_text=row["condition_text"],
        mode=row["trigger_mode"],
        timeframe=row["timeframe"],
        cooldown_ms=row["cooldown_ms"],
        expire_time_ms=row["expire_time_ms"],
        max_fires=row["max_fires"],
        hysteresis=float(row["hysteresis"]),
        hold_for_ms=row["hold_for_ms"],
        message_template=row["message_template"],
        channels=tuple(json.loads(row["channels"])),
        labels=tuple(sorted(labels.items())),
        paused=bool(row["paused"]),
        create_time_ms=row["create_time_ms"],
        update_time_ms=row["update_time_ms"],
        etag=row["etag"],
        revision=row["revision"],
    )


def encode_values(values: tuple[tuple[str, float], ...]) -> str:
    """Operand values as JSON pairs; non-finite floats as strings."""
    return json.dumps(
        [[str(label), _json_number(float(value))] for label, value in values],
        separators=(",", ":"),
        allow_nan=False,
    )


def _json_number(number: float) -> float | str:
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def decode_values(text: str) -> tuple[tuple[str, float], ...]:
    pairs: list[list[Any]] = json.loads(text)
    return tuple(
        (str(label), _NON_FINITE[value] if isinstance(value, str) else float(value))
        for label, value in pairs
    )


def alert_params(alert: NewAlert, alert_id: int, commit_time_ms: int) -> tuple[object, ...]:
    """Parameters in ``ALERT_COLUMNS`` order."""
    return (
        alert_id, alert.owner, alert.rule_id, alert.symbol, alert.kind, alert.timeframe,
        alert.bar_open_ms, encode_values(alert.values), alert.message, alert.condition_text,
        alert.event_time_ms, alert.receive_time_ms, alert.decide_time_ms, alert.trade_id,
        alert.rank, None if alert.price is None else float(alert.price),
        _dumps(dict(alert.details)), alert.rule_display_name, _dumps(dict(alert.rule_labels)),
        _dumps(list(alert.channels)), commit_time_ms,
    )


def channel_pattern(channel_id: str) -> str:
    """A ``LIKE ... ESCAPE '!'`` pattern for the ``channels`` JSON arrays holding
    ``channel_id``; exact while no stored id holds a quote (API ids: a-z, 0-9, '-')."""
    needle = json.dumps(channel_id)
    return "%" + needle.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def stored_alert(alert: NewAlert, alert_id: int, commit_time_ms: int) -> AlertRecord:
    """The record of ``alert`` once stored with this id and commit time."""
    return AlertRecord(
        owner=alert.owner,
        rule_id=alert.rule_id,
        symbol=alert.symbol,
        kind=alert.kind,
        timeframe=alert.timeframe,
        bar_open_ms=alert.bar_open_ms,
        values=tuple((str(k), float(v)) for k, v in alert.values),
        message=alert.message,
        condition_text=alert.condition_text,
        rule_display_name=alert.rule_display_name,
        rule_labels=sorted_labels(alert.rule_labels),
        event_time_ms=alert.event_time_ms,
        receive_time_ms=alert.receive_time_ms,
        decide_time_ms=alert.decide_time_ms,
        trade_id=alert.trade_id,
        rank=alert.rank,
        price=None if alert.price is None else float(alert.price),
        details=dict(alert.details),
        channels=tuple(alert.channels),
        alert_id=alert_id,
        commit_time_ms=commit_time_ms,
    )


def alert_from_row(row: Row) -> AlertRecord:
    price = row["price"]
    return AlertRecord(
        alert_id=row["alert_id"],
        owner=row["owner"],
        rule_id=row["rule_id"],
        symbol=row["symbol"],
        kind=row["kind"],
        timeframe=row["timeframe"],
        bar_open_ms=row["bar_open_ms"],
        values=decode_values(row["operand_values"]),
        message=row["message"],
        condition_text=row["condition_text"],
        rule_display_name=row["rule_display_name"],
        rule_labels=tuple(sorted(json.loads(row["rule_labels"]).items())),
        event_time_ms=row["event_time_ms"],
        receive_time_ms=row["receive_time_ms"],
        decide_time_ms=row["decide_time_ms"],
        trade_id=row["trade_id"],
        rank=row["fire_rank"],
        price=None if price is None else float(price),
        details=json.loads(row["details"]),
        channels=tuple(json.loads(row["channels"])),
        commit_time_ms=row["commit_time_ms"],
    )


def state_params(state: TriggerState) -> tuple[object, ...]:
    """Parameters in ``STATE_COLUMNS`` order."""
    return (
        state.owner, state.rule_id, state.fires, state.last_fire_ms, bool(state.armed),
        bool(state.completed), bool(state.expired),
    )


def state_from_row(row: Row) -> TriggerState:
    return TriggerState(
        owner=row["owner"],
        rule_id=row["rule_id"],
        fires=row["fires"],
        last_fire_ms=row["last_fire_ms"],
        armed=bool(row["armed"]),
        completed=bool(row["completed"]),
        expired=bool(row["expired"]),
    )


def subscription_params(rec: SubscriptionRecord) -> tuple[object, ...]:
    """Parameters in ``SUBSCRIPTION_COLUMNS`` order."""
    return (
        rec.owner, rec.subscription_id, rec.acked_id, _dumps(dict(rec.filters)),
        rec.max_unacked, rec.update_time_ms,
    )


def subscription_from_row(row: Row) -> SubscriptionRecord:
    return SubscriptionRecord(
        owner=row["owner"],
        subscription_id=row["subscription_id"],
        acked_id=row["acked_id"],
        filters=json.loads(row["filters"]),
        max_unacked=row["max_unacked"],
        update_time_ms=row["update_time_ms"],
    )


def encode_watermarks(watermarks: Mapping[str, int]) -> str:
    return _dumps({str(k): int(v) for k, v in watermarks.items()})


def checkpoint_from_row(row: Row) -> Checkpoint:
    return Checkpoint(
        blob=bytes(row["blob"]),
        watermarks={str(k): int(v) for k, v in json.loads(row["watermarks"]).items()},
        create_time_ms=row["create_time_ms"],
    )


_SETTINGS_CLASSES = {kind: cls for cls, kind in SETTINGS_KINDS.items()}


def encode_settings(settings: ChannelSettings) -> str:
    """A channel's settings as a JSON object (tuples become arrays)."""
    return _dumps(dataclasses.asdict(settings))


def decode_settings(kind: str, text: str) -> ChannelSettings:
    cls = _SETTINGS_CLASSES[kind]
    values: dict[str, Any] = json.loads(text)
    for name, value in values.items():
        if isinstance(value, list):  # arrays were tuples: of strings, or of pairs
            values[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    settings: ChannelSettings = cls(**values)
    return settings


def channel_etag(rec: ChannelRecord) -> str:
    """A checksum of the channel's client-visible fields and revision (AIP-154).

    Secrets do not enter it in the clear: a rotation changes the revision anyway.
    """
    content = [
        rec.owner, rec.channel_id, rec.display_name, rec.kind, encode_settings(rec.settings),
        rec.message_template, rec.paused, dict(rec.labels), rec.revision, rec.update_time_ms,
    ]
    return hashlib.sha256(_dumps(content).encode()).hexdigest()[:20]


def channel_params(rec: ChannelRecord) -> tuple[object, ...]:
    """Parameters in ``CHANNEL_COLUMNS`` order."""
    return (
        rec.owner, rec.channel_id, rec.display_name, rec.kind, encode_settings(rec.settings),
        rec.secret, rec.previous_secret, rec.previous_secret_expire_ms, rec.message_template,
        bool(rec.paused), _dumps(dict(rec.labels)), rec.create_time_ms, rec.update_time_ms,
        rec.etag, rec.revision,
    )


def channel_from_row(row: Row) -> ChannelRecord:
    labels: dict[str, str] = json.loads(row["labels"])
    return ChannelRecord(
        owner=row["owner"],
        channel_id=row["channel_id"],
        display_name=row["display_name"],
        settings=decode_settings(row["kind"], row["settings"]),
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_expire_ms=row["previous_secret_expire_ms"],
        message_template=row["message_template"],
        paused=bool(row["paused"]),
        labels=tuple(sorted(labels.items())),
        create_time_ms=row["create_time_ms"],
        update_time_ms=row["update_time_ms"],
        etag=row["etag"],
        revision=row["revision"],
    )


def delivery_from_row(row: Row, history: tuple[DeliveryAttempt, ...] = ()) -> DeliveryRecord:
    return DeliveryRecord(
        owner=row["owner"],
        channel_id=row["channel_id"],
        alert_id=int(row["alert_id"]),
        state=row["state"],
        attempts=int(row["attempts"]),
        attempt_seq=int(row["attempt_seq"]),
        create_time_ms=int(row["create_time_ms"]),
        next_attempt_ms=int(row["next_attempt_ms"]),
        first_attempt_ms=row["first_attempt_ms"],
        last_attempt_ms=row["last_attempt_ms"],
        last_status=int(row["last_status"]),
        last_error=row["last_error"],
        done_time_ms=row["done_time_ms"],
        history=history,
    )


def attempt_from_row(row: Row) -> DeliveryAttempt:
    return DeliveryAttempt(
        seq=int(row["seq"]),
        time_ms=int(row["time_ms"]),
        ok=bool(row["ok"]),
        status=int(row["status"]),
        latency_ms=float(row["latency_ms"]),
        error=row["error"],
    )

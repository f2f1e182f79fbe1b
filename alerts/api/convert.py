"""Between the service's records and the alerts.v1 messages.

``rule_fields_from_proto`` validates a client's Rule (exactly one of
``condition_text`` and ``condition``; a symbol; known enums) and returns the
stored form, with the condition in canonical text. ``rule_to_proto`` and
``alert_to_proto`` fill every output field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from google.protobuf import duration_pb2, timestamp_pb2

from alerts.api.conditions import (
    condition_from_proto,
    condition_to_proto,
    timeframe_from_proto,
    timeframe_to_proto,
)
from alerts.engine.feeds import notices
from alerts.engine.messages import MAX_TEMPLATE_BYTES, RULE_PLACEHOLDERS, unknown_placeholders
from alerts.errors import (
    FieldViolation,
    InvalidArgumentError,
    RuleSyntaxError,
)
from alerts.rules import ast
from alerts.rules.format import format_condition
from alerts.rules.parser import parse_condition
from alerts.storage.records import AlertRecord, RuleRecord
from alerts.v1 import alerts_pb2, rules_pb2

RULE_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MODES = {
    rules_pb2.TRIGGER_MODE_UNSPECIFIED: "ON_TRUE",
    rules_pb2.TRIGGER_MODE_ON_TRUE: "ON_TRUE",
    rules_pb2.TRIGGER_MODE_ONCE: "ONCE",
    rules_pb2.TRIGGER_MODE_EVERY_TIME: "EVERY_TIME",
    rules_pb2.TRIGGER_MODE_ONCE_PER_BAR: "ONCE_PER_BAR",
    rules_pb2.TRIGGER_MODE_ONCE_PER_BAR_CLOSE: "ONCE_PER_BAR_CLOSE",
}
MODE_ENUM = {name: value for value, name in MODES.items() if value}
KINDS = {"RULE": alerts_pb2.ALERT_KIND_RULE, "DATA_QUALITY": alerts_pb2.ALERT_KIND_DATA_QUALITY,
         "SYSTEM": alerts_pb2.ALERT_KIND_SYSTEM}
#: DATA_QUALITY alert details' ``event`` (a source event kind) -> its proto issue
DATA_QUALITY_ISSUES = {
    "STALE": alerts_pb2.DATA_QUALITY_ISSUE_STALE_FEED,
    "GAP": alerts_pb2.DATA_QUALITY_ISSUE_GAP,
    "RECONNECT": alerts_pb2.DATA_QUALITY_ISSUE_RECONNECT,
    "RATE_LIMITED": alerts_pb2.DATA_QUALITY_ISSUE_RATE_LIMITED,
    "RECOVERED": alerts_pb2.DATA_QUALITY_ISSUE_RECOVERED,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}


def invalid(field: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{field}: {why}", violations=(FieldViolation(field, why),))


def ts(ms: int) -> timestamp_pb2.Timestamp:
    # as Timestamp.FromMilliseconds, without its Python-level checks (4 per streamed alert)
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=ms % 1000 * 1_000_000)


def ms_of(value: timestamp_pb2.Timestamp) -> int:
    return value.seconds * 1000 + value.nanos // 1_000_000


def rule_name(rule_id: str) -> str:
    return f"rules/{rule_id}"


def rule_id_of(name: str, field: str = "name") -> str:
    prefix, _, rid = name.partition("/")
    if prefix != "rules" or not RULE_ID.fullmatch(rid):
        raise invalid(field, f"expected rules/{{rule}}, got {name!r}")
    return rid


def check_rule_id(rule_id: str, field: str = "rule_id") -> str:
    if not RULE_ID.fullmatch(rule_id):
        raise invalid(field, "1-63 characters of a-z, 0-9 and '-', starting and ending with "
                             "a letter or digit")
    if rule_id == notices.RULE_ID:
        raise invalid(field, f"{rule_id!r} is reserved for data-quality alerts")
    return rule_id


@dataclass(frozen=True)
class RuleFields:
    """The client-settable part of a rule, validated."""

    display_name: str
    symbol: str
    condition: ast.Condition
    condition_text: str
    mode: str
    timeframe: str | None
    cooldown_ms: int | None
    expire_time_ms: int | None
    max_fires: int
    hysteresis: float
    hold_for_ms: int
    message_template: str
    channels: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    paused: bool


def condition_of(msg: rules_pb2.Rule, field: str = "rule") -> ast.Condition:
    has_text = bool(msg.condition_text.strip())
    has_tree = msg.HasField("condition")
    if has_text == has_tree:
        raise invalid(f"{field}.condition_text",
                      "set exactly one of condition_text and condition")
    if has_text:
        try:
            return parse_condition(msg.condition_text)
        except RuleSyntaxError as exc:
            raise exc.with_field(f"{field}.condition_text") from None
    return condition_from_proto(msg.condition, field=f"{field}.condition")


def rule_fields_from_proto(msg: rules_pb2.Rule, field: str = "rule") -> RuleFields:
    if not msg.symbol.strip():
        raise invalid(f"{field}.symbol", "a symbol is required, e.g. binance:BTCUSDT")
    if msg.trigger_mode not in MODES:
        raise invalid(f"{field}.trigger_mode", f"unknown trigger mode {msg.trigger_mode}")
    if msg.cooldown.seconds < 0 or msg.cooldown.nanos < 0:
        raise invalid(f"{field}.cooldown", "must be >= 0")
    if msg.hold_for.seconds < 0 or msg.hold_for.nanos < 0:
        raise invalid(f"{field}.hold_for", "must be >= 0")
    if len(msg.message_template.encode()) > MAX_TEMPLATE_BYTES:
        raise invalid(f"{field}.message_template", f"at most {MAX_TEMPLATE_BYTES} bytes (UTF-8)")
    unknown = unknown_placeholders(msg.message_template, RULE_PLACEHOLDERS)
    if unknown:
        raise invalid(f"{field}.message_template",
                      f"unknown placeholder {{{{{unknown[0]}}}}}; known: "
                      f"{', '.join(sorted(RULE_PLACEHOLDERS))}")
    tree = condition_of(msg, field)
    return RuleFields(
        display_name=msg.display_name,
        symbol=msg.symbol.strip(),
        condition=tree,
        condition_text=format_condition(tree),
        mode=MODES[msg.trigger_mode],
        timeframe=timeframe_from_proto(msg.timeframe, field=f"{field}.timeframe"),
        cooldown_ms=msg.cooldown.ToMilliseconds() if msg.HasField("cooldown") else None,
        expire_time_ms=ms_of(msg.expire_time) if msg.HasField("expire_time") else None,
        max_fires=msg.max_fires,
        hysteresis=msg.hysteresis,
        hold_for_ms=msg.hold_for.ToMilliseconds(),
        message_template=msg.message_template,
        channels=tuple(msg.channels),
        labels=tuple(sorted(msg.labels.items())),
        paused=msg.paused,
    )


def rule_to_proto(rec: RuleRecord, state: dict[str, object] | None,
                  effective_timeframe: str | None) -> rules_pb2.Rule:
    out = rules_pb2.Rule(
        name=rule_name(rec.rule_id), owner=rec.owner, display_name=rec.display_name,
        symbol=rec.symbol, condition_text=rec.condition_text,
        trigger_mode=MODE_ENUM[rec.mode], timeframe=timeframe_to_proto(rec.timeframe),
        effective_timeframe=timeframe_to_proto(effective_timeframe),
        max_fires=rec.max_fires, hysteresis=rec.hysteresis,
        message_template=rec.message_template, channels=list(rec.channels),
        labels=dict(rec.labels), paused=rec.paused, etag=rec.etag,
        create_time=ts(rec.create_time_ms), update_time=ts(rec.update_time_ms),
    )
    out.condition.CopyFrom(condition_to_proto(parse_condition(rec.condition_text)))
    if rec.cooldown_ms is not None:
        out.cooldown.CopyFrom(duration_pb2.Duration(seconds=rec.cooldown_ms // 1000,
                                                    nanos=rec.cooldown_ms % 1000 * 1_000_000))
    if rec.hold_for_ms:
        out.hold_for.CopyFrom(duration_pb2.Duration(seconds=rec.hold_for_ms // 1000,
                                                    nanos=rec.hold_for_ms % 1000 * 1_000_000))
    if rec.expire_time_ms is not None:
        out.expire_time.CopyFrom(ts(rec.expire_time_ms))
    state = state or {}
    fires = int(state.get("fires", 0) or 0)  # type: ignore[call-overload]
    out.fire_count = fires
    last = state.get("last_fire_ms")
    if last is not None:
        out.last_fire_time.CopyFrom(ts(int(last)))  # type: ignore[call-overload]
    out.armed = bool(state.get("armed", True))
    hold_start = state.get("hold_start_ms")
    if hold_start is not None:
        out.hold_start_time.CopyFrom(ts(int(hold_start)))  # type: ignore[call-overload]
    values = state.get("values", ())
    warming = not state.get("evaluated") or any(
        math.isnan(v) for v in values)  # type: ignore[attr-defined]
    if rec.paused:
        out.state = rules_pb2.Rule.STATE_PAUSED
    elif state.get("completed"):
        out.state = rules_pb2.Rule.STATE_COMPLETED
    elif state.get("expired"):
        out.state = rules_pb2.Rule.STATE_EXPIRED
    elif warming:
        out.state = rules_pb2.Rule.STATE_WARMING_UP
    else:
        out.state = rules_pb2.Rule.STATE_ACTIVE
    return out


def alert_to_proto(rec: AlertRecord) -> alerts_pb2.Alert:
    out = alerts_pb2.Alert(
        name=f"alerts/{rec.alert_id}", id=rec.alert_id,
        rule=rule_name(rec.rule_id) if rec.kind == "RULE" else "",
        owner=rec.owner, symbol=rec.symbol, kind=KINDS[rec.kind],
        timeframe=timeframe_to_proto(rec.timeframe), message=rec.message,
        condition_text=rec.condition_text, event_time=ts(rec.event_time_ms),
        receive_time=ts(rec.receive_time_ms), decide_time=ts(rec.decide_time_ms),
        commit_time=ts(rec.commit_time_ms), trade_id=max(rec.trade_id, 0),
        fire_rank=rec.fire_rank, price=rec.price if rec.price is not None else 0.0,
        rule_display_name=rec.rule_display_name, rule_labels=dict(rec.rule_labels),
    )
    if rec.bar_open_ms is not None:
        out.bar_open_time.CopyFrom(ts(rec.bar_open_ms))
    if rec.kind == "DATA_QUALITY":
        event = rec.details.get("event", "")
        dq = out.data_quality
        dq.issue = DATA_QUALITY_ISSUES.get(event, alerts_pb2.DATA_QUALITY_ISSUE_UNSPECIFIED)
        dq.source = rec.details.get("source", "")
        dq.detail = rec.details.get("detail", "")
        # a problem starts at its event; a recovery ends the one before it
        (dq.end_time if event == "RECOVERED" else dq.start_time).CopyFrom(
            ts(rec.event_time_ms))
    elif rec.kind == "SYSTEM":
        out.system.reason = rec.details.get("reason", "")
        out.system.resource = rec.details.get("resource", "")
    for label, value in rec.values:
        defined = not math.isnan(value)
        out.operand_values.add(label=label, value=value if defined else 0.0, defined=defined)
    return out

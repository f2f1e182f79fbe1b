"""Service events as SYSTEM alerts: the owner learns what happened to a rule or a channel.

Reasons (``Alert.system.reason``) and their identities (the store keeps one alert
per owner, rule id, symbol, event time and rank):

- ``RULE_EXPIRED``: the first evaluation of a rule at or after its ``expire_time``
  expires it. Written in the batch's own transaction, with the rule's trigger
  state, so a crash and the replay after it neither lose nor repeat it. Identity:
  the rule's id and symbol, the expire time, and rank ``SYSTEM_RANK`` (above any
  fire's, which the core counts in an int32), so it never collides with a fire.
  It goes to the rule's channels too: the rule was watching for the owner and
  has stopped.
- ``CHANNEL_DEAD_LETTER``: a delivery became a dead letter. Identity: the
  pseudo rule id ``channels/<channel>`` (no rule id contains ``/``), the dead
  alert's symbol, the time it died and the dead alert's id as rank: one per
  death (a redelivered alert that dies again is announced again). It goes to no
  channel (a channel that fails must not feed itself), only to streams and
  WebSocket clients, and is written after the delivery's DEAD state: a crash
  between the two loses it (the dead letter itself stays in ``ListDeliveries``).

The API shows SYSTEM alerts with an empty ``rule`` and ``fire_rank`` 0; the
resource (``rules/<rule>``, ``channels/<channel>``) is in ``Alert.system``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.engine.kernel import Expiry
from alerts.storage.records import AlertRecord, NewAlert, RuleRecord

SYSTEM_RANK = 2**31
"""The rank of a SYSTEM alert about a rule: above any fire's rank."""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def rule_expired(rule: RuleRecord, expiry: Expiry, *, received_ms: int,
                 decided_ms: int) -> NewAlert:
    name = rule.display_name or rule.rule_id
    return NewAlert(
        owner=rule.owner, rule_id=rule.rule_id, symbol=expiry.symbol, kind="SYSTEM",
        message=f"{name}: rule expired at {_iso(expiry.expire_time_ms)}; it fires no more "
                f"until its expire_time is moved",
        condition_text=rule.condition_text, rule_display_name=rule.display_name,
        rule_labels=rule.labels, event_time_ms=expiry.expire_time_ms,
        receive_time_ms=received_ms, decide_time_ms=decided_ms, trade_id=expiry.trade_id,
        rank=SYSTEM_RANK,
        details={"reason": "RULE_EXPIRED", "resource": f"rules/{rule.rule_id}"},
        channels=tuple(c.removeprefix("channels/") for c in rule.channels),
    )


def dead_letter(dead: AlertRecord, *, channel_id: str, died_ms: int, attempts: int,
                error: str) -> NewAlert:
    what = f"alert {dead.alert_id}" + (f" of rule {dead.rule_id}" if dead.kind == "RULE" else "")
    return NewAlert(
        owner=dead.owner, rule_id=f"channels/{channel_id}", symbol=dead.symbol, kind="SYSTEM",
        message=f"channel {channel_id}: {what} is a dead letter after {attempts} "
                f"attempt{'s' if attempts != 1 else ''} ({error or 'no error recorded'})",
        event_time_ms=died_ms, receive_time_ms=died_ms, decide_time_ms=died_ms,
        rank=dead.alert_id,
        details={"reason": "CHANNEL_DEAD_LETTER", "resource": f"channels/{channel_id}",
                 "alert_id": str(dead.alert_id)},
    )

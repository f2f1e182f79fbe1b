"""Deliveries between the store's records and ``alerts.v1`` messages.

A delivery's last error is a ``google.rpc.Status`` with code UNAVAILABLE (the
destination did not take the alert), the attempt's error text as message and an
``ErrorInfo`` (reason ``DELIVERY_FAILED``, metadata ``status_code``).
"""

from __future__ import annotations

from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from alerts.api.convert import invalid, ts
from alerts.storage.records import DeliveryAttempt, DeliveryRecord
from alerts.v1 import deliveries_pb2

STATES = {
    "PENDING": deliveries_pb2.Delivery.STATE_PENDING,
    "DELIVERED": deliveries_pb2.Delivery.STATE_DELIVERED,
    "DEAD": deliveries_pb2.Delivery.STATE_DEAD,
}
STATE_NAMES: dict[int, str] = {int(value): name for name, value in STATES.items()}


def state_of(value: int, field: str = "state") -> str | None:
    """A ``Delivery.State`` filter as the store's state name; unspecified: ``None``."""
    if value == deliveries_pb2.Delivery.STATE_UNSPECIFIED:
        return None
    if value not in STATE_NAMES:
        raise invalid(field, f"unknown delivery state {value}")
    return STATE_NAMES[value]


def _duration_ms(ms: float) -> duration_pb2.Duration:
    nanos = round(ms * 1_000_000)
    return duration_pb2.Duration(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def error_status(error: str, status_code: int) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason="DELIVERY_FAILED", domain="alerts.v1",
                                       metadata={"status_code": str(status_code)})
    out = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=error)
    out.details.add().Pack(info)
    return out


def attempt_to_proto(rec: DeliveryAttempt) -> deliveries_pb2.DeliveryAttempt:
    return deliveries_pb2.DeliveryAttempt(
        number=rec.seq, attempt_time=ts(rec.time_ms), delivered=rec.ok,
        status_code=rec.status, latency=_duration_ms(rec.latency_ms), error=rec.error)


def delivery_to_proto(rec: DeliveryRecord) -> deliveries_pb2.Delivery:
    out = deliveries_pb2.Delivery(
        name=f"channels/{rec.channel_id}/deliveries/{rec.alert_id}",
        alert=f"alerts/{rec.alert_id}", alert_id=rec.alert_id, state=STATES[rec.state],
        attempt_count=rec.attempts, create_time=ts(rec.create_time_ms),
        attempts=[attempt_to_proto(a) for a in rec.history])
    if rec.state == "PENDING":
        out.next_attempt_time.CopyFrom(ts(rec.next_attempt_ms))
    if rec.done_time_ms is not None:
        out.done_time.CopyFrom(ts(rec.done_time_ms))
    last_failed = rec.history and not rec.history[-1].ok
    if last_failed:
        out.last_error.CopyFrom(error_status(rec.last_error, rec.last_status))
    return out

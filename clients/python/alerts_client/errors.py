"""The one exception the client raises for a failed call, decoded from ``google.rpc.Status``.

The service answers errors as a ``google.rpc.Status`` in the ``grpc-status-details-bin``
trailer: an ``ErrorInfo`` (UPPER_SNAKE reason, domain ``alerts.v1``), ``BadRequest``
field violations for bad input and ``RetryInfo`` with RESOURCE_EXHAUSTED.
``AlertsError.from_rpc_error`` turns a ``grpc.RpcError`` into an ``AlertsError``
carrying all of it, so callers never parse trailers themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: a path from the request root and what is wrong with it."""

    field: str
    description: str


@dataclass(eq=False)
class AlertsError(Exception):
    """A call failed: its gRPC status code, message and the structured details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    retry_delay: float | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code.name}"
        if self.reason:
            text += f" [{self.reason}]"
        text += f": {self.message}"
        for v in self.field_violations:
            text += f"\n  {v.field}: {v.description}"
        return text

    @property
    def violation(self) -> FieldViolation | None:
        """The first field violation, if any."""
        return self.field_violations[0] if self.field_violations else None

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> AlertsError:
        """Decode a failed call (unary or streaming) into an ``AlertsError``."""
        call: Any = err
        code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
        message = (call.details() if hasattr(call, "details") else None) or ""
        out = cls(code=code or grpc.StatusCode.UNKNOWN, message=message)
        try:
            status = rpc_status.from_call(call)
        except ValueError:  # a Status whose code or message disagrees with the call's
            status = None
        if status is None:
            return out
        out.message = status.message or message
        violations: list[FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description)
                               for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                out.retry_delay = retry.retry_delay.ToNanoseconds() / 1e9
        out.field_violations = tuple(violations)
        return out

"""The one error tree of the service.

Every error the service raises on purpose is an ``AlertsError``. Each class
carries a machine-readable ``reason`` (UPPER_SNAKE, sent as ``ErrorInfo.reason``
in domain ``alerts.v1``) and the name of its gRPC status code; the API layer's
interceptor maps them to ``google.rpc.Status``. Domain code never imports grpc.

    AlertsError
    ├── InvalidArgumentError          INVALID_ARGUMENT (field violations)
    │   └── RuleSyntaxError           a rule's text or structure is wrong (line:col)
    ├── UnauthenticatedError          UNAUTHENTICATED (a missing, bad or expired token)
    ├── NotFoundError                 NOT_FOUND
    ├── AlreadyExistsError            ALREADY_EXISTS
    ├── FailedPreconditionError       FAILED_PRECONDITION
    ├── OutOfRangeError               OUT_OF_RANGE
    ├── ResourceExhaustedError        RESOURCE_EXHAUSTED (with a retry delay)
    ├── UnavailableError              UNAVAILABLE
    ├── DeadlineExceededError         DEADLINE_EXCEEDED
    └── AbortedError                  ABORTED
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: ``field`` is a path such as ``rule.condition_text`` or ``ticks[3].price``."""

    field: str
    description: str


class AlertsError(Exception):
    """Base of every deliberate error; ``reason`` and ``code`` describe it to machines."""

    code: str = "INTERNAL"
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: tuple[FieldViolation, ...] = (),
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.violations = violations
        self.metadata = dict(metadata or {})


class InvalidArgumentError(AlertsError):
    code = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class RuleSyntaxError(InvalidArgumentError):
    """A rule condition that does not parse or validate.

    ``line`` and ``col`` are 1-based and point at the offending token; ``reason_text``
    is the human explanation without the position; ``str(err)`` is
    ``"line:col: reason_text"``.
    """

    reason = "INVALID_RULE"

    def __init__(self, line: int, col: int, reason_text: str, *, field: str = "condition") -> None:
        self.line = line
        self.col = col
        self.reason_text = reason_text
        message = f"{line}:{col}: {reason_text}"
        super().__init__(message, violations=(FieldViolation(field, message),))

    def with_field(self, field: str) -> RuleSyntaxError:
        """The same error reported against another field path (e.g. ``rule.condition_text``)."""
        return RuleSyntaxError(self.line, self.col, self.reason_text, field=field)


class UnauthenticatedError(AlertsError):
    code = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"


class NotFoundError(AlertsError):
    code = "NOT_FOUND"
    reason = "NOT_FOUND"


class AlreadyExistsError(AlertsError):
    code = "ALREADY_EXISTS"
    reason = "ALREADY_EXISTS"


class FailedPreconditionError(AlertsError):
    code = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class OutOfRangeError(AlertsError):
    code = "OUT_OF_RANGE"
    reason = "OUT_OF_RANGE"


class ResourceExhaustedError(AlertsError):
    code = "RESOURCE_EXHAUSTED"
    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class UnavailableError(AlertsError):
    code = "UNAVAILABLE"
    reason = "UNAVAILABLE"


class DeadlineExceededError(AlertsError):
    code = "DEADLINE_EXCEEDED"
    reason = "DEADLINE_EXCEEDED"


class AbortedError(AlertsError):
    code = "ABORTED"
    reason = "ABORTED"

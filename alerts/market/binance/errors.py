"""Errors of the Binance source, as branches of the service's ``AlertsError`` tree.

    AlertsError
    ├── InvalidArgumentError
    │   └── BinanceRequestError       REST answered 4xx with a Binance error body
    │                                 (e.g. -1121 "Invalid symbol."), or a stream was refused
    ├── ResourceExhaustedError
    │   └── BinanceRateLimitError     429/418 retried too often (``retry_after_s`` set)
    └── UnavailableError
        └── BinanceUnavailableError   5xx, transport failures, malformed REST bodies
"""

from __future__ import annotations

from alerts.errors import InvalidArgumentError, ResourceExhaustedError, UnavailableError


class BinanceRequestError(InvalidArgumentError):
    """Binance refused a request; ``code`` is Binance's own error code (0 if none)."""

    reason = "BINANCE_REQUEST_REFUSED"

    def __init__(self, message: str, *, code: int = 0, status: int = 400) -> None:
        super().__init__(message, metadata={"binance_code": str(code), "http_status": str(status)})
        self.binance_code = code
        self.status = status


class BinanceRateLimitError(ResourceExhaustedError):
    """Binance kept answering 429/418 after the retries allowed."""

    reason = "BINANCE_RATE_LIMITED"


class BinanceUnavailableError(UnavailableError):
    """Binance could not be reached or answered something unusable."""

    reason = "BINANCE_UNAVAILABLE"

"""Standard Webhooks signatures: ``whsec_`` secrets, the ``v1`` HMAC-SHA256 scheme.

A secret is ``whsec_`` followed by the base64 of 24 to 64 random bytes (padding
optional). The
signature of a message is ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``;
with several secrets (during rotation) the ``webhook-signature`` header lists one
``v1`` entry per secret, separated by spaces, and a receiver accepts any match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from alerts.errors import FieldViolation, InvalidArgumentError

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def generate_webhook_secret(nbytes: int = 32) -> str:
    """A new random secret: ``whsec_`` + base64 of ``nbytes`` (24..64) random bytes."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"nbytes must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES}, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str, field: str = "channel.webhook.signing_secret") -> bytes:
    """The HMAC key of a ``whsec_`` secret; a malformed one is an ``InvalidArgumentError``."""

    def bad(description: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{field}: {description}",
                                    violations=(FieldViolation(field, description),))

    if not secret.startswith(SECRET_PREFIX):
        raise bad(f"must start with {SECRET_PREFIX!r}")
    try:
        encoded = secret[len(SECRET_PREFIX):]
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"the part after {SECRET_PREFIX!r} is not base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise bad(f"must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, got {len(key)}")
    return key


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` entry per key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys)

"""Opaque page tokens for ``list_rules`` (AIP-158).

A token is the URL-safe base64 of a small JSON array: a format number, the key of
the last rule on the page (create time, rule id) and a fingerprint of the owner and
filters it was made for. Clients must treat it as opaque; anything that does not
decode, or was made for another request, is ``InvalidArgumentError`` on
``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from alerts.errors import FieldViolation, InvalidArgumentError

_FORMAT = 1


def _fingerprint(scope: object) -> str:
    text = json.dumps(scope, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _bad(description: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"invalid page_token: {description}",
        violations=(FieldViolation("page_token", description),),
    )


def encode_token(scope: object, create_time_ms: int, rule_id: str) -> str:
    """A token resuming after the rule with this key, for a request of this ``scope``."""
    payload = json.dumps([_FORMAT, create_time_ms, rule_id, _fingerprint(scope)],
                         separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, scope: object) -> tuple[int, str]:
    """The (create time, rule id) key a token resumes after; raises on a bad token."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fmt, create_time_ms, rule_id, fingerprint = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise _bad("not a token this service issued") from None
    if fmt != _FORMAT or type(create_time_ms) is not int or not isinstance(rule_id, str):
        raise _bad("not a token this service issued")
    if fingerprint != _fingerprint(scope):
        raise _bad("made for a request with other filters")
    return create_time_ms, rule_id

"""Opaque page tokens (AIP-158), for the store's and the API's listings.

A token is the URL-safe base64 of a small JSON array: a format number, the key of
the last item on the page (for ``list_rules``: create time, rule id) and a
fingerprint of the owner and filters it was made for. Clients must treat it as opaque; anything that does not
decode, or was made for another request, is ``InvalidArgumentError`` on
``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable

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


def encode_token(scope: object, *key: object) -> str:
    """A token resuming after the item with this key (JSON values), for this ``scope``."""
    payload = json.dumps([_FORMAT, *key, _fingerprint(scope)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, scope: object, valid: Callable[[list[object]], bool]) -> list[object]:
    """The key a token resumes after; raises unless it decodes, ``valid(key)`` holds and
    it was made for this ``scope``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fmt, *key, fingerprint = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise _bad("not a token this service issued") from None
    if fmt != _FORMAT or not valid(key):
        raise _bad("not a token this service issued")
    if fingerprint != _fingerprint(scope):
        raise _bad("made for a request with other filters")
    return key

"""Bearer tokens: JWTs signed with HS256 whose ``sub`` claim is the owner.

``issue_token`` makes one (``alerts token create`` prints it); ``verify_token``
checks the signature, the algorithm (HS256 only: ``alg: none`` and any other
algorithm are refused), the ``exp`` and ``sub`` claims, and returns the
``Identity`` they give (owner and expiry).
Every refusal is an ``UnauthenticatedError`` whose message says what was
wrong, for the WebSocket handshake's 401 answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from alerts.errors import InvalidArgumentError, UnauthenticatedError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""RFC 7518 section 3.2: an HS256 key is at least as long as the hash (256 bits)."""


@dataclass(frozen=True)
class Identity:
    """Who a verified token names, and until when (epoch seconds) it is valid."""

    owner: str
    expires_s: float


def check_secret(secret: str, field: str = "ws_jwt_secret") -> None:
    """Refuse a signing secret too short for HS256."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise InvalidArgumentError(
            f"{field}: at least {MIN_SECRET_BYTES} bytes are needed for HS256 "
            f"(got {len(secret.encode())})")


def issue_token(secret: str, owner: str, ttl_s: float, *, now: float | None = None) -> str:
    """A token for ``owner`` valid for ``ttl_s`` seconds from ``now`` (default: the clock)."""
    check_secret(secret)
    if not owner:
        raise InvalidArgumentError("owner: must not be empty")
    if ttl_s <= 0:
        raise InvalidArgumentError(f"ttl: must be positive (got {ttl_s})")
    issued = int(time.time() if now is None else now)
    claims = {"sub": owner, "iat": issued, "exp": issued + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Identity:
    """The identity a valid token names; raises ``UnauthenticatedError`` saying why not."""
    if not secret:
        raise UnauthenticatedError("the server has no ws_jwt_secret configured: "
                                   "no token can be accepted")
    if not token:
        raise UnauthenticatedError(
            "a token is required (Authorization: Bearer <token> or ?token=<token>)",
            reason="TOKEN_MISSING")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise UnauthenticatedError("the token has expired", reason="TOKEN_EXPIRED") from None
    except jwt.MissingRequiredClaimError as exc:
        raise UnauthenticatedError(f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise UnauthenticatedError(f"the token is not signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise UnauthenticatedError("the token's signature does not verify") from None
    except jwt.InvalidTokenError as exc:
        raise UnauthenticatedError(f"the token is not valid: {exc}") from None
    owner = claims["sub"]
    if not isinstance(owner, str) or not owner:
        raise UnauthenticatedError("the token's 'sub' claim must name an owner")
    return Identity(owner, float(claims["exp"]))

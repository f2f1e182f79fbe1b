"""Client tokens: what verifies, what is refused and why, and ``alerts token create``."""

from __future__ import annotations

import time

import jwt
import pytest

from alerts.auth.tokens import Identity, issue_token, verify_token
from alerts.cli import main
from alerts.errors import InvalidArgumentError, UnauthenticatedError

SECRET = "a-test-secret-that-is-32-bytes-long"
DAY = 86_400   # tokens made when the tests are collected stay valid however long the run


def test_an_issued_token_names_its_owner_and_expires_after_its_ttl() -> None:
    now = time.time()
    token = issue_token(SECRET, "alice", 120, now=now)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["exp"] == int(now) + 120
    assert verify_token(SECRET, token) == Identity("alice", int(now) + 120)


@pytest.mark.parametrize(("token", "reason", "why"), [
    ("", "TOKEN_MISSING", "a token is required"),
    (issue_token(SECRET, "alice", 60, now=time.time() - 120), "TOKEN_EXPIRED", "expired"),
    (issue_token("another-secret-that-is-32-bytes-long", "alice", DAY), "UNAUTHENTICATED",
     "signature does not verify"),
    (jwt.encode({"sub": "alice", "exp": int(time.time()) + DAY}, SECRET * 2,
                algorithm="HS512"), "UNAUTHENTICATED", "not signed with HS256"),
    (jwt.encode({"exp": int(time.time()) + DAY}, SECRET, algorithm="HS256"),
     "UNAUTHENTICATED", "no 'sub' claim"),
    (jwt.encode({"sub": "", "exp": int(time.time()) + DAY}, SECRET, algorithm="HS256"),
     "UNAUTHENTICATED", "must name an owner"),
    ("abc.def.ghi", "UNAUTHENTICATED", "not valid"),
])
def test_refusals_say_why(token: str, reason: str, why: str) -> None:
    with pytest.raises(UnauthenticatedError) as refused:
        verify_token(SECRET, token)
    assert refused.value.reason == reason
    assert refused.value.code == "UNAUTHENTICATED"
    assert why in refused.value.message


def test_without_a_secret_every_token_is_refused() -> None:
    with pytest.raises(UnauthenticatedError, match="no ws_jwt_secret"):
        verify_token("", issue_token(SECRET, "alice", 60))


def test_a_short_secret_or_a_bad_ttl_cannot_issue() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 32 bytes"):
        issue_token("short", "alice", 60)
    with pytest.raises(InvalidArgumentError, match="ttl"):
        issue_token(SECRET, "alice", 0)


def test_cli_token_create_prints_a_token_signed_with_the_configured_secret(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALERTS_WS_JWT_SECRET", SECRET)
    assert main(["token", "create", "--owner", "bot-7", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token(SECRET, token).owner == "bot-7"
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["exp"] <= time.time() + 61


def test_cli_token_create_without_a_secret_is_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ALERTS_WS_JWT_SECRET", raising=False)
    assert main(["token", "create", "--owner", "bot-7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alerts: error: no ws_jwt_secret") and "\n" not in err

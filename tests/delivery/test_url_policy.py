"""The SSRF check of webhook URLs (no network: literals and localhost only)."""

from __future__ import annotations

import pytest

from alerts.delivery.url_policy import AllowList, check_url

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("url, why", [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:8443/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.1/hook", "multicast"),
])
async def test_internal_addresses_are_refused_by_default(url: str, why: str) -> None:
    refusal = await check_url(url, AllowList())
    assert refusal is not None and refusal.reason == "URL_NOT_ALLOWED"
    assert f"{why} address" in refusal.description


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/x", "not a url", "https://", "/relative"])
async def test_only_absolute_http_urls(url: str) -> None:
    refusal = await check_url(url, AllowList())
    assert refusal is not None and refusal.reason == "URL_NOT_ALLOWED"


async def test_public_addresses_need_https() -> None:
    assert await check_url("https://8.8.8.8/hook", AllowList()) is None
    refusal = await check_url("http://8.8.8.8/hook", AllowList())
    assert refusal is not None and "must be https" in refusal.description


async def test_the_allow_list_exempts_networks_and_host_names() -> None:
    allow = AllowList.parse(["127.0.0.0/8", " ", "receiver.internal"])
    assert await check_url("http://127.0.0.1:8080/hook", allow) is None
    assert await check_url("https://10.0.0.1/hook", allow) is not None
    names = AllowList.parse(["localhost"])
    assert await check_url("http://LOCALHOST:9/x", names) is None
    with pytest.raises(ValueError, match="not a network"):
        AllowList.parse(["10.0.0.0/99"])


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    refusal = await check_url("https://no-such-host.invalid/hook", AllowList())
    assert refusal is not None and refusal.reason == "HOST_NOT_FOUND"

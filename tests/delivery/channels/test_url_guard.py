"""SSRF guard: schemes, address classes (v4, v6, v4-mapped), allow-list, no outside DNS."""

from __future__ import annotations

import ipaddress

import pytest

from alerts.delivery.channels.url_guard import (
    AllowList,
    HostNotFoundError,
    UrlNotAllowedError,
    refusal,
    validate_webhook_url,
)
from alerts.errors import InvalidArgumentError


@pytest.mark.asyncio
@pytest.mark.parametrize("url,why", [
    ("http://localhost:8080/h", "loopback"),
    ("http://127.0.0.1/h", "loopback"),
    ("http://127.9.9.9/h", "loopback"),
    ("http://[::1]:9000/h", "loopback"),
    ("http://[::ffff:127.0.0.1]/h", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fe80::1]/h", "link-local"),
    ("http://10.0.0.1/h", "private"),
    ("https://192.168.1.20/h", "private"),
    ("https://172.16.0.1/h", "private"),
    ("http://[::ffff:10.0.0.1]/h", "private"),
    ("http://[fd00::1]/h", "private"),
    ("http://0.0.0.0/h", "unspecified"),
    ("http://[::]/h", "unspecified"),
    ("http://224.0.0.1/h", "multicast"),
    ("http://[ff02::1]/h", "multicast"),
    ("http://240.0.0.1/h", "reserved"),
    ("http://100.64.0.1/h", "not globally routable"),
])
async def test_refused_addresses(url: str, why: str) -> None:
    with pytest.raises(UrlNotAllowedError) as err:
        await validate_webhook_url(url)
    assert why in err.value.message
    assert err.value.reason == "URL_NOT_ALLOWED"
    assert err.value.violations[0].field == "channel.webhook.url"
    assert isinstance(err.value, InvalidArgumentError)


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/h",
                                 "http:///nohost", "gopher://127.0.0.1:70/"])
async def test_only_http_urls(url: str) -> None:
    with pytest.raises(UrlNotAllowedError):
        await validate_webhook_url(url, ["0.0.0.0/0", "::/0"])


@pytest.mark.asyncio
async def test_public_literals_pass() -> None:
    assert await validate_webhook_url("https://93.184.215.14/h") == [
        ipaddress.ip_address("93.184.215.14")]
    assert await validate_webhook_url("https://[2606:4700::1111]:8443/h") == [
        ipaddress.ip_address("2606:4700::1111")]


@pytest.mark.asyncio
async def test_plain_http_only_for_allowed_receivers() -> None:
    with pytest.raises(UrlNotAllowedError) as err:
        await validate_webhook_url("http://93.184.215.14/h")
    assert "use https" in err.value.message
    assert await validate_webhook_url("http://93.184.215.14/h", ["93.184.215.0/24"])


@pytest.mark.asyncio
async def test_allow_list_networks_addresses_and_hosts() -> None:
    assert await validate_webhook_url("http://127.0.0.1:9/h", ["127.0.0.1"])
    assert await validate_webhook_url("http://10.1.2.3/h", ["10.0.0.0/8"])
    assert await validate_webhook_url("http://[::1]/h", ["::1"])
    assert await validate_webhook_url("http://[::ffff:127.0.0.1]/h", ["::ffff:127.0.0.1"])
    assert await validate_webhook_url("http://[::ffff:127.0.0.1]/h", ["127.0.0.0/8"])
    with pytest.raises(UrlNotAllowedError):  # 10/8 does not cover 192.168/16
        await validate_webhook_url("http://192.168.0.1/h", ["10.0.0.0/8"])
    with pytest.raises(UrlNotAllowedError):  # the address, not the name, was allowed
        await validate_webhook_url("http://[::1]/h", ["127.0.0.1"])
    addresses = await validate_webhook_url("http://LocalHost:8/h", ["localhost"])
    assert addresses and all(a.is_loopback for a in addresses)


def test_malformed_allow_entry() -> None:
    with pytest.raises(InvalidArgumentError):
        AllowList.parse(["10.0.0.0/33"])


@pytest.mark.asyncio
async def test_unresolvable_host() -> None:
    with pytest.raises(HostNotFoundError) as err:
        await validate_webhook_url("http://no-such-host.invalid/h")
    assert err.value.violations[0].field == "channel.webhook.url"


def test_refusal_of_public_address_is_none() -> None:
    assert refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert refusal(ipaddress.ip_address("::ffff:8.8.8.8")) is None

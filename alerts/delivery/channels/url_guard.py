"""SSRF guard for webhook URLs: https to public addresses; anything else only when allowed.

``validate_webhook_url(url, allow)`` resolves the host (asynchronously) and
refuses the URL (``UrlNotAllowedError``) when any address it resolves to is
loopback, private, link-local, multicast, reserved, unspecified or otherwise not
globally routable (IPv4 and IPv6; an IPv4-mapped IPv6 address is judged as its
IPv4 address), unless the address lies in an allowed network or the host name
itself is allowed. It returns the checked addresses, so the webhook sender
connects only to an address it checked (a DNS answer that changes between check
and connection, "DNS rebinding", cannot reach a refused address). Both errors are
``InvalidArgumentError``s on ``channel.webhook.url``: ``UrlNotAllowedError``
(reason ``URL_NOT_ALLOWED``, permanent) and ``HostNotFoundError`` (reason
``HOST_NOT_FOUND``: the host does not resolve now).

Plain ``http`` is accepted only for allow-listed receivers (the proto's "http only
for loopback addresses", with the allow-list deciding what is local).

``allow`` entries: networks (``10.0.0.0/8``, ``::1/128``), single addresses
(``127.0.0.1``) or host names (``receiver.internal``, matched exactly, case-insensitive).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from alerts.errors import FieldViolation, InvalidArgumentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

URL_FIELD = "channel.webhook.url"


class UrlNotAllowedError(InvalidArgumentError):
    """A webhook URL refused by the SSRF guard (or not an http(s) URL)."""

    reason = "URL_NOT_ALLOWED"

    def __init__(self, description: str) -> None:
        super().__init__(f"{URL_FIELD}: {description}",
                         violations=(FieldViolation(URL_FIELD, description),))


class HostNotFoundError(InvalidArgumentError):
    """A webhook URL whose host does not resolve (now: it may later)."""

    reason = "HOST_NOT_FOUND"

    def __init__(self, description: str) -> None:
        super().__init__(f"{URL_FIELD}: {description}",
                         violations=(FieldViolation(URL_FIELD, description),))


@dataclass(frozen=True)
class AllowList:
    """Networks and host names exempt from the guard."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str] | AllowList) -> AllowList:
        """Parse settings entries; a malformed network is an ``InvalidArgumentError``."""
        if isinstance(entries, AllowList):
            return entries
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                if "/" in text:
                    raise InvalidArgumentError(
                        f"webhook_allow: {text!r} is not a network") from None
                hosts.add(text.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows_address(self, address: IPAddress) -> bool:
        """True when an allowed network holds the address (or the IPv4 address it maps)."""
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in net or (mapped is not None and mapped in net)
                   for net in self.networks)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached without an allow-list entry, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    if not address.is_global:
        return "not globally routable"
    return None


def _check(address: IPAddress, allow: AllowList) -> None:
    why = refusal(address)
    if why is not None and not allow.allows_address(address):
        mapped = (address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address)
                  else None)
        shown = f"{address} ({mapped})" if mapped else str(address)
        raise UrlNotAllowedError(f"resolves to {why} address {shown}, which is not allowed")


def parse_webhook_url(url: str) -> httpx.URL:
    """The URL if it is an absolute http(s) URL with a host; else ``UrlNotAllowedError``."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UrlNotAllowedError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UrlNotAllowedError(f"scheme must be http or https, got {parsed.scheme or 'none'!r}")
    if not parsed.host:
        raise UrlNotAllowedError("has no host")
    return parsed


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Host name and port -> the addresses (text) a connection may use."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (``getaddrinfo`` off the event loop); ``OSError`` if it fails."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for _family, _type, _proto, _name, sockaddr in infos]


async def resolve_checked(url: httpx.URL, allow: AllowList,
                          resolver: Resolver = system_resolver) -> list[IPAddress]:
    """The host's addresses, each checked; refusals raise ``UrlNotAllowedError``."""
    host = url.host
    try:
        return [_literal(url, allow)]
    except ValueError:
        pass
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        names = await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise HostNotFoundError(f"host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for name in names:
        address = ipaddress.ip_address(name.split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotFoundError(f"host {host!r} resolves to no address")
    if host.lower().rstrip(".") not in allow.hosts:
        for address in addresses:
            _check(address, allow)
        _check_scheme(url, addresses, allow)
    return addresses


def _literal(url: httpx.URL, allow: AllowList) -> IPAddress:
    address = ipaddress.ip_address(url.host)  # ValueError: not a literal
    if url.host.lower() not in allow.hosts:
        _check(address, allow)
        _check_scheme(url, [address], allow)
    return address


def _check_scheme(url: httpx.URL, addresses: list[IPAddress], allow: AllowList) -> None:
    if url.scheme == "http" and not all(allow.allows_address(a) for a in addresses):
        raise UrlNotAllowedError("plain http is only for allow-listed receivers; use https")


async def validate_webhook_url(url: str, allow: Iterable[str] | AllowList = (),
                               resolver: Resolver = system_resolver) -> list[IPAddress]:
    """Check ``url`` (scheme, host, every resolved address); return the addresses.

    Raises ``UrlNotAllowedError`` or ``HostNotFoundError`` (``InvalidArgumentError``s).
    """
    return await resolve_checked(parse_webhook_url(url), AllowList.parse(allow), resolver)

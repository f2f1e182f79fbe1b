"""Which webhook URLs the service may call: the SSRF check made when a channel is saved.

``check_url(url, allow)`` resolves the URL's host (asynchronously) and refuses it
when the scheme is not http(s), or when any address it resolves to is loopback,
private, link-local, multicast, reserved, unspecified or otherwise not globally
routable (an IPv4-mapped IPv6 address is judged as its IPv4 address) - unless that
address lies in a network of ``allow`` or ``allow`` names the host itself. Plain
http is accepted only for hosts ``allow`` exempts (a local test receiver, an
internal endpoint an operator opted in); anything else must be https. A host that
does not resolve now is refused as well (``HOST_NOT_FOUND``).

It returns ``None`` or a ``Refusal`` (reason and description) so that callers
attach it to their own field path. The check when a channel is saved does not
protect against DNS answers that change later; the sender checks again when it
connects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Refusal:
    """Why a URL may not be used: ``reason`` in UPPER_SNAKE, ``description`` for people."""

    reason: str
    description: str


@dataclass(frozen=True)
class AllowList:
    """Networks and host names exempt from the check (configuration ``webhook_allow``)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Networks (``10.0.0.0/8``), addresses (``127.0.0.1``) or host names; a malformed
        network raises ``ValueError``."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry:
                    raise ValueError(f"{entry!r} is not a network") from None
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks)


def _unsafe(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    return None if address.is_global else "not globally routable"


async def _addresses(host: str, port: int) -> list[IPAddress] | None:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0])
                              for i in infos)) or None


async def check_url(url: str, allow: AllowList) -> Refusal | None:
    """``None`` if the service may call ``url``, else why not (see the module docstring)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        return Refusal("URL_NOT_ALLOWED", f"not a valid URL: {exc}")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return Refusal("URL_NOT_ALLOWED", "must be an absolute https:// URL")
    host = parsed.host.lower().rstrip(".")
    addresses = await _addresses(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    if addresses is None:
        return Refusal("HOST_NOT_FOUND", f"host {host!r} does not resolve")
    exempt = host in allow.hosts
    for address in addresses:
        why = _unsafe(address)
        if why is not None and not exempt and not allow.allows(address):
            return Refusal("URL_NOT_ALLOWED",
                           f"{host} resolves to {why} address {address}, which this server "
                           "does not call (configuration webhook_allow)")
        exempt_address = exempt or allow.allows(address)
        if parsed.scheme == "http" and not exempt_address:
            return Refusal("URL_NOT_ALLOWED",
                           "must be https (http only for hosts the server's webhook_allow "
                           "exempts)")
    return None

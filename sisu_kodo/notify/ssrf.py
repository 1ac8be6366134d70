"""The SSRF guard: where a webhook URL may point.

Checked twice: when a subscription is created (the URL's shape, and its address when the
host is an IP literal or `localhost`; names are not resolved there, so creating a
subscription sends no DNS query), and before every delivery attempt (every address
the host resolves to), so a name that later resolves inside the network is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NoReturn
from urllib.parse import urlsplit

from sisu_kodo.config import NotifySettings
from sisu_kodo.errors import WebhookUrlRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services: refused whatever the settings allow.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def check_url(url: str, settings: NotifySettings) -> None:
    """Refuse a URL that is not http(s) with a host, carries credentials, or names an
    address the settings do not allow.

    Raises:
        WebhookUrlRefusedError: with `details.reason`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _refuse(url, "scheme", "only http:// and https:// URLs with a host are allowed")
    if parts.username is not None or parts.password is not None:
        _refuse(url, "credentials", "a webhook URL may not carry credentials")
    try:
        _ = parts.port
    except ValueError:
        _refuse(url, "port", "the URL's port is not a number from 0 to 65535")
    host = parts.hostname.lower()
    if host in LOOPBACK_NAMES:
        check_address(url, ipaddress.ip_address("127.0.0.1"), settings)
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: resolved and checked before each delivery
    check_address(url, address, settings)


def check_resolved(url: str, settings: NotifySettings) -> None:
    """Resolve the URL's host and check every address it has (before a delivery).

    Raises:
        WebhookUrlRefusedError: an address is not allowed, or the name does not resolve.
    """
    check_url(url, settings)
    parts = urlsplit(url)
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        _refuse(url, "unresolved", f"the host does not resolve: {exc}")
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        check_address(url, address, settings)


def check_address(url: str, address: IPAddress, settings: NotifySettings) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        _refuse(url, "metadata", f"{address} is a cloud metadata address")
    if address.is_loopback:
        if not settings.allow_loopback:
            _refuse(url, "loopback", f"{address} is loopback (SISU_WEBHOOK_ALLOW_LOOPBACK)")
        return
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        _refuse(url, "reserved", f"{address} is not a unicast address")
    internal = address.is_link_local or address.is_private or _shared(address)
    if internal and not settings.allow_private:
        _refuse(
            url,
            "private",
            f"{address} is a private or link-local address (SISU_WEBHOOK_ALLOW_PRIVATE)",
        )


def _shared(address: IPAddress) -> bool:
    """Carrier-grade NAT space (100.64.0.0/10), which `is_private` does not cover."""
    return isinstance(address, ipaddress.IPv4Address) and address in _CGNAT


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def _refuse(url: str, reason: str, message: str) -> NoReturn:
    raise WebhookUrlRefusedError(
        f"webhook URL refused: {message}",
        [{"path": "url", "message": message, "reason": reason}],
    )

"""Which sites may talk to the API: the Host and Origin allowlists.

The API has no credentials of its own, so any page open in an operator's browser could
otherwise drive it: by DNS rebinding (a hostile name resolving to 127.0.0.1, seen here as
a foreign `Host`) or by a cross-site form POST (a foreign `Origin`). curl and our client
send a loopback Host and no Origin, so they pass untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sisu_kodo.config import Settings
from sisu_kodo.errors import HostNotAllowedError, OriginNotAllowedError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# host[:port], host a name, an IPv4 literal or a bracketed IPv6 literal: no user info,
# path or spaces, which urlsplit would otherwise quietly drop.
_AUTHORITY = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class SiteAllowlist:
    """Allowed host names (exact, '*.suffix' or '*') and origins ((scheme, host, port),
    or None for the default: http or https on any allowed host, any port)."""

    hosts: frozenset[str]
    origins: frozenset[tuple[str, str, int]] | None
    any_origin: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SiteAllowlist:
        hosts = settings.api.allowed_hosts or _default_hosts(settings.topology.host)
        origins = None
        if settings.api.allowed_origins:
            origins = frozenset(
                origin
                for entry in settings.api.allowed_origins
                if (origin := _origin(entry)) is not None
            )
        return cls(
            hosts=frozenset(_bare_host(host) for host in hosts),
            origins=origins,
            any_origin="*" in settings.api.allowed_origins,
        )

    def check_host(self, header: str | None) -> None:
        """Raise HostNotAllowedError unless the Host header names an allowed host."""
        host = _authority_host(header or "")
        if host is None or not self.allows_host(host):
            raise HostNotAllowedError(
                f"Host {header!r} is not served here (DNS rebinding guard);"
                " list it in SISU_ALLOWED_HOSTS to allow it",
                {"host": header},
            )

    def check_origin(self, origin: str | None, fetch_site: str | None) -> None:
        """Raise OriginNotAllowedError for a state-changing request from another site.

        Browsers send `Origin` on every cross-origin POST; `Sec-Fetch-Site: cross-site`
        catches the rest. Requests with neither (curl, scripts) are not from a page.
        """
        if origin is None:
            if fetch_site == "cross-site":
                raise OriginNotAllowedError(
                    "a cross-site page may not change state here (Sec-Fetch-Site: cross-site)",
                    {"secFetchSite": fetch_site},
                )
            return
        if not self.allows_origin(origin):
            raise OriginNotAllowedError(
                f"Origin {origin!r} may not change state here;"
                " list it in SISU_ALLOWED_ORIGINS to allow it",
                {"origin": origin},
            )

    def allows_host(self, host: str) -> bool:
        if "*" in self.hosts or host in self.hosts:
            return True
        return any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in self.hosts)

    def allows_origin(self, origin: str) -> bool:
        if self.any_origin:
            return True
        parsed = _origin(origin)
        if parsed is None:
            return False
        if self.origins is not None:
            return parsed in self.origins
        return self.allows_host(parsed[1])


def _default_hosts(bind_host: str) -> tuple[str, ...]:
    """The loopback names and the bound address, even a wildcard one: `sisu up` and
    `sisu demo` address the API as http://$SISU_HOST:$PORT, and no page can present
    0.0.0.0 as its own name (one that posts to it still shows its Origin)."""
    return (*LOOPBACK_HOSTS, bind_host) if bind_host.strip() else LOOPBACK_HOSTS


def _bare_host(host: str) -> str:
    """Lowercased, IPv6 brackets and a trailing root dot removed: 'LocalHost.' is 'localhost'."""
    return host.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")


def _authority_host(value: str) -> str | None:
    """The host of a `host[:port]` header value, or None when it is not one."""
    value = value.strip()
    if not _AUTHORITY.fullmatch(value):
        return None
    return _bare_host(value.rpartition(":")[0] if _has_port(value) else value)


def _has_port(value: str) -> bool:
    return ":" in value.rpartition("]")[2]


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a serialized origin, or None ('null', garbage, no host)."""
    parsed = urlsplit(value.strip().lower())
    if parsed.scheme not in _DEFAULT_PORTS or parsed.path or parsed.query or parsed.fragment:
        return None
    if parsed.username is not None or not _AUTHORITY.fullmatch(parsed.netloc):
        return None
    try:
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        return None
    return parsed.scheme, _bare_host(parsed.hostname or ""), port

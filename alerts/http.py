"""Outbound HTTP to addresses tenants give us (webhooks, Slack), guarded against SSRF.

A tenant-supplied URL must not reach the platform's own network: the host
is resolved and every address it resolves to must be public, unless the
operator sets CSP_WEBHOOK_ALLOW_PRIVATE (tests, single-host installs). The
request then connects to the address that was checked, not to a second
resolution of the name, so a DNS answer that changes between the check and
the connection (rebinding) cannot slip through. Redirects are not followed.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

DEFAULT_TIMEOUT = 10
RESPONSE_SNIPPET_BYTES = 500

# Checked in this order; the first that applies names the reason.
REFUSED_KINDS = [
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_private", "a private address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_unspecified", "an unspecified address"),
]


class UnsafeTarget(ValueError):
    """A URL the platform will not send to; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def refused_reason(address):
    """Why `address` may not be reached, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, reason in REFUSED_KINDS:
        if getattr(ip, attribute):
            return reason
    return None if ip.is_global else "not a public address"


def resolve_target(url):
    """The checked target of `url`; UnsafeTarget when it is malformed, unresolvable or not public."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"The URL is not valid: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("Use an http:// or https:// URL.")
    host = parts.hostname
    if not host:
        raise UnsafeTarget("The URL has no host.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeTarget(f"The host {host} could not be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not getattr(settings, "CSP_WEBHOOK_ALLOW_PRIVATE", False):
        for address in addresses:
            reason = refused_reason(address)
            if reason:
                raise UnsafeTarget(
                    f"{host} resolves to {address}, {reason}; only public addresses can receive webhooks."
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target, timeout):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target, timeout):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.address = target.address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url, body, headers, *, timeout=None):
    """POST `body` (bytes) to `url`; returns (status code, start of the response body).

    Raises UnsafeTarget for a refused URL and OSError / HTTPException when
    the connection fails.
    """
    target = resolve_target(url)
    timeout = timeout or getattr(settings, "CSP_WEBHOOK_TIMEOUT", DEFAULT_TIMEOUT)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers={"Content-Length": str(len(body)), **headers})
        response = connection.getresponse()
        snippet = response.read(RESPONSE_SNIPPET_BYTES).decode("utf-8", "replace")
        return response.status, snippet
    finally:
        connection.close()

"""The one outbound HTTP client of Signalbox: webhooks, ESP APIs, journey webhook steps.

- Only http(s); no redirects are followed; bounded connect/read timeouts and response size.
- SSRF guard: the host is resolved once, every address is checked (no private, loopback,
  link-local, multicast or reserved address unless SIGNALBOX_HTTP_ALLOW_PRIVATE allows it), and
  the connection goes to the checked address (TLS still verifies the host name), so a DNS
  answer cannot change between the check and the connection.
- Failures say whether the request may have reached the server (see ProviderError).
- Libraries that need a `requests.Session` (anymail) get a SafeSession, which sends through
  the same client.
"""

import http.client
import io
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15
MAX_RESPONSE_BYTES = 64 * 1024


class HttpError(Exception):
    """`sent` False: the request never reached the server (safe to fail over)."""

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        self.sent = sent


class BlockedAddress(HttpError):
    def __init__(self, message: str):
        super().__init__(message, sent=False)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes  # at most MAX_RESPONSE_BYTES
    elapsed_ms: int


def _allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified):
        return True
    allowed = settings.SIGNALBOX_HTTP_ALLOW_PRIVATE
    return any(ip in ipaddress.ip_network(net) for net in allowed)


def resolve(host: str, port: int) -> str:
    """The first address of `host`, after checking all of them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HttpError(f"cannot resolve {host}: {exc}", sent=False) from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        if not _allowed(address):
            raise BlockedAddress(f"{host} resolves to {address}, a private or reserved address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, address, **kwargs):
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), CONNECT_TIMEOUT)
        self.sock.settimeout(self.timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self):
        super().connect()
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def safe_request(method: str, url: str, *, body: bytes = b"", headers: dict | None = None,
                 timeout: float = READ_TIMEOUT) -> HttpResponse:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url!r}", sent=False)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve(parts.hostname, port)
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = cls(parts.hostname, port, address, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        try:
            conn.connect()
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"cannot connect to {parts.hostname}: {exc}", sent=False) from None
        try:
            conn.request(method, path, body=body, headers={"User-Agent": "Signalbox", **(headers or {})})
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_BYTES)
        except ConnectionRefusedError as exc:
            raise HttpError(f"connection refused: {exc}", sent=False) from None
        except (OSError, http.client.HTTPException) as exc:
            # The request may have been received and acted on: the caller must not fail over.
            raise HttpError(f"no complete response from {parts.hostname}: {exc}", sent=True) from None
        return HttpResponse(status=response.status, headers=dict(response.getheaders()), body=data,
                            elapsed_ms=int((time.monotonic() - started) * 1000))
    finally:
        conn.close()


def safe_post(url: str, *, body: bytes, headers: dict | None = None,
              timeout: float = READ_TIMEOUT) -> HttpResponse:
    return safe_request("POST", url, body=body, headers=headers, timeout=timeout)


class SafeAdapter(requests.adapters.HTTPAdapter):
    """A requests transport that sends through safe_request. A failure is a requests
    ConnectionError (nothing was sent) or ReadTimeout (it may have been), caused by our
    HttpError, whose `sent` says which."""

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        # identity: the body is handed back as received, never decompressed past the size cap.
        headers = {**request.headers, "Accept-Encoding": "identity"}
        try:
            answer = safe_request(request.method, request.url, body=body, headers=headers,
                                  timeout=read_timeout or READ_TIMEOUT)
        except HttpError as exc:
            error = requests.ReadTimeout if exc.sent else requests.ConnectionError
            raise error(str(exc), request=request) from exc
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.body), headers=answer.headers, status=answer.status,
            reason=http.client.responses.get(answer.status, ""), preload_content=False,
            decode_content=False)
        return self.build_response(request, raw)


class SafeSession(requests.Session):
    """A requests session whose every request goes through safe_request; proxies and .netrc
    from the environment are ignored, and a redirect is returned to the caller, never followed."""

    def __init__(self):
        super().__init__()
        self.trust_env = False
        self.mount("http://", SafeAdapter())
        self.mount("https://", SafeAdapter())

    def get_redirect_target(self, response):
        return None

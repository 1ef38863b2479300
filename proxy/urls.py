"""The control plane's URLs, split with httptools' URL parser rather than `urllib.parse`.

Why: `urllib.parse` imports `ipaddress`, and the two leave about 0.7 MB resident in a process
whose budget is 30 MB; httptools is loaded anyway (it parses every request), and its
`parse_url` is llhttp's, strict about ports and hosts. These URLs come from the proxy's own
configuration, not from callers; what it does not need it refuses (credentials in the URL,
schemes other than http and https, fragments) instead of carrying them along.
"""

from __future__ import annotations

from typing import Any

import httptools


class UrlError(ValueError):
    """Not an http(s) URL the proxy can call."""


class Url:
    __slots__ = ("host", "port", "scheme", "target")

    def __init__(self, scheme: str, host: str, port: int, target: str) -> None:
        self.scheme, self.host, self.port, self.target = scheme, host, port, target

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.scheme == "https" else 80)

    @property
    def netloc(self) -> str:
        """`host[:port]` for a Host header (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def split_url(url: str) -> Url:
    try:
        raw = url.encode("ascii")
    except UnicodeEncodeError:
        raise UrlError(f"not an http(s) URL (not ASCII): {url!r}") from None
    # Any: httptools' stubs type every part as bytes, but an absent part is None.
    parts: Any
    try:
        parts = httptools.parse_url(raw)
    except httptools.HttpParserInvalidURLError:
        raise UrlError(f"not an http(s) URL: {url!r}") from None
    scheme = (parts.schema or b"").decode("ascii").lower()
    if scheme not in ("http", "https") or not parts.host:
        raise UrlError(f"not an http(s) URL: {url!r}")
    if parts.userinfo is not None:
        raise UrlError(f"credentials in a URL are not used: {url!r} (give a token file)")
    if parts.fragment is not None:
        raise UrlError(f"a fragment in a URL is never sent: {url!r}")
    if parts.port == 0:
        raise UrlError(f"port 0 in {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or b"/").decode("ascii")
    if parts.query is not None:
        target += "?" + parts.query.decode("ascii")
    return Url(scheme, parts.host.decode("ascii").lower(), port, target)

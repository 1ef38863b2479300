"""One answer to "is this an http(s) URL that can be called": a scheme of http or https, a
host, and a port (if written) from 0 to 65535. `urlsplit` accepts `http://h:99999` and only
`.port` then raises; each caller that did its own check forgot that step once.

The proxy does not use this (it keeps `urllib.parse` out of its memory: `proxy.urls`).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def http_url(url: str) -> SplitResult | None:
    """`url` split, or None when it is not an http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts

"""`proxy.urls.split_url`: the control plane's URLs, split the way `proxy.httpclient` calls them."""

from __future__ import annotations

import pytest

from proxy.urls import UrlError, split_url

# url -> (host, port, request target, Host header, origin)
SPLIT = {
    "https://cp.smictl-system.svc:8443/mesh/v1/policy?timeout=30": (
        "cp.smictl-system.svc",
        8443,
        "/mesh/v1/policy?timeout=30",
        "cp.smictl-system.svc:8443",
        "https://cp.smictl-system.svc:8443",
    ),
    "https://CP.Example/x": ("cp.example", 443, "/x", "cp.example", "https://cp.example"),
    "HTTP://cp": ("cp", 80, "/", "cp", "http://cp"),
    "http://cp:443/": ("cp", 443, "/", "cp:443", "http://cp:443"),
    "https://[::1]:9443/a": ("::1", 9443, "/a", "[::1]:9443", "https://[::1]:9443"),
    "https://[::1]/a": ("::1", 443, "/a", "[::1]", "https://[::1]"),
    "http://127.0.0.1:8080/p?": (
        "127.0.0.1",
        8080,
        "/p",
        "127.0.0.1:8080",
        "http://127.0.0.1:8080",
    ),
}


@pytest.mark.parametrize(("url", "expected"), SPLIT.items())
def test_a_url_is_split_into_what_a_request_needs(
    url: str, expected: tuple[str, int, str, str, str]
) -> None:
    parts = split_url(url)
    assert (parts.host, parts.port, parts.target, parts.netloc, parts.origin) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "not an http(s) URL"),
        ("cp:8443/x", "not an http(s) URL"),
        ("ftp://cp/x", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
        ("https://cp:65536/x", "not an http(s) URL"),
        ("https://cp:/x", "not an http(s) URL"),
        ("https://cp:0/x", "port 0"),
        ("https://user:secret@cp/x", "credentials"),
        ("https://cp/x#frag", "fragment"),
        ("https://cp/ü", "not ASCII"),
        ("https://cp/a b", "not an http(s) URL"),
        ("https://cp/a\r\nx-injected: 1", "not an http(s) URL"),
    ],
)
def test_what_the_proxy_cannot_call_is_refused(url: str, message: str) -> None:
    with pytest.raises(UrlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_url(url)

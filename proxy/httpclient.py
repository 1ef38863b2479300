"""A small HTTP/1.1 client for the proxy's own calls to the control plane (policy long-poll,
certificate signing): one request per connection, asyncio streams, httptools parsing.

It lives here rather than using a client library so that the proxy's dependencies stay what
DESIGN.md §2 allows, and because the proxy already parses HTTP with httptools. Every failure
(refused, TLS, timeout, malformed or oversized response) is an `HttpClientError`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import httptools

from proxy.urls import UrlError, split_url

MAX_BODY = 64 * 1024 * 1024
# The status line and headers: the control plane sends a handful. httptools sets no limit of
# its own, so without this a server that streams headers grows the proxy's memory until the
# deadline (hundreds of MB a second on loopback).
MAX_HEAD = 64 * 1024


class HttpClientError(Exception):
    """The request could not be made or the response could not be read."""


@dataclass(slots=True)
class Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


class _Collector:
    def __init__(self) -> None:
        self.response = Response()
        self.parts: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            raise HttpClientError("response body too large")
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.done = True


async def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    ssl_context: ssl.SSLContext | None = None,
    deadline: float = 30.0,
) -> Response:
    try:
        parts = split_url(url)
    except UrlError as exc:
        raise HttpClientError(str(exc)) from None
    tls = ssl_context if parts.scheme == "https" else None
    if parts.scheme == "https" and tls is None:
        tls = ssl.create_default_context()
    lines = [
        f"{method} {parts.target} HTTP/1.1",
        f"host: {parts.netloc}",
        "connection: close",
        f"content-length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    try:
        async with asyncio.timeout(deadline):
            return await _exchange(parts.host, parts.port, tls, raw, method=method)
    except TimeoutError as exc:
        raise HttpClientError(f"no response within {deadline:g}s") from exc
    except (OSError, ssl.SSLError) as exc:
        raise HttpClientError(str(exc) or type(exc).__name__) from exc


async def _exchange(
    host: str, port: int, tls: ssl.SSLContext | None, raw: bytes, *, method: str
) -> Response:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        writer.write(raw)
        await writer.drain()
        collector = _Collector()
        parser = httptools.HttpResponseParser(collector)
        head = 0  # bytes received while the headers were not complete
        while not collector.done:
            data = await reader.read(65536)
            if not data:
                break
            if not collector.head_done:
                head += len(data)
                if head > MAX_HEAD + 65536:  # one read may hold the head and a body's start
                    raise HttpClientError(f"response headers larger than {MAX_HEAD} bytes")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise HttpClientError(f"malformed response: {exc}") from exc
            if method == "HEAD" and collector.response.headers:
                break
        if not collector.done and parser.get_status_code() == 0:
            raise HttpClientError("connection closed before a response")
        framed = "content-length" in collector.response.headers or (
            "transfer-encoding" in collector.response.headers
        )
        if not collector.done and framed and method != "HEAD":
            raise HttpClientError("connection closed before the end of the response body")
        collector.response.status = parser.get_status_code()
        collector.response.body = b"".join(collector.parts)
        return collector.response
    finally:
        writer.close()

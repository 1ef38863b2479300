"""The admin listener: `/metrics` (Prometheus text), `/ready`, `/config`.

Plain HTTP on its own port, never exposed to the mesh. `/ready` is 200 only once a policy and a
certificate are loaded and the proxy is not draining; `/config` names the policy revision and
hash in use, so a test or an operator can see when an update has been applied.

It shares the process (and its file descriptors) with the request path, and in a pod anything
that can reach the pod's address can reach it when it is bound there, so it is bounded like
any other listener: a number of open connections, a time within which a connection must finish
a request (an idle keep-alive one or a slow one alike), and the output a client that does not
read may leave queued.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import cast

import httptools

Page = Callable[[], tuple[int, str, bytes]]  # status, content type, body

MAX_REQUEST = 64 * 1024  # bytes of one request (the pages take no body)
MAX_QUEUED = 4 * 1024 * 1024  # bytes of responses queued for a client that is not reading


class AdminLimits:
    """What all the admin listener's connections share: how many are open, and the bounds."""

    def __init__(self, *, connections: int = 64, idle: float = 60.0) -> None:
        self.connections = connections
        self.idle = idle  # seconds a connection may take to finish a request
        self.open = 0


class AdminProtocol(asyncio.Protocol):
    def __init__(self, pages: dict[str, Page], limits: AdminLimits | None = None) -> None:
        self.pages = pages
        self.limits = limits if limits is not None else AdminLimits()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.size = 0
        self.counted = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        limits = self.limits
        if limits.open >= limits.connections:
            transport.abort()  # (a scrape or a probe retries; the request path is not starved)
            return
        limits.open += 1
        self.counted = True
        self.transport = transport
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.limits.open -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _arm(self) -> None:
        """(Re)start the time the connection has to finish its next request: reset only when
        one is answered, so a request sent a byte at a time cannot hold the connection."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.limits.idle, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.size += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, "text/plain", b"bad request\n", close=True)
        if self.transport is not None and (
            self.size > MAX_REQUEST or self.transport.get_write_buffer_size() > MAX_QUEUED
        ):
            self.transport.abort()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        path = _origin_path(self.url)
        self.url, self.size = b"", 0
        method = self.parser.get_method()
        page = self.pages.get(path)
        if method not in (b"GET", b"HEAD"):
            status, ctype, body = 405, "text/plain", b"method not allowed\n"
        elif page is None:
            status, ctype, body = 404, "text/plain", b"not found\n"
        else:
            status, ctype, body = page()
        # An answer to HEAD has the headers of GET's and no body (RFC 9110 §9.3.2), errors too.
        self._send(status, ctype, b"" if method == b"HEAD" else body, close=False, length=len(body))
        if self.transport is None:
            return
        if not self.parser.should_keep_alive():
            self.transport.close()
        elif self.transport.get_write_buffer_size() > MAX_QUEUED:
            # Pipelined requests from a client that reads nothing: pausing reads cannot stop
            # the ones already in this read.
            self.transport.abort()
        else:
            self._arm()

    def _send(
        self, status: int, ctype: str, body: bytes, *, close: bool, length: int | None = None
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        # (RFC 9110 §15.5.6: a 405 MUST say what the resource allows; every page is GET/HEAD.)
        allow = "allow: GET, HEAD\r\n" if status == 405 else ""
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: {ctype}\r\ncontent-length: {len(body) if length is None else length}"
            f"\r\n{allow}{'connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        )
        self.transport.write(head.encode() + body)
        if close:
            self.transport.close()


def _origin_path(url: bytes) -> str:
    """The path of a request target: origin form (`/ready?x`) or the absolute form a server
    MUST accept (`http://host:15020/ready`, RFC 9112 §3.2.2); "" for any other (`*`)."""
    try:
        parts = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        return ""
    if not parts.path:  # `http://host` (None): the absolute form's empty path is "/"
        return "/" if parts.schema else ""
    return bytes(parts.path).decode("latin-1")


def json_page(status: int, doc: object) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

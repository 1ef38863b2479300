"""The admin listener: `/metrics` (Prometheus text), `/ready`, `/config`.

Plain HTTP on its own port, never exposed to the mesh. `/ready` is 200 only once a policy and a
certificate are loaded and the proxy is not draining; `/config` names the policy revision and
hash in use, so a test or an operator can see when an update has been applied.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import cast

import httptools

Page = Callable[[], tuple[int, str, bytes]]  # status, content type, body


class AdminProtocol(asyncio.Protocol):
    def __init__(self, pages: dict[str, Page]) -> None:
        self.pages = pages
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, "text/plain", b"bad request\n", close=True)
        if self.size > 64 * 1024 and self.transport is not None:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        self.url, self.size = b"", 0
        method = self.parser.get_method()
        page = self.pages.get(path)
        if method not in (b"GET", b"HEAD"):
            self._send(405, "text/plain", b"method not allowed\n", close=False)
        elif page is None:
            self._send(404, "text/plain", b"not found\n", close=False)
        else:
            status, ctype, body = page()
            self._send(
                status, ctype, b"" if method == b"HEAD" else body, close=False, length=len(body)
            )
        if not self.parser.should_keep_alive() and self.transport is not None:
            self.transport.close()

    def _send(
        self, status: int, ctype: str, body: bytes, *, close: bool, length: int | None = None
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            f"content-type: {ctype}\r\ncontent-length: {len(body) if length is None else length}"
            f"\r\n{'connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        )
        self.transport.write(head.encode() + body)
        if close:
            self.transport.close()


def json_page(status: int, doc: object) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

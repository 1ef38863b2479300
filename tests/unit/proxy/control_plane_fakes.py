"""A fake control plane on 127.0.0.1 for the proxy's policy source and HTTP client tests:
it answers each request with bytes the test writes, so any answer, well-formed or not, can be
sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


def http_response(
    status: int, body: bytes = b"", *, headers: str = "", length: int | None = None
) -> bytes:
    """An HTTP/1.1 response; `length` overrides the Content-Length (a body cut short)."""
    size = len(body) if length is None else length
    head = f"HTTP/1.1 {status} X\r\n{headers}content-length: {size}\r\n\r\n"
    return head.encode() + body


@contextlib.asynccontextmanager
async def control_plane(
    answers: Callable[[int], bytes], *, hold: bool = False
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A control plane answering request n (from 0) with `answers(n)`; yields its policy URL
    and the request heads it got. `hold` keeps the connection open after the answer."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answers(len(heads) - 1))
            await writer.drain()
            if hold:
                await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mesh/v1/policy", heads
    finally:
        server.close()

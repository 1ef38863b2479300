"""The admin listener's answers to HEAD and to absolute-form targets: a 404 to HEAD carried a
body (a keep-alive client read it as the next status line), and `GET http://host/ready` was
a 404 although a server MUST accept the absolute form (RFC 9112 §3.2.2)."""

from __future__ import annotations

import pytest
from proxy_fakes import FakeTransport

from proxy.admin import AdminLimits, AdminProtocol

PAGES = {"/ready": lambda: (200, "text/plain", b"ready\n")}


def _answers(data: bytes) -> bytes:
    proto, transport = AdminProtocol(PAGES, AdminLimits()), FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(data)
    out = transport.take()
    proto.connection_lost(None)
    return out


@pytest.mark.parametrize(
    ("request_line", "status"),
    [("HEAD /nope", b"404 Not Found"), ("HEAD /ready", b"200 OK")],
)
async def test_head_gets_the_headers_and_no_body_then_the_next_answer(
    request_line: str, status: bytes
) -> None:
    then = "GET /ready HTTP/1.1\r\n\r\n"
    out = _answers(f"{request_line} HTTP/1.1\r\nHost: a\r\n\r\n{then}".encode())
    first, second = out.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(status) and first.endswith(b"\r\n\r\n")
    assert b"content-length: 0" not in first  # GET's length, as RFC 9110 §9.3.2 says
    assert second.startswith(b"200 OK") and second.endswith(b"\r\n\r\nready\n")


async def test_a_wrong_method_still_gets_the_405_body() -> None:
    out = _answers(b"POST /ready HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 405") and out.endswith(b"method not allowed\n")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("http://127.0.0.1:15020/ready", b"200"),
        ("HTTP://proxy/ready?verbose=1", b"200"),
        ("/ready?x=1", b"200"),
        ("http://127.0.0.1:15020", b"404"),
        ("*", b"404"),
    ],
)
async def test_absolute_form_targets_name_the_same_pages(target: str, status: bytes) -> None:
    out = _answers(f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 " + status), out

"""The event-loop HTTP/1.1 protocol for WSGI apps: a fake transport, byte-literal requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from webhook.app import runs_inline
from webhook.wsgiloop import INLINE_ATTR, HttpProtocol, Limits, Server, call_app


class FakeTransport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.data += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.9", 40000), "sockname": ("127.0.0.1", 8443)}.get(
            name, default
        )


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers with what it was asked, so tests can see the environ."""
    body = environ["wsgi.input"].read()
    text = (
        f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']} "
        f"len={environ['CONTENT_LENGTH']} body={body.decode()} "
        f"x={environ.get('HTTP_X_THING', '-')} ct={environ.get('CONTENT_TYPE', '-')}"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


class Harness:
    def __init__(
        self,
        app: Any = echo_app,
        *,
        inline: Callable[[dict[str, Any]], bool] | None = lambda environ: True,
        limits: Limits | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=2)
        self.server = Server(
            app=app, executor=self.executor, limits=limits or Limits(), inline=inline
        )
        self.transport = FakeTransport()
        self.protocol = HttpProtocol(self.server, self.loop)
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.protocol.data_received(chunk)

    def settle(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            self.loop.run_until_complete(asyncio.sleep(0.005))
        assert until(), f"timed out; wrote {bytes(self.transport.data)!r}"

    def responses(self) -> list[bytes]:
        return [part for part in bytes(self.transport.data).split(b"HTTP/1.1 ")[1:] if part.strip()]

    def close(self) -> None:
        self.protocol.connection_lost(None)
        self.executor.shutdown(wait=True)
        self.loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def test_a_request_is_answered_with_its_length_and_the_connection_kept(harness: Harness) -> None:
    harness.feed(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing: one\r\nX-Thing: two\r\n\r\n")
    out = bytes(harness.transport.data)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.count(b"Content-Length:") == 1
    assert b"Date: " in out
    assert out.endswith(b"GET /a b?x=1 len=0 body= x=one,two ct=-")
    assert not harness.transport.closed


def test_pipelined_requests_are_answered_in_order(harness: Harness) -> None:
    harness.feed(
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /three HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    bodies = [r.rsplit(b"\r\n\r\n", 1)[1] for r in harness.responses()]
    assert [b.split()[1] for b in bodies] == [b"/one?", b"/two?", b"/three?"]


def test_a_request_split_across_every_byte(harness: Harness) -> None:
    raw = (
        b"POST /v HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
        b'Content-Length: 7\r\n\r\n{"a":1}'
    )
    harness.feed(*(raw[i : i + 1] for i in range(len(raw))))
    assert bytes(harness.transport.data).endswith(b'len=7 body={"a":1} x=- ct=application/json')


def test_a_chunked_body_reaches_the_app_whole_with_its_length(harness: Harness) -> None:
    harness.feed(
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    assert bytes(harness.transport.data).endswith(b"len=7 body=abcdefg x=- ct=-")


def test_expect_100_continue_is_answered_before_the_body(harness: Harness) -> None:
    harness.feed(
        b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    assert bytes(harness.transport.data) == b"HTTP/1.1 100 Continue\r\n\r\n"
    harness.feed(b"ok")
    assert bytes(harness.transport.data).endswith(b"body=ok x=- ct=-")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n",
         b"431"),
        (b"GET / HTTP/1.1\r\nBig: " + b"v" * 70_000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1_100_000, b"413"),
    ],
)  # fmt: skip
def test_unreadable_requests_get_a_status_and_the_connection_closes(
    raw: bytes, status: bytes
) -> None:
    h = Harness(limits=Limits(max_body=1_000_000))
    try:
        h.feed(raw)
        out = bytes(h.transport.data)
        assert out.startswith(b"HTTP/1.1 " + status), out[:80]
        assert b"Connection: close" in out
        assert h.transport.closed
    finally:
        h.close()


def test_an_upgrade_is_ignored_the_request_answered_and_the_connection_closed(
    harness: Harness,
) -> None:
    harness.feed(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x05hello"
    )
    out = bytes(harness.transport.data)
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out
    assert harness.transport.closed


def test_head_sends_the_length_but_no_body(harness: Harness) -> None:
    harness.feed(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n")
    head, _, body = bytes(harness.transport.data).partition(b"\r\n\r\n")
    assert body == b""
    assert b"Content-Length: " in head and b"Content-Length: 0" not in head


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    ],
)
def test_a_client_that_does_not_keep_alive_is_answered_then_closed(raw: bytes) -> None:
    h = Harness()
    try:
        h.feed(raw)
        assert b"Connection: close" in bytes(h.transport.data)
        assert h.transport.closed
    finally:
        h.close()


def test_pool_requests_keep_their_place_in_a_pipeline() -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            assert release.wait(5)
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    h = Harness(app, inline=lambda environ: environ["PATH_INFO"] != "/slow")
    try:
        h.feed(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
        assert bytes(h.transport.data) == b""  # /fast waits for /slow, which waits in the pool
        release.set()
        h.settle(lambda: len(h.responses()) == 2)
        assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in h.responses()] == [b"/slow", b"/fast"]
    finally:
        h.close()


def test_without_an_inline_predicate_every_request_runs_in_the_pool() -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(threading.current_thread().name)
        start_response("204 No Content", [])
        return []

    h = Harness(app, inline=None)
    try:
        h.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        h.settle(lambda: bool(h.responses()))
        assert seen and seen[0] != threading.current_thread().name
        assert b"Content-Length" not in bytes(h.transport.data)  # 204 has no body or length
    finally:
        h.close()


def test_an_app_that_crashes_gets_a_500_without_a_traceback() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise RuntimeError("secret internals")

    h = Harness(app)
    try:
        h.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        out = bytes(h.transport.data)
        assert out.startswith(b"HTTP/1.1 500 ")
        assert b"secret" not in out and b"Traceback" not in out
        assert h.transport.closed
    finally:
        h.close()


def test_a_client_that_stops_mid_request_gets_408() -> None:
    h = Harness(limits=Limits(read_seconds=0.05, keepalive_seconds=0.05))
    try:
        h.feed(b"GET / HTTP/1.1\r\nHost:")
        h.settle(lambda: h.transport.closed)
        assert bytes(h.transport.data).startswith(b"HTTP/1.1 408 ")
    finally:
        h.close()


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout() -> None:
    h = Harness(limits=Limits(keepalive_seconds=0.05))
    try:
        h.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        h.settle(lambda: h.transport.closed)
        assert len(h.responses()) == 1
    finally:
        h.close()


def test_shutdown_closes_idle_connections_and_lets_busy_ones_finish() -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        assert release.wait(5)
        start_response("200 OK", [])
        return [b"done"]

    busy = Harness(app, inline=lambda environ: False)
    idle = HttpProtocol(busy.server, busy.loop)
    idle_transport = FakeTransport()
    idle.connection_made(idle_transport)  # type: ignore[arg-type]
    try:
        busy.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        busy.server.shutdown()
        assert idle_transport.closed and not busy.transport.closed
        release.set()
        busy.settle(lambda: busy.transport.closed)
        out = bytes(busy.transport.data)
        assert out.endswith(b"done") and b"Connection: close" in out
    finally:
        busy.close()


def test_call_app_uses_the_length_of_what_is_sent() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "999"), ("Transfer-Encoding", "chunked")])
        return [b"ab", b"c"]

    answer = call_app(app, {})
    assert answer.body == b"abc" and answer.length == 999
    assert answer.headers == []  # framing headers are the server's


def test_the_control_plane_runs_only_waitless_requests_on_the_loop() -> None:
    def env(method: str, path: str, **extra: str) -> dict[str, Any]:
        return {"REQUEST_METHOD": method, "PATH_INFO": path, **extra}

    assert runs_inline(env("POST", "/validate"))
    assert runs_inline(env("POST", "/convert"))
    assert runs_inline(env("POST", "/v1/data/smictl/authz/allow"))
    assert runs_inline(env("GET", "/healthz"))
    assert runs_inline(env("GET", "/mesh/v1/policy"))
    assert not runs_inline(env("GET", "/mesh/v1/policy", HTTP_IF_NONE_MATCH='"sha256:x"'))
    assert not runs_inline(env("POST", "/mesh/v1/certificates"))
    assert not runs_inline(env("POST", "/apis/apply"))
    assert not runs_inline(env("DELETE", "/mesh/v1/endpoints"))


def test_the_app_factory_declares_its_predicate(tmp_path: Any) -> None:
    from webhook.app import create_app
    from webhook.settings import Settings

    app = create_app(Settings(store=tmp_path / "s.db", shipped_policies=False))
    assert getattr(app, INLINE_ATTR) is runs_inline

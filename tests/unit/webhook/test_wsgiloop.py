"""The event-loop HTTP/1.1 protocol for WSGI apps: a fake transport, byte-literal requests."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from smi.pki import CertificateAuthority
from webhook.app import runs_inline
from webhook.wsgiloop import INLINE_ATTR, PARK_ATTR, PARKED, HttpProtocol, Limits, Server, call_app


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
        **parking: Any,  # park=, max_parked= (only when given: the server reads the app's)
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=2)
        self.server = Server(
            app=app, executor=self.executor, limits=limits or Limits(), inline=inline, **parking
        )
        self.transport = FakeTransport()
        self.protocol = HttpProtocol(self.server, self.loop)
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]

    def connect(self) -> tuple[HttpProtocol, FakeTransport]:
        """Another connection to the same server."""
        transport = FakeTransport()
        protocol = HttpProtocol(self.server, self.loop)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

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
        parking = getattr(self.server, "parking", None)
        if parking is not None:
            parking.close()  # stops the watcher thread
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
    # The Data API asks who is calling: `app.Inline` decides, below.
    assert not runs_inline(env("POST", "/v1/data/smictl/authz/allow"))
    assert runs_inline(env("GET", "/healthz"))
    # A policy GET's caller may need a TokenReview (a call to the API server): never on the loop
    # (a long poll that can wait there is parked instead).
    assert not runs_inline(env("GET", "/mesh/v1/policy"))
    assert not runs_inline(env("GET", "/mesh/v1/policy", HTTP_IF_NONE_MATCH='"sha256:x"'))
    assert not runs_inline(env("POST", "/mesh/v1/certificates"))
    assert not runs_inline(env("POST", "/apis/apply"))
    assert not runs_inline(env("DELETE", "/mesh/v1/endpoints"))


def test_the_app_factory_declares_its_predicate(tmp_path: Any) -> None:
    from webhook.app import Inline, create_app
    from webhook.mesh import LongPolls
    from webhook.settings import Settings

    app = create_app(Settings(store=tmp_path / "s.db", shipped_policies=False))
    assert isinstance(getattr(app, INLINE_ATTR), Inline)
    assert isinstance(getattr(app, PARK_ATTR), LongPolls)


def test_a_caller_is_checked_on_the_loop_only_when_that_takes_no_call(app: Any) -> None:
    """The Data API and a plain policy GET run on the loop when the caller's token is known
    without a call (a bootstrap token here) or is refused at once; a token only a TokenReview
    could tell about takes the pool, where the call may wait."""
    from webhook.auth import TokenReviewer

    inline = getattr(app, INLINE_ATTR)
    token = workload_token(app)

    def env(method: str, path: str, auth: str = f"Bearer {token}", **extra: str) -> dict[str, Any]:
        return {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_AUTHORIZATION": auth, **extra}

    assert inline(env("POST", "/v1/data/smictl/authz"))
    assert inline(env("GET", "/mesh/v1/policy"))
    assert inline(env("POST", "/v1/data/smictl/authz", auth=""))  # a 401, at once
    assert not inline(env("GET", "/mesh/v1/policy", HTTP_IF_NONE_MATCH='"x"'))  # may wait
    assert inline(env("POST", "/validate", auth=""))  # the API server's: no token asked
    asked: list[str] = []

    def review(bearer: str) -> dict[str, Any]:
        asked.append(bearer)
        return {"authenticated": True, "audiences": ["smictl"],
                "user": {"username": "system:serviceaccount:shop:web"}}  # fmt: skip

    app.extensions["smictl"].authenticator = TokenReviewer(review, trust_domain="cluster.local")
    assert not inline(env("POST", "/v1/data/smictl/authz", auth="Bearer sa-token"))
    assert not inline(env("GET", "/mesh/v1/policy", auth="Bearer sa-token"))
    assert asked == []  # no call made on the loop
    app.extensions["smictl"].authenticator.authenticate("sa-token")  # reviewed (in the pool)
    assert inline(env("POST", "/v1/data/smictl/authz", auth="Bearer sa-token"))
    assert asked == ["sa-token"]


# --- long polls parked on the loop ---------------------------------------------------------------


class Tag:
    """A stand-in for the app's `Park` hook: one current tag, a poll is `GET /poll?<timeout>`
    with `If-None-Match: <tag>`."""

    def __init__(self, tag: str = "A") -> None:
        self.tag = tag
        self.changed = threading.Condition()
        self.watches = 0

    def parks(self, environ: dict[str, Any]) -> tuple[str, float] | None:
        if environ["PATH_INFO"] != "/poll" or environ.get("HTTP_IF_NONE_MATCH") != self.tag:
            return None
        return self.tag, float(environ["QUERY_STRING"] or "5")

    def watch(self, tag: str, timeout: float) -> str:
        with self.changed:
            self.watches += 1
            self.changed.wait_for(lambda: self.tag != tag, timeout)
            return self.tag

    def set(self, tag: str) -> None:
        with self.changed:
            self.tag = tag
            self.changed.notify_all()


def tag_app(hook: Tag) -> Callable[..., Iterable[bytes]]:
    """Answers a woken poll as the control plane does (304 if its tag is still current, else
    200 with the tag); a poll that was not parked says `pool`, other paths echo themselves.
    Every body names the thread that answered."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        thread = threading.current_thread().name.encode()
        parked = environ.get(PARKED)
        if parked is not None:
            if parked[0] == hook.tag:
                start_response("304 Not Modified", [("ETag", hook.tag)])
                return []
            start_response("200 OK", [("ETag", hook.tag)])
            return [b"tag=" + hook.tag.encode() + b" on " + thread]
        if environ["PATH_INFO"] == "/poll":
            start_response("200 OK", [])
            return [b"pool on " + thread]
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode() + b" on " + thread]

    return app


def poll(tag: str = "A", timeout: str = "5") -> bytes:
    return f"GET /poll?{timeout} HTTP/1.1\r\nHost: h\r\nIf-None-Match: {tag}\r\n\r\n".encode()


def bodies(h: Harness, transport: FakeTransport | None = None) -> list[bytes]:
    data = bytes((transport or h.transport).data)
    return [r.rsplit(b"\r\n\r\n", 1)[1] for r in data.split(b"HTTP/1.1 ")[1:] if r.strip()]


@pytest.fixture
def tag() -> Tag:
    return Tag()


@pytest.fixture
def parking(tag: Tag) -> Iterator[Harness]:
    h = Harness(tag_app(tag), inline=lambda environ: environ["PATH_INFO"] != "/poll", park=tag)
    yield h
    h.close()


def test_a_waiting_poll_is_parked_without_a_thread_and_woken_by_a_change(
    parking: Harness, tag: Tag
) -> None:
    parking.feed(poll("A"))
    parking.settle(lambda: tag.watches > 0)  # the watcher is running
    parking.loop.run_until_complete(asyncio.sleep(0.05))
    assert bytes(parking.transport.data) == b""
    assert parking.server.parking is not None and len(parking.server.parking) == 1
    assert parking.executor._threads == set()  # type: ignore[attr-defined]  # no pool thread
    tag.set("B")
    parking.settle(lambda: bool(parking.responses()))
    out = bytes(parking.transport.data)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"ETag: B" in out
    loop_thread = threading.current_thread().name.encode()
    assert bodies(parking) == [b"tag=B on " + loop_thread]  # answered on the loop
    assert len(parking.server.parking) == 0 and not parking.transport.closed


def test_a_parked_poll_times_out_with_a_304(parking: Harness, tag: Tag) -> None:
    started = time.monotonic()
    parking.feed(poll("A", timeout="0.1"))
    parking.settle(lambda: bool(parking.responses()))
    assert time.monotonic() - started >= 0.1
    out = bytes(parking.transport.data)
    assert out.startswith(b"HTTP/1.1 304 ") and b"Content-Length" not in out
    assert parking.server.parking is not None and len(parking.server.parking) == 0
    assert not parking.transport.closed  # keep-alive: the proxy polls again on it
    parking.feed(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert bodies(parking)[-1].startswith(b"/next on ")


def test_a_change_to_the_same_tag_wakes_nobody(parking: Harness, tag: Tag) -> None:
    parking.feed(poll("A"))
    parking.settle(lambda: tag.watches > 0)
    tag.set("A")  # a new revision with the same content
    parking.loop.run_until_complete(asyncio.sleep(0.2))
    assert bytes(parking.transport.data) == b""
    assert parking.server.parking is not None and len(parking.server.parking) == 1


def test_a_poll_for_another_tag_is_answered_at_once(parking: Harness) -> None:
    parking.feed(poll("OLD"))
    parking.settle(lambda: bool(parking.responses()))
    assert bodies(parking)[0].startswith(b"pool on ")  # the app's ordinary path
    assert parking.server.parking is None  # nothing was parked


def test_requests_pipelined_after_a_parked_poll_wait_for_it_in_order(
    parking: Harness, tag: Tag
) -> None:
    parking.feed(poll("A") + b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n" + poll("B"))
    parking.loop.run_until_complete(asyncio.sleep(0.1))
    assert bytes(parking.transport.data) == b""  # /after waits behind the parked poll
    tag.set("B")
    # The first poll is woken and answered, /after follows, and the second poll (for B, now
    # current) is parked in turn.
    parking.settle(lambda: len(parking.responses()) == 2)
    loop_thread = threading.current_thread().name.encode()
    assert bodies(parking) == [b"tag=B on " + loop_thread, b"/after on " + loop_thread]
    assert parking.server.parking is not None and len(parking.server.parking) == 1
    tag.set("C")
    parking.settle(lambda: len(parking.responses()) == 3)
    assert bodies(parking)[2] == b"tag=C on " + loop_thread
    assert not parking.transport.closed


def test_a_client_that_goes_away_frees_its_place_at_once(parking: Harness, tag: Tag) -> None:
    parking.feed(poll("A"))
    assert parking.server.parking is not None and len(parking.server.parking) == 1
    parking.protocol.connection_lost(ConnectionResetError())
    assert len(parking.server.parking) == 0  # at once, not at the poll's timeout
    assert parking.server.parking.by_tag == {}
    tag.set("B")  # waking writes nothing to the dead connection (FakeTransport would raise)
    parking.loop.run_until_complete(asyncio.sleep(0.1))
    assert bytes(parking.transport.data) == b""


def test_many_polls_park_and_every_one_is_woken(parking: Harness, tag: Tag) -> None:
    conns = [parking.connect() for _ in range(300)]
    for protocol, _ in conns:
        protocol.data_received(poll("A"))
    assert parking.server.parking is not None and len(parking.server.parking) == 300
    parking.feed(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")  # others are served meanwhile
    assert bodies(parking) == [b"/healthz on " + threading.current_thread().name.encode()]
    tag.set("B")
    parking.settle(lambda: all(transport.data for _, transport in conns))
    assert all(bodies(parking, t)[0].startswith(b"tag=B") for _, t in conns)
    assert len(parking.server.parking) == 0
    assert parking.executor._threads == set()  # type: ignore[attr-defined]


def test_past_the_cap_a_poll_takes_the_ordinary_path(tag: Tag) -> None:
    h = Harness(tag_app(tag), inline=lambda e: e["PATH_INFO"] != "/poll", park=tag, max_parked=2)
    try:
        extra = [h.connect() for _ in range(2)]
        for protocol, _ in extra:
            protocol.data_received(poll("A"))
        h.feed(poll("A"))
        h.settle(lambda: bool(h.responses()))
        assert bodies(h)[0].startswith(b"pool on ")
        assert h.server.parking is not None and len(h.server.parking) == 2
    finally:
        h.close()


def test_shutdown_answers_parked_polls_at_once_and_closes(parking: Harness, tag: Tag) -> None:
    parking.feed(poll("A", timeout="30"))
    started = time.monotonic()
    parking.server.shutdown()
    parking.settle(lambda: parking.transport.closed)
    assert time.monotonic() - started < 1.0
    out = bytes(parking.transport.data)
    assert out.startswith(b"HTTP/1.1 304 ") and b"Connection: close" in out


def test_a_client_that_half_closes_while_parked_is_answered_and_closed(
    parking: Harness, tag: Tag
) -> None:
    parking.feed(poll("A", timeout="30"))
    parking.protocol.eof_received()
    assert parking.server.parking is not None and len(parking.server.parking) == 0
    out = bytes(parking.transport.data)
    assert out.startswith(b"HTTP/1.1 304 ") and parking.transport.closed


def test_a_half_close_answers_the_parked_poll_and_what_was_pipelined_after_it(
    parking: Harness, tag: Tag
) -> None:
    # As behind a pool request: every request asked for is answered, then the connection ends.
    parking.feed(poll("A", timeout="30") + b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
    parking.protocol.eof_received()
    parking.settle(lambda: parking.transport.closed)
    assert len(bodies(parking)) == 2 and bodies(parking)[1].startswith(b"/healthz on ")


class FakeTLSTransport(FakeTransport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sslcontext":
            return ssl.create_default_context()
        return super().get_extra_info(name, default)


def test_over_tls_a_half_close_answers_the_parked_poll_and_leaves_the_close_to_asyncio(
    tag: Tag,
) -> None:
    h = Harness(tag_app(tag), inline=lambda e: e["PATH_INFO"] != "/poll", park=tag)
    transport = FakeTLSTransport()
    h.protocol.connection_made(transport)  # type: ignore[arg-type]
    try:
        h.feed(poll("A", timeout="30"))
        # None: asyncio shuts a TLS stream down whatever this returns (True only gets logged).
        assert h.protocol.eof_received() is None
        assert h.server.parking is not None and len(h.server.parking) == 0
        assert bytes(transport.data).startswith(b"HTTP/1.1 304 ")
    finally:
        h.close()


def test_a_proxy_that_stops_mid_poll_over_tls_logs_nothing_from_asyncio(
    tag: Tag, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # asyncio logged "returning true from eof_received() has no effect when using ssl", a
    # plain line in the serve log's JSON lines, for every proxy that stopped during a poll.
    ca = CertificateAuthority.create()
    cert, key = ca.issue_server(dns_names=["localhost"])
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem().decode())
    h = Harness(tag_app(tag), inline=lambda e: e["PATH_INFO"] != "/poll", park=tag)
    server = h.server
    harness_own = set(server.connections)  # the Harness's fake connection
    try:
        with caplog.at_level("DEBUG", logger="asyncio"):
            listener = h.loop.run_until_complete(
                h.loop.create_server(
                    lambda: HttpProtocol(server, h.loop), "127.0.0.1", 0, ssl=server_ctx
                )
            )
            port = listener.sockets[0].getsockname()[1]
            _, writer = h.loop.run_until_complete(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
                )
            )
            writer.write(poll("A", timeout="30"))
            h.settle(lambda: server.parking is not None and len(server.parking) == 1)
            writer.close()  # TLS close_notify: the server's protocol sees EOF
            h.settle(lambda: not server.connections - harness_own)
            listener.close()
            h.loop.run_until_complete(listener.wait_closed())
        assert server.parking is not None and len(server.parking) == 0
        eof_lines = [r.getMessage() for r in caplog.records if "eof_received" in r.getMessage()]
        assert eof_lines == []
    finally:
        h.close()


def test_an_app_without_the_hook_waits_in_the_pool_as_before(tag: Tag) -> None:
    h = Harness(tag_app(tag), inline=lambda e: e["PATH_INFO"] != "/poll")
    try:
        h.feed(poll("A"))
        h.settle(lambda: bool(h.responses()))
        assert bodies(h)[0].startswith(b"pool on ") and h.server.parking is None
    finally:
        h.close()


# --- the control plane's long polls on the loop --------------------------------------------------


def headers_of(response: bytes) -> dict[str, str]:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def workload_token(app: Any, identity: str = "shop/web") -> str:
    """A bootstrap token of the app's mesh CA: the policy is served to workloads only."""
    from smi.identity import Identity
    from webhook.auth import BootstrapTokens, token_key

    plane = app.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    return tokens.issue(Identity.parse(identity))


def policy_poll(h: Harness, etag: str, timeout: str = "5", *, token: str | None = None) -> bytes:
    token = workload_token(h.server.app) if token is None else token
    return (
        f"GET /mesh/v1/policy?timeout={timeout} HTTP/1.1\r\nHost: h\r\n"
        f"If-None-Match: {etag}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


def sa(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": "shop"}}  # fmt: skip


def svc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"ports": [{"port": 8080}]}}  # fmt: skip


@pytest.fixture
def plane_loop(app: Any) -> Iterator[Harness]:
    h = Harness(app, inline=None)  # the app's own predicate and park hook
    yield h
    h.close()


def current_etag(h: Harness) -> str:
    """The ETag a proxy would hold now. Read from the plane, not by a GET through `h`: a policy
    GET runs in the pool (its caller may need a TokenReview), and the thread it starts would
    stay in the executor, where the tests look for threads held by parked polls."""
    return f'"{h.server.app.extensions["smictl"].view().etag}"'


def test_the_control_plane_parks_its_long_polls_and_answers_on_a_change(
    plane_loop: Harness, app: Any
) -> None:
    etag = current_etag(plane_loop)
    plane_loop.feed(policy_poll(plane_loop, etag))
    plane_loop.loop.run_until_complete(asyncio.sleep(0.2))
    assert bytes(plane_loop.transport.data) == b""
    assert plane_loop.executor._threads == set()  # type: ignore[attr-defined]  # no thread held
    store = app.extensions["smictl"].store
    store.apply([sa("web")])  # a new revision, the same policy: nobody is woken
    plane_loop.loop.run_until_complete(asyncio.sleep(0.3))
    assert bytes(plane_loop.transport.data) == b""
    store.apply([svc("web")])
    plane_loop.settle(lambda: bool(plane_loop.responses()))
    response = plane_loop.responses()[0]
    head = headers_of(response)
    assert response.startswith(b"200 OK") and head["etag"] != etag
    assert head["x-smictl-revision"] == "2" and "retry-after" not in head
    assert b'"shop/web"' in response
    assert plane_loop.executor._threads == set()  # type: ignore[attr-defined]


def test_a_parked_control_plane_poll_times_out_with_the_same_answer_as_before(
    plane_loop: Harness,
) -> None:
    etag = current_etag(plane_loop)
    started = time.monotonic()
    plane_loop.feed(policy_poll(plane_loop, etag, timeout="0.2"))
    plane_loop.settle(lambda: bool(plane_loop.responses()))
    assert time.monotonic() - started >= 0.2
    response = plane_loop.responses()[0]
    head = headers_of(response)
    assert response.startswith(b"304 ") and head["etag"] == etag
    assert head["x-smictl-revision"] == "0" and head["cache-control"] == "no-cache"
    assert "retry-after" not in head  # it waited: no Retry-After, as from a thread
    assert plane_loop.executor._threads == set()  # type: ignore[attr-defined]


def test_the_control_plane_hook_parks_only_what_would_wait(app: Any) -> None:
    hook = getattr(app, PARK_ATTR)
    etag = app.extensions["smictl"].view().etag

    token = workload_token(app)

    def env(method: str = "GET", query: str = "", inm: str | None = f'"{etag}"') -> dict[str, Any]:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": "/mesh/v1/policy", "QUERY_STRING": query,
                   "HTTP_AUTHORIZATION": f"Bearer {token}"}  # fmt: skip
        if inm is not None:
            environ["HTTP_IF_NONE_MATCH"] = inm
        return environ

    assert hook.parks(env()) == (etag, 5.0)  # the settings' long_poll_seconds
    assert hook.parks(env(query="timeout=2")) == (etag, 2.0)
    assert hook.parks(env(query="timeout=99")) == (etag, 5.0)
    assert hook.parks(env(inm=f'"sha256:old", W/"{etag}"')) == (etag, 5.0)
    assert hook.parks(env(inm='"sha256:old"')) is None  # answered at once, with the policy
    assert hook.parks(env(inm=None)) is None
    assert hook.parks(env(query="timeout=soon")) is None  # the app's 400
    assert hook.parks(env(query="timeout=0")) is None
    assert hook.parks(env(method="HEAD")) is None
    # A body would be held, whole, while parked (16 MiB each, a thousand parked): not parked.
    assert hook.parks(env() | {"CONTENT_LENGTH": "16777216"}) is None
    assert hook.parks(env() | {"CONTENT_LENGTH": "0"}) == (etag, 5.0)
    # A caller to refuse is not parked: the app answers it 401 at once.
    assert hook.parks(env() | {"HTTP_AUTHORIZATION": ""}) is None
    assert hook.parks(env() | {"HTTP_AUTHORIZATION": f"Bearer {token[:-2]}xx"}) is None
    assert hook.watch("sha256:other", 1.0) == etag  # at once: the tag differs


def test_a_poll_parked_on_a_tag_the_watcher_never_saw_is_woken(
    plane_loop: Harness, app: Any
) -> None:
    """A -> B -> A while the watcher idles (nothing parked): a proxy that fetched B parks on
    it; the current policy is A again, which the watcher last saw. It must be woken at once,
    not held until its timeout (the thread path answered it at once)."""
    from smi.store.base import ObjectKey

    store = app.extensions["smictl"].store
    a = current_etag(plane_loop)
    plane_loop.feed(policy_poll(plane_loop, a, timeout="0.2"))  # the watcher sees A, then idles
    plane_loop.settle(lambda: bool(plane_loop.responses()))
    plane_loop.transport.data.clear()
    plane_loop.loop.run_until_complete(asyncio.sleep(1.3))
    store.apply([svc("web")])
    b = current_etag(plane_loop)
    store.delete([ObjectKey.of(svc("web"))])
    started = time.monotonic()
    plane_loop.feed(policy_poll(plane_loop, b, timeout="4"))
    plane_loop.settle(lambda: bool(plane_loop.responses()), timeout=6)
    assert time.monotonic() - started < 2.0  # before: 4 s, its whole timeout
    response = plane_loop.responses()[0]
    assert response.startswith(b"200 OK") and headers_of(response)["etag"] == a

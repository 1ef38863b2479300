"""HTTP/1.1 on an asyncio event loop for a WSGI app: the protocol of `webhook.worker.LoopWorker`.

Why not gunicorn's gthread worker: under load its poller thread and pool threads contend for the
GIL, and every call that releases it (each ctypes call into rego-cpp, SQLite, `ssl` writes) can
cost a thread switch. Measured on 2 cores at 500 reviews/s, a review that needs about 1 ms of
CPU spent a median 21 ms inside the app waiting for the GIL. Here one thread parses (httptools),
answers and runs the fast requests itself, so nothing contends; only requests the app marks as
possibly blocking (long polls, store writes, calls to the API server) go to a small thread pool,
where they mostly sleep.

The app says which requests may run on the loop with an attribute `INLINE_ATTR` holding
`predicate(environ) -> bool`; an app without it gets every request run in the pool, as
gthread would.

Long polls are parked on the loop instead of holding a pool thread each, when the app declares
a `Park` hook in the attribute `PARK_ATTR`: `hook.parks(environ)` says, cheaply and on the loop,
"this request is a long poll for tag E with timeout T that would wait now". The loop then keeps
the request — a connection and a timer, no thread — until one watcher thread per worker
(`hook.watch`, which blocks on the app's store) reports a current tag other than E, or T
passes, and then runs the app for it on the loop with `environ[PARKED] = (E, parked_since)`,
which tells the app to answer at once. A parked request is busy like a pool request: requests
pipelined after it wait their turn. A client that goes away frees its place at once; a server
shutting down answers every parked request at once (the app decides the answer: 304 unless the
tag moved). At most `Server.max_parked` requests are parked; past that a poll takes the path it
would take without the hook (the pool). An app without the attribute gets no parking.

Requests are read whole before the app runs (bounded by `max_body`; the control plane's
requests are JSON documents it parses whole anyway), pipelined requests are answered in
order, `Expect: 100-continue` is honoured, and answers are sent with a Content-Length.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol, cast
from urllib.parse import unquote_to_bytes

import httptools

INLINE_ATTR = "smictl_inline"
PARK_ATTR = "smictl_park"
# In the environ of a request answered after it was parked: (the tag it waited on, when it was
# parked as time.perf_counter()). The app must answer such a request at once, without waiting.
PARKED = "smictl.parked"
# The caller's verified TLS client certificate (`ssl.SSLObject.getpeercert()`'s dict), or None:
# none sent, or the listener asks for none (webhook.tls, a client CA). webhook.callers reads it.
PEER_CERT = "smictl.peer_cert"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Inline = Callable[[dict[str, Any]], bool]

_log = logging.getLogger("smictl.server")


class Park(Protocol):
    """What an app declares (in `PARK_ATTR`) to have its long polls parked on the loop."""

    def parks(self, environ: dict[str, Any]) -> tuple[str, float] | None:
        """`(tag, timeout seconds)` if this request would wait now for the current tag to
        change; None to run it as any other request. Called on the loop: must not block."""

    def watch(self, tag: str, timeout: float) -> str:
        """Block until the current tag differs from `tag` or `timeout` passes; return the
        current tag. Called on the watcher thread, never on the loop."""


_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}  # fmt: skip
_NO_BODY = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client may make the worker hold; answered 400/408/413/431."""

    max_body: int = 16 * 1024 * 1024
    max_header_count: int = 100
    max_header_bytes: int = 64 * 1024
    keepalive_seconds: float = 75.0
    read_seconds: float = 30.0  # from the first byte of a request to its last


@dataclass(slots=True)
class Request:
    method: str = ""
    url: bytearray = field(default_factory=bytearray)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_bytes: int = 0
    body: list[bytes] = field(default_factory=list)
    body_bytes: int = 0
    keep_alive: bool = True
    version: str = "1.1"


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Date:
    """The Date header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


_DATE = _Date()


@dataclass
class Server:
    """What every connection of one worker shares."""

    app: WSGIApp
    executor: Executor
    scheme: str = "http"
    limits: Limits = field(default_factory=Limits)
    inline: Inline | None = None
    on_request: Callable[[], None] = lambda: None  # counts requests (gunicorn's max_requests)
    connections: set[HttpProtocol] = field(default_factory=set)
    closing: bool = False
    park: Park | None = None  # from the app's PARK_ATTR when not given
    max_parked: int = 1000
    parking: Parking | None = None  # made on the first parked request (it needs the loop)

    def __post_init__(self) -> None:
        if self.inline is None:
            self.inline = getattr(self.app, INLINE_ATTR, None)
        if self.park is None:
            self.park = getattr(self.app, PARK_ATTR, None)

    def runs_inline(self, environ: dict[str, Any]) -> bool:
        return self.inline is not None and self.inline(environ)

    def try_park(self, conn: HttpProtocol, req: Request, environ: dict[str, Any]) -> Parked | None:
        """Park the request if the app says it would wait and there is room; None otherwise."""
        if self.park is None or self.closing:
            return None
        try:
            wants = self.park.parks(environ)
        except Exception:
            _log.exception("the app's park hook failed; the request runs as usual")
            return None
        if wants is None:
            return None
        tag, timeout = wants
        if self.parking is None:
            self.parking = Parking(self.park, conn.loop, self.max_parked)
        parked = Parked(conn, req, environ, tag, time.perf_counter())
        return parked if self.parking.add(parked, timeout) else None

    def shutdown(self) -> None:
        """Stop reading new requests: idle connections close now, busy ones after their answer,
        parked ones are answered now."""
        self.closing = True
        if self.parking is not None:
            self.parking.close()
        for conn in list(self.connections):
            conn.close_when_idle()


@dataclass(eq=False, slots=True)
class Parked:
    """A request waiting on the loop for the app's tag to move (see `Park`)."""

    conn: HttpProtocol
    req: Request
    environ: dict[str, Any]
    tag: str
    since: float  # time.perf_counter() when parked
    timer: asyncio.TimerHandle | None = None


class Parking:
    """The parked requests of one worker, and the watcher thread that wakes them.

    Everything but `_watch` runs on the loop thread. The watcher runs only while requests are
    parked: it blocks in `hook.watch` (the app's store wait), and when the tag it sees changes
    hands the new tag to the loop, which wakes every request parked on another tag, a batch per
    loop iteration so that other connections are served in between. Idle, it blocks on an event.
    """

    WATCH_SECONDS = 1.0  # how long one `hook.watch` call may block: how soon the watcher idles
    WAKE_BATCH = 64  # requests answered per loop iteration when a change wakes many
    RETRY_SECONDS = 1.0  # after a failed `hook.watch`

    def __init__(self, hook: Park, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.hook = hook
        self.loop = loop
        self.limit = limit
        self.by_tag: dict[str, dict[Parked, None]] = {}  # insertion-ordered: woken first-in first
        self.count = 0
        self.waking: collections.deque[Parked] = collections.deque()
        self.closed = False
        self._active = threading.Event()  # set while requests are parked: the watcher runs
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return self.count

    def add(self, parked: Parked, timeout: float) -> bool:
        if self.closed or self.count >= self.limit:
            return False
        self.by_tag.setdefault(parked.tag, {})[parked] = None
        self.count += 1
        parked.timer = self.loop.call_later(timeout, self._expire, parked)
        self._active.set()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="smictl-park-watcher", daemon=True
            )
            self._thread.start()
        return True

    def discard(self, parked: Parked) -> bool:
        """Forget a parked request (woken, timed out, or its client gone); False if it was not."""
        polls = self.by_tag.get(parked.tag)
        if polls is None or parked not in polls:
            return False
        del polls[parked]
        if not polls:
            del self.by_tag[parked.tag]
        self.count -= 1
        if parked.timer is not None:
            parked.timer.cancel()
            parked.timer = None
        if self.count == 0:
            self._active.clear()
        return True

    def close(self) -> None:
        """Shutting down: answer every parked request now and stop the watcher."""
        self.closed = True
        self._active.set()  # the watcher sees `closed` and ends
        self._wake([p for polls in self.by_tag.values() for p in polls])

    def _expire(self, parked: Parked) -> None:
        parked.timer = None
        if self.discard(parked):
            parked.conn.resume(parked)

    def _changed(self, tag: str) -> None:
        """The watcher saw `tag`: wake every request parked on another."""
        self._wake([p for t, polls in self.by_tag.items() if t != tag for p in polls])

    def _wake(self, woken: list[Parked]) -> None:
        for parked in woken:
            self.discard(parked)
        idle = not self.waking
        self.waking.extend(woken)
        if idle and self.waking:
            self.loop.call_soon(self._wake_batch)

    def _wake_batch(self) -> None:
        for _ in range(min(self.WAKE_BATCH, len(self.waking))):
            parked = self.waking.popleft()
            parked.conn.resume(parked)
        if self.waking:
            self.loop.call_soon(self._wake_batch)

    def _watch(self) -> None:
        seen = ""  # no tag: the first `watch` returns the current one at once
        while True:
            if not self._active.is_set():
                seen = ""  # idle: what it saw is stale by the time requests are parked again
                self._active.wait()
            if self.closed:
                return
            try:
                tag = self.hook.watch(seen, self.WATCH_SECONDS)
            except Exception:
                _log.exception("the long poll watcher failed; retrying")
                time.sleep(self.RETRY_SECONDS)
                continue
            seen = tag
            # Reported after every wait, not only when it differs from the last one: the
            # view also moves outside this thread (a request compiles it on the loop), so a
            # request can be parked on a tag this thread never saw (A -> B -> A); `_changed`
            # wakes only requests parked on another tag, so a report costs a dict walk.
            try:
                self.loop.call_soon_threadsafe(self._changed, tag)
            except RuntimeError:  # the loop is closed: the worker is gone
                return


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request: Request | None = None
        self.queue: collections.deque[Request] = collections.deque()
        self.busy = False  # a request is being answered (inline or in the pool)
        self.write_paused = False
        self.read_paused = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.reading = False  # the read timer runs: a request (or bytes before one) arrived
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.peer_cert: dict[str, Any] | None = None
        self.parked: Parked | None = None  # the request waiting on the loop (then busy too)

    # --- connection -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        self.local = (str(local[0]), int(local[1]))
        # Read once: the handshake is over when a TLS transport reaches its protocol.
        self.peer_cert = transport.get_extra_info("peercert") or None
        self.server.connections.add(self)
        if self.server.closing:
            self._close()
            return
        self._arm(self.limits.keepalive_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self._disarm()
        self._unpark()  # the client is gone: its place is free now

    def _unpark(self) -> None:
        if self.parked is not None:
            if self.server.parking is not None:
                self.server.parking.discard(self.parked)
            self.parked = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._next()

    def data_received(self, data: bytes) -> None:
        # Armed once per request: bytes that begin none (CRLFs before a request line) must not
        # push the deadline back.
        if not self.reading and not self.busy:
            self.reading = True
            self._arm(self.limits.read_seconds)
        try:
            self.parser.feed_data(data)
        except _Reject as exc:
            self._fail(exc.status, str(exc))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._fail(cause.status, str(cause))
            else:
                self._fail(400, "malformed request")
        except httptools.HttpParserUpgrade:
            pass  # not switching (RFC 9110 §7.8 lets a server ignore Upgrade); closes when answered
        except httptools.HttpParserError:
            self._fail(400, "malformed request")

    def eof_received(self) -> bool | None:
        if not self.busy and not self.queue:
            return None  # close now
        self.read_paused = True  # answer what was asked, then close (keep_alive is off below)
        for req in self.queue:
            req.keep_alive = False
        parked = self.parked
        if parked is not None:  # the client has stopped sending: answer now, not when woken
            if not self.queue:  # else the last request pipelined after it closes the connection
                parked.req.keep_alive = False
            if self.server.parking is not None:
                self.server.parking.discard(parked)
            self.resume(parked)
        # TLS cannot stay half-open: asyncio shuts it down whatever this returns, and for True
        # logs a plain-text line into the JSON log (each proxy that stops mid-poll). The parked
        # poll answered above still goes out after a close_notify (not after a bare FIN).
        if self.transport is not None and self.transport.get_extra_info("sslcontext"):
            return None
        return True

    # --- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.request = Request()

    def on_url(self, url: bytes) -> None:
        assert self.request is not None
        self.request.url += url
        if len(self.request.url) > self.limits.max_header_bytes:
            raise _Reject(431, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.request
        assert req is not None
        req.headers.append((name, value))
        req.header_bytes += len(name) + len(value) + 4
        if len(req.headers) > self.limits.max_header_count:
            raise _Reject(431, "too many header fields")
        if req.header_bytes > self.limits.max_header_bytes:
            raise _Reject(431, "header fields too large")

    def on_headers_complete(self) -> None:
        req = self.request
        assert req is not None
        req.method = self.parser.get_method().decode("ascii", "replace")
        req.version = self.parser.get_http_version()
        if self.parser.should_upgrade():
            req.keep_alive = False  # what follows would be another protocol: answer, then close
        expects = any(
            name.lower() == b"expect" and value.lower() == b"100-continue"
            for name, value in req.headers
        )
        if expects and self.transport is not None and not self.closed:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        req = self.request
        assert req is not None
        req.body_bytes += len(chunk)
        if req.body_bytes > self.limits.max_body:
            raise _Reject(413, f"request body larger than {self.limits.max_body} bytes")
        req.body.append(chunk)

    def on_message_complete(self) -> None:
        req = self.request
        assert req is not None
        self.request = None
        req.keep_alive = (
            req.keep_alive and bool(self.parser.should_keep_alive()) and not self.server.closing
        )
        self.queue.append(req)
        if len(self.queue) > 8 and not self.read_paused and self.transport is not None:
            self.read_paused = True  # a client pipelining faster than we answer waits
            self.transport.pause_reading()
        self._next()

    # --- answering ------------------------------------------------------------------------------

    def _next(self) -> None:
        while self.queue and not self.busy and not self.write_paused and not self.closed:
            req = self.queue.popleft()
            self._disarm()
            environ = self._environ(req)
            self.server.on_request()
            parked = self.server.try_park(self, req, environ)
            if parked is not None:  # answered by `resume`, when woken or timed out
                self.busy = True
                self.parked = parked
                return
            if self.server.runs_inline(environ):
                self._send(req, call_app(self.server.app, environ))
                continue
            self.busy = True
            future = self.loop.run_in_executor(
                self.server.executor, call_app, self.server.app, environ
            )
            future.add_done_callback(functools.partial(self._pool_done, req))
            return
        if self.read_paused and not self.queue and not self.busy and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        if not self.busy and not self.queue and not self.closed:
            if self.server.closing:
                self._close()
            elif self.request is None:
                self.reading = False
                self._arm(self.limits.keepalive_seconds)
            else:  # the next request began arriving while this one was answered
                self.reading = True
                self._arm(self.limits.read_seconds)

    def resume(self, parked: Parked) -> None:
        """Answer a parked request now (the app answers at once: it sees `PARKED`)."""
        if self.parked is not parked:
            return  # its client went away meanwhile
        self.parked = None
        self.busy = False
        if self.closed:
            return
        parked.environ[PARKED] = (parked.tag, parked.since)
        self._send(parked.req, call_app(self.server.app, parked.environ))
        self._next()

    def _pool_done(self, req: Request, future: asyncio.Future[Answer]) -> None:
        self.busy = False
        if future.cancelled():
            self._close()
            return
        self._send(req, future.result())
        self._next()

    def _send(self, req: Request, answer: Answer) -> None:
        if self.closed or self.transport is None:
            return
        keep_alive = req.keep_alive and not answer.close and not self.server.closing
        head = [f"HTTP/1.1 {answer.status}\r\n".encode("latin-1")]
        for name, value in answer.headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        body = answer.body
        if answer.code in _NO_BODY:
            body = b""
        elif req.method == "HEAD":
            length = answer.length if answer.length is not None else len(body)
            head.append(b"Content-Length: %d\r\n" % length)
            body = b""
        else:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"Date: " + _DATE.value() + b"\r\n")
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        self.transport.write(b"".join(head))
        if not keep_alive:
            self._close()

    def _fail(self, status: int, reason: str) -> None:
        """Answer a request that could not be read, and close: the stream is no longer framed."""
        if self.closed or self.transport is None:
            return
        body = f'{{"error":"{reason}","code":"SMI7010"}}'.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s"
            % (status, _REASONS.get(status, "Error").encode(), len(body), body)
        )
        self._close()

    def close_when_idle(self) -> None:
        if not self.busy and not self.queue:
            self._close()

    def _close(self) -> None:
        self.closed = True
        self.queue.clear()
        self._disarm()
        self._unpark()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.busy or self.queue:
            return
        if self.request is not None:
            self._fail(408, "request not received in time")
        else:
            self._close()  # an idle keep-alive connection

    # --- WSGI -----------------------------------------------------------------------------------

    def _environ(self, req: Request) -> dict[str, Any]:
        url = httptools.parse_url(bytes(req.url))
        path = unquote_to_bytes(url.path or b"/").decode("latin-1")
        body = b"".join(req.body)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": req.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": (url.query or b"").decode("latin-1"),
            "RAW_URI": req.url.decode("latin-1"),
            "SERVER_NAME": self.local[0],
            "SERVER_PORT": str(self.local[1]),
            "SERVER_PROTOCOL": f"HTTP/{req.version}",
            "REMOTE_ADDR": self.peer[0],
            "REMOTE_PORT": str(self.peer[1]),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.server.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            PEER_CERT: self.peer_cert,
        }
        for raw_name, raw_value in req.headers:
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if name in {"CONTENT_LENGTH", "TRANSFER_ENCODING"}:
                continue  # the body is read whole: CONTENT_LENGTH above is its real length
            key = "HTTP_" + name
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


@dataclass(frozen=True, slots=True)
class Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    # The app's own Content-Length (sent only for HEAD: otherwise the length of what is sent).
    length: int | None
    close: bool

    @property
    def code(self) -> int:
        return int(self.status[:3])


def call_app(app: WSGIApp, environ: dict[str, Any]) -> Answer:
    """Run the app for one request and collect its whole answer; a crash is a bare 500."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return chunks.append

    chunks: list[bytes] = []
    try:
        result = app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the app returned without calling start_response")
    except Exception:
        _log.exception("unhandled error in the app")
        body = b'{"error":"internal error","code":"SMI7000"}'
        return Answer(
            "500 Internal Server Error",
            [("Content-Type", "application/json")],
            body,
            None,
            close=True,
        )
    status, headers = started
    length: int | None = None
    close = False
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "content-length":
            length = int(value)
            continue
        if lower == "connection":
            close = value.lower() == "close"
            continue
        elif lower in {"transfer-encoding", "keep-alive", "date"}:
            continue  # framing is ours: the body is sent whole with its length
        kept.append((name, value))
    return Answer(status, kept, b"".join(chunks), length, close)

"""TLS for the mesh's connections: OpenSSL over memory BIOs, on uvloop's plain TCP transports.

Both ends of an mTLS hop run here: the inbound listeners (server side, client certificate
required) and the upstream connections to other proxies (client side). `TlsLayer` is at once
the protocol of a TCP transport and the transport of the proxy's own protocol above it
(`HttpProxy`, `UpstreamConnection`, the L4 pipes, `Detect`), as uvloop's own TLS layer is.

Why not uvloop's (`create_server(ssl=...)`, `create_connection(ssl=...)`): its `SSLProtocol`
is a general state machine that costs Python-level calls on every record, both ways (the app
buffer, the incoming BIO, the read loop ended by an exception, the outgoing BIO, the write
backlog). Here a read is one BIO write and one `SSL_read` per record, stopped without an
exception when both buffers are empty, and a write is one `SSL_write` and one BIO read. On a
TLS-terminating relay at an even 1,000 requests/s, uvloop's layer cost 48.8 µs of CPU per
request against 45.0 for this shape, and added 9 µs more to the median latency; both ends of
the mTLS pair pay it (docs/proxy.md, "The mesh's TLS on memory BIOs").

What it keeps from uvloop's: the handshake has a timeout (a client that never finishes is
closed); a failed handshake closes the connection and is not an error of this proxy (a scanner,
a workload of another mesh), but it is told to the context's `handshake_observer` when there
is one (the proxy's own contexts: `proxy.tls.HandshakeErrors` counts and logs it, so callers
with no or untrusted certificates can be seen); the application protocol is made, and sees
`connection_made`, only once the handshake has completed, so the peer's certificate is there
to read; back-pressure passes both ways (the TCP transport's `pause_writing` reaches the
protocol above; its `pause_reading` pauses the socket); `close` sends close_notify first.
Unlike uvloop's, a connection can be half-closed (`write_eof` sends close_notify and reading
goes on; a peer's close_notify reaches the protocol above as `eof_received`, which may keep
the connection open to answer): what the L4 relays need to carry a TCP half-close across the
mTLS hop, as they do over plain TCP.

The SSL object is the `_ssl` one inside `ssl.SSLObject` (`SSLContext._wrap_bio`), whose
`read`, `write` and `pending` are C methods: nothing interpreted per record. It is also what
`get_extra_info("ssl_object")` returns; `proxy.peercert` calls `getpeercert` on it positionally,
which both forms accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

# One TLS record holds at most 16 KiB of plaintext, and `SSL_read` returns at most one
# record's: a larger buffer would only be allocated and shrunk.
READ_SIZE: Final = 16 * 1024
# What a TLS 1.3 record adds to its plaintext (RFC 8446 §5.2): the AEAD tag (16 bytes in every
# suite OpenSSL enables by default) and the content type; no padding is sent by OpenSSL.
TLS13_OVERHEAD: Final = 17
# How long a client of this proxy's upstream connections waits for the peer's handshake when
# the caller sets no bound of its own (uvloop's default).
CLIENT_HANDSHAKE_TIMEOUT: Final = 60.0


class HandshakeObserver(Protocol):
    """Who hears of the failed handshakes of a context that names one in its
    `handshake_observer` attribute (`proxy.tls.MeshContext`)."""

    def handshake_failed(self, *, server_side: bool, error: BaseException, peer: Any) -> None:
        """A handshake failed: `error` says why, `peer` is the TCP peer's address (or None)."""


class TlsLayer(asyncio.Protocol):
    """One TLS connection: the TCP transport's protocol below, the protocol's transport above
    (see the module's docstring). Server side, it makes the protocol with `factory` once the
    handshake is done; client side, `connect` attaches one."""

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        factory: Callable[[], asyncio.BaseProtocol] | None = None,
        handshake_timeout: float = CLIENT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.context = context
        self.server_side = server_side
        self.factory = factory  # (server side: the protocol made once the handshake is done)
        self.handshake_timeout = handshake_timeout
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        # (The C object: `ssl.SSLObject` would add an interpreted frame to every call.)
        self.obj: Any = context._wrap_bio(  # type: ignore[attr-defined]
            self.incoming, self.outgoing, server_side, None
        )
        # The C methods called per record, bound once: a call by name looks the method up in
        # its type every time, the costliest C-API step of a request that finds the caches
        # cold (docs/proxy.md, "Method calls by name").
        self._bio_write: Callable[[bytes], int] = self.incoming.write
        self._bio_read: Callable[[], bytes] = self.outgoing.read
        self._ssl_read: Callable[[int], bytes] = self.obj.read
        self._ssl_write: Callable[[bytes | bytearray | memoryview], int] = self.obj.write
        self._ssl_pending: Callable[[], int] = self.obj.pending
        self.tcp: asyncio.Transport | None = None
        self._tcp_write: Callable[[bytes], object] = no_write  # `tcp.write`, once there is one
        self._tcp_closing: Callable[[], bool] = _closed  # `tcp.is_closing`
        self.app: Any = None  # the protocol above, once attached
        self._app_received: Callable[[bytes], object] = no_write  # `app.data_received`
        self.handshaking = True
        self.reading = True  # (the protocol above's wish: `pause_reading` / `resume_reading`)
        self.closing = False
        self.write_paused = False  # the TCP transport asked to pause writing
        self.peer_eof = False  # the protocol above heard the end (close_notify, or a FIN)
        self.fin = False  # the TCP connection's end came: no more bytes to read from it
        self.eof_asked = False  # `write_eof`: this side sends no more
        self.notified = False  # this side's close_notify is out
        self.done: asyncio.Future[None] | None = None  # client side: the handshake's outcome
        self.heard = False  # a byte came during the handshake (a peer that sent none tried none)
        self._timer: asyncio.TimerHandle | None = None
        self._read_soon = False
        self._error: Exception | None = None  # why this side aborted, for `connection_lost`
        self.lost = False  # the TCP connection ended before a protocol was attached
        # How much less than a record's length its first read asks for, once the version is
        # known: under TLS 1.3, one less than the record adds to its plaintext, so that the
        # read returns short and tells it emptied the record (`_read_app`); else none (TLS
        # 1.2's overhead depends on the suite: the read is then sized by the ciphertext).
        self.overhead = 0

    # --- the TCP transport's protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = self.tcp = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        self._tcp_write, self._tcp_closing = tcp.write, tcp.is_closing
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.handshake_timeout, self._handshake_expired)
        if not self.server_side:
            self.done = loop.create_future()
            self._handshake()  # the ClientHello

    def data_received(self, data: bytes) -> None:
        if self.peer_eof:
            # After its close_notify, what a peer sends is ignored (RFC 8446 §6.1); kept, a
            # peer could fill this process's memory while the connection stays half-open.
            return
        self._bio_write(data)
        if self.handshaking:
            self.heard = True
            self._handshake()
            return
        if self.app is not None and self.reading and not self.closing:
            self._read_app(_record_size(data, self.overhead))

    def eof_received(self) -> bool | None:
        if self.handshaking:
            self._fail(ConnectionResetError("the peer closed the connection in the TLS handshake"))
            return None
        self.fin = True
        if self.peer_eof:  # (after its close_notify: the protocol above has heard, and chose)
            return True
        if self.app is None or not self.reading or self._buffered():
            # Records are still to be read (the protocol above paused, or is not attached
            # yet): the end comes after them (`_read_app`). The TCP transport stays open.
            return True
        # A FIN without close_notify: the end all the same, as a plain TCP peer's would be.
        return True if self._peer_closed() else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        aborted, self.closing = self.closing, True
        if self.handshaking:
            self.handshaking = False
            if not aborted:  # (the peer's doing, not a connect cancelled here)
                self._report(exc or ConnectionResetError("the connection ended in the handshake"))
            done = self.done
            if done is not None and not done.done():
                done.set_exception(
                    ConnectionResetError(f"the connection ended in the TLS handshake: {exc}")
                )
            return
        app, self.app = self.app, None
        self._app_received = no_write
        if app is not None:
            app.connection_lost(exc if exc is not None else self._error)
        else:  # (client side, between the handshake and `attach`)
            self.lost = True
            if self._error is None:
                self._error = exc

    def pause_writing(self) -> None:
        self.write_paused = True
        app = self.app
        if app is not None:
            app.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        app = self.app
        if app is not None:
            app.resume_writing()

    # --- the handshake ------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._flush()  # (the alert that tells the peer why)
            self._fail(exc)
            return
        self._flush()
        self.handshaking = False
        if self.obj.version() == "TLSv1.3":
            self.overhead = TLS13_OVERHEAD - 1
        self._cancel_timer()
        if self.server_side:
            factory = self.factory
            assert factory is not None
            self.attach(factory())
        else:
            done = self.done
            assert done is not None
            if not done.done():
                done.set_result(None)

    def _handshake_expired(self) -> None:
        self._timer = None
        if self.handshaking:
            self._fail(TimeoutError("TLS handshake timed out"))

    def _fail(self, exc: BaseException) -> None:
        """The handshake failed: the caller of a client connection hears why; a server
        connection just ends (see the module's docstring)."""
        self._cancel_timer()
        self.handshaking = False
        self.closing = True
        self._report(exc)
        done = self.done
        if done is not None and not done.done():
            done.set_exception(exc if isinstance(exc, OSError) else ssl.SSLError(str(exc)))
        tcp = self.tcp
        if tcp is not None:
            tcp.abort()

    def _report(self, exc: BaseException) -> None:
        """Tell the context's observer, if it has one, that the handshake failed; but not of
        a client that closed before it sent a byte (a TCP health check, a port scan: it tried
        no handshake), unless it held the connection open until the timeout."""
        observer: HandshakeObserver | None = getattr(self.context, "handshake_observer", None)
        if observer is None:
            return
        if self.server_side and not self.heard and not isinstance(exc, TimeoutError):
            return
        peer: Any = None
        tcp = self.tcp
        if tcp is not None:
            with contextlib.suppress(OSError):
                peer = tcp.get_extra_info("peername")
        observer.handshake_failed(server_side=self.server_side, error=exc, peer=peer)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def attach(self, protocol: asyncio.BaseProtocol) -> None:
        """Give the connection to `protocol` (after the handshake), and it what came already."""
        self.set_protocol(protocol)
        protocol.connection_made(self)  # type: ignore[arg-type]
        if self.lost:
            self.app, self._app_received = None, no_write
            protocol.connection_lost(self._error)
            return
        if self.write_paused:
            protocol.pause_writing()
        if (self._buffered() or self.fin) and self.reading and not self.closing:
            self._read_app()

    # --- reading ------------------------------------------------------------------------------

    def _buffered(self) -> bool:
        return self.incoming.pending > 0 or self.obj.pending() > 0

    def _read_app(self, size: int = READ_SIZE) -> None:
        """Give the protocol above what the records read so far hold. `size`: the first
        read's, the plaintext of at most that many bytes (`_record_size`); the rest, a
        record's most. `SSL_read` returns one record's plaintext at most, so a read that
        returns less than it asked for emptied its record: OpenSSL is then not asked what it
        still holds (`SSL_pending`, which drops and takes the GIL, as every call into `_ssl`
        that reaches the SSL object does)."""
        incoming, ssl_read, ssl_pending = self.incoming, self._ssl_read, self._ssl_pending
        while True:
            try:
                data = ssl_read(size)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                data = b""
            except (ssl.SSLError, OSError) as exc:
                self._flush()
                self._abort_with(exc)
                return
            if not data:  # close_notify: the peer's last byte
                self.incoming.read()  # (anything after it is ignored: see `data_received`)
                self._flush()
                if not self.peer_eof:
                    self._peer_closed()
                return
            self._app_received(data)
            if self.closing or not self.reading or self.app is None:
                break
            if incoming.pending == 0 and (len(data) < size or ssl_pending() == 0):
                break
            size = READ_SIZE
        if self.eof_asked and not self.notified and not self._buffered():
            self._notify()  # (held back by `write_eof` until the buffers were read)
        else:
            self._flush()  # (a key update's answer, an alert: usually nothing)
        if self.fin and self.reading and not (self.peer_eof or self.closing or self._buffered()):
            self._peer_closed()  # (the FIN that came while records were unread)

    def _peer_closed(self) -> bool:
        """The peer sends no more: the protocol above hears it once, and says whether the
        connection stays open for what it still has to send (a half-close, as over TCP)."""
        self.peer_eof = True
        app = self.app
        keep = bool(app.eof_received()) if app is not None and not self.closing else False
        if not keep:
            self.close()
        return keep

    def _abort_with(self, exc: Exception) -> None:
        self._error = exc
        self.abort()

    def _resume_read(self) -> None:
        """What came while reading was paused, then the socket again (not before: the end of
        the connection must not overtake the records still here)."""
        self._read_soon = False
        if self.app is None or not self.reading or self.closing:
            return
        try:
            if self._buffered() or (self.fin and not self.peer_eof):
                self._read_app()
        except Exception as exc:
            # (As uvloop does when `data_received` fails on a read from the socket; from a
            # callback of ours, the loop would only log it and leave the connection open.)
            asyncio.get_running_loop().call_exception_handler(
                {
                    "message": "Fatal error: protocol.data_received() call failed.",
                    "exception": exc,
                    "protocol": self.app,
                }
            )
            self._abort_with(exc)
            return
        tcp = self.tcp
        if self.reading and not (self.closing or self.fin) and tcp and not tcp.is_closing():
            tcp.resume_reading()

    # --- the transport of the protocol above ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing or self.eof_asked or not data:
            return
        try:
            self._ssl_write(data)
        except (ssl.SSLError, OSError) as exc:
            self._abort_with(exc)
            return
        self._flush()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def _flush(self) -> None:
        data = self._bio_read()  # (b"" when there is nothing: no `pending` looked up first)
        if data and not self._tcp_closing():
            self._tcp_write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Half-close: close_notify, and go on reading (TLS 1.3 lets either side close its
        writing alone, RFC 8446 §6.1; OpenSSL reads after sending one, and writes after
        receiving one). The TCP connection stays open both ways: a FIN would end the
        peer's reading at the TCP layer as well."""
        if self.closing or self.eof_asked:
            return
        self.eof_asked = True
        if not self._buffered():
            self._notify()
        # (Otherwise once what is buffered has been read: `_ssl`'s shutdown calls SSL_shutdown
        # a second time, which takes records in and discards application data after ours.)

    def _notify(self) -> None:
        self.notified = True
        # close_notify into the outgoing BIO (then it waits for the peer's: `read` takes that)
        with contextlib.suppress(ssl.SSLError, OSError, ValueError):
            self.obj.shutdown()
        self._flush()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if not self.handshaking and not self.notified:
            self._notify()
        tcp = self.tcp
        if tcp is not None:
            tcp.close()  # after what it holds

    def abort(self) -> None:
        self.closing = True
        tcp = self.tcp
        if tcp is not None:
            tcp.abort()

    def is_closing(self) -> bool:
        tcp = self.tcp
        return self.closing or tcp is None or tcp.is_closing()

    def pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            tcp = self.tcp
            if tcp is not None and not tcp.is_closing():
                tcp.pause_reading()

    def resume_reading(self) -> None:
        if self.reading:
            return
        self.reading = True
        if self._buffered() or self.fin:
            # Not now (the caller may be inside a callback of the protocol above), and the
            # socket only after them (`_resume_read`).
            if not self._read_soon:
                self._read_soon = True
                asyncio.get_running_loop().call_soon(self._resume_read)
            return
        tcp = self.tcp
        if tcp is not None and not tcp.is_closing():
            tcp.resume_reading()

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.tcp is not None:
            self.tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        tcp = self.tcp
        return 0 if tcp is None else tcp.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        tcp = self.tcp
        return (0, 0) if tcp is None else tcp.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.app = protocol
        self._app_received = protocol.data_received  # type: ignore[attr-defined]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return cast(asyncio.BaseProtocol, self.app)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.obj
        if name == "sslcontext":
            return self.context
        if name == "peercert":
            return None if self.handshaking else self.obj.getpeercert()
        if name == "cipher":
            return None if self.handshaking else self.obj.cipher()
        tcp = self.tcp
        return default if tcp is None else tcp.get_extra_info(name, default)


def no_write(data: bytes) -> None:
    """The bound `write` (or `data_received`) of a connection with no transport (or protocol)
    to take it: every caller checks for one first, and this drops the reference to the old
    one. (Here and in the HTTP protocols' `send`.)"""


def _closed() -> bool:
    return True


def _record_size(data: bytes, overhead: int) -> int:
    """How much the first read of the TLS record that `data` starts with asks for: its length
    field less `overhead` (under TLS 1.3, one byte more than its plaintext; under TLS 1.2, no
    less than it), when that is more than none and at most `READ_SIZE`; else `READ_SIZE`.
    `SSL_read` fills a bytes object of the size it is asked for and then shrinks it: a
    request's record of ~100 bytes is then one small allocation, not 16 KiB from the C heap
    (malloc, then realloc), and one byte less is shrunk where it lies. When `data` starts
    mid-record, or the record's suite adds less than assumed, the guess may be short: the
    rest stays in OpenSSL's buffer (`pending`) and the next read takes it."""
    if len(data) < 5:
        return READ_SIZE
    size = (data[3] << 8 | data[4]) - overhead
    return size if 0 < size <= READ_SIZE else READ_SIZE


def server_factory(
    context: ssl.SSLContext,
    factory: Callable[[], asyncio.BaseProtocol],
    *,
    handshake_timeout: float,
) -> Callable[[], TlsLayer]:
    """A protocol factory for `loop.create_server` (with no `ssl=`): TLS, then `factory`'s."""

    def make() -> TlsLayer:
        return TlsLayer(
            context, server_side=True, factory=factory, handshake_timeout=handshake_timeout
        )

    return make


async def connect(
    factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    handshake_timeout: float = CLIENT_HANDSHAKE_TIMEOUT,
) -> tuple[TlsLayer, asyncio.BaseProtocol]:
    """A TLS connection to `host:port`, handshake done, given to a protocol from `factory`
    (what `loop.create_connection(..., ssl=context)` returns). A failed handshake raises an
    `OSError` (`ssl.SSLError`, `ConnectionResetError`, `TimeoutError`); cancelled, the
    connection is aborted."""
    loop = asyncio.get_running_loop()
    layer = TlsLayer(context, server_side=False, handshake_timeout=handshake_timeout)
    await loop.create_connection(lambda: layer, host, port)
    done = layer.done
    assert done is not None
    try:
        await done
        protocol = factory()
        layer.attach(protocol)
    except BaseException:
        layer.abort()
        raise
    return layer, protocol

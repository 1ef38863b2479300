"""proxy.tlslayer: the mesh's TLS on memory BIOs over uvloop's TCP transports, on real sockets.

What uvloop's own TLS layer did and the proxy relies on: the protocol above is made only once
the handshake is done (so the peer's certificate is there), a handshake that never ends or
fails closes the connection without anything logged by the layer (the proxy's own contexts
count and log it: the tests at the end), close sends close_notify, back-pressure passes both
ways, and nothing is lost or reordered around `pause_reading`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvloop

from proxy import tlslayer
from proxy.metrics import Metrics
from proxy.peercert import peer_identity
from proxy.tls import HandshakeErrors, WorkloadTLS, client_context, server_context
from smi.identity import Identity
from smi.pki import CertificateAuthority

# (A regression here tends to leave a connection open, and uvloop's runner then waits for it:
# a bound well under the suite's 300 s.)
pytestmark = pytest.mark.timeout(60)

FRONT = "spiffe://cluster.local/ns/shop/sa/front"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _load(
    ctx: ssl.SSLContext, tmp: Path, name: str, material: tuple[bytes, bytes]
) -> ssl.SSLContext:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.write_bytes(material[0])
    key.write_bytes(material[1])
    ctx.load_cert_chain(cert, key)
    return ctx


def _contexts(ca: CertificateAuthority, tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = _load(
        server_context(ca.cert_pem()), tmp, "web", ca.issue_workload(Identity.parse(WEB))
    )
    client = _load(
        client_context(ca.cert_pem()), tmp, "front", ca.issue_workload(Identity.parse(FRONT))
    )
    return server, client


class Recorder(asyncio.Protocol):
    """Keeps what happens to it; optionally answers each read."""

    def __init__(self, *, echo: bool = False, pause_after_first: bool = False) -> None:
        self.echo, self.pause_after_first = echo, pause_after_first
        self.transport: Any = None
        self.events: list[str] = []
        self.data = bytearray()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.paused_writing = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append("data")
        self.data += data
        if self.echo:
            self.transport.write(b"echo:" + data)
        if self.pause_after_first and len(self.events) == 2:
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return None

    def pause_writing(self) -> None:
        self.paused_writing += 1

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


async def _serve(factory: Any, server_ctx: ssl.SSLContext, handshake: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    made = tlslayer.server_factory(server_ctx, factory, handshake_timeout=handshake)
    return await loop.create_server(made, "127.0.0.1", 0)


async def _connected(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    make_app: Callable[[], Recorder],
    client: Recorder | None = None,
) -> tuple[Any, list[Recorder], Any, Recorder]:
    """A server whose protocols `make_app` makes (each kept in the list returned), and a
    client connected to it: (server, its protocols, the client's transport, its protocol)."""
    apps: list[Recorder] = []

    def factory() -> Recorder:
        apps.append(make_app())
        return apps[-1]

    server = await _serve(factory, server_ctx)
    port = server.sockets[0].getsockname()[1]
    proto = client if client is not None else Recorder()
    transport, _ = await tlslayer.connect(lambda: proto, "127.0.0.1", port, client_ctx)
    return server, apps, transport, proto


def test_a_round_trip_with_verified_identities_both_ways(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    seen: dict[str, Any] = {}

    async def run() -> None:
        echo = functools.partial(Recorder, echo=True)
        server, apps, transport, client = await _connected(server_ctx, client_ctx, echo)
        transport.write(b"ping")
        for _ in range(200):
            if client.data:
                break
            await asyncio.sleep(0.01)
        seen["client"] = bytes(client.data)
        seen["server_peer"] = peer_identity(apps[0].transport.get_extra_info("ssl_object"))
        seen["client_peer"] = peer_identity(transport.get_extra_info("ssl_object"))
        seen["peername"] = transport.get_extra_info("peername")
        seen["sslcontext"] = transport.get_extra_info("sslcontext")
        transport.close()
        seen["server_lost"] = await asyncio.wait_for(apps[0].lost, 5)
        seen["server_events"] = apps[0].events
        server.close()

    uvloop.run(run())
    assert seen["client"] == b"echo:ping"
    assert seen["server_peer"].spiffe_id == FRONT
    assert seen["client_peer"].spiffe_id == WEB
    assert seen["peername"][0] == "127.0.0.1"
    assert seen["sslcontext"] is client_ctx
    # close() sent close_notify: the server's protocol saw the end before the connection went
    assert seen["server_events"] == ["made", "data", "eof", "lost"]
    assert seen["server_lost"] is None


def test_a_handshake_that_never_finishes_is_closed_and_nothing_made(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    server_ctx, _ = _contexts(ca, tmp_path)
    made: list[Recorder] = []
    errors: list[dict[str, Any]] = []

    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        server = await _serve(lambda: made.append(Recorder()) or made[-1], server_ctx, 0.2)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = await asyncio.wait_for(reader.read(), 5)  # (EOF within the timeout)
        writer.close()
        server.close()
        return got

    assert uvloop.run(run()) == b""
    assert made == [] and errors == []


def test_a_client_of_another_ca_is_refused_and_nothing_made_or_logged(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    server_ctx, _ = _contexts(ca, tmp_path)
    other = CertificateAuthority.create()
    stranger = _load(
        client_context(ca.cert_pem()), tmp_path, "x", other.issue_workload(Identity.parse(FRONT))
    )
    made: list[Recorder] = []
    errors: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        server = await _serve(lambda: made.append(Recorder()) or made[-1], server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Recorder()
        try:
            transport, _ = await tlslayer.connect(lambda: client, "127.0.0.1", port, stranger)
        except OSError as exc:  # (TLS 1.2: the handshake fails)
            outcome["raised"] = exc
        else:  # (TLS 1.3: the client is done first; the server's alert ends it)
            transport.write(b"hello")
            outcome["lost"] = await asyncio.wait_for(client.lost, 5)
            outcome["data"] = bytes(client.data)
        server.close()

    uvloop.run(run())
    assert made == [] and errors == []
    assert "raised" in outcome or (outcome["data"] == b"" and outcome["lost"] is not None)


def test_the_server_must_present_a_certificate_of_the_mesh(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = CertificateAuthority.create()
    impostor = _load(
        server_context(ca.cert_pem()), tmp_path, "imp", other.issue_workload(Identity.parse(WEB))
    )
    _, client_ctx = _contexts(ca, tmp_path)

    async def run() -> BaseException | None:
        server = await _serve(Recorder, impostor)
        port = server.sockets[0].getsockname()[1]
        try:
            await tlslayer.connect(Recorder, "127.0.0.1", port, client_ctx)
        except OSError as exc:
            return exc
        finally:
            server.close()
        return None

    assert isinstance(uvloop.run(run()), ssl.SSLCertVerificationError)


def test_a_read_paused_inside_a_callback_loses_and_reorders_nothing(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Several records in one TCP segment: after the first, the protocol pauses reading; the
    rest stays in the layer until it resumes, then comes in order."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    result: dict[str, Any] = {}

    async def run() -> None:
        pausing = functools.partial(Recorder, pause_after_first=True)
        server, apps, layer, _ = await _connected(server_ctx, client_ctx, pausing)
        transport = layer
        # Three records, one TCP write: encrypted by the client's layer, sent together.
        layer.obj.write(b"one")
        layer.obj.write(b"two")
        layer.obj.write(b"three")
        layer._flush()
        for _ in range(100):
            if apps and apps[0].data:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        result["while_paused"] = bytes(apps[0].data)
        apps[0].transport.resume_reading()
        await asyncio.sleep(0.1)
        result["after"] = bytes(apps[0].data)
        transport.close()
        server.close()

    uvloop.run(run())
    assert result["while_paused"] == b"one"
    assert result["after"] == b"onetwothree"


def test_back_pressure_reaches_the_protocol_above(ca: CertificateAuthority, tmp_path: Path) -> None:
    """A peer that reads nothing: the writer's protocol is asked to pause, at the limits it
    set on the layer."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    result: dict[str, Any] = {}

    async def run() -> None:
        server, apps, transport, _ = await _connected(server_ctx, client_ctx, Recorder)
        transport.pause_reading()  # the client reads nothing more
        for _ in range(100):
            if apps:
                break
            await asyncio.sleep(0.01)
        up = apps[0].transport
        up.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        result["limits"] = up.get_write_buffer_limits()
        chunk = b"x" * 65536
        for _ in range(200):  # up to 12.5 MiB, far past the socket buffers
            up.write(chunk)
            if apps[0].paused_writing:
                break
        result["paused"] = apps[0].paused_writing
        result["buffered"] = up.get_write_buffer_size()
        transport.abort()
        server.close()

    uvloop.run(run())
    assert result["limits"] == (16 * 1024, 64 * 1024)
    assert result["paused"] == 1
    assert result["buffered"] > 64 * 1024


def test_a_cancelled_connect_aborts_the_connection(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """The caller gives up mid-handshake (a connect timeout): the socket is closed, so the
    other side sees the end."""
    _, client_ctx = _contexts(ca, tmp_path)

    async def run() -> bytes:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        port = listener.getsockname()[1]
        task = loop.create_task(tlslayer.connect(Recorder, "127.0.0.1", port, client_ctx))
        peer, _ = await loop.sock_accept(listener)
        hello = await loop.sock_recv(peer, 65536)  # the ClientHello; no answer comes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rest = await asyncio.wait_for(loop.sock_recv(peer, 65536), 5)
        peer.close()
        listener.close()
        assert hello[:1] == b"\x16"  # a TLS handshake record
        return rest

    assert uvloop.run(run()) == b""


def test_close_sends_close_notify_before_the_connection_ends(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A peer that treats a bare TCP close as truncation (`suppress_ragged_eofs=False`, as a
    careful client of a close-delimited body must) sees a clean end."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)

    class CloseAfterAnswer(Recorder):
        def data_received(self, data: bytes) -> None:
            self.transport.write(b"bye")
            self.transport.close()

    got: list[object] = []

    def client(port: int, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                sock = client_ctx.wrap_socket(raw, suppress_ragged_eofs=False)
                sock.sendall(b"hi")
                got.append(sock.recv(100))
                got.append(sock.recv(100))  # b"" on close_notify; SSLEOFError on a bare FIN
                sock.close()
        except OSError as exc:
            got.append(exc)
        finally:
            loop.call_soon_threadsafe(done.set)

    async def run() -> None:
        server = await _serve(CloseAfterAnswer, server_ctx)
        done = asyncio.Event()
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        threading.Thread(target=client, args=(port, loop, done)).start()
        await asyncio.wait_for(done.wait(), 10)
        server.close()

    uvloop.run(run())
    assert got == [b"bye", b""]


def test_a_half_close_lets_the_other_side_answer_and_then_end(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """The client sends, then `write_eof` (close_notify, still reading); the server hears the
    end, keeps the connection to answer, then closes: the client gets the answer, then the
    end. Both sides' protocols see one end each, in that order."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)

    class AnswerAtEnd(Recorder):
        def eof_received(self) -> bool | None:
            self.events.append("eof")
            self.transport.write(b"got:" + bytes(self.data))
            self.transport.close()
            return True

    result: dict[str, Any] = {}

    async def run() -> None:
        server, apps, transport, client = await _connected(server_ctx, client_ctx, AnswerAtEnd)
        assert transport.can_write_eof()
        transport.write(b"question")
        transport.write_eof()
        transport.write(b"ignored")  # (nothing after the end)
        result["lost"] = await asyncio.wait_for(client.lost, 5)
        result["client"] = (bytes(client.data), client.events)
        result["server"] = (bytes(apps[0].data), apps[0].events)
        server.close()

    uvloop.run(run())
    assert result["client"] == (b"got:question", ["made", "data", "eof", "lost"])
    assert result["server"] == (b"question", ["made", "data", "eof", "lost"])
    assert result["lost"] is None


def test_a_half_close_with_unread_records_waits_until_they_are_read(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """`write_eof` while reading is paused with records in the layer: close_notify goes only
    once they are read (sent before, OpenSSL would take them in and drop them)."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    result: dict[str, Any] = {}

    async def run() -> None:
        client = Recorder(pause_after_first=True)
        server, apps, transport, _ = await _connected(server_ctx, client_ctx, Recorder, client)
        for _ in range(100):
            if apps:
                break
            await asyncio.sleep(0.01)
        up = apps[0].transport
        up.obj.write(b"one")
        up.obj.write(b"two")
        up._flush()
        await asyncio.sleep(0.1)
        transport.write_eof()  # "two" is still in the client's layer
        result["notified_early"] = transport.notified
        transport.resume_reading()
        await asyncio.sleep(0.1)
        result["client"] = bytes(client.data)
        result["notified"] = transport.notified
        result["server_events"] = list(apps[0].events)
        transport.close()
        server.close()

    uvloop.run(run())
    assert result["notified_early"] is False
    assert result["client"] == b"onetwo"
    assert result["notified"] is True
    assert result["server_events"] == ["made", "eof", "lost"]  # (it chose not to stay)


def test_the_mesh_contexts_refuse_tls12_renegotiation(ca: CertificateAuthority) -> None:
    """A renegotiation would make a write wait for the peer's handshake, which the layer does
    not do (it aborts): OpenSSL refuses one instead, as nginx does."""
    for ctx in (server_context(ca.cert_pem()), client_context(ca.cert_pem())):
        assert ctx.options & ssl.OP_NO_RENEGOTIATION


def test_the_end_never_overtakes_records_read_while_paused(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Three records, then close_notify and the FIN; the server's protocol pauses after the
    first and resumes from a task (as FlowControl does after an upstream connect): the other
    two come before the end. (Resuming restarted the socket before reading the records held,
    so the FIN overtook them: they were dropped with the connection, or came after the end.)"""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    events: list[str] = []

    class PauseThenResumeFromATask(Recorder):
        def data_received(self, data: bytes) -> None:
            events.append(data.decode())
            if len(events) == 1:
                self.transport.pause_reading()
                asyncio.get_running_loop().create_task(self.later())

        async def later(self) -> None:
            await asyncio.sleep(0.1)
            self.transport.resume_reading()

        def eof_received(self) -> bool | None:
            events.append("eof")
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            events.append("lost")

    async def run() -> None:
        server = await _serve(PauseThenResumeFromATask, server_ctx)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await tlslayer.connect(Recorder, "127.0.0.1", port, client_ctx)
        for i in range(3):
            transport.write(b"r%d;" % i)
        transport.close()
        for _ in range(100):
            if "lost" in events:
                break
            await asyncio.sleep(0.01)
        server.close()

    uvloop.run(run())
    assert "".join(e for e in events if e.startswith("r")) == "r0;r1;r2;"
    assert events[-2:] == ["eof", "lost"]


def test_bytes_after_the_peers_close_notify_are_not_kept(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A peer that half-closes and goes on sending (raw bytes after its close_notify) while
    the protocol above keeps the connection open to answer: nothing of it is held (it was,
    without bound: 900 MiB in 3 s through a real proxy)."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    result: dict[str, Any] = {}

    class StayOpen(Recorder):
        def eof_received(self) -> bool | None:
            self.events.append("eof")
            return True

    async def run() -> None:
        server, apps, transport, _ = await _connected(server_ctx, client_ctx, StayOpen)
        transport.write(b"question")
        transport.write_eof()
        junk = b"\x17\x03\x03" + b"x" * 65536
        for _ in range(64):  # 4 MiB past the close_notify, on the TCP connection itself
            transport.tcp.write(junk)
            await asyncio.sleep(0)
        for _ in range(100):
            if transport.tcp.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        layer = apps[0].transport
        result["held"] = layer.incoming.pending
        result["events"] = list(apps[0].events)
        result["open"] = not layer.is_closing()
        transport.abort()
        layer.abort()
        await asyncio.wait_for(apps[0].lost, 5)
        server.close()

    uvloop.run(run())
    assert result["events"] == ["made", "data", "eof"]
    assert result["open"] and result["held"] == 0


def test_a_failing_protocol_on_a_deferred_read_ends_the_connection(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """As when `data_received` fails on a read from the socket: the loop's handler hears
    it, the connection closes, and the protocol gets `connection_lost` with the error."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    events: list[Any] = []
    errors: list[dict[str, Any]] = []

    class FailsAfterResume(Recorder):
        def data_received(self, data: bytes) -> None:
            if not events:
                events.append("first")
                self.transport.pause_reading()
                asyncio.get_running_loop().call_later(0.05, self.transport.resume_reading)
                return
            raise ValueError("a bug in the protocol above")

        def connection_lost(self, exc: Exception | None) -> None:
            events.append(("lost", repr(exc)))

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, c: errors.append(c))
        server = await _serve(FailsAfterResume, server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Recorder()
        transport, _ = await tlslayer.connect(lambda: client, "127.0.0.1", port, client_ctx)
        transport.obj.write(b"one")
        transport.obj.write(b"two")
        transport._flush()
        await asyncio.wait_for(client.lost, 5)
        server.close()

    uvloop.run(run())
    assert events == ["first", ("lost", "ValueError('a bug in the protocol above')")]
    assert [e["exception"].args for e in errors] == [("a bug in the protocol above",)]


def test_a_protocol_that_fails_to_start_does_not_leak_the_connection(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    apps: list[Recorder] = []

    def factory() -> Recorder:
        apps.append(Recorder())
        return apps[-1]

    def broken() -> asyncio.Protocol:
        raise RuntimeError("bad protocol")

    async def run() -> Any:
        server = await _serve(factory, server_ctx)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(RuntimeError):
            await tlslayer.connect(broken, "127.0.0.1", port, client_ctx)
        for _ in range(100):
            if apps and apps[0].lost.done():
                break
            await asyncio.sleep(0.01)
        server.close()
        return apps[0].lost.done() if apps else None

    assert uvloop.run(run()) is True  # the server saw the connection end


class _Wire:
    """A TCP transport in memory: what the layer writes, kept for the test to deliver."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.sent = bytes(self.sent), bytearray()
        return data


def test_a_read_is_sized_by_the_record_it_starts_with() -> None:
    record = bytes([23, 3, 3, 0x01, 0x2C]) + b"x" * 300  # application data, 300 bytes
    assert tlslayer._record_size(record, 0) == 300
    assert tlslayer._record_size(record, tlslayer.TLS13_OVERHEAD - 1) == 284
    assert tlslayer._record_size(record[:5], 0) == 300  # (the header alone says it)
    assert tlslayer._record_size(record[:4], 0) == tlslayer.READ_SIZE
    assert tlslayer._record_size(bytes([23, 3, 3, 0, 0]), 0) == tlslayer.READ_SIZE
    assert tlslayer._record_size(bytes([23, 3, 3, 0, 17]), 17) == tlslayer.READ_SIZE
    assert tlslayer._record_size(bytes([23, 3, 3, 0xFF, 0xFF]), 0) == tlslayer.READ_SIZE


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_a_record_is_read_by_one_read_of_its_plaintext(
    ca: CertificateAuthority, tmp_path: Path, version: str
) -> None:
    """Each record delivered alone is read by one read: under TLS 1.3 it asks for one byte
    more than the plaintext (a short read: the record is empty, OpenSSL is not asked), under
    TLS 1.2 for no less; all of it arrives, in order, either way."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    client_ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    sent = b"".join(b"%d:" % i + b"q" * (i * 53 % 480) for i in range(40))
    got: dict[str, Any] = {}

    async def run() -> None:
        server, app, stream = await _streamed(server_ctx, client_ctx, sent)
        reads: list[tuple[int, int]] = []
        read = server._ssl_read

        def counted(size: int) -> bytes:
            data: bytes = read(size)
            reads.append((size, len(data)))
            return data

        server._ssl_read = counted
        asked_pending: list[int] = []
        pending = server._ssl_pending

        def pending_counted() -> int:
            asked_pending.append(1)
            return int(pending())

        server._ssl_pending = pending_counted
        while stream:
            end = 5 + (stream[3] << 8 | stream[4])
            server.data_received(stream[:end])
            stream = stream[end:]
        got.update(reads=reads, data=bytes(app.data), overhead=server.overhead)
        got["asked_pending"] = len(asked_pending)
        got["version"] = server.obj.version()
        server.abort()

    uvloop.run(run())
    assert got["data"] == sent
    assert got["version"] == version
    assert len(got["reads"]) == (len(sent) + 499) // 500  # (one record per 500 bytes)
    assert got["asked_pending"] == 0  # (every read came back short: its record was empty)
    if version == "TLSv1.3":
        assert got["overhead"] == tlslayer.TLS13_OVERHEAD - 1
        assert all(asked == read + 1 for asked, read in got["reads"]), got["reads"]
    else:
        assert got["overhead"] == 0
        assert all(asked >= read for asked, read in got["reads"]), got["reads"]


async def _streamed(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, sent: bytes) -> Any:
    """(a server-side layer handshaken in memory, its protocol, the records that carry `sent`
    to it, one per 500 bytes)."""
    app = Recorder()
    server = tlslayer.TlsLayer(server_ctx, server_side=True, factory=lambda: app)
    client = tlslayer.TlsLayer(client_ctx, server_side=False)
    up, down = _Wire(), _Wire()
    server.connection_made(up)  # type: ignore[arg-type]
    client.connection_made(down)  # type: ignore[arg-type]
    done = client.done
    assert done is not None
    for _ in range(10):  # the handshake, delivered whole
        server.data_received(down.take())
        client.data_received(up.take())
        if done.done():
            break
    await done
    client.attach(Recorder())
    server.data_received(down.take())  # (the client's last flight: the server's end of it)
    assert not server.handshaking
    for i in range(0, len(sent), 500):  # one record per write
        client.write(sent[i : i + 500])
    client.abort()
    return server, app, down.take()


def _deliver(server: Any, chunks: list[bytes]) -> int:
    """Give the layer `chunks`; how many times it kept plaintext it had decrypted."""
    held = 0
    for chunk in chunks:
        server.data_received(chunk)
        held += server.obj.pending() > 0
    return held


@pytest.mark.parametrize("step", [1, 3, 5, 7, 64, 1000])
def test_records_split_anywhere_are_read_whole_and_in_order(
    ca: CertificateAuthority, tmp_path: Path, step: int
) -> None:
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    sent = b"".join(b"%d:" % i + b"y" * (i * 37 % 700) for i in range(60))
    got: dict[str, Any] = {}

    async def run() -> None:
        server, app, stream = await _streamed(server_ctx, client_ctx, sent)
        chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
        got["held"] = _deliver(server, chunks)
        got["data"] = bytes(app.data)
        server.abort()

    uvloop.run(run())
    assert got["data"] == sent
    assert got["held"] == 0


def test_a_read_sized_short_by_a_guess_loses_nothing(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A read that starts mid-record, at bytes that look like the header of a small record:
    the first `SSL_read` is sized too small, and the rest of that record's plaintext is read
    in the same call, not held until more bytes come."""
    server_ctx, client_ctx = _contexts(ca, tmp_path)
    sent = b"z" * 500 * 200
    got: dict[str, Any] = {}

    async def run() -> None:
        server, app, stream = await _streamed(server_ctx, client_ctx, sent)
        at, found = 0, None
        while at < len(stream) and found is None:  # the records' bounds
            end = at + 5 + (stream[at + 3] << 8 | stream[at + 4])
            for p in range(at + 6, end - 5):
                if (stream[p + 3] << 8 | stream[p + 4]) < 100:  # a guess under 100 bytes
                    found = (p, end)
                    break
            at = end
        assert found is not None, "no record with such bytes: the test proves nothing"
        p, end = found
        got["held"] = _deliver(server, [stream[:p], stream[p:end], stream[end:]])
        got["data"] = bytes(app.data)
        server.abort()

    uvloop.run(run())
    assert got["data"] == sent
    assert got["held"] == 0


def _counting(ca: CertificateAuthority, tmp: Path) -> tuple[ssl.SSLContext, Metrics]:
    """The server context of a workload, counting its failed handshakes as the proxy does."""
    metrics = Metrics()
    server = server_context(ca.cert_pem(), observer=HandshakeErrors(metrics))
    return _load(server, tmp, "web", ca.issue_workload(Identity.parse(WEB))), metrics


async def _counted(metrics: Metrics) -> dict[tuple[str, str], int]:
    """The failed handshakes counted, once there is one (the server's side of the failure
    may come a moment after the client's)."""
    for _ in range(500):
        if metrics.tls_handshake_errors:
            break
        await asyncio.sleep(0.01)
    return dict(metrics.tls_handshake_errors)


@pytest.mark.parametrize(
    "reason",
    ["no-certificate", "untrusted-certificate", "expired-certificate", "not-tls", "timeout"],
)
def test_a_refused_handshake_is_counted_by_reason_and_logged_with_its_peer(
    ca: CertificateAuthority, tmp_path: Path, caplog: pytest.LogCaptureFixture, reason: str
) -> None:
    """What a security engineer looks for: callers with no certificate, an untrusted or
    expired one, or no TLS at all, each counted under its reason and named in the log by
    address; still no protocol made for them."""
    server_ctx, metrics = _counting(ca, tmp_path)
    client_ctx = client_context(ca.cert_pem())
    if reason == "untrusted-certificate":
        other = CertificateAuthority.create()
        _load(client_ctx, tmp_path, "x", other.issue_workload(Identity.parse(FRONT)))
    elif reason == "expired-certificate":
        expired = ca.issue_workload(Identity.parse(FRONT), ttl=timedelta(seconds=-1))
        _load(client_ctx, tmp_path, "x", expired)
    made: list[Recorder] = []
    seen: dict[str, Any] = {}

    async def run() -> None:
        server = await _serve(lambda: made.append(Recorder()) or made[-1], server_ctx, 0.3)
        port = server.sockets[0].getsockname()[1]
        if reason in ("not-tls", "timeout"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            seen["client"] = writer.get_extra_info("sockname")
            if reason == "not-tls":
                writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
        else:
            client = Recorder()
            with contextlib.suppress(OSError):  # (TLS 1.2: the client's handshake fails too)
                transport, _ = await tlslayer.connect(lambda: client, "127.0.0.1", port, client_ctx)
                seen["client"] = transport.get_extra_info("sockname")
                transport.write(b"hello")
                await asyncio.wait_for(client.lost, 5)
        seen["counted"] = await _counted(metrics)
        server.close()

    with caplog.at_level(logging.INFO, logger="smictl.proxy.tls"):
        uvloop.run(run())
    assert seen["counted"] == {("inbound", reason): 1}
    assert made == []
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("inbound TLS handshake from 127.0.0.1:")
    assert f"failed: {reason}" in line
    if "client" in seen:
        assert f"127.0.0.1:{seen['client'][1]} failed" in line


def test_a_client_that_closes_before_sending_a_byte_is_not_counted(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A TCP health check or a port scan connects and closes: it tried no handshake, and
    counting it would bury the callers that did."""
    server_ctx, metrics = _counting(ca, tmp_path)

    async def run() -> None:
        server = await _serve(Recorder, server_ctx, 5.0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.2)
        server.close()

    uvloop.run(run())
    assert metrics.tls_handshake_errors == {}


def test_a_peer_whose_certificate_fails_verification_is_counted_outbound(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A workload's upstream connection to a server of another CA fails its handshake and is
    counted as outbound; one to a mesh server completes (whichever identity it names: that is
    checked above TLS, and counted as `proxy_errors_total{kind="identity"}`), and a connect
    given up mid-handshake (a connect timeout, counted as such) is not a handshake error."""
    workload = WorkloadTLS(identity=Identity.parse(FRONT), ca_pem=ca.cert_pem(), metrics=Metrics())
    workload.install(*ca.issue_workload(Identity.parse(FRONT)))
    other = CertificateAuthority.create()
    impostor = _load(
        server_context(ca.cert_pem()), tmp_path, "imp", other.issue_workload(Identity.parse(WEB))
    )
    mesh_server, _ = _contexts(ca, tmp_path)
    seen: dict[str, Any] = {}

    async def run() -> None:
        ctx = workload.client_context
        bad = await _serve(Recorder, impostor)
        with pytest.raises(ssl.SSLCertVerificationError):
            await tlslayer.connect(Recorder, "127.0.0.1", bad.sockets[0].getsockname()[1], ctx)
        good = await _serve(Recorder, mesh_server)
        port = good.sockets[0].getsockname()[1]
        transport, _ = await tlslayer.connect(Recorder, "127.0.0.1", port, ctx)
        transport.close()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        task = asyncio.get_running_loop().create_task(
            tlslayer.connect(Recorder, "127.0.0.1", listener.getsockname()[1], ctx)
        )
        await asyncio.sleep(0.1)  # (the ClientHello is out; no answer comes)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        listener.close()
        seen["counted"] = dict(workload.metrics.tls_handshake_errors)
        bad.close()
        good.close()

    try:
        uvloop.run(run())
    finally:
        workload.cleanup()
    assert seen["counted"] == {("outbound", "untrusted-certificate"): 1}

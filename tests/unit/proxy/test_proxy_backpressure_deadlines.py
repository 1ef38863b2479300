"""Deadlines under back-pressure: a deadline that measures a peer's silence must not run while
the proxy keeps that peer silent (reading paused because the other side is not reading), and
a peer that stops reading for good is still bounded, by the idle timeout."""

from __future__ import annotations

import time

from proxy_fakes import Harness

from proxy.exchange import Limits
from proxy.metrics import ABORTED

BIG_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
GET = b"GET / HTTP/1.1\r\nHost: w\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: w\r\nContent-Length: 100000\r\n\r\n"


async def _streaming(limits: Limits) -> tuple[Harness, float]:
    """A response being relayed to a client that has stopped reading (its write buffer is full,
    so the upstream is no longer read)."""
    h = Harness(limits=limits)
    h.send(GET)
    await h.settle()
    h.respond(BIG_HEAD + b"x" * 1000)
    h.down.stalled = True
    h.proxy.pause_writing()
    assert not h.up().reading
    return h, h.state.now


async def _uploading(limits: Limits) -> tuple[Harness, float]:
    """A request body being relayed to an app that has stopped reading it (the upstream's
    write buffer is full, so the client is no longer read)."""
    h = Harness(limits=limits)
    h.send(POST + b"x" * 1000)
    await h.settle()
    h.up().stalled = True
    h.upstreams[-1].pause_writing()
    assert not h.down.reading
    return h, h.state.now


async def test_a_client_that_pauses_reading_is_not_taken_for_a_silent_upstream() -> None:
    h, t0 = await _streaming(Limits(response_timeout=3, idle_timeout=60))
    h.state.check(t0 + 5)  # the response timeout has passed, but the proxy paused the upstream
    assert not h.down.closed and not h.up().closed
    h.down.stalled = False
    h.proxy.resume_writing()  # the client reads again: the upstream gets a full period
    h.state.check(t0 + 7)
    assert not h.up().closed
    h.respond(b"x" * 99000)
    assert h.down.data == BIG_HEAD + b"x" * 100000 and not h.down.closed
    assert h.metrics.inbound.responses == {200: 1}


async def test_the_upstream_deadline_runs_again_once_the_client_reads() -> None:
    h, t0 = await _streaming(Limits(response_timeout=3, idle_timeout=60))
    h.state.check(t0 + 5)
    h.down.stalled = False
    h.proxy.resume_writing()
    h.state.check(t0 + 9)  # now the upstream itself is silent, for longer than 3 s
    assert h.up().aborted and h.down.aborted
    assert h.metrics.inbound.errors == {"timeout": 1}


async def test_a_client_that_never_reads_again_is_cut_off_after_the_idle_timeout() -> None:
    h, t0 = await _streaming(Limits(response_timeout=3, idle_timeout=60))
    h.state.check(t0 + 30)
    assert not h.down.closed
    h.state.check(t0 + 61)
    assert h.down.aborted and h.up().aborted
    assert h.metrics.inbound.errors == {"client-stalled": 1}
    h.proxy.connection_lost(None)
    assert h.metrics.inbound.responses == {ABORTED: 1}


async def test_a_client_that_reads_slowly_keeps_its_response() -> None:
    h, t0 = await _streaming(Limits(response_timeout=3, idle_timeout=60))
    cut_at = None
    for second in range(1, 200):  # the ticker's pace (coarser: the outcome is the same)
        if second == 40:
            h.down.writes[:] = [h.down.data[:-100]]  # it took 100 bytes, not enough to resume
        h.state.check(t0 + second)
        if h.down.aborted:
            cut_at = second
            break
    # Not 60 s after the pause (it read since), but once 60 s passed without it reading.
    assert cut_at is not None and 100 <= cut_at <= 40 + 60 + 15


async def test_an_app_that_pauses_reading_is_not_taken_for_a_silent_client() -> None:
    h, t0 = await _uploading(Limits(body_timeout=3, idle_timeout=60))
    h.state.check(t0 + 5)  # the body timeout has passed, but the proxy paused the client
    assert h.down.data == b"" and not h.down.closed and not h.up().closed
    h.up().stalled = False
    h.upstreams[-1].resume_writing()  # the app reads again: the client gets a full period
    assert h.down.reading
    h.state.check(t0 + 7)
    assert h.down.data == b""
    h.send(b"x" * 99000)
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert h.down.data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert h.up().data.endswith(b"x" * 100000)


async def test_the_client_deadline_runs_again_once_the_app_reads() -> None:
    h, t0 = await _uploading(Limits(body_timeout=3, idle_timeout=60))
    h.state.check(t0 + 5)
    assert h.down.data == b""
    h.up().stalled = False
    h.upstreams[-1].resume_writing()
    h.state.check(t0 + 9)  # now the client itself is silent
    assert h.down.data.startswith(b"HTTP/1.1 408 ") and h.up().aborted


async def test_an_app_that_never_reads_the_body_gets_the_request_a_504() -> None:
    h, t0 = await _uploading(Limits(body_timeout=3, idle_timeout=60))
    h.state.check(t0 + 30)
    assert h.down.data == b""
    h.state.check(t0 + 61)
    assert h.down.data.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n") and h.down.closed
    assert b"x-smi-reason: upstream-timeout\r\n" in h.down.data
    assert h.up().aborted
    assert h.metrics.inbound.errors == {"upstream-stalled": 1}
    assert h.metrics.inbound.responses == {504: 1}


async def test_a_whole_request_still_queued_for_the_app_does_not_start_the_response_clock() -> None:
    h = Harness(limits=Limits(response_timeout=3, idle_timeout=60))
    h.send(b"POST / HTTP/1.1\r\nHost: w\r\nContent-Length: 10\r\n\r\n0123456789")
    await h.settle()
    h.up().stalled = True
    h.upstreams[-1].pause_writing()  # all of it read, none of it taken by the app yet
    t0 = h.state.now
    h.state.check(t0 + 5)
    assert h.down.data == b""
    h.upstreams[-1].resume_writing()
    h.state.check(t0 + 7)
    assert h.down.data == b""
    h.state.check(t0 + 9)
    assert h.down.data.startswith(b"HTTP/1.1 504 ")


async def test_a_closing_connection_waits_for_a_slow_reader_to_take_the_end() -> None:
    h = Harness(limits=Limits(idle_timeout=60))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")
    await h.settle()
    h.down.stalled = True  # the response ends while the client has yet to read it
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert h.down.closed and not h.down.aborted
    t0 = time.monotonic()
    h.state.check(t0 + 5)  # past the linger (2 s) meant for peers that keep it half-open
    assert not h.down.aborted
    h.state.check(t0 + 70)  # but a reader that takes nothing is cut off
    assert h.down.aborted


async def test_a_closed_connection_whose_client_has_read_everything_is_cut_after_the_linger() -> (
    None
):
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert h.down.closed and not h.down.aborted
    h.state.check(time.monotonic() + 3)
    assert h.down.aborted

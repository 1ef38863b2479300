"""Every response the proxy sends, or cuts off, is counted in `response_total`, with its request
in `request_total`: those it answers before routing under `authz="not-reached"`, those that never
end as `status_code="0"` (a failure)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from proxy_fakes import FakeRouter, Harness

from proxy.exchange import Exchange, Forward, Limits
from proxy.http1 import Reply
from proxy.metrics import ABORTED, NOT_REACHED, Metrics


class CountingRouter(FakeRouter):
    """Counts every request it routes, as the real routers do."""

    def route(self, ex: Exchange, peer: Any) -> Forward | Reply:
        self.stats.request("allow")
        return super().route(ex, peer)


def _harness(limits: Limits | None = None) -> Harness:
    metrics = Metrics()
    h = Harness(limits=limits, router=CountingRouter(metrics))
    h.metrics = metrics
    return h


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # missing-host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # duplicate-host
        (b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # malformed-request
        (b"GET ftp://web/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # not a path
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
            b"Content-Length: 3\r\n\r\nabc",
            501,
        ),
        (b"CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\n", 501),
    ],
)
async def test_a_request_refused_before_routing_is_counted_with_its_response(
    data: bytes, status: int
) -> None:
    h = _harness()
    h.send(data)
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 %d " % status)
    stats = h.metrics.inbound
    assert stats.requests == {NOT_REACHED: 1}
    assert stats.responses == {status: 1}
    assert stats.latency.count == 1
    text = h.metrics.render()
    assert 'request_total{direction="inbound",authz="not-reached"} 1' in text
    cls = "failure" if status >= 500 else "success"
    assert f'status_code="{status}",classification="{cls}"}} 1' in text


async def test_a_header_timeout_is_counted() -> None:
    h = _harness(Limits(header_timeout=5))
    h.send(b"GET / HTTP/1.1\r\nHo")
    h.state.check(time.monotonic() + 6)
    assert h.down.data.startswith(b"HTTP/1.1 408 ")
    assert h.metrics.inbound.requests == {NOT_REACHED: 1}
    assert h.metrics.inbound.responses == {408: 1}


async def test_a_silent_connection_closed_unanswered_counts_nothing() -> None:
    h = _harness(Limits(header_timeout=5))
    h.state.check(time.monotonic() + 6)
    h.proxy.connection_lost(None)
    assert h.metrics.inbound.requests == {} and h.metrics.inbound.responses == {}


async def test_a_refusal_queued_behind_a_request_is_counted_when_it_is_sent() -> None:
    h = _harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert b"HTTP/1.1 400 " in h.down.data
    assert h.metrics.inbound.requests == {"allow": 1, NOT_REACHED: 1}
    assert h.metrics.inbound.responses == {200: 1, 400: 1}


async def test_a_response_cut_off_by_the_upstream_timeout_is_an_aborted_failure() -> None:
    h = _harness(Limits(response_timeout=3))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    h.state.check(time.monotonic() + 5)  # the upstream falls silent mid-body
    assert h.down.aborted and h.up().aborted
    h.proxy.connection_lost(None)
    stats = h.metrics.inbound
    assert stats.requests == {"allow": 1}
    assert stats.responses == {ABORTED: 1}
    assert stats.errors == {"timeout": 1}
    text = h.metrics.render()
    assert 'response_total{direction="inbound",status_code="0",classification="failure"} 1' in text


async def test_a_response_cut_off_by_the_upstream_going_away_is_counted() -> None:
    h = _harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    h.upstream_closes()
    assert h.down.aborted
    h.proxy.connection_lost(None)
    assert h.metrics.inbound.responses == {ABORTED: 1}


async def test_a_client_gone_before_its_response_is_counted_once() -> None:
    h = _harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.proxy.connection_lost(None)
    h.proxy.connection_lost(None)  # (asyncio calls it once; the queue is gone after it)
    assert h.metrics.inbound.requests == {"allow": 1}
    assert h.metrics.inbound.responses == {ABORTED: 1}


async def test_timeouts_answered_locally_are_counted_once() -> None:
    h = _harness(Limits(response_timeout=3))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.state.check(time.monotonic() + 5)
    h.proxy.connection_lost(None)
    assert h.metrics.inbound.responses == {504: 1}


async def test_requests_and_responses_balance_over_a_mix() -> None:
    h = _harness()
    h.send(
        b"GET /a HTTP/1.1\r\nHost: w\r\n\r\n"
        b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: w\r\n\r\n"
        b"BROKEN\r\n\r\n"
    )
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    h.proxy.connection_lost(None)
    stats = h.metrics.inbound
    assert sum(stats.requests.values()) == sum(stats.responses.values()) == 4
    assert stats.responses == {200: 1, 403: 1, 503: 1, 400: 1}

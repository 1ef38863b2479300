"""Every response `/metrics` counts is in the access log, with why it has its status: the
proxy's own answers before routing (400, 431, 501), cut-off ones (status 0) and answers
after an allow that could not reach the app were counted and never logged, or logged with
an empty reason or `allow`. And an instant 400 no longer carries up to 250 ms of latency
(its start was read off the 0.25 s clock)."""

from __future__ import annotations

import io
import json
from typing import Any

from proxy_fakes import Harness

from proxy.accesslog import AccessLog


def _logged(h: Harness) -> list[dict[str, Any]]:
    log = h.proxy.access_log
    assert log is not None and isinstance(log.stream, io.StringIO)
    return [json.loads(line) for line in log.stream.getvalue().splitlines()]


def _harness() -> Harness:
    h = Harness()
    h.proxy.access_log = AccessLog(io.StringIO())
    return h


def _latency_sum(h: Harness) -> float:
    for line in h.metrics.render().splitlines():
        if line.startswith('response_latency_ms_sum{direction="inbound"}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no latency sum")


async def test_an_answer_before_routing_is_logged_with_its_reason_and_no_latency() -> None:
    h = _harness()
    h.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")
    await h.settle()
    assert h.down.take().startswith(b"HTTP/1.1 501 ")
    [line] = _logged(h)
    assert line["status"] == 501 and line["reason"] and line["reason"] != "allow"
    # (The method is read at the end of the head, which this one never reached.)
    assert line["path"] == "/up" and line["duration_ms"] == 0.0
    assert _latency_sum(h) == 0.0


async def test_a_malformed_head_is_logged_too() -> None:
    h = _harness()
    h.send(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    await h.settle()
    assert h.down.take().startswith(b"HTTP/1.1 400 ")
    [line] = _logged(h)
    assert line["status"] == 400 and line["duration_ms"] == 0.0


async def test_an_allowed_request_the_app_refuses_is_logged_with_the_proxys_reason() -> None:
    h = _harness()
    h.connect_mode = "refuse"
    h.send(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    for _ in range(5):
        await h.settle()
    answer = h.down.take()
    assert answer.startswith(b"HTTP/1.1 503 ")
    reason = answer.split(b"x-smi-reason: ", 1)[1].split(b"\r\n", 1)[0].decode()
    [line] = _logged(h)
    assert line["status"] == 503 and line["reason"] == reason


async def test_a_response_cut_off_by_the_client_is_logged_as_aborted() -> None:
    h = _harness()
    h.send(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
    await h.settle()
    h.proxy.connection_lost(None)
    [line] = _logged(h)
    assert line["status"] == 0 and line["reason"] == "aborted" and line["path"] == "/x"


async def test_a_client_ending_the_dropped_body_of_an_answered_request_gets_no_second_answer() -> (
    None
):
    # A denied POST with a small body: answered 403, the rest of its body read and dropped.
    # The client's end before that body's end is no incomplete request to answer (400) again.
    h = _harness()
    h.send(b"POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    await h.settle()
    h.proxy.eof_received()
    await h.settle()
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 403 ") and out.count(b"HTTP/1.1 ") == 1
    assert [line["status"] for line in _logged(h)] == [403]
    assert 'request_total{direction="inbound",authz="not-reached"}' not in h.metrics.render()

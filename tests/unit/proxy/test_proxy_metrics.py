"""proxy.metrics: counts on the request path, Prometheus text on scrape."""

from __future__ import annotations

import io
import json
import re
from bisect import bisect_left

from proxy.accesslog import AccessLog
from proxy.metrics import LATENCY_BOUNDS_MS, Metrics, bucket
from smi.compiler.ir.decide import Decision


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_authz_outcomes_are_counted_by_rule_and_reason() -> None:
    m = Metrics()
    allow = Decision(True, "deny", "allow", ("shop/TrafficTarget/a",), False, "m")
    deny = Decision(False, "deny", "source-not-allowed", ("shop/TrafficTarget/a",))
    would = Decision(True, "audit", "no-route-match", ("shop/TrafficTarget/b",), True)
    permissive = Decision(True, "permissive", "permissive", ())
    labels = [m.authz(d, "http") for d in (allow, allow, deny, would, permissive)]
    assert labels == ["allow", "allow", "deny", "would_deny", "permissive"]
    for label in labels:
        m.inbound.request(label)
    m.authz(deny, "tcp")
    s = _samples(m.render())
    assert s['inbound_http_authz_allow_total{rule="shop/TrafficTarget/a"}'] == 2
    assert s['inbound_http_authz_deny_total{reason="source-not-allowed"}'] == 1
    assert (
        s[
            'inbound_http_authz_would_deny_total{rule="shop/TrafficTarget/b",reason="no-route-match"}'
        ]
        == 1
    )
    assert s['inbound_tcp_authz_deny_total{reason="source-not-allowed"}'] == 1
    assert s['request_total{direction="inbound",authz="allow"}'] == 2
    assert s['request_total{direction="inbound",authz="would_deny"}'] == 1


def test_responses_are_classified_and_latency_is_a_cumulative_histogram() -> None:
    m = Metrics()
    for status, ms in ((200, 0.4), (200, 3.5), (503, 250.0), (200, 70000.0)):
        m.outbound.response(status, ms)
    s = _samples(m.render())
    prefix = 'response_total{direction="outbound",'
    assert s[prefix + 'status_code="200",classification="success"}'] == 3
    assert s[prefix + 'status_code="503",classification="failure"}'] == 1
    bucket = 'response_latency_ms_bucket{direction="outbound",le="%s"}'
    assert s[bucket % "1"] == 1
    assert s[bucket % "4"] == 2
    assert s[bucket % "300"] == 3
    assert s[bucket % "50000"] == 3
    assert s[bucket % "+Inf"] == 4
    assert s['response_latency_ms_count{direction="outbound"}'] == 4
    assert s['response_latency_ms_sum{direction="outbound"}'] == 70253.9


def test_render_is_valid_exposition_text_with_process_and_identity_gauges() -> None:
    m = Metrics()
    m.cert_expiry = 1_900_000_000.0
    m.policy_update("applied", 7)
    m.inbound.opened()
    m.authz(Decision(True, "deny", "allow", ('odd"rule\\',), False), "http")
    text = m.render()
    line = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? -?[0-9.e+Inf]+$')
    for row in text.splitlines():
        assert row.startswith("# ") or line.match(row), row
    s = _samples(text)
    assert s["policy_revision"] == 7
    assert s["identity_cert_expiration_timestamp_seconds"] == 1.9e9
    assert s['tcp_open_connections{direction="inbound"}'] == 1
    assert s["process_resident_memory_bytes"] > 1_000_000
    assert s["process_open_fds"] >= 3
    assert 'rule="odd\\"rule\\\\"' in text


def test_access_log_is_sampled_json_without_query_strings() -> None:
    out = io.StringIO()
    draws = iter([0.9, 0.1])
    log = AccessLog(out, sample=0.5, rng=lambda: next(draws))
    for _ in range(2):
        log.record(
            direction="inbound",
            peer="spiffe://cluster.local/ns/a/sa/b",
            method=b"GET",
            path=b"/api?token=secret",
            status=200,
            reason="allow",
            duration_ms=1.23456,
        )
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["path"] == "/api" and doc["status"] == 200 and doc["duration_ms"] == 1.235


def test_latency_bucket_is_the_first_bound_not_below_the_value() -> None:
    values = [0.0, 0.2, 1.0, 1.0000001, 4.99, 5.0, 7.5, 999.9, 1000.0, 49999.0, 50000.0]
    for value in [*values, 50000.5, 1e9, float("inf")]:
        assert bucket(value) == bisect_left(LATENCY_BOUNDS_MS, value), value


def test_the_upstream_pool_is_shown_when_the_proxy_has_one() -> None:
    class Pool:
        opened = 12

        def idle_count(self) -> int:
            return 5

        def waiting_count(self) -> int:
            return 2

    m = Metrics()
    assert "proxy_upstream" not in m.render()
    m.pool = Pool()
    s = _samples(m.render())
    assert s["proxy_upstream_connections_opened_total"] == 12
    assert s["proxy_upstream_idle_connections"] == 5
    assert s["proxy_upstream_waiting_requests"] == 2


def test_failed_tls_handshakes_are_shown_by_direction_and_reason() -> None:
    m = Metrics()
    assert "# TYPE tls_handshake_errors_total counter" in m.render()
    for direction, reason in [
        ("inbound", "no-certificate"),
        ("inbound", "no-certificate"),
        ("inbound", "not-tls"),
        ("outbound", "untrusted-certificate"),
    ]:
        m.tls_handshake_error(direction, reason)
    s = _samples(m.render())
    family = {k: v for k, v in s.items() if k.startswith("tls_handshake_errors_total")}
    assert family == {
        'tls_handshake_errors_total{direction="inbound",reason="no-certificate"}': 2,
        'tls_handshake_errors_total{direction="inbound",reason="not-tls"}': 1,
        'tls_handshake_errors_total{direction="outbound",reason="untrusted-certificate"}': 1,
    }

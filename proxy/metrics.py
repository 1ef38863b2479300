"""The proxy's counters: plain integers on the request path, Prometheus text on scrape.

No metrics library touches the request path (a `labels().inc()` costs microseconds; a dict
increment costs tens of nanoseconds). Every label comes from a closed set: direction, authz
outcome, status code, reason code, or a rule origin from the MeshPolicy in use — never a raw
path or header. Names follow Linkerd's proxy metrics where they exist.

Every response the proxy sends or cuts off is counted once in `response_total`, with its
request in `request_total`: a request answered before it reached the router (a malformed or
oversized head, a header timeout, CONNECT) under `authz="not-reached"`, and a response that
never ended (aborted by the proxy, or the client gone first) as `status_code="0"`, a failure.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Iterator
from typing import Final, Protocol

from mypy_extensions import mypyc_attr

from smi.compiler.ir.decide import Decision

# Linkerd's latency buckets (ms).
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1,
    2,
    3,
    4,
    5,
    10,
    20,
    30,
    40,
    50,
    100,
    200,
    300,
    400,
    500,
    1000,
    2000,
    3000,
    4000,
    5000,
    10000,
    20000,
    30000,
    40000,
    50000,
)
# The same bounds as floats, for `bucket`.
_BOUNDS: Final[tuple[float, ...]] = tuple(float(b) for b in LATENCY_BOUNDS_MS)
DIRECTIONS = ("inbound", "outbound")
# request_total's authz labels: allowed by a rule, and the outbound side's (which authorizes
# nothing), counted apart (`DirectionStats`); a request answered before it reached the router.
ALLOW: Final = "allow"
UNCHECKED: Final = "none"
NOT_REACHED: Final = "not-reached"
# response_total's status_code of a response that never ended (Istio's response_code 0).
ABORTED: Final = 0


class PoolView(Protocol):
    """What /metrics shows of the upstream connection pool (proxy.upstream.ConnectionPool)."""

    opened: int

    def idle_count(self) -> int: ...
    def waiting_count(self) -> int: ...


def bucket(value: float) -> int:
    """The histogram slot of `value`: the first bound it does not exceed (`bisect_left`),
    found from the bottom, where proxy latencies are: the first two bounds compared as float
    literals (machine comparisons, against a bisection's several mixed int/float ones through
    the C API), the others in a loop over their boxed floats."""
    if value <= 1.0:
        return 0
    if value <= 2.0:
        return 1
    i = 2
    n = len(_BOUNDS)
    while i < n:
        if value <= _BOUNDS[i]:
            return i
        i += 1
    return i


class Histogram:
    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        counts, i = self.counts, bucket(value)
        counts[i] = counts[i] + 1  # (`counts[i] += 1` is a generic in-place add in mypyc)
        self.total += value
        self.count += 1


class DirectionStats:
    """Counters of one direction; the protocols hold a reference and bump fields directly.

    The usual request and response are counted in fields of their own (`allowed`, `unchecked`,
    `ok`), the others in dicts: a field is one addition, where a dict's count is a lookup and
    an insertion through the C API (code that a request then runs for nothing else). Read the
    counts through `requests` and `responses`, which hold both."""

    __slots__ = (
        "_requests",
        "_responses",
        "allowed",
        "close_total",
        "errors",
        "latency",
        "ok",
        "open",
        "open_total",
        "unchecked",
    )

    def __init__(self) -> None:
        self._requests: dict[str, int] = {}  # authz outcome -> count, but these two:
        self.allowed = 0  # "allow"
        self.unchecked = 0  # "none" (the outbound side, which authorizes nothing)
        self._responses: dict[int, int] = {}  # status -> count, but 200:
        self.ok = 0
        self.latency = Histogram()
        self.errors: dict[str, int] = {}  # kind -> count
        self.open = 0
        self.open_total = 0
        self.close_total = 0

    @property
    def requests(self) -> dict[str, int]:
        """authz outcome -> count (a copy)."""
        counts = dict(self._requests)
        for label, n in ((ALLOW, self.allowed), (UNCHECKED, self.unchecked)):
            if n:
                counts[label] = n
        return counts

    @property
    def responses(self) -> dict[int, int]:
        """status -> count (a copy)."""
        counts = dict(self._responses)
        if self.ok:
            counts[200] = self.ok
        return counts

    def request(self, authz: str) -> None:
        if authz == ALLOW:
            self.allowed += 1
        elif authz == UNCHECKED:
            self.unchecked += 1
        else:
            self._requests[authz] = self._requests.get(authz, 0) + 1

    def response(self, status: int, latency_ms: float) -> None:
        if status == 200:
            self.ok += 1
        else:
            self._responses[status] = self._responses.get(status, 0) + 1
        h = self.latency
        counts, i = h.counts, bucket(latency_ms)
        counts[i] = counts[i] + 1  # (as in Histogram.observe)
        h.total += latency_ms
        h.count += 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def opened(self) -> None:
        self.open += 1
        self.open_total += 1

    def closed(self) -> None:
        self.open -= 1
        self.close_total += 1


class Count:
    """One counter that whoever bumps it holds (`n += 1`: no lookup by label per count)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@mypyc_attr(allow_interpreted_subclasses=True)
class Metrics:
    """Everything /metrics shows. One per proxy process, passed to whoever counts."""

    def __init__(self) -> None:
        self.inbound = DirectionStats()
        self.outbound = DirectionStats()
        # protocol ("http" | "tcp") -> rule -> its allows (`allow_count`: the inbound router
        # keeps a rule's with the decisions it caches)
        self.allow_counts: dict[str, dict[str, Count]] = {"http": {}, "tcp": {}}
        # protocol -> label -> count
        self.authz_deny: dict[str, dict[str, int]] = {"http": {}, "tcp": {}}  # by reason
        self.authz_would_deny: dict[str, dict[tuple[str, str], int]] = {"http": {}, "tcp": {}}
        self.policy_updates: dict[str, int] = {}
        self.policy_revision = -1
        self.cert_expiry: float = 0.0
        self.cert_renewals: dict[str, int] = {}
        # (direction, reason) -> failed TLS handshakes (proxy.tls.HandshakeErrors)
        self.tls_handshake_errors: dict[tuple[str, str], int] = {}
        self.started = time.time()
        self.pool: PoolView | None = None  # set by the proxy that owns one

    @property
    def authz_allow(self) -> dict[str, dict[str, int]]:
        """protocol -> rule -> allows (a copy)."""
        return {
            protocol: {rule: count.n for rule, count in counts.items() if count.n}
            for protocol, counts in self.allow_counts.items()
        }

    def allow_count(self, protocol: str, rule: str) -> Count:
        """The allow counter of `rule` (made the first time)."""
        counts = self.allow_counts[protocol]
        count = counts.get(rule)
        if count is None:
            count = counts[rule] = Count()
        return count

    def authz(self, decision: Decision, protocol: str) -> str:
        """Count an inbound decision; return its `authz` label for request_total."""
        if decision.reason == "allow" and len(decision.rules) == 1:  # the usual allow
            self.allow_count(protocol, decision.rules[0]).n += 1
            return ALLOW
        if decision.allowed and not decision.would_deny:
            if decision.reason != "allow":
                return "permissive"
            for rule in decision.rules:
                self.allow_count(protocol, rule).n += 1
            return ALLOW
        if not decision.allowed:
            deny = self.authz_deny[protocol]
            deny[decision.reason] = deny.get(decision.reason, 0) + 1
            return "deny"
        self.would_deny(protocol, decision.rules, decision.reason)
        return "would_deny"

    def would_deny(self, protocol: str, rules: tuple[str, ...], reason: str) -> None:
        """Count one audit-mode would-deny, labelled with all of `rules` joined by ",".

        Once per decision, not once per rule: a count per TrafficTarget of the destination
        added up to more than the requests audited, and pinned each request on rules that had
        nothing to do with it. The joined label is the decision's own rule tuple (the
        destination's TrafficTargets, or those naming the caller, in the policy's order; empty
        when there are none), so its values are bounded by the policy. Origins are the
        `ns/Kind/name` of Kubernetes objects, whose names hold no ",": the label splits back."""
        would = self.authz_would_deny[protocol]
        key = (",".join(rules), reason)
        would[key] = would.get(key, 0) + 1

    def policy_update(self, result: str, revision: int | None = None) -> None:
        self.policy_updates[result] = self.policy_updates.get(result, 0) + 1
        if revision is not None:
            self.policy_revision = revision

    def cert_renewal(self, result: str) -> None:
        self.cert_renewals[result] = self.cert_renewals.get(result, 0) + 1

    def tls_handshake_error(self, direction: str, reason: str) -> None:
        key = (direction, reason)
        self.tls_handshake_errors[key] = self.tls_handshake_errors.get(key, 0) + 1

    def render(self) -> str:
        return "".join(f"{line}\n" for line in self._lines())

    def _lines(self) -> Iterator[str]:
        yield from _family(
            "request_total", "counter", "HTTP requests by authorization outcome.", self._requests()
        )
        yield from _family(
            "response_total",
            "counter",
            "HTTP responses by status (0: cut off).",
            self._responses(),
        )
        yield from self._latency()
        for proto in ("http", "tcp"):
            allow = sorted(self.authz_allow[proto].items())
            deny = sorted(self.authz_deny[proto].items())
            would = sorted(self.authz_would_deny[proto].items())
            yield from _family(
                f"inbound_{proto}_authz_allow_total",
                "counter",
                "Allowed by a TrafficTarget.",
                ((f'rule="{_esc(rule)}"', n) for rule, n in allow),
            )
            yield from _family(
                f"inbound_{proto}_authz_deny_total",
                "counter",
                "Denied, by reason code.",
                ((f'reason="{reason}"', n) for reason, n in deny),
            )
            yield from _family(
                f"inbound_{proto}_authz_would_deny_total",
                "counter",
                "Audit mode: would have been denied, by the rules considered and reason.",
                ((f'rule="{_esc(rule)}",reason="{why}"', n) for (rule, why), n in would),
            )
        yield from self._tcp()
        yield from _family(
            "tls_handshake_errors_total",
            "counter",
            "TLS handshakes that failed, by direction and reason (connections never made).",
            (
                (f'direction="{d}",reason="{r}"', n)
                for (d, r), n in sorted(self.tls_handshake_errors.items())
            ),
        )
        yield from self._pool()
        yield from _family(
            "proxy_errors_total",
            "counter",
            "Upstream failures by kind.",
            (
                (f'direction="{d}",kind="{k}"', n)
                for d, s in self._dirs()
                for k, n in sorted(s.errors.items())
            ),
        )
        yield from _family(
            "policy_updates_total",
            "counter",
            "Policy updates by result.",
            ((f'result="{r}"', n) for r, n in sorted(self.policy_updates.items())),
        )
        yield from _family(
            "policy_revision",
            "gauge",
            "Revision of the MeshPolicy in use.",
            [("", self.policy_revision)],
        )
        yield from _family(
            "identity_cert_expiration_timestamp_seconds",
            "gauge",
            "When this workload's certificate expires.",
            [("", self.cert_expiry)],
        )
        yield from _family(
            "identity_cert_refresh_total",
            "counter",
            "Certificate reloads.",
            ((f'result="{r}"', n) for r, n in sorted(self.cert_renewals.items())),
        )
        yield from self._process()

    def _dirs(self) -> Iterator[tuple[str, DirectionStats]]:
        yield "inbound", self.inbound
        yield "outbound", self.outbound

    def _requests(self) -> Iterator[tuple[str, float]]:
        for d, stats in self._dirs():
            for authz, n in sorted(stats.requests.items()):
                yield f'direction="{d}",authz="{authz}"', n

    def _responses(self) -> Iterator[tuple[str, float]]:
        for d, stats in self._dirs():
            for status, n in sorted(stats.responses.items()):
                # Linkerd's classification: a 5xx, or no whole response at all.
                cls = "failure" if status >= 500 or status == ABORTED else "success"
                yield f'direction="{d}",status_code="{status}",classification="{cls}"', n

    def _latency(self) -> Iterator[str]:
        name = "response_latency_ms"
        yield f"# HELP {name} Time from request head to response end, in milliseconds."
        yield f"# TYPE {name} histogram"
        for d, stats in self._dirs():
            h, running = stats.latency, 0
            for bound, n in zip((*LATENCY_BOUNDS_MS, "+Inf"), h.counts, strict=True):
                running += n
                yield f'{name}_bucket{{direction="{d}",le="{bound}"}} {running}'
            yield f'{name}_sum{{direction="{d}"}} {h.total:.3f}'
            yield f'{name}_count{{direction="{d}"}} {h.count}'

    def _tcp(self) -> Iterator[str]:
        for name, kind, attr in (
            ("tcp_open_connections", "gauge", "open"),
            ("tcp_open_total", "counter", "open_total"),
            ("tcp_close_total", "counter", "close_total"),
        ):
            yield from _family(
                name,
                kind,
                "Downstream connections.",
                ((f'direction="{d}"', getattr(s, attr)) for d, s in self._dirs()),
            )

    def _pool(self) -> Iterator[str]:
        pool = self.pool
        if pool is None:
            return
        yield from _family(
            "proxy_upstream_connections_opened_total",
            "counter",
            "Connections opened to the app or to backends' inbound proxies.",
            [("", pool.opened)],
        )
        yield from _family(
            "proxy_upstream_idle_connections",
            "gauge",
            "Keep-alive connections to upstreams waiting for a request.",
            [("", pool.idle_count())],
        )
        yield from _family(
            "proxy_upstream_waiting_requests",
            "gauge",
            "Requests waiting for an upstream connection to be given back or opened.",
            [("", pool.waiting_count())],
        )

    def _process(self) -> Iterator[str]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        yield from _family(
            "process_cpu_seconds_total",
            "counter",
            "CPU time used.",
            [("", usage.ru_utime + usage.ru_stime)],
        )
        yield from _family(
            "process_resident_memory_bytes", "gauge", "Resident set size.", [("", _rss_bytes())]
        )
        yield from _family(
            "process_open_fds", "gauge", "Open file descriptors.", [("", _open_fds())]
        )
        yield from _family(
            "process_start_time_seconds", "gauge", "Start time (Unix).", [("", self.started)]
        )


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]
) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        shown = int(value) if float(value).is_integer() else value
        yield f"{name}{{{labels}}} {shown}" if labels else f"{name} {shown}"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            statm = f.read()
        return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1

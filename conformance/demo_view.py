"""The demo's traffic counters and its terminal view.

`Traffic` counts, per edge, what came back through the proxies: allowed (the app answered, and
which backend), denied (the destination proxy's 403), or failed (anything else). `render` draws
one frame: edges with totals and the last five seconds, the catalog split as the control plane
serves it and as observed, the policy revision each proxy enforces, and the event log.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from conformance.targets.mesh import APP_MARK

WINDOW = 5.0


@dataclass(frozen=True)
class Edge:
    source: str
    host: str
    method: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.source} -> {self.host.split('.')[0]} {self.method} {self.path}"


@dataclass(frozen=True)
class Event:
    at: float
    text: str
    ok: bool


@dataclass
class EdgeStats:
    allowed: int = 0
    denied: int = 0
    failed: int = 0
    backends: Counter[str] = field(default_factory=Counter)
    seen: str = ""
    recent: deque[tuple[float, str, str]] = field(default_factory=deque)  # (t, outcome, backend)

    def record(self, outcome: str, backend: str = "", seen: str = "") -> None:
        now = time.monotonic()
        if outcome == "allowed":
            self.allowed += 1
            self.backends[backend] += 1
            self.seen = seen or self.seen
        elif outcome == "denied":
            self.denied += 1
        else:
            self.failed += 1
        self.recent.append((now, outcome, backend))
        while self.recent and self.recent[0][0] < now - WINDOW:
            self.recent.popleft()

    def window(self) -> tuple[Counter[str], Counter[str]]:
        cutoff = time.monotonic() - WINDOW
        items = [r for r in list(self.recent) if r[0] >= cutoff]
        return Counter(o for _, o, _ in items), Counter(b for _, o, b in items if o == "allowed")


class Client:
    """One keep-alive connection to the source's outbound proxy, for one edge."""

    def __init__(self, edge: Edge, stats: EdgeStats, lock: threading.Lock, outbound: int) -> None:
        self.edge, self.stats, self.lock, self.outbound = edge, stats, lock, outbound
        self.conn: http.client.HTTPConnection | None = None

    def send(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.outbound, timeout=5)
        body = b"{}" if self.edge.method == "POST" else None
        try:
            self.conn.request(
                self.edge.method, self.edge.path, body=body, headers={"Host": self.edge.host}
            )
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            with self.lock:
                self.stats.record("failed")
            return
        backend = resp.getheader(APP_MARK)
        with self.lock:
            if backend is not None:
                self.stats.record("allowed", backend, _seen(raw))
            elif resp.status == 403:
                self.stats.record("denied")
            else:
                self.stats.record("failed")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _seen(raw: bytes) -> str:
    try:
        spiffe = str(json.loads(raw).get("identity") or "")
    except (ValueError, AttributeError):
        return ""
    return spiffe.split("/ns/", 1)[-1].replace("/sa/", "/") if spiffe else ""


class Traffic:
    def __init__(self, edges: tuple[Edge, ...]) -> None:
        self.edges = edges
        self.stats = {e: EdgeStats() for e in edges}
        self.lock = threading.Lock()

    def client(self, edge: Edge, *, outbound: int) -> Client:
        return Client(edge, self.stats[edge], self.lock, outbound)


# --- the frame -----------------------------------------------------------------------------------

ANSI = {
    "green": "\x1b[32m",
    "red": "\x1b[31m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "reset": "\x1b[0m",
}
PLAIN = dict.fromkeys(ANSI, "")


def _bar(allowed: int, denied: int, c: dict[str, str], width: int = 20) -> str:
    total = allowed + denied
    if total == 0:
        return " " * width
    a = round(width * allowed / total)
    return f"{c['green']}{'#' * a}{c['red']}{'x' * (width - a)}{c['reset']}"


def render(
    *,
    traffic: Traffic,
    events: list[Event],
    policy: dict[str, Any],
    elapsed: float,
    duration: float,
    final: bool,
    color: bool = True,
    show_events: bool = True,
) -> str:
    c = ANSI if color else PLAIN
    head = "final" if final else f"t={elapsed:5.1f}s of {duration:g}s"
    lines = [
        f"{c['bold']}smictl demo{c['reset']} - a live SMI mesh on 127.0.0.1 ({head})",
        f"control plane {policy.get('url', '?')}  policy revision {policy.get('revision', '?')} "
        f"{c['dim']}{str(policy.get('hash', ''))[:19]}{c['reset']}  mode "
        f"{policy.get('mode', '?')}",
        "proxies enforce revision: "
        + "  ".join(
            f"{label}={rev if rev is not None else '-'}"
            for label, rev in policy.get("proxies", {}).items()
        ),
        "",
        f"{'edge':<44} {'allowed':>8} {'denied':>7} {'failed':>6}   last {WINDOW:g}s",
    ]
    with traffic.lock:
        rows = [(e, traffic.stats[e]) for e in traffic.edges]
        for edge, st in rows:
            outcome, _ = st.window()
            seen = f" {c['dim']}(seen as {st.seen}){c['reset']}" if st.seen else ""
            lines.append(
                f"{edge.label:<44} {st.allowed:>8} {st.denied:>7} {st.failed:>6}   "
                f"{_bar(outcome['allowed'], outcome['denied'], c)}{seen}"
            )
        catalog = next(
            (st for e, st in rows if e.host.startswith("catalog") and e.source == "frontend"), None
        )
        lines += ["", _split_line(policy.get("split"), catalog)]
    if show_events:
        lines += ["", "events:"]
        lines += [
            f"  {e.at:6.1f}s {c['green'] if e.ok else c['red']}{e.text}{c['reset']}"
            for e in events[-6:]
        ]
    return "\n".join(lines) + "\n"


def _split_line(split: Any, stats: EdgeStats | None) -> str:
    configured = "none"
    if isinstance(split, dict) and split.get("backends"):
        backends = split["backends"]
        total = sum(int(b["weight"]) for b in backends) or 1
        configured = "  ".join(
            f"{str(b['service']).split('/')[-1]} {100 * int(b['weight']) / total:.0f}%"
            for b in backends
        )
    observed = "-"
    if stats is not None:
        _, recent = stats.window()
        total = sum(recent.values())
        if total:
            observed = "  ".join(
                f"{name} {100 * n / total:.0f}%" for name, n in sorted(recent.items())
            )
    return (
        f"TrafficSplit shop/catalog: configured {configured}   "
        f"observed (last {WINDOW:g}s) {observed}"
    )

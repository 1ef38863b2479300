"""The `proxy` target: the control plane of the `webhook` target plus a real mesh — one
`smictl proxy` per workload, each running as that workload's identity with a certificate the
control plane signed, test apps behind them, traffic over mTLS between the proxies.

Admission, apply/delete and conversion go to the control plane exactly as in the `webhook`
target; after every change the target waits until each proxy enforces the new policy (its
`/config` hash equals the served ETag), then sends traffic:

- HTTP to a service's first port goes through the caller's outbound proxy (`Host: name.ns`),
  which applies the TrafficSplit and opens mTLS to the chosen backend's inbound proxy;
- a request for another port of the service, or a TCP connection, is opened by the suite itself
  straight to the destination's inbound listener for that port, presenting the caller's
  workload certificate (the outbound listener addresses services, not ports); a TCP connection
  carries raw bytes that are not HTTP (`mesh.TCP_PROBE`), which the app echoes;
- UDP is not proxied, so UDP steps are skipped with that reason;
- a `connect` step opens its own connections straight to the destination's inbound listener
  with the client certificate it names (the mesh CA's, another CA's, an expired one, or
  none), so what the destination does with a forged `x-smi-source-identity` or a wrong
  certificate is seen, not hidden by a caller's sidecar (which drops the header and presents
  its own certificate). A TLS error before any answer is a refused handshake.

Allowed = the answer came from the destination app (it marks its responses); the identity the
app saw is the `x-smi-source-identity` the inbound proxy set; audit would-denies are read from
the destination proxies' metrics.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from conformance.assertions import ApplyObservation, RequestObservation, Response
from conformance.model import (
    ConnectSpec,
    ConnectStep,
    RequestSpec,
    RequestStep,
    Scenario,
    Step,
    Workload,
    split_service,
)
from conformance.targets.base import TargetError
from conformance.targets.mesh import APP_MARK, TCP_PROBE, Mesh, Slot
from conformance.targets.webhook import WebhookTarget, unsupported_admit
from smi.identity import Identity, IdentityError


@dataclass(frozen=True)
class Placement:
    """Where one scenario workload runs: its slot, and the port it registered."""

    workload: Workload
    slot: Slot


class ProxyTarget(WebhookTarget):
    name = "proxy"
    # A change waits up to 15 s for every proxy to enforce it, which says more than the step
    # deadline would; 2000 requests through real proxies take about a second, unloaded.
    step_timeout = 30.0
    unobserved = MappingProxyType({})  # the apps see what the proxies state

    def __init__(self) -> None:
        super().__init__()
        self.mesh: Mesh | None = None
        self._ports: dict[tuple[str, int], set[int]] = {}
        self._placed: list[Placement] = []
        self._contexts: dict[tuple[str | None, str], ssl.SSLContext] = {}
        self._conns: dict[int, http.client.HTTPConnection] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def plan(self, scenarios: Sequence[Scenario]) -> None:
        """Each identity's k-th workload in any scenario runs in slot (identity, k), which
        listens on every port any of them uses."""
        for s in scenarios:
            if _needs_mesh(s):
                for key, w in _slot_keys(s):
                    self._ports.setdefault(key, set()).update(w.ports)

    def start(self) -> None:
        super().start()
        assert self.plane is not None and self._workdir is not None
        self.mesh = Mesh(self.plane, self._workdir / "mesh")
        self.mesh.workdir.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        self._close_connections()
        if self.mesh is not None:
            self.mesh.stop()
            self.mesh = None
        super().stop()

    def begin(self, scenario: Scenario) -> None:
        super().begin(scenario)
        self._placed = []
        if not _needs_mesh(scenario):
            return
        mesh = self._mesh()
        for key, w in _slot_keys(scenario):
            ports = tuple(sorted(self._ports.get(key) or set(w.ports)))
            slot = mesh.slot(key[0], key[1], ports)
            slot.label = w.label
            if w.services:
                mesh.register(slot, w.services, app_port=w.ports[0])
            self._placed.append(Placement(w, slot))
        mesh.settle([p.slot for p in self._placed])

    def end(self, scenario: Scenario) -> None:
        super().end(scenario)
        if self.mesh is None:
            return
        for p in self._placed:
            if p.workload.services and p.slot.child is not None and p.slot.child.alive:
                self.mesh.deregister(p.slot, app_port=p.workload.ports[0])
        self._placed = []

    def unsupported(self, step: Step, scenario: Scenario) -> str | None:
        if isinstance(step, RequestStep) and step.request.protocol == "udp":
            return "smictl proxy does not carry UDP"
        return unsupported_admit(step)  # not the webhook's skips of what only proxies do

    def _mesh(self) -> Mesh:
        if self.mesh is None:
            raise TargetError("the mesh is not running")
        return self.mesh

    # --- changes: wait until the proxies enforce them ---------------------------------------------

    def apply(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        outcome = super().apply(scenario, keys)
        self._settle()
        return outcome

    def delete(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        outcome = super().delete(scenario, keys)
        self._settle()
        return outcome

    def _settle(self) -> None:
        if self._placed:
            self._mesh().settle([p.slot for p in self._placed])

    # --- traffic -------------------------------------------------------------------------------

    def request(self, scenario: Scenario, spec: RequestSpec) -> RequestObservation:
        mesh = self._mesh()
        source = self._placement(spec.source)
        ns, svc = split_service(spec.service_ref, default_namespace=source.workload.namespace)
        backing = [
            p for p in self._placed if p.workload.namespace == ns and svc in p.workload.services
        ]
        if not backing:
            raise TargetError(f"no running workload backs {ns}/{svc}")
        first = backing[0].workload.ports[0]
        port = spec.port or first
        direct = spec.protocol == "tcp" or port != first
        audit = scenario.mode == "audit"
        dest_slots = [p.slot for p in self._placed if p.workload.services]
        before = mesh.would_deny(dest_slots) if audit else 0
        denies = mesh.denies(dest_slots)
        responses = [
            self._direct(source, backing[0], port, spec)
            if direct
            else self._outbound(source, f"{svc}.{ns}", spec)
            for _ in range(spec.count)
        ]
        would_deny = mesh.would_deny(dest_slots) - before if audit else None
        confirmed = mesh.denies(dest_slots) - denies
        return RequestObservation(responses=_confirm(responses, confirmed), would_deny=would_deny)

    def _placement(self, identity: str) -> Placement:
        for p in self._placed:
            if p.workload.identity == identity:
                return p
        raise TargetError(f"{identity} is not running")

    def _outbound(self, source: Placement, host: str, spec: RequestSpec) -> Response:
        port = source.slot.outbound
        conn = self._conns.get(port)
        if conn is None:
            conn = self._conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            return _exchange(conn, spec, host=host)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._conns.pop(port, None)
            return Response(allowed=False, error=f"outbound proxy failed: {exc!r}")
        except BaseException:
            # A step deadline or a signal cut the exchange short: the kept-alive connection
            # holds half of it, and the next request on it would read the wrong answer.
            conn.close()
            self._conns.pop(port, None)
            raise

    def connect(self, scenario: Scenario, spec: ConnectSpec) -> RequestObservation:
        mesh = self._mesh()
        default_ns = spec.identity.split("/", 1)[0] if spec.identity else ""
        ns, svc = split_service(spec.service_ref, default_namespace=default_ns)
        dest = next(
            (p for p in self._placed if p.workload.namespace == ns and svc in p.workload.services),
            None,
        )
        if dest is None:
            raise TargetError(f"no running workload backs {ns}/{svc}")
        port = spec.port or dest.workload.ports[0]
        inbound = _inbound(dest, port)
        ctx = self._context(spec.identity, spec.certificate)
        denies = mesh.denies([dest.slot])
        host = f"{dest.workload.label}:{port}"
        responses = [_connect_once(ctx, inbound, spec, host=host) for _ in range(spec.count)]
        confirmed = mesh.denies([dest.slot]) - denies
        return RequestObservation(responses=_confirm(responses, confirmed))

    def _context(self, identity: str | None, certificate: str = "mesh") -> ssl.SSLContext:
        ctx = self._contexts.get((identity, certificate))
        if ctx is None:
            ctx = self._mesh().client_context(identity, certificate=certificate)
            self._contexts[identity, certificate] = ctx
        return ctx

    def _direct(self, source: Placement, dest: Placement, port: int, spec: RequestSpec) -> Response:
        ctx = self._context(source.workload.identity)
        inbound = _inbound(dest, port)
        if spec.protocol == "tcp":
            return _tcp_probe(ctx, inbound)
        conn = http.client.HTTPSConnection("127.0.0.1", inbound, timeout=15, context=ctx)
        try:
            return _exchange(conn, spec, host=f"{dest.workload.label}:{port}")
        except (OSError, http.client.HTTPException) as exc:
            # A denied L4 connection is closed by the destination proxy.
            return Response(allowed=False, status=None, reason=f"connection closed: {exc!r}")
        finally:
            conn.close()

    def _close_connections(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def _inbound(dest: Placement, port: int) -> int:
    try:
        return dest.slot.inbound(port)
    except KeyError as exc:
        raise TargetError(f"{dest.workload.label} has no inbound listener for {port}") from exc


def _connect_once(ctx: ssl.SSLContext, port: int, spec: ConnectSpec, *, host: str) -> Response:
    """One connection of a `connect` step. With TLS 1.3 a server that refuses the client's
    certificate says so with an alert the client reads after its own side of the handshake,
    so a TLS error before any answer, sending or reading, is the refusal."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    except OSError as exc:
        return Response(allowed=False, error=f"cannot connect to the inbound listener: {exc!r}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.sock = ctx.wrap_socket(raw)
        return _exchange(conn, spec, host=host)
    except ssl.SSLError as exc:
        return Response(allowed=False, handshake=f"{exc.reason or exc}")
    except (OSError, http.client.HTTPException) as exc:
        return Response(allowed=False, reason=f"connection closed: {exc!r}")
    finally:
        conn.close()
        raw.close()


def _exchange(
    conn: http.client.HTTPConnection, spec: RequestSpec | ConnectSpec, *, host: str
) -> Response:
    body = spec.body.encode() if spec.body is not None else None
    conn.request(spec.method, spec.path, body=body, headers={"Host": host, **spec.headers})
    resp = conn.getresponse()
    raw = resp.read()
    backend = resp.getheader(APP_MARK)
    if backend is None:  # the proxy answered, not the app
        return Response(
            allowed=False, status=resp.status, reason=raw.decode(errors="replace").strip()[:200]
        )
    return Response(allowed=True, status=resp.status, backend=backend, identity=_seen_identity(raw))


def _tcp_probe(ctx: ssl.SSLContext, port: int) -> Response:
    """One TCP connection over mTLS carrying bytes no HTTP parser accepts (`TCP_PROBE`), so a
    mesh that reads a TCPRoute port as HTTP, or alters the bytes, fails the step instead of
    passing it with a well-formed GET. Allowed = the app echoed exactly what was sent."""
    probe = TCP_PROBE + secrets.token_hex(8).encode() + b"\n"
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
            ctx.wrap_socket(raw) as conn,
        ):
            conn.sendall(probe)
            reply = _read_line(conn)
    except OSError as exc:  # a denied L4 connection is closed by the destination proxy
        return Response(allowed=False, reason=f"connection closed: {exc!r}")
    return _probe_answer(reply, probe)


def _read_line(conn: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _probe_answer(reply: bytes, probe: bytes) -> Response:
    """What a TCP probe's answer shows: the app's JSON line with the echo is allowed; nothing
    is a closed connection (denied if the destination proxy counted a deny, see `_confirm`);
    anything else is not the app, or bytes changed on the way."""
    if not reply:
        return Response(allowed=False, reason="connection closed without an answer")
    try:
        doc = json.loads(reply)
        echo, workload = bytes.fromhex(doc["echo"]), str(doc["workload"])
    except (ValueError, KeyError, TypeError):
        return Response(allowed=False, reason=f"not the app's answer: {reply[:120]!r}")
    if echo != probe:
        return Response(allowed=False, error=f"the app received {echo[:80]!r}, not the probe sent")
    return Response(allowed=True, backend=workload)


def _confirm(responses: list[Response], denies: int) -> tuple[Response, ...]:
    """A request counts as denied only if the destination proxy recorded that many denies;
    anything else that did not reach the app (a 502, a reset nobody decided) is an error."""
    out = []
    for r in responses:
        if r.denied and denies > 0:
            denies -= 1
        elif r.denied:
            detail = f"HTTP {r.status}" if r.status else "no answer"
            error = f"{detail} without a deny by the destination proxy: {r.reason[:120]}"
            r = replace(r, error=error)  # noqa: PLW2901 - the same response, judged
        out.append(r)
    return tuple(out)


def _seen_identity(raw: bytes) -> str | None:
    """The caller identity the app saw: the one value of `x-smi-source-identity` under any
    spelling; several (a forged copy the proxy let through) are all shown, and fail."""
    try:
        doc = json.loads(raw)
        values = doc.get("identities", [doc.get("identity")])
        values = [str(v) for v in values if v]
        if len(values) > 1:
            return "several: " + ", ".join(values)
        return Identity.parse(values[0]).short if values else None
    except (ValueError, AttributeError, IdentityError):
        return None


def _needs_mesh(scenario: Scenario) -> bool:
    return any(isinstance(s, RequestStep | ConnectStep) for s in scenario.steps)


def _slot_keys(scenario: Scenario) -> list[tuple[tuple[str, int], Workload]]:
    seen: dict[str, int] = {}
    out = []
    for w in scenario.workloads:
        k = seen.get(w.identity, 0)
        seen[w.identity] = k + 1
        out.append(((w.identity, k), w))
    return out

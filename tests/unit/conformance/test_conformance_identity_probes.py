"""The identity scenario connects straight to the destination's inbound listener. Through the
caller's outbound sidecar (all it did before), a forged `x-smi-source-identity` is dropped and
the sidecar presents its own certificate, so a destination that trusted the header, or took
any client certificate, still passed. Here the destination is played by small TLS servers:
one as smictl proxy behaves, and broken ones the `connect` steps must catch."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

from conformance.assertions import RequestObservation, check_connect
from conformance.catalog import discover
from conformance.model import ConnectSpec, ConnectStep
from conformance.runner import run
from conformance.targets.inproc import InprocTarget
from conformance.targets.mesh import APP_MARK, Mesh
from conformance.targets.proxy import _connect_once
from proxy.http1 import SOURCE_IDENTITY, spellings
from webhook.certs_cli import CA_CERT, SERVER_CERT, SERVER_KEY, ensure_certs

SCENARIO = "access/identity.access-v1alpha3.specs-v1alpha4"
FRONTEND = "spiffe://cluster.local/ns/shop/sa/frontend"
Decide = Callable[[dict[str, str], dict[str, object] | None], bool]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Mesh:
    """A Mesh with no servers: only its CA, for client certificates."""
    certs = tmp_path_factory.mktemp("certs")
    ensure_certs(certs)
    plane = SimpleNamespace(certs=certs, ca_file=certs / CA_CERT)
    return Mesh(plane, certs)  # type: ignore[arg-type]


def _answer(tls: ssl.SSLSocket, allowed: bool, cert: dict[str, object] | None) -> None:
    """The app's answer with the identity from the certificate, as the proxy states it."""
    uris = [v for k, v in (cert or {}).get("subjectAltName", ()) if k == "URI"]  # type: ignore[attr-defined]
    body = json.dumps({"identities": uris}).encode() if allowed else b"denied"
    head = f"HTTP/1.1 {200 if allowed else 403} X\r\n"
    head += f"{APP_MARK}: catalog\r\n" if allowed else ""
    head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    tls.sendall(head.encode() + body)


def _headers(tls: ssl.SSLSocket) -> dict[str, str]:
    data = b""
    while b"\r\n\r\n" not in data and (chunk := tls.recv(65536)):
        data += chunk
    lines = data.decode().split("\r\n")[1:]
    return {k.strip(): v.strip() for k, _, v in (x.partition(":") for x in lines if ":" in x)}


@pytest.fixture
def inbound(mesh: Mesh) -> Iterator[Callable[..., int]]:
    """A stand-in for catalog's inbound listener. `verify`: it asks for and checks a client
    certificate from the mesh CA; `decide(headers, peer_cert)` allows or denies a request."""
    listeners: list[socket.socket] = []

    def start(*, verify: bool, decide: Decide) -> int:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certs = mesh.plane.certs
        ctx.load_cert_chain(str(certs / SERVER_CERT), str(certs / SERVER_KEY))
        if verify:
            ctx.load_verify_locations(str(mesh.plane.ca_file))
            ctx.verify_mode = ssl.CERT_REQUIRED
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            while True:
                try:
                    raw, _ = listener.accept()
                except OSError:
                    return
                try:
                    with raw, ctx.wrap_socket(raw, server_side=True) as tls:
                        cert = tls.getpeercert() or None
                        _answer(tls, decide(_headers(tls), cert), cert)
                except (ssl.SSLError, OSError):
                    continue  # a refused handshake

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()


def _by_certificate(headers: dict[str, str], cert: dict[str, object] | None) -> bool:
    """As smictl proxy decides: the frontend's certificate is allowed, nobody else."""
    return cert is not None and FRONTEND in str(cert.get("subjectAltName"))


def _by_header(headers: dict[str, str], cert: dict[str, object] | None) -> bool:
    """A broken mesh: the identity comes from any spelling of the header, if one is sent."""
    spelt = {k.lower().replace("_", "-"): v for k, v in headers.items()}
    return spelt.get("x-smi-source-identity") == FRONTEND or _by_certificate(headers, cert)


def _connect(mesh: Mesh, port: int, step: dict[str, object]) -> list[str]:
    """Run one `connect` step against `port`; the checks that failed."""
    parsed = ConnectStep.model_validate(step)
    spec: ConnectSpec = parsed.connect
    ctx = mesh.client_context(spec.identity, certificate=spec.certificate)
    response = _connect_once(ctx, port, spec, host="catalog:8080")
    checks = check_connect(
        parsed.expect, RequestObservation(responses=(response,)), count=spec.count
    )
    return [c.line() for c in checks if not c.ok]


def _scenario_steps(kind: str = "connect") -> list[dict[str, object]]:
    [scenario] = discover(patterns=[SCENARIO], smi_version="all")
    return [
        s.model_dump(by_alias=True, exclude_defaults=True)
        for s in scenario.steps
        if isinstance(s, ConnectStep) and kind == "connect"
    ]


def test_the_identity_scenario_probes_every_spelling_and_every_wrong_certificate() -> None:
    steps = [ConnectStep.model_validate(s) for s in _scenario_steps()]
    forged = {
        name.lower()
        for s in steps
        if s.connect.identity == "shop/intruder"
        for name in s.connect.headers
    }
    assert forged == {s.decode() for s in spellings(SOURCE_IDENTITY)}  # all the proxy drops
    refused = {s.connect.certificate for s in steps if s.expect.handshake == "refused"}
    assert refused == {"foreign-ca", "expired", "none"}


def test_the_shipped_steps_pass_against_a_destination_that_behaves(
    mesh: Mesh, inbound: Callable[..., int]
) -> None:
    port = inbound(verify=True, decide=_by_certificate)
    for step in _scenario_steps():
        assert _connect(mesh, port, step) == [], step.get("name")


def test_a_destination_that_trusts_the_header_fails_every_forged_step(
    mesh: Mesh, inbound: Callable[..., int]
) -> None:
    port = inbound(verify=True, decide=_by_header)
    forged = [s for s in _scenario_steps() if "intruder" in json.dumps(s)]
    assert len(forged) == 8
    for step in forged:
        assert _connect(mesh, port, step) == [
            "status: expected 403 for every request, got 200 [FAILED]",
            "denied: expected 1, got 0 [FAILED]",
        ], step.get("name")


def test_a_destination_that_takes_any_certificate_fails_the_handshake_steps(
    mesh: Mesh, inbound: Callable[..., int]
) -> None:
    port = inbound(verify=False, decide=lambda headers, cert: True)
    refused = [s for s in _scenario_steps() if s["expect"] == {"handshake": "refused"}]
    assert len(refused) == 3
    for step in refused:
        assert _connect(mesh, port, step) == [
            "TLS handshake: expected refused on every connection, got accepted, HTTP 200 "
            "from the app [FAILED]"
        ], step.get("name")


def test_targets_without_a_listener_skip_connect_steps_with_the_reason() -> None:
    [scenario] = discover(patterns=[SCENARIO], smi_version="all")
    [r] = run([InprocTarget()], [scenario]).results
    reasons = {s.reason for s in r.steps if s.kind == "connect"}
    assert reasons == {
        "inproc: no listener checks a client certificate here: smictl proxy's inbound "
        "listener does (run the proxy target)"
    }
    assert {s.status for s in r.steps if s.kind == "connect"} == {"skipped"}


def test_the_app_shows_a_forged_spelling_that_got_through() -> None:
    from conformance.targets import mesh as mesh_module
    from conformance.targets.mesh import Slot
    from conformance.targets.proxy import _seen_identity

    slot = Slot(identity="shop/catalog", index=0, address="127.0.0.1", ports=(0,), label="c")
    server = mesh_module._AppServer(("127.0.0.1", 0), slot)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        with socket.create_connection(server.server_address, timeout=5) as conn:
            conn.sendall(
                b"GET / HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"
                b"x-smi-source-identity: " + FRONTEND.encode() + b"\r\n"
                b"X_Smi_Source_Identity: spiffe://cluster.local/ns/ops/sa/admin\r\n\r\n"
            )
            reply = b"".join(iter(lambda: conn.recv(65536), b""))
    finally:
        server.shutdown()
        server.server_close()
    body = reply.partition(b"\r\n\r\n")[2]
    assert _seen_identity(body) == (f"several: {FRONTEND}, spiffe://cluster.local/ns/ops/sa/admin")

"""The injected sidecar in IPv4-only, IPv6-only-addressed and dual-stack pods.

A pod's peers dial whichever of its addresses their EndpointSlice holds: in a dual-stack
cluster a Service has an IPv4 and an IPv6 slice, so a proxy listening on 0.0.0.0 (what the
injector used to set) refused every peer that picked the IPv6 one, and in an IPv6-only cluster
all of them. The injector now sets `SMI_PROXY_BIND=*`: `::` with IPV6_V6ONLY off (IPv4 peers
arrive as ::ffff:a.b.c.d, whatever net.ipv6.bindv6only says), 0.0.0.0 where there is no IPv6.

A wildcard listens on every address of its network namespace, so each test runs in a network
namespace of its own holding only `lo` (127.0.0.1 and ::1): the test's thread enters it, and
what that thread creates (the apps, the stand-in control plane, the proxy processes) lives
there. ::1 stands for the pod's IPv6 address and 127.0.0.1 for its IPv4 one.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_harness import EchoApp, Pki, ProxyProc, accepts, request, wait_for, write_policy
from proxy_mesh import FRONT, sid
from test_proxy_as_injected import SERVING_CA, _can_unshare, _container, _start, wait_listening
from test_proxy_controlplane import WEB, StandIn, _policy

from smi.compiler.ir import Endpoint, MeshPolicy, Service
from webhook.injection import InjectionConfig, proxy_container

pytestmark = pytest.mark.integration
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _netns_call(name: str, *args: int) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _can_make_netns() -> bool:
    try:
        probe = ["unshare", "--net", "ip", "link", "set", "lo", "up"]
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = [
    pytestmark,
    pytest.mark.skipif(not _can_make_netns(), reason="no network namespaces (needs root)"),
]

# A pod of each kind: sysctls of its network namespace, its address (POD_IP, the kubelet's
# `status.podIP`) and the addresses peers may dial it at.
PODS = {
    # The pod IP is IPv6 (an IPv6-first dual-stack cluster): the kubelet probes it there.
    "dual-stack": ((), "::1", ("127.0.0.1", "::1")),
    # Some distributions default `::` to IPv6 only: `*` must still take IPv4 peers.
    "dual-stack, bindv6only=1": (("net.ipv6.bindv6only=1",), "127.0.0.1", ("127.0.0.1", "::1")),
    "ipv4-only (ipv6 disabled)": (
        ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1"),
        "127.0.0.1",
        ("127.0.0.1",),
    ),
}


@pytest.fixture
def pod_netns(request: pytest.FixtureRequest) -> Iterator[tuple[str, tuple[str, ...]]]:
    """This thread in a new network namespace set up as the pod `request.param` (a PODS key);
    gives its POD_IP and peer addresses. Only this thread moves: the namespace is per thread."""
    sysctls, pod_ip, addresses = PODS[getattr(request, "param", "dual-stack")]
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _netns_call("unshare", CLONE_NEWNET)
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            for setting in sysctls:
                subprocess.run(["sysctl", "-q", "-w", setting], check=True)
            if "::1" in addresses and not _can_bind("::1"):
                pytest.skip("::1 cannot be bound here")
            yield pod_ip, addresses
        finally:
            _netns_call("setns", home, CLONE_NEWNET)
    finally:
        os.close(home)


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


def _get(host: str, port: int, path: str, ctx: ssl.SSLContext | None = None) -> int:
    """The status of GET `path` at host:port (mTLS with `ctx`)."""
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
        if ctx is not None
        else http.client.HTTPConnection(host, port, timeout=5)
    )
    try:
        return request(conn, "GET", path)[0]
    finally:
        conn.close()


def _injected_binds(pod_ip: str) -> dict[str, str]:
    """The injector's SMI_PROXY_*BIND values, with $(POD_IP) expanded as the kubelet does."""
    config = InjectionConfig(image="smictl:test", control_plane_url="https://cp:8443")
    container = proxy_container(identity=WEB, app_port=8080, config=config)
    env = {e["name"]: str(e.get("value", "")) for e in container["env"]}
    return {k: v.replace("$(POD_IP)", pod_ip) for k, v in env.items() if k.endswith("BIND")}


def _file_proxy(root: Path, pki: Pki, name: str, identity: str, args: list[str]) -> ProxyProc:
    cert, key = pki.issue(identity)
    return ProxyProc(
        root,
        name,
        [
            "--identity", identity, "--policy", str(root / "policy.json"),
            "--ca", str(pki.ca_file), "--cert", str(cert), "--key", str(key),
            "--admin", "0", "--watch-interval", "0.1", "--connect-timeout", "0.5", *args,
        ],
    )  # fmt: skip


@pytest.mark.parametrize("pod_netns", list(PODS), indirect=True)
def test_the_injected_binds_serve_peers_of_every_family_the_pod_has(
    pod_netns: tuple[str, tuple[str, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod_ip, addresses = pod_netns
    for name, value in _injected_binds(pod_ip).items():
        monkeypatch.setenv(name, value)
    pki, app = Pki(tmp_path), EchoApp("web")
    write_policy(tmp_path / "policy.json", _policy(1, "/v1/"))
    proc = _file_proxy(tmp_path, pki, "web", WEB, ["--inbound", f"0:{app.port}", "--outbound", "0"])
    try:
        inbound, outbound, admin = proc.inbound(app.port), proc.ports["outbound"], proc.admin
        # The kubelet's readiness probe: HTTP to the pod IP, of whichever family it is.
        wait_for(lambda: _get(pod_ip, admin, "/ready") == 200, what="ready on the pod IP")
        ctx = pki.client(FRONT)
        for address in addresses:  # every peer, whichever of the pod's addresses it dials
            assert _get(address, inbound, "/v1/x", ctx) == 200, address
        # The outbound listener sends as this workload: loopback (IPv4) only, as before.
        assert accepts("127.0.0.1", outbound)
        if "::1" in addresses:
            assert not accepts("::1", outbound)
    finally:
        proc.stop()
        app.stop()


def test_an_outbound_request_reaches_the_ipv6_endpoint_of_a_dual_stack_service(
    pod_netns: tuple[str, tuple[str, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dual-stack Service has an IPv4 and an IPv6 EndpointSlice, so the MeshPolicy holds each
    pod twice: every request must reach the app, whichever address was picked."""
    pod_ip, _ = pod_netns
    pki, app = Pki(tmp_path), EchoApp("web")
    write_policy(tmp_path / "policy.json", MeshPolicy(revision=1))
    with monkeypatch.context() as env:  # the inbound bind only: the test reads /config
        env.setenv("SMI_PROXY_BIND", _injected_binds(pod_ip)["SMI_PROXY_BIND"])
        web = _file_proxy(tmp_path, pki, "web", WEB, ["--inbound", f"0:{app.port}"])
    front = _file_proxy(tmp_path, pki, "front", FRONT, ["--outbound", "0"])
    try:
        port = web.inbound(app.port)
        endpoints = tuple(Endpoint(a, port, sid(WEB)) for a in ("127.0.0.1", "::1"))
        policy = _policy(2, "/v1/")
        policy = MeshPolicy(
            revision=2,
            destinations=policy.destinations,
            services={"shop/web": Service(ports=(80,), endpoints=endpoints)},
        )
        write_policy(tmp_path / "policy.json", policy)
        for proc in (web, front):
            wait_for(
                lambda p=proc: (p.config().get("policy") or {}).get("revision") == 2,
                what="policy revision 2",
            )
        conn = http.client.HTTPConnection("127.0.0.1", front.ports["outbound"], timeout=5)
        try:
            statuses = [
                request(conn, "GET", "/v1/x", headers={"Host": "web.shop"})[0] for _ in range(20)
            ]
        finally:
            conn.close()
        assert statuses == [200] * 20
        assert app.hits == 20
    finally:
        front.stop()
        web.stop()
        app.stop()


def test_the_injected_sidecar_serves_a_dual_stack_pod(
    pod_netns: tuple[str, tuple[str, ...]], tmp_path: Path
) -> None:
    """The container exactly as injected (read-only root, control plane, projected token) in a
    pod whose IP is IPv6: only the ports are changed (port 0) and $(POD_IP) expanded."""
    if not _can_unshare():
        pytest.skip("no mount namespaces")
    pod_ip, addresses = pod_netns
    pki = Pki(tmp_path)
    server, app = StandIn(pki, serving_ca=SERVING_CA), EchoApp("web")
    server.failing = False
    proc = None
    try:
        container = _container((server, app, pki))
        env = {e["name"]: str(e.get("value", "")) for e in container["env"]}
        env = {k: v.replace("$(POD_IP)", pod_ip) for k, v in env.items()}
        env |= {
            "POD_IP": pod_ip,
            "SMI_PROXY_OUTBOUND": "0",
            "SMI_PROXY_ADMIN": "0",
            "SMI_PROXY_INBOUND": f"0:{app.port}",
        }
        proc = _start(container, env, tmp_path)
        ports = wait_listening(proc, tmp_path / "proxy.log")
        admin, inbound = int(ports["admin"]), int(ports["inbound"][str(app.port)])
        wait_for(lambda: _get(pod_ip, admin, "/ready") == 200, what="ready on the pod IP")
        ctx = pki.client(FRONT)
        for address in addresses:
            assert _get(address, inbound, "/v1/x", ctx) == 200, address
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        server.shutdown()
        server.server_close()
        app.stop()

"""Which addresses the proxy listens on. The outbound listeners take plain HTTP (and TCP) and
send it with this workload's certificate; reachable on the pod's address, they would let any
other pod call every service as this workload. So `--bind` (the injector: every address of the
pod) places only the inbound mTLS listeners; the outbound ones are on `--outbound-bind`,
loopback unless told otherwise. Here 127.0.0.2 stands for the pod's address."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from proxy_harness import EchoApp, Pki, ProxyProc, accepts

from smi.compiler.ir import MeshPolicy

pytestmark = pytest.mark.integration
POD_ADDRESS = "127.0.0.2"


def test_outbound_listeners_are_not_reachable_on_the_inbound_address(tmp_path: Path) -> None:
    if not _can_bind(POD_ADDRESS):
        pytest.skip(f"{POD_ADDRESS} is not a usable loopback address here")
    pki, app = Pki(tmp_path), EchoApp("web")
    cert, key = pki.issue("shop/web")
    policy = tmp_path / "policy.json"
    policy.write_text(MeshPolicy(revision=1).to_json())
    proc = ProxyProc(
        tmp_path,
        "web",
        [
            "--identity", "shop/web", "--policy", str(policy), "--ca", str(pki.ca_file),
            "--cert", str(cert), "--key", str(key), "--admin", "0",
            "--bind", POD_ADDRESS, "--inbound", f"0:{app.port}",
            "--outbound", "0", "--outbound-tcp", "0:shop/db",
        ],
    )  # fmt: skip
    try:
        inbound = proc.inbound(app.port)
        outbound = int(proc.ports["outbound"])
        tcp = int(proc.ports["outbound_tcp"]["shop/db"])
        assert accepts(POD_ADDRESS, inbound)
        assert not accepts("127.0.0.1", inbound)
        for port in (outbound, tcp):
            assert accepts("127.0.0.1", port)
            assert not accepts(POD_ADDRESS, port)
    finally:
        proc.stop()
        app.stop()


def _can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True

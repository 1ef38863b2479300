"""Fixtures of the proxy's integration tests: the shared mesh (see proxy_mesh.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxy_harness import EchoApp, Pki, TcpEcho, write_policy
from proxy_mesh import DB, FRONT, WEB_V1, WEB_V2, Mesh

from smi.compiler.ir import MeshPolicy


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mesh")
    m = Mesh(
        root=root,
        pki=Pki(root),
        policy_file=root / "policy.json",
        apps={"web-v1": EchoApp("web-v1"), "web-v2": EchoApp("web-v2")},
        tcp=TcpEcho(),
    )
    m.policy = MeshPolicy(revision=1)
    write_policy(m.policy_file, m.policy)
    try:
        m.start(
            "web-v1",
            WEB_V1,
            ["--inbound", f"0:{m.apps['web-v1'].port}", "--outbound-tcp", "0:shop/db"],
        )
        m.start("web-v2", WEB_V2, ["--inbound", f"0:{m.apps['web-v2'].port}"])
        m.start("db", DB, ["--inbound", f"0:{m.tcp.port}"])
        m.start("front", FRONT, ["--outbound", "0", "--outbound-tcp", "0:shop/db"])
        m.apply(m.base_policy())
        for proc in m.procs.values():
            proc.wait_ready()
        yield m
    finally:
        for proc in m.procs.values():
            proc.stop()
        for app in m.apps.values():
            app.stop()
        m.tcp.stop()

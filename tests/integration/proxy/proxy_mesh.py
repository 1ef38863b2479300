"""The mesh the proxy's integration tests share (started by the `mesh` fixture in conftest).

    front (outbound) ──mTLS──► web-v1 (inbound) ─► app "web-v1"
                     └─mTLS──► web-v2 (inbound) ─► app "web-v2"
    web-v1 (outbound-tcp shop/db) ──mTLS──► db (inbound, TCP) ─► TCP echo

Every proxy is a real `python -m proxy` process reading one watched MeshPolicy file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from proxy_harness import EchoApp, Pki, ProxyProc, TcpEcho, write_policy

from smi.compiler.ir import (
    AuthzRule,
    Endpoint,
    HttpMatch,
    MeshPolicy,
    Service,
    Split,
    SplitBackend,
)
from smi.identity import Identity

FRONT, WEB_V1, WEB_V2, DB = "shop/front", "shop/web-v1", "shop/web-v2", "shop/db"
TT_WEB = "shop/TrafficTarget/front-to-web"
TT_DB = "shop/TrafficTarget/web-to-db"
FAST = [
    "--watch-interval",
    "0.1",
    "--header-timeout",
    "1",
    "--body-timeout",
    "1",
    "--response-timeout",
    "1",
    "--connect-timeout",
    "0.5",
    "--drain-timeout",
    "3",
]


def sid(name: str) -> str:
    return Identity.parse(name).spiffe_id


def web_rules(extra: tuple[HttpMatch, ...] = ()) -> tuple[AuthzRule, ...]:
    matches = (
        HttpMatch(
            origin="shop/HTTPRouteGroup/web#api", methods=("GET", "HEAD"), path_regex="/api/"
        ),
        HttpMatch(
            origin="shop/HTTPRouteGroup/web#submit",
            methods=("POST", "PUT"),
            path_regex="/api/submit$",
        ),
        HttpMatch(origin="shop/HTTPRouteGroup/web#ops", path_regex="/(ws|slow|crash|big)"),
        HttpMatch(origin="shop/HTTPRouteGroup/web#root", methods=("GET",), path_regex="/$"),
        *extra,
    )
    return (AuthzRule(origin=TT_WEB, sources=(sid(FRONT),), http=matches),)


@dataclass
class Mesh:
    root: Path
    pki: Pki
    policy_file: Path
    apps: dict[str, EchoApp]
    tcp: TcpEcho
    procs: dict[str, ProxyProc] = field(default_factory=dict)
    policy: MeshPolicy = field(default_factory=MeshPolicy)

    def start(self, name: str, identity: str, args: list[str]) -> ProxyProc:
        cert, key = self.pki.issue(identity)
        proc = ProxyProc(
            self.root,
            name,
            [
                "--identity",
                identity,
                "--policy",
                str(self.policy_file),
                "--ca",
                str(self.pki.ca_file),
                "--cert",
                str(cert),
                "--key",
                str(key),
                "--admin",
                "0",
                *FAST,
                *args,
            ],
        )
        self.procs[name] = proc
        return proc

    def inbound(self, name: str) -> int:
        app = self.apps[name]
        return self.procs[name].inbound(app.port)

    def base_policy(self) -> MeshPolicy:
        v1, v2, db = (self.procs[n] for n in ("web-v1", "web-v2", "db"))
        ep = {
            "shop/web-v1": Endpoint("127.0.0.1", v1.inbound(self.apps["web-v1"].port), sid(WEB_V1)),
            "shop/web-v2": Endpoint("127.0.0.1", v2.inbound(self.apps["web-v2"].port), sid(WEB_V2)),
            "shop/db": Endpoint("127.0.0.1", db.inbound(self.tcp.port), sid(DB)),
        }
        return MeshPolicy(
            revision=self.policy.revision + 1,
            destinations={
                sid(WEB_V1): web_rules(),
                sid(WEB_V2): web_rules(),
                sid(DB): (
                    AuthzRule(origin=TT_DB, sources=(sid(WEB_V1),), tcp_ports=(self.tcp.port,)),
                ),
            },
            services={k: Service(ports=(80,), endpoints=(e,)) for k, e in ep.items()}
            | {"shop/web": Service(ports=(80,), endpoints=(ep["shop/web-v1"],))},
            splits={
                "shop/web": Split(
                    origin="shop/TrafficSplit/web",
                    backends=(SplitBackend("shop/web-v1", 800), SplitBackend("shop/web-v2", 200)),
                )
            },
        )

    def apply(self, policy: MeshPolicy) -> MeshPolicy:
        """Write `policy` (with the next revision) and wait until every proxy uses it."""
        policy = replace(policy, revision=self.policy.revision + 1)
        self.policy = policy
        write_policy(self.policy_file, policy)
        for proc in self.procs.values():
            proc.wait_revision(policy.revision)
        return policy

"""The shared cast of the generated scenarios: the shop's workloads, the SMI version
combinations each behaviour is written in, and small builders for steps.

The workloads are the same in every scenario (a `shop` namespace and an `ops` namespace), so the
proxy target can start each workload once and reuse it across the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.model import GROUP_VERSIONS
from conformance.tools.render import (
    Match,
    Rule,
    Subject,
    http_route_group,
    tcp_route,
    traffic_target,
)

NS = "shop"
CATALOG_PORT = 8080

FRONTEND: dict[str, Any] = {"identity": "shop/frontend"}
CHECKOUT: dict[str, Any] = {"identity": "shop/checkout"}
INTRUDER: dict[str, Any] = {"identity": "shop/intruder"}
MONITOR: dict[str, Any] = {"identity": "ops/monitor"}
SHOP_MONITOR: dict[str, Any] = {"identity": "shop/monitor", "name": "shop-monitor"}
OPS_FRONTEND: dict[str, Any] = {"identity": "ops/frontend", "name": "ops-frontend"}
CATALOG: dict[str, Any] = {"identity": "shop/catalog", "services": ["catalog"], "ports": [8080]}
CATALOG_PORTS: dict[str, Any] = {
    "identity": "shop/catalog",
    "services": ["catalog"],
    "ports": [8080, 9090],
}
CATALOG_L4: dict[str, Any] = {
    "identity": "shop/catalog",
    "services": ["catalog"],
    "ports": [8300, 8301, 8302],
}
PAYMENTS: dict[str, Any] = {"identity": "shop/payments", "services": ["payments"], "ports": [8080]}
# Split backends: two versions of the catalog running as the same ServiceAccount; the root
# Service `catalog` selects the stable version, as a rollout starts.
CATALOG_V1: dict[str, Any] = {
    "identity": "shop/catalog",
    "name": "catalog-v1",
    "services": ["catalog", "catalog-v1"],
    "ports": [8080],
}
CATALOG_V2: dict[str, Any] = {
    "identity": "shop/catalog",
    "name": "catalog-v2",
    "services": ["catalog-v2"],
    "ports": [8080],
}
CATALOG_V3: dict[str, Any] = {
    "identity": "shop/catalog",
    "name": "catalog-v3",
    "services": ["catalog-v3"],
    "ports": [8080],
}
# The same canary running as its own ServiceAccount: a split backend is authorised as the
# workload it is, never as the root service (DESIGN.md §3 "A split grants no access"), which
# backends that all share the root's ServiceAccount cannot tell apart.
CATALOG_CANARY: dict[str, Any] = {
    "identity": "shop/catalog-canary",
    "name": "catalog-v2",
    "services": ["catalog-v2"],
    "ports": [8080],
}


@dataclass(frozen=True)
class AccessCombo:
    """An access version with a specs version it is declared compatible with (SPEC.md §0)."""

    access: str
    specs: str

    @property
    def tag(self) -> str:
        return f"access-{self.access}.specs-{self.specs}"

    @property
    def has_headers(self) -> bool:
        return self.specs != "v1alpha1"

    @property
    def has_ports(self) -> bool:
        """L4 ports: TCPRoute/UDPRoute ports (specs v1alpha4), else destination.port."""
        return self.specs == "v1alpha4"


ACCESS_COMBOS = (
    AccessCombo("v1alpha1", "v1alpha1"),
    AccessCombo("v1alpha1", "v1alpha2"),  # SMI v0.4.0
    AccessCombo("v1alpha2", "v1alpha3"),  # SMI v0.5.0
    AccessCombo("v1alpha3", "v1alpha4"),  # SMI v0.6.0
    AccessCombo("v1alpha4", "v1alpha4"),  # draft
)
LATEST = ACCESS_COMBOS[3]


@dataclass(frozen=True)
class SplitCombo:
    """A split version and the access/specs versions used to authorise its traffic."""

    split: str
    access: AccessCombo

    @property
    def tag(self) -> str:
        """`split-v1alpha4`; split v1alpha3 ships in two releases with different access and
        specs versions (SPEC.md §0), so its scenario names carry the pairing as well."""
        if sum(c.split == self.split for c in SPLIT_COMBOS) > 1:
            return f"split-{self.split}.{self.access.tag}"
        return f"split-{self.split}"

    @property
    def has_matches(self) -> bool:
        return self.split in ("v1alpha3", "v1alpha4")


SPLIT_COMBOS = (
    SplitCombo("v1alpha1", ACCESS_COMBOS[0]),
    SplitCombo("v1alpha2", ACCESS_COMBOS[1]),
    SplitCombo("v1alpha3", ACCESS_COMBOS[1]),  # SMI v0.4.0
    SplitCombo("v1alpha3", ACCESS_COMBOS[2]),  # SMI v0.5.0
    SplitCombo("v1alpha4", ACCESS_COMBOS[3]),  # SMI v0.6.0
)


# --- builders --------------------------------------------------------------------------------


def request(
    source: str,
    to: str,
    expect: dict[str, Any],
    *,
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    count: int = 1,
    protocol: str = "http",
    name: str = "",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"from": source, "to": to}
    if protocol != "http":
        spec["protocol"] = protocol
    else:
        if method != "GET":
            spec["method"] = method
        if path != "/":
            spec["path"] = path
        if headers:
            spec["headers"] = headers
    if count != 1:
        spec["count"] = count
    step: dict[str, Any] = {"request": spec, "expect": expect}
    return {"name": name, **step} if name else step


def connect(
    to: str,
    expect: dict[str, Any],
    *,
    identity: str | None = None,
    certificate: str = "mesh",
    headers: dict[str, str] | None = None,
    name: str = "",
) -> dict[str, Any]:
    """A connection straight to `to`'s inbound listener with the certificate named."""
    spec: dict[str, Any] = {"to": to}
    if identity is not None:
        spec["identity"] = identity
    if certificate != "mesh":
        spec["certificate"] = certificate
    if headers:
        spec["headers"] = headers
    step: dict[str, Any] = {"connect": spec, "expect": expect}
    return {"name": name, **step} if name else step


REFUSED: dict[str, Any] = {"handshake": "refused"}


def allowed(count: int = 1, *, identity: str | None = None, http: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"status": 200} if http else {}
    out["allowed"] = count
    if identity:
        out["identity"] = identity
    return out


def denied(count: int = 1, *, http: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"status": 403} if http else {}
    out["denied"] = count
    return out


def apply(*keys: str, name: str = "", refused: str | None = None) -> dict[str, Any]:
    """Apply resources; with `refused` (a message regex) the apply must be refused."""
    step: dict[str, Any] = {"name": name} if name else {}
    step["apply"] = list(keys)
    if refused is not None:
        step["expect"] = {"allowed": False, "message": refused}
    return step


def delete(*keys: str, name: str = "") -> dict[str, Any]:
    return {"name": name, "delete": list(keys)} if name else {"delete": list(keys)}


def admit(
    key: str,
    *,
    allowed: bool,
    message: str | None = None,
    warning: str | None = None,
    operation: str = "CREATE",
    old: str | None = None,
    strict: bool = False,
    name: str = "",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"resource": key}
    if operation != "CREATE":
        spec["operation"] = operation
    if old:
        spec["old"] = old
    if strict:
        spec["strict"] = True
    expect: dict[str, Any] = {"allowed": allowed}
    if message:
        expect["message"] = message
    if warning:
        expect["warning"] = warning
    step = {"admit": spec, "expect": expect}
    return {"name": name, **step} if name else step


def scenario(
    *,
    description: str,
    capability: str,
    decisions: list[str],
    workloads: list[dict[str, Any]],
    resources: dict[str, dict[str, Any]],
    steps: list[dict[str, Any]],
    mode: str = "deny",
    file_under: tuple[str, ...] = (),
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "description": description,
        "capability": capability,
        "smi_versions": declared_versions(resources, file_under=file_under),
        "decisions": decisions,
    }
    if mode != "deny":
        doc["mode"] = mode
    doc.update({"workloads": workloads, "resources": resources, "steps": steps})
    return doc


def declared_versions(
    resources: dict[str, dict[str, Any]], *, file_under: tuple[str, ...] = ()
) -> list[str]:
    """The `smi_versions` a generated scenario declares: the served versions of the objects it
    holds, computed rather than written by hand, because a version of a group it holds no object
    of is counted in the reports as tested although nothing of it was ever sent. `file_under`
    is only for a group whose objects are all of versions smictl does not serve (drafts that
    admission must refuse): the loader derives nothing from them and needs a version to report
    the scenario under. Conversion targets are left to the loader, which adds them."""
    held = {gv for doc in resources.values() if isinstance(gv := doc.get("apiVersion"), str)}
    served = held & set(GROUP_VERSIONS)
    for gv in file_under:
        group = gv.partition("/")[0]
        mine = sorted(h for h in held if h.partition("/")[0] == group)
        if gv not in GROUP_VERSIONS or not mine or served & set(mine):
            raise ValueError(
                f"file_under {gv}: only for a served version of a group whose objects are all "
                f"unserved; the {group} objects are {', '.join(mine) or 'none'}"
            )
    return [gv for gv in GROUP_VERSIONS if gv in served or gv in file_under]


def everything_group(combo: AccessCombo, *, name: str = "everything") -> dict[str, Any]:
    """An HTTPRouteGroup with one match that covers every request."""
    return http_route_group(
        combo.specs, name=name, namespace=NS, matches=[Match("all", path=".*", methods=("*",))]
    )


def all_ports_route(combo: AccessCombo, *, name: str = "all-ports") -> dict[str, Any]:
    """A TCPRoute for every port: no ports before specs v1alpha4, `ports: []` after."""
    return tcp_route(combo.specs, name=name, namespace=NS, ports=[])


def catalog_tt(combo: AccessCombo, rules: list[Rule], **kw: Any) -> dict[str, Any]:
    """A TrafficTarget (default: `catalog-access`, frontend -> catalog) in `combo`'s version."""
    kw.setdefault("name", "catalog-access")
    kw.setdefault("namespace", NS)
    kw.setdefault("destination", sa("catalog"))
    kw.setdefault("sources", [sa("frontend")])
    return traffic_target(combo.access, rules=rules, **kw)


def sa(name: str, namespace: str | None = NS) -> Subject:
    return Subject(name=name, namespace=namespace)


def http_rule(name: str, matches: tuple[str, ...] | None = None) -> Rule:
    return Rule(kind="HTTPRouteGroup", name=name, matches=matches)


def tcp_rule(name: str) -> Rule:
    return Rule(kind="TCPRoute", name=name)

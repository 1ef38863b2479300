"""TrafficSplits -> `Split`s keyed by root service ("ns/root"), and the Services table.

DESIGN.md §3: `spec.service` may be `name` or `name.<same-namespace>[.svc[.cluster.local]]`;
backends are Services of the split's namespace, weights relative milli-units, weight 0 = no
traffic; `matches` reference HTTPRouteGroups of the split's namespace (their matches are OR-ed).

What does not resolve is skipped and reported, in the direction that never sends traffic
somewhere unintended: a backend whose Service is unknown (neither a context Service nor a
service with registered endpoints) is dropped and its share goes to the others; a split left
without a positive weight is dropped; a split whose `matches` all fail to resolve is dropped —
compiling it with no matches would split *every* request.

Ports (SPEC.md §TrafficSplit): a backend lacking a port of the root Service is excluded from the
split for that port. The MeshPolicy's splits are per root service, not per port, so the
compiler applies the rule where it decides everything: a backend whose Service (known with its
ports) has none of the root's ports would get no traffic on any of them, and is dropped like an
unknown backend. A backend lacking only some of several ports stays (SMI3005 warns at
validation). Only one split per root service is
kept (the first by name); the others are reported.
"""

from __future__ import annotations

from smi.apis.split.hub import TrafficSplit
from smi.compiler.ir.model import Endpoint, HttpMatch, Service, Split, SplitBackend
from smi.compiler.resolve import CONFLICT, NOT_COMPILABLE, UNRESOLVED, Inventory, namespace_of, ref
from smi.compiler.routes import RouteTable
from smi.validation import root_service


class SplitCompiler:
    __slots__ = ("_inv", "_routes")

    def __init__(self, inv: Inventory, routes: RouteTable) -> None:
        self._inv = inv
        self._routes = routes

    def compile_all(self) -> dict[str, Split]:
        by_root: dict[str, list[TrafficSplit]] = {}
        for key in sorted(self._inv.splits):
            split = self._inv.splits[key]
            ns = namespace_of(split.metadata)
            root = root_service(split.service, ns)
            if root is None:
                self._inv.diag(
                    NOT_COMPILABLE,
                    ref("TrafficSplit", split.metadata),
                    f"service {split.service!r} is not a Service of namespace {ns!r}: skipped",
                    path="spec.service",
                )
                continue
            by_root.setdefault(f"{ns}/{root}", []).append(split)
        out: dict[str, Split] = {}
        for root_key in sorted(by_root):
            first, *others = by_root[root_key]
            for other in others:
                self._inv.diag(
                    CONFLICT,
                    ref("TrafficSplit", other.metadata),
                    f"root service {root_key} is already split by "
                    f"{ref('TrafficSplit', first.metadata)}: ignored",
                    path="spec.service",
                )
            compiled = self._split(first)
            if compiled is not None:
                out[root_key] = compiled
        return out

    def _split(self, split: TrafficSplit) -> Split | None:
        ns = namespace_of(split.metadata)
        origin = ref("TrafficSplit", split.metadata)
        root = root_service(split.service, ns)
        weights: dict[str, int] = {}
        for i, backend in enumerate(split.backends):
            key = f"{ns}/{backend.service}"
            if not self._inv.known_service(key):
                self._inv.diag(
                    UNRESOLVED,
                    origin,
                    f"backend Service {key} not found: skipped",
                    path=f"spec.backends[{i}].service",
                )
                continue
            if self._no_common_port(f"{ns}/{root}", key):
                self._inv.diag(
                    UNRESOLVED,
                    origin,
                    f"backend Service {key} has none of the ports of root service {ns}/{root} "
                    f"{list(self._inv.service_ports[f'{ns}/{root}'])}: it gets no traffic, skipped",
                    path=f"spec.backends[{i}].service",
                )
                continue
            weights[key] = weights.get(key, 0) + max(backend.weight_milli, 0)
        if sum(weights.values()) <= 0:
            self._inv.diag(
                UNRESOLVED, origin, "no backend with a positive weight resolved: split skipped"
            )
            return None
        matches = self._matches(split, ns, origin)
        if matches is None:
            return None
        return Split(
            origin=origin,
            backends=tuple(SplitBackend(service=k, weight=weights[k]) for k in sorted(weights)),
            matches=matches,
        )

    def _no_common_port(self, root: str, backend: str) -> bool:
        """Both Services known with ports, and no port in common (a Service without ports, or
        one only known from registered endpoints, says nothing)."""
        if backend == root:
            return False
        root_ports = self._inv.service_ports.get(root) or ()
        ports = self._inv.service_ports.get(backend) or ()
        return bool(root_ports) and bool(ports) and not set(root_ports) & set(ports)

    def _matches(self, split: TrafficSplit, ns: str, origin: str) -> tuple[HttpMatch, ...] | None:
        """() = split every request; None = the split must be dropped."""
        if not split.matches:
            return ()
        found: dict[str, HttpMatch] = {}
        for i, match_ref in enumerate(split.matches):
            key, path = f"{ns}/{match_ref.name}", f"spec.matches[{i}]"
            table = self._routes.group(key) if match_ref.kind == "HTTPRouteGroup" else None
            if table is None:
                self._inv.diag(
                    UNRESOLVED, origin, f"{match_ref.kind} {key} not found: skipped", path=path
                )
                continue
            found.update((m.origin, m) for m in table.values() if m is not None)
        if not found:
            self._inv.diag(
                UNRESOLVED,
                origin,
                "none of its matches resolved: split skipped",
                path="spec.matches",
            )
            return None
        return tuple(found[o] for o in sorted(found))


def services(inv: Inventory) -> dict[str, Service]:
    """Every known Service: context Services with their ports, and services with registered
    endpoints (local mode, where workloads register the services they back)."""
    out: dict[str, Service] = {}
    for key in sorted(set(inv.service_ports) | set(inv.endpoints)):
        eps: tuple[Endpoint, ...] = tuple(
            sorted(set(inv.endpoints.get(key, ())), key=lambda e: (e.address, e.port, e.identity))
        )
        out[key] = Service(ports=inv.service_ports.get(key, ()), endpoints=eps)
    return out

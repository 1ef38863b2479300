"""Requests decided on a MeshPolicy without sockets: the client side routes (root service ->
TrafficSplit backend via `pick_backend` -> one backing workload) and the server side decides
(`authorize` against the workload's identity and port), exactly as the two proxies would.

`inproc` runs this on the policy it compiles itself; `webhook` on the policy the control plane
serves to proxies (`GET /mesh/v1/policy`), so both test the decision path proxies use.

What only a proxy does is not played here, so it is not reported as tested here either: no
app sees a caller identity (smictl proxy's inbound listener states it from the certificate),
so `identity` expectations are skipped (`UNOBSERVED`); and header names reach `authorize` as
the scenario wrote them, while smictl proxy's HTTP parser lower-cases them first, so a step
sending a name that is not lower-case is skipped (`unsupported_request`).
"""

from __future__ import annotations

import random
from types import MappingProxyType

from conformance.assertions import RequestObservation, Response
from conformance.model import (
    ConnectStep,
    RequestSpec,
    RequestStep,
    Scenario,
    Step,
    Workload,
    split_service,
)
from smi.compiler.ir.decide import Request, authorize, pick_backend
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

UNOBSERVED = MappingProxyType(
    {
        "identity": "the caller identity a destination app sees is stated by smictl proxy "
        "(run the proxy target)",
    }
)


def unsupported_request(step: Step) -> str | None:
    """Why a traffic step cannot be decided here: a `connect` step (no listener checks a
    certificate here), or header names that are not lower-case, whose case-insensitive
    matching is smictl proxy's HTTP parser's work (`authorize` takes lower-case names), not
    something this target would test."""
    if isinstance(step, ConnectStep):
        return (
            "no listener checks a client certificate here: smictl proxy's inbound listener "
            "does (run the proxy target)"
        )
    if not isinstance(step, RequestStep):
        return None
    cased = sorted(n for n in step.request.headers if n != n.lower())
    if not cased:
        return None
    return (
        f"header names {', '.join(cased)}: matching names case-insensitively is smictl proxy's "
        "HTTP parsing (run the proxy target)"
    )


def spiffe(identity: str) -> str:
    return Identity.parse(identity).spiffe_id


def decide_requests(
    index: PolicyIndex, scenario: Scenario, spec: RequestSpec, *, rng: random.Random
) -> RequestObservation:
    source = scenario.workload(spec.source)
    assert source is not None  # checked by the scenario model
    ns, svc = split_service(spec.service_ref, default_namespace=source.namespace)
    headers = dict(spec.headers)  # as sent: `unsupported_request` skips names not lower-case
    http = spec.protocol == "http"
    req = Request(spec.method, spec.path, headers) if http else None
    port = spec.port or first_port(scenario.backing(ns, svc))
    responses: list[Response] = []
    would_deny = 0
    for _ in range(spec.count):
        workload = route(index, scenario, f"{ns}/{svc}", req, rng=rng)
        if workload is None:
            responses.append(
                Response(
                    allowed=False,
                    status=503 if http else None,
                    error=f"no endpoint for {ns}/{svc}",
                )
            )
            continue
        decision = authorize(
            index,
            spiffe(source.identity),
            spiffe(workload.identity),
            port,
            spec.method if http else None,
            spec.path if http else None,
            headers,
            protocol=spec.protocol,
        )
        would_deny += decision.would_deny
        responses.append(
            Response(
                allowed=decision.allowed,
                status=(200 if decision.allowed else 403) if http else None,
                backend=workload.label if decision.allowed else None,
                reason=f"{decision.reason}: {decision.detail}",
            )
        )
    return RequestObservation(responses=tuple(responses), would_deny=would_deny)


def route(
    index: PolicyIndex,
    scenario: Scenario,
    root: str,
    req: Request | None,
    *,
    rng: random.Random,
) -> Workload | None:
    """The client side: root service -> split backend (if any) -> one of its workloads."""
    target = root
    split = index.split_for(root)
    if split is not None:
        target = pick_backend(split, req, rng.random()) or root
    ns, _, name = target.partition("/")
    backing = scenario.backing(ns, name)
    if not backing:
        return None
    return backing[0] if len(backing) == 1 else rng.choice(backing)


def first_port(workloads: list[Workload]) -> int:
    return workloads[0].ports[0] if workloads else 80

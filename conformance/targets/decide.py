"""Requests decided on a MeshPolicy without sockets: the client side routes (root service ->
TrafficSplit backend via `pick_backend` -> one backing workload) and the server side decides
(`authorize` against the workload's identity and port), exactly as the two proxies would.

`inproc` runs this on the policy it compiles itself; `webhook` on the policy the control plane
serves to proxies (`GET /mesh/v1/policy`), so both test the decision path proxies use.
"""

from __future__ import annotations

import random

from conformance.assertions import RequestObservation, Response
from conformance.model import RequestSpec, Scenario, Workload, split_service
from smi.compiler.ir.decide import Request, authorize, pick_backend
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity


def spiffe(identity: str) -> str:
    return Identity.parse(identity).spiffe_id


def decide_requests(
    index: PolicyIndex, scenario: Scenario, spec: RequestSpec, *, rng: random.Random
) -> RequestObservation:
    source = scenario.workload(spec.source)
    assert source is not None  # checked by the scenario model
    ns, svc = split_service(spec.service_ref, default_namespace=source.namespace)
    headers = {k.lower(): v for k, v in spec.headers.items()}
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
        # The destination's proxy states the caller's identity only on a port it reads as HTTP:
        # a port only TCPRoutes cover is relayed as bytes, and the app sees no identity there
        # (what the proxy target observes).
        stated = index.port_protocol(spiffe(workload.identity), port) == "http"
        responses.append(
            Response(
                allowed=decision.allowed,
                status=(200 if decision.allowed else 403) if http else None,
                backend=workload.label if decision.allowed else None,
                identity=source.identity if decision.allowed and stated else None,
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

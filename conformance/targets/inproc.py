"""The `inproc` target: the scenario runs against smictl's own functions in this process.

apply/delete = load (`smi.loading`) + the admission chain (`smi.policy.admission.admit`, no
Rego policies: the suite tests SMI semantics, not an organisation's rules) + a dict standing in
for the store; every change recompiles the MeshPolicy (`smi.compiler.compile`). A request is
routed the way a client proxy routes it (`PolicyIndex.split_for` + `pick_backend` with a seeded
random number, so shares are reproducible) and decided the way the destination proxy decides it
(`authorize`). Conversion calls `smi.conversion.convert_document` there and back.

The scenario's workloads become Service manifests (context) and endpoints, exactly the facts a
control plane would know about a mesh.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.assertions import (
    AdmitObservation,
    ApplyObservation,
    ConvertObservation,
    RequestObservation,
)
from conformance.model import AdmitSpec, ConvertSpec, RequestSpec, Scenario, Step
from conformance.targets.base import Target, admission_request
from conformance.targets.decide import UNOBSERVED, decide_requests, spiffe, unsupported_request
from smi.compiler import compile as compile_policy
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.model import Endpoint
from smi.conversion import convert_document
from smi.errors import SMIError
from smi.loading import ContextObject, Resource, load_object

SEED = 20210119  # SMI v0.6.0's release date: any fixed number makes shares reproducible


def object_key(doc: Mapping[str, Any]) -> str:
    """`group/Kind/namespace/name`: one stored object per key, whatever its version."""
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    meta = doc.get("metadata") or {}
    return f"{group}/{doc.get('kind')}/{meta.get('namespace') or 'default'}/{meta.get('name')}"


def service_manifests(scenario: Scenario) -> list[dict[str, Any]]:
    """A Service manifest per service the workloads back, with the union of their ports."""
    ports: dict[tuple[str, str], set[int]] = {}
    for w in scenario.workloads:
        for svc in w.services:
            ports.setdefault((w.namespace, svc), set()).update(w.ports)
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": p} for p in sorted(ps)]},
        }
        for (ns, name), ps in sorted(ports.items())
    ]


@dataclass
class MeshState:
    """What the store would hold: the applied objects by key, as loaded and as written."""

    objects: dict[str, Resource] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    revision: int = 0


class InprocTarget(Target):
    name = "inproc"
    unobserved = UNOBSERVED

    def __init__(self, *, seed: int = SEED) -> None:
        self._seed = seed
        self._state = MeshState()
        self._context: list[ContextObject] = []
        self._index: PolicyIndex | None = None
        self._rng = random.Random(seed)

    # --- lifecycle ---------------------------------------------------------------------------

    def begin(self, scenario: Scenario) -> None:
        self._state = MeshState()
        self._context = [
            c
            for m in service_manifests(scenario)
            for c in load_object(m, filename="<mesh>").context
        ]
        self._rng = random.Random(self._seed ^ zlib.crc32(scenario.name.encode()))
        self._recompile(scenario)

    def end(self, scenario: Scenario) -> None:
        self._state = MeshState()
        self._index = None

    def unsupported(self, step: Step, scenario: Scenario) -> str | None:
        return unsupported_request(step)

    def _recompile(self, scenario: Scenario) -> None:
        self._state.revision += 1
        result = compile_policy(
            list(self._state.objects.values()),
            context=self._context,
            mode=scenario.mode,
            revision=self._state.revision,
            endpoints=endpoints_of(scenario),
        )
        self._index = PolicyIndex.build(result.policy)

    # --- admission and the store ---------------------------------------------------------------

    def _admit_doc(
        self,
        doc: Mapping[str, Any],
        *,
        operation: str,
        old: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> AdmitObservation:
        from smi.policy.admission import admit
        from smi.policy.input import Inventory
        from smi.policy.policyset import PolicySet

        key = object_key(doc)
        others = [r for k, r in self._state.objects.items() if k != key]
        request = admission_request(
            dict(doc), operation=operation, old=dict(old) if old is not None else None
        )
        result = admit(
            request, PolicySet(), inventory=Inventory.of(others, self._context), strict=strict
        )
        return AdmitObservation(
            allowed=bool(result.allowed),
            code=getattr(result, "code", None),
            messages=tuple(str(m) for m in result.messages),
            warnings=tuple(str(w) for w in result.warnings),
        )

    def admit(self, scenario: Scenario, spec: AdmitSpec) -> AdmitObservation:
        doc = scenario.resources[spec.resource]
        old = scenario.resources[spec.old] if spec.old else None
        if spec.operation == "DELETE" and old is None:
            old = doc
        return self._admit_doc(doc, operation=spec.operation, old=old, strict=spec.strict)

    def apply(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        staged: dict[str, tuple[Resource, dict[str, Any]]] = {}
        problems: list[str] = []
        for k in keys:
            doc = scenario.resources[k]
            okey = object_key(doc)
            loaded = load_object(doc, filename=f"{scenario.name}#{k}")
            if not loaded.ok or len(loaded.resources) != 1:
                problems += [d.format() for d in loaded.diagnostics if d.is_error]
                problems += [] if loaded.resources else [f"{k}: not an SMI object"]
                continue
            old = self._state.docs.get(okey)
            verdict = self._admit_doc(doc, operation="UPDATE" if old else "CREATE", old=old)
            if not verdict.allowed:
                problems += list(verdict.messages) or [f"{k}: denied"]
                continue
            staged[okey] = (loaded.resources[0], dict(doc))
        if problems:  # all or nothing, like `smictl apply`
            return ApplyObservation(allowed=False, messages=tuple(problems))
        for okey, (resource, doc) in staged.items():
            self._state.objects[okey] = resource
            self._state.docs[okey] = doc
        self._recompile(scenario)
        return ApplyObservation(allowed=True)

    def delete(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        okeys = [object_key(scenario.resources[k]) for k in keys]
        missing = [k for k, ok in zip(keys, okeys, strict=True) if ok not in self._state.objects]
        if missing:
            return ApplyObservation(
                allowed=False, messages=tuple(f"{k}: not found" for k in missing)
            )
        for ok in okeys:
            del self._state.objects[ok]
            del self._state.docs[ok]
        self._recompile(scenario)
        return ApplyObservation(allowed=True)

    # --- traffic -------------------------------------------------------------------------------

    def request(self, scenario: Scenario, spec: RequestSpec) -> RequestObservation:
        assert self._index is not None, "begin() was not called"
        return decide_requests(self._index, scenario, spec, rng=self._rng)

    # --- conversion ----------------------------------------------------------------------------

    def convert(self, scenario: Scenario, spec: ConvertSpec) -> ConvertObservation:
        original = scenario.resources[spec.resource]
        try:
            converted = convert_document(original, spec.to)
            back = convert_document(converted, str(original["apiVersion"]))
        except SMIError as exc:
            return ConvertObservation(
                original=original, error="\n".join(d.format() for d in exc.diagnostics)
            )
        return ConvertObservation(original=original, converted=converted, back=back)


def endpoints_of(scenario: Scenario, *, address: str = "127.0.0.1") -> dict[str, list[Endpoint]]:
    """ "ns/service" -> one endpoint per backing workload, as local-mode registration gives."""
    out: dict[str, list[Endpoint]] = {}
    for w in scenario.workloads:
        for svc in w.services:
            out.setdefault(f"{w.namespace}/{svc}", []).append(
                Endpoint(address=address, port=w.ports[0], identity=spiffe(w.identity))
            )
    return out

"""The `webhook` target: a real `smictl serve` control plane (gunicorn, TLS, SQLite store).

- apply/delete go through the local store API, which runs the admission chain on every object;
- admit sends an `admission.k8s.io/v1` AdmissionReview to `/validate`, with the store's objects
  as the inventory, exactly as the kube-apiserver would;
- convert sends `apiextensions.k8s.io/v1` ConversionReviews to `/convert`, there and back;
- request decides on the MeshPolicy the control plane serves to proxies (`/mesh/v1/policy`), so
  what is checked is the policy proxies would enforce; the scenario's workloads are applied as
  Service objects so that split backends resolve as they do in a cluster.

The mode (deny/audit/permissive) is a `smictl serve` setting: a scenario in another mode restarts
the control plane on the same store. Admission here has no `--strict` (that is `smictl admit
--strict`), so admit steps that ask for it are unsupported.
"""

from __future__ import annotations

import random
import tempfile
import zlib
from pathlib import Path
from typing import Any

from conformance.assertions import (
    AdmitObservation,
    ApplyObservation,
    ConvertObservation,
    RequestObservation,
)
from conformance.interrupts import signals_held
from conformance.model import AdmitSpec, AdmitStep, ConvertSpec, RequestSpec, Scenario, Step
from conformance.targets.base import Target, TargetError, admission_request
from conformance.targets.controlplane import ControlPlane, Reply, ref_of
from conformance.targets.decide import UNOBSERVED, decide_requests, unsupported_request
from conformance.targets.inproc import SEED, service_manifests
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.model import MeshPolicy


class WebhookTarget(Target):
    name = "webhook"
    unobserved = UNOBSERVED

    def __init__(self, *, workdir: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._workdir = workdir
        self.plane: ControlPlane | None = None
        self._rng = random.Random(SEED)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._workdir is None:
            # Held: a signal handled between the directory's creation and this assignment
            # would leave a directory that `stop` does not know of.
            with signals_held():
                self._tmp = tempfile.TemporaryDirectory(prefix="smictl-conformance-")
            self._workdir = Path(self._tmp.name)
        self.plane = ControlPlane(self._workdir / "control-plane")
        try:
            self.plane.start()
            _check_no_rego_policies(self.plane)
        except TargetError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.plane is not None:
            self.plane.stop()
            self.plane = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _plane(self) -> ControlPlane:
        if self.plane is None:
            raise TargetError("the control plane is not running")
        return self.plane

    def begin(self, scenario: Scenario) -> None:
        plane = self._plane()
        if plane.mode != scenario.mode:
            plane.restart(mode=scenario.mode)
        plane.clear()
        services = service_manifests(scenario)
        if services:
            reply = plane.apply(services)
            if reply.status != 200:
                raise TargetError(f"applying the workloads' Services failed: {_reasons(reply)}")
        self._rng = random.Random(SEED ^ zlib.crc32(scenario.name.encode()))

    def end(self, scenario: Scenario) -> None:
        if self.plane is not None and self.plane.child is not None and self.plane.child.alive:
            self.plane.clear()

    def unsupported(self, step: Step, scenario: Scenario) -> str | None:
        return unsupported_admit(step) or unsupported_request(step)

    # --- steps -------------------------------------------------------------------------------

    def apply(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        reply = self._plane().apply([scenario.resources[k] for k in keys])
        return _outcome(reply)

    def delete(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        reply = self._plane().delete([ref_of(scenario.resources[k]) for k in keys])
        return _outcome(reply)

    def admit(self, scenario: Scenario, spec: AdmitSpec) -> AdmitObservation:
        doc = scenario.resources[spec.resource]
        old = scenario.resources[spec.old] if spec.old else None
        if spec.operation == "DELETE" and old is None:
            old = doc
        request = admission_request(
            doc,
            operation=spec.operation,
            old=old,
            uid=f"conformance-{zlib.crc32(repr(doc).encode()):08x}",
        )
        response = self._plane().validate(request)
        status = response.get("status") or {}
        message = str(status.get("message") or "")
        allowed = bool(response.get("allowed"))
        return AdmitObservation(
            allowed=allowed,
            # An allowed review carries no status; the API server treats it as 200, and so
            # does the in-process target.
            code=status.get("code", 200 if allowed else None),
            messages=tuple(line for line in message.splitlines() if line),
            warnings=tuple(str(w) for w in response.get("warnings") or ()),
        )

    def convert(self, scenario: Scenario, spec: ConvertSpec) -> ConvertObservation:
        plane = self._plane()
        original = scenario.resources[spec.resource]
        converted, failure = plane.convert(original, spec.to)
        if converted is None:
            return ConvertObservation(original=original, error=failure)
        back, failure = plane.convert(converted, str(original["apiVersion"]))
        if back is None:
            return ConvertObservation(
                original=original, converted=converted, error=f"converting back: {failure}"
            )
        return ConvertObservation(original=original, converted=converted, back=back)

    def request(self, scenario: Scenario, spec: RequestSpec) -> RequestObservation:
        _, body = self._plane().policy()
        index = PolicyIndex.build(MeshPolicy.from_json(body))
        return decide_requests(index, scenario, spec, rng=self._rng)


def unsupported_admit(step: Step) -> str | None:
    if isinstance(step, AdmitStep) and step.admit.strict:
        return "the admission webhook has no strict mode (that is `smictl admit --strict`)"
    return None


# SMI allows a TrafficTarget to trust a source in another namespace; the shipped Rego policy
# access/allowed-source-namespaces refuses it (a deny policy, SMI5102, with no parameters set),
# so this tells whether those policies run. (The route it names need not exist: admission only
# warns about a dangling reference.)
_PROBE = {
    "apiVersion": "access.smi-spec.io/v1alpha3",
    "kind": "TrafficTarget",
    "metadata": {"name": "conformance-probe", "namespace": "conformance"},
    "spec": {
        "destination": {"kind": "ServiceAccount", "name": "probe", "namespace": "conformance"},
        "rules": [{"kind": "TCPRoute", "name": "conformance-probe"}],
        "sources": [{"kind": "ServiceAccount", "name": "probe", "namespace": "elsewhere"}],
    },
}


def _check_no_rego_policies(plane: ControlPlane) -> None:
    """The suite judges SMI semantics; organisational Rego policies would refuse some of them."""
    answer = plane.validate(admission_request(_PROBE, operation="CREATE", uid="conformance-probe"))
    if not answer.get("allowed"):
        message = (answer.get("status") or {}).get("message", "")
        raise TargetError(
            "the control plane enforces the shipped Rego policies, which refuse valid SMI "
            f"objects ({message.strip()[:160]}); it must honour SMI_WEBHOOK_SHIPPED_POLICIES=false"
        )


def _outcome(reply: Reply) -> ApplyObservation:
    if reply.status == 200:
        return ApplyObservation(allowed=True)
    if reply.status in (400, 403, 404, 409, 422):
        return ApplyObservation(allowed=False, messages=tuple(_reasons(reply).splitlines()))
    raise TargetError(f"the control plane answered HTTP {reply.status}: {reply.body}")


def _reasons(reply: Reply) -> str:
    """Every reason in a refusal: the denials' messages and diagnostics, else the error."""
    body: Any = reply.body
    if not isinstance(body, dict):
        return str(body)
    lines: list[str] = []
    for denial in body.get("denials") or ():
        # A denial's messages and its diagnostics say the same thing: the messages when given.
        messages = [str(m) for m in denial.get("messages") or ()]
        lines += messages or [_diag(d) for d in denial.get("diagnostics") or ()]
    lines += [_diag(d) for d in body.get("diagnostics") or ()]
    if not lines:
        lines.append(str(body.get("error") or body))
    return "\n".join(dict.fromkeys(lines))


def _diag(d: dict[str, Any]) -> str:
    path = f"{d.get('path')}: " if d.get("path") else ""
    return f"{d.get('object', '')}: {path}{d.get('message', '')} ({d.get('code', '')})"

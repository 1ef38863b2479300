"""The interface every target implements, so that one scenario file runs unchanged against the
compiler in-process, a real control plane, and real proxies.

A target turns steps into observations; it never judges them (`conformance.assertions` does).
It may refuse a step it cannot perform by returning a reason from `unsupported`: the runner
reports that step as skipped with the reason, never as passed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from conformance.assertions import (
    AdmitObservation,
    ApplyObservation,
    ConvertObservation,
    RequestObservation,
)
from conformance.model import AdmitSpec, ConnectSpec, ConvertSpec, RequestSpec, Scenario, Step


class TargetError(Exception):
    """The target itself failed (a server died, a port never opened): an error of the run,
    not a finding about the mesh."""


class Target(ABC):
    """Lifecycle: `plan()` and `start()` once (servers), then per scenario `begin()`, the
    steps, `end()` (which must leave no SMI object behind), and finally `stop()` (every
    process ended)."""

    name: str = ""
    # Seconds a step may take before the runner abandons it and fails it (runner, deadline).
    step_timeout: float = 10.0
    # Expectations of a request step this target cannot observe, with the reason: such a check
    # is reported as skipped, and its step with it, never as passed.
    unobserved: Mapping[str, str] = MappingProxyType({})

    def plan(self, scenarios: Sequence[Scenario]) -> None:  # noqa: B027
        """Told every scenario of the run before `start()` (to size pools of workloads)."""

    def start(self) -> None:  # noqa: B027 - most targets need no servers
        """Bring up whatever the target needs for the whole run."""

    def stop(self) -> None:  # noqa: B027
        """End every process the target started."""

    def __enter__(self) -> Target:
        # A `with` block's __exit__ does not run when __enter__ raises: a start cut short (a
        # server that never got ready, Ctrl-C while proxies start) must still end what it
        # started. `stop()` copes with a partial start.
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @abstractmethod
    def begin(self, scenario: Scenario) -> None:
        """Prepare an empty mesh with the scenario's workloads and mode."""

    @abstractmethod
    def end(self, scenario: Scenario) -> None:
        """Remove everything the scenario applied."""

    def unsupported(self, step: Step, scenario: Scenario) -> str | None:
        """Why this target cannot run `step`, or None when it can."""
        return None

    @abstractmethod
    def apply(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation: ...

    @abstractmethod
    def delete(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation: ...

    @abstractmethod
    def admit(self, scenario: Scenario, spec: AdmitSpec) -> AdmitObservation: ...

    @abstractmethod
    def request(self, scenario: Scenario, spec: RequestSpec) -> RequestObservation: ...

    @abstractmethod
    def convert(self, scenario: Scenario, spec: ConvertSpec) -> ConvertObservation: ...

    def connect(self, scenario: Scenario, spec: ConnectSpec) -> RequestObservation:
        """Open connections straight to a destination's inbound listener with the certificate
        `spec` names. A target without such listeners declares `connect` steps unsupported."""
        raise TargetError(f"the {self.name} target cannot open connections to a workload")


def admission_request(
    doc: dict[str, Any],
    *,
    operation: str,
    old: dict[str, Any] | None = None,
    uid: str = "conformance",
) -> dict[str, Any]:
    """An `admission.k8s.io/v1` AdmissionRequest for one SMI object, as kube-apiserver sends."""
    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    kind = str(doc.get("kind", ""))
    meta = doc.get("metadata") or {}
    obj = None if operation == "DELETE" else doc
    return {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "operation": operation,
        "userInfo": {"username": "conformance", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old if operation != "CREATE" else None,
        "dryRun": True,
    }

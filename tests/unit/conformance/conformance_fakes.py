"""A scripted target for runner and report tests: answers from tables, records calls."""

from __future__ import annotations

from conformance.assertions import (
    AdmitObservation,
    ApplyObservation,
    ConvertObservation,
    RequestObservation,
    Response,
)
from conformance.model import AdmitSpec, ConvertSpec, RequestSpec, Scenario, Step
from conformance.targets.base import Target, TargetError


class FakeTarget(Target):
    """Allows requests once `apply` has run (like a TrafficTarget would); `refuse_apply`
    refuses every apply; `unsupported_kinds` are declared unsupported; `break_on` raises."""

    name = "fake"

    def __init__(
        self,
        *,
        refuse_apply: bool = False,
        unsupported_kinds: tuple[str, ...] = (),
        break_on: str = "",
    ) -> None:
        self.refuse_apply = refuse_apply
        self.unsupported_kinds = unsupported_kinds
        self.break_on = break_on
        self.calls: list[str] = []
        self.applied = False

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def begin(self, scenario: Scenario) -> None:
        self.calls.append(f"begin {scenario.name}")
        self.applied = False

    def end(self, scenario: Scenario) -> None:
        self.calls.append(f"end {scenario.name}")

    def unsupported(self, step: Step, scenario: Scenario) -> str | None:
        from conformance.model import step_kind

        kind = step_kind(step)
        return f"{kind} steps are not supported" if kind in self.unsupported_kinds else None

    def _maybe_break(self, kind: str) -> None:
        self.calls.append(kind)
        if kind == self.break_on:
            raise TargetError(f"the {kind} server went away")

    def apply(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        self._maybe_break("apply")
        if self.refuse_apply:
            return ApplyObservation(allowed=False, messages=("refused by the fake (SMI9999)",))
        self.applied = True
        return ApplyObservation(allowed=True)

    def delete(self, scenario: Scenario, keys: tuple[str, ...]) -> ApplyObservation:
        self._maybe_break("delete")
        self.applied = False
        return ApplyObservation(allowed=True)

    def admit(self, scenario: Scenario, spec: AdmitSpec) -> AdmitObservation:
        self._maybe_break("admit")
        return AdmitObservation(allowed=False, code=422, messages=("bad (SMI2104)",))

    def request(self, scenario: Scenario, spec: RequestSpec) -> RequestObservation:
        self._maybe_break("request")
        r = Response(
            allowed=self.applied,
            status=200 if self.applied else 403,
            backend="catalog" if self.applied else None,
            identity=spec.source if self.applied else None,
        )
        return RequestObservation(responses=(r,) * spec.count)

    def convert(self, scenario: Scenario, spec: ConvertSpec) -> ConvertObservation:
        self._maybe_break("convert")
        doc = scenario.resources[spec.resource]
        return ConvertObservation(original=doc, converted=dict(doc), back=dict(doc))

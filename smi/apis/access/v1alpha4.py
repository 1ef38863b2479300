"""access.smi-spec.io/v1alpha4 (unreleased draft): TrafficTarget and IdentityBinding.

TrafficTarget is v1alpha3 plus subjects that may be `kind: IdentityBinding` with
`group: access.smi-spec.io`. IdentityBinding names the workloads of its own namespace by
`spec.schemes`: `podLabelSelector`, `spiffeIdentities`, `serviceAccount` (OR-ed; the
mutual-exclusion rule is a validation check, SMI2408). No CRD exists; required fields follow
the draft text (a binding without `spec.schemes` says nothing).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, ValidationError

from smi.apis import lossy
from smi.apis.access import hub
from smi.apis.access.common import (
    TARGET_NARROWING,
    GroupSubject,
    Rule,
    build_target,
    group_subject,
    require_expressible,
    rule_from_hub,
    rules_to_hub,
    subject_to_hub,
)
from smi.apis.meta import ObjectMeta
from smi.apis.served import ConversionNotPossible
from smi.apis.wire import LabelSelector, WireModel, WireObject

VERSION = "v1alpha4"
API_VERSION: Final = "access.smi-spec.io/v1alpha4"


class TrafficTargetSpec(WireModel):
    destination: GroupSubject
    rules: list[Rule]
    sources: list[GroupSubject]


class TrafficTarget(WireObject):
    hub_type = hub.TrafficTarget

    api_version: Literal["access.smi-spec.io/v1alpha4"] = Field(alias="apiVersion")
    kind: Literal["TrafficTarget"]
    spec: TrafficTargetSpec


class Schemes(WireModel):
    pod_label_selector: LabelSelector | None = Field(default=None, alias="podLabelSelector")
    spiffe_identities: list[str] | None = Field(default=None, alias="spiffeIdentities")
    service_account: str | None = Field(default=None, alias="serviceAccount")


class IdentityBindingSpec(WireModel):
    schemes: Schemes


class IdentityBinding(WireObject):
    hub_type = hub.IdentityBinding

    api_version: Literal["access.smi-spec.io/v1alpha4"] = Field(alias="apiVersion")
    kind: Literal["IdentityBinding"]
    spec: IdentityBindingSpec


# --- TrafficTarget ----------------------------------------------------------------------------


def _read_target(wire: TrafficTarget, meta: ObjectMeta) -> hub.TrafficTarget:
    return build_target(
        kind="TrafficTarget",
        metadata=meta,
        destination=subject_to_hub(wire.spec.destination),
        rules=rules_to_hub(wire.spec.rules),
        sources=tuple(subject_to_hub(s) for s in wire.spec.sources),
    )


def _project_target(target: hub.TrafficTarget) -> TrafficTarget:
    require_expressible(target, version=VERSION, bindings=True)
    spec = TrafficTargetSpec(
        destination=group_subject(target.destination),
        rules=[rule_from_hub(r) for r in target.rules],
        sources=[group_subject(s) for s in target.sources],
    )
    return TrafficTarget(
        apiVersion=API_VERSION, kind="TrafficTarget", metadata=target.metadata, spec=spec
    )


# --- IdentityBinding --------------------------------------------------------------------------


def _read_binding(wire: IdentityBinding, meta: ObjectMeta) -> hub.IdentityBinding:
    schemes = wire.spec.schemes
    selector = schemes.pod_label_selector
    return hub.IdentityBinding(
        metadata=meta,
        schemes=hub.IdentityBindingSchemes(
            pod_label_selector=None
            if selector is None
            else selector.model_dump(by_alias=True, exclude_none=True),
            spiffe_identities=tuple(schemes.spiffe_identities or ()),
            service_account=schemes.service_account,
        ),
    )


def _selector(raw: dict[str, Any] | None) -> LabelSelector | None:
    if raw is None:
        return None
    try:
        return LabelSelector.model_validate(raw)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ConversionNotPossible(
            f"schemes.pod_label_selector is not a Kubernetes label selector: {reason}"
        ) from exc


def _project_binding(binding: hub.IdentityBinding) -> IdentityBinding:
    schemes = binding.schemes
    wire_schemes = Schemes(
        podLabelSelector=_selector(schemes.pod_label_selector),
        spiffeIdentities=list(schemes.spiffe_identities) or None,
        serviceAccount=schemes.service_account,
    )
    return IdentityBinding(
        apiVersion=API_VERSION,
        kind="IdentityBinding",
        metadata=binding.metadata,
        spec=IdentityBindingSpec(schemes=wire_schemes),
    )


# --- one entry point per direction ------------------------------------------------------------


SERVED = (
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="TrafficTarget",
        wire=TrafficTarget,
        read=_read_target,
        project=_project_target,
        narrowing=TARGET_NARROWING,
        flat=False,
        draft=True,
    ),
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="IdentityBinding",
        wire=IdentityBinding,
        read=_read_binding,
        project=_project_binding,
        flat=False,
        draft=True,
    ),
)

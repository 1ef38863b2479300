"""Unversioned hub of access.smi-spec.io: every version of TrafficTarget converts to and from
this form, and everything above `smi.apis` reads only this form.

The hub is a superset of all versions: `destination.port` (v1alpha1/v1alpha2 only),
subject `group` (v1alpha4 IdentityBinding references), rule `matches` kept as None vs () so that
a round trip to the same version gives the same wire object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from smi.apis.meta import ObjectMeta

GROUP = "access.smi-spec.io"

SubjectKind = Literal["ServiceAccount", "IdentityBinding"]
RuleKind = Literal["HTTPRouteGroup", "TCPRoute", "UDPRoute"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Subject(_Frozen):
    """A source or destination identity. `namespace` is "" when the wire object left it out;
    the compiler applies DESIGN.md §3 (defaults to the TrafficTarget's namespace)."""

    kind: str
    name: str
    namespace: str = ""
    group: str = ""
    port: int | None = None  # destination only, access v1alpha1/v1alpha2


class Rule(_Frozen):
    """A reference to a traffic spec in the TrafficTarget's namespace. `matches` None = the
    field was absent; () = present but empty. Both mean every match of the group."""

    kind: str
    name: str
    matches: tuple[str, ...] | None = None


class TrafficTarget(_Frozen):
    kind: Literal["TrafficTarget"] = "TrafficTarget"
    metadata: ObjectMeta
    destination: Subject
    rules: tuple[Rule, ...] = ()
    sources: tuple[Subject, ...] = ()


class IdentityBindingSchemes(_Frozen):
    pod_label_selector: dict[str, object] | None = None
    spiffe_identities: tuple[str, ...] = ()
    service_account: str | None = None

    def __hash__(self) -> int:
        return hash((self.spiffe_identities, self.service_account))


class IdentityBinding(_Frozen):
    """access v1alpha4 (draft): names the workloads of its own namespace by ServiceAccount,
    SPIFFE identities or a pod label selector (schemes are OR-ed)."""

    kind: Literal["IdentityBinding"] = "IdentityBinding"
    metadata: ObjectMeta
    schemes: IdentityBindingSchemes


AccessHub = TrafficTarget | IdentityBinding

"""The scenario format: one YAML file per SMI behaviour, validated by pydantic (`extra="forbid"`).

A scenario names the workloads of a small mesh (each runs as one ServiceAccount identity and
backs some Services), the SMI resources it uses (keyed by a short local name), and ordered steps
in the kuttl manner:

    apply: [routes, allow]        put resources in place (through admission, like kubectl)
    delete: [allow]               take them away
    admit: {resource: bad}        ask admission about one object; `expect` allowed or denied
    request: {from: ns/sa, to: service[:port], ...}   send traffic; `expect` what it saw
    convert: {resource: tt, to: access.smi-spec.io/v1alpha1}  and back again

Every mistake in a scenario file is reported with its field path, so a broken scenario is an
error of the suite, never a silent pass.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

_IDENTITY = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TARGET = re.compile(r"^(?P<service>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)(:(?P<port>[0-9]{1,5}))?$")
_GROUP_VERSION = re.compile(r"^[a-z]+\.smi-spec\.io/v1alpha[0-9]$")

Mode = Literal["deny", "audit", "permissive"]
Protocol = Literal["http", "tcp", "udp"]
StepKind = Literal["apply", "delete", "admit", "request", "convert"]
STEP_KINDS: tuple[StepKind, ...] = ("apply", "delete", "admit", "request", "convert")
MAX_COUNT = 2000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from exc
    return pattern


# A regex the suite searches answers with (Python `re`: these are ours, not SMI's).
Regex = Annotated[str, AfterValidator(_compiles)]


class Workload(_Strict):
    """One workload of the scenario's mesh: a ServiceAccount identity `ns/sa` that backs
    `services` (in its own namespace) on `ports`. `name` labels it in backend counts."""

    identity: str
    name: str = ""
    services: tuple[str, ...] = ()
    ports: tuple[int, ...] = (80,)

    @field_validator("identity")
    @classmethod
    def _identity(cls, v: str) -> str:
        if not _IDENTITY.match(v):
            raise ValueError(f"{v!r} is not an identity `namespace/serviceaccount`")
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(not 1 <= p <= 65535 for p in v):
            raise ValueError("ports are 1-65535 and at least one is needed")
        return v

    @property
    def namespace(self) -> str:
        return self.identity.split("/", 1)[0]

    @property
    def label(self) -> str:
        return self.name or self.identity.split("/", 1)[1]


# --- steps -----------------------------------------------------------------------------------


class Outcome(_Strict):
    """What an apply/delete must end in: accepted (the default) or refused with a message."""

    allowed: bool = True
    message: Regex | None = None


class ApplyStep(_Strict):
    apply: tuple[str, ...] = Field(min_length=1)
    name: str = ""
    expect: Outcome = Outcome()


class DeleteStep(_Strict):
    delete: tuple[str, ...] = Field(min_length=1)
    name: str = ""
    expect: Outcome = Outcome()


class AdmitSpec(_Strict):
    resource: str
    operation: Literal["CREATE", "UPDATE", "DELETE"] = "CREATE"
    old: str | None = None
    strict: bool = False


class AdmitExpect(_Strict):
    """`message` and `warning` are regexes searched in the joined lines of the answer."""

    allowed: bool
    code: int | None = None
    message: Regex | None = None
    warning: Regex | None = None
    no_warnings: bool = False


class AdmitStep(_Strict):
    admit: AdmitSpec
    name: str = ""
    expect: AdmitExpect


class RequestSpec(_Strict):
    """`count` identical requests from the workload `from` to `service[:port]` (the first port
    of the service when none is given). `service` may be `name` (in the caller's namespace)
    or `name.namespace`."""

    source: str = Field(alias="from")
    to: str
    protocol: Protocol = "http"
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    count: int = Field(default=1, ge=1, le=MAX_COUNT)

    @field_validator("to")
    @classmethod
    def _to(cls, v: str) -> str:
        if not _TARGET.match(v):
            raise ValueError(f"{v!r} is not `service[:port]` or `service.namespace[:port]`")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("a path starts with '/'")
        return v

    @property
    def service_ref(self) -> str:
        m = _TARGET.match(self.to)
        assert m is not None  # checked by the validator
        return m["service"]

    @property
    def port(self) -> int | None:
        m = _TARGET.match(self.to)
        assert m is not None
        return int(m["port"]) if m["port"] else None


class BackendShares(_Strict):
    """Where the allowed requests went, by workload name: either shares (fractions that sum
    to 1) with an absolute `tolerance`, or exact `counts`. A workload not listed, or listed
    with share 0, must get nothing at all."""

    share: dict[str, float] | None = None
    tolerance: float = Field(default=0.1, ge=0.0, le=1.0)
    counts: dict[str, int] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> BackendShares:
        if (self.share is None) == (self.counts is None):
            raise ValueError("give exactly one of `share` or `counts`")
        if self.share is not None:
            if any(not 0.0 <= v <= 1.0 for v in self.share.values()):
                raise ValueError("shares are fractions between 0 and 1")
            if abs(sum(self.share.values()) - 1.0) > 1e-6:
                raise ValueError(f"shares must sum to 1, not {sum(self.share.values()):g}")
        if self.counts is not None and any(v < 0 for v in self.counts.values()):
            raise ValueError("counts are >= 0")
        return self


class RequestExpect(_Strict):
    """`status` holds for every response; `allowed`/`denied`/`would_deny` are counts;
    `identity` is the caller identity (`ns/sa`) the destination app saw."""

    status: int | None = None
    allowed: int | None = Field(default=None, ge=0)
    denied: int | None = Field(default=None, ge=0)
    would_deny: int | None = Field(default=None, ge=0)
    identity: str | None = None
    backends: BackendShares | None = None
    reason: Regex | None = None

    @model_validator(mode="after")
    def _something(self) -> RequestExpect:
        if all(
            v is None
            for v in (
                self.status,
                self.allowed,
                self.denied,
                self.would_deny,
                self.identity,
                self.backends,
                self.reason,
            )
        ):
            raise ValueError("a request step must expect something")
        return self


class RequestStep(_Strict):
    request: RequestSpec
    name: str = ""
    expect: RequestExpect

    @model_validator(mode="after")
    def _counts_fit(self) -> RequestStep:
        for label, n in (("allowed", self.expect.allowed), ("denied", self.expect.denied)):
            if n is not None and n > self.request.count:
                raise ValueError(f"expect.{label} ({n}) exceeds request.count")
        counts = self.expect.backends.counts if self.expect.backends else None
        if counts is not None and sum(counts.values()) > self.request.count:
            raise ValueError("expected backend counts exceed request.count")
        return self


class ConvertSpec(_Strict):
    resource: str
    to: str

    @field_validator("to")
    @classmethod
    def _to(cls, v: str) -> str:
        if not _GROUP_VERSION.match(v):
            raise ValueError(f"{v!r} is not an SMI `group/version`")
        return v


class ConvertExpect(_Strict):
    """`round_trip`: converting back gives the original object. `contains`: the converted
    object includes this (recursive subset). `error`: the conversion must fail (regex)."""

    round_trip: bool = True
    contains: dict[str, Any] | None = None
    error: Regex | None = None


class ConvertStep(_Strict):
    convert: ConvertSpec
    name: str = ""
    expect: ConvertExpect = ConvertExpect()


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in STEP_KINDS if k in value]
        return present[0] if len(present) == 1 else None
    for kind, cls in _STEP_CLASSES.items():
        if isinstance(value, cls):
            return kind
    return None


_STEP_CLASSES: dict[str, type[BaseModel]] = {
    "apply": ApplyStep,
    "delete": DeleteStep,
    "admit": AdmitStep,
    "request": RequestStep,
    "convert": ConvertStep,
}

Step = Annotated[
    Annotated[ApplyStep, Tag("apply")]
    | Annotated[DeleteStep, Tag("delete")]
    | Annotated[AdmitStep, Tag("admit")]
    | Annotated[RequestStep, Tag("request")]
    | Annotated[ConvertStep, Tag("convert")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of: " + ", ".join(STEP_KINDS),
    ),
]


def step_kind(step: Step) -> StepKind:
    kind = _step_kind(step)
    assert kind is not None
    return kind  # type: ignore[return-value]


def step_title(step: Step) -> str:
    """A one-line description for reports: the step's own name, or one made from it."""
    if step.name:
        return step.name
    if isinstance(step, ApplyStep):
        return "apply " + ", ".join(step.apply)
    if isinstance(step, DeleteStep):
        return "delete " + ", ".join(step.delete)
    if isinstance(step, AdmitStep):
        return f"admit {step.admit.operation} {step.admit.resource}"
    if isinstance(step, ConvertStep):
        return f"convert {step.convert.resource} to {step.convert.to} and back"
    r = step.request
    what = f"{r.method} {r.path}" if r.protocol == "http" else r.protocol.upper()
    return f"{r.count}x {what} {r.source} -> {r.to}"


# --- the scenario ----------------------------------------------------------------------------


class Scenario(_Strict):
    """One SMI behaviour in one combination of SMI versions."""

    name: str
    description: str
    capability: str
    smi_versions: tuple[str, ...] = Field(min_length=1)
    decisions: tuple[str, ...] = ()
    mode: Mode = "deny"
    workloads: tuple[Workload, ...] = ()
    resources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: tuple[Step, ...]

    @field_validator("smi_versions")
    @classmethod
    def _versions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for gv in v:
            if not _GROUP_VERSION.match(gv):
                raise ValueError(f"{gv!r} is not an SMI `group/version`")
        return v

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        if not self.steps:
            raise ValueError("a scenario needs at least one step")
        _check_workloads(self.workloads)
        for i, step in enumerate(self.steps):
            for key in _resource_keys(step):
                if key not in self.resources:
                    raise ValueError(f"steps[{i}]: resource {key!r} is not in `resources`")
            if isinstance(step, RequestStep):
                _check_request(i, step, self)
        return self

    @property
    def area(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else "misc"

    def workload(self, identity: str) -> Workload | None:
        return next((w for w in self.workloads if w.identity == identity), None)

    def backing(self, namespace: str, service: str) -> list[Workload]:
        """The workloads behind `namespace/service`, in file order."""
        return [w for w in self.workloads if w.namespace == namespace and service in w.services]


def _resource_keys(step: Step) -> tuple[str, ...]:
    if isinstance(step, ApplyStep):
        return step.apply
    if isinstance(step, DeleteStep):
        return step.delete
    if isinstance(step, AdmitStep):
        old = (step.admit.old,) if step.admit.old else ()
        return (step.admit.resource, *old)
    if isinstance(step, ConvertStep):
        return (step.convert.resource,)
    return ()


def _check_workloads(workloads: tuple[Workload, ...]) -> None:
    labels = [w.label for w in workloads]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"workloads: names must be unique, repeated: {', '.join(dupes)}")


def split_service(ref: str, *, default_namespace: str) -> tuple[str, str]:
    """`name` or `name.namespace[.svc[.cluster.local]]` -> (namespace, name)."""
    name, _, rest = ref.partition(".")
    namespace = rest.split(".", 1)[0] if rest else default_namespace
    return namespace, name


def _check_request(i: int, step: RequestStep, scenario: Scenario) -> None:
    req = step.request
    source = scenario.workload(req.source)
    if source is None:
        raise ValueError(f"steps[{i}].request.from: {req.source!r} is not a workload identity")
    ns, svc = split_service(req.service_ref, default_namespace=source.namespace)
    if not scenario.backing(ns, svc):
        raise ValueError(f"steps[{i}].request.to: no workload backs the service {ns}/{svc}")
    labels = {w.label for w in scenario.workloads}
    shares = step.expect.backends
    named = {**(shares.share or {}), **(shares.counts or {})} if shares else {}
    unknown = sorted(set(named) - labels)
    if unknown:
        raise ValueError(f"steps[{i}].expect.backends: unknown workloads {', '.join(unknown)}")
    if step.expect.identity is not None and not _IDENTITY.match(step.expect.identity):
        raise ValueError(f"steps[{i}].expect.identity: {step.expect.identity!r} is not ns/sa")

"""The scenario format: one YAML file per SMI behaviour, validated by pydantic (`extra="forbid"`).

A scenario names the workloads of a small mesh (each runs as one ServiceAccount identity and
backs some Services), the SMI resources it uses (keyed by a short local name), and ordered steps
in the kuttl manner:

    apply: [routes, allow]        put resources in place (through admission, like kubectl)
    delete: [allow]               take them away
    admit: {resource: bad}        ask admission about one object; `expect` allowed or denied
    request: {from: ns/sa, to: service[:port], ...}   send traffic; `expect` what it saw
    connect: {to: service[:port], identity: ns/sa, certificate: foreign-ca, ...}
                                  connect straight to the destination's inbound listener with a
                                  certificate of the suite's choosing; `expect` the handshake
                                  refused, or what the request saw
    convert: {resource: tt, to: access.smi-spec.io/v1alpha1}  and back again

Every mistake in a scenario file is reported with its field path, so a broken scenario is an
error of the suite, never a silent pass. That includes the claims a report makes from it: the SMI
group/versions a scenario is reported under are derived from its resources and conversions (a
declared version cannot contradict them), and every decision it cites must exist.
"""

from __future__ import annotations

import difflib
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

from conformance.decisions import DECISIONS

_IDENTITY = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TARGET = re.compile(r"^(?P<service>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)(:(?P<port>[0-9]{1,5}))?$")
_GROUP_VERSION = re.compile(r"^[a-z]+\.smi-spec\.io/v1alpha[0-9]$")

Mode = Literal["deny", "audit", "permissive"]
Protocol = Literal["http", "tcp", "udp"]
StepKind = Literal["apply", "delete", "admit", "request", "convert", "connect"]
STEP_KINDS: tuple[StepKind, ...] = ("apply", "delete", "admit", "request", "convert", "connect")
# The client certificate of a `connect` step: the mesh CA's for `identity`, one from another
# CA for `identity`, the mesh CA's for `identity` but expired, or none at all.
Certificate = Literal["mesh", "foreign-ca", "expired", "none"]
MAX_COUNT = 2000

# Every group/version smictl serves (DESIGN.md §3 "Versions"); the report lists each.
GROUP_VERSIONS: tuple[str, ...] = (
    "access.smi-spec.io/v1alpha1",
    "access.smi-spec.io/v1alpha2",
    "access.smi-spec.io/v1alpha3",
    "access.smi-spec.io/v1alpha4",
    "specs.smi-spec.io/v1alpha1",
    "specs.smi-spec.io/v1alpha2",
    "specs.smi-spec.io/v1alpha3",
    "specs.smi-spec.io/v1alpha4",
    "split.smi-spec.io/v1alpha1",
    "split.smi-spec.io/v1alpha2",
    "split.smi-spec.io/v1alpha3",
    "split.smi-spec.io/v1alpha4",
)

Loc = tuple[str | int, ...]


class FieldError(ValueError):
    """A problem a cross-field check found, with the path of the field it is about, relative to
    the model whose validator raised it. pydantic locates a model validator's error at the model
    itself (the whole scenario is line 1), so the loader appends `loc` to pydantic's location
    and points at the field's own line."""

    def __init__(self, loc: Loc, reason: str) -> None:
        super().__init__(reason)
        self.loc = loc
        self.reason = reason


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


def _group(group_version: str) -> str:
    return group_version.partition("/")[0]


def _served(group_version: str) -> str:
    """A declared version must be one smictl serves: `--smi-version` refuses any other, so a
    scenario claiming one could be summarised but never selected."""
    if group_version in GROUP_VERSIONS:
        return group_version
    group = _group(group_version)
    same_group = [gv.partition("/")[2] for gv in GROUP_VERSIONS if _group(gv) == group]
    hint = (
        f"; {group} has {', '.join(same_group)}"
        if same_group
        else f"; use one of {', '.join(sorted({_group(gv) for gv in GROUP_VERSIONS}))}"
    )
    raise ValueError(f"{group_version!r} is not an SMI group/version smictl serves{hint}")


def _decision(decision: str) -> str:
    if decision in DECISIONS:
        return decision
    close = difflib.get_close_matches(decision, DECISIONS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{decision!r} is not a decision id of conformance/decisions.py (DESIGN.md §3){hint}"
    )


GroupVersion = Annotated[str, AfterValidator(_served)]
DecisionId = Annotated[str, AfterValidator(_decision)]


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


def _service_target(v: str) -> str:
    m = _TARGET.match(v)
    if not m:
        raise ValueError(f"{v!r} is not `service[:port]` or `service.namespace[:port]`")
    if m["port"] and not 1 <= int(m["port"]) <= 65535:
        raise ValueError(f"port {int(m['port'])} is not 1-65535")
    return v


def _request_path(v: str) -> str:
    if not v.startswith("/"):
        raise ValueError("a path starts with '/'")
    return v


class _Requests(_Strict):
    """What a request step and a connect step both send: `count` identical requests to
    `service[:port]` (the first port of the service when none is given), `service` being `name`
    (in the caller's namespace) or `name.namespace`."""

    to: str
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    count: int = Field(default=1, ge=1, le=MAX_COUNT)

    @field_validator("to")
    @classmethod
    def _to(cls, v: str) -> str:
        return _service_target(v)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _request_path(v)

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


class RequestSpec(_Requests):
    """Requests from the workload `from`, through its sidecar (see `_Requests`)."""

    source: str = Field(alias="from")
    protocol: Protocol = "http"


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
                raise FieldError(("share",), "shares are fractions between 0 and 1")
            if abs(sum(self.share.values()) - 1.0) > 1e-6:
                raise FieldError(
                    ("share",), f"shares must sum to 1, not {sum(self.share.values()):g}"
                )
        if self.counts is not None and any(v < 0 for v in self.counts.values()):
            raise FieldError(("counts",), "counts are >= 0")
        return self


class RequestExpect(_Strict):
    """`status` holds for every response; `allowed`/`denied`/`would_deny` are counts;
    `identity` is the caller identity (`ns/sa`) the destination app saw; `within` is the most
    seconds all `count` requests may take together (a bound on time, not only on the answer)."""

    status: int | None = None
    allowed: int | None = Field(default=None, ge=0)
    denied: int | None = Field(default=None, ge=0)
    would_deny: int | None = Field(default=None, ge=0)
    identity: str | None = None
    backends: BackendShares | None = None
    reason: Regex | None = None
    within: float | None = Field(default=None, gt=0)

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
                self.within,
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
        count = self.request.count
        for label, n in (("allowed", self.expect.allowed), ("denied", self.expect.denied)):
            if n is not None and n > count:
                raise FieldError(
                    ("expect", label), f"expect.{label} ({n}) exceeds request.count ({count})"
                )
        counts = self.expect.backends.counts if self.expect.backends else None
        if counts is not None and sum(counts.values()) > count:
            raise FieldError(
                ("expect", "backends", "counts"),
                f"the backend counts add up to {sum(counts.values())}, more than "
                f"request.count ({count})",
            )
        return self


class ConnectSpec(_Requests):
    """HTTP requests, each on its own connection that the suite opens straight to the
    inbound listener of the workload behind `to` (not through a caller's sidecar, which would
    replace a forged header or its certificate), presenting `certificate` for `identity`."""

    identity: str | None = None
    certificate: Certificate = "mesh"

    @model_validator(mode="after")
    def _identity(self) -> ConnectSpec:
        if self.identity is not None and not _IDENTITY.match(self.identity):
            raise FieldError(("identity",), f"{self.identity!r} is not ns/sa")
        if (self.identity is None) != (self.certificate == "none"):
            raise FieldError(
                ("identity",),
                "`identity` names whom the certificate is for: give it, unless `certificate` "
                "is none (and then leave it out)",
            )
        return self


class ConnectExpect(RequestExpect):
    """`handshake: refused`: the destination refuses every connection's TLS handshake (and
    then nothing else may be expected); otherwise what the requests saw, as for `request`."""

    handshake: Literal["accepted", "refused"] = "accepted"

    @model_validator(mode="after")
    def _something(self) -> ConnectExpect:
        others = (self.status, self.allowed, self.denied, self.would_deny, self.identity)
        rest = (self.backends, self.reason, self.within)
        given = [v for v in (*others, *rest) if v is not None]
        if self.handshake == "refused" and given:
            raise ValueError("a refused handshake answers no request: expect nothing else")
        if self.handshake == "accepted" and not given:
            raise ValueError("a connect step must expect something")
        return self


class ConnectStep(_Strict):
    connect: ConnectSpec
    name: str = ""
    expect: ConnectExpect


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
    "connect": ConnectStep,
}

Step = Annotated[
    Annotated[ApplyStep, Tag("apply")]
    | Annotated[DeleteStep, Tag("delete")]
    | Annotated[AdmitStep, Tag("admit")]
    | Annotated[RequestStep, Tag("request")]
    | Annotated[ConvertStep, Tag("convert")]
    | Annotated[ConnectStep, Tag("connect")],
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
    if isinstance(step, ApplyStep | DeleteStep):
        keys = step.apply if isinstance(step, ApplyStep) else step.delete
        return f"{step_kind(step)} " + ", ".join(keys)
    if isinstance(step, AdmitStep):
        return f"admit {step.admit.operation} {step.admit.resource}"
    if isinstance(step, ConvertStep):
        return f"convert {step.convert.resource} to {step.convert.to} and back"
    if isinstance(step, ConnectStep):
        return _connect_title(step.connect)
    r = step.request
    what = f"{r.method} {r.path}" if r.protocol == "http" else r.protocol.upper()
    return f"{r.count}x {what} {r.source} -> {r.to}"


def _connect_title(c: ConnectSpec) -> str:
    who = "no certificate" if c.identity is None else f"{c.certificate} certificate {c.identity}"
    return f"{c.count}x {c.method} {c.path} straight to {c.to} with {who}"


# --- the scenario ----------------------------------------------------------------------------


class Scenario(_Strict):
    """One SMI behaviour in one combination of SMI versions."""

    name: str
    description: str
    capability: str
    # What the file says; `smi_versions` (what reports and selection use) adds what it exercises.
    declared_versions: tuple[GroupVersion, ...] = Field(default=(), alias="smi_versions")
    decisions: tuple[DecisionId, ...] = ()
    mode: Mode = "deny"
    workloads: tuple[Workload, ...] = ()
    resources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: tuple[Step, ...]

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        if not self.steps:
            raise FieldError(("steps",), "a scenario needs at least one step")
        _check_workloads(self.workloads)
        _check_versions(self)
        for i, step in enumerate(self.steps):
            for key in _resource_keys(step):
                if key not in self.resources:
                    raise FieldError(("steps", i), f"resource {key!r} is not in `resources`")
            if isinstance(step, RequestStep):
                _check_request(i, step, self)
            if isinstance(step, ConnectStep):
                _check_connect(i, step, self)
        return self

    @property
    def smi_versions(self) -> tuple[str, ...]:
        """The group/versions this scenario is reported and selected under: every served
        version its resources and conversions exercise, and the declared ones (which may name
        a group the scenario holds no object of: default deny with no TrafficTarget at all)."""
        versions = set(self.declared_versions) | exercised_versions(self.resources, self.steps)
        return tuple(gv for gv in GROUP_VERSIONS if gv in versions)

    @property
    def area(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else "misc"

    def workload(self, identity: str) -> Workload | None:
        return next((w for w in self.workloads if w.identity == identity), None)

    def backing(self, namespace: str, service: str) -> list[Workload]:
        """The workloads behind `namespace/service`, in file order."""
        return [w for w in self.workloads if w.namespace == namespace and service in w.services]


def exercised_versions(resources: dict[str, dict[str, Any]], steps: tuple[Step, ...]) -> set[str]:
    """The served group/versions of the scenario's resources, and those its conversions
    convert to within the resource's own group. A resource of a version smictl does not serve
    is there to be refused, and a conversion to another group checks that the group cannot
    change: neither exercises the version it names."""
    # Resources are free-form (admission must see wrong ones): an apiVersion may be anything.
    found = {
        gv
        for doc in resources.values()
        if isinstance(gv := doc.get("apiVersion"), str) and gv in GROUP_VERSIONS
    }
    for step in steps:
        if not isinstance(step, ConvertStep) or step.convert.to not in GROUP_VERSIONS:
            continue
        source = resources.get(step.convert.resource, {}).get("apiVersion")
        if isinstance(source, str) and _group(source) == _group(step.convert.to):
            found.add(step.convert.to)
    return found


def _check_versions(scenario: Scenario) -> None:
    """A declared version of a group the scenario exercises in other versions only is a claim
    nothing tests (a split v1alpha4 scenario filed under split v1alpha1)."""
    used = exercised_versions(scenario.resources, scenario.steps)
    for i, gv in enumerate(scenario.declared_versions):
        uses = sorted(u for u in used if _group(u) == _group(gv))
        if uses and gv not in uses:
            raise FieldError(
                ("smi_versions", i),
                f"{gv} is not what the scenario exercises: its {_group(gv)} resources and "
                f"conversions are {', '.join(uses)}",
            )
    if not used and not scenario.declared_versions:
        raise FieldError(
            ("smi_versions",),
            "the scenario holds no SMI object of a version smictl serves: name the "
            "group/versions it is about",
        )


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
    seen: set[str] = set()
    for j, w in enumerate(workloads):
        if w.label in seen:
            field = "name" if w.name else "identity"
            raise FieldError(("workloads", j, field), f"names must be unique, repeated: {w.label}")
        seen.add(w.label)


def split_service(ref: str, *, default_namespace: str) -> tuple[str, str]:
    """`name` or `name.namespace[.svc[.cluster.local]]` -> (namespace, name)."""
    name, _, rest = ref.partition(".")
    namespace = rest.split(".", 1)[0] if rest else default_namespace
    return namespace, name


def _check_request(i: int, step: RequestStep, scenario: Scenario) -> None:
    req = step.request
    source = scenario.workload(req.source)
    if source is None:
        raise FieldError(
            ("steps", i, "request", "from"), f"{req.source!r} is not a workload identity"
        )
    ns, svc = split_service(req.service_ref, default_namespace=source.namespace)
    backing = scenario.backing(ns, svc)
    if not backing:
        raise FieldError(("steps", i, "request", "to"), f"no workload backs the service {ns}/{svc}")
    _check_port(i, req, backing, f"{ns}/{svc}")
    labels = {w.label for w in scenario.workloads}
    shares = step.expect.backends
    named = {**(shares.share or {}), **(shares.counts or {})} if shares else {}
    unknown = sorted(set(named) - labels)
    if unknown:
        raise FieldError(
            ("steps", i, "expect", "backends"), f"unknown workloads {', '.join(unknown)}"
        )
    if step.expect.identity is not None and not _IDENTITY.match(step.expect.identity):
        raise FieldError(
            ("steps", i, "expect", "identity"), f"{step.expect.identity!r} is not ns/sa"
        )


def _check_connect(i: int, step: ConnectStep, scenario: Scenario) -> None:
    spec = step.connect
    ns, svc = split_service(
        spec.service_ref,
        default_namespace=spec.identity.split("/", 1)[0] if spec.identity else "",
    )
    backing = scenario.backing(ns, svc) if ns else []
    if not backing:
        where = f"the service {ns}/{svc}" if ns else f"{svc} (name its namespace: {svc}.NS)"
        raise FieldError(("steps", i, "connect", "to"), f"no workload backs {where}")
    _check_port(i, spec, backing, f"{ns}/{svc}", kind="connect")
    if step.expect.identity is not None and not _IDENTITY.match(step.expect.identity):
        raise FieldError(
            ("steps", i, "expect", "identity"), f"{step.expect.identity!r} is not ns/sa"
        )


def _check_port(
    i: int,
    req: RequestSpec | ConnectSpec,
    backing: list[Workload],
    service: str,
    *,
    kind: str = "request",
) -> None:
    """A port no workload behind the service listens on is a mistake of the scenario, not a
    behaviour of the mesh: the in-process targets would decide it like any other port, while
    the proxy target has no listener to send it to."""
    served = sorted({p for w in backing for p in w.ports})
    if req.port is not None and req.port not in served:
        raise FieldError(
            ("steps", i, kind, "to"),
            f"no workload behind {service} serves port {req.port} "
            f"(ports: {', '.join(map(str, served))})",
        )

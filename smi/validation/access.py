"""Hard checks and warnings for access.smi-spec.io: TrafficTarget and IdentityBinding.

DESIGN.md §3: the destination namespace defaults to the TrafficTarget's and must equal it; a
source without a namespace means the TrafficTarget's (warned); a TrafficTarget needs at least one
rule and one source in every version (it would allow nothing otherwise). A destination port the
lossy-fields annotation restores in a version without `port` is enforced out of the manifest's
sight, so it is named (SMI4005); an access v1alpha1 port in quotes is read as its number, but
the API server would refuse it (SMI2410). An IdentityBinding's podLabelSelector names pods, not
identities, and smictl skips it: said where the binding is checked (SMI2411), not only when it
is compiled, since a binding with nothing else allows nothing. Paths follow the wire layout of
the object's version: flat `specs[0]` in v1alpha1, `spec.rules[0]` later. They are formatted
only for what is reported: the checks run for every object of a set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from smi.apis import registry
from smi.apis.access import hub
from smi.apis.access.common import TARGET_NARROWING
from smi.apis.lossy import carries_annotation, restored_note
from smi.apis.meta import LOSSY_ANNOTATION
from smi.errors import Diagnostic
from smi.identity import spiffe_path
from smi.ports import is_port, not_a_port
from smi.validation.names import (
    check_label,
    check_subdomain,
    duplicates,
    error,
    is_label,
    is_subdomain,
    warning,
)
from smi.yamlpos import join_path

if TYPE_CHECKING:
    from smi.apis.lossy import Narrowing
    from smi.loading import Resource

_RULE_KINDS = {
    "v1alpha1": ("HTTPRouteGroup", "TCPRoute"),
    "v1alpha2": ("HTTPRouteGroup", "TCPRoute"),
    "v1alpha3": ("HTTPRouteGroup", "TCPRoute", "UDPRoute"),
    "v1alpha4": ("HTTPRouteGroup", "TCPRoute", "UDPRoute"),
}
T = TypeVar("T")
_SUBJECT_KINDS = {"v1alpha4": ("ServiceAccount", "IdentityBinding")}
_DEFAULT_SUBJECT_KINDS = ("ServiceAccount",)


# Entries a version cannot hold and that ride in the lossy-fields annotation instead
# (smi.apis.access.common): the hub has them back, the manifest does not show them.
_HIDDEN_RULE_KINDS = {"v1alpha1": "UDPRoute", "v1alpha2": "UDPRoute"}
_HIDDEN_SOURCE_KINDS = {v: "IdentityBinding" for v in ("v1alpha1", "v1alpha2", "v1alpha3")}
LOSSY_PATH = join_path("metadata.annotations", LOSSY_ANNOTATION)


def check_traffic_target(resource: Resource) -> list[Diagnostic]:
    target: hub.TrafficTarget = resource.obj
    version = resource.api_version.rpartition("/")[2]
    spec = "" if version == "v1alpha1" else "spec."
    namespace = target.metadata.namespace
    body = resource.raw if not spec else resource.raw.get("spec")
    written = body if isinstance(body, dict) else {}
    rules_key = "specs" if not spec else "rules"
    out: list[Diagnostic] = []
    _destination(
        out, target.destination, path=f"{spec}destination", namespace=namespace, version=version
    )
    if version == "v1alpha1" and target.destination.port is not None:
        _quoted_port(out, written.get("destination"), port=target.destination.port)
    rules = _shown(target.rules, written.get(rules_key), _HIDDEN_RULE_KINDS.get(version))
    sources = _shown(target.sources, written.get("sources"), _HIDDEN_SOURCE_KINDS.get(version))
    _rules(
        out,
        rules,
        path=f"{spec}{rules_key}",
        api_version=resource.api_version,
        hidden=len(target.rules) - len(rules),
    )
    _sources(
        out,
        sources,
        path=f"{spec}sources",
        namespace=namespace,
        version=version,
        hidden=len(target.sources) - len(sources),
    )
    if carries_annotation(resource.raw):
        out += restored_restrictions(resource, TARGET_NARROWING)
        out += _restored_grants(resource, target, rules, sources)
    return out


def _restored_grants(
    resource: Resource,
    target: hub.TrafficTarget,
    rules: tuple[hub.Rule, ...],
    sources: tuple[hub.Subject, ...],
) -> list[Diagnostic]:
    """SMI4006 when the lossy-fields annotation restores what grants access and the object's
    version cannot show: UDPRoute rules below access v1alpha3, IdentityBinding sources below
    v1alpha4. Hidden restrictions were named (SMI4005), hidden grants not, though they are the
    ones a reviewer of the manifest most needs to see."""
    namespace = target.metadata.namespace or "default"
    hidden = [f"{r.kind} rule {namespace}/{r.name}" for r in target.rules if r not in rules]
    hidden += [
        f"{s.kind} source {s.namespace or namespace}/{s.name}"
        for s in target.sources
        if s not in sources
    ]
    if not hidden:
        return []
    them = "it" if len(hidden) == 1 else "them"
    return [
        warning(
            "SMI4006",
            f"restores {'; '.join(hidden)}, which {resource.api_version} cannot show: smictl "
            f"grants {them}, and deleting the annotation drops {them}",
            path=LOSSY_PATH,
        )
    ]


def restored_restrictions(resource: Resource, narrowing: Sequence[Narrowing]) -> list[Diagnostic]:
    """SMI4005 when the lossy-fields annotation restores restrictions that the object's own
    version cannot show (`smi.apis.lossy.restored_note` says why that deserves a word)."""
    entry = registry.lookup(resource.api_version, resource.kind)
    note = None if entry is None else restored_note(entry, resource.obj, narrowing)
    return [] if note is None else [warning("SMI4005", note, path=LOSSY_PATH)]


def rule_paths(resource: Resource) -> tuple[str | None, ...]:
    """Where each rule of a TrafficTarget, in hub order, is in the manifest as written
    (`spec.rules[1]`, `specs[1]` in v1alpha1), None for one the lossy-fields annotation
    restores and the version cannot show. The hub's index counts hidden rules: a check that
    used it as the manifest's put a hidden UDPRoute rule's problem on the rule written first."""
    target: hub.TrafficTarget = resource.obj
    version = resource.api_version.rpartition("/")[2]
    v1alpha1 = version == "v1alpha1"
    body = resource.raw if v1alpha1 else resource.raw.get("spec")
    written = body.get("specs" if v1alpha1 else "rules") if isinstance(body, dict) else None
    path = "specs" if v1alpha1 else "spec.rules"
    places = _places(target.rules, written, _HIDDEN_RULE_KINDS.get(version))
    return tuple(None if i is None else f"{path}[{i}]" for i in places)


def _shown(entries: tuple[T, ...], written: object, hidden_kind: str | None) -> tuple[T, ...]:
    """The entries as the manifest writes them: without those restored from the lossy-fields
    annotation (`_places`)."""
    places = _places(entries, written, hidden_kind)
    return tuple(e for e, i in zip(entries, places, strict=True) if i is not None)


def _places(entries: tuple[T, ...], written: object, hidden_kind: str | None) -> list[int | None]:
    """Each entry's index in the list the manifest writes, None for one restored from the
    lossy-fields annotation (only kinds this version cannot hold can come from there, so when
    the hub has more entries than the manifest, the extra ones are exactly those)."""
    count = len(written) if isinstance(written, list) else 0
    if hidden_kind is None or len(entries) == count:
        return list(range(len(entries)))
    places: list[int | None] = []
    shown = 0
    for entry in entries:
        if getattr(entry, "kind", None) == hidden_kind:
            places.append(None)
        else:
            places.append(shown)
            shown += 1
    return places


def _subject(out: list[Diagnostic], subject: hub.Subject, *, path: str, version: str) -> None:
    kinds = _SUBJECT_KINDS.get(version, _DEFAULT_SUBJECT_KINDS)
    if subject.kind not in kinds:
        out.append(
            error(
                "SMI2404",
                f"subject kind {subject.kind!r} is not allowed here (allowed: {', '.join(kinds)})",
                path=f"{path}.kind",
            )
        )
    elif subject.kind == "IdentityBinding" and subject.group not in ("", hub.GROUP):
        out.append(
            error(
                "SMI2404",
                f"an IdentityBinding subject belongs to group {hub.GROUP}",
                path=f"{path}.group",
            )
        )
    elif subject.kind == "ServiceAccount" and subject.group:
        out.append(
            error(
                "SMI2404",
                f"a ServiceAccount is in the core group, not {subject.group!r}",
                path=f"{path}.group",
            )
        )
    if not is_subdomain(subject.name):
        out += check_subdomain(subject.name, f"{path}.name")
    if subject.namespace and not is_label(subject.namespace):
        out += check_label(subject.namespace, f"{path}.namespace", what="namespace")


def _destination(
    out: list[Diagnostic], subject: hub.Subject, *, path: str, namespace: str, version: str
) -> None:
    _subject(out, subject, path=path, version=version)
    if subject.namespace and subject.namespace != namespace:
        out.append(
            error(
                "SMI2401",
                f"destination namespace {subject.namespace!r} differs from the TrafficTarget's "
                f"namespace {namespace!r}",
                path=f"{path}.namespace",
            )
        )
    if subject.port is not None and not is_port(subject.port):
        out.append(error("SMI2301", not_a_port(subject.port), path=f"{path}.port"))


def _quoted_port(out: list[Diagnostic], destination: object, *, port: int) -> None:
    """SMI2410 for `port: "9091"` (access v1alpha1 reads it as the number)."""
    written = destination.get("port") if isinstance(destination, dict) else None
    if isinstance(written, str):
        out.append(
            warning(
                "SMI2410",
                f"port {written!r} is read as {port}, but the CRD types destination.port as a "
                f"number; write {port}",
                path="destination.port",
            )
        )


def _rules(
    out: list[Diagnostic],
    rules: tuple[hub.Rule, ...],
    *,
    path: str,
    api_version: str,
    hidden: int = 0,
) -> None:
    if not rules and not hidden:
        out.append(
            error(
                "SMI2402",
                "at least one rule is needed (a TrafficTarget without rules allows nothing)",
                path=path,
            )
        )
    allowed = _RULE_KINDS.get(api_version.rpartition("/")[2], ())
    for i, rule in enumerate(rules):
        at = f"{path}[{i}]"
        if rule.kind not in allowed:
            out.append(
                error(
                    "SMI2405",
                    f"rule kind {rule.kind!r} is not allowed in {api_version} "
                    f"(allowed: {', '.join(allowed)})",
                    path=f"{at}.kind",
                )
            )
        if not is_subdomain(rule.name):
            out += check_subdomain(rule.name, f"{at}.name", what="route name")
        if rule.matches and rule.kind != "HTTPRouteGroup":
            out.append(
                warning(
                    "SMI2407",
                    f"matches are ignored on a {rule.kind} rule (only HTTPRouteGroup "
                    "rules select matches by name)",
                    path=f"{at}.matches",
                )
            )
        for j, name in duplicates(rule.matches) if rule.matches else ():
            out.append(
                warning("SMI2007", f"match {name!r} listed twice", path=f"{at}.matches[{j}]")
            )
    if len(rules) > 1:
        keys = [f"{r.kind}/{r.name}/{sorted(r.matches or ())}" for r in rules]
        for i, _ in duplicates(keys):
            out.append(warning("SMI2007", "the same rule is listed twice", path=f"{path}[{i}]"))


def _sources(
    out: list[Diagnostic],
    sources: tuple[hub.Subject, ...],
    *,
    path: str,
    namespace: str,
    version: str,
    hidden: int = 0,
) -> None:
    if not sources and not hidden:
        out.append(
            error(
                "SMI2403",
                "at least one source is needed (a TrafficTarget without sources allows nothing)",
                path=path,
            )
        )
    for i, source in enumerate(sources):
        at = f"{path}[{i}]"
        _subject(out, source, path=at, version=version)
        if not source.namespace:
            out.append(
                warning(
                    "SMI2406",
                    f"source without a namespace means the TrafficTarget's namespace "
                    f"{namespace!r}; write it explicitly",
                    path=f"{at}.namespace",
                )
            )
    keys = [f"{s.kind}/{s.namespace or namespace}/{s.name}" for s in sources]
    for i, key in duplicates(keys):
        out.append(warning("SMI2007", f"source {key} is listed twice", path=f"{path}[{i}]"))


def check_identity_binding(resource: Resource) -> list[Diagnostic]:
    binding: hub.IdentityBinding = resource.obj
    schemes = binding.schemes
    path = "spec.schemes"
    out: list[Diagnostic] = []
    if schemes.pod_label_selector is not None and schemes.service_account is not None:
        out.append(
            error(
                "SMI2408",
                "podLabelSelector and serviceAccount are mutually exclusive; keep one",
                path=path,
            )
        )
    if (
        schemes.pod_label_selector is None
        and schemes.service_account is None
        and not schemes.spiffe_identities
    ):
        out.append(
            error(
                "SMI2408",
                "no scheme: give podLabelSelector, spiffeIdentities or serviceAccount",
                path=path,
            )
        )
    if schemes.pod_label_selector is not None:
        out.append(_selector_skipped(schemes, path=f"{path}.podLabelSelector"))
    if schemes.service_account is not None:
        out += check_subdomain(
            schemes.service_account, f"{path}.serviceAccount", what="ServiceAccount name"
        )
    for i, text in enumerate(schemes.spiffe_identities):
        at = f"{path}.spiffeIdentities[{i}]"
        problem = _binding_identity_problem(text, namespace=resource.namespace, path=at)
        if problem is not None:
            out.append(problem)
    for i, identity in duplicates(schemes.spiffe_identities):
        out.append(
            warning(
                "SMI2007",
                f"identity {identity!r} listed twice",
                path=f"{path}.spiffeIdentities[{i}]",
            )
        )
    return out


def _selector_skipped(schemes: hub.IdentityBindingSchemes, *, path: str) -> Diagnostic:
    """SMI2411: the compiler resolves a binding to identities through its serviceAccount and
    spiffeIdentities only (a pod label names no certificate)."""
    if schemes.service_account is None and not schemes.spiffe_identities:
        rest = "this binding names no identity, and a TrafficTarget allows nothing through it"
    else:
        rest = "only serviceAccount and spiffeIdentities name identities here"
    return warning(
        "SMI2411",
        f"podLabelSelector names pods, not identities: smictl skips it, so {rest}",
        path=path,
    )


def _binding_identity_problem(text: str, *, namespace: str | None, path: str) -> Diagnostic | None:
    """Why a `spiffeIdentities` entry is no SPIFFE ID (`smi.identity.spiffe_path`), or names a
    ServiceAccount of another namespace. The compiler makes
    each entry a source as written, so `*` had become the source `spiffe://*`. Other path
    shapes are allowed: the spec's own example lists a federated identity."""
    segments = spiffe_path(text)
    if segments is None:
        return error(
            "SMI2409",
            f"{text!r} is not a SPIFFE ID: write <trust-domain>/<path>, e.g. "
            f"cluster.local/ns/{namespace or 'default'}/sa/<name>",
            path=path,
        )
    service_account = len(segments) == 4 and segments[0] == "ns" and segments[2] == "sa"
    if service_account and namespace and segments[1] != namespace:
        return warning(
            "SMI2409",
            f"{text!r} is a ServiceAccount of namespace {segments[1]!r}: an "
            f"IdentityBinding describes only workloads of its own namespace ({namespace!r})",
            path=path,
        )
    return None

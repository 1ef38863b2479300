"""Wire pieces and conversion helpers shared by the TrafficTarget versions.

Subjects and rules hardly change between versions: v1alpha1/v1alpha2 destinations carry an
optional `port`, v1alpha4 subjects an optional `group`; everything else is the layout around
them (flat in v1alpha1, `specs` renamed `rules` and moved under `spec` in v1alpha2).
"""

from __future__ import annotations

from collections.abc import Iterable

from smi.apis.access import hub
from smi.apis.served import ConversionNotPossible
from smi.apis.trusted import hub_builder
from smi.apis.wire import StrictInt, WireModel

# Hub objects from validated wire values (`smi.apis.trusted`): every field, in field order.
_subject = hub_builder(hub.Subject)
_rule = hub_builder(hub.Rule)
build_target = hub_builder(hub.TrafficTarget, defaulted=("kind",))


class Subject(WireModel):
    """A ServiceAccount (or, in v1alpha4, an IdentityBinding) by name."""

    kind: str
    name: str
    namespace: str | None = None


class PortDestination(Subject):
    """v1alpha1/v1alpha2 destination: the port is optional (absent = every port)."""

    port: StrictInt | None = None


class GroupSubject(Subject):
    """v1alpha4 (draft) subject: `group: access.smi-spec.io` with `kind: IdentityBinding`."""

    group: str | None = None


class Rule(WireModel):
    """A reference to a traffic spec; `matches` names matches of an HTTPRouteGroup."""

    kind: str
    name: str
    matches: list[str] | None = None


def subject_to_hub(subject: Subject) -> hub.Subject:
    return _subject(
        kind=subject.kind,
        name=subject.name,
        namespace=subject.namespace or "",
        group=(subject.group or "") if isinstance(subject, GroupSubject) else "",
        port=subject.port if isinstance(subject, PortDestination) else None,
    )


def plain_subject(subject: hub.Subject) -> Subject:
    return Subject(kind=subject.kind, name=subject.name, namespace=subject.namespace or None)


def port_destination(subject: hub.Subject) -> PortDestination:
    return PortDestination(
        kind=subject.kind, name=subject.name, namespace=subject.namespace or None, port=subject.port
    )


def group_subject(subject: hub.Subject) -> GroupSubject:
    return GroupSubject(
        kind=subject.kind,
        name=subject.name,
        namespace=subject.namespace or None,
        group=subject.group or None,
    )


def rule_to_hub(rule: Rule) -> hub.Rule:
    matches = None if rule.matches is None else tuple(rule.matches)
    return _rule(kind=rule.kind, name=rule.name, matches=matches)


def rule_from_hub(rule: hub.Rule) -> Rule:
    matches = None if rule.matches is None else list(rule.matches)
    return Rule(kind=rule.kind, name=rule.name, matches=matches)


def rules_to_hub(rules: Iterable[Rule] | None) -> tuple[hub.Rule, ...]:
    return tuple(rule_to_hub(r) for r in rules or ())


def require_expressible(
    target: hub.TrafficTarget, *, version: str, bindings: bool, udp: bool
) -> None:
    """Refuse what the target version cannot mean at all (an annotation would only hide it:
    the converted object would be rejected, or worse, read differently, by that version)."""
    subjects = [("destination", target.destination)] + [
        (f"sources[{i}]", s) for i, s in enumerate(target.sources)
    ]
    for where, subject in subjects:
        if not bindings and subject.kind == "IdentityBinding":
            raise ConversionNotPossible(
                f"{where} is an IdentityBinding, which exists only in access v1alpha4, "
                f"not {version}"
            )
    for i, rule in enumerate(target.rules):
        if not udp and rule.kind == "UDPRoute":
            raise ConversionNotPossible(
                f"rules[{i}] is a UDPRoute rule, which access {version} does not allow "
                "(UDPRoute needs access v1alpha3 or later)"
            )

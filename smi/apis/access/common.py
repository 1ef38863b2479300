"""Wire pieces and conversion helpers shared by the TrafficTarget versions.

Subjects and rules hardly change between versions: v1alpha1/v1alpha2 destinations carry an
optional `port`, v1alpha4 subjects an optional `group`; everything else is the layout around
them (flat in v1alpha1, `specs` renamed `rules` and moved under `spec` in v1alpha2). Early
SDKs wrote the v1alpha1 port as a string (`"9091"`, SPEC.md §2.2), so v1alpha1 alone reads a
port number in quotes as that number (`QuotedPortDestination`; validation warns, SMI2410).

What an older version has no place for, and where it goes (DESIGN.md §3 "Versions"):

- UDPRoute rules below v1alpha3 and IdentityBinding *sources* below v1alpha4 are left out of
  that version's view (`shown_rules`, `shown_sources`) and ride, with the whole original list
  and its order, in the lossy-fields annotation (`smi.apis.lossy`); converting back puts them
  back where they were. This is safe because a TrafficTarget only ever allows (SPEC.md §2.1):
  a reader of the older version who does not see them sees a narrower grant, never a wider
  one. When every rule (or source) is one the version cannot hold, its view has none, which
  allows nothing: v1alpha1/v1alpha2 leave the optional list out (their CRDs require neither
  `rules` nor `sources`), v1alpha3 writes `sources: []` (its CRD requires the field, not
  items). The API server's schema for the served version accepts both, so the view can be
  read, edited and written back through that version.
- The annotation's fingerprint applies the usual rule: a client of the older version that
  edits the list it sees (`rules` in v1alpha2) also drops the hidden entries, since the wire
  wins. That too only narrows. An annotation can add hidden entries only of the kinds the
  version cannot hold (`lossy.restore` checks it projects back onto the manifest), so a hand
  edit cannot slip an HTTPRouteGroup or ServiceAccount grant past a reader of the manifest.
  The hidden entries themselves are grants smictl enforces (the compiler reads the hub), so
  whoever reviews an access v1alpha1/v1alpha2 manifest reviews its annotation too; writing
  one takes the same permission as writing the grant in spec.
- A destination `port` (v1alpha1/v1alpha2) rides in the annotation in v1alpha3/v1alpha4. It
  only narrows the grant, so it is not dropped with an edited destination: it comes back
  while the destination names the same kind and name (`DESTINATION_PORT`, `lossy.Narrowing`),
  since dropping it because someone wrote `namespace: shop` would open every port. Hidden
  entries of `rules` and `sources` grant, so they keep the rule above.
- An IdentityBinding *destination* below v1alpha4 is refused (`require_expressible`): the
  destination says whom the grant is for, and the older version has no way to say it. Leaving
  it out would change what the object means, not narrow it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from smi.apis import lossy
from smi.apis.access import hub
from smi.apis.served import ConversionNotPossible
from smi.apis.trusted import hub_builder
from smi.apis.wire import StrictInt, WireModel

# Hub objects from validated wire values (`smi.apis.trusted`): every field, in field order.
_subject = hub_builder(hub.Subject)
_rule = hub_builder(hub.Rule)
build_target = hub_builder(hub.TrafficTarget, defaulted=("kind",))

# What in a TrafficTarget only narrows its grant (see the module docstring).
DESTINATION_PORT = lossy.Narrowing(
    field="destination",
    part="port",
    key=lambda subject: (subject.kind, subject.name),
    describe=lambda _key, port: f"destination.port {port}",
)
TARGET_NARROWING = (DESTINATION_PORT,)


class Subject(WireModel):
    """A ServiceAccount (or, in v1alpha4, an IdentityBinding) by name."""

    kind: str
    name: str
    namespace: str | None = None


class PortDestination(Subject):
    """v1alpha1/v1alpha2 destination: the port is optional (absent = every port)."""

    port: StrictInt | None = None


# A port number in quotes: no sign, no spaces, at most 10 digits (the range check, SMI2301,
# judges the number; a longer string is no port number at all).
_QUOTED_PORT = re.compile(r"[0-9]{1,10}")


def _quoted_port(value: Any) -> Any:
    """A string of digits as its number; any other string refused here, so that the message
    says what a string may hold. Other types are left to the integer check."""
    if not isinstance(value, str):
        return value
    if _QUOTED_PORT.fullmatch(value) is None:
        raise PydanticCustomError(
            "SMI2003",
            "must be an integer or a port number in quotes, not {value}",
            {"value": ascii(value[:20])},
        )
    return int(value)


QuotedPort = Annotated[StrictInt, BeforeValidator(_quoted_port)]


class QuotedPortDestination(PortDestination):
    """v1alpha1 destination: `port: "9091"` reads as 9091 (see the module docstring). Only
    here: from v1alpha2 on the spec's own types say number, and so does every SDK."""

    port: QuotedPort | None = None


D = TypeVar("D", bound=PortDestination)


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


def port_destination(subject: hub.Subject, wire: type[D]) -> D:
    """The destination as `wire` (its version's destination model) holds it."""
    return wire(
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


def shown_rules(target: hub.TrafficTarget, *, udp: bool) -> list[Rule]:
    """The rules a version shows: without UDPRoute rules where `udp` is False (the hidden
    ones ride in the lossy-fields annotation; see the module docstring)."""
    return [rule_from_hub(r) for r in target.rules if udp or r.kind != "UDPRoute"]


def shown_sources(target: hub.TrafficTarget, *, bindings: bool) -> list[hub.Subject]:
    """The sources a version shows: without IdentityBinding sources where `bindings` is
    False (they ride in the lossy-fields annotation; see the module docstring)."""
    return [s for s in target.sources if bindings or s.kind != "IdentityBinding"]


def require_expressible(target: hub.TrafficTarget, *, version: str, bindings: bool) -> None:
    """Refuse what the target version cannot mean at all: an IdentityBinding destination
    below v1alpha4. Hiding it in the annotation would not narrow the grant but change whom it
    is for; a reader of that version would see a different destination or none."""
    if not bindings and target.destination.kind == "IdentityBinding":
        raise ConversionNotPossible(
            f"destination is an IdentityBinding, which exists only in access v1alpha4, "
            f"not {version} (IdentityBinding sources would ride in the lossy-fields "
            "annotation; a destination cannot)"
        )

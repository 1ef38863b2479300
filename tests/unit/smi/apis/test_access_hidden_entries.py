"""TrafficTargets converted to an access version that cannot hold some of their rules or
sources (UDPRoute rules below v1alpha3, IdentityBinding sources below v1alpha4): the entries
leave that version's view, ride in the lossy-fields annotation, and come back in place; what
the version cannot mean at all (an IdentityBinding destination) is still refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smi.apis import registry
from smi.apis.access import hub as access
from smi.apis.lossy import fingerprint
from smi.apis.meta import LOSSY_ANNOTATION, ObjectMeta
from smi.conversion import convert_document
from smi.errors import ConversionError

V1, V2, V3, V4 = (f"access.smi-spec.io/v1alpha{n}" for n in range(1, 5))
META = ObjectMeta(name="dns", namespace="shop", annotations={"team": "net"})
SA = access.Subject(kind="ServiceAccount", name="web", namespace="shop")
IB = access.Subject(kind="IdentityBinding", name="batch", namespace="shop", group=access.GROUP)
HTTP = access.Rule(kind="HTTPRouteGroup", name="routes", matches=("metrics",))
TCP = access.Rule(kind="TCPRoute", name="tcp")
UDP = access.Rule(kind="UDPRoute", name="dns-udp")
UDP2 = access.Rule(kind="UDPRoute", name="ntp-udp")


def _tt(rules: tuple[access.Rule, ...], sources: tuple[access.Subject, ...] = (SA,)) -> Any:
    return access.TrafficTarget(
        metadata=META,
        destination=access.Subject(kind="ServiceAccount", name="dns", namespace="shop"),
        rules=rules,
        sources=sources,
    )


def _rules_of(doc: dict[str, Any]) -> list[dict[str, Any]] | None:
    body = doc if doc["apiVersion"] == V1 else doc["spec"]
    rules: list[dict[str, Any]] | None = body.get("specs" if doc["apiVersion"] == V1 else "rules")
    return rules


@pytest.mark.parametrize("older", [V1, V2])
@pytest.mark.parametrize(
    "rules",
    [(UDP, TCP, HTTP), (TCP, UDP, HTTP, UDP2), (HTTP, TCP, UDP)],
    ids=["udp-first", "udp-between", "udp-last"],
)
def test_udp_rules_leave_the_older_view_and_come_back_in_place(
    older: str, rules: tuple[access.Rule, ...]
) -> None:
    original = registry.render(_tt(rules), V3)
    down = convert_document(original, older)
    assert [r["kind"] for r in _rules_of(down) or []] == [
        r.kind for r in rules if r.kind != "UDPRoute"
    ]
    lossy = json.loads(down["metadata"]["annotations"][LOSSY_ANNOTATION])
    assert [r["name"] for r in lossy["rules"]["value"]] == [r.name for r in rules]
    back = convert_document(down, V3)
    assert back == original  # spec, order and metadata (annotation gone, others kept)


@pytest.mark.parametrize("older", [V1, V2])
def test_a_target_whose_every_rule_is_udp_shows_no_rules_below_v1alpha3(older: str) -> None:
    """The older view then allows nothing (narrower, never wider); the rules field is left
    out, which those versions' CRDs accept (neither requires it)."""
    original = registry.render(_tt((UDP,)), V3)
    down = convert_document(original, older)
    assert _rules_of(down) is None
    assert registry.parse(down) == registry.parse(original)
    assert convert_document(down, V3) == original


def test_a_v1alpha2_client_editing_the_rules_it_sees_drops_the_hidden_ones() -> None:
    """The wire wins: the annotation's fingerprint no longer matches, so nothing is added
    behind the rules the editor wrote (the grant only narrows)."""
    down = convert_document(registry.render(_tt((UDP, TCP)), V3), V2)
    down["spec"]["rules"].append({"kind": "HTTPRouteGroup", "name": "routes"})
    hub_obj = registry.parse(down)
    assert [r.kind for r in hub_obj.rules] == ["TCPRoute", "HTTPRouteGroup"]


def test_an_annotation_cannot_add_a_rule_kind_the_version_holds() -> None:
    """Only what v1alpha2 cannot hold may come from the annotation: a hand-added
    HTTPRouteGroup rule there, with a matching fingerprint, is ignored."""
    wire_rules = [{"kind": "TCPRoute", "name": "tcp", "matches": None}]
    stored = [*wire_rules, {"kind": "HTTPRouteGroup", "name": "all", "matches": None}]
    doc = registry.render(_tt((TCP,)), V2)
    doc["metadata"]["annotations"] = {
        LOSSY_ANNOTATION: json.dumps({"rules": {"value": stored, "was": fingerprint(wire_rules)}})
    }
    assert registry.parse(doc).rules == (TCP,)


@pytest.mark.parametrize("older", [V1, V2, V3])
@pytest.mark.parametrize("sources", [(SA, IB), (IB, SA), (IB,)], ids=["ib-last", "ib-first", "ib"])
def test_identity_binding_sources_ride_in_the_annotation_below_v1alpha4(
    older: str, sources: tuple[access.Subject, ...]
) -> None:
    original = registry.render(_tt((TCP, UDP), sources=sources), V4)
    down = convert_document(original, older)
    body = down if older == V1 else down["spec"]
    shown = [s["kind"] for s in body.get("sources") or []]
    assert shown == ["ServiceAccount"] * sum(s.kind == "ServiceAccount" for s in sources)
    if older == V3 and not shown:
        assert body["sources"] == []  # the v1alpha3 CRD requires the field, not items
    assert convert_document(down, V4) == original


@pytest.mark.parametrize("older", [V1, V2, V3])
def test_an_identity_binding_destination_is_still_refused(older: str) -> None:
    target = _tt((TCP,)).model_copy(update={"destination": IB})
    with pytest.raises(ConversionError) as info:
        convert_document(registry.render(target, V4), older)
    (d,) = info.value.diagnostics
    assert d.code == "SMI4002"
    assert d.message.startswith("destination is an IdentityBinding")

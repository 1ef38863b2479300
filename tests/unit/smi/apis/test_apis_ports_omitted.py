"""TCPRoute/UDPRoute v1alpha4 `spec: {}` and `spec: {matches: {}}` mean every port, as an
omitted `ports` does in the spec: the hub holds them as `ports: []` under a `matches` block,
so converting to v1alpha3 gives its empty `spec`, and back the form the CRD accepts. An object
without `spec` stays without one in every version."""

from __future__ import annotations

from typing import Any

import pytest

from smi.apis import registry
from smi.apis.meta import LOSSY_ANNOTATION
from smi.apis.specs import hub
from smi.conversion import convert_document

V3, V4 = "specs.smi-spec.io/v1alpha3", "specs.smi-spec.io/v1alpha4"
META = {"name": "db", "namespace": "shop"}


def route(version: str, kind: str = "TCPRoute", **body: Any) -> dict[str, Any]:
    return {"apiVersion": version, "kind": kind, "metadata": META, **body}


@pytest.mark.parametrize("spec", [{}, {"matches": {}}, {"matches": {"ports": None}}])
def test_v1alpha4_without_ports_converts_to_v1alpha3_spec_and_back(spec: dict[str, Any]) -> None:
    wire = route(V4, spec=spec)
    assert registry.parse(wire) == registry.parse(route(V4, spec={"matches": {"ports": []}}))
    down = convert_document(wire, V3)
    assert down == route(V3, spec={})
    up = convert_document(down, V4)
    assert up == route(V4, spec={"matches": {"ports": []}})


def test_no_spec_stays_no_spec_both_ways() -> None:
    assert convert_document(route(V4), V3) == route(V3)
    assert convert_document(route(V3), V4) == route(V4)
    assert registry.parse(route(V4)) == hub.TCPRoute(
        metadata=registry.parse(route(V4)).metadata, has_matches=False
    )


@pytest.mark.parametrize("spec", [{}, {"matches": {}}])
def test_udp_route_without_ports_is_every_port(spec: dict[str, Any]) -> None:
    parsed = registry.parse(route(V4, "UDPRoute", spec=spec))
    assert (parsed.ports, parsed.has_matches) == ((), True)
    rendered = registry.render(parsed, V4)
    assert rendered["spec"] == {"matches": {"ports": []}}
    assert LOSSY_ANNOTATION not in rendered["metadata"].get("annotations", {})


def test_the_wire_schema_still_requires_ports_as_the_crd_does() -> None:
    """The form to write stays the CRD's (the chart's CRD test compares the two)."""
    entry = registry.lookup(V4, "TCPRoute")
    assert entry is not None
    defs = entry.wire.model_json_schema(by_alias=True)["$defs"]
    assert defs["PortSpec"]["required"] == ["matches"]
    assert defs["PortMatches"]["required"] == ["ports"]

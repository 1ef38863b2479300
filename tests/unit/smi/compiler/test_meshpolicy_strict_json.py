"""A MeshPolicy document is read only as the types its writer gives, so a malformed one is
refused (the proxy keeps its last good policy) instead of being coerced into another policy:
`"methods": "GET"` had been read as the methods G, E and T, `"sources": "spiffe://..."` as one
source per character, and `"tcpPorts": ""` as no ports, which means all ports (a widening)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from smi.compiler.ir import AuthzRule, Endpoint, HttpMatch, MeshPolicy, Service, Split, SplitBackend
from smi.compiler.ir.model import MeshPolicyFormatError

DB = "spiffe://cluster.local/ns/shop/sa/db"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


def good() -> dict[str, Any]:
    match = HttpMatch(origin="shop/HTTPRouteGroup/r#m", methods=("GET",), headers=(("x", "y"),))
    policy = MeshPolicy(
        destinations={
            DB: (AuthzRule(origin="shop/TrafficTarget/db", sources=(WEB,), tcp_ports=(5432,)),),
            WEB: (AuthzRule(origin="shop/TrafficTarget/web", sources=(DB,), http=(match,)),),
        },
        services={"shop/db": Service(ports=(5432,), endpoints=(Endpoint("10.0.0.1", 15006, DB),))},
        splits={
            "shop/web": Split(origin="shop/TrafficSplit/web", backends=(SplitBackend("shop/a", 1),))
        },
    )
    doc: dict[str, Any] = json.loads(policy.to_json())
    return doc


def test_a_written_policy_reads_back_equal() -> None:
    doc = good()
    assert MeshPolicy.from_dict(doc).to_dict() == doc


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


BROKEN = [
    (["destinations", DB, 0, "tcpPorts"], "", f"destinations[{DB}][0].tcpPorts: must be a list"),
    (["destinations", DB, 0, "tcpPorts"], {}, "tcpPorts: must be a list"),
    (["destinations", DB, 0, "tcpPorts"], ["5432"], "tcpPorts[0]: must be a port"),
    (["destinations", DB, 0, "tcpPorts"], [True], "tcpPorts[0]: must be a port"),
    (["destinations", DB, 0, "tcpPorts"], [70000], "tcpPorts[0]: must be a port"),
    (["destinations", DB, 0, "udpPorts"], "53", "udpPorts: must be a list"),
    (["destinations", DB, 0, "ports"], "8080", "ports: must be a list"),
    (["destinations", DB, 0, "sources"], WEB, "sources: must be a list"),
    (["destinations", DB, 0, "sources"], [7], "sources[0]: must be a string"),
    (["destinations", DB, 0, "origin"], None, "origin: must be a string"),
    (["destinations", WEB, 0, "http", 0, "methods"], "GET", "http[0].methods: must be a list"),
    (["destinations", WEB, 0, "http", 0, "headers"], [["x"]], "headers[0]: must be a [name"),
    (["destinations", WEB, 0, "http", 0, "pathRegex"], 5, "pathRegex: must be a string"),
    (["destinations", DB], {}, f"destinations[{DB}]: must be a list"),
    (["services", "shop/db", "endpoints", 0, "port"], "15006", "endpoints[0].port: must be"),
    (["services", "shop/db", "ports"], 5432, "services[shop/db].ports: must be a list"),
    (["splits", "shop/web", "backends", 0, "weight"], "1", "weight: must be a whole number"),
    (["splits", "shop/web", "backends", 0, "weight"], -1, "weight: must be a whole number >= 0"),
    (["splits", "shop/web", "backends"], {}, "backends: must be a list"),
    (["revision"], "3", "revision: must be a whole number"),
    (["trustDomain"], ["x"], "trustDomain: must be a string"),
    (["services"], [], "services: must be an object"),
]


@pytest.mark.parametrize(("path", "value", "message"), BROKEN, ids=[b[2] for b in BROKEN])
def test_a_value_of_the_wrong_type_is_refused_naming_where(
    path: list[Any], value: Any, message: str
) -> None:
    with pytest.raises(MeshPolicyFormatError, match=re.escape(message)):
        MeshPolicy.from_dict(_set(good(), path, value))


@pytest.mark.parametrize("value", [-1, -5, 2**63, 10**30])
def test_a_revision_out_of_int64_or_negative_is_refused(value: int) -> None:
    """-1 was installed and shown as `policy_revision -1`, what /metrics says before any
    policy; `smictl compile --revision` refuses the same numbers (SMI6003)."""
    doc = good()
    doc["revision"] = value
    with pytest.raises(MeshPolicyFormatError, match="revision: must be a whole number from 0 to"):
        MeshPolicy.from_dict(doc)

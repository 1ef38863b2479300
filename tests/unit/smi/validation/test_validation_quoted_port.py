"""access v1alpha1 `destination.port: "9090"`: early SDKs wrote the port as a string (SPEC.md
§2.2), so v1alpha1 reads a port number in quotes as that number and warns that the CRD types
it as a number (SMI2410); any other string, and a string in any later version, stays an error.
"""

from __future__ import annotations

import pytest
from validation_helpers import findings, run_checks

from smi.apis import registry
from smi.loading import load_text

V1 = """\
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {{name: tt, namespace: shop}}
destination: {{kind: ServiceAccount, name: api, namespace: shop, port: {port}}}
specs: [{{kind: TCPRoute, name: tcp}}]
sources: [{{kind: ServiceAccount, name: web, namespace: shop}}]
---
apiVersion: specs.smi-spec.io/v1alpha2
kind: TCPRoute
metadata: {{name: tcp, namespace: shop}}
"""
V2 = """\
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: tt, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop, port: "9090"}
  rules: [{kind: TCPRoute, name: tcp}]
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
"""


def test_a_port_number_in_quotes_is_read_as_the_number_with_a_warning() -> None:
    text = V1.format(port='"9090"')
    [d] = run_checks(text)
    assert (d.code, d.path, d.severity, d.line) == ("SMI2410", "destination.port", "warning", 4)
    assert d.message == (
        "port '9090' is read as 9090, but the CRD types destination.port as a number; write 9090"
    )
    target = load_text(text, filename="t.yaml").resources[0].obj
    assert target.destination.port == 9090
    converted = registry.render(target, "access.smi-spec.io/v1alpha2")
    assert converted["spec"]["destination"]["port"] == 9090


def test_a_number_gets_no_warning() -> None:
    assert run_checks(V1.format(port="9090")) == []


def test_a_quoted_port_out_of_range_is_the_range_error() -> None:
    assert findings(run_checks(V1.format(port='"99999"'))) == [
        ("SMI2301", "destination.port"),
        ("SMI2410", "destination.port"),
    ]


@pytest.mark.parametrize(
    ("port", "shown"),
    [
        ('"http"', "'http'"),
        ('"90a"', "'90a'"),
        ('" 9090"', "' 9090'"),
        ('"+9090"', "'+9090'"),
        ('"-1"', "'-1'"),
        ('""', "''"),
        ('"\\u0669"', "'\\u0669'"),  # ARABIC-INDIC DIGIT NINE: a digit, not an ASCII one
        ('"12345678901"', "'12345678901'"),
    ],
)
def test_other_strings_are_refused(port: str, shown: str) -> None:
    [d] = run_checks(V1.format(port=port))
    assert (d.code, d.path) == ("SMI2003", "destination.port")
    assert d.message == f"must be an integer or a port number in quotes, not {shown}"


def test_later_versions_still_refuse_a_string() -> None:
    [d] = run_checks(V2)
    assert (d.code, d.path, d.message) == (
        "SMI2003",
        "spec.destination.port",
        "must be an integer, not a string",
    )

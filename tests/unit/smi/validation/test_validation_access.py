"""Per-object checks of TrafficTarget and IdentityBinding (SMI24xx), with wire paths per
version: flat `specs[0]` in access v1alpha1, `spec.rules[0]` later."""

from __future__ import annotations

from validation_helpers import findings, run_checks

ROUTES = """\
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec:
  matches:
  - {name: all, pathRegex: /.*}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: shop}
spec: {matches: {ports: []}}
"""


def target(body: str, version: str = "v1alpha3") -> str:
    return (
        f"apiVersion: access.smi-spec.io/{version}\nkind: TrafficTarget\n"
        f"metadata: {{name: tt, namespace: shop}}\n{body}\n{ROUTES}"
    )


GOOD_SPEC = """\
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: routes, matches: [all]}
  sources:
  - {kind: ServiceAccount, name: web, namespace: shop}
"""


def test_a_complete_target_has_no_findings() -> None:
    assert run_checks(target(GOOD_SPEC)) == []


def test_destination_namespace_must_equal_the_targets() -> None:
    body = GOOD_SPEC.replace("name: api, namespace: shop", "name: api, namespace: bank")
    [d] = run_checks(target(body))
    assert (d.code, d.path, d.line, d.severity) == (
        "SMI2401",
        "spec.destination.namespace",
        5,
        "error",
    )
    assert (
        d.message
        == "destination namespace 'bank' differs from the TrafficTarget's namespace 'shop'"
    )


def test_omitted_destination_namespace_defaults_to_the_targets() -> None:
    body = GOOD_SPEC.replace("name: api, namespace: shop", "name: api")
    assert run_checks(target(body)) == []


def test_rules_and_sources_are_required_in_every_version() -> None:
    flat = "destination: {kind: ServiceAccount, name: api}\nspecs: []\nsources: []"
    assert findings(run_checks(target(flat, "v1alpha1"))) == [
        ("SMI2402", "specs"),
        ("SMI2403", "sources"),
    ]
    spec = "spec:\n  destination: {kind: ServiceAccount, name: api}"
    assert findings(run_checks(target(spec, "v1alpha2"))) == [
        ("SMI2402", "spec.rules"),
        ("SMI2403", "spec.sources"),
    ]


def test_rule_kinds_follow_the_version() -> None:
    body = GOOD_SPEC.replace(
        "kind: HTTPRouteGroup, name: routes, matches: [all]", "kind: UDPRoute, name: udp"
    )
    assert findings(run_checks(target(body, "v1alpha2")))[0] == ("SMI2405", "spec.rules[0].kind")
    assert "SMI2405" not in {d.code for d in run_checks(target(body, "v1alpha3"))}


def test_subject_kinds_and_groups() -> None:
    body = GOOD_SPEC.replace("kind: ServiceAccount, name: web", "kind: User, name: web")
    assert findings(run_checks(target(body))) == [("SMI2404", "spec.sources[0].kind")]
    bound = GOOD_SPEC.replace(
        "kind: ServiceAccount, name: web, namespace: shop",
        "kind: IdentityBinding, group: rbac.authorization.k8s.io, name: web, namespace: shop",
    )
    assert findings(run_checks(target(bound, "v1alpha3"))) == [("SMI2001", "spec.sources[0].group")]
    unbound = bound.replace("group: rbac.authorization.k8s.io, ", "")
    assert findings(run_checks(target(unbound, "v1alpha3"))) == [
        ("SMI2404", "spec.sources[0].kind")
    ]
    assert findings(run_checks(target(bound, "v1alpha4")))[0] == (
        "SMI2404",
        "spec.sources[0].group",
    )


def test_sources_without_namespace_warn() -> None:
    body = GOOD_SPEC.replace("name: web, namespace: shop", "name: web")
    [d] = run_checks(target(body))
    assert (d.code, d.path, d.severity) == ("SMI2406", "spec.sources[0].namespace", "warning")


def test_matches_on_tcp_rules_and_duplicates_warn() -> None:
    body = GOOD_SPEC.replace(
        "- {kind: HTTPRouteGroup, name: routes, matches: [all]}",
        "- {kind: TCPRoute, name: tcp, matches: [x]}\n  - {kind: HTTPRouteGroup, name: routes,"
        " matches: [all, all]}\n  - {kind: HTTPRouteGroup, name: routes, matches: [all, all]}",
    )
    found = [(d.code, d.path, d.severity) for d in run_checks(target(body))]
    assert found == [
        ("SMI2407", "spec.rules[0].matches", "warning"),
        ("SMI2007", "spec.rules[1].matches[1]", "warning"),
        ("SMI2007", "spec.rules[2].matches[1]", "warning"),
        ("SMI2007", "spec.rules[2]", "warning"),
    ]


def test_names_must_be_dns_1123() -> None:
    body = GOOD_SPEC.replace("name: web,", "name: Web_App,").replace("name: routes,", "name: R,")
    assert findings(run_checks(target(body))) == [
        ("SMI2006", "spec.rules[0].name"),
        ("SMI2006", "spec.sources[0].name"),
        ("SMI3001", "spec.rules[0].name"),
    ]


def test_v1alpha1_destination_port_range() -> None:
    flat = (
        "destination: {kind: ServiceAccount, name: api, port: 70000}\n"
        "specs: [{kind: TCPRoute, name: tcp}]\nsources: [{kind: ServiceAccount, name: w, "
        "namespace: shop}]"
    )
    assert findings(run_checks(target(flat, "v1alpha1"))) == [("SMI2301", "destination.port")]


def test_identity_binding_schemes() -> None:
    head = "apiVersion: access.smi-spec.io/v1alpha4\nkind: IdentityBinding\nmetadata: {name: b}\n"
    both = (
        head
        + "spec:\n  schemes:\n"
        + "    podLabelSelector: {matchLabels: {app: a}}\n    serviceAccount: a\n"
    )
    none = head + "spec:\n  schemes: {}\n"
    one = head + "spec:\n  schemes:\n    spiffeIdentities: [cluster.local/ns/default/sa/a]\n"
    assert findings(run_checks(both)) == [
        ("SMI2408", "spec.schemes"),
        ("SMI2411", "spec.schemes.podLabelSelector"),  # which one to keep: not this
    ]
    assert findings(run_checks(none)) == [("SMI2408", "spec.schemes")]
    assert run_checks(one) == []

"""A diagnostic about an entry its version cannot show, which the lossy-fields annotation
restores (a UDPRoute rule of access v1alpha1, the `matches` of a split v1alpha2), names the
annotation, where the writer can find it: it named `specs[1].name` in a manifest with one
spec, and `spec.matches[0].name` in a version without `matches` (README: each problem has
"its path in the layout of the version you wrote")."""

from __future__ import annotations

import json
from pathlib import Path

from smi.cli import main

ANNOTATION = 'metadata.annotations["smictl.io/lossy-fields"]'
# What `convert` writes there (access v1alpha3 -> v1alpha1; split v1alpha4 -> v1alpha2).
RULES = json.dumps(
    {
        "rules": {
            "value": [
                {"kind": "TCPRoute", "matches": None, "name": "t"},
                {"kind": "UDPRoute", "matches": None, "name": "u"},
            ],
            "was": "7cf69d9b1bc73c42",
        }
    },
    separators=(",", ":"),
)
MATCHES = json.dumps(
    {
        "matches": {
            "value": [{"api_group": None, "kind": "HTTPRouteGroup", "name": "canary"}],
            "was": "74234e98afe7498f",
        }
    },
    separators=(",", ":"),
)

TARGET_TEMPLATE = """\
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata:
  name: tt
  namespace: ns1
  annotations:
    smictl.io/lossy-fields: '{RULES}'
destination:
  kind: ServiceAccount
  name: api
  namespace: ns1
specs:
- kind: TCPRoute
  name: t
sources:
- kind: ServiceAccount
  name: web
  namespace: ns1
"""

SPLIT_TEMPLATE = """\
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: s
  namespace: ns1
  annotations:
    smictl.io/lossy-fields: '{MATCHES}'
spec:
  service: root
  backends:
  - service: a
    weight: 90
  - service: b
    weight: 10
"""


TARGET = TARGET_TEMPLATE.replace("{RULES}", RULES)
SPLIT = SPLIT_TEMPLATE.replace("{MATCHES}", MATCHES)


def _validate(tmp_path: Path, text: str, capsys: object) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    main(["validate", "-f", str(path)])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    return [line.removeprefix(f"{path}:") for line in out.splitlines() if "(SMI3001)" in line]


def test_a_hidden_rule_is_named_by_the_annotation(tmp_path: Path, capsys: object) -> None:
    assert _validate(tmp_path, TARGET, capsys) == [
        f"7: warning: {ANNOTATION}: UDPRoute ns1/u is not in the set; until it exists this "
        "rule allows nothing (SMI3001)",
        "14: warning: specs[0].name: TCPRoute ns1/t is not in the set; until it exists this "
        "rule allows nothing (SMI3001)",
    ]


def test_hidden_split_matches_are_named_by_the_annotation(tmp_path: Path, capsys: object) -> None:
    assert _validate(tmp_path, SPLIT, capsys) == [
        f"7: warning: {ANNOTATION}: HTTPRouteGroup ns1/canary is not in the set; until it "
        "exists no request matches this split (SMI3001)"
    ]


def test_a_required_field_left_out_keeps_its_path(tmp_path: Path, capsys: object) -> None:
    """Only a field the annotation holds is taken for restored: `sources` missing is not."""
    path = tmp_path / "m.yaml"
    path.write_text(TARGET.split("sources:")[0])
    assert main(["validate", "-f", str(path)]) == 1
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert ": sources: " in out and ANNOTATION + ": sources" not in out


def test_hidden_grants_are_named_as_hidden_restrictions_are(tmp_path: Path, capsys: object) -> None:
    """SMI4005 named what the annotation restores that only narrows; what it restores that
    grants (a UDPRoute rule, an IdentityBinding source) passed without a word, though that is
    what a reviewer of the manifest most needs to see."""
    path = tmp_path / "m.yaml"
    path.write_text(TARGET)
    main(["validate", "-f", str(path)])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert (
        f"{path}:7: warning: {ANNOTATION}: restores UDPRoute rule ns1/u, which "
        "access.smi-spec.io/v1alpha1 cannot show: smictl grants it, and deleting the "
        "annotation drops it (SMI4006)"
    ) in out.splitlines()


def test_hidden_split_matches_are_named_as_hidden_restrictions(
    tmp_path: Path, capsys: object
) -> None:
    """A split v1alpha2 whose annotation restores `matches` splits only the requests they
    match, yet validate said "0 errors, 0 warnings": named as a match's hidden headers are."""
    path = tmp_path / "m.yaml"
    group = (
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: canary, namespace: ns1}\n"
        "spec:\n  matches:\n  - {name: ff, headers: [{user-agent: '.*Firefox.*'}]}\n"
    )
    path.write_text(SPLIT + "---\n" + group)
    assert main(["validate", "-f", str(path)]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.splitlines() == [
        f"{path}:7: warning: {ANNOTATION}: restores matches [HTTPRouteGroup canary] (only the "
        "requests they match are split), which split.smi-spec.io/v1alpha2 cannot show: smictl "
        "enforces it, and deleting the annotation drops it (SMI4005)"
    ]


# What `convert` writes for an access v1alpha3 TrafficTarget whose first rule is a UDPRoute
# rule, converted to v1alpha2: the manifest's rules[0] is the hub's rules[1].
UDP_FIRST = json.dumps(
    {
        "rules": {
            "value": [
                {"kind": "UDPRoute", "matches": None, "name": "u"},
                {"kind": "HTTPRouteGroup", "matches": ["missing"], "name": "g"},
                {"kind": "HTTPRouteGroup", "matches": [], "name": "g"},
                {"kind": "TCPRoute", "matches": None, "name": "t"},
            ],
            "was": "65c2708ef1238277",
        }
    },
    separators=(",", ":"),
)
UDP_FIRST_TARGET = f"""\
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata:
  name: tt
  namespace: ns1
  annotations:
    smictl.io/lossy-fields: '{UDP_FIRST}'
spec:
  destination:
    kind: ServiceAccount
    name: api
    namespace: ns1
  rules:
  - kind: HTTPRouteGroup
    name: g
    matches:
    - missing
  - kind: HTTPRouteGroup
    name: g
    matches: []
  - kind: TCPRoute
    name: t
  sources:
  - kind: ServiceAccount
    name: web
    namespace: ns1
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: g, namespace: ns1}}
spec:
  matches:
  - {{name: ok, methods: [GET]}}
"""


def test_rule_warnings_after_a_hidden_rule_name_the_rule_as_written(
    tmp_path: Path, capsys: object
) -> None:
    """The cross-resource checks indexed rules as the hub holds them, hidden UDPRoute rule
    first: `spec.rules[0].name` named the hidden rule u at the line of the rule g, and the
    TCPRoute rule t, written third, was put on the annotation."""
    path = tmp_path / "m.yaml"
    path.write_text(UDP_FIRST_TARGET)
    main(["validate", "-f", str(path)])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    found = [
        line.removeprefix(f"{path}:").split(" (it has", 1)[0].split(";", 1)[0]
        for line in out.splitlines()
        if line.endswith(("(SMI3001)", "(SMI3002)", "(SMI3010)"))
    ]
    assert found == [
        f"7: warning: {ANNOTATION}: UDPRoute ns1/u is not in the set",
        "17: warning: spec.rules[0].matches[0]: HTTPRouteGroup ns1/g has no match 'missing'",
        "20: warning: spec.rules[1].matches: `matches: []` allows every match of "
        "HTTPRouteGroup ns1/g, as leaving `matches` out does",
        "22: warning: spec.rules[2].name: TCPRoute ns1/t is not in the set",
    ]


# What `convert` writes for an access v1alpha4 TrafficTarget whose first source is an
# IdentityBinding, converted to v1alpha3.
BINDING_FIRST = json.dumps(
    {
        "sources": {
            "value": [
                {
                    "group": "access.smi-spec.io",
                    "kind": "IdentityBinding",
                    "name": "ib",
                    "namespace": "shop",
                    "port": None,
                },
                {
                    "group": "",
                    "kind": "ServiceAccount",
                    "name": "web",
                    "namespace": "",
                    "port": None,
                },
                {
                    "group": "",
                    "kind": "ServiceAccount",
                    "name": "web2",
                    "namespace": "other",
                    "port": None,
                },
            ],
            "was": "3763b297f34131ce",
        }
    },
    separators=(",", ":"),
)
BINDING_FIRST_TARGET = f"""\
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata:
  name: ibf
  namespace: shop
  annotations:
    smictl.io/lossy-fields: '{BINDING_FIRST}'
spec:
  destination:
    kind: ServiceAccount
    name: api
    namespace: shop
  rules:
  - kind: TCPRoute
    name: tcp
  sources:
  - kind: ServiceAccount
    name: web
  - kind: ServiceAccount
    name: web2
    namespace: other
"""


def test_a_field_left_out_of_a_written_source_keeps_its_path(
    tmp_path: Path, capsys: object
) -> None:
    """A source written without `namespace` (SMI2406) is no hidden entry: its warning moved to
    the annotation whenever the annotation restored hidden sources, as if the namespace were
    one of them."""
    path = tmp_path / "m.yaml"
    path.write_text(BINDING_FIRST_TARGET)
    main(["validate", "-f", str(path)])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert [line for line in out.splitlines() if line.endswith("(SMI2406)")] == [
        f"{path}:17: warning: spec.sources[0].namespace: source without a namespace means the "
        "TrafficTarget's namespace 'shop'; write it explicitly (SMI2406)"
    ]
    assert (
        f"{path}:7: warning: {ANNOTATION}: restores IdentityBinding source shop/ib, which "
        "access.smi-spec.io/v1alpha3 cannot show: smictl grants it, and deleting the annotation "
        "drops it (SMI4006)"
    ) in out.splitlines()

"""Generate the SMI CustomResourceDefinitions in `charts/smictl/crds/`.

The five CRDs hold every released SMI version, all served, one storage version each, converted
by the control plane's `/convert` webhook. The schemas start from smi-sdk-go `main` (the
published apiextensions/v1 CRDs) and differ where our wire models accept more or less:

- the flat layouts of access v1alpha1 (root `destination`/`specs`/`sources`) and specs
  v1alpha1/v1alpha2 (root `matches`) are described, so those versions can be served at all;
- TCPRoute v1alpha1/v1alpha2 have no fields and v1alpha3 an empty `spec`, as the spec says;
- `headers` accepts both wire forms (a list of single-key maps, and a map), so the node is
  `x-kubernetes-preserve-unknown-fields` without a type; the admission webhook checks its shape;
- TrafficSplit v1alpha1 weights are quantities (int-or-string with the quantity pattern),
  v1alpha2+ weights are non-negative integers (the SDK said `number`; the spec says whole numbers);
- ports are integers 1-65535; a TCPRoute/UDPRoute without `spec` means every port;
- `spec` is required wherever our wire models require it (the SDK left the root open).

A unit test checks every schema against our wire models (`smi.apis.registry`): the same
properties and the same required fields at every level.

Run `python charts/tools/gen_crds.py` after changing this file; a unit test fails when the
committed CRDs differ from what this file produces.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = Path(__file__).resolve().parent.parent / "smictl" / "crds"

# Where the conversion webhook is before the chart's certs Job patches it to the release's
# Service (CRDs in crds/ are not templated by Helm). Matches `helm install smictl
# charts/smictl -n smictl-system`, so the common install needs no patch.
PLACEHOLDER_NAMESPACE = "smictl-system"
PLACEHOLDER_SERVICE = "smictl"
PLACEHOLDER_CERTIFICATE = "smictl-webhook"
CONVERT_PATH = "/convert"

HTTP_METHODS = ["*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
# Kubernetes resource.Quantity, as controller-gen writes it, without the sign: weights are >= 0.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Schema = dict[str, Any]


def _string(description: str) -> Schema:
    return {"type": "string", "description": description}


def _obj(description: str, properties: Schema, required: list[str] | None = None) -> Schema:
    node: Schema = {"type": "object", "description": description}
    if required:
        node["required"] = required
    node["properties"] = properties
    return node


def _array(description: str, items: Schema) -> Schema:
    return {"type": "array", "description": description, "items": items}


def _port(description: str) -> Schema:
    return {"type": "integer", "description": description, "minimum": 1, "maximum": 65535}


# --- access.smi-spec.io -----------------------------------------------------------------------


def _subject(role: str, *, with_port: bool) -> Schema:
    props: Schema = {
        "kind": _string(f"Kind of the {role} identity (ServiceAccount)."),
        "name": _string(f"Name of the {role} identity."),
        "namespace": _string(
            f"Namespace of the {role} identity; empty means the TrafficTarget's namespace."
        ),
    }
    if with_port:
        props["port"] = _port("Port of the destination; absent means every port.")
    return _obj(f"A {role} identity.", props, ["kind", "name"])


def _access_rule(kinds: list[str]) -> Schema:
    return _obj(
        "A reference to a traffic spec in the TrafficTarget's namespace.",
        {
            "kind": {**_string("Kind of the traffic spec."), "enum": kinds},
            "name": _string("Name of the traffic spec."),
            "matches": _array(
                "Names of the HTTPRouteGroup matches this rule allows; absent means all.",
                _string("Name of a match of the referenced HTTPRouteGroup."),
            ),
        },
        ["kind", "name"],
    )


def _traffic_target_fields(*, rules_key: str, kinds: list[str], with_port: bool) -> Schema:
    return {
        "destination": _subject("destination", with_port=with_port),
        rules_key: _array("Traffic specs the sources may use.", _access_rule(kinds)),
        "sources": _array(
            "Identities allowed to call the destination.", _subject("source", with_port=False)
        ),
    }


def traffic_target_versions() -> list[Schema]:
    v1 = _traffic_target_fields(
        rules_key="specs", kinds=["HTTPRouteGroup", "TCPRoute"], with_port=True
    )
    v2 = _traffic_target_fields(
        rules_key="rules", kinds=["HTTPRouteGroup", "TCPRoute"], with_port=True
    )
    v3 = _traffic_target_fields(
        rules_key="rules", kinds=["HTTPRouteGroup", "TCPRoute", "UDPRoute"], with_port=False
    )
    desc = "TrafficTarget allows sources to call a destination on the listed traffic specs."
    flat: Schema = {"type": "object", "description": desc, "required": ["destination"]}
    flat["properties"] = v1
    return [
        _version("v1alpha1", flat, storage=False, columns=_dest_column(".destination.name")),
        _version(
            "v1alpha2",
            _root(desc, _obj("The traffic target.", v2, ["destination"])),
            storage=False,
            columns=_dest_column(".spec.destination.name"),
        ),
        _version(
            "v1alpha3",
            _root(desc, _obj("The traffic target.", v3, ["destination", "rules", "sources"])),
            storage=True,
            columns=_dest_column(".spec.destination.name"),
        ),
    ]


def _dest_column(path: str) -> list[Schema]:
    return [
        {
            "name": "Destination",
            "type": "string",
            "description": "The destination identity.",
            "jsonPath": path,
        }
    ]


# --- specs.smi-spec.io ------------------------------------------------------------------------


def _http_match(*, with_headers: bool) -> Schema:
    props: Schema = {
        "name": _string("Name of the match, unique in its group; rules refer to it."),
        "pathRegex": _string(
            "RE2 regex matched against the request path, anchored at the start only."
        ),
        "methods": _array(
            "HTTP methods; absent, empty or * means every method.",
            {**_string("An HTTP method."), "enum": HTTP_METHODS},
        ),
    }
    if with_headers:
        # Both wire forms are in use: the SDK's list of single-key maps and the spec docs' map
        # (smi-spec PR #237). A structural schema cannot say "array or object", so the node is
        # left untyped and the validating webhook checks it (SMI codes, one line per problem).
        props["headers"] = {
            "description": (
                "Header conditions, all of which must hold: a map of header name to value"
                " regex, or a list of single-key maps. Checked by the admission webhook."
            ),
            "x-kubernetes-preserve-unknown-fields": True,
        }
    return _obj("One named HTTP match.", props, ["name"])


def _http_matches(*, with_headers: bool) -> Schema:
    return _array(
        "Named matches; a request matching any of them matches the group.",
        _http_match(with_headers=with_headers),
    )


def http_route_group_versions() -> list[Schema]:
    desc = "HTTPRouteGroup names HTTP requests by path, method and headers."
    return [
        _version("v1alpha1", _flat(desc, _http_matches(with_headers=False)), storage=False),
        _version("v1alpha2", _flat(desc, _http_matches(with_headers=True)), storage=False),
        _version(
            "v1alpha3", _root(desc, _hrg_spec(_http_matches(with_headers=True))), storage=False
        ),
        _version(
            "v1alpha4", _root(desc, _hrg_spec(_http_matches(with_headers=True))), storage=True
        ),
    ]


def _flat(description: str, matches: Schema) -> Schema:
    node: Schema = {"type": "object", "description": description, "required": ["matches"]}
    node["properties"] = {"matches": matches}
    return node


def _hrg_spec(matches: Schema) -> Schema:
    return _obj("The route group.", {"matches": matches}, ["matches"])


def _l4_spec(protocol: str) -> Schema:
    ports = _array(
        f"{protocol} ports to allow; empty means every port.", _port(f"A {protocol} port.")
    )
    matches = _obj(f"Match conditions of this {protocol} route.", {"ports": ports}, ["ports"])
    return _obj(
        f"The {protocol} route; no spec at all also means every port.",
        {"matches": matches},
        ["matches"],
    )


def tcp_route_versions() -> list[Schema]:
    desc = "TCPRoute names raw TCP traffic, optionally restricted to ports (v1alpha4)."
    bare: Schema = {"type": "object", "description": desc}
    return [
        _version("v1alpha1", bare, storage=False),
        _version("v1alpha2", bare, storage=False),
        _version(
            "v1alpha3",
            _root(desc, {"type": "object", "description": "Empty."}, spec_required=False),
            storage=False,
        ),
        _version("v1alpha4", _root(desc, _l4_spec("TCP"), spec_required=False), storage=True),
    ]


def udp_route_versions() -> list[Schema]:
    desc = "UDPRoute names UDP traffic, optionally restricted to ports."
    return [_version("v1alpha4", _root(desc, _l4_spec("UDP"), spec_required=False), storage=True)]


# --- split.smi-spec.io ------------------------------------------------------------------------


def _weight(version: str) -> Schema:
    if version == "v1alpha1":
        return {
            "description": "Relative weight as a quantity: 1 = 1000m.",
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "minimum": 0,
            "x-kubernetes-int-or-string": True,
        }
    return {"type": "integer", "description": "Relative weight (a whole number).", "minimum": 0}


def _split_spec(version: str) -> Schema:
    backend = _obj(
        "A backend Service in the TrafficSplit's namespace.",
        {"service": _string("Name of the backend Service."), "weight": _weight(version)},
        ["service", "weight"],
    )
    props: Schema = {
        "service": _string("The root Service that clients address."),
        "backends": _array("The backend Services and their weights.", backend),
    }
    if version in ("v1alpha3", "v1alpha4"):
        props["matches"] = _array(
            "HTTPRouteGroups whose requests are split; absent means every request.",
            _obj(
                "A reference to an HTTPRouteGroup in the TrafficSplit's namespace.",
                {
                    "kind": {**_string("Kind of the match."), "enum": ["HTTPRouteGroup"]},
                    "name": _string("Name of the HTTPRouteGroup."),
                    "apiGroup": _string("API group of the match (specs.smi-spec.io)."),
                },
                ["kind", "name"],
            ),
        )
    return _obj("The traffic split.", props, ["service", "backends"])


def traffic_split_versions() -> list[Schema]:
    desc = "TrafficSplit splits traffic for a root Service across backends by weight."
    column = [
        {
            "name": "Service",
            "type": "string",
            "description": "The apex service of this split.",
            "jsonPath": ".spec.service",
        }
    ]
    return [
        _version(v, _root(desc, _split_spec(v)), storage=v == "v1alpha4", columns=column)
        for v in ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
    ]


# --- CRD assembly -----------------------------------------------------------------------------


def _root(description: str, spec: Schema, *, spec_required: bool = True) -> Schema:
    node: Schema = {"type": "object", "description": description}
    if spec_required:
        node["required"] = ["spec"]
    node["properties"] = {"spec": spec}
    return node


def _version(
    name: str, schema: Schema, *, storage: bool, columns: list[Schema] | None = None
) -> Schema:
    version: Schema = {"name": name, "served": True, "storage": storage}
    if columns:
        version["additionalPrinterColumns"] = columns
    version["schema"] = {"openAPIV3Schema": schema}
    return version


def _conversion() -> Schema:
    return {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {
                "service": {
                    "namespace": PLACEHOLDER_NAMESPACE,
                    "name": PLACEHOLDER_SERVICE,
                    "path": CONVERT_PATH,
                    "port": 443,
                }
            },
        },
    }


def crd(*, group: str, kind: str, plural: str, short: str, versions: list[Schema]) -> Schema:
    """One CustomResourceDefinition; conversion by webhook unless there is one version."""
    multi = len(versions) > 1
    annotations: Schema = {}
    if multi:
        # cert-manager's cainjector fills caBundle from this Certificate (cert-manager mode);
        # the chart's certs Job rewrites the reference to the release's namespace first.
        annotations["cert-manager.io/inject-ca-from"] = (
            f"{PLACEHOLDER_NAMESPACE}/{PLACEHOLDER_CERTIFICATE}"
        )
    spec: Schema = {
        "group": group,
        "scope": "Namespaced",
        "names": {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
            "shortNames": [short],
            "categories": ["smi"],
        },
        "conversion": _conversion() if multi else {"strategy": "None"},
        "versions": versions,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            "labels": {"app.kubernetes.io/part-of": "smictl"},
            **({"annotations": annotations} if annotations else {}),
        },
        "spec": spec,
    }


def all_crds() -> list[Schema]:
    return [
        crd(
            group="access.smi-spec.io",
            kind="TrafficTarget",
            plural="traffictargets",
            short="tt",
            versions=traffic_target_versions(),
        ),
        crd(
            group="specs.smi-spec.io",
            kind="HTTPRouteGroup",
            plural="httproutegroups",
            short="htr",
            versions=http_route_group_versions(),
        ),
        crd(
            group="specs.smi-spec.io",
            kind="TCPRoute",
            plural="tcproutes",
            short="tr",
            versions=tcp_route_versions(),
        ),
        crd(
            group="specs.smi-spec.io",
            kind="UDPRoute",
            plural="udproutes",
            short="ur",
            versions=udp_route_versions(),
        ),
        crd(
            group="split.smi-spec.io",
            kind="TrafficSplit",
            plural="trafficsplits",
            short="ts",
            versions=traffic_split_versions(),
        ),
    ]


HEADER = (
    "# Generated by charts/tools/gen_crds.py: edit that file and re-run it, never this one.\n"
    "# Helm installs crds/ on the first install only and never upgrades or deletes them;\n"
    '# see docs/helm.md ("CRDs").\n'
)


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with indented lists, the way kubectl prints."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: Schema) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def expected_files() -> dict[str, str]:
    """File name in crds/ -> content."""
    return {f"{doc['metadata']['name']}.yaml": render(doc) for doc in all_crds()}


def main() -> int:
    CRD_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in expected_files().items():
        (CRD_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {CRD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

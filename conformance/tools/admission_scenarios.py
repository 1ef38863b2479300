"""Generated scenarios of area `admission`: what the admission chain refuses (and warns about),
with the stable code each answer must carry, in every version that can express the mistake."""

from __future__ import annotations

import copy
from typing import Any

from conformance.tools.cast import (
    ACCESS_COMBOS,
    CATALOG,
    FRONTEND,
    NS,
    SPLIT_COMBOS,
    AccessCombo,
    SplitCombo,
    admit,
    allowed,
    apply,
    everything_group,
    http_rule,
    request,
    sa,
    scenario,
)
from conformance.tools.render import (
    Match,
    Rule,
    Subject,
    http_route_group,
    tcp_route,
    traffic_split,
    traffic_target,
    udp_route,
)


def _tt(combo: AccessCombo, **kw: Any) -> dict[str, Any]:
    kw.setdefault("name", "catalog-access")
    kw.setdefault("namespace", NS)
    kw.setdefault("destination", sa("catalog"))
    kw.setdefault("sources", [sa("frontend")])
    kw.setdefault("rules", [http_rule("everything")])
    return traffic_target(combo.access, **kw)


def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a manifest that holds the fields (flat layouts have none under `spec`)."""
    spec: dict[str, Any] = doc.get("spec", doc)
    return spec


def destination_namespace(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="A TrafficTarget must live in its destination's namespace: one naming "
        "another namespace is refused; one that leaves the namespace out gets its own and "
        "works.",
        capability="admission/traffic-target",
        decisions=["destination-namespace"],
        workloads=[FRONTEND, CATALOG],
        resources={
            "routes": everything_group(combo),
            "elsewhere": _tt(combo, destination=sa("catalog", "ops")),
            "defaulted": _tt(combo, destination=sa("catalog", None)),
        },
        steps=[
            admit("elsewhere", allowed=False, message=r"SMI2401"),
            apply("elsewhere", name="apply is refused too", refused="SMI2401"),
            apply("routes", "defaulted"),
            request("shop/frontend", "catalog", allowed(identity="shop/frontend")),
        ],
    )


def invalid_traffictarget(combo: AccessCombo) -> dict[str, Any]:
    res = {
        "no-rules": _tt(combo, name="no-rules", rules=[]),
        "no-sources": _tt(combo, name="no-sources", sources=[]),
        "user-source": _tt(combo, name="user-source", sources=[Subject("alice", NS, kind="User")]),
    }
    steps = [
        admit("no-rules", allowed=False, message="SMI2402"),
        admit("no-sources", allowed=False, message="SMI2403"),
        admit("user-source", allowed=False, message="SMI2404|SMI2004"),
    ]
    if combo.access in ("v1alpha1", "v1alpha2"):
        res["udp-rule"] = _tt(combo, name="udp-rule", rules=[Rule("UDPRoute", "udp")])
        steps.append(
            admit(
                "udp-rule",
                allowed=False,
                message="SMI2405|SMI2004",
                name=f"UDPRoute rules do not exist in access {combo.access}",
            )
        )
    return scenario(
        description="A TrafficTarget without rules or without sources is refused (and would "
        "never allow anything); subjects are ServiceAccounts; rule kinds are those of the "
        "version.",
        capability="admission/traffic-target",
        decisions=["empty-rules-or-sources"],
        workloads=[],
        resources=res,
        steps=steps,
    )


def _split(combo: SplitCombo, backends: list[tuple[str, Any]], **kw: Any) -> dict[str, Any]:
    kw.setdefault("name", "catalog-rollout")
    kw.setdefault("namespace", NS)
    kw.setdefault("service", "catalog")
    if combo.split == "v1alpha1":
        backends = [(s, str(w)) for s, w in backends]
    return traffic_split(combo.split, backends=backends, **kw)


def two_splits_one_root(combo: SplitCombo) -> dict[str, Any]:
    first = _split(combo, [("catalog-v1", 90), ("catalog-v2", 10)])
    moved = _split(combo, [("catalog-v1", 50), ("catalog-v2", 50)])
    return scenario(
        description="One TrafficSplit per root service per namespace: a second split for the "
        "same root is refused, however the root is spelt; updating the first is fine.",
        capability="admission/traffic-split",
        decisions=["split-one-per-root"],
        workloads=[],
        resources={
            "first": first,
            "moved": moved,
            "second": _split(combo, [("catalog-v3", 1)], name="catalog-canary"),
            "second-dotted": _split(
                combo, [("catalog-v3", 1)], name="catalog-canary", service="catalog.shop"
            ),
            "payments": _split(
                combo, [("payments-v2", 1)], name="payments-rollout", service="payments"
            ),
        },
        steps=[
            apply("first"),
            admit("second", allowed=False, message="SMI3003"),
            admit("second-dotted", allowed=False, message="SMI3003"),
            admit(
                "moved",
                operation="UPDATE",
                old="first",
                allowed=True,
                name="updating the split itself is allowed",
            ),
            admit("payments", allowed=True, name="a split for another root is allowed"),
        ],
    )


def weights(combo: SplitCombo) -> dict[str, Any]:
    zero = ("0", "0m") if combo.split == "v1alpha1" else (0, 0)
    res = {
        "all-zero": _split(combo, [("catalog-v1", zero[0]), ("catalog-v2", zero[1])]),
        "negative": _split(combo, [("catalog-v1", -1), ("catalog-v2", 2)]),
        "no-backends": _split(combo, []),
        "duplicate": _split(combo, [("catalog-v1", 1), ("catalog-v1", 1)]),
        "other-namespace": _split(combo, [("catalog-v1", 1)], service="catalog.ops"),
    }
    steps = [
        admit("all-zero", allowed=False, message="SMI2104"),
        admit("negative", allowed=False, message="SMI2103"),
        admit("no-backends", allowed=False, message="SMI2101"),
        admit("duplicate", allowed=False, message="SMI2105"),
        admit("other-namespace", allowed=False, message="SMI2102"),
    ]
    if combo.split == "v1alpha1":
        res["sub-milli"] = _split(combo, [("catalog-v1", "1u"), ("catalog-v2", "1")])
        steps.append(
            admit(
                "sub-milli",
                allowed=False,
                message="SMI2103",
                name="a quantity finer than milli-units",
            )
        )
    else:
        res["fraction"] = _split(combo, [("catalog-v1", 0.5), ("catalog-v2", 1)])
        steps.append(
            admit(
                "fraction",
                allowed=False,
                message="SMI2103|SMI2003",
                name="weights are whole numbers",
            )
        )
    if combo.has_matches:
        res["tcp-match"] = _split(combo, [("catalog-v1", 1)], matches=["x"])
        res["tcp-match"]["spec"]["matches"][0]["kind"] = "TCPRoute"
        steps.append(admit("tcp-match", allowed=False, message="SMI2107|SMI2004"))
    return scenario(
        description="Weights must be whole numbers >= 0 (v1alpha2+) or quantities of at most "
        "milli precision (v1alpha1), and must not all be zero; backends are unique Services of "
        "the split's own namespace.",
        capability="admission/traffic-split",
        decisions=[
            "split-weight-zero",
            "split-relative-weights",
            "split-backends-same-namespace",
            "split-service-name",
        ],
        workloads=[],
        resources=res,
        steps=steps,
    )


def bad_regex(combo: AccessCombo) -> dict[str, Any]:
    def group(name: str, m: Match) -> dict[str, Any]:
        return http_route_group(combo.specs, name=name, namespace=NS, matches=[m])

    res = {
        "backreference": group("backreference", Match("m", path=r"/(a)\1", methods=("GET",))),
        "lookahead": group("lookahead", Match("m", path="/(?=admin)", methods=("GET",))),
        "unbalanced": group("unbalanced", Match("m", path="/[a-z", methods=("GET",))),
    }
    steps = [
        admit("backreference", allowed=False, message="SMI2204"),
        admit("lookahead", allowed=False, message="SMI2204"),
        admit("unbalanced", allowed=False, message="SMI2204"),
    ]
    if combo.has_headers:
        res["header-lookbehind"] = group(
            "header-lookbehind",
            Match("m", path="/", methods=("GET",), headers=(("user-agent", "(?<!Bot)Agent"),)),
        )
        steps.append(admit("header-lookbehind", allowed=False, message="SMI2204"))
    return scenario(
        description="Path and header regexes must be RE2: back-references, look-arounds and "
        "syntax errors are refused at admission.",
        capability="admission/traffic-specs",
        decisions=["re2-only"],
        workloads=[],
        resources=res,
        steps=steps,
    )


def invalid_routes(combo: AccessCombo) -> dict[str, Any]:
    v = combo.specs
    res: dict[str, dict[str, Any]] = {
        "lowercase-method": http_route_group(
            v, name="m1", namespace=NS, matches=[Match("a", path="/", methods=("get",))]
        ),
        "duplicate-names": http_route_group(
            v,
            name="m2",
            namespace=NS,
            matches=[
                Match("a", path="/a", methods=("GET",)),
                Match("a", path="/b", methods=("GET",)),
            ],
        ),
        "no-matches": http_route_group(v, name="m3", namespace=NS, matches=[]),
    }
    steps = [
        admit("lowercase-method", allowed=False, message="SMI2203|SMI2004"),
        admit("duplicate-names", allowed=False, message="SMI2202"),
        admit("no-matches", allowed=False, message="SMI2201"),
    ]
    if combo.has_headers:
        bad = http_route_group(
            v,
            name="m4",
            namespace=NS,
            matches=[Match("a", path="/", methods=("GET",), headers=(("user-agent", "x"),))],
        )
        _spec(bad)["matches"][0]["headers"] = [{"user-agent": "x", "cookie": "y"}]
        res["two-keys-header"] = bad
        steps.append(
            admit(
                "two-keys-header",
                allowed=False,
                message="SMI2205",
                name="a list-form header entry with two keys",
            )
        )
    if v == "v1alpha4":
        res["port-range"] = tcp_route(v, name="t1", namespace=NS, ports=[70000])
        res["duplicate-port"] = udp_route(v, name="u1", namespace=NS, ports=[53, 53])
        steps += [
            admit("port-range", allowed=False, message="SMI2301"),
            admit("duplicate-port", allowed=False, message="SMI2302"),
        ]
    else:
        udp = udp_route("v1alpha4", name="u1", namespace=NS, ports=[53])
        udp["apiVersion"] = f"specs.smi-spec.io/{v}"
        res["udp-too-early"] = udp
        steps.append(
            admit(
                "udp-too-early",
                allowed=False,
                message="SMI1007",
                name=f"UDPRoute does not exist in specs {v}",
            )
        )
    return scenario(
        description="Route groups: methods from the SMI list in upper case, unique match names, "
        "at least one match, list-form headers with one key per entry; L4 ports 1-65535 and "
        "unique; kinds only in the versions that define them.",
        capability="admission/traffic-specs",
        decisions=["every-version-accepted"],
        workloads=[],
        resources=res,
        steps=steps,
    )


def unknown_fields_access(combo: AccessCombo) -> dict[str, Any]:
    typo = _tt(combo)
    _spec(typo)["sources"][0]["namspace"] = "shop"
    res = {"typo": typo}
    steps = [admit("typo", allowed=False, message=r"(?s)sources\[0\]\.namspace.*SMI2001")]
    if combo.access in ("v1alpha3", "v1alpha4"):
        port = _tt(combo, name="with-port")
        port["spec"]["destination"]["port"] = 8080
        res["removed-port"] = port
        steps.append(
            admit(
                "removed-port",
                allowed=False,
                message=r"(?s)destination\.port.*SMI2001",
                name=f"destination.port was removed in access {combo.access}",
            )
        )
    if combo.access == "v1alpha1":
        nested = _tt(ACCESS_COMBOS[2], name="nested")
        nested["apiVersion"] = "access.smi-spec.io/v1alpha1"
        res["spec-layout"] = nested
        steps.append(
            admit(
                "spec-layout",
                allowed=False,
                message="SMI2005|SMI2001",
                name="access v1alpha1 is flat: `spec` is the wrong layout",
            )
        )
    return scenario(
        description="Unknown fields are refused with their path (Kubernetes would prune them "
        "silently), including fields of another version's layout.",
        capability="admission/schema",
        decisions=["every-version-accepted"],
        workloads=[],
        resources=res,
        steps=steps,
    )


def unknown_fields_specs(combo: AccessCombo) -> dict[str, Any]:
    typo = everything_group(combo)
    _spec(typo)["matches"][0]["pathregex"] = "/x"
    res = {"typo": typo}
    steps = [admit("typo", allowed=False, message=r"(?s)matches\[0\]\.pathregex.*SMI2001")]
    if combo.specs in ("v1alpha3", "v1alpha4"):
        flat = everything_group(combo)
        flat["matches"] = flat.pop("spec")["matches"]
        res["flat-layout"] = flat
        steps.append(
            admit(
                "flat-layout",
                allowed=False,
                message=r"(?s)matches.*SMI200[15]",
                name=f"top-level matches in specs {combo.specs} (flat layout)",
            )
        )
    return scenario(
        description="Unknown fields of route groups are refused with their path, including a "
        "flat `matches` in a version that wants it under `spec`.",
        capability="admission/schema",
        decisions=["every-version-accepted"],
        workloads=[],
        resources=res,
        steps=steps,
    )


def unknown_fields_split(combo: SplitCombo) -> dict[str, Any]:
    typo = _split(combo, [("catalog-v1", 1)])
    typo["spec"]["backends"][0]["namespace"] = "ops"
    res = {"backend-namespace": typo}
    steps = [
        admit(
            "backend-namespace",
            allowed=False,
            message=r"(?s)backends\[0\]\.namespace.*SMI2001",
            name="backends have no namespace field",
        )
    ]
    if not combo.has_matches:
        early = _split(combo, [("catalog-v1", 1)])
        early["spec"]["matches"] = [{"kind": "HTTPRouteGroup", "name": "x"}]
        res["matches-too-early"] = early
        steps.append(
            admit(
                "matches-too-early",
                allowed=False,
                message=r"(?s)spec\.matches.*SMI2001",
                name=f"matches do not exist in split {combo.split}",
            )
        )
    return scenario(
        description="Unknown fields of TrafficSplits are refused with their path.",
        capability="admission/schema",
        decisions=["split-backends-same-namespace", "every-version-accepted"],
        workloads=[],
        resources=res,
        steps=steps,
    )


def warnings() -> dict[str, Any]:
    combo = ACCESS_COMBOS[3]
    loose = http_route_group(
        combo.specs,
        name="loose",
        namespace=NS,
        matches=[Match("api", path="/api", methods=("GET",))],
    )
    anchored = http_route_group(
        combo.specs,
        name="anchored",
        namespace=NS,
        matches=[
            Match("api", path="/api/.*", methods=("GET",)),
            Match("exact", path="/health$", methods=("GET",)),
        ],
    )
    self_split = traffic_split(
        "v1alpha4",
        name="self",
        namespace=NS,
        service="catalog",
        backends=[("catalog", 1), ("catalog-v2", 1)],
    )
    return scenario(
        description="Admission warns without refusing: a pathRegex that is not end-anchored "
        "(`/api` also matches `/apiary`), a split listing its root as a backend.",
        capability="admission/warnings",
        decisions=["path-anchor-warning"],
        workloads=[],
        resources={"loose": loose, "anchored": anchored, "self-split": self_split},
        steps=[
            admit("loose", allowed=True, warning=r"(?s)pathRegex.*SMI2206"),
            {"admit": {"resource": "anchored"}, "expect": {"allowed": True, "no_warnings": True}},
            admit("self-split", allowed=True, warning="SMI2106"),
        ],
    )


def unsupported_versions() -> dict[str, Any]:
    group = http_route_group(
        "v1alpha4", name="draft", namespace=NS, matches=[Match("a", path="/a$", methods=("GET",))]
    )
    group["apiVersion"] = "specs.smi-spec.io/v1alpha5"
    group["spec"] = {"routes": group["spec"].pop("matches")}
    split = traffic_split(
        "v1alpha4", name="draft", namespace=NS, service="catalog", backends=[("catalog-v1", 1)]
    )
    split["apiVersion"] = "split.smi-spec.io/v1alpha5"
    return scenario(
        description="Unreleased draft versions (specs and split v1alpha5) are refused with "
        "SMI1006.",
        capability="admission/versions",
        decisions=["every-version-accepted"],
        workloads=[],
        resources={"specs-draft": group, "split-draft": split},
        steps=[
            admit("specs-draft", allowed=False, message="SMI1006"),
            admit("split-draft", allowed=False, message="SMI1006"),
        ],
        # Filed under the latest served versions: v1alpha5 is not a version smictl serves.
        file_under=("specs.smi-spec.io/v1alpha4", "split.smi-spec.io/v1alpha4"),
    )


def generate() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for combo in ACCESS_COMBOS:
        out[f"admission/destination-namespace.{combo.tag}"] = destination_namespace(combo)
    for combo in {c.access: c for c in ACCESS_COMBOS}.values():
        out[f"admission/invalid-traffictarget.access-{combo.access}"] = invalid_traffictarget(combo)
        out[f"admission/unknown-fields.access-{combo.access}"] = unknown_fields_access(combo)
    for combo in {c.specs: c for c in ACCESS_COMBOS}.values():
        out[f"admission/bad-regex.specs-{combo.specs}"] = bad_regex(combo)
        out[f"admission/invalid-routes.specs-{combo.specs}"] = invalid_routes(combo)
        out[f"admission/unknown-fields.specs-{combo.specs}"] = unknown_fields_specs(combo)
    # These hold TrafficSplits alone, so they depend on the split version only: one file each,
    # although split v1alpha3 is paired with two access/specs versions for traffic.
    for sc in {c.split: c for c in SPLIT_COMBOS}.values():
        out[f"admission/two-splits-one-root.split-{sc.split}"] = two_splits_one_root(sc)
        out[f"admission/invalid-weights.split-{sc.split}"] = weights(sc)
        out[f"admission/unknown-fields.split-{sc.split}"] = unknown_fields_split(sc)
    out["admission/warnings.v0.6.0"] = warnings()
    out["admission/unsupported-versions"] = unsupported_versions()
    return {k: copy.deepcopy(v) for k, v in out.items()}

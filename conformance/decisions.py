"""The semantic decisions of DESIGN.md §3, each with a stable id that scenarios cite.

Every decision must be exercised by at least one scenario (a unit test checks it), and each
entry quotes the sentence of DESIGN.md it stands for, so a reader of a report can look it up.
"""

from __future__ import annotations

DECISIONS: dict[str, str] = {
    # Identity
    "identity-serviceaccount": "A workload's identity is its ServiceAccount: "
    "spiffe://<trust-domain>/ns/<namespace>/sa/<name>",
    "identity-from-mtls-only": "The proxy learns the caller's identity only from the verified "
    "mTLS peer certificate, never from a header.",
    # TrafficTarget
    "default-deny": "Default deny. A destination identity with no TrafficTarget accepts nothing.",
    "traffictargets-union": "TrafficTargets only allow; several for one destination are a union.",
    "sources-and-rules": "Allowed iff the caller's identity is in `sources` and the request "
    "matches at least one rule.",
    "destination-namespace": "`destination.namespace` defaults to the TrafficTarget's namespace "
    "and must equal it.",
    "source-namespace-default": "A source without a namespace means the TrafficTarget's "
    "namespace (admission warns).",
    "rule-without-matches": "An HTTPRouteGroup rule without `matches` covers every match of the "
    "group; with `matches`, only the named ones.",
    "dangling-references": "References may point at objects that do not exist yet: the webhook "
    "warns; `smictl admit --strict` fails; the compiler skips what does not resolve, so a "
    "dangling reference never allows.",
    "tcproute-allows-all-traffic": "A TCPRoute rule allows any traffic (HTTP included) to its "
    "ports; `ports: []` or absent = all ports.",
    "udproute-ports": "A UDPRoute rule allows UDP to its ports.",
    "rule-kinds-union": "Rules of different kinds are a union.",
    "empty-rules-or-sources": "A TrafficTarget with no rules or no sources is invalid "
    "(spec v1alpha3), and never allows anything.",
    "mode-deny": "Modes: `deny` (default, enforce)",
    "mode-audit": "`audit` (enforce nothing, but record every would-deny with the rule set that "
    "would have applied)",
    "mode-permissive": "`permissive` (allow all, for migration)",
    # HTTPRouteGroup matching
    "match-and-or": "Within one match: path AND method AND every header. Across matches: OR.",
    "path-anchored-at-start": "`pathRegex` is matched against the request path without its "
    "query string, anchored at the start only: `/api` matches `/api` and `/apiary`.",
    "path-anchor-warning": "Admission warns about a pathRegex without a trailing `$`, `/` or `.*`.",
    "missing-path-or-method": "Missing `pathRegex` = any path; missing or empty `methods`, or "
    "`*`, = any method.",
    "header-forms": "`headers` accept both wire forms (a list of single-key maps, and a map); "
    "header names are case-insensitive; values are regexes matched against the whole value.",
    "re2-only": "Regexes must be RE2 syntax (no back-references or look-arounds), checked at "
    "admission, and matching must stay linear in the input.",
    # TrafficSplit
    "split-relative-weights": "Weights are relative shares, not percentages. v1alpha1 weights "
    "are Kubernetes quantities and are normalised to milli-units.",
    "split-weight-zero": "Weight 0 = no traffic. Sum must be > 0.",
    "split-one-per-root": "One TrafficSplit per root service per namespace; a second is "
    "rejected at admission.",
    "split-service-name": "`spec.service` may be `name` or "
    "`name.<same-namespace>[.svc[.cluster.local]]`.",
    "split-backends-same-namespace": "Backends are Services in the TrafficSplit's namespace.",
    "split-matches": "With `matches` (v1alpha3+), only requests matching the referenced "
    "HTTPRouteGroups are split; the rest go to the root service.",
    "split-grants-no-access": "A split grants no access: in deny mode a TrafficTarget is still "
    "needed.",
    # Versions
    "every-version-accepted": "Every released version is accepted.",
    "conversion-lossless": "Conversion goes through the unversioned hub. A field that the target "
    "version cannot hold is kept in an annotation so that a round trip loses nothing.",
}

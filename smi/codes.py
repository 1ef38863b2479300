"""Stable problem codes: what each means and how to fix it (`smictl explain-code`).

A code never changes meaning once released; retire a code instead of reusing it. Ranges:
SMI1xxx loading, SMI2xxx per-object checks, SMI3xxx cross-resource checks, SMI4xxx conversion,
SMI5xxx Rego policies, SMI6xxx compiling/serving policy, SMI7xxx control plane and proxy.
Each area keeps to its own section below so that the table reads as a manual.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    title: str
    explanation: str
    fix: str


def _c(code: str, title: str, explanation: str, fix: str) -> tuple[str, Code]:
    return code, Code(code=code, title=title, explanation=explanation, fix=fix)


CODES: dict[str, Code] = dict(
    [
        # --- SMI1xxx: loading --------------------------------------------------------------------
        _c(
            "SMI1001",
            "file cannot be read",
            "The path does not exist, is not readable, or is not UTF-8 text; or a directory "
            "given with -f holds no .yaml, .yml or .json file, or holds one (or a .rego file, "
            "in a policy directory, or a path named as a policy) that is not a regular file "
            "(a FIFO, socket or device, which is never opened: reading a FIFO would wait for "
            "a writer).",
            "Check the path and permissions; smictl reads .yaml, .yml and .json files. Name a "
            "FIFO with -f (as `-f <(helm template ...)` does) to read it.",
        ),
        _c(
            "SMI1002",
            "YAML or JSON syntax error",
            "The document is not well-formed YAML (or JSON).",
            "Fix the syntax at the reported line; `yamllint` shows the same spot.",
        ),
        _c(
            "SMI1003",
            "document is not an object",
            "A manifest must be a mapping with apiVersion, kind and metadata.",
            "Make the document a mapping; remove stray scalars or lists at the top level.",
        ),
        _c(
            "SMI1004",
            "apiVersion missing",
            "Every Kubernetes object names its API group and version.",
            "Add `apiVersion:`, e.g. `split.smi-spec.io/v1alpha4`.",
        ),
        _c(
            "SMI1005",
            "kind missing",
            "Every Kubernetes object names its kind.",
            "Add `kind:`, e.g. `TrafficSplit`.",
        ),
        _c(
            "SMI1006",
            "unsupported SMI version",
            "The apiVersion belongs to an SMI group, but smictl does not serve that version "
            "(unreleased drafts such as specs v1alpha5 are not accepted).",
            "Use a released version; `smictl convert` moves objects between versions.",
        ),
        _c(
            "SMI1007",
            "kind not in this SMI version",
            "The SMI group and version exist but do not define this kind "
            "(UDPRoute needs specs v1alpha4; IdentityBinding needs access v1alpha4).",
            "Use a version that defines the kind, or fix the kind's spelling.",
        ),
        _c(
            "SMI1008",
            "object skipped",
            "The object is neither an SMI resource nor a context object smictl uses "
            "(Service, ServiceAccount, Namespace, Pod and the kinds that run pods: "
            "Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, "
            "CronJob); it is ignored. So is one of those kinds that has a `generateName` and "
            "no name (a Helm hook Job): the API server makes its name up on create, and "
            "nothing can be checked against a name it does not have yet.",
            "Nothing to do; pass only the manifests you want checked to silence this.",
        ),
        _c(
            "SMI1009",
            "metadata.name missing",
            "Every object needs a name. SMI objects cannot use `generateName` in its place (the "
            "API server would take it): they are referred to (a TrafficTarget's rules name "
            "their routes), updated and deleted by name, and a name made up on each create would "
            "make a new object of every apply. (A Service, Pod, Job or other non-SMI object "
            "with only `generateName` is skipped with a warning, SMI1008.)",
            "Add `metadata.name`.",
        ),
        _c(
            "SMI1010",
            "document too large",
            "The document exceeds the size limit smictl accepts.",
            "Split the file; SMI objects are small.",
        ),
        _c(
            "SMI1011",
            "SMI kind under a non-SMI apiVersion",
            "The kind is an SMI kind (TrafficTarget, HTTPRouteGroup, TrafficSplit, ...) but the "
            "apiVersion does not name an SMI group, e.g. `apiVersion: v1alpha1`. Such an object "
            "would be skipped, and a skipped TrafficTarget allows nothing.",
            "Write the group and version, e.g. `apiVersion: specs.smi-spec.io/v1alpha4`.",
        ),
        _c(
            "SMI1012",
            "no objects in the input",
            "The files or standard input hold no object: they are empty, or hold only comments "
            "and `---` (or a `kind: List` without items). That is what an earlier stage of a "
            "pipeline that failed quietly prints (`helm template ... | smictl compile -f -`), "
            'so every command that reads manifests refuses it, as `kubectl apply` does ("no '
            'objects passed to apply"). `compile`, `explain` and `access-matrix` also refuse '
            "input without SMI objects (only Services, or only kinds smictl skips): a MeshPolicy "
            "compiled from none denies every request. `validate` and `admit` accept such input "
            "(0 SMI objects), so that they can check every manifest of a repository.",
            "Check the stage that produced the input and the paths given with -f; pass the SMI "
            "manifests (TrafficTarget, HTTPRouteGroup, TrafficSplit, ...) to compile.",
        ),
        _c(
            "SMI1013",
            "list item of another type",
            "A typed list (`TrafficSplitList`, `HTTPRouteGroupList`, ...) holds objects of its "
            "own kind and apiVersion, which its items may leave out. An item that names another "
            "kind or version is not what the API server would answer, and `compile` (which "
            "would read it as its own type) and `convert` (which converts the list as a whole) "
            "would disagree about it.",
            "Move the item out of the list, or use a `kind: List`, whose items are of any type.",
        ),
        _c(
            "SMI1014",
            "symbolic link to a directory not entered",
            "A directory given with -f is read recursively, but a symbolic link in it that leads "
            "to a directory is not followed, as `kubectl apply -R` and kubeconform do not follow "
            "one (it may lead out of the tree, or back into it, without end). The manifests "
            "under it are not read: a warning, so that they are not passed over in silence. A "
            "symbolic link to a file is read. In a policy directory (--policies) it is an "
            "error: a policy left out in silence would be a deny that never denies.",
            "Name the linked directory (or its target) with another -f to read it (`validate`, "
            "`admit`, `compile`, `explain` and `access-matrix` then leave the warning out).",
        ),
        # --- SMI20xx: generic schema checks ---------------------------------------------------
        _c(
            "SMI2001",
            "unknown field",
            "The field is not part of this kind's schema in this version. Kubernetes would "
            "silently prune it, so it would have no effect.",
            "Remove the field, or move it to where this version expects it (see "
            "`smictl explain-code SMI2005` for flat-vs-spec layouts).",
        ),
        _c(
            "SMI2002",
            "required field missing",
            "The schema of this kind and version requires the field.",
            "Add the field.",
        ),
        _c(
            "SMI2003",
            "wrong type",
            "The value has the wrong JSON type for this field.",
            "Use the type the message names (string, integer, list, object).",
        ),
        _c(
            "SMI2004",
            "value not allowed",
            "The value is not one of the values this field accepts.",
            "Use one of the values the message lists.",
        ),
        _c(
            "SMI2005",
            "layout does not match the version",
            "specs v1alpha1/v1alpha2 and access v1alpha1 are flat (fields at the object root); "
            "later versions put them under `spec`. A field in the wrong place would be pruned.",
            "Move the fields under `spec:` (or out of it) as the version requires, or change "
            "apiVersion to the version whose layout you wrote.",
        ),
        _c(
            "SMI2006",
            "invalid name",
            "Names must be DNS-1123 labels or subdomains: lowercase letters, digits, '-' "
            "(and '.'), starting and ending alphanumeric, at most 253 characters. Label and "
            "annotation keys and finalizers are qualified names (an optional DNS-1123 "
            "subdomain and '/', then at most 63 letters, digits, '-', '_' and '.', starting "
            "and ending alphanumeric); a label value is such a name without the prefix, or "
            "empty. The API server refuses any other.",
            "Rename the object, reference, label, annotation or finalizer.",
        ),
        _c(
            "SMI2007",
            "duplicate entry",
            "The list holds the same item twice.",
            "Remove the duplicate.",
        ),
        # --- SMI21xx: TrafficSplit ----------------------------------------------------------------
        _c(
            "SMI2101",
            "backends empty",
            "A TrafficSplit needs at least one backend.",
            "Add `spec.backends` with at least one Service.",
        ),
        _c(
            "SMI2102",
            "split service invalid",
            "`spec.service` must name a Service in the TrafficSplit's namespace: `name` or "
            "`name.<same-namespace>[.svc[.cluster.local]]`.",
            "Use the plain Service name; cross-namespace roots are not part of SMI.",
        ),
        _c(
            "SMI2103",
            "weight invalid",
            "Weights are relative shares: integers >= 0 (split v1alpha2+), or non-negative "
            "Kubernetes quantities with at most milli precision (v1alpha1, e.g. `500m`).",
            "Use a whole number >= 0, e.g. `weight: 90`.",
        ),
        _c(
            "SMI2104",
            "all weights are zero",
            "The weights must sum to more than zero, or no request could be routed.",
            "Give at least one backend a positive weight.",
        ),
        _c(
            "SMI2105",
            "duplicate backend",
            "A backend Service appears twice in one TrafficSplit.",
            "Merge the two entries into one weight.",
        ),
        _c(
            "SMI2106",
            "root service listed as a backend",
            "The root Service selects every version, so traffic attribution is unclear "
            "(discouraged by the spec).",
            "List the versioned Services as backends, not the root.",
        ),
        _c(
            "SMI2107",
            "split match kind invalid",
            "`spec.matches[].kind` must be HTTPRouteGroup.",
            "Reference an HTTPRouteGroup.",
        ),
        # --- SMI22xx: HTTPRouteGroup --------------------------------------------------------------
        _c(
            "SMI2201",
            "matches empty",
            "An HTTPRouteGroup needs at least one match.",
            "Add a match with at least a name.",
        ),
        _c(
            "SMI2202",
            "duplicate match name",
            "Match names are the keys TrafficTargets refer to; they must be unique in a group.",
            "Rename one of the matches.",
        ),
        _c(
            "SMI2203",
            "invalid method",
            "Methods must be one of *, GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, "
            "PATCH (uppercase).",
            "Use an uppercase method from the list.",
        ),
        _c(
            "SMI2204",
            "regex not RE2",
            "The regex does not compile as RE2. smictl matches in linear time with RE2, which has "
            "no back-references or look-arounds.",
            "Rewrite without back-references and look-arounds; test with RE2 syntax.",
        ),
        _c(
            "SMI2205",
            "header entry invalid",
            "In the list form each header entry must be a map with exactly one key; header "
            "names must be unique (case-insensitively) and values strings.",
            "Write `headers: [{user-agent: '.*Android.*'}]` or the map form "
            "`headers: {user-agent: '.*Android.*'}`.",
        ),
        _c(
            "SMI2206",
            "pathRegex not end-anchored",
            "pathRegex is anchored at the start only, so `/api` also matches `/apiary`. In "
            "admission (`smictl admit`, the webhook) the shipped policy "
            "specs/path-regex-anchored reports it instead, as SMI5103 (its METADATA "
            "`replaces: [SMI2206]`); `smictl validate` and `--no-shipped-policies` report SMI2206.",
            "End the regex with `$` (or `\\z`), `/` or `.*` (`.*?` matches the same paths) to "
            "say what you mean, in each alternative (`/a|/b$` ends only `/b`; `(/a|/b)$` and "
            "`/a(?:$|/)` end both). "
            "Unescaped and outside a class: `\\$` and `[$]` are a literal dollar and `\\.*` any "
            "number of dots, so `/api\\$` still matches `/api$-admin`. An empty pathRegex "
            "matches every path, as if it were absent: remove it, or write `.*`.",
        ),
        _c(
            "SMI2207",
            "header name is not an HTTP field name",
            "A header condition names something no HTTP/1.1 request carries as a header: a "
            "field name is an RFC 9110 token (letters, digits and !#$%&'*+-.^_`|~), so not "
            "empty, no spaces, no `:` (HTTP/2 pseudo-headers such as `:path` are not headers). "
            "The condition can never hold, so the match never matches: a dead rule in a policy "
            "that only allows.",
            "Write the header's real name, e.g. `x-team`; match the path with `pathRegex` and "
            "the method with `methods`.",
        ),
        _c(
            "SMI2208",
            ":authority read as host",
            "`:authority` is HTTP/2's name for what an HTTP/1.1 request carries as its Host "
            "header; as OSM does, smictl reads a condition on it as one on `host` (the hub, "
            "compiled policies and Rego input all say `host`).",
            "Write `host` to say so.",
        ),
        _c(
            "SMI2209",
            "regex too costly to match",
            "RE2 matches in linear time, but the factor is the size of the compiled program: "
            "where its DFA gives up (`.*a.{200}$`, `.{0,1000}` repeated) every instruction is "
            "stepped for every byte of the request, about 2 ns each here. smictl refuses a regex "
            "whose program would exceed 1000 instructions (an estimate: a literal byte or an "
            "ASCII range is 1, `.` or a negated class 8, `x{m,n}` is n copies of x), as Envoy "
            "refuses one past re2.max_program_size, so that a long hostile path cannot hold "
            "a proxy for seconds.",
            "Use fewer or smaller counted repetitions, `.*` or `[^/]*` for unbounded runs, and "
            "ASCII classes (`[a-z0-9-]`) rather than `.` inside repetitions.",
        ),
        _c(
            "SMI2210",
            "pathRegex matches no path",
            "Every alternative of the pathRegex asks for more text after an end anchor (`$` "
            "outside a class and not escaped, or `\\z`): `/api$x`, `/a\\z/b`. The path ends "
            "at the anchor, so nothing can follow it, and the match never matches: a dead rule "
            "in a policy that only allows. (Under `(?m)`, where `$` also ends a line, it is not "
            "reported.)",
            "Put the anchor last (`/api/x$`), or write `\\$` for a literal dollar (`/api\\$x`).",
        ),
        # --- SMI23xx: TCPRoute / UDPRoute ---------------------------------------------------------
        _c(
            "SMI2301",
            "port out of range",
            "Ports are integers from 1 to 65535.",
            "Use a valid port number.",
        ),
        _c("SMI2302", "duplicate port", "The port is listed twice.", "Remove the duplicate."),
        _c(
            "SMI2303",
            "ports left out",
            "A specs v1alpha4 TCPRoute or UDPRoute whose `spec` has no `matches.ports` (`spec: "
            "{}`, `matches: {}`) allows every port, as the SMI spec says of an omitted list; "
            "but the published CRD requires `spec.matches.ports` once `spec` is there, so the "
            "API server refuses the object as written.",
            "Write `spec: {matches: {ports: []}}` for every port, or list the ports.",
        ),
        # --- SMI24xx: TrafficTarget / IdentityBinding ---------------------------------------------
        _c(
            "SMI2401",
            "destination namespace differs",
            "`spec.destination.namespace` must equal the TrafficTarget's own namespace, so that "
            "only a namespace's owners can open access to its workloads.",
            "Create the TrafficTarget in the destination's namespace.",
        ),
        _c(
            "SMI2402",
            "rules empty",
            "A TrafficTarget must have at least one rule (access v1alpha3).",
            "Add a rule referencing an HTTPRouteGroup, TCPRoute or UDPRoute.",
        ),
        _c(
            "SMI2403",
            "sources empty",
            "A TrafficTarget must have at least one source (access v1alpha3).",
            "Add the ServiceAccounts allowed to call the destination.",
        ),
        _c(
            "SMI2404",
            "subject kind invalid",
            "Sources and destinations are ServiceAccounts "
            "(or IdentityBindings in access v1alpha4).",
            "Use `kind: ServiceAccount`.",
        ),
        _c(
            "SMI2405",
            "rule kind invalid",
            "Rule kinds are HTTPRouteGroup and TCPRoute (and UDPRoute from access v1alpha3).",
            "Use a rule kind this version supports.",
        ),
        _c(
            "SMI2406",
            "source namespace missing",
            "A source without a namespace means the TrafficTarget's namespace.",
            "Write the namespace explicitly.",
        ),
        _c(
            "SMI2407",
            "matches on a non-HTTP rule",
            "Only HTTPRouteGroup rules select matches by name; TCPRoute and UDPRoute rules ignore "
            "`matches`.",
            "Remove `matches` from the TCPRoute/UDPRoute rule.",
        ),
        _c(
            "SMI2408",
            "identity binding schemes invalid",
            "IdentityBinding schemes: `podLabelSelector` and `serviceAccount` are mutually "
            "exclusive, and at least one scheme is needed.",
            "Keep one of podLabelSelector or serviceAccount.",
        ),
        _c(
            "SMI2409",
            "identity binding identity invalid",
            "An IdentityBinding's `spiffeIdentities` entry must be a SPIFFE ID, "
            "`<trust-domain>/<path>` (the `spiffe://` prefix is optional; a lower-case trust "
            "domain, non-empty path segments of letters, digits, `.`, `-`, `_`): the compiler "
            "reads it as written, and `*` or an empty segment names no certificate. A "
            "ServiceAccount ID of another namespace is a warning: a binding describes only the "
            "workloads of its own namespace (SPEC.md §2.5), so in the mesh's trust domain the "
            "compiler leaves such an ID out, as a source as well as a destination (SMI6006); "
            "an ID of another trust domain (federation) stays a source as written.",
            "Write the identity as `cluster.local/ns/<this namespace>/sa/<name>`.",
        ),
        _c(
            "SMI2410",
            "destination port in quotes",
            'Early SDKs wrote an access v1alpha1 `destination.port` as a string (`"9091"`); '
            "smictl reads a port number in quotes as that number, in access v1alpha1 only. The "
            "CRD types the field as a number, so the API server refuses the string.",
            "Write the port as a number: `port: 9091`.",
        ),
        _c(
            "SMI2411",
            "podLabelSelector not enforced",
            "An IdentityBinding's `podLabelSelector` names pods, not identities: a caller is "
            "known only by the identity in its certificate, so smictl skips the scheme and "
            "resolves a binding through `serviceAccount` and `spiffeIdentities` only. A "
            "binding with only a selector names no one, and a TrafficTarget allows nothing "
            "through it.",
            "Name the workloads' ServiceAccount (`serviceAccount`) or their SPIFFE IDs "
            "(`spiffeIdentities`).",
        ),
        # --- SMI3xxx: cross-resource checks -------------------------------------------------------
        _c(
            "SMI3001",
            "referenced route not found",
            "A TrafficTarget rule (or TrafficSplit match) names a route that is not in the set. "
            "The spec allows any order of creation; until it exists, the rule allows nothing.",
            "Create the route, or fix the name. `--strict` turns this warning into an error.",
        ),
        _c(
            "SMI3002",
            "referenced match name not found",
            "A TrafficTarget rule names a match the HTTPRouteGroup does not define; it allows "
            "nothing.",
            "Fix the match name or add the match to the group.",
        ),
        _c(
            "SMI3003",
            "two TrafficSplits for one root service",
            "SMI leaves several splits for one root undefined; smictl accepts only one per root "
            "service per namespace.",
            "Merge the backends into one TrafficSplit.",
        ),
        _c(
            "SMI3004",
            "backend Service not found",
            "A TrafficSplit backend names a Service that is not in the set.",
            "Create the Service, or fix the name.",
        ),
        _c(
            "SMI3005",
            "backend lacks the root service's port",
            "Every backend needs each port the root Service exposes; a backend without it is "
            "left out of the split for that port.",
            "Add the port to the backend Service.",
        ),
        _c(
            "SMI3006",
            "backend is itself a split root",
            "Splits are not hierarchical; a backend that is another split's root is not split "
            "again.",
            "Point the split at leaf Services.",
        ),
        _c(
            "SMI3007",
            "root service not found",
            "The TrafficSplit's root Service is not in the set.",
            "Create the root Service, or fix the name.",
        ),
        _c(
            "SMI3008",
            "object defined twice",
            "Two documents in the set define the same kind, namespace and name: SMI objects, "
            "and the Kubernetes objects smictl reads beside them (Services, workloads, "
            "ServiceAccounts, Namespaces) alike. With different content it is an error: which "
            "copy takes effect would depend on the order they are applied in (kubectl apply "
            "leaves the last one applied), and `smictl apply` refuses the set (SMI2007). So are "
            "copies alike but written in different versions: the store keeps an object in the "
            "version it is written in. Identical copies (key order, comments and a defaulted "
            "namespace aside) are one object: a warning, and `smictl apply` stores it once.",
            "Keep one definition, or rename one of the objects.",
        ),
        _c(
            "SMI3009",
            "referenced IdentityBinding not found",
            "A TrafficTarget subject names an IdentityBinding (access v1alpha4) that is not in "
            "the set; until it exists the subject names no workload. `--strict` turns this "
            "warning into an error.",
            "Create the IdentityBinding in the subject's namespace, or fix the name.",
        ),
        _c(
            "SMI3010",
            "empty matches allow every route",
            "A TrafficTarget rule on an HTTPRouteGroup says `matches: []`. smictl reads it as "
            "SPEC's omitted `matches` (as OSM and the SMI SDKs do: they cannot tell the two "
            "apart), which allows every match of the group; the writer may have meant none.",
            "List the match names the rule should allow, or leave `matches` out to allow all.",
        ),
        _c(
            "SMI3011",
            "empty matches split every request",
            "A TrafficSplit (split v1alpha3+) says `matches: []`. smictl reads it as an omitted "
            "`matches` (the SMI SDKs cannot tell the two apart), so every request to the root "
            "service is split; the writer may have meant an A/B split of no request.",
            "List the HTTPRouteGroups whose requests should be split, or leave `matches` out "
            "to split every request.",
        ),
        # --- SMI4xxx: conversion ------------------------------------------------------------------
        _c(
            "SMI4001",
            "target version unknown",
            "The requested group/version is not one smictl serves.",
            "Pick a version listed by `smictl version`.",
        ),
        _c(
            "SMI4002",
            "kind not in target version",
            "The target version cannot express the object at all: its kind does not exist there "
            "(e.g. UDPRoute before specs v1alpha4), or a TrafficTarget's destination is an "
            "IdentityBinding below access v1alpha4. (What a version can hold only in part, such "
            "as UDPRoute rules below access v1alpha3, rides in the lossy-fields annotation.)",
            "Choose a version that has the kind.",
        ),
        _c(
            "SMI4003",
            "wrong group for conversion",
            "Objects convert only between versions of their own API group.",
            "Pick a version of the object's own group.",
        ),
        _c(
            "SMI4004",
            "lossy-field annotation corrupt",
            "The `smictl.io/lossy-fields` annotation that keeps fields across conversions is not "
            "valid JSON for this kind.",
            "Remove the annotation (its fields are lost) or restore it.",
        ),
        _c(
            "SMI4005",
            "annotation restores restrictions the manifest does not show",
            "The object carries the `smictl.io/lossy-fields` annotation of a conversion to a "
            "version that cannot hold some of its restrictions: a TrafficTarget destination "
            "port in access v1alpha3/v1alpha4, a match's headers in specs v1alpha1, TCPRoute "
            "ports before specs v1alpha4, a TrafficSplit's matches (only the requests they "
            "match are split) below split v1alpha3. smictl restores and enforces them (they "
            "only narrow what is allowed), but a reader of the manifest does not see them, and "
            "`kubectl apply` keeps the annotation even when the manifest was written without "
            "them.",
            "Nothing, if the restrictions named are meant. To drop them, delete the annotation "
            "(`kubectl annotate ... smictl.io/lossy-fields-`); to see them, read the object in "
            "a version that shows them.",
        ),
        _c(
            "SMI4006",
            "annotation restores grants the manifest does not show",
            "The object carries the `smictl.io/lossy-fields` annotation of a conversion to a "
            "version that cannot hold all it grants: UDPRoute rules below access v1alpha3, "
            "IdentityBinding sources below v1alpha4. smictl restores and enforces them, so the "
            "object allows more than a reader of the manifest sees; `kubectl apply` keeps the "
            "annotation even when the manifest was written without them, until the rules or "
            "sources the manifest shows are edited.",
            "Nothing, if the grants named are meant. To drop them, delete the annotation "
            "(`kubectl annotate ... smictl.io/lossy-fields-`); to see them, read the object in "
            "a version that shows them.",
        ),
        # --- SMI5xxx: Rego policies ---------------------------------------------------------------
        _c(
            "SMI5001",
            "policy does not parse",
            "A .rego module has a syntax error.",
            "Fix the module at the reported line; `smictl policy test` re-checks it.",
        ),
        _c(
            "SMI5002",
            "policy does not compile",
            "The policy parsed but could not be compiled or failed when probed at load with a "
            "representative object of each kind it applies to (an unknown function, runaway "
            "recursion, a wrong built-in call, conflicting rules); or it assigns a call's "
            "result to a variable it never uses, which the embedded engine would take as "
            "success even when the call fails (the policy would fail open).",
            "Fix the reported rule; write a call whose failure should stop the rule as a "
            "statement of its own (`to_number(x)`), not as an unused assignment.",
        ),
        _c(
            "SMI5003",
            "policy evaluation failed",
            "Evaluating a policy raised an error at run time; the object is refused "
            "(fail closed) and the server keeps running.",
            "Fix the policy; the message names the rule.",
        ),
        _c(
            "SMI5004",
            "policy metadata invalid",
            "A policy's METADATA block is not valid YAML, lacks custom.code, has an "
            "enforcement other than deny or warn, or names a kind in custom.kinds or "
            "custom.inventory that smictl does not know (a typo would silently disable the "
            "policy), or lists in custom.replaces a code outside the built-in checks (SMI2xxx, "
            "SMI3xxx); or a module "
            "without METADATA defines `violation`, directly or through a ref head "
            "(`foo.violation`); or a `*_test.rego` file has METADATA and defines `violation` "
            "(test files are never enforced); or a `data.json`/`data.yaml` lies beside the "
            "policies (not loaded: OPA bundles would load it, smictl reads data only from "
            "--parameters); or the --parameters file cannot be read, is not a mapping (an "
            "empty file, one of comments only or `null` included: write `{}` for no "
            "parameters), or holds a number JSON has no form for (YAML's .inf or .nan, NaN in "
            "JSON).",
            "Add `custom: {code: ..., enforcement: deny}` to the package METADATA.",
        ),
        _c(
            "SMI5005",
            "denied by policy",
            "A Rego policy denied the object.",
            "Read the policy's message; `smictl explain-code` on the policy's own code tells more.",
        ),
        _c(
            "SMI5006",
            "remote OPA unreachable",
            "The remote OPA server did not answer.",
            "Check the URL and that the server is up; the embedded engine needs no server.",
        ),
        _c(
            "SMI5007",
            "policy test failed",
            "A `test_*` rule did not succeed.",
            "Run `smictl policy test -v` and fix the policy or the test.",
        ),
        _c(
            "SMI5008",
            "policy test construct refused",
            "regopy 1.5.2 gets two test constructs wrong: `with input as {...}` crashes the "
            "engine over rules that call built-ins, and `with x as <rule>` evaluates the rule "
            "as undefined, so the test would be meaningless.",
            "Override parts of the input (`with input.request as ...`, `with input.hub as "
            "...`) and bind rules to locals first (`h := fixture` ... `with input.hub as h`).",
        ),
        _c(
            "SMI5009",
            "policy coverage below the threshold",
            "`smictl policy test --threshold PCT` found fewer rule bodies covered: a body is "
            "covered when some test fails with that body disabled.",
            "Add tests for the bodies listed as `not covered`.",
        ),
        _c(
            "SMI5010",
            "policy path not found",
            "A `--policies DIR` or a `smictl policy test` path does not exist.",
            "Check the path; policies are .rego files under <dir>/<area>/<policy>/.",
        ),
        _c(
            "SMI5101",
            "canary weight moved too far in one update",
            "Shipped policy split/canary-step: on an UPDATE of a TrafficSplit a backend's share "
            "of the traffic changed by more than data.parameters.canaryMaxStep percentage "
            "points (default 20).",
            "Roll out in smaller steps, or raise canaryMaxStep in --parameters.",
        ),
        _c(
            "SMI5102",
            "source namespace not allowed",
            "Shipped policy access/allowed-source-namespaces: a TrafficTarget names a source "
            "outside its own namespace and the namespaces data.parameters."
            "allowedSourceNamespaces allows for it.",
            "Use a source from an allowed namespace, or allow the namespace in --parameters.",
        ),
        _c(
            "SMI5103",
            "pathRegex not end-anchored (policy)",
            "Shipped policy specs/path-regex-anchored (a warning, in place of the built-in "
            "SMI2206, which admission then leaves out): a pathRegex that does not end in $, / or "
            ".* also allows every longer path (`/api` allows `/apiary`). It reports exactly the "
            "regexes SMI2206 reports, read the same way (each alternative must end; `\\$`, `[$]` "
            "and `\\.*` are no ending). It warns because the SMI spec's own examples write such "
            "regexes; copy the policy with `enforcement: deny` to refuse them (one denial, no "
            "SMI2206 warning besides).",
            "End each alternative with `$` (or `\\z`), `/` or `.*` (`/a|/b$` ends only `/b`; "
            "`(/a|/b)$` and `/a(?:$|/)` end both).",
        ),
        _c(
            "SMI5104",
            "whole namespace allowed to a sensitive destination",
            "Shipped policy access/sensitive-destination: the destination (its ServiceAccount, "
            "IdentityBinding or Namespace is labelled smictl.io/sensitive=true) would accept "
            "every workload of a namespace.",
            "Name only the ServiceAccounts that need access.",
        ),
        _c(
            "SMI5105",
            "owner label missing",
            "Shipped policy meta/owner-label (a warning): the SMI object has no owner label "
            "(key `owner`, or data.parameters.ownerLabel).",
            "Add `metadata.labels.owner: <team>`.",
        ),
        _c(
            "SMI5106",
            "default ServiceAccount in a TrafficTarget",
            "Shipped policy access/no-default-serviceaccount (a warning): the TrafficTarget "
            "names the `default` ServiceAccount, which every pod without its own uses.",
            "Give the workloads their own ServiceAccounts and name those.",
        ),
        # --- SMI6xxx: compiling and serving policy ------------------------------------------------
        _c(
            "SMI6001",
            "reference skipped by the compiler",
            "A rule, match or backend did not resolve and was left out of the MeshPolicy; it "
            "allows nothing.",
            "Create the missing object; `smictl compile` lists what was skipped.",
        ),
        _c(
            "SMI6002",
            "MeshPolicy schema version unsupported",
            "The MeshPolicy JSON was written by a newer smictl.",
            "Upgrade the reader, or recompile with this version.",
        ),
        _c(
            "SMI6003",
            "MeshPolicy document invalid",
            "The MeshPolicy JSON does not have the expected shape.",
            "Recompile it with `smictl compile`.",
        ),
        _c(
            "SMI6004",
            "TrafficTarget allows nothing",
            "After skipping what did not resolve, the TrafficTarget has no source or no rule "
            "left, or its `destination.port` (access v1alpha1/v1alpha2) is none of the ports "
            "its TCPRoute and UDPRoute rules open (every rule is restricted to that port), so "
            "it is left out of the MeshPolicy (default deny). `smictl validate` reports the "
            "port case too.",
            "Add sources and rules, or create the objects its references name; for the port, "
            "make destination.port one of the route's ports, or drop it.",
        ),
        _c(
            "SMI6005",
            "conflicting objects",
            "Two objects claim the same thing: two different objects with one kind and "
            "namespace/name (SMI objects or context Services), or two TrafficSplits for one "
            "root service. The compiler keeps one (the first by name, or by content) and "
            "ignores the other.",
            "Delete or merge the duplicate.",
        ),
        _c(
            "SMI6006",
            "object part not compilable",
            "Part of an object breaks a rule the compiler relies on (destination in another "
            "namespace, unsupported subject or rule kind, a regex RE2 cannot run, a split "
            "root in another namespace, an IdentityBinding identity of another namespace); "
            "that part is left out and allows nothing.",
            "Fix the object; `smictl validate` reports the same problem with its field.",
        ),
        # --- SMI7xxx: control plane and proxy -----------------------------------------------------
        _c(
            "SMI7000",
            "internal error in the control plane",
            "A request to the control plane failed on a bug, not on its input: the answer is "
            "500 and the control plane's log has the traceback. Nothing was changed.",
            "Retry; if it happens again, report it with the log lines of that request.",
        ),
        _c(
            "SMI7001",
            "control plane unreachable",
            "smictl could not reach the control plane.",
            "Start it with `smictl serve`, or pass --server.",
        ),
        _c(
            "SMI7002",
            "request rejected by the control plane",
            "The control plane refused the request; the message carries its reasons. A 401 "
            "from the local store API means the admin token was missing or wrong: the commands "
            "send `admin.token` from beside the CA they verify the server with.",
            "Fix the objects as the reasons say; nothing was changed. For a 401, run as the user "
            "who runs `smictl serve`, or pass --token-file / SMICTL_ADMIN_TOKEN_FILE.",
        ),
        _c(
            "SMI7003",
            "certificate problem",
            "A certificate or key could not be read, is expired, or does not match its key.",
            "Re-issue it with `smictl certs issue`.",
        ),
        _c(
            "SMI7004",
            "object not found",
            "The object named in `smictl get` or `smictl delete` is not in the store.",
            "Check kind, namespace (-n) and name with `smictl get KIND -A`.",
        ),
        _c(
            "SMI7005",
            "store cannot be opened",
            "The local SQLite store could not be created or opened (path, permissions, disk).",
            "Pass a writable path with --store (SMI_WEBHOOK_STORE).",
        ),
        _c(
            "SMI7006",
            "store is read-only",
            "In Kubernetes mode the API server is the store; the control plane only watches it.",
            "Change resources with kubectl; the admission webhook checks them there.",
        ),
        _c(
            "SMI7007",
            "identity not proven",
            "A certificate or endpoint request carried no valid bootstrap or ServiceAccount "
            "token, or asked for an identity the token does not prove.",
            "Use a token for exactly that identity: `smictl certs token --identity NS/SA`.",
        ),
        _c(
            "SMI7008",
            "endpoint owned by another identity",
            "An endpoint address is registered by another workload: only it may remove or "
            "replace it, until its lease ends. Also: an identity has the most endpoints it may "
            "register (256).",
            "Deregister with the identity that registered the address, or wait for its lease "
            "to end (a new pod on a dead pod's IP address: its proxy retries).",
        ),
        _c(
            "SMI7009",
            "invalid control plane setting",
            "An SMI_WEBHOOK_* variable (or its `smictl serve` flag) has a value of the wrong type.",
            "Fix the value the message names; docs/control-plane.md lists every setting.",
        ),
        _c(
            "SMI7010",
            "malformed review",
            "The body sent to /validate, /mutate or /convert is not JSON, not an AdmissionReview "
            "or ConversionReview, or exceeds SMI_WEBHOOK_MAX_REVIEW_BYTES.",
            "Send admission.k8s.io/v1 AdmissionReview or apiextensions.k8s.io/v1 "
            "ConversionReview JSON.",
        ),
        _c(
            "SMI7011",
            "proxy cannot be injected",
            "`smictl inject` found a pod (a Pod, or the pod template of a workload) the "
            "injector refuses, as the mutating webhook refuses to admit it: something in it "
            "would collide with the injected proxy (an init or ephemeral container named "
            "smictl-proxy, a volume named smictl-certs or smictl-token, a TCP containerPort "
            "15001, 15006 or 15020); or the pod is not a well-formed Pod (a field of the wrong "
            "type, no pod template). Nothing is printed: an output without the proxy in that "
            "pod would run it unprotected.",
            "Rename or renumber what collides, or fix the pod as the message says; annotate "
            "the pod `smictl.io/inject: disabled` to leave it without the proxy on purpose.",
        ),
        _c(
            "SMI7012",
            "injection annotation not applied",
            "A pod asked for something with an injection annotation that it did not get: "
            "`smictl.io/native-sidecar` is neither true nor false (the default placement "
            "applies), or `smictl.io/proxy-wait-before-exit-seconds` is not a whole number, is "
            "out of range (0 to 2147483647 seconds), or longer than the pod's "
            "terminationGracePeriodSeconds leaves the proxy to drain (the wait is shortened). "
            "The proxy is injected all the same; the webhook gives the same warnings at "
            "admission.",
            "Fix the annotation's value, or raise the pod's terminationGracePeriodSeconds.",
        ),
        # SMI71xx: the sidecar proxy (`smictl proxy`)
        _c(
            "SMI7101",
            "proxy configuration invalid",
            "A `smictl proxy` flag or SMI_PROXY_* variable is missing or has a value the proxy "
            "cannot use; the message names the flag.",
            "Fix the flag as the message says; `smictl proxy --help` lists every flag and its "
            "variable.",
        ),
        _c(
            "SMI7102",
            "proxy cannot start",
            "A listener port is taken, or the mesh CA file cannot be read.",
            "Free the port (or use port 0 with --ports-file), or fix --ca.",
        ),
    ]
)


def lookup(code: str) -> Code | None:
    return CODES.get(code.strip().upper())

"""Differential test: an independent reference reading of SMI against the compiled MeshPolicy.

The reference below reads the *wire* manifests (every released version: access
v1alpha1-v1alpha3, specs v1alpha1-v1alpha4, split v1alpha1-v1alpha4) straight from SPEC.md and
DESIGN.md §3, without `smi.compiler`, `smi.apis` or the loader: it is slow and naive on
purpose, so that a disagreement points at one of the two readings. Random but schema-valid
worlds (seeded, so every run checks the same ones) are loaded and compiled with the product's
entry points (`smi.loading.load_object` -> `smi.compiler.compile` -> MeshPolicy JSON ->
`PolicyIndex.build` -> `authorize` / `split_for` + `on_port` + `pick_backend`, as the proxy
does) and both answer the same requests.

Left out of the generator on purpose, because SPEC.md and DESIGN.md do not decide them (the
product's own choices are in brackets): `matches: []` on a rule [every match] or on a split
[split every request]; duplicate match names in one group [the first wins]; a backend listed
twice [weights add up]; several TrafficSplits for one root service [the first by name];
paths with dot segments, `//` or escapes [normalised, see `smi.compiler.ir.matching`].
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import reduce
from math import gcd
from typing import Any

import pytest

from smi.compiler.build import compile
from smi.compiler.ir import Decision, MeshPolicy, PolicyIndex, Request, authorize, pick_backend
from smi.compiler.ir.decision import Protocol
from smi.loading import load_object

TD = "cluster.local"
NAMESPACES = ("default", "shop", "books")
ACCOUNTS = ("api", "web", "db", "client")
PORTS = (80, 8080, 9090)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")
PATH_REGEXES = (
    None,
    ".*",
    "/",
    "/api",
    "/api/",
    "^/api/v[0-9]+$",
    "/books(/.*)?$",
    "/a|/b",
    "/metrics$",
    "^/$",
    "/(api|books)/[a-z]+",
    "/api.v1",
    "/a\\.b",
    "/api/v1?",
    "/bo+ks",
    "(?i)/API",
    "/api/[^/]+$",
    "/[a-z]{4,}",
    ".*/x$",
    "/api/v\\d+",
)
NOT_RE2 = ("/api(?=/v1)", "(/a)\\1")  # look-ahead, back-reference: valid Python, not RE2
PATHS = (
    "/",
    "/api",
    "/api/",
    "/apiary",
    "/api/v",
    "/api/v1",
    "/api/v12",
    "/api/x",
    "/books",
    "/books/x",
    "/boooks",
    "/a",
    "/b",
    "/a.b",
    "/axb",
    "/api.v1",
    "/apixv1",
    "/metrics",
    "/metrics/x",
    "/health",
)
HEADER_NAMES = ("user-agent", "X-Team", "cookie")
HEADER_REGEXES = (".*Android.*", "gold", "a|b", "[0-9]+", ".*", "GOLD", "", "^gold$", "(?i)gold")
HEADER_VALUES = ("Mozilla Android 10", "gold", "GOLD", "a", "b", "123", "12a", "", "ab")
QUANTITIES = ("0", "1", "500m", "250m", "2", "1500m", 1, 0, "0.5", "1.25", "10m", "0.001", "-1")


def spiffe(ns: str, sa: str) -> str:
    return f"spiffe://{TD}/ns/{ns}/sa/{sa}"


# ------------------------------------------------------------------------------------------------
# The reference: SPEC.md + DESIGN.md §3, read off the wire documents.
# ------------------------------------------------------------------------------------------------


def _ns(doc: Mapping[str, Any]) -> str:
    """An object without a namespace lives in "default" (as `kubectl apply` puts it)."""
    return doc["metadata"].get("namespace") or "default"


def _version(doc: Mapping[str, Any]) -> str:
    return str(doc["apiVersion"]).rpartition("/")[2]


def _find(docs: Sequence[Mapping[str, Any]], kind: str, ns: str, name: str) -> Any:
    """Rule and split references resolve in the referrer's namespace (SPEC §2.1, §4.3)."""
    for doc in docs:
        if doc["kind"] == kind and _ns(doc) == ns and doc["metadata"]["name"] == name:
            return doc
    return None


def _target_parts(tt: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """(destination, rules, sources): flat with `specs` in v1alpha1 (SPEC §2.2), under
    `spec` with `rules` from v1alpha2 (§2.3)."""
    if _version(tt) == "v1alpha1":
        return tt["destination"], tt.get("specs") or [], tt.get("sources") or []
    spec = tt["spec"]
    return spec["destination"], spec.get("rules") or [], spec.get("sources") or []


def _group_matches(group: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flat `matches` in specs v1alpha1/v1alpha2, `spec.matches` from v1alpha3 (SPEC §3.1)."""
    if _version(group) in ("v1alpha1", "v1alpha2"):
        return list(group["matches"])
    return list(group["spec"]["matches"])


def _l4_ports(route: Mapping[str, Any]) -> list[int]:
    """TCPRoute before v1alpha4 has no ports (any traffic); v1alpha4 `spec.matches.ports`,
    empty or absent = every port (SPEC §3.2, §3.3)."""
    spec = route.get("spec")
    if _version(route) != "v1alpha4" or not spec:
        return []
    return list(spec["matches"]["ports"])


def _headers(match: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Both wire forms: a list of single-key maps, or a map (DESIGN §3)."""
    raw = match.get("headers")
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return list(raw.items())
    return [item for entry in raw for item in entry.items()]


def _re2_ok(pattern: str) -> bool:
    """DESIGN §3: regexes must be RE2; look-arounds and back-references are not."""
    return not re.search(r"\(\?[=!<]|\\[1-9]", pattern)


def match_ok(match: Mapping[str, Any], method: str, path: str, headers: Mapping[str, str]) -> bool:
    """DESIGN §3 HTTPRouteGroup matching: path AND method AND every header."""
    methods = match.get("methods") or ["*"]
    if "*" not in methods and method not in methods:
        return False
    regex = match.get("pathRegex")
    if regex is not None and (
        not _re2_ok(regex) or re.match(regex, path.partition("?")[0]) is None
    ):
        return False  # anchored at the start only, query string left out
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, value_regex in _headers(match):
        value = lowered.get(name.lower())
        if value is None or not _re2_ok(value_regex) or re.fullmatch(value_regex, value) is None:
            return False
    return True


@dataclass(frozen=True)
class Query:
    source: str | None
    destination: str
    port: int
    protocol: str  # "http" | "tcp" | "udp"
    method: str | None = None
    path: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _identity(subject: Mapping[str, Any], ns: str) -> str | None:
    """A subject's SPIFFE id: identities are ServiceAccounts (SPEC §2.1; no other kind is
    defined), a missing namespace is the TrafficTarget's, and `*` is a name like any other
    (SMI has no wildcard subject)."""
    if subject["kind"] != "ServiceAccount":
        return None
    return spiffe(subject.get("namespace") or ns, subject["name"])


def reference_authorize(docs: Sequence[Mapping[str, Any]], q: Query) -> set[tuple[str, str]]:
    """Every (TrafficTarget origin, what allowed it) that allows `q`; empty = denied."""
    allowing: set[tuple[str, str]] = set()
    if q.source is None:
        return allowing  # identity only from a verified certificate
    for tt in docs:
        if tt["kind"] != "TrafficTarget":
            continue
        ns = _ns(tt)
        origin = f"{ns}/TrafficTarget/{tt['metadata']['name']}"
        dest, rules, sources = _target_parts(tt)
        dest_ns = dest.get("namespace") or ns
        if dest_ns != ns or _identity(dest, ns) != q.destination:
            continue  # destination.namespace defaults to, and must equal, the TT's
        ids = {_identity(s, ns) for s in sources}
        if q.source not in ids:
            continue
        if dest.get("port") is not None and dest["port"] != q.port:
            continue  # access v1alpha1/v1alpha2: destination.port restricts the target
        for rule in rules:
            allowing |= _rule_allows(docs, ns, origin, rule, q)
    return allowing


def _rule_allows(
    docs: Sequence[Mapping[str, Any]], ns: str, origin: str, rule: Mapping[str, Any], q: Query
) -> set[tuple[str, str]]:
    found = _find(docs, rule["kind"], ns, rule["name"])
    if found is None:
        return set()  # a dangling reference never allows
    if rule["kind"] in ("TCPRoute", "UDPRoute"):
        ports = _l4_ports(found)
        protocols = ("http", "tcp") if rule["kind"] == "TCPRoute" else ("udp",)
        if q.protocol in protocols and (not ports or q.port in ports):
            return {(origin, "udp" if rule["kind"] == "UDPRoute" else "tcp")}
        return set()
    if q.protocol != "http":
        return set()
    names = rule.get("matches")
    out = set()
    for match in _group_matches(found):
        if names is not None and match["name"] not in names:
            continue
        if match_ok(match, q.method or "", q.path or "", q.headers):
            out.add((origin, f"{ns}/HTTPRouteGroup/{found['metadata']['name']}#{match['name']}"))
    return out


def _milli(weight: Any, version: str) -> int:
    """DESIGN §3: v1alpha1 weights are quantities in milli-units, later ones whole numbers."""
    if version != "v1alpha1":
        return int(weight) * 1000
    text = str(weight)
    return int(Decimal(text[:-1])) if text.endswith("m") else int(Decimal(text) * 1000)


def _root_name(service: str, ns: str) -> str | None:
    """`spec.service`: `name` or `name.<same ns>[.svc[.cluster.local]]` (DESIGN §3)."""
    name, *rest = service.split(".")
    if not rest:
        return name
    if rest[0] == ns and rest[1:] in ([], ["svc"], ["svc", "cluster", "local"]):
        return name
    return None


def _service_ports(docs: Sequence[Mapping[str, Any]], ns: str, name: str) -> list[int] | None:
    svc = _find(docs, "Service", ns, name)
    return None if svc is None else [p["port"] for p in svc["spec"]["ports"]]


def reference_split(
    docs: Sequence[Mapping[str, Any]], root: str, port: int, request: Query | None
) -> dict[str, int] | None:
    """Backend "ns/name" -> milli weight (> 0) a request to `root` on `port` is split over, or
    None when it goes to the root service as if no split existed."""
    ns, _, name = root.partition("/")
    splits = [
        d
        for d in docs
        if d["kind"] == "TrafficSplit"
        and _ns(d) == ns
        and _root_name(d["spec"]["service"], ns) == name
    ]
    if not splits:
        return None
    (ts,) = splits  # the generator never writes two splits for one root
    refs = ts["spec"].get("matches")
    if refs:  # only requests matching a referenced group are split (SPEC §4.3)
        if request is None:
            return None
        groups = [_find(docs, "HTTPRouteGroup", ns, r["name"]) for r in refs]
        matches = [m for g in groups if g is not None for m in _group_matches(g)]
        if not any(
            match_ok(m, request.method or "", request.path or "", request.headers) for m in matches
        ):
            return None
    weights: dict[str, int] = {}
    for backend in ts["spec"]["backends"]:
        ports = _service_ports(docs, ns, backend["service"])
        if ports is None or port not in ports:
            continue  # a missing Service, or one lacking the port, gets no traffic (SPEC §4.1)
        weights[f"{ns}/{backend['service']}"] = _milli(backend["weight"], _version(ts))
    positive = {k: w for k, w in weights.items() if w > 0}
    return positive or None


# ------------------------------------------------------------------------------------------------
# Random worlds
# ------------------------------------------------------------------------------------------------


def _meta(rng: random.Random, name: str, ns: str) -> dict[str, Any]:
    if ns == "default" and rng.random() < 0.3:
        return {"name": name}
    return {"name": name, "namespace": ns}


def _gen_match(rng: random.Random, name: str, version: str) -> dict[str, Any]:
    match: dict[str, Any] = {"name": name}
    if rng.random() < 0.8:
        match["pathRegex"] = rng.choice(PATH_REGEXES) or ".*"
    if rng.random() < 0.04:
        match["pathRegex"] = rng.choice(NOT_RE2)
    methods = rng.choice((None, [], ["*"], ["GET"], ["GET", "POST"], ["*", "DELETE"], ["PUT"]))
    if methods is not None:
        match["methods"] = methods
    if version != "v1alpha1" and rng.random() < 0.4:
        names = rng.sample(HEADER_NAMES, rng.randint(1, 2))
        pairs = [(n, rng.choice(HEADER_REGEXES)) for n in names]
        if rng.random() < 0.15:  # one header named twice (in two cases): both must hold
            pairs.append((pairs[0][0].upper(), rng.choice(HEADER_REGEXES)))
        if rng.random() < 0.5 and len({n.lower() for n, _ in pairs}) == len(pairs):
            match["headers"] = dict(pairs)
        else:
            match["headers"] = [{n: v} for n, v in pairs]
    return match


def _gen_group(rng: random.Random, name: str, ns: str) -> dict[str, Any]:
    version = rng.choice(("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"))
    matches = [_gen_match(rng, f"m{i}", version) for i in range(rng.randint(1, 4))]
    doc: dict[str, Any] = {
        "apiVersion": f"specs.smi-spec.io/{version}",
        "kind": "HTTPRouteGroup",
        "metadata": _meta(rng, name, ns),
    }
    if version in ("v1alpha1", "v1alpha2"):
        doc["matches"] = matches
    else:
        doc["spec"] = {"matches": matches}
    return doc


def _gen_l4(rng: random.Random, kind: str, name: str, ns: str) -> dict[str, Any]:
    version = "v1alpha4" if kind == "UDPRoute" else rng.choice(("v1alpha1", "v1alpha3", "v1alpha4"))
    doc: dict[str, Any] = {
        "apiVersion": f"specs.smi-spec.io/{version}",
        "kind": kind,
        "metadata": _meta(rng, name, ns),
    }
    if version == "v1alpha3" and rng.random() < 0.5:
        doc["spec"] = {}
    if version == "v1alpha4" and rng.random() < 0.8:
        ports = rng.sample(PORTS, rng.randint(0, 2))
        doc["spec"] = {"matches": {"ports": ports}}
    return doc


@dataclass
class World:
    docs: list[dict[str, Any]]
    destinations: list[str]
    roots: list[str]


def _gen_rule(
    rng: random.Random, kinds: Sequence[str], ns: str, names: Mapping[str, list[tuple[str, str]]]
) -> dict[str, Any]:
    kind = rng.choice(kinds)
    candidates = names.get(kind, [])
    own = [n for n_ns, n in candidates if n_ns == ns]
    if own and rng.random() < 0.9:
        name = rng.choice(own)
    elif candidates and rng.random() < 0.5:
        name = rng.choice(candidates)[1]  # may live in another namespace: dangling here
    else:
        name = "ghost"
    rule: dict[str, Any] = {"kind": kind, "name": name}
    if kind == "HTTPRouteGroup" and rng.random() < 0.5:
        rule["matches"] = rng.sample(["m0", "m1", "m2", "m3", "nope"], rng.randint(1, 2))
    return rule


def _gen_target(
    rng: random.Random, i: int, dests: Sequence[tuple[str, str]], names: Any
) -> dict[str, Any]:
    version = rng.choice(("v1alpha1", "v1alpha2", "v1alpha3"))
    dest_ns, dest_sa = rng.choice(dests)
    ns = dest_ns if rng.random() < 0.93 else rng.choice(NAMESPACES)
    dest: dict[str, Any] = {"kind": "ServiceAccount", "name": dest_sa}
    if rng.random() < 0.6 or ns != dest_ns:
        dest["namespace"] = dest_ns
    if version != "v1alpha3" and rng.random() < 0.3:
        dest["port"] = rng.choice(PORTS)
    sources = []
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
        src: dict[str, Any] = {"kind": "ServiceAccount", "name": rng.choice(ACCOUNTS)}
        if rng.random() < 0.7:
            src["namespace"] = rng.choice(NAMESPACES)
        if rng.random() < 0.05:
            src = {"kind": "ServiceAccount", "name": "*", "namespace": "*"}
        if rng.random() < 0.03:
            src["kind"] = "Group"  # the Go type's comment names it; no spec text defines it
        sources.append(src)
    kinds: tuple[str, ...] = ("HTTPRouteGroup", "HTTPRouteGroup", "TCPRoute")
    if version == "v1alpha3":
        kinds += ("UDPRoute",)
    rules = [_gen_rule(rng, kinds, ns, names) for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 3)))]
    doc: dict[str, Any] = {
        "apiVersion": f"access.smi-spec.io/{version}",
        "kind": "TrafficTarget",
        "metadata": _meta(rng, f"tt{i}", ns),
    }
    if version == "v1alpha1":
        doc.update(destination=dest, specs=rules, sources=sources)
    else:
        doc["spec"] = {"destination": dest, "rules": rules, "sources": sources}
    return doc


def _gen_split(
    rng: random.Random, name: str, root: str, services: Sequence[str], groups: Sequence[str]
) -> dict[str, Any]:
    """A split of root service "ns/name" over some of `services` (Service names of its
    namespace) and maybe a missing one, optionally matching some of `groups`."""
    ns, _, root = root.partition("/")
    version = rng.choice(("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"))
    service = rng.choice(
        (root, root, f"{root}.{ns}", f"{root}.{ns}.svc", f"{root}.{ns}.svc.cluster.local")
    )
    if rng.random() < 0.05:
        service = f"{root}.elsewhere"
    pool = [s for s in services if s != root] + ["ghost"]
    chosen = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
    if rng.random() < 0.1:
        chosen.append(root)  # self-referential: discouraged, not forbidden
    backends = [
        {
            "service": s,
            "weight": rng.choice(QUANTITIES)
            if version == "v1alpha1"
            else rng.choice((0, 1, 2, 3, 5, 1000, -1)),
        }
        for s in chosen
    ]
    spec: dict[str, Any] = {"service": service, "backends": backends}
    if version in ("v1alpha3", "v1alpha4") and rng.random() < 0.5:
        refs = rng.sample([*groups, "ghost"], rng.randint(1, min(2, len(groups) + 1)))
        if rng.random() < 0.1:
            refs = ["g0"]  # may be a group of another namespace only: dangling here
        spec["matches"] = [{"kind": "HTTPRouteGroup", "name": g} for g in refs]
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": _meta(rng, name, ns),
        "spec": spec,
    }


def gen_world(rng: random.Random) -> World:
    namespaces = rng.sample(NAMESPACES, rng.randint(1, 3))
    docs: list[dict[str, Any]] = []
    names: dict[str, list[tuple[str, str]]] = {}
    for i in range(rng.choice((0, 1, 2, 3, 4, 4))):
        ns = rng.choice(namespaces)
        docs.append(_gen_group(rng, f"g{i}", ns))
        names.setdefault("HTTPRouteGroup", []).append((ns, f"g{i}"))
    for kind, count in (("TCPRoute", rng.randint(0, 2)), ("UDPRoute", rng.randint(0, 1))):
        for i in range(count):
            ns = rng.choice(namespaces)
            docs.append(_gen_l4(rng, kind, f"{kind.lower()}{i}", ns))
            names.setdefault(kind, []).append((ns, f"{kind.lower()}{i}"))
    dests = [(rng.choice(namespaces), rng.choice(ACCOUNTS)) for _ in range(rng.randint(1, 3))]
    docs += [_gen_target(rng, i, dests, names) for i in range(rng.randint(1, 5))]
    roots: list[str] = []
    for ns in namespaces:
        services = [f"svc{k}" for k in range(rng.randint(1, 4))]
        for svc in services:
            ports = sorted(rng.sample(PORTS, rng.randint(1, 2)))
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": svc, "namespace": ns},
                    "spec": {"selector": {"app": svc}, "ports": [{"port": p} for p in ports]},
                }
            )
        groups = [n for g_ns, n in names.get("HTTPRouteGroup", []) if g_ns == ns]
        for k, root in enumerate(rng.sample(services, rng.randint(0, min(2, len(services))))):
            docs.append(_gen_split(rng, f"ts{k}", f"{ns}/{root}", services, groups))
        roots += [f"{ns}/{s}" for s in services]
    return World(docs=docs, destinations=[spiffe(ns, sa) for ns, sa in dests], roots=roots)


def gen_headers(rng: random.Random) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in rng.sample(HEADER_NAMES, rng.randint(0, 3)):
        out[rng.choice((name, name.upper(), name.title()))] = rng.choice(HEADER_VALUES)
    return out


def _aimed(rng: random.Random, world: World) -> tuple[str, str] | None:
    """(source, destination) named by one of the world's TrafficTargets, so that most
    queries reach the rule checks instead of stopping at an unknown caller."""
    targets = [d for d in world.docs if d["kind"] == "TrafficTarget"]
    tt = rng.choice(targets)
    dest, _, sources = _target_parts(tt)
    ns = _ns(tt)
    source = _identity(rng.choice(sources), ns) if sources else None
    destination = _identity(dest, ns)
    if source is None or destination is None:
        return None
    return source, destination


def gen_query(rng: random.Random, world: World) -> Query:
    aimed = _aimed(rng, world) if rng.random() < 0.75 else None
    source: str | None
    if aimed is not None:
        source, destination = aimed
    else:
        source = spiffe(rng.choice(NAMESPACES), rng.choice(ACCOUNTS))
        destination = rng.choice(world.destinations)
    if rng.random() < 0.03:
        source = None
    port = rng.choice(PORTS)
    protocol = rng.choices(("http", "tcp", "udp"), weights=(7, 2, 1))[0]
    if protocol != "http":
        return Query(source, destination, port, protocol)
    path = rng.choice(PATHS) + ("?q=/api&x=1" if rng.random() < 0.15 else "")
    return Query(source, destination, port, "http", rng.choice(METHODS), path, gen_headers(rng))


# ------------------------------------------------------------------------------------------------
# The product, through its own entry points
# ------------------------------------------------------------------------------------------------


def product_policy(docs: Sequence[Mapping[str, Any]]) -> MeshPolicy:
    resources: list[Any] = []
    context: list[Any] = []
    for doc in docs:
        loaded = load_object(json.loads(json.dumps(doc)))
        errors = [d for d in loaded.diagnostics if d.is_error]
        assert not errors, (doc, errors)
        resources += loaded.resources
        context += loaded.context
    return compile(resources, context=context).policy


def product_index(docs: Sequence[Mapping[str, Any]]) -> PolicyIndex:
    """As a proxy gets it: the MeshPolicy through its JSON."""
    return PolicyIndex.build(MeshPolicy.from_json(product_policy(docs).to_json()))


def lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """The proxy hands `authorize` lower-case header names."""
    return {k.lower(): v for k, v in headers.items()}


def _decide(index: PolicyIndex, q: Query) -> Decision:
    if q.protocol == "http":
        return authorize(
            index, q.source, q.destination, q.port, q.method, q.path, lowered(q.headers)
        )
    protocol: Protocol = "tcp" if q.protocol == "tcp" else "udp"
    return authorize(index, q.source, q.destination, q.port, protocol=protocol)


def product_authorize(index: PolicyIndex, audit: PolicyIndex, q: Query) -> tuple[bool, str, str]:
    """(allowed, TrafficTarget, detail) from `authorize`; audit mode must allow everything
    and record as would-deny exactly what deny mode denies."""
    d = _decide(index, q)
    a = _decide(audit, q)
    assert a.allowed and a.would_deny == (not d.allowed), (q, d, a)
    # The proxy caches decisions keyed on the headers `header_names` lists: no other header
    # may change a decision.
    names = index.header_names(q.destination)
    seen = {k: v for k, v in q.headers.items() if k.lower() in names}
    assert _decide(index, replace(q, headers=seen)) == d, (q, names)
    return d.allowed, (d.rules[0] if d.allowed and d.rules else ""), d.detail


def product_split(
    index: PolicyIndex, root: str, port: int, request: Query | None
) -> dict[str, int] | None:
    """Backend -> milli weight as `pick_backend` realises it (None: to the root service).

    The weights are measured, not read: `r` walks the midpoints of `total / unit` equal
    slices of [0, 1), where `unit` divides every reference weight, so each slice falls inside
    one backend's interval exactly when the product's weights are the reference's."""
    split = index.split_for(root)
    if split is None:
        return None
    split = split.on_port(root, port, index.services)
    if split is None:
        return None
    req = None
    if request is not None:
        req = Request(request.method or "", request.path or "", lowered(request.headers))
    positive = [b.weight for b in split.backends if b.weight > 0]
    if not positive:
        return None
    unit = reduce(gcd, positive)
    slices = sum(positive) // unit
    picks = Counter(pick_backend(split, req, (k + 0.5) / slices) for k in range(slices))
    if None in picks:
        assert set(picks) == {None}, picks
        return None
    for edge in (0.0, 1.0):
        assert pick_backend(split, req, edge) in picks
    return {b: n * unit for b, n in picks.items() if b is not None}


# ------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------


def disagreements(seed: int, *, queries: int = 40) -> list[str]:
    """What the product and the reference answer differently in world `seed`."""
    rng = random.Random(seed)
    world = gen_world(rng)
    index = product_index(world.docs)
    audit = PolicyIndex.build(replace(index.policy, mode="audit"))
    found: list[str] = []
    for _ in range(queries):
        q = gen_query(rng, world)
        expected = reference_authorize(world.docs, q)
        allowed, rule, detail = product_authorize(index, audit, q)
        if allowed != bool(expected) or (allowed and (rule, detail) not in expected):
            found.append(f"authorize {q}: product {allowed, rule, detail}, reference {expected}")
    for root in world.roots:
        for port in PORTS:
            ports = _service_ports(world.docs, *root.split("/"))
            if ports is None or port not in ports:
                continue
            for request in (None, gen_query(rng, world), gen_query(rng, world)):
                http = request if request is None or request.protocol == "http" else None
                want = reference_split(world.docs, root, port, http)
                got = product_split(index, root, port, http)
                if want != got:
                    found.append(f"split {root}:{port} {http}: product {got}, reference {want}")
    return found


def world_dump(seed: int) -> str:
    return json.dumps(gen_world(random.Random(seed)).docs, indent=1)


WORLDS_PER_BLOCK = 250


@pytest.mark.parametrize("block", range(10))
def test_product_agrees_with_the_reference(block: int) -> None:
    """2500 worlds, 60 authorization queries each plus every (root service, port) with and
    without an HTTP request."""
    for seed in range(block * WORLDS_PER_BLOCK, (block + 1) * WORLDS_PER_BLOCK):
        problems = disagreements(seed, queries=60)
        assert not problems, f"seed {seed}:\n" + "\n".join(problems) + "\n" + world_dump(seed)


@pytest.mark.parametrize("seed", range(40))
def test_compiling_in_any_order_gives_byte_equal_json(seed: int) -> None:
    """Also with two different objects of one kind and name (a conflict): which one is used
    must not depend on the order either."""
    docs = gen_world(random.Random(seed)).docs
    twin = json.loads(json.dumps(next(d for d in docs if d["kind"] == "TrafficTarget")))
    twin_sources = [{"kind": "ServiceAccount", "name": "twin", "namespace": "default"}]
    (twin if "sources" in twin else twin["spec"])["sources"] = twin_sources
    docs.append(twin)
    roots = [d for d in docs if d["kind"] == "TrafficSplit"]
    if roots:  # a second split for one root service: which one is kept must not vary either
        other = json.loads(json.dumps(roots[0]))
        other["metadata"]["name"] = "ts-other"
        other["spec"]["backends"] = list(reversed(other["spec"]["backends"]))
        docs.append(other)
    policy = product_policy(docs)
    assert MeshPolicy.from_json(policy.to_json()) == policy
    expected = policy.to_json()
    rng = random.Random(seed + 1000)
    for _ in range(3):
        shuffled = list(docs)
        rng.shuffle(shuffled)
        assert product_policy(shuffled).to_json() == expected


@pytest.mark.parametrize(
    ("helper", "sloppy"),
    [
        ("_headers", lambda match: []),  # header conditions forgotten
        ("_l4_ports", lambda route: []),  # TCPRoute/UDPRoute ports forgotten
        ("_milli", lambda weight, version: 1000),  # weights forgotten
    ],
)
def test_the_comparison_can_fail(
    monkeypatch: pytest.MonkeyPatch, helper: str, sloppy: Callable[..., Any]
) -> None:
    """A reference with a planted misreading disagrees with the product somewhere, so an
    empty list above means agreement, not a blind check."""
    monkeypatch.setattr(sys.modules[__name__], helper, sloppy)
    assert any(disagreements(seed) for seed in range(100))


# ------------------------------------------------------------------------------------------------
# Regression tests for what the differential test found
# ------------------------------------------------------------------------------------------------


def test_a_header_named_twice_keeps_both_conditions() -> None:
    """`x-team` and `X-Team` in one match are one header with two conditions, AND-ed (DESIGN
    §3: every header); the compiler used to keep only the first, so `silver` was let in."""
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "teams", "namespace": "shop"},
        "spec": {
            "matches": [
                {"name": "gold", "headers": [{"x-team": "gold|silver"}, {"X-Team": "gold"}]}
            ]
        },
    }
    target = {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "tt", "namespace": "shop"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api"},
            "rules": [{"kind": "HTTPRouteGroup", "name": "teams"}],
            "sources": [{"kind": "ServiceAccount", "name": "web"}],
        },
    }
    index = product_index([group, target])
    web, api = spiffe("shop", "web"), spiffe("shop", "api")
    assert authorize(index, web, api, 80, "GET", "/", {"x-team": "gold"}).allowed
    assert not authorize(index, web, api, 80, "GET", "/", {"x-team": "silver"}).allowed
    (rule,) = index.policy.destinations[api]
    assert rule.http[0].headers == (("x-team", "gold"), ("x-team", "gold|silver"))

"""MeshPolicy types (DESIGN.md §4): frozen, sorted, hashed, JSON on the wire.

Equal inputs give byte-equal JSON (`to_json`), and `content_hash` is the SHA-256 of that JSON
without the revision, so a proxy can tell a new revision that changes nothing from a real change.

Port lists: `None` means "no rule of this protocol", `()` means "every port".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from smi.digest import sha256_hex
from smi.ports import PORT_RANGE, is_port

SCHEMA_VERSION = 1
MAX_REVISION = 2**63 - 1  # a store revision: SQLite's and the proxies' JSON readers' int64

Mode = Literal["deny", "audit", "permissive"]
MODES: tuple[Mode, ...] = ("deny", "audit", "permissive")


class MeshPolicyFormatError(ValueError):
    """A MeshPolicy document has the wrong shape or a schema version this reader cannot read.
    Mapped to SMI6002/SMI6003 diagnostics at the CLI and control-plane boundaries."""


@dataclass(frozen=True, slots=True)
class HttpMatch:
    """One HTTP match: path AND method AND every header. `origin` is
    "ns/HTTPRouteGroup/name#match". Empty `methods` = any method; None `path_regex` = any
    path; `headers` are (lower-case name, value regex matched against the whole value)."""

    origin: str
    methods: tuple[str, ...] = ()
    path_regex: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AuthzRule:
    """What one TrafficTarget allows its sources to do to its destination. `ports` restricts
    every rule kind (access v1alpha1/v1alpha2 `destination.port`); () = all ports."""

    origin: str
    sources: tuple[str, ...]
    http: tuple[HttpMatch, ...] = ()
    tcp_ports: tuple[int, ...] | None = None
    udp_ports: tuple[int, ...] | None = None
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    identity: str


@dataclass(frozen=True, slots=True)
class Service:
    ports: tuple[int, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class SplitBackend:
    """`service` is "ns/name"; `weight` is a relative share in milli-units."""

    service: str
    weight: int


@dataclass(frozen=True, slots=True)
class Split:
    """`matches` () = split every request; otherwise only matching requests are split and the
    rest go to the root service."""

    origin: str
    backends: tuple[SplitBackend, ...]
    matches: tuple[HttpMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class MeshPolicy:
    revision: int = 0
    mode: Mode = "deny"
    trust_domain: str = "cluster.local"
    destinations: dict[str, tuple[AuthzRule, ...]] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    splits: dict[str, Split] = field(default_factory=dict)
    # The content hash, computed on first use: serialising a large policy takes a while, and
    # servers ask for the hash (ETag) on every poll. The policy is immutable, so it never
    # goes stale.
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    # --- serialisation ---------------------------------------------------------------------------

    def content(self) -> dict[str, Any]:
        """Everything but revision and hash, sorted: the part the hash covers."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "mode": self.mode,
            "trustDomain": self.trust_domain,
            "destinations": {
                dest: [_rule_to_json(r) for r in sorted(rules, key=lambda r: r.origin)]
                for dest, rules in sorted(self.destinations.items())
            },
            "services": {k: _service_to_json(v) for k, v in sorted(self.services.items())},
            "splits": {k: _split_to_json(v) for k, v in sorted(self.splits.items())},
        }

    @property
    def hash(self) -> str:
        digest = self._hash
        if digest is None:
            digest = content_hash(self.content())
            object.__setattr__(self, "_hash", digest)
        return digest

    def to_dict(self) -> dict[str, Any]:
        doc = self.content()
        digest = self._hash
        if digest is None:
            digest = content_hash(doc)
            object.__setattr__(self, "_hash", digest)
        return {"revision": self.revision, "hash": digest, **doc}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def with_revision(self, revision: int) -> MeshPolicy:
        return replace(self, revision=revision)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MeshPolicy:
        try:
            return _from_dict(doc)
        except MeshPolicyFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MeshPolicyFormatError(f"invalid MeshPolicy document: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> MeshPolicy:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise MeshPolicyFormatError(f"MeshPolicy is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise MeshPolicyFormatError("MeshPolicy must be a JSON object")
        return cls.from_dict(doc)


def content_hash(content: dict[str, Any]) -> str:
    blob = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + sha256_hex(blob)


def _match_to_json(m: HttpMatch) -> dict[str, Any]:
    return {
        "origin": m.origin,
        "methods": list(m.methods),
        "pathRegex": m.path_regex,
        "headers": [[k, v] for k, v in m.headers],
    }


def _rule_to_json(r: AuthzRule) -> dict[str, Any]:
    return {
        "origin": r.origin,
        "sources": sorted(r.sources),
        "http": [_match_to_json(m) for m in r.http],
        "tcpPorts": None if r.tcp_ports is None else sorted(r.tcp_ports),
        "udpPorts": None if r.udp_ports is None else sorted(r.udp_ports),
        "ports": sorted(r.ports),
    }


def _service_to_json(s: Service) -> dict[str, Any]:
    eps = sorted(s.endpoints, key=lambda e: (e.address, e.port, e.identity))
    return {
        "ports": sorted(s.ports),
        "endpoints": [{"address": e.address, "port": e.port, "identity": e.identity} for e in eps],
    }


def _split_to_json(s: Split) -> dict[str, Any]:
    return {
        "origin": s.origin,
        "backends": [{"service": b.service, "weight": b.weight} for b in s.backends],
        "matches": [_match_to_json(m) for m in s.matches],
    }


# Readers of the JSON form. Each value is taken only as the type the writer gives it: a
# string where a list belongs was read as its characters (`"methods": "GET"` as G, E, T), and
# `"tcpPorts": ""` as no ports, which means all ports: a widening from a malformed document,
# which must be refused so that the proxy keeps its last good policy.


def _fail(where: str, what: str, value: Any) -> MeshPolicyFormatError:
    return MeshPolicyFormatError(f"{where}: must be {what}, not {json.dumps(value)[:60]}")


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise _fail(where, "a string", v)
    return v


def _int(v: Any, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise _fail(where, "a whole number", v)
    return v


def _revision(v: Any) -> int:
    """0 to MAX_REVISION, as `smictl compile --revision` takes: -1 was installed and shown as
    `policy_revision -1`, what /metrics says before any policy."""
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_REVISION:
        raise _fail("revision", f"a whole number from 0 to {MAX_REVISION}", v)
    return v


def _port(v: Any, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not is_port(v):
        raise _fail(where, f"a port ({PORT_RANGE})", v)
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(where, "a list", v)
    return v


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(where, "an object", v)
    return v


def _ports(v: Any, where: str) -> tuple[int, ...]:
    return tuple(_port(p, f"{where}[{i}]") for i, p in enumerate(_list(v, where)))


def _optional_ports(v: Any, where: str) -> tuple[int, ...] | None:
    return None if v is None else _ports(v, where)


def _match_from(d: Any, where: str) -> HttpMatch:
    d = _obj(d, where)
    path = d.get("pathRegex")
    headers = []
    for i, pair in enumerate(_list(d.get("headers", []), f"{where}.headers")):
        at = f"{where}.headers[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(at, "a [name, value] pair", pair)
        headers.append((_str(pair[0], at), _str(pair[1], at)))
    return HttpMatch(
        origin=_str(d.get("origin"), f"{where}.origin"),
        methods=tuple(
            _str(m, f"{where}.methods[{i}]")
            for i, m in enumerate(_list(d.get("methods", []), f"{where}.methods"))
        ),
        path_regex=None if path is None else _str(path, f"{where}.pathRegex"),
        headers=tuple(headers),
    )


def _rule_from(d: Any, where: str) -> AuthzRule:
    d = _obj(d, where)
    return AuthzRule(
        origin=_str(d.get("origin"), f"{where}.origin"),
        sources=tuple(
            _str(x, f"{where}.sources[{i}]")
            for i, x in enumerate(_list(d.get("sources"), f"{where}.sources"))
        ),
        http=tuple(
            _match_from(m, f"{where}.http[{i}]")
            for i, m in enumerate(_list(d.get("http", []), f"{where}.http"))
        ),
        tcp_ports=_optional_ports(d.get("tcpPorts"), f"{where}.tcpPorts"),
        udp_ports=_optional_ports(d.get("udpPorts"), f"{where}.udpPorts"),
        ports=_ports(d.get("ports", []), f"{where}.ports"),
    )


def _service_from(v: Any, where: str) -> Service:
    v = _obj(v, where)
    endpoints = []
    for i, item in enumerate(_list(v.get("endpoints", []), f"{where}.endpoints")):
        at = f"{where}.endpoints[{i}]"
        e = _obj(item, at)
        endpoints.append(
            Endpoint(
                address=_str(e.get("address"), f"{at}.address"),
                port=_port(e.get("port"), f"{at}.port"),
                identity=_str(e.get("identity"), f"{at}.identity"),
            )
        )
    return Service(ports=_ports(v.get("ports", []), f"{where}.ports"), endpoints=tuple(endpoints))


def _split_from(v: Any, where: str) -> Split:
    v = _obj(v, where)
    backends = []
    for i, item in enumerate(_list(v.get("backends"), f"{where}.backends")):
        at = f"{where}.backends[{i}]"
        b = _obj(item, at)
        weight = _int(b.get("weight"), f"{at}.weight")
        if weight < 0:
            raise _fail(f"{at}.weight", "a whole number >= 0", weight)
        service = _str(b.get("service"), f"{at}.service")
        backends.append(SplitBackend(service=service, weight=weight))
    return Split(
        origin=_str(v.get("origin"), f"{where}.origin"),
        backends=tuple(backends),
        matches=tuple(
            _match_from(m, f"{where}.matches[{i}]")
            for i, m in enumerate(_list(v.get("matches", []), f"{where}.matches"))
        ),
    )


def _from_dict(doc: dict[str, Any]) -> MeshPolicy:
    version = doc.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise MeshPolicyFormatError(
            f"MeshPolicy schemaVersion {version!r} is not supported (this reader knows "
            f"{SCHEMA_VERSION})"
        )
    mode = doc.get("mode", "deny")
    if mode not in MODES:
        raise MeshPolicyFormatError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    destinations = _obj(doc.get("destinations"), "destinations")
    return MeshPolicy(
        revision=_revision(doc.get("revision", 0)),
        mode=mode,
        trust_domain=_str(doc.get("trustDomain", "cluster.local"), "trustDomain"),
        destinations={
            k: tuple(
                _rule_from(r, f"destinations[{k}][{i}]")
                for i, r in enumerate(_list(v, f"destinations[{k}]"))
            )
            for k, v in destinations.items()
        },
        services={
            k: _service_from(v, f"services[{k}]")
            for k, v in _obj(doc.get("services", {}), "services").items()
        },
        splits={
            k: _split_from(v, f"splits[{k}]")
            for k, v in _obj(doc.get("splits", {}), "splits").items()
        },
    )

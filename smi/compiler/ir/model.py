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

SCHEMA_VERSION = 1

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


def _match_from(d: dict[str, Any]) -> HttpMatch:
    return HttpMatch(
        origin=str(d["origin"]),
        methods=tuple(str(x) for x in d.get("methods", ())),
        path_regex=None if d.get("pathRegex") is None else str(d["pathRegex"]),
        headers=tuple((str(k), str(v)) for k, v in d.get("headers", ())),
    )


def _ports(v: Any) -> tuple[int, ...] | None:
    return None if v is None else tuple(int(p) for p in v)


def _rule_from(d: dict[str, Any]) -> AuthzRule:
    return AuthzRule(
        origin=str(d["origin"]),
        sources=tuple(str(s) for s in d["sources"]),
        http=tuple(_match_from(m) for m in d.get("http", ())),
        tcp_ports=_ports(d.get("tcpPorts")),
        udp_ports=_ports(d.get("udpPorts")),
        ports=tuple(int(p) for p in d.get("ports", ())),
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
    return MeshPolicy(
        revision=int(doc.get("revision", 0)),
        mode=mode,
        trust_domain=str(doc.get("trustDomain", "cluster.local")),
        destinations={
            str(k): tuple(_rule_from(r) for r in v) for k, v in doc["destinations"].items()
        },
        services={
            str(k): Service(
                ports=tuple(int(p) for p in v.get("ports", ())),
                endpoints=tuple(
                    Endpoint(
                        address=str(e["address"]), port=int(e["port"]), identity=str(e["identity"])
                    )
                    for e in v.get("endpoints", ())
                ),
            )
            for k, v in doc.get("services", {}).items()
        },
        splits={
            str(k): Split(
                origin=str(v["origin"]),
                backends=tuple(
                    SplitBackend(service=str(b["service"]), weight=int(b["weight"]))
                    for b in v["backends"]
                ),
                matches=tuple(_match_from(m) for m in v.get("matches", ())),
            )
            for k, v in doc.get("splits", {}).items()
        },
    )

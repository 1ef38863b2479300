"""`ProxyConfig`: everything one proxy process needs, built once from flags or `SMI_PROXY_*`.

Flags win over environment variables; every flag has one (`--inbound` ↔ `SMI_PROXY_INBOUND`,
repeated values comma-separated). Parsing problems are `ProxyConfigError`s naming the flag.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from dataclasses import dataclass, field

from proxy.exchange import Limits
from proxy.token import TokenError, read_token
from proxy.urls import UrlError, split_url
from smi.identity import (
    DEFAULT_TRUST_DOMAIN,
    DNS_LABEL,
    MAX_LABEL,
    Identity,
    IdentityError,
    check_trust_domain,
)

# `--bind` (and `--outbound-bind`, `--admin-bind`) value meaning every address of the pod in
# each family it has: `::` accepting IPv4 too, or 0.0.0.0 where the kernel has no IPv6. The
# injector sets it, since it cannot know whether a pod is IPv4-only, IPv6-only or dual-stack.
EVERY_ADDRESS = "*"
# What a listener can bind to but a peer cannot dial: never an address to advertise.
WILDCARDS = frozenset({EVERY_ADDRESS, "0.0.0.0", "::"})  # noqa: S104 - names, not binds


class ProxyConfigError(ValueError):
    """A flag or environment variable has a value the proxy cannot use."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass(frozen=True, slots=True)
class InboundPort:
    """Listen on `port` (mTLS) in front of the app's `app_port`."""

    port: int
    app_port: int


@dataclass(frozen=True, slots=True)
class OutboundTcpPort:
    """Listen on `port` (plain, for the app) and relay every connection to `service`."""

    port: int
    service: str


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    identity: Identity
    policy: str  # a file path or an http(s) URL of the control plane
    ca: str | None  # the mesh CA as a file, or inline in `ca_pem`
    inbound: tuple[InboundPort, ...] = ()
    outbound: int | None = None
    outbound_tcp: tuple[OutboundTcpPort, ...] = ()
    admin: int | None = None
    cert: str | None = None
    key: str | None = None
    csr_url: str | None = None
    token: str = ""  # as read at start-up (checked there); re-read for every use
    token_file: str | None = None
    endpoints: str | None = None
    bind: str = "127.0.0.1"  # the inbound (mTLS) listeners
    # The outbound listeners take plain HTTP and TCP and send it with this workload's
    # certificate: reachable from another pod, they would let it call as this workload.
    outbound_bind: str = "127.0.0.1"
    admin_bind: str = "127.0.0.1"
    app_host: str = "127.0.0.1"
    limits: Limits = field(default_factory=Limits)
    connect_timeout: float = 1.0
    drain_timeout: float = 10.0
    watch_interval: float = 1.0
    ports_file: str | None = None
    access_log: str | None = None
    access_log_sample: float = 1.0
    register: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (app port, services)
    advertise_address: str | None = None
    control_plane: str | None = None  # base URL; defaults to the policy URL's origin
    ca_pem: str | None = None
    # The CA that signed the control plane's serving certificate, where it is not the mesh CA
    # (the Helm chart keeps them apart); a file, or inline.
    control_plane_ca: str | None = None
    control_plane_ca_pem: str | None = None

    @property
    def policy_is_url(self) -> bool:
        return _is_url(self.policy)

    @property
    def control_plane_url(self) -> str | None:
        if self.control_plane:
            return self.control_plane.rstrip("/")
        if self.policy_is_url:
            return split_url(self.policy).origin
        return None


def _is_url(text: str) -> bool:
    """Whether a --policy value is a URL rather than a file: http(s) in any case (the scheme is
    case-insensitive, RFC 3986 §3.1; `HTTPS://cp/...` read as a file name failed as missing)."""
    return text[:8].lower() == "https://" or text[:7].lower() == "http://"


def _origin(url: str) -> str | None:
    """`scheme://host:port` of a control-plane URL, None for a file path."""
    if not _is_url(url):
        return None
    return split_url(url).origin


def _check_url(url: str | None, option: str) -> None:
    if url:
        try:
            split_url(url)
        except UrlError as exc:
            raise ProxyConfigError(option, str(exc)) from exc


def _port(text: str, option: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits) > 65535:
        raise ProxyConfigError(option, f"{text!r} is not a port number")
    return int(digits)


def parse_inbound(text: str) -> InboundPort:
    port, sep, app = text.partition(":")
    if not sep:
        raise ProxyConfigError("--inbound", f"{text!r} is not PORT:APP_PORT")
    app_port = _port(app, "--inbound")
    if app_port == 0:  # (a listen port of 0 asks the kernel for one; an app has a port)
        raise ProxyConfigError("--inbound", f"{text!r}: the app's port is 1-65535")
    return InboundPort(_port(port, "--inbound"), app_port)


def _outbound_tcp(values: list[str]) -> tuple[OutboundTcpPort, ...]:
    """The `--outbound-tcp` listeners, one per listen port and per Service: they are keyed by
    Service, so a second one of a Service was bound and went unreported."""
    out = tuple(parse_outbound_tcp(v) for v in _many(values))
    _given_once("--outbound-tcp", "listen port", [t.port for t in out])
    _given_once("--outbound-tcp", "service", [t.service for t in out])
    return out


def _no_port_twice(inbound: tuple[InboundPort, ...]) -> None:
    """One listener per app port, and one app per listen port: two `--inbound` of one listen
    port failed as "address already in use" (as if another process held it), and two of one
    app port bound both but reported one (the listeners are keyed by app port)."""
    _given_once("--inbound", "listen port", [i.port for i in inbound])
    _given_once("--inbound", "app port", [i.app_port for i in inbound])


def _given_once(option: str, what: str, keys: list[int] | list[str]) -> None:
    """Refuse a key given twice; a port of 0 (the kernel picks one) may repeat."""
    seen: set[int | str] = set()
    for key in keys:
        if key in seen and key != 0:
            raise ProxyConfigError(option, f"{what} {key} is given twice")
        seen.add(key)


# A Service, as the policy names it: a namespace and a name, each a DNS-1123 label.
_SERVICE = re.compile(rf"{DNS_LABEL}/{DNS_LABEL}")


def parse_outbound_tcp(text: str) -> OutboundTcpPort:
    port, sep, service = text.partition(":")
    ns, slash, name = service.partition("/")
    if not sep or not slash or not ns or not name:
        raise ProxyConfigError("--outbound-tcp", f"{text!r} is not PORT:NAMESPACE/SERVICE")
    if not _SERVICE.fullmatch(service) or max(len(ns), len(name)) > MAX_LABEL:
        # (`shop/db:5432`, `shop/db/extra`: a Service nobody can have, every connection closed)
        raise ProxyConfigError(
            "--outbound-tcp", f"{text!r}: {service!r} is not NAMESPACE/SERVICE (DNS labels)"
        )
    return OutboundTcpPort(_port(port, "--outbound-tcp"), service)


def parse_register(text: str, inbound: tuple[InboundPort, ...]) -> tuple[int, tuple[str, ...]]:
    port, sep, names = text.partition("=")
    services = tuple(n.strip() for n in names.split(",") if n.strip())
    if not sep or not services:
        raise ProxyConfigError("--register", f"{text!r} is not APP_PORT=SERVICE[,SERVICE...]")
    app_port = _port(port, "--register")
    if app_port not in {i.app_port for i in inbound}:
        raise ProxyConfigError("--register", f"{app_port} is not the APP_PORT of any --inbound")
    return app_port, services


def host(text: str) -> str:
    """An address flag's value as sockets take it: an IPv6 literal is also accepted in the
    brackets of URLs and `host:port` forms (`[fd00::1]`), which `bind` and `connect` refuse."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    return text


def flag_or_env(values: list[str] | None, variable: str) -> list[str]:
    """A repeatable flag's values, or else its SMI_PROXY_ variable's: given, the flags replace
    the variable ("flags win"), where argparse appends a flag's values to its default (a
    stale SMI_PROXY_INBOUND in a pod opened a listener beside the flag's)."""
    if values is not None:
        return values
    value = os.environ.get(f"SMI_PROXY_{variable}")
    return [value] if value else []


def _many(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _required(value: str | None, option: str) -> str:
    if not value:
        env = "SMI_PROXY_" + option.lstrip("-").upper().replace("-", "_")
        raise ProxyConfigError(option, f"required (or set {env})")
    return value


def from_args(args: argparse.Namespace) -> ProxyConfig:
    trust_domain = args.trust_domain or DEFAULT_TRUST_DOMAIN
    try:
        check_trust_domain(trust_domain)
    except IdentityError as exc:
        raise ProxyConfigError("--trust-domain", str(exc)) from exc
    try:
        identity = Identity.parse(_required(args.identity, "--identity"), trust_domain=trust_domain)
    except IdentityError as exc:
        raise ProxyConfigError("--identity", str(exc)) from exc
    inbound = tuple(parse_inbound(v) for v in _many(flag_or_env(args.inbound, "INBOUND")))
    _no_port_twice(inbound)
    outbound_tcp = _outbound_tcp(flag_or_env(args.outbound_tcp, "OUTBOUND_TCP"))
    outbound = None if args.outbound in (None, "") else _port(str(args.outbound), "--outbound")
    if not inbound and outbound is None and not outbound_tcp:
        raise ProxyConfigError("--inbound", "give at least one of --inbound, --outbound")
    policy = _required(args.policy, "--policy")
    _check_url(args.control_plane, "--control-plane")
    _check_url(args.csr_url, "--csr-url")
    if _is_url(policy):
        _check_url(policy, "--policy")
    csr_url = args.csr_url or None
    csr_flag = "--csr-url"  # the flag the CSR URL comes from, for errors about it
    if csr_url is None and not (args.cert and args.key):
        # A proxy fed by a control plane gets its certificate there too (DESIGN.md §5).
        base = args.control_plane or _origin(args.policy or "")
        if base is None:
            raise ProxyConfigError("--cert", "give --cert and --key, or --csr-url")
        csr_url = base.rstrip("/") + "/mesh/v1/certificates"
        csr_flag = "--control-plane" if args.control_plane else "--policy"
    register = tuple(
        parse_register(v.strip(), inbound)
        for value in flag_or_env(args.register, "REGISTER")
        for v in value.split(";")
        if v.strip()
    )
    token = ""
    if args.token_file:
        # Checked as it is at every later read (proxy.token), but here a bad file stops the
        # start: there is no earlier good token to fall back on.
        try:
            token = read_token(args.token_file)
        except TokenError as exc:
            raise ProxyConfigError("--token-file", f"{args.token_file}: {exc}") from exc
    config = ProxyConfig(
        identity=identity,
        policy=policy,
        ca=args.ca or None,
        ca_pem=args.ca_pem or None,
        control_plane_ca=args.control_plane_ca or None,
        control_plane_ca_pem=args.control_plane_ca_pem or None,
        inbound=inbound,
        outbound=outbound,
        outbound_tcp=outbound_tcp,
        admin=None if args.admin in (None, "") else _port(str(args.admin), "--admin"),
        cert=args.cert or None,
        key=args.key or None,
        csr_url=csr_url,
        token=token,
        token_file=args.token_file or None,
        endpoints=args.endpoints or None,
        bind=host(args.bind),
        outbound_bind=host(args.outbound_bind),
        admin_bind=host(args.admin_bind),
        app_host=host(args.app_host),
        limits=Limits(
            max_header_bytes=args.max_header_bytes,
            max_headers=args.max_headers,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            response_timeout=args.response_timeout,
            tunnel_idle_timeout=args.tunnel_idle_timeout,
        ),
        connect_timeout=args.connect_timeout,
        drain_timeout=args.drain_timeout,
        watch_interval=args.watch_interval,
        ports_file=args.ports_file or None,
        access_log=args.access_log or None,
        access_log_sample=args.access_log_sample,
        register=register,
        advertise_address=host(args.advertise_address or "") or None,
        control_plane=args.control_plane or None,
    )
    if config.ca is None and not config.ca_pem:
        raise ProxyConfigError("--ca", "required (or set SMI_PROXY_CA, or SMI_PROXY_CA_PEM)")
    if config.policy_is_url and not config.token:
        # Known at start; at run time it would be a proxy that never turns ready, logging 401s.
        raise ProxyConfigError(
            "--token-file",
            "needed with a --policy URL: the control plane serves the policy only to workloads "
            "that prove their identity (a bootstrap token from `smictl certs token`, or the "
            "pod's ServiceAccount token)",
        )
    if config.csr_url and not config.token:
        # The same for certificates: every CSR would be a 401, and the proxy never ready.
        raise ProxyConfigError(
            "--token-file",
            f"needed with {csr_flag}: the control plane signs a workload's certificate only "
            "for a token that proves its identity (or give --cert and --key)",
        )
    _check_registration(config)
    _check_token_in_clear(config, csr_flag=csr_flag)
    return config


def _check_token_in_clear(config: ProxyConfig, *, csr_flag: str) -> None:
    """Refuse an http:// URL that the workload's token would go to. The token gets
    certificates for this identity and reads the whole mesh policy: sent in clear, it is
    anyone's on the path (as `smictl admit --opa-token-file` refuses an http --opa-url)."""
    if not config.token:
        return  # nothing secret is sent; without a token the control plane answers 401
    # (flag, its value as given, the URL the token goes to)
    sent: list[tuple[str, str, str]] = []
    if config.policy_is_url:
        sent.append(("--policy", config.policy, config.policy))
    if config.csr_url:
        sent.append((csr_flag, _given(config, csr_flag), config.csr_url))
    base = config.control_plane_url
    if config.register and base is not None:
        flag = "--control-plane" if config.control_plane else "--policy"
        sent.append((flag, _given(config, flag), f"{base}/mesh/v1/endpoints"))
    for flag, given, url in sent:
        if split_url(url).scheme == "http":
            to = "" if url == given else f" (to {url})"
            raise ProxyConfigError(
                flag, f"{given} would send the workload's token in clear{to}; use https"
            )


def _given(config: ProxyConfig, flag: str) -> str:
    given = {
        "--policy": config.policy,
        "--control-plane": config.control_plane,
        "--csr-url": config.csr_url,
    }[flag]
    return given or ""


def _check_registration(config: ProxyConfig) -> None:
    if not config.register:
        return
    if config.control_plane_url is None:
        raise ProxyConfigError(
            "--register", "needs the control plane: a --policy URL or --control-plane URL"
        )
    if not config.token:
        raise ProxyConfigError("--register", "needs --token-file (the workload's token)")
    if config.advertise_address is None and config.bind in WILDCARDS:
        # Peers would be sent to `*`, or to 0.0.0.0 / `::`, which each peer dials as itself.
        raise ProxyConfigError(
            "--advertise-address",
            f"needed with --register when --bind is {config.bind!r} (not an address peers "
            "can connect to): give this workload's address",
        )
    # The control plane registers IP literals only (a name would be resolved by every peer, as
    # the peer sees it): refuse a name here, at start, not as a 400 at every registration.
    advertised, flag = (
        (config.advertise_address, "--advertise-address")
        if config.advertise_address is not None
        else (config.bind, "--bind")
    )
    if ip_family(advertised) is None:
        raise ProxyConfigError(
            flag, f"{advertised!r} is not an IP address; registration advertises an address"
        )


def ip_family(text: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal, as socket.inet_pton reads it, else None (no
    `ipaddress`: the proxy keeps its imports small)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except OSError:
            continue
        return family
    return None

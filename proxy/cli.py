"""`smictl proxy`: run the sidecar for one workload (flags, or `SMI_PROXY_*` variables)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smi.cli import HelpFormatter

EXIT_OK, EXIT_CONFIG, EXIT_STARTUP = 0, 2, 1


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"SMI_PROXY_{name}", default)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "proxy",
        formatter_class=HelpFormatter,
        help="run the sidecar proxy of one workload",
        description="Sidecar proxy: mTLS identities, route authorization, traffic splits. "
        "Every flag can also be set as SMI_PROXY_<FLAG> (e.g. SMI_PROXY_INBOUND=15006:8080).",
    )
    add = p.add_argument
    add("--identity", default=_env("IDENTITY"), help="this workload: NS/SA or a SPIFFE id")
    add("--trust-domain", default=_env("TRUST_DOMAIN"), help="default: cluster.local")
    add(
        "--inbound",
        action="append",
        default=None,  # (else SMI_PROXY_INBOUND: `proxy.config.flag_or_env`)
        metavar="PORT:APP_PORT",
        help="mTLS listener PORT in front of the app's APP_PORT (repeatable)",
    )
    add(
        "--outbound",
        default=_env("OUTBOUND"),
        metavar="PORT",
        help="plain HTTP listener for the app's outgoing requests (Host names the service)",
    )
    add(
        "--outbound-tcp",
        action="append",
        default=None,
        metavar="PORT:NS/SERVICE",
        help="plain TCP listener relayed to SERVICE (repeatable)",
    )
    add("--admin", default=_env("ADMIN"), metavar="PORT", help="/metrics, /ready, /config")
    add(
        "--policy",
        default=_env("POLICY"),
        metavar="FILE|URL",
        help="MeshPolicy JSON file (watched) or control-plane URL (long poll)",
    )
    add(
        "--endpoints",
        default=_env("ENDPOINTS"),
        metavar="FILE",
        help='endpoints JSON {"ns/svc": [{"address","port","identity"}]} (watched)',
    )
    add("--ca", default=_env("CA"), metavar="FILE", help="mesh CA certificate(s), PEM")
    add("--ca-pem", default=_env("CA_PEM"), metavar="PEM", help="the same, inline (not a file)")
    add(
        "--control-plane-ca",
        default=_env("CONTROL_PLANE_CA"),
        metavar="FILE",
        help="CA certificate(s) of the control plane's serving certificate (default: --ca)",
    )
    add(
        "--control-plane-ca-pem",
        default=_env("CONTROL_PLANE_CA_PEM"),
        metavar="PEM",
        help="the same, inline (not a file)",
    )
    add("--cert", default=_env("CERT"), metavar="FILE", help="workload certificate, PEM")
    add("--key", default=_env("KEY"), metavar="FILE", help="workload key, PEM")
    add(
        "--csr-url",
        default=_env("CSR_URL"),
        metavar="URL",
        help="get certificates from the control plane instead of --cert/--key",
    )
    add(
        "--token-file",
        default=_env("TOKEN_FILE"),
        metavar="FILE",
        help="bearer token proving this identity to the control plane",
    )
    add(
        "--bind",
        default=_env("BIND", "127.0.0.1"),
        help="listen address of the inbound listeners (default 127.0.0.1; '*' is every "
        "address, IPv4 and IPv6)",
    )
    add(
        "--outbound-bind",
        default=_env("OUTBOUND_BIND", "127.0.0.1"),
        help="listen address of the outbound listeners (default 127.0.0.1: they send as this "
        "workload, so only its own pod may reach them)",
    )
    add(
        "--admin-bind",
        default=_env("ADMIN_BIND", "127.0.0.1"),
        help="listen address of the admin listener (default 127.0.0.1)",
    )
    add("--app-host", default=_env("APP_HOST", "127.0.0.1"), help="where the app listens")
    _number(
        p,
        "max-header-bytes",
        32768,
        _COUNT,
        metavar="BYTES",
        help="largest request head (and trailers) accepted, else 431 (default 32768)",
    )
    _number(
        p,
        "max-headers",
        100,
        _COUNT,
        metavar="N",
        help="most header lines in a request head accepted, else 431 (default 100)",
    )
    for name, default, what in (
        ("header-timeout", 10.0, "to read a request head (408)"),
        ("body-timeout", 30.0, "between request body reads (408)"),
        (
            "idle-timeout",
            60.0,
            "for an idle keep-alive connection, and for a stream or upgraded connection "
            "(WebSocket) a peer stops reading",
        ),
        (
            "tunnel-idle-timeout",
            3600.0,
            "for an upgraded connection (WebSocket) with no bytes either way; 0: none",
        ),
        ("response-timeout", 30.0, "for the upstream's response (504)"),
        ("connect-timeout", 1.0, "to connect upstream (503)"),
        ("drain-timeout", 10.0, "for requests in flight on SIGTERM"),
        ("watch-interval", 1.0, "between looks at watched files"),
    ):
        kind = _KINDS.get(name, _SECONDS)
        _number(p, name, default, kind, metavar="SECONDS", help=f"seconds {what}")
    add(
        "--register",
        action="append",
        default=None,
        metavar="APP_PORT=SVC[,SVC]",
        help="register the inbound listener of APP_PORT as an endpoint of these services with "
        "the control plane (local mode; repeatable; ';' between them in the variable)",
    )
    add(
        "--advertise-address",
        default=_env("ADVERTISE_ADDRESS"),
        help="address other proxies reach the inbound listeners at (default: --bind)",
    )
    add(
        "--control-plane",
        default=_env("CONTROL_PLANE"),
        metavar="URL",
        help="control plane base URL (default: the origin of a --policy URL)",
    )
    add(
        "--ports-file",
        default=_env("PORTS_FILE"),
        metavar="FILE",
        help="write the bound ports here as JSON once listening (useful with port 0)",
    )
    add("--access-log", default=_env("ACCESS_LOG"), metavar="FILE|-", help="JSON access log")
    _number(
        p,
        "access-log-sample",
        1.0,
        _FRACTION,
        metavar="FRACTION",
        help="share of requests written to the access log, 0 to 1 (default 1: every one)",
    )
    add("--log-level", default=_env("LOG_LEVEL", "info"), choices=LOG_LEVELS, help="default: info")
    p.set_defaults(func=run)


LOG_LEVELS = ("debug", "info", "warning", "error")


def _checked_log_level(args: argparse.Namespace) -> None:
    """`--log-level` from SMI_PROXY_LOG_LEVEL, checked: argparse checks `choices` only on a
    flag, and took the variable unread (`verbose` was an internal error)."""
    from proxy.config import ProxyConfigError

    level = str(args.log_level).strip().lower()
    if level not in LOG_LEVELS:
        raise ProxyConfigError(
            "--log-level",
            f"SMI_PROXY_LOG_LEVEL={args.log_level!r} is not one of {', '.join(LOG_LEVELS)}",
        )
    args.log_level = level


@dataclass(frozen=True, slots=True)
class _Bad:
    """A numeric flag or variable that is not a usable number, kept as the flag's value for
    `run` to report. argparse would report it with a usage screen and no code, and converting
    a variable while the parser is built broke every smictl command, `--help` included."""

    option: str
    message: str


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a numeric flag holds: how its text is read and which values make sense."""

    read: Callable[[str], float]
    ok: Callable[[float], bool]
    expected: str


# NaN fails every comparison, and infinity is not below `inf`: both are refused.
_COUNT = _Kind(int, lambda v: 0 < v < math.inf, "a positive whole number")
_SECONDS = _Kind(float, lambda v: 0 < v < math.inf, "a positive number of seconds")
_FRACTION = _Kind(float, lambda v: 0 <= v <= 1, "a fraction from 0 to 1")
# A drain of 0 s is a choice (stop at once on SIGTERM, as Envoy's --drain-time-s 0 allows).
_DRAIN = _Kind(float, lambda v: 0 <= v < math.inf, "zero or a positive number of seconds")
# So is no idle limit on tunnels (Envoy's idle timeouts take 0 for none; Linkerd sets none on
# WebSockets). Infinity is refused all the same: 0 says it.
_NONE_OR_SECONDS = _Kind(
    float, lambda v: 0 <= v < math.inf, "0 (none) or a positive number of seconds"
)
# The timeouts whose values are not simply positive.
_KINDS = {"drain-timeout": _DRAIN, "tunnel-idle-timeout": _NONE_OR_SECONDS}


def _number(p: argparse.ArgumentParser, name: str, default: float, kind: _Kind, **kw: Any) -> None:
    """Add `--NAME`, defaulting to `SMI_PROXY_NAME` (or `default`), both read by `kind`."""
    option, variable = f"--{name}", "SMI_PROXY_" + name.upper().replace("-", "_")

    def read(text: str, *, source: str = "") -> float | _Bad:
        try:
            value = kind.read(text.strip())
        except ValueError:
            value = math.nan
        if kind.ok(value):
            return value
        return _Bad(option, f"{source}{text!r} is not {kind.expected}")

    raw = os.environ.get(variable, "")
    value = read(raw, source=f"{variable}=") if raw else default
    p.add_argument(option, type=read, default=value, **kw)


def run(args: argparse.Namespace) -> int:
    from proxy.app import Proxy, StartupError
    from proxy.config import ProxyConfigError, from_args

    try:
        _checked_log_level(args)
    except ProxyConfigError as exc:
        print(f"smictl proxy: {exc.option}: {exc.message} (SMI7101)", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        bad = next((v for v in vars(args).values() if isinstance(v, _Bad)), None)
        if bad is not None:
            raise ProxyConfigError(bad.option, bad.message)
        config = from_args(args)
    except ProxyConfigError as exc:
        print(f"smictl proxy: {exc.option}: {exc.message} (SMI7101)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        try:
            runner.run(_serve(config, Proxy))
        except StartupError as exc:
            print(f"smictl proxy: {exc} (SMI7102)", file=sys.stderr)
            return EXIT_STARTUP
    return EXIT_OK


async def _serve(config: Any, proxy_cls: Any) -> None:
    proxy = proxy_cls(config)
    await proxy.serve()

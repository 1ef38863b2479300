"""`smictl serve` and `smictl certs`; `apply`, `get`, `delete` live in `webhook.store_cli`.

`serve` turns its flags into the `SMI_WEBHOOK_*` environment (webhook/settings.py) and replaces
itself with gunicorn running `webhook:create_app()` with `webhook/gunicorn.conf.py`, so the
process tree is exactly what a container runs. Without certificate flags in local mode it uses
(and on first start creates) a CA and serving certificate in the state directory.

In local mode `serve` also needs the admin token, the one credential of the local store API
(`smictl apply/get/delete`): `admin.token` (mode 0600) in the certs directory, created on start
when missing, unless --admin-token-file names another file (which must then exist).

`certs init` writes a mesh CA, a serving certificate and an admin token; `certs issue` renews a
serving certificate from an existing CA (the running server picks it up); `certs workload` issues a
workload (SPIFFE) certificate for a proxy that reads its certificate from files; `certs token`
prints a bootstrap token bound to one workload identity (local mode's proof of identity).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import math
import os
import secrets
import socket
import ssl
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from smi.commands import flags
from smi.compiler.ir.model import MODES
from smi.errors import Diagnostic, SMIError
from smi.identity import DEFAULT_TRUST_DOMAIN, Identity, IdentityError
from smi.pki import CertificateAuthority, PKIError, not_after
from webhook.client import ADMIN_TOKEN_FILE, read_admin_token
from webhook.settings import (
    Settings,
    control_plane_url_problem,
    default_state_dir,
    namespaces_problem,
    problem,
    proxy_image_problem,
)
from webhook.store_cli import register_apply, register_delete, register_get

__all__ = ["register_apply", "register_certs", "register_delete", "register_get", "register_serve"]

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
EXIT_USAGE = 2  # smi.cli's: a flag value that cannot work


def default_certs_dir() -> Path:
    return default_state_dir() / "certs"


# --- serve --------------------------------------------------------------------------------------


def register_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the control plane (admission, conversion, policy, certs)")
    env = _env_defaults()
    p.add_argument("--bind", default=env.bind, help="HOST:PORT or fd://N (default %(default)s)")
    p.add_argument(
        "--certs-dir",
        type=flags.path,
        help="directory of ca.crt/ca.key/server.crt/server.key and admin.token"
        " (created as by `smictl certs init` if missing)",
    )
    p.add_argument(
        "--admin-token-file",
        type=flags.path,
        default=env.admin_token_file,
        metavar="FILE",
        help="the token the local store API (`smictl apply/get/delete`) requires "
        "(default: admin.token in the certs directory, created if missing)",
    )
    p.add_argument(
        "--cert", type=flags.path, default=env.cert_file, help="serving certificate (PEM)"
    )
    p.add_argument("--key", type=flags.path, default=env.key_file, help="serving key (PEM)")
    p.add_argument(
        "--mesh-ca-cert",
        type=flags.path,
        default=env.mesh_ca_cert_file,
        metavar="FILE",
        help="the mesh CA certificate, which signs workload certificates (default: ca.crt in "
        "the certs directory; without a mesh CA /mesh/v1/certificates answers 503)",
    )
    p.add_argument(
        "--mesh-ca-key",
        type=flags.path,
        default=env.mesh_ca_key_file,
        metavar="FILE",
        help="the mesh CA's key (default: ca.key in the certs directory)",
    )
    p.add_argument(
        "--serving-ca",
        type=flags.path,
        default=env.serving_ca_file,
        help="CA certificate(s) that signed --cert: injected proxies verify the control plane "
        "with it (default: the mesh CA)",
    )
    p.add_argument(
        "--client-ca",
        type=flags.path,
        default=env.client_ca_file,
        metavar="FILE",
        help="CA certificate(s) of the client certificate the kube-apiserver presents to "
        "admission webhooks: /validate and /mutate then answer only it (default: any caller)",
    )
    p.add_argument(
        "--client-names",
        default=",".join(env.client_names),
        metavar="NAMES",
        help="with --client-ca, the certificate CNs or DNS names taken as the API server, "
        "comma-separated (default %(default)s)",
    )
    p.add_argument(
        "--policies",
        type=flags.path,
        action="append",
        default=None,
        help="directory of Rego admission policies (repeatable)",
    )
    p.add_argument(
        "--no-shipped-policies",
        dest="shipped_policies",
        action="store_false",
        default=env.shipped_policies,
        help="load only the --policies directories, not the policies shipped with smictl",
    )
    p.add_argument(
        "--parameters",
        type=flags.path,
        default=env.parameters,
        metavar="FILE",
        help="YAML/JSON mapping the policies read as data.parameters (as `smictl admit "
        "--parameters`)",
    )
    p.add_argument(
        "--trust-domain",
        default=env.trust_domain,
        help="SPIFFE trust domain of the mesh's workload identities (default %(default)s)",
    )
    p.add_argument("--mode", choices=MODES, default=env.mode, help="MeshPolicy mode")
    p.add_argument(
        "--excluded-namespaces",
        default=",".join(env.excluded_namespaces),
        metavar="NAMES",
        help="namespaces admitted and never injected, comma-separated (default %(default)s)",
    )
    p.add_argument(
        "--proxy-image",
        default=env.proxy_image,
        metavar="IMAGE",
        help="image of the injected proxy (default %(default)s)",
    )
    p.add_argument(
        "--no-native-sidecars",
        dest="native_sidecars",
        action="store_false",
        default=env.native_sidecars,
        help="inject the proxy as a regular container (first, held until ready) instead of a "
        "native sidecar init container: for clusters older than Kubernetes 1.29",
    )
    p.add_argument(
        "--service-account",
        default=env.service_account,
        help="the control plane's own ns/sa (its requests are always admitted)",
    )
    p.add_argument(
        "--store", type=flags.path, default=env.store, help="SQLite store file (local mode)"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--kubeconfig", type=flags.path_text, default=env.kubeconfig, help="Kubernetes mode"
    )
    group.add_argument("--in-cluster", action="store_true", help="Kubernetes mode, in a pod")
    p.add_argument(
        "--control-plane-url",
        default=env.control_plane_url,
        help="URL injected proxies use to reach this control plane",
    )
    p.add_argument(
        "--max-review-bytes",
        type=int,
        default=env.max_review_bytes,
        metavar="N",
        help="larger request bodies get a 400 (default %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=env.workers,
        metavar="N",
        help="gunicorn worker processes (default %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=env.threads,
        metavar="N",
        help="threads per worker for requests that may block: store writes, certificate "
        "signing (default %(default)s)",
    )
    p.add_argument(
        "--max-parked-polls",
        type=int,
        default=env.max_parked_polls,
        help="waiting proxy long polls one worker holds on its event loop, ~30 KiB each "
        "(default %(default)s)",
    )
    p.add_argument(
        "--address-file",
        type=flags.path,
        help="write the bound https://host:port here once listening",
    )
    p.set_defaults(func=run_serve)


def _env_defaults() -> Settings:
    """Flag defaults from SMI_WEBHOOK_*. Parsers are built for every smictl command, so a bad
    variable must not break them: fall back here, and `serve` reports it when it runs."""
    try:
        return Settings.from_env()
    except SMIError:
        return Settings()


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings `args` ask for; the certs directory and admin token they need are made
    when missing, but only once every flag value is known to work (FlagError otherwise):
    `--bind nonsense --certs-dir ./x` left a whole CA in ./x behind its error."""
    return _serve_settings(args)[0]


def _serve_settings(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """`settings_from_args`, and the certs directory it used (None: certificate flags only)."""
    base = Settings.from_env()
    policies = tuple(args.policies) if args.policies else base.policies
    settings = replace(
        base,
        bind=args.bind,
        cert_file=args.cert,
        key_file=args.key,
        mesh_ca_cert_file=args.mesh_ca_cert,
        mesh_ca_key_file=args.mesh_ca_key,
        serving_ca_file=args.serving_ca,
        client_ca_file=args.client_ca,
        client_names=tuple(n.strip() for n in args.client_names.split(",") if n.strip()),
        policies=policies,
        shipped_policies=args.shipped_policies,
        parameters=args.parameters,
        trust_domain=args.trust_domain,
        mode=args.mode,
        excluded_namespaces=tuple(
            n.strip() for n in args.excluded_namespaces.split(",") if n.strip()
        ),
        proxy_image=args.proxy_image,
        native_sidecars=args.native_sidecars,
        service_account=args.service_account,
        store=args.store,
        kubeconfig="in-cluster" if args.in_cluster else args.kubeconfig,
        control_plane_url=args.control_plane_url,
        max_review_bytes=args.max_review_bytes,
        workers=args.workers,
        threads=args.threads,
        max_parked_polls=args.max_parked_polls,
    )
    certs_dir = args.certs_dir
    if certs_dir is None and settings.cert_file is None and not settings.kubernetes:
        certs_dir = default_certs_dir()
    if certs_dir is not None:
        settings = replace(
            settings,
            cert_file=settings.cert_file or certs_dir / SERVER_CERT,
            key_file=settings.key_file or certs_dir / SERVER_KEY,
            mesh_ca_cert_file=settings.mesh_ca_cert_file or certs_dir / CA_CERT,
            mesh_ca_key_file=settings.mesh_ca_key_file or certs_dir / CA_KEY,
        )
    new_token = None
    if not settings.kubernetes:  # Kubernetes mode serves no store API (RBAC guards the store)
        token = args.admin_token_file
        if token is None:
            token = new_token = _admin_token_default(settings, certs_dir)
        settings = replace(settings, admin_token_file=token)
    problems = flag_problems(settings)
    if problems:
        raise FlagError(problems)
    if certs_dir is not None:
        ensure_certs(certs_dir)
    if new_token is not None:
        ensure_admin_token(new_token, flag="--certs-dir" if certs_dir else "--admin-token-file")
    return settings, certs_dir


def _admin_token_default(settings: Settings, certs_dir: Path | None) -> Path:
    """`admin.token` in the certs directory; without one (`--cert`/`--key` given), beside the
    CA clients verify the server with: where `smictl apply` looks for it (webhook/client.py)."""
    if certs_dir is not None:
        return certs_dir / ADMIN_TOKEN_FILE
    anchor = settings.serving_ca_file or settings.mesh_ca_cert_file or settings.cert_file
    return (anchor.parent if anchor is not None else default_certs_dir()) / ADMIN_TOKEN_FILE


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings, certs_dir = _serve_settings(args)
        preflight(settings, address_file=args.address_file)
    except FlagError as exc:
        for d in exc.diagnostics:
            print(d.format(), file=sys.stderr)
        return EXIT_USAGE
    # Here, once: every gunicorn worker opens the store, and each would say it again.
    for warning in _exposed(settings, certs_dir):
        print(f"smictl serve: warning: {warning}", file=sys.stderr)
    env = {**os.environ, **settings.to_env()}
    if args.address_file is not None:
        env["SMI_WEBHOOK_ADDRESS_FILE"] = str(args.address_file)
    conf = Path(__file__).with_name("gunicorn.conf.py")
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "webhook:create_app()"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own argv, no shell


class FlagError(SMIError):
    """A `serve` flag value that cannot work, alone or with another flag: a usage error (exit
    2, as argparse's own), found before any file is made. A file that is missing or cannot be
    read, or an environment `serve` cannot run in, stays an SMIError (exit 1)."""


def _exposed(settings: Settings, certs_dir: Path | None) -> list[str]:
    """The certs directory and store file other local users can open. `serve` makes both
    private (0700, 0600); one made before, or by the user, keeps its mode, and its SMI objects
    (the mesh's authorization graph) or CA directory are then no longer the server user's."""
    found = []
    if certs_dir is not None:
        found += _open_directory("--certs-dir", certs_dir)
    if not settings.kubernetes:
        store = settings.store_path()
        mode = _open_to_others(store)
        if mode is not None:
            found.append(f"--store {store}: other users can open it, and read every SMI object "
                         f"(mode {mode:04o}); keep it private: chmod 600 {store}*")  # fmt: skip
    return found


def _open_directory(flag: str, directory: Path) -> list[str]:
    mode = _open_to_others(directory)
    if mode is None:
        return []
    return [f"{flag} {directory}: other users can open it (mode {mode:04o}); "
            f"keep it private: chmod 700 {directory}"]  # fmt: skip


def _open_to_others(path: Path) -> int | None:
    """The permission bits of `path` when its group or other users have any, else None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None  # missing: made private when it is created
    return mode if mode & 0o077 else None


# `serve`'s numeric flags and the fields they set: argparse checks that they are numbers,
# `flag_problems` that they are in range, by the rules of their SMI_WEBHOOK_* variables.
_NUMERIC_FLAGS = {
    "--max-review-bytes": "max_review_bytes",
    "--workers": "workers",
    "--threads": "threads",
    "--max-parked-polls": "max_parked_polls",
}


def flag_problems(settings: Settings) -> list[Diagnostic]:
    """Flag values (or their SMI_WEBHOOK_* variables') that cannot work, read from the values
    alone: no file is opened. Each of these used to start gunicorn, which then failed in its
    own way (a traceback for `--bind nope`, one from its config file for `--workers 0`), or
    served with it (SPIFFE IDs `spiffe:///ns/...` for `--trust-domain ''`, a control plane
    never admitted as itself for `--service-account nope`, proxies injected with a
    control-plane URL they cannot use)."""
    problems = []
    bind = _bind_problem(settings.bind)
    if bind:
        problems.append(f"--bind {settings.bind!r}: {bind}")
    problems += _client_name_problems(settings)
    for flag, name in _NUMERIC_FLAGS.items():
        value = getattr(settings, name)
        reason = problem(name, value)
        if reason is not None:
            problems.append(f"{flag} {value}: {reason}")
    trust_domain = flags.trust_domain_problem(settings.trust_domain)
    if trust_domain:
        problems.append(f"--trust-domain: {trust_domain}")
    try:
        Identity.parse(settings.service_account, trust_domain=DEFAULT_TRUST_DOMAIN)
    except IdentityError as exc:
        problems.append(f"--service-account: {exc}")
    url = control_plane_url_problem(settings.control_plane_url)
    if url:
        problems.append(f"--control-plane-url {settings.control_plane_url!r}: {url}")
    for namespace in settings.excluded_namespaces:  # one line per bad name
        bad = namespaces_problem([namespace])
        if bad:
            problems.append(f"--excluded-namespaces: {bad}")
    image = proxy_image_problem(settings.proxy_image)
    if image:
        problems.append(f"--proxy-image: {image}")
    found = [Diagnostic("SMI7009", p) for p in problems]
    if (settings.cert_file is None) != (settings.key_file is None):
        found.append(Diagnostic("SMI7003", "--cert and --key go together"))
    return found


def _client_name_problems(settings: Settings) -> list[str]:
    """Why `--client-ca`/`--client-names` cannot work together with the other flags."""
    if settings.client_ca_file is None:
        return []
    if settings.cert_file is None:
        return ["--client-ca: needs TLS (--cert/--key or --certs-dir): a client certificate "
                "is verified in the TLS handshake"]  # fmt: skip
    if not settings.client_names:
        return ["--client-names: must name at least one client (a certificate CN or DNS name)"]
    return []


def _client_ca_problems(settings: Settings) -> list[str]:
    """Why the `--client-ca` file cannot work: one that holds no certificate would make every
    review a 401 (gunicorn's workers would fail to build TLS instead)."""
    ca = settings.client_ca_file
    if ca is None or not ca.is_file():
        return []  # a missing one is reported with the other missing files
    try:
        ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError, ValueError) as exc:
        return [f"--client-ca {ca}: no PEM CA certificate could be read ({exc})"]
    return []


def preflight(settings: Settings, *, address_file: Path | None = None) -> None:
    """Fail with one line per problem before gunicorn starts (its workers would retry
    forever): FlagError for flag values, then SMIError for files and the environment."""
    flag_values = flag_problems(settings)
    if flag_values:
        raise FlagError(flag_values)
    problems: list[Diagnostic] = []
    for name, path in (
        ("--cert", settings.cert_file),
        ("--key", settings.key_file),
        ("--mesh-ca-cert", settings.mesh_ca_cert_file),
        ("--mesh-ca-key", settings.mesh_ca_key_file),
        ("--serving-ca", settings.serving_ca_file),
        ("--client-ca", settings.client_ca_file),
    ):
        if path is not None and not path.is_file():
            problems.append(Diagnostic("SMI7003", f"{name} {path}: no such file"))
    problems += [Diagnostic("SMI7009", p) for p in _client_ca_problems(settings)]
    for directory in settings.policies:
        if not directory.is_dir():
            problems.append(Diagnostic("SMI1001", f"--policies {directory}: not a directory"))
    kubeconfig = settings.kubeconfig
    if kubeconfig == "in-cluster" and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        problems.append(
            Diagnostic(
                "SMI7009",
                "--in-cluster: not running in a Kubernetes pod "
                "(KUBERNETES_SERVICE_HOST is not set)",
            )
        )
    elif kubeconfig and kubeconfig != "in-cluster" and not Path(kubeconfig).is_file():
        problems.append(Diagnostic("SMI7009", f"--kubeconfig {kubeconfig}: no such file"))
    problems += [Diagnostic("SMI7009", p) for p in _path_problems(settings, address_file)]
    token = _admin_token_problem(settings)
    if token:
        problems.append(Diagnostic("SMI7009", token))
    listen = _listen_problem(settings.bind)
    if listen:
        problems.append(Diagnostic("SMI7009", listen))
    if problems:
        raise SMIError(problems)
    # Last, once the directories are known to exist: the policy set the workers will load
    # (shipped ones included), with its parameters. A module that does not parse was a
    # traceback in every worker and "Worker failed to boot" (exit 3); now it is its own
    # `file:line: message (SMI5001)`, exit 1. (Imported here: every smictl command imports
    # this module to build its parser, and the policy engine is not cheap to import.)
    from webhook.policies import check_policies

    check_policies(settings)


def _path_problems(settings: Settings, address_file: Path | None) -> list[str]:
    """Paths that name a directory where gunicorn or its workers need a file."""
    problems = []
    if not settings.kubernetes and settings.store_path().is_dir():
        problems.append(f"--store {settings.store_path()}: is a directory, not a SQLite file")
    if address_file is not None and (address_file.is_dir() or not address_file.parent.is_dir()):
        problems.append(f"--address-file {address_file}: not a file in an existing directory")
    return problems


def _admin_token_problem(settings: Settings) -> str | None:
    """Why the workers could not read the admin token, or None: read here with the function
    they use, so a bad file is one line now rather than a server whose store API refuses
    everyone."""
    path = settings.admin_token_file
    if settings.kubernetes or path is None:
        return None
    try:
        read_admin_token(path)
    except FileNotFoundError:
        return f"--admin-token-file {path}: no such file"
    except OSError as exc:
        return f"--admin-token-file {path}: cannot read: {exc.strerror or exc}"
    except ValueError as exc:
        return f"--admin-token-file {path}: not an admin token: {exc}"
    return None


def _tcp_address(bind: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `[IPv6]:PORT` as gunicorn reads it, or None. gunicorn
    splits at the first colon outside brackets: `::1:8443` was host '' and port '', a
    traceback from its arbiter."""
    if bind.startswith("["):
        host, sep, port = bind[1:].partition("]:")
    else:
        host, sep, port = bind.partition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return None
    return host, int(port)


def _bind_problem(bind: str) -> str | None:
    """Why gunicorn cannot listen on `bind` (`HOST:PORT` or `fd://N`, docs/control-plane.md),
    or None. `unix:PATH` is gunicorn's too and left to it."""
    if bind.startswith("unix:"):
        return None
    if bind.startswith("fd://"):
        return None if bind[5:].isdigit() else "fd://N takes a file descriptor number"
    if _tcp_address(bind) is None:
        return "expected HOST:PORT with a port from 0 to 65535, or fd://N (IPv6: [ADDRESS]:PORT)"
    return None


def _listen_problem(bind: str) -> str | None:
    """Why nothing can listen on `bind` now, found by binding it (and closing it at once) as
    gunicorn will: with SO_REUSEADDR, so a port left in TIME_WAIT is no problem. A port in use
    was eleven `[ERROR] Connection in use` lines from gunicorn over five seconds, then exit 1."""
    address = _tcp_address(bind)
    if address is None or address[1] == 0:  # fd://, unix:, or any free port
        return None
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # gunicorn's choice
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.EADDRINUSE:
            reason += " (is another server running?)"
        return f"--bind {bind}: cannot listen there: {reason}; pass --bind HOST:PORT"
    return None


# --- certs --------------------------------------------------------------------------------------


def register_certs(sub: Any) -> None:
    p = sub.add_parser("certs", help="create the mesh CA, serving certificates, bootstrap tokens")
    certs = p.add_subparsers(dest="certs_command", metavar="ACTION", required=True)

    init = certs.add_parser(
        "init", help="create a CA, a serving certificate and an admin token in a directory"
    )
    init.add_argument("--dir", "--out", dest="dir", type=flags.path, default=default_certs_dir())
    _server_names(init)
    init.add_argument("--force", action="store_true", help="replace existing files")
    init.set_defaults(func=run_certs_init)

    issue = certs.add_parser("issue", help="issue (renew) a serving certificate from the CA")
    issue.add_argument(
        "--dir",
        "--ca-dir",
        dest="dir",
        type=flags.path,
        default=default_certs_dir(),
        help="where ca.crt/ca.key are (and server.crt/server.key go, unless --out)",
    )
    issue.add_argument("--out", type=flags.path, help="directory for server.crt/server.key")
    issue.add_argument("--cert-out", type=flags.path, help="default: OUT/server.crt")
    issue.add_argument("--key-out", type=flags.path, help="default: OUT/server.key")
    issue.add_argument("--days", type=_days, default=90, help=f"1 to {MAX_DAYS} (default 90)")
    _server_names(issue)
    issue.set_defaults(func=run_certs_issue)

    workload = certs.add_parser(
        "workload",
        help="issue a workload (SPIFFE) certificate for `smictl proxy --cert/--key`",
        description="A key and a workload certificate from the mesh CA, for a proxy that takes "
        "its certificate from files (`smictl proxy --cert F --key F`, renewed by SIGHUP) "
        "rather than by CSR from the control plane.",
    )
    _identity_flags(workload)
    workload.add_argument(
        "--dir", "--ca-dir", dest="dir", type=flags.path, default=default_certs_dir(),
        help="where ca.crt/ca.key are",
    )  # fmt: skip
    workload.add_argument("--cert-out", type=flags.path, help="default: ./<ns>-<sa>.crt")
    workload.add_argument("--key-out", type=flags.path, help="default: ./<ns>-<sa>.key")
    workload.add_argument(
        "--hours", type=_hours, default=24.0,
        help=f"lifetime, 1 second to {MAX_TOKEN_HOURS} hours (default 24, as by CSR)",
    )  # fmt: skip
    workload.set_defaults(func=run_certs_workload)

    token = certs.add_parser("token", help="print a bootstrap token bound to one identity")
    _identity_flags(token)
    token.add_argument(
        "--dir", type=flags.path, default=default_certs_dir(), help="where ca.crt/ca.key are"
    )
    token.add_argument(
        "--ttl-hours", type=_hours, default=24.0, help=f"1 second to {MAX_TOKEN_HOURS} hours"
    )
    token.set_defaults(func=run_certs_token)


# `--days` of `certs issue`: the certificate ends with the CA anyway; the bound only keeps the
# date arithmetic in range (10**30 days was an OverflowError, exit 70).
MAX_DAYS = 36500
# `--ttl-hours` of `certs token`: a year, the life of a mesh CA `certs init` makes; a token
# proves its identity until it expires, and rotating the CA is the only other way to end it.
MAX_TOKEN_HOURS = 8760


def _days(text: str) -> int:
    """argparse type of --days: `0` issued a certificate that had already expired (exit 0),
    `-5` one the X.509 library refused (exit 70)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of days from 1 to {MAX_DAYS}, not {text!r} (SMI7003)"
        )
    return value


def _hours(text: str) -> float:
    """argparse type of --ttl-hours: `-1` printed a token that had already expired, `nan` and
    `inf` were internal errors (exit 70)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 / 3600 <= value <= MAX_TOKEN_HOURS:
        raise argparse.ArgumentTypeError(
            f"expected hours from 1 second (0.0003) to {MAX_TOKEN_HOURS}, not {text!r} (SMI7003)"
        )
    return value


def _dns_name(text: str) -> str:
    """argparse type of --dns: a DNS name a certificate can carry (`*.` wildcard allowed,
    international names as their xn-- A-label). `''` and `é.local` were internal errors,
    `bad name` a certificate no client would match."""
    from smi.validation.names import is_subdomain

    name = text.removeprefix("*.")
    if not is_subdomain(name.lower()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a DNS name (letters, digits, '-' and '.'; "
            "an international name as its xn-- form) (SMI7003)"
        )
    return text


def _ip(text: str) -> str:
    """argparse type of --ip: refused at once, not after the CA was loaded (or, for `init`,
    as an internal error)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address (SMI7003)") from None
    return text


def _identity_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--identity", required=True, type=_identity, help="NS/SA or a SPIFFE ID")
    p.add_argument(
        "--trust-domain",
        type=_trust_domain,
        default=_env_defaults().trust_domain,
        help="trust domain of an NS/SA --identity (default %(default)s)",
    )


def _identity(text: str) -> str:
    """argparse type of --identity: a usage error (exit 2) at once, as `smictl explain --from`
    reports one, not a "certificate problem" (SMI7003, exit 1). Read again with --trust-domain
    when the command runs; the trust domain does not change what parses."""
    try:
        Identity.parse(text)
    except IdentityError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (SMI2006)") from None
    return text


def _trust_domain(text: str) -> str:
    """argparse type of --trust-domain: `''` was blamed on --identity, `x..y` signed a token
    for an ID no certificate has."""
    problem = flags.trust_domain_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem} (SMI2006)")
    return text


def _server_names(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dns",
        action="extend",
        nargs="+",
        default=None,
        type=_dns_name,
        help="DNS name for the serving certificate (default: localhost)",
    )
    p.add_argument(
        "--ip",
        action="extend",
        nargs="+",
        default=None,
        type=_ip,
        help="IP address for the serving certificate (default: 127.0.0.1, ::1)",
    )


def ensure_certs(directory: Path, *, flag: str = "--certs-dir") -> None:
    """Create CA and serving certificate in `directory` unless both already exist."""
    if all((directory / n).is_file() for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)):
        return
    write_certs(directory, dns=["localhost"], ips=["127.0.0.1", "::1"], flag=flag)


def new_admin_token() -> bytes:
    """32 random bytes, URL-safe, one line: the local store API's bearer token."""
    return secrets.token_urlsafe(32).encode() + b"\n"


def ensure_admin_token(path: Path, *, flag: str) -> None:
    """Create `path` with a new admin token unless it exists (mode 0600). The token is written
    to a temporary file and linked into place: a reader sees no file or the whole token, and
    a token another `serve` created meanwhile is kept, not replaced under its workers."""
    if path.exists() or path.is_symlink():  # an existing one is checked by `preflight`
        return
    _make_dir(path.parent, flag=flag)
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_admin_token())
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SMIError(
            Diagnostic("SMI7009", f"{path}: cannot create the admin token: "
                       f"{exc.strerror or exc}; pass --admin-token-file FILE", path=flag)
        ) from exc  # fmt: skip
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()


def write_certs(
    directory: Path,
    *,
    dns: list[str],
    ips: list[str],
    flag: str = "--dir",
    admin_token: bool = False,
) -> None:
    """A new CA and serving certificate in `directory`; with `admin_token` a new admin token
    too (`certs init`: `--force` is how a leaked certs directory is replaced). `serve` makes
    the token apart (`ensure_admin_token`), and only where it will use it."""
    ca = CertificateAuthority.create()
    try:
        cert, key = ca.issue_server(dns_names=dns, ip_addresses=ips)
    except PKIError as exc:
        raise SMIError(Diagnostic("SMI7003", str(exc))) from exc
    _make_dir(directory, flag=flag)
    files = [
        (flag, directory / CA_KEY, ca.key_pem(), True),
        (flag, directory / CA_CERT, ca.cert_pem(), False),
        (flag, directory / SERVER_KEY, key, True),
        (flag, directory / SERVER_CERT, cert, False),
    ]
    if admin_token:
        files.append((flag, directory / ADMIN_TOKEN_FILE, new_admin_token(), True))
    _write_all(files)


def _make_dir(directory: Path, *, flag: str) -> None:
    """`directory`, made private (0700, its missing parents too) if missing: it holds keys,
    and `serve`'s also the admin token."""
    from smi.store.sqlite import make_private_dirs  # (sqlite3 is not for every command)

    try:
        make_private_dirs(directory)
    except OSError as exc:
        reason = "not a directory" if isinstance(exc, FileExistsError) else exc.strerror
        raise SMIError(
            Diagnostic("SMI7003", f"{directory}: cannot create the directory: {reason}", path=flag)
        ) from exc


def _write_all(files: list[tuple[str, Path, bytes, bool]]) -> None:
    """Write every (flag, path, data, private) file, in order, or none of them: each to a
    temporary file beside it first, then renamed over it. A reader sees the old or the new
    file, never half of one; a target that cannot be written no longer leaves a new key
    beside the old certificate (a pair that does not match) or a half-made CA directory."""
    for flag, path, _, _ in files:
        if path.is_dir():  # renaming over it would fail only after the others were written
            raise SMIError(Diagnostic("SMI7003", f"{path}: is a directory", path=flag))
    staged: list[Path] = []
    current = files[0]
    try:
        for current in files:
            _, path, data, private = current
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
            staged.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        for current, tmp in zip(files, staged, strict=True):
            tmp.replace(current[1])
    except OSError as exc:
        for tmp in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        flag, path = current[:2]
        raise SMIError(
            Diagnostic("SMI7003", f"{path}: cannot write: {exc.strerror or exc}", path=flag)
        ) from exc


def run_certs_init(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    existing = [n for n in (CA_CERT, CA_KEY) if (directory / n).exists()]
    if existing and not args.force:
        raise SMIError(
            Diagnostic(
                "SMI7003",
                f"{directory / existing[0]} exists; pass --force "
                "to replace the CA (every workload cert with it)",
            )
        )
    write_certs(
        directory,
        dns=args.dns or ["localhost"],
        ips=args.ip or ["127.0.0.1", "::1"],
        flag="--dir",
        admin_token=True,
    )
    print(
        f"wrote {directory / CA_CERT}, {directory / CA_KEY}, {directory / SERVER_CERT}, "
        f"{directory / SERVER_KEY}, {directory / ADMIN_TOKEN_FILE}"
    )
    # A directory `init` made is private; one the user had keeps its mode, said once here.
    for warning in _open_directory("--dir", directory):
        print(f"smictl certs init: warning: {warning}", file=sys.stderr)
    return 0


def load_ca_dir(directory: Path) -> CertificateAuthority:
    try:
        return CertificateAuthority.load(
            (directory / CA_CERT).read_bytes(), (directory / CA_KEY).read_bytes()
        )
    except (OSError, PKIError) as exc:
        raise SMIError(
            Diagnostic("SMI7003", f"cannot load the CA from {directory}: {exc}")
        ) from exc


def run_certs_issue(args: argparse.Namespace) -> int:
    ca = load_ca_dir(args.dir)
    try:
        cert, key = ca.issue_server(
            dns_names=args.dns or ["localhost"],
            ip_addresses=args.ip or ["127.0.0.1", "::1"],
            ttl=timedelta(days=args.days),
        )
    except PKIError as exc:
        raise SMIError(Diagnostic("SMI7003", str(exc))) from exc
    out_dir: Path = args.out or args.dir
    cert_out = args.cert_out or out_dir / SERVER_CERT
    key_out = args.key_out or out_dir / SERVER_KEY
    if cert_out.absolute() == key_out.absolute():
        # The certificate was written over the key: a server reading the pair gets neither.
        raise SMIError(
            Diagnostic("SMI7003", f"{cert_out}: the certificate and key need two files",
                       path="--cert-out/--key-out")
        )  # fmt: skip
    _make_dir(out_dir, flag="--out" if args.out else "--dir")
    # Key first: a server that sees the new key with the old certificate keeps its old context
    # until the certificate lands too (webhook/tls.py).
    _write_all(
        [
            ("--key-out" if args.key_out else "--out", key_out, key, True),
            ("--cert-out" if args.cert_out else "--out", cert_out, cert, False),
        ]
    )
    print(f"wrote {cert_out}, {key_out}")
    ends = not_after(cert)
    if ends < datetime.now(UTC) + timedelta(days=args.days) - timedelta(minutes=1):
        print(
            f"smictl certs issue: note: the certificate ends with the mesh CA at "
            f"{ends.isoformat()}, before the {args.days} days asked for",
            file=sys.stderr,
        )
    return 0


def run_certs_workload(args: argparse.Namespace) -> int:
    # Both values passed their argparse types (_identity, _trust_domain): this parses.
    identity = Identity.parse(args.identity, trust_domain=args.trust_domain)
    ca = load_ca_dir(args.dir)
    lifetime = timedelta(seconds=max(1, int(args.hours * 3600)))
    try:
        cert, key = ca.issue_workload(identity, ttl=lifetime)
    except PKIError as exc:
        raise SMIError(Diagnostic("SMI7003", str(exc))) from exc
    stem = f"{identity.namespace}-{identity.service_account}"
    cert_out: Path = args.cert_out or Path(f"{stem}.crt")
    key_out: Path = args.key_out or Path(f"{stem}.key")
    if cert_out.absolute() == key_out.absolute():
        raise SMIError(
            Diagnostic("SMI7003", f"{cert_out}: the certificate and key need two files",
                       path="--cert-out/--key-out")
        )  # fmt: skip
    # Key first, as for `issue`: a proxy reloading on SIGHUP refuses a pair that does not match.
    _write_all(
        [
            ("--key-out", key_out, key, True),
            ("--cert-out", cert_out, cert, False),
        ]
    )
    print(f"wrote {cert_out}, {key_out} for {identity.spiffe_id}")
    ends = not_after(cert)
    if ends < datetime.now(UTC) + lifetime - timedelta(minutes=1):
        print(
            f"smictl certs workload: note: the certificate ends with the mesh CA at "
            f"{ends.isoformat()}, before the {args.hours:g} hours asked for",
            file=sys.stderr,
        )
    return 0


def run_certs_token(args: argparse.Namespace) -> int:
    from webhook.auth import BootstrapTokens, token_key

    # Both values passed their argparse types (_identity, _trust_domain): this parses.
    identity = Identity.parse(args.identity, trust_domain=args.trust_domain)
    ca = load_ca_dir(args.dir)
    tokens = BootstrapTokens(key=token_key(ca.key), trust_domain=identity.trust_domain)
    # At least a second: `--ttl-hours 0.0001` is 0.36 s, which `int` made a token expired at once.
    print(tokens.issue(identity, ttl_seconds=max(1, int(args.ttl_hours * 3600))))
    return 0

"""`smictl serve`; `certs` lives in `webhook.certs_cli`, `apply`, `get`, `delete` in
`webhook.store_cli`.

`serve` turns its flags into the `SMI_WEBHOOK_*` environment (webhook/settings.py) and replaces
itself with gunicorn running `webhook:create_app()` with `webhook/gunicorn.conf.py`, so the
process tree is exactly what a container runs. Without certificate flags in local mode it uses
(and on first start creates) a CA and serving certificate in the state directory.

In local mode `serve` also needs the admin token, the one credential of the local store API
(`smictl apply/get/delete`): `admin.token` (mode 0600) in the certs directory, created on start
when missing, unless --admin-token-file names another file (which must then exist).

"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import ssl
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from smi.commands import flags
from smi.compiler.ir.model import MODES
from smi.errors import Diagnostic, SMIError
from smi.identity import DEFAULT_TRUST_DOMAIN, Identity, IdentityError
from webhook.certs_cli import (
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    SERVER_KEY,
    default_certs_dir,
    ensure_admin_token,
    ensure_certs,
    env_defaults,
    load_ca_dir,
    open_directory,
    open_to_others,
    register_certs,
)
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

# (certs_cli's names are re-exported: the `certs` entry point and older imports name this module.)
__all__ = [
    "default_certs_dir",
    "ensure_admin_token",
    "ensure_certs",
    "load_ca_dir",
    "register_apply",
    "register_certs",
    "register_delete",
    "register_get",
    "register_serve",
]

EXIT_USAGE = 2  # smi.cli's: a flag value that cannot work


# --- serve --------------------------------------------------------------------------------------


def register_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the control plane (admission, conversion, policy, certs)")
    env = env_defaults()
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
    state = default_state_dir()
    inside = [p for p in (certs_dir, None if settings.kubernetes else settings.store_path()) if p]
    if any(p.absolute().is_relative_to(state.absolute()) for p in inside):
        # (the default home of both: a mode 0755 from before went without a word, README says
        # one warning)
        found += open_directory("state directory", state)
    if certs_dir is not None:
        found += open_directory("--certs-dir", certs_dir)
    if not settings.kubernetes:
        store = settings.store_path()
        mode = open_to_others(store)
        if mode is not None:
            found.append(f"--store {store}: other users can open it, and read every SMI object "
                         f"(mode {mode:04o}); keep it private: chmod 600 {store}*")  # fmt: skip
    return found


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
    store = settings.store_path()
    if not settings.kubernetes and store.is_dir():
        problems.append(f"--store {store}: is a directory, not a SQLite file")
    elif not settings.kubernetes:
        problem = _store_file_problem(store)
        if problem:
            problems.append(f"--store {store}: {problem}")
    if address_file is not None and (address_file.is_dir() or not address_file.parent.is_dir()):
        problems.append(f"--address-file {address_file}: not a file in an existing directory")
    return problems


_SQLITE_HEADER = b"SQLite format 3\x00"


def _store_file_problem(store: Path) -> str:
    """Why the workers could not open `store` as the SQLite store, or "": a file that is not a
    database was a `boot_failed` line per worker, then gunicorn's "App failed to load" (exit
    4), after the server had said it was listening. An empty file becomes the store."""
    from smi.store.sqlite import make_private_dirs

    try:
        if store.is_file():
            with store.open("rb") as f:
                head = f.read(len(_SQLITE_HEADER))
            return "" if not head or head == _SQLITE_HEADER else "is not a SQLite database"
        make_private_dirs(store.parent)  # (as the store makes it: 0700, missing parents too)
    except OSError as exc:
        return f"cannot be opened or created: {exc.strerror or exc}"
    return ""


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
        fd = bind[5:]
        return None if fd.isascii() and fd.isdigit() else "fd://N takes a file descriptor number"
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
    if os.environ.get("LISTEN_FDS"):
        return None  # systemd socket activation: gunicorn adopts the sockets it was handed
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

"""`smictl serve` and `smictl certs`; `apply`, `get`, `delete` live in `webhook.store_cli`.

`serve` turns its flags into the `SMI_WEBHOOK_*` environment (webhook/settings.py) and replaces
itself with gunicorn running `webhook:create_app()` with `webhook/gunicorn.conf.py`, so the
process tree is exactly what a container runs. Without certificate flags in local mode it uses
(and on first start creates) a CA and serving certificate in the state directory.

`certs init` writes a mesh CA and a serving certificate; `certs issue` renews a serving
certificate from an existing CA (the running server picks it up); `certs token` prints a
bootstrap token bound to one workload identity (local mode's proof of identity).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from smi.compiler.ir.model import MODES
from smi.errors import Diagnostic, SMIError
from smi.identity import Identity, IdentityError
from smi.pki import CertificateAuthority, PKIError
from webhook.settings import Settings, default_state_dir, problem
from webhook.store_cli import register_apply, register_delete, register_get

__all__ = ["register_apply", "register_certs", "register_delete", "register_get", "register_serve"]

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"


def default_certs_dir() -> Path:
    return default_state_dir() / "certs"


# --- serve --------------------------------------------------------------------------------------


def register_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the control plane (admission, conversion, policy, certs)")
    env = _env_defaults()
    p.add_argument("--bind", default=env.bind, help="HOST:PORT or fd://N (default %(default)s)")
    p.add_argument(
        "--certs-dir",
        type=Path,
        help="directory of ca.crt/ca.key/server.crt/server.key"
        " (created by `smictl certs init` if missing)",
    )
    p.add_argument("--cert", type=Path, default=env.cert_file, help="serving certificate (PEM)")
    p.add_argument("--key", type=Path, default=env.key_file, help="serving key (PEM)")
    p.add_argument("--mesh-ca-cert", type=Path, default=env.mesh_ca_cert_file)
    p.add_argument("--mesh-ca-key", type=Path, default=env.mesh_ca_key_file)
    p.add_argument(
        "--policies",
        type=Path,
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
    p.add_argument("--trust-domain", default=env.trust_domain)
    p.add_argument("--mode", choices=MODES, default=env.mode, help="MeshPolicy mode")
    p.add_argument("--excluded-namespaces", default=",".join(env.excluded_namespaces))
    p.add_argument("--proxy-image", default=env.proxy_image)
    p.add_argument(
        "--service-account",
        default=env.service_account,
        help="the control plane's own ns/sa (its requests are always admitted)",
    )
    p.add_argument("--store", type=Path, default=env.store, help="SQLite store file (local mode)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--kubeconfig", default=env.kubeconfig, help="Kubernetes mode")
    group.add_argument("--in-cluster", action="store_true", help="Kubernetes mode, in a pod")
    p.add_argument(
        "--control-plane-url",
        default=env.control_plane_url,
        help="URL injected proxies use to reach this control plane",
    )
    p.add_argument("--max-review-bytes", type=int, default=env.max_review_bytes)
    p.add_argument("--workers", type=int, default=env.workers)
    p.add_argument("--threads", type=int, default=env.threads)
    p.add_argument(
        "--address-file", type=Path, help="write the bound https://host:port here once listening"
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
    base = Settings.from_env()
    policies = tuple(args.policies) if args.policies else base.policies
    settings = replace(
        base,
        bind=args.bind,
        cert_file=args.cert,
        key_file=args.key,
        mesh_ca_cert_file=args.mesh_ca_cert,
        mesh_ca_key_file=args.mesh_ca_key,
        policies=policies,
        shipped_policies=args.shipped_policies,
        trust_domain=args.trust_domain,
        mode=args.mode,
        excluded_namespaces=tuple(
            n.strip() for n in args.excluded_namespaces.split(",") if n.strip()
        ),
        proxy_image=args.proxy_image,
        service_account=args.service_account,
        store=args.store,
        kubeconfig="in-cluster" if args.in_cluster else args.kubeconfig,
        control_plane_url=args.control_plane_url,
        max_review_bytes=args.max_review_bytes,
        workers=args.workers,
        threads=args.threads,
    )
    certs_dir = args.certs_dir
    if certs_dir is None and settings.cert_file is None and not settings.kubernetes:
        certs_dir = default_certs_dir()
    if certs_dir is not None:
        ensure_certs(certs_dir)
        settings = replace(
            settings,
            cert_file=settings.cert_file or certs_dir / SERVER_CERT,
            key_file=settings.key_file or certs_dir / SERVER_KEY,
            mesh_ca_cert_file=settings.mesh_ca_cert_file or certs_dir / CA_CERT,
            mesh_ca_key_file=settings.mesh_ca_key_file or certs_dir / CA_KEY,
        )
    return settings


def run_serve(args: argparse.Namespace) -> NoReturn:
    settings = settings_from_args(args)
    preflight(settings)
    env = {**os.environ, **settings.to_env()}
    if args.address_file is not None:
        env["SMI_WEBHOOK_ADDRESS_FILE"] = str(args.address_file)
    conf = Path(__file__).with_name("gunicorn.conf.py")
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "webhook:create_app()"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own argv, no shell


# `serve`'s numeric flags and the fields they set: argparse checks that they are numbers,
# `preflight` that they are in range, by the rules of their SMI_WEBHOOK_* variables.
_NUMERIC_FLAGS = {
    "--max-review-bytes": "max_review_bytes",
    "--workers": "workers",
    "--threads": "threads",
}


def preflight(settings: Settings) -> None:
    """Fail with one line before gunicorn starts (its workers would retry forever)."""
    problems: list[Diagnostic] = []
    for name, path in (
        ("--cert", settings.cert_file),
        ("--key", settings.key_file),
        ("--mesh-ca-cert", settings.mesh_ca_cert_file),
        ("--mesh-ca-key", settings.mesh_ca_key_file),
    ):
        if path is not None and not path.is_file():
            problems.append(Diagnostic("SMI7003", f"{name} {path}: no such file"))
    if (settings.cert_file is None) != (settings.key_file is None):
        problems.append(Diagnostic("SMI7003", "--cert and --key go together"))
    for directory in settings.policies:
        if not directory.is_dir():
            problems.append(Diagnostic("SMI1001", f"--policies {directory}: not a directory"))
    for flag, name in _NUMERIC_FLAGS.items():
        value = getattr(settings, name)
        reason = problem(name, value)
        if reason is not None:
            problems.append(Diagnostic("SMI7009", f"{flag} {value}: {reason}"))
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
    if problems:
        raise SMIError(problems)


# --- certs --------------------------------------------------------------------------------------


def register_certs(sub: Any) -> None:
    p = sub.add_parser("certs", help="create the mesh CA, serving certificates, bootstrap tokens")
    certs = p.add_subparsers(dest="certs_command", metavar="ACTION", required=True)

    init = certs.add_parser("init", help="create a CA and a serving certificate in a directory")
    init.add_argument("--dir", "--out", dest="dir", type=Path, default=default_certs_dir())
    _server_names(init)
    init.add_argument("--force", action="store_true", help="replace existing files")
    init.set_defaults(func=run_certs_init)

    issue = certs.add_parser("issue", help="issue (renew) a serving certificate from the CA")
    issue.add_argument(
        "--dir",
        "--ca-dir",
        dest="dir",
        type=Path,
        default=default_certs_dir(),
        help="where ca.crt/ca.key are (and server.crt/server.key go, unless --out)",
    )
    issue.add_argument("--out", type=Path, help="directory for server.crt/server.key")
    issue.add_argument("--cert-out", type=Path, help="default: OUT/server.crt")
    issue.add_argument("--key-out", type=Path, help="default: OUT/server.key")
    issue.add_argument("--days", type=int, default=90)
    _server_names(issue)
    issue.set_defaults(func=run_certs_issue)

    token = certs.add_parser("token", help="print a bootstrap token bound to one identity")
    token.add_argument("--identity", required=True, help="ns/sa or a SPIFFE ID")
    token.add_argument("--dir", type=Path, default=default_certs_dir())
    token.add_argument("--trust-domain", default=_env_defaults().trust_domain)
    token.add_argument("--ttl-hours", type=float, default=24.0)
    token.set_defaults(func=run_certs_token)


def _server_names(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dns",
        action="extend",
        nargs="+",
        default=None,
        help="DNS name for the serving certificate (default: localhost)",
    )
    p.add_argument(
        "--ip",
        action="extend",
        nargs="+",
        default=None,
        help="IP address for the serving certificate (default: 127.0.0.1, ::1)",
    )


def ensure_certs(directory: Path) -> None:
    """Create CA and serving certificate in `directory` unless both already exist."""
    if all((directory / n).is_file() for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)):
        return
    write_certs(directory, dns=["localhost"], ips=["127.0.0.1", "::1"])


def write_certs(directory: Path, *, dns: list[str], ips: list[str]) -> None:
    ca = CertificateAuthority.create()
    cert, key = ca.issue_server(dns_names=dns, ip_addresses=ips)
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / CA_KEY, ca.key_pem(), private=True)
    _write(directory / CA_CERT, ca.cert_pem())
    _write(directory / SERVER_KEY, key, private=True)
    _write(directory / SERVER_CERT, cert)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically (a reader sees the old or the new file, never half of one)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


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
    write_certs(directory, dns=args.dns or ["localhost"], ips=args.ip or ["127.0.0.1", "::1"])
    print(
        f"wrote {directory / CA_CERT}, {directory / CA_KEY}, {directory / SERVER_CERT}, "
        f"{directory / SERVER_KEY}"
    )
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
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_out = args.cert_out or out_dir / SERVER_CERT
    key_out = args.key_out or out_dir / SERVER_KEY
    # Key first: a server that sees the new key with the old certificate keeps its old context
    # until the certificate lands too (webhook/tls.py).
    _write(key_out, key, private=True)
    _write(cert_out, cert)
    print(f"wrote {cert_out}, {key_out}")
    return 0


def run_certs_token(args: argparse.Namespace) -> int:
    from webhook.auth import BootstrapTokens, token_key

    try:
        identity = Identity.parse(args.identity, trust_domain=args.trust_domain)
    except IdentityError as exc:
        raise SMIError(Diagnostic("SMI7003", str(exc), path="--identity")) from exc
    ca = load_ca_dir(args.dir)
    tokens = BootstrapTokens(key=token_key(ca.key), trust_domain=identity.trust_domain)
    print(tokens.issue(identity, ttl_seconds=int(args.ttl_hours * 3600)))
    return 0

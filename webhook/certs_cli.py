"""`smictl certs`: the mesh CA, serving certificates, workload certificates and bootstrap tokens.

`certs init` writes a mesh CA, a serving certificate and an admin token; `certs issue` renews a
serving certificate from an existing CA (the running server picks it up); `certs workload` issues a
workload (SPIFFE) certificate for a proxy that reads its certificate from files; `certs token`
prints a bootstrap token bound to one workload identity (local mode's proof of identity).
`smictl serve` (webhook.cli) uses `ensure_certs` and `ensure_admin_token` for its first start.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import secrets
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from smi import atomicfile
from smi.commands import flags
from smi.errors import Diagnostic, SMIError
from smi.identity import Identity, IdentityError
from smi.pki import CertificateAuthority, PKIError, not_after
from webhook.client import ADMIN_TOKEN_FILE
from webhook.settings import Settings, default_state_dir

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
EXIT_USAGE = 2  # smi.cli's: a flag value that cannot work


def default_certs_dir() -> Path:
    return default_state_dir() / "certs"


def env_defaults() -> Settings:
    """Flag defaults from SMI_WEBHOOK_*. Parsers are built for every smictl command, so a bad
    variable must not break them: fall back here, and `serve` reports it when it runs."""
    try:
        return Settings.from_env()
    except SMIError:
        return Settings()


def open_directory(flag: str, directory: Path) -> list[str]:
    mode = open_to_others(directory)
    if mode is None:
        return []
    return [f"{flag} {directory}: other users can open it (mode {mode:04o}); "
            f"keep it private: chmod 700 {directory}"]  # fmt: skip


def open_to_others(path: Path) -> int | None:
    """The permission bits of `path` when its group or other users have any, else None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None  # missing: made private when it is created
    return mode if mode & 0o077 else None


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
        default=env_defaults().trust_domain,
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
    new temporary file beside it first (an unpredictable name, created exclusively:
    smi.atomicfile), then renamed over it. A reader sees the old or the new file, never half
    of one; a target that cannot be written no longer leaves a new key beside the old
    certificate (a pair that does not match) or a half-made CA directory."""
    for flag, path, _, _ in files:
        if path.is_dir():  # renaming over it would fail only after the others were written
            raise SMIError(Diagnostic("SMI7003", f"{path}: is a directory", path=flag))
    staged: list[str] = []
    current = files[0]
    try:
        for current in files:
            _, path, data, private = current
            staged.append(atomicfile.stage(path, data, mode=0o600 if private else 0o644))
        for current, tmp in zip(files, staged, strict=True):
            os.replace(tmp, current[1])  # noqa: PTH105 - staged names are str
    except OSError as exc:
        for tmp in staged:
            atomicfile.discard(tmp)
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
    for warning in open_directory("--dir", directory):
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
    _check_outputs(cert_out, key_out, ca_dir=args.dir)
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
    _note_cut_short("issue", cert, timedelta(days=args.days), f"{args.days} days")
    return 0


def _check_outputs(cert_out: Path, key_out: Path, *, ca_dir: Path) -> None:
    """Refuse outputs that would lose a file: the certificate written over its key (a server
    reading the pair gets neither), or either over the mesh CA's own certificate or key (the
    CA gone without a word, where `certs init` asks for --force to replace it)."""
    if cert_out.absolute() == key_out.absolute():
        raise SMIError(
            Diagnostic("SMI7003", f"{cert_out}: the certificate and key need two files",
                       path="--cert-out/--key-out")
        )  # fmt: skip
    ca_files = {(ca_dir / name).resolve() for name in (CA_CERT, CA_KEY)}
    for flag, path in (("--cert-out", cert_out), ("--key-out", key_out)):
        if path.resolve() in ca_files:
            raise SMIError(
                Diagnostic("SMI7003", f"{path} is the mesh CA's own file: write elsewhere "
                           "(`certs init --force` replaces the CA)", path=flag)
            )  # fmt: skip


def _note_cut_short(action: str, cert: bytes, asked: timedelta, said: str) -> None:
    """Say so when the CA's own end cut the certificate's life short of what was asked."""
    ends = not_after(cert)
    if ends < datetime.now(UTC) + asked - timedelta(minutes=1):
        print(
            f"smictl certs {action}: note: the certificate ends with the mesh CA at "
            f"{ends.isoformat()}, before the {said} asked for",
            file=sys.stderr,
        )


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
    _check_outputs(cert_out, key_out, ca_dir=args.dir)
    # Key first, as for `issue`: a proxy reloading on SIGHUP refuses a pair that does not match.
    _write_all(
        [
            ("--key-out", key_out, key, True),
            ("--cert-out", cert_out, cert, False),
        ]
    )
    print(f"wrote {cert_out}, {key_out} for {identity.spiffe_id}")
    _note_cut_short("workload", cert, lifetime, f"{args.hours:g} hours")
    return 0


def run_certs_token(args: argparse.Namespace) -> int:
    from webhook.auth import BootstrapTokens, token_key

    # Both values passed their argparse types (_identity, _trust_domain): this parses.
    identity = Identity.parse(args.identity, trust_domain=args.trust_domain)
    ca = load_ca_dir(args.dir)
    try:
        # (A token only gets a certificate the CA signs: once it has expired, none. The CSR
        # endpoint answers 503 then, and `certs workload` refuses alike.)
        ca.check_valid()
    except PKIError as exc:
        raise SMIError(Diagnostic("SMI7003", str(exc))) from exc
    tokens = BootstrapTokens(key=token_key(ca.key), trust_domain=identity.trust_domain)
    # At least a second: `--ttl-hours 0.0001` is 0.36 s, which `int` made a token expired at once.
    print(tokens.issue(identity, ttl_seconds=max(1, int(args.ttl_hours * 3600))))
    return 0

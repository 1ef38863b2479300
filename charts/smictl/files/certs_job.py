"""Certificates for the smictl chart without cert-manager, and CRD conversion wiring.

Runs inside the smictl image (Python, the kubernetes client, cryptography and `smictl`), mounted
from a ConfigMap by the chart's hook Jobs and rotation CronJob. Phases:

- `prepare` (pre-install/pre-upgrade): make sure the mesh CA Secret exists (never replaced:
  workloads trust it), make sure the serving CA is not close to expiry (a replaced CA stays in
  the bundle until it expires), publish the CA bundle to the webhook configurations and CRDs
  that already exist, then issue the serving certificate if it is missing, close to expiry,
  for other DNS names or from another CA. Publishing the bundle before the new certificate is
  written means the API server never sees a certificate it does not trust.
- `inject` (post-install/post-upgrade): point the CRDs' conversion webhook at this release's
  Service, publish the CA bundle (provider "job"; cert-manager's cainjector does it otherwise,
  so this waits until it has), then wait until the webhook answers over TLS with that bundle.
- `rotate` (CronJob): `prepare` then `inject`.

Certificates come from `smictl certs init --out DIR` and `smictl certs issue --ca-dir DIR
--dns NAME... --out DIR`; the files they write are recognised by content (certificate or key,
CA or not), so their names do not matter. Exit status 0 on success, 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PREVIOUS_CA_KEY = "previous-ca.crt"
CONFLICT_RETRIES = 5


class JobError(Exception):
    """A problem this Job cannot fix; printed as one line."""


# --- PEM material -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, with the file names `smictl certs` gave them."""

    cert_pem: bytes
    key_pem: bytes
    cert_name: str = "tls.crt"
    key_name: str = "tls.key"

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _public_der(public: Any) -> bytes:
    return bytes(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def read_pair(directory: Path, *, want_ca: bool) -> KeyPair:
    """The one certificate (CA or not, as asked) among a directory's PEM files, and the key
    that belongs to it. `smictl certs init` writes a CA pair and a server pair side by side."""
    certs: dict[str, bytes] = {}
    keys: dict[str, bytes] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        data = path.read_bytes()
        if b"PRIVATE KEY-----" in data:
            keys[path.name] = data
        elif b"-----BEGIN CERTIFICATE-----" in data:
            certs[path.name] = data
    kind = "CA" if want_ca else "leaf"
    chosen = {n: c for n, c in certs.items() if _is_ca(_load(c)) == want_ca}
    if len(chosen) != 1:
        raise JobError(f"{directory}: expected one {kind} certificate, found {len(chosen)}")
    ((cert_name, cert_pem),) = chosen.items()
    wanted = _public_der(_load(cert_pem).public_key())
    for key_name, key_pem in keys.items():
        key = serialization.load_pem_private_key(key_pem, password=None)
        if _public_der(key.public_key()) == wanted:
            return KeyPair(cert_pem, key_pem, cert_name, key_name)
    raise JobError(f"{directory}: no private key matches the {kind} certificate {cert_name}")


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def expires_within(cert_pem: bytes, days: int, *, now: datetime) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_after_utc - now <= timedelta(days=days)


def dns_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName))


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --- smictl certs -------------------------------------------------------------------------------


class CertTool(Protocol):
    def init_ca(self, out: Path) -> None: ...

    def issue(self, *, ca_dir: Path, dns: Sequence[str], out: Path) -> None: ...


@dataclass(frozen=True)
class SmictlCerts:
    """`smictl certs`, the project's own PKI, as a subprocess."""

    executable: str = "smictl"

    def init_ca(self, out: Path) -> None:
        self._run(["certs", "init", "--out", str(out)])

    def issue(self, *, ca_dir: Path, dns: Sequence[str], out: Path) -> None:
        self._run(["certs", "issue", "--ca-dir", str(ca_dir), "--dns", *dns, "--out", str(out)])

    def _run(self, args: list[str]) -> None:
        done = subprocess.run(
            [self.executable, *args], capture_output=True, text=True, check=False, timeout=60
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise JobError(f"smictl {' '.join(args[:2])} failed: {detail[-1] if detail else '?'}")


# --- Kubernetes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Everything the Job touches, from the chart's rendered arguments."""

    namespace: str
    service: str
    service_port: int
    dns: tuple[str, ...]
    serving_secret: str
    ca_secret: str
    mesh_ca_secret: str | None
    validating_webhook: str
    mutating_webhook: str | None
    crds: tuple[str, ...]
    provider: str
    certificate: str


@dataclass
class Cluster:
    """The three API groups the Job uses; any objects with the same methods work (tests)."""

    core: Any
    admission: Any
    extensions: Any
    log: Callable[[str], None] = field(default=print)


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def read_secret(cluster: Cluster, namespace: str, name: str) -> dict[str, bytes] | None:
    try:
        secret = cluster.core.read_namespaced_secret(name, namespace)
    except Exception as exc:
        if _status(exc) == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def write_secret(
    cluster: Cluster, *, namespace: str, name: str, data: dict[str, bytes], tls: bool
) -> None:
    from kubernetes import client

    body = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace, labels={"app.kubernetes.io/part-of": "smictl"}
        ),
        type="kubernetes.io/tls" if tls else "Opaque",
        data={k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    )
    try:
        cluster.core.create_namespaced_secret(namespace, body)
    except Exception as exc:
        if _status(exc) != 409:
            raise
        cluster.core.replace_namespaced_secret(name, namespace, body)
    cluster.log(f"secret {namespace}/{name} written")


def _update(
    read: Callable[[], Any], change: Callable[[Any], bool], replace: Callable[[Any], Any]
) -> bool:
    """Read-modify-replace with optimistic concurrency; False when the object is absent."""
    for _ in range(CONFLICT_RETRIES):
        try:
            obj = read()
        except Exception as exc:
            if _status(exc) == 404:
                return False
            raise
        if not change(obj):
            return True
        try:
            replace(obj)
        except Exception as exc:
            if _status(exc) == 409:
                continue
            raise
        return True
    raise JobError("gave up after repeated update conflicts")


def set_webhook_bundle(cluster: Cluster, target: Target, bundle: bytes) -> list[str]:
    """Put the bundle into every webhook of our configurations; the names that exist."""
    adm = cluster.admission
    configs = [(target.validating_webhook, "validating")]
    if target.mutating_webhook:
        configs.append((target.mutating_webhook, "mutating"))
    encoded = base64.b64encode(bundle).decode()

    def change(obj: Any) -> bool:
        stale = [h for h in obj.webhooks or [] if h.client_config.ca_bundle != encoded]
        for hook in stale:
            hook.client_config.ca_bundle = encoded
        return bool(stale)

    found: list[str] = []
    for name, flavour in configs:
        read = getattr(adm, f"read_{flavour}_webhook_configuration")
        replace = getattr(adm, f"replace_{flavour}_webhook_configuration")
        if _update(lambda: read(name), change, lambda obj: replace(name, obj)):  # noqa: B023
            found.append(name)
            cluster.log(f"caBundle set on {name}")
    return found


def point_crds(cluster: Cluster, target: Target, bundle: bytes | None) -> list[str]:
    """Aim each CRD's conversion webhook at this release; set caBundle when given (provider
    "job") or the cainjector annotation (provider "cert-manager"). The names that exist."""
    ext = cluster.extensions
    encoded = base64.b64encode(bundle).decode() if bundle is not None else None
    inject_from = f"{target.namespace}/{target.certificate}"

    def change(crd: Any) -> bool:
        conversion = crd.spec.conversion
        if conversion is None or conversion.strategy != "Webhook" or conversion.webhook is None:
            return False
        config = conversion.webhook.client_config
        service = config.service
        before = (
            service.namespace,
            service.name,
            service.port,
            config.ca_bundle,
            dict(crd.metadata.annotations or {}),
        )
        service.namespace, service.name = target.namespace, target.service
        service.port, service.path = target.service_port, "/convert"
        annotations = dict(crd.metadata.annotations or {})
        if encoded is not None:
            config.ca_bundle = encoded
            annotations.pop("cert-manager.io/inject-ca-from", None)
        else:
            annotations["cert-manager.io/inject-ca-from"] = inject_from
        crd.metadata.annotations = annotations
        return before != (
            service.namespace,
            service.name,
            service.port,
            config.ca_bundle,
            annotations,
        )

    found: list[str] = []
    for name in target.crds:
        read = ext.read_custom_resource_definition
        replace = ext.replace_custom_resource_definition
        if _update(lambda: read(name), change, lambda obj: replace(name, obj)):  # noqa: B023
            found.append(name)
            cluster.log(
                f"conversion webhook of {name} points at {target.namespace}/{target.service}"
            )
        else:
            cluster.log(f"warning: CRD {name} not found (installed with --skip-crds?)")
    return found


# --- phases -------------------------------------------------------------------------------------


@dataclass
class Phases:
    cluster: Cluster
    target: Target
    tool: CertTool
    renew_before_days: int = 30
    ca_renew_before_days: int = 90
    ready_timeout: float = 300.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    fetch: Callable[[str, ssl.SSLContext, float], int] | None = None

    def prepare(self) -> None:
        self._ensure_mesh_ca()
        warning = self.mesh_ca_warning()
        if warning:
            self.cluster.log(f"warning: {warning}")
        ca_files, bundle = self._ensure_serving_ca()
        set_webhook_bundle(self.cluster, self.target, bundle)
        point_crds(self.cluster, self.target, bundle)
        self._ensure_serving_cert(ca_files, bundle)

    def inject(self) -> None:
        if self.target.provider == "job":
            bundle = self._bundle_from_secret()
            if not set_webhook_bundle(self.cluster, self.target, bundle):
                raise JobError(f"webhook configuration {self.target.validating_webhook} not found")
            point_crds(self.cluster, self.target, bundle)
        else:
            point_crds(self.cluster, self.target, None)
            bundle = self._wait_for_injected_bundle()
        self._wait_ready(bundle)

    def rotate(self) -> None:
        """Renew what is due, then fail (a failed CronJob run is what alerts see) if the mesh
        CA is close to expiry: it is never replaced automatically (docs/helm.md)."""
        self.prepare()
        self.inject()
        warning = self.mesh_ca_warning()
        if warning:
            raise JobError(warning)

    def mesh_ca_warning(self) -> str | None:
        name = self.target.mesh_ca_secret
        stored = read_secret(self.cluster, self.target.namespace, name) if name else None
        if stored is None or "tls.crt" not in stored:
            return None
        if not expires_within(stored["tls.crt"], self.ca_renew_before_days, now=self.now()):
            return None
        end = _load(stored["tls.crt"]).not_valid_after_utc.date().isoformat()
        return (
            f"the mesh CA in secret {self.target.namespace}/{name} expires on {end}:"
            ' replace it (docs/helm.md, "The mesh CA and its rotation")'
        )

    # mesh CA ----------------------------------------------------------------------------------

    def _ensure_mesh_ca(self) -> None:
        name = self.target.mesh_ca_secret
        if name is None or read_secret(self.cluster, self.target.namespace, name) is not None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            self.tool.init_ca(Path(tmp))
            pair = read_pair(Path(tmp), want_ca=True)
        write_secret(
            self.cluster,
            namespace=self.target.namespace,
            name=name,
            data={"tls.crt": pair.cert_pem, "tls.key": pair.key_pem},
            tls=True,
        )

    # serving CA and certificate ---------------------------------------------------------------

    def _ensure_serving_ca(self) -> tuple[dict[str, bytes], bytes]:
        """The CA directory's files (as stored) and the bundle to trust."""
        stored = read_secret(self.cluster, self.target.namespace, self.target.ca_secret)
        now = self.now()
        if stored is not None:
            current = _ca_cert(stored)
            if not expires_within(current, self.ca_renew_before_days, now=now):
                return stored, _bundle(stored, now=now)
            self.cluster.log("serving CA close to expiry: replacing it (old CA kept in the bundle)")
        with tempfile.TemporaryDirectory() as tmp:
            self.tool.init_ca(Path(tmp))
            pair = read_pair(Path(tmp), want_ca=True)
        # Kept under the names `smictl certs` wrote, so `certs issue --ca-dir` finds them again.
        files = {pair.cert_name: pair.cert_pem, pair.key_name: pair.key_pem}
        if stored is not None:
            files[PREVIOUS_CA_KEY] = _ca_cert(stored)
        write_secret(
            self.cluster,
            namespace=self.target.namespace,
            name=self.target.ca_secret,
            data=files,
            tls=False,
        )
        return files, _bundle(files, now=now)

    def _ensure_serving_cert(self, ca_files: dict[str, bytes], bundle: bytes) -> None:
        ca_cert = x509.load_pem_x509_certificate(_ca_cert(ca_files))
        stored = read_secret(self.cluster, self.target.namespace, self.target.serving_secret)
        if stored is not None and self._serving_ok(stored, ca_cert):
            if stored.get("ca.crt") != bundle:
                stored["ca.crt"] = bundle
                write_secret(
                    self.cluster,
                    namespace=self.target.namespace,
                    name=self.target.serving_secret,
                    data=stored,
                    tls=True,
                )
            return
        with tempfile.TemporaryDirectory() as tmp:
            ca_dir, out = Path(tmp, "ca"), Path(tmp, "out")
            ca_dir.mkdir()
            out.mkdir()
            for name, data in ca_files.items():
                if name != PREVIOUS_CA_KEY:
                    (ca_dir / name).write_bytes(data)
            self.tool.issue(ca_dir=ca_dir, dns=self.target.dns, out=out)
            pair = read_pair(out, want_ca=False)
        missing = set(self.target.dns) - dns_names(pair.cert)
        if missing:
            raise JobError(f"smictl certs issue left out DNS names: {', '.join(sorted(missing))}")
        write_secret(
            self.cluster,
            namespace=self.target.namespace,
            name=self.target.serving_secret,
            data={"tls.crt": pair.cert_pem, "tls.key": pair.key_pem, "ca.crt": bundle},
            tls=True,
        )

    def _serving_ok(self, stored: dict[str, bytes], ca_cert: x509.Certificate) -> bool:
        if "tls.crt" not in stored or "tls.key" not in stored:
            return False
        cert = x509.load_pem_x509_certificate(stored["tls.crt"])
        reasons = []
        if expires_within(stored["tls.crt"], self.renew_before_days, now=self.now()):
            reasons.append("close to expiry")
        if not set(self.target.dns) <= dns_names(cert):
            reasons.append("DNS names changed")
        if not signed_by(cert, ca_cert):
            reasons.append("not from the current CA")
        if reasons:
            self.cluster.log(f"serving certificate renewed: {', '.join(reasons)}")
        return not reasons

    def _bundle_from_secret(self) -> bytes:
        stored = read_secret(self.cluster, self.target.namespace, self.target.ca_secret)
        if stored is None:
            raise JobError(
                f"secret {self.target.namespace}/{self.target.ca_secret} not found:"
                " did the pre-install Job run?"
            )
        return _bundle(stored, now=self.now())

    # readiness --------------------------------------------------------------------------------

    def _wait_for_injected_bundle(self) -> bytes:
        deadline = time.monotonic() + self.ready_timeout
        read = self.cluster.admission.read_validating_webhook_configuration
        while True:
            config = read(self.target.validating_webhook)
            encoded = config.webhooks[0].client_config.ca_bundle
            if encoded:
                return base64.b64decode(encoded)
            if time.monotonic() > deadline:
                raise JobError(
                    "cert-manager's cainjector has not set caBundle"
                    f" on {self.target.validating_webhook}: is cert-manager installed?"
                )
            time.sleep(2)

    def _wait_ready(self, bundle: bytes) -> None:
        host = f"{self.target.service}.{self.target.namespace}.svc"
        url = f"https://{host}:{self.target.service_port}/readyz"
        context = ssl.create_default_context(cadata=bundle.decode())
        fetch = self.fetch or _fetch
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() <= deadline:
            try:
                status = fetch(url, context, 5.0)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200:
                    self.cluster.log(f"{url} is ready and trusted")
                    return
                last = f"HTTP {status}"
            time.sleep(2)
        raise JobError(f"{url} not ready within {self.ready_timeout:.0f}s: {last}")


def _ca_cert(files: dict[str, bytes]) -> bytes:
    for name, data in sorted(files.items()):
        if name == PREVIOUS_CA_KEY or b"-----BEGIN CERTIFICATE-----" not in data:
            continue
        if _is_ca(x509.load_pem_x509_certificate(data)):
            return data
    raise JobError("the serving CA secret holds no CA certificate")


def _bundle(files: dict[str, bytes], *, now: datetime) -> bytes:
    """The current CA, then the previous one while it is still valid."""
    parts = [_ca_cert(files).strip()]
    previous = files.get(PREVIOUS_CA_KEY)
    if previous and x509.load_pem_x509_certificate(previous).not_valid_after_utc > now:
        parts.append(previous.strip())
    return b"\n".join(parts) + b"\n"


def _fetch(url: str, context: ssl.SSLContext, timeout: float) -> int:
    with urllib.request.urlopen(url, context=context, timeout=timeout) as response:  # noqa: S310
        return int(response.status)


# --- entry point --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["prepare", "inject", "rotate"])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--service-port", type=int, default=443)
    parser.add_argument("--dns", action="append", required=True)
    parser.add_argument("--serving-secret", required=True)
    parser.add_argument("--ca-secret", required=True)
    parser.add_argument("--mesh-ca-secret", default=None)
    parser.add_argument("--validating-webhook", required=True)
    parser.add_argument("--mutating-webhook", default=None)
    parser.add_argument("--crd", action="append", default=[])
    parser.add_argument("--provider", choices=["job", "cert-manager"], default="job")
    parser.add_argument("--certificate", default="")
    parser.add_argument("--renew-before-days", type=int, default=30)
    parser.add_argument("--ca-renew-before-days", type=int, default=90)
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    return parser.parse_args(argv)


def target_from(args: argparse.Namespace) -> Target:
    return Target(
        namespace=args.namespace,
        service=args.service,
        service_port=args.service_port,
        dns=tuple(args.dns),
        serving_secret=args.serving_secret,
        ca_secret=args.ca_secret,
        mesh_ca_secret=args.mesh_ca_secret,
        validating_webhook=args.validating_webhook,
        mutating_webhook=args.mutating_webhook,
        crds=tuple(args.crd),
        provider=args.provider,
        certificate=args.certificate,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from kubernetes import client, config

    config.load_incluster_config()  # type: ignore[no-untyped-call]
    cluster = Cluster(
        client.CoreV1Api(), client.AdmissionregistrationV1Api(), client.ApiextensionsV1Api()
    )
    phases = Phases(
        cluster,
        target_from(args),
        SmictlCerts(),
        renew_before_days=args.renew_before_days,
        ca_renew_before_days=args.ca_renew_before_days,
        ready_timeout=args.ready_timeout,
    )
    try:
        getattr(phases, args.phase)()
    except JobError as exc:
        print(f"certs {args.phase}: {exc}", file=sys.stderr)
        return 1
    except client.ApiException as exc:
        print(f"certs {args.phase}: Kubernetes API: {exc.status} {exc.reason}", file=sys.stderr)
        return 1
    print(json.dumps({"phase": args.phase, "result": "ok"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

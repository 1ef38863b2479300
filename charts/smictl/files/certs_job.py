"""Certificates for the smictl chart without cert-manager, and CRD conversion wiring.

Runs inside the smictl image (Python, the kubernetes client, cryptography and `smictl`), mounted
from a ConfigMap by the chart's hook Jobs and rotation CronJob. Phases:

- `prepare` (pre-install/pre-upgrade): make sure the mesh CA Secret exists (never replaced:
  workloads trust it), make sure the serving CA has a published successor (the "next" CA) and
  promote that successor when it is due (`Phases.promotion_date`; the replaced CA stays in the
  bundle until it expires), publish the CA bundle (current + next + previous) to the webhook
  configurations and CRDs that already exist, then issue the serving certificate if it is
  missing, close to expiry, for other DNS names or from another CA. Publishing the bundle
  before the new certificate is written means the API server never sees a certificate it does
  not trust; pre-publishing the next CA long before it signs anything means that injected
  proxies, which keep the bundle they were injected with, trust the serving certificate across
  a rotation too (docs/helm.md, "Serving CA rotation").
- `inject` (post-install/post-upgrade): point the CRDs' conversion webhook at this release's
  Service, publish the CA bundle (provider "job"; cert-manager's cainjector does it otherwise,
  so this waits until it has), then wait until the webhook answers over TLS with that bundle.
- `rotate` (CronJob): `prepare` then `inject`.

Certificates come from `smictl certs init --out DIR` and `smictl certs issue --ca-dir DIR
--dns NAME... --out DIR`; the files they write are recognised by content (certificate or key,
CA or not), except the CA's, which `certs issue --ca-dir` reads by name (ca.crt, ca.key).
Exit status 0 on success, 1 with one line per problem (never a traceback for bad Secret data).
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

from smi.pki import CertificateAuthority, PKIError

PREVIOUS_CA_KEY = "previous-ca.crt"
# The CA files `smictl certs init` writes and `smictl certs issue --ca-dir` reads, by name.
CA_CERT_FILE, CA_KEY_FILE = "ca.crt", "ca.key"
# The successor CA is kept beside the current one under those names with this prefix
# (next-ca.crt, next-ca.key); a promotion strips it.
NEXT_PREFIX = "next-"
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


def _parse(pem: bytes, what: str) -> x509.Certificate:
    """A certificate from a Secret: JobError (one line) rather than ValueError when unreadable."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise JobError(f"{what} is not a readable certificate ({exc})") from exc


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
    return read_secret_version(cluster, namespace, name)[0]


def read_secret_version(
    cluster: Cluster, namespace: str, name: str
) -> tuple[dict[str, bytes] | None, str | None]:
    """A Secret's data and its resourceVersion; (None, None) when it does not exist."""
    try:
        secret = cluster.core.read_namespaced_secret(name, namespace)
    except Exception as exc:
        if _status(exc) == 404:
            return None, None
        raise
    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
    return data, secret.metadata.resource_version


def _secret_body(namespace: str, name: str, data: dict[str, bytes], *, tls: bool) -> Any:
    from kubernetes import client

    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace, labels={"app.kubernetes.io/part-of": "smictl"}
        ),
        type="kubernetes.io/tls" if tls else "Opaque",
        data={k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    )


def write_secret(
    cluster: Cluster, *, namespace: str, name: str, data: dict[str, bytes], tls: bool
) -> None:
    body = _secret_body(namespace, name, data, tls=tls)
    try:
        cluster.core.create_namespaced_secret(namespace, body)
    except Exception as exc:
        if _status(exc) != 409:
            raise
        cluster.core.replace_namespaced_secret(name, namespace, body)
    cluster.log(f"secret {namespace}/{name} written")


def write_secret_over(
    cluster: Cluster,
    *,
    namespace: str,
    name: str,
    data: dict[str, bytes],
    tls: bool,
    version: str | None,
) -> None:
    """Write a Secret only over the version that was read (None: only if it does not exist).
    A concurrent writer (an upgrade hook beside the rotation CronJob) makes this run fail
    rather than overwrite what the other one decided; the Job's retry starts from its result."""
    body = _secret_body(namespace, name, data, tls=tls)
    try:
        if version is None:
            cluster.core.create_namespaced_secret(namespace, body)
        else:
            body.metadata.resource_version = version
            cluster.core.replace_namespaced_secret(name, namespace, body)
    except Exception as exc:
        if _status(exc) != 409:
            raise
        raise JobError(
            f"secret {namespace}/{name} was changed by someone else meanwhile: run again"
        ) from exc
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
        ca_files, bundle, version = self._ensure_serving_ca()
        # A concurrent run (an upgrade hook beside the CronJob) may have promoted or replaced
        # a CA since this run read the Secret: publishing this run's bundle, or issuing from
        # its current CA, would then undo what the other run published.
        self._check_ca_unchanged(version)
        set_webhook_bundle(self.cluster, self.target, bundle)
        point_crds(self.cluster, self.target, bundle)
        self._ensure_serving_cert(ca_files, bundle, version)

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
        try:
            cert = _load(stored["tls.crt"])
        except ValueError:
            return (
                f"the mesh CA in secret {self.target.namespace}/{name} is not a readable"
                ' certificate: replace it (docs/helm.md, "The mesh CA and its rotation")'
            )
        if cert.not_valid_after_utc - self.now() > timedelta(days=self.ca_renew_before_days):
            return None
        end = cert.not_valid_after_utc.date().isoformat()
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

    def _ensure_serving_ca(self) -> tuple[dict[str, bytes], bytes, str | None]:
        """The CA Secret's files (as stored: current, next-*, previous), the bundle to trust and
        the Secret's resourceVersion holding them.

        One Secret write per step, each a complete state the next run continues from:
        1. no Secret: current and next CA created together;
        2. no usable next CA (an install made before there was one, or one about to expire
           after months without a run): a next CA is created beside the current one, and is
           published by this run;
        3. `promotion_date` reached: next becomes current, current becomes previous (in the
           bundle until it expires), a new next is created.
        The serving certificate is reissued from the new current CA by `_ensure_serving_cert`,
        after `prepare` has published the bundle."""
        namespace, name = self.target.namespace, self.target.ca_secret
        stored, version = read_secret_version(self.cluster, namespace, name)
        now = self.now()
        if stored is None:
            files = self._new_ca() | _as_next(self._new_ca())
            version = self._write_ca(files, None)
            self.cluster.log("serving CA created, with its successor")
        else:
            files = stored
            problem = self._next_problem(files, now=now)
            if problem:
                files = _without_next(files) | _as_next(self._new_ca())
                version = self._write_ca(files, version)
                self.cluster.log(f"next serving CA created ({problem}): published from now on")
        when = self.promotion_date(files)
        if now >= when:
            current = _ca_cert(files)
            promoted = _next_files(files)
            files = promoted | {PREVIOUS_CA_KEY: current} | _as_next(self._new_ca())
            version = self._write_ca(files, version)
            self.cluster.log(
                "serving CA rotated: the next CA, published since"
                f" {_load(_ca_cert(promoted)).not_valid_before_utc.date().isoformat()}, is now"
                " current (the old one stays in the bundle until it expires)"
            )
            when = self.promotion_date(files)
        self.cluster.log(f"next serving CA rotation due on {when.date().isoformat()}")
        return files, _bundle(files, now=now), version

    def promotion_date(self, files: dict[str, bytes]) -> datetime:
        """When the next CA (in `files`) takes over from the current one:

            due   = min(published + (lifetime - caRenewBeforeDays) / 2,
                        current end - caRenewBeforeDays)
            ready = min(published + (caRenewBeforeDays - renewBeforeDays),
                        current end - renewBeforeDays)
            promotion = max(due, ready)

        `published` is the next CA's notBefore (it is published by the run that creates it).
        In the steady state each CA is next for (365 - 90) / 2 = 137.5 days, then current for
        as long, then previous until it expires 90 days later: `due`. `ready` only matters
        right after an upgrade from an install without a next CA, whose current CA may already
        be near its renewal window: the successor is then still given caRenewBeforeDays -
        renewBeforeDays (60) days in the bundles, unless the current CA would come within
        renewBeforeDays (30) of its end, where a serving certificate it issues (they end with
        their CA) would be due for renewal the day it is written."""
        current = _load(_ca_cert(files))
        successor = _load(_ca_cert(files, which="next"))
        published = successor.not_valid_before_utc
        lifetime = successor.not_valid_after_utc - published
        one_day = timedelta(days=1)
        renew_ca, renew = (
            timedelta(days=self.ca_renew_before_days),
            timedelta(days=self.renew_before_days),
        )
        term = max((lifetime - renew_ca) / 2, one_day)
        wait = max(renew_ca - renew, one_day)
        end = current.not_valid_after_utc
        due = min(published + term, end - renew_ca)
        ready = min(published + wait, end - renew)
        return max(due, ready)

    def _next_problem(self, files: dict[str, bytes], *, now: datetime) -> str | None:
        """Why the stored next CA cannot be used (None when it can)."""
        successor = _next_files(files)
        if not successor:
            return "there was none"
        if set(successor) != {CA_CERT_FILE, CA_KEY_FILE}:
            # `smictl certs issue --ca-dir` reads these names once it is promoted.
            found = ", ".join(sorted(_as_next(successor)))
            return (
                f"the stored one is not {NEXT_PREFIX}{CA_CERT_FILE} and"
                f" {NEXT_PREFIX}{CA_KEY_FILE} but {found}"
            )
        try:
            # What `smictl certs issue` checks once it is promoted: a readable CA certificate
            # and the key that belongs to it.
            ca = CertificateAuthority.load(successor[CA_CERT_FILE], successor[CA_KEY_FILE])
        except PKIError as exc:
            return f"the stored one is unusable: {exc}"
        current = _load(_ca_cert(files))
        if _public_der(ca.cert.public_key()) == _public_der(current.public_key()):
            return "the stored one is the current CA"
        if ca.cert.not_valid_after_utc - now <= timedelta(days=self.renew_before_days):
            # Whatever it signed would be due for renewal at once (certificates end with
            # their CA); a next CA gets this old only when no run happened for months.
            return "the stored one is about to expire"
        return None

    def _new_ca(self) -> dict[str, bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            self.tool.init_ca(Path(tmp))
            pair = read_pair(Path(tmp), want_ca=True)
        # Kept under the names `smictl certs` wrote, so `certs issue --ca-dir` finds them again.
        if (pair.cert_name, pair.key_name) != (CA_CERT_FILE, CA_KEY_FILE):
            raise JobError(
                f"smictl certs init wrote the CA as {pair.cert_name} and {pair.key_name},"
                f" not {CA_CERT_FILE} and {CA_KEY_FILE}"
            )
        return {pair.cert_name: pair.cert_pem, pair.key_name: pair.key_pem}

    def _write_ca(self, files: dict[str, bytes], version: str | None) -> str | None:
        """Write the CA Secret over `version`; the resourceVersion holding `files`."""
        namespace, name = self.target.namespace, self.target.ca_secret
        write_secret_over(
            self.cluster, namespace=namespace, name=name, data=files, tls=False, version=version
        )
        written, version = read_secret_version(self.cluster, namespace, name)
        if written != files:
            raise JobError(f"secret {namespace}/{name} changed meanwhile: run again")
        return version

    def _check_ca_unchanged(self, version: str | None) -> None:
        namespace, name = self.target.namespace, self.target.ca_secret
        if read_secret_version(self.cluster, namespace, name)[1] != version:
            raise JobError(
                f"secret {namespace}/{name} changed meanwhile (another run of this Job?):"
                " run again"
            )

    def _ensure_serving_cert(
        self, ca_files: dict[str, bytes], bundle: bytes, ca_version: str | None
    ) -> None:
        """Issue (or refresh the `ca.crt` of) the serving Secret, each write made only while
        the CA Secret is still at `ca_version` (what `bundle` was published from) and over the
        serving Secret's version this run read."""
        ca_cert = _load(_ca_cert(ca_files))
        namespace, name = self.target.namespace, self.target.serving_secret
        stored, version = read_secret_version(self.cluster, namespace, name)

        def write(data: dict[str, bytes]) -> None:
            self._check_ca_unchanged(ca_version)
            write_secret_over(
                self.cluster, namespace=namespace, name=name, data=data, tls=True, version=version
            )

        if stored is not None and self._serving_ok(stored, ca_cert):
            if stored.get("ca.crt") != bundle:
                write(stored | {"ca.crt": bundle})
            return
        with tempfile.TemporaryDirectory() as tmp:
            ca_dir, out = Path(tmp, "ca"), Path(tmp, "out")
            ca_dir.mkdir()
            out.mkdir()
            for file_name, data in _current_files(ca_files).items():
                (ca_dir / file_name).write_bytes(data)
            self.tool.issue(ca_dir=ca_dir, dns=self.target.dns, out=out)
            pair = read_pair(out, want_ca=False)
        missing = set(self.target.dns) - dns_names(pair.cert)
        if missing:
            raise JobError(f"smictl certs issue left out DNS names: {', '.join(sorted(missing))}")
        write({"tls.crt": pair.cert_pem, "tls.key": pair.key_pem, "ca.crt": bundle})

    def _serving_ok(self, stored: dict[str, bytes], ca_cert: x509.Certificate) -> bool:
        if "tls.crt" not in stored or "tls.key" not in stored:
            return False
        try:
            cert = _load(stored["tls.crt"])
        except ValueError:
            self.cluster.log("serving certificate renewed: unreadable")
            return False
        reasons = []
        if cert.not_valid_after_utc - self.now() <= timedelta(days=self.renew_before_days):
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


def _current_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The current CA's files (what `smictl certs issue --ca-dir` reads)."""
    return {
        k: v for k, v in files.items() if k != PREVIOUS_CA_KEY and not k.startswith(NEXT_PREFIX)
    }


def _next_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The next CA's files, under the names `smictl certs` gave them (prefix stripped)."""
    return {k.removeprefix(NEXT_PREFIX): v for k, v in files.items() if k.startswith(NEXT_PREFIX)}


def _without_next(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.startswith(NEXT_PREFIX)}


def _as_next(files: dict[str, bytes]) -> dict[str, bytes]:
    return {NEXT_PREFIX + k: v for k, v in files.items()}


def _ca_cert(files: dict[str, bytes], *, which: str = "current") -> bytes:
    """The current (or next) CA certificate among a CA Secret's files."""
    prefix = NEXT_PREFIX if which == "next" else ""
    chosen = _next_files(files) if which == "next" else _current_files(files)
    for name, data in sorted(chosen.items()):
        if b"-----BEGIN CERTIFICATE-----" not in data:
            continue
        if _is_ca(_parse(data, f"the serving CA secret's {prefix}{name}")):
            return data
    raise JobError(f"the serving CA secret holds no {which} CA certificate")


def _bundle(files: dict[str, bytes], *, now: datetime) -> bytes:
    """The current CA, then the next one (trusted before it signs anything), then the
    previous one while it is still valid."""
    parts = [_ca_cert(files).strip()]
    candidates = [(_ca_cert(files, which="next"), "next")] if _next_files(files) else []
    if PREVIOUS_CA_KEY in files:
        candidates.append((files[PREVIOUS_CA_KEY], PREVIOUS_CA_KEY))
    for pem, what in candidates:
        if _parse(pem, f"the serving CA secret's {what}").not_valid_after_utc > now:
            parts.append(pem.strip())
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
    except ValueError as exc:
        # Unreadable Secret data the checks above missed (base64, PEM, DER): still one line.
        print(f"certs {args.phase}: unreadable data: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"phase": args.phase, "result": "ok"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

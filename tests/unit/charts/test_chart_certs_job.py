"""charts/smictl/files/certs_job.py, the chart's certificates Job, against an in-memory cluster
made of the kubernetes client's own models: the Secrets it writes, the caBundle it publishes,
the CRDs it re-points, renewal and CA rotation over (simulated) months, and a real TLS
handshake between the certificate it issued and the bundle it published."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import shutil
import ssl
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from chart_support import CHART, load_crds, load_module
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smi.pki import CertificateAuthority

JOB = load_module(CHART / "files" / "certs_job.py", "certs_job")
NS, SVC = "mesh", "smictl"
DNS = (SVC, f"{SVC}.{NS}", f"{SVC}.{NS}.svc", f"{SVC}.{NS}.svc.cluster.local")
CONVERTED = tuple(
    name for name, crd in load_crds().items() if crd["spec"]["conversion"]["strategy"] == "Webhook"
)


# --- an in-memory cluster ---------------------------------------------------------------------


class Store:
    """Objects by key with resourceVersions: replace with a stale one is a 409, like the API."""

    def __init__(self, events: list[str]) -> None:
        self.objects: dict[str, Any] = {}
        self.events = events
        self.conflicts_to_inject = 0
        # A run that dies between steps: the write after this many more succeeds fails.
        self.writes_before_failure: int | None = None

    def _maybe_fail(self, what: str) -> None:
        if self.writes_before_failure is None:
            return
        if self.writes_before_failure == 0:
            self.writes_before_failure = None
            self.events.append(f"failed {what}")
            raise ApiException(status=500, reason="Internal Server Error")
        self.writes_before_failure -= 1

    def read(self, key: str) -> Any:
        if key not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[key])

    def create(self, key: str, obj: Any) -> None:
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self._maybe_fail(f"create {key}")
        obj.metadata.resource_version = "1"
        self.objects[key] = copy.deepcopy(obj)
        self.events.append(f"create {key}")

    def replace(self, key: str, obj: Any) -> None:
        current = self.objects[key]
        stale = obj.metadata.resource_version not in (None, current.metadata.resource_version)
        if self.conflicts_to_inject or stale:
            self.conflicts_to_inject = max(0, self.conflicts_to_inject - 1)
            raise ApiException(status=409, reason="Conflict")
        self._maybe_fail(f"replace {key}")
        obj.metadata.resource_version = str(int(current.metadata.resource_version or "1") + 1)
        self.objects[key] = copy.deepcopy(obj)
        self.events.append(f"replace {key}")


class Core:
    def __init__(self, store: Store) -> None:
        self.store = store

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        return self.store.read(f"secret/{namespace}/{name}")

    def create_namespaced_secret(self, namespace: str, body: Any) -> None:
        self.store.create(f"secret/{namespace}/{body.metadata.name}", body)

    def replace_namespaced_secret(self, name: str, namespace: str, body: Any) -> None:
        # Without a resourceVersion a replace is unconditional, with one it must match.
        self.store.replace(f"secret/{namespace}/{name}", body)


class Admission:
    def __init__(self, store: Store) -> None:
        self.store = store

    def read_validating_webhook_configuration(self, name: str) -> Any:
        return self.store.read(f"vwc/{name}")

    def replace_validating_webhook_configuration(self, name: str, body: Any) -> None:
        self.store.replace(f"vwc/{name}", body)

    def read_mutating_webhook_configuration(self, name: str) -> Any:
        return self.store.read(f"mwc/{name}")

    def replace_mutating_webhook_configuration(self, name: str, body: Any) -> None:
        self.store.replace(f"mwc/{name}", body)


class Extensions:
    def __init__(self, store: Store) -> None:
        self.store = store

    def read_custom_resource_definition(self, name: str) -> Any:
        return self.store.read(f"crd/{name}")

    def replace_custom_resource_definition(self, name: str, body: Any) -> None:
        self.store.replace(f"crd/{name}", body)


def _webhook_config(kind: str, name: str, hooks: Sequence[str]) -> Any:
    cls, hook_cls = (
        (client.V1ValidatingWebhookConfiguration, client.V1ValidatingWebhook)
        if kind == "vwc"
        else (client.V1MutatingWebhookConfiguration, client.V1MutatingWebhook)
    )
    return cls(
        metadata=client.V1ObjectMeta(name=name, resource_version="1"),
        webhooks=[
            hook_cls(
                name=hook,
                admission_review_versions=["v1"],
                side_effects="None",
                client_config=client.AdmissionregistrationV1WebhookClientConfig(
                    service=client.AdmissionregistrationV1ServiceReference(
                        namespace=NS, name=SVC, path="/validate"
                    )
                ),
            )
            for hook in hooks
        ],
    )


class Cluster:
    """The fake API plus helpers to look at what the Job left behind."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.store = Store(self.events)
        self.api = JOB.Cluster(
            Core(self.store), Admission(self.store), Extensions(self.store), log=self.events.append
        )
        api = client.ApiClient()
        for name, doc in load_crds().items():
            crd = api._ApiClient__deserialize(copy.deepcopy(doc), "V1CustomResourceDefinition")
            crd.metadata.resource_version = "1"
            self.store.objects[f"crd/{name}"] = crd

    def add_webhooks(self) -> None:
        self.store.objects["vwc/smictl"] = _webhook_config("vwc", "smictl", ["validate.smictl.io"])
        self.store.objects["mwc/smictl-injector"] = _webhook_config(
            "mwc", "smictl-injector", ["namespace.inject.smictl.io", "pod.inject.smictl.io"]
        )

    def secret(self, name: str) -> dict[str, bytes]:
        obj = self.store.objects[f"secret/{NS}/{name}"]
        return {k: base64.b64decode(v) for k, v in obj.data.items()}

    def secret_type(self, name: str) -> str:
        return str(self.store.objects[f"secret/{NS}/{name}"].type)

    def bundles(self) -> set[bytes]:
        """Every caBundle on our webhooks and converted CRDs (one value when consistent)."""
        found = set()
        for key in ("vwc/smictl", "mwc/smictl-injector"):
            for hook in self.store.objects[key].webhooks:
                found.add(base64.b64decode(hook.client_config.ca_bundle or ""))
        for name in CONVERTED:
            config = self.store.objects[f"crd/{name}"].spec.conversion.webhook.client_config
            found.add(base64.b64decode(config.ca_bundle or ""))
        return found


class PkiTool:
    """`smictl certs` in-process, writing the same files (webhook/cli.py): init writes a CA
    pair and a server pair, issue writes server.crt/server.key under --out."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def init_ca(self, out: Path) -> None:
        self.calls.append("init")
        ca = CertificateAuthority.create()
        cert, key = ca.issue_server(dns_names=["localhost"])
        for name, data in (
            ("ca.crt", ca.cert_pem()),
            ("ca.key", ca.key_pem()),
            ("server.crt", cert),
            ("server.key", key),
        ):
            (out / name).write_bytes(data)

    def issue(self, *, ca_dir: Path, dns: Sequence[str], out: Path) -> None:
        self.calls.append("issue")
        ca = CertificateAuthority.load(
            (ca_dir / "ca.crt").read_bytes(), (ca_dir / "ca.key").read_bytes()
        )
        cert, key = ca.issue_server(dns_names=list(dns))
        (out / "server.crt").write_bytes(cert)
        (out / "server.key").write_bytes(key)


def _target(**changes: Any) -> Any:
    base = {
        "namespace": NS,
        "service": SVC,
        "service_port": 443,
        "dns": DNS,
        "serving_secret": "smictl-webhook-tls",
        "ca_secret": "smictl-webhook-ca",
        "mesh_ca_secret": "smictl-mesh-ca",
        "validating_webhook": "smictl",
        "mutating_webhook": "smictl-injector",
        "crds": CONVERTED,
        "provider": "job",
        "certificate": "smictl-webhook",
    }
    return JOB.Target(**(base | changes))


def _handshake(cluster: Cluster) -> Any:
    """A fetch that does a real in-memory TLS handshake between the serving Secret and the
    client context the Job built from its bundle, for the host the Job asked for."""

    def fetch(url: str, context: ssl.SSLContext, timeout: float) -> int:
        secret = cluster.secret("smictl-webhook-tls")
        server = _server_context(secret["tls.crt"], secret["tls.key"])
        c_in, c_out, s_in, s_out = (
            ssl.MemoryBIO(),
            ssl.MemoryBIO(),
            ssl.MemoryBIO(),
            ssl.MemoryBIO(),
        )
        host = urlsplit(url).hostname
        tls_client = context.wrap_bio(c_in, c_out, server_hostname=host)
        tls_server = server.wrap_bio(s_in, s_out, server_side=True)
        for _ in range(10):
            for end in (tls_client, tls_server):
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        tls_client.do_handshake()  # raises ssl.SSLCertVerificationError if untrusted
        return 200

    return fetch


@functools.lru_cache(maxsize=8)
def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """The control plane's TLS context for a serving certificate (built once per certificate:
    the simulated years of test_chart_certs_rotation.py handshake thousands of times)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with _tempfiles(cert_pem, key_pem) as (cert, key):
        server.load_cert_chain(cert, key)
    return server


class _tempfiles:
    def __init__(self, *blobs: bytes) -> None:
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        self.paths = []
        for i, blob in enumerate(blobs):
            path = Path(self.dir.name) / f"{i}.pem"
            path.write_bytes(blob)
            self.paths.append(str(path))

    def __enter__(self) -> list[str]:
        return self.paths

    def __exit__(self, *exc: object) -> None:
        self.dir.cleanup()


def _current_and_next(ca_secret: dict[str, bytes]) -> bytes:
    """The bundle published for a CA Secret without a previous CA."""
    return ca_secret["ca.crt"].strip() + b"\n" + ca_secret["next-ca.crt"].strip() + b"\n"


def _phases(
    cluster: Cluster, *, now: datetime | None = None, target: Any = None, tool: Any = None
) -> Any:
    moment = now or datetime.now(UTC)
    return JOB.Phases(
        cluster.api,
        target or _target(),
        tool or PkiTool(),
        ready_timeout=5,
        now=lambda: moment,
        fetch=_handshake(cluster),
    )


# --- tests ------------------------------------------------------------------------------------


def test_prepare_on_an_empty_cluster_creates_every_secret() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    mesh = cluster.secret("smictl-mesh-ca")
    assert cluster.secret_type("smictl-mesh-ca") == "kubernetes.io/tls"
    assert JOB._is_ca(x509.load_pem_x509_certificate(mesh["tls.crt"]))
    ca = cluster.secret("smictl-webhook-ca")
    assert set(ca) == {"ca.crt", "ca.key", "next-ca.crt", "next-ca.key"}, (
        "the CA pair and its successor, under smictl's file names"
    )
    assert JOB._is_ca(x509.load_pem_x509_certificate(ca["next-ca.crt"]))
    assert ca["next-ca.crt"] != ca["ca.crt"]
    serving = cluster.secret("smictl-webhook-tls")
    assert cluster.secret_type("smictl-webhook-tls") == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(serving["tls.crt"])
    assert set(DNS) <= JOB.dns_names(cert)
    assert JOB.signed_by(cert, x509.load_pem_x509_certificate(ca["ca.crt"]))
    assert serving["ca.crt"] == _current_and_next(ca), "what the injector hands to proxies"
    # The mesh CA and the serving CA are different CAs.
    assert mesh["tls.crt"] != ca["ca.crt"]


def test_prepare_points_existing_crds_at_the_release_before_webhooks_exist() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    for name in CONVERTED:
        crd = cluster.store.objects[f"crd/{name}"]
        service = crd.spec.conversion.webhook.client_config.service
        assert (service.namespace, service.name, service.path, service.port) == (
            NS,
            SVC,
            "/convert",
            443,
        )
        assert "cert-manager.io/inject-ca-from" not in (crd.metadata.annotations or {})
        bundle = base64.b64decode(crd.spec.conversion.webhook.client_config.ca_bundle)
        assert bundle == _current_and_next(cluster.secret("smictl-webhook-ca"))


def test_inject_publishes_the_bundle_and_waits_for_a_trusted_handshake() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    _phases(cluster).inject()
    bundles = cluster.bundles()
    assert len(bundles) == 1
    assert next(iter(bundles)) == _current_and_next(cluster.secret("smictl-webhook-ca"))
    assert "https://smictl.mesh.svc:443/readyz is ready and trusted" in cluster.events


def test_a_second_run_changes_nothing() -> None:
    cluster = Cluster()
    tool = PkiTool()
    _phases(cluster, tool=tool).prepare()
    cluster.add_webhooks()
    _phases(cluster, tool=tool).inject()
    before = copy.deepcopy(cluster.store.objects)
    writes = len([e for e in cluster.events if e.startswith(("create", "replace"))])
    _phases(cluster, tool=tool).rotate()
    assert tool.calls == ["init", "init", "init", "issue"], (
        "mesh CA, serving CA, next serving CA, serving cert: once"
    )
    assert len([e for e in cluster.events if e.startswith(("create", "replace"))]) == writes
    assert cluster.store.objects.keys() == before.keys()


def test_serving_certificate_close_to_expiry_is_renewed_by_the_same_ca() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    old = cluster.secret("smictl-webhook-tls")["tls.crt"]
    ca = cluster.secret("smictl-webhook-ca")
    later = datetime.now(UTC) + timedelta(days=70)  # serving certs live 90 days, renew at 30
    _phases(cluster, now=later).rotate()
    new = cluster.secret("smictl-webhook-tls")["tls.crt"]
    assert new != old
    assert cluster.secret("smictl-webhook-ca") == ca, "the CA is not touched"
    assert "serving certificate renewed: close to expiry" in cluster.events


def test_ca_close_to_expiry_is_replaced_and_the_old_one_stays_trusted() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    _phases(cluster).inject()
    old_ca = cluster.secret("smictl-webhook-ca")["ca.crt"]
    old_next = cluster.secret("smictl-webhook-ca")["next-ca.crt"]
    later = datetime.now(UTC) + timedelta(days=300)  # the CA lives 365 days, replaced at 90
    cluster.events.clear()
    _phases(cluster, now=later).prepare()
    stored = cluster.secret("smictl-webhook-ca")
    assert stored["previous-ca.crt"] == old_ca
    assert stored["ca.crt"] == old_next, "the published successor takes over"
    assert stored["next-ca.crt"] not in (old_ca, old_next)
    (bundle,) = cluster.bundles()
    assert old_ca.strip() in bundle and stored["ca.crt"].strip() in bundle
    # The API server trusted the new CA before the serving certificate signed by it appeared.
    order = [e for e in cluster.events if e.startswith("replace") or e.startswith("create")]
    first_tls = next(i for i, e in enumerate(order) if "smictl-webhook-tls" in e)
    assert any("vwc/smictl" in e for e in order[:first_tls])
    cert = x509.load_pem_x509_certificate(cluster.secret("smictl-webhook-tls")["tls.crt"])
    assert JOB.signed_by(cert, x509.load_pem_x509_certificate(stored["ca.crt"]))


def test_an_expired_previous_ca_leaves_the_bundle() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    _phases(cluster, now=datetime.now(UTC) + timedelta(days=300)).prepare()
    much_later = datetime.now(UTC) + timedelta(days=380)
    _phases(cluster, now=much_later).inject()
    (bundle,) = cluster.bundles()
    assert bundle.count(b"BEGIN CERTIFICATE") == 1


def test_a_renamed_service_gets_a_certificate_for_its_new_names() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    renamed = ("mesh-cp", "mesh-cp.mesh", "mesh-cp.mesh.svc", "mesh-cp.mesh.svc.cluster.local")
    _phases(cluster, target=_target(service="mesh-cp", dns=renamed)).prepare()
    cert = x509.load_pem_x509_certificate(cluster.secret("smictl-webhook-tls")["tls.crt"])
    assert set(renamed) <= JOB.dns_names(cert)
    assert "serving certificate renewed: DNS names changed" in cluster.events


def test_an_existing_mesh_ca_is_never_replaced() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    mesh = cluster.secret("smictl-mesh-ca")
    _phases(cluster, now=datetime.now(UTC) + timedelta(days=300)).prepare()
    assert cluster.secret("smictl-mesh-ca") == mesh


def test_rotation_fails_loudly_when_the_mesh_ca_is_close_to_expiry() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    later = datetime.now(UTC) + timedelta(days=300)
    with pytest.raises(JOB.JobError, match=r"the mesh CA in secret mesh/smictl-mesh-ca expires on"):
        _phases(cluster, now=later).rotate()
    # Everything else was still renewed, and an upgrade (prepare) only warns.
    (bundle,) = cluster.bundles()
    assert bundle.count(b"BEGIN CERTIFICATE") == 3, "current, next and previous serving CAs"
    _phases(cluster, now=later).prepare()
    assert any(e.startswith("warning: the mesh CA") for e in cluster.events)


def test_update_conflicts_are_retried() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    cluster.store.conflicts_to_inject = 2
    _phases(cluster).inject()
    assert len(cluster.bundles()) == 1


def test_inject_without_the_webhook_configuration_fails_with_one_line() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    with pytest.raises(JOB.JobError, match="webhook configuration smictl not found"):
        _phases(cluster).inject()


def test_inject_before_prepare_says_what_is_missing() -> None:
    cluster = Cluster()
    cluster.add_webhooks()
    with pytest.raises(JOB.JobError, match="did the pre-install Job run"):
        _phases(cluster).inject()


UNPARSABLE = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def _spoil_secret(cluster: Cluster, name: str, **changes: bytes) -> None:
    data = cluster.secret(name) | changes
    JOB.write_secret(cluster.api, namespace=NS, name=name, data=data, tls=False)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("ca.crt", "the serving CA secret's ca.crt is not a readable certificate"),
        ("next-ca.crt", "the serving CA secret's next-ca.crt is not a readable certificate"),
        ("previous-ca.crt", "the serving CA secret's previous-ca.crt is not a readable"),
    ],
)
def test_unreadable_ca_certificates_are_one_line_errors_for_inject(key: str, message: str) -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    _spoil_secret(cluster, "smictl-webhook-ca", **{key: UNPARSABLE})
    with pytest.raises(JOB.JobError, match=message):
        _phases(cluster).inject()


def test_an_unreadable_serving_certificate_is_reissued() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    _spoil_secret(cluster, "smictl-webhook-tls", **{"tls.crt": UNPARSABLE})
    _phases(cluster).prepare()
    assert cluster.secret("smictl-webhook-tls")["tls.crt"] != UNPARSABLE
    assert "serving certificate renewed: unreadable" in cluster.events


def test_an_unreadable_mesh_ca_is_a_warning_not_a_crash() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    _spoil_secret(cluster, "smictl-mesh-ca", **{"tls.crt": UNPARSABLE})
    _phases(cluster).prepare()
    assert any("mesh CA" in e and "not a readable certificate" in e for e in cluster.events)


def _run_main(
    cluster: Cluster, phase: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str, str]:
    from kubernetes import config

    monkeypatch.setattr(config, "load_incluster_config", lambda: None)
    monkeypatch.setattr(client, "CoreV1Api", lambda: cluster.api.core)
    monkeypatch.setattr(client, "AdmissionregistrationV1Api", lambda: cluster.api.admission)
    monkeypatch.setattr(client, "ApiextensionsV1Api", lambda: cluster.api.extensions)
    args = [phase, "--namespace=mesh", "--service=smictl", "--serving-secret=smictl-webhook-tls"]
    args += ["--ca-secret=smictl-webhook-ca", "--validating-webhook=smictl", "--ready-timeout=0"]
    args += [f"--dns={name}" for name in DNS]
    rc = JOB.main(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    ("phase", "key", "value"),
    [
        ("inject", "next-ca.crt", UNPARSABLE),
        ("inject", "ca.crt", UNPARSABLE),
        ("prepare", "ca.crt", UNPARSABLE),
        ("inject", "ca.crt", b"not base64 at all"),
    ],
)
def test_main_reports_bad_secret_contents_in_one_line(
    phase: str, key: str, value: bytes, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    if value == b"not base64 at all":
        obj = cluster.store.objects["secret/mesh/smictl-webhook-ca"]
        obj.data[key] = value.decode()
    else:
        _spoil_secret(cluster, "smictl-webhook-ca", **{key: value})
    rc, _, err = _run_main(cluster, phase, monkeypatch, capsys)
    assert rc == 1
    assert err.startswith(f"certs {phase}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_untrusted_serving_certificate_is_not_taken_for_ready() -> None:
    cluster = Cluster()
    _phases(cluster).prepare()
    cluster.add_webhooks()
    # Someone replaced the serving Secret with a certificate from another CA.
    other = CertificateAuthority.create()
    cert, key = other.issue_server(dns_names=list(DNS))
    obj = cluster.store.objects[f"secret/{NS}/smictl-webhook-tls"]
    obj.data["tls.crt"], obj.data["tls.key"] = (
        base64.b64encode(cert).decode(),
        base64.b64encode(key).decode(),
    )
    phases = _phases(cluster)
    phases.ready_timeout = 0
    with pytest.raises(JOB.JobError, match="not ready within"):
        phases.inject()


def test_cert_manager_mode_only_points_the_crds_and_waits_for_cainjector() -> None:
    cluster = Cluster()
    cluster.add_webhooks()
    ca = CertificateAuthority.create()
    # What cainjector would have written, and the serving Secret cert-manager issued.
    for hook in cluster.store.objects["vwc/smictl"].webhooks:
        hook.client_config.ca_bundle = base64.b64encode(ca.cert_pem()).decode()
    cert, key = ca.issue_server(dns_names=list(DNS))
    cluster.store.objects[f"secret/{NS}/smictl-webhook-tls"] = client.V1Secret(
        metadata=client.V1ObjectMeta(name="smictl-webhook-tls", resource_version="1"),
        data={
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    )
    target = _target(provider="cert-manager", namespace=NS, certificate="mesh-webhook")
    _phases(cluster, target=target).inject()
    for name in CONVERTED:
        crd = cluster.store.objects[f"crd/{name}"]
        assert crd.metadata.annotations["cert-manager.io/inject-ca-from"] == f"{NS}/mesh-webhook"
        assert crd.spec.conversion.webhook.client_config.ca_bundle is None
        assert crd.spec.conversion.webhook.client_config.service.namespace == NS
    assert not any(e.startswith("create secret") for e in cluster.events)


def test_read_pair_picks_the_key_that_belongs_to_the_certificate(tmp_path: Path) -> None:
    PkiTool().init_ca(tmp_path)
    ca = JOB.read_pair(tmp_path, want_ca=True)
    leaf = JOB.read_pair(tmp_path, want_ca=False)
    assert (ca.cert_name, ca.key_name) == ("ca.crt", "ca.key")
    assert (leaf.cert_name, leaf.key_name) == ("server.crt", "server.key")
    (tmp_path / "server.key").unlink()
    with pytest.raises(JOB.JobError, match="no private key matches the leaf certificate"):
        JOB.read_pair(tmp_path, want_ca=False)


def test_arguments_rendered_by_the_chart_parse() -> None:
    args = JOB.parse_args(
        [
            "prepare",
            "--namespace=mesh",
            "--service=smictl",
            "--dns=a",
            "--dns=b",
            "--serving-secret=s",
            "--ca-secret=c",
            "--validating-webhook=v",
            "--crd=x",
            "--crd=y",
        ]
    )
    target = JOB.target_from(args)
    assert target.dns == ("a", "b") and target.crds == ("x", "y")
    assert target.mesh_ca_secret is None and target.mutating_webhook is None


def _smictl_with_certs() -> str:
    """The installed `smictl`, if its `certs` subcommand is registered (an editable install
    made before webhook.cli existed lacks the entry point until `make install` runs again)."""
    beside = Path(sys.executable).with_name("smictl")
    binary = str(beside) if beside.exists() else shutil.which("smictl")
    if binary is None:
        pytest.skip("the smictl console script is not installed")
    done = subprocess.run([binary, "certs", "--help"], capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        pytest.skip("this smictl install has no `certs` subcommand (re-run `make install`)")
    return binary


def test_prepare_with_the_real_smictl_certs_command() -> None:
    cluster = Cluster()
    tool = JOB.SmictlCerts(executable=_smictl_with_certs())
    _phases(cluster, tool=tool).prepare()
    cluster.add_webhooks()
    _phases(cluster, tool=tool).inject()
    cert = x509.load_pem_x509_certificate(cluster.secret("smictl-webhook-tls")["tls.crt"])
    assert set(DNS) <= JOB.dns_names(cert)
    assert len(cluster.bundles()) == 1

"""Serving-CA rotation of charts/smictl/files/certs_job.py as injected proxies see it.

The injector hands each new pod's proxy the serving CA bundle as it is at injection time (the
serving Secret's `ca.crt`, SMI_WEBHOOK_SERVING_CA_FILE -> SMI_PROXY_CONTROL_PLANE_CA_PEM) and the
proxy keeps it for its whole life. These tests run the Job over simulated years on the
in-memory cluster of test_chart_certs_job.py, with certificates issued by the real `smi.pki` at
the simulated time, and check with a real TLS handshake that:

- the API server's caBundle verifies the serving certificate on every simulated day;
- a pod verifies the control plane across one rotation with the bundle it was injected with
  (and, as documented, not across two);
- an install made before there was a next CA is upgraded without breaking pods injected after
  the upgrade, on the documented schedule;
- a run that dies after any of its writes leaves a state that still works and that the next
  run completes.

OpenSSL checks validity dates against the real clock, so the handshake runs with
X509_V_FLAG_NO_CHECK_TIME and the dates are checked against the simulated clock by
cryptography's verifier, on the same bundle and certificate.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from kubernetes.client.exceptions import ApiException
from test_chart_certs_job import JOB, NS, SVC, Cluster, PkiTool, _handshake, _target

from smi import pki

START = datetime(2031, 3, 1, 3, 0, tzinfo=UTC)  # the CronJob runs daily at 03:00
DAY = timedelta(days=1)
URL = f"https://{SVC}.{NS}.svc:443/readyz"
HOST = f"{SVC}.{NS}.svc"
CA_SECRET, TLS_SECRET = "smictl-webhook-ca", "smictl-webhook-tls"
NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME: dates are checked on the simulated clock
# Defaults of the chart (values.yaml) and of smi.pki (365-day CAs).
RENEW, CA_RENEW = 30, 90
TERM = (365 - CA_RENEW) / 2  # days a CA is "next", then "current": 137.5


class Clock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def day(self, n: float) -> None:
        self.now = START + n * DAY


class SimPkiTool(PkiTool):
    """`smictl certs` (smi.pki, as in test_chart_certs_job) issuing at the simulated time."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.failures: set[str] = set()  # "init" / "issue": the next such call fails once

    @contextlib.contextmanager
    def _at(self) -> Iterator[None]:
        clock = self.clock

        class Frozen(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return clock()

        with mock.patch.object(pki, "datetime", Frozen):
            yield

    def init_ca(self, out: Path) -> None:
        self._maybe_fail("init")
        with self._at():
            super().init_ca(out)

    def issue(self, *, ca_dir: Path, dns: Any, out: Path) -> None:
        self._maybe_fail("issue")
        with self._at():
            super().issue(ca_dir=ca_dir, dns=dns, out=out)

    def _maybe_fail(self, call: str) -> None:
        if call in self.failures:
            self.failures.discard(call)
            raise JOB.JobError(f"smictl certs {call} failed: simulated")


def verify(cluster: Cluster, context: ssl.SSLContext, at: datetime) -> None:
    """A real TLS handshake between the serving Secret and `context`, for the Service's host,
    then the same chain checked at the simulated time. Raises when untrusted."""
    context.verify_flags |= NO_CHECK_TIME
    _handshake(cluster)(URL, context, 5.0)  # ssl.SSLCertVerificationError when untrusted
    roots = [x509.load_der_x509_certificate(d) for d in context.get_ca_certs(binary_form=True)]
    leaf = x509.load_pem_x509_certificate(cluster.secret(TLS_SECRET)["tls.crt"])
    verifier = (
        PolicyBuilder().store(Store(roots)).time(at).build_server_verifier(x509.DNSName(HOST))
    )
    verifier.verify(leaf, [])  # VerificationError when expired or not yet valid


def trusts(cluster: Cluster, bundle: bytes, at: datetime) -> bool:
    """Whether a client holding only `bundle` verifies the control plane, as the proxy
    builds its context (proxy/tls.py) and as the API server uses a caBundle."""
    context = ssl.create_default_context(cadata=bundle.decode("ascii"))
    try:
        verify(cluster, context, at)
    except (ssl.SSLError, VerificationError):
        return False
    return True


def sim_fetch(cluster: Cluster, clock: Clock) -> Any:
    """The Job's readiness probe (Phases.fetch) on the simulated clock."""

    def fetch(url: str, context: ssl.SSLContext, timeout: float) -> int:
        assert url == URL
        verify(cluster, context, clock())
        return 200

    return fetch


def phases(cluster: Cluster, clock: Clock, tool: SimPkiTool) -> Any:
    return JOB.Phases(
        cluster.api,
        # The mesh CA (never replaced, its rotation fails loudly near its end) is the user's.
        _target(mesh_ca_secret=None),
        tool,
        renew_before_days=RENEW,
        ca_renew_before_days=CA_RENEW,
        ready_timeout=5,
        now=clock,
        fetch=sim_fetch(cluster, clock),
    )


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def injected_bundle(cluster: Cluster) -> bytes:
    """What the injector hands a pod created now: the mounted serving Secret's ca.crt."""
    return cluster.secret(TLS_SECRET)["ca.crt"]


def assert_api_server_trusts(cluster: Cluster, at: datetime) -> None:
    """Every caBundle the API server uses (webhooks, CRD conversion) verifies the serving
    certificate, and so does the bundle the injector hands out."""
    for bundle in cluster.bundles() | {injected_bundle(cluster)}:
        assert trusts(cluster, bundle, at), f"{at.date()}: a published bundle is not trusted"


@dataclass
class Pod:
    day: int
    bundle: bytes
    rotations: int = 0  # serving-CA rotations since it was injected
    checked: list[int] = field(default_factory=list)


def lean_cluster() -> Cluster:
    """The in-memory cluster without the CRDs' schemas (the Job only touches their
    conversion and annotations; copying the schemas on every read dominates a long run)."""
    cluster = Cluster()
    for key, obj in cluster.store.objects.items():
        if key.startswith("crd/"):
            for version in obj.spec.versions:
                version.schema = None
    return cluster


def install(clock: Clock, tool: SimPkiTool) -> Cluster:
    cluster = lean_cluster()
    phases(cluster, clock, tool).prepare()
    cluster.add_webhooks()
    phases(cluster, clock, tool).inject()
    return cluster


# --- a fresh install over two years ---------------------------------------------------------


def test_pods_trust_the_control_plane_across_a_rotation_with_their_injected_bundle() -> None:
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = install(clock, tool)
    pods: list[Pod] = []
    rotations: list[int] = []
    first_published: dict[bytes, int] = {}  # CA certificate -> first day in the caBundle
    for day in range(0, 2 * 365 + 1):
        clock.day(day)
        current = cluster.secret(CA_SECRET)["ca.crt"]
        if day:
            phases(cluster, clock, tool).rotate()
        stored = cluster.secret(CA_SECRET)
        rotated = stored["ca.crt"] != current
        (published,) = cluster.bundles()
        for pem in pki_certs(published):
            first_published.setdefault(pem, day)
        assert_api_server_trusts(cluster, clock())
        if rotated:
            rotations.append(day)
            for pod in pods:
                pod.rotations += 1
        for pod in pods:
            if rotated or day % 30 == 15:
                ok = trusts(cluster, pod.bundle, clock())
                if pod.rotations <= 1:
                    assert ok, f"day {day}: pod injected on day {pod.day} lost the control plane"
                    pod.checked.append(day)
                elif rotated and pod.rotations == 2:
                    # Documented: a pod that lives across two rotations must be restarted.
                    assert not ok
        pods = [p for p in pods if p.rotations < 2]
        if rotated:
            # The CA that now signs was in every caBundle and every injected bundle for
            # about TERM days (the install's first successor: since the install).
            assert day - first_published[stored["ca.crt"].strip()] >= TERM - 1
            # The retired CA had caRenewBeforeDays left, or more (the install's first).
            left = load(stored["previous-ca.crt"]).not_valid_after_utc - clock()
            assert left >= timedelta(days=CA_RENEW - 1)
        if day % 10 == 0:
            pods.append(Pod(day, injected_bundle(cluster)))
    # The documented schedule: the first rotation TERM days after the install, then every TERM.
    assert rotations[0] == 138
    gaps = [b - a for a, b in zip(rotations, rotations[1:], strict=False)]
    assert len(rotations) == 5 and all(137 <= gap <= 138 for gap in gaps), rotations
    assert tool.calls.count("init") == 2 + len(rotations), "current and next, then one each"


def pki_certs(bundle: bytes) -> list[bytes]:
    end = b"-----END CERTIFICATE-----"
    return [part.strip() + b"\n" + end for part in bundle.split(end) if part.strip()]


# --- upgrading an install made before there was a next CA -------------------------------------


def old_install(clock: Clock, tool: SimPkiTool, *, ca_age: int) -> Cluster:
    """The Secrets and caBundles the script wrote before it kept a next CA: a current CA
    `ca_age` days old, its previous CA while still valid, a serving certificate from it."""
    cluster = lean_cluster()
    cluster.add_webhooks()
    job = phases(cluster, clock, tool)
    files: dict[str, bytes] = {}
    if ca_age < CA_RENEW:
        clock.day(-ca_age - (365 - CA_RENEW))
        files[JOB.PREVIOUS_CA_KEY] = new_ca(tool)["ca.crt"]
    clock.day(-ca_age)
    files |= new_ca(tool)
    clock.day(-1)
    bundle = JOB._bundle(files, now=clock())
    JOB.write_secret(cluster.api, namespace=NS, name=CA_SECRET, data=files, tls=False)
    JOB.set_webhook_bundle(cluster.api, _target(), bundle)
    JOB.point_crds(cluster.api, _target(), bundle)
    version = JOB.read_secret_version(cluster.api, NS, CA_SECRET)[1]
    job._ensure_serving_cert(files, bundle, version)
    clock.day(0)
    assert "next-ca.crt" not in cluster.secret(CA_SECRET)
    return cluster


def new_ca(tool: SimPkiTool) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        tool.init_ca(Path(tmp))
        return {name: (Path(tmp) / name).read_bytes() for name in ("ca.crt", "ca.key")}


@pytest.mark.parametrize(
    ("ca_age", "first_rotation"),
    [
        (10, 138),  # plenty of time: the steady-state schedule from the upgrade on
        (200, 75),  # current CA reaches caRenewBeforeDays (90 left) after 75 days
        (274, 60),  # the old script would have rotated tomorrow: the successor gets 60 days
        (300, 35),  # rotation was off: until 30 days (renewBeforeDays) before the end
        (350, 0),  # about to expire: rotated by the upgrade itself
    ],
)
def test_upgrade_publishes_the_next_ca_before_it_is_used(ca_age: int, first_rotation: int) -> None:
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = old_install(clock, tool, ca_age=ca_age)
    before_upgrade = injected_bundle(cluster)
    old_ca = cluster.secret(CA_SECRET)["ca.crt"]
    old_serving = cluster.secret(TLS_SECRET)["tls.crt"]
    # helm upgrade: the pre-upgrade and post-upgrade hooks.
    phases(cluster, clock, tool).prepare()
    phases(cluster, clock, tool).inject()
    stored = cluster.secret(CA_SECRET)
    assert {"next-ca.crt", "next-ca.key"} <= set(stored)
    assert_api_server_trusts(cluster, clock())
    if first_rotation:
        assert stored["ca.crt"] == old_ca, "not promoted by the run that published it"
        assert cluster.secret(TLS_SECRET)["tls.crt"] == old_serving
        (published,) = cluster.bundles()
        assert stored["next-ca.crt"].strip() in published
        assert injected_bundle(cluster) == published
    else:
        assert stored["previous-ca.crt"] == old_ca
        assert not trusts(cluster, before_upgrade, clock()), "documented: restart these pods"
    after_upgrade = Pod(0, injected_bundle(cluster))
    rotated_on = 0 if not first_rotation else None
    for day in range(1, first_rotation + 30):
        clock.day(day)
        current = cluster.secret(CA_SECRET)["ca.crt"]
        phases(cluster, clock, tool).rotate()
        if cluster.secret(CA_SECRET)["ca.crt"] != current:
            assert rotated_on is None, "one rotation only"
            rotated_on = day
        assert_api_server_trusts(cluster, clock())
        if day % 7 and day not in (rotated_on, first_rotation - 1):
            continue
        assert trusts(cluster, after_upgrade.bundle, clock()), f"day {day}"
        # Pods injected before the upgrade hold the old CA only: fine until the rotation.
        assert trusts(cluster, before_upgrade, clock()) == (rotated_on is None), f"day {day}"
    assert rotated_on == first_rotation


# --- a run that dies between steps ------------------------------------------------------------


def _writes(events: list[str]) -> list[str]:
    return [e for e in events if e.startswith(("create ", "replace "))]


@pytest.mark.parametrize("scenario", ["install", "upgrade", "rotation"])
def test_a_run_failing_after_any_write_is_completed_by_the_next(scenario: str) -> None:
    def setup() -> tuple[Cluster, Clock, SimPkiTool, bytes | None]:
        clock = Clock()
        tool = SimPkiTool(clock)
        if scenario == "install":
            cluster = lean_cluster()
            cluster.add_webhooks()
            return cluster, clock, tool, None
        if scenario == "upgrade":
            cluster = old_install(clock, tool, ca_age=100)
            return cluster, clock, tool, injected_bundle(cluster)
        cluster = install(clock, tool)
        pod = injected_bundle(cluster)
        for day in (30, 60, 90, 120, 138):  # the serving certificate renewed; then rotation
            clock.day(day)
            if day < 138:
                phases(cluster, clock, tool).rotate()
        return cluster, clock, tool, pod

    cluster, clock, tool, _ = setup()
    before, calls_before = len(cluster.events), len(tool.calls)
    phases(cluster, clock, tool).rotate()
    clean_writes = _writes(cluster.events[before:])
    assert clean_writes, "the scenario writes something"
    failures: list[tuple[str, Any]] = [("write", n) for n in range(len(clean_writes))]
    failures += [("tool", call) for call in sorted(set(tool.calls[calls_before:]))]
    for kind, which in failures:
        cluster, clock, tool, pod = setup()
        if kind == "write":
            cluster.store.writes_before_failure = which
        else:
            tool.failures.add(which)
        with pytest.raises((ApiException, JOB.JobError)):
            phases(cluster, clock, tool).rotate()
        # What the failed run left behind still works for the API server and for pods.
        if f"secret/{NS}/{TLS_SECRET}" in cluster.store.objects:
            for bundle in cluster.bundles() - {b""}:
                assert trusts(cluster, bundle, clock()), (kind, which)
            if pod is not None:
                assert trusts(cluster, pod, clock()), (kind, which)
        # The next run completes it.
        phases(cluster, clock, tool).rotate()
        assert_complete(cluster, clock)
        if pod is not None and scenario == "rotation":
            assert trusts(cluster, pod, clock()), "injected before the rotation, still trusted"


def assert_complete(cluster: Cluster, clock: Clock) -> None:
    stored = cluster.secret(CA_SECRET)
    (bundle,) = cluster.bundles()
    expected = [stored["ca.crt"], stored["next-ca.crt"]]
    if "previous-ca.crt" in stored:
        expected.append(stored["previous-ca.crt"])
    assert bundle == b"\n".join(p.strip() for p in expected) + b"\n"
    assert injected_bundle(cluster) == bundle
    serving = load(cluster.secret(TLS_SECRET)["tls.crt"])
    assert JOB.signed_by(serving, load(stored["ca.crt"]))
    assert trusts(cluster, bundle, clock())


def test_a_concurrent_change_of_the_ca_secret_is_not_overwritten() -> None:
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = install(clock, tool)
    clock.day(138)
    core = cluster.api.core
    read = core.read_namespaced_secret

    def read_then_someone_writes(name: str, namespace: str) -> Any:
        obj = read(name, namespace)
        if name == CA_SECRET:
            # Another run (an upgrade hook beside the CronJob) writes meanwhile.
            stored = cluster.store.objects[f"secret/{namespace}/{name}"]
            stored.metadata.resource_version = str(int(stored.metadata.resource_version) + 1)
            core.read_namespaced_secret = read
        return obj

    core.read_namespaced_secret = read_then_someone_writes
    untouched = cluster.secret(CA_SECRET)
    with pytest.raises(JOB.JobError, match="was changed by someone else meanwhile"):
        phases(cluster, clock, tool).rotate()
    assert cluster.secret(CA_SECRET) == untouched
    phases(cluster, clock, tool).rotate()
    assert cluster.secret(CA_SECRET)["ca.crt"] == untouched["next-ca.crt"]
    assert_complete(cluster, clock)


def test_a_next_ca_left_to_expire_is_replaced_not_promoted() -> None:
    """No run for eleven months (rotation disabled, no upgrade): the stored successor has
    less than renewBeforeDays left, so a new one is made; the current CA is past the point
    where it may still sign, so the new one takes over in the same run."""
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = install(clock, tool)
    old = cluster.secret(CA_SECRET)
    clock.day(340)
    phases(cluster, clock, tool).rotate()
    stored = cluster.secret(CA_SECRET)
    assert stored["ca.crt"] not in (old["ca.crt"], old["next-ca.crt"])
    assert stored["previous-ca.crt"] == old["ca.crt"]
    assert_complete(cluster, clock)
    assert load(stored["ca.crt"]).not_valid_after_utc - clock() > timedelta(days=360)


def _stale_read_then(cluster: Cluster, meanwhile: Any) -> Any:
    """The Job's cluster with a core API whose first read of the CA Secret is followed by
    `meanwhile()` (another run), before the reader goes on."""
    core = cluster.api.core
    read = core.read_namespaced_secret
    done: list[bool] = []

    class Racing:
        def __getattr__(self, attr: str) -> Any:
            return getattr(core, attr)

        def read_namespaced_secret(self, name: str, namespace: str) -> Any:
            obj = read(name, namespace)
            if name == CA_SECRET and not done:
                done.append(True)
                meanwhile()
            return obj

    return JOB.Cluster(Racing(), cluster.api.admission, cluster.api.extensions, log=print)


def test_a_run_that_read_the_ca_secret_before_a_concurrent_promotion_publishes_nothing() -> None:
    """Run A (an upgrade hook, started a minute before the promotion was due) reads the CA
    Secret, finds nothing to write; run B (the CronJob) promotes, publishes and reissues. A
    must neither publish its stale bundle (without B's new next CA) nor reissue the serving
    certificate from the CA B retired."""
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = install(clock, tool)
    clock.day(138)
    before = cluster.secret(CA_SECRET)
    assert phases(cluster, clock, tool).promotion_date(before) <= clock()
    a_time = phases(cluster, clock, tool).promotion_date(before) - timedelta(minutes=1)
    after_b: dict[str, Any] = {}

    def run_b() -> None:
        phases(cluster, clock, tool).rotate()
        after_b.update(
            ca=cluster.secret(CA_SECRET), tls=cluster.secret(TLS_SECRET), bundles=cluster.bundles()
        )

    a = phases(cluster, clock, tool)
    a.cluster, a.now = _stale_read_then(cluster, run_b), lambda: a_time
    with pytest.raises(JOB.JobError, match="changed meanwhile .*: run again"):
        a.prepare()
    assert after_b["ca"]["ca.crt"] == before["next-ca.crt"], "B promoted"
    assert cluster.secret(CA_SECRET) == after_b["ca"]
    assert cluster.secret(TLS_SECRET) == after_b["tls"], "A reissued or rewrote ca.crt"
    assert cluster.bundles() == after_b["bundles"], "A published its stale bundle"
    assert_complete(cluster, clock)
    phases(cluster, clock, tool).rotate()  # A's retry starts from B's result
    assert_complete(cluster, clock)


def test_a_concurrent_write_of_the_serving_secret_is_not_overwritten() -> None:
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = install(clock, tool)
    clock.day(70)  # the serving certificate is due for renewal
    core = cluster.api.core
    read = core.read_namespaced_secret

    def read_then_someone_writes(name: str, namespace: str) -> Any:
        obj = read(name, namespace)
        if name == TLS_SECRET:
            stored = cluster.store.objects[f"secret/{namespace}/{name}"]
            stored.metadata.resource_version = str(int(stored.metadata.resource_version) + 1)
            core.read_namespaced_secret = read
        return obj

    core.read_namespaced_secret = read_then_someone_writes
    untouched = cluster.secret(TLS_SECRET)
    with pytest.raises(JOB.JobError, match="was changed by someone else meanwhile"):
        phases(cluster, clock, tool).prepare()
    assert cluster.secret(TLS_SECRET) == untouched
    phases(cluster, clock, tool).rotate()
    assert cluster.secret(TLS_SECRET)["tls.crt"] != untouched["tls.crt"]
    assert_complete(cluster, clock)


def _another_key(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    stored["next-ca.key"] = new_ca(tool)["ca.key"]


def _renamed(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    stored["next-ca.pem"], stored["next-tls.key"] = (
        stored.pop("next-ca.crt"),
        stored.pop("next-ca.key"),
    )


def _extra_file(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    stored["next-server.key"] = stored["next-ca.key"]


def _no_key(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    del stored["next-ca.key"]


def _current_again(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    stored["next-ca.crt"], stored["next-ca.key"] = stored["ca.crt"], stored["ca.key"]


def _unparsable(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    stored["next-ca.crt"] = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def _not_a_ca(stored: dict[str, bytes], tool: SimPkiTool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tool.init_ca(Path(tmp))
        stored["next-ca.crt"] = (Path(tmp) / "server.crt").read_bytes()
        stored["next-ca.key"] = (Path(tmp) / "server.key").read_bytes()


@pytest.mark.parametrize(
    "spoil", [_another_key, _renamed, _extra_file, _no_key, _current_again, _unparsable, _not_a_ca]
)
def test_a_successor_smictl_certs_issue_would_reject_is_replaced_never_promoted(
    spoil: Any,
) -> None:
    """A hand-edited (or half-restored) next CA: promoted, `smictl certs issue --ca-dir`
    would fail on it on every run, with the old current CA's key already thrown away."""
    clock = Clock()
    tool = SimPkiTool(clock)
    cluster = install(clock, tool)
    stored = cluster.secret(CA_SECRET)
    spoil(stored, tool)
    JOB.write_secret(cluster.api, namespace=NS, name=CA_SECRET, data=stored, tls=False)
    clock.day(1)
    phases(cluster, clock, tool).rotate()
    fixed = cluster.secret(CA_SECRET)
    assert set(fixed) == {"ca.crt", "ca.key", "next-ca.crt", "next-ca.key"}
    assert fixed["ca.crt"] == stored["ca.crt"], "replaced, not promoted"
    assert fixed["next-ca.crt"] not in (stored.get("next-ca.crt"), stored["ca.crt"])
    assert any("next serving CA created (the stored one" in e for e in cluster.events)
    assert_complete(cluster, clock)
    clock.day(139)  # the replacement's promotion (counted from its publication)
    phases(cluster, clock, tool).rotate()
    promoted = cluster.secret(CA_SECRET)
    assert promoted["ca.crt"] == fixed["next-ca.crt"]
    assert promoted["previous-ca.crt"] == stored["ca.crt"]
    assert_complete(cluster, clock)
